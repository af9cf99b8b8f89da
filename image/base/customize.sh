#!/bin/sh
# customize.sh ROOT: the base's last step, run by mmdebstrap on the host
# with ROOT the new tree (ROOT-ONLY: chroot, arm64 binaries under qemu-user).
set -eu
root=$1

# raspi-firmware's kernel hook writes cmdline.txt from the BUILD machine's
# root device and consoles unless told otherwise: name the root filesystem by
# label (build.sh gives the ext4 root this label) and the Pi's serial console:
# ttyS1 on the Pi 3 and 4 (the mini UART on GPIO14/15), ttyAMA10 on the Pi 5
# (the 3-pin debug UART connector between the HDMI ports; the device tree's
# serial10 alias); plus the HDMI console (tty0, last, so kernel messages show
# on a screen). A board ignores the console it does not have. CMA=0: no cma= argument, the
# kernel's default; the hook's cma=64M must not reach a Pi 4 (it checks for
# a Pi 4 on the build machine, which is never one).
cat >> "$root/etc/default/raspi-firmware" <<'CONF'

# sensord image: set at build time (image/base/customize.sh)
ROOTPART=LABEL=RASPIROOT
CONSOLES="ttyS1,115200 ttyAMA10,115200 tty0"
CMA=0
CONF
# fsck.ext4 in the initrd, so the root is checked before it is mounted
# (fsck.repair=yes on cmdline.txt): initramfs-tools' fsck hook would look the
# root's type up from the label in fstab, which resolves on no build machine.
echo FSTYPE=ext4 > "$root/etc/initramfs-tools/conf.d/sensord-fstype"
for d in "$root"/usr/lib/modules/*; do
	v=${d##*/}
	# Linux 7.x packages ship the kernel as /usr/lib/modules/$v/vmlinuz;
	# linux-base's kernel hook copies it (and config) to /boot, where
	# initramfs-tools and raspi-firmware look. Run the kernel's postinst
	# hooks once more in case linux-base was configured after the kernel.
	DEB_MAINT_PARAMS=configure chroot "$root" linux-run-hooks image postinst "$v" "/boot/vmlinuz-$v" -- configure
	[ -e "$root/boot/vmlinuz-$v" ] || { echo "customize: no /boot/vmlinuz-$v after the kernel hooks" >&2; exit 1; }
	# mkbase.sh installed with INITRD=No: build the initrd once, now.
	if [ -e "$root/boot/initrd.img-$v" ]; then
		chroot "$root" update-initramfs -u -k "$v"
	else
		chroot "$root" update-initramfs -c -k "$v"
	fi
	# Run the hook again with the settings above (it does nothing without
	# DEB_MAINT_PARAMS=configure): copies kernel, initrd and device trees to
	# /boot/firmware, writes config.txt and cmdline.txt.
	DEB_MAINT_PARAMS=configure chroot "$root" /etc/kernel/postinst.d/z50-raspi-firmware "$v" "/boot/vmlinuz-$v"
done
cmdline=$(cat "$root/boot/firmware/cmdline.txt")
echo "customize: cmdline.txt: $cmdline"
case "$cmdline" in
*root=LABEL=RASPIROOT*) ;;
*)
	echo "customize: cmdline.txt does not name root=LABEL=RASPIROOT" >&2
	exit 1
	;;
esac

# Every card must get its own ssh host keys: openssh-server's postinst made
# some in the build; the image generates them on first boot instead.
rm -f "$root"/etc/ssh/ssh_host_*

echo "customize: $(chroot "$root" dpkg-query -W -f '.\n' | wc -l) packages installed"
