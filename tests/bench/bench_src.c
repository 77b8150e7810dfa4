/* cudalinksrc benchmark (a program, not a test): prints a markdown table.
 *
 *   bench_src [PATH/TO/src_producer] [seconds-per-run] [latency|rate|paced|cpu ...]
 *
 * (default producer: ../gpu/src_producer next to this program). Needs a GPU,
 * the cudalink plugin on GST_PLUGIN_PATH_1_0, and the coreelements and app
 * plugins.
 *
 * 1. Latency, producer publish -> cudalinksrc pushes the frame (the
 *    element's latency-p50/p99-us stats: producer timestamp to push, copy
 *    included) and -> the element woke up with the frame's index
 *    (wake-p50/p99-us), 64x64 RGBA at 200 fps, with our producer (futex wake)
 *    and with a foreign producer that wakes nobody (src_producer --foreign,
 *    like TouchDesigner and Python), at poll-interval 1000 and 200 us.
 * 2. Sustained rate with an unthrottled producer, 1920x1080 RGBA8, CUDA and
 *    system-memory output: frames pushed per second, missed, torn. The same
 *    with cudalinksink as the producer (this program run as --gst-producer
 *    NAME in a child process: videotestsrc num-buffers=1 ! cudaupload !
 *    imagefreeze ! cudalinksink).
 * 3. cudalinksink (this program run as --gst-producer NAME FPS in a child
 *    process: one uploaded 720p frame ! imagefreeze is-live=true !
 *    cudalinksink sync=true) at 60 and 200 fps: woken and pushed latency and
 *    CPU of cudalinksrc, with and without wake-spin.
 * 4. CPU use of the process running cudalinksrc ! fakesink on a 60 fps
 *    producer (getrusage user + system over wall time).
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gst/gst.h>

#include "benchutil.h"
#include "cudalink.h"
#include "gpu_gst_util.h"

#define MEMORY_CUDA_TAIL "video/x-raw(memory:CUDAMemory) ! fakesink sync=false"

static const char *producer_path;

/* a duration of the src's stats (gdouble us), rounded for the tables */
static guint64
stat_us_rounded(const GstStructure *st, const char *field)
{
  return (guint64)(stat_us(st, field) + 0.5);
}
static double run_s = 3.0;
static guint name_counter;

typedef struct {
  GPid pid;
  int out_fd;
  gboolean alive;
} Producer;

static gboolean
wait_line(Producer *p, const char *want, int timeout_ms)
{
  GString *acc = g_string_new(NULL);
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  gboolean found = FALSE;

  while (!found && g_get_monotonic_time() < deadline) {
    struct pollfd pfd = { p->out_fd, POLLIN, 0 };
    if (poll(&pfd, 1, 100) > 0) {
      char buf[256];
      ssize_t n = read(p->out_fd, buf, sizeof buf);
      if (n <= 0)
        break;
      g_string_append_len(acc, buf, n);
      found = strstr(acc->str, want) != NULL;
    }
  }
  g_string_free(acc, TRUE);
  return found;
}

static gboolean
producer_start_cmd(Producer *p, const char *prog, const char *name, const char *fmt_and_opts)
{
  gchar *line = g_strdup_printf("%s %s %s", prog, name, fmt_and_opts);
  gchar **argv = NULL;
  GError *err = NULL;
  gboolean ok;

  memset(p, 0, sizeof *p);
  ok = g_shell_parse_argv(line, NULL, &argv, &err) &&
       g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &p->pid,
                                NULL, &p->out_fd, NULL, &err);
  if (!ok) {
    fprintf(stderr, "cannot start %s: %s\n", line, err ? err->message : "?");
    g_clear_error(&err);
  } else {
    p->alive = TRUE;
    ok = wait_line(p, "READY", 15000);
    if (!ok)
      fprintf(stderr, "producer not ready: %s\n", line);
  }
  g_strfreev(argv);
  g_free(line);
  return ok;
}

static gboolean
producer_start(Producer *p, const char *name, const char *fmt_and_opts)
{
  return producer_start_cmd(p, producer_path, name, fmt_and_opts);
}

static volatile sig_atomic_t gst_producer_stop;

static void
on_sigterm(int sig)
{
  (void)sig;
  gst_producer_stop = 1;
}

/* --gst-producer NAME: an unthrottled cudalinksink, 1920x1080 RGBA (one
 * frame uploaded once and pushed over and over by imagefreeze, so that
 * neither drawing nor uploading limits the rate), until SIGTERM; prints
 * READY once playing. */
static int
gst_producer_main(const char *name, int fps)
{
  /* fps 0: 1080p as fast as the sink takes it; else 720p on the clock */
  gchar *desc = fps > 0 ?
      g_strdup_printf("videotestsrc num-buffers=1 ! "
                      "video/x-raw,format=RGBA,width=1280,height=720,framerate=%d/1 ! "
                      "cudaupload ! imagefreeze is-live=true ! "
                      "video/x-raw(memory:CUDAMemory),framerate=%d/1 ! "
                      "cudalinksink ipc-name=%s sync=true",
                      fps, fps, name) :
      g_strdup_printf("videotestsrc num-buffers=1 ! "
                      "video/x-raw,format=RGBA,width=1920,height=1080,framerate=30/1 ! "
                      "cudaupload ! imagefreeze is-live=false ! "
                      "cudalinksink ipc-name=%s sync=false",
                      name);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch(desc, &err);
  GstBus *bus;
  int ret = 0;

  if (!pipe) {
    fprintf(stderr, "cannot build '%s': %s\n", desc, err ? err->message : "?");
    return 1;
  }
  g_clear_error(&err);
  signal(SIGTERM, on_sigterm);
  bus = gst_element_get_bus(pipe);
  if (gst_element_set_state(pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE ||
      gst_element_get_state(pipe, NULL, NULL, 10 * GST_SECOND) != GST_STATE_CHANGE_SUCCESS) {
    fprintf(stderr, "'%s' does not start\n", desc);
    ret = 1;
  } else {
    printf("READY\n");
    fflush(stdout);
  }
  while (!ret && !gst_producer_stop) {
    GstMessage *m = gst_bus_timed_pop_filtered(bus, 50 * GST_MSECOND,
                                               GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
    if (m) {
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        gst_message_parse_error(m, &err, NULL);
        fprintf(stderr, "producer: %s\n", err->message);
        g_clear_error(&err);
      }
      gst_message_unref(m);
      ret = 1;
    }
  }
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipe);
  g_free(desc);
  return ret;
}

static void
producer_stop(Producer *p)
{
  int status;
  if (!p->alive)
    return;
  kill(p->pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      p->alive = FALSE;
      break;
    }
    g_usleep(10000);
  }
  if (p->alive) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
  }
  g_spawn_close_pid(p->pid);
  close(p->out_fd);
  p->alive = FALSE;
}

typedef struct {
  gboolean ok;
  double seconds;
  guint64 frames, missed, torn, p50, p99, wake50, wake99, paced;
  guint64 spin_us;
  guint64 sleeps;
  double cpu_pct;
  double thread_pct; /* the streaming thread's share of it */
  char error[512];
} Result;

/* The streaming thread's CPU clock at each buffer it pushes, read by a pad
 * probe: its share of the process's CPU use. */
typedef struct {
  GMutex lock;
  gboolean armed;
  double cpu0, cpu1, wall0, wall1;
} ThreadCpu;

static GstPadProbeReturn
on_buffer_cpu(GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  ThreadCpu *tc = user_data;
  double cpu = thread_cpu_us() / 1e6, now = g_get_monotonic_time() / 1e6;
  (void)pad;
  (void)info;
  g_mutex_lock(&tc->lock);
  if (tc->armed) {
    if (tc->wall0 == 0) {
      tc->cpu0 = cpu;
      tc->wall0 = now;
    }
    tc->cpu1 = cpu;
    tc->wall1 = now;
  }
  g_mutex_unlock(&tc->lock);
  return GST_PAD_PROBE_OK;
}

/* Runs "cudalinksrc name=src ipc-name=NAME SRC_OPTS ! TAIL" for @seconds
 * (or until @producer prints DONE when wait_done) and reads the stats. */
static void
run_pipeline(const char *name, const char *src_opts, const char *tail, double seconds,
             Result *res)
{
  gchar *desc = g_strdup_printf("cudalinksrc name=src ipc-name=%s timeout=10000 %s ! %s", name,
                                src_opts, tail);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch(desc, &err);
  GstStructure *st = NULL;
  GstElement *src;
  GstBus *bus;
  struct rusage r0, r1;
  gint64 t0, t1, end;
  ThreadCpu tc;
  GstPad *srcpad;

  memset(res, 0, sizeof *res);
  memset(&tc, 0, sizeof tc);
  g_mutex_init(&tc.lock);
  if (!pipe) {
    g_snprintf(res->error, sizeof res->error, "%s: %s", desc, err ? err->message : "?");
    g_clear_error(&err);
    g_free(desc);
    return;
  }
  g_clear_error(&err);
  bus = gst_element_get_bus(pipe);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  /* let it attach and negotiate before measuring */
  g_usleep(300 * 1000);
  src = gst_bin_get_by_name(GST_BIN(pipe), "src");
  srcpad = gst_element_get_static_pad(src, "src");
  gst_pad_add_probe(srcpad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer_cpu, &tc, NULL);
  g_object_get(src, "stats", &st, NULL);
  res->frames = 0;
  {
    guint64 f0 = 0, m0 = 0, t0s = 0, s0 = 0, u0 = 0, z0 = 0;
    gst_structure_get_uint64(st, "frames", &f0);
    gst_structure_get_uint64(st, "wake-spin-frames", &s0);
    u0 = stat_us_rounded(st, "wake-spin-us");
    gst_structure_get_uint64(st, "sleeps", &z0);
    gst_structure_get_uint64(st, "missed", &m0);
    gst_structure_get_uint64(st, "torn-discarded", &t0s);
    gst_structure_free(st);
    getrusage(RUSAGE_SELF, &r0);
    t0 = g_get_monotonic_time();
    g_mutex_lock(&tc.lock);
    tc.armed = TRUE;
    g_mutex_unlock(&tc.lock);
    end = t0 + (gint64)(seconds * 1e6);
    for (gint64 left; (left = end - g_get_monotonic_time()) > 0;) {
      /* one wake-up at the end, or at an error: polling here would count
       * this thread's wake-ups in the process CPU of the element */
      GstMessage *m =
          gst_bus_timed_pop_filtered(bus, (GstClockTime)left * GST_USECOND, GST_MESSAGE_ERROR);
      if (m) {
        GError *e = NULL;
        gst_message_parse_error(m, &e, NULL);
        g_snprintf(res->error, sizeof res->error, "%s", e->message);
        g_error_free(e);
        gst_message_unref(m);
        break;
      }
    }
    t1 = g_get_monotonic_time();
    getrusage(RUSAGE_SELF, &r1);
    g_mutex_lock(&tc.lock);
    tc.armed = FALSE;
    res->thread_pct = tc.wall1 > tc.wall0 ? 100.0 * (tc.cpu1 - tc.cpu0) / (tc.wall1 - tc.wall0) : 0;
    g_mutex_unlock(&tc.lock);
    g_object_get(src, "stats", &st, NULL);
    gst_structure_get_uint64(st, "frames", &res->frames);
    gst_structure_get_uint64(st, "missed", &res->missed);
    gst_structure_get_uint64(st, "torn-discarded", &res->torn);
    res->p50 = stat_us_rounded(st, "latency-p50-us");
    res->p99 = stat_us_rounded(st, "latency-p99-us");
    res->wake50 = stat_us_rounded(st, "wake-p50-us");
    res->wake99 = stat_us_rounded(st, "wake-p99-us");
    gst_structure_get_uint64(st, "wake-spin-frames", &res->paced);
    res->spin_us = stat_us_rounded(st, "wake-spin-us");
    gst_structure_get_uint64(st, "sleeps", &res->sleeps);
    gst_structure_free(st);
    res->frames -= f0;
    res->paced -= s0;
    res->spin_us -= u0;
    res->sleeps -= z0;
    res->missed -= m0;
    res->torn -= t0s;
  }
  res->seconds = (t1 - t0) / 1e6;
  res->cpu_pct = 100.0 *
                 ((r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                  (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                  ((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                   (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1e6) /
                 res->seconds;
  res->ok = !res->error[0] && res->frames > 0;
  if (!res->error[0] && res->frames == 0)
    g_snprintf(res->error, sizeof res->error, "no frames");
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(srcpad);
  gst_object_unref(src);
  g_mutex_clear(&tc.lock);
  gst_object_unref(bus);
  gst_object_unref(pipe);
  g_free(desc);
}

static double
spun_per_frame(const Result *r)
{
  return r->frames ? (double)r->spin_us / (double)r->frames : 0;
}

static void
row(const char *what, const char *cond, const char *value, const Result *r)
{
  printf("| %s | %s | %s | %s |\n", what, cond, r->ok ? value : "FAILED",
         r->ok ? "" : r->error);
}

/* Runs cudalinksrc (SRC_OPTS ! TAIL) for seconds against src_producer
 * started with PRODUCER_ARGS (format and options). */
static void
run_with_producer(const char *producer_args, const char *src_opts, const char *tail,
                  double seconds, Result *r)
{
  gchar *name = g_strdup_printf("clbench-src-%d-%u", (int)getpid(), name_counter++);
  Producer p;

  if (!producer_start(&p, name, producer_args)) {
    memset(r, 0, sizeof *r);
    g_snprintf(r->error, sizeof r->error, "producer did not start");
  } else {
    run_pipeline(name, src_opts, tail, seconds, r);
    producer_stop(&p);
  }
  g_free(name);
}

static void
bench_latency(const char *label, const char *prod_opts, const char *src_opts)
{
  gchar *opts = g_strdup_printf("64 64 4 uint8 --frames 0 --fps 200 %s", prod_opts);
  Result r;
  gchar *v;

  run_with_producer(opts, src_opts, "fakesink sync=false", run_s, &r);
  v = g_strdup_printf("push p50 %" G_GUINT64_FORMAT " us, p99 %" G_GUINT64_FORMAT
                      " us; woken p50 %" G_GUINT64_FORMAT " us, p99 %" G_GUINT64_FORMAT
                      " us (%" G_GUINT64_FORMAT " frames, %" G_GUINT64_FORMAT
                      " seen by the wake-spin)",
                      r.p50, r.p99, r.wake50, r.wake99, r.frames, r.paced);
  row("publish -> push latency", label, v, &r);
  g_free(v);
  g_free(opts);
}

/* a row of frames pushed per second, and what was missed or torn */
static void
rate_row(const char *what, const char *label, const Result *r)
{
  gchar *v = g_strdup_printf("%.0f fps pushed (missed %" G_GUINT64_FORMAT
                             ", torn-discarded %" G_GUINT64_FORMAT ")",
                             r->seconds > 0 ? r->frames / r->seconds : 0, r->missed, r->torn);
  row(what, label, v, r);
  g_free(v);
}

static void
bench_rate(const char *label, const char *tail)
{
  Result r;

  run_with_producer("1920 1080 4 uint8 --frames 0 --fps 0", "", tail, run_s, &r);
  rate_row("unthrottled producer, 1920x1080 RGBA8", label, &r);
}

/* Runs cudalinksrc (SRC_OPTS ! TAIL) for seconds against cudalinksink in
 * another process (this program as --gst-producer NAME FPS, FPS 0 =
 * unthrottled). */
static void
run_with_sink(int fps, const char *src_opts, const char *tail, double seconds, Result *r)
{
  gchar *name = g_strdup_printf("clbench-src-%d-%u", (int)getpid(), name_counter++);
  gchar *self = g_file_read_link("/proc/self/exe", NULL);
  gchar *args = g_strdup_printf("%s %d", name, fps);
  Producer p;

  if (!self || !producer_start_cmd(&p, self, "--gst-producer", args)) {
    memset(r, 0, sizeof *r);
    g_snprintf(r->error, sizeof r->error, "cudalinksink producer did not start");
  } else {
    run_pipeline(name, src_opts, tail, seconds, r);
    producer_stop(&p);
  }
  g_free(args);
  g_free(self);
  g_free(name);
}

/* The same rate with cudalinksink (another process) as the producer. */
static void
bench_rate_sink(const char *label, const char *tail)
{
  Result r;

  run_with_sink(0, "", tail, run_s, &r);
  rate_row("unthrottled cudalinksink -> cudalinksrc, 1920x1080 RGBA8", label, &r);
}

static void
bench_cpu(const char *label, const char *prod_opts, const char *src_opts)
{
  gchar *opts = g_strdup_printf("1280 720 4 uint8 --frames 0 --fps 60 %s", prod_opts);
  Result r;
  gchar *v;

  run_with_producer(opts, src_opts, MEMORY_CUDA_TAIL, run_s * 2, &r);
  v = g_strdup_printf("%.1f %% of one core, streaming thread %.1f %% (%.0f fps; woken p50 %"
                      G_GUINT64_FORMAT " us, push p50 %" G_GUINT64_FORMAT " us; %"
                      G_GUINT64_FORMAT " seen by the wake-spin, %.0f us spun and %.1f sleeps a "
                      "frame)",
                      r.cpu_pct, r.thread_pct, r.seconds > 0 ? r.frames / r.seconds : 0,
                      r.wake50, r.p50, r.paced, spun_per_frame(&r),
                      r.frames ? (double)r.sleeps / (double)r.frames : 0);
  row("CPU, cudalinksrc ! fakesink at 60 fps 1280x720", label, v, &r);
  g_free(v);
  g_free(opts);
}

/* cudalinksink in another process publishing one 720p frame at fps on the
 * pipeline clock: latency and CPU of cudalinksrc ! fakesink. */
static void
bench_sink_paced(const char *label, int fps, const char *src_opts)
{
  Result r;
  gchar *v;

  run_with_sink(fps, src_opts, MEMORY_CUDA_TAIL, run_s * 2, &r);
  v = g_strdup_printf("woken p50 %" G_GUINT64_FORMAT " us, p99 %" G_GUINT64_FORMAT
                      " us; push p50 %" G_GUINT64_FORMAT " us, p99 %" G_GUINT64_FORMAT
                      " us; CPU %.1f %% of one core, streaming thread %.1f %% (%.0f fps; %"
                      G_GUINT64_FORMAT " seen by the wake-spin, %.0f us spun a frame)",
                      r.wake50, r.wake99, r.p50, r.p99, r.cpu_pct, r.thread_pct,
                      r.seconds > 0 ? r.frames / r.seconds : 0, r.paced, spun_per_frame(&r));
  row("cudalinksink (another process) -> cudalinksrc, 1280x720 RGBA8", label, v, &r);
  g_free(v);
}

int
main(int argc, char **argv)
{
  char why[256];
  gchar *dflt = NULL;
  GstElementFactory *f;

  gst_init(NULL, NULL);
  if (argc > 2 && strcmp(argv[1], "--gst-producer") == 0)
    return gst_producer_main(argv[2], argc > 3 ? atoi(argv[3]) : 0);
  if (argc > 1) {
    producer_path = argv[1];
  } else {
    gchar *self = g_file_read_link("/proc/self/exe", NULL);
    gchar *dir = self ? g_path_get_dirname(self) : g_strdup(".");
    dflt = g_build_filename(dir, "..", "gpu", "src_producer", NULL);
    producer_path = dflt;
    g_free(dir);
    g_free(self);
  }
  if (argc > 2)
    run_s = g_ascii_strtod(argv[2], NULL);
  if (cudalink_cuda_load(why, sizeof why) != CUDALINK_OK) {
    fprintf(stderr, "bench_src needs a GPU: %s\n", why);
    return 1;
  }
  f = gst_element_factory_find("cudalinksrc");
  if (!f) {
    fprintf(stderr, "cudalinksrc is not registered (GST_PLUGIN_PATH_1_0)\n");
    return 1;
  }
  gst_object_unref(f);

  printf("| measurement | condition | result | note |\n");
  printf("|---|---|---|---|\n");
  if (test_wanted(argc, argv, 3, "latency")) {
    bench_latency("cudalink producer (futex wake), poll-interval 1000 us", "", "poll-interval=1000");
    bench_latency("cudalink producer, wake-spin=false", "", "poll-interval=1000 wake-spin=false");
    bench_latency("cudalink producer, gpu-wait=spin", "", "poll-interval=1000 gpu-wait=spin");
    bench_latency("cudalink producer, gpu-wait=sleep", "", "poll-interval=1000 gpu-wait=sleep");
    bench_latency("cudalink producer, video-direction=vert (kernel instead of 2-D copy)", "",
                  "poll-interval=1000 video-direction=vert");
    bench_latency("foreign producer (no wake), poll-interval 1000 us", "--foreign",
                  "poll-interval=1000");
    bench_latency("foreign producer (no wake), poll-interval 1000 us, wake-spin=false", "--foreign",
                  "poll-interval=1000 wake-spin=false");
    bench_latency("foreign producer (no wake), poll-interval 200 us", "--foreign",
                  "poll-interval=200");
    bench_latency("foreign producer (no wake), poll-interval 200 us, wake-spin=false", "--foreign",
                  "poll-interval=200 wake-spin=false");
  }
  if (test_wanted(argc, argv, 3, "rate")) {
    bench_rate("CUDA memory out", "video/x-raw(memory:CUDAMemory) ! fakesink sync=false");
    bench_rate("system memory out (downloaded)", "video/x-raw ! fakesink sync=false");
    bench_rate_sink("one uploaded frame ! imagefreeze ! cudalinksink in another process, CUDA "
                    "memory out",
                    MEMORY_CUDA_TAIL);
  }
  if (test_wanted(argc, argv, 3, "paced")) {
    bench_sink_paced("60 fps", 60, "");
    bench_sink_paced("60 fps, wake-spin=false", 60, "wake-spin=false");
    bench_sink_paced("200 fps", 200, "");
  }
  if (test_wanted(argc, argv, 3, "cpu")) {
    bench_cpu("cudalink producer (futex wake)", "", "poll-interval=1000");
    bench_cpu("cudalink producer, wake-spin=false", "", "poll-interval=1000 wake-spin=false");
    bench_cpu("cudalink producer, gpu-wait=spin", "", "poll-interval=1000 gpu-wait=spin");
    bench_cpu("cudalink producer, gpu-wait=sleep wake-spin=false", "",
              "poll-interval=1000 gpu-wait=sleep wake-spin=false");
    bench_cpu("foreign producer, poll-interval 1000 us", "--foreign", "poll-interval=1000");
    bench_cpu("foreign producer, poll-interval 1000 us, wake-spin=false", "--foreign",
              "poll-interval=1000 wake-spin=false");
    bench_cpu("foreign producer, poll-interval 200 us", "--foreign", "poll-interval=200");
  }

  g_free(dflt);
  return 0;
}
