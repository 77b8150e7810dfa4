#!/bin/sh
# meson test --wrap for a build set up with -Db_sanitize=address,undefined
# with gcc (tests/sanitize/run.sh does it all). Runs one test program with:
#  - ASan, leak detection on; lsan.supp holds GLib/GStreamer's one-time
#    allocations. Full (slow) unwinding on malloc: GLib has no frame
#    pointers, so without it a leak's stack ends in g_malloc, names nothing
#    of ours and cannot be matched by a suppression;
#  - UBSan halting on the first error, with a stack (ubsan.supp: known
#    findings);
#  - a fresh GStreamer registry (a temporary file, removed afterwards): no
#    registry written by another build, or one that blacklisted the plugin,
#    is reused;
#  - gst-plugin-scanner.sh as the registry's scanner: GStreamer's own, with
#    the ASan runtime preloaded, so that it can load the instrumented plugin.
#   meson test -C build-asan --wrap="$PWD/tests/sanitize/wrap.sh"
set -u
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-gcc}
CUDALINK_ASAN_RUNTIME=$($cc -print-file-name=libasan.so)
case $CUDALINK_ASAN_RUNTIME in
  /*) ;;
  *) echo "wrap.sh: $cc has no shared ASan runtime (libasan.so)" >&2; exit 2 ;;
esac
CUDALINK_GST_PLUGIN_SCANNER=$(pkg-config --variable=pluginscannerdir gstreamer-1.0)/gst-plugin-scanner
if [ ! -x "$CUDALINK_GST_PLUGIN_SCANNER" ]; then
  echo "wrap.sh: GStreamer's gst-plugin-scanner not found ($CUDALINK_GST_PLUGIN_SCANNER)" >&2
  exit 2
fi
export CUDALINK_ASAN_RUNTIME CUDALINK_GST_PLUGIN_SCANNER

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cudalink-san.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

export GST_REGISTRY_1_0="$tmp/registry.bin"
export GST_PLUGIN_SCANNER_1_0="$here/gst-plugin-scanner.sh"
# handle_sigbus=0: SIGBUS belongs to the library's guard for truncated
# segments (lib/shm.c), which chains to the default action for any other
# address; with ASan's own handler a fatal SIGBUS would be an ASan report and
# exit 1 instead of the signal test_shm_guard's chaining tests expect.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:handle_sigbus=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$here/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# gst-check's per-test timeouts (CK_DEFAULT_TIMEOUT, tcase_set_timeout)
export CK_TIMEOUT_MULTIPLIER="${CK_TIMEOUT_MULTIPLIER:-3}"

"$@"
