/* cudalink-appsink: embedding cudalinksrc in a C application and using each
 * frame's CUDA device memory in place.
 *
 *   cudalinksrc ipc-name=NAME on-producer-loss=eos
 *     ! video/x-raw(memory:CUDAMemory) ! appsink
 *
 * In the appsink callback every buffer is mapped with GST_MAP_CUDA, which
 * gives the frame's CUdeviceptr instead of a host copy; the pitch (bytes
 * from one row to the next) is the memory's stride. Hand both to your own
 * kernel or library (the CUDA context is the memory's GstCudaContext: push
 * it first). To show that the pointer is live, this reads the first pixel
 * back with one small cuMemcpy2D.
 *
 *   cudalink-appsink NAME [FRAMES]
 *     prints one line per frame:
 *     "frame 7 (producer frame 7): 1280x720 RGBA device 0x7f1234600000 pitch 5120 first pixel 255,0,0,255"
 *     then "cudalink-appsink: N frames, M missed"; stops after FRAMES frames
 *     (default: when the producer goes away). Exit 0 when frames came, 1 on
 *     an error (printed), 2 without a CUDA driver.
 *
 * Needs: GStreamer 1.22 with gstreamer1.0-plugins-bad (libgstcuda), the
 * cudalink plugin (GST_PLUGIN_PATH=build/gst), an NVIDIA GPU and its driver.
 * CUDA memory comes out of cudalinksrc for RGBA, BGRA and RGB producers
 * (8-bit, 3 or 4 channels, and every converted float format); GRAY and
 * 16-bit formats are system memory only in GStreamer 1.22, and fail to
 * negotiate here. Built by examples/meson.build. */
#define GST_USE_UNSTABLE_API /* gst/cuda is unstable API in 1.22 */

#include <stdio.h>
#include <stdlib.h>

#include <gst/app/gstappsink.h>
#include <gst/cuda/cuda-gst.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/gst.h>
#include <gst/video/video.h>

typedef struct {
  guint64 frames, limit;
  GMainLoop *loop;
  gboolean bad;
} App;

/* The first pixel (up to 4 bytes) of the frame at ptr, read back through
 * the frame's own CUDA context. */
static gboolean
first_pixel(GstCudaContext *ctx, CUdeviceptr ptr, size_t pitch, guint8 *px, size_t n)
{
  CUDA_MEMCPY2D c = { 0 };
  gboolean ok;

  if (!gst_cuda_context_push(ctx))
    return FALSE;
  c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  c.srcDevice = ptr;
  c.srcPitch = pitch;
  c.dstMemoryType = CU_MEMORYTYPE_HOST;
  c.dstHost = px;
  c.dstPitch = n;
  c.WidthInBytes = n;
  c.Height = 1;
  ok = CuMemcpy2D(&c) == CUDA_SUCCESS;
  gst_cuda_context_pop(NULL);
  return ok;
}

static GstFlowReturn
on_sample(GstAppSink *sink, gpointer data)
{
  App *app = data;
  GstSample *sample = gst_app_sink_pull_sample(sink);
  GstBuffer *buf;
  GstMemory *mem;
  GstVideoInfo info;
  GstMapInfo map;
  guint8 px[4] = { 0 };
  size_t bpp;

  if (!sample)
    return GST_FLOW_EOS;
  buf = gst_sample_get_buffer(sample);
  mem = gst_buffer_peek_memory(buf, 0);
  if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) || !gst_is_cuda_memory(mem)) {
    fprintf(stderr, "cudalink-appsink: frame %" G_GUINT64_FORMAT " is not CUDA memory\n",
            app->frames);
    app->bad = TRUE;
    gst_sample_unref(sample);
    return GST_FLOW_ERROR;
  }
  /* GST_MAP_CUDA: map.data is the device address (a CUdeviceptr), no copy */
  if (!gst_buffer_map(buf, &map, GST_MAP_READ | GST_MAP_CUDA)) {
    fprintf(stderr, "cudalink-appsink: cannot map frame %" G_GUINT64_FORMAT "\n", app->frames);
    app->bad = TRUE;
    gst_sample_unref(sample);
    return GST_FLOW_ERROR;
  }
  {
    GstCudaMemory *cmem = GST_CUDA_MEMORY_CAST(mem);
    CUdeviceptr ptr = (CUdeviceptr)(guintptr)map.data;
    size_t pitch = (size_t)GST_VIDEO_INFO_PLANE_STRIDE(&cmem->info, 0);

    bpp = GST_VIDEO_INFO_COMP_PSTRIDE(&info, 0);
    if (bpp > sizeof px)
      bpp = sizeof px;
    printf("frame %" G_GUINT64_FORMAT " (producer frame %" G_GUINT64_FORMAT "): %dx%d %s "
           "device 0x%llx pitch %zu",
           app->frames, GST_BUFFER_OFFSET(buf), GST_VIDEO_INFO_WIDTH(&info),
           GST_VIDEO_INFO_HEIGHT(&info), GST_VIDEO_INFO_NAME(&info), (unsigned long long)ptr,
           pitch);
    if (first_pixel(cmem->context, ptr, pitch, px, bpp)) {
      printf(" first pixel");
      for (size_t i = 0; i < bpp; i++)
        printf("%s%u", i ? "," : " ", px[i]);
    }
    printf("\n");
  }
  gst_buffer_unmap(buf, &map);
  gst_sample_unref(sample);
  app->frames++;
  if (app->limit && app->frames >= app->limit) {
    g_main_loop_quit(app->loop);
    return GST_FLOW_EOS;
  }
  return GST_FLOW_OK;
}

static gboolean
on_message(GstBus *bus, GstMessage *msg, gpointer data)
{
  App *app = data;
  (void)bus;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(msg, &err, &dbg);
    fprintf(stderr, "cudalink-appsink: %s\n", err->message);
    g_clear_error(&err);
    g_free(dbg);
    app->bad = TRUE;
    g_main_loop_quit(app->loop);
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
    g_main_loop_quit(app->loop);
  }
  return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
  App app = { 0 };
  GstElement *pipeline, *sink, *src;
  GstAppSinkCallbacks cb = { 0 };
  GstStructure *stats = NULL;
  GError *err = NULL;
  GstBus *bus;
  gchar *desc;
  guint64 missed = 0;

  setvbuf(stdout, NULL, _IOLBF, 0);
  gst_init(&argc, &argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s NAME [FRAMES]\n", argv[0]);
    return 64;
  }
  app.limit = argc > 2 ? g_ascii_strtoull(argv[2], NULL, 10) : 0;

  desc = g_strdup_printf("cudalinksrc name=src ipc-name=\"%s\" on-producer-loss=eos timeout=15000 "
                         "! video/x-raw(memory:CUDAMemory) ! appsink name=sink sync=false",
                         argv[1]);
  pipeline = gst_parse_launch(desc, &err);
  g_free(desc);
  if (!pipeline || err) {
    GstElementFactory *f = gst_element_factory_find("cudalinksrc");
    fprintf(stderr, "cudalink-appsink: %s%s\n", err ? err->message : "cannot build the pipeline",
            f ? "" : " (GST_PLUGIN_PATH=build/gst: the folder with libgstcudalink.so)");
    if (f)
      gst_object_unref(f);
    g_clear_error(&err);
    if (pipeline)
      gst_object_unref(pipeline);
    return 1;
  }
  /* cudalinksrc starts without a driver (to report a bad segment as such),
   * so ask here: without one no frame will ever come. */
  if (!gst_cuda_load_library()) {
    fprintf(stderr, "cudalink-appsink: the NVIDIA CUDA driver library (libcuda.so.1) cannot be "
                    "loaded: this machine cannot read cuda-link frames\n");
    gst_object_unref(pipeline);
    return 2;
  }
  app.loop = g_main_loop_new(NULL, FALSE);
  sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  cb.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cb, &app, NULL);
  bus = gst_element_get_bus(pipeline);
  gst_bus_add_watch(bus, on_message, &app);

  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  g_main_loop_run(app.loop);

  g_object_get(src, "stats", &stats, NULL);
  if (stats)
    gst_structure_get_uint64(stats, "missed", &missed);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  printf("cudalink-appsink: %" G_GUINT64_FORMAT " frames, %" G_GUINT64_FORMAT " missed\n",
         app.frames, missed);

  if (stats)
    gst_structure_free(stats);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(src);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  g_main_loop_unref(app.loop);
  return app.bad || !app.frames ? 1 : 0;
}
