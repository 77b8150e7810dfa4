#!/usr/bin/env bash
# Publishes a live test pattern for a cuda-link consumer (TouchDesigner
# cuda-link Receiver, cuda_link Python Importer, cudalinksrc):
#
#   videotestsrc is-live=true ! video/x-raw,format=RGBA,width=1280,height=720 !
#     cudaupload ! cudalinksink ipc-name=NAME [PROPS]
#
# usage: examples/sink-testsrc.sh [NAME] [cudalinksink property=value ...]
#   examples/sink-testsrc.sh td channel-order=bgra video-direction=vert
#   examples/sink-testsrc.sh ml output-dtype=float32
#
# Uses the plugin from BUILD_DIR (default: build/) when it exists there.
# Stop with Ctrl-C: the segment is shut down cleanly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:-cudalink}
[ $# -gt 0 ] && shift
build=${BUILD_DIR:-$root/build}
if [ -d "$build/gst" ]; then
  export GST_PLUGIN_PATH_1_0="$build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
fi
exec gst-launch-1.0 -e videotestsrc is-live=true \
  ! video/x-raw,format=RGBA,width=1280,height=720 \
  ! cudaupload ! cudalinksink ipc-name="$name" "$@"
