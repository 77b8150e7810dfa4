#!/usr/bin/env bash
# The main job on one machine, from a fresh Debian 12 checkout: install,
# build, then two processes talk cuda-link through the two elements.
#
#   publisher:  videotestsrc pattern=ball (+ a frame number where GStreamer
#               has timeoverlay) ! RGBA 1280x720 at 30 fps
#                 ! cudaupload ! cudalinksink ipc-name=NAME
#   reader:     cudalinksrc ipc-name=NAME ! H.264 (NVENC where the GPU has
#               one, else cudadownload ! x264enc) ! mp4mux ! main.mp4
#
# for SECONDS (10), then prints what the reader's cudalinksrc counted
# (frames, missed, publish -> push latency p50/p99, from its stats messages)
# and how many frames main.mp4 decodes back to.
#
# usage: bash examples/run-main.sh [--no-build] [--mps] [SECONDS]
#   --no-build   use the build as it is (BUILDDIR, default build/): no
#                apt-get, no meson (the GPU test machine runs it so)
#   --mps        run both processes under CUDA MPS (one GPU context for
#                both: no context switch per frame, docs/BENCHMARKS.md):
#                starts nvidia-cuda-mps-control -d if no daemon runs, and
#                stops it again at the end if it started it
#   RUN_MAIN_DIR where main.mp4 and the logs go (default BUILDDIR/run-main)
#
# Needs: an NVIDIA GPU and its driver to move frames. Without one it builds
# everything and stops with ONE line naming what is missing, exit 2; a
# driver without GStreamer's CUDA elements is exit 3. Exit 1: the job ran
# but moved no frame. Packages: .ci/install-deps.sh's, plus
# gstreamer1.0-plugins-ugly (x264enc) and gstreamer1.0-x (timeoverlay).
set -euo pipefail
cd "$(dirname "$0")/.."
me=run-main
build=1 secs=10 mps=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --mps) mps=1 ;;
    [0-9]*) secs=$1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bash examples/run-main.sh [--no-build] [--mps] [SECONDS]" >&2; exit 64 ;;
  esac
  shift
done
dry=${CUDALINK_RECIPE_DRY:-}
builddir=${BUILDDIR:-build}

if [ "$build" = 1 ] && [ "$dry" != 1 ]; then
  bash .ci/install-deps.sh
  extra="gstreamer1.0-plugins-ugly gstreamer1.0-x"
  missing=$(for p in $extra; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "$me: installing" $missing
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends $missing
  fi
  [ -e "$builddir/build.ninja" ] || meson setup "$builddir"
  meson compile -C "$builddir"
fi
case $builddir in /*) export BUILD_DIR=$builddir ;; *) export BUILD_DIR=$PWD/$builddir ;; esac
. examples/recipe-lib.sh
recipe=$me

# 1. Can this machine move frames at all? Asked before any GStreamer CUDA
# element: without a driver those do not even exist.
if [ "$dry" != 1 ]; then
  if ! check=$("$builddir/examples/cudalink-check" 2>&1); then
    echo "$me: everything is built, but frames cannot move here:" \
         "${check#cudalink-check: } (an NVIDIA GPU and its driver are needed)" >&2
    exit 2
  fi
  echo "$check"
  if ! have cudaupload cudalinksink cudalinksrc; then
    echo "$me: the CUDA driver loads, but GStreamer's CUDA elements or ours are missing" \
         "(cudaupload from gstreamer1.0-plugins-bad, cudalink from $builddir/gst);" \
         "GST_DEBUG=nvcodec:5 gst-inspect-1.0 nvcodec says why; a registry cached" \
         "before the driver came: rm ~/.cache/gstreamer-1.0/registry.*.bin" >&2
    exit 3
  fi
fi

# 2. The two pipelines.
fps=30 w=1280 h=720
frames=$((secs * fps))
name=cudalink-main-$$
outdir=${RUN_MAIN_DIR:-$builddir/run-main}
mkdir -p "$outdir"
mp4=$outdir/main.mp4
number=()
if have timecodestamper timeoverlay; then
  # HH:MM:SS:FF, FF the frame within the second
  number=(timecodestamper ! timeoverlay time-mode=time-code font-desc="Sans 48" !)
fi
publisher=(videotestsrc is-live=true num-buffers="$frames" pattern=ball
  ! "video/x-raw,format=RGBA,width=$w,height=$h,framerate=$fps/1" ! "${number[@]}"
  cudaupload ! cudalinksink ipc-name="$name")
pick_encoder h264 "$fps"
reader=(cudalinksrc ipc-name="$name" timeout=15000 stats-interval=500
  ! "${ENC[@]}" ! h264parse ! mp4mux ! filesink location="$mp4")
if [ "$dry" = 1 ]; then
  (launch "${publisher[@]}")
  launch -e "${reader[@]}"
fi

pids=()
mps_started=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$mps_started" = 1 ]; then echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$mps" = 1 ]; then
  if ! command -v nvidia-cuda-mps-control >/dev/null; then
    echo "$me: --mps: nvidia-cuda-mps-control is not installed (it comes with the NVIDIA driver)" >&2
    exit 2
  fi
  # a running daemon answers; else start one for this job
  if ! echo get_default_active_thread_percentage | nvidia-cuda-mps-control >/dev/null 2>&1; then
    nvidia-cuda-mps-control -d || { echo "$me: --mps: the MPS daemon did not start" >&2; exit 2; }
    mps_started=1
    sleep 0.5
  fi
  echo "$me: under MPS (docs/BENCHMARKS.md, \"MPS\")"
fi

rm -f "$mp4"
echo "$me: publishing $frames frames of ${w}x$h RGBA at $fps fps as cuda-link segment" \
     "'$name'${number[*]:+, numbered (timeoverlay)}; reading them into $mp4"
gst-launch-1.0 -m -e "${reader[@]}" > "$outdir/reader.log" 2>&1 &
reader_pid=$!; pids+=("$reader_pid")
gst-launch-1.0 "${publisher[@]}" > "$outdir/publisher.log" 2>&1 &
publisher_pid=$!; pids+=("$publisher_pid")

pub_rc=0; wait "$publisher_pid" || pub_rc=$?
# The reader keeps waiting for a producer (on-producer-loss=wait): let it
# post its final stats (every 500 ms), then end it like Ctrl-C does (EOS,
# so that mp4mux finishes the file).
sleep 1.2
kill -INT "$reader_pid" 2>/dev/null || true
for _ in $(seq 150); do kill -0 "$reader_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$reader_pid" 2>/dev/null && kill -TERM "$reader_pid"
wait "$reader_pid" || true   # 130 after the interrupt: the log says how it ended
pids=()

if [ "$pub_rc" != 0 ]; then
  echo "$me: the publisher failed (rc $pub_rc): $(grep -m1 ERROR "$outdir/publisher.log" || tail -n1 "$outdir/publisher.log")" >&2
fi
if grep -q "^ERROR" "$outdir/reader.log"; then
  echo "$me: the reader failed: $(grep -m1 -A1 "^ERROR" "$outdir/reader.log" | tr '\n' ' ')" >&2
fi

# 3. What the reader counted: its last stats message.
stats=$(grep -o 'application/x-cudalinksrc-stats[^;]*' "$outdir/reader.log" | tail -n 1 || true)
field() { sed -n "s/.*[ ,]$1=([a-z0-9]*)\([0-9.e+-]*\).*/\1/p" <<<"$stats"; }
got=$(field frames) missed=$(field missed)
p50=$(field latency-p50-us) p99=$(field latency-p99-us)
imported=$(field imported) mps_src=$(field mps) mps_pub=$(field producer-mps)
yes_no() { case $1 in 1) echo yes ;; 0) echo no ;; *) echo unknown ;; esac; }
printf '%s: cudalinksrc pushed %s frames of %s published, missed %s, latency publish->push p50 %.0f us, p99 %.0f us\n' \
  "$me" "${got:-?}" "$frames" "${missed:-?}" "${p50:-0}" "${p99:-0}"
echo "$me: imported without a copy: ${imported:-0} (only when a sink has offer-import=true); MPS: reader $(yes_no "${mps_src:-}"), publisher $(yes_no "${mps_pub:-}")"

# 4. The MP4, decoded back.
mp4_frames=0 mp4_size='?'
if [ -s "$mp4" ]; then
  decoded=$(gst-launch-1.0 -v filesrc location="$mp4" ! qtdemux ! h264parse ! decodebin \
              ! fakesink name=count silent=false sync=false 2>&1 || true)
  mp4_frames=$(grep -c "count: last-message = chain" <<<"$decoded" || true)
  caps=$(grep -m1 "count.GstPad:sink: caps" <<<"$decoded" || true)
  mp4_size=$(sed -n 's/.*width=(int)\([0-9]*\).*height=(int)\([0-9]*\).*/\1x\2/p' <<<"$caps")
fi
echo "$me: $mp4: $mp4_frames frames of ${mp4_size:-?} (H.264 from $ENC_NAME), decoded back"

if [ "${got:-0}" -gt 0 ] && [ "$mp4_frames" -gt 0 ] && [ "$pub_rc" = 0 ]; then
  echo "$me: ok"
else
  echo "$me: FAILED (logs: $outdir/publisher.log, $outdir/reader.log)" >&2
  exit 1
fi
