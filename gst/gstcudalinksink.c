/* cudalinksink: publish GPU video frames to other processes over CUDA IPC,
 * as a cuda-link producer (TouchDesigner's cuda-link Receiver, the
 * cuda_link Python package, cudalinksrc).
 */
/**
 * SECTION:element-cudalinksink
 * @title: cudalinksink
 *
 * Publishes every video frame into a ring of CUDA device buffers that other
 * processes open with CUDA IPC, announced through a small named
 * shared-memory segment (/dev/shm/IPC-NAME) in the cuda-link protocol.
 * Pixels never leave the GPU when the input is CUDA memory; system-memory
 * input is uploaded inside the element.
 *
 * The frame is copied into the next slot with one 2-D copy when its layout
 * is already what the protocol carries (RGBA, BGRA with channel-order=bgra,
 * GRAY8, GRAY16_LE, RGBA64_LE, no conversion, no flip); otherwise one GPU
 * kernel converts it while copying (RGB/BGR expanded to 4 channels, BGR
 * order swizzled, output-dtype conversion, vertical flip).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=RGBA,width=1280,height=720 ! cudaupload ! cudalinksink ipc-name=cudalink
 * ]| publishes a test pattern for a TouchDesigner cuda-link Receiver
 * listening on "cudalink".
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=BGRx ! cudalinksink output-dtype=float32 video-direction=vert
 * ]| uploads system memory, converts to float32 RGBA (0..1) and flips
 * vertically (OpenGL's bottom-up row order) on the GPU.
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <gst/gst.h>
#include <gst/base/gstbasesink.h>
#include <gst/video/video.h>
#include <gst/cuda/gstcudautils.h>
#include <gst/cuda/gstcudabufferpool.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudaloader.h>

#include "cudalink.h"
#include "cuda_table.h"
#include "gstcudalinkutils.h"
#include "gstcudalink.h"
#include "gstcudalinkconvert.h"
#include "sinkformat.h"

GST_DEBUG_CATEGORY_STATIC (gst_cuda_link_sink_debug);
#define GST_CAT_DEFAULT gst_cuda_link_sink_debug

enum
{
  PROP_0,
  PROP_IPC_NAME,
  PROP_NUM_SLOTS,
  PROP_MAX_SLOTS,
  PROP_OFFER_IMPORT,
  PROP_CUDA_DEVICE_ID,
  PROP_CHANNEL_ORDER,
  PROP_OUTPUT_DTYPE,
  PROP_GPU_WAIT,
  PROP_STATS,
  PROP_VIDEO_DIRECTION,
  PROP_STATS_INTERVAL,
};

#define DEFAULT_IPC_NAME "cudalink"
#define DEFAULT_NUM_SLOTS 3
#define DEFAULT_MAX_SLOTS 0
#define DEFAULT_OFFER_IMPORT FALSE
#define DEFAULT_CUDA_DEVICE_ID -1
#define DEFAULT_CHANNEL_ORDER GST_CUDA_LINK_CHANNEL_ORDER_RGBA
#define DEFAULT_OUTPUT_DTYPE GST_CUDA_LINK_OUTPUT_DTYPE_AUTO
#define DEFAULT_GPU_WAIT GST_CUDA_LINK_GPU_WAIT_NONE
#define DEFAULT_VIDEO_DIRECTION GST_VIDEO_ORIENTATION_IDENTITY
#define DEFAULT_STATS_INTERVAL_MS 0

/* publish times kept for the p50/p99 of the stats property */
#define STATS_WINDOW 1024

#define GST_TYPE_CUDA_LINK_SINK_OUTPUT_DTYPE \
  (gst_cuda_link_sink_output_dtype_get_type ())
static GType
gst_cuda_link_sink_output_dtype_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_OUTPUT_DTYPE_AUTO,
        "The input's own depth (uint8, or uint16 for 16-bit formats)", "auto"},
    {GST_CUDA_LINK_OUTPUT_DTYPE_UINT8, "uint8", "uint8"},
    {GST_CUDA_LINK_OUTPUT_DTYPE_UINT16, "uint16", "uint16"},
    {GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16, "float16 (0..1)", "float16"},
    {GST_CUDA_LINK_OUTPUT_DTYPE_BFLOAT16,
        "bfloat16 (0..1; TouchDesigner cannot read it)", "bfloat16"},
    {GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32, "float32 (0..1)", "float32"},
    {0, NULL, NULL}
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkSinkOutputDtype", values);
}

#define GST_TYPE_CUDA_LINK_SINK (gst_cuda_link_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstCudaLinkSink, gst_cuda_link_sink, GST, CUDA_LINK_SINK,
    GstBaseSink);

struct _GstCudaLinkSink
{
  GstBaseSink parent;

  /* properties; GST_OBJECT_LOCK */
  gchar *ipc_name;
  guint num_slots;
  guint max_slots;
  gboolean offer_import;
  gint device_id;
  GstCudaLinkChannelOrder channel_order;
  GstCudaLinkOutputDtype output_dtype;
  GstCudaLinkGpuWait gpu_wait;
  GstVideoOrientationMethod method;
  guint stats_interval_ms;
  gboolean settings_changed;    /* mapping or ring properties changed */

  /* start() .. stop(), streaming thread */
  gchar *segment_name;          /* ipc-name as start() read it, for the run */
  GstCudaLinkStatsTicker *ticker;       /* stats-interval */
  GstCudaContext *context;
  CUstream stream;
  GstCudaLinkConverter *conv;
  cudalink_producer *producer;
  guint producer_slots;
  GstVideoInfo info;
  gboolean have_info;
  gboolean cuda_caps;
  GstCudaLinkSinkMapping mapping;
  GstCudaLinkStaging staging;   /* upload / foreign-context copy target */
  GstBuffer *in_flight;         /* read by queued GPU work; released after a
                                 * publish once in_flight_done says the GPU
                                 * is done, or after a sync */
  const cudalink_cuda *cu;      /* the driver's table, for the event below */
  CUevent in_flight_done;       /* recorded after in_flight's work ... */
  gboolean in_flight_marked;    /* ... when this is set */
  gboolean warned_td;
  gboolean warned_order;

  /* prepare() -> render(), streaming thread: the frame prepare() mapped,
   * mapped until render() is done with it (or, when no render() came, until
   * the next prepare() or stop()), and the device memory render() reads:
   * the frame itself, or the staging buffer it was copied into */
  GstVideoFrame frame;
  gboolean frame_mapped;
  gboolean frame_cuda;          /* CUDA memory: queued GPU work reads it */
  CUdeviceptr src;
  gsize src_pitch;
  GstClockTimeDiff prepare_ns;  /* what prepare() took, for the stats */

  /* stats; stats_lock */
  GMutex stats_lock;
  gchar *lib_error;             /* last error-level message of libcudalink */
  const gchar *path;            /* "plain copy" or the converter's origin */
  cudalink_producer_stats pstats;       /* of the current producer */
  guint producer_slots_now;     /* its ring's, after any growth */
  guint64 base_frames, base_reinits, base_relinks;      /* of earlier ones */
  guint64 base_held_drops, base_grows, base_dead_readers;
  guint64 window[STATS_WINDOW]; /* render times, ns */
  guint window_len, window_pos;
};

static void
gst_cuda_link_sink_video_direction_init (GstVideoDirectionInterface * iface)
{
}

#define gst_cuda_link_sink_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstCudaLinkSink, gst_cuda_link_sink,
    GST_TYPE_BASE_SINK,
    G_IMPLEMENT_INTERFACE (GST_TYPE_VIDEO_DIRECTION,
        gst_cuda_link_sink_video_direction_init));
GST_ELEMENT_REGISTER_DEFINE (cudalinksink, "cudalinksink", GST_RANK_NONE,
    GST_TYPE_CUDA_LINK_SINK);

static gboolean
method_supported (GstVideoOrientationMethod method)
{
  return method == GST_VIDEO_ORIENTATION_IDENTITY ||
      method == GST_VIDEO_ORIENTATION_VERT;
}

static void
gst_cuda_link_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IPC_NAME:
      g_free (self->ipc_name);
      self->ipc_name = g_value_dup_string (value);
      break;
    case PROP_NUM_SLOTS:
      if (self->num_slots != g_value_get_uint (value))
        self->settings_changed = TRUE;
      self->num_slots = g_value_get_uint (value);
      break;
    case PROP_MAX_SLOTS:
      self->max_slots = g_value_get_uint (value);
      break;
    case PROP_OFFER_IMPORT:
      self->offer_import = g_value_get_boolean (value);
      break;
    case PROP_CUDA_DEVICE_ID:
      self->device_id = g_value_get_int (value);
      break;
    case PROP_CHANNEL_ORDER:
      self->channel_order = g_value_get_enum (value);
      self->settings_changed = TRUE;
      break;
    case PROP_OUTPUT_DTYPE:
      self->output_dtype = g_value_get_enum (value);
      self->settings_changed = TRUE;
      break;
    case PROP_GPU_WAIT:
      self->gpu_wait = g_value_get_enum (value);
      break;
    case PROP_STATS_INTERVAL:
      self->stats_interval_ms = g_value_get_uint (value);
      break;
    case PROP_VIDEO_DIRECTION:{
      GstVideoOrientationMethod method = g_value_get_enum (value);

      if (!method_supported (method)) {
        GEnumValue *ev = g_enum_get_value (g_type_class_peek
            (GST_TYPE_VIDEO_ORIENTATION_METHOD), method);

        GST_OBJECT_UNLOCK (self);
        /* refused: the previous value stays */
        GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
            ("video-direction \"%s\" is not supported; only \"identity\" "
                "and \"vert\" are. Keeping the previous value.",
                ev ? ev->value_nick : "?"), (NULL));
        return;
      }
      self->method = method;
      self->settings_changed = TRUE;
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
copy_field (GQuark field, const GValue * value, gpointer user_data)
{
  gst_structure_id_set_value ((GstStructure *) user_data, field, value);
  return TRUE;
}

/* Our stats, and GstBaseSink's (rendered, dropped, average-rate): the
 * property keeps the name "stats" and so hides the base class's. */
static GstStructure *
gst_cuda_link_sink_make_stats (GstCudaLinkSink * self)
{
  guint64 sorted[STATS_WINDOW];
  GstStructure *s, *base;
  guint n;

  g_mutex_lock (&self->stats_lock);
  n = self->window_len;
  memcpy (sorted, self->window, n * sizeof (guint64));
  s = gst_structure_new ("application/x-cudalinksink-stats",
      "frames-published", G_TYPE_UINT64,
      self->base_frames + self->pstats.frames,
      "reinits", G_TYPE_UINT64, self->base_reinits + self->pstats.reinits,
      "relinks", G_TYPE_UINT64, self->base_relinks + self->pstats.relinks,
      "version", G_TYPE_UINT64, self->pstats.version,
      "write-idx", G_TYPE_UINT, self->pstats.write_idx,
      "took-over-stale", G_TYPE_BOOLEAN, self->pstats.took_over_stale != 0,
      "num-slots", G_TYPE_UINT, self->producer ? self->producer_slots_now : 0,
      "import", G_TYPE_BOOLEAN, self->pstats.import != 0,
      "import-readers", G_TYPE_UINT, self->pstats.import_readers,
      "import-readers-mps", G_TYPE_UINT, self->pstats.import_readers_mps,
      "holds", G_TYPE_UINT, self->pstats.holds,
      "held-drops", G_TYPE_UINT64,
      self->base_held_drops + self->pstats.held_drops,
      "grows", G_TYPE_UINT64, self->base_grows + self->pstats.grows,
      "dead-readers", G_TYPE_UINT64,
      self->base_dead_readers + self->pstats.dead_readers,
      "mps", G_TYPE_INT, self->pstats.mps,
      "publish-time-samples", G_TYPE_UINT, n,
      "path", G_TYPE_STRING, self->path ? self->path : "none", NULL);
  g_mutex_unlock (&self->stats_lock);

  gst_structure_set (s,
      "publish-time-p50-us", G_TYPE_DOUBLE,
      gst_cuda_link_percentile (sorted, n, 50) / 1000.0,
      "publish-time-p99-us", G_TYPE_DOUBLE,
      gst_cuda_link_percentile (sorted, n, 99) / 1000.0, NULL);

  /* takes the object lock: not called with it held */
  base = gst_base_sink_get_stats (GST_BASE_SINK (self));
  gst_structure_foreach (base, copy_field, s);
  gst_structure_free (base);
  return s;
}

static GstStructure *
gst_cuda_link_sink_stats (GstElement * element)
{
  return gst_cuda_link_sink_make_stats (GST_CUDA_LINK_SINK (element));
}

static void
gst_cuda_link_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, gst_cuda_link_sink_make_stats (self));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IPC_NAME:
      g_value_set_string (value, self->ipc_name);
      break;
    case PROP_NUM_SLOTS:
      g_value_set_uint (value, self->num_slots);
      break;
    case PROP_MAX_SLOTS:
      g_value_set_uint (value, self->max_slots);
      break;
    case PROP_OFFER_IMPORT:
      g_value_set_boolean (value, self->offer_import);
      break;
    case PROP_CUDA_DEVICE_ID:
      g_value_set_int (value, self->device_id);
      break;
    case PROP_CHANNEL_ORDER:
      g_value_set_enum (value, self->channel_order);
      break;
    case PROP_OUTPUT_DTYPE:
      g_value_set_enum (value, self->output_dtype);
      break;
    case PROP_GPU_WAIT:
      g_value_set_enum (value, self->gpu_wait);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint (value, self->stats_interval_ms);
      break;
    case PROP_VIDEO_DIRECTION:
      g_value_set_enum (value, self->method);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_cuda_link_sink_finalize (GObject * object)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (object);

  g_free (self->ipc_name);
  g_free (self->lib_error);
  g_mutex_clear (&self->stats_lock);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_cuda_link_sink_dispose (GObject * object)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (object);

  /* stop() released everything else; a context may come from set_context */
  gst_clear_object (&self->context);

  G_OBJECT_CLASS (parent_class)->dispose (object);
}

/* ---------------------------------------------------------------------- */
/* Context sharing                                                        */
/* ---------------------------------------------------------------------- */

static void
gst_cuda_link_sink_set_context (GstElement * element, GstContext * context)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (element);
  gint device_id;

  GST_OBJECT_LOCK (self);
  device_id = self->device_id;
  GST_OBJECT_UNLOCK (self);

  gst_cuda_handle_set_context (element, context, device_id, &self->context);

  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static gboolean
gst_cuda_link_sink_query (GstBaseSink * sink, GstQuery * query)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CONTEXT &&
      gst_cuda_handle_context_query (GST_ELEMENT (self), query, self->context))
    return TRUE;

  return GST_BASE_SINK_CLASS (parent_class)->query (sink, query);
}

/* ---------------------------------------------------------------------- */
/* libcudalink glue                                                       */
/* ---------------------------------------------------------------------- */

static void
lib_log (void *user_data, cudalink_log_level level, const char *message)
{
  GstCudaLinkSink *self = user_data;

  switch (level) {
    case CUDALINK_LOG_ERROR:
      GST_WARNING_OBJECT (self, "libcudalink: %s", message);
      g_mutex_lock (&self->stats_lock);
      g_free (self->lib_error);
      self->lib_error = g_strdup (message);
      g_mutex_unlock (&self->stats_lock);
      break;
    case CUDALINK_LOG_WARNING:
      GST_WARNING_OBJECT (self, "libcudalink: %s", message);
      break;
    case CUDALINK_LOG_INFO:
      GST_INFO_OBJECT (self, "libcudalink: %s", message);
      break;
    default:
      GST_DEBUG_OBJECT (self, "libcudalink: %s", message);
      break;
  }
}

/* Debug text for a failed libcudalink call: the producer's last error,
 * else the last error the library logged ("" when neither says more). */
static gchar *
lib_detail (GstCudaLinkSink * self)
{
  const gchar *detail = self->producer ?
      cudalink_producer_last_error (self->producer) : "";
  gchar *ret;

  g_mutex_lock (&self->stats_lock);
  if ((!detail || !*detail) && self->lib_error)
    detail = self->lib_error;
  ret = g_strdup (detail ? detail : "");
  g_mutex_unlock (&self->stats_lock);
  return ret;
}

/* Posts a failed libcudalink call through the shared status -> error
 * mapping: "@what: <the status's sentence>" for the user, the library's
 * detail as debug text. */
static void
post_lib_status (GstCudaLinkSink * self, cudalink_status st, const gchar * what)
{
  gchar *text = g_strdup_printf ("%s: %s", what, cudalink_strerror (st));
  gchar *detail = lib_detail (self);

  gst_cuda_link_post_status (self, st, text, detail);
  g_free (detail);
  g_free (text);
}

/* Takes the producer's counters; says so on the bus when it had to
 * re-link the segment (a consumer unlinked its name). */
static void
snapshot_stats (GstCudaLinkSink * self)
{
  cudalink_producer_stats st;
  guint64 relinked;
  gboolean grown;
  guint64 died;

  cudalink_producer_get_stats (self->producer, &st);
  g_mutex_lock (&self->stats_lock);
  relinked = st.relinks > self->pstats.relinks ?
      st.relinks - self->pstats.relinks : 0;
  grown = st.grows > self->pstats.grows;
  died = st.dead_readers > self->pstats.dead_readers ?
      st.dead_readers - self->pstats.dead_readers : 0;
  self->pstats = st;
  self->producer_slots_now = cudalink_producer_num_slots (self->producer);
  g_mutex_unlock (&self->stats_lock);
  if (relinked)
    gst_cuda_link_post_state (GST_ELEMENT (self), "segment-relinked",
        self->segment_name, "relinks", G_TYPE_UINT64, st.relinks, NULL);
  if (grown)
    gst_cuda_link_post_state (GST_ELEMENT (self), "ring-grown",
        self->segment_name, "slots", G_TYPE_UINT, self->producer_slots_now,
        NULL);
  /* found by the producer's census, within a second of the death */
  if (died)
    gst_cuda_link_post_state (GST_ELEMENT (self), "reader-died",
        self->segment_name, "readers", G_TYPE_UINT64, died, NULL);
}

/* Lets in_flight go back upstream (the GPU is done with it); its event no
 * longer stands for anything. */
static void
drop_in_flight (GstCudaLinkSink * self)
{
  gst_clear_buffer (&self->in_flight);
  self->in_flight_marked = FALSE;
}

/* Waits for all GPU work queued on our stream and lets the buffer it was
 * reading go back to upstream. FALSE (nothing posted: callers that stop on
 * it post) when the wait failed; the buffer is released either way. */
static gboolean
sync_in_flight (GstCudaLinkSink * self)
{
  gboolean ok = TRUE;

  if (self->stream && self->context) {
    ok = gst_cuda_context_push (self->context);
    if (ok) {
      ok = gst_cuda_result (CuStreamSynchronize (self->stream));
      gst_cuda_context_pop (NULL);
    }
  }
  drop_in_flight (self);
  return ok;
}

/* Unmaps the frame prepare() mapped (a no-op when there is none). @in_use:
 * queued GPU work may still read it, so a CUDA buffer stays referenced in
 * in_flight until the stream is synchronised. Pageable system memory never
 * needs that: cuMemcpy2DAsync has copied it out when it returns. */
static void
release_frame (GstCudaLinkSink * self, gboolean in_use)
{
  if (!self->frame_mapped)
    return;

  if (in_use && self->frame_cuda) {
    /* in_flight holds one buffer: with an older one there, synchronise,
     * which finishes this frame's work too */
    if (self->in_flight)
      sync_in_flight (self);
    else
      self->in_flight = gst_buffer_ref (self->frame.buffer);
  }
  gst_video_frame_unmap (&self->frame);
  self->frame_mapped = FALSE;
  self->frame_cuda = FALSE;
}

/* Whether the GPU is done with in_flight, as its event says: TRUE when it
 * is (released) or when there is none; FALSE when it may still be read (or
 * cannot be told: no event). */
static gboolean
in_flight_done (GstCudaLinkSink * self)
{
  CUresult res = CUDA_ERROR_NOT_READY;

  if (!self->in_flight)
    return TRUE;
  if (!self->in_flight_marked)
    return FALSE;
  if (gst_cuda_context_push (self->context)) {
    res = self->cu->EventQuery (self->in_flight_done);
    gst_cuda_context_pop (NULL);
  }
  if (res != CUDA_SUCCESS)
    return FALSE;
  drop_in_flight (self);
  return TRUE;
}

/* After a publish without gpu-wait: the previous frame's buffer goes back
 * upstream when its event says the GPU is done with it (it long is, unless
 * frames come back to back; else the stream is synchronised), and this
 * frame's buffer stays in in_flight with an event recorded behind its
 * work. This runs after the readers were woken: the synchronisation it
 * replaces, in the next prepare(), cost every frame 2.5 us of latency (the
 * H200 trace of docs/BENCHMARKS.md). FALSE when a synchronisation failed
 * (the buffers are released all the same, as sync_in_flight() does). */
static gboolean
keep_published_frame (GstCudaLinkSink * self)
{
  CUresult res = CUDA_ERROR_INVALID_CONTEXT;
  gboolean ok = TRUE;

  /* still there: frames came back to back, or it has no event */
  if (!in_flight_done (self))
    ok = sync_in_flight (self);
  release_frame (self, TRUE);
  if (!self->in_flight || !self->cu)
    return ok;
  if (gst_cuda_context_push (self->context)) {
    res = CUDA_SUCCESS;
    if (!self->in_flight_done)
      res = self->cu->EventCreate (&self->in_flight_done,
          CU_EVENT_DISABLE_TIMING);
    if (res == CUDA_SUCCESS)
      res = self->cu->EventRecord (self->in_flight_done, self->stream);
    gst_cuda_context_pop (NULL);
  }
  self->in_flight_marked = res == CUDA_SUCCESS;
  if (res != CUDA_SUCCESS) {
    GST_DEBUG_OBJECT (self, "no event behind the frame's work (%d): "
        "synchronising", (gint) res);
    ok = sync_in_flight (self) && ok;
  }
  return ok;
}

static void
destroy_in_flight_event (GstCudaLinkSink * self)
{
  if (!self->in_flight_done)
    return;
  if (gst_cuda_context_push (self->context)) {
    self->cu->EventDestroy (self->in_flight_done);
    gst_cuda_context_pop (NULL);
  }
  self->in_flight_done = NULL;
  self->in_flight_marked = FALSE;
}

static void
destroy_segment (GstCudaLinkSink * self)
{
  if (!self->producer)
    return;

  sync_in_flight (self);
  snapshot_stats (self);
  g_mutex_lock (&self->stats_lock);
  self->base_frames += self->pstats.frames;
  self->base_reinits += self->pstats.reinits;
  self->base_relinks += self->pstats.relinks;
  self->base_held_drops += self->pstats.held_drops;
  self->base_grows += self->pstats.grows;
  self->base_dead_readers += self->pstats.dead_readers;
  memset (&self->pstats, 0, sizeof (self->pstats));
  g_mutex_unlock (&self->stats_lock);

  GST_INFO_OBJECT (self, "shutting down segment \"%s\"", self->segment_name);
  cudalink_producer_destroy (self->producer);
  self->producer = NULL;
}

static gboolean
formats_equal (const cudalink_format * a, const cudalink_format * b)
{
  return a->width == b->width && a->height == b->height &&
      a->num_comps == b->num_comps && a->dtype == b->dtype &&
      a->flags == b->flags;
}

/* Makes the segment match self->mapping: creates the producer (which
 * publishes the segment), re-creates it for a new slot count, or reformats
 * it (new ring, version bumped). Posts an error and returns FALSE on
 * failure. */
static gboolean
ensure_segment (GstCudaLinkSink * self)
{
  cudalink_producer_config config;
  cudalink_status st;
  guint num_slots, max_slots;
  gboolean offer_import;
  guint device_id = 0;

  GST_OBJECT_LOCK (self);
  num_slots = self->num_slots;
  max_slots = self->max_slots;
  offer_import = self->offer_import;
  GST_OBJECT_UNLOCK (self);

  if (self->producer && self->producer_slots != num_slots) {
    GST_INFO_OBJECT (self, "num-slots %u -> %u: new segment",
        self->producer_slots, num_slots);
    destroy_segment (self);
  }

  if (self->producer) {
    if (formats_equal (cudalink_producer_format (self->producer),
            &self->mapping.format))
      return TRUE;

    /* the old ring may still be read by our queued work */
    sync_in_flight (self);
    st = cudalink_producer_reformat (self->producer, &self->mapping.format);
    if (st != CUDALINK_OK) {
      post_lib_status (self, st, "Could not change the frame format");
      return FALSE;
    }
    snapshot_stats (self);
    return TRUE;
  }

  g_object_get (self->context, "cuda-device-id", &device_id, NULL);
  cudalink_producer_config_init (&config);
  config.name = self->segment_name;
  config.num_slots = num_slots;
  config.max_slots = max_slots;
  config.flags = offer_import ? CUDALINK_PRODUCER_IMPORT : 0;
  config.device = (int) device_id;
  config.cuda_context = gst_cuda_context_get_handle (self->context);
  config.log = lib_log;
  config.log_user_data = self;

  g_mutex_lock (&self->stats_lock);
  g_clear_pointer (&self->lib_error, g_free);
  g_mutex_unlock (&self->stats_lock);

  st = cudalink_producer_create (&config, &self->mapping.format,
      &self->producer);
  if (st != CUDALINK_OK) {
    gchar *what = g_strdup_printf ("Could not publish segment \"%s\"",
        self->segment_name);

    self->producer = NULL;
    post_lib_status (self, st, what);
    g_free (what);
    return FALSE;
  }
  self->producer_slots = num_slots;
  snapshot_stats (self);
  GST_INFO_OBJECT (self, "publishing segment \"%s\" (%u slots) on CUDA "
      "device %u", self->segment_name, num_slots, device_id);
  gst_cuda_link_post_state (GST_ELEMENT (self), "segment-created",
      self->segment_name, "slots", G_TYPE_UINT, num_slots,
      "width", G_TYPE_UINT, self->mapping.format.width,
      "height", G_TYPE_UINT, self->mapping.format.height,
      "channels", G_TYPE_UINT, self->mapping.format.num_comps,
      "dtype", G_TYPE_STRING, cudalink_dtype_name (self->mapping.format.dtype),
      "flags", G_TYPE_UINT, (guint) self->mapping.format.flags,
      "took-over-stale", G_TYPE_BOOLEAN, self->pstats.took_over_stale != 0,
      NULL);
  return TRUE;
}

/* Recomputes self->mapping from the caps and the properties, and loads the
 * converter when the mapping needs one. The segment is not touched:
 * ensure_segment() follows. Called with new caps and when a property
 * changed. */
static gboolean
apply_mapping (GstCudaLinkSink * self)
{
  GstCudaLinkSinkMapping m;
  GstCudaLinkChannelOrder order;
  GstCudaLinkOutputDtype dtype;
  GstVideoOrientationMethod method;
  gchar *desc;

  GST_OBJECT_LOCK (self);
  order = self->channel_order;
  dtype = self->output_dtype;
  method = self->method;
  self->settings_changed = FALSE;
  GST_OBJECT_UNLOCK (self);

  if (!gst_cuda_link_sink_map_format (GST_VIDEO_INFO_FORMAT (&self->info),
          GST_VIDEO_INFO_WIDTH (&self->info),
          GST_VIDEO_INFO_HEIGHT (&self->info), order, dtype,
          method == GST_VIDEO_ORIENTATION_VERT, &m)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Cannot publish %s %dx%d frames",
            gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&self->info)),
            GST_VIDEO_INFO_WIDTH (&self->info),
            GST_VIDEO_INFO_HEIGHT (&self->info)),
        ("the cuda-link protocol carries 1..%u pixels per side and frames "
            "below 4 GiB", CUDALINK_MAX_DIMENSION));
    return FALSE;
  }

  desc = gst_cuda_link_sink_mapping_describe (&m);
  GST_INFO_OBJECT (self, "%s input -> %s",
      gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&self->info)), desc);

  if (m.td_unreadable && !self->warned_td) {
    self->warned_td = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT,
        ("Publishing %s: a TouchDesigner cuda-link Receiver cannot read this "
            "dtype (it reads uint8, uint16, float16 and float32)", desc),
        ("output-dtype=%d", dtype));
  }
  if (m.order_ignored && !self->warned_order) {
    self->warned_order = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT,
        ("channel-order=bgra only applies to uint8 x 4 output; publishing "
            "%s", desc), (NULL));
  }
  g_free (desc);

  if (!m.plain && !self->conv) {
    GError *err = NULL;

    self->conv = gst_cuda_link_converter_new (self->context, &err);
    if (!self->conv) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Cannot convert %s input on the GPU", gst_video_format_to_string
              (GST_VIDEO_INFO_FORMAT (&self->info))), ("%s", err->message));
      g_clear_error (&err);
      return FALSE;
    }
    GST_INFO_OBJECT (self, "GPU converter loaded from %s",
        gst_cuda_link_converter_origin (self->conv));
  }

  self->mapping = m;
  g_mutex_lock (&self->stats_lock);
  self->path = m.plain ? "plain copy" :
      gst_cuda_link_converter_origin (self->conv);
  g_mutex_unlock (&self->stats_lock);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* start / stop                                                           */
/* ---------------------------------------------------------------------- */

static gboolean
gst_cuda_link_sink_start (GstBaseSink * sink)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);
  gchar *name, *text, why[512] = "";
  cudalink_status st;
  gint device_id;
  guint interval_ms;

  GST_OBJECT_LOCK (self);
  name = g_strdup (self->ipc_name);
  device_id = self->device_id;
  self->settings_changed = FALSE;
  GST_OBJECT_UNLOCK (self);

  /* the name first: it needs no driver */
  st = cudalink_check_name_why (name, why, sizeof (why));
  if (st != CUDALINK_OK) {
    text = g_strdup_printf ("Invalid ipc-name \"%s\"", name ? name : "");
    gst_cuda_link_post_status (self, st, text, why);
    g_free (text);
    g_free (name);
    return FALSE;
  }

  st = gst_cuda_link_load_driver (why, sizeof (why));
  if (st != CUDALINK_OK) {
    text = g_strdup_printf ("CUDA driver not available: %s",
        cudalink_strerror (st));
    gst_cuda_link_post_status (self, st, text, why);
    g_free (text);
    g_free (name);
    return FALSE;
  }

  if (!gst_cuda_link_cuda_open (GST_ELEMENT (self), device_id, &self->context,
          &self->stream)) {
    g_free (name);
    return FALSE;
  }
  /* loaded above; without it (never) frames are synchronised instead */
  self->cu = cudalink_cuda_get (NULL, NULL, 0);

  /* the name the segment has for the whole run: ipc-name is READY-only,
   * and a re-created segment (num-slots, after EOS) keeps it */
  g_free (self->segment_name);
  self->segment_name = name;

  g_mutex_lock (&self->stats_lock);
  memset (&self->pstats, 0, sizeof (self->pstats));
  self->base_frames = self->base_reinits = self->base_relinks = 0;
  self->base_held_drops = self->base_grows = self->base_dead_readers = 0;
  self->window_len = self->window_pos = 0;
  g_mutex_unlock (&self->stats_lock);
  self->have_info = FALSE;
  self->warned_td = self->warned_order = FALSE;

  GST_OBJECT_LOCK (self);
  interval_ms = self->stats_interval_ms;
  GST_OBJECT_UNLOCK (self);
  if (interval_ms > 0)
    self->ticker = gst_cuda_link_stats_ticker_start (GST_ELEMENT (self),
        interval_ms, gst_cuda_link_sink_stats);
  return TRUE;
}

static gboolean
gst_cuda_link_sink_stop (GstBaseSink * sink)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);

  g_clear_pointer (&self->ticker, gst_cuda_link_stats_ticker_stop);
  /* a frame prepared for a render() that never came, then its GPU work */
  release_frame (self, TRUE);
  sync_in_flight (self);
  destroy_in_flight_event (self);
  destroy_segment (self);
  gst_cuda_link_staging_free (&self->staging, self->context);
  g_mutex_lock (&self->stats_lock);
  self->path = NULL;
  g_mutex_unlock (&self->stats_lock);
  g_clear_pointer (&self->conv, gst_cuda_link_converter_free);
  gst_cuda_link_cuda_close (&self->context, &self->stream);
  g_clear_pointer (&self->segment_name, g_free);
  self->have_info = FALSE;

  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* caps and allocation                                                    */
/* ---------------------------------------------------------------------- */

static gboolean
gst_cuda_link_sink_set_caps (GstBaseSink * sink, GstCaps * caps)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);
  GstCapsFeatures *features;
  GstVideoInfo info;

  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);

  if (!gst_video_info_from_caps (&info, caps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Invalid caps"),
        ("could not parse %" GST_PTR_FORMAT, caps));
    return FALSE;
  }

  features = gst_caps_get_features (caps, 0);
  self->cuda_caps = features && gst_caps_features_contains (features,
      GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY);
  self->info = info;
  self->have_info = TRUE;

  return apply_mapping (self) && ensure_segment (self);
}

/* Formats GStreamer 1.22's CUDA allocator can allocate: it aborts on any
 * other (gst_cuda_allocator_alloc_internal), so no pool is offered for the
 * gray and 16-bit formats before 1.24. */
static gboolean
pool_format_supported (GstVideoFormat format)
{
#if GST_CHECK_VERSION(1, 24, 0)
  return TRUE;
#else
  switch (format) {
    case GST_VIDEO_FORMAT_RGBA:
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_BGRx:
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR:
      return TRUE;
    default:
      return FALSE;
  }
#endif
}

static gboolean
gst_cuda_link_sink_propose_allocation (GstBaseSink * sink, GstQuery * query)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);
  GstCapsFeatures *features;
  GstVideoInfo info;
  GstCaps *caps;
  gboolean need_pool;

  gst_query_parse_allocation (query, &caps, &need_pool);
  if (!caps || !gst_video_info_from_caps (&info, caps))
    return FALSE;

  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);

  features = gst_caps_get_features (caps, 0);
  if (need_pool && self->context && features &&
      gst_caps_features_contains (features,
          GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY) &&
      pool_format_supported (GST_VIDEO_INFO_FORMAT (&info))) {
    GstBufferPool *pool = gst_cuda_buffer_pool_new (self->context);
    GstStructure *config = gst_buffer_pool_get_config (pool);
    guint size;

    gst_buffer_pool_config_add_option (config,
        GST_BUFFER_POOL_OPTION_VIDEO_META);
    gst_buffer_pool_config_set_params (config, caps, info.size, 0, 0);
    if (!gst_buffer_pool_set_config (pool, config)) {
      GST_WARNING_OBJECT (self, "CUDA pool refused its config");
      gst_object_unref (pool);
      return TRUE;
    }
    /* the pool wrote back its pitched size */
    config = gst_buffer_pool_get_config (pool);
    gst_buffer_pool_config_get_params (config, NULL, &size, NULL, NULL);
    gst_structure_free (config);

    /* one buffer stays with us until the next frame's publish (in_flight) */
    gst_query_add_allocation_pool (query, pool, size, 1, 0);
    gst_object_unref (pool);
  }

  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* prepare: the frame onto our GPU, before the clock wait                 */
/* ---------------------------------------------------------------------- */

static gboolean
ensure_staging (GstCudaLinkSink * self, gsize row, guint height)
{
  /* the staging buffer may still be the source of a copy in flight */
  if (!gst_cuda_link_staging_fits (&self->staging, row, height))
    sync_in_flight (self);
  return gst_cuda_link_staging_ensure (&self->staging, GST_ELEMENT (self),
      self->context, row, height);
}

/* Enqueues a copy of plane 0 of @frame into the staging buffer. */
static gboolean
copy_to_staging (GstCudaLinkSink * self, GstVideoFrame * frame, gboolean device)
{
  CUDA_MEMCPY2D cp;
  gsize row = (gsize) GST_VIDEO_FRAME_WIDTH (frame) *
      self->mapping.src_pixel_size;
  guint height = GST_VIDEO_FRAME_HEIGHT (frame);
  CUresult res;

  if (!ensure_staging (self, row, height))
    return FALSE;

  memset (&cp, 0, sizeof (cp));
  if (device) {
    cp.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    cp.srcDevice = (CUdeviceptr) GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  } else {
    cp.srcMemoryType = CU_MEMORYTYPE_HOST;
    cp.srcHost = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  }
  cp.srcPitch = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.dstDevice = self->staging.ptr;
  cp.dstPitch = self->staging.pitch;
  cp.WidthInBytes = row;
  cp.Height = height;

  if (!gst_cuda_context_push (self->context)) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not make the CUDA context current."),
        ("cuCtxPushCurrent, before copying the frame to the staging buffer"));
    return FALSE;
  }
  res = CuMemcpy2DAsync (&cp, self->stream);
  gst_cuda_context_pop (NULL);
  if (res != CUDA_SUCCESS) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not upload the frame to the GPU"), ("cuMemcpy2DAsync: %s",
            gst_cuda_link_cu_error_name (res)));
    return FALSE;
  }
  return TRUE;
}

/* Maps @buf and says where render() reads its pixels (self->src,
 * self->src_pitch): CUDA memory of our context where it lies; system memory
 * and CUDA memory of another context from the staging buffer, copied there
 * on our stream (a copy, which UVA allows, reads another context's memory,
 * maybe on another device, where a kernel of ours could not). */
static gboolean
map_frame (GstCudaLinkSink * self, GstBuffer * buf)
{
  GstMemory *mem = gst_buffer_n_memory (buf) == 1 ?
      gst_buffer_peek_memory (buf, 0) : NULL;
  gboolean on_device = self->cuda_caps && mem && gst_is_cuda_memory (mem);

  if (!gst_video_frame_map (&self->frame, &self->info, buf,
          on_device ? GST_MAP_READ | GST_MAP_CUDA : GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Could not map the frame"),
        ("gst_video_frame_map (%s) failed", on_device ? "CUDA" : "system"));
    return FALSE;
  }
  self->frame_mapped = TRUE;
  self->frame_cuda = on_device;

  if (on_device && GST_CUDA_MEMORY_CAST (mem)->context == self->context) {
    self->src = (CUdeviceptr) GST_VIDEO_FRAME_PLANE_DATA (&self->frame, 0);
    self->src_pitch = GST_VIDEO_FRAME_PLANE_STRIDE (&self->frame, 0);
    return TRUE;
  }

  if (on_device)
    GST_LOG_OBJECT (self, "CUDA memory of another context: copying");
  if (!copy_to_staging (self, &self->frame, on_device))
    return FALSE;
  self->src = self->staging.ptr;
  self->src_pitch = self->staging.pitch;
  return TRUE;
}

/* GstBaseSink calls prepare() before its clock wait and render() after it
 * (cudaipcsink splits its work the same way): the upload or copy is queued
 * here, so that the GPU does it during the wait, and render() only writes
 * the slot and publishes. */
static GstFlowReturn
gst_cuda_link_sink_prepare (GstBaseSink * sink, GstBuffer * buf)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);
  gint64 t0 = gst_util_get_timestamp ();

  if (!self->have_info) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("received a buffer before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  /* the frame of a prepare() whose render() never came (a flush or a stop
   * during the clock wait, or a buffer the base class dropped after it) */
  release_frame (self, TRUE);

  /* (the previous frame's buffer, which the GPU may still read, is let go
   * after this frame's publish: keep_published_frame(). Our own staging
   * buffer and the slots need no wait: the work on them is ordered on our
   * stream.) */

  if (!map_frame (self, buf)) {
    release_frame (self, TRUE);
    return GST_FLOW_ERROR;
  }
  self->prepare_ns = gst_util_get_timestamp () - t0;
  return GST_FLOW_OK;
}

/* ---------------------------------------------------------------------- */
/* render: the prepared frame into the next slot, published               */
/* ---------------------------------------------------------------------- */

/* Queues the conversion kernel from the prepared frame into the slot at
 * @dst on our stream. */
static gboolean
convert_frame (GstCudaLinkSink * self, guint64 dst, gsize dst_pitch)
{
  GstCudaLinkConvertParams p;
  GError *err = NULL;

  memset (&p, 0, sizeof (p));
  p.src = self->src;
  p.src_pitch = self->src_pitch;
  p.src_comps = self->mapping.src_comps;
  p.src_dtype = self->mapping.src_dtype;
  p.dst = dst;
  p.dst_pitch = dst_pitch;
  p.dst_comps = self->mapping.format.num_comps;
  p.dst_dtype = self->mapping.format.dtype;
  p.width = self->mapping.format.width;
  p.height = self->mapping.format.height;
  memcpy (p.swizzle, self->mapping.swizzle, sizeof (p.swizzle));
  p.flip_y = self->mapping.flip_y;

  if (!gst_cuda_link_converter_run (self->conv, &p, self->stream, &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not convert the frame on the GPU"), ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  return TRUE;
}

/* One frame's time in the element, prepare() and render() together: the
 * clock wait between them is not the element's. */
static void
record_time (GstCudaLinkSink * self, gint64 render_start_ns)
{
  GstClockTimeDiff ns = gst_util_get_timestamp () - render_start_ns +
      self->prepare_ns;

  g_mutex_lock (&self->stats_lock);
  self->window[self->window_pos] = ns > 0 ? (guint64) ns : 0;
  self->window_pos = (self->window_pos + 1) % STATS_WINDOW;
  if (self->window_len < STATS_WINDOW)
    self->window_len++;
  g_mutex_unlock (&self->stats_lock);
}

static GstFlowReturn
gst_cuda_link_sink_render (GstBaseSink * sink, GstBuffer * buf)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);
  gboolean changed, wait;
  cudalink_status st;
  guint64 dst;
  size_t dst_pitch;
  gint64 t0;

  /* GstBaseSink prepared this very buffer; should it ever not have */
  if (!self->frame_mapped || self->frame.buffer != buf) {
    GstFlowReturn ret = gst_cuda_link_sink_prepare (sink, buf);

    if (ret != GST_FLOW_OK)
      return ret;
  }
  t0 = gst_util_get_timestamp ();

  GST_OBJECT_LOCK (self);
  changed = self->settings_changed;
  wait = self->gpu_wait != GST_CUDA_LINK_GPU_WAIT_NONE;
  GST_OBJECT_UNLOCK (self);
  if (changed && !apply_mapping (self))
    goto failed;
  /* a new slot count or format; no segment after EOS */
  if ((changed || !self->producer) && !ensure_segment (self))
    goto failed;

  /* begin -> convert or copy into the slot -> commit */
  if (self->mapping.plain) {
    /* all three in one call: a 2-D copy into the slot */
    st = cudalink_producer_publish (self->producer, self->src,
        self->src_pitch, self->stream, wait);
    if (st == CUDALINK_ERR_SLOTS_HELD)
      goto held;
    if (st != CUDALINK_OK)
      goto lib_failed;
  } else {
    st = cudalink_producer_begin (self->producer, &dst, &dst_pitch);
    if (st == CUDALINK_ERR_SLOTS_HELD)
      goto held;
    if (st != CUDALINK_OK)
      goto lib_failed;
    if (!convert_frame (self, dst, dst_pitch))
      goto failed;
    st = cudalink_producer_commit (self->producer, self->stream, wait);
    if (st != CUDALINK_OK)
      goto lib_failed;
  }

  /* without the synchronous commit, the queued work may still read the
   * buffer: in_flight keeps it (keep_published_frame()); with it, the
   * stream is idle and every buffer can go */
  if (wait) {
    release_frame (self, FALSE);
    drop_in_flight (self);
  } else if (!keep_published_frame (self)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("The GPU failed"),
        ("cuStreamSynchronize failed after a publish, waiting for the "
            "previous frame's copy"));
    snapshot_stats (self);
    return GST_FLOW_ERROR;
  }
  snapshot_stats (self);
  record_time (self, t0);
  return GST_FLOW_OK;

held:
  /* importing readers hold the next slot, and the ring may not grow
   * (max-slots): this frame is not published, counted in held-drops */
  GST_LOG_OBJECT (self, "next slot held by an importing reader: frame "
      "dropped");
  release_frame (self, TRUE);
  snapshot_stats (self);
  return GST_FLOW_OK;

lib_failed:
  post_lib_status (self, st, "Could not publish the frame");
failed:
  release_frame (self, TRUE);
  return GST_FLOW_ERROR;
}

static gboolean
gst_cuda_link_sink_event (GstBaseSink * sink, GstEvent * event)
{
  GstCudaLinkSink *self = GST_CUDA_LINK_SINK (sink);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    /* clean shutdown: consumers see the producer leave; a new segment is
     * created if data flows again (after a flushing seek) */
    GST_INFO_OBJECT (self, "EOS: shutting the segment down");
    destroy_segment (self);
  }

  return GST_BASE_SINK_CLASS (parent_class)->event (sink, event);
}

/* ---------------------------------------------------------------------- */

static void
gst_cuda_link_sink_class_init (GstCudaLinkSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS (klass);
  GstCaps *caps;
  GstPadTemplate *templ;

  gobject_class->set_property = gst_cuda_link_sink_set_property;
  gobject_class->get_property = gst_cuda_link_sink_get_property;
  gobject_class->dispose = gst_cuda_link_sink_dispose;
  gobject_class->finalize = gst_cuda_link_sink_finalize;

  g_object_class_install_property (gobject_class, PROP_IPC_NAME,
      g_param_spec_string ("ipc-name", "IPC name",
          "Name of the shared-memory segment to publish",
          DEFAULT_IPC_NAME, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_NUM_SLOTS,
      g_param_spec_uint ("num-slots", "Number of slots",
          "Number of device buffers in the ring",
          1, CUDALINK_MAX_SLOTS, DEFAULT_NUM_SLOTS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_OFFER_IMPORT,
      g_param_spec_boolean ("offer-import", "Offer import",
          "Let cudalinksrc readers hold slots instead of copying them "
          "(zero-copy; see docs)", DEFAULT_OFFER_IMPORT, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_SLOTS,
      g_param_spec_uint ("max-slots", "Maximum slots",
          "Up to how many slots the ring grows while importing readers hold "
          "slots (0 = num-slots: never grow; see docs)", 0, CUDALINK_MAX_SLOTS,
          DEFAULT_MAX_SLOTS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CUDA_DEVICE_ID,
      g_param_spec_int ("cuda-device-id", "CUDA device id",
          "CUDA device to use (-1 = auto)", -1, G_MAXINT,
          DEFAULT_CUDA_DEVICE_ID, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CHANNEL_ORDER,
      g_param_spec_enum ("channel-order", "Channel order",
          "Order of the 4 published channels", GST_TYPE_CUDA_LINK_CHANNEL_ORDER,
          DEFAULT_CHANNEL_ORDER, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_OUTPUT_DTYPE,
      g_param_spec_enum ("output-dtype", "Output data type",
          "Component type of the published frames",
          GST_TYPE_CUDA_LINK_SINK_OUTPUT_DTYPE,
          DEFAULT_OUTPUT_DTYPE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_GPU_WAIT,
      g_param_spec_enum ("gpu-wait", "GPU wait",
          "How the streaming thread waits for each frame's copy (none = "
          "not at all)",
          GST_TYPE_CUDA_LINK_GPU_WAIT, DEFAULT_GPU_WAIT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS_INTERVAL,
      g_param_spec_uint ("stats-interval", "Stats interval",
          "Milliseconds between element messages carrying the stats "
          "structure (0 = none)", 0, G_MAXUINT, DEFAULT_STATS_INTERVAL_MS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Publishing statistics (fields in docs/elements/cudalinksink.md)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_override_property (gobject_class, PROP_VIDEO_DIRECTION,
      "video-direction");

  gst_element_class_set_static_metadata (element_class, "CUDA Link Sink",
      "Sink/Video/Hardware",
      "Publishes video frames to other processes over CUDA IPC "
      "(cuda-link protocol, TouchDesigner compatible)", "cudalink developers");
  /* built at run time: its sizes come from CUDALINK_MAX_DIMENSION */
  caps = gst_cuda_link_sink_template_caps ();
  templ = gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps);
  gst_element_class_add_pad_template (element_class, templ);
  gst_caps_unref (caps);

  element_class->set_context =
      GST_DEBUG_FUNCPTR (gst_cuda_link_sink_set_context);

  basesink_class->start = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_stop);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_set_caps);
  basesink_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_cuda_link_sink_propose_allocation);
  basesink_class->query = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_query);
  basesink_class->event = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_event);
  basesink_class->prepare = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_prepare);
  basesink_class->render = GST_DEBUG_FUNCPTR (gst_cuda_link_sink_render);

  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_CHANNEL_ORDER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_GPU_WAIT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CUDA_LINK_SINK_OUTPUT_DTYPE, 0);

  GST_DEBUG_CATEGORY_INIT (gst_cuda_link_sink_debug, "cudalinksink", 0,
      "cudalinksink");
}

static void
gst_cuda_link_sink_init (GstCudaLinkSink * self)
{
  self->ipc_name = g_strdup (DEFAULT_IPC_NAME);
  self->num_slots = DEFAULT_NUM_SLOTS;
  self->max_slots = DEFAULT_MAX_SLOTS;
  self->offer_import = DEFAULT_OFFER_IMPORT;
  self->device_id = DEFAULT_CUDA_DEVICE_ID;
  self->channel_order = DEFAULT_CHANNEL_ORDER;
  self->output_dtype = DEFAULT_OUTPUT_DTYPE;
  self->gpu_wait = DEFAULT_GPU_WAIT;
  self->method = DEFAULT_VIDEO_DIRECTION;
  self->stats_interval_ms = DEFAULT_STATS_INTERVAL_MS;
  g_mutex_init (&self->stats_lock);
}
