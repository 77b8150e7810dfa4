/**
 * SECTION:element-cudalinksrc
 * @title: cudalinksrc
 * @see_also: cudalinksink, cudadownload
 *
 * Attaches to the named shared-memory segment of a cuda-link producer,
 * copies every new frame from the producer's GPU ring into a pooled buffer
 * on the GPU (one 2-D copy, or one conversion kernel for formats GStreamer
 * has no name for), and pushes it as a live stream. The frame never passes
 * through system memory unless downstream asks for plain video/x-raw, in
 * which case the element downloads it itself.
 *
 * The caps follow the segment's metadata (docs/elements/cudalinksrc.md has
 * the table); when the producer changes size or format the element pushes
 * new caps and carries on. It says on the bus when it waits, connects,
 * loses or finds a producer stalled ("cudalink-state" element messages).
 *
 * TouchDesigner's Python-based Sender publishes its 8-bit textures in BGRA
 * byte order without saying so: use `channel-order=bgra` for it, and
 * `video-direction=vert` when the image arrives upside down (OpenGL rows).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 cudalinksrc ipc-name=td ! videoconvert ! autovideosink
 * ]| Shows what a producer publishes under "td".
 * |[
 * gst-launch-1.0 cudalinksrc ipc-name=td channel-order=bgra video-direction=vert ! \
 *     cudaconvert ! nvh264enc ! h264parse ! mp4mux ! filesink location=td.mp4 -e
 * ]| Records a TouchDesigner Sender with NVENC, all on the GPU.
 *
 * Since: 0.1
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinksrc.h"
#include "gstcudalink.h"

#include <gst/video/video.h>
#include <gst/cuda/gstcudautils.h>
#include <gst/cuda/gstcudabufferpool.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <string.h>

#include "cudalink.h"
#include "gstcudalinkreader.h"
#include "gstcudalinkutils.h"
#include "srcformat.h"

GST_DEBUG_CATEGORY (gst_cuda_link_src_debug);
#define GST_CAT_DEFAULT gst_cuda_link_src_debug

enum
{
  PROP_0,
  PROP_IPC_NAME,
  PROP_TIMEOUT,
  PROP_ON_PRODUCER_LOSS,
  PROP_CHANNEL_ORDER,
  PROP_FLOAT_FORMAT,
  PROP_DEVICE_ID,
  PROP_POLL_INTERVAL,
  PROP_STATS,
  PROP_VIDEO_DIRECTION,
  PROP_GPU_WAIT,
  PROP_WAKE_SPIN,
  PROP_FRAME_TIMEOUT,
  PROP_STATS_INTERVAL,
  PROP_IO_MODE,
};

#define DEFAULT_IPC_NAME "cudalink"
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_ON_PRODUCER_LOSS GST_CUDA_LINK_SRC_LOSS_WAIT
#define DEFAULT_CHANNEL_ORDER GST_CUDA_LINK_CHANNEL_ORDER_AUTO
#define DEFAULT_FLOAT_FORMAT GST_CUDA_LINK_FLOAT_FORMAT_RGBA
#define DEFAULT_DEVICE_ID -1
#define DEFAULT_POLL_INTERVAL_US 1000
#define DEFAULT_VIDEO_DIRECTION GST_VIDEO_ORIENTATION_IDENTITY
#define DEFAULT_GPU_WAIT GST_CUDA_LINK_GPU_WAIT_NAP
#define DEFAULT_WAKE_SPIN TRUE
/* a foreign producer this long without a frame is reported stalled
 * (docs/elements/cudalinksrc.md says why 5 s) */
#define DEFAULT_FRAME_TIMEOUT_MS 5000
#define DEFAULT_IO_MODE GST_CUDA_LINK_IO_MODE_AUTO
#define DEFAULT_STATS_INTERVAL_MS 0

/* Time budget of one frame's copy, for the LATENCY query. */
#define COPY_BUDGET (1 * GST_MSECOND)

struct _GstCudaLinkSrc
{
  GstBaseSrc parent;

  /* properties, under the object lock */
  gchar *ipc_name;
  gint64 timeout_ms;
  GstCudaLinkSrcLossAction on_loss;
  GstCudaLinkChannelOrder channel_order;
  GstCudaLinkFloatFormat float_format;
  gint device_id;
  guint poll_interval_us;
  GstVideoOrientationMethod direction;
  GstCudaLinkGpuWait gpu_wait;
  gboolean wake_spin;
  guint frame_timeout_ms;
  GstCudaLinkIoMode io_mode;
  guint stats_interval_ms;

  /* the transport: consumer, stream, copies, stats (init to finalize) */
  GstCudaLinkReader *reader;

  /* CUDA, from start() to stop() (NULL without a driver) */
  GstCudaContext *context;
  GstCudaLinkStatsTicker *ticker;       /* stats-interval, start to stop */

  /* negotiated output, under the object lock (written by the streaming
   * thread) */
  GstVideoInfo out_info;
  gboolean out_cuda;
  gboolean out_valid;
  gboolean caps_pending;        /* streaming thread: negotiate first */
};

/* enum types */

#define GST_TYPE_CUDA_LINK_SRC_LOSS_ACTION (gst_cuda_link_src_loss_action_get_type ())
static GType
gst_cuda_link_src_loss_action_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_SRC_LOSS_WAIT,
        "Keep waiting and resume when a producer comes back", "wait"},
    {GST_CUDA_LINK_SRC_LOSS_EOS, "End the stream (EOS)", "eos"},
    {GST_CUDA_LINK_SRC_LOSS_ERROR, "Post an error", "error"},
    {0, NULL, NULL},
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkSrcLossAction", values);
}

#define GST_TYPE_CUDA_LINK_FLOAT_FORMAT (gst_cuda_link_float_format_get_type ())
static GType
gst_cuda_link_float_format_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_FLOAT_FORMAT_RGBA, "8 bits per channel (RGBA)", "rgba"},
    {GST_CUDA_LINK_FLOAT_FORMAT_RGBA64_LE,
        "16 bits per channel (RGBA64_LE)", "rgba64-le"},
    {0, NULL, NULL},
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkFloatFormat", values);
}

static void gst_cuda_link_src_video_direction_init (GstVideoDirectionInterface *
    iface);

#define gst_cuda_link_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstCudaLinkSrc, gst_cuda_link_src, GST_TYPE_BASE_SRC,
    G_IMPLEMENT_INTERFACE (GST_TYPE_VIDEO_DIRECTION,
        gst_cuda_link_src_video_direction_init));
GST_ELEMENT_REGISTER_DEFINE (cudalinksrc, "cudalinksrc", GST_RANK_NONE,
    GST_TYPE_CUDA_LINK_SRC);

static void
gst_cuda_link_src_video_direction_init (GstVideoDirectionInterface * iface)
{
  /* the property is all there is */
}

/* ------------------------------------------------------------------------ */
/* properties                                                               */
/* ------------------------------------------------------------------------ */

static gboolean
direction_supported (GstVideoOrientationMethod method)
{
  return method == GST_VIDEO_ORIENTATION_IDENTITY ||
      method == GST_VIDEO_ORIENTATION_VERT ||
      method == GST_VIDEO_ORIENTATION_AUTO;
}

static GstStructure *
gst_cuda_link_src_stats (GstElement * element)
{
  return gst_cuda_link_reader_get_stats (GST_CUDA_LINK_SRC (element)->reader);
}

static void
gst_cuda_link_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IPC_NAME:
      g_free (self->ipc_name);
      self->ipc_name = g_value_dup_string (value);
      if (!self->ipc_name)
        self->ipc_name = g_strdup (DEFAULT_IPC_NAME);
      break;
    case PROP_TIMEOUT:
      self->timeout_ms = g_value_get_int64 (value);
      break;
    case PROP_ON_PRODUCER_LOSS:
      self->on_loss = g_value_get_enum (value);
      break;
    case PROP_CHANNEL_ORDER:
      self->channel_order = g_value_get_enum (value);
      break;
    case PROP_FLOAT_FORMAT:
      self->float_format = g_value_get_enum (value);
      break;
    case PROP_DEVICE_ID:
      self->device_id = g_value_get_int (value);
      break;
    case PROP_POLL_INTERVAL:
      self->poll_interval_us = g_value_get_uint (value);
      break;
    case PROP_GPU_WAIT:{
      GstCudaLinkGpuWait wait = g_value_get_enum (value);
      if (wait != GST_CUDA_LINK_GPU_WAIT_NONE) {
        self->gpu_wait = wait;
      } else {
        GST_OBJECT_UNLOCK (self);
        GST_WARNING_OBJECT (self, "gpu-wait=none refused");
        GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
            ("cudalinksrc always waits for its copy (its torn-frame check "
                "needs it done): gpu-wait=none is not possible; keeping the "
                "current one."), (NULL));
        return;
      }
      break;
    }
    case PROP_WAKE_SPIN:
      self->wake_spin = g_value_get_boolean (value);
      break;
    case PROP_FRAME_TIMEOUT:
      self->frame_timeout_ms = g_value_get_uint (value);
      break;
    case PROP_IO_MODE:
      self->io_mode = g_value_get_enum (value);
      break;
    case PROP_STATS_INTERVAL:
      self->stats_interval_ms = g_value_get_uint (value);
      break;
    case PROP_VIDEO_DIRECTION:{
      GstVideoOrientationMethod method = g_value_get_enum (value);
      if (direction_supported (method)) {
        self->direction = method;
      } else {
        GST_OBJECT_UNLOCK (self);
        GST_WARNING_OBJECT (self, "video-direction %d refused", method);
        GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
            ("cudalinksrc only flips vertically: video-direction must be "
                "identity, vert or auto; keeping the current one."),
            ("unsupported video-direction %d", method));
        return;
      }
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_cuda_link_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, gst_cuda_link_src_stats (GST_ELEMENT (self)));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IPC_NAME:
      g_value_set_string (value, self->ipc_name);
      break;
    case PROP_TIMEOUT:
      g_value_set_int64 (value, self->timeout_ms);
      break;
    case PROP_ON_PRODUCER_LOSS:
      g_value_set_enum (value, self->on_loss);
      break;
    case PROP_CHANNEL_ORDER:
      g_value_set_enum (value, self->channel_order);
      break;
    case PROP_FLOAT_FORMAT:
      g_value_set_enum (value, self->float_format);
      break;
    case PROP_DEVICE_ID:
      g_value_set_int (value, self->device_id);
      break;
    case PROP_POLL_INTERVAL:
      g_value_set_uint (value, self->poll_interval_us);
      break;
    case PROP_GPU_WAIT:
      g_value_set_enum (value, self->gpu_wait);
      break;
    case PROP_WAKE_SPIN:
      g_value_set_boolean (value, self->wake_spin);
      break;
    case PROP_FRAME_TIMEOUT:
      g_value_set_uint (value, self->frame_timeout_ms);
      break;
    case PROP_IO_MODE:
      g_value_set_enum (value, self->io_mode);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint (value, self->stats_interval_ms);
      break;
    case PROP_VIDEO_DIRECTION:
      g_value_set_enum (value, self->direction);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------------------ */
/* context                                                                  */
/* ------------------------------------------------------------------------ */

static void
gst_cuda_link_src_set_context (GstElement * element, GstContext * context)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (element);
  gint device_id;

  GST_OBJECT_LOCK (self);
  device_id = self->device_id;
  GST_OBJECT_UNLOCK (self);

  /* only picks a shared GstCudaContext out of @context, no CUDA call */
  gst_cuda_handle_set_context (element, context, device_id, &self->context);

  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

/* ------------------------------------------------------------------------ */
/* caps and allocation                                                      */
/* ------------------------------------------------------------------------ */

static GstCaps *
gst_cuda_link_src_get_caps (GstBaseSrc * bsrc, GstCaps * filter)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCaps *caps = NULL;

  caps = gst_cuda_link_reader_get_caps (self->reader);
  if (!caps)
    caps = gst_pad_get_pad_template_caps (GST_BASE_SRC_PAD (bsrc));

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }

  return caps;
}

static gboolean
gst_cuda_link_src_negotiate (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCaps *caps = gst_cuda_link_reader_get_caps (self->reader);

  /* Before the producer is found there is nothing to offer: create()
   * negotiates once it knows the format. */
  if (!caps) {
    GST_DEBUG_OBJECT (self, "no producer yet, negotiation deferred");
    return TRUE;
  }
  gst_caps_unref (caps);

  return GST_BASE_SRC_CLASS (parent_class)->negotiate (bsrc);
}

static gboolean
gst_cuda_link_src_set_caps (GstBaseSrc * bsrc, GstCaps * caps)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstVideoInfo info;
  GstCapsFeatures *features;
  gboolean cuda;

  if (!gst_video_info_from_caps (&info, caps)) {
    GST_WARNING_OBJECT (self, "invalid caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  features = gst_caps_get_features (caps, 0);
  cuda = features && gst_caps_features_contains (features,
      GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY);

  if (cuda && !self->context) {
    GST_WARNING_OBJECT (self, "CUDA memory caps without a CUDA context");
    return FALSE;
  }

  gst_cuda_link_reader_set_output (self->reader, &info, cuda);
  GST_OBJECT_LOCK (self);
  self->out_info = info;
  self->out_cuda = cuda;
  self->out_valid = TRUE;
  GST_OBJECT_UNLOCK (self);

  GST_DEBUG_OBJECT (self, "output %" GST_PTR_FORMAT, caps);
  return TRUE;
}

static gboolean
gst_cuda_link_src_decide_allocation (GstBaseSrc * bsrc, GstQuery * query)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCaps *caps = NULL;
  GstBufferPool *pool = NULL;
  GstStructure *config;
  GstVideoInfo info;
  guint size, min = 0, max = 0;
  gboolean update, cuda;

  gst_query_parse_allocation (query, &caps, NULL);
  if (!caps) {
    /* negotiation deferred (no producer yet) */
    return TRUE;
  }
  if (!gst_video_info_from_caps (&info, caps)) {
    GST_WARNING_OBJECT (self, "invalid caps in allocation query");
    return FALSE;
  }
  cuda = gst_caps_features_contains (gst_caps_get_features (caps, 0),
      GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY);

  update = gst_query_get_n_allocation_pools (query) > 0;
  if (update)
    gst_query_parse_nth_allocation_pool (query, 0, &pool, &size, &min, &max);
  size = GST_VIDEO_INFO_SIZE (&info);

  if (pool && cuda) {
    /* keep a downstream pool only when it is a CUDA pool on our context */
    if (!GST_IS_CUDA_BUFFER_POOL (pool) ||
        GST_CUDA_BUFFER_POOL (pool)->context != self->context) {
      gst_clear_object (&pool);
    }
  } else if (pool && GST_IS_CUDA_BUFFER_POOL (pool)) {
    /* system memory caps: a pool that lives on the GPU is no use */
    gst_clear_object (&pool);
  }

  if (!pool) {
    if (cuda)
      pool = gst_cuda_buffer_pool_new (self->context);
    else
      pool = gst_video_buffer_pool_new ();
  }

  /* one buffer being filled, one downstream at least */
  if (min < 2)
    min = 2;
  if (max != 0 && max < min)
    max = min;

  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_set_params (config, caps, size, min, max);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (pool, config)) {
    config = gst_buffer_pool_get_config (pool);
    if (!gst_buffer_pool_config_validate_params (config, caps, size, min, max)
        || !gst_buffer_pool_set_config (pool, config)) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Could not configure a buffer pool for %s frames.",
              cuda ? "CUDA" : "system memory"),
          ("caps %" GST_PTR_FORMAT, caps));
      gst_object_unref (pool);
      return FALSE;
    }
  }

  /* the CUDA pool writes back its pitched size */
  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_get_params (config, NULL, &size, NULL, NULL);
  gst_structure_free (config);

  if (update)
    gst_query_set_nth_allocation_pool (query, 0, pool, size, min, max);
  else
    gst_query_add_allocation_pool (query, pool, size, min, max);

  gst_object_unref (pool);
  return TRUE;
}

static gboolean
gst_cuda_link_src_query (GstBaseSrc * bsrc, GstQuery * query)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CONTEXT:
      if (self->context && gst_cuda_handle_context_query (GST_ELEMENT (self),
              query, self->context))
        return TRUE;
      break;
    case GST_QUERY_LATENCY:{
      GstClockTime min;
      gboolean started = GST_OBJECT_FLAG_IS_SET (self,
          GST_BASE_SRC_FLAG_STARTED);

      if (!started)
        return FALSE;

      /* A frame is timestamped when it arrives and pushed after its copy:
       * the copy budget, plus the polling interval by which a foreign
       * producer's frame can be late, plus the download when downstream
       * wants system memory (estimated at 4 GB/s). */
      GST_OBJECT_LOCK (self);
      min = COPY_BUDGET + (GstClockTime) self->poll_interval_us * GST_USECOND;
      if (self->out_valid && !self->out_cuda)
        min += GST_VIDEO_INFO_SIZE (&self->out_info) / 4;
      GST_OBJECT_UNLOCK (self);

      /* nothing is queued inside the element: max == min */
      gst_query_set_latency (query, TRUE, min, min);
      GST_DEBUG_OBJECT (self, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS (min));
      return TRUE;
    }
    default:
      break;
  }

  return GST_BASE_SRC_CLASS (parent_class)->query (bsrc, query);
}

/* ------------------------------------------------------------------------ */
/* start / stop                                                             */
/* ------------------------------------------------------------------------ */

static gboolean
gst_cuda_link_src_start (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCudaLinkReaderConfig config;
  gchar why[512] = "";
  gchar *name;
  GError *err = NULL;
  gboolean ok;
  guint interval_ms;

  GST_OBJECT_LOCK (self);
  name = g_strdup (self->ipc_name);
  config.timeout_ms = self->timeout_ms;
  config.device_id = self->device_id;
  config.poll_interval_us = self->poll_interval_us;
  config.gpu_wait = self->gpu_wait;
  config.wake_spin = self->wake_spin;
  config.frame_timeout_ms = self->frame_timeout_ms;
  config.io_mode = self->io_mode;
  interval_ms = self->stats_interval_ms;
  config.channel_order = self->channel_order;
  config.float_format = self->float_format;
  GST_OBJECT_UNLOCK (self);

  /* the name first: it needs no driver */
  if (cudalink_check_name_why (name, why, sizeof (why)) != CUDALINK_OK) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Invalid ipc-name '%s': %s.", name, why), (NULL));
    g_free (name);
    return FALSE;
  }

  /* Without a driver the element still starts: the segment is checked
   * first (in create()), so that a bad one is reported as such also on a
   * machine without a driver. */
  if (gst_cuda_link_load_driver (why, sizeof (why)) == CUDALINK_OK) {
    if (!gst_cuda_link_cuda_open (GST_ELEMENT (self), config.device_id,
            &self->context, NULL)) {
      g_free (name);
      return FALSE;
    }
  } else {
    gst_clear_object (&self->context);
    GST_INFO_OBJECT (self, "no CUDA: %s", why);
  }
  config.name = name;
  config.context = self->context;
  config.no_driver_why = why;

  ok = gst_cuda_link_reader_start (self->reader, &config, &err);
  g_free (name);
  if (!ok) {
    gst_element_message_full (GST_ELEMENT (self), GST_MESSAGE_ERROR,
        err->domain, err->code, g_strdup (err->message), g_strdup (why),
        __FILE__, GST_FUNCTION, __LINE__);
    g_clear_error (&err);
    gst_cuda_link_reader_stop (self->reader);
    gst_clear_object (&self->context);
    return FALSE;
  }

  GST_OBJECT_LOCK (self);
  self->out_valid = FALSE;
  GST_OBJECT_UNLOCK (self);
  self->caps_pending = FALSE;
  if (interval_ms > 0)
    self->ticker = gst_cuda_link_stats_ticker_start (GST_ELEMENT (self),
        interval_ms, gst_cuda_link_src_stats);
  return TRUE;
}

static gboolean
gst_cuda_link_src_stop (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  g_clear_pointer (&self->ticker, gst_cuda_link_stats_ticker_stop);
  gst_cuda_link_reader_stop (self->reader);
  gst_clear_object (&self->context);

  GST_OBJECT_LOCK (self);
  self->out_valid = FALSE;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* create                                                                   */
/* ------------------------------------------------------------------------ */

/* Negotiates the reader's caps; FALSE when downstream refuses them (after
 * posting an error, unless flushing). */
static gboolean
gst_cuda_link_src_renegotiate (GstCudaLinkSrc * self)
{
  GstCaps *caps = gst_cuda_link_reader_get_caps (self->reader);
  cudalink_format fmt;
  GstCudaLinkSrcPlan plan;
  gboolean match = FALSE;

  self->caps_pending = FALSE;
  if (gst_base_src_negotiate (GST_BASE_SRC (self)) &&
      gst_cuda_link_reader_get_plan (self->reader, &fmt, &plan)) {
    GST_OBJECT_LOCK (self);
    match = self->out_valid &&
        GST_VIDEO_INFO_FORMAT (&self->out_info) == plan.format &&
        (guint) GST_VIDEO_INFO_WIDTH (&self->out_info) == fmt.width &&
        (guint) GST_VIDEO_INFO_HEIGHT (&self->out_info) == fmt.height;
    GST_OBJECT_UNLOCK (self);
  }

  if (match) {
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  } else if (!gst_cuda_link_reader_is_flushing (self->reader)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept what cuda-link segment '%s' publishes.",
            self->ipc_name), ("offered %" GST_PTR_FORMAT, caps));
  }
  gst_clear_caps (&caps);
  return match;
}

/* The pipeline clock read together with cudalink_now (): where a frame's
 * wake-up lies on that clock. */
typedef struct
{
  GstClockTime clock_time;      /* NONE: no clock */
  gdouble now;
} ClockMark;

/* A clock that is not the monotonic one (an audio device's, a network
 * clock) runs at its own rate: over a wait the two part by that difference
 * (100 ppm: 5 us over this limit). After a longer wait the clock is read
 * again once the frame came. */
#define CLOCK_MARK_MAX_AGE_S 0.05

static void
mark_clock (GstCudaLinkSrc * self, ClockMark * mark)
{
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));

  mark->clock_time = GST_CLOCK_TIME_NONE;
  if (!clock)
    return;
  mark->clock_time = gst_clock_get_time (clock);
  mark->now = cudalink_now ();
  gst_object_unref (clock);
}

/* The running time of a frame the reader saw at @woken (cudalink_now ()),
 * from the clock as @mark read it before the wait: once the frame is
 * there, dating it costs nothing but the base time (on the H200 reading
 * the clock afterwards cost 5 us of each frame's latency). */
static GstClockTime
arrival_time (GstCudaLinkSrc * self, const ClockMark * before, gdouble woken)
{
  ClockMark after;
  const ClockMark *mark = before;
  GstClockTime base, at, back;
  gdouble since;

  if (!GST_CLOCK_TIME_IS_VALID (before->clock_time)
      || woken - before->now > CLOCK_MARK_MAX_AGE_S) {
    mark_clock (self, &after);
    mark = &after;
  }
  if (!GST_CLOCK_TIME_IS_VALID (mark->clock_time))
    return GST_CLOCK_TIME_NONE;
  /* usually after the mark; before it when the mark was taken after the
   * wake-up (the long-wait case) */
  since = (woken - mark->now) * GST_SECOND;
  if (since >= 0) {
    at = mark->clock_time + (GstClockTime) since;
  } else {
    back = (GstClockTime) (-since);
    at = mark->clock_time > back ? mark->clock_time - back : 0;
  }
  base = gst_element_get_base_time (GST_ELEMENT (self));
  return at > base ? at - base : 0;
}

/* on-producer-loss, for a producer that went away or (@stalled, after a
 * warning) went quiet for frame-timeout; OK to go on waiting (a stalled one
 * resumes when its frames come back) */
static GstFlowReturn
gst_cuda_link_src_producer_lost (GstCudaLinkSrc * self, gboolean stalled)
{
  GstCudaLinkSrcLossAction action;
  guint timeout_ms;

  GST_OBJECT_LOCK (self);
  action = self->on_loss;
  timeout_ms = self->frame_timeout_ms;
  GST_OBJECT_UNLOCK (self);

  if (stalled)
    GST_ELEMENT_WARNING (self, RESOURCE, READ,
        ("No frame from the producer of cuda-link segment '%s' for %u ms: it "
            "may have hung or died without saying so, or be paused.",
            self->ipc_name, timeout_ms), ("frame-timeout=%u", timeout_ms));

  switch (action) {
    case GST_CUDA_LINK_SRC_LOSS_EOS:
      GST_INFO_OBJECT (self, "producer gone, EOS");
      return GST_FLOW_EOS;
    case GST_CUDA_LINK_SRC_LOSS_ERROR:
      if (stalled)
        GST_ELEMENT_ERROR (self, RESOURCE, READ,
            ("The producer of cuda-link segment '%s' stopped sending frames.",
                self->ipc_name), ("frame-timeout passed "
                "(on-producer-loss=error)"));
      else
        GST_ELEMENT_ERROR (self, RESOURCE, READ,
            ("The producer of cuda-link segment '%s' went away.",
                self->ipc_name), ("%s (on-producer-loss=error)",
                gst_cuda_link_reader_error_detail (self->reader)));
      return GST_FLOW_ERROR;
    default:
      GST_INFO_OBJECT (self, "producer gone, waiting for a new one");
      return GST_FLOW_OK;
  }
}

static GstFlowReturn
gst_cuda_link_src_create (GstBaseSrc * bsrc, guint64 offset, guint size,
    GstBuffer ** out)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCudaLinkReaderFrame frame;
  GstCudaLinkReadResult res;
  GstFlowReturn ret = GST_FLOW_OK;
  GError *err = NULL;
  ClockMark mark;
  gboolean flip;

  do {
    GstBufferPool *pool;

    if (self->caps_pending && !gst_cuda_link_src_renegotiate (self))
      return gst_cuda_link_reader_is_flushing (self->reader) ?
          GST_FLOW_FLUSHING : GST_FLOW_NOT_NEGOTIATED;

    GST_OBJECT_LOCK (self);
    flip = self->direction == GST_VIDEO_ORIENTATION_VERT;
    GST_OBJECT_UNLOCK (self);
    pool = gst_base_src_get_buffer_pool (bsrc);
    mark_clock (self, &mark);
    res = gst_cuda_link_reader_read (self->reader, pool, flip, out, &frame,
        &err);
    if (pool)
      gst_object_unref (pool);

    if (res == GST_CUDA_LINK_READ_FORMAT) {
      self->caps_pending = TRUE;
    } else if (res == GST_CUDA_LINK_READ_LOST) {
      ret = gst_cuda_link_src_producer_lost (self, FALSE);
    } else if (res == GST_CUDA_LINK_READ_STALLED) {
      ret = gst_cuda_link_src_producer_lost (self, TRUE);
    } else if (res == GST_CUDA_LINK_READ_FLUSHING) {
      ret = GST_FLOW_FLUSHING;
    } else if (res == GST_CUDA_LINK_READ_ERROR) {
      gst_element_message_full (GST_ELEMENT (self), GST_MESSAGE_ERROR,
          err->domain, err->code, g_strdup (err->message),
          g_strdup (gst_cuda_link_reader_error_detail (self->reader)),
          __FILE__, GST_FUNCTION, __LINE__);
      g_clear_error (&err);
      ret = GST_FLOW_ERROR;
    }
  } while (res != GST_CUDA_LINK_READ_FRAME && ret == GST_FLOW_OK);
  if (ret != GST_FLOW_OK)
    return ret;

  GST_BUFFER_PTS (*out) = arrival_time (self, &mark, frame.woken);
  GST_BUFFER_DTS (*out) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (*out) = GST_CLOCK_TIME_NONE;
  /* the producer's frame index */
  GST_BUFFER_OFFSET (*out) = frame.write_idx ? frame.write_idx - 1 : 0;
  GST_BUFFER_OFFSET_END (*out) = frame.write_idx;
  if (frame.discont)
    GST_BUFFER_FLAG_SET (*out, GST_BUFFER_FLAG_DISCONT);
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */
/* unlock                                                                   */
/* ------------------------------------------------------------------------ */

static gboolean
gst_cuda_link_src_unlock (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  gst_cuda_link_reader_set_flushing (self->reader, TRUE);
  return TRUE;
}

static gboolean
gst_cuda_link_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  gst_cuda_link_reader_set_flushing (self->reader, FALSE);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */
/* ------------------------------------------------------------------------ */

static void
gst_cuda_link_src_finalize (GObject * object)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (object);

  g_free (self->ipc_name);
  gst_cuda_link_reader_free (self->reader);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_cuda_link_src_dispose (GObject * object)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (object);

  gst_clear_object (&self->context);

  G_OBJECT_CLASS (parent_class)->dispose (object);
}

static void
gst_cuda_link_src_init (GstCudaLinkSrc * self)
{
  self->ipc_name = g_strdup (DEFAULT_IPC_NAME);
  self->timeout_ms = DEFAULT_TIMEOUT_MS;
  self->on_loss = DEFAULT_ON_PRODUCER_LOSS;
  self->channel_order = DEFAULT_CHANNEL_ORDER;
  self->float_format = DEFAULT_FLOAT_FORMAT;
  self->device_id = DEFAULT_DEVICE_ID;
  self->poll_interval_us = DEFAULT_POLL_INTERVAL_US;
  self->gpu_wait = DEFAULT_GPU_WAIT;
  self->wake_spin = DEFAULT_WAKE_SPIN;
  self->frame_timeout_ms = DEFAULT_FRAME_TIMEOUT_MS;
  self->io_mode = DEFAULT_IO_MODE;
  self->stats_interval_ms = DEFAULT_STATS_INTERVAL_MS;
  self->direction = DEFAULT_VIDEO_DIRECTION;
  self->reader = gst_cuda_link_reader_new (GST_ELEMENT (self));

  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}

static void
gst_cuda_link_src_install_properties (GObjectClass * gobject_class)
{
  g_object_class_install_property (gobject_class, PROP_IPC_NAME,
      g_param_spec_string ("ipc-name", "IPC name",
          "Name of the producer's shared-memory segment",
          DEFAULT_IPC_NAME, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_TIMEOUT,
      g_param_spec_int64 ("timeout", "Timeout",
          "Milliseconds to wait for the producer to appear (-1 = forever, "
          "0 = look once)", -1, G_MAXINT64 / 1000, DEFAULT_TIMEOUT_MS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_ON_PRODUCER_LOSS,
      g_param_spec_enum ("on-producer-loss", "On producer loss",
          "What to do when the producer goes away",
          GST_TYPE_CUDA_LINK_SRC_LOSS_ACTION, DEFAULT_ON_PRODUCER_LOSS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_CHANNEL_ORDER,
      g_param_spec_enum ("channel-order", "Channel order",
          "Byte order of 8-bit 4-channel frames (bgra for TouchDesigner)",
          GST_TYPE_CUDA_LINK_CHANNEL_ORDER, DEFAULT_CHANNEL_ORDER,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_FLOAT_FORMAT,
      g_param_spec_enum ("float-format", "Float format",
          "Output format of frames converted from float and signed data",
          GST_TYPE_CUDA_LINK_FLOAT_FORMAT, DEFAULT_FLOAT_FORMAT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_DEVICE_ID,
      g_param_spec_int ("cuda-device-id", "CUDA device id",
          "CUDA device to use (-1 = auto)",
          -1, G_MAXINT, DEFAULT_DEVICE_ID, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_POLL_INTERVAL,
      g_param_spec_uint ("poll-interval", "Poll interval",
          "Microseconds between looks at a producer that does not wake "
          "consumers", 10, 1000000, DEFAULT_POLL_INTERVAL_US,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_GPU_WAIT,
      g_param_spec_enum ("gpu-wait", "GPU wait",
          "How the streaming thread waits for each frame's copy",
          GST_TYPE_CUDA_LINK_GPU_WAIT, DEFAULT_GPU_WAIT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_WAKE_SPIN,
      g_param_spec_boolean ("wake-spin", "Wake spin",
          "Spin briefly around when a steady producer's next frame is due",
          DEFAULT_WAKE_SPIN, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_FRAME_TIMEOUT,
      g_param_spec_uint ("frame-timeout", "Frame timeout",
          "Milliseconds without a frame from a foreign producer before it is "
          "reported stalled (0 = never)",
          0, G_MAXUINT, DEFAULT_FRAME_TIMEOUT_MS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_IO_MODE,
      g_param_spec_enum ("io-mode", "IO mode",
          "Copy frames, or import a cudalink producer's slots without a copy",
          GST_TYPE_CUDA_LINK_IO_MODE, DEFAULT_IO_MODE, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_STATS_INTERVAL,
      g_param_spec_uint ("stats-interval", "Stats interval",
          "Milliseconds between element messages carrying the stats "
          "structure (0 = none)", 0, G_MAXUINT, DEFAULT_STATS_INTERVAL_MS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Transfer statistics (fields in docs/elements/cudalinksrc.md)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_override_property (gobject_class, PROP_VIDEO_DIRECTION,
      "video-direction");
}

static void
gst_cuda_link_src_class_init (GstCudaLinkSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  GstCaps *caps;
  GstPadTemplate *templ;

  gobject_class->set_property = gst_cuda_link_src_set_property;
  gobject_class->get_property = gst_cuda_link_src_get_property;
  gobject_class->dispose = gst_cuda_link_src_dispose;
  gobject_class->finalize = gst_cuda_link_src_finalize;

  gst_cuda_link_src_install_properties (gobject_class);

  gst_element_class_set_static_metadata (element_class,
      "CUDA Link Source", "Source/Video/Hardware",
      "Receives GPU video frames from a cuda-link producer (TouchDesigner, "
      "cuda_link, cudalinksink) over CUDA IPC",
      "cudalink developers");

  caps = gst_cuda_link_src_template_caps ();
  templ = gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps);
  gst_element_class_add_pad_template (element_class, templ);
  gst_caps_unref (caps);

  element_class->set_context =
      GST_DEBUG_FUNCPTR (gst_cuda_link_src_set_context);

  basesrc_class->start = GST_DEBUG_FUNCPTR (gst_cuda_link_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR (gst_cuda_link_src_stop);
  basesrc_class->get_caps = GST_DEBUG_FUNCPTR (gst_cuda_link_src_get_caps);
  basesrc_class->negotiate = GST_DEBUG_FUNCPTR (gst_cuda_link_src_negotiate);
  basesrc_class->set_caps = GST_DEBUG_FUNCPTR (gst_cuda_link_src_set_caps);
  basesrc_class->decide_allocation =
      GST_DEBUG_FUNCPTR (gst_cuda_link_src_decide_allocation);
  basesrc_class->query = GST_DEBUG_FUNCPTR (gst_cuda_link_src_query);
  basesrc_class->create = GST_DEBUG_FUNCPTR (gst_cuda_link_src_create);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR (gst_cuda_link_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_cuda_link_src_unlock_stop);

  GST_DEBUG_CATEGORY_INIT (gst_cuda_link_src_debug, "cudalinksrc", 0,
      "cudalinksrc");

  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_SRC_LOSS_ACTION, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_CHANNEL_ORDER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_FLOAT_FORMAT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_GPU_WAIT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_IO_MODE, 0);
}
