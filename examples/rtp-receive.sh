#!/usr/bin/env bash
# Receives the H.264 RTP stream of examples/rtp-send.sh and publishes it as
# cuda-link segment NAME (for a TouchDesigner Receiver, the cuda_link Python
# Importer, cudalinksrc), or shows it in a window when NAME is "-":
#
#   udpsrc port=PORT caps=application/x-rtp,...,encoding-name=H264,payload=96
#     ! rtpjitterbuffer latency=100 ! rtph264depay ! h264parse ! decodebin
#     ! cudaupload ! cudaconvert ! video/x-raw(memory:CUDAMemory),format=RGBA
#     ! cudalinksink ipc-name=NAME [PROPS]                           (NAME)
#     ! videoconvert ! autovideosink                                 (-)
#
# usage: examples/rtp-receive.sh NAME|- [PORT] [cudalinksink property=value ...]
#   examples/rtp-receive.sh remote-td 5000 channel-order=bgra video-direction=vert
#   examples/rtp-receive.sh - 5000
#   PORT defaults to 5000.
#
# So a TouchDesigner on one machine reaches a TouchDesigner on another:
# rtp-send.sh reads its Sender, this publishes for the other's Receiver.
# decodebin takes NVDEC (nvh264dec) where GStreamer has it, else a CPU
# decoder; cudaconvert turns its I420/NV12 into RGBA on the GPU. UDP has no
# end of stream: Ctrl-C stops it (the segment is shut down cleanly).
#
# Needs, to publish: an NVIDIA GPU and its driver; the cudalink plugin
# (build/gst); gstreamer1.0-plugins-bad (nvcodec, h264parse, openh264dec)
# and -good (rtp, udp). To show: a display, no GPU.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 NAME|- [PORT] [cudalinksink property=value ...]" >&2
  exit 64
fi
name=$1 port=5000
shift
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then port=$1; shift; fi
. "$(dirname "$0")/recipe-lib.sh"
if [ "$name" = - ]; then
  out=(videoconvert ! autovideosink)
else
  out=("${TO_CUDA_RGBA[@]}" ! cudalinksink ipc-name="$name" "$@")
fi
launch -e udpsrc port="$port" buffer-size=4194304 \
  caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96" \
  ! rtpjitterbuffer latency=100 ! rtph264depay ! h264parse ! decodebin ! "${out[@]}"
