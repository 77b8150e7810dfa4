#!/usr/bin/env bash
# ../shared/gpu/bundle with imagefreeze added to its default plugin set
# (bench_src's sink -> src row needs it). Run from the checkout's root:
#   tests/gpu/bundle.sh -b build
GPU_PLUGINS="coreelements coretracers app videotestsrc videoconvertscale videorate \
  nvcodec shm debugutilsbad videoparsersbad isomp4 matroska jpeg png rtp rtpmanager udp x264 \
  autodetect typefindfunctions playback pbtypes imagefreeze" exec ../shared/gpu/bundle "$@"
