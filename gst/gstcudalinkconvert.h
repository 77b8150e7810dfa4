/* GPU pixel conversion for the cudalink elements: one generic kernel that
 * reads any protocol dtype/channel layout and writes any other, with a
 * channel swizzle and an optional vertical flip, in a single pass.
 *
 * The kernel source (kernels/cudalink-convert.cu) is compiled at build time
 * with nvcc to PTX for the lowest architecture the toolkit supports and
 * embedded in the plugin; when the driver rejects that PTX (a driver older
 * than the build's toolkit) the same source, also embedded, is compiled at
 * run time with NVRTC (GStreamer's helper, then a direct NVRTC call for the
 * device's own architecture, since 1.22's helper asks for compute_52, which
 * NVRTC 13 refuses). The plain path (same layout, no flip) needs none of
 * this: the format planners (sinkformat.h, srcformat.h) say when a plain
 * 2-D copy does.
 *
 * Alignment: rows of 2- and 4-byte dtypes must start at multiples of the
 * component size (any pitch from cuMemAllocPitch, GstCudaMemory or a
 * tightly packed cuda-link slot is).
 *
 * Numerics: integer -> float maps to 0..1 (unsigned: v / max; signed:
 * v / max, so -1..1); float -> integer clamps to 0..1 (signed: -1..1),
 * scales by the type's max and rounds to nearest; integer -> integer of
 * another width goes through the same normalised value (uint8 -> uint16 is
 * v * 257, exact). Same dtype -> bits are copied unchanged.
 */
#ifndef __GST_CUDA_LINK_CONVERT_H__
#define __GST_CUDA_LINK_CONVERT_H__

#include <gst/gst.h>
#include <gst/cuda/gstcudacontext.h>
#include <cuda.h>

#include "cudalink.h"
#include "gstcudalinktypes.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 src;                  /* CUdeviceptr */
  gsize src_pitch;              /* bytes per source row */
  guint src_comps;              /* 1..4 (3 allowed: RGB/BGR input) */
  cudalink_dtype src_dtype;

  guint64 dst;
  gsize dst_pitch;
  guint dst_comps;              /* 1..4 */
  cudalink_dtype dst_dtype;

  guint width;
  guint height;
  gint swizzle[4];              /* dst channel c <- swizzle[c] (only dst_comps used) */
  gboolean flip_y;              /* dst row y <- src row (height - 1 - y) */
} GstCudaLinkConvertParams;

typedef struct _GstCudaLinkConverter GstCudaLinkConverter;

/* Loads the kernels into @context (embedded PTX, else NVRTC). NULL with
 * @error set when neither works; the message says which conversions are
 * then unavailable. */
GstCudaLinkConverter *gst_cuda_link_converter_new (GstCudaContext * context,
    GError ** error);

/* Enqueues the conversion on @stream; the caller pushes @context current
 * or not, the function does it itself. */
gboolean gst_cuda_link_converter_run (GstCudaLinkConverter * conv,
    const GstCudaLinkConvertParams * params, CUstream stream, GError ** error);

void gst_cuda_link_converter_free (GstCudaLinkConverter * conv);

/* Where the kernels came from ("embedded PTX (compute_75)", "NVRTC ..."),
 * for logs and tests. Owned by @conv. */
const gchar *gst_cuda_link_converter_origin (GstCudaLinkConverter * conv);

G_END_DECLS

#endif
