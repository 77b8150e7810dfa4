/* cudalinksrc: reads GPU frames that a cuda-link producer publishes. */
#ifndef __GST_CUDA_LINK_SRC_H__
#define __GST_CUDA_LINK_SRC_H__

#include <gst/gst.h>
#include <gst/base/gstbasesrc.h>

G_BEGIN_DECLS

#define GST_TYPE_CUDA_LINK_SRC (gst_cuda_link_src_get_type ())
G_DECLARE_FINAL_TYPE (GstCudaLinkSrc, gst_cuda_link_src, GST, CUDA_LINK_SRC,
    GstBaseSrc);

/* on-producer-loss */
typedef enum
{
  GST_CUDA_LINK_SRC_LOSS_WAIT = 0,
  GST_CUDA_LINK_SRC_LOSS_EOS = 1,
  GST_CUDA_LINK_SRC_LOSS_ERROR = 2,
} GstCudaLinkSrcLossAction;

G_END_DECLS

#endif
