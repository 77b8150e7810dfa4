/* The cudalink plugin's elements and its device provider, registered
 * together by plugin.c.
 *
 * Both elements register even where no CUDA driver is installed (so that
 * gst-inspect-1.0 and the CPU-only tests see them); they fail in start()
 * with a GStreamer error that says the driver is missing. The device
 * provider needs no driver at all: it only reads the segments' headers.
 */
#ifndef __GST_CUDA_LINK_H__
#define __GST_CUDA_LINK_H__

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (cudalinksink);
GST_ELEMENT_REGISTER_DECLARE (cudalinksrc);
GST_DEVICE_PROVIDER_REGISTER_DECLARE (cudalinkdeviceprovider);

G_END_DECLS

#endif /* __GST_CUDA_LINK_H__ */
