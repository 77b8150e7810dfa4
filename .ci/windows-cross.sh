#!/bin/sh
# Configures and builds lib/ for 64-bit Windows with MinGW-w64, warnings as
# errors, to keep the Windows code paths compiling. Nothing is run.
#   .ci/windows-cross.sh BUILDDIR
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILDDIR" >&2
  exit 2
fi
builddir=$1
srcdir=$(cd "$(dirname "$0")/.." && pwd)
cd "$srcdir"

options="-Dgst=disabled -Dtests=disabled -Dexamples=disabled -Dwerror=true"
if [ -f "$builddir/meson-private/coredata.dat" ]; then
  # shellcheck disable=SC2086
  meson setup --reconfigure --cross-file .ci/mingw-w64.txt "$builddir" $options
else
  # shellcheck disable=SC2086
  meson setup --cross-file .ci/mingw-w64.txt "$builddir" $options
fi
meson compile -C "$builddir"
