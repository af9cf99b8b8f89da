#!/bin/sh
# qemu-backports.sh DIR: qemu-system-aarch64 from bookworm-backports, which
# emulates the Raspberry Pi 4 (-M raspi4b, qemu 9.0 and later; Debian 12's
# own qemu 7.2 stops at raspi3b). The package is downloaded with apt-get
# (a private package list under DIR, this machine's Debian mirror) and
# unpacked into DIR, not installed: the host's qemu stays as it is. Prints
# the binary's path. make board-test uses it for BOARDS=raspi4b.
set -eu
dir=$(mkdir -p "$1" && cd "$1" && pwd)
bin=$dir/root/usr/bin/qemu-system-aarch64
if [ ! -x "$bin" ]; then
	mirror=${MIRROR:-$( { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
		sed -n 's/^deb[[:space:]]\+\([^[:space:]]\+\).*/\1/p' /etc/apt/sources.list 2>/dev/null; } | grep -E '/debian/?$' | head -n 1)}
	[ -n "$mirror" ] || { echo "qemu-backports: no Debian mirror in /etc/apt/sources*; set MIRROR" >&2; exit 1; }
	mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main" > "$dir/apt/sources.list"
	set -- -o Dir::Etc::SourceList="$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$dir/apt/lists" -o Dir::Cache="$dir/apt/cache" -o Debug::NoLocking=1
	apt-get "$@" -qq update
	rm -f "$dir"/qemu-system-arm_*.deb
	(cd "$dir" && apt-get "$@" -qq download qemu-system-arm/bookworm-backports) 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
	set -- "$dir"/qemu-system-arm_*.deb
	[ -f "$1" ] || { echo "qemu-backports: qemu-system-arm from bookworm-backports did not download" >&2; exit 1; }
	dpkg-deb -x "$1" "$dir/root"
fi
# A wrapper that keeps this qemu from loading the host qemu's modules
# (display, audio), which belong to another build.
mkdir -p "$dir/modules"
printf '#!/bin/sh\nQEMU_MODULE_DIR=%s exec %s "$@"\n' "$dir/modules" "$bin" > "$dir/qemu-system-aarch64"
chmod +x "$dir/qemu-system-aarch64"
"$dir/qemu-system-aarch64" -M help | grep -q '^raspi4b ' || { echo "qemu-backports: $bin has no raspi4b machine" >&2; exit 1; }
echo "$dir/qemu-system-aarch64"
