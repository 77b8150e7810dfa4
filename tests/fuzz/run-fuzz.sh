#!/bin/sh
# Runs one libFuzzer target for SECONDS on a scratch copy of its seed corpus
# and fails on any crash, hang, sanitizer report or leak.
#   tests/fuzz/run-fuzz.sh [TARGET] SECONDS BUILDDIR
# TARGET: fuzz_header (the default, seeds in corpus/) or fuzz_consumer
# (seeds in corpus-consumer/). BUILDDIR was set up with CC=clang and
# -Dfuzz=enabled. Extra libFuzzer options may follow in FUZZ_ARGS.
set -u

if [ $# -eq 2 ]; then
  target=fuzz_header
elif [ $# -eq 3 ]; then
  target=$1
  shift
else
  echo "usage: $0 [fuzz_header|fuzz_consumer] SECONDS BUILDDIR" >&2
  exit 2
fi
seconds=$1
builddir=$2
case $seconds in
  ''|*[!0-9]*) echo "run-fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
case $target in
  fuzz_header)
    seeds=$here/corpus
    # a hang is a bug: the parser never loops
    opts="-timeout=10"
    ;;
  fuzz_consumer)
    seeds=$here/corpus-consumer
    # Each input runs for up to ~60 ms of consumer calls (waits of at most
    # 10 ms, settle_ms at most 24 ms); 10 s means a hang. Programs are a few
    # hundred bytes at most.
    opts="-timeout=10 -max_len=1024"
    ;;
  *)
    echo "run-fuzz: unknown target '$target' (fuzz_header or fuzz_consumer)" >&2
    exit 2
    ;;
esac
fuzzer=$builddir/tests/fuzz/$target
if [ ! -x "$fuzzer" ]; then
  echo "run-fuzz: $fuzzer not found; set up BUILDDIR with CC=clang meson setup ... -Dfuzz=enabled and build it" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-fuzz.XXXXXX") || exit 2
pid=
# fuzz_consumer's segments and mock "device" buffers live in /dev/shm under
# names carrying its pid (and its live producer child's, which removes its
# own when it is told to stop): nothing is left there if it dies.
cleanup() {
  if [ -n "$pid" ]; then
    rm -f /dev/shm/cudalink-fuzz-c"$pid" /dev/shm/cudalink-fuzz-p"$pid" /dev/shm/mockcuda."$pid".*
    rmdir /dev/shm/cudalink-fuzz-c"$pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid"; fi; exit 1' INT TERM
mkdir "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"

# shellcheck disable=SC2086 # opts and FUZZ_ARGS are lists of options
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS} \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS} \
  "$fuzzer" -max_total_time="$seconds" -print_final_stats=1 $opts -rss_limit_mb=2048 \
  ${FUZZ_ARGS:-} -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 &
pid=$!
wait "$pid"
rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
tail -n 25 "$work/log"
if [ "$rc" -ne 0 ] ||
   grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|deadly signal|FINDING' "$work/log" ||
   [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "run-fuzz: $target FAILED (exit $rc); crashing inputs:" >&2
  grep -E 'FINDING|SUMMARY' "$work/log" >&2
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "--- $f" >&2
    od -A d -t x1 "$f" | head -n 40 >&2
    if [ -n "${FUZZ_KEEP:-}" ]; then
      mkdir -p "$FUZZ_KEEP" && cp "$f" "$FUZZ_KEEP/" && echo "(kept in $FUZZ_KEEP)" >&2
    fi
  done
  exit 1
fi
echo "run-fuzz: $target OK, ${execs:-?} executions in ${seconds} s, corpus $(ls "$work/corpus" | wc -l) inputs"
