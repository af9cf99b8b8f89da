#!/bin/sh
# customize.sh ROOT: the base's last step, run by mmdebstrap on the host
# with ROOT the new tree (ROOT-ONLY: chroot, arm64 binaries under qemu-user).
set -eu
root=$1

# raspi-firmware's kernel hook writes cmdline.txt from the BUILD machine's
# root device and consoles unless told otherwise: name the root filesystem by
# label (build.sh gives the ext4 root this label) and the Pi's serial console
# (ttyS1, the mini UART on the GPIO header) plus the HDMI console (tty0, last,
# so kernel messages show on a screen). Then run the hook again.
cat >> "$root/etc/default/raspi-firmware" <<'CONF'

# sensord image: set at build time (image/base/customize.sh)
ROOTPART=LABEL=RASPIROOT
CONSOLES="ttyS1,115200 tty0"
CONF
for d in "$root"/usr/lib/modules/*; do
	v=${d##*/}
	if [ -x "$root/etc/kernel/postinst.d/z50-raspi-firmware" ]; then
		chroot "$root" /etc/kernel/postinst.d/z50-raspi-firmware "$v" "/boot/vmlinuz-$v"
	else
		chroot "$root" /etc/initramfs/post-update.d/z50-raspi-firmware "$v" "/boot/initrd.img-$v"
	fi
done
echo "customize: cmdline.txt: $(cat "$root/boot/firmware/cmdline.txt" 2>/dev/null)"

# Every card must get its own ssh host keys: openssh-server's postinst made
# some in the build; the image generates them on first boot instead.
rm -f "$root"/etc/ssh/ssh_host_*

# Installed packages, for the log of the cold build.
echo "customize: $(chroot "$root" dpkg-query -W -f '.\n' | wc -l) packages installed"
