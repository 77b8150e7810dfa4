# Sourced by the recipe scripts in examples/ (docs/RECIPES.md). It puts the
# plugin from the build tree on GStreamer's path (plugin-path.sh) and gives
# them three helpers:
#
#   have ELEMENT...   true when this GStreamer has every ELEMENT
#   need ELEMENT WHY  stop with one line saying what to install when it lacks
#                     ELEMENT (WHY: the package, or what it is for)
#   launch [gst-launch-1.0 options] PIPELINE...
#                     exec gst-launch-1.0 with them. With CUDALINK_RECIPE_DRY=1
#                     it prints the command line instead (one line, shell
#                     quoted, starting with "gst-launch-1.0") and exits 0:
#                     tests/ci/check-recipes.sh parses every recipe's pipeline
#                     that way on machines without a GPU, where GStreamer's
#                     CUDA elements do not exist.
#
# Elements whose presence depends on the GPU (nvh264enc exists only where the
# GPU has an NVENC unit; cudaupload and friends only with a driver) are
# looked up at run time, so a recipe picks the GPU path where it can.

. "$(dirname "${BASH_SOURCE[0]}")/plugin-path.sh"

recipe=$(basename "$0")

have() {
  local e
  for e in "$@"; do
    # (not --exists: it said no for elements that were there in the
    # GPU machine's bundled 1.22, where a plain look found them)
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || return 1
  done
}

need() {
  [ "${CUDALINK_RECIPE_DRY:-}" = 1 ] && return 0
  have "$1" && return 0
  echo "$recipe: this GStreamer has no $1 ($2)" >&2
  exit 3
}

launch() {
  if [ "${CUDALINK_RECIPE_DRY:-}" = 1 ]; then
    printf 'gst-launch-1.0'
    printf ' %q' "$@"
    printf '\n'
    exit 0
  fi
  exec gst-launch-1.0 "$@"
}

# Decoded frames of any format -> RGBA in CUDA memory, for cudalinksink, in
# the array TO_CUDA_RGBA: on the GPU (cudaupload ! cudaconvert) where
# GStreamer's CUDA filters exist. They need NVRTC at plugin load, which
# GStreamer 1.22 cannot use with a CUDA 13 toolkit (it asks for compute_52),
# so there the conversion runs on the CPU before the upload. The same for
# scaling: SCALE_CUDA W H (cudascale, else videoscale between a download and
# an upload). A dry run prints the GPU path.
gpu_filters() {
  [ "${CUDALINK_RECIPE_DRY:-}" = 1 ] || have cudaconvert cudascale
}
if gpu_filters; then
  TO_CUDA_RGBA=(cudaupload ! cudaconvert ! "video/x-raw(memory:CUDAMemory),format=RGBA")
else
  TO_CUDA_RGBA=(videoconvert ! video/x-raw,format=RGBA ! cudaupload
                ! "video/x-raw(memory:CUDAMemory),format=RGBA")
fi
scale_cuda() { # W H -> array SCALE
  if gpu_filters; then
    SCALE=(cudascale ! "video/x-raw(memory:CUDAMemory),width=$1,height=$2")
  else
    SCALE=(cudadownload ! videoscale ! "video/x-raw,width=$1,height=$2" ! cudaupload
           ! "video/x-raw(memory:CUDAMemory),width=$1,height=$2")
  fi
}

# H.264 / H.265 encoders for frames coming out of cudalinksrc, into the
# array ENC: NVENC on the GPU where it exists (cudaconvert feeds it CUDA
# memory; data-centre GPUs such as the H100/H200 have no NVENC), else
# x264enc / x265enc on the CPU after cudadownload. A key frame comes at
# least every GOP frames (default 60), so that a receiver that joins late
# shows a picture soon.
# cudalinksrc's caps say framerate=0/1 (a producer does not announce its
# rate; buffers carry arrival times), which x265 refuses: it gets a nominal
# rate for its rate control from FPS (default 30), the timestamps stay.
#   pick_encoder h264|h265 [GOP]
pick_encoder() {
  local codec=$1 gop=${2:-60}
  if have "nv${codec}enc" cudaconvert; then
    ENC=(cudaconvert ! "nv${codec}enc" gop-size="$gop")
    ENC_NAME="nv${codec}enc (NVENC)"
  elif [ "$codec" = h264 ]; then
    need x264enc "gstreamer1.0-plugins-ugly"
    ENC=(cudadownload ! videoconvert ! video/x-raw,format=I420
         ! x264enc tune=zerolatency speed-preset=veryfast key-int-max="$gop")
    ENC_NAME="x264enc (CPU)"
  else
    need x265enc "gstreamer1.0-plugins-bad"
    ENC=(cudadownload ! videoconvert ! video/x-raw,format=I420
         ! x265enc tune=zerolatency speed-preset=veryfast key-int-max="$gop"
         option-string="fps=${FPS:-30}")
    ENC_NAME="x265enc (CPU)"
  fi
  [ "${CUDALINK_RECIPE_DRY:-}" = 1 ] || echo "$recipe: encoding with $ENC_NAME" >&2
}
