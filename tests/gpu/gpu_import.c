/* GPU suite: zero-copy import between cudalinksink and cudalinksrc, with
 * an unthrottled producer, proving that no frame pushed downstream is torn.
 *
 *   child (this program, --stamp-producer): videotestsrc ! cudaupload !
 *     cudalinksink, as fast as it goes; a probe on the sink's pad fills
 *     frame k entirely with the 32-bit value k on the GPU before the sink
 *     publishes it.
 *   parent: cudalinksrc io-mode=M ! video/x-raw(memory:CUDAMemory) !
 *     appsink; the first, middle and last words of each frame must be the
 *     same value, larger than the last frame's (a frame rewritten while we
 *     read it mixes two), the previous frame, kept until this one came,
 *     must not have changed (a held slot is never rewritten), and every
 *     50th frame is downloaded whole (a CPU map of the imported memory) and
 *     must be one value throughout.
 *
 * Runs: import with the ring at num-slots (held slots cost the producer
 * frames, counted), import with max-slots=6 (the ring may grow), and copy
 * for comparison. Each must deliver frames, none torn; the import runs must
 * import nearly all of them (a run that silently copied would prove
 * nothing).
 *
 *   gpu_import [test-name ...]
 *
 * Exits non-zero when there is no GPU: this suite never skips. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "cudalink.h"
#include "gpu_gst_util.h"
#include "testutil.h"

#define W 1920
#define H 1080
#define FRAMES 1500

typedef unsigned long long dptr;
typedef int (*memset_d32_fn)(dptr, unsigned int, size_t);

static memset_d32_fn memset_d32;

/* ---- child ----------------------------------------------------------- */

static GstPadProbeReturn
stamp_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  guint *k = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMemory *mem = gst_buffer_peek_memory(buf, 0);
  GstMapInfo map;

  (void)pad;
  if (!gst_is_cuda_memory(mem) || !gst_memory_map(mem, &map, GST_MAP_WRITE | GST_MAP_CUDA))
    return GST_PAD_PROBE_DROP;
  ++*k;
  if (gst_cuda_context_push(GST_CUDA_MEMORY_CAST(mem)->context)) {
    /* whole rows: the stride may pad them; synchronous */
    memset_d32((dptr)(guintptr)map.data, *k, map.size / 4);
    gst_cuda_context_pop(NULL);
  }
  gst_memory_unmap(mem, &map);
  return GST_PAD_PROBE_OK;
}

/* --stamp-producer NAME NUM_SLOTS MAX_SLOTS */
static int
producer_main(char **argv)
{
  gchar *desc = g_strdup_printf(
      "videotestsrc num-buffers=%d pattern=black is-live=false ! "
      "video/x-raw,format=RGBA,width=%d,height=%d,framerate=1000/1 ! cudaupload ! "
      "video/x-raw(memory:CUDAMemory) ! "
      "cudalinksink name=sink ipc-name=%s num-slots=%s max-slots=%s offer-import=true "
      "sync=false",
      FRAMES, W, H, argv[2], argv[3], argv[4]);
  GstElement *pipe = gst_parse_launch(desc, NULL), *sink;
  GstStructure *st = NULL;
  GstPad *pad;
  GstBus *bus;
  GstMessage *m;
  guint k = 0;
  int ret = 0;

  if (!pipe || !memset_d32)
    return 2;
  sink = gst_bin_get_by_name(GST_BIN(pipe), "sink");
  pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, stamp_probe, &k, NULL);
  gst_object_unref(pad);
  bus = gst_element_get_bus(pipe);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered(bus, 60 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  if (!m || GST_MESSAGE_TYPE(m) != GST_MESSAGE_EOS)
    ret = 1;
  if (m)
    gst_message_unref(m);
  /* the stats before EOS took the segment down are kept */
  g_object_get(sink, "stats", &st, NULL);
  printf("stamped=%u published=%" G_GUINT64_FORMAT " held-drops=%" G_GUINT64_FORMAT
         " grows=%" G_GUINT64_FORMAT "\n",
         k, stat_u64(st, "frames-published"), stat_u64(st, "held-drops"),
         stat_u64(st, "grows"));
  fflush(stdout);
  gst_structure_free(st);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(pipe);
  g_free(desc);
  return ret;
}

/* ---- parent ---------------------------------------------------------- */

typedef int (*dtoh_fn)(void *, dptr, size_t);
static dtoh_fn dtoh;

typedef struct {
  guint frames, bad, backwards, rewritten, full_checks;
  guint32 last;
  GstBuffer *prev; /* kept until the next frame: it must not change meanwhile */
  guint32 prev_value;
  char first_bad[160];
} Seen;

/* The 32-bit words at byte offsets @at of the buffer's CUDA memory. */
static gboolean
peek(GstBuffer *buf, const gsize *at, guint n, guint32 *out)
{
  GstMemory *mem = gst_buffer_peek_memory(buf, 0);
  GstMapInfo map;
  gboolean ok = FALSE;

  if (!gst_is_cuda_memory(mem) || !gst_memory_map(mem, &map, GST_MAP_READ | GST_MAP_CUDA))
    return FALSE;
  if (gst_cuda_context_push(GST_CUDA_MEMORY_CAST(mem)->context)) {
    ok = TRUE;
    for (guint i = 0; i < n && ok; i++)
      ok = dtoh(&out[i], (dptr)(guintptr)map.data + MIN(at[i], map.size - 4), 4) == 0;
    gst_cuda_context_pop(NULL);
  }
  gst_memory_unmap(mem, &map);
  return ok;
}

/* Every word of the frame equal, by a CPU map (a download of the imported
 * slot itself). */
static gboolean
uniform(GstBuffer *buf)
{
  GstMapInfo map;
  gsize i = 1, n;
  const guint32 *w;

  if (!gst_buffer_map(buf, &map, GST_MAP_READ))
    return FALSE;
  w = (const guint32 *)map.data;
  n = map.size / 4;
  while (i < n && w[i] == w[0])
    i++;
  gst_buffer_unmap(buf, &map);
  return i == n;
}

static void
note_bad(Seen *s, const char *what, guint32 a, guint32 b)
{
  if (!s->first_bad[0])
    g_snprintf(s->first_bad, sizeof s->first_bad, "frame %u: %s (%u, %u)", s->frames, what, a, b);
}

/* Each frame: its first, middle and last words agree (not torn) and are
 * larger than the last frame's; the previous frame, still held, has not
 * changed since (a held slot is never rewritten); every 50th frame is
 * compared whole on the CPU. */
static GstFlowReturn
on_sample(GstAppSink *sink, gpointer data)
{
  Seen *s = data;
  GstSample *sample = gst_app_sink_pull_sample(sink);
  GstBuffer *buf;
  const gsize at[3] = { 0, (gsize)W * H * 2, (gsize)W * H * 4 - 4 };
  guint32 w[3], was;

  if (!sample)
    return GST_FLOW_EOS;
  buf = gst_sample_get_buffer(sample);
  s->frames++;
  if (!peek(buf, at, 3, w)) {
    s->bad++;
    note_bad(s, "cannot read", 0, 0);
  } else if (w[0] != w[1] || w[0] != w[2]) {
    s->bad++;
    note_bad(s, "torn: first and last words differ", w[0], w[2]);
  } else if (w[0] <= s->last) {
    s->backwards++;
  }
  if (s->prev && (!peek(s->prev, at, 1, &was) || was != s->prev_value)) {
    s->rewritten++;
    note_bad(s, "the previous frame changed while held", s->prev_value, was);
  }
  if (s->frames % 50 == 0) {
    s->full_checks++;
    if (!uniform(buf)) {
      s->bad++;
      note_bad(s, "not uniform on the CPU", w[0], 0);
    }
  }
  s->last = w[0];
  gst_clear_buffer(&s->prev);
  s->prev = gst_buffer_ref(buf);
  s->prev_value = w[0];
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

static const char *self_path;

/* @min_imported_pct: the share of frames that must have been imported */
static void
run_case(const char *io_mode, const char *num_slots, const char *max_slots, guint min_imported_pct)
{
  gchar *name = g_strdup_printf("cltest-import-%d-%s-%s", (int)getpid(), io_mode, max_slots);
  gchar *desc = g_strdup_printf(
      "cudalinksrc name=src ipc-name=%s io-mode=%s timeout=20000 on-producer-loss=eos ! "
      "video/x-raw(memory:CUDAMemory),format=RGBA ! appsink name=out sync=false",
      name, io_mode);
  gchar *argv[] = { (gchar *)self_path, "--stamp-producer", name, (gchar *)num_slots,
                    (gchar *)max_slots, NULL };
  GstElement *pipe = gst_parse_launch(desc, NULL), *src, *out;
  GstAppSinkCallbacks cb = { 0 };
  GstStructure *st = NULL;
  GstMessage *m;
  GstBus *bus;
  Seen seen = { 0 };
  GPid pid = 0;
  int out_fd = -1, status = 0;
  char child[256] = "", error[300] = "";
  gint64 t0, t1;
  ssize_t r;

  REQUIRE(pipe != NULL);
  src = gst_bin_get_by_name(GST_BIN(pipe), "src");
  out = gst_bin_get_by_name(GST_BIN(pipe), "out");
  cb.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(out), &cb, &seen, NULL);
  bus = gst_element_get_bus(pipe);
  /* the src waits for the segment: the producer starts into a reader */
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  t0 = g_get_monotonic_time();
  if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                NULL, &out_fd, NULL, NULL)) {
    CHECK(FALSE);
    goto done;
  }
  m = gst_bus_timed_pop_filtered(bus, 90 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  t1 = g_get_monotonic_time();
  if (!m || GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    if (m)
      gst_message_parse_error(m, &err, NULL);
    g_snprintf(error, sizeof error, "%s", err ? err->message : "no EOS within 90 s");
    g_clear_error(&err);
  }
  if (m)
    gst_message_unref(m);
  g_object_get(src, "stats", &st, NULL);
  gst_clear_buffer(&seen.prev);
  waitpid(pid, &status, 0);
  r = read(out_fd, child, sizeof child - 1);
  child[r > 0 ? r : 0] = 0;
  g_strchomp(child);

  printf("    io-mode=%s num-slots=%s max-slots=%s: %u frames in %.2f s (%.0f fps), imported %" G_GUINT64_FORMAT
         ", torn %u, rewritten while held %u, backwards %u, CPU checks %u, torn-discarded %" G_GUINT64_FORMAT ", missed %" G_GUINT64_FORMAT
         ", reopens %" G_GUINT64_FORMAT "; producer: %s%s%s\n",
         io_mode, num_slots, max_slots, seen.frames, (t1 - t0) / 1e6, seen.frames / ((t1 - t0) / 1e6),
         stat_u64(st, "imported"), seen.bad, seen.rewritten, seen.backwards, seen.full_checks,
         stat_u64(st, "torn-discarded"),
         stat_u64(st, "missed"), stat_u64(st, "reopens"), child,
         seen.first_bad[0] ? "; FIRST BAD: " : "", seen.first_bad);
  if (error[0])
    printf("      ERROR: %s\n", error);
  CHECK(!error[0]);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(seen.frames >= 100);
  CHECK_EQ_INT(seen.bad, 0);
  CHECK_EQ_INT(seen.rewritten, 0);
  CHECK_EQ_INT(seen.backwards, 0);
  CHECK_EQ_INT(stat_u64(st, "frames"), seen.frames);
  if (strcmp(io_mode, "copy") == 0)
    CHECK_EQ_INT(stat_u64(st, "imported"), 0);
  else /* one that falls behind, or holds N - 2, copies (docs/PROTOCOL.md) */
    CHECK(stat_u64(st, "imported") * 100 >= (guint64)seen.frames * min_imported_pct &&
          stat_u64(st, "imported") > 0);

done:
  gst_element_set_state(pipe, GST_STATE_NULL);
  if (st)
    gst_structure_free(st);
  if (pid)
    g_spawn_close_pid(pid);
  if (out_fd >= 0)
    close(out_fd);
  gst_object_unref(bus);
  gst_object_unref(src);
  gst_object_unref(out);
  gst_object_unref(pipe);
  g_free(desc);
  g_free(name);
}

/* this reader holds 2 slots (the frame in hand and the one before): with 4
 * slots it imports all but frames it is behind on; with 3 it holds one and
 * copies every other frame unless the ring grows */
static void test_import_unthrottled(void) { run_case("import", "4", "0", 80); }
static void test_import_growing(void) { run_case("import", "3", "6", 0); }
static void test_copy_unthrottled(void) { run_case("copy", "3", "0", 0); }

#define RUN(fn) RUN_WANTED(1, fn)

int
main(int argc, char **argv)
{
  char why[256] = "";
  cudalink_cuda_fn fn;

  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  gst_init(NULL, NULL);
  if (cudalink_cuda_load(why, sizeof why) != CUDALINK_OK) {
    printf("FAIL: no CUDA driver (%s): this suite needs a GPU\n", why);
    return 1;
  }
  fn = cudalink_cuda_symbol("cuMemsetD32_v2");
  memcpy(&memset_d32, &fn, sizeof memset_d32);
  fn = cudalink_cuda_symbol("cuMemcpyDtoH_v2");
  memcpy(&dtoh, &fn, sizeof dtoh);
  if (argc > 4 && strcmp(argv[1], "--stamp-producer") == 0)
    return producer_main(argv);
  self_path = g_file_read_link("/proc/self/exe", NULL);
  if (!self_path)
    self_path = argv[0];

  RUN(test_import_unthrottled);
  RUN(test_import_growing);
  RUN(test_copy_unthrottled);
  return TEST_SUMMARY();
}
