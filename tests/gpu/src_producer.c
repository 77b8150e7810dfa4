/* A cuda-link producer for the cudalinksrc GPU tests and benchmark: a
 * separate process that publishes the frames of src_pattern.h.
 *
 *   src_producer NAME WIDTH HEIGHT COMPS DTYPE [options]
 *
 *   --flags N           protocol flags (2 = MONO_ALPHA, 4 = BGRA)
 *   --slots N           ring size (default 3)
 *   --frames N          frames to publish, 0 = until SIGTERM (default 1000)
 *   --fps F             frames per second, 0 = unthrottled (default 0)
 *   --seed S            pattern seed (default 1)
 *   --start K           first frame index (default 0)
 *   --reformat-after K W H COMPS DTYPE
 *                       after K frames switch to that format (reformat)
 *   --foreign           speak the protocol by hand, like the Python and
 *                       TouchDesigner peers: no producer lock, no futex wake
 *   --hold-ms MS        stay alive this long after the last frame (300)
 *   --delay-ms MS       wait this long between READY and the first frame
 *
 * DTYPE: uint8 uint16 int8 int16 float16 bfloat16 float32.
 * Prints "READY" once the segment is valid, "REFORMAT" after a reformat,
 * "DONE <frames>" at the end (stdout, line buffered). SIGTERM / SIGINT end
 * it cleanly (shutdown flag, segment unlinked); SIGKILL leaves the segment
 * behind, as a crash would.
 *
 * Byte dtypes are built on the GPU (the base image once, then per frame a
 * device copy, one row memset and the two stamps), so that the producer
 * outruns any consumer; float dtypes are built on the host and uploaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"
#include "src_pattern.h"

static const cudalink_cuda *cu;
static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

static void
die(const char *what, const char *detail)
{
  fprintf(stderr, "src_producer: %s: %s\n", what, detail ? detail : "");
  exit(2);
}

static cudalink_dtype
parse_dtype(const char *s)
{
  for (int d = 0; d < CUDALINK_DTYPE_COUNT_; d++)
    if (strcmp(s, cudalink_dtype_name((cudalink_dtype)d)) == 0)
      return (cudalink_dtype)d;
  die("unknown dtype", s);
  return CUDALINK_DTYPE_UINT8;
}

static void
parse_format(char **argv, cudalink_format *f)
{
  memset(f, 0, sizeof *f);
  f->width = (uint32_t)strtoul(argv[0], NULL, 0);
  f->height = (uint32_t)strtoul(argv[1], NULL, 0);
  f->num_comps = (uint32_t)strtoul(argv[2], NULL, 0);
  f->dtype = parse_dtype(argv[3]);
  if (cudalink_format_sizes(f, NULL, NULL) != CUDALINK_OK)
    die("bad format", argv[0]);
}

/* --- frame building -------------------------------------------------- */

typedef struct {
  cudalink_format fmt;
  uint32_t seed;
  uint64_t size, row;
  uint8_t *host;       /* a whole frame (float path) */
  CUdeviceptr d_base;  /* the base image (byte path) */
} builder;

static void
builder_init(builder *b, const cudalink_format *fmt, uint32_t seed)
{
  memset(b, 0, sizeof *b);
  b->fmt = *fmt;
  b->seed = seed;
  b->size = srcpat_frame_size(fmt);
  b->row = b->size / fmt->height;
  b->host = malloc(b->size);
  if (!b->host)
    die("malloc", "frame");
  if (!srcpat_is_float(fmt->dtype)) {
    uint64_t i;
    for (i = 0; i < b->size; i++)
      b->host[i] = srcpat_base((uint32_t)i, seed);
    CK(cu->MemAlloc(&b->d_base, b->size));
    CK(cu->MemcpyHtoD(b->d_base, b->host, b->size));
  }
}

static void
builder_free(builder *b)
{
  if (b->d_base)
    cu->MemFree(b->d_base);
  free(b->host);
  memset(b, 0, sizeof *b);
}

static void
copy_async(CUdeviceptr dst, const void *host, CUdeviceptr dsrc, size_t bytes, CUstream s)
{
  CUDA_MEMCPY2D c;
  memset(&c, 0, sizeof c);
  if (host) {
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = host;
  } else {
    c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    c.srcDevice = dsrc;
  }
  c.srcPitch = bytes;
  c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstDevice = dst;
  c.dstPitch = bytes;
  c.WidthInBytes = bytes;
  c.Height = 1;
  CK(cu->Memcpy2DAsync(&c, s));
}

/* Enqueues frame k into dst (tightly packed) on s. Host memory handed to
 * the async copies is pageable: the driver stages it before returning, and
 * the caller synchronises before the next frame anyway. */
static void
builder_make(builder *b, uint32_t k, CUdeviceptr dst, CUstream s)
{
  static uint32_t stamp;
  if (srcpat_is_float(b->fmt.dtype)) {
    srcpat_fill(b->host, &b->fmt, k, b->seed);
    copy_async(dst, b->host, 0, b->size, s);
    return;
  }
  copy_async(dst, NULL, b->d_base, b->size, s);
  CK(cu->MemsetD8Async(dst + (k % b->fmt.height) * b->row, (unsigned char)((k * 7u + 1u) & 0xffu),
                       b->row, s));
  stamp = k;
  copy_async(dst, &stamp, 0, 4, s);
  copy_async(dst + b->size - 4, &stamp, 0, 4, s);
}

/* --- a protocol producer written by hand ("foreign") ------------------ */

typedef struct {
  char name[CUDALINK_MAX_NAME + 1];
  cudalink_header h;
  cudalink_layout L;
  uint8_t *base;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
  CUevent ev[CUDALINK_MAX_SLOTS];
  CUstream stream;
} foreign;

static void
foreign_create(foreign *f, const char *name, const cudalink_format *fmt, uint32_t slots)
{
  char path[300];
  int fd;
  uint32_t size;

  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  f->L = cudalink_layout_for(slots);
  snprintf(path, sizeof path, "/%s", name);
  fd = shm_open(path, O_CREAT | O_RDWR, 0600);
  if (fd < 0)
    die("shm_open", strerror(errno));
  if (ftruncate(fd, (off_t)f->L.size) != 0)
    die("ftruncate", strerror(errno));
  f->base = mmap(NULL, f->L.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (f->base == MAP_FAILED)
    die("mmap", strerror(errno));

  cudalink_format_sizes(fmt, &size, NULL);
  CK(cu->StreamCreate(&f->stream, CU_STREAM_NON_BLOCKING));
  f->h.num_slots = slots;
  f->h.format = *fmt;
  for (uint32_t s = 0; s < slots; s++) {
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    /* what the peers do: round up to 2 MiB */
    CK(cu->MemAlloc(&f->mem[s], ((size_t)size + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1)));
    CK(cu->EventCreate(&f->ev[s], CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING));
    CK(cu->IpcGetMemHandle(&mh, f->mem[s]));
    CK(cu->IpcGetEventHandle(&eh, f->ev[s]));
    memcpy(f->h.mem_handle[s], &mh, sizeof mh);
    memcpy(f->h.event_handle[s], &eh, sizeof eh);
  }
  /* the version continues from what a previous producer left */
  {
    cudalink_header old;
    f->h.version = cudalink_header_parse(f->base, f->L.size, &old) == CUDALINK_OK
                       ? old.version + 1
                       : 1;
  }
  f->h.write_idx = 0;
  if (cudalink_header_write(&f->h, f->base, f->L.size) != CUDALINK_OK)
    die("cudalink_header_write", "");
  atomic_thread_fence(memory_order_seq_cst);
}

static void
foreign_publish(foreign *f, builder *b, uint32_t k)
{
  uint32_t idx = f->h.write_idx, slot = idx % f->h.num_slots;
  double ts;

  builder_make(b, k, f->mem[slot], f->stream);
  CK(cu->EventRecord(f->ev[slot], f->stream));
  CK(cu->StreamSynchronize(f->stream));
  ts = cudalink_now();
  memcpy(f->base + f->L.timestamp, &ts, sizeof ts);
  f->base[f->L.shutdown_flag] = 0;
  f->h.write_idx = idx + 1;
  atomic_store_explicit((_Atomic uint32_t *)(void *)(f->base + f->L.write_idx), idx + 1,
                        memory_order_release);
}

static void
foreign_destroy(foreign *f)
{
  char path[300];
  f->base[f->L.shutdown_flag] = 1;
  for (uint32_t s = 0; s < f->h.num_slots; s++)
    memset(f->base + f->L.mem_handle0 + s * f->L.slot_stride, 0, 128);
  atomic_thread_fence(memory_order_seq_cst);
  for (uint32_t s = 0; s < f->h.num_slots; s++)
    cu->EventDestroy(f->ev[s]);
  cu->StreamDestroy(f->stream);
  usleep(100 * 1000);
  for (uint32_t s = 0; s < f->h.num_slots; s++)
    cu->MemFree(f->mem[s]);
  munmap(f->base, f->L.size);
  snprintf(path, sizeof path, "/%s", f->name);
  shm_unlink(path);
}

/* --- main ------------------------------------------------------------ */

static void
pace(struct timespec *next, double fps)
{
  long step;
  if (fps <= 0)
    return;
  step = (long)(1e9 / fps);
  next->tv_nsec += step;
  while (next->tv_nsec >= 1000000000L) {
    next->tv_nsec -= 1000000000L;
    next->tv_sec++;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR && !stop_requested)
    ;
}

int
main(int argc, char **argv)
{
  cudalink_format fmt, fmt2;
  uint32_t slots = 3, frames = 1000, seed = 1, start = 0, reformat_after = 0, hold_ms = 300;
  uint32_t delay_ms = 0;
  uint16_t flags = 0;
  double fps = 0;
  int use_foreign = 0, have_reformat = 0;
  cudalink_status st;
  char why[256];
  CUdevice dev;
  CUcontext ctx;
  builder b;
  uint32_t n = 0;
  struct timespec next;
  struct sigaction sa;

  if (argc < 6) {
    fprintf(stderr, "usage: %s NAME WIDTH HEIGHT COMPS DTYPE [options] (see the source)\n",
            argv[0]);
    return 2;
  }
  parse_format(argv + 2, &fmt);
  for (int i = 6; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--flags") && i + 1 < argc)
      flags = (uint16_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--slots") && i + 1 < argc)
      slots = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--frames") && i + 1 < argc)
      frames = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--fps") && i + 1 < argc)
      fps = strtod(argv[++i], NULL);
    else if (!strcmp(a, "--seed") && i + 1 < argc)
      seed = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--start") && i + 1 < argc)
      start = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--hold-ms") && i + 1 < argc)
      hold_ms = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--delay-ms") && i + 1 < argc)
      delay_ms = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(a, "--foreign"))
      use_foreign = 1;
    else if (!strcmp(a, "--reformat-after") && i + 5 < argc) {
      reformat_after = (uint32_t)strtoul(argv[++i], NULL, 0);
      parse_format(argv + i + 1, &fmt2);
      i += 4;
      have_reformat = 1;
    } else
      die("unknown option", a);
  }
  fmt.flags = flags;
  fmt2.flags = flags;
  if (use_foreign && have_reformat)
    die("--foreign", "does not reformat");

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);

  cu = cudalink_cuda_get(&st, why, sizeof why);
  if (!cu)
    die("no CUDA", why);
  CK(cu->DeviceGet(&dev, 0));
  CK(cu->DevicePrimaryCtxRetain(&ctx, dev));
  CK(cu->CtxPushCurrent(ctx));

  builder_init(&b, &fmt, seed);

  if (use_foreign) {
    foreign f;
    foreign_create(&f, argv[1], &fmt, slots);
    printf("READY\n");
    usleep(delay_ms * 1000);
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stop_requested && (frames == 0 || n < frames)) {
      foreign_publish(&f, &b, start + n);
      n++;
      pace(&next, fps);
    }
    printf("DONE %u\n", n);
    for (uint32_t w = 0; w < hold_ms && !stop_requested; w += 10)
      usleep(10 * 1000);
    foreign_destroy(&f);
  } else {
    cudalink_producer_config cfg;
    cudalink_producer *p = NULL;
    CUstream s;

    cudalink_producer_config_init(&cfg);
    cfg.name = argv[1];
    cfg.num_slots = slots;
    cfg.cuda_context = ctx;
    st = cudalink_producer_create(&cfg, &fmt, &p);
    if (st != CUDALINK_OK)
      die("cudalink_producer_create", cudalink_status_name(st));
    s = (CUstream)cudalink_producer_stream(p);
    printf("READY\n");
    usleep(delay_ms * 1000);
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stop_requested && (frames == 0 || n < frames)) {
      uint64_t dst;
      size_t pitch;
      if (have_reformat && n == reformat_after) {
        st = cudalink_producer_reformat(p, &fmt2);
        if (st != CUDALINK_OK)
          die("cudalink_producer_reformat", cudalink_producer_last_error(p));
        builder_free(&b);
        builder_init(&b, &fmt2, seed);
        printf("REFORMAT\n");
      }
      st = cudalink_producer_begin(p, &dst, &pitch);
      if (st != CUDALINK_OK)
        die("cudalink_producer_begin", cudalink_status_name(st));
      builder_make(&b, start + n, (CUdeviceptr)dst, s);
      st = cudalink_producer_commit(p, s, 1);
      if (st != CUDALINK_OK)
        die("cudalink_producer_commit", cudalink_producer_last_error(p));
      n++;
      pace(&next, fps);
    }
    printf("DONE %u\n", n);
    for (uint32_t w = 0; w < hold_ms && !stop_requested; w += 10)
      usleep(10 * 1000);
    cudalink_producer_destroy(p);
  }

  builder_free(&b);
  cu->CtxPopCurrent(NULL);
  cu->DevicePrimaryCtxRelease(dev);
  return 0;
}
