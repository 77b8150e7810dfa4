/* GPU suite, end to end in two processes: cudalinksink in a child process
 * (this program run as "--producer"), cudalinksrc in this one.
 *
 *   child:  videotestsrc num-buffers=N pattern=ball ! video/x-raw,format=F,...
 *             ! cudaupload ! cudalinksink ipc-name=NAME gpu-wait=sleep
 *   parent: cudalinksrc ipc-name=NAME ! video/x-raw,format=F' ! appsink
 *
 * Lock-step: a pad probe in the child holds buffer k until the parent has
 * acknowledged k frames (one byte on the child's stdin per frame received),
 * or until a second has passed (so a frame the parent never saw cannot
 * stall the run; the src's stats then count it as missed). Every received
 * buffer is compared bit-exact with the same videotestsrc frame rendered to
 * system memory here, indexed by the buffer OFFSET (the producer's frame
 * index, write_idx - 1, gstcudalinksrc.c). RGB is published as 4 channels
 * (opaque alpha) and comes back as RGBA. test_three_sources reads one sink
 * with three cudalinksrc; the child then waits for the slowest of them.
 *
 *   gpu_roundtrip [test-name ...]
 *
 * Exits non-zero when there is no GPU: this suite never skips.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "cudalink.h"
#include "testutil.h"
#include "gpu_gst_util.h"

#define PATTERN "pattern=ball"
#define GATE_TIMEOUT_US (1000 * 1000)

/* ------------------------------------------------------------------------ */
/* the child: cudalinksink, gated by the parent's acknowledgements          */
/* ------------------------------------------------------------------------ */

typedef struct {
  guint64 acks;     /* bytes read from stdin */
  guint64 buffers;  /* buffers let through */
  guint timeouts;   /* gates opened by the timeout */
} Gate;

/* Waits until the parent has acknowledged @want frames (or the timeout). */
static void
gate_wait(Gate *g, guint64 want)
{
  gint64 deadline = g_get_monotonic_time() + GATE_TIMEOUT_US;

  while (g->acks < want) {
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    struct pollfd pfd = { 0, POLLIN, 0 };
    char buf[256];
    ssize_t n;

    if (left <= 0) {
      g->timeouts++;
      return;
    }
    if (poll(&pfd, 1, (int)left) <= 0)
      continue;
    n = read(0, buf, sizeof buf);
    if (n <= 0) { /* parent gone: do not wait any more */
      g->acks = G_MAXUINT64;
      return;
    }
    g->acks += (guint64)n;
  }
}

static GstPadProbeReturn
gate_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Gate *g = data;

  (void)pad;
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    gate_wait(g, g->buffers);
    g->buffers++;
  } else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS) {
    /* keep the segment until the last frame has been read */
    gate_wait(g, g->buffers);
  }
  return GST_PAD_PROBE_OK;
}

/* --producer NAME FORMAT W H N USE_CUDA SINK_PROPS */
static int
producer_main(int argc, char **argv)
{
  gchar *desc;
  GstElement *pipe, *sink;
  GstPad *pad;
  GstBus *bus;
  GstMessage *m;
  GError *err = NULL;
  Gate g = { 0 };
  int ret = 0;

  if (argc < 9) {
    fprintf(stderr, "producer: bad arguments\n");
    return 2;
  }
  desc = g_strdup_printf("videotestsrc num-buffers=%s " PATTERN " is-live=false ! "
                         "video/x-raw,format=%s,width=%s,height=%s,framerate=30/1 ! %s "
                         "cudalinksink name=sink ipc-name=%s gpu-wait=sleep sync=false %s",
                         argv[6], argv[3], argv[4], argv[5],
                         atoi(argv[7]) ? "cudaupload !" : "", argv[2], argv[8]);
  pipe = gst_parse_launch(desc, &err);
  if (!pipe) {
    fprintf(stderr, "producer: cannot build '%s': %s\n", desc, err ? err->message : "?");
    return 1;
  }
  g_clear_error(&err);
  sink = gst_bin_get_by_name(GST_BIN(pipe), "sink");
  pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                    gate_probe, &g, NULL);
  gst_object_unref(pad);
  gst_object_unref(sink);
  bus = gst_element_get_bus(pipe);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;
    gst_message_parse_error(m, &err, &dbg);
    fprintf(stderr, "producer: %s (%s)\n", err->message, dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
    ret = 1;
  }
  gst_message_unref(m);
  gst_element_set_state(pipe, GST_STATE_NULL);
  printf("DONE buffers=%" G_GUINT64_FORMAT " gate-timeouts=%u\n", g.buffers, g.timeouts);
  fflush(stdout);
  gst_object_unref(bus);
  gst_object_unref(pipe);
  g_free(desc);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* the parent                                                               */
/* ------------------------------------------------------------------------ */

static const char *self_path;
static guint name_counter;

typedef struct {
  const char *format;   /* what videotestsrc renders and the sink takes */
  const char *out;      /* what cudalinksrc pushes */
  guint in_bpp;         /* bytes per pixel in, out */
  guint out_bpp;
  const char *sink_props;
} Fmt;

#define MAX_READERS 3

typedef struct Gate_ Gate_;

typedef struct {
  /* expected */
  const Fmt *f;
  guint w, h, n;
  guint8 **ref;         /* n packed frames (shared by the readers) */
  Gate_ *gate;
  /* seen (streaming thread, under gate->lock) */
  guint frames, bad;
  guint64 last_offset;
  gboolean any;
  char first_error[256];
} Check;

/* The parent's side of the lock-step: the child may publish frame k once
 * every reader has received frame k - 1 (or a later one). */
struct Gate_ {
  GMutex lock;
  int ack_fd;
  guint64 acked;        /* bytes written to ack_fd */
  Check *reader[MAX_READERS];
  guint readers;
};

/* The frames videotestsrc renders for these caps, tightly packed. */
static guint8 **
render_reference(const Fmt *f, guint w, guint h, guint n)
{
  gchar *launch = g_strdup_printf("videotestsrc num-buffers=%u " PATTERN " is-live=false ! "
                                  "video/x-raw,format=%s,width=%u,height=%u,framerate=30/1 ! "
                                  "appsink name=out sync=false",
                                  n, f->format, w, h);
  GstElement *p = gst_parse_launch(launch, NULL);
  GstElement *out;
  guint8 **frames = g_new0(guint8 *, n);
  gsize row = (gsize)w * f->in_bpp;

  g_free(launch);
  if (!p)
    return frames;
  out = gst_bin_get_by_name(GST_BIN(p), "out");
  gst_element_set_state(p, GST_STATE_PLAYING);
  for (guint i = 0; i < n; i++) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 10 * GST_SECOND);
    GstVideoInfo info;
    GstVideoFrame vf;

    if (!s)
      break;
    if (gst_video_info_from_caps(&info, gst_sample_get_caps(s)) &&
        gst_video_frame_map(&vf, &info, gst_sample_get_buffer(s), GST_MAP_READ)) {
      frames[i] = g_malloc(row * h);
      for (guint y = 0; y < h; y++)
        memcpy(frames[i] + y * row,
               (guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&vf, 0) +
                   (gsize)y * GST_VIDEO_FRAME_PLANE_STRIDE(&vf, 0),
               row);
      gst_video_frame_unmap(&vf);
    }
    gst_sample_unref(s);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(out);
  gst_object_unref(p);
  return frames;
}

/* NULL when frame @vf is reference frame @ref, else why (static). */
static const char *
compare(const Check *c, const guint8 *ref, GstVideoFrame *vf)
{
  static char why[160];
  gsize in_row = (gsize)c->w * c->f->in_bpp;

  for (guint y = 0; y < c->h; y++) {
    const guint8 *o = (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(vf, 0) +
                      (gsize)y * GST_VIDEO_FRAME_PLANE_STRIDE(vf, 0);
    const guint8 *r = ref + y * in_row;
    if (c->f->in_bpp == c->f->out_bpp) {
      if (memcmp(o, r, in_row) != 0) {
        gsize x = 0;
        while (o[x] == r[x])
          x++;
        g_snprintf(why, sizeof why, "row %u byte %" G_GSIZE_FORMAT ": got %u, want %u", y, x,
                   o[x], r[x]);
        return why;
      }
      continue;
    }
    /* 3 channels in, 4 out: R, G, B, opaque alpha */
    for (guint x = 0; x < c->w; x++) {
      for (guint ch = 0; ch < 4; ch++) {
        guint got = o[x * 4 + ch], want = ch < 3 ? r[x * 3 + ch] : 255;
        if (got != want) {
          g_snprintf(why, sizeof why, "pixel %u,%u channel %u: got %u, want %u", x, y, ch, got,
                     want);
          return why;
        }
      }
    }
  }
  return NULL;
}

/* Under gate->lock: lets the child publish as far as the slowest reader
 * allows, one byte per frame (a frame a reader never saw is acknowledged
 * with a later one). */
static void
gate_ack(Gate_ *g)
{
  guint64 upto = G_MAXUINT64;
  char ack[64];

  for (guint i = 0; i < g->readers; i++)
    upto = MIN(upto, g->reader[i]->any ? g->reader[i]->last_offset + 1 : 0);
  memset(ack, 1, sizeof ack);
  while (g->ack_fd >= 0 && g->acked < upto) {
    ssize_t w = write(g->ack_fd, ack, (size_t)MIN(sizeof ack, upto - g->acked));
    if (w <= 0) {
      if (errno != EPIPE)
        perror("ack");
      break;
    }
    g->acked += (guint64)w;
  }
}

static GstFlowReturn
on_sample(GstAppSink *sink, gpointer data)
{
  Check *c = data;
  GstSample *s = gst_app_sink_pull_sample(sink);
  GstVideoInfo info;
  GstVideoFrame vf;
  GstBuffer *buf;
  guint64 off;
  const char *why = NULL;

  if (!s)
    return GST_FLOW_EOS;
  buf = gst_sample_get_buffer(s);
  off = GST_BUFFER_OFFSET(buf);
  g_mutex_lock(&c->gate->lock);
  c->frames++;
  c->any = TRUE;
  c->last_offset = off;
  if (!gst_video_info_from_caps(&info, gst_sample_get_caps(s)) ||
      strcmp(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)), c->f->out) != 0 ||
      GST_VIDEO_INFO_WIDTH(&info) != (gint)c->w || GST_VIDEO_INFO_HEIGHT(&info) != (gint)c->h)
    why = "caps do not match";
  else if (off >= c->n || !c->ref[off])
    why = "offset out of range";
  else if (!gst_video_frame_map(&vf, &info, buf, GST_MAP_READ))
    why = "cannot map";
  else {
    why = compare(c, c->ref[off], &vf);
    gst_video_frame_unmap(&vf);
  }
  if (why) {
    c->bad++;
    if (!c->first_error[0])
      g_snprintf(c->first_error, sizeof c->first_error, "offset %" G_GUINT64_FORMAT ": %s", off,
                 why);
  }
  gate_ack(c->gate);
  g_mutex_unlock(&c->gate->lock);
  gst_sample_unref(s);
  return GST_FLOW_OK;
}

/* One format end to end: the child's cudalinksink, read by @readers
 * cudalinksrc in one pipeline here (one shared CUDA context). */
static void
roundtrip_readers(const Fmt *f, guint w, guint h, guint n, guint readers)
{
  gchar *name = g_strdup_printf("cltest-rt-%d-%u", (int)getpid(), name_counter++);
  gboolean cuda = cudaupload_supports(f->format);
  gchar *sw = g_strdup_printf("%u", w), *sh = g_strdup_printf("%u", h);
  gchar *sn = g_strdup_printf("%u", n);
  gchar *argv[] = { (gchar *)self_path, "--producer", name, (gchar *)f->format, sw, sh, sn,
                    cuda ? "1" : "0", (gchar *)f->sink_props, NULL };
  GString *desc = g_string_new(NULL);
  GstAppSinkCallbacks cb = { 0 };
  GstElement *pipe = NULL;
  GstStructure *st[MAX_READERS] = { NULL };
  GstBus *bus = NULL;
  GError *err = NULL;
  GPid pid = 0;
  int in_fd = -1, out_fd = -1, status = 0;
  gboolean child_done = FALSE;
  char error[512] = "", child_out[256] = "";
  gint64 t0, t1, deadline;
  gint64 first_offset[MAX_READERS];
  guint8 **ref;
  Gate_ g;
  Check c[MAX_READERS];

  memset(&g, 0, sizeof g);
  memset(c, 0, sizeof c);
  g_mutex_init(&g.lock);
  g.ack_fd = -1;
  g.readers = readers;
  ref = render_reference(f, w, h, n);
  CHECK(ref[n - 1] != NULL);
  for (guint i = 0; i < readers; i++) {
    c[i].f = f;
    c[i].w = w;
    c[i].h = h;
    c[i].n = n;
    c[i].ref = ref;
    c[i].gate = &g;
    g.reader[i] = &c[i];
    first_offset[i] = -1;
    g_string_append_printf(desc, "cudalinksrc name=src%u ipc-name=%s timeout=20000 ! "
                           "video/x-raw,format=%s ! appsink name=sink%u sync=false ",
                           i, name, f->out, i);
  }

  if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                &in_fd, &out_fd, NULL, &err)) {
    fprintf(stderr, "  cannot start the producer: %s\n", err->message);
    g_clear_error(&err);
    CHECK(FALSE);
    goto out;
  }
  g.ack_fd = in_fd;

  pipe = gst_parse_launch(desc->str, &err);
  g_clear_error(&err);
  if (!pipe) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(in_fd);
    CHECK(pipe != NULL);
    goto out;
  }
  cb.new_sample = on_sample;
  for (guint i = 0; i < readers; i++) {
    gchar *sname = g_strdup_printf("sink%u", i);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipe), sname);
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cb, &c[i], NULL);
    gst_object_unref(sink);
    g_free(sname);
  }
  bus = gst_element_get_bus(pipe);
  t0 = g_get_monotonic_time();
  gst_element_set_state(pipe, GST_STATE_PLAYING);

  /* until every reader has the last frame, the child is gone (and a
   * second more), an error, or a generous deadline */
  deadline = t0 + (gint64)(30 + n / 10) * G_USEC_PER_SEC;
  for (gint64 done_at = 0; g_get_monotonic_time() < deadline;) {
    GstMessage *m = gst_bus_timed_pop_filtered(bus, 20 * GST_MSECOND, GST_MESSAGE_ERROR);
    gboolean last = TRUE;

    if (m) {
      gchar *dbg = NULL;
      gst_message_parse_error(m, &err, &dbg);
      g_snprintf(error, sizeof error, "%s (%s)", err->message, dbg ? dbg : "");
      g_clear_error(&err);
      g_free(dbg);
      gst_message_unref(m);
      break;
    }
    g_mutex_lock(&g.lock);
    for (guint i = 0; i < readers; i++)
      last = last && c[i].any && c[i].last_offset == n - 1;
    g_mutex_unlock(&g.lock);
    if (last)
      break;
    if (!child_done && waitpid(pid, &status, WNOHANG) == pid) {
      child_done = TRUE;
      done_at = g_get_monotonic_time();
    }
    if (child_done && g_get_monotonic_time() - done_at > G_USEC_PER_SEC)
      break;
  }
  t1 = g_get_monotonic_time();

  for (guint i = 0; i < readers; i++) {
    gchar *sname = g_strdup_printf("src%u", i);
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipe), sname);
    g_object_get(src, "stats", &st[i], NULL);
    gst_object_unref(src);
    g_free(sname);
    if (st[i])
      gst_structure_get_int64(st[i], "first-offset", &first_offset[i]);
  }
  gst_element_set_state(pipe, GST_STATE_NULL);

  /* the child lets EOS through once its last frame is acknowledged */
  g_mutex_lock(&g.lock);
  g.ack_fd = -1;
  g_mutex_unlock(&g.lock);
  close(in_fd);
  if (!child_done) {
    for (int i = 0; i < 500 && !child_done; i++) {
      if (waitpid(pid, &status, WNOHANG) == pid)
        child_done = TRUE;
      else
        g_usleep(10000);
    }
    if (!child_done) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      CHECK(FALSE); /* the child did not finish */
    }
  }
  {
    ssize_t r = read(out_fd, child_out, sizeof child_out - 1);
    if (r > 0) {
      child_out[r] = 0;
      g_strchomp(child_out);
    }
  }

  for (guint i = 0; i < readers; i++) {
    gchar *who = readers > 1 ? g_strdup_printf(", reader %u", i) : g_strdup("");
    printf("    %-9s %4ux%-4u %s%s: %4u/%u frames in %.2f s (%.0f fps), first offset %"
           G_GINT64_FORMAT ", missed %" G_GUINT64_FORMAT ", torn-discarded %" G_GUINT64_FORMAT
           ", bad %u; child: %s%s%s\n",
           f->format, w, h, cuda ? "cudaupload" : "system memory in", who,
           c[i].frames, n, (t1 - t0) / 1e6, (t1 > t0) ? c[i].frames / ((t1 - t0) / 1e6) : 0.0,
           first_offset[i], stat_u64(st[i], "missed"), stat_u64(st[i], "torn-discarded"),
           c[i].bad, child_out[0] ? child_out : "(nothing)",
           c[i].first_error[0] ? " FIRST BAD: " : "", c[i].first_error);
    g_free(who);
  }
  if (error[0])
    printf("      ERROR: %s\n", error);

  CHECK(!error[0]);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (guint i = 0; i < readers; i++) {
    CHECK_EQ_INT(c[i].bad, 0);
    CHECK(c[i].any);
    CHECK_EQ_INT(c[i].last_offset, n - 1);
    /* lock-step: nothing overwritten before every reader read it */
    CHECK_EQ_INT(stat_u64(st[i], "missed"), 0);
    CHECK_EQ_INT(stat_u64(st[i], "torn-discarded"), 0);
    CHECK_EQ_INT(stat_u64(st[i], "frames"), c[i].frames);
    /* a src may attach after the first frame, never later than that */
    CHECK(first_offset[i] >= 0 && first_offset[i] <= 1);
    CHECK_EQ_INT(c[i].frames, n - (first_offset[i] < 0 ? 0 : first_offset[i]));
  }

out:
  for (guint i = 0; i < readers; i++)
    if (st[i])
      gst_structure_free(st[i]);
  if (bus)
    gst_object_unref(bus);
  if (pipe)
    gst_object_unref(pipe);
  if (pid)
    g_spawn_close_pid(pid);
  if (out_fd >= 0)
    close(out_fd);
  for (guint i = 0; i < n; i++)
    g_free(ref[i]);
  g_free(ref);
  g_mutex_clear(&g.lock);
  g_string_free(desc, TRUE);
  g_free(sw);
  g_free(sh);
  g_free(sn);
  g_free(name);
}

static void
roundtrip(const Fmt *f, guint w, guint h, guint n)
{
  roundtrip_readers(f, w, h, n, 1);
}

static const Fmt fmt_rgba = { "RGBA", "RGBA", 4, 4, "" };
static const Fmt fmt_bgra = { "BGRA", "BGRA", 4, 4, "channel-order=bgra" };
static const Fmt fmt_gray8 = { "GRAY8", "GRAY8", 1, 1, "" };
static const Fmt fmt_gray16 = { "GRAY16_LE", "GRAY16_LE", 2, 2, "" };
static const Fmt fmt_rgba64 = { "RGBA64_LE", "RGBA64_LE", 8, 8, "" };
static const Fmt fmt_rgb = { "RGB", "RGBA", 3, 4, "" };

static void test_rgba_1080p(void) { roundtrip(&fmt_rgba, 1920, 1080, 1000); }
static void test_bgra(void) { roundtrip(&fmt_bgra, 640, 360, 1000); }
static void test_gray8(void) { roundtrip(&fmt_gray8, 640, 360, 1000); }
static void test_gray16(void) { roundtrip(&fmt_gray16, 640, 360, 1000); }
static void test_rgba64(void) { roundtrip(&fmt_rgba64, 640, 360, 1000); }
static void test_rgb_expanded(void) { roundtrip(&fmt_rgb, 640, 360, 1000); }
/* "3 sources reading one sink", every frame bit-exact in each */
static void test_three_sources(void) { roundtrip_readers(&fmt_rgba, 1280, 720, 1000, 3); }


#define RUN(fn) RUN_WANTED(1, fn)

int
main(int argc, char **argv)
{
  char why[256] = "";
  const char *elements[] = { "cudalinksink", "cudalinksrc", "videotestsrc", "appsink" };

  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  gst_init(NULL, NULL);
  if (argc > 1 && strcmp(argv[1], "--producer") == 0)
    return producer_main(argc, argv);

  if (cudalink_cuda_load(why, sizeof why) != CUDALINK_OK) {
    printf("FAIL: no CUDA driver (%s): this suite needs a GPU\n", why);
    return 1;
  }
  for (guint i = 0; i < G_N_ELEMENTS(elements); i++) {
    GstElementFactory *f = gst_element_factory_find(elements[i]);
    if (!f) {
      printf("FAIL: %s is not registered (GST_PLUGIN_PATH_1_0=%s)\n", elements[i],
             g_getenv("GST_PLUGIN_PATH_1_0"));
      return 1;
    }
    gst_object_unref(f);
  }
  self_path = g_file_read_link("/proc/self/exe", NULL);
  if (!self_path)
    self_path = argv[0];

  RUN(test_rgba_1080p);
  RUN(test_bgra);
  RUN(test_gray8);
  RUN(test_gray16);
  RUN(test_rgba64);
  RUN(test_rgb_expanded);
  RUN(test_three_sources);

  return TEST_SUMMARY();
}
