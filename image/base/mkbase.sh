#!/bin/sh
# mkbase.sh OUT.tar DEBCACHE: build the appliance's base root filesystem
# (Debian trixie arm64) as a tarball. ROOT-ONLY: mmdebstrap --mode=root
# chroots into the new tree and runs the arm64 maintainer scripts under
# qemu-user through binfmt_misc (image/binfmt.sh registers it).
#
# This is the slow step (~20 min of emulated dpkg on 2 cores), so
# image/build.sh runs it only when OUT.tar is missing; OUT's name carries a
# hash of this script and packages.txt, so editing either rebuilds it.
# Everything appliance-specific (our binary, units, settings) is added later
# by build.sh on an unpacked copy, which takes seconds.
#
# The kernel comes from trixie-backports (kernel.pref pins linux-base and the
# linux-*-arm64 packages there); the sources stay in the image, so apt
# upgrades on the card follow the same kernel line.
#
# Downloaded .debs are synced in from and out to DEBCACHE, so a rebuild of the
# base does not download again (mmdebstrap(1), "reuse packages").
set -eu

out=$1
debs=$2
here=$(cd "$(dirname "$0")" && pwd)

# The mirror is this machine's own Debian mirror (from its apt sources), so
# the build uses whatever mirror the host is configured for. MIRROR and
# SECURITY_MIRROR override.
host_uri() { # $1: pattern the URI must match; first match wins
	{ cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
	  sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' /etc/apt/sources.list 2>/dev/null
	} | grep -E "$1" | head -n 1
}
mirror=${MIRROR:-$(host_uri '/debian/?$')}
security=${SECURITY_MIRROR:-$(host_uri '/debian-security/?$')}
[ -n "$mirror" ] || { echo "mkbase: no Debian mirror in /etc/apt/sources*; set MIRROR" >&2; exit 1; }
[ -n "$security" ] || security=${mirror%/debian}/debian-security
comps="main non-free-firmware"

pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/,$//')

# A fixed epoch for the base: mmdebstrap clamps tar mtimes to it and dpkg and
# initramfs-tools honour it; build.sh later re-stamps every file with the
# commit's SOURCE_DATE_EPOCH anyway.
export SOURCE_DATE_EPOCH=1735689600
# The kernel's postinst would build an initrd, and a trigger at the end of the
# install builds it again: each takes ~8 min of emulated dracut-install.
# INITRD=No skips the first; customize.sh builds it once, at the end.
export INITRD=No

mkdir -p "$debs" "$(dirname "$out")"
# The .tar suffix tells mmdebstrap to write a tarball, not a directory.
tmp=${out%.tar}.tmp$$.tar
trap 'rm -f "$tmp"' EXIT

mmdebstrap \
	--mode=root --variant=apt --architectures=arm64 \
	--components="$(echo $comps | tr ' ' ',')" \
	--include="$pkgs" \
	--skip=essential/unlink --skip=download/empty \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
	--setup-hook="sync-in '$debs' /var/cache/apt/archives/" \
	--setup-hook="install -D -m 0644 '$here/kernel.pref' \"\$1\"/etc/apt/preferences.d/sensord-kernel.pref" \
	--essential-hook='mkdir -p "$1"/boot/firmware "$1"/etc/initramfs-tools/conf.d' \
	--essential-hook='echo RESUME=none > "$1"/etc/initramfs-tools/conf.d/resume' \
	--customize-hook="sync-out /var/cache/apt/archives '$debs'" \
	--customize-hook="'$here/customize.sh' \"\$1\"" \
	trixie "$tmp" \
	"deb $mirror trixie $comps" \
	"deb $mirror trixie-updates $comps" \
	"deb $mirror trixie-backports $comps" \
	"deb $security trixie-security $comps"
mv "$tmp" "$out"
trap - EXIT
