/* cudalinksink: caps -> cuda-link frame format (see sinkformat.h). */
#include "sinkformat.h"

#include <gst/cuda/gstcudamemory.h>
#include <string.h>

/* Where R, G, B and A of one input format sit (component indices in
 * memory order), -1 where there is none. */
typedef struct
{
  GstVideoFormat format;
  guint comps;
  cudalink_dtype dtype;
  gint r, g, b, a;
} InputLayout;

static const InputLayout input_layouts[] = {
  {GST_VIDEO_FORMAT_RGBA, 4, CUDALINK_DTYPE_UINT8, 0, 1, 2, 3},
  {GST_VIDEO_FORMAT_RGBx, 4, CUDALINK_DTYPE_UINT8, 0, 1, 2, -1},
  {GST_VIDEO_FORMAT_BGRA, 4, CUDALINK_DTYPE_UINT8, 2, 1, 0, 3},
  {GST_VIDEO_FORMAT_BGRx, 4, CUDALINK_DTYPE_UINT8, 2, 1, 0, -1},
  {GST_VIDEO_FORMAT_RGB, 3, CUDALINK_DTYPE_UINT8, 0, 1, 2, -1},
  {GST_VIDEO_FORMAT_BGR, 3, CUDALINK_DTYPE_UINT8, 2, 1, 0, -1},
  {GST_VIDEO_FORMAT_GRAY8, 1, CUDALINK_DTYPE_UINT8, 0, -1, -1, -1},
  {GST_VIDEO_FORMAT_GRAY16_LE, 1, CUDALINK_DTYPE_UINT16, 0, -1, -1, -1},
  {GST_VIDEO_FORMAT_RGBA64_LE, 4, CUDALINK_DTYPE_UINT16, 0, 1, 2, 3},
};

cudalink_dtype
gst_cuda_link_sink_output_dtype (GstCudaLinkOutputDtype output_dtype,
    cudalink_dtype native)
{
  switch (output_dtype) {
    case GST_CUDA_LINK_OUTPUT_DTYPE_UINT8:
      return CUDALINK_DTYPE_UINT8;
    case GST_CUDA_LINK_OUTPUT_DTYPE_UINT16:
      return CUDALINK_DTYPE_UINT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16:
      return CUDALINK_DTYPE_FLOAT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_BFLOAT16:
      return CUDALINK_DTYPE_BFLOAT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32:
      return CUDALINK_DTYPE_FLOAT32;
    case GST_CUDA_LINK_OUTPUT_DTYPE_AUTO:
    default:
      return native;
  }
}

gboolean
gst_cuda_link_sink_map_format (GstVideoFormat format, guint width,
    guint height, GstCudaLinkChannelOrder order,
    GstCudaLinkOutputDtype output_dtype, gboolean flip_y,
    GstCudaLinkSinkMapping * mapping)
{
  const InputLayout *in = NULL;
  GstCudaLinkSinkMapping m;
  guint64 row, frame;
  guint i;

  g_return_val_if_fail (mapping != NULL, FALSE);
  memset (mapping, 0, sizeof (*mapping));

  for (i = 0; i < G_N_ELEMENTS (input_layouts); i++) {
    if (input_layouts[i].format == format) {
      in = &input_layouts[i];
      break;
    }
  }
  if (!in)
    return FALSE;
  if ((guint) order > GST_CUDA_LINK_CHANNEL_ORDER_BGRA)
    return FALSE;
  if ((guint) output_dtype > GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32)
    return FALSE;
  if (width < 1 || height < 1 || width > CUDALINK_MAX_DIMENSION ||
      height > CUDALINK_MAX_DIMENSION)
    return FALSE;

  memset (&m, 0, sizeof (m));
  m.src_comps = in->comps;
  m.src_dtype = in->dtype;
  m.src_pixel_size = in->comps * cudalink_dtype_size (in->dtype);

  m.format.width = width;
  m.format.height = height;
  m.format.dtype = gst_cuda_link_sink_output_dtype (output_dtype, in->dtype);
  m.format.flags = 0;
  m.flip_y = flip_y ? TRUE : FALSE;

  for (i = 0; i < 4; i++)
    m.swizzle[i] = GST_CUDA_LINK_SWIZZLE_ZERO;

  if (in->comps == 1) {
    /* gray: one channel, channel order does not apply */
    m.format.num_comps = 1;
    m.swizzle[0] = 0;
  } else {
    gint a = in->a >= 0 ? in->a : GST_CUDA_LINK_SWIZZLE_ONE;
    /* auto: B,G,R,A input keeps its bytes (and says so with the flag) */
    gboolean b_first = in->comps == 4 && in->b == 0;
    gboolean bgra = (order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA ||
        (order == GST_CUDA_LINK_CHANNEL_ORDER_AUTO && b_first)) &&
        m.format.dtype == CUDALINK_DTYPE_UINT8;

    m.format.num_comps = 4;
    m.order_ignored = order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA && !bgra;
    if (bgra) {
      m.format.flags = CUDALINK_FLAG_BGRA;
      m.swizzle[0] = in->b;
      m.swizzle[1] = in->g;
      m.swizzle[2] = in->r;
    } else {
      m.swizzle[0] = in->r;
      m.swizzle[1] = in->g;
      m.swizzle[2] = in->b;
    }
    m.swizzle[3] = a;
  }

  row = (guint64) width * m.format.num_comps * cudalink_dtype_size (m.format.dtype);
  frame = row * height;
  if (frame > G_MAXUINT32)
    return FALSE;
  m.row_size = (guint32) row;
  m.frame_size = (guint32) frame;

  m.plain = m.src_comps == m.format.num_comps &&
      m.src_dtype == m.format.dtype && !m.flip_y;
  for (i = 0; i < m.format.num_comps && m.plain; i++) {
    if (m.swizzle[i] != (gint) i)
      m.plain = FALSE;
  }

  m.td_unreadable = m.format.dtype == CUDALINK_DTYPE_BFLOAT16 ||
      m.format.dtype == CUDALINK_DTYPE_INT8 ||
      m.format.dtype == CUDALINK_DTYPE_INT16;

  *mapping = m;
  return TRUE;
}

gchar *
gst_cuda_link_sink_mapping_describe (const GstCudaLinkSinkMapping * m)
{
  const gchar *order;

  g_return_val_if_fail (m != NULL, NULL);

  if (m->format.num_comps == 1)
    order = "gray";
  else if (m->format.flags & CUDALINK_FLAG_BGRA)
    order = "BGRA";
  else
    order = "RGBA";

  return g_strdup_printf ("%ux%u %s x %u (%s)%s%s", m->format.width,
      m->format.height, cudalink_dtype_name (m->format.dtype), m->format.num_comps,
      order, m->flip_y ? ", flipped vertically" : "",
      m->plain ? ", plain copy" : ", GPU conversion");
}

GstCaps *
gst_cuda_link_sink_template_caps (void)
{
  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE_WITH_FEATURES
      (GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY, GST_CUDA_LINK_SINK_FORMATS) "; "
      GST_VIDEO_CAPS_MAKE (GST_CUDA_LINK_SINK_FORMATS));

  /* GST_VIDEO_CAPS_MAKE allows any size up to G_MAXINT; a segment carries
   * 1..CUDALINK_MAX_DIMENSION (gst_cuda_link_sink_map_format's check) */
  gst_caps_set_simple (caps,
      "width", GST_TYPE_INT_RANGE, 1, (gint) CUDALINK_MAX_DIMENSION,
      "height", GST_TYPE_INT_RANGE, 1, (gint) CUDALINK_MAX_DIMENSION, NULL);
  return caps;
}
