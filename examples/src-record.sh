#!/usr/bin/env bash
# Records what a cuda-link producer publishes to H.264 in MP4: with NVENC
# on the GPU (cudaconvert ! nvh264enc) when this GPU has an encoder, else
# with x264 on the CPU. Ctrl-C ends the recording and finishes the file.
#
# usage: examples/src-record.sh [NAME] [OUT.mp4] [cudalinksrc property=value ...]
#   examples/src-record.sh td td.mp4 channel-order=bgra video-direction=vert
#
# Uses the plugin from BUILD_DIR (default: build/) when it exists there.
set -euo pipefail
name=${1:-cudalink}
out=${2:-cudalink.mp4}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
. "$(dirname "$0")/plugin-path.sh"
if gst-inspect-1.0 nvh264enc >/dev/null 2>&1; then
  enc=(cudaconvert ! nvh264enc)
  echo "src-record: encoding with NVENC (nvh264enc)" >&2
else
  enc=(videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=veryfast)
  echo "src-record: no NVENC here, encoding with x264enc" >&2
fi
exec gst-launch-1.0 -e cudalinksrc ipc-name="$name" "$@" ! "${enc[@]}" ! \
  h264parse ! mp4mux ! filesink location="$out"
