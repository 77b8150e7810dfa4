#!/usr/bin/env bash
# Rehearses tests/bench/run on a machine WITHOUT a GPU, against FAKES:
#   rehearse/fakecuda.c   a libcuda.so.1 whose device memory is host memory
#                         (memfd, so CUDA IPC handles open in another process)
#   rehearse/cupy/        a cupy with the calls tests/bench/py/cipd_peer.py makes
#   ../ci/fakegpu/python/ cudaupload, cudadownload, cudalinksink, cudalinksrc
#                         in Python (frames in system memory, through shm)
# and bench_peer with BENCH_PEER_ANY_MEMORY=1. It runs the matrix's real
# orchestration (processes, READY / go / DONE / quit, phases, timeouts,
# stamps, CSV, report, tarball) with the real shmsink / shmsrc, bench_floor,
# bench_peer and cipd_peer.py, and checks which cells came out: the floors,
# cudalink-copy, shm and python ok; cudalink-import n/a (the fake cudalinksrc
# has no io-mode) and cudaipc n/a (no 1.26 anchor here). No figure it prints
# is a GPU figure.
#
#   bash tests/bench/rehearse.sh [RESULTS]    (BUILDDIR, default build/)
# Needs: the built tree, gcc, python3 with numpy (matplotlib for the plots),
# gstreamer1.0-python3-plugin-loader and python3-gst-1.0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
builddir=${BUILDDIR:-build}
case $builddir in /*) ;; *) builddir=$root/$builddir ;; esac
[ -x "$builddir/tests/bench/bench_peer" ] || { echo "rehearse: build first ($builddir)" >&2; exit 2; }
python3 -c 'import numpy' 2>/dev/null || { echo "rehearse: python3 has no numpy" >&2; exit 2; }

tmp=$(mktemp -d /tmp/cudalink-bench-rehearse-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=${1:-$tmp/results}
mkdir -p "$tmp/lib" "$tmp/gst"
gcc -shared -fPIC -o "$tmp/lib/libcuda.so.1" "$here/rehearse/fakecuda.c"
ln -s "$root/tests/ci/fakegpu/python" "$tmp/gst/python"
cat > "$tmp/env122.sh" <<ENV
export LD_LIBRARY_PATH=$tmp/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export GST_REGISTRY_1_0=$tmp/registry.bin
export BENCH_PEER_ANY_MEMORY=1 PYTHONDONTWRITEBYTECODE=1
# the fake elements run in the python that gst-python was built for, whatever
# python3 (a pyenv one, say) runs this script
export PATH=/usr/bin:\$PATH
unset PYENV_VERSION
ENV
export BENCH_BUILD=$builddir BENCH_GST122_ENV=$tmp/env122.sh BENCH_PLUGIN_DIR=$tmp/gst
export BENCH_GST126_ENV=$tmp/no-anchor/env.sh
export PYTHONPATH=$here/rehearse${PYTHONPATH:+:$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1
export BENCH_SIZES=${BENCH_SIZES:-1920x1080:rgba8,512x512:float32}
export BENCH_UNTHROTTLED_S=${BENCH_UNTHROTTLED_S:-0.5} BENCH_LAT_FRAMES=${BENCH_LAT_FRAMES:-60}
export BENCH_CPU60_S=${BENCH_CPU60_S:-1}
unset OUT

rc=0
"$root/tests/bench/run" nomps "$out" || rc=$?
[ $rc = 0 ] || { echo "rehearse: tests/bench/run nomps: status $rc" >&2; exit 1; }
"$root/tests/bench/run" report -o "$out/report" "$out/bench-nomps.tar.gz"
python3 - "$out/report/measurements.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
want = {"floor-local": "ok", "floor-ipc-copy": "ok", "floor-ipc-read": "ok",
        "cudalink-copy": "ok", "shm": "ok", "python": "ok",
        "cudalink-import": "n/a", "cudaipc-copy": "n/a", "cudaipc-import": "n/a",
        "cudaipc-mmap": "n/a"}
bad = 0
for r in rows:
    got = r["status"]
    if got == "skipped: not in BENCH_ONLY":
        continue
    ok = got == "ok" if want[r["transport"]] == "ok" else got.startswith("n/a")
    if ok and got == "ok":
        # frames both ways and none torn (missed ones are the busy CPU's)
        ok = int(r["lat_frames"]) > 0 and int(r["unthr_frames"]) > 0 and \
            r["lat_torn"] == "0" and r["unthr_torn"] == "0"
    bad += not ok
    print("%-4s %-15s %sx%s %-7s %s" % ("ok" if ok else "BAD", r["transport"], r["width"],
                                        r["height"], r["format"], got[:110]))
print("rehearse: %d cells, %d not as expected" % (len(rows), bad))
sys.exit(1 if bad else 0)
PY
