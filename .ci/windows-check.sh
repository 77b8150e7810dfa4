#!/usr/bin/env bash
# Runs the Windows build of .ci/windows-build.sh under Wine (64-bit), with the
# official GStreamer 1.28 Windows runtime (pinned and cached by the SDK's
# fetch-runtime.sh), and checks:
#   1. gst-inspect-1.0 lists cudalinksink and cudalinksrc with their properties;
#   2. without a CUDA driver both fail cleanly: an error that names nvcuda.dll,
#      a non-zero exit, no crash;
#   3. cudalinksrc meets every hostile segment of tests/gst/test_cudalinksrc.c,
#      written as a named file mapping (tests/win/make_segment.exe), and posts
#      the error the Linux suite expects;
#   4. libcudalink's producer and consumer move frames between Wine processes
#      through a named mapping on the CPU mock driver (mockcuda.dll), with a
#      re-initialisation, a clean shutdown, a killed producer (TerminateProcess)
#      and a refused second producer (tests/win/ring_win.exe); cudalink-inspect
#      and cudalink-demo run the same way;
#   4b. cudalinksink -> cudalinksrc between Wine processes on the mock driver
#      installed as nvcuda.dll (GStreamer 1.28's CUDA library loads it too):
#      every frame read is one written, whole and in order (copy), and
#      io-mode=import imports;
#   5. the zip (windows-build.sh) holds what INSTALL.txt says.
# docs/TESTING.md ("Windows") says what cannot run under Wine.
#   .ci/windows-check.sh [BUILDDIR]       (default build-win)
# Environment: CUDALINK_WIN_SDK (default: ../shared/win next to the checkout),
# CUDALINK_WIN_CACHE (the runtime cache; default: fetch-runtime.sh's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
builddir=$(cd "$repo" && cd "${1:-build-win}" && pwd)
sdk=${CUDALINK_WIN_SDK:-$repo/../shared/win}
sdk=$(cd "$sdk" && pwd)

command -v wine >/dev/null || { echo "windows-check: wine missing (apt-get install wine wine64)" >&2; exit 2; }
rt=$("$sdk/fetch-runtime.sh" ${CUDALINK_WIN_CACHE:+"$CUDALINK_WIN_CACHE"})
echo "windows-check: GStreamer runtime $rt"

# One prefix and one wineserver for every step (the SDK's wine-gst.sh runs one
# runtime tool per prefix and stops the wineserver after it; here programs of
# ours start the runtime's tools and must share named objects with them), and
# the environment wine-gst.sh would set. Wine's services are started here,
# detached from any pipe: started inside a pipeline they keep it open for ever.
export WINEPREFIX
WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-wine.XXXXXX")
export WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES=mscoree,mshtml=
unset DISPLAY WAYLAND_DISPLAY || true
work=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-wincheck.XXXXXX")
cleanup() {
  wineserver -k >/dev/null 2>&1 || true
  rm -rf "$WINEPREFIX" "$work"
}
trap cleanup EXIT
wineserver -p </dev/null >/dev/null 2>&1
wine wineboot --init </dev/null >/dev/null 2>&1 || true

winp() { printf 'Z:%s' "$1" | tr / '\\'; }
export WINEPATH GST_PLUGIN_SYSTEM_PATH_1_0 GST_PLUGIN_SCANNER_1_0 GST_REGISTRY_1_0 GST_PLUGIN_PATH_1_0
# the runtime's DLLs, and cudalink.dll, which cudalink-inspect.exe and the
# example link as users' programs do
WINEPATH="$(winp "$rt/bin");$(winp "$builddir/lib")"
GST_PLUGIN_SYSTEM_PATH_1_0=$(winp "$rt/lib/gstreamer-1.0")
GST_PLUGIN_SCANNER_1_0=$(winp "$rt/libexec/gstreamer-1.0/gst-plugin-scanner.exe")
GST_REGISTRY_1_0=$(winp "$WINEPREFIX/gst-registry-x86_64.bin")
GST_PLUGIN_PATH_1_0=$(winp "$builddir/gst")
unset GST_PLUGIN_PATH GST_PLUGIN_SYSTEM_PATH GST_REGISTRY GST_PLUGIN_SCANNER CUDALINK_CUDA_LIBRARY || true
launch=$(winp "$rt/bin/gst-launch-1.0.exe")

failures=0
fail() { echo "windows-check: FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "windows-check: ok: $*"; }

# wrun LOG PROGRAM [ARGS]: runs a Windows program, its output (\r removed)
# into LOG and onto stdout; returns its exit status.
wrun() {
  local log=$1 rc=0
  shift
  wine "$@" </dev/null >"$log.raw" 2>&1 || rc=$?
  tr -d '\r' <"$log.raw" >"$log"
  rm -f "$log.raw"
  sed 's/^/    /' "$log"
  return "$rc"
}

# clean LOG: no sign of a crash (Wine reports unhandled exceptions itself;
# an exit status says little: Wine passes on only the low byte of
# 0xC0000005)
clean() { ! grep -qE "Unhandled (exception|page fault)|wine: .*(exception|crash|Unhandled)|Backtrace:" "$1"; }

# has LOG TEXT...: every TEXT occurs in LOG
has() {
  local log=$1 t
  shift
  for t in "$@"; do
    grep -qF -- "$t" "$log" || return 1
  done
}

echo "=== 1. gst-inspect-1.0"
rc=0; wrun "$work/inspect" "$rt/bin/gst-inspect-1.0.exe" cudalink || rc=$?
if [ "$rc" = 0 ] && has "$work/inspect" "cudalinksink: CUDA Link Sink" "cudalinksrc: CUDA Link Source" \
    "gstcudalink.dll"; then pass "the plugin lists both elements"; else fail "gst-inspect-1.0 cudalink (exit $rc)"; fi
wine "$rt/bin/gst-inspect-1.0.exe" cudalinksrc </dev/null 2>&1 | tr -d '\r' >"$work/src-props" || true
wine "$rt/bin/gst-inspect-1.0.exe" cudalinksink </dev/null 2>&1 | tr -d '\r' >"$work/sink-props" || true
grep -E '^  [a-z-]+ +:' "$work/src-props" | sed 's/^/    src: /' | cut -c1-100
grep -E '^  [a-z-]+ +:' "$work/sink-props" | sed 's/^/    sink: /' | cut -c1-100
for p in ipc-name timeout channel-order video-direction poll-interval on-producer-loss; do
  grep -qE "^  $p +:" "$work/src-props" || fail "cudalinksrc has no property $p"
done
for p in ipc-name num-slots channel-order output-dtype cuda-device-id; do
  grep -qE "^  $p +:" "$work/sink-props" || fail "cudalinksink has no property $p"
done
pass "property names checked"

echo "=== 2. no CUDA driver: clean failures"
seg=cudalink-wincheck-$$
rc=0; wrun "$work/src-nodrv" "$builddir/tests/win/make_segment.exe" valid "$seg-valid" \
  "$launch" cudalinksrc ipc-name="$seg-valid" timeout=5000 '!' fakesink || rc=$?
if [ "$rc" != 0 ] && clean "$work/src-nodrv" && has "$work/src-nodrv" "The NVIDIA CUDA driver is not usable" \
    "ERR_NO_DRIVER" "nvcuda.dll"; then pass "cudalinksrc: driver error naming nvcuda.dll, exit $rc"
else fail "cudalinksrc without a driver (exit $rc)"; fi
rc=0; wrun "$work/sink-nodrv" "$rt/bin/gst-launch-1.0.exe" videotestsrc num-buffers=1 '!' \
  cudalinksink ipc-name="$seg-sink" || rc=$?
if [ "$rc" != 0 ] && clean "$work/sink-nodrv" && has "$work/sink-nodrv" "CUDA driver not available" \
    "ERR_NO_DRIVER" "nvcuda.dll"; then
  pass "cudalinksink: driver error naming nvcuda.dll, exit $rc"
else fail "cudalinksink without a driver (exit $rc)"; fi

echo "=== 3. hostile segments as named mappings (tests/gst/test_cudalinksrc.c's cases)"
# case | message part | debug part | detail
while IFS='|' read -r case msg dbg detail; do
  rc=0
  wrun "$work/h-$case" "$builddir/tests/win/make_segment.exe" "$case" "$seg-$case" \
    "$launch" cudalinksrc ipc-name="$seg-$case" timeout=200 '!' fakesink || rc=$?
  if [ "$rc" != 0 ] && clean "$work/h-$case" && has "$work/h-$case" "'$seg-$case'" "$msg" "$dbg" "$detail"; then
    pass "$case: $dbg"
  else
    fail "$case: wanted \"$msg\", $dbg, \"$detail\" (exit $rc)"
  fi
done <<'CASES'
garbage|bad header|ERR_BAD_MAGIC|magic
wrong-magic|bad header|ERR_BAD_MAGIC|0x44504943
num-slots-0|bad header|ERR_BAD_NUM_SLOTS|num_slots is 0
num-slots-11|bad header|ERR_BAD_NUM_SLOTS|num_slots is 11
truncated|bad header|ERR_BAD_DTYPE|bits_per_comp 0
size-overflow|bad header|ERR_BAD_DATA_SIZE|17179344896
data-size|bad header|ERR_BAD_DATA_SIZE|8193
bad-dtype|bad header|ERR_BAD_DTYPE|bits_per_comp 64
stale|stale|ERR_STALE|shutdown
CASES

echo "=== 4. frames between Wine processes (libcudalink on the mock driver)"
rc=0; wrun "$work/ring" "$builddir/tests/win/ring_win.exe" scenario "$seg-ring" || rc=$?
if [ "$rc" = 0 ] && has "$work/ring" "scenario: passed"; then pass "ring_win scenario"; else fail "ring_win scenario (exit $rc)"; fi

# the import back-channel: table, reader owners, a reader killed holding
rc=0; wrun "$work/holds" "$builddir/tests/win/holds_win.exe" "$seg-holds" || rc=$?
if [ "$rc" = 0 ] && has "$work/holds" "holds_win: passed"; then pass "holds_win (import back-channel)"; else fail "holds_win (exit $rc)"; fi

# cudalink-inspect NAME on a live producer of ours; listing is unsupported
(cd "$builddir/tests/win" && CUDALINK_CUDA_LIBRARY=mockcuda.dll wine ring_win.exe produce "$seg-insp" \
  --frames 150 --fps 60 </dev/null >"$work/insp-producer" 2>&1) &
producer=$!
sleep 1
rc=0; wrun "$work/insp" "$builddir/tools/cudalink-inspect.exe" "$seg-insp" || rc=$?
if [ "$rc" = 0 ] && has "$work/insp" "$seg-insp: live" "ours" "mapping" "QueryPerformanceCounter"; then
  pass "cudalink-inspect NAME: live, ours"; else fail "cudalink-inspect NAME (exit $rc)"; fi
wait "$producer" || fail "the producer for cudalink-inspect"
rc=0; wrun "$work/insp-list" "$builddir/tools/cudalink-inspect.exe" || rc=$?
if [ "$rc" = 5 ] && has "$work/insp-list" "not supported" "cudalink-inspect NAME"; then
  pass "cudalink-inspect without NAME: listing unsupported, exit 5"; else fail "cudalink-inspect listing (exit $rc)"; fi

# cudalink-demo (the library example) with the mock installed as nvcuda.dll
# next to it: the driver's default name, found on the DLL search path
mkdir -p "$work/demo"
cp "$builddir/examples/cudalink-demo.exe" "$work/demo/"
cp "$builddir/tests/win/mockcuda.dll" "$work/demo/nvcuda.dll"
rc=0; wrun "$work/demo.log" "$work/demo/cudalink-demo.exe" || rc=$?
if [ "$rc" = 0 ] && has "$work/demo.log" "producer: publishing" "consumer: "; then
  pass "cudalink-demo: producer and consumer processes on nvcuda.dll (the mock)"
else fail "cudalink-demo (exit $rc)"; fi

echo "=== 4b. the elements move frames, on the mock driver as nvcuda.dll"
# GStreamer 1.28's CUDA library and libcudalink both load the mock from the
# DLL search path: videotestsrc ! cudalinksink in one process, cudalinksrc in
# another. The copy path writes the frames it reads to a file, which must hold
# only frames the producer wrote (the producer tees its own to another), in
# order; the import path (the 1.24+ wrapped-memory code) must import (at
# least half the frames: a reader that fell behind copies; 58 of 58 here).
mkdir -p "$work/mockdrv"
cp "$builddir/tests/win/mockcuda.dll" "$work/mockdrv/nvcuda.dll"
mock_path="$(winp "$work/mockdrv");$WINEPATH"
frames_caps="video/x-raw,format=RGBA,width=128,height=32,framerate=30/1"
(WINEPATH=$mock_path wine "$rt/bin/gst-launch-1.0.exe" cudalinksrc ipc-name="$seg-el" timeout=20000 on-producer-loss=eos \
  '!' video/x-raw,format=RGBA '!' filesink location="$(winp "$work/el-read.raw" | tr '\\' /)" \
  </dev/null >"$work/el-src.log" 2>&1) &
consumer=$!
sleep 2
rc=0
WINEPATH=$mock_path wrun "$work/el-sink" "$rt/bin/gst-launch-1.0.exe" videotestsrc num-buffers=60 pattern=ball is-live=true \
  '!' "$frames_caps" '!' tee name=t '!' queue '!' cudalinksink ipc-name="$seg-el" \
  t. '!' queue '!' filesink location="$(winp "$work/el-written.raw" | tr '\\' /)" >/dev/null || rc=$?
crc=0; wait "$consumer" || crc=$?
tr -d '\r' <"$work/el-src.log" | sed 's/^/    /' | grep -v fixme | tail -n 3
verdict=$(python3 - "$work/el-written.raw" "$work/el-read.raw" <<'PY'
import sys
size = 128 * 32 * 4
def frames(path):
    try:
        data = open(path, "rb").read()
    except OSError:
        return []
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)]
written, read = frames(sys.argv[1]), frames(sys.argv[2])
index = {f: i for i, f in enumerate(written)}
at = [index.get(f, -1) for f in read]
ok = len(written) == 60 and len(read) >= 30 and -1 not in at and all(a < b for a, b in zip(at, at[1:]))
print("%s %d of %d frames read, %d not written, in order: %s"
      % ("ok" if ok else "bad", len(read), len(written), at.count(-1), all(a < b for a, b in zip(at, at[1:]))))
PY
)
echo "    $verdict"
if [ "$rc" = 0 ] && [ "$crc" = 0 ] && clean "$work/el-sink" && clean "$work/el-src.log" && [ "${verdict%% *}" = ok ]; then
  pass "cudalinksink -> cudalinksrc (copy) between Wine processes: $verdict"
else fail "cudalinksink -> cudalinksrc copy (sink exit $rc, src exit $crc): $verdict"; fi

(WINEPATH=$mock_path wine "$rt/bin/gst-launch-1.0.exe" -m cudalinksrc ipc-name="$seg-imp" timeout=20000 on-producer-loss=eos \
  io-mode=import stats-interval=100 '!' 'video/x-raw(memory:CUDAMemory)' '!' fakesink enable-last-sample=false \
  </dev/null >"$work/imp-src.log" 2>&1) &
consumer=$!
sleep 2
rc=0
WINEPATH=$mock_path wrun "$work/imp-sink" "$rt/bin/gst-launch-1.0.exe" videotestsrc num-buffers=60 is-live=true '!' "$frames_caps" \
  '!' cudalinksink ipc-name="$seg-imp" offer-import=true num-slots=4 >/dev/null || rc=$?
crc=0; wait "$consumer" || crc=$?
stats=$(tr -d '\r' <"$work/imp-src.log" | grep 'cudalinksrc-stats' | tail -n 1)
got=$(printf '%s' "$stats" | sed -n 's/.* frames=(guint64)\([0-9]*\).*/\1/p')
imported=$(printf '%s' "$stats" | sed -n 's/.*imported=(guint64)\([0-9]*\).*/\1/p')
echo "    io-mode=import: ${got:-?} frames, ${imported:-?} imported"
if [ "$rc" = 0 ] && [ "$crc" = 0 ] && clean "$work/imp-src.log" && [ "${got:-0}" -ge 30 ] \
    && [ $((${imported:-0} * 2)) -ge "$got" ]; then
  pass "cudalinksink -> cudalinksrc io-mode=import between Wine processes: $got frames, $imported imported"
else fail "io-mode=import (sink exit $rc, src exit $crc): ${got:-?} frames, ${imported:-?} imported"; fi

echo "=== 5. the package"
zip=$builddir/cudalink-windows-x64.zip
if [ -f "$zip" ]; then
  python3 -m zipfile -l "$zip" >"$work/zip-list"
  sed 's/^/    /' "$work/zip-list"
  for f in gstreamer-1.0/gstcudalink.dll bin/cudalink-inspect.exe bin/cudalink.dll include/cudalink.h \
      lib/cudalink.def INSTALL.txt; do
    grep -q "^cudalink-windows-x64/$f " "$work/zip-list" || fail "the zip lacks $f"
  done
  # the plugin from the zip loads in the runtime
  rm -rf "$work/unzip" && mkdir -p "$work/unzip" && python3 -m zipfile -e "$zip" "$work/unzip"
  rc=0
  GST_PLUGIN_PATH_1_0=$(winp "$(dirname "$(find "$work/unzip" -name gstcudalink.dll | head -n 1)")") \
    GST_REGISTRY_1_0=$(winp "$work/zip-registry.bin") \
    wrun "$work/zip-inspect" "$rt/bin/gst-inspect-1.0.exe" cudalinksink >/dev/null || rc=$?
  if [ "$rc" = 0 ] && has "$work/zip-inspect" "cudalinksink"; then pass "the zip's plugin loads"; else fail "the zip's plugin (exit $rc)"; fi
else
  fail "no $zip (run .ci/windows-build.sh first)"
fi

if [ "$failures" = 0 ]; then
  echo "windows-check: all passed"
else
  echo "windows-check: $failures failed"
  exit 1
fi
