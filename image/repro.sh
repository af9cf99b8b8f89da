#!/bin/bash
# repro.sh IMG_A IMG_B: compare two builds of the image (ROOT-ONLY: debugfs
# and mtools read the filesystems straight from the files, no mounts).
# Prints "identical", or which bytes differ and, file by file, which files
# differ in content or metadata in the boot and root filesystems.
#
#   make image && cp build/sensord-V-arm64.img /tmp/a.img && make image &&
#   image/repro.sh /tmp/a.img build/sensord-V-arm64.img
set -euo pipefail
a=$1 b=$2
if cmp -s "$a" "$b"; then
	echo "repro: identical: $(sha256sum < "$a" | cut -c1-64)"
	exit 0
fi
echo "repro: $a and $b differ in $(cmp -l "$a" "$b" | wc -l) bytes"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for x in a b; do
	img=${!x}
	mkdir -p "$work/$x/boot" "$work/$x/root"
	# Partition offsets from the MBR (sfdisk's dump, in sectors).
	mapfile -t starts < <(sfdisk -d "$img" | sed -n 's/.*start= *\([0-9]*\).*/\1/p')
	mapfile -t sizes < <(sfdisk -d "$img" | sed -n 's/.*size= *\([0-9]*\).*/\1/p')
	MTOOLS_SKIP_CHECK=1 mcopy -s -m -n -i "$img@@$((starts[0] * 512))" '::/*' "$work/$x/boot/"
	dd if="$img" of="$work/$x/root.ext4" bs=4M skip=$((starts[1] * 512)) count=$((sizes[1] * 512)) iflag=skip_bytes,count_bytes status=none
	debugfs -R "rdump / $work/$x/root" "$work/$x/root.ext4" > /dev/null 2>&1
	# Metadata of every inode, one line per path.
	# (debugfs rdump stamps the symlinks it makes with the time of the dump:
	# their targets are compared, not their times.)
	(cd "$work/$x/root" && find . \( -type l -printf '%p -> %l %U:%G\n' \) -o -printf '%p %m %U:%G %s %T@\n' | sort) > "$work/$x/meta"
	dumpe2fs -h "$work/$x/root.ext4" 2>/dev/null | grep -v -E '^(Filesystem created|Last (mount|write|checked))' > "$work/$x/super" || true
done
echo "repro: boot partition files that differ:"
diff -rq "$work/a/boot" "$work/b/boot" | sed 's/^/  /' || true
echo "repro: root files that differ in content:"
diff -rq --no-dereference "$work/a/root" "$work/b/root" | sed "s|$work/[ab]/root||g; s/^/  /" || true
echo "repro: root files that differ in metadata (mode, owner, size, mtime):"
diff "$work/a/meta" "$work/b/meta" | sed 's/^/  /' | head -n 40 || true
echo "repro: ext4 superblock differences:"
diff "$work/a/super" "$work/b/super" | sed 's/^/  /' || true
exit 1
