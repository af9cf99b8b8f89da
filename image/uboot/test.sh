#!/bin/bash
# image/uboot/test.sh IMAGE WORKDIR: proves the U-Boot slot chooser
# (image/uboot/boot.cmd) under qemu -M virt with Debian's U-Boot
# (u-boot-qemu, qemu_arm64) booting the image's own kernel and initramfs
# from a FAT laid out per slot (image/uboot/README.md). Each scenario puts
# a broken trial in slot B with 3 boots (the slot state written by the Go
# writer, imgtool state) and must see, on the console, every boot of the
# trial counted, then the rollback to slot A and slot A's kernel running
# with sensord.slot=A sensord.mode=rolled-back:
#
#   zeros    slot B's kernel is zeros of the real one's size (booti refuses it)
#   truncated  slot B's kernel cut to 90 % on the FAT, past the entry code
#            (a cut before it faults into U-Boot's handler, which resets):
#            without the length check of slot-b/sizes it starts and hangs
#   x86      a kernel for another architecture: Debian's x86_64 one from
#            make kernel-test's cache or the host (X86_KERNEL= names one)
#   panic    the real kernel with an initramfs whose /init exits: the kernel
#            panics and reboots after cmdline.txt's panic=
#
# SCENARIOS="zeros panic" picks some. Prints "N passed, M failed"; exits 1
# on a failure. Run it under the shared lock: flock /tmp/qemu.lock.
set -euo pipefail

img=${1:?usage: test.sh IMAGE WORKDIR}
work=${2:?usage: test.sh IMAGE WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
uboot=${UBOOT_BIN:-/usr/lib/u-boot/qemu_arm64/u-boot.bin}
qemu=${QEMU:-qemu-system-aarch64}
scenarios=${SCENARIOS:-zeros truncated x86 panic}
# TCG on a shared 2-core machine: U-Boot reads 90 MB from the FAT and the
# kernel reaches /init in 10-40 s; a panic adds panic=10. Per scenario.
timeout=${UBOOT_TEST_TIMEOUT:-900}
tries=3

export MTOOLS_SKIP_CHECK=1
for c in "$qemu" mkimage mkfs.vfat mcopy partx sfdisk cpio go; do
	command -v "$c" >/dev/null || { echo "uboot-test: $c not found (make image-deps)" >&2; exit 1; }
done
[ -r "$uboot" ] || { echo "uboot-test: $uboot not found (apt-get install u-boot-qemu)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/image"
t0=$(date +%s)

# The image's boot files: slot A's kernel and initramfs (the FAT has no
# kernel at its root; the Pi's firmware loads U-Boot).
off=$(($(partx -g -o START -n 1 "$img") * 512))
mcopy -n -i "$img@@$off" ::cmdline.txt "$work/cmdline.img.txt"
mcopy -n -o -i "$img@@$off" ::slot-a/vmlinuz ::slot-a/initrd.img "$work/image/"
kernel=$work/image/vmlinuz
initrd=$work/image/initrd.img
echo "uboot-test: image $img: slot-a/vmlinuz ($(stat -c %s "$kernel") bytes), slot-a/initrd.img ($(stat -c %s "$initrd") bytes)"

# The test's only allowance, as image/boottest's GuestCmdline: the virt
# board's console (ttyAMA0) in place of the Pi's, so the kernel's messages
# reach the log.
c=
for f in $(cat "$work/cmdline.img.txt"); do
	case $f in console=*) ;; *) c="$c $f" ;; esac
done
echo "${c# } console=ttyAMA0,115200" > "$work/cmdline.txt"
mkimage -A arm64 -O linux -T script -C none -n "sensord A/B chooser" -d "$here/boot.cmd" "$work/boot.scr" >/dev/null
(cd "$repo" && go build -o "$work/imgtool" ./image/imgtool)
(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -o "$work/testinit" ./image/uboot/testinit)

# An initramfs whose /init exits: the kernel panics.
mkdir -p "$work/panicrd/dev"
install -m 0755 "$work/testinit" "$work/panicrd/init"
mknod -m 0600 "$work/panicrd/dev/console" c 5 1
(cd "$work/panicrd" && find . | sort | cpio -o -H newc -R 0:0 --quiet) > "$work/panic.initrd"

# trial_files SCENARIO DIR: slot B's kernel and initramfs for SCENARIO,
# as a bundle would bring them (truncated: the real ones, cut on the FAT).
trial_files() {
	local k=$2/vmlinuz r=$2/initrd.img
	mkdir -p "$2"
	cp "$initrd" "$r"
	case $1 in
	zeros) head -c "$(stat -c %s "$kernel")" /dev/zero > "$k" ;;
	truncated) cp "$kernel" "$k" ;;
	x86)
		local x
		x=$(ls ${X86_KERNEL:-} /var/cache/sensord-kernel/root/usr/lib/modules/*/vmlinuz /boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
		if [ -n "$x" ]; then
			echo "uboot-test: x86: slot B's kernel is $x ($(file -b "$x" | cut -c1-60))"
			cp "$x" "$k"
		else
			echo "uboot-test: x86: no x86_64 kernel here (X86_KERNEL=, make kernel-test's cache): random bytes instead"
			head -c $((8 << 20)) /dev/urandom > "$k"
		fi
		;;
	panic) cp "$kernel" "$k"; cp "$work/panic.initrd" "$r" ;;
	*) echo "uboot-test: unknown scenario $1" >&2; return 1 ;;
	esac
}

# disk SCENARIO FILE: a card whose first partition is the FAT laid out per
# slot by the Go writers (imgtool slotboot: update.WriteSlotBoot; imgtool
# state: update.SlotState), with slot B on trial for $tries boots.
disk() {
	local d=$2 s=$work/$1
	mkdir -p "$s/fat/sensord" "$s/a"
	cp "$kernel" "$s/a/vmlinuz"
	cp "$initrd" "$s/a/initrd.img"
	"$work/imgtool" slotboot -fat "$s/fat" -slot A "$s/a"
	trial_files "$1" "$s/b"
	"$work/imgtool" slotboot -fat "$s/fat" -slot B "$s/b"
	if [ "$1" = truncated ]; then
		# A copy torn on the card: 90 % of it, header and entry code and all.
		truncate -s $(($(stat -c %s "$kernel") * 9 / 10)) "$s/fat/slot-b/vmlinuz"
	fi
	"$work/imgtool" state -version slot-a -release 1 -trial B -tries "$tries" > "$s/fat/sensord/state"
	truncate -s 512M "$d"
	echo 'label: dos
start=8192, type=c, bootable' | sfdisk -q "$d"
	local poff=$((8192 * 512))
	mkfs.vfat -F 32 -n RASPIFIRM --offset 8192 "$d" $(((512 << 20) / 1024 - 4096)) >/dev/null
	mcopy -i "$d@@$poff" "$work/boot.scr" "$work/cmdline.txt" ::
	mcopy -s -i "$d@@$poff" "$s/fat/slot-a" "$s/fat/slot-b" "$s/fat/sensord" ::
	rm -rf "$s"
}

# wait_for LOG PATTERN DEADLINE: waits until the console log has a line
# matching PATTERN (grep -E) or the deadline (epoch seconds) passes.
wait_for() {
	while ! grep -qE "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$3" ] || return 1
		sleep 1
	done
}

passed=0 failed=0
check() { # check OK DESCRIPTION
	if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "PASS: $2"; else failed=$((failed + 1)); echo "FAIL: $2"; fi
}

for sc in $scenarios; do
	d=$work/$sc.img log=$work/$sc.console
	disk "$sc" "$d"
	: > "$log"
	start=$(date +%s)
	"$qemu" -M virt -cpu cortex-a72 -m 1024 -smp 1 -nodefaults -no-user-config -display none \
		-bios "$uboot" -serial "file:$log" -monitor none \
		-drive "if=none,file=$d,format=raw,id=card,cache=unsafe" -device virtio-blk-device,drive=card &
	qpid=$!
	deadline=$((start + timeout))
	ok=0
	for i in $(seq 1 "$tries"); do
		wait_for "$log" "sensord-boot: slot B on trial, boot $i of $tries" "$deadline" || ok=1
		check $ok "$sc: boot $i of $tries takes slot B on trial ($(($(date +%s) - start)) s)"
		[ $ok = 0 ] || break
	done
	if [ $ok = 0 ]; then
		wait_for "$log" "sensord-boot: trial of slot B used $tries of $tries boots: rolling back to slot A" "$deadline" || ok=1
		check $ok "$sc: after $tries boots the trial is used up and slot A boots ($(($(date +%s) - start)) s)"
	fi
	if [ $ok = 0 ]; then
		wait_for "$log" "Kernel command line: .*sensord\.slot=A sensord\.mode=rolled-back sensord\.failed=B" "$deadline" || ok=1
		check $ok "$sc: slot A's kernel runs, told it was a rollback from B ($(($(date +%s) - start)) s)"
	fi
	if [ $ok = 0 ]; then
		wait_for "$log" "Run /init as init process" "$deadline" || ok=1
		check $ok "$sc: slot A's initramfs starts ($(($(date +%s) - start)) s)"
	fi
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
	# The counter U-Boot wrote, as sensorctl reads it (update.ReadBoots).
	if [ $ok = 0 ]; then
		n=$(mcopy -n -i "$d@@$((8192 * 512))" ::sensord/boots "$work/boots" && "$work/imgtool" boots "$work/boots") || n="unreadable"
		[ "$n" = "$tries" ] || ok=1
		check $ok "$sc: Go reads the counter U-Boot wrote: $n boots ($(od -An -c "$work/boots" 2>/dev/null | tr -s ' '))"
	fi
	echo "uboot-test: $sc: console in $log; the chooser's lines:"
	grep -aE 'sensord-boot:|Bad Linux|not syncing|Rebooting in|sensord-testinit|Kernel command line' "$log" | sed 's/^/  /' | head -40
	rm -f "$d"
done

echo "uboot-test: $(($(date +%s) - t0)) s in all"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
