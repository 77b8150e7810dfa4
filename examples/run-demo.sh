#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install, configure, build, then
# run cudalink-demo (a producer and a consumer process moving 5 s of frames
# through libcudalink). Without an NVIDIA driver it stops with the library's
# "CUDA driver library not found" message (exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
builddir=${BUILDDIR:-build}
[ -e "$builddir/build.ninja" ] || meson setup "$builddir"
meson compile -C "$builddir"
exec "$builddir/examples/cudalink-demo" "$@"
