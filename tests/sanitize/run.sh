#!/usr/bin/env bash
# The unit and gst suites under AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer: a gcc build in BUILDDIR (default build-asan)
# with -Db_sanitize=address,undefined, each test through wrap.sh. Prints
# "N passed, N failed" and fails on any sanitizer report. Needs the packages
# of .ci/install-deps.sh (CI runs it after tests/run.sh).
#   bash tests/sanitize/run.sh [BUILDDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
builddir=${1:-build-asan}
# gcc: its libasan.so is what wrap.sh preloads into GStreamer's plugin scanner
export CC=gcc
opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
      -Dexamples=disabled -Dfuzz=disabled)
if [ -e "$builddir/build.ninja" ]; then
  meson setup --reconfigure "$builddir" "${opts[@]}" >/dev/null
else
  meson setup "$builddir" "${opts[@]}" >/dev/null
fi
meson compile -C "$builddir"
rc=0
# Timeouts x3: ASan, and the full unwinding on malloc (wrap.sh), are slow.
# One test at a time: test_ring_mock's test_slow_gpu checks that a spinning
# consumer gets over half a CPU, which fails (48%) next to the sink's
# kernel-on-cpu cases on a 2-core machine; serial costs ~10 s here.
meson test -C "$builddir" --suite unit --suite gst --print-errorlogs -t 3 \
  --num-processes 1 --wrap="$PWD/tests/sanitize/wrap.sh" --logbase testlog-sanitize || rc=$?
# meson names the log after the wrapper: testlog-sanitize-wrap.sh.json
python3 - "$builddir"/meson-logs/testlog-sanitize*.json <<'PY'
import json, sys
res = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = sum(r["result"] in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r["result"] == "SKIP" for r in res)
print(f"sanitizers: {ok} passed, {len(res) - ok - skip} failed, {skip} skipped")
PY
exit $rc
