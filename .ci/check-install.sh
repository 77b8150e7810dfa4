#!/usr/bin/env bash
# What `meson install` gives a user, checked from the outside:
# 1. installs into a fresh DESTDIR and lists the tree;
# 2. the files are where users and GStreamer look: libcudalink.so.0 (the
#    SONAME) and its links, include/cudalink/cudalink.h, cudalink.pc, the
#    plugin in LIBDIR/gstreamer-1.0, cudalink-inspect in BINDIR;
# 3. exported symbols: the plugin exactly gst_plugin_cudalink_get_desc and
#    gst_plugin_cudalink_register; libcudalink.so exactly the functions that
#    the installed cudalink.h declares with CUDALINK_API;
# 4. every C program in examples/ builds from a copy outside the tree with
#    only `pkg-config --cflags --libs cudalink` (PKG_CONFIG_PATH and
#    PKG_CONFIG_SYSROOT_DIR point into the DESTDIR) and runs: without a
#    driver it must say so (exit 2); against the build's CPU mock driver
#    (tests/unit/libmockcuda.so, when the build has it) it must succeed;
# 5. gst-inspect-1.0 loads the installed plugin alone (GST_PLUGIN_PATH at
#    it, a fresh registry, GST_DEBUG=*:2) and shows both elements and the
#    device provider, with no warning from loading it (license, ...).
#
#   .ci/check-install.sh [BUILDDIR]     (default: build-install)
set -euo pipefail
cd "$(dirname "$0")/.."
srcdir=$PWD
builddir=${1:-build-install}

if [ -e "$builddir/build.ninja" ]; then
  meson setup --reconfigure "$builddir" -Dwerror=true >/dev/null
else
  meson setup "$builddir" -Dwerror=true >/dev/null
fi
meson compile -C "$builddir" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-check-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
destdir=$work/destdir
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
ok() {
  echo "ok: $*"
}

option() {
  meson introspect --buildoptions "$builddir" | python3 -c '
import json, sys
print({o["name"]: o["value"] for o in json.load(sys.stdin)}[sys.argv[1]])' "$1"
}
prefix=$(option prefix)
libdir=$(option libdir)
bindir=$(option bindir)
includedir=$(option includedir)
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
case $bindir in /*) ;; *) bindir=$prefix/$bindir ;; esac
case $includedir in /*) ;; *) includedir=$prefix/$includedir ;; esac
plugindir=$libdir/gstreamer-1.0

echo "=== meson install --destdir $destdir (prefix $prefix)"
if ! meson install -C "$builddir" --destdir "$destdir" >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  exit 1
fi
(cd "$destdir" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort) | while read -r f; do
  if [ -L "$destdir$f" ]; then echo "  $f -> $(readlink "$destdir$f")"; else echo "  $f"; fi
done

echo "=== installed files"
lib=$destdir$libdir/libcudalink.so
plugin=$destdir$plugindir/libgstcudalink.so
header=$destdir$includedir/cudalink/cudalink.h
pcfile=$destdir$libdir/pkgconfig/cudalink.pc
for f in "$lib" "$lib.0" "$header" "$pcfile" "$plugin" "$destdir$bindir/cudalink-inspect"; do
  if [ -e "$f" ]; then ok "${f#"$destdir"}"; else fail "${f#"$destdir"} is not installed"; fi
done
soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p') || true
if [ "$soname" = libcudalink.so.0 ] && [ -L "$lib" ] && [ -L "$lib.0" ]; then
  ok "SONAME $soname; libcudalink.so -> $(readlink "$lib"), .so.0 -> $(readlink "$lib.0")"
else
  fail "SONAME is '$soname' (want libcudalink.so.0 behind two links)"
fi
if [ -e "$destdir$includedir/cudalink.h" ] || [ -e "$destdir$libdir/libcudalink.a" ]; then
  fail "the old layout is installed too (include/cudalink.h or libcudalink.a)"
fi
needed=$(readelf -d "$plugin" 2>/dev/null) || true
if grep -q 'NEEDED.*libcudalink' <<<"$needed"; then
  fail "the plugin links libcudalink.so (it must carry its own, static, copy)"
else
  ok "the plugin carries its own copy of the library (no NEEDED libcudalink)"
fi

echo "=== exported symbols"
exports() {
  { nm -D --defined-only "$1" 2>/dev/null || true; } | awk '{ print $3 }' | sort
}
exports "$plugin" >"$work/plugin.syms"
printf '%s\n' gst_plugin_cudalink_get_desc gst_plugin_cudalink_register >"$work/plugin.want"
if cmp -s "$work/plugin.syms" "$work/plugin.want"; then
  ok "plugin exports exactly: $(tr '\n' ' ' <"$work/plugin.syms")"
else
  fail "plugin exports $(wc -l <"$work/plugin.syms") symbols:"
  diff "$work/plugin.want" "$work/plugin.syms" | sed 's/^/  /' || true
fi
# the functions the installed header declares: CUDALINK_API TYPE NAME(
{ grep -E '^CUDALINK_API ' "$header" 2>/dev/null || true; } |
  sed -E 's/\(.*//; s/.*[ *]([A-Za-z_][A-Za-z0-9_]*)$/\1/' | sort -u >"$work/lib.want"
exports "$lib" >"$work/lib.syms"
if [ ! -e "$lib" ]; then
  fail "no libcudalink.so to look at"
elif [ -s "$work/lib.want" ] && cmp -s "$work/lib.syms" "$work/lib.want"; then
  ok "libcudalink.so exports exactly the $(wc -l <"$work/lib.want") functions cudalink.h declares"
else
  fail "libcudalink.so's exports differ from cudalink.h's CUDALINK_API declarations" \
    "(< declared only, > exported only):"
  diff "$work/lib.want" "$work/lib.syms" | sed 's/^/  /' || true
fi
if grep -qv '^cudalink_' "$work/lib.syms"; then
  fail "libcudalink.so exports names outside cudalink_*:" \
    "$(grep -v '^cudalink_' "$work/lib.syms" | tr '\n' ' ')"
fi

echo "=== examples built outside the tree with pkg-config"
export PKG_CONFIG_PATH=$destdir$libdir/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$destdir
pc_flags=$(pkg-config --cflags --libs cudalink) || fail "pkg-config cannot read cudalink.pc"
echo "  pkg-config --cflags --libs cudalink: $pc_flags"
mock=$srcdir/$builddir/tests/unit/libmockcuda.so
case $builddir in /*) mock=$builddir/tests/unit/libmockcuda.so ;; esac
mkdir -p "$work/examples"
# the GStreamer examples (cudalink-appsink) use the system's GStreamer, not
# the package: their flags come from the system's pkg-config
gst_flags="$(env -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_PATH pkg-config --cflags --libs \
  gstreamer-1.0 gstreamer-video-1.0 gstreamer-app-1.0 gstreamer-cuda-1.0) \
  -I${CUDA_INC:-/usr/local/cuda/include}"
for src in examples/*.c; do
  name=$(basename "$src" .c)
  cp "$src" "$work/examples/"
  flags=$pc_flags
  uses="\$(pkg-config --cflags --libs cudalink)"
  if grep -q '#include <gst/' "$src"; then
    flags=$gst_flags
    uses="\$(pkg-config --cflags --libs gstreamer-1.0 ... gstreamer-cuda-1.0)"
  fi
  # shellcheck disable=SC2086
  if (cd "$work/examples" && ${CC:-cc} -Wall -Wextra -Werror -o "$name" "$name.c" $flags) \
    >"$work/$name.log" 2>&1; then
    ok "$name builds: ${CC:-cc} -Wall -Wextra -Werror $name.c $uses"
  else
    fail "$name does not build against the installed package:"
    sed 's/^/  /' "$work/$name.log"
    continue
  fi
  grep -q '#include <cudalink/cudalink.h>' "$src" || continue
  lib_seen=$(LD_LIBRARY_PATH=$destdir$libdir ldd "$work/examples/$name" | awk '/libcudalink/ { print $3 }')
  [ "$lib_seen" = "$destdir$libdir/libcudalink.so.0" ] ||
    fail "$name loads libcudalink from '$lib_seen', not from the DESTDIR's libcudalink.so.0"
  [ "$name" = cudalink-demo ] || continue
  rc=0
  LD_LIBRARY_PATH=$destdir$libdir CUDALINK_CUDA_LIBRARY=/nonexistent/libcuda.so.1 \
    timeout 30 "$work/examples/$name" >"$work/$name.out" 2>&1 || rc=$?
  if [ $rc -eq 2 ] && grep -q 'driver library not found' "$work/$name.out"; then
    ok "$name without a driver: exit 2, \"$(head -n 1 "$work/$name.out" | cut -c 1-90)...\""
  else
    fail "$name without a driver: exit $rc"
    sed 's/^/  /' "$work/$name.out"
  fi
  if [ -e "$mock" ]; then
    rc=0
    LD_LIBRARY_PATH=$destdir$libdir CUDALINK_CUDA_LIBRARY=$mock \
      timeout 60 "$work/examples/$name" >"$work/$name.out" 2>&1 || rc=$?
    if [ $rc -eq 0 ]; then
      ok "$name on the CPU mock driver (producer and consumer processes, 5 s):"
    else
      fail "$name on the CPU mock driver: exit $rc"
    fi
    sed 's/^/  /' "$work/$name.out"
  fi
done
rc=0
LD_LIBRARY_PATH=$destdir$libdir "$destdir$bindir/cudalink-inspect" --version \
  >"$work/inspect.out" 2>&1 || rc=$?
if [ $rc -eq 0 ]; then
  ok "cudalink-inspect --version: $(cat "$work/inspect.out")"
else
  fail "installed cudalink-inspect --version: exit $rc: $(cat "$work/inspect.out")"
fi

echo "=== gst-inspect-1.0 with GST_PLUGIN_PATH=${plugindir#"$destdir"} in the DESTDIR"
gst_env=(env GST_PLUGIN_PATH_1_0="$destdir$plugindir" GST_PLUGIN_PATH="$destdir$plugindir"
  GST_PLUGIN_SYSTEM_PATH_1_0= GST_PLUGIN_SYSTEM_PATH= GST_REGISTRY_1_0="$work/registry.bin"
  GST_DEBUG='*:2' GST_DEBUG_NO_COLOR=1)
rc=0
"${gst_env[@]}" gst-inspect-1.0 cudalink >"$work/inspect-plugin.out" 2>"$work/inspect-plugin.err" || rc=$?
sed 's/^/  /' "$work/inspect-plugin.out"
if [ $rc -ne 0 ]; then
  fail "gst-inspect-1.0 cudalink: exit $rc"
  sed 's/^/  /' "$work/inspect-plugin.err"
fi
for feature in cudalinksink cudalinksrc cudalinkdeviceprovider; do
  grep -q "^  $feature: " "$work/inspect-plugin.out" || fail "gst-inspect-1.0 lists no $feature"
done
grep -q "Filename *$destdir$plugindir/libgstcudalink.so" "$work/inspect-plugin.out" ||
  fail "gst-inspect-1.0 did not load the installed plugin"
# the registry holds our plugin alone: any warning is about it
if grep -qE 'WARN|ERROR' "$work/inspect-plugin.err"; then
  fail "warnings while scanning the plugin:"
  grep -E 'WARN|ERROR' "$work/inspect-plugin.err" | sed 's/^/  /'
else
  ok "no warning at GST_DEBUG=*:2 while the registry scanned the plugin" \
    "($(grep -m 1 'License' "$work/inspect-plugin.out" | sed 's/^ *//; s/  */ /g'))"
fi
for element in cudalinksink cudalinksrc; do
  if "${gst_env[@]}" gst-inspect-1.0 "$element" >"$work/$element.out" 2>&1; then
    ok "gst-inspect-1.0 $element: $(grep -m 1 'Long-name' "$work/$element.out" | sed 's/^ *//; s/  */ /g')"
  else
    fail "gst-inspect-1.0 $element: $(tail -n 3 "$work/$element.out")"
  fi
done

echo "=== summary"
if [ $failures -eq 0 ]; then
  echo "check-install: all checks passed"
else
  echo "check-install: $failures check(s) failed"
  exit 1
fi
