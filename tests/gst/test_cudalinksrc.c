/* cudalinksrc without a GPU: registration, templates, properties, the
 * segment metadata -> caps mapping (srcformat.c, compiled in), and the
 * element's errors for missing and hostile segments that the test writes
 * into /dev/shm itself.
 *
 * The whole suite runs with CUDALINK_CUDA_LIBRARY=/nonexistent, so that it
 * behaves the same on a machine that has a driver: every segment problem
 * must be reported as such before the element ever needs CUDA.
 */
#include <gst/check/gstcheck.h>
#include <gst/base/gstbasesrc.h>
#include <gst/video/video.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cudalink.h"
#include "gstcudalinkutils.h"
#include "srcformat.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static guint name_counter;

static gchar *
unique_name (void)
{
  return g_strdup_printf ("cudalinksrc-test-%d-%u", (gint) getpid (),
      name_counter++);
}

static gchar *
shm_path (const gchar * name)
{
  return g_strdup_printf ("/dev/shm/%s", name);
}

static void
write_segment (const gchar * name, const guint8 * bytes, gsize len)
{
  gchar *path = shm_path (name);
  int fd = open (path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  fail_unless (fd >= 0, "cannot create %s: %s", path, g_strerror (errno));
  fail_unless_equals_int ((gssize) write (fd, bytes, len), (gssize) len);
  close (fd);
  g_free (path);
}

static void
remove_segment (const gchar * name)
{
  gchar *path = shm_path (name);
  struct stat st;

  /* the element only ever opens: the segment must still be there */
  fail_unless (stat (path, &st) == 0, "the element removed %s", path);
  fail_unless_equals_int (unlink (path), 0);
  fail_unless (stat (path, &st) != 0 && errno == ENOENT);
  g_free (path);
}

/* A valid header for 3 slots, 64x32 uint8 x4, IPC handles filled with a
 * non-zero pattern (they are never opened: there is no driver). */
static gsize
valid_header (guint8 * buf, gsize len, cudalink_layout * layout)
{
  cudalink_header h;
  cudalink_status st;

  memset (&h, 0, sizeof (h));
  h.version = 7;
  h.num_slots = 3;
  h.write_idx = 0;
  memset (h.mem_handle, 0xa5, sizeof (h.mem_handle));
  memset (h.event_handle, 0x5a, sizeof (h.event_handle));
  h.shutdown_flag = 0;
  h.format.width = 64;
  h.format.height = 32;
  h.format.num_comps = 4;
  h.format.dtype = CUDALINK_DTYPE_UINT8;
  h.format.flags = 0;
  h.timestamp = 1.0;

  *layout = cudalink_layout_for (3);
  fail_unless (layout->size > 0 && layout->size <= len);
  st = cudalink_header_write (&h, buf, len);
  fail_unless_equals_int (st, CUDALINK_OK);
  return layout->size;
}

static void
put_u32 (guint8 * p, guint32 v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

typedef struct
{
  GstElement *src;
  GstPad *sinkpad;
  GstBus *bus;
} Harness;

static GstStaticPadTemplate any_sink = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static void
harness_setup (Harness * h, const gchar * name, gint64 timeout_ms)
{
  h->src = gst_check_setup_element ("cudalinksrc");
  h->sinkpad = gst_check_setup_sink_pad (h->src, &any_sink);
  gst_pad_set_active (h->sinkpad, TRUE);
  h->bus = gst_bus_new ();
  gst_element_set_bus (h->src, h->bus);
  g_object_set (h->src, "ipc-name", name, "timeout", timeout_ms, NULL);
}

static void
harness_teardown (Harness * h)
{
  fail_unless_equals_int (gst_element_set_state (h->src, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (h->bus, TRUE);
  gst_element_set_bus (h->src, NULL);
  gst_object_unref (h->bus);
  gst_pad_set_active (h->sinkpad, FALSE);
  gst_check_teardown_sink_pad (h->src);
  gst_check_teardown_element (h->src);
  gst_check_drop_buffers ();
}

/* Runs the element against segment @name and returns its first ERROR's
 * message and debug text. */
static void
run_until_error (const gchar * name, gint64 timeout_ms, gchar ** message,
    gchar ** debug, gint64 * elapsed_ms)
{
  Harness h;
  GstMessage *msg;
  GError *err = NULL;
  GstStateChangeReturn ret;
  gint64 t0;

  harness_setup (&h, name, timeout_ms);
  t0 = g_get_monotonic_time ();
  ret = gst_element_set_state (h.src, GST_STATE_PLAYING);
  /* live: no preroll; a start() failure would be FAILURE */
  fail_unless (ret == GST_STATE_CHANGE_NO_PREROLL ||
      ret == GST_STATE_CHANGE_SUCCESS, "state change returned %d", ret);

  msg = gst_bus_timed_pop_filtered (h.bus, 20 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no ERROR message for segment '%s'", name);
  if (elapsed_ms)
    *elapsed_ms = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (h.src));
  gst_message_parse_error (msg, &err, debug);
  *message = g_strdup (err->message);
  GST_INFO ("segment '%s': %s | %s", name, *message, *debug);
  g_error_free (err);
  gst_message_unref (msg);

  /* no buffer may have come out */
  fail_unless_equals_int (g_list_length (buffers), 0);
  harness_teardown (&h);
}

#define assert_contains(hay, needle) \
  fail_unless ((hay) != NULL && strstr ((hay), (needle)) != NULL, \
      "\"%s\" does not contain \"%s\"", (hay) ? (hay) : "(null)", (needle))

/* Writes @bytes as a segment, runs the element, checks the error names
 * the segment, says "bad header" or @message_part, and that the debug text
 * contains @debug_part (the status name) and @detail_part. */
static void
check_hostile (const guint8 * bytes, gsize len, const gchar * message_part,
    const gchar * debug_part, const gchar * detail_part)
{
  gchar *name = unique_name ();
  gchar *message = NULL, *debug = NULL;

  write_segment (name, bytes, len);
  run_until_error (name, 200, &message, &debug, NULL);

  assert_contains (message, name);
  assert_contains (message, message_part);
  assert_contains (debug, debug_part);
  if (detail_part)
    assert_contains (debug, detail_part);

  g_free (message);
  g_free (debug);
  remove_segment (name);
  g_free (name);
}

/* ------------------------------------------------------------------------ */
/* registration, templates, properties                                      */
/* ------------------------------------------------------------------------ */

GST_START_TEST (test_registered)
{
  GstElementFactory *factory = gst_element_factory_find ("cudalinksrc");
  const gchar *klass;
  GstElement *src;

  fail_unless (factory != NULL);
  fail_unless_equals_int (gst_plugin_feature_get_rank (GST_PLUGIN_FEATURE
          (factory)), GST_RANK_NONE);
  klass = gst_element_factory_get_metadata (factory,
      GST_ELEMENT_METADATA_KLASS);
  assert_contains (klass, "Source");
  assert_contains (klass, "Video");

  src = gst_element_factory_create (factory, NULL);
  fail_unless (GST_IS_BASE_SRC (src));
  fail_unless (GST_IS_VIDEO_DIRECTION (src));
  fail_unless (gst_base_src_is_live (GST_BASE_SRC (src)));
  gst_object_unref (src);
  gst_object_unref (factory);
}

GST_END_TEST;

/* @field of template structure @s is exactly [ 1, CUDALINK_MAX_DIMENSION ]:
 * the sizes a segment can announce */
static void
check_size_range (const GstStructure * s, const gchar * field)
{
  const GValue *v = gst_structure_get_value (s, field);

  fail_unless (v != NULL && GST_VALUE_HOLDS_INT_RANGE (v), "%s: no int range",
      field);
  fail_unless_equals_int (gst_value_get_int_range_min (v), 1);
  fail_unless_equals_int (gst_value_get_int_range_max (v),
      CUDALINK_MAX_DIMENSION);
  fail_unless_equals_int (gst_value_get_int_range_max (v), 32768);
}

GST_START_TEST (test_template)
{
  GstElementFactory *factory = gst_element_factory_find ("cudalinksrc");
  const GList *l;
  GstCaps *caps = NULL, *expected;
  guint n_templates = 0, i;
  gboolean saw_cuda = FALSE, saw_sys = FALSE;
  static const gchar *sys_formats[] = { "RGBA", "BGRA", "RGB", "GRAY8",
    "GRAY16_LE", "RGBA64_LE"
  };

  for (l = gst_element_factory_get_static_pad_templates (factory); l;
      l = l->next) {
    GstStaticPadTemplate *t = l->data;
    n_templates++;
    fail_unless_equals_string (t->name_template, "src");
    fail_unless_equals_int (t->direction, GST_PAD_SRC);
    fail_unless_equals_int (t->presence, GST_PAD_ALWAYS);
    caps = gst_static_caps_get (&t->static_caps);
  }
  fail_unless_equals_int (n_templates, 1);
  fail_unless (caps != NULL);

  expected = gst_cuda_link_src_template_caps ();
  fail_unless (gst_caps_is_equal (caps, expected));
  gst_caps_unref (expected);

  for (i = 0; i < gst_caps_get_size (caps); i++) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    if (gst_caps_features_contains (f, "memory:CUDAMemory"))
      saw_cuda = TRUE;
    else
      saw_sys = TRUE;
    check_size_range (gst_caps_get_structure (caps, i), "width");
    check_size_range (gst_caps_get_structure (caps, i), "height");
  }
  fail_unless (saw_cuda && saw_sys);

  /* every system-memory output format is in the template */
  for (i = 0; i < G_N_ELEMENTS (sys_formats); i++) {
    GstCaps *one = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING,
        sys_formats[i], "width", G_TYPE_INT, 1920, "height", G_TYPE_INT, 1080,
        "framerate", GST_TYPE_FRACTION, 0, 1, NULL);
    fail_unless (gst_caps_can_intersect (one, caps), "%s missing",
        sys_formats[i]);
    gst_caps_unref (one);
  }

  gst_caps_unref (caps);
  gst_object_unref (factory);
}

GST_END_TEST;

static GParamSpec *
pspec (GstElement * e, const gchar * name)
{
  GParamSpec *p = g_object_class_find_property (G_OBJECT_GET_CLASS (e), name);
  fail_unless (p != NULL, "no property %s", name);
  return p;
}

static gint
enum_value (GstElement * e, const gchar * prop, const gchar * nick)
{
  GParamSpec *p = pspec (e, prop);
  GEnumClass *klass = G_PARAM_SPEC_ENUM (p)->enum_class;
  GEnumValue *v = g_enum_get_value_by_nick (klass, nick);
  fail_unless (v != NULL, "%s has no value '%s'", prop, nick);
  return v->value;
}

GST_START_TEST (test_properties)
{
  GstElement *src = gst_element_factory_make ("cudalinksrc", NULL);
  gchar *name;
  gint64 timeout;
  gint loss, order, ff, dev, dir, gpu_wait;
  gboolean wake_spin;
  guint poll;
  GstStructure *stats;
  GParamSpec *p;
  /* counts are guint64, durations (-us) gdouble, as in the sink's stats */
  static const gchar *stat_fields[] = { "frames", "missed", "torn-discarded",
    "reopens", "wake-spin-frames", "sleeps"
  };
  static const gchar *stat_us_fields[] = { "latency-p50-us", "latency-p99-us",
    "wake-p50-us", "wake-p99-us", "wake-spin-us"
  };
  guint i;

  fail_unless (src != NULL);
  g_object_get (src, "ipc-name", &name, "timeout", &timeout,
      "on-producer-loss", &loss, "channel-order", &order, "float-format", &ff,
      "cuda-device-id", &dev, "poll-interval", &poll, "video-direction", &dir,
      "gpu-wait", &gpu_wait, "wake-spin", &wake_spin, NULL);
  fail_unless_equals_string (name, "cudalink");
  g_free (name);
  fail_unless_equals_int64 (timeout, 5000);
  fail_unless_equals_int (loss, enum_value (src, "on-producer-loss", "wait"));
  fail_unless_equals_int (order, enum_value (src, "channel-order", "auto"));
  fail_unless_equals_int (ff, enum_value (src, "float-format", "rgba"));
  fail_unless_equals_int (dev, -1);
  fail_unless_equals_int (poll, 1000);
  fail_unless_equals_int (dir, GST_VIDEO_ORIENTATION_IDENTITY);
  fail_unless_equals_int (gpu_wait, enum_value (src, "gpu-wait", "nap"));
  fail_unless (wake_spin);
  g_object_set (src, "wake-spin", FALSE, NULL);
  g_object_get (src, "wake-spin", &wake_spin, NULL);
  fail_unless (!wake_spin);
  {
    guint frame_timeout, stats_interval;
    g_object_get (src, "frame-timeout", &frame_timeout, "stats-interval",
        &stats_interval, NULL);
    fail_unless_equals_int (frame_timeout, 5000);
    fail_unless_equals_int (stats_interval, 0);
  }
  {
    gint io_mode;
    GstStructure *st = NULL;
    gint mps = 0;
    const gchar *how;

    /* zero-copy import where the producer offers it */
    g_object_get (src, "io-mode", &io_mode, NULL);
    fail_unless_equals_int (io_mode, enum_value (src, "io-mode", "auto"));
    enum_value (src, "io-mode", "copy");
    g_object_set (src, "io-mode", enum_value (src, "io-mode", "import"), NULL);
    g_object_get (src, "io-mode", &io_mode, NULL);
    fail_unless_equals_int (io_mode, enum_value (src, "io-mode", "import"));
    /* before any frame: nothing imported, no MPS answer yet */
    g_object_get (src, "stats", &st, NULL);
    fail_unless (gst_structure_get_int (st, "mps", &mps));
    fail_unless_equals_int (mps, -1);
    fail_unless (gst_structure_get_int (st, "producer-mps", &mps));
    fail_unless_equals_int (mps, -1);
    how = gst_structure_get_string (st, "io-mode");
    fail_unless_equals_string (how, "none");
    gst_structure_free (st);
  }
  /* the src always waits for its copy: none is refused, the value kept */
  g_object_set (src, "gpu-wait", enum_value (src, "gpu-wait", "none"), NULL);
  g_object_get (src, "gpu-wait", &gpu_wait, NULL);
  fail_unless_equals_int (gpu_wait, enum_value (src, "gpu-wait", "nap"));

  /* enum nicks the docs promise */
  enum_value (src, "on-producer-loss", "eos");
  enum_value (src, "on-producer-loss", "error");
  enum_value (src, "channel-order", "rgba");
  enum_value (src, "channel-order", "bgra");
  enum_value (src, "float-format", "rgba64-le");
  enum_value (src, "gpu-wait", "spin");
  enum_value (src, "gpu-wait", "sleep");

  /* ranges */
  p = pspec (src, "timeout");
  fail_unless_equals_int64 (G_PARAM_SPEC_INT64 (p)->minimum, -1);
  fail_unless (G_PARAM_SPEC_INT64 (p)->maximum >= G_MAXINT32);
  p = pspec (src, "cuda-device-id");
  fail_unless_equals_int (G_PARAM_SPEC_INT (p)->minimum, -1);
  p = pspec (src, "poll-interval");
  fail_unless (G_PARAM_SPEC_UINT (p)->minimum >= 1);
  fail_unless (G_PARAM_SPEC_UINT (p)->minimum <= 100);
  fail_unless (G_PARAM_SPEC_UINT (p)->maximum >= 100000);
  p = pspec (src, "stats");
  fail_unless ((p->flags & G_PARAM_WRITABLE) == 0);
  fail_unless (p->flags & G_PARAM_READABLE);
  fail_unless (pspec (src, "ipc-name")->flags & GST_PARAM_MUTABLE_READY);

  /* round trips */
  g_object_set (src, "ipc-name", "td1", "timeout", (gint64) - 1,
      "on-producer-loss", enum_value (src, "on-producer-loss", "eos"),
      "channel-order", enum_value (src, "channel-order", "bgra"),
      "float-format", enum_value (src, "float-format", "rgba64-le"),
      "cuda-device-id", 1, "poll-interval", 250,
      "video-direction", GST_VIDEO_ORIENTATION_VERT, NULL);
  g_object_get (src, "ipc-name", &name, "timeout", &timeout,
      "on-producer-loss", &loss, "channel-order", &order, "float-format", &ff,
      "cuda-device-id", &dev, "poll-interval", &poll, "video-direction", &dir,
      NULL);
  fail_unless_equals_string (name, "td1");
  g_free (name);
  fail_unless_equals_int64 (timeout, -1);
  fail_unless_equals_int (loss, enum_value (src, "on-producer-loss", "eos"));
  fail_unless_equals_int (order, enum_value (src, "channel-order", "bgra"));
  fail_unless_equals_int (ff, enum_value (src, "float-format", "rgba64-le"));
  fail_unless_equals_int (dev, 1);
  fail_unless_equals_int (poll, 250);
  fail_unless_equals_int (dir, GST_VIDEO_ORIENTATION_VERT);

  /* only identity and a vertical flip exist: others keep the old value */
  g_object_set (src, "video-direction", GST_VIDEO_ORIENTATION_90R, NULL);
  g_object_get (src, "video-direction", &dir, NULL);
  fail_unless_equals_int (dir, GST_VIDEO_ORIENTATION_VERT);
  g_object_set (src, "video-direction", GST_VIDEO_ORIENTATION_IDENTITY, NULL);
  g_object_get (src, "video-direction", &dir, NULL);
  fail_unless_equals_int (dir, GST_VIDEO_ORIENTATION_IDENTITY);

  g_object_get (src, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  for (i = 0; i < G_N_ELEMENTS (stat_fields); i++) {
    guint64 v = 1;
    fail_unless (gst_structure_get_uint64 (stats, stat_fields[i], &v),
        "stats lacks %s", stat_fields[i]);
    fail_unless_equals_uint64 (v, 0);
  }
  for (i = 0; i < G_N_ELEMENTS (stat_us_fields); i++) {
    gdouble v = 1;
    fail_unless (gst_structure_get_double (stats, stat_us_fields[i], &v),
        "stats lacks %s", stat_us_fields[i]);
    fail_unless (v == 0.0, "%s = %f", stat_us_fields[i], v);
  }
  fail_unless (gst_structure_has_name (stats,
          "application/x-cudalinksrc-stats"));
  {
    /* no frame waited for yet */
    gint64 first_offset = 0;
    fail_unless (gst_structure_get_int64 (stats, "first-offset", &first_offset),
        "stats lacks first-offset");
    fail_unless_equals_int64 (first_offset, -1);
  }
  gst_structure_free (stats);

  gst_object_unref (src);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* metadata -> caps mapping                                                 */
/* ------------------------------------------------------------------------ */

/* The table, restated independently of srcformat.c. */
static void
expected_output (cudalink_dtype dtype, guint comps, guint16 flags,
    GstCudaLinkChannelOrder order, GstCudaLinkFloatFormat ff,
    GstVideoFormat * format, gboolean * convert)
{
  *convert = TRUE;
  if (dtype == CUDALINK_DTYPE_UINT8) {
    if (comps == 4) {
      gboolean bgra = order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA ||
          (order == GST_CUDA_LINK_CHANNEL_ORDER_AUTO &&
          (flags & CUDALINK_FLAG_BGRA));
      *format = bgra ? GST_VIDEO_FORMAT_BGRA : GST_VIDEO_FORMAT_RGBA;
      *convert = FALSE;
    } else if (comps == 3) {
      *format = GST_VIDEO_FORMAT_RGB;
      *convert = FALSE;
    } else if (comps == 1) {
      *format = GST_VIDEO_FORMAT_GRAY8;
      *convert = FALSE;
    } else {
      *format = GST_VIDEO_FORMAT_RGBA;
    }
  } else if (dtype == CUDALINK_DTYPE_UINT16) {
    if (comps == 4) {
      *format = GST_VIDEO_FORMAT_RGBA64_LE;
      *convert = FALSE;
    } else if (comps == 1) {
      *format = GST_VIDEO_FORMAT_GRAY16_LE;
      *convert = FALSE;
    } else {
      *format = GST_VIDEO_FORMAT_RGBA64_LE;
    }
  } else {
    *format = ff == GST_CUDA_LINK_FLOAT_FORMAT_RGBA64_LE ?
        GST_VIDEO_FORMAT_RGBA64_LE : GST_VIDEO_FORMAT_RGBA;
  }
}

static void
expected_swizzle (guint comps, guint16 flags, gint sw[4])
{
  const gint Z = GST_CUDA_LINK_SWIZZLE_ZERO, O = GST_CUDA_LINK_SWIZZLE_ONE;
  gint r[4];

  switch (comps) {
    case 1:
      r[0] = 0, r[1] = 0, r[2] = 0, r[3] = O;
      break;
    case 2:
      if (flags & CUDALINK_FLAG_MONO_ALPHA)
        r[0] = 0, r[1] = 0, r[2] = 0, r[3] = 1;
      else
        r[0] = 0, r[1] = 1, r[2] = Z, r[3] = O;
      break;
    case 3:
      r[0] = 0, r[1] = 1, r[2] = 2, r[3] = O;
      break;
    default:
      r[0] = 0, r[1] = 1, r[2] = 2, r[3] = 3;
      break;
  }
  memcpy (sw, r, sizeof (r));
}

GST_START_TEST (test_mapping_exhaustive)
{
  static const guint16 flag_sets[] = { 0, CUDALINK_FLAG_MONO_ALPHA,
    CUDALINK_FLAG_BGRA, CUDALINK_FLAG_MONO_ALPHA | CUDALINK_FLAG_BGRA,
    0x0100                      /* unknown bit: ignored */
  };
  GstCaps *templ = gst_cuda_link_src_template_caps ();
  guint combos = 0;
  gint d;
  guint c, f, o, ff;

  for (d = 0; d < CUDALINK_DTYPE_COUNT_; d++) {
    for (c = 1; c <= 4; c++) {
      for (f = 0; f < G_N_ELEMENTS (flag_sets); f++) {
        for (o = 0; o < 3; o++) {
          for (ff = 0; ff < 2; ff++) {
            cudalink_format fmt = { 0, };
            GstCudaLinkSrcPlan plan;
            GstVideoFormat exp_format;
            gboolean exp_convert;
            const GstVideoFormatInfo *finfo;
            gchar *why = NULL;
            guint in_size = cudalink_dtype_size ((cudalink_dtype) d);
            guint out_size;
            GstCaps *caps;
            GstStructure *s;
            gint w, h, fn, fd;
            gboolean cuda_capable;
            guint i;

            fmt.width = 37;     /* odd: rows are not 4-byte multiples */
            fmt.height = 21;
            fmt.num_comps = c;
            fmt.dtype = (cudalink_dtype) d;
            fmt.flags = flag_sets[f];

            fail_unless (gst_cuda_link_src_plan (&fmt,
                    (GstCudaLinkChannelOrder) o, (GstCudaLinkFloatFormat) ff,
                    &plan, &why));
            fail_unless (why == NULL);
            expected_output ((cudalink_dtype) d, c, flag_sets[f],
                (GstCudaLinkChannelOrder) o, (GstCudaLinkFloatFormat) ff,
                &exp_format, &exp_convert);

            fail_unless_equals_string (gst_video_format_to_string
                (plan.format), gst_video_format_to_string (exp_format));
            fail_unless_equals_int (plan.convert, exp_convert);

            finfo = gst_video_format_get_info (exp_format);
            out_size = GST_VIDEO_FORMAT_INFO_DEPTH (finfo, 0) / 8;
            fail_unless_equals_int (plan.out_comps,
                GST_VIDEO_FORMAT_INFO_N_COMPONENTS (finfo));
            fail_unless_equals_int (cudalink_dtype_size (plan.out_dtype),
                out_size);
            fail_unless_equals_int (plan.in_row_bytes, 37 * c * in_size);
            fail_unless_equals_int (plan.out_row_bytes,
                37 * GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, 0));
            /* a plain copy must not change the frame's bytes per row */
            if (!plan.convert)
              fail_unless_equals_int (plan.in_row_bytes, plan.out_row_bytes);

            if (plan.convert) {
              gint sw[4];
              expected_swizzle (c, flag_sets[f], sw);
              for (i = 0; i < 4; i++)
                fail_unless_equals_int (plan.swizzle[i], sw[i]);
            }

            /* the kernel runs for conversions and for every flip */
            fail_unless_equals_int (gst_cuda_link_src_plan_needs_kernel
                (&plan, FALSE), exp_convert);
            fail_unless (gst_cuda_link_src_plan_needs_kernel (&plan, TRUE));

            /* caps: fixed, inside the template, CUDA first when possible */
            cuda_capable = exp_format == GST_VIDEO_FORMAT_RGBA ||
                exp_format == GST_VIDEO_FORMAT_BGRA ||
                exp_format == GST_VIDEO_FORMAT_RGB;
            fail_unless_equals_int (gst_cuda_link_src_format_cuda_capable
                (exp_format), cuda_capable);
            caps = gst_cuda_link_src_plan_caps (&plan, 37, 21, TRUE);
            fail_unless (caps != NULL);
            fail_unless_equals_int (gst_caps_get_size (caps),
                cuda_capable ? 2 : 1);
            fail_unless (gst_caps_is_subset (caps, templ));
            for (i = 0; i < gst_caps_get_size (caps); i++) {
              GstCapsFeatures *feat = gst_caps_get_features (caps, i);
              gboolean is_cuda = gst_caps_features_contains (feat,
                  "memory:CUDAMemory");
              fail_unless_equals_int (is_cuda, cuda_capable && i == 0);
              s = gst_caps_get_structure (caps, i);
              {
                GstCaps *one = gst_caps_copy_nth (caps, i);
                fail_unless (gst_caps_is_fixed (one));
                gst_caps_unref (one);
              }
              fail_unless_equals_string (gst_structure_get_string (s,
                      "format"), gst_video_format_to_string (exp_format));
              fail_unless (gst_structure_get_int (s, "width", &w));
              fail_unless (gst_structure_get_int (s, "height", &h));
              fail_unless_equals_int (w, 37);
              fail_unless_equals_int (h, 21);
              fail_unless (gst_structure_get_fraction (s, "framerate", &fn,
                      &fd));
              fail_unless_equals_int (fn, 0);
            }
            gst_caps_unref (caps);

            /* without a CUDA context only system memory is offered */
            caps = gst_cuda_link_src_plan_caps (&plan, 37, 21, FALSE);
            fail_unless_equals_int (gst_caps_get_size (caps), 1);
            fail_if (gst_caps_features_contains (gst_caps_get_features (caps,
                        0), "memory:CUDAMemory"));
            gst_caps_unref (caps);
            combos++;
          }
        }
      }
    }
  }
  fail_unless_equals_int (combos, 7 * 4 * 5 * 3 * 2);
  gst_caps_unref (templ);
}

GST_END_TEST;

GST_START_TEST (test_mapping_rejects)
{
  cudalink_format fmt = { 64, 64, 4, CUDALINK_DTYPE_UINT8, 0 };
  GstCudaLinkSrcPlan plan;
  gchar *why = NULL;

  fmt.dtype = CUDALINK_DTYPE_COUNT_;
  fail_if (gst_cuda_link_src_plan (&fmt, 0, 0, &plan, &why));
  assert_contains (why, "data type");
  g_clear_pointer (&why, g_free);

  fmt.dtype = CUDALINK_DTYPE_FLOAT32;
  fmt.num_comps = 0;
  fail_if (gst_cuda_link_src_plan (&fmt, 0, 0, &plan, &why));
  assert_contains (why, "channels");
  g_clear_pointer (&why, g_free);
  fmt.num_comps = 5;
  fail_if (gst_cuda_link_src_plan (&fmt, 0, 0, &plan, &why));
  g_clear_pointer (&why, g_free);

  fmt.num_comps = 4;
  fmt.width = 0;
  fail_if (gst_cuda_link_src_plan (&fmt, 0, 0, &plan, &why));
  assert_contains (why, "size");
  g_clear_pointer (&why, g_free);
  fmt.width = CUDALINK_MAX_DIMENSION + 1;
  fail_if (gst_cuda_link_src_plan (&fmt, 0, 0, &plan, NULL));

  /* the largest frame still plans */
  fmt.width = fmt.height = CUDALINK_MAX_DIMENSION;
  fail_unless (gst_cuda_link_src_plan (&fmt, 0, 1, &plan, NULL));
  fail_unless_equals_int (plan.out_row_bytes, CUDALINK_MAX_DIMENSION * 8);
}

GST_END_TEST;

GST_START_TEST (test_percentile)
{
  guint64 s[100];
  guint i;

  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 0, 50), 0);
  s[0] = 42;
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 1, 50), 42);
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 1, 99), 42);
  /* 100..1, reversed: sorting must happen */
  for (i = 0; i < 100; i++)
    s[i] = 100 - i;
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 100, 50), 50);
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 100, 99), 99);
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 100, 100), 100);
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 100, 1), 1);
  /* 10 samples: p99 is the largest */
  for (i = 0; i < 10; i++)
    s[i] = i * 10;
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 10, 99), 90);
  fail_unless_equals_uint64 (gst_cuda_link_percentile (s, 10, 50), 40);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* missing and hostile segments                                             */
/* ------------------------------------------------------------------------ */

GST_START_TEST (test_nothing_there)
{
  gchar *name = unique_name ();
  gchar *path = shm_path (name);
  gchar *message = NULL, *debug = NULL;
  gint64 elapsed = 0;

  fail_unless (access (path, F_OK) != 0);
  run_until_error (name, 200, &message, &debug, &elapsed);
  assert_contains (message, name);
  assert_contains (message, "nothing named");
  assert_contains (message, "200 ms");
  assert_contains (debug, "ERR_NOT_FOUND");
  /* it waited for the timeout, and not much longer */
  fail_unless (elapsed >= 190, "gave up after %" G_GINT64_FORMAT " ms",
      elapsed);
  fail_unless (elapsed < 3000, "took %" G_GINT64_FORMAT " ms", elapsed);
  fail_unless (access (path, F_OK) != 0, "the element created %s", path);

  g_free (message);
  g_free (debug);
  g_free (path);
  g_free (name);
}

GST_END_TEST;

/* "nothing named td" says what is there, and points out a name that
 * differs only in case (TouchDesigner's names are case-sensitive). */
GST_START_TEST (test_nothing_there_hint)
{
  gchar *name = unique_name ();
  gchar *upper = g_ascii_strup (name, -1);
  gchar *message = NULL, *debug = NULL;
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);
  cudalink_header h;

  /* a live producer's segment (its last frame just now) under UPPER */
  fail_unless_equals_int (cudalink_header_parse (buf, len, &h), CUDALINK_OK);
  h.timestamp = cudalink_now ();
  h.write_idx = 5;
  fail_unless_equals_int (cudalink_header_write (&h, buf, len), CUDALINK_OK);
  write_segment (upper, buf, len);

  run_until_error (name, 200, &message, &debug, NULL);
  assert_contains (message, "nothing named");
  assert_contains (message, "case-sensitive");
  assert_contains (message, upper);

  g_free (message);
  g_free (debug);
  remove_segment (upper);
  g_free (upper);
  g_free (name);
}

GST_END_TEST;

GST_START_TEST (test_hostile_garbage)
{
  guint8 buf[433];
  GRand *rand = g_rand_new_with_seed (0xc1bd);
  guint i;

  for (i = 0; i < sizeof (buf); i++)
    buf[i] = g_rand_int_range (rand, 0, 256);
  /* make sure the seed did not produce the magic by chance */
  buf[0] = 'x';
  g_rand_free (rand);
  check_hostile (buf, sizeof (buf), "bad header", "ERR_BAD_MAGIC", "magic");
}

GST_END_TEST;

GST_START_TEST (test_hostile_wrong_magic)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);

  put_u32 (buf + l.magic, 0x44504943);  /* "CIPD" byte-swapped */
  check_hostile (buf, len, "bad header", "ERR_BAD_MAGIC", "0x44504943");
}

GST_END_TEST;

GST_START_TEST (test_hostile_num_slots_0)
{
  guint8 buf[2048];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);

  put_u32 (buf + l.num_slots, 0);
  check_hostile (buf, len, "bad header", "ERR_BAD_NUM_SLOTS",
      "num_slots is 0");
}

GST_END_TEST;

GST_START_TEST (test_hostile_num_slots_11)
{
  guint8 buf[2048];
  cudalink_layout l;

  valid_header (buf, sizeof (buf), &l);
  put_u32 (buf + l.num_slots, 11);
  /* long enough for 11 slots, so that only the count is wrong */
  memset (buf + l.size, 0, sizeof (buf) - l.size);
  check_hostile (buf, sizeof (buf), "bad header", "ERR_BAD_NUM_SLOTS",
      "num_slots is 11");
}

GST_END_TEST;

GST_START_TEST (test_hostile_truncated)
{
  guint8 buf[1024];
  cudalink_layout l;

  valid_header (buf, sizeof (buf), &l);
  /* magic and num_slots intact, the rest cut off */
  check_hostile (buf, 100, "bad header", "ERR_TRUNCATED", "100 bytes");
}

GST_END_TEST;

/* Things the real world leaves under a segment's name that are not
 * segments: the element must not block on them (a FIFO made shm_open wait
 * for a writer for ever, deaf to timeout and unlock), and says what is
 * there. */
static void
check_not_a_segment (const gchar * kind, gint (*make) (const gchar * path))
{
  gchar *name = unique_name ();
  gchar *path = shm_path (name);
  gchar *message = NULL, *debug = NULL, *what;
  gint64 elapsed = 0;

  fail_unless_equals_int (make (path), 0);
  run_until_error (name, 300, &message, &debug, &elapsed);
  what = g_strdup_printf ("'%s' is a %s, not a shared-memory segment", name,
      kind);
  assert_contains (message, name);
  assert_contains (debug, what);
  assert_contains (debug, "ERR_SHM");
  fail_unless (elapsed < 5000, "took %" G_GINT64_FORMAT " ms", elapsed);

  if (g_str_equal (kind, "directory")) {
    fail_unless_equals_int (rmdir (path), 0);
  } else {
    fail_unless_equals_int (unlink (path), 0);
  }
  g_free (what);
  g_free (message);
  g_free (debug);
  g_free (path);
  g_free (name);
}

static gint
make_fifo (const gchar * path)
{
  return mkfifo (path, 0600);
}

static gint
make_dir (const gchar * path)
{
  return mkdir (path, 0700);
}

GST_START_TEST (test_fifo_under_the_name)
{
  check_not_a_segment ("FIFO", make_fifo);
}

GST_END_TEST;

GST_START_TEST (test_directory_under_the_name)
{
  check_not_a_segment ("directory", make_dir);
}

GST_END_TEST;

/* A segment larger than its layout is fine (every Windows mapping is
 * page-rounded to 4096 bytes): without a driver the element gets as far
 * as the driver, instead of "kept changing" or a bad header. */
static void
check_oversized (gsize size)
{
  guint8 buf[8192];
  cudalink_layout l;
  gchar *name = unique_name ();
  gchar *message = NULL, *debug = NULL;

  memset (buf, 0, sizeof (buf));
  valid_header (buf, sizeof (buf), &l);
  fail_unless (size <= sizeof (buf));
  write_segment (name, buf, size);
  run_until_error (name, 2000, &message, &debug, NULL);
  assert_contains (message, "CUDA driver");
  assert_contains (debug, "ERR_NO_DRIVER");

  g_free (message);
  g_free (debug);
  remove_segment (name);
  g_free (name);
}

GST_START_TEST (test_oversized_segment)
{
  cudalink_layout l = cudalink_layout_for (3);

  check_oversized (l.size + 1);
  check_oversized (4096);
}

GST_END_TEST;

typedef struct
{
  gchar *path;
  gsize len;
  const guint8 *bytes;
  gint stop;
} Flipper;

/* Another process's doing, done by a thread: the segment's file is cut to
 * nothing and written back, again and again. */
static gpointer
flip_size (gpointer data)
{
  Flipper *f = data;
  int fd = open (f->path, O_RDWR);

  while (fd >= 0 && !g_atomic_int_get (&f->stop)) {
    if (ftruncate (fd, 0) != 0 || pwrite (fd, f->bytes, f->len, 0) !=
        (gssize) f->len)
      break;
    g_usleep (200);
  }
  if (fd >= 0)
    close (fd);
  return NULL;
}

/* A segment truncated and rewritten while the element attaches: an error
 * about the segment or the driver, never a signal. */
GST_START_TEST (test_truncated_while_attaching)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);
  gchar *name = unique_name ();
  gchar *message = NULL, *debug = NULL;
  Flipper f = { shm_path (name), len, buf, 0 };
  GThread *t;

  write_segment (name, buf, len);
  t = g_thread_new ("flipper", flip_size, &f);
  run_until_error (name, 1000, &message, &debug, NULL);
  g_atomic_int_set (&f.stop, 1);
  g_thread_join (t);
  fail_unless (strstr (message, "CUDA driver") || strstr (message,
          "bad header") || strstr (message, "Could not attach"),
      "unexpected error: %s", message);

  g_free (message);
  g_free (debug);
  g_free (f.path);
  remove_segment (name);
  g_free (name);
}

GST_END_TEST;

GST_START_TEST (test_hostile_size_overflow)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len;
  cudalink_header h;
  guint64 need = (guint64) 32768 * 32767 * 4 * 4;

  len = valid_header (buf, sizeof (buf), &l);
  fail_unless_equals_int (cudalink_header_parse (buf, len, &h), CUDALINK_OK);
  /* float32 x4 32768x32767: 2^34 - 2^19 bytes; data_size holds the value
   * a 32-bit multiplication would wrap to */
  buf[l.format_kind] = CUDALINK_KIND_FLOAT;
  buf[l.bits_per_comp] = 32;
  put_u32 (buf + l.width, 32768);
  put_u32 (buf + l.height, 32767);
  put_u32 (buf + l.num_comps, 4);
  put_u32 (buf + l.data_size, (guint32) need);
  check_hostile (buf, len, "bad header", "ERR_BAD_DATA_SIZE", "17179344896");
}

GST_END_TEST;

GST_START_TEST (test_hostile_data_size)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);

  put_u32 (buf + l.data_size, 64 * 32 * 4 + 1);
  check_hostile (buf, len, "bad header", "ERR_BAD_DATA_SIZE", "8193");
}

GST_END_TEST;

GST_START_TEST (test_hostile_bad_dtype)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);

  buf[l.bits_per_comp] = 64;
  check_hostile (buf, len, "bad header", "ERR_BAD_DTYPE", "bits_per_comp 64");
}

GST_END_TEST;

GST_START_TEST (test_stale)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);

  buf[l.shutdown_flag] = 1;
  check_hostile (buf, len, "stale", "ERR_STALE", "shutdown");
}

GST_END_TEST;

/* A valid segment and no driver (CUDALINK_CUDA_LIBRARY=/nonexistent): the
 * error is about the driver and names the library it tried. */
GST_START_TEST (test_no_driver)
{
  guint8 buf[1024];
  cudalink_layout l;
  gsize len = valid_header (buf, sizeof (buf), &l);
  gchar *name = unique_name ();
  gchar *message = NULL, *debug = NULL;
  gint64 elapsed = 0;

  write_segment (name, buf, len);
  run_until_error (name, 5000, &message, &debug, &elapsed);
  assert_contains (message, "CUDA driver");
  assert_contains (message, name);
  assert_contains (debug, "/nonexistent");
  assert_contains (debug, "ERR_NO_DRIVER");
  /* a valid segment is judged at once: no waiting for the timeout */
  fail_unless (elapsed < 2500, "took %" G_GINT64_FORMAT " ms", elapsed);

  g_free (message);
  g_free (debug);
  remove_segment (name);
  g_free (name);
}

GST_END_TEST;

/* timeout=-1 and nothing there: a state change must still get it out. */
/* With nothing there and @timeout_ms (forever, or so long it is), the
 * element waits without an error and stops at once. */
static void
check_waits_forever (gint64 timeout_ms)
{
  gchar *name = unique_name ();
  Harness h;
  GstMessage *msg;
  gint64 t0, took;

  harness_setup (&h, name, timeout_ms);
  fail_if (gst_element_set_state (h.src, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  g_usleep (300 * 1000);
  msg = gst_bus_pop_filtered (h.bus, GST_MESSAGE_ERROR);
  fail_unless (msg == NULL, "error while waiting forever");

  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_element_set_state (h.src, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  took = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (took < 500, "stopping took %" G_GINT64_FORMAT " ms", took);
  msg = gst_bus_pop_filtered (h.bus, GST_MESSAGE_ERROR);
  fail_unless (msg == NULL, "stopping posted an error");

  harness_teardown (&h);
  g_free (name);
}

GST_START_TEST (test_wait_interruptible)
{
  check_waits_forever (-1);
}

GST_END_TEST;

/* The largest timeout the property takes is a wait, not an overflow that
 * fails at once. */
GST_START_TEST (test_timeout_maximum)
{
  GstElement *src = gst_element_factory_make ("cudalinksrc", NULL);
  GParamSpec *p = g_object_class_find_property (G_OBJECT_GET_CLASS (src),
      "timeout");
  gint64 max = G_PARAM_SPEC_INT64 (p)->maximum;

  gst_object_unref (src);
  check_waits_forever (max);
  check_waits_forever (max - 1000);
}

GST_END_TEST;

/* A name no segment can have is refused at start, saying which rule it
 * breaks (the library's one rule, as in cudalinksink). */
GST_START_TEST (test_bad_name)
{
  Harness h;
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  harness_setup (&h, "a/b", 100);
  fail_unless_equals_int (gst_element_set_state (h.src, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (h.bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &debug);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_SETTINGS));
  assert_contains (err->message, "Invalid ipc-name 'a/b'");
  assert_contains (err->message, "'/' at byte 1");
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);
  harness_teardown (&h);
}

GST_END_TEST;

/* Waiting for a producer is said on the bus, once, with the name. */
GST_START_TEST (test_waiting_message)
{
  gchar *name = unique_name ();
  Harness h;
  GstMessage *msg;
  const GstStructure *s;

  harness_setup (&h, name, -1);
  fail_if (gst_element_set_state (h.src, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (h.bus, 5 * GST_SECOND,
      GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL, "no element message while waiting");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (h.src));
  s = gst_message_get_structure (msg);
  fail_unless (gst_structure_has_name (s, "cudalink-state"));
  fail_unless_equals_string (gst_structure_get_string (s, "state"),
      "waiting");
  fail_unless_equals_string (gst_structure_get_string (s, "ipc-name"), name);
  assert_contains (gst_structure_get_string (s, "reason"), "no segment");
  gst_message_unref (msg);

  /* the look-out goes on every 50 ms, but says so only once */
  g_usleep (300 * 1000);
  msg = gst_bus_pop_filtered (h.bus, GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR);
  fail_unless (msg == NULL, "more than one message while waiting");

  harness_teardown (&h);
  g_free (name);
}

GST_END_TEST;

/* stats-interval posts the stats structure on the bus, also while nothing
 * flows, and stops with the element. */
GST_START_TEST (test_stats_interval)
{
  gchar *name = unique_name ();
  Harness h;
  GstMessage *msg;
  guint n = 0;
  gint64 t0;

  harness_setup (&h, name, -1);
  g_object_set (h.src, "stats-interval", 100, NULL);
  fail_if (gst_element_set_state (h.src, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  t0 = g_get_monotonic_time ();
  while (n < 3 && g_get_monotonic_time () - t0 < 5 * G_USEC_PER_SEC) {
    msg = gst_bus_timed_pop_filtered (h.bus, GST_SECOND, GST_MESSAGE_ELEMENT);
    if (msg && gst_structure_has_name (gst_message_get_structure (msg),
            "application/x-cudalinksrc-stats")) {
      guint64 frames = 1;
      fail_unless (gst_structure_get_uint64 (gst_message_get_structure (msg),
              "frames", &frames));
      fail_unless_equals_uint64 (frames, 0);
      n++;
    }
    if (msg)
      gst_message_unref (msg);
  }
  fail_unless_equals_int (n, 3);

  fail_unless_equals_int (gst_element_set_state (h.src, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (h.bus, TRUE);
  gst_bus_set_flushing (h.bus, FALSE);
  g_usleep (300 * 1000);
  msg = gst_bus_pop_filtered (h.bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg == NULL, "stats posted after stop");

  harness_teardown (&h);
  g_free (name);
}

GST_END_TEST;

/* Live, and the latency it reports grows with poll-interval. */
GST_START_TEST (test_latency_query)
{
  gchar *name = unique_name ();
  Harness h;
  GstQuery *q;
  gboolean live = FALSE;
  GstClockTime min1 = 0, max1 = 0, min2 = 0, max2 = 0;

  harness_setup (&h, name, -1);
  g_object_set (h.src, "poll-interval", 1000, NULL);
  fail_if (gst_element_set_state (h.src, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  q = gst_query_new_latency ();
  fail_unless (gst_element_query (h.src, q));
  gst_query_parse_latency (q, &live, &min1, &max1);
  gst_query_unref (q);
  fail_unless (live);
  fail_unless (min1 >= GST_MSECOND, "min latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (min1));
  fail_unless (min1 < 100 * GST_MSECOND);
  fail_unless (max1 == GST_CLOCK_TIME_NONE || max1 >= min1);
  fail_unless_equals_int (gst_element_set_state (h.src, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  g_object_set (h.src, "poll-interval", 20000, NULL);
  fail_if (gst_element_set_state (h.src, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  q = gst_query_new_latency ();
  fail_unless (gst_element_query (h.src, q));
  gst_query_parse_latency (q, &live, &min2, &max2);
  gst_query_unref (q);
  fail_unless_equals_uint64 (min2 - min1, 19 * GST_MSECOND);

  harness_teardown (&h);
  g_free (name);
}

GST_END_TEST;

static Suite *
cudalinksrc_suite (void)
{
  Suite *s = suite_create ("cudalinksrc");
  TCase *tc = tcase_create ("element");
  TCase *tm = tcase_create ("mapping");
  TCase *th = tcase_create ("segments");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_registered);
  tcase_add_test (tc, test_template);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_latency_query);

  suite_add_tcase (s, tm);
  tcase_add_test (tm, test_mapping_exhaustive);
  tcase_add_test (tm, test_mapping_rejects);
  tcase_add_test (tm, test_percentile);

  suite_add_tcase (s, th);
  tcase_add_test (th, test_nothing_there);
  tcase_add_test (th, test_nothing_there_hint);
  tcase_add_test (th, test_hostile_garbage);
  tcase_add_test (th, test_hostile_wrong_magic);
  tcase_add_test (th, test_hostile_num_slots_0);
  tcase_add_test (th, test_hostile_num_slots_11);
  tcase_add_test (th, test_hostile_truncated);
  tcase_add_test (th, test_hostile_size_overflow);
  tcase_add_test (th, test_hostile_data_size);
  tcase_add_test (th, test_hostile_bad_dtype);
  tcase_add_test (th, test_stale);
  tcase_add_test (th, test_fifo_under_the_name);
  tcase_add_test (th, test_directory_under_the_name);
  tcase_add_test (th, test_oversized_segment);
  tcase_add_test (th, test_truncated_while_attaching);
  tcase_add_test (th, test_no_driver);
  tcase_add_test (th, test_wait_interruptible);
  tcase_add_test (th, test_timeout_maximum);
  tcase_add_test (th, test_waiting_message);
  tcase_add_test (th, test_bad_name);
  tcase_add_test (th, test_stats_interval);

  return s;
}

int
main (int argc, char **argv)
{
  /* before anything could load the driver */
  g_setenv ("CUDALINK_CUDA_LIBRARY", "/nonexistent", TRUE);
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (cudalinksrc_suite (), "cudalinksrc", __FILE__);
}
