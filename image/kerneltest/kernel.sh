#!/bin/sh
# kernel.sh DIR [ARCH]: the kernel the kernel test boots, from Debian's
# packages: linux-image-ARCH (default amd64) from trixie-backports (the
# suite the image's own kernel comes from; bookworm's 6.1 is built without
# CONFIG_GPIO_SIM). The package is downloaded with apt-get (a private
# package list under DIR, this machine's Debian mirror) and unpacked into
# DIR/root, never installed. For an ARCH other than this machine's, the
# guest's shell comes from the same list: busybox-static:ARCH from this
# machine's own suite, unpacked into DIR/busybox. Prints the kernel version
# (the modules directory's name).
set -eu
dir=$(mkdir -p "$1" && cd "$1" && pwd)
arch=${2:-amd64}
suite=${KERNEL_SUITE:-trixie-backports}
foreign=""
[ "$arch" = "$(dpkg --print-architecture)" ] || foreign=1
# kernel DIR: the kernel image of an unpacked package: /boot/vmlinuz-V, or
# /usr/lib/modules/V/vmlinuz where the package ships it beside the modules.
kernel() { ls "$1"/boot/vmlinuz-* "$1"/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n 1; }
# apt_setup: the private package list (only once, on the first download).
apt_setup() {
	[ -z "${apt_ready:-}" ] || return 0
	mirror=${MIRROR:-$( { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
		sed -n 's/^deb[[:space:]]\+\([^[:space:]]\+\).*/\1/p' /etc/apt/sources.list 2>/dev/null; } | grep -E '/debian/?$' | head -n 1)}
	[ -n "$mirror" ] || { echo "kernel: no Debian mirror in /etc/apt/sources*; set MIRROR" >&2; exit 1; }
	mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/deb"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$dir/apt/sources.list"
	if [ -n "$foreign" ]; then
		# busybox-static from this machine's own suite, as the amd64
		# guest's /bin/busybox is.
		host_suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $host_suite main" >> "$dir/apt/sources.list"
	fi
	set -- -o Dir::Etc::SourceList="$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$dir/apt/lists" -o Dir::Cache="$dir/apt/cache" -o Debug::NoLocking=1 \
		-o APT::Architecture="$arch" -o APT::Architectures="$arch"
	apt_opts="$*"
	apt-get "$@" -qq update
	apt_ready=1
}
if [ -z "$(kernel "$dir/root")" ]; then
	apt_setup
	# shellcheck disable=SC2086 # apt_opts holds separate options without spaces
	set -- $apt_opts
	# linux-image-ARCH is the meta package; its one dependency is the
	# versioned image that holds the kernel and its modules.
	image=$(apt-get "$@" -qq download --print-uris "linux-image-$arch/$suite" >/dev/null 2>&1; \
		apt-cache "$@" depends "linux-image-$arch/$suite" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)
	[ -n "$image" ] || { echo "kernel: linux-image-$arch in $suite names no kernel package" >&2; exit 1; }
	# The image package may be split: its dependencies named after the same
	# kernel (linux-binary-V, linux-modules-V, linux-base-V) hold the
	# kernel and the modules.
	kver=${image#linux-image-}
	pkgs="$image $(apt-cache "$@" depends "$image/$suite" 2>/dev/null | sed -n 's/^ *Depends: \(linux-[a-z]*-'"$(printf %s "$kver" | sed 's/[.]/\\&/g')"'\)$/\1/p' | sort -u | tr '\n' ' ')"
	rm -f "$dir"/deb/linux-*.deb
	for p in $pkgs; do
		(cd "$dir/deb" && apt-get "$@" -qq download "$p/$suite") 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
	done
	rm -rf "$dir/root.tmp"
	for p in $pkgs; do
		set -- "$dir"/deb/"$p"_*.deb
		[ -f "$1" ] || { echo "kernel: $p from $suite did not download" >&2; exit 1; }
		dpkg-deb -x "$1" "$dir/root.tmp"
	done
	rm -rf "$dir/root" && mv "$dir/root.tmp" "$dir/root"
fi
if [ -n "$foreign" ] && [ ! -x "$dir/busybox/bin/busybox" ]; then
	apt_setup
	# shellcheck disable=SC2086
	set -- $apt_opts
	rm -f "$dir"/deb/busybox-static_*.deb
	(cd "$dir/deb" && apt-get "$@" -qq download "busybox-static/$host_suite") 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
	set -- "$dir"/deb/busybox-static_*.deb
	[ -f "$1" ] || { echo "kernel: busybox-static:$arch from $host_suite did not download" >&2; exit 1; }
	rm -rf "$dir/busybox.tmp" && dpkg-deb -x "$1" "$dir/busybox.tmp"
	rm -rf "$dir/busybox" && mv "$dir/busybox.tmp" "$dir/busybox"
fi
config=$(ls "$dir"/root/boot/config-* "$dir"/root/usr/lib/modules/*/config 2>/dev/null | head -n 1)
grep -q '^CONFIG_GPIO_SIM=[ym]' "$config" || { echo "kernel: $config has no CONFIG_GPIO_SIM; the test needs gpio-sim" >&2; exit 1; }
basename "$(ls -d "$dir"/root/lib/modules/* "$dir"/root/usr/lib/modules/* 2>/dev/null | head -n 1)"
