#!/bin/sh
# Runs the header fuzzer for SECONDS on a scratch copy of the seed corpus and
# fails on any crash, sanitizer report or leak.
#   tests/fuzz/run-fuzz.sh SECONDS BUILDDIR
# BUILDDIR was set up with CC=clang and -Dfuzz=enabled.
set -u

if [ $# -ne 2 ]; then
  echo "usage: $0 SECONDS BUILDDIR" >&2
  exit 2
fi
seconds=$1
builddir=$2
case $seconds in
  ''|*[!0-9]*) echo "run-fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
fuzzer=$builddir/tests/fuzz/fuzz_header
if [ ! -x "$fuzzer" ]; then
  echo "run-fuzz: $fuzzer not found; set up BUILDDIR with CC=clang meson setup ... -Dfuzz=enabled and build it" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus" "$work/artifacts"
cp "$here"/corpus/* "$work/corpus/"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS} \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS} \
  "$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
tail -n 25 "$work/log"
if [ "$rc" -ne 0 ] ||
   grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|deadly signal' "$work/log" ||
   [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "run-fuzz: FAILED (exit $rc); crashing inputs:" >&2
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "--- $f" >&2
    od -A d -t x1 "$f" | head -n 40 >&2
  done
  exit 1
fi
echo "run-fuzz: OK, ${execs:-?} executions in ${seconds} s, corpus $(ls "$work/corpus" | wc -l) inputs"
