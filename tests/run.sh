#!/usr/bin/env bash
# The test command (README.md): installs what it needs, builds with warnings
# as errors, runs every GPU-free suite (unit, gst, tools) and prints
# "N passed, N failed". The gpu suite runs on a GPU machine instead:
# see docs/TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
builddir=${BUILDDIR:-build-tests}
if [ -e "$builddir/build.ninja" ]; then
  meson setup --reconfigure "$builddir" -Dwerror=true >/dev/null
else
  meson setup "$builddir" -Dwerror=true
fi
meson compile -C "$builddir"
rc=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 || rc=$?
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, sys
res = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = sum(r["result"] in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r["result"] == "SKIP" for r in res)
print(f"{ok} passed, {len(res) - ok - skip} failed, {skip} skipped")
PY
exit $rc
