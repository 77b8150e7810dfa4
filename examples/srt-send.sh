#!/usr/bin/env bash
# Serves what a cuda-link producer publishes (a TouchDesigner Sender, the
# cuda_link Python Exporter, a cudalinksink) as H.264 in MPEG-TS over SRT:
# this is the SRT listener, receivers (examples/srt-receive.sh, ffplay,
# VLC, OBS: srt://THIS-HOST:PORT) call in.
#
#   cudalinksrc ipc-name=NAME [PROPS] ! H.264 (NVENC, else cudadownload ! x264enc)
#     ! h264parse config-interval=-1 ! mpegtsmux alignment=7
#     ! srtsink uri=srt://:PORT mode=listener wait-for-connection=false
#
# usage: examples/srt-send.sh NAME [PORT] [cudalinksrc property=value ...]
#   examples/srt-send.sh td 7001 channel-order=bgra video-direction=vert
#   PORT defaults to 7001.
#
# alignment=7: seven 188-byte TS packets per SRT message (1316 bytes, what
# SRT's live mode carries); without it receivers get broken H.264. Frames
# are dropped while no receiver is connected; one that connects shows a
# picture within a second (a key frame every 30 frames). Ctrl-C stops it.
#
# Needs: an NVIDIA GPU and its driver; the cudalink plugin (build/gst);
# gstreamer1.0-plugins-bad (nvcodec, srt, mpegtsmux); x264enc
# (gstreamer1.0-plugins-ugly) where the GPU has no NVENC.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 NAME [PORT] [cudalinksrc property=value ...]" >&2
  exit 64
fi
name=$1 port=7001
shift
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then port=$1; shift; fi
. "$(dirname "$0")/recipe-lib.sh"
need srtsink "gstreamer1.0-plugins-bad"
pick_encoder h264 30
launch -e cudalinksrc ipc-name="$name" "$@" ! "${ENC[@]}" ! h264parse config-interval=-1 \
  ! mpegtsmux alignment=7 ! srtsink uri="srt://:$port" mode=listener wait-for-connection=false
