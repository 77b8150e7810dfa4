#!/usr/bin/env bash
# Shows what a cuda-link producer publishes (TouchDesigner Sender, cuda_link
# Python Exporter, cudalinksink):
#
#   cudalinksrc ipc-name=NAME [PROPS] ! videoconvert ! autovideosink
#
# usage: examples/src-display.sh [NAME] [cudalinksrc property=value ...]
#   examples/src-display.sh td channel-order=bgra video-direction=vert
#
# Uses the plugin from BUILD_DIR (default: build/) when it exists there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:-cudalink}
[ $# -gt 0 ] && shift
build=${BUILD_DIR:-$root/build}
if [ -d "$build/gst" ]; then
  export GST_PLUGIN_PATH_1_0="$build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
fi
exec gst-launch-1.0 cudalinksrc ipc-name="$name" "$@" ! videoconvert ! autovideosink
