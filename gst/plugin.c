/* cudalink: GStreamer elements that move GPU video frames between processes
 * over CUDA IPC, speaking the cuda-link shared-memory protocol
 * (TouchDesigner's cuda-link component and the cuda_link Python package).
 *
 * Unlike GStreamer's nvcodec plugin, plugin_init does not load the CUDA
 * driver and registers the elements unconditionally: each element loads the
 * driver in start() and posts an error that says why when it cannot.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstcudalink.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (cudalinksink, plugin);
  ret |= GST_ELEMENT_REGISTER (cudalinksrc, plugin);
  ret |= GST_DEVICE_PROVIDER_REGISTER (cudalinkdeviceprovider, plugin);

  return ret;
}

/* "MIT/X11" is GStreamer's name for the MIT license (gstplugin.c's list of
 * valid licenses); "MIT" would get a "plugin has unknown license" warning at
 * every registry scan. */
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, cudalink,
    "Share GPU video frames between processes over CUDA IPC (cuda-link protocol)",
    plugin_init, VERSION, "MIT/X11", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
