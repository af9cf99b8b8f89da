#!/bin/sh
# binfmt.sh: let this amd64 machine run arm64 binaries (ROOT-ONLY).
# mmdebstrap runs the arm64 maintainer scripts in the new root filesystem, and
# build.sh runs a few arm64 commands in it; the kernel hands those binaries to
# qemu-aarch64-static through binfmt_misc. Neither the mount nor the
# registration survives a reboot, so every build calls this; it is idempotent.
set -eu
d=/proc/sys/fs/binfmt_misc
if ! mountpoint -q "$d"; then
	mount -t binfmt_misc binfmt_misc "$d"
fi
if [ ! -e "$d/qemu-aarch64" ]; then
	if command -v update-binfmts >/dev/null && update-binfmts --enable qemu-aarch64 2>/dev/null; then
		:
	else
		# systemd-binfmt's format (":name:type:offset:magic:mask:interp:flags"),
		# as qemu-user-static ships it.
		sed -n 's/^\(:qemu-aarch64:.*\)/\1/p' /usr/lib/binfmt.d/qemu-aarch64.conf > "$d/register"
	fi
fi
grep -q '^enabled' "$d/qemu-aarch64" || { echo "binfmt: qemu-aarch64 not enabled" >&2; exit 1; }
grep -q '^flags:.*F' "$d/qemu-aarch64" || echo "binfmt: warning: qemu-aarch64 lacks the F flag; chroots need the interpreter inside" >&2
echo "binfmt: qemu-aarch64 $(sed -n 's/^interpreter //p' "$d/qemu-aarch64")"
