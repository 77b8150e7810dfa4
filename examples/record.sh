#!/usr/bin/env bash
# Records what a cuda-link producer publishes (a TouchDesigner Sender, the
# cuda_link Python Exporter, a cudalinksink) to an MP4 file, H.264 or H.265:
#
#   cudalinksrc ipc-name=NAME [PROPS] ! cudaconvert ! nvh264enc|nvh265enc      (NVENC)
#   cudalinksrc ipc-name=NAME [PROPS] ! cudadownload ! videoconvert
#                                     ! x264enc|x265enc                        (CPU)
#     ! h264parse|h265parse ! mp4mux ! filesink location=OUT
#
# usage: examples/record.sh NAME OUT.mp4 [h264|h265] [cudalinksrc property=value ...]
#   examples/record.sh td td.mp4 h265 channel-order=bgra video-direction=vert
#   examples/record.sh cam cam.mp4 h264 on-producer-loss=eos   # stop with the producer
#
# Ctrl-C ends the recording and finishes the file (gst-launch -e); so does
# the producer going away with on-producer-loss=eos. The last frame can be
# missing from the file: the frames have no fixed rate (cudalinksrc stamps
# arrival times), so mp4mux cannot tell the last one's duration.
#
# Needs: an NVIDIA GPU and its driver; the cudalink plugin (build/gst);
# GStreamer's nvcodec (gstreamer1.0-plugins-bad) for cudaconvert/cudadownload
# and NVENC; without NVENC (H100, H200, A100 have none) x264enc
# (gstreamer1.0-plugins-ugly) or x265enc (gstreamer1.0-plugins-bad).
# FPS (default 30): the nominal rate x265's rate control is told.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NAME OUT.mp4 [h264|h265] [cudalinksrc property=value ...]" >&2
  exit 64
fi
name=$1 out=$2 codec=h264
shift 2
if [ $# -gt 0 ] && [[ $1 == h26[45] ]]; then codec=$1; shift; fi
. "$(dirname "$0")/recipe-lib.sh"
pick_encoder "$codec"
launch -e cudalinksrc ipc-name="$name" "$@" ! "${ENC[@]}" ! "${codec}parse" \
  ! mp4mux ! filesink location="$out"
