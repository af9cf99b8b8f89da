#!/bin/bash
# build.sh: build the flashable SD-card image. ROOT-ONLY (it unpacks a root
# filesystem with its owners, chroots into it and runs arm64 commands there
# through qemu-user); image/image.mk calls it from `make image`.
#
#   image/build.sh OUTDIR VERSION BINARY SERVICE SOCKET
#
# writes OUTDIR/sensord-VERSION-arm64.{img,img.xz,sha256,manifest}.
#
# Steps, each timed:
#   base      the cached Debian root filesystem (image/base/mkbase.sh, 12-15 min
#             the first time, then a tarball in $IMAGE_CACHE)
#   unpack    a fresh copy of it
#   files     our binary, units, settings file and the rootfs/ overlay
#   chroot    users (sysusers), enabled units: arm64 systemctl under qemu-user
#   stamp     every timestamp := SOURCE_DATE_EPOCH (reproducible bytes)
#   boot      FAT32 boot partition: mkfs.vfat + mtools, no mount
#   root      ext4 root: mkfs.ext4 -d, fixed UUID and hash seed, no mount
#   assemble  sfdisk on the image file, dd the two filesystems in
#   xz, sha   compressed copy and checksums
#
# Environment: SOURCE_DATE_EPOCH (default: the last commit's time),
# IMAGE_CACHE (default /var/cache/sensord-image), IMAGE_XZ=0 to skip the .xz,
# IMAGE_BASE=FILE.tar to use that base tarball instead of the cached one
# (development only: the cache key no longer describes the image).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$1 version=$2 bin=$3 service=$4 socket=$5
cache=${IMAGE_CACHE:-/var/cache/sensord-image}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct)}
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

# ---- chroot (arm64 binaries under qemu-user) ----
step chroot
chroot "$root" systemd-sysusers sensord.conf
chroot "$root" systemctl enable \
	sensord.socket sensord.service \
	sensord-settings.service sensord-growroot.service sensord-sshkeys.service \
	systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
	avahi-daemon.service
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

# The kernel command line must name the root by label (base/customize.sh).
grep -q 'root=LABEL=RASPIROOT' "$root/boot/firmware/cmdline.txt" || {
	echo "build: cmdline.txt lacks root=LABEL=RASPIROOT: $(cat "$root/boot/firmware/cmdline.txt")" >&2
	exit 1
}

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
"$imgtool" layout -root-bytes "$rootbytes" -disk-id "$disk_id" -sfdisk "$work/table" > "$work/layout.sh"
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

# ---- root: ext4, populated from the tree ----
step root
rootfs=$work/root.ext4
truncate -s "$ROOT_BYTES" "$rootfs"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L RASPIROOT -U "$root_uuid" -m 2 \
	-E "hash_seed=$hash_seed,root_owner=0:0" -d "$root" "$rootfs"
# mkfs.ext4 -d copies each file's ctime and atime from this machine, where
# they are "now" (a ctime cannot be set): overwrite them in every used inode.
dumpe2fs "$rootfs" 2>/dev/null | awk -v t="@$SOURCE_DATE_EPOCH" '
	/^Inodes per group:/ { ipg = $4 }
	/^Group [0-9]+:/ { g = $2 + 0 }
	/^  Free inodes: / {
		sub(/^  Free inodes: /, "")
		delete free
		n = split($0, r, /, */)
		for (i = 1; i <= n; i++) {
			if (r[i] == "") continue
			m = split(r[i], ab, "-"); a = ab[1] + 0; b = (m > 1 ? ab[2] : ab[1]) + 0
			for (j = a; j <= b; j++) free[j] = 1
		}
		for (j = g * ipg + 1; j <= (g + 1) * ipg; j++)
			if (!(j in free) && (j == 2 || j >= 11)) { printf "sif <%d> ctime %s\nsif <%d> atime %s\n", j, t, j, t }
	}' > "$work/times.debugfs"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/times.debugfs" "$rootfs" > "$work/debugfs.log" 2>&1
if grep -v '^debugfs\|^sif' "$work/debugfs.log" | grep -q .; then
	grep -v '^debugfs\|^sif' "$work/debugfs.log" | head >&2
	echo "build: debugfs failed" >&2
	exit 1
fi
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH e2fsck -fn "$rootfs" > "$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; exit 1; }

# ---- assemble ----
step assemble
img=$out/$name.img
rm -f "$img" "$img.xz"
truncate -s "$IMG_BYTES" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" < "$work/table"
dd if="$boot" of="$img" bs=4M seek="$BOOT_OFFSET" oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$rootfs" of="$img" bs=4M seek="$ROOT_OFFSET" oflag=seek_bytes conv=notrunc,sparse status=none

# ---- xz ----
if [ "${IMAGE_XZ:-1}" != 0 ]; then
	step xz
	# -T0: multi-threaded mode, whose output does not depend on the number of
	# threads (xz(1)), so every machine writes the same .xz.
	xz -T0 -6 --keep --force "$img"
fi

step sha
(cd "$out" && sha256sum "$name.img" $([ -f "$name.img.xz" ] && echo "$name.img.xz") > "$name.sha256")
step done

echo "build: $img"
echo "build:   $(stat -c %s "$img") bytes ($((IMG_BYTES / 1048576)) MiB), root tree $((rootbytes / 1048576)) MiB, $npkg packages"
[ ! -f "$img.xz" ] || echo "build:   $img.xz $(stat -c %s "$img.xz") bytes"
echo "build:   SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH root UUID $root_uuid, disk ID $disk_id"
echo "build: time per step (total $(( $(date +%s) - t_start ))s):"
printf "$steps"
