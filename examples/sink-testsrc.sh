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
name=${1:-cudalink}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/plugin-path.sh"
exec gst-launch-1.0 -e videotestsrc is-live=true \
  ! video/x-raw,format=RGBA,width=1280,height=720 \
  ! cudaupload ! cudalinksink ipc-name="$name" "$@"
