#!/usr/bin/env bash
# "No worse than before": bench_src and bench_sink from another build of an
# earlier commit (its own plugin, producer and benchmark programs), in the
# same run and on the same GPU as tests/gpu/run-gpu-machine.sh bench.
# On the GPU machine, from the checkout's root, with .gpu/ carried:
#   tests/gpu/run-baseline-bench.sh BUILDDIR [LABEL]
# Tables go to ${OUT:-gpu-results}/bench_src_LABEL.md and bench_sink_LABEL.md.
set -u
base=$1
label=${2:-base}
out=${OUT:-gpu-results}
mkdir -p "$out"
. .gpu/env.sh
export GST_PLUGIN_PATH_1_0=$PWD/$base/gst CUDALINK_TEST_PYDIR=$PWD/tests/gpu/py
nvrtc=$(ls /usr/local/cuda/lib64/libnvrtc.so.* 2>/dev/null | head -n 1)
[ -n "$nvrtc" ] && export GST_CUDA_NVRTC_LIBNAME=$nvrtc
timeout 150 "$base/tests/bench/bench_sink" 1200 > "$out/bench_sink_$label.md" 2>&1
timeout 250 "$base/tests/bench/bench_src" "$PWD/$base/tests/gpu/src_producer" 3 \
  > "$out/bench_src_$label.md" 2>&1
for f in "$out/bench_sink_$label.md" "$out/bench_src_$label.md"; do
  echo "== $f"
  grep "^|" "$f"
done
