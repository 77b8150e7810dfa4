#!/bin/sh
# GStreamer's plugin scanner for sanitizer builds (set as GST_PLUGIN_SCANNER_1_0
# by wrap.sh). The registry scan runs in gst-plugin-scanner, a separate,
# uninstrumented program; it cannot dlopen an ASan-instrumented plugin unless
# the ASan runtime is loaded first ("ASan runtime does not come first in
# initial library list"), and GStreamer then blacklists the plugin. So: the
# real scanner, with the runtime preloaded. Its leak check is off: it loads
# every plugin on the path once and exits; our plugin_init runs again in the
# test process, which checks leaks. Any other ASan or UBSan report still
# aborts the scanner, and the test then fails on a missing element.
set -eu
: "${CUDALINK_ASAN_RUNTIME:?set by tests/sanitize/wrap.sh}"
: "${CUDALINK_GST_PLUGIN_SCANNER:?set by tests/sanitize/wrap.sh}"
LD_PRELOAD="$CUDALINK_ASAN_RUNTIME${LD_PRELOAD:+:$LD_PRELOAD}" \
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  exec "$CUDALINK_GST_PLUGIN_SCANNER" "$@"
