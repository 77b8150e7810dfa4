#!/usr/bin/env bash
# ../shared/gpu/bundle with more plugins than its default set, then its big
# libraries gzipped. Run from the checkout's root:
#   tests/gpu/bundle.sh -b build
#
# Added plugins:
#   imagefreeze                 bench_src's sink -> src row
#   x265 srt mpegtsmux mpegtsdemux openh264 de265
#                               the recipes (tests/gpu/gpu_recipes): H.265
#                               encoding, SRT in MPEG-TS, and CPU decoders for
#                               H.264 / H.265 (the GPU machine's NVDEC needs
#                               libnvcuvid, which it may not have)
#
# Then tests/gpu/bundle-py311.sh: Debian 12's Python 3.11 with PyGObject and
# numpy (.gpu/py311.tar.xz, run as .gpu/python3.11), for the Python recipes;
# the GPU machine's own Python 3.12 has no PyGObject. CUDALINK_BUNDLE_NO_PY=1
# leaves it out (10 MB, for benchmark runs).
#
# Size: the carry (.gpu + build/ + the tree) must stay under 64 MiB.
# libx265 alone is 16 MB (three bit depths), SRT brings gnutls; gzip -9
# takes .gpu from ~52 MB to ~20 MB. The .so.gz files are unpacked where
# they are, once, by .gpu/env.sh (gzip, or python3 where there is no gzip),
# so everything that sources env.sh (run-gpu-machine.sh, .gpu/run-tests
# users) finds plain libraries. Sourcing it here unpacks them here too:
# bundle again before carrying.
set -euo pipefail
GPU_PLUGINS="coreelements coretracers app videotestsrc videoconvertscale videorate \
  nvcodec shm debugutilsbad videoparsersbad isomp4 matroska jpeg png rtp rtpmanager udp x264 \
  autodetect typefindfunctions playback pbtypes imagefreeze \
  x265 srt mpegtsmux mpegtsdemux openh264 de265" ../shared/gpu/bundle "$@"

out=.gpu
while getopts "o:b:s:" opt; do [ "$opt" = o ] && out=$OPTARG; done
# CUDALINK_BUNDLE_NO_PY=1: without it (benchmark runs, which also carry
# the 17 MB GStreamer 1.26 anchor, need the room)
[ "${CUDALINK_BUNDLE_NO_PY:-}" = 1 ] || bash "$(dirname "$0")/bundle-py311.sh" "$out"
before=$(du -sm "$out" | cut -f1)
find "$out/lib" -type f -size +400k ! -name '*.gz' -exec gzip -9 {} +
# env.sh: unpack before anything loads a library
tmp=$(mktemp)
awk '{ print }
  /^_gpu=/ && !done {
    print "# tests/gpu/bundle.sh gzipped the big libraries: unpack them once, in place"
    print "for _z in \"$_gpu\"/lib/*.gz; do"
    print "  [ -e \"$_z\" ] || continue"
    print "  if command -v gzip >/dev/null; then gzip -dc \"$_z\" > \"${_z%.gz}.tmp\""
    print "  else python3 -c \"import gzip,shutil,sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2],\x27wb\x27))\" \"$_z\" \"${_z%.gz}.tmp\"; fi &&"
    print "    mv \"${_z%.gz}.tmp\" \"${_z%.gz}\" && rm -f \"$_z\""
    print "done"
    done = 1
  }' "$out/env.sh" > "$tmp"
mv "$tmp" "$out/env.sh"
echo "bundle.sh: gzipped $out/lib's big libraries: ${before} MB -> $(du -sm "$out" | cut -f1) MB" >&2
