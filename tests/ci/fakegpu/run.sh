#!/usr/bin/env bash
# Runs the GPU machine's recipe test (tests/gpu/gpu_recipes: README's
# run-main.sh and the recipes, as processes, outputs decoded and counted) on
# a machine WITHOUT a GPU, against FAKES:
#   python/       cudalinksrc, cudalinksink, cudaupload, cudadownload,
#                 cudaconvert, cudascale written in Python (gst-python's
#                 plugin loader): frames go through shmsink/shmsrc in system
#                 memory; caps say memory:CUDAMemory where the real ones would
#   libcuda_stub.c  a libcuda.so.1 whose calls do nothing, so that the
#                 driver checks (cudalink_cuda_load, cudalink-check) pass
# What this proves: the harness and the scripts' orchestration (arguments,
# processes, Ctrl-C and EOS, waiting for a producer, logs, run-main's report,
# MP4s decoded, counts and sizes) and the CPU halves of the pipelines with
# cudalinksrc's caps. What it cannot: anything of the real elements or of
# CUDA (test_c_appsink, which maps GstCudaMemory, is left out). A pass here
# is not a GPU result. The Python recipes run with Debian's python3
# (CUDALINK_PYTHON), not the GPU bundle's Python 3.11.
#
#   bash tests/ci/fakegpu/run.sh [test-name ...]   (BUILDDIR, default build/)
# Needs: gstreamer1.0-python3-plugin-loader python3-gst-1.0 (installed if
# missing), the built tree, gcc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
builddir=${BUILDDIR:-build}
case $builddir in /*) ;; *) builddir=$root/$builddir ;; esac

pkgs="gstreamer1.0-python3-plugin-loader python3-gst-1.0"
missing=$(for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
[ -x "$builddir/tests/gpu/gpu_recipes" ] || { echo "fakegpu: build first ($builddir/tests/gpu/gpu_recipes)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/cudalink-fakegpu-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib" "$tmp/build/examples" "$tmp/build/gst" "$tmp/out"
gcc -shared -fPIC -o "$tmp/lib/libcuda.so.1" "$here/libcuda_stub.c"
# a build tree whose plugin folder holds the fakes (plugin-path.sh and
# run-main.sh add BUILD_DIR/gst), with the real programs
ln -s "$here/python" "$tmp/build/gst/python"
ln -s "$builddir/examples/cudalink-check" "$builddir/examples/cudalink-appsink" "$tmp/build/examples/"

export LD_LIBRARY_PATH=$tmp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GST_REGISTRY_1_0=$tmp/registry.bin   # never the user's registry: fakes live here
export GST_PLUGIN_PATH_1_0=$tmp/build/gst
unset GST_PLUGIN_PATH
export BUILD_DIR=$tmp/build FAKEGPU_DIR=$tmp CUDALINK_RECIPES_DIR=$tmp/out
# the Python recipes: Debian's python3, where python3-gi and the plugin
# loader's gst-python live (the GPU machine uses .gpu/python3.11 instead)
export CUDALINK_PYTHON=${CUDALINK_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1

if [ $# = 0 ]; then
  set -- test_run_main test_record_h264 test_record_h265 test_rtp test_srt \
    test_publish_file test_republish test_py_appsink test_py_appsrc
fi
rc=0
"$builddir/tests/gpu/gpu_recipes" "$root" "$tmp/build" "$@" || rc=$?
if [ $rc != 0 ] && [ -n "${FAKEGPU_KEEP:-}" ]; then
  cp -r "$tmp/out" "$FAKEGPU_KEEP" && echo "fakegpu: logs kept in $FAKEGPU_KEEP"
fi
exit $rc
