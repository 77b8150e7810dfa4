/* Shared by cudalinksink and cudalinksrc (see gstcudalinkutils.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinkutils.h"

#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudautils.h>
#include <stdlib.h>

static int
compare_u64 (const void *a, const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return (x > y) - (x < y);
}

guint64
gst_cuda_link_percentile (guint64 * samples, guint n, guint pct)
{
  guint rank;

  if (n == 0)
    return 0;
  if (pct > 100)
    pct = 100;

  qsort (samples, n, sizeof (guint64), compare_u64);
  /* nearest rank: ceil (pct / 100 * n), at least 1 */
  rank = (pct * n + 99) / 100;
  if (rank == 0)
    rank = 1;
  return samples[rank - 1];
}

gboolean
gst_cuda_link_staging_fits (const GstCudaLinkStaging * staging, gsize row,
    guint height)
{
  return staging->ptr && staging->row == row && staging->height == height;
}

void
gst_cuda_link_staging_free (GstCudaLinkStaging * staging,
    GstCudaContext * context)
{
  if (staging->ptr && context && gst_cuda_context_push (context)) {
    gst_cuda_result (CuMemFree (staging->ptr));
    gst_cuda_context_pop (NULL);
  }
  staging->ptr = 0;
  staging->pitch = staging->row = 0;
  staging->height = 0;
}

gboolean
gst_cuda_link_staging_ensure (GstCudaLinkStaging * staging,
    GstElement * element, GstCudaContext * context, gsize row, guint height)
{
  CUresult res;
  const gchar *ename = NULL;

  if (gst_cuda_link_staging_fits (staging, row, height))
    return TRUE;

  gst_cuda_link_staging_free (staging, context);
  if (!gst_cuda_context_push (context)) {
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
        ("Could not make the CUDA context current."), (NULL));
    return FALSE;
  }
  res = CuMemAllocPitch (&staging->ptr, &staging->pitch, row, height, 16);
  gst_cuda_context_pop (NULL);
  if (res != CUDA_SUCCESS) {
    CuGetErrorName (res, &ename);
    GST_ELEMENT_ERROR (element, RESOURCE, NO_SPACE_LEFT,
        ("Could not allocate a %" G_GSIZE_FORMAT " x %u byte buffer on the "
            "GPU.", row, height), ("cuMemAllocPitch: %s", ename ? ename : "?"));
    staging->ptr = 0;
    staging->pitch = 0;
    return FALSE;
  }
  staging->row = row;
  staging->height = height;
  return TRUE;
}

GType
gst_cuda_link_enum_type (gsize * once, const gchar * name,
    const GEnumValue * values)
{
  if (g_once_init_enter (once)) {
    GType t = g_enum_register_static (name, values);
    g_once_init_leave (once, t);
  }
  return (GType) * once;
}
