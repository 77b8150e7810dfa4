/* What cudalinksink and cudalinksrc both need: their enum property types,
 * nearest-rank percentiles for their stats, and a pitched device buffer
 * that a frame passes through (the sink's upload target, the src's copy
 * before a download). */
#ifndef __GST_CUDA_LINK_UTILS_H__
#define __GST_CUDA_LINK_UTILS_H__

#include <gst/gst.h>
#include <gst/cuda/gstcudacontext.h>

G_BEGIN_DECLS

/* Registers the enum type @name with @values (terminated by a zeroed entry)
 * once; @once is the caller's static storage for it. */
GType gst_cuda_link_enum_type (gsize * once, const gchar * name,
    const GEnumValue * values);

/* The @pct (0..100) percentile of @n samples, nearest-rank; 0 when n == 0.
 * Sorts @samples in place. */
guint64 gst_cuda_link_percentile (guint64 * samples, guint n, guint pct);

typedef struct
{
  CUdeviceptr ptr;              /* 0: none */
  gsize pitch;
  gsize row;                    /* bytes of a row asked for */
  guint height;
} GstCudaLinkStaging;

/* Does @staging already hold @row x @height? */
gboolean gst_cuda_link_staging_fits (const GstCudaLinkStaging * staging,
    gsize row, guint height);

/* Makes @staging a @row x @height pitched buffer in @context (kept when it
 * already fits, else freed and allocated anew). FALSE after posting a
 * RESOURCE error on @element when the GPU has no room. */
gboolean gst_cuda_link_staging_ensure (GstCudaLinkStaging * staging,
    GstElement * element, GstCudaContext * context, gsize row, guint height);

/* Frees @staging (a no-op when it holds nothing). */
void gst_cuda_link_staging_free (GstCudaLinkStaging * staging,
    GstCudaContext * context);

G_END_DECLS

#endif
