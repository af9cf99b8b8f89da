# ab.sh: the A/B parts of the image build, sourced by build.sh (which
# defines here, root, work, out, name, version, release, imgtool, disk_id,
# uuid_of, SOURCE_DATE_EPOCH). image/README.md, "A/B updates", says how they fit.

ab_key=${IMAGE_KEY:-$here/keys/TEST-ONLY-update-key.pem}
[ -r "$ab_key" ] || { echo "build: IMAGE_KEY $ab_key is not readable" >&2; exit 1; }
case "$ab_key" in
*TEST-ONLY*) echo "build: signing with the repository's TEST key ($ab_key): not for release (IMAGE_KEY=...)" ;;
esac

# ab_files: the updater, the key it trusts, the mount point of the data
# partition, in the root tree.
ab_files() {
	(cd "$here/.." && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags "-s -w" -o "$work/sensorctl" ./cmd/sensorctl)
	install -D -o 0 -g 0 -m 0755 "$work/sensorctl" "$root/usr/local/sbin/sensorctl"
	"$imgtool" pubkey -key "$ab_key" > "$work/update-key.pem"
	install -D -o 0 -g 0 -m 0644 "$work/update-key.pem" "$root/usr/lib/sensord/update-key.pem"
	install -d -o 0 -g 0 -m 0755 "$root/data"
	# An empty machine-id, not "uninitialized": systemd still makes this
	# card's ID at its first boot and commits it to /etc (on /data), but does
	# not count the boot as a first boot, whose "preset-all" over the
	# squashfs+overlay /etc was seen to hold PID 1 for 20 s under emulation,
	# past the 15 s hardware watchdog. Every unit the appliance needs is
	# enabled here, at build time, so the presets have nothing to add.
	: > "$root/etc/machine-id"
}

# ab_boot: the boot partition's side. cmdline.txt names slot A read-only
# (the initramfs overrides root= with the slot it picks) and reboots 10 s
# after a panic, so a root that never reaches systemd uses up its trial;
# the initrd gets the slot-choosing scripts as an early cpio archive in
# front of Debian's (the kernel unpacks them in order, as it does the CPU
# microcode archive), so the slow in-chroot initrd build is not repeated.
ab_boot() {
	local fw=$root/boot/firmware c ird
	c=$(cat "$fw/cmdline.txt")
	c=${c/root=LABEL=RASPIROOT/root=PARTUUID=${disk_id#0x}-02}
	c=${c/ rw / ro }
	case "$c" in *" ro "*) ;; *) echo "build: cmdline.txt has no ' rw ' to make ' ro ': $c" >&2; exit 1 ;; esac
	echo "$c panic=10" | tr -s ' ' > "$fw/cmdline.txt"
	ird=$work/initrd-ab
	install -D -m 0755 "$here/initramfs/sensord-slot" "$ird/scripts/local-top/sensord-slot"
	install -D -m 0755 "$here/initramfs/sensord-data" "$ird/scripts/local-bottom/sensord-data"
	install -D -m 0644 "$here/initramfs/sensord-state" "$ird/scripts/sensord-state"
	# The build this initramfs came from: sensord-slot tells the running
	# system, so a slot's own boot files can be told from another's.
	install -d "$ird/etc"
	echo "$version" > "$ird/etc/sensord-initramfs"
	# run_scripts sources ORDER: each script, then the variables it left.
	for d in local-top/sensord-slot local-bottom/sensord-data; do
		printf '/scripts/%s "$@"\n[ -e /conf/param.conf ] && . /conf/param.conf\n' "$d" > "$ird/scripts/${d%/*}/ORDER"
	done
	find "$ird" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	for f in "$fw"/initrd.img-*; do
		(cd "$ird" && find . | sort | cpio -o -H newc --reproducible -R 0:0 --quiet) > "$work/early.cpio"
		cat "$work/early.cpio" "$f" > "$f.new"
		mv "$f.new" "$f"
	done
}

# ab_uboot: Debian's U-Boot for the Pi (u-boot-rpi's rpi_arm64: one
# binary for the Pi 3, 3+, Zero 2 W, 4 and 400) onto the boot partition,
# and boot.scr, the slot chooser (image/uboot/README.md). The .deb comes
# from the image's own apt sources, fetched with an apt of the build's
# own (arm64 lists under $cache/uboot-apt): the cached base, whose
# rebuild takes 18 minutes, does not change.
ab_uboot() {
	local fw=$root/boot/firmware a=$cache/uboot-apt deb
	local -a o
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/deb"
	: > "$a/status"
	o=(-o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status" -o "Dir::Cache=$a/cache"
		-o "Dir::Etc::SourceList=$root/etc/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
		-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Acquire::Languages=none
		-o APT::Sandbox::User=root)
	apt-get "${o[@]}" -qq update
	rm -f "$a/deb"/*.deb
	(cd "$a/deb" && apt-get "${o[@]}" -qq download u-boot-rpi)
	deb=$(ls "$a/deb"/u-boot-rpi_*_arm64.deb)
	echo "build: U-Boot for the Pi: $(basename "$deb")"
	rm -rf "$work/u-boot-rpi"
	dpkg-deb -x "$deb" "$work/u-boot-rpi"
	install -o 0 -g 0 -m 0644 "$work/u-boot-rpi/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$fw/u-boot.bin"
	mkimage -A arm64 -O linux -T script -C none -n "sensord A/B chooser" \
		-d "$here/uboot/boot.cmd" "$fw/boot.scr" > /dev/null
	# The same two in the root, where sensorctl takes them from to move a
	# card whose firmware loads the kernel itself (update.Migration).
	install -d -o 0 -g 0 -m 0755 "$root/usr/lib/sensord/uboot"
	install -o 0 -g 0 -m 0644 "$fw/u-boot.bin" "$fw/boot.scr" "$root/usr/lib/sensord/uboot"
}

# ab_slotboot: the slot's kernel, initramfs (with the A/B scripts, from
# ab_boot) and device trees in the root tree, where a bundle carries them
# and sensorctl takes them from when it installs the slot; and the same
# in slot A's directory of the boot partition, with the sizes file
# boot.scr checks them against (update.WriteSlotBoot). The root's own
# /boot/initrd.img gets the A/B scripts too: mksquashfs stores identical
# files once, so the copies cost the slot and the bundle nothing.
ab_slotboot() {
	local fw=$root/boot/firmware sb=$root/usr/lib/sensord/boot src dst
	rm -rf "$sb"
	install -d -o 0 -g 0 -m 0755 "$sb" "$sb/dtbs" "$sb/dtbs/broadcom"
	install -o 0 -g 0 -m 0644 "$fw/vmlinuz-$kver" "$sb/vmlinuz"
	install -o 0 -g 0 -m 0644 "$fw/initrd.img-$kver" "$sb/initrd.img"
	install -o 0 -g 0 -m 0644 "$fw/initrd.img-$kver" "$root/boot/initrd.img-$kver"
	"$imgtool" dtbs | while read -r src dst; do
		install -o 0 -g 0 -m 0644 "$root/usr/lib/modules/$kver/dtb/broadcom/$src" "$sb/dtbs/broadcom/$dst"
	done
	# The firmware applies config.txt's overlays to the tree it gives
	# U-Boot, not to the one U-Boot loads from the slot: the Pi 5's I2C
	# overlay (build.sh checks it) goes into the slot's trees here.
	for f in "$sb"/dtbs/broadcom/bcm2712*.dtb; do
		fdtoverlay -i "$f" -o "$f.new" "$fw/overlays/sensord-rp1-i2c1.dtbo"
		mv "$f.new" "$f"
	done
	"$imgtool" slotboot -fat "$fw" -slot A "$sb"
	install -d -o 0 -g 0 -m 0755 "$fw/sensord"
	"$imgtool" state -version "$version" -release "$release" > "$root/boot/firmware/sensord/state"
}

# ab_config: the Pi's firmware loads U-Boot (config.txt kernel=u-boot.bin,
# no initramfs line), and U-Boot's boot.scr loads the kernel, initramfs
# and device tree from a slot's directory: the kernel and initrd at the
# FAT's root go (the FAT holds the firmware and two slots, about 90 MB
# each). The firmware still loads a device tree of its own from the
# FAT's root for U-Boot (and applies config.txt's overlays to it).
ab_config() {
	local fw=$root/boot/firmware
	sed -i -e "s/^kernel=vmlinuz-$kver\$/kernel=u-boot.bin/" \
		-e '/^# For details on the initramfs directive, see$/d' \
		-e '/^# https:\/\/www.raspberrypi.org\/forums\/viewtopic.php?f=63&t=10532$/d' \
		-e '/^initramfs /d' "$fw/config.txt"
	grep -qx 'kernel=u-boot.bin' "$fw/config.txt" && ! grep -q '^initramfs' "$fw/config.txt" ||
		{ echo "build: config.txt does not load U-Boot alone: $(grep -E '^(kernel|initramfs)' "$fw/config.txt")" >&2; exit 1; }
	rm "$fw/vmlinuz-$kver" "$fw/initrd.img-$kver"
}

# ab_root: the root slot (squashfs, -> $rootfs), the data partition (ext4,
# -> $datafs), the partition table ($work/table, layout.sh).
ab_root() {
	local data=$work/data
	rootfs=$work/root.squashfs
	# SOURCE_DATE_EPOCH fixes every timestamp in it (mksquashfs(1)). zstd,
	# not xz: every page the Pi (or qemu, emulating it) reads from the root
	# is decompressed, and zstd does that several times faster than xz, for a
	# root about 15 % larger; it also compresses in a fraction of xz's time.
	mksquashfs "$root" "$rootfs" -noappend -comp zstd -Xcompression-level 15 -quiet -no-progress > "$work/mksquashfs.log" 2>&1 ||
		{ cat "$work/mksquashfs.log" >&2; exit 1; }
	"$imgtool" layout-ab -root-image-bytes "$(stat -c %s "$rootfs")" -disk-id "$disk_id" -sfdisk "$work/table" > "$work/layout.sh"
	. "$work/layout.sh"
	mkdir -p "$data/update" "$data/overlay/etc/upper" "$data/overlay/var/upper" "$data/overlay/root/upper" \
		"$data/overlay/etc/work" "$data/overlay/var/work" "$data/overlay/root/work"
	chmod 0700 "$data/overlay/root/upper"
	find "$data" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	datafs=$work/data.ext4
	truncate -s "$DATA_BYTES" "$datafs"
	# -T default: 4 KiB blocks, not the 1 KiB of a "small" filesystem, whose
	# online growth at first boot failed (the card is never that small).
	E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -T default -L sensord-data -U "$(uuid_of data)" -m 0 \
		-E "hash_seed=$(uuid_of datahash),root_owner=0:0" -d "$data" "$datafs"
}

# ab_bundle: the root slot as a signed update bundle.
ab_bundle() {
	local kver
	kver=$(ls "$root/usr/lib/modules")
	[ "$(echo "$kver" | wc -l)" = 1 ] || { echo "build: want one kernel in the root, have: $kver" >&2; exit 1; }
	bundle=$out/$name.update
	"$imgtool" bundle -key "$ab_key" -version "$version" -release "$release" -kernel "$kver" -out "$bundle" "$rootfs"
}
