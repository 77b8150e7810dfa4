/* cudalinksink: how negotiated caps become a cuda-link frame format.
 *
 * Pure functions (no CUDA, no element state) so that the sink test can
 * check every format x channel-order x output-dtype combination on a
 * machine without a GPU. The element calls gst_cuda_link_sink_map_format()
 * in set_caps and whenever a property that changes the mapping is set.
 *
 * Rules (docs/elements/cudalinksink.md has the table):
 * - Never 3 channels (TouchDesigner has no 3-channel texture): RGB/BGR are
 *   expanded to 4 on the GPU with an opaque alpha; RGBx/BGRx get an opaque
 *   alpha instead of their undefined padding byte.
 * - channel-order=rgba publishes R,G,B,A (BGR-ordered input is swizzled on
 *   the GPU, flags 0). channel-order=bgra publishes uint8 x 4 in B,G,R,A
 *   order with CUDALINK_FLAG_BGRA; it only exists for uint8 x 4 (what a
 *   TouchDesigner 8-bit texture is), so for any other output it is ignored
 *   (order_ignored is set) and R,G,B,A is published, like TD does.
 * - Gray formats publish one channel; channel-order does not apply.
 * - output-dtype auto keeps the native depth (uint8 or uint16); any other
 *   value converts on the GPU (integers map to 0..1 floats).
 */
#ifndef __GST_CUDA_LINK_SINK_FORMAT_H__
#define __GST_CUDA_LINK_SINK_FORMAT_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include "cudalink.h"
#include "gstcudalinktypes.h"

G_BEGIN_DECLS

/* The sink pad's formats, for both memory kinds. */
#define GST_CUDA_LINK_SINK_FORMATS \
  "{ RGBA, RGBx, BGRA, BGRx, RGB, BGR, GRAY8, GRAY16_LE, RGBA64_LE }"

typedef enum
{
  GST_CUDA_LINK_OUTPUT_DTYPE_AUTO = 0,
  GST_CUDA_LINK_OUTPUT_DTYPE_UINT8 = 1,
  GST_CUDA_LINK_OUTPUT_DTYPE_UINT16 = 2,
  GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16 = 3,
  GST_CUDA_LINK_OUTPUT_DTYPE_BFLOAT16 = 4,
  GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32 = 5,
} GstCudaLinkOutputDtype;

typedef struct
{
  /* the input, as it lies in memory (plane 0) */
  guint src_comps;              /* 1, 3 or 4 */
  cudalink_dtype src_dtype;     /* uint8 or uint16 */
  guint src_pixel_size;         /* bytes per pixel */

  /* what is published */
  cudalink_format format;
  guint32 row_size;             /* bytes of one tightly packed output row */
  guint32 frame_size;           /* data_size */

  /* how: output channel c <- input channel swizzle[c] (or ZERO / ONE) */
  gint swizzle[4];
  gboolean flip_y;

  gboolean plain;               /* a plain 2-D copy does it: no kernel */
  gboolean td_unreadable;       /* a TouchDesigner Receiver cannot read the dtype */
  gboolean order_ignored;       /* channel-order=bgra asked for a non-uint8x4 output */
} GstCudaLinkSinkMapping;

/* Fills @mapping for input @format of @width x @height. FALSE (mapping
 * zeroed) when the format is not one of GST_CUDA_LINK_SINK_FORMATS, an
 * enum value is out of range, or the size is outside what the protocol can
 * carry (1..CUDALINK_MAX_DIMENSION, frame < 4 GiB). */
gboolean gst_cuda_link_sink_map_format (GstVideoFormat format, guint width,
    guint height, GstCudaLinkChannelOrder order,
    GstCudaLinkOutputDtype output_dtype, gboolean flip_y,
    GstCudaLinkSinkMapping * mapping);

/* The protocol dtype for @output_dtype given the input's @native dtype. */
cudalink_dtype gst_cuda_link_sink_output_dtype (GstCudaLinkOutputDtype
    output_dtype, cudalink_dtype native);

/* "uint8 x 4 (BGRA)"-style text for logs and messages; free with g_free. */
gchar *gst_cuda_link_sink_mapping_describe (const GstCudaLinkSinkMapping *
    mapping);

/* The sink pad's template: GST_CUDA_LINK_SINK_FORMATS in CUDA and system
 * memory, sizes 1..CUDALINK_MAX_DIMENSION (what the protocol carries). */
GstCaps *gst_cuda_link_sink_template_caps (void);

G_END_DECLS

#endif /* __GST_CUDA_LINK_SINK_FORMAT_H__ */
