/* One side of one cell of tests/bench/run's matrix (a program, not a test;
 * needs a GPU). tests/bench/matrix.py starts a producer and a consumer and
 * talks to both over stdin / stdout.
 *
 *   bench_peer produce 'SINK' WIDTH HEIGHT [PLAN OPTIONS] [--ring N]
 *       videotestsrc num-buffers=1 ! video/x-raw,format=RGBA,... ! cudaupload (CUDA caps forced:
 *         cudalinksink and cudadownload would also take system memory)
 *       ! imagefreeze name=frz ! SINK
 *   bench_peer consume 'SRC' [--lat-out FILE] [--start-timeout S] [--max-s S]
 *       SRC ! fakesink sync=false async=false enable-last-sample=false
 *
 * (PLAN OPTIONS: --unthrottled-s --cpu60-s --lat-frames --lat-fps
 * --lat-max-s --warm-fps, peerstats.h.) GStreamer 1.22's API only and no
 * link to libgstcuda: the same binary runs under Debian's 1.22 (.gpu/) and
 * under the GStreamer 1.26 anchor (.anchor/), whose libraries it then
 * loads. CUDA goes through the driver that libcudalink dlopen()s.
 *
 * Producer: a pad probe on imagefreeze's src pad paces the frames (the
 * schedule of peerstats.h) and, just before each one enters SINK, stamps it
 * on the GPU (peerstats.h). The frames come from a ring of --ring (default
 * 8) deep copies of the uploaded frame, as a pool would give them: a copy
 * still held downstream (a zero-copy consumer, the sink's last sample) is
 * not written; when all are held, the probe waits for one (as a pool
 * acquire would), up to 1 s. Prints READY once frames flow, then waits for
 * "go" on stdin; prints DONE and a PRODUCER line once the latency phase is
 * over; "quit" or end of input stops it.
 *
 * Consumer: a pad probe on fakesink's sink pad (the buffer as SRC pushed
 * it) reads each frame's stamp back: GStreamer >= 1.24 memory is first
 * synced (gst_cuda_memory_sync, what a CUDA element downstream does), then
 * mapped with GST_MAP_READ | GST_MAP_CUDA and read with a synchronous
 * device-to-host copy in the memory's own CUDA context. Prints READY at the
 * first stamped frame; "quit" or end of input prints a RESULT line (JSON)
 * and writes the latencies to FILE.
 *
 * Lines that start with ERROR say why a side could not run; exit status 2:
 * no CUDA driver. BENCH_PEER_ANY_MEMORY=1 takes system memory for device
 * memory: tests/bench/rehearse.sh only (a fake libcuda, fake elements). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/video/video.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "peerstats.h"

/* gstcudamemory.h's, without its header (no libgstcuda at link time) */
#define MAP_CUDA (GST_MAP_FLAG_LAST << 1)
#define CUDA_MEMORY_TYPE "gst.cuda.memory"
#define RING_MAX 16

/* the start of a GstCudaMemory (1.22 to 1.26) */
typedef struct {
  GstMemory mem;
  GstObject *context;
  GstVideoInfo info;
} CudaMemHead;

typedef CUresult(CUDAAPI *ptr_attr_fn)(void *, CUpointer_attribute, CUdeviceptr);
typedef CUcontext (*ctx_handle_fn)(gpointer);
typedef void (*mem_sync_fn)(GstMemory *);

static const cudalink_cuda *cu;
static ptr_attr_fn get_ptr_attr;
/* from the libgstcuda that the elements loaded (1.24+ for mem_sync) */
static ctx_handle_fn ctx_get_handle;
static mem_sync_fn mem_sync;
static gboolean gstcuda_looked_up;
static CUcontext primary_ctx;

static volatile gint go_flag, quit_flag;
static GMutex out_lock;

static void
say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
say(const char *fmt, ...)
{
  va_list ap;
  g_mutex_lock(&out_lock);
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
  g_mutex_unlock(&out_lock);
}

/* A one-line form of a message: no newlines in what the driver script
 * records as the cell's reason. */
static gchar *
one_line(const char *s)
{
  gchar *o = g_strdup(s ? s : "?");
  for (gchar *p = o; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return o;
}

static gpointer
stdin_thread(gpointer data)
{
  char line[128];
  (void)data;
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "go", 2) == 0)
      g_atomic_int_set(&go_flag, 1);
    else if (strncmp(line, "quit", 4) == 0)
      break;
  }
  g_atomic_int_set(&quit_flag, 1);
  return NULL;
}

static void
look_up_gstcuda(void)
{
  void *h;
  if (gstcuda_looked_up)
    return;
  gstcuda_looked_up = TRUE;
  h = dlopen("libgstcuda-1.0.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (!h)
    return;
  ctx_get_handle = (ctx_handle_fn)dlsym(h, "gst_cuda_context_get_handle");
  mem_sync = (mem_sync_fn)dlsym(h, "gst_cuda_memory_sync");
}

static gboolean
is_cuda_memory(GstMemory *mem)
{
  return mem && gst_memory_is_type(mem, CUDA_MEMORY_TYPE);
}

/* BENCH_PEER_ANY_MEMORY=1: take system memory as if it were device memory,
 * for tests/bench/rehearse.sh's fake libcuda (whose device pointers are
 * host pointers) and fake CUDA elements. Never on a GPU. */
static gboolean any_memory;

static gboolean
usable_memory(GstMemory *mem)
{
  return mem && (any_memory || is_cuda_memory(mem));
}

/* The CUDA context to read or write p (of mem) in: the memory's own
 * GstCudaContext, else the pointer's context, else the device's primary
 * context (memory mapped with cuMemMap belongs to no context). */
static CUcontext
context_of(GstMemory *mem, CUdeviceptr p)
{
  CUcontext c = NULL;
  const CudaMemHead *head = (const CudaMemHead *)mem;

  look_up_gstcuda();
  if (ctx_get_handle && is_cuda_memory(mem) && head->context)
    c = ctx_get_handle(head->context);
  if (!c && get_ptr_attr && get_ptr_attr(&c, CU_POINTER_ATTRIBUTE_CONTEXT, p) != CUDA_SUCCESS)
    c = NULL;
  if (!c) {
    if (!primary_ctx) {
      int ordinal = 0;
      CUdevice dev;
      if (get_ptr_attr)
        get_ptr_attr(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p);
      if (cu->DeviceGet(&dev, ordinal) == CUDA_SUCCESS)
        cu->DevicePrimaryCtxRetain(&primary_ctx, dev);
    }
    c = primary_ctx;
  }
  return c;
}

typedef struct {
  gboolean ok;
  int width, height;
  size_t row; /* bytes of pixels in a row */
} Geometry;

static gboolean
geometry_from_pad(GstPad *pad, Geometry *g)
{
  GstCaps *caps = gst_pad_get_current_caps(pad);
  GstVideoInfo vi;

  memset(g, 0, sizeof *g);
  if (caps && gst_video_info_from_caps(&vi, caps)) {
    g->width = GST_VIDEO_INFO_WIDTH(&vi);
    g->height = GST_VIDEO_INFO_HEIGHT(&vi);
    g->row = (size_t)g->width * GST_VIDEO_INFO_COMP_PSTRIDE(&vi, 0);
    g->ok = g->row >= sizeof(Stamp) && g->height > 0;
  }
  if (caps)
    gst_caps_unref(caps);
  return g->ok;
}

/* Where the frame starts in the mapped memory, and where its last 8 bytes
 * are (the end of the last row, pitch from the video meta, else from the
 * CUDA memory's own layout, else packed). */
static void
frame_offsets(GstBuffer *buf, GstMemory *mem, const Geometry *g, size_t *head, size_t *tail)
{
  GstVideoMeta *vm = gst_buffer_get_video_meta(buf);
  size_t stride = g->row;

  *head = 0;
  if (vm && vm->n_planes >= 1 && vm->stride[0] > 0) {
    stride = (size_t)vm->stride[0];
    *head = vm->offset[0];
  } else if (is_cuda_memory(mem)) {
    const CudaMemHead *h = (const CudaMemHead *)mem;
    if (GST_VIDEO_INFO_PLANE_STRIDE(&h->info, 0) > 0)
      stride = (size_t)GST_VIDEO_INFO_PLANE_STRIDE(&h->info, 0);
  }
  *tail = *head + stride * (size_t)(g->height - 1) + g->row - sizeof(uint64_t);
}

/* ------------------------------------------------------------------ */
/* producer                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
  Schedule sched;
  Geometry geom;
  GstBuffer *ring[RING_MAX];
  int ring_n, ring_want, ring_next;
  gboolean ring_tried;
  uint64_t counter;
  uint64_t pool_waits, held_overwrites, forced_writes;
  volatile gint flowing, done_seen;
  gboolean ready_said, done_said; /* by the main thread */
  gchar *error;                   /* the first stamping failure */
} Producer;

static void
ring_make(Producer *P, GstBuffer *in)
{
  P->ring_tried = TRUE;
  for (int i = 0; i < P->ring_want && i < RING_MAX; i++) {
    GstBuffer *c = NULL;
    GstMapInfo mi;
    if (!is_cuda_memory(gst_buffer_peek_memory(in, 0)) && gst_buffer_map(in, &mi, GST_MAP_READ)) {
      /* the rehearsal's system memory: plain memory, whatever allocator
       * (shmsink's, through fake passthrough elements) made the input */
      c = gst_buffer_new_allocate(NULL, mi.size, NULL);
      gst_buffer_fill(c, 0, mi.data, mi.size);
      gst_buffer_unmap(in, &mi);
      gst_buffer_copy_into(c, in, GST_BUFFER_COPY_METADATA, 0, -1);
    } else {
      c = gst_buffer_copy_deep(in);
    }
    if (!c || gst_buffer_n_memory(c) != 1 || !usable_memory(gst_buffer_peek_memory(c, 0))) {
      if (c)
        gst_buffer_unref(c);
      break;
    }
    P->ring[P->ring_n++] = c;
  }
}

/* The next ring buffer that nobody downstream holds; waits for one (1 s at
 * most) when all are held. -1: no ring. */
static int
ring_pick(Producer *P)
{
  gint64 give_up = g_get_monotonic_time() + G_USEC_PER_SEC;
  gboolean waited = FALSE;

  if (!P->ring_n)
    return -1;
  for (;;) {
    for (int k = 0; k < P->ring_n; k++) {
      int i = (P->ring_next + k) % P->ring_n;
      if (GST_MINI_OBJECT_REFCOUNT_VALUE(P->ring[i]) == 1) {
        P->ring_next = (i + 1) % P->ring_n;
        P->pool_waits += waited;
        return i;
      }
    }
    if (g_get_monotonic_time() > give_up) {
      int i = P->ring_next;
      P->ring_next = (i + 1) % P->ring_n;
      P->held_overwrites++;
      return i;
    }
    waited = TRUE;
    g_usleep(50);
  }
}

/* Writes the tail counter, then the Stamp, into buf's frame on the GPU;
 * NULL or why not. */
static const char *
stamp_frame(Producer *P, GstBuffer *buf, uint64_t counter, int phase)
{
  GstMemory *mem = gst_buffer_peek_memory(buf, 0);
  GstMapInfo mi;
  size_t head, tail;
  CUdeviceptr base;
  Stamp s;
  CUresult r;
  gboolean mapped = FALSE;

  if (gst_buffer_n_memory(buf) != 1 || !usable_memory(mem))
    return "the frame is not one CUDA memory";
  if (gst_buffer_is_writable(buf) && !GST_MEMORY_IS_READONLY(mem))
    mapped = gst_buffer_map(buf, &mi, GST_MAP_WRITE | MAP_CUDA);
  if (!mapped) {
    /* shared with imagefreeze (no ring): write through a read mapping */
    mapped = gst_buffer_map(buf, &mi, GST_MAP_READ | MAP_CUDA);
    P->forced_writes += mapped;
  }
  if (!mapped)
    return "cannot map the frame's CUDA memory";
  frame_offsets(buf, mem, &P->geom, &head, &tail);
  base = (CUdeviceptr)mi.data;
  r = cu->CtxPushCurrent(context_of(mem, base));
  if (r == CUDA_SUCCESS) {
    r = cu->MemcpyHtoD(base + tail, &counter, sizeof counter);
    s.counter = counter;
    s.phase = (uint64_t)phase;
    s.magic = STAMP_MAGIC;
    s.t_ns = mono_ns();
    if (r == CUDA_SUCCESS)
      r = cu->MemcpyHtoD(base + head, &s, sizeof s);
    if (r == CUDA_SUCCESS)
      r = cu->StreamSynchronize(NULL);
    cu->CtxPopCurrent(NULL);
  }
  gst_buffer_unmap(buf, &mi);
  return r == CUDA_SUCCESS ? NULL : "a CUDA copy of the stamp failed";
}

static GstPadProbeReturn
on_produce(GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Producer *P = user_data;
  GstBuffer *in = GST_PAD_PROBE_INFO_BUFFER(info), *out = in;
  double due;
  const char *why;
  int ph, i;

  if (!P->geom.ok && !geometry_from_pad(pad, &P->geom)) {
    if (!P->error)
      P->error = g_strdup("no video caps on imagefreeze's src pad");
    return GST_PAD_PROBE_OK;
  }
  if (!P->ring_tried)
    ring_make(P, in);
  ph = sched_begin_frame(&P->sched, g_atomic_int_get(&go_flag), cudalink_now(), &due);
  sleep_until(due);
  i = ring_pick(P);
  if (i >= 0) {
    /* stamped while only the ring holds it (writable), then pushed as a
     * reference; one held downstream for over a second goes out as a new
     * buffer on its memory */
    out = gst_buffer_is_writable(P->ring[i]) ? P->ring[i] : gst_buffer_copy(P->ring[i]);
    gst_buffer_copy_into(out, in, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  }
  why = stamp_frame(P, out, P->counter, ph);
  if (why && !P->error)
    P->error = g_strdup(why);
  if (out != in) {
    if (out == P->ring[i])
      gst_buffer_ref(out);
    gst_buffer_unref(in);
    GST_PAD_PROBE_INFO_DATA(info) = out;
  }
  P->counter++;
  sched_end_frame(&P->sched, ph, cudalink_now());
  g_atomic_int_set(&P->flowing, 1);
  if (P->sched.done)
    g_atomic_int_set(&P->done_seen, 1);
  return GST_PAD_PROBE_OK;
}

static int
run_pipeline_loop(GstElement *pipe, gboolean (*step)(gpointer), gpointer data)
{
  GstBus *bus = gst_element_get_bus(pipe);
  int rc = 0;

  while (!g_atomic_int_get(&quit_flag)) {
    GstMessage *m =
        gst_bus_timed_pop_filtered(bus, 20 * GST_MSECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
    if (m) {
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        GError *e = NULL;
        gchar *dbg = NULL, *line;
        gst_message_parse_error(m, &e, &dbg);
        line = one_line(e ? e->message : "?");
        say("ERROR %s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)), line);
        g_free(line);
        line = one_line(dbg);
        fprintf(stderr, "debug: %s\n", line);
        g_free(line);
        g_clear_error(&e);
        g_free(dbg);
      } else {
        say("ERROR end of stream");
      }
      gst_message_unref(m);
      rc = 1;
      break;
    }
    if (step && !step(data)) {
      rc = 1;
      break;
    }
  }
  gst_object_unref(bus);
  return rc;
}

static gboolean
produce_step(gpointer data)
{
  Producer *P = data;

  if (!P->ready_said && g_atomic_int_get(&P->flowing)) {
    P->ready_said = TRUE;
    say("READY ring=%d", P->ring_n);
  }
  if (!P->done_said && g_atomic_int_get(&P->done_seen)) {
    gchar *extra = g_strdup_printf(
        "\"ring\": %d, \"pool_waits\": %" G_GUINT64_FORMAT ", \"held_overwrites\": %" G_GUINT64_FORMAT
        ", \"forced_writes\": %" G_GUINT64_FORMAT ", \"stamp_error\": \"%s\"",
        P->ring_n, P->pool_waits, P->held_overwrites, P->forced_writes,
        P->error ? P->error : "");
    P->done_said = TRUE;
    g_mutex_lock(&out_lock);
    sched_print(&P->sched, stdout, extra);
    g_mutex_unlock(&out_lock);
    say("DONE");
    g_free(extra);
  }
  return TRUE;
}

/* Prints a STATS line (into the cell's log) for each element of pipe that
 * has a GstStructure "stats" property (cudalinksink, cudalinksrc): their
 * own view of the time a frame spends in them, to tell where a latency
 * goes. */
static void
print_element_stats(GstElement *pipe)
{
  GstIterator *it = gst_bin_iterate_elements(GST_BIN(pipe));
  GValue item = G_VALUE_INIT;

  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *el = g_value_get_object(&item);
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(el), "stats");
    GstStructure *st = NULL;

    if (ps && G_PARAM_SPEC_VALUE_TYPE(ps) == GST_TYPE_STRUCTURE)
      g_object_get(el, "stats", &st, NULL);
    if (st) {
      gchar *text = gst_structure_to_string(st);
      g_mutex_lock(&out_lock);
      printf("STATS %s %s\n", GST_OBJECT_NAME(el), text);
      fflush(stdout);
      g_mutex_unlock(&out_lock);
      g_free(text);
      gst_structure_free(st);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}

static GstElement *
launch(const char *desc)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch_full(desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!pipe || err) {
    gchar *line = one_line(err ? err->message : "?");
    say("ERROR cannot build '%s': %s", desc, line);
    g_free(line);
    g_clear_error(&err);
    if (pipe)
      gst_object_unref(pipe);
    return NULL;
  }
  return pipe;
}

static int
produce_main(int argc, char **argv)
{
  Producer P;
  Plan plan;
  GstElement *pipe, *frz;
  GstPad *pad;
  gchar *desc;
  int w, h, rc;

  if (argc < 5) {
    fprintf(stderr, "usage: bench_peer produce 'SINK' WIDTH HEIGHT [options]\n");
    return 64;
  }
  memset(&P, 0, sizeof P);
  P.ring_want = 8;
  plan_defaults(&plan);
  w = atoi(argv[3]);
  h = atoi(argv[4]);
  for (int i = 5; i < argc; i++) {
    if (plan_option(&plan, argc, argv, &i))
      continue;
    if (strcmp(argv[i], "--ring") == 0 && i + 1 < argc)
      P.ring_want = atoi(argv[++i]);
    else {
      fprintf(stderr, "bench_peer produce: unknown option %s\n", argv[i]);
      return 64;
    }
  }
  sched_init(&P.sched, &plan);
  desc = g_strdup_printf("videotestsrc num-buffers=1 pattern=black ! "
                         "video/x-raw,format=RGBA,width=%d,height=%d,framerate=200/1 ! "
                         "cudaupload ! video/x-raw(memory:CUDAMemory) ! imagefreeze name=frz ! %s",
                         w, h, argv[2]);
  pipe = launch(desc);
  g_free(desc);
  if (!pipe)
    return 1;
  frz = gst_bin_get_by_name(GST_BIN(pipe), "frz");
  pad = gst_element_get_static_pad(frz, "src");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_produce, &P, NULL);
  gst_object_unref(pad);
  gst_object_unref(frz);
  g_thread_unref(g_thread_new("stdin", stdin_thread, NULL));
  if (gst_element_set_state(pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    say("ERROR the producer pipeline does not start");
    rc = 1;
  } else {
    rc = run_pipeline_loop(pipe, produce_step, &P);
  }
  print_element_stats(pipe);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  for (int i = 0; i < P.ring_n; i++)
    gst_buffer_unref(P.ring[i]);
  if (P.error)
    fprintf(stderr, "stamping: %s\n", P.error);
  g_free(P.error);
  return rc;
}

/* ------------------------------------------------------------------ */
/* consumer                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
  PhaseStats ph[PH_N];
  Geometry geom;
  GstCaps *geom_caps;
  uint64_t foreign, not_cuda, map_failed, cuda_errors;
  volatile gint ready;
  gchar *error;
} Consumer;

static GstPadProbeReturn
on_consume(GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Consumer *C = user_data;
  uint64_t arrived;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMemory *mem = gst_buffer_n_memory(buf) == 1 ? gst_buffer_peek_memory(buf, 0) : NULL;
  GstCaps *caps = gst_pad_get_current_caps(pad);
  GstMapInfo mi;
  size_t head, tail_off;
  CUdeviceptr base;
  CUresult r;
  Stamp s;
  uint64_t tail = 0, now;

  if (caps != C->geom_caps) {
    gst_caps_replace(&C->geom_caps, caps);
    geometry_from_pad(pad, &C->geom);
  }
  if (caps)
    gst_caps_unref(caps);
  if (!C->geom.ok)
    return GST_PAD_PROBE_OK;
  if (!usable_memory(mem)) {
    C->not_cuda++;
    return GST_PAD_PROBE_OK;
  }
  look_up_gstcuda();
  if (mem_sync && is_cuda_memory(mem))
    mem_sync(mem);
  if (!gst_buffer_map(buf, &mi, GST_MAP_READ | MAP_CUDA)) {
    C->map_failed++;
    return GST_PAD_PROBE_OK;
  }
  frame_offsets(buf, mem, &C->geom, &head, &tail_off);
  base = (CUdeviceptr)mi.data;
  /* the stamp read starts here: what the sync and the map above waited
   * for (a src's own copy still on its stream) is the transport's */
  arrived = mono_ns();
  r = cu->CtxPushCurrent(context_of(mem, base));
  if (r == CUDA_SUCCESS) {
    r = cu->MemcpyDtoH(&s, base + head, sizeof s);
    now = mono_ns();
    if (r == CUDA_SUCCESS)
      r = cu->MemcpyDtoH(&tail, base + tail_off, sizeof tail);
    cu->CtxPopCurrent(NULL);
  }
  gst_buffer_unmap(buf, &mi);
  if (r != CUDA_SUCCESS) {
    const char *name = "?";
    cu->GetErrorName(r, &name);
    if (!C->error)
      C->error = g_strdup_printf("reading the stamp: %s", name);
    C->cuda_errors++;
    return GST_PAD_PROBE_OK;
  }
  if (s.magic != STAMP_MAGIC) {
    C->foreign++;
    return GST_PAD_PROBE_OK;
  }
  phase_add(C->ph, s.phase, s.counter, tail != s.counter, ((double)(int64_t)(now - s.t_ns)) / 1e3,
            (double)(now - arrived) / 1e3,
            (double)now / 1e9);
  g_atomic_int_set(&C->ready, 1);
  return GST_PAD_PROBE_OK;
}

typedef struct {
  Consumer *C;
  double start_s;
  gint64 start_deadline, end_deadline;
  gboolean ready_said;
} ConsumeLoop;

static gboolean
consume_step(gpointer data)
{
  ConsumeLoop *L = data;
  gint64 now = g_get_monotonic_time();

  if (!L->ready_said && g_atomic_int_get(&L->C->ready)) {
    L->ready_said = TRUE;
    say("READY");
  }
  if (!L->ready_said && now > L->start_deadline) {
    if (L->C->not_cuda)
      say("ERROR the source pushed %" G_GUINT64_FORMAT " frames, none in CUDA memory",
          L->C->not_cuda);
    else if (L->C->foreign)
      say("ERROR %" G_GUINT64_FORMAT " frames arrived, none stamped", L->C->foreign);
    else
      say("ERROR no frame arrived within %.0f s", L->start_s);
    return FALSE;
  }
  if (now > L->end_deadline) {
    say("ERROR still running after its --max-s");
    return FALSE;
  }
  return TRUE;
}

static int
consume_main(int argc, char **argv)
{
  Consumer C;
  ConsumeLoop L;
  GstElement *pipe, *out;
  GstPad *pad;
  gchar *desc;
  const char *lat_out = NULL;
  double start_s = 20, max_s = 120;
  int rc;

  if (argc < 3) {
    fprintf(stderr, "usage: bench_peer consume 'SRC' [--lat-out FILE] [--start-timeout S]\n");
    return 64;
  }
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--lat-out") == 0 && i + 1 < argc)
      lat_out = argv[++i];
    else if (strcmp(argv[i], "--start-timeout") == 0 && i + 1 < argc)
      start_s = atof(argv[++i]);
    else if (strcmp(argv[i], "--max-s") == 0 && i + 1 < argc)
      max_s = atof(argv[++i]);
    else {
      fprintf(stderr, "bench_peer consume: unknown option %s\n", argv[i]);
      return 64;
    }
  }
  memset(&C, 0, sizeof C);
  phases_init(C.ph);
  desc = g_strdup_printf("%s ! fakesink name=out sync=false async=false enable-last-sample=false",
                         argv[2]);
  pipe = launch(desc);
  g_free(desc);
  if (!pipe)
    return 1;
  out = gst_bin_get_by_name(GST_BIN(pipe), "out");
  pad = gst_element_get_static_pad(out, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_consume, &C, NULL);
  gst_object_unref(pad);
  gst_object_unref(out);
  g_thread_unref(g_thread_new("stdin", stdin_thread, NULL));
  memset(&L, 0, sizeof L);
  L.C = &C;
  L.start_s = start_s;
  L.start_deadline = g_get_monotonic_time() + (gint64)(start_s * 1e6);
  L.end_deadline = g_get_monotonic_time() + (gint64)(max_s * 1e6);
  if (gst_element_set_state(pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    say("ERROR the consumer pipeline does not start");
    rc = 1;
  } else {
    rc = run_pipeline_loop(pipe, consume_step, &L);
  }
  print_element_stats(pipe);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  gst_caps_replace(&C.geom_caps, NULL);
  if (L.ready_said) {
    g_mutex_lock(&out_lock);
    fputs("RESULT {\"phases\": ", stdout);
    phases_print_json(C.ph, stdout);
    printf(", \"unstamped\": %" G_GUINT64_FORMAT ", \"not_cuda\": %" G_GUINT64_FORMAT
           ", \"map_failed\": %" G_GUINT64_FORMAT ", \"cuda_errors\": %" G_GUINT64_FORMAT
           ", \"error\": \"%s\"}\n",
           C.foreign, C.not_cuda, C.map_failed, C.cuda_errors, C.error ? C.error : "");
    fflush(stdout);
    g_mutex_unlock(&out_lock);
    if (phases_write_latencies(C.ph, lat_out) != 0)
      say("ERROR cannot write %s", lat_out);
  }
  phases_free(C.ph);
  g_free(C.error);
  return rc;
}

int
main(int argc, char **argv)
{
  cudalink_status st;
  char why[256];

  if (argc < 2 || (strcmp(argv[1], "produce") != 0 && strcmp(argv[1], "consume") != 0)) {
    fprintf(stderr, "usage: bench_peer produce|consume ... (tests/bench/matrix.py runs it)\n");
    return 64;
  }
  cu = cudalink_cuda_get(&st, why, sizeof why);
  if (!cu) {
    say("ERROR bench_peer: no CUDA driver: %s", why);
    return 2;
  }
  get_ptr_attr = (ptr_attr_fn)cudalink_cuda_symbol("cuPointerGetAttribute");
  any_memory = g_strcmp0(g_getenv("BENCH_PEER_ANY_MEMORY"), "1") == 0;
  gst_init(NULL, NULL);
  return strcmp(argv[1], "produce") == 0 ? produce_main(argc, argv) : consume_main(argc, argv);
}
