#!/usr/bin/env bash
# Installs (idempotently) every Debian 12 package the build, the tests, the
# fuzz run, the Windows cross-build and its checks under Wine need (pip
# fetches the GStreamer Windows runtime: ../shared/win/fetch-runtime.sh).
# The CUDA toolkit headers are expected in /usr/local/cuda/include
# (NVIDIA's toolkit; nvcc for the build-time kernels is optional).
set -euo pipefail
pkgs="meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3 valgrind
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gcc-mingw-w64-x86-64 wine wine64 python3-pip"
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "install-deps: installing" $missing
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends $missing
fi
if [ ! -e /usr/local/cuda/include/cuda.h ]; then
  echo "install-deps: /usr/local/cuda/include/cuda.h is missing: install NVIDIA's CUDA toolkit" \
       "(headers only are enough) or pass -Dcudainc=DIR to meson" >&2
  exit 1
fi
