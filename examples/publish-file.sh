#!/usr/bin/env bash
# Publishes a video file, a network stream or a camera as cuda-link segment
# NAME, for a TouchDesigner cuda-link Receiver (Ipcmemname NAME), the
# cuda_link Python Importer or cudalinksrc:
#
#   file:    filesrc location=INPUT ! decodebin
#              ! cudaupload ! cudaconvert ! video/x-raw(memory:CUDAMemory),format=RGBA
#              ! cudalinksink ipc-name=NAME [PROPS]
#   URI:     uridecodebin uri=INPUT (rtsp://, http://, file://) ! the same
#   camera:  v4l2src device=INPUT ! decodebin ! videoconvert ! video/x-raw,format=RGBA
#              ! cudaupload ! cudalinksink ipc-name=NAME [PROPS]
#
# usage: examples/publish-file.sh NAME INPUT [cudalinksink property=value ...]
#   examples/publish-file.sh clip movie.mp4 channel-order=bgra video-direction=vert
#   examples/publish-file.sh cam /dev/video0
#   examples/publish-file.sh ipcam rtsp://192.0.2.20/stream1
#
# channel-order=bgra video-direction=vert give a TouchDesigner Receiver its
# native layout (BGRA, bottom-up). A file plays at its own rate (the sink
# syncs to the clock) and the segment is shut down at its end: the
# Receiver's picture stops there. decodebin uses NVDEC (nvh264dec, ...)
# where GStreamer has it, whose CUDA frames cudaconvert turns into RGBA
# without leaving the GPU; CPU decoders' frames are uploaded once. A camera's
# YUY2 or MJPEG is converted on the CPU (cudaconvert does not take YUY2).
#
# Needs: an NVIDIA GPU and its driver; the cudalink plugin (build/gst);
# gstreamer1.0-plugins-bad (nvcodec, h264parse, openh264dec),
# gstreamer1.0-plugins-good (qtdemux, v4l2src), a decoder for the file's
# codec (gstreamer1.0-libav has most).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NAME INPUT [cudalinksink property=value ...]" >&2
  exit 64
fi
name=$1 input=$2
shift 2
. "$(dirname "$0")/recipe-lib.sh"
gpu_rgba=("${TO_CUDA_RGBA[@]}")
case $input in
  /dev/video*)
    src=(v4l2src device="$input" ! decodebin ! videoconvert ! video/x-raw,format=RGBA ! cudaupload) ;;
  *://*)
    src=(uridecodebin uri="$input" ! "${gpu_rgba[@]}") ;;
  *)
    if [ ! -e "$input" ] && [ "${CUDALINK_RECIPE_DRY:-}" != 1 ]; then
      echo "$recipe: no file $input" >&2
      exit 66
    fi
    src=(filesrc location="$input" ! decodebin ! "${gpu_rgba[@]}") ;;
esac
launch -e "${src[@]}" ! cudalinksink ipc-name="$name" "$@"
