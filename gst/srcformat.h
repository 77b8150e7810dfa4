/* cudalinksrc: from a segment's frame format (protocol metadata) to the
 * caps the element offers and the one GPU pass that produces them.
 *
 * Pure functions: no CUDA, no I/O, no element state. The element and the
 * gst-check test compile this file directly.
 *
 * The mapping (docs/elements/cudalinksrc.md has the same table):
 *
 *   segment                        caps          pass
 *   uint8 x4                       RGBA / BGRA   copy (channel-order picks
 *                                                the label, bytes untouched)
 *   uint8 x3                       RGB           copy
 *   uint8 x1                       GRAY8         copy
 *   uint16 x4                      RGBA64_LE     copy
 *   uint16 x1                      GRAY16_LE     copy
 *   uint8 x2                       RGBA          convert (lossless)
 *   uint16 x2, uint16 x3           RGBA64_LE     convert (lossless)
 *   int8, int16, float16,
 *   bfloat16, float32 (any x)      RGBA or RGBA64_LE (float-format), convert
 *
 * Converted layouts: 1 channel -> R=G=B=v, A opaque; 2 channels -> R, G, 0,
 * opaque A, or with MONO_ALPHA R=G=B=luminance, A=alpha; 3 -> R, G, B,
 * opaque A; 4 -> R, G, B, A. Values follow the converter's numerics
 * (gstcudalinkconvert.h): floats clamp 0..1 to the integer range; signed
 * integers map 0..max to 0..max of the output, negative values clamp to 0.
 *
 * A vertical flip never changes the caps; it only turns a plain copy into a
 * converter pass (same layout, rows reversed).
 */
#ifndef __GST_CUDA_LINK_SRC_FORMAT_H__
#define __GST_CUDA_LINK_SRC_FORMAT_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include "cudalink.h"
#include "gstcudalinktypes.h"

G_BEGIN_DECLS

typedef enum
{
  GST_CUDA_LINK_FLOAT_FORMAT_RGBA = 0,
  GST_CUDA_LINK_FLOAT_FORMAT_RGBA64_LE = 1,
} GstCudaLinkFloatFormat;

typedef struct
{
  GstVideoFormat format;        /* what the caps say */
  guint out_comps;              /* 1, 3 or 4 */
  cudalink_dtype out_dtype;     /* UINT8 or UINT16 */
  gboolean convert;             /* TRUE: converter pass, FALSE: plain copy */
  gint swizzle[4];              /* out channel c <- source channel / ZERO / ONE */
  guint in_row_bytes;           /* tightly packed source row */
  guint out_row_bytes;          /* tightly packed output row */
} GstCudaLinkSrcPlan;

/* Plans the output for @fmt. FALSE (with a sentence in @why, which may be
 * NULL) only for a format the library would not have accepted (zero size,
 * num_comps outside 1..4, unknown dtype). */
gboolean gst_cuda_link_src_plan (const cudalink_format * fmt,
    GstCudaLinkChannelOrder order, GstCudaLinkFloatFormat float_format,
    GstCudaLinkSrcPlan * plan, gchar ** why);

/* Does a converter pass run for @plan with @flip? (flip needs one even
 * for a plain layout). */
gboolean gst_cuda_link_src_plan_needs_kernel (const GstCudaLinkSrcPlan * plan,
    gboolean flip);

/* Whether GStreamer's CUDA allocator can hold @format. Its list of
 * layouts (1.22 and 1.24 alike) lacks GRAY8, GRAY16_LE and RGBA64_LE:
 * 1.22's GstCudaAllocator even aborts on them, 1.24's fails. Those formats
 * are offered in system memory only (downloaded inside the element). */
gboolean gst_cuda_link_src_format_cuda_capable (GstVideoFormat format);

/* Caps for @plan at @width x @height: video/x-raw(memory:CUDAMemory) first
 * when @with_cuda and the format is CUDA capable, then plain video/x-raw.
 * framerate 0/1 (the producer's rate is unknown), pixel-aspect-ratio 1/1. */
GstCaps *gst_cuda_link_src_plan_caps (const GstCudaLinkSrcPlan * plan,
    guint width, guint height, gboolean with_cuda);

/* Every format the element can ever output, for the pad template. */
GstCaps *gst_cuda_link_src_template_caps (void);

G_END_DECLS

#endif
