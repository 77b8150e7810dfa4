#!/usr/bin/env bash
# Reads cuda-link segment IN, processes the frames on the GPU and publishes
# the result as segment OUT: TouchDesigner -> GStreamer -> TouchDesigner (a
# Sender named IN, a Receiver named OUT), or any producer and consumer.
# The processing here is a scale to WIDTHxHEIGHT (default 640x360); put
# your own CUDA elements where cudascale is. The pixels never leave the GPU.
#
#   cudalinksrc ipc-name=IN [channel-order=bgra video-direction=vert]
#     ! cudascale ! video/x-raw(memory:CUDAMemory),width=W,height=H
#     ! cudalinksink ipc-name=OUT [channel-order=bgra video-direction=vert] sync=false
#
# usage: examples/republish.sh [--td] IN OUT [WIDTH HEIGHT]
#   examples/republish.sh --td td-out td-small 960 540
#   --td: IN is a TouchDesigner Sender and OUT is for a Receiver: read BGRA
#         bottom-up textures upright, publish them back the same way
#
# sync=false: each frame is published as soon as it is ready (the frames
# carry arrival times, there is nothing to wait for). The source waits for
# IN (on-producer-loss=wait): this keeps running when the producer restarts.
# Ctrl-C stops it and shuts OUT down cleanly.
#
# Needs: an NVIDIA GPU and its driver; the cudalink plugin (build/gst);
# gstreamer1.0-plugins-bad (nvcodec: cudascale).
set -euo pipefail
td=()
if [ "${1:-}" = --td ]; then td=(channel-order=bgra video-direction=vert); shift; fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [--td] IN OUT [WIDTH HEIGHT]" >&2
  exit 64
fi
in=$1 out=$2 w=${3:-640} h=${4:-360}
. "$(dirname "$0")/recipe-lib.sh"
scale_cuda "$w" "$h"
launch -e cudalinksrc ipc-name="$in" "${td[@]}" \
  ! "${SCALE[@]}" \
  ! cudalinksink ipc-name="$out" "${td[@]}" sync=false
