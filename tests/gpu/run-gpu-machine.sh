#!/usr/bin/env bash
# Runs the whole gpu suite, the recipes and every benchmark on the GPU
# machine, from the checkout's root, with .gpu/ (tests/gpu/bundle.sh -b build)
# and build/ carried over. Logs go to ${OUT:-gpu-results}/. Prints
# "N passed, N failed" (one count per program; gpu_recipes prints an ok/FAIL
# line for each recipe).
#   tests/gpu/run-gpu-machine.sh [tests|recipes|bench|all]
#     recipes: README's run-main.sh and the recipes in examples/ end to end
#              (tests/gpu/gpu_recipes, ~2 min; the Python ones with
#              .gpu/python3.11, which .gpu/env.sh sets as CUDALINK_PYTHON).
#              Its MP4s and every process's log go to
#              ${RECIPES_DIR:-/tmp/cudalink-recipes}, not to $OUT (a dozen
#              files); a failing check prints the end of the logs that
#              matter into $OUT/gpu_recipes.log.
set -u
what=${1:-all}
case $what in tests|recipes|bench|all) ;; *) echo "usage: $0 [tests|recipes|bench|all]" >&2; exit 64 ;; esac
out=${OUT:-gpu-results}
mkdir -p "$out"
. .gpu/env.sh
export GST_PLUGIN_PATH_1_0=$PWD/build/gst CUDALINK_TEST_PYDIR=$PWD/tests/gpu/py
nvrtc=$(ls /usr/local/cuda/lib64/libnvrtc.so.* 2>/dev/null | head -n 1)
[ -n "$nvrtc" ] && export GST_CUDA_NVRTC_LIBNAME=$nvrtc
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
passed=0 failed=0
run() { # name timeout cmd...
  local name=$1 t=$2; shift 2
  local t0=$SECONDS
  timeout "$t" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  if [ $rc = 0 ]; then passed=$((passed + 1)); echo "ok   $name ($((SECONDS - t0)) s)"
  else failed=$((failed + 1)); echo "FAIL $name (rc=$rc, $((SECONDS - t0)) s)"; fi
  grep -E "^ok|^FAIL|passed, |^  [^ ]" "$out/$name.log" | grep -v "^    " | tail -n 40
}
if [ "$what" = tests ] || [ "$what" = all ]; then
  run gpu_lib 300 build/tests/gpu/gpu_lib
  run gpu_sink 300 build/tests/gpu/gpu_sink "$PWD/build/tests/gpu/sink_reader"
  run gpu_src 400 build/tests/gpu/gpu_src "$PWD/build/tests/gpu/src_producer"
  run gpu_roundtrip 300 build/tests/gpu/gpu_roundtrip
  run gpu_import 300 build/tests/gpu/gpu_import
fi
if [ "$what" = recipes ] || [ "$what" = all ]; then
  run gpu_recipes 600 env CUDALINK_RECIPES_DIR="${RECIPES_DIR:-/tmp/cudalink-recipes}" \
    build/tests/gpu/gpu_recipes "$PWD" "$PWD/build"
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  timeout 60 build/tests/bench/bench_switch 100 > "$out/bench_switch.md" 2>&1
  timeout 150 build/tests/bench/bench_lib 300 > "$out/bench_lib.md" 2>&1
  if nvidia-cuda-mps-control -d 2>/dev/null; then
    sleep 1
    timeout 150 build/tests/bench/bench_lib 300 > "$out/bench_lib_mps.md" 2>&1
    timeout 250 build/tests/bench/bench_src "$PWD/build/tests/gpu/src_producer" 3 > "$out/bench_src_mps.md" 2>&1
    echo quit | nvidia-cuda-mps-control
    sleep 1
  fi
  timeout 150 build/tests/bench/bench_sink 1200 > "$out/bench_sink.md" 2>&1
  timeout 250 build/tests/bench/bench_src "$PWD/build/tests/gpu/src_producer" 3 > "$out/bench_src.md" 2>&1
  for f in "$out"/bench_*.md; do echo "== $f"; grep "^|" "$f"; done
fi
[ "$what" = bench ] || echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
