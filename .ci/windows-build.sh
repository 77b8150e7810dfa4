#!/usr/bin/env bash
# Cross-compiles cudalink for 64-bit Windows with Debian's MinGW-w64 against
# the official GStreamer 1.28 Windows runtime, through the SDK in
# ../shared/win (its README.md): libcudalink (static, and cudalink.dll), the
# plugin gstcudalink.dll, cudalink-inspect.exe, the example cudalink-demo.exe
# and the Windows test programs (tests/win), warnings as errors, libgcc
# linked statically. Then packs BUILDDIR/cudalink-windows-x64.zip for
# TouchDesigner users (docs/WINDOWS.md). Runs nothing: .ci/windows-check.sh
# does, under Wine.
#   .ci/windows-build.sh [BUILDDIR]       (default build-win)
# Environment: CUDALINK_WIN_SDK, the SDK folder (default: ../shared/win
# next to the checkout).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
builddir=${1:-build-win}
sdk=${CUDALINK_WIN_SDK:-$repo/../shared/win}
if [ ! -x "$sdk/cross-file.sh" ]; then
  echo "windows-build: no SDK in $sdk (set CUDALINK_WIN_SDK)" >&2
  exit 2
fi
sdk=$(cd "$sdk" && pwd)

# A build folder of the old .ci/windows-cross.sh (lib/ only, another cross
# file): start afresh.
if [ -f "$builddir/meson-private/coredata.dat" ] && [ ! -f "$builddir/cross-mingw64.txt" ]; then
  echo "windows-build: $builddir was not configured by this script: starting afresh"
  rm -rf "$builddir"
fi
# Debian 12's meson 1.0.1 does not expand @DIRNAME@ in cross files: an
# absolute copy, kept in the build folder for later reconfigures.
mkdir -p "$builddir"
"$sdk/cross-file.sh" >"$builddir/cross-mingw64.txt.new"
if ! cmp -s "$builddir/cross-mingw64.txt.new" "$builddir/cross-mingw64.txt" 2>/dev/null; then
  mv "$builddir/cross-mingw64.txt.new" "$builddir/cross-mingw64.txt"
else
  rm -f "$builddir/cross-mingw64.txt.new"
fi
options="-Dwerror=true -Dgst=enabled -Dtests=enabled -Dexamples=enabled"
if [ -f "$builddir/meson-private/coredata.dat" ]; then
  # shellcheck disable=SC2086
  meson setup --reconfigure "$builddir" $options >/dev/null
else
  # shellcheck disable=SC2086
  meson setup --cross-file "$builddir/cross-mingw64.txt" "$builddir" $options
fi
meson compile -C "$builddir"

# What the binaries load: Windows and GStreamer/GLib DLLs only, never the
# MinGW runtime (libgcc_s_seh-1.dll, libwinpthread-1.dll: -static-libgcc).
bins="gst/gstcudalink.dll lib/cudalink.dll tools/cudalink-inspect.exe examples/cudalink-demo.exe"
for b in $bins tests/win/mockcuda.dll tests/win/ring_win.exe tests/win/make_segment.exe; do
  dlls=$(x86_64-w64-mingw32-objdump -p "$builddir/$b" | sed -n 's/^\tDLL Name: //p' | tr '\n' ' ')
  echo "windows-build: $b imports $dlls"
  case " $dlls" in
    *libgcc* | *libwinpthread* | *libstdc++*)
      echo "windows-build: $b needs a MinGW runtime DLL" >&2
      exit 1
      ;;
  esac
done

# The package: the plugin in a folder of its own (GST_PLUGIN_PATH), the
# tools and the library DLL, its header and linking aids, INSTALL.txt.
version=$(sed -n "s/^  version: '\(.*\)',$/\1/p" meson.build | head -n 1)
stage=$builddir/package/cudalink-windows-x64
rm -rf "$builddir/package"
mkdir -p "$stage/gstreamer-1.0" "$stage/bin" "$stage/include" "$stage/lib"
strip_to() { x86_64-w64-mingw32-strip --strip-debug -o "$2" "$1"; }
strip_to "$builddir/gst/gstcudalink.dll" "$stage/gstreamer-1.0/gstcudalink.dll"
strip_to "$builddir/tools/cudalink-inspect.exe" "$stage/bin/cudalink-inspect.exe"
strip_to "$builddir/examples/cudalink-demo.exe" "$stage/bin/cudalink-demo.exe"
strip_to "$builddir/lib/cudalink.dll" "$stage/bin/cudalink.dll"
cp lib/cudalink.h "$stage/include/"
cp "$builddir/lib/cudalink.def" "$stage/lib/"
cp "$builddir/lib/cudalink.dll.a" "$stage/lib/libcudalink.dll.a"
sed "s/@VERSION@/$version/g" docs/INSTALL-windows.txt | sed 's/$/\r/' >"$stage/INSTALL.txt"
zip=$(cd "$builddir" && pwd)/cudalink-windows-x64.zip
rm -f "$zip"
(cd "$builddir/package" && python3 -m zipfile -c "$zip" cudalink-windows-x64)
echo "windows-build: $zip"
python3 -m zipfile -l "$zip"
