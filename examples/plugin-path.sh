# Sourced by the example scripts: they use the plugin from BUILD_DIR
# (default: the checkout's build/) when it has been built there.
build=${BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
if [ -d "$build/gst" ]; then
  export GST_PLUGIN_PATH_1_0="$build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
fi
