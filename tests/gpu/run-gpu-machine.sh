#!/usr/bin/env bash
# Runs the whole gpu suite and every benchmark on the GPU machine, from the
# checkout's root, with .gpu/ (../shared/gpu/bundle -b build) and build/
# carried over. Logs go to ${OUT:-gpu-results}/. Prints "N passed, N failed".
#   tests/gpu/run-gpu-machine.sh [tests|bench|all]
set -u
what=${1:-all}
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
if [ "$what" != bench ]; then
  run gpu_lib 300 build/tests/gpu/gpu_lib
  run gpu_sink 300 build/tests/gpu/gpu_sink "$PWD/build/tests/gpu/sink_reader"
  run gpu_src 400 build/tests/gpu/gpu_src "$PWD/build/tests/gpu/src_producer"
  run gpu_roundtrip 300 build/tests/gpu/gpu_roundtrip
fi
if [ "$what" != tests ]; then
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
