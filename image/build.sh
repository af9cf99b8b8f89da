#!/bin/bash
# build.sh: build the flashable SD-card image. ROOT-ONLY (it unpacks a root
# filesystem with its owners, chroots into it and runs arm64 commands there
# through qemu-user); image/image.mk calls it from `make image`.
#
#   image/build.sh OUTDIR VERSION BINARY SERVICE SOCKET
#
# writes OUTDIR/sensord-VERSION-arm64.{img,img.xz,sha256,manifest}, Raspberry
# Pi Imager's OUTDIR/sensord-VERSION-arm64.rpi-imager-manifest and the
# signed update bundle OUTDIR/sensord-VERSION-arm64.update (ab.sh).
#
# Steps, each timed:
#   base      the cached Debian root filesystem (image/base/mkbase.sh, 12-15 min
#             the first time, then a tarball in $IMAGE_CACHE)
#   unpack    a fresh copy of it
#   files     our binary, units, settings file and the rootfs/ overlay
#   chroot    users (sysusers), enabled units: arm64 systemctl under qemu-user
#   firmware  device trees and overlays onto the boot partition, config.txt;
#             U-Boot, boot.scr and slot A's kernel, initrd, device trees (ab.sh)
#   stamp     every timestamp := SOURCE_DATE_EPOCH (reproducible bytes)
#   boot      FAT32 boot partition: mkfs.vfat + mtools, no mount
#   root      the read-only root slot: squashfs; the data partition: ext4
#   bundle    the root slot signed as an update bundle
#   assemble  sfdisk on the image file (A/B layout), dd the filesystems in
#   xz, sha   compressed copy and checksums; Imager's manifest
#
# Environment: SOURCE_DATE_EPOCH (default: the last commit's time),
# IMAGE_CACHE (default /var/cache/sensord-image), IMAGE_XZ=0 to skip the .xz,
# IMAGE_BASE=FILE.tar to use that base tarball instead of the cached one
# (development only: the cache key no longer describes the image),
# IMAGE_KEY=FILE the ed25519 key bundles are signed with (default: the
# repository's test key, image/keys/TEST-ONLY-update-key.pem),
# IMAGE_RELEASE=N the bundle's release number (default: the number of
# commits up to HEAD; image/README.md, "Release numbers"), IMAGE_URL=URL
# where the .img.xz will be published (the Imager manifest's url; default:
# its file:// path here).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$1 version=$2 bin=$3 service=$4 socket=$5
cache=${IMAGE_CACHE:-/var/cache/sensord-image}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct)}
# The release number orders bundles (an updater refuses one that is not
# newer than what it runs): the commit count grows with every commit on a
# branch, but a shallow clone counts only what it fetched.
if [ -z "${IMAGE_RELEASE:-}" ]; then
	if [ "$(git -C "$here" rev-parse --is-shallow-repository)" = true ]; then
		# Too low a number is refused by every updater that runs a newer
		# one: safe for a test build, wrong for a release.
		echo "build: WARNING: a shallow clone counts only the commits it fetched; for a release, git fetch --unshallow or set IMAGE_RELEASE" >&2
	fi
	IMAGE_RELEASE=$(git -C "$here" rev-list --count HEAD)
fi
case "$IMAGE_RELEASE" in '' | *[!0-9]* | 0) echo "build: IMAGE_RELEASE=$IMAGE_RELEASE is not a positive whole number" >&2; exit 1 ;; esac
release=$IMAGE_RELEASE
export LC_ALL=C TZ=UTC
name=sensord-$version-arm64

[ "$(id -u)" = 0 ] || { echo "build: must run as root (it unpacks a root filesystem and chroots into it)" >&2; exit 1; }
for f in "$bin" "$service" "$socket"; do
	[ -f "$f" ] || { echo "build: missing $f" >&2; exit 1; }
done

# ---- timing: "where each minute went" ----
t_start=$(date +%s)
t_last=$t_start
steps=""
step() { # NAME: close the previous step, open NAME
	local now
	now=$(date +%s)
	[ -z "${cur:-}" ] || steps="$steps$(printf '  %-9s %4ds' "$cur" $((now - t_last)))\n"
	cur=$1 t_last=$now
	echo "build: == $1"
}

# Filesystem identities derived from the version: fixed for a given build,
# different between releases. LABELs are what fstab and cmdline.txt use.
uuid_of() { echo -n "sensord-$1-$version" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/'; }
root_uuid=$(uuid_of root)
hash_seed=$(uuid_of hash)
disk_id=0x$(echo -n "sensord-disk-$version" | sha256sum | cut -c1-8)

"$here/binfmt.sh"

# ---- base ----
step base
key=$("$here/base/key.sh")
base=${IMAGE_BASE:-$cache/base-$key.tar}
if [ -f "$base" ]; then
	echo "build: base $base (cached)"
else
	echo "build: no $base: building it (cold, 12-15 min; log in $cache/base-$key.log)"
	mkdir -p "$cache"
	if ! "$here/base/mkbase.sh" "$base" "$cache/debs" > "$cache/base-$key.log" 2>&1; then
		tail -n 40 "$cache/base-$key.log" >&2
		echo "build: base failed, full log: $cache/base-$key.log" >&2
		exit 1
	fi
fi

mkdir -p "$cache" "$out"
work=$(mktemp -d "$cache/work.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir "$root"
imgtool=${IMGTOOL:-}
if [ -z "$imgtool" ]; then
	imgtool=$work/imgtool
	(cd "$here/.." && CGO_ENABLED=0 go build -o "$imgtool" ./image/imgtool)
fi
. "$here/ab.sh"

# ---- unpack ----
step unpack
tar -x -p --numeric-owner --xattrs --xattrs-include='*' -f "$base" -C "$root"

# ---- files ----
step files
(cd "$here/rootfs" && find . -type f | sort) | while read -r f; do
	mode=0644
	[ -x "$here/rootfs/$f" ] && mode=0755
	install -D -o 0 -g 0 -m "$mode" "$here/rootfs/$f" "$root/$f"
done
install -D -o 0 -g 0 -m 0755 "$bin" "$root/usr/local/bin/sensord"
install -D -o 0 -g 0 -m 0644 "$service" "$root/etc/systemd/system/sensord.service"
install -D -o 0 -g 0 -m 0644 "$socket" "$root/etc/systemd/system/sensord.socket"
# TIMEZONE needs the zone files, and the base has no tzdata: Go's copy of
# the IANA database (the data its time/tzdata package embeds) takes its place.
"$imgtool" zoneinfo -from "$(go env GOROOT)/lib/time/zoneinfo.zip" "$root/usr/share/zoneinfo"
"$imgtool" settings > "$work/sensord.conf"
install -o 0 -g 0 -m 0644 "$work/sensord.conf" "$root/boot/firmware/sensord.conf"
# First boot: systemd makes this card's machine ID (and with it the DHCP
# client ID, the journal's ID) when the file says "uninitialized".
printf 'uninitialized\n' > "$root/etc/machine-id"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# systemd-ssh-generator would bind sshd to AF_VSOCK/AF_UNIX sockets behind
# our back (and fails noisily where vsock is absent): SSH is on only when
# sensord-settings starts it.
mkdir -p "$root/etc/systemd/system-generators"
ln -sfn /dev/null "$root/etc/systemd/system-generators/systemd-ssh-generator"
# Translations, manuals and package documentation: an appliance without a
# screen or a login user reads none of them, yet each byte is on the card
# and in every bundle (about 23 MB of a bundle). The copyright files stay:
# the licences travel with the binaries.
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
rm -rf "$root/usr/share/man" "$root/usr/share/info"
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
ab_files

# ---- chroot (arm64 binaries under qemu-user) ----
step chroot
chroot "$root" systemd-sysusers sensord.conf
chroot "$root" systemctl enable \
	sensord.socket sensord.service \
	sensord-imager.service sensord-settings.service sensord-growroot.service sensord-sshkeys.service \
	systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
	avahi-daemon.service sensord-update.service sensord-update-spool.path \
	sensord-setclock.path sensord-settings-apply.path
# The setup access point (image/setupap).
chroot "$root" systemctl enable sensord-setup.service sensord-setup-request.path
# systemd-firstboot would ask on the console for a time zone and a root
# password on the first boot, holding the boot up until someone answers: an
# appliance has no one there. apt's daily timers would download package lists
# onto the SD card every day for nobody.
chroot "$root" systemctl mask systemd-firstboot.service
chroot "$root" systemctl disable apt-daily.timer apt-daily-upgrade.timer
# SSH is off until the settings file carries a key (sensord-settings starts it).
chroot "$root" systemctl disable ssh.service ssh.socket wpa_supplicant.service
chroot "$root" systemctl --quiet is-enabled ssh.service 2>/dev/null && { echo "build: ssh.service still enabled" >&2; exit 1; }
chroot "$root" getent passwd sensord > /dev/null
chroot "$root" id -nG sensord | grep -qw gpio || { echo "build: sensord is not in group gpio" >&2; exit 1; }

# ---- firmware: what each board's firmware reads from the boot partition ----
step firmware
# image/boards lists the models; the device trees come from the kernel
# package itself (Linux 7.x: /usr/lib/modules/<v>/dtb), not from
# raspi-firmware's hook, which looks in /usr/lib/linux-image-<v>.
kernels=("$root"/usr/lib/modules/*)
[ "${#kernels[@]}" = 1 ] || { echo "build: want one kernel, found: ${kernels[*]##*/}" >&2; exit 1; }
kver=${kernels[0]##*/}
fw=$root/boot/firmware
# config.txt: raspi-firmware's hook appends /etc/default/raspi-firmware-custom
# to the config.txt it writes on every kernel upgrade on the card; append it
# here the way the hook does (the hook itself refuses to run in a chroot
# without /proc: it cannot tell the unmounted /boot/firmware is fine).
install -o 0 -g 0 -m 0644 "$here/boards/raspi-firmware-custom" "$root/etc/default/raspi-firmware-custom"
grep -q '^# Inserted by /etc/default/raspi-firmware-custom$' "$fw/config.txt" ||
	printf '\n# Inserted by /etc/default/raspi-firmware-custom\n%s\n' "$(cat "$root/etc/default/raspi-firmware-custom")" >> "$fw/config.txt"
grep -qx 'dtoverlay=sensord-rp1-i2c1' "$fw/config.txt" || {
	echo "build: config.txt lacks the overlay line of boards/raspi-firmware-custom" >&2
	exit 1
}
dtbdir=$root/usr/lib/modules/$kver/dtb/broadcom
"$imgtool" dtbs | while read -r src dst; do
	[ -s "$dtbdir/$src" ] || { echo "build: the kernel package has no $dtbdir/$src" >&2; exit 1; }
	install -o 0 -g 0 -m 0644 "$dtbdir/$src" "$fw/$dst"
done
mkdir -p "$fw/overlays"
dtc -@ -q -I dts -O dtb -o "$fw/overlays/sensord-rp1-i2c1.dtbo" "$here/boards/sensord-rp1-i2c1.dts"
# The overlay must apply to both Pi 5 device trees and enable the I2C
# controller the device tree's rp1_i2c1 label names.
for d in bcm2712-rpi-5-b.dtb bcm2712-d-rpi-5-b.dtb; do
	node=$(fdtget -t s "$fw/$d" /__symbols__ rp1_i2c1)
	fdtoverlay -i "$fw/$d" -o "$work/overlaid.dtb" "$fw/overlays/sensord-rp1-i2c1.dtbo"
	st=$(fdtget -t s "$work/overlaid.dtb" "$node" status)
	[ "$st" = okay ] || { echo "build: sensord-rp1-i2c1 on $d: $node status $st" >&2; exit 1; }
done
rm -f "$work/overlaid.dtb"
"$imgtool" bootfiles -check "$fw"

# The kernel command line must name the root by label (base/customize.sh).
grep -q 'root=LABEL=RASPIROOT' "$root/boot/firmware/cmdline.txt" || {
	echo "build: cmdline.txt lacks root=LABEL=RASPIROOT: $(cat "$root/boot/firmware/cmdline.txt")" >&2
	exit 1
}

ab_boot
ab_uboot
ab_slotboot
ab_config

# Package manifest, beside the image.
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > "$out/$name.manifest"
npkg=$(wc -l < "$out/$name.manifest")

# What a run of anything leaves behind that differs from build to build.
rm -rf "$root"/var/log/* "$root"/var/cache/ldconfig/aux-cache \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
	"$root"/etc/*- "$root"/var/lib/systemd/random-seed "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/var/log"

# ---- stamp ----
step stamp
find "$root" -depth -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---- boot: FAT32, built with mtools ----
step boot
rootbytes=$(( $(du -s -B1 "$root" | cut -f1) - $(du -s -B1 "$root/boot/firmware" | cut -f1) ))
# The boot partition's size does not depend on the root's (ab_root plans the rest).
"$imgtool" layout-ab -root-image-bytes 1 -disk-id "$disk_id" > "$work/layout.sh"
. "$work/layout.sh"
boot=$work/boot.fat
truncate -s "$BOOT_BYTES" "$boot"
# --invariant: fixed volume ID and label timestamp.
mkfs.vfat -F 32 -n RASPIFIRM --invariant "$boot" > /dev/null
# mtools stamps directories (and some entries) with the clock: freeze it at
# SOURCE_DATE_EPOCH with libfaketime. Files go in sorted order, one directory
# at a time, so the FAT's directory entries are in the same order every time.
fake=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -n 1)
[ -n "$fake" ] || { echo "build: libfaketime not installed (make image-deps)" >&2; exit 1; }
mt() { LD_PRELOAD=$fake FAKETIME="$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')" MTOOLS_SKIP_CHECK=1 "$@"; }
mapfile -t dirs < <(cd "$root/boot/firmware" && find . -type d | sort)
for d in "${dirs[@]}"; do
	d=${d#.}
	[ -z "$d" ] || mt mmd -i "$boot" "::$d"
	mapfile -t files < <(cd "$root/boot/firmware$d" && find . -maxdepth 1 -type f | sort)
	[ "${#files[@]}" = 0 ] || (cd "$root/boot/firmware$d" && mt mcopy -m -o -i "$boot" "${files[@]}" "::$d/")
done
fsck.vfat -n "$boot" > /dev/null
# On the card, /boot/firmware is the mount point of that partition: empty.
find "$root/boot/firmware" -mindepth 1 -delete
touch -h -d "@$SOURCE_DATE_EPOCH" "$root/boot/firmware" "$root/boot"

# ---- root: the squashfs slot, the data partition; the bundle ----
step root
ab_root
step bundle
ab_bundle

# ---- assemble ----
step assemble
img=$out/$name.img
rm -f "$img" "$img.xz"
truncate -s "$IMG_BYTES" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" < "$work/table"
dd if="$boot" of="$img" bs=4M seek="$BOOT_OFFSET" oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$rootfs" of="$img" bs=4M seek="$SLOT_A_OFFSET" oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$datafs" of="$img" bs=4M seek="$DATA_OFFSET" oflag=seek_bytes conv=notrunc,sparse status=none

# ---- xz ----
if [ "${IMAGE_XZ:-1}" != 0 ]; then
	step xz
	# -T0: multi-threaded mode, whose output does not depend on the number of
	# threads (xz(1)), so every machine writes the same .xz.
	xz -T0 -6 --keep --force "$img"
fi

step sha
(cd "$out" && sha256sum "$name.img" $([ -f "$name.img.xz" ] && echo "$name.img.xz") > "$name.sha256")
# Raspberry Pi Imager's manifest (image/rpimanifest): opened in Imager 2 it
# offers the OS customisation the first boot imports. Imager needs an
# absolute URL: IMAGE_URL where the image is published, else this file.
dl=$img
[ ! -f "$img.xz" ] || dl=$img.xz
"$imgtool" imager-manifest -version "$version" -url "${IMAGE_URL:-file://$(realpath "$dl")}" \
	-date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)" -img "$img" -download "$dl" -sha256 "$out/$name.sha256" \
	> "$out/$name.rpi-imager-manifest"
step done

echo "build: $img"
echo "build:   $(stat -c %s "$img") bytes ($((IMG_BYTES / 1048576)) MiB), root tree $((rootbytes / 1048576)) MiB, $npkg packages"
[ ! -f "$img.xz" ] || echo "build:   $img.xz $(stat -c %s "$img.xz") bytes"
echo "build:   Raspberry Pi Imager manifest $out/$name.rpi-imager-manifest"
echo "build:   root slot squashfs $(stat -c %s "$rootfs") bytes in a $((SLOT_BYTES / 1048576)) MiB slot; bundle $bundle $(stat -c %s "$bundle") bytes"
echo "build:   SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH root UUID $root_uuid, disk ID $disk_id"
echo "build: time per step (total $(( $(date +%s) - t_start ))s):"
printf "$steps"
