#!/usr/bin/env bash
# The recipes in examples/ (docs/RECIPES.md) on a Debian 12 machine WITHOUT a
# GPU, what can be checked there:
#   1. every script parses (bash -n, python3's ast; shellcheck -S error where installed)
#   2. README's first command, bash examples/run-main.sh, installs, builds,
#      and stops with ONE line naming the missing driver, exit 2
#   3. the programs (cudalink-check, cudalink-appsink) and the Python
#      recipes build their pipelines and fail the same clean way: exit 2,
#      one line naming libcuda.so.1, no traceback
#   4. every shell recipe's pipeline builds (gst_parse_launchv, FATAL_ERRORS)
#      and runs on the CPU with stand-ins for the GPU parts, its outputs
#      checked (tests/ci/check_pipelines.py says how)
#   5. the GPU machine's recipe test (tests/gpu/gpu_recipes) runs the real
#      scripts as processes against FAKE CUDA elements and a fake libcuda
#      (tests/ci/fakegpu/run.sh): its harness and the scripts' orchestration,
#      not the GPU
# Prints "ok"/"FAIL" lines and "N passed, N failed"; exit 1 on a failure.
#   bash tests/ci/check-recipes.sh            (BUILDDIR, default build/)
# On a machine WITH a driver step 2 would run the real job: the script says
# so and skips the no-driver assertions.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
builddir=${BUILDDIR:-build}
case $builddir in /*) export BUILD_DIR=$builddir ;; *) export BUILD_DIR=$PWD/$builddir ;; esac
py=/usr/bin/python3        # Debian's, where python3-gi lives (not a pyenv/venv one)
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/    /' <<<"$2"; }

# what these checks need beyond .ci/install-deps.sh
pkgs="gstreamer1.0-plugins-ugly gstreamer1.0-x python3-gi gir1.2-gst-plugins-base-1.0 python3-numpy
  gstreamer1.0-python3-plugin-loader python3-gst-1.0"
missing=$(for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "check-recipes: installing" $missing
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

echo "=== 1. syntax"
for f in examples/*.sh tests/gpu/*.sh tests/ci/*.sh; do
  if out=$(bash -n "$f" 2>&1); then ok "bash -n $f"; else bad "bash -n $f" "$out"; fi
done
for f in examples/*.py tests/ci/*.py; do
  if out=$($py -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" 2>&1)
  then ok "python3 parses $f"; else bad "python3 parses $f" "$out"; fi
done
if command -v shellcheck >/dev/null; then
  if out=$(shellcheck -s bash -S error examples/*.sh tests/gpu/*.sh tests/ci/*.sh 2>&1); then
    ok "shellcheck -s bash -S error"
  else bad "shellcheck -s bash -S error" "$out"; fi
fi

echo "=== 2. bash examples/run-main.sh (README's first command)"
driver=1
"$builddir/examples/cudalink-check" >/dev/null 2>&1 || driver=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
BUILDDIR=$builddir bash examples/run-main.sh > "$log" 2>&1
rc=$?
last=$(tail -n 1 "$log")
if [ "$driver" = 1 ]; then
  echo "    (this machine has a CUDA driver: run-main.sh ran the job, rc $rc: $last)"
  if [ $rc = 0 ]; then ok "run-main.sh ran the job"; else bad "run-main.sh" "$(tail -n 5 "$log")"; fi
else
  if [ $rc = 2 ] && [[ $last == "run-main: "*"NVIDIA CUDA driver library not found (libcuda.so.1"* ]] &&
     [ "$(grep -c "libcuda.so.1" "$log")" = 1 ] && [ -x "$builddir/examples/cudalink-appsink" ]; then
    ok "run-main.sh builds, then one driver line, exit 2"
  else
    bad "run-main.sh: want exit 2 and one last line naming libcuda.so.1 (got rc $rc)" "$(tail -n 5 "$log")"
  fi
fi

echo "=== 3. programs and Python recipes without a driver"
# clean_fail NAME CMD...: exit 2, one line of output, naming libcuda.so.1, no traceback
clean_fail() {
  local name=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$driver" = 1 ]; then echo "    (skipped $name: this machine has a driver)"; return; fi
  if [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ $out == *libcuda.so.1* ]] &&
     [[ $out != *Traceback* ]]; then
    ok "$name: exit 2, one line: ${out:0:110}..."
  else
    bad "$name: want exit 2 and one line naming libcuda.so.1 (got rc $rc)" "$out"
  fi
}
export GST_PLUGIN_PATH_1_0=$BUILD_DIR/gst
clean_fail "cudalink-check" "$builddir/examples/cudalink-check"
clean_fail "cudalink-appsink NAME" "$builddir/examples/cudalink-appsink" cltest-none
clean_fail "appsink-numpy.py NAME" $py examples/appsink-numpy.py cltest-none
clean_fail "appsink-numpy.py NAME --td --frames 10" $py examples/appsink-numpy.py cltest-none --td --frames 10
clean_fail "appsrc-numpy.py NAME" $py examples/appsrc-numpy.py cltest-none
clean_fail "appsrc-numpy.py NAME --td --size 640x360" $py examples/appsrc-numpy.py cltest-none --td --size 640x360
# --torch: PyTorch is not on Debian; without it the message says so, with it the driver's
out=$($py examples/appsrc-numpy.py cltest-none --torch 2>&1); rc=$?
if [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ $out != *Traceback* ]]; then
  ok "appsrc-numpy.py NAME --torch: exit 2, one line: ${out:0:90}..."
else
  bad "appsrc-numpy.py --torch: want exit 2 and one line (got rc $rc)" "$out"
fi

echo "=== 4. the recipes' pipelines: parse, and rehearse on the CPU"
out=$($py tests/ci/check_pipelines.py parse rehearse 2>&1); rc=$?
grep -E "^(ok|FAIL) " <<<"$out"
p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out")
f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out")
passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
if [ -z "$p" ] || { [ $rc != 0 ] && [ "${f:-0}" = 0 ]; }; then
  bad "check_pipelines.py ended without its summary (rc $rc)" "$(tail -n 15 <<<"$out")"
fi

echo "=== 5. tests/gpu/gpu_recipes against fakes (tests/ci/fakegpu: no GPU result)"
out=$(BUILDDIR=$builddir bash tests/ci/fakegpu/run.sh 2>&1); rc=$?
grep -E "^(ok|FAIL) |^  [^ ]" <<<"$out" | sed 's/^\(ok  \|FAIL\) /&fakegpu: /'
p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out")
f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out")
passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
if [ -z "$p" ] || { [ $rc != 0 ] && [ "${f:-0}" = 0 ]; }; then
  bad "fakegpu/run.sh ended without its summary (rc $rc)" "$(tail -n 15 <<<"$out")"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
