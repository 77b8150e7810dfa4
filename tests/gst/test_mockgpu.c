/* cudalinksink -> cudalinksrc end to end on the CPU: both elements, their
 * GStreamer CUDA memory and libcudalink run on tests/unit/mock_cuda.c,
 * which meson puts first on LD_LIBRARY_PATH as libcuda.so.1 (GStreamer's
 * CUDA library loads it too). No GPU: the mock's "device" memory is host
 * memory, its copies are done when queued and MOCK_CUDA_GPU_US makes its
 * streams and events complete that much later, as a slow GPU's would.
 *
 *   test_mockgpu                 runs the cases below as the consumer
 *   test_mockgpu produce NAME N GPU_US GPU_WAIT
 *                                the producer (a child process):
 *                                appsrc ! cudalinksink gpu-wait=GPU_WAIT
 *
 * What it checks, for io-mode=import and io-mode=copy (and import once more
 * with the sink's gpu-wait=spin: its synchronous commit), with the producer's
 * "GPU" 40 ms late for each copy, frames 30 ms apart:
 *   - every frame the src pushes holds one published frame, whole (each
 *     frame is filled with its number), in order, and import imports; its
 *     timestamp is valid, rising and not ahead of the pipeline clock;
 *   - the src pushes no frame before the producer's GPU is done with it
 *     (its latency stat is at least the GPU's lateness; with gpu-wait the
 *     sink publishes only then);
 *   - a GPU fault when the sink waits for a previous copy stops it with
 *     "The GPU failed" (test_sink_gpu_fault, the sink alone);
 *   - the sink gives no input buffer back upstream (the producer's buffers
 *     are freed, not pooled) before the GPU copy that reads it is done: at
 *     least GPU_US after it was pushed; only frames it did not publish
 *     (held-drops: a slow reader held the next slot) go back at once.
 */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* 512-byte rows: what cuMemAllocPitch (the mock's too) gives unpadded,
 * which import needs */
#define W 128
#define H 32
#define FRAMES 30
/* the producer's "GPU" takes longer per frame than the frames are apart:
 * the sink finds the previous frame's copy not done at each publish */
#define GPU_US 40000
#define FRAME_GAP_US 30000

/* ---- the producer ----------------------------------------------------- */

typedef struct {
  gint64 pushed_us, freed_us;
} Life;

static Life lives[FRAMES];

static void
buffer_freed(gpointer data, GstMiniObject *obj)
{
  (void)obj;
  ((Life *)data)->freed_us = g_get_monotonic_time();
}

static GstBuffer *
frame_buffer(GstCudaContext *ctx, const GstVideoInfo *info, guint n)
{
  GstAllocator *alloc = gst_allocator_find(GST_CUDA_MEMORY_TYPE_NAME);
  GstMemory *mem = gst_cuda_allocator_alloc(GST_CUDA_ALLOCATOR(alloc), ctx, info);
  GstBuffer *buf = gst_buffer_new();
  GstMapInfo map;

  gst_object_unref(alloc);
  gst_buffer_append_memory(buf, mem);
  gst_buffer_add_video_meta_full(buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(info),
                                 GST_VIDEO_INFO_WIDTH(info), GST_VIDEO_INFO_HEIGHT(info),
                                 GST_VIDEO_INFO_N_PLANES(info),
                                 GST_CUDA_MEMORY_CAST(mem)->info.offset,
                                 GST_CUDA_MEMORY_CAST(mem)->info.stride);
  /* written "on the GPU" (the mock's device memory is host memory), so
   * that the sink has nothing to upload: GStreamer 1.22 synchronises its
   * upload, which would wait out the mock GPU's lateness for the sink */
  if (gst_buffer_map(buf, &map, GST_MAP_WRITE | GST_MAP_CUDA)) {
    memset(map.data, (int)(n & 0xff), GST_CUDA_MEMORY_CAST(mem)->info.size);
    gst_buffer_unmap(buf, &map);
  }
  return buf;
}

/* appsrc name=in ! cudalinksink name=out on our own context, playing; NULL
 * without a CUDA context on the mock */
static GstElement *
producer_start(const char *name, const char *gpu_wait, GstCudaContext **ctx, GstVideoInfo *info)
{
  GstContext *gctx;
  GstElement *pipe, *src;
  GstCaps *caps;
  gchar *desc;

  *ctx = gst_cuda_load_library() ? gst_cuda_context_new(0) : NULL;
  if (!*ctx) {
    fprintf(stderr, "producer: no CUDA context on the mock\n");
    return NULL;
  }
  desc = g_strdup_printf("appsrc name=in format=time ! cudalinksink name=out ipc-name=%s "
                         "offer-import=true num-slots=4 sync=false gpu-wait=%s",
                         name, gpu_wait);
  pipe = gst_parse_launch(desc, NULL);
  g_free(desc);
  gctx = gst_context_new_cuda_context(*ctx);
  gst_element_set_context(pipe, gctx);
  gst_context_unref(gctx);
  src = gst_bin_get_by_name(GST_BIN(pipe), "in");
  gst_video_info_set_format(info, GST_VIDEO_FORMAT_RGBA, W, H);
  caps = gst_video_info_to_caps(info);
  gst_caps_set_features(caps, 0, gst_caps_features_new(GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY, NULL));
  g_object_set(src, "caps", caps, NULL);
  gst_caps_unref(caps);
  gst_object_unref(src);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  return pipe;
}

/* Pushes @frames frames FRAME_GAP_US apart, each filled with its number,
 * noting in lives[] when each was pushed and freed (NULL: not noted). */
static void
push_frames(GstElement *pipe, GstCudaContext *ctx, const GstVideoInfo *info, guint frames,
            Life *life)
{
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipe), "in");
  guint i;

  for (i = 0; i < frames; i++) {
    GstBuffer *buf = frame_buffer(ctx, info, i + 1);
    GST_BUFFER_PTS(buf) = i * 30 * GST_MSECOND;
    if (life) {
      gst_mini_object_weak_ref(GST_MINI_OBJECT(buf), buffer_freed, &life[i]);
      life[i].pushed_us = g_get_monotonic_time();
    }
    gst_app_src_push_buffer(GST_APP_SRC(src), buf);
    g_usleep(FRAME_GAP_US);
  }
  gst_object_unref(src);
}

static int
produce(const char *name, guint frames, const char *gpu_us, const char *gpu_wait)
{
  GstCudaContext *ctx;
  GstElement *pipe, *src, *sink;
  GstStructure *stats = NULL;
  guint64 held_drops = 0;
  GstVideoInfo info;
  GstBus *bus;
  GstMessage *msg;
  guint i, early = 0;

  /* only the producer's GPU is late */
  g_setenv("MOCK_CUDA_GPU_US", gpu_us, TRUE);
  if (!(pipe = producer_start(name, gpu_wait, &ctx, &info)))
    return 2;
  push_frames(pipe, ctx, &info, frames, lives);
  src = gst_bin_get_by_name(GST_BIN(pipe), "in");
  /* the GPU is behind: let the last frames reach the reader before the sink
   * ends the segment */
  g_usleep(G_USEC_PER_SEC);
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  bus = gst_element_get_bus(pipe);
  msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  CHECK(msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS);
  if (msg)
    gst_message_unref(msg);
  gst_object_unref(bus);
  /* frames dropped because a reader held the next slot were never copied:
   * their buffers go back at once, rightly */
  sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
  g_object_get(sink, "stats", &stats, NULL);
  if (stats) {
    gst_structure_get_uint64(stats, "held-drops", &held_drops);
    gst_structure_free(stats);
  }
  gst_object_unref(sink);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(src);
  gst_object_unref(pipe);

  for (i = 0; i < frames; i++) {
    CHECK(lives[i].freed_us > 0);
    if (lives[i].freed_us > 0 && lives[i].freed_us - lives[i].pushed_us < atoi(gpu_us))
      early++;
  }
  CHECK(early <= held_drops);
  fprintf(stderr, "  producer: %u frames, buffers freed %.1f ms after their push (frame 1), "
                  "%u early, %" G_GUINT64_FORMAT " not published (held-drops)\n",
          frames, (lives[0].freed_us - lives[0].pushed_us) / 1e3, early, held_drops);
  gst_object_unref(ctx);
  return tu_failures_in_test ? 1 : 0;
}

/* ---- the consumer ------------------------------------------------------ */

static void
consume(const char *self_exe, const char *io_mode, const char *gpu_wait)
{
  gchar *name = g_strdup_printf("cudalink-mockgpu-%d-%s-%s", (int)getpid(), io_mode, gpu_wait);
  gchar *desc, *frames_arg = g_strdup_printf("%d", FRAMES), *gpu_arg = g_strdup_printf("%d", GPU_US);
  gchar *argv[] = { (gchar *)self_exe, (gchar *)"produce", name, frames_arg, gpu_arg,
                    (gchar *)gpu_wait, NULL };
  GstElement *pipe, *sink, *src;
  GError *err = NULL;
  GPid child;
  gint status = -1;
  guint got = 0, bad = 0, backwards = 0, last = 0, bad_pts = 0;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  GstStructure *stats = NULL;
  guint64 imported = 0;
  gdouble lat_p50 = 0;

  desc = g_strdup_printf("cudalinksrc name=in ipc-name=%s io-mode=%s timeout=10000 "
                         "! appsink name=out sync=false enable-last-sample=false max-buffers=%d",
                         name, io_mode, FRAMES);
  pipe = gst_parse_launch(desc, &err);
  g_free(desc);
  if (err)
    fprintf(stderr, "  consumer pipeline: %s\n", err->message);
  CHECK(pipe && !err);
  if (!pipe)
    return;
  sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
  src = gst_bin_get_by_name(GST_BIN(pipe), "in");
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  CHECK(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &child, &err));

  for (;;) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 3 * GST_SECOND);
    GstBuffer *buf;
    GstVideoFrame frame;
    GstVideoInfo info;
    GstClock *clock;
    GstClockTime pts, now;
    gsize i;

    if (!s)
      break;
    buf = gst_sample_get_buffer(s);
    /* dated on the pipeline clock at the wake-up: valid, rising, and not
     * after now */
    pts = GST_BUFFER_PTS(buf);
    clock = gst_element_get_clock(pipe);
    now = clock ? gst_clock_get_time(clock) - gst_element_get_base_time(pipe) : 0;
    if (clock)
      gst_object_unref(clock);
    if (!GST_CLOCK_TIME_IS_VALID(pts) || (GST_CLOCK_TIME_IS_VALID(last_pts) && pts <= last_pts) ||
        pts > now)
      bad_pts++;
    last_pts = pts;
    if (gst_video_info_from_caps(&info, gst_sample_get_caps(s)) &&
        gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) {
      const guint8 *px = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
      gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0), y;
      guint8 v = px[0];
      gsize row = (gsize)GST_VIDEO_FRAME_WIDTH(&frame) * 4;
      gboolean whole = v != 0;
      for (y = 0; y < GST_VIDEO_FRAME_HEIGHT(&frame); y++)
        for (i = 0; i < row; i++)
          whole = whole && px[(gsize)y * (gsize)stride + i] == v;
      if (!whole)
        bad++;
      if (v <= last)
        backwards++;
      last = v;
      gst_video_frame_unmap(&frame);
    } else {
      bad++;
    }
    got++;
    gst_sample_unref(s);
    if (last == FRAMES)
      break;
  }
  g_object_get(src, "stats", &stats, NULL);
  if (stats) {
    gst_structure_get_uint64(stats, "imported", &imported);
    gst_structure_get_double(stats, "latency-p50-us", &lat_p50);
    gst_structure_free(stats);
  }
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(src);
  gst_object_unref(pipe);

  /* the producer's verdict */
  for (int waited = 0; waited < 200; waited++) {
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child)
      break;
    g_usleep(50000);
  }
  g_spawn_close_pid(child);

  fprintf(stderr, "  io-mode=%s, sink gpu-wait=%s: %u frames, last %u, bad %u, backwards %u, bad "
                  "timestamps %u, imported %" G_GUINT64_FORMAT ", latency p50 %.1f ms\n",
          io_mode, gpu_wait, got, last, bad, backwards, bad_pts, imported, lat_p50 / 1e3);
  /* (a slow reader, e.g. under valgrind, misses frames: the newest wins) */
  CHECK(got >= FRAMES / 4);
  CHECK_EQ_INT(last, FRAMES);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(backwards, 0);
  /* timestamps missing, not rising or ahead of the clock */
  CHECK_EQ_INT(bad_pts, 0);
  if (strcmp(io_mode, "import") == 0)
    /* (a reader that fell behind copies, so as not to hold the producer
     * back: under valgrind most frames; on its own, 20-28 of 30) */
    CHECK(imported > 0);
  else
    CHECK_EQ_INT(imported, 0);
  /* no frame before the producer's GPU finished it (with gpu-wait the sink
   * publishes only then) */
  if (strcmp(gpu_wait, "none") == 0)
    CHECK(lat_p50 >= GPU_US);
  /* the producer's own checks (above) */
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  g_free(name);
  g_free(frames_arg);
  g_free(gpu_arg);
}

static const char *self_exe;

static void
test_import(void)
{
  consume(self_exe, "import", "none");
}

static void
test_copy(void)
{
  consume(self_exe, "copy", "none");
}

/* the sink waits for each copy before it publishes (its other release
 * path: nothing left in flight) */
static void
test_import_sink_gpu_wait(void)
{
  consume(self_exe, "import", "spin");
}

/* A GPU fault seen when the sink waits for the previous frame's copy after
 * a publish (its stream synchronisation fails; with the GPU late, the second
 * publish finds the first copy not done) stops the stream with "The GPU
 * failed", not silently. No reader needed: the sink publishes anyway. */
static void
test_sink_gpu_fault(void)
{
  gchar *name = g_strdup_printf("cudalink-mockgpu-%d-fault", (int)getpid());
  GstCudaContext *ctx;
  GstVideoInfo info;
  GstElement *pipe;
  GstBus *bus;
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  g_setenv("MOCK_CUDA_GPU_US", "40000", TRUE);
  g_setenv("MOCK_CUDA_FAIL", "cuStreamSynchronize", TRUE);
  pipe = producer_start(name, "none", &ctx, &info);
  CHECK(pipe != NULL);
  if (pipe) {
    push_frames(pipe, ctx, &info, 3, NULL);
    bus = gst_element_get_bus(pipe);
    msg = gst_bus_timed_pop_filtered(bus, 5 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    CHECK(msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR);
    if (msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      gst_message_parse_error(msg, &err, &debug);
      fprintf(stderr, "  error: %s (%s)\n", err->message, debug ? debug : "");
      CHECK_STR_CONTAINS(err->message, "The GPU failed");
      CHECK_STR_CONTAINS(debug, "cuStreamSynchronize failed after a publish");
      g_clear_error(&err);
      g_free(debug);
    }
    if (msg)
      gst_message_unref(msg);
    gst_object_unref(bus);
    g_unsetenv("MOCK_CUDA_FAIL");
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
    gst_object_unref(ctx);
  }
  g_unsetenv("MOCK_CUDA_FAIL");
  g_unsetenv("MOCK_CUDA_GPU_US");
  g_free(name);
}

int
main(int argc, char **argv)
{
  const gchar *plugins = g_getenv("CUDALINK_TEST_GST_PLUGINS_DIR");

  /* meson empties the system plugin path; appsrc and appsink are there */
  if (plugins && *plugins)
    g_setenv("GST_PLUGIN_SYSTEM_PATH_1_0", plugins, TRUE);
  gst_init(&argc, &argv);
  if (argc == 6 && strcmp(argv[1], "produce") == 0)
    return produce(argv[2], (guint)atoi(argv[3]), argv[4], argv[5]);
  self_exe = argv[0];
  RUN_TEST(test_import);
  RUN_TEST(test_copy);
  RUN_TEST(test_import_sink_gpu_wait);
  RUN_TEST(test_sink_gpu_fault);
  return TEST_SUMMARY();
}
