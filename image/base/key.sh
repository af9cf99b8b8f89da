#!/bin/sh
# key.sh: the base tarball's cache key: a hash of everything that decides its
# contents (the package list, the kernel pin and the scripts that build it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cat "$here/packages.txt" "$here/mkbase.sh" "$here/customize.sh" "$here/kernel.pref" | sha256sum | cut -c1-16
