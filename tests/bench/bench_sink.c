/* bench_sink: what cudalinksink costs per frame, next to the bare copy.
 *
 *   bench_sink [frames]        (default 1200; needs an NVIDIA GPU)
 *
 * For each case, in one GstCudaContext on device 0:
 *   bare      cuMemcpy2DAsync of one frame (device to device) + sync
 *   publish   cudalink_producer_publish (wait = 1) of the same frame
 *   sink      cudalinksink's prepare + render time (its stats p50/p99 over
 *             the last 1024 frames), fed back to back by an appsrc of
 *             pre-uploaded CUDA buffers, gpu-wait=none and =sleep
 * Cases: 1920x1080 RGBA8 (plain copy), 3840x2160 RGBA8 -> float32 (the
 * kernel; the bare copy and publish move a float32 frame of that size).
 * Prints a markdown table. Not a test: it never fails on numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gst/app/gstappsrc.h>
#include <gst/cuda/gstcudabufferpool.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"

static const cudalink_cuda *cu;

typedef struct {
  double p50, p99;
} Pct;

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static Pct
percentiles(double *v, int n)
{
  Pct p;
  qsort(v, n, sizeof *v, cmp_double);
  p.p50 = v[(int)(0.50 * n + 0.999999) - 1];
  p.p99 = v[(int)(0.99 * n + 0.999999) - 1];
  return p;
}

/* bare copy + sync, and cudalink_producer_publish(wait), of a w x h frame
 * of row_bytes per row */
static void
bench_baselines(GstCudaContext *ctx, uint32_t w, uint32_t h, cudalink_dtype dtype, int frames,
                Pct *bare, Pct *publish)
{
  cudalink_format fmt = {w, h, 4, dtype, 0};
  uint32_t frame_size, row;
  CUdeviceptr src, dst;
  size_t pitch;
  CUstream stream;
  cudalink_producer_config config;
  cudalink_producer *prod = NULL;
  cudalink_status st;
  double *t = calloc(frames, sizeof *t);
  char name[64];

  cudalink_format_sizes(&fmt, &frame_size, &row);
  CK(cu->CtxPushCurrent(gst_cuda_context_get_handle(ctx)));
  CK(CuMemAllocPitch(&src, &pitch, row, h, 16));
  CK(cu->MemAlloc(&dst, frame_size));
  CK(cu->StreamCreate(&stream, 0));

  for (int i = -20; i < frames; i++) {
    CUDA_MEMCPY2D cp;
    gint64 t0 = gst_util_get_timestamp();
    memset(&cp, 0, sizeof cp);
    cp.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    cp.srcDevice = src;
    cp.srcPitch = pitch;
    cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    cp.dstDevice = dst;
    cp.dstPitch = row;
    cp.WidthInBytes = row;
    cp.Height = h;
    CK(cu->Memcpy2DAsync(&cp, stream));
    CK(cu->StreamSynchronize(stream));
    if (i >= 0)
      t[i] = (gst_util_get_timestamp() - t0) / 1000.0;
  }
  *bare = percentiles(t, frames);

  snprintf(name, sizeof name, "cltest-bench-%d", (int)getpid());
  cudalink_producer_config_init(&config);
  config.name = name;
  config.cuda_context = gst_cuda_context_get_handle(ctx);
  st = cudalink_producer_create(&config, &fmt, &prod);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "producer_create: %s\n", cudalink_strerror(st));
    exit(1);
  }
  for (int i = -20; i < frames; i++) {
    gint64 t0 = gst_util_get_timestamp();
    st = cudalink_producer_publish(prod, src, pitch, stream, 1);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "publish: %s\n", cudalink_strerror(st));
      exit(1);
    }
    if (i >= 0)
      t[i] = (gst_util_get_timestamp() - t0) / 1000.0;
  }
  *publish = percentiles(t, frames);
  cudalink_producer_destroy(prod);

  cu->StreamDestroy(stream);
  cu->MemFree(src);
  cu->MemFree(dst);
  cu->CtxPopCurrent(NULL);
  free(t);
}

/* cudalinksink's own p50/p99 render time over its last 1024 frames */
static Pct
bench_sink(GstCudaContext *ctx, int w, int h, const char *dtype, gboolean wait, int frames)
{
  gchar *launch = g_strdup_printf(
      "appsrc name=src format=time ! cudalinksink name=sink sync=false ipc-name=cltest-bench-%d "
      "output-dtype=%s gpu-wait=%s",
      (int)getpid(), dtype, wait ? "sleep" : "none");
  GstElement *p = gst_parse_launch(launch, NULL);
  GstElement *src = gst_bin_get_by_name(GST_BIN(p), "src");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  gchar *caps_str = g_strdup_printf(
      "video/x-raw(memory:CUDAMemory),format=RGBA,width=%d,height=%d,framerate=60/1", w, h);
  GstCaps *caps = gst_caps_from_string(caps_str);
  GstBufferPool *pool = gst_cuda_buffer_pool_new(ctx);
  GstStructure *config = gst_buffer_pool_get_config(pool);
  GstContext *gctx = gst_context_new_cuda_context(ctx);
  GstBuffer *bufs[4];
  GstStructure *stats = NULL;
  GstMessage *m;
  GstBus *bus = gst_element_get_bus(p);
  GstVideoInfo info;
  Pct pct = {0, 0};

  gst_video_info_from_caps(&info, caps);
  gst_buffer_pool_config_set_params(config, caps, info.size, 4, 4);
  gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  gst_buffer_pool_set_config(pool, config);
  gst_buffer_pool_set_active(pool, TRUE);
  for (int i = 0; i < 4; i++)
    gst_buffer_pool_acquire_buffer(pool, &bufs[i], NULL);

  gst_element_set_context(sink, gctx); /* the same context: no copies */
  gst_app_src_set_caps(GST_APP_SRC(src), caps);
  gst_element_set_state(p, GST_STATE_PLAYING);
  for (int i = 0; i < frames; i++) {
    GstBuffer *b = gst_buffer_copy(bufs[i % 4]); /* shares the CUDA memory */
    GST_BUFFER_PTS(b) = (GstClockTime)i * GST_SECOND / 60;
    gst_app_src_push_buffer(GST_APP_SRC(src), b);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  m = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!m || GST_MESSAGE_TYPE(m) != GST_MESSAGE_EOS) {
    GError *e = NULL;
    if (m)
      gst_message_parse_error(m, &e, NULL);
    fprintf(stderr, "sink bench %dx%d %s: %s\n", w, h, dtype, e ? e->message : "timeout");
    exit(1);
  }
  gst_message_unref(m);
  g_object_get(sink, "stats", &stats, NULL);
  gst_structure_get_double(stats, "publish-time-p50-us", &pct.p50);
  gst_structure_get_double(stats, "publish-time-p99-us", &pct.p99);
  gst_structure_free(stats);
  gst_element_set_state(p, GST_STATE_NULL);

  for (int i = 0; i < 4; i++)
    gst_buffer_unref(bufs[i]);
  gst_buffer_pool_set_active(pool, FALSE);
  gst_object_unref(pool);
  gst_context_unref(gctx);
  gst_caps_unref(caps);
  gst_object_unref(bus);
  gst_object_unref(src);
  gst_object_unref(sink);
  gst_object_unref(p);
  g_free(caps_str);
  g_free(launch);
  return pct;
}

int
main(int argc, char **argv)
{
  struct {
    const char *label;
    int w, h;
    const char *dtype;
    cudalink_dtype base_dtype;
  } cases[] = {
    {"1920x1080 RGBA8 (plain copy)", 1920, 1080, "auto", CUDALINK_DTYPE_UINT8},
    {"3840x2160 RGBA8 -> float32 (kernel)", 3840, 2160, "float32", CUDALINK_DTYPE_FLOAT32},
  };
  int frames = argc > 1 ? atoi(argv[1]) : 1200;
  cudalink_status st;
  char why[256];
  GstCudaContext *ctx;

  gst_init(&argc, &argv);
  if (frames < 100)
    frames = 100;
  cu = cudalink_cuda_get(&st, why, sizeof why);
  if (!cu || !gst_cuda_load_library()) {
    fprintf(stderr, "no CUDA: %s\n", why);
    return 1;
  }
  gst_cuda_memory_init_once();
  ctx = gst_cuda_context_new(0);
  if (!ctx) {
    fprintf(stderr, "no CUDA device 0\n");
    return 1;
  }

  printf("| case | bare copy + sync p50 / p99 (us) | producer_publish(wait) p50 / p99 | "
         "sink render, gpu-wait=none p50 / p99 | sink render, gpu-wait=sleep p50 / p99 |\n");
  printf("|---|---|---|---|---|\n");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Pct bare, pub, s0, s1;
    bench_baselines(ctx, cases[i].w, cases[i].h, cases[i].base_dtype, frames, &bare, &pub);
    s0 = bench_sink(ctx, cases[i].w, cases[i].h, cases[i].dtype, FALSE, frames);
    s1 = bench_sink(ctx, cases[i].w, cases[i].h, cases[i].dtype, TRUE, frames);
    printf("| %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f |\n", cases[i].label,
           bare.p50, bare.p99, pub.p50, pub.p99, s0.p50, s0.p99, s1.p50, s1.p99);
    fflush(stdout);
  }
  printf("\n%d frames per measurement (sink: the last 1024), one GstCudaContext on device 0.\n",
         frames);
  gst_object_unref(ctx);
  return 0;
}
