/* GStreamer cudalinksrc: receive GPU video frames over CUDA IPC from a
 * cuda-link producer (TouchDesigner's cuda-link Sender, the cuda_link
 * Python Exporter, or cudalinksink).
 */

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
 * The caps follow the segment's metadata (see docs/elements/cudalinksrc.md
 * for the whole table): uint8 x4 is RGBA or BGRA (#GstCudaLinkSrc:channel-order),
 * uint8 x3 RGB, uint8 x1 GRAY8, uint16 x4 RGBA64_LE, uint16 x1 GRAY16_LE;
 * everything else is converted on the GPU to RGBA or RGBA64_LE
 * (#GstCudaLinkSrc:float-format). When the producer changes size or format
 * the element pushes new caps and carries on.
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
#include "gstcudalinkconvert.h"
#include "gstcudalinkutils.h"
#include "srcformat.h"

GST_DEBUG_CATEGORY_STATIC (gst_cuda_link_src_debug);
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

/* How long one blocking call may run before the flushing flag is checked
 * again, and how often a missing producer is looked for. */
#define WAIT_SLICE_US 10000
/* A frame wait needs no slices: unlock() interrupts it. This only bounds a
 * wake-up lost in the instant the wait falls asleep. */
#define FRAME_WAIT_BACKSTOP_US 100000
#define RECONNECT_INTERVAL_US 50000
#define SETTLE_MS 500
/* Latency samples kept for the stats percentiles. */
#define LATENCY_SAMPLES 1024
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

  /* CUDA, from start() to stop() */
  gboolean have_cuda;
  gchar *no_cuda_why;
  GstCudaContext *context;
  CUstream stream;
  GstCudaLinkConverter *converter;
  GstCudaLinkStaging staging;   /* device copy of a frame before a download */

  /* the consumer, streaming thread only (and start/stop) */
  gchar *consumer_name;
  cudalink_consumer *consumer;
  gboolean connected;
  gboolean ever_connected;
  gboolean discont;

  /* format state, written by the streaming thread under the object lock */
  gboolean plan_valid;
  cudalink_format format;
  GstCudaLinkSrcPlan plan;
  GstCaps *plan_caps;           /* what get_caps offers */
  gboolean caps_pending;        /* negotiate before the next buffer */
  GstVideoInfo out_info;        /* negotiated */
  gboolean out_cuda;            /* negotiated memory:CUDAMemory */
  gboolean out_valid;

  gint flushing;                /* atomic */

  /* statistics, under stats_lock */
  GMutex stats_lock;
  guint64 frames, missed, torn, reopens, paced, spin_us, sleeps;
  gint64 first_offset;          /* first frame waited for, -1 before one */
  guint64 lib_missed, lib_reopens, lib_paced, lib_spin_us, lib_sleeps;   /* last consumer counters seen */
  guint64 latency[LATENCY_SAMPLES];    /* producer timestamp -> push */
  guint64 wake[LATENCY_SAMPLES];       /* producer timestamp -> woken */
  guint latency_n, latency_pos;
  gboolean producer_is_ours;
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
gst_cuda_link_src_make_stats (GstCudaLinkSrc * self)
{
  guint64 samples[LATENCY_SAMPLES], wake[LATENCY_SAMPLES];
  guint n;
  guint64 frames, missed, torn, reopens, paced, spin_us, sleeps, p50, p99,
      wake50, wake99;
  gint64 first_offset;
  gboolean ours;

  g_mutex_lock (&self->stats_lock);
  frames = self->frames;
  missed = self->missed;
  torn = self->torn;
  reopens = self->reopens;
  paced = self->paced;
  spin_us = self->spin_us;
  sleeps = self->sleeps;
  first_offset = self->first_offset;
  ours = self->producer_is_ours;
  n = self->latency_n;
  memcpy (samples, self->latency, n * sizeof (guint64));
  memcpy (wake, self->wake, n * sizeof (guint64));
  g_mutex_unlock (&self->stats_lock);

  p50 = gst_cuda_link_percentile (samples, n, 50);
  p99 = gst_cuda_link_percentile (samples, n, 99);
  wake50 = gst_cuda_link_percentile (wake, n, 50);
  wake99 = gst_cuda_link_percentile (wake, n, 99);

  return gst_structure_new ("application/x-cudalinksrc-stats",
      "frames", G_TYPE_UINT64, frames,
      "missed", G_TYPE_UINT64, missed,
      "torn-discarded", G_TYPE_UINT64, torn,
      "reopens", G_TYPE_UINT64, reopens,
      "first-offset", G_TYPE_INT64, first_offset,
      "latency-p50-us", G_TYPE_UINT64, p50,
      "latency-p99-us", G_TYPE_UINT64, p99,
      "latency-samples", G_TYPE_UINT, n,
      "wake-p50-us", G_TYPE_UINT64, wake50,
      "wake-p99-us", G_TYPE_UINT64, wake99,
      "wake-spin-frames", G_TYPE_UINT64, paced,
      "wake-spin-us", G_TYPE_UINT64, spin_us,
      "sleeps", G_TYPE_UINT64, sleeps,
      "producer-is-ours", G_TYPE_BOOLEAN, ours, NULL);
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
    case PROP_VIDEO_DIRECTION:{
      GstVideoOrientationMethod method = g_value_get_enum (value);
      if (direction_supported (method)) {
        self->direction = method;
      } else {
        GST_OBJECT_UNLOCK (self);
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
    g_value_take_boxed (value, gst_cuda_link_src_make_stats (self));
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
/* start / stop                                                             */
/* ------------------------------------------------------------------------ */

static gboolean
gst_cuda_link_src_start (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  cudalink_consumer_config config;
  cudalink_status st;
  gchar why[512] = "";
  gint device_id;
  guint poll_us;
  GstCudaLinkGpuWait gpu_wait;
  gboolean wake_spin;

  GST_OBJECT_LOCK (self);
  g_free (self->consumer_name);
  self->consumer_name = g_strdup (self->ipc_name);
  device_id = self->device_id;
  poll_us = self->poll_interval_us;
  gpu_wait = self->gpu_wait;
  wake_spin = self->wake_spin;
  GST_OBJECT_UNLOCK (self);

  /* The driver is loaded first only to learn whether it exists; the
   * segment is validated before anything is done with it (create()), so
   * that a bad segment is reported as such also on a machine without a
   * driver. */
  st = cudalink_cuda_load (why, sizeof (why));
  if (st == CUDALINK_OK) {
    if (!gst_cuda_load_library ()) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("GStreamer's CUDA library could not load the CUDA driver."),
          ("gst_cuda_load_library() failed although libcudalink loaded it"));
      return FALSE;
    }
    gst_cuda_memory_init_once ();
    if (!gst_cuda_ensure_element_context (GST_ELEMENT (self), device_id,
            &self->context)) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not get a CUDA context for device %d.", device_id),
          ("gst_cuda_ensure_element_context() failed"));
      return FALSE;
    }
    if (!gst_cuda_context_push (self->context)) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not make the CUDA context current."), (NULL));
      gst_clear_object (&self->context);
      return FALSE;
    }
    if (CuStreamCreate (&self->stream, CU_STREAM_DEFAULT) != CUDA_SUCCESS)
      self->stream = NULL;
    gst_cuda_context_pop (NULL);
    if (!self->stream) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not create a CUDA stream."), (NULL));
      gst_clear_object (&self->context);
      return FALSE;
    }
    self->have_cuda = TRUE;
  } else {
    self->have_cuda = FALSE;
    gst_clear_object (&self->context);
    g_free (self->no_cuda_why);
    self->no_cuda_why = g_strdup_printf ("%s: %s", cudalink_strerror (st), why);
    GST_INFO_OBJECT (self, "no CUDA: %s", self->no_cuda_why);
  }

  cudalink_consumer_config_init (&config);
  config.name = self->consumer_name;
  config.device = device_id < 0 ? 0 : device_id;
  config.cuda_context =
      self->context ? gst_cuda_context_get_handle (self->context) : NULL;
  config.poll_interval_us = poll_us;
  config.flags = gpu_wait == GST_CUDA_LINK_GPU_WAIT_SPIN ?
      CUDALINK_CONSUMER_SPIN_SYNC : gpu_wait == GST_CUDA_LINK_GPU_WAIT_SLEEP ?
      CUDALINK_CONSUMER_SLEEP_SYNC : 0;
  if (!wake_spin)
    config.flags |= CUDALINK_CONSUMER_NO_PACE;
  /* how long one connect() retries a header being rewritten: also how
   * long a stop can wait for it, so shorter than the library's 2 s; the
   * attach loop retries anyway */
  config.settle_ms = SETTLE_MS;
  st = cudalink_consumer_create (&config, &self->consumer);
  if (st != CUDALINK_OK) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Could not set up a cuda-link consumer for segment '%s': %s",
            self->consumer_name, cudalink_strerror (st)),
        ("cudalink_consumer_create: %s", cudalink_status_name (st)));
    return FALSE;
  }

  self->connected = FALSE;
  self->ever_connected = FALSE;
  self->discont = TRUE;

  GST_OBJECT_LOCK (self);
  self->plan_valid = FALSE;
  self->caps_pending = FALSE;
  self->out_valid = FALSE;
  gst_clear_caps (&self->plan_caps);
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->stats_lock);
  self->frames = self->missed = self->torn = self->reopens = self->paced =
      self->spin_us = self->sleeps = 0;
  self->first_offset = -1;
  self->lib_missed = self->lib_reopens = self->lib_paced =
      self->lib_spin_us = self->lib_sleeps = 0;
  self->latency_n = self->latency_pos = 0;
  self->producer_is_ours = FALSE;
  g_mutex_unlock (&self->stats_lock);

  return TRUE;
}

static gboolean
gst_cuda_link_src_stop (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  if (self->consumer) {
    cudalink_consumer_destroy (self->consumer);
    self->consumer = NULL;
  }
  self->connected = FALSE;

  if (self->converter) {
    gst_cuda_link_converter_free (self->converter);
    self->converter = NULL;
  }
  gst_cuda_link_staging_free (&self->staging, self->context);
  if (self->stream && self->context && gst_cuda_context_push (self->context)) {
    CuStreamDestroy (self->stream);
    gst_cuda_context_pop (NULL);
  }
  self->stream = NULL;
  gst_clear_object (&self->context);
  self->have_cuda = FALSE;
  g_clear_pointer (&self->no_cuda_why, g_free);
  g_clear_pointer (&self->consumer_name, g_free);

  GST_OBJECT_LOCK (self);
  self->plan_valid = FALSE;
  self->out_valid = FALSE;
  gst_clear_caps (&self->plan_caps);
  GST_OBJECT_UNLOCK (self);

  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* caps and allocation                                                      */
/* ------------------------------------------------------------------------ */

static GstCaps *
gst_cuda_link_src_get_caps (GstBaseSrc * bsrc, GstCaps * filter)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstCaps *caps = NULL;

  GST_OBJECT_LOCK (self);
  if (self->plan_caps)
    caps = gst_caps_ref (self->plan_caps);
  GST_OBJECT_UNLOCK (self);

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
  gboolean have_plan;

  GST_OBJECT_LOCK (self);
  have_plan = self->plan_caps != NULL;
  GST_OBJECT_UNLOCK (self);

  /* Before the producer is found there is nothing to offer: create()
   * negotiates once it knows the format. */
  if (!have_plan) {
    GST_DEBUG_OBJECT (self, "no producer yet, negotiation deferred");
    return TRUE;
  }

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
/* attaching to the producer                                                */
/* ------------------------------------------------------------------------ */

static gboolean
is_flushing (GstCudaLinkSrc * self)
{
  return g_atomic_int_get (&self->flushing) != 0;
}

/* Sleeps up to @us in slices; FALSE when flushing started. */
static gboolean
sleep_interruptible (GstCudaLinkSrc * self, gint64 us)
{
  while (us > 0) {
    gint64 slice = MIN (us, WAIT_SLICE_US);
    if (is_flushing (self))
      return FALSE;
    g_usleep (slice);
    us -= slice;
  }
  return !is_flushing (self);
}

static gboolean
status_is_fatal (cudalink_status st)
{
  switch (st) {
    case CUDALINK_ERR_INVALID_ARG:
    case CUDALINK_ERR_NO_MEMORY:
    case CUDALINK_ERR_BAD_NAME:
    case CUDALINK_ERR_NO_DRIVER:
    case CUDALINK_ERR_DRIVER_SYMBOL:
    case CUDALINK_ERR_CUDA:
    case CUDALINK_ERR_NO_DEVICE:
    case CUDALINK_ERR_UNSUPPORTED:
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
status_is_bad_header (cudalink_status st)
{
  switch (st) {
    case CUDALINK_ERR_TRUNCATED:
    case CUDALINK_ERR_BAD_MAGIC:
    case CUDALINK_ERR_BAD_NUM_SLOTS:
    case CUDALINK_ERR_BAD_DTYPE:
    case CUDALINK_ERR_BAD_DIMENSIONS:
    case CUDALINK_ERR_BAD_DATA_SIZE:
    case CUDALINK_ERR_BAD_NUM_COMPS:
      return TRUE;
    default:
      return FALSE;
  }
}

static gchar *
describe_timeout (gint64 timeout_ms)
{
  if (timeout_ms % 1000 == 0)
    return g_strdup_printf ("%" G_GINT64_FORMAT " s", timeout_ms / 1000);
  return g_strdup_printf ("%" G_GINT64_FORMAT " ms", timeout_ms);
}

/* One GST_ELEMENT_ERROR for a failed attach: names the segment and says
 * what was there. */
static void
post_attach_error (GstCudaLinkSrc * self, cudalink_status st,
    const gchar * detail, gint64 timeout_ms)
{
  const gchar *name = self->consumer_name;
  gchar *waited = describe_timeout (timeout_ms);
  const gchar *driver_note = self->have_cuda ? "" : self->no_cuda_why;
  const gchar *sep = self->have_cuda ? "" : "; note: ";

  if (st == CUDALINK_ERR_NOT_FOUND) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No cuda-link producer: nothing named '%s' appeared within %s.",
            name, waited),
        ("%s (%s)%s%s", detail, cudalink_status_name (st), sep, driver_note));
  } else if (st == CUDALINK_ERR_STALE || st == CUDALINK_ERR_PRODUCER_GONE) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("cuda-link segment '%s' is stale: its producer has shut down and "
            "no live producer took it over within %s.", name, waited),
        ("%s (%s)%s%s", detail, cudalink_status_name (st), sep, driver_note));
  } else if (status_is_bad_header (st)) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("cuda-link segment '%s' has a bad header: %s.", name,
            cudalink_strerror (st)),
        ("%s (%s)%s%s", detail, cudalink_status_name (st), sep, driver_note));
  } else if (st == CUDALINK_ERR_NO_DRIVER || st == CUDALINK_ERR_DRIVER_SYMBOL) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("The NVIDIA CUDA driver is not usable, so cuda-link segment '%s' "
            "cannot be read: %s.", name, cudalink_strerror (st)),
        ("%s; %s (%s)", self->no_cuda_why ? self->no_cuda_why : "",
            detail, cudalink_status_name (st)));
  } else if (st == CUDALINK_ERR_IPC_OPEN) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not open the CUDA IPC handles of cuda-link segment '%s' "
            "(is its producer alive, and on a GPU this process can use?).",
            name), ("%s (%s)", detail, cudalink_status_name (st)));
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not attach to cuda-link segment '%s': %s.", name,
            cudalink_strerror (st)),
        ("%s (%s)%s%s", detail, cudalink_status_name (st), sep, driver_note));
  }
  g_free (waited);
}

/* adds what a consumer counter grew by since it was last seen; the
 * counters only grow, so a smaller value means they were reset, and then
 * all of it is new */
static void
add_growth (guint64 * total, guint64 * seen, guint64 now)
{
  *total += now >= *seen ? now - *seen : now;
  *seen = now;
}

static void
gst_cuda_link_src_update_stats (GstCudaLinkSrc * self)
{
  cudalink_consumer_stats cs;

  memset (&cs, 0, sizeof (cs));
  cudalink_consumer_get_stats (self->consumer, &cs);

  g_mutex_lock (&self->stats_lock);
  add_growth (&self->missed, &self->lib_missed, cs.missed);
  add_growth (&self->reopens, &self->lib_reopens, cs.reopens);
  add_growth (&self->paced, &self->lib_paced, cs.paced);
  add_growth (&self->spin_us, &self->lib_spin_us, cs.spin_us);
  add_growth (&self->sleeps, &self->lib_sleeps, cs.sleeps);
  g_mutex_unlock (&self->stats_lock);
}

/* The consumer is connected (or re-opened after a format change): plan the
 * output for its format. Sets caps_pending when the caps change. */
static gboolean
gst_cuda_link_src_update_format (GstCudaLinkSrc * self)
{
  const cudalink_format *fmt = cudalink_consumer_format (self->consumer);
  GstCudaLinkSrcPlan plan;
  GstCaps *caps;
  gchar *why = NULL;
  GstCudaLinkChannelOrder order;
  GstCudaLinkFloatFormat ff;

  if (!fmt) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("cuda-link segment '%s' has no format although connected.",
            self->consumer_name), (NULL));
    return FALSE;
  }

  GST_OBJECT_LOCK (self);
  order = self->channel_order;
  ff = self->float_format;
  GST_OBJECT_UNLOCK (self);

  if (!gst_cuda_link_src_plan (fmt, order, ff, &plan, &why)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("cuda-link segment '%s' publishes frames cudalinksrc cannot "
            "output.", self->consumer_name), ("%s", why));
    g_free (why);
    return FALSE;
  }

  caps = gst_cuda_link_src_plan_caps (&plan, fmt->width, fmt->height,
      self->context != NULL);
  if (!caps) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("No caps for a %ux%u frame.", fmt->width, fmt->height), (NULL));
    return FALSE;
  }

  GST_INFO_OBJECT (self, "producer format %ux%u x%u %s flags 0x%x -> %"
      GST_PTR_FORMAT "%s", fmt->width, fmt->height, fmt->num_comps,
      cudalink_dtype_name (fmt->dtype), fmt->flags, caps,
      plan.convert ? " (converted)" : "");

  GST_OBJECT_LOCK (self);
  if (!self->plan_caps || !gst_caps_is_equal (self->plan_caps, caps))
    self->caps_pending = TRUE;
  gst_caps_replace (&self->plan_caps, caps);
  self->format = *fmt;
  self->plan = plan;
  self->plan_valid = TRUE;
  GST_OBJECT_UNLOCK (self);
  gst_caps_unref (caps);

  if (!gst_cuda_link_staging_fits (&self->staging, plan.out_row_bytes,
          fmt->height))
    gst_cuda_link_staging_free (&self->staging, self->context);

  return TRUE;
}

/* Connects, retrying every RECONNECT_INTERVAL_US for @timeout_ms (-1:
 * forever) while nothing usable is there. */
static GstFlowReturn
gst_cuda_link_src_attach (GstCudaLinkSrc * self, gint64 timeout_ms)
{
  gint64 deadline = timeout_ms < 0 ? G_MAXINT64 :
      g_get_monotonic_time () + timeout_ms * 1000;
  cudalink_status st, last = CUDALINK_OK;
  gchar *last_detail = NULL;
  gboolean ours;

  for (;;) {
    if (is_flushing (self)) {
      g_free (last_detail);
      return GST_FLOW_FLUSHING;
    }

    st = cudalink_consumer_connect (self->consumer);
    if (st == CUDALINK_OK)
      break;

    g_free (last_detail);
    last_detail = g_strdup (cudalink_consumer_last_error (self->consumer));
    if (st != last)
      GST_INFO_OBJECT (self, "segment '%s': %s (%s)", self->consumer_name,
          cudalink_strerror (st), last_detail);
    last = st;
    cudalink_consumer_disconnect (self->consumer);

    if (status_is_fatal (st) || g_get_monotonic_time () >= deadline) {
      post_attach_error (self, st, last_detail, timeout_ms);
      g_free (last_detail);
      return GST_FLOW_ERROR;
    }
    if (!sleep_interruptible (self, RECONNECT_INTERVAL_US)) {
      g_free (last_detail);
      return GST_FLOW_FLUSHING;
    }
  }
  g_free (last_detail);

  if (!self->have_cuda) {
    /* cannot happen: connect needs the driver */
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("Connected to '%s' without a CUDA driver.", self->consumer_name),
        ("%s", self->no_cuda_why));
    return GST_FLOW_ERROR;
  }

  ours = cudalink_consumer_producer_is_ours (self->consumer) > 0;
  g_mutex_lock (&self->stats_lock);
  self->producer_is_ours = ours;
  g_mutex_unlock (&self->stats_lock);

  GST_INFO_OBJECT (self, "attached to '%s' (%s producer)",
      self->consumer_name, ours ? "cudalink" : "foreign, polled");

  self->connected = TRUE;
  self->ever_connected = TRUE;
  self->discont = TRUE;

  if (!gst_cuda_link_src_update_format (self))
    return GST_FLOW_ERROR;

  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */
/* per frame                                                                */
/* ------------------------------------------------------------------------ */

static gboolean
copy_2d (GstCudaLinkSrc * self, CUdeviceptr src, gsize src_pitch,
    gpointer dst, gsize dst_pitch, gboolean dst_host, guint row_bytes,
    guint height)
{
  CUDA_MEMCPY2D p;
  CUresult res;

  memset (&p, 0, sizeof (p));
  p.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  p.srcDevice = src;
  p.srcPitch = src_pitch;
  if (dst_host) {
    p.dstMemoryType = CU_MEMORYTYPE_HOST;
    p.dstHost = dst;
  } else {
    p.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    p.dstDevice = (CUdeviceptr) dst;
  }
  p.dstPitch = dst_pitch;
  p.WidthInBytes = row_bytes;
  p.Height = height;

  res = CuMemcpy2DAsync (&p, self->stream);
  if (res != CUDA_SUCCESS) {
    const gchar *name = NULL;
    CuGetErrorName (res, &name);
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Could not copy a frame from cuda-link segment '%s'.",
            self->consumer_name), ("cuMemcpy2DAsync: %s", name ? name : "?"));
    return FALSE;
  }
  return TRUE;
}

/* Copies (or converts) the current frame into @buffer. Returns OK, TORN,
 * FORMAT_CHANGED / PRODUCER_GONE / NOT_CONNECTED (from acquire), or
 * ERR_CUDA after posting an error. */
static cudalink_status
gst_cuda_link_src_fill (GstCudaLinkSrc * self, GstBuffer * buffer)
{
  GstVideoFrame frame;
  GstMapFlags flags;
  GstVideoInfo info;
  gboolean cuda, flip, ok = TRUE;
  GstCudaLinkSrcPlan plan;
  cudalink_format fmt;
  cudalink_status st, rel;
  guint64 src = 0;
  gsize src_pitch = 0;
  gpointer dst;
  gsize dst_pitch;
  guint64 target = 0;           /* where the copy or the kernel writes */
  gsize target_pitch = 0;

  GST_OBJECT_LOCK (self);
  info = self->out_info;
  cuda = self->out_cuda;
  plan = self->plan;
  fmt = self->format;
  flip = self->direction == GST_VIDEO_ORIENTATION_VERT;
  GST_OBJECT_UNLOCK (self);

  flags = GST_MAP_WRITE | (cuda ? GST_MAP_CUDA : 0);
  if (!gst_video_frame_map (&frame, &info, buffer, flags)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not map an output buffer."), (NULL));
    return CUDALINK_ERR_CUDA;
  }
  dst = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  dst_pitch = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);

  if (!gst_cuda_context_push (self->context)) {
    gst_video_frame_unmap (&frame);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not make the CUDA context current."), (NULL));
    return CUDALINK_ERR_CUDA;
  }

  st = cudalink_consumer_acquire (self->consumer, self->stream, &src,
      &src_pitch);
  if (st != CUDALINK_OK) {
    gst_cuda_context_pop (NULL);
    gst_video_frame_unmap (&frame);
    if (st == CUDALINK_ERR_FORMAT_CHANGED || st == CUDALINK_ERR_PRODUCER_GONE
        || st == CUDALINK_ERR_NOT_CONNECTED || st == CUDALINK_ERR_TORN
        || st == CUDALINK_ERR_NO_FRAME)
      return st;
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Could not read a frame from cuda-link segment '%s': %s.",
            self->consumer_name, cudalink_strerror (st)),
        ("%s (%s)", cudalink_consumer_last_error (self->consumer),
            cudalink_status_name (st)));
    return CUDALINK_ERR_CUDA;
  }

  /* For system memory the frame goes to a device staging buffer first and
   * is downloaded only after the torn check: a download of a large frame
   * takes milliseconds, long enough for a fast producer to lap every copy. */
  if (cuda) {
    target = (guint64) (guintptr) dst;
    target_pitch = dst_pitch;
  } else {
    ok = gst_cuda_link_staging_ensure (&self->staging, GST_ELEMENT (self),
        self->context, plan.out_row_bytes, fmt.height);
    target = self->staging.ptr;
    target_pitch = self->staging.pitch;
  }

  if (!ok) {
    /* gst_cuda_link_staging_ensure posted the error */
  } else if (!gst_cuda_link_src_plan_needs_kernel (&plan, flip)) {
    ok = copy_2d (self, src, src_pitch, (gpointer) (guintptr) target,
        target_pitch, FALSE, plan.out_row_bytes, fmt.height);
  } else {
    GstCudaLinkConvertParams p;
    GError *err = NULL;

    if (!self->converter) {
      self->converter = gst_cuda_link_converter_new (self->context, &err);
      if (!self->converter) {
        GST_ELEMENT_ERROR (self, LIBRARY, INIT,
            ("The GPU conversion kernels are not available, so %s x%u "
                "frames%s cannot be read.", cudalink_dtype_name (fmt.dtype),
                fmt.num_comps, flip ? " (or flipped ones)" : ""),
            ("%s", err ? err->message : "?"));
        g_clear_error (&err);
        ok = FALSE;
      }
    }

    if (ok) {
      memset (&p, 0, sizeof (p));
      p.src = src;
      p.src_pitch = src_pitch;
      p.src_comps = fmt.num_comps;
      p.src_dtype = fmt.dtype;
      p.dst = target;
      p.dst_pitch = target_pitch;
      p.dst_comps = plan.out_comps;
      p.dst_dtype = plan.out_dtype;
      p.width = fmt.width;
      p.height = fmt.height;
      memcpy (p.swizzle, plan.swizzle, sizeof (p.swizzle));
      p.flip_y = flip;

      if (!gst_cuda_link_converter_run (self->converter, &p, self->stream,
              &err)) {
        GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
            ("Could not convert a %s x%u frame from cuda-link segment '%s'.",
                cudalink_dtype_name (fmt.dtype), fmt.num_comps,
                self->consumer_name), ("%s", err ? err->message : "?"));
        g_clear_error (&err);
        ok = FALSE;
      }
    }

  }

  /* always release: it synchronises the stream and judges the copy */
  rel = cudalink_consumer_release (self->consumer, self->stream);
  if (ok && !cuda && rel == CUDALINK_OK) {
    ok = copy_2d (self, self->staging.ptr, self->staging.pitch, dst, dst_pitch,
        TRUE, plan.out_row_bytes, fmt.height);
    if (ok && !gst_cuda_result (CuStreamSynchronize (self->stream))) {
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("Could not download a frame from cuda-link segment '%s'.",
              self->consumer_name), ("cuStreamSynchronize failed"));
      ok = FALSE;
    }
  }
  gst_cuda_context_pop (NULL);
  gst_video_frame_unmap (&frame);

  if (!ok)
    return CUDALINK_ERR_CUDA;
  if (rel != CUDALINK_OK && rel != CUDALINK_ERR_TORN &&
      rel != CUDALINK_ERR_FORMAT_CHANGED && rel != CUDALINK_ERR_PRODUCER_GONE
      && rel != CUDALINK_ERR_NOT_CONNECTED) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Copying a frame from cuda-link segment '%s' failed: %s.",
            self->consumer_name, cudalink_strerror (rel)),
        ("%s (%s)", cudalink_consumer_last_error (self->consumer),
            cudalink_status_name (rel)));
    return CUDALINK_ERR_CUDA;
  }
  return rel;
}

/* What to do when the producer went away: OK to keep waiting for one. */
static GstFlowReturn
gst_cuda_link_src_producer_lost (GstCudaLinkSrc * self)
{
  GstCudaLinkSrcLossAction action;

  GST_OBJECT_LOCK (self);
  action = self->on_loss;
  GST_OBJECT_UNLOCK (self);

  cudalink_consumer_disconnect (self->consumer);
  self->connected = FALSE;

  switch (action) {
    case GST_CUDA_LINK_SRC_LOSS_EOS:
      GST_INFO_OBJECT (self, "producer of '%s' gone, EOS", self->consumer_name);
      return GST_FLOW_EOS;
    case GST_CUDA_LINK_SRC_LOSS_ERROR:
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("The producer of cuda-link segment '%s' went away.",
              self->consumer_name),
          ("%s (on-producer-loss=error)",
              cudalink_consumer_last_error (self->consumer)));
      return GST_FLOW_ERROR;
    default:
      GST_INFO_OBJECT (self, "producer of '%s' gone, waiting for a new one",
          self->consumer_name);
      g_mutex_lock (&self->stats_lock);
      self->reopens++;
      g_mutex_unlock (&self->stats_lock);
      return GST_FLOW_OK;
  }
}

static gboolean
gst_cuda_link_src_renegotiate (GstCudaLinkSrc * self)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  GstCaps *caps;

  GST_OBJECT_LOCK (self);
  self->caps_pending = FALSE;
  caps = self->plan_caps ? gst_caps_ref (self->plan_caps) : NULL;
  GST_OBJECT_UNLOCK (self);

  if (gst_base_src_negotiate (bsrc)) {
    gboolean match;

    GST_OBJECT_LOCK (self);
    match = self->out_valid &&
        GST_VIDEO_INFO_FORMAT (&self->out_info) == self->plan.format &&
        (guint) GST_VIDEO_INFO_WIDTH (&self->out_info) == self->format.width &&
        (guint) GST_VIDEO_INFO_HEIGHT (&self->out_info) == self->format.height;
    GST_OBJECT_UNLOCK (self);
    if (match) {
      gst_clear_caps (&caps);
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_latency (GST_OBJECT (self)));
      return TRUE;
    }
  }

  if (!is_flushing (self)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept what cuda-link segment '%s' publishes.",
            self->consumer_name), ("offered %" GST_PTR_FORMAT, caps));
  }
  gst_clear_caps (&caps);
  return FALSE;
}

static guint64
us_since (double producer_ts, double now)
{
  return producer_ts > 0 && now > producer_ts ?
      (guint64) ((now - producer_ts) * 1e6) : 0;
}

/* a pushed frame: its latency, and when the element woke up for it */
static void
record_latency (GstCudaLinkSrc * self, double producer_ts, double woken)
{
  guint64 us = us_since (producer_ts, cudalink_now ());

  g_mutex_lock (&self->stats_lock);
  self->frames++;
  self->latency[self->latency_pos] = us;
  self->wake[self->latency_pos] = us_since (producer_ts, woken);
  self->latency_pos = (self->latency_pos + 1) % LATENCY_SAMPLES;
  if (self->latency_n < LATENCY_SAMPLES)
    self->latency_n++;
  g_mutex_unlock (&self->stats_lock);
}

static GstFlowReturn
gst_cuda_link_src_create (GstBaseSrc * bsrc, guint64 offset, guint size,
    GstBuffer ** out)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);
  GstFlowReturn ret;
  gint64 timeout_ms;

  *out = NULL;

  for (;;) {
    cudalink_status st;
    cudalink_frame_info fi;
    GstClockTime pts = GST_CLOCK_TIME_NONE;
    GstClock *clock;
    GstBufferPool *pool;
    GstBuffer *buffer = NULL;
    guint64 missed_before;
    double woken;

    if (is_flushing (self))
      return GST_FLOW_FLUSHING;

    if (!self->connected) {
      GST_OBJECT_LOCK (self);
      timeout_ms = self->timeout_ms;
      GST_OBJECT_UNLOCK (self);
      /* after a loss (on-producer-loss=wait) the wait has no end */
      ret = gst_cuda_link_src_attach (self, self->ever_connected ? -1 :
          timeout_ms);
      if (ret != GST_FLOW_OK)
        return ret;
    }

    if (self->caps_pending || !self->out_valid) {
      if (!gst_cuda_link_src_renegotiate (self))
        return is_flushing (self) ? GST_FLOW_FLUSHING :
            GST_FLOW_NOT_NEGOTIATED;
    }

    st = cudalink_consumer_wait (self->consumer, FRAME_WAIT_BACKSTOP_US);
    woken = cudalink_now ();
    if (st == CUDALINK_ERR_TIMEOUT || st == CUDALINK_ERR_INTERRUPTED)
      continue;
    if (st == CUDALINK_ERR_FORMAT_CHANGED) {
      gst_cuda_link_src_update_stats (self);
      self->discont = TRUE;
      if (!gst_cuda_link_src_update_format (self))
        return GST_FLOW_ERROR;
      continue;
    }
    if (st == CUDALINK_ERR_PRODUCER_GONE || st == CUDALINK_ERR_NOT_CONNECTED) {
      gst_cuda_link_src_update_stats (self);
      ret = gst_cuda_link_src_producer_lost (self);
      if (ret != GST_FLOW_OK)
        return ret;
      continue;
    }
    if (st != CUDALINK_OK) {
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("Waiting for a frame of cuda-link segment '%s' failed: %s.",
              self->consumer_name, cudalink_strerror (st)),
          ("%s (%s)", cudalink_consumer_last_error (self->consumer),
              cudalink_status_name (st)));
      return GST_FLOW_ERROR;
    }

    /* arrival: the running time the frame is stamped with */
    clock = gst_element_get_clock (GST_ELEMENT (self));
    if (clock) {
      GstClockTime now = gst_clock_get_time (clock);
      GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
      pts = now > base ? now - base : 0;
      gst_object_unref (clock);
    }
    memset (&fi, 0, sizeof (fi));
    cudalink_consumer_frame_info (self->consumer, &fi);
    /* where the accounting starts: from here on every frame the producer
     * publishes is pushed, missed or torn-discarded */
    g_mutex_lock (&self->stats_lock);
    if (self->first_offset < 0)
      self->first_offset = fi.write_idx ? (gint64) fi.write_idx - 1 : 0;
    g_mutex_unlock (&self->stats_lock);

    pool = gst_base_src_get_buffer_pool (bsrc);
    if (!pool) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("No buffer pool after negotiation."), (NULL));
      return GST_FLOW_ERROR;
    }
    ret = gst_buffer_pool_acquire_buffer (pool, &buffer, NULL);
    if (ret != GST_FLOW_OK) {
      /* FLUSHING stops the task without a word: say why when it is not
       * our own flush */
      if (ret == GST_FLOW_FLUSHING && !is_flushing (self))
        GST_WARNING_OBJECT (self, "%" GST_PTR_FORMAT " is inactive although "
            "the element is not flushing: the stream stops", pool);
      gst_object_unref (pool);
      return ret;
    }
    gst_object_unref (pool);

    st = gst_cuda_link_src_fill (self, buffer);

    g_mutex_lock (&self->stats_lock);
    missed_before = self->missed;
    g_mutex_unlock (&self->stats_lock);
    gst_cuda_link_src_update_stats (self);

    switch (st) {
      case CUDALINK_OK:
        break;
      case CUDALINK_ERR_TORN:
        GST_DEBUG_OBJECT (self, "frame %u torn, discarded", fi.write_idx);
        gst_buffer_unref (buffer);
        g_mutex_lock (&self->stats_lock);
        self->torn++;
        g_mutex_unlock (&self->stats_lock);
        self->discont = TRUE;
        continue;
      case CUDALINK_ERR_NO_FRAME:
        gst_buffer_unref (buffer);
        continue;
      case CUDALINK_ERR_FORMAT_CHANGED:
        gst_buffer_unref (buffer);
        self->discont = TRUE;
        if (!gst_cuda_link_src_update_format (self))
          return GST_FLOW_ERROR;
        continue;
      case CUDALINK_ERR_PRODUCER_GONE:
      case CUDALINK_ERR_NOT_CONNECTED:
        gst_buffer_unref (buffer);
        ret = gst_cuda_link_src_producer_lost (self);
        if (ret != GST_FLOW_OK)
          return ret;
        continue;
      default:
        gst_buffer_unref (buffer);
        return GST_FLOW_ERROR;
    }

    g_mutex_lock (&self->stats_lock);
    if (self->missed != missed_before)
      self->discont = TRUE;
    g_mutex_unlock (&self->stats_lock);

    GST_BUFFER_PTS (buffer) = pts;
    GST_BUFFER_DTS (buffer) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION (buffer) = GST_CLOCK_TIME_NONE;
    /* the producer's frame index */
    GST_BUFFER_OFFSET (buffer) = fi.write_idx ? fi.write_idx - 1 : 0;
    GST_BUFFER_OFFSET_END (buffer) = fi.write_idx;
    if (self->discont) {
      GST_BUFFER_FLAG_SET (buffer, GST_BUFFER_FLAG_DISCONT);
      self->discont = FALSE;
    }

    record_latency (self, fi.timestamp, woken);
    *out = buffer;
    return GST_FLOW_OK;
  }
}

static gboolean
gst_cuda_link_src_unlock (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  g_atomic_int_set (&self->flushing, 1);
  /* wakes a frame wait in create() */
  cudalink_consumer_interrupt (self->consumer, 1);
  return TRUE;
}

static gboolean
gst_cuda_link_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstCudaLinkSrc *self = GST_CUDA_LINK_SRC (bsrc);

  cudalink_consumer_interrupt (self->consumer, 0);
  g_atomic_int_set (&self->flushing, 0);
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
  g_free (self->consumer_name);
  g_free (self->no_cuda_why);
  gst_clear_caps (&self->plan_caps);
  g_mutex_clear (&self->stats_lock);

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
  self->direction = DEFAULT_VIDEO_DIRECTION;
  self->first_offset = -1;
  g_mutex_init (&self->stats_lock);

  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
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

  g_object_class_install_property (gobject_class, PROP_IPC_NAME,
      g_param_spec_string ("ipc-name", "IPC name",
          "Name of the producer's shared-memory segment (/dev/shm/NAME on "
          "Linux), as set in the TouchDesigner Sender or cudalinksink",
          DEFAULT_IPC_NAME, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_TIMEOUT,
      g_param_spec_int64 ("timeout", "Timeout",
          "Milliseconds to wait for the producer to appear before failing "
          "(-1 = forever, 0 = look once)", -1, G_MAXINT64 / 1000,
          DEFAULT_TIMEOUT_MS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_ON_PRODUCER_LOSS,
      g_param_spec_enum ("on-producer-loss", "On producer loss",
          "What to do when the producer goes away",
          GST_TYPE_CUDA_LINK_SRC_LOSS_ACTION, DEFAULT_ON_PRODUCER_LOSS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_CHANNEL_ORDER,
      g_param_spec_enum ("channel-order", "Channel order",
          "Byte order of 8-bit 4-channel frames. TouchDesigner's Python "
          "Sender publishes BGRA without setting the BGRA flag: use bgra",
          GST_TYPE_CUDA_LINK_CHANNEL_ORDER, DEFAULT_CHANNEL_ORDER,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_FLOAT_FORMAT,
      g_param_spec_enum ("float-format", "Float format",
          "Output format of frames converted on the GPU from float16, "
          "bfloat16, float32, int8 and int16 data (0..1 scales to the full "
          "integer range, values outside clamp)",
          GST_TYPE_CUDA_LINK_FLOAT_FORMAT, DEFAULT_FLOAT_FORMAT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_DEVICE_ID,
      g_param_spec_int ("cuda-device-id", "CUDA device id",
          "CUDA device to use (-1 = auto, or the one a shared context uses)",
          -1, G_MAXINT, DEFAULT_DEVICE_ID, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_POLL_INTERVAL,
      g_param_spec_uint ("poll-interval", "Poll interval",
          "Microseconds between looks at a producer that does not wake "
          "consumers (TouchDesigner, Python); cudalink producers wake the "
          "element at once", 10, 1000000, DEFAULT_POLL_INTERVAL_US,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_GPU_WAIT,
      g_param_spec_enum ("gpu-wait", "GPU wait",
          "How the streaming thread waits for each frame's copy; without MPS "
          "most of that wait is the GPU switching to this process",
          GST_TYPE_CUDA_LINK_GPU_WAIT, DEFAULT_GPU_WAIT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_WAKE_SPIN,
      g_param_spec_boolean ("wake-spin", "Wake spin",
          "Learn when a steady producer's next frame is due (from its "
          "timestamps) and spin through a short window around it (at most "
          "1 % of the frame period each side, narrower when spinning would "
          "cost over 0.5 % of a core), yielding the CPU, so that the frame "
          "is seen within microseconds of its publish; false: sleep until "
          "woken (cudalink producers) or the next poll (others)",
          DEFAULT_WAKE_SPIN, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "frames, missed, torn-discarded, reopens, first-offset (frame index "
          "of the first frame waited for, -1 before one; missed and "
          "torn-discarded count from there), latency-p50-us, latency-p99-us "
          "(producer timestamp to push, last 1024 frames), wake-p50-us, "
          "wake-p99-us (producer timestamp to the element waking up for the "
          "frame, same frames), wake-spin-frames (frames seen by the "
          "wake-spin rather than a wake-up), wake-spin-us (time spent "
          "spinning for them: the wake-spin's CPU cost), sleeps (times the "
          "frame wait went to sleep: each costs a wake-up)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_override_property (gobject_class, PROP_VIDEO_DIRECTION,
      "video-direction");

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
}
