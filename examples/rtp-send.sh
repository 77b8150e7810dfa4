#!/usr/bin/env bash
# Streams what a cuda-link producer publishes (a TouchDesigner Sender, the
# cuda_link Python Exporter, a cudalinksink) as H.264 over RTP/UDP, to
# examples/rtp-receive.sh, or any RTP receiver, on this or another machine:
#
#   cudalinksrc ipc-name=NAME [PROPS] ! H.264 (NVENC, else cudadownload ! x264enc)
#     ! rtph264pay config-interval=-1 pt=96 ! udpsink host=HOST port=PORT
#
# usage: examples/rtp-send.sh NAME [HOST] [PORT] [cudalinksrc property=value ...]
#   examples/rtp-send.sh td 192.0.2.10 5000 channel-order=bgra video-direction=vert
#   HOST defaults to 127.0.0.1, PORT to 5000.
#
# A key frame (with SPS/PPS) every 30 frames: a receiver that starts later
# shows a picture within a second. Plain RTP has no end of stream: the
# receiver keeps waiting when this stops. Ctrl-C stops it.
#
# Needs: an NVIDIA GPU and its driver; the cudalink plugin (build/gst);
# gstreamer1.0-plugins-bad (nvcodec: cudadownload, NVENC) and
# gstreamer1.0-plugins-good (rtp, udp); x264enc (gstreamer1.0-plugins-ugly)
# where the GPU has no NVENC.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 NAME [HOST] [PORT] [cudalinksrc property=value ...]" >&2
  exit 64
fi
name=$1 host=127.0.0.1 port=5000
shift
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then host=$1; shift; fi
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then port=$1; shift; fi
. "$(dirname "$0")/recipe-lib.sh"
pick_encoder h264 30
launch -e cudalinksrc ipc-name="$name" "$@" ! "${ENC[@]}" ! h264parse \
  ! rtph264pay config-interval=-1 pt=96 ! udpsink host="$host" port="$port" sync=false
