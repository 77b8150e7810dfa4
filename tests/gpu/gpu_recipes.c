/* GPU suite: README's main job and the recipes in examples/ end to end, as
 * a user runs them (bash examples/X.sh, build/examples/cudalink-appsink),
 * with a stand-in producer and the outputs checked (docs/RECIPES.md).
 *
 *   gpu_recipes SOURCE_ROOT BUILD_ROOT [test-name ...]
 *
 * The stand-in producer is a cudalinksink pipeline in its own process:
 *   gst-launch-1.0 videotestsrc is-live=true num-buffers=N pattern=ball
 *     ! video/x-raw,format=RGBA,WxH,30 fps ! cudaupload ! cudalinksink ipc-name=NAME
 * (smooth pictures: the CPU encoders keep up with them). What a recipe
 * produced is read here: an MP4 decoded (filesrc ! qtdemux ! decodebin !
 * appsink), a re-published segment read by a cudalinksrc of this process;
 * frames counted, size checked. Frame counts are checked against what was
 * published within a tolerance (live streams skip, never queue; an MP4
 * can lose its last frame, whose duration is unknown at framerate=0/1;
 * a network receiver starts at a key frame).
 *
 * The H200/H100 have no NVENC: the recipes pick x264enc/x265enc after
 * cudadownload there. The Python recipes (appsink-numpy.py, appsrc-numpy.py)
 * run with $CUDALINK_PYTHON (default /usr/bin/python3): on the GPU machine,
 * whose Python 3.12 has no PyGObject, .gpu/env.sh sets it to
 * .gpu/python3.11, Debian's Python 3.11 with PyGObject and numpy
 * (tests/gpu/bundle-py311.sh).
 *
 * Logs: every process's output goes to CUDALINK_RECIPES_DIR (default: a new
 * directory under /tmp), named after the test. Exits non-zero when there is
 * no GPU: this suite never skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

static const char *src_root, *build_root, *python;
static gchar *out_dir;
static guint name_counter;

static gchar *
unique_name(const char *what)
{
  return g_strdup_printf("cltest-recipe-%s-%d-%u", what, (int)getpid(), name_counter++);
}

/* ------------------------------------------------------------------------ */
/* processes                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
  GPid pid;
  gboolean alive;
  int status;
  gchar *log;
} Proc;

static void
to_log(gpointer path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
}

/* Starts argv (a NULL-terminated list) with its output in OUT_DIR/log;
 * env: "NAME=VALUE" strings added to this process's environment. */
static gboolean
proc_start(Proc *p, const char *log, const char *const *argv, const char *const *env)
{
  gchar **envp = g_get_environ();
  GError *err = NULL;
  gboolean ok;

  memset(p, 0, sizeof *p);
  p->log = g_build_filename(out_dir, log, NULL);
  for (guint i = 0; env && env[i]; i++) {
    gchar **kv = g_strsplit(env[i], "=", 2);
    envp = g_environ_setenv(envp, kv[0], kv[1] ? kv[1] : "", TRUE);
    g_strfreev(kv);
  }
  ok = g_spawn_async(src_root, (gchar **)argv, envp,
                     G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, to_log, p->log, &p->pid,
                     &err);
  g_strfreev(envp);
  if (!ok) {
    fprintf(stderr, "  cannot start %s: %s\n", argv[0], err->message);
    g_clear_error(&err);
    return FALSE;
  }
  p->alive = TRUE;
  return TRUE;
}

/* Whether the process still runs; once it ended, its status is recorded. */
static gboolean
proc_alive(Proc *p)
{
  int st;

  if (p->alive && waitpid(p->pid, &st, WNOHANG) == p->pid) {
    p->alive = FALSE;
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  return p->alive;
}

/* Waits up to timeout_s for the process; its exit status, 128 + signal,
 * or -1 when it had to be killed. */
static int
proc_wait(Proc *p, double timeout_s)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

  if (!p->alive)
    return p->status;
  while (g_get_monotonic_time() < deadline) {
    if (!proc_alive(p))
      return p->status;
    g_usleep(20000);
  }
  fprintf(stderr, "  %s: still running after %.0f s, killed\n", p->log, timeout_s);
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  p->alive = FALSE;
  p->status = -1;
  return -1;
}

/* Ctrl-C (gst-launch -e turns it into an EOS), then wait. */
static int
proc_interrupt(Proc *p, double timeout_s)
{
  if (p->alive)
    kill(p->pid, SIGINT);
  return proc_wait(p, timeout_s);
}

static gchar *
proc_output(const Proc *p)
{
  gchar *text = NULL;
  if (!g_file_get_contents(p->log, &text, NULL, NULL))
    text = g_strdup("");
  return text;
}

/* Until the process's output holds needle (TRUE), it ends, or timeout_s. */
static gboolean
proc_wait_output(Proc *p, const char *needle, double timeout_s)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)(timeout_s * G_USEC_PER_SEC);

  for (;;) {
    gboolean alive = proc_alive(p); /* before reading: a last line is not missed */
    gchar *text = proc_output(p);
    gboolean found = strstr(text, needle) != NULL;

    g_free(text);
    if (found || !alive || g_get_monotonic_time() >= deadline)
      return found;
    g_usleep(20000);
  }
}

/* The last lines of the process's output, indented, when a check failed. */
static void
proc_show(const Proc *p, guint lines)
{
  gchar *text = proc_output(p);
  gchar **all = g_strsplit(text, "\n", -1);
  guint n = g_strv_length(all);

  printf("    --- %s (last %u lines)\n", p->log, lines);
  for (guint i = n > lines + 1 ? n - lines - 1 : 0; i < n; i++)
    if (all[i][0])
      printf("    | %s\n", all[i]);
  g_strfreev(all);
  g_free(text);
}

static void
proc_free(Proc *p)
{
  if (p->alive)
    proc_wait(p, 0.1);
  if (p->pid)
    g_spawn_close_pid(p->pid);
  g_free(p->log);
  memset(p, 0, sizeof *p);
}

static gchar *
example(const char *file)
{
  return g_build_filename(src_root, "examples", file, NULL);
}

/* The stand-in producer: N live frames of WxH RGBA at 30 fps as NAME. */
static gboolean
producer_start(Proc *p, const char *log, const char *name, guint w, guint h, guint n)
{
  gchar *num = g_strdup_printf("num-buffers=%u", n);
  gchar *caps = g_strdup_printf("video/x-raw,format=RGBA,width=%u,height=%u,framerate=30/1", w, h);
  gchar *ipc = g_strdup_printf("ipc-name=%s", name);
  const char *argv[] = { "gst-launch-1.0", "videotestsrc", "is-live=true", num, "pattern=ball",
                         "!", caps, "!", "cudaupload", "!", "cudalinksink", ipc, NULL };
  gboolean ok = proc_start(p, log, argv, NULL);

  g_free(num);
  g_free(caps);
  g_free(ipc);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* reading what came out                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  GstElement *pipe;
  GMutex lock;
  guint frames;
  gint width, height;
  gchar format[32];
  gboolean done;
  gchar error[512];
  guint64 missed;
  /* numpy_pattern: frames of examples/appsrc-numpy.py, checked pixel by pixel */
  gboolean numpy_pattern;
  guint pattern_good, pattern_backwards;
  gint64 first_k, last_k;
} Reader;

/* appsrc-numpy.py's frame k: R = (x + 4k) % 256, G = y * 255 / (h - 1),
 * B = 128, A = 255, and k (mod 65536) in pixel (0, 0)'s R and G. Returns k,
 * or -1 when a pixel differs (or the frame is not RGBA in system memory). */
static gint64
numpy_pattern_frame(GstSample *s)
{
  GstVideoInfo info;
  GstVideoFrame f;
  gint64 k = -1;

  if (!gst_video_info_from_caps(&info, gst_sample_get_caps(s)) ||
      GST_VIDEO_INFO_FORMAT(&info) != GST_VIDEO_FORMAT_RGBA ||
      !gst_video_frame_map(&f, &info, gst_sample_get_buffer(s), GST_MAP_READ))
    return -1;
  const guint8 *base = GST_VIDEO_FRAME_PLANE_DATA(&f, 0);
  gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0);
  gint w = GST_VIDEO_INFO_WIDTH(&info), h = GST_VIDEO_INFO_HEIGHT(&info);

  k = base[0] | base[1] << 8;
  for (gint y = 0; y < h && k >= 0; y++) {
    const guint8 *row = base + (gsize)y * stride;
    guint8 g = (guint8)(y * 255 / (h > 1 ? h - 1 : 1));
    for (gint x = 0; x < w; x++) {
      const guint8 *px = row + 4 * x;
      gboolean first = x == 0 && y == 0;
      if ((!first && (px[0] != (x + 4 * k) % 256 || px[1] != g)) || px[2] != 128 ||
          px[3] != 255) {
        k = -1;
        break;
      }
    }
  }
  gst_video_frame_unmap(&f);
  return k;
}

static GstFlowReturn
reader_sample(GstAppSink *sink, gpointer data)
{
  Reader *r = data;
  GstSample *s = gst_app_sink_pull_sample(sink);

  if (!s)
    return GST_FLOW_EOS;
  g_mutex_lock(&r->lock);
  if (r->frames++ == 0) {
    const GstStructure *st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
    const gchar *f = gst_structure_get_string(st, "format");
    gst_structure_get_int(st, "width", &r->width);
    gst_structure_get_int(st, "height", &r->height);
    g_strlcpy(r->format, f ? f : "?", sizeof r->format);
  }
  if (r->numpy_pattern) {
    gint64 k = numpy_pattern_frame(s);
    if (k >= 0) {
      if (r->pattern_good++ == 0)
        r->first_k = k;
      else if (k <= r->last_k)
        r->pattern_backwards++;
      r->last_k = k;
    }
  }
  g_mutex_unlock(&r->lock);
  gst_sample_unref(s);
  return GST_FLOW_OK;
}

/* desc: a pipeline, usually ending in "appsink name=sink sync=false";
 * numpy_pattern: check appsrc-numpy.py's pattern in every frame */
static gboolean
reader_start_checked(Reader *r, const gchar *desc, gboolean numpy_pattern)
{
  GstAppSinkCallbacks cb = { 0 };
  GError *err = NULL;
  GstElement *sink;

  memset(r, 0, sizeof *r);
  r->numpy_pattern = numpy_pattern;
  r->first_k = r->last_k = -1;
  g_mutex_init(&r->lock);
  r->pipe = gst_parse_launch(desc, &err);
  if (!r->pipe || err) {
    g_snprintf(r->error, sizeof r->error, "cannot build '%s': %s", desc,
               err ? err->message : "?");
    g_clear_error(&err);
    return FALSE;
  }
  sink = gst_bin_get_by_name(GST_BIN(r->pipe), "sink");
  if (sink) { /* none: a pipeline that only has to reach its EOS */
    cb.new_sample = reader_sample;
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cb, r, NULL);
    gst_object_unref(sink);
  }
  gst_element_set_state(r->pipe, GST_STATE_PLAYING);
  return TRUE;
}

static gboolean
reader_start(Reader *r, const gchar *desc)
{
  return reader_start_checked(r, desc, FALSE);
}

/* Until EOS or an error, at most timeout_s. */
static void
reader_wait(Reader *r, double timeout_s)
{
  GstBus *bus;
  GstMessage *m;

  if (!r->pipe || r->done)
    return;
  bus = gst_element_get_bus(r->pipe);
  m = gst_bus_timed_pop_filtered(bus, (GstClockTime)(timeout_s * GST_SECOND),
                                 GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  if (!m) {
    g_snprintf(r->error, sizeof r->error, "no EOS within %.0f s", timeout_s);
  } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(m, &err, &dbg);
    g_snprintf(r->error, sizeof r->error, "%s (%s)", err->message, dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
  }
  if (m)
    gst_message_unref(m);
  gst_object_unref(bus);
  r->done = TRUE;
}

static void
reader_stop(Reader *r)
{
  if (r->pipe) {
    GstElement *src = gst_bin_get_by_name(GST_BIN(r->pipe), "src");
    if (src) {
      GstStructure *st = NULL;
      g_object_get(src, "stats", &st, NULL);
      if (st) {
        gst_structure_get_uint64(st, "missed", &r->missed);
        gst_structure_free(st);
      }
      gst_object_unref(src);
    }
    gst_element_set_state(r->pipe, GST_STATE_NULL);
    gst_object_unref(r->pipe);
    r->pipe = NULL;
  }
  g_mutex_clear(&r->lock);
}

/* A cudalinksrc of this process on segment name (CUDA memory, counted). */
static gboolean
segment_reader_start(Reader *r, const char *name)
{
  gchar *desc = g_strdup_printf("cudalinksrc name=src ipc-name=%s timeout=30000 "
                                "on-producer-loss=eos ! appsink name=sink sync=false", name);
  gboolean ok = reader_start(r, desc);
  g_free(desc);
  return ok;
}

/* Decodes a media file: frames, size, error. */
static void
decode_file(Reader *r, const char *path)
{
  gchar *desc = g_strdup_printf("filesrc location=\"%s\" ! qtdemux ! decodebin ! "
                                "appsink name=sink sync=false", path);
  if (reader_start(r, desc))
    reader_wait(r, 120);
  g_free(desc);
}

/* lo <= frames <= hi, width x height, no error; prints the numbers */
static void
check_frames(const char *what, Reader *r, guint lo, guint hi, gint w, gint h)
{
  printf("    %-34s %4u frames (want %u..%u), %dx%d %s (want %dx%d), missed %" G_GUINT64_FORMAT
         "%s%s\n",
         what, r->frames, lo, hi, r->width, r->height, r->format, w, h, r->missed,
         r->error[0] ? ", ERROR: " : "", r->error);
  CHECK(!r->error[0]);
  CHECK(r->frames >= lo && r->frames <= hi);
  CHECK_EQ_INT(r->width, w);
  CHECK_EQ_INT(r->height, h);
}

/* A copy of the first line of text that starts with prefix and holds
 * needle, or NULL. */
static gchar *
line_with(const char *text, const char *prefix, const char *needle)
{
  gchar **lines = g_strsplit(text ? text : "", "\n", -1);
  gchar *found = NULL;

  for (guint i = 0; lines[i] && !found; i++)
    if (g_str_has_prefix(lines[i], prefix) && strstr(lines[i], needle))
      found = g_strdup(lines[i]);
  g_strfreev(lines);
  return found;
}

/* The first integer after needle in text, or -1. */
static long
number_after(const char *text, const char *needle)
{
  const char *p = text ? strstr(text, needle) : NULL;
  return p ? strtol(p + strlen(needle), NULL, 10) : -1;
}

/* ------------------------------------------------------------------------ */
/* the tests                                                                */
/* ------------------------------------------------------------------------ */

#define MAIN_FRAMES 300 /* run-main.sh: 10 s at 30 fps */
#define N 150           /* the recipes: 5 s at 30 fps */

/* README's first command, as the GPU machine runs it (no apt, no meson):
 * its own report, and main.mp4 decoded here. */
static void
test_run_main(void)
{
  gchar *script = example("run-main.sh");
  gchar *dir = g_build_filename(out_dir, "run-main", NULL);
  gchar *env_dir = g_strdup_printf("RUN_MAIN_DIR=%s", dir);
  gchar *env_build = g_strdup_printf("BUILDDIR=%s", build_root);
  gchar *mp4 = g_build_filename(dir, "main.mp4", NULL);
  const char *argv[] = { "bash", script, "--no-build", "10", NULL };
  const char *env[] = { env_dir, env_build, NULL };
  Proc p;
  Reader r;
  gchar *text;
  long pushed, reported;
  int rc;

  REQUIRE(proc_start(&p, "run-main.log", argv, env));
  rc = proc_wait(&p, 120);
  text = proc_output(&p);
  pushed = number_after(text, "cudalinksrc pushed ");
  reported = number_after(text, "main.mp4: ");
  decode_file(&r, mp4);
  printf("    run-main.sh rc %d; it reported cudalinksrc pushed %ld of %d, main.mp4 %ld frames\n",
         rc, pushed, MAIN_FRAMES, reported);
  check_frames("main.mp4 decoded here", &r, MAIN_FRAMES * 9 / 10, MAIN_FRAMES, 1280, 720);
  CHECK_EQ_INT(rc, 0);
  CHECK(pushed >= MAIN_FRAMES * 9 / 10 && pushed <= MAIN_FRAMES);
  /* every pushed frame is encoded; mp4mux may drop the last one */
  CHECK(r.frames + 1 >= (guint)pushed && r.frames <= (guint)pushed);
  CHECK_EQ_INT(reported, r.frames);
  CHECK_STR_CONTAINS(text, "run-main: ok");
  if (tu_failures_in_test)
    proc_show(&p, 25);
  reader_stop(&r);
  proc_free(&p);
  g_free(text);
  g_free(mp4);
  g_free(env_build);
  g_free(env_dir);
  g_free(dir);
  g_free(script);
}

/* examples/record.sh NAME OUT.mp4 CODEC on-producer-loss=eos: the recording
 * ends with the producer; the file decodes to the frames published. */
static void
record(const char *codec)
{
  gchar *name = unique_name(codec);
  gchar *script = example("record.sh");
  gchar *file = g_strdup_printf("record-%s.mp4", codec);
  gchar *mp4 = g_build_filename(out_dir, file, NULL);
  gchar *log = g_strdup_printf("record-%s.log", codec);
  gchar *plog = g_strdup_printf("record-%s-producer.log", codec);
  const char *argv[] = { "bash", script, name, mp4, codec, "on-producer-loss=eos", "timeout=20000",
                         NULL };
  Proc rec, prod;
  Reader r;
  int rc_rec, rc_prod;

  REQUIRE(proc_start(&rec, log, argv, NULL));
  REQUIRE(producer_start(&prod, plog, name, 1280, 720, N));
  rc_prod = proc_wait(&prod, 60);
  rc_rec = proc_wait(&rec, 60);
  decode_file(&r, mp4);
  printf("    record.sh %s: rc %d, producer rc %d\n", codec, rc_rec, rc_prod);
  check_frames(file, &r, N * 9 / 10, N, 1280, 720);
  CHECK_EQ_INT(rc_prod, 0);
  CHECK_EQ_INT(rc_rec, 0);
  if (tu_failures_in_test) {
    proc_show(&rec, 15);
    proc_show(&prod, 5);
  }
  reader_stop(&r);
  proc_free(&rec);
  proc_free(&prod);
  g_free(plog);
  g_free(log);
  g_free(mp4);
  g_free(file);
  g_free(script);
  g_free(name);
}

static void test_record_h264(void) { record("h264"); }
static void test_record_h265(void) { record("h265"); }

/* A sender recipe reading the producer, a receiver recipe publishing what
 * it gets as another segment, read here. The receiver and the sender start
 * first (for SRT the sender, the listener, before the receiver), the
 * producer 2 s later: the stream then starts with the producer's first
 * frame. Plain RTP and SRT have no end of stream for the receiver: it gets
 * Ctrl-C after the sender has ended. */
static void
network(const char *proto, guint min_frames)
{
  gchar *name = unique_name(proto), *out = unique_name("rx");
  gchar *send = g_strdup_printf("%s-send.sh", proto), *recv = g_strdup_printf("%s-receive.sh", proto);
  gchar *send_path = example(send), *recv_path = example(recv);
  gchar *port = g_strdup_printf("%d", 20000 + (int)getpid() % 20000 + (proto[0] == 's'));
  gchar *slog = g_strdup_printf("%s-send.log", proto), *rlog = g_strdup_printf("%s-receive.log", proto);
  gchar *plog = g_strdup_printf("%s-producer.log", proto);
  gboolean rtp = strcmp(proto, "rtp") == 0;
  const char *rx_rtp[] = { "bash", recv_path, out, port, NULL };
  const char *rx_srt[] = { "bash", recv_path, out, "127.0.0.1", port, NULL };
  const char *tx_rtp[] = { "bash", send_path, name, "127.0.0.1", port, "on-producer-loss=eos",
                           "timeout=20000", NULL };
  const char *tx_srt[] = { "bash", send_path, name, port, "on-producer-loss=eos", "timeout=20000",
                           NULL };
  Proc rx, tx, prod;
  Reader r;
  int rc_prod, rc_tx, rc_rx;

  REQUIRE(segment_reader_start(&r, out));
  if (rtp) {
    REQUIRE(proc_start(&rx, rlog, rx_rtp, NULL));
    REQUIRE(proc_start(&tx, slog, tx_rtp, NULL));
  } else {
    /* the SRT listener first: a caller that finds nobody listening tries
     * again only after its 3 s connection timeout */
    REQUIRE(proc_start(&tx, slog, tx_srt, NULL));
    g_usleep(G_USEC_PER_SEC / 2);
    REQUIRE(proc_start(&rx, rlog, rx_srt, NULL));
  }
  g_usleep(2 * G_USEC_PER_SEC);
  REQUIRE(producer_start(&prod, plog, name, 640, 360, N));
  rc_prod = proc_wait(&prod, 60);
  rc_tx = proc_wait(&tx, 30);
  g_usleep(2 * G_USEC_PER_SEC); /* the last frames through the jitter buffer / SRT latency */
  rc_rx = proc_interrupt(&rx, 20);
  reader_wait(&r, 20);
  printf("    %s -> %s: producer rc %d, sender rc %d, receiver rc %d (Ctrl-C)\n", send, recv,
         rc_prod, rc_tx, rc_rx);
  check_frames("re-published by the receiver", &r, min_frames, N, 640, 360);
  CHECK_EQ_INT(rc_prod, 0);
  CHECK_EQ_INT(rc_tx, 0);
  CHECK(rc_rx >= 0); /* it ended on the interrupt, not killed */
  if (tu_failures_in_test) {
    proc_show(&tx, 10);
    proc_show(&rx, 15);
  }
  reader_stop(&r);
  proc_free(&rx);
  proc_free(&tx);
  proc_free(&prod);
  g_free(plog);
  g_free(rlog);
  g_free(slog);
  g_free(port);
  g_free(recv_path);
  g_free(send_path);
  g_free(recv);
  g_free(send);
  g_free(out);
  g_free(name);
}

static void test_rtp(void) { network("rtp", N * 8 / 10); }
static void test_srt(void) { network("srt", N * 8 / 10); }

/* examples/publish-file.sh NAME FILE: an H.264 MP4 made here, decoded
 * (NVDEC or a CPU decoder), published; read here at the file's pace. */
static void
test_publish_file(void)
{
  gchar *name = unique_name("file");
  gchar *script = example("publish-file.sh");
  gchar *in = g_build_filename(out_dir, "publish-file-in.mp4", NULL);
  gchar *make = g_strdup_printf("videotestsrc num-buffers=%u pattern=ball ! "
                                "video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! "
                                "x264enc ! h264parse ! mp4mux ! filesink location=\"%s\"", N, in);
  const char *argv[] = { "bash", script, name, in, NULL };
  Reader mk, r;
  Proc p;
  int rc;

  if (reader_start(&mk, make))
    reader_wait(&mk, 60);
  reader_stop(&mk);
  if (mk.error[0])
    printf("    making %s: %s\n", in, mk.error);
  REQUIRE(!mk.error[0]);

  REQUIRE(segment_reader_start(&r, name));
  REQUIRE(proc_start(&p, "publish-file.log", argv, NULL));
  rc = proc_wait(&p, 60);
  reader_wait(&r, 20);
  printf("    publish-file.sh rc %d\n", rc);
  check_frames("published from the file", &r, N * 9 / 10, N, 640, 360);
  CHECK_EQ_INT(rc, 0);
  CHECK_STR_CONTAINS(r.format, "RGBA");
  if (tu_failures_in_test)
    proc_show(&p, 15);
  reader_stop(&r);
  proc_free(&p);
  g_free(make);
  g_free(in);
  g_free(script);
  g_free(name);
}

/* examples/republish.sh IN OUT 640 360: 1280x720 in, scaled on the GPU,
 * re-published, read here by another cudalinksrc. */
static void
test_republish(void)
{
  gchar *in = unique_name("in"), *out = unique_name("out");
  gchar *script = example("republish.sh");
  const char *argv[] = { "bash", script, in, out, "640", "360", NULL };
  Proc p, prod;
  Reader r;
  int rc_prod, rc;

  REQUIRE(segment_reader_start(&r, out));
  REQUIRE(proc_start(&p, "republish.log", argv, NULL));
  REQUIRE(producer_start(&prod, "republish-producer.log", in, 1280, 720, N));
  rc_prod = proc_wait(&prod, 60);
  g_usleep(G_USEC_PER_SEC);
  rc = proc_interrupt(&p, 20); /* it waits for IN to come back; Ctrl-C ends it */
  reader_wait(&r, 20);
  printf("    republish.sh: producer rc %d, republish rc %d (Ctrl-C)\n", rc_prod, rc);
  check_frames("re-published, read back", &r, N * 9 / 10, N, 640, 360);
  CHECK_EQ_INT(rc_prod, 0);
  CHECK(rc >= 0);
  if (tu_failures_in_test)
    proc_show(&p, 15);
  reader_stop(&r);
  proc_free(&p);
  proc_free(&prod);
  g_free(script);
  g_free(out);
  g_free(in);
}

/* build/examples/cudalink-appsink NAME: one line per frame with a device
 * pointer, its pitch and the first pixel read back through it. */
static void
test_c_appsink(void)
{
  gchar *name = unique_name("app");
  gchar *app = g_build_filename(build_root, "examples", "cudalink-appsink", NULL);
  const char *argv[] = { app, name, NULL };
  Proc p, prod;
  gchar *text, **lines;
  guint good = 0, total = 0;
  long summary;
  int rc_prod, rc;

  REQUIRE(proc_start(&p, "cudalink-appsink.log", argv, NULL));
  REQUIRE(producer_start(&prod, "cudalink-appsink-producer.log", name, 1280, 720, N));
  rc_prod = proc_wait(&prod, 60);
  rc = proc_wait(&p, 30);
  text = proc_output(&p);
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    unsigned long long ptr = 0;
    unsigned long pitch = 0;
    char *dev = strstr(lines[i], " device 0x"), *pit = strstr(lines[i], " pitch ");
    if (!g_str_has_prefix(lines[i], "frame "))
      continue;
    total++;
    if (dev && pit) {
      ptr = strtoull(dev + 8, NULL, 16);
      pitch = strtoul(pit + 7, NULL, 10);
    }
    /* 1280x720 RGBA: a device address, a pitch of at least a row, and the
     * first pixel read back (videotestsrc's ball pattern: opaque alpha) */
    if (strstr(lines[i], "1280x720 RGBA") && ptr && pitch >= 1280 * 4 &&
        strstr(lines[i], "first pixel") && g_str_has_suffix(lines[i], ",255"))
      good++;
  }
  summary = number_after(text, "cudalink-appsink: ");
  printf("    cudalink-appsink rc %d: %u frame lines, %u with a device pointer, pitch and pixel; "
         "it counted %ld\n", rc, total, good, summary);
  CHECK_EQ_INT(rc_prod, 0);
  CHECK_EQ_INT(rc, 0);
  CHECK(good >= N * 9 / 10 && good <= N);
  CHECK_EQ_INT(good, total);
  CHECK_EQ_INT(summary, total);
  if (tu_failures_in_test)
    proc_show(&p, 10);
  g_strfreev(lines);
  g_free(text);
  proc_free(&p);
  proc_free(&prod);
  g_free(app);
  g_free(name);
}

/* examples/appsink-numpy.py NAME: the stand-in producer's 1280x720 RGBA
 * frames as numpy arrays. It prints a line every 30 frames (size, format,
 * dtype and shape, channel means) and a summary; videotestsrc's ball is
 * white on black, opaque: R, G and B means equal and between 0 and 255,
 * alpha 255. The producer starts once the script says it is reading (its
 * interpreter, numpy and GStreamer take a while to load). */
static void
test_py_appsink(void)
{
  gchar *name = unique_name("np-in");
  gchar *script = example("appsink-numpy.py");
  const char *argv[] = { python, script, name, "--timeout", "30000", NULL };
  const char *shape = "1280x720 RGBA, uint8[720, 1280, 4], channel means ";
  Proc p, prod;
  gchar *text, **lines, *summary;
  guint frames = 0, src_frames = 0, missed = 0, lines_total = 0, lines_good = 0;
  gboolean ready;
  int rc_prod = -1, rc;

  REQUIRE(proc_start(&p, "appsink-numpy.log", argv, NULL));
  ready = proc_wait_output(&p, "appsink-numpy: reading ", 60);
  if (ready)
    REQUIRE(producer_start(&prod, "appsink-numpy-producer.log", name, 1280, 720, N));
  else
    memset(&prod, 0, sizeof prod);
  if (ready)
    rc_prod = proc_wait(&prod, 60);
  rc = proc_wait(&p, 30);
  text = proc_output(&p);
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    const char *m = strstr(lines[i], shape);
    double c[4];
    if (!g_str_has_prefix(lines[i], "frame "))
      continue;
    lines_total++;
    if (m && sscanf(m + strlen(shape), "%lf, %lf, %lf, %lf", &c[0], &c[1], &c[2], &c[3]) == 4 &&
        c[3] == 255.0 && fabs(c[0] - c[1]) < 0.01 && fabs(c[1] - c[2]) < 0.01 && c[0] > 0.0 &&
        c[0] < 255.0)
      lines_good++;
  }
  summary = line_with(text, "appsink-numpy: ", " frames of ");
  if (summary)
    sscanf(summary, "appsink-numpy: %u frames of %*[^;]; cudalinksrc: frames %u, missed %u",
           &frames, &src_frames, &missed);
  printf("    appsink-numpy.py rc %d (%s), producer rc %d: %u frames, cudalinksrc %u, missed %u; "
         "%u of %u frame lines with 1280x720 RGBA uint8[720, 1280, 4] and the ball's means\n",
         rc, python, rc_prod, frames, src_frames, missed, lines_good, lines_total);
  CHECK(ready);
  CHECK_EQ_INT(rc_prod, 0);
  CHECK_EQ_INT(rc, 0);
  CHECK(summary != NULL);
  CHECK_STR_CONTAINS(summary, " frames of 1280x720 RGBA uint8[720, 1280, 4]; ");
  CHECK(frames >= N * 9 / 10 && frames <= N);
  CHECK_EQ_INT(src_frames, frames);
  CHECK_EQ_INT(lines_total, (frames + 29) / 30); /* frames 0, 30, 60, ... */
  CHECK_EQ_INT(lines_good, lines_total);
  if (tu_failures_in_test) {
    proc_show(&p, 10);
    if (ready)
      proc_show(&prod, 5);
  }
  g_free(summary);
  g_strfreev(lines);
  g_free(text);
  proc_free(&p);
  if (ready)
    proc_free(&prod);
  g_free(script);
  g_free(name);
}

/* examples/appsrc-numpy.py NAME --frames N --size 640x360: numpy frames
 * through appsrc into cudalinksink, read back here by a cudalinksrc that
 * downloads them (video/x-raw); every pixel of every frame is checked
 * against the script's pattern, and the frame numbers in it only go up. */
static void
test_py_appsrc(void)
{
  gchar *name = unique_name("np-out");
  gchar *script = example("appsrc-numpy.py");
  gchar *n = g_strdup_printf("%u", N);
  gchar *desc = g_strdup_printf("cudalinksrc name=src ipc-name=%s timeout=30000 "
                                "on-producer-loss=eos ! video/x-raw ! appsink name=sink "
                                "sync=false", name);
  const char *argv[] = { python, script, name, "--frames", n, "--size", "640x360", NULL };
  Proc p;
  Reader r;
  gchar *text, *summary;
  guint pushed = 0, published = 0;
  gint w = 0, h = 0;
  int rc;

  REQUIRE(reader_start_checked(&r, desc, TRUE));
  REQUIRE(proc_start(&p, "appsrc-numpy.log", argv, NULL));
  rc = proc_wait(&p, 90);
  reader_wait(&r, 20);
  text = proc_output(&p);
  summary = line_with(text, "appsrc-numpy: ", " pushed; ");
  if (summary)
    sscanf(summary, "appsrc-numpy: %u frames of %dx%d pushed; cudalinksink published %u",
           &pushed, &w, &h, &published);
  printf("    appsrc-numpy.py rc %d (%s): pushed %u of %dx%d, cudalinksink published %u\n", rc,
         python, pushed, w, h, published);
  check_frames("read back by cudalinksrc", &r, N * 9 / 10, N, 640, 360);
  printf("    %-34s %4u frames with the pattern (frames %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT
         "), %u out of order\n", "pixels checked", r.pattern_good, r.first_k, r.last_k,
         r.pattern_backwards);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(pushed, N);
  CHECK_EQ_INT(published, N);
  CHECK_STR_CONTAINS(r.format, "RGBA");
  CHECK_EQ_INT(r.pattern_good, r.frames);
  CHECK_EQ_INT(r.pattern_backwards, 0);
  CHECK(r.last_k < N);
  if (tu_failures_in_test)
    proc_show(&p, 10);
  reader_stop(&r);
  g_free(summary);
  g_free(text);
  proc_free(&p);
  g_free(desc);
  g_free(n);
  g_free(script);
  g_free(name);
}

#define RUN(fn) RUN_WANTED(3, fn)

int
main(int argc, char **argv)
{
  char why[256] = "";
  const char *elements[] = { "cudalinksink", "cudalinksrc", "cudaupload", "cudadownload",
                             "videotestsrc", "appsink", "appsrc", "x264enc",
                             "x265enc", "mp4mux", "qtdemux", "decodebin", "h264parse",
                             "h265parse", "rtph264pay", "rtph264depay", "rtpjitterbuffer",
                             "udpsrc", "udpsink", "srtsink", "srtsrc", "mpegtsmux", "tsdemux" };
  const char *decoders[][2] = { { "H.264", "nvh264dec openh264dec avdec_h264" },
                                { "H.265", "nvh265dec libde265dec avdec_h265" } };

  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  gst_init(NULL, NULL);
  if (argc < 3) {
    fprintf(stderr, "usage: %s SOURCE_ROOT BUILD_ROOT [test-name ...]\n", argv[0]);
    return 2;
  }
  src_root = argv[1];
  build_root = argv[2];

  if (cudalink_cuda_load(why, sizeof why) != CUDALINK_OK) {
    printf("FAIL: no CUDA driver (%s): this suite needs a GPU\n", why);
    return 1;
  }
  for (guint i = 0; i < G_N_ELEMENTS(elements); i++) {
    GstElementFactory *f = gst_element_factory_find(elements[i]);
    if (!f) {
      printf("FAIL: %s is not registered (GST_PLUGIN_PATH_1_0=%s; tests/gpu/bundle.sh "
             "carries the plugins)\n", elements[i], g_getenv("GST_PLUGIN_PATH_1_0"));
      return 1;
    }
    gst_object_unref(f);
  }
  for (guint i = 0; i < G_N_ELEMENTS(decoders); i++) {
    gchar **names = g_strsplit(decoders[i][1], " ", -1);
    GString *have = g_string_new(NULL);
    for (guint j = 0; names[j]; j++) {
      GstElementFactory *f = gst_element_factory_find(names[j]);
      if (f) {
        g_string_append_printf(have, " %s", names[j]);
        gst_object_unref(f);
      }
    }
    printf("    %s decoders here:%s\n", decoders[i][0], have->len ? have->str : " NONE");
    if (!have->len) {
      printf("FAIL: no %s decoder (%s)\n", decoders[i][0], decoders[i][1]);
      return 1;
    }
    g_string_free(have, TRUE);
    g_strfreev(names);
  }
  if (g_getenv("CUDALINK_RECIPES_DIR")) {
    out_dir = g_strdup(g_getenv("CUDALINK_RECIPES_DIR"));
    g_mkdir_with_parents(out_dir, 0755);
  } else {
    out_dir = g_dir_make_tmp("cudalink-recipes-XXXXXX", NULL);
  }
  /* Debian's python3 is where python3-gi lives, not a pyenv/venv one */
  python = g_getenv("CUDALINK_PYTHON") ? g_getenv("CUDALINK_PYTHON") : "/usr/bin/python3";
  printf("    logs and files: %s\n", out_dir);
  printf("    Python recipes run with: %s (CUDALINK_PYTHON)\n", python);

  RUN(test_run_main);
  RUN(test_record_h264);
  RUN(test_record_h265);
  RUN(test_rtp);
  RUN(test_srt);
  RUN(test_publish_file);
  RUN(test_republish);
  RUN(test_c_appsink);
  RUN(test_py_appsink);
  RUN(test_py_appsrc);

  return TEST_SUMMARY();
}
