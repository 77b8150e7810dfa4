#!/usr/bin/env bash
# Shows what a cuda-link producer publishes (TouchDesigner Sender, cuda_link
# Python Exporter, cudalinksink):
#
#   cudalinksrc ipc-name=NAME [PROPS] ! videoconvert ! autovideosink
#
# usage: examples/src-display.sh [NAME] [cudalinksrc property=value ...]
#   examples/src-display.sh td channel-order=bgra video-direction=vert
#
# Uses the plugin from BUILD_DIR (default: build/) when it exists there.
set -euo pipefail
name=${1:-cudalink}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/plugin-path.sh"
exec gst-launch-1.0 cudalinksrc ipc-name="$name" "$@" ! videoconvert ! autovideosink
