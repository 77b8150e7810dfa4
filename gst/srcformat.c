/* cudalinksrc: segment metadata -> caps and GPU pass (see srcformat.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "srcformat.h"

#include <gst/cuda/gstcudamemory.h>
#include <stdlib.h>
#include <string.h>

#define ZERO GST_CUDA_LINK_SWIZZLE_ZERO
#define ONE GST_CUDA_LINK_SWIZZLE_ONE

static void
set_swizzle (GstCudaLinkSrcPlan * plan, gint r, gint g, gint b, gint a)
{
  plan->swizzle[0] = r;
  plan->swizzle[1] = g;
  plan->swizzle[2] = b;
  plan->swizzle[3] = a;
}

/* Layout of a converted frame with @comps source channels into 4 output
 * channels. */
static void
set_expand_swizzle (GstCudaLinkSrcPlan * plan, guint comps, guint16 flags)
{
  switch (comps) {
    case 1:
      set_swizzle (plan, 0, 0, 0, ONE);
      break;
    case 2:
      if (flags & CUDALINK_FLAG_MONO_ALPHA)
        set_swizzle (plan, 0, 0, 0, 1);
      else
        set_swizzle (plan, 0, 1, ZERO, ONE);
      break;
    case 3:
      set_swizzle (plan, 0, 1, 2, ONE);
      break;
    default:
      set_swizzle (plan, 0, 1, 2, 3);
      break;
  }
}

/* Would the library have accepted @fmt? */
static gboolean
format_is_valid (const cudalink_format * fmt, gchar ** why)
{
  if (cudalink_dtype_size (fmt->dtype) == 0) {
    if (why)
      *why = g_strdup_printf ("unknown pixel data type %d", (gint) fmt->dtype);
    return FALSE;
  }
  if (fmt->num_comps < 1 || fmt->num_comps > 4) {
    if (why)
      *why = g_strdup_printf ("%u channels (must be 1..4)", fmt->num_comps);
    return FALSE;
  }
  if (fmt->width == 0 || fmt->height == 0 ||
      fmt->width > CUDALINK_MAX_DIMENSION ||
      fmt->height > CUDALINK_MAX_DIMENSION) {
    if (why)
      *why = g_strdup_printf ("size %ux%u (must be 1..%u)", fmt->width,
          fmt->height, CUDALINK_MAX_DIMENSION);
    return FALSE;
  }
  return TRUE;
}

gboolean
gst_cuda_link_src_plan (const cudalink_format * fmt,
    GstCudaLinkChannelOrder order, GstCudaLinkFloatFormat float_format,
    GstCudaLinkSrcPlan * plan, gchar ** why)
{
  guint in_size;

  g_return_val_if_fail (fmt != NULL && plan != NULL, FALSE);

  memset (plan, 0, sizeof (*plan));
  plan->format = GST_VIDEO_FORMAT_UNKNOWN;
  if (!format_is_valid (fmt, why))
    return FALSE;
  in_size = cudalink_dtype_size (fmt->dtype);

  set_swizzle (plan, 0, 1, 2, 3);
  plan->convert = FALSE;

  switch (fmt->dtype) {
    case CUDALINK_DTYPE_UINT8:
      plan->out_dtype = CUDALINK_DTYPE_UINT8;
      switch (fmt->num_comps) {
        case 4:{
          gboolean bgra;
          if (order == GST_CUDA_LINK_CHANNEL_ORDER_AUTO)
            bgra = (fmt->flags & CUDALINK_FLAG_BGRA) != 0;
          else
            bgra = order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA;
          plan->format = bgra ? GST_VIDEO_FORMAT_BGRA : GST_VIDEO_FORMAT_RGBA;
          plan->out_comps = 4;
          break;
        }
        case 3:
          plan->format = GST_VIDEO_FORMAT_RGB;
          plan->out_comps = 3;
          break;
        case 1:
          plan->format = GST_VIDEO_FORMAT_GRAY8;
          plan->out_comps = 1;
          break;
        default:               /* 2: RG or luminance + alpha, lossless */
          plan->format = GST_VIDEO_FORMAT_RGBA;
          plan->out_comps = 4;
          plan->convert = TRUE;
          set_expand_swizzle (plan, fmt->num_comps, fmt->flags);
          break;
      }
      break;
    case CUDALINK_DTYPE_UINT16:
      plan->out_dtype = CUDALINK_DTYPE_UINT16;
      switch (fmt->num_comps) {
        case 4:
          plan->format = GST_VIDEO_FORMAT_RGBA64_LE;
          plan->out_comps = 4;
          break;
        case 1:
          plan->format = GST_VIDEO_FORMAT_GRAY16_LE;
          plan->out_comps = 1;
          break;
        default:               /* 2 and 3: no 16-bit 2/3-channel format */
          plan->format = GST_VIDEO_FORMAT_RGBA64_LE;
          plan->out_comps = 4;
          plan->convert = TRUE;
          set_expand_swizzle (plan, fmt->num_comps, fmt->flags);
          break;
      }
      break;
    default:                   /* int8, int16, float16, bfloat16, float32 */
      if (float_format == GST_CUDA_LINK_FLOAT_FORMAT_RGBA64_LE) {
        plan->format = GST_VIDEO_FORMAT_RGBA64_LE;
        plan->out_dtype = CUDALINK_DTYPE_UINT16;
      } else {
        plan->format = GST_VIDEO_FORMAT_RGBA;
        plan->out_dtype = CUDALINK_DTYPE_UINT8;
      }
      plan->out_comps = 4;
      plan->convert = TRUE;
      set_expand_swizzle (plan, fmt->num_comps, fmt->flags);
      break;
  }

  if (!plan->convert) {
    /* plain copy: unused channels of the swizzle stay identity */
    set_swizzle (plan, 0, 1, 2, 3);
  }

  plan->in_row_bytes = fmt->width * fmt->num_comps * in_size;
  plan->out_row_bytes = fmt->width * plan->out_comps *
      cudalink_dtype_size (plan->out_dtype);

  return TRUE;
}

gboolean
gst_cuda_link_src_plan_needs_kernel (const GstCudaLinkSrcPlan * plan,
    gboolean flip)
{
  return plan->convert || flip;
}

gboolean
gst_cuda_link_src_format_cuda_capable (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_RGBA:
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_RGB:
      return TRUE;
    default:
      return FALSE;
  }
}

GstCaps *
gst_cuda_link_src_plan_caps (const GstCudaLinkSrcPlan * plan,
    guint width, guint height, gboolean with_cuda)
{
  GstVideoInfo info;
  GstCaps *sys, *caps;

  g_return_val_if_fail (plan != NULL, NULL);
  g_return_val_if_fail (plan->format != GST_VIDEO_FORMAT_UNKNOWN, NULL);

  if (!gst_video_info_set_format (&info, plan->format, width, height))
    return NULL;
  GST_VIDEO_INFO_FPS_N (&info) = 0;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  GST_VIDEO_INFO_PAR_N (&info) = 1;
  GST_VIDEO_INFO_PAR_D (&info) = 1;

  sys = gst_video_info_to_caps (&info);
  if (!sys)
    return NULL;

  if (!with_cuda || !gst_cuda_link_src_format_cuda_capable (plan->format))
    return sys;

  caps = gst_caps_copy (sys);
  gst_caps_set_features_simple (caps,
      gst_caps_features_new (GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY, NULL));
  gst_caps_append (caps, sys);

  return caps;
}

GstCaps *
gst_cuda_link_src_template_caps (void)
{
  GstCaps *caps = gst_caps_from_string ("video/x-raw("
      GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY "), "
      "format = (string) { RGBA, BGRA, RGB }, "
      "framerate = (fraction) [ 0/1, MAX ]; "
      "video/x-raw, format = (string) { RGBA, BGRA, RGB, GRAY8, GRAY16_LE, "
      "RGBA64_LE }, framerate = (fraction) [ 0/1, MAX ]");

  /* the sizes a segment can announce (cudalink_header_parse's check) */
  gst_caps_set_simple (caps,
      "width", GST_TYPE_INT_RANGE, 1, (gint) CUDALINK_MAX_DIMENSION,
      "height", GST_TYPE_INT_RANGE, 1, (gint) CUDALINK_MAX_DIMENSION, NULL);
  return caps;
}
