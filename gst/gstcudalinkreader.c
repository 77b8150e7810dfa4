/* cudalinksrc's transport: see gstcudalinkreader.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinkreader.h"
#include "gstcudalinkimport.h"

#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>
#include <string.h>

#include "gstcudalinkconvert.h"
#include "gstcudalinkutils.h"

GST_DEBUG_CATEGORY_EXTERN (gst_cuda_link_src_debug);
#define GST_CAT_DEFAULT gst_cuda_link_src_debug

/* How often a missing producer is looked for, and the slices in which
 * that look-out sleeps (so that flushing ends it promptly). */
#define RECONNECT_INTERVAL_US 50000
#define WAIT_SLICE_US 10000
/* A frame wait needs no slices: flushing interrupts it. This only bounds a
 * wake-up lost in the instant the wait falls asleep. */
#define FRAME_WAIT_BACKSTOP_US 100000
/* How long one connect() retries a header being rewritten: also how long
 * a stop can wait for it, so shorter than the library's 2 s; the attach
 * loop retries anyway. */
#define SETTLE_MS 500
/* Latency samples kept for the stats percentiles. */
#define LATENCY_SAMPLES 1024
/* read_frame(): no frame this time (torn, or none after all), wait again */
#define READ_AGAIN ((GstCudaLinkReadResult) (GST_CUDA_LINK_READ_ERROR + 1))

typedef struct
{
  guint64 frames, missed, torn, reopens, paced, spin_us, sleeps, imported;
  gboolean last_imported;
  gint mps, producer_mps;
  gint64 first_offset;          /* first frame waited for, -1 before one */
  guint64 latency_ns[LATENCY_SAMPLES];  /* producer timestamp -> filled */
  guint64 wake_ns[LATENCY_SAMPLES];     /* producer timestamp -> woken */
  guint n, pos;
  gboolean producer_is_ours;
} ReaderStats;

struct _GstCudaLinkReader
{
  GstElement *element;          /* for logs; not a reference */

  /* from _start to _stop, streaming thread */
  GstCudaLinkReaderConfig config;
  gchar *name;
  gchar *no_driver_why;
  GstCudaContext *context;
  CUstream stream;
  cudalink_consumer *consumer;
  GstCudaLinkConverter *converter;
  GstCudaLinkStaging staging;   /* device copy of a frame before a download */
  GstCudaLinkImport *import;    /* held slots as output buffers */
  gboolean import_tried;        /* for the current output */
  gboolean import_warned;       /* io-mode=import that copies: said once */
  gboolean connected;
  gboolean ever_connected;
  gboolean discont;
  gint64 last_frame_us;         /* monotonic: the last frame, or connect */
  gboolean stalled;             /* STALLED was returned, no frame since */
  gchar *error_detail;
  cudalink_consumer_stats seen; /* the consumer's counters last added up */

  /* negotiated output, streaming thread */
  GstVideoInfo out_info;
  gboolean out_cuda;

  gint flushing;                /* atomic */

  /* the current format; lock (written by the streaming thread only) */
  GMutex lock;
  gboolean have_format;
  cudalink_format format;
  GstCudaLinkSrcPlan plan;
  GstCaps *caps;
  ReaderStats stats;
};

/* ------------------------------------------------------------------------ */
/* life cycle                                                               */
/* ------------------------------------------------------------------------ */

GstCudaLinkReader *
gst_cuda_link_reader_new (GstElement * element)
{
  GstCudaLinkReader *r = g_new0 (GstCudaLinkReader, 1);

  r->element = element;
  r->stats.first_offset = -1;
  r->stats.mps = r->stats.producer_mps = -1;
  g_mutex_init (&r->lock);
  return r;
}

void
gst_cuda_link_reader_free (GstCudaLinkReader * r)
{
  if (!r)
    return;
  gst_cuda_link_reader_stop (r);
  g_mutex_clear (&r->lock);
  g_free (r);
}

static guint32
consumer_flags (const GstCudaLinkReaderConfig * config)
{
  guint32 flags = 0;

  if (config->gpu_wait == GST_CUDA_LINK_GPU_WAIT_SPIN)
    flags |= CUDALINK_CONSUMER_SPIN_SYNC;
  else if (config->gpu_wait == GST_CUDA_LINK_GPU_WAIT_SLEEP)
    flags |= CUDALINK_CONSUMER_SLEEP_SYNC;
  if (!config->wake_spin)
    flags |= CUDALINK_CONSUMER_NO_PACE;
  if (config->io_mode != GST_CUDA_LINK_IO_MODE_COPY)
    flags |= CUDALINK_CONSUMER_IMPORT;
  return flags;
}

static gboolean
create_stream (GstCudaLinkReader * r, GError ** error)
{
  CUresult res = CUDA_ERROR_INVALID_CONTEXT;

  if (gst_cuda_context_push (r->context)) {
    res = CuStreamCreate (&r->stream, CU_STREAM_DEFAULT);
    gst_cuda_context_pop (NULL);
  }
  if (res != CUDA_SUCCESS) {
    r->stream = NULL;
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "Could not create a CUDA stream (%s).",
        gst_cuda_link_cu_error_name (res));
    return FALSE;
  }
  return TRUE;
}

gboolean
gst_cuda_link_reader_start (GstCudaLinkReader * r,
    const GstCudaLinkReaderConfig * config, GError ** error)
{
  cudalink_consumer_config cc;
  cudalink_status st;

  gst_cuda_link_reader_stop (r);

  r->config = *config;
  r->name = g_strdup (config->name);
  r->config.name = r->name;
  r->no_driver_why = g_strdup (config->no_driver_why);
  r->config.no_driver_why = r->no_driver_why;
  r->context = config->context ? gst_object_ref (config->context) : NULL;
  r->config.context = r->context;
  if (r->context && !create_stream (r, error))
    return FALSE;

  cudalink_consumer_config_init (&cc);
  cc.name = r->name;
  cc.device = config->device_id < 0 ? 0 : config->device_id;
  cc.cuda_context = r->context ? gst_cuda_context_get_handle (r->context) :
      NULL;
  cc.poll_interval_us = config->poll_interval_us;
  cc.flags = consumer_flags (config);
  cc.settle_ms = SETTLE_MS;
  st = cudalink_consumer_create (&cc, &r->consumer);
  if (st != CUDALINK_OK) {
    GQuark domain;
    gint code;

    gst_cuda_link_status_to_error (st, &domain, &code);
    g_set_error (error, domain, code, "Could not set up a cuda-link consumer "
        "for segment '%s': %s.", r->name, cudalink_strerror (st));
    return FALSE;
  }

  r->connected = r->ever_connected = FALSE;
  r->discont = TRUE;
  memset (&r->seen, 0, sizeof (r->seen));
  g_mutex_lock (&r->lock);
  r->have_format = FALSE;
  gst_clear_caps (&r->caps);
  memset (&r->stats, 0, sizeof (r->stats));
  r->stats.mps = r->stats.producer_mps = -1;
  r->stats.first_offset = -1;
  g_mutex_unlock (&r->lock);
  return TRUE;
}

void
gst_cuda_link_reader_stop (GstCudaLinkReader * r)
{
  g_clear_pointer (&r->consumer, cudalink_consumer_destroy);
  g_clear_pointer (&r->import, gst_cuda_link_import_unref);
  r->import_tried = r->import_warned = FALSE;
  r->connected = FALSE;
  g_clear_pointer (&r->converter, gst_cuda_link_converter_free);
  gst_cuda_link_staging_free (&r->staging, r->context);
  gst_cuda_link_cuda_close (&r->context, &r->stream);
  g_clear_pointer (&r->name, g_free);
  g_clear_pointer (&r->no_driver_why, g_free);
  g_clear_pointer (&r->error_detail, g_free);

  g_mutex_lock (&r->lock);
  r->have_format = FALSE;
  gst_clear_caps (&r->caps);
  g_mutex_unlock (&r->lock);
}

void
gst_cuda_link_reader_set_flushing (GstCudaLinkReader * r, gboolean flushing)
{
  g_atomic_int_set (&r->flushing, flushing ? 1 : 0);
  /* wakes a frame wait (the consumer exists from start to stop, and
   * basesrc calls unlock only in between) */
  if (r->consumer)
    cudalink_consumer_interrupt (r->consumer, flushing ? 1 : 0);
}

gboolean
gst_cuda_link_reader_is_flushing (GstCudaLinkReader * r)
{
  return g_atomic_int_get (&r->flushing) != 0;
}

#define is_flushing gst_cuda_link_reader_is_flushing

void
gst_cuda_link_reader_set_output (GstCudaLinkReader * r,
    const GstVideoInfo * info, gboolean cuda)
{
  r->out_info = *info;
  r->out_cuda = cuda;
  g_clear_pointer (&r->import, gst_cuda_link_import_unref);
  r->import_tried = FALSE;
}

GstCaps *
gst_cuda_link_reader_get_caps (GstCudaLinkReader * r)
{
  GstCaps *caps;

  g_mutex_lock (&r->lock);
  caps = r->caps ? gst_caps_ref (r->caps) : NULL;
  g_mutex_unlock (&r->lock);
  return caps;
}

gboolean
gst_cuda_link_reader_get_plan (GstCudaLinkReader * r, cudalink_format * format,
    GstCudaLinkSrcPlan * plan)
{
  gboolean have;

  g_mutex_lock (&r->lock);
  have = r->have_format;
  if (have) {
    *format = r->format;
    *plan = r->plan;
  }
  g_mutex_unlock (&r->lock);
  return have;
}

const gchar *
gst_cuda_link_reader_error_detail (GstCudaLinkReader * r)
{
  return r->error_detail ? r->error_detail : "";
}

/* ------------------------------------------------------------------------ */
/* errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Sets @error to @domain/@code with @message (taken) and keeps the debug
 * text: "@what (STATUS_NAME)" and, without a driver, why. */
static void
set_error (GstCudaLinkReader * r, GError ** error, GQuark domain, gint code,
    gchar * message, const gchar * what, cudalink_status st)
{
  /* without a driver, every other error mentions it too */
  gboolean note = !r->context && st != CUDALINK_ERR_NO_DRIVER &&
      st != CUDALINK_ERR_DRIVER_SYMBOL;

  g_free (r->error_detail);
  r->error_detail = g_strdup_printf ("%s (%s)%s%s", what ? what : "",
      cudalink_status_name (st), note ? "; note: " : "",
      note ? r->no_driver_why : "");
  g_set_error_literal (error, domain, code, message);
  g_free (message);
}

static void
set_status_error (GstCudaLinkReader * r, GError ** error, cudalink_status st,
    gchar * message)
{
  GQuark domain;
  gint code;

  gst_cuda_link_status_to_error (st, &domain, &code);
  set_error (r, error, domain, code, message,
      cudalink_consumer_last_error (r->consumer), st);
}

static gchar *
describe_timeout (gint64 timeout_ms)
{
  if (timeout_ms % 1000 == 0)
    return g_strdup_printf ("%" G_GINT64_FORMAT " s", timeout_ms / 1000);
  return g_strdup_printf ("%" G_GINT64_FORMAT " ms", timeout_ms);
}

/* The sentence for an attach that failed with @st after @timeout_ms. */
static gchar *
attach_message (GstCudaLinkReader * r, cudalink_status st, gint64 timeout_ms)
{
  gchar *waited = describe_timeout (timeout_ms), *msg;

  if (st == CUDALINK_ERR_NOT_FOUND) {
    gchar hint[1024] = "";

    /* what is there instead, and a name that differs only in case (the
     * hint is left empty where segments cannot be listed) */
    cudalink_segment_hint (r->name, hint, sizeof (hint), NULL, 0);
    msg = g_strdup_printf ("No cuda-link producer: nothing named '%s' "
        "appeared within %s.%s%s", r->name, waited, hint[0] ? " " : "", hint);
  }
  else if (st == CUDALINK_ERR_STALE || st == CUDALINK_ERR_PRODUCER_GONE)
    msg = g_strdup_printf ("cuda-link segment '%s' is stale: its producer "
        "has shut down and no live producer took it over within %s.",
        r->name, waited);
  else if (gst_cuda_link_status_is_bad_header (st))
    msg = g_strdup_printf ("cuda-link segment '%s' has a bad header: %s.",
        r->name, cudalink_strerror (st));
  else if (st == CUDALINK_ERR_NO_DRIVER || st == CUDALINK_ERR_DRIVER_SYMBOL)
    msg = g_strdup_printf ("The NVIDIA CUDA driver is not usable, so "
        "cuda-link segment '%s' cannot be read: %s.", r->name,
        cudalink_strerror (st));
  else if (st == CUDALINK_ERR_NOT_CONNECTED)
    msg = g_strdup_printf ("cuda-link segment '%s' exists, but its producer "
        "did not finish writing its header within %s.", r->name, waited);
  else if (st == CUDALINK_ERR_SHM)
    msg = g_strdup_printf ("Could not open cuda-link segment '%s': %s.",
        r->name, cudalink_consumer_last_error (r->consumer));
  else if (st == CUDALINK_ERR_IPC_OPEN)
    msg = g_strdup_printf ("Could not open the CUDA IPC handles of cuda-link "
        "segment '%s' (is its producer alive, and on a GPU this process can "
        "use?).", r->name);
  else
    msg = g_strdup_printf ("Could not attach to cuda-link segment '%s': %s.",
        r->name, cudalink_strerror (st));
  g_free (waited);
  return msg;
}

/* ------------------------------------------------------------------------ */
/* state messages                                                           */
/* ------------------------------------------------------------------------ */

#define post_state(r, state, ...) \
  gst_cuda_link_post_state ((r)->element, state, (r)->name, __VA_ARGS__)

/* connected, reconnected or format-changed: the producer's format */
static void
post_format_state (GstCudaLinkReader * r, const gchar * state,
    const cudalink_format * fmt, GstCaps * caps)
{
  post_state (r, state, "producer", G_TYPE_STRING,
      r->stats.producer_is_ours ? "ours" : "foreign",
      "width", G_TYPE_UINT, fmt->width, "height", G_TYPE_UINT, fmt->height,
      "channels", G_TYPE_UINT, fmt->num_comps,
      "dtype", G_TYPE_STRING, cudalink_dtype_name (fmt->dtype),
      "flags", G_TYPE_UINT, (guint) fmt->flags, "caps", GST_TYPE_CAPS, caps,
      NULL);
}

/* ------------------------------------------------------------------------ */
/* statistics                                                               */
/* ------------------------------------------------------------------------ */

/* adds what a consumer counter grew by since it was last seen; the
 * counters only grow, so a smaller value means they were reset, and then
 * all of it is new */
static void
add_growth (guint64 * total, guint64 * seen, guint64 now)
{
  *total += now >= *seen ? now - *seen : now;
  *seen = now;
}

/* Adds up the consumer's counters; TRUE when frames were missed. */
static gboolean
update_stats (GstCudaLinkReader * r)
{
  cudalink_consumer_stats cs;
  guint64 missed;

  memset (&cs, 0, sizeof (cs));
  cudalink_consumer_get_stats (r->consumer, &cs);

  g_mutex_lock (&r->lock);
  missed = r->stats.missed;
  add_growth (&r->stats.missed, &r->seen.missed, cs.missed);
  add_growth (&r->stats.reopens, &r->seen.reopens, cs.reopens);
  add_growth (&r->stats.paced, &r->seen.paced, cs.paced);
  add_growth (&r->stats.spin_us, &r->seen.spin_us, cs.spin_us);
  add_growth (&r->stats.sleeps, &r->seen.sleeps, cs.sleeps);
  r->stats.mps = cs.mps;
  r->stats.producer_mps = cs.producer_mps;
  missed = r->stats.missed - missed;
  g_mutex_unlock (&r->lock);
  return missed > 0;
}

static guint64
ns_since (gdouble producer_ts, gdouble now)
{
  return producer_ts > 0 && now > producer_ts ?
      (guint64) ((now - producer_ts) * 1e9) : 0;
}

/* a filled frame: its latency, and when the wait saw it */
static void
record_frame (GstCudaLinkReader * r, gdouble producer_ts, gdouble woken)
{
  ReaderStats *s = &r->stats;

  g_mutex_lock (&r->lock);
  s->frames++;
  s->latency_ns[s->pos] = ns_since (producer_ts, cudalink_now ());
  s->wake_ns[s->pos] = ns_since (producer_ts, woken);
  s->pos = (s->pos + 1) % LATENCY_SAMPLES;
  if (s->n < LATENCY_SAMPLES)
    s->n++;
  g_mutex_unlock (&r->lock);
}

static gdouble
percentile_us (guint64 * samples, guint n, guint pct)
{
  return gst_cuda_link_percentile (samples, n, pct) / 1000.0;
}

GstStructure *
gst_cuda_link_reader_get_stats (GstCudaLinkReader * r)
{
  ReaderStats *s = g_new (ReaderStats, 1);
  GstStructure *st;

  g_mutex_lock (&r->lock);
  *s = r->stats;
  g_mutex_unlock (&r->lock);

  st = gst_structure_new ("application/x-cudalinksrc-stats",
      "frames", G_TYPE_UINT64, s->frames,
      "missed", G_TYPE_UINT64, s->missed,
      "torn-discarded", G_TYPE_UINT64, s->torn,
      "reopens", G_TYPE_UINT64, s->reopens,
      "first-offset", G_TYPE_INT64, s->first_offset,
      "latency-p50-us", G_TYPE_DOUBLE, percentile_us (s->latency_ns, s->n, 50),
      "latency-p99-us", G_TYPE_DOUBLE, percentile_us (s->latency_ns, s->n, 99),
      "latency-samples", G_TYPE_UINT, s->n,
      "wake-p50-us", G_TYPE_DOUBLE, percentile_us (s->wake_ns, s->n, 50),
      "wake-p99-us", G_TYPE_DOUBLE, percentile_us (s->wake_ns, s->n, 99),
      "wake-spin-frames", G_TYPE_UINT64, s->paced,
      "wake-spin-us", G_TYPE_DOUBLE, (gdouble) s->spin_us,
      "sleeps", G_TYPE_UINT64, s->sleeps,
      "producer-is-ours", G_TYPE_BOOLEAN, s->producer_is_ours,
      "imported", G_TYPE_UINT64, s->imported,
      "io-mode", G_TYPE_STRING, s->frames == 0 ? "none" :
      s->last_imported ? "import" : "copy",
      "mps", G_TYPE_INT, s->mps,
      "producer-mps", G_TYPE_INT, s->producer_mps, NULL);
  g_free (s);
  return st;
}

/* ------------------------------------------------------------------------ */
/* attaching                                                                */
/* ------------------------------------------------------------------------ */

/* Sleeps up to @us in slices; FALSE when flushing started. */
static gboolean
sleep_interruptible (GstCudaLinkReader * r, gint64 us)
{
  while (us > 0) {
    gint64 slice = MIN (us, WAIT_SLICE_US);
    if (is_flushing (r))
      return FALSE;
    g_usleep (slice);
    us -= slice;
  }
  return !is_flushing (r);
}

/* Errors no retry can cure. */
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

/* Plans the output for the consumer's (new) format. */
static GstCudaLinkReadResult
update_format (GstCudaLinkReader * r, const gchar * state, GError ** error)
{
  const cudalink_format *fmt = cudalink_consumer_format (r->consumer);
  GstCudaLinkSrcPlan plan;
  GstCaps *caps;
  gchar *why = NULL;

  r->discont = TRUE;
  if (!fmt || !gst_cuda_link_src_plan (fmt, r->config.channel_order,
          r->config.float_format, &plan, &why)) {
    set_error (r, error, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT,
        g_strdup_printf ("cuda-link segment '%s' publishes frames "
            "cudalinksrc cannot output.", r->name),
        why ? why : "no format although connected", CUDALINK_ERR_INVALID_ARG);
    g_free (why);
    return GST_CUDA_LINK_READ_ERROR;
  }
  caps = gst_cuda_link_src_plan_caps (&plan, fmt->width, fmt->height,
      r->context != NULL);

  GST_INFO_OBJECT (r->element, "producer format %ux%u x%u %s flags 0x%x -> %"
      GST_PTR_FORMAT "%s", fmt->width, fmt->height, fmt->num_comps,
      cudalink_dtype_name (fmt->dtype), fmt->flags, caps,
      plan.convert ? " (converted)" : "");

  g_mutex_lock (&r->lock);
  gst_caps_replace (&r->caps, caps);
  r->format = *fmt;
  r->plan = plan;
  r->have_format = TRUE;
  g_mutex_unlock (&r->lock);
  post_format_state (r, state, fmt, caps);
  gst_caps_unref (caps);

  if (!gst_cuda_link_staging_fits (&r->staging, plan.out_row_bytes,
          fmt->height))
    gst_cuda_link_staging_free (&r->staging, r->context);
  return GST_CUDA_LINK_READ_FORMAT;
}

/* Anyone who can write the segment can feed us frames and rewrite its
 * header: say so when that is not only this user (docs/SECURITY.md). */
static void
warn_owner (GstCudaLinkReader * r)
{
  gchar owner[160] = "";

  if (cudalink_consumer_segment_owner (r->consumer, owner, sizeof (owner)) != 0)
    return;
  GST_ELEMENT_WARNING (r->element, RESOURCE, OPEN_READ,
      ("cuda-link segment '%s' belongs to %s: other users can write the "
          "frames this element reads.", r->name, owner),
      ("the segment is not this user's alone (docs/SECURITY.md)"));
}

/* Connects, retrying every RECONNECT_INTERVAL_US for @timeout_ms (-1:
 * forever) while nothing usable is there. */
static GstCudaLinkReadResult
attach (GstCudaLinkReader * r, gint64 timeout_ms, GError ** error)
{
  gint64 now = g_get_monotonic_time ();
  /* a timeout too long to add is forever (the property goes that far) */
  gint64 deadline = timeout_ms < 0 || timeout_ms > (G_MAXINT64 - now) / 1000 ?
      G_MAXINT64 : now + timeout_ms * 1000;
  cudalink_status st, last = CUDALINK_OK;
  gboolean ours;
  const gchar *state;

  while ((st = cudalink_consumer_connect (r->consumer)) != CUDALINK_OK) {
    if (st != last)
      GST_INFO_OBJECT (r->element, "segment '%s': %s (%s)", r->name,
          cudalink_strerror (st), cudalink_consumer_last_error (r->consumer));
    if (last == CUDALINK_OK && !status_is_fatal (st))
      post_state (r, "waiting", "reason", G_TYPE_STRING,
          cudalink_strerror (st), NULL);
    last = st;
    if (status_is_fatal (st) || g_get_monotonic_time () >= deadline) {
      set_status_error (r, error, st, attach_message (r, st, timeout_ms));
      cudalink_consumer_disconnect (r->consumer);
      return GST_CUDA_LINK_READ_ERROR;
    }
    cudalink_consumer_disconnect (r->consumer);
    if (!sleep_interruptible (r, RECONNECT_INTERVAL_US))
      return GST_CUDA_LINK_READ_FLUSHING;
  }

  ours = cudalink_consumer_producer_is_ours (r->consumer) > 0;
  warn_owner (r);
  g_mutex_lock (&r->lock);
  r->stats.producer_is_ours = ours;
  g_mutex_unlock (&r->lock);
  GST_INFO_OBJECT (r->element, "attached to '%s' (%s producer)", r->name,
      ours ? "cudalink" : "foreign, polled");

  state = r->ever_connected ? "reconnected" : "connected";
  r->connected = r->ever_connected = TRUE;
  r->stalled = FALSE;
  r->last_frame_us = g_get_monotonic_time ();
  return update_format (r, state, error);
}

static GstCudaLinkReadResult
producer_lost (GstCudaLinkReader * r)
{
  update_stats (r);
  g_free (r->error_detail);
  r->error_detail = g_strdup (cudalink_consumer_last_error (r->consumer));
  cudalink_consumer_disconnect (r->consumer);
  r->connected = FALSE;
  r->discont = TRUE;
  g_mutex_lock (&r->lock);
  r->stats.reopens++;
  g_mutex_unlock (&r->lock);
  GST_INFO_OBJECT (r->element, "producer of '%s' gone (%s)", r->name,
      r->error_detail);
  post_state (r, "lost", "reason", G_TYPE_STRING, r->error_detail, NULL);
  return GST_CUDA_LINK_READ_LOST;
}

/* ------------------------------------------------------------------------ */
/* one frame                                                                */
/* ------------------------------------------------------------------------ */

static gboolean
copy_2d (GstCudaLinkReader * r, CUdeviceptr src, gsize src_pitch,
    gpointer dst, gsize dst_pitch, gboolean dst_host, guint row_bytes,
    guint height, GError ** error)
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

  res = CuMemcpy2DAsync (&p, r->stream);
  if (res != CUDA_SUCCESS) {
    set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
        g_strdup_printf ("Could not copy a frame from cuda-link segment "
            "'%s'.", r->name), gst_cuda_link_cu_error_name (res),
        CUDALINK_ERR_CUDA);
    return FALSE;
  }
  return TRUE;
}

/* Enqueues the conversion kernel from @src into @dst. */
static gboolean
convert (GstCudaLinkReader * r, guint64 src, gsize src_pitch, guint64 dst,
    gsize dst_pitch, gboolean flip, GError ** error)
{
  GstCudaLinkConvertParams p;
  GError *err = NULL;
  const cudalink_format *fmt = &r->format;

  if (!r->converter) {
    r->converter = gst_cuda_link_converter_new (r->context, &err);
    if (!r->converter) {
      set_error (r, error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT,
          g_strdup_printf ("The GPU conversion kernels are not available, so "
              "%s x%u frames%s cannot be read.", cudalink_dtype_name
              (fmt->dtype), fmt->num_comps, flip ? " (or flipped ones)" : ""),
          err ? err->message : "?", CUDALINK_ERR_CUDA);
      g_clear_error (&err);
      return FALSE;
    }
  }

  memset (&p, 0, sizeof (p));
  p.src = src;
  p.src_pitch = src_pitch;
  p.src_comps = fmt->num_comps;
  p.src_dtype = fmt->dtype;
  p.dst = dst;
  p.dst_pitch = dst_pitch;
  p.dst_comps = r->plan.out_comps;
  p.dst_dtype = r->plan.out_dtype;
  p.width = fmt->width;
  p.height = fmt->height;
  memcpy (p.swizzle, r->plan.swizzle, sizeof (p.swizzle));
  p.flip_y = flip;

  if (!gst_cuda_link_converter_run (r->converter, &p, r->stream, &err)) {
    set_error (r, error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_FAILED,
        g_strdup_printf ("Could not convert a %s x%u frame from cuda-link "
            "segment '%s'.", cudalink_dtype_name (fmt->dtype), fmt->num_comps,
            r->name), err ? err->message : "?", CUDALINK_ERR_CUDA);
    g_clear_error (&err);
    return FALSE;
  }
  return TRUE;
}

/* Enqueues the frame's one GPU pass from the slot into @frame's plane 0,
 * or into the staging buffer when @frame is in system memory. */
static gboolean
enqueue_pass (GstCudaLinkReader * r, GstVideoFrame * frame, guint64 src,
    gsize src_pitch, gboolean flip, GError ** error)
{
  guint64 target;
  gsize target_pitch;
  GError *err = NULL;

  /* For system memory the frame goes to a device staging buffer first and
   * is downloaded only after the torn check: a download of a large frame
   * takes milliseconds, long enough for a fast producer to lap every copy. */
  if (r->out_cuda) {
    target = (guint64) (guintptr) GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
    target_pitch = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  } else {
    if (!gst_cuda_link_staging_alloc (&r->staging, r->context,
            r->plan.out_row_bytes, r->format.height, &err)) {
      set_error (r, error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NO_SPACE_LEFT, g_strdup (err->message),
          "cuMemAllocPitch", CUDALINK_ERR_CUDA);
      g_clear_error (&err);
      return FALSE;
    }
    target = r->staging.ptr;
    target_pitch = r->staging.pitch;
  }

  if (gst_cuda_link_src_plan_needs_kernel (&r->plan, flip))
    return convert (r, src, src_pitch, target, target_pitch, flip, error);
  return copy_2d (r, src, src_pitch, (gpointer) (guintptr) target,
      target_pitch, FALSE, r->plan.out_row_bytes, r->format.height, error);
}

/* After a clean copy into staging: the download into system memory. */
static gboolean
download (GstCudaLinkReader * r, GstVideoFrame * frame, GError ** error)
{
  CUresult res;

  if (!copy_2d (r, r->staging.ptr, r->staging.pitch,
          GST_VIDEO_FRAME_PLANE_DATA (frame, 0),
          GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0), TRUE,
          r->plan.out_row_bytes, r->format.height, error))
    return FALSE;
  res = CuStreamSynchronize (r->stream);
  if (res != CUDA_SUCCESS) {
    set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
        g_strdup_printf ("Could not download a frame from cuda-link segment "
            "'%s'.", r->name), gst_cuda_link_cu_error_name (res),
        CUDALINK_ERR_CUDA);
    return FALSE;
  }
  return TRUE;
}

static gboolean
status_ends_frame (cudalink_status st)
{
  return st == CUDALINK_ERR_FORMAT_CHANGED || st == CUDALINK_ERR_PRODUCER_GONE
      || st == CUDALINK_ERR_NOT_CONNECTED || st == CUDALINK_ERR_TORN
      || st == CUDALINK_ERR_NO_FRAME;
}

/* Copies (or converts) the current frame into @buffer, the context
 * pushed. OK, or TORN / NO_FRAME / FORMAT_CHANGED / PRODUCER_GONE /
 * NOT_CONNECTED for the caller to act on, or ERR_CUDA with @error set. */
static cudalink_status
fill_pushed (GstCudaLinkReader * r, GstVideoFrame * frame, gboolean flip,
    GError ** error)
{
  cudalink_status st, rel;
  guint64 src = 0;
  gsize src_pitch = 0;
  gboolean ok;

  st = cudalink_consumer_acquire (r->consumer, r->stream, &src, &src_pitch);
  if (st != CUDALINK_OK) {
    if (status_ends_frame (st))
      return st;
    set_status_error (r, error, st, g_strdup_printf ("Could not read a "
            "frame from cuda-link segment '%s': %s.", r->name,
            cudalink_strerror (st)));
    return CUDALINK_ERR_CUDA;
  }

  ok = enqueue_pass (r, frame, src, src_pitch, flip, error);
  /* always release: it synchronises the stream and judges the copy */
  rel = cudalink_consumer_release (r->consumer, r->stream);
  if (ok && !r->out_cuda && rel == CUDALINK_OK)
    ok = download (r, frame, error);
  if (!ok)
    return CUDALINK_ERR_CUDA;
  if (rel != CUDALINK_OK && !status_ends_frame (rel)) {
    set_status_error (r, error, rel, g_strdup_printf ("Copying a frame from "
            "cuda-link segment '%s' failed: %s.", r->name,
            cudalink_strerror (rel)));
    return CUDALINK_ERR_CUDA;
  }
  return rel;
}

static cudalink_status
fill (GstCudaLinkReader * r, GstBuffer * buffer, gboolean flip,
    GError ** error)
{
  GstVideoFrame frame;
  GstMapFlags flags = GST_MAP_WRITE | (r->out_cuda ? GST_MAP_CUDA : 0);
  cudalink_status st;

  if (!gst_video_frame_map (&frame, &r->out_info, buffer, flags)) {
    set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_WRITE,
        g_strdup ("Could not map an output buffer."), "gst_video_frame_map",
        CUDALINK_ERR_CUDA);
    return CUDALINK_ERR_CUDA;
  }
  if (!gst_cuda_context_push (r->context)) {
    gst_video_frame_unmap (&frame);
    set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        g_strdup ("Could not make the CUDA context current."),
        "cuCtxPushCurrent", CUDALINK_ERR_CUDA);
    return CUDALINK_ERR_CUDA;
  }
  st = fill_pushed (r, &frame, flip, error);
  gst_cuda_context_pop (NULL);
  gst_video_frame_unmap (&frame);
  return st;
}

/* Has the producer sent nothing for frame-timeout (and not been said to
 * have stalled yet)? Only for a producer that did not say it shut down:
 * that is a loss. Ours hold a lock while they live, so a quiet one of ours
 * is paused, not stalled. */
static gboolean
stalled_now (GstCudaLinkReader * r)
{
  gint64 quiet_us = g_get_monotonic_time () - r->last_frame_us;

  if (r->stalled || r->config.frame_timeout_ms <= 0
      || r->stats.producer_is_ours
      || quiet_us < r->config.frame_timeout_ms * 1000)
    return FALSE;
  r->stalled = TRUE;
  post_state (r, "stalled", "quiet-ms", G_TYPE_UINT64,
      (guint64) (quiet_us / 1000), NULL);
  return TRUE;
}

/* Waits for the next frame. FRAME when one is there to copy. */
static GstCudaLinkReadResult
wait_frame (GstCudaLinkReader * r, GstCudaLinkReaderFrame * frame,
    GError ** error)
{
  cudalink_frame_info fi;
  cudalink_status st;

  for (;;) {
    if (is_flushing (r))
      return GST_CUDA_LINK_READ_FLUSHING;
    st = cudalink_consumer_wait (r->consumer, FRAME_WAIT_BACKSTOP_US);
    frame->woken = cudalink_now ();
    if (st == CUDALINK_OK)
      break;
    if (st == CUDALINK_ERR_TIMEOUT && stalled_now (r))
      return GST_CUDA_LINK_READ_STALLED;
    if (st == CUDALINK_ERR_TIMEOUT || st == CUDALINK_ERR_INTERRUPTED)
      continue;
    if (st == CUDALINK_ERR_FORMAT_CHANGED) {
      update_stats (r);
      return update_format (r, "format-changed", error);
    }
    if (st == CUDALINK_ERR_PRODUCER_GONE || st == CUDALINK_ERR_NOT_CONNECTED)
      return producer_lost (r);
    set_status_error (r, error, st, g_strdup_printf ("Waiting for a frame of "
            "cuda-link segment '%s' failed: %s.", r->name,
            cudalink_strerror (st)));
    return GST_CUDA_LINK_READ_ERROR;
  }

  memset (&fi, 0, sizeof (fi));
  cudalink_consumer_frame_info (r->consumer, &fi);
  frame->write_idx = fi.write_idx;
  frame->timestamp = fi.timestamp;
  /* where the accounting starts: from here on every frame the producer
   * publishes is pushed, missed or torn-discarded */
  g_mutex_lock (&r->lock);
  if (r->stats.first_offset < 0)
    r->stats.first_offset = fi.write_idx ? (gint64) fi.write_idx - 1 : 0;
  g_mutex_unlock (&r->lock);
  return GST_CUDA_LINK_READ_FRAME;
}

/* io-mode=import said once per run that it copies, and why. */
static void
warn_copying (GstCudaLinkReader * r, const gchar * why)
{
  if (r->config.io_mode != GST_CUDA_LINK_IO_MODE_IMPORT || r->import_warned)
    return;
  r->import_warned = TRUE;
  GST_ELEMENT_WARNING (r->element, RESOURCE, SETTINGS,
      ("io-mode=import: frames of cuda-link segment '%s' are copied: %s.",
          r->name, why), (NULL));
}

/* Can this frame go downstream as the producer's own slot? Only with
 * io-mode import or auto, into CUDA memory, without a conversion pass,
 * with the slot's packed rows as the output's stride and a GStreamer that
 * can wrap it (the importer, made once per output). */
static gboolean
may_import (GstCudaLinkReader * r, gboolean flip)
{
  gchar *why = NULL;

  if (r->config.io_mode == GST_CUDA_LINK_IO_MODE_COPY)
    return FALSE;
  if (!r->import_tried) {
    r->import_tried = TRUE;
    if (!r->out_cuda)
      why = g_strdup ("downstream takes system memory");
    else if (gst_cuda_link_src_plan_needs_kernel (&r->plan, flip))
      why = g_strdup ("the frames are converted (or flipped) on the way");
    else if ((guint) GST_VIDEO_INFO_PLANE_STRIDE (&r->out_info, 0) !=
        r->plan.in_row_bytes)
      why = g_strdup_printf ("the output's rows are %d bytes apart, the "
          "producer's %u", GST_VIDEO_INFO_PLANE_STRIDE (&r->out_info, 0),
          r->plan.in_row_bytes);
    else
      r->import = gst_cuda_link_import_new (r->context, &r->out_info, &why);
    if (why) {
      GST_INFO_OBJECT (r->element, "not importing: %s", why);
      warn_copying (r, why);
      g_free (why);
    }
  }
  return r->import != NULL;
}

/* The frame as a held slot in *buffer: OK, or NO_IMPORT / HOLDS_FULL when
 * it is to be copied instead, or a status that ends the frame, or ERR_CUDA
 * with @error set. The slot is wrapped while the producer's GPU may still
 * be writing it, and waited for after: on the H200 the wrap took 5 us of
 * each frame's latency after the wait, and the producer's copy has about
 * that much left when the reader wakes. */
static cudalink_status
import_frame (GstCudaLinkReader * r, GstBuffer ** buffer, GError ** error)
{
  cudalink_hold *hold = NULL;
  guint64 ptr = 0;
  gsize pitch = 0;
  gchar why[200];
  cudalink_status st;

  st = cudalink_consumer_hold_begin (r->consumer, &ptr, &pitch, &hold);
  if (st == CUDALINK_OK) {
    /* the buffer owns the hold from here on, also when wrapping fails */
    *buffer = gst_cuda_link_import_wrap (r->import, ptr, hold);
    if (!*buffer) {
      set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
          g_strdup ("Could not wrap a held slot in a buffer."),
          "gst_cuda_link_import_wrap", CUDALINK_ERR_CUDA);
      return CUDALINK_ERR_CUDA;
    }
    st = cudalink_consumer_hold_wait (r->consumer, hold);
    if (st == CUDALINK_OK)
      return CUDALINK_OK;
    gst_clear_buffer (buffer);
  }
  if (st == CUDALINK_ERR_NO_IMPORT) {
    cudalink_consumer_can_hold (r->consumer, why, sizeof (why));
    warn_copying (r, why);
  }
  if (st == CUDALINK_ERR_NO_IMPORT || st == CUDALINK_ERR_HOLDS_FULL
      || status_ends_frame (st))
    return st;
  set_status_error (r, error, st, g_strdup_printf ("Could not import a "
          "frame from cuda-link segment '%s': %s.", r->name,
          cudalink_strerror (st)));
  return CUDALINK_ERR_CUDA;
}

/* A buffer from @pool with the frame copied (or converted) into it. */
static cudalink_status
copy_frame (GstCudaLinkReader * r, GstBufferPool * pool, gboolean flip,
    GstBuffer ** buffer, GError ** error)
{
  if (!pool) {
    set_error (r, error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        g_strdup ("No buffer pool after negotiation."), "no pool",
        CUDALINK_ERR_INVALID_ARG);
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (gst_buffer_pool_acquire_buffer (pool, buffer, NULL) != GST_FLOW_OK) {
    /* our own flush deactivated it, else say why the stream stops */
    if (is_flushing (r))
      return CUDALINK_ERR_INTERRUPTED;
    set_error (r, error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        g_strdup ("The output buffer pool is inactive although the element "
            "is not flushing."), "gst_buffer_pool_acquire_buffer",
        CUDALINK_ERR_INVALID_ARG);
    return CUDALINK_ERR_INVALID_ARG;
  }
  return fill (r, *buffer, flip, error);
}

/* Fills a buffer with the frame wait_frame() found: the held slot itself
 * (io-mode), or a copy into a buffer from @pool. */
static GstCudaLinkReadResult
read_frame (GstCudaLinkReader * r, GstBufferPool * pool, gboolean flip,
    GstBuffer ** buffer, GError ** error)
{
  cudalink_status st = CUDALINK_ERR_NO_IMPORT;
  gboolean imported;

  if (may_import (r, flip))
    st = import_frame (r, buffer, error);
  imported = st == CUDALINK_OK;
  if (st == CUDALINK_ERR_NO_IMPORT || st == CUDALINK_ERR_HOLDS_FULL)
    st = copy_frame (r, pool, flip, buffer, error);
  if (update_stats (r))
    r->discont = TRUE;
  if (st == CUDALINK_OK) {
    g_mutex_lock (&r->lock);
    r->stats.imported += imported ? 1 : 0;
    r->stats.last_imported = imported;
    g_mutex_unlock (&r->lock);
    return GST_CUDA_LINK_READ_FRAME;
  }

  gst_clear_buffer (buffer);
  switch (st) {
    case CUDALINK_ERR_TORN:
      g_mutex_lock (&r->lock);
      r->stats.torn++;
      g_mutex_unlock (&r->lock);
      r->discont = TRUE;
      return READ_AGAIN;
    case CUDALINK_ERR_NO_FRAME:
      return READ_AGAIN;
    case CUDALINK_ERR_FORMAT_CHANGED:
      return update_format (r, "format-changed", error);
    case CUDALINK_ERR_PRODUCER_GONE:
    case CUDALINK_ERR_NOT_CONNECTED:
      return producer_lost (r);
    case CUDALINK_ERR_INTERRUPTED:
      return GST_CUDA_LINK_READ_FLUSHING;
    default:
      return GST_CUDA_LINK_READ_ERROR;
  }
}

GstCudaLinkReadResult
gst_cuda_link_reader_read (GstCudaLinkReader * r, GstBufferPool * pool,
    gboolean flip, GstBuffer ** buffer, GstCudaLinkReaderFrame * frame,
    GError ** error)
{
  GstCudaLinkReadResult res;

  *buffer = NULL;
  memset (frame, 0, sizeof (*frame));

  for (;;) {
    if (is_flushing (r))
      return GST_CUDA_LINK_READ_FLUSHING;
    /* after a loss (on-producer-loss=wait) the wait has no end */
    if (!r->connected)
      return attach (r, r->ever_connected ? -1 : r->config.timeout_ms, error);

    res = wait_frame (r, frame, error);
    if (res == GST_CUDA_LINK_READ_FRAME)
      res = read_frame (r, pool, flip, buffer, error);
    if (res == GST_CUDA_LINK_READ_FRAME)
      break;
    if (res != READ_AGAIN)
      return res;
  }

  frame->discont = r->discont;
  r->discont = FALSE;
  r->last_frame_us = g_get_monotonic_time ();
  if (r->stalled) {
    r->stalled = FALSE;
    post_state (r, "resumed", NULL, NULL);
  }
  record_frame (r, frame->timestamp, frame->woken);
  return GST_CUDA_LINK_READ_FRAME;
}
