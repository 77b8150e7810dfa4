#!/usr/bin/env bash
# Receives the SRT stream of examples/srt-send.sh (H.264 in MPEG-TS) and
# publishes it as cuda-link segment NAME (for a TouchDesigner Receiver, the
# cuda_link Python Importer, cudalinksrc), or shows it when NAME is "-":
#
#   srtsrc uri=srt://HOST:PORT mode=caller ! tsdemux ! h264parse ! decodebin
#     ! cudaupload ! cudaconvert ! video/x-raw(memory:CUDAMemory),format=RGBA
#     ! cudalinksink ipc-name=NAME sync=false [PROPS]                (NAME)
#     ! videoconvert ! autovideosink sync=false                      (-)
#
# usage: examples/srt-receive.sh NAME|- [HOST] [PORT] [cudalinksink property=value ...]
#   examples/srt-receive.sh remote-td 192.0.2.10 7001 channel-order=bgra
#   HOST defaults to 127.0.0.1, PORT to 7001.
#
# This is the SRT caller: it keeps trying until the sender listens (every
# few seconds: start the sender first), and reconnects when the sender comes
# back. Ctrl-C stops it (the segment is shut down cleanly). decodebin takes
# NVDEC (nvh264dec) where GStreamer has it, else a CPU decoder.
#
# sync=false: SRT already delivers the packets at the sender's pace, after
# its latency (125 ms); syncing to the clock would add tsdemux's 700 ms on
# top, and the frames still waiting then are lost when the sender stops.
#
# Needs, to publish: an NVIDIA GPU and its driver; the cudalink plugin
# (build/gst); gstreamer1.0-plugins-bad (nvcodec, srt, tsdemux, h264parse,
# openh264dec). To show: a display, no GPU.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 NAME|- [HOST] [PORT] [cudalinksink property=value ...]" >&2
  exit 64
fi
name=$1 host=127.0.0.1 port=7001
shift
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then host=$1; shift; fi
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then port=$1; shift; fi
. "$(dirname "$0")/recipe-lib.sh"
need srtsrc "gstreamer1.0-plugins-bad"
if [ "$name" = - ]; then
  out=(videoconvert ! autovideosink sync=false)
else
  out=("${TO_CUDA_RGBA[@]}" ! cudalinksink ipc-name="$name" sync=false "$@")
fi
launch -e srtsrc uri="srt://$host:$port" mode=caller ! tsdemux ! h264parse ! decodebin \
  ! "${out[@]}"
