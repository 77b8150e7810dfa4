/* The cudalink device provider: the cuda-link producers on this machine as
 * Video/Source devices whose elements are cudalinksrc. */
#ifndef __GST_CUDA_LINK_DEVICE_PROVIDER_H__
#define __GST_CUDA_LINK_DEVICE_PROVIDER_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_CUDA_LINK_DEVICE_PROVIDER (gst_cuda_link_device_provider_get_type ())
G_DECLARE_FINAL_TYPE (GstCudaLinkDeviceProvider, gst_cuda_link_device_provider,
    GST, CUDA_LINK_DEVICE_PROVIDER, GstDeviceProvider);

#define GST_TYPE_CUDA_LINK_DEVICE (gst_cuda_link_device_get_type ())
G_DECLARE_FINAL_TYPE (GstCudaLinkDevice, gst_cuda_link_device,
    GST, CUDA_LINK_DEVICE, GstDevice);

G_END_DECLS

#endif /* __GST_CUDA_LINK_DEVICE_PROVIDER_H__ */
