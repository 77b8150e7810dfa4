/* GPU suite for libcudalink: a producer and consumers in separate
 * processes on one GPU. The parent process never touches CUDA: every role
 * runs in a forked child, talking to the others over pipes.
 *
 * Frames are recognisable: frame k of a ring is a fixed pseudo-random base
 * image P, with row (k % height) filled with byte (k * 7 + 1) and the
 * frame number k stamped little-endian into its first and last 4 bytes.
 * A consumer rebuilds the expected bytes on the host and compares.
 *
 * Exits non-zero when there is no GPU: this suite never skips. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"
#include "testutil.h"

static char seg[96];
static volatile sig_atomic_t stop_requested;
static const cudalink_cuda *cu;
static CUcontext ctx;

#define ST(call)                                                                       \
  do {                                                                                 \
    cudalink_status s_ = (call);                                                       \
    if (s_ != CUDALINK_OK) {                                                           \
      fprintf(stderr, "  %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                  \
              cudalink_status_name(s_));                                               \
      _exit(71);                                                                       \
    }                                                                                  \
  } while (0)

/* --- child-side helpers ---------------------------------------------- */

static void
cuda_up(void)
{
  char why[256];
  if (!(cu = cudalink_cuda_up(&ctx, why, sizeof why))) {
    fprintf(stderr, "  no CUDA: %s\n", why);
    _exit(72);
  }
}

static void
fill_base(uint8_t *p, size_t n, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

static void
expected_frame(uint8_t *out, const uint8_t *base, size_t size, size_t row, uint32_t height,
               uint32_t k)
{
  size_t r = k % height;
  memcpy(out, base, size);
  memset(out + r * row, (int)((k * 7 + 1) & 0xff), row);
  memcpy(out, &k, 4);
  memcpy(out + size - 4, &k, 4);
}

typedef struct {
  cudalink_format fmt;
  uint32_t size, row;
  CUdeviceptr d_base, d_frame;
  uint8_t *h_base;
} framegen;

static void
framegen_init(framegen *g, const cudalink_format *fmt, uint32_t seed)
{
  memset(g, 0, sizeof *g);
  g->fmt = *fmt;
  ST(cudalink_format_sizes(fmt, &g->size, &g->row));
  g->h_base = malloc(g->size);
  fill_base(g->h_base, g->size, seed);
  CK(cu->MemAlloc(&g->d_base, g->size));
  CK(cu->MemAlloc(&g->d_frame, g->size));
  CK(cu->MemcpyHtoD(g->d_base, g->h_base, g->size));
}

static void
framegen_free(framegen *g)
{
  cu->MemFree(g->d_base);
  cu->MemFree(g->d_frame);
  free(g->h_base);
}

/* Enqueues frame k into g->d_frame on stream. */
static void
framegen_make(framegen *g, uint32_t k, CUstream s)
{
  CUDA_MEMCPY2D cp;
  memset(&cp, 0, sizeof cp);
  cp.srcMemoryType = cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.srcDevice = g->d_base;
  cp.dstDevice = g->d_frame;
  cp.srcPitch = cp.dstPitch = g->row;
  cp.WidthInBytes = g->row;
  cp.Height = g->fmt.height;
  CK(cu->Memcpy2DAsync(&cp, s));
  CK(cu->MemsetD8Async(g->d_frame + (size_t)(k % g->fmt.height) * g->row,
                       (unsigned char)((k * 7 + 1) & 0xff), g->row, s));
  for (int b = 0; b < 4; b++) {
    CK(cu->MemsetD8Async(g->d_frame + b, (unsigned char)(k >> (8 * b)), 1, s));
    CK(cu->MemsetD8Async(g->d_frame + g->size - 4 + b, (unsigned char)(k >> (8 * b)), 1, s));
  }
}

static cudalink_producer *
producer_up(const cudalink_format *fmt, uint32_t slots)
{
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  cudalink_status st;
  cudalink_producer_config_init(&cfg);
  cfg.name = seg;
  cfg.num_slots = slots;
  cfg.cuda_context = ctx;
  st = cudalink_producer_create(&cfg, fmt, &p);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "  producer_create: %s: %s\n", cudalink_strerror(st),
            p ? "" : "(see above)");
    _exit(73);
  }
  return p;
}

static cudalink_consumer *
consumer_up(void)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_status st = CUDALINK_ERR_NOT_FOUND;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg;
  cfg.cuda_context = ctx;
  cfg.poll_interval_us = 200;
  ST(cudalink_consumer_create(&cfg, &c));
  for (int i = 0; i < 500 && st != CUDALINK_OK; i++) {
    st = cudalink_consumer_connect(c);
    if (st != CUDALINK_OK)
      usleep(10000);
  }
  if (st != CUDALINK_OK) {
    fprintf(stderr, "  connect: %s: %s\n", cudalink_strerror(st),
            cudalink_consumer_last_error(c));
    _exit(74);
  }
  return c;
}

/* pipes: one byte tokens with a timeout */
static int
recv_byte(int fd, int timeout_ms)
{
  struct pollfd pfd = { fd, POLLIN, 0 };
  uint8_t b;
  if (poll(&pfd, 1, timeout_ms) <= 0)
    return -1;
  return read(fd, &b, 1) == 1 ? b : -1;
}

static void
send_byte(int fd, uint8_t b)
{
  if (write(fd, &b, 1) != 1)
    _exit(75);
}

static pid_t
spawn(int (*fn)(void *), void *arg)
{
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    int rc = fn(arg);
    fflush(NULL); /* _exit() would drop what the child printed */
    _exit(rc);
  }
  return pid;
}

static int
reap(pid_t pid, int timeout_s)
{
  int status;
  for (int i = 0; i < timeout_s * 100; i++) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  fprintf(stderr, "  child %d hung: killed\n", (int)pid);
  return 99;
}

/* --- 1. lock-step round trip, every frame compared ------------------- */

typedef struct {
  cudalink_format fmt;
  uint32_t frames;
  uint32_t full_every; /* compare whole frames every Nth, sampled rows otherwise */
  int to_consumer[2], to_producer[2];
  uint32_t slots;
} roundtrip_args;

static int
roundtrip_producer(void *arg)
{
  roundtrip_args *a = arg;
  framegen g;
  cudalink_producer *p;
  CUstream s;
  cuda_up();
  framegen_init(&g, &a->fmt, 1);
  p = producer_up(&a->fmt, a->slots);
  s = (CUstream)cudalink_producer_stream(p);
  send_byte(a->to_consumer[1], 'R');
  for (uint32_t k = 0; k < a->frames; k++) {
    framegen_make(&g, k, s);
    ST(cudalink_producer_publish(p, g.d_frame, g.row, s, 0));
    if (recv_byte(a->to_producer[0], 10000) != 'A') {
      fprintf(stderr, "  producer: no ack for frame %u\n", k);
      return 10;
    }
  }
  cudalink_producer_destroy(p);
  framegen_free(&g);
  return 0;
}

static int
roundtrip_consumer(void *arg)
{
  roundtrip_args *a = arg;
  framegen g;
  cudalink_consumer *c;
  CUdeviceptr d_dst;
  uint8_t *host, *want;
  uint32_t checked = 0, full = 0, bad = 0;
  cudalink_status st;

  cuda_up();
  if (recv_byte(a->to_consumer[0], 20000) != 'R')
    return 20;
  framegen_init(&g, &a->fmt, 1);
  c = consumer_up();
  CK(cu->MemAlloc(&d_dst, g.size));
  host = malloc(g.size);
  want = malloc(g.size);
  for (uint32_t k = 0; k < a->frames; k++) {
    cudalink_frame_info info;
    int is_full = a->full_every <= 1 || k % a->full_every == 0 || k == a->frames - 1;
    st = cudalink_consumer_wait(c, 5000000);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "  consumer: wait for frame %u: %s\n", k, cudalink_strerror(st));
      return 21;
    }
    ST(cudalink_consumer_frame_info(c, &info));
    if (info.write_idx != k + 1) {
      fprintf(stderr, "  consumer: expected write_idx %u, got %u\n", k + 1, info.write_idx);
      bad++;
    }
    st = cudalink_consumer_copy(c, d_dst, g.row, NULL);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "  consumer: copy of frame %u: %s\n", k, cudalink_strerror(st));
      bad++;
    }
    expected_frame(want, g.h_base, g.size, g.row, g.fmt.height, k);
    if (is_full) {
      CK(cu->MemcpyDtoH(host, d_dst, g.size));
      full++;
      if (memcmp(host, want, g.size) != 0)
        bad++;
    } else {
      /* the stamped rows, the marked row and 13 rows that move with k */
      uint32_t rows[16] = { 0, g.fmt.height - 1, k % g.fmt.height };
      for (int i = 3; i < 16; i++)
        rows[i] = (k * 2654435761u + (uint32_t)i * 97u) % g.fmt.height;
      for (int i = 0; i < 16; i++) {
        size_t off = (size_t)rows[i] * g.row;
        CK(cu->MemcpyDtoH(host + off, d_dst + off, g.row));
        if (memcmp(host + off, want + off, g.row) != 0)
          bad++;
      }
    }
    checked++;
    send_byte(a->to_producer[1], 'A');
  }
  st = cudalink_consumer_wait(c, 3000000);
  printf("  %u slots, %ux%u x%u %s: %u frames checked (%u whole, others 16 rows), %u mismatches; "
         "end: %s\n",
         a->slots, g.fmt.width, g.fmt.height, g.fmt.num_comps, cudalink_dtype_name(g.fmt.dtype),
         checked,
         full, bad, cudalink_status_name(st));
  if (st != CUDALINK_ERR_PRODUCER_GONE)
    bad++;
  cu->MemFree(d_dst);
  cudalink_consumer_destroy(c);
  framegen_free(&g);
  free(host);
  free(want);
  return bad ? 22 : 0;
}

static void
run_roundtrip(cudalink_format fmt, uint32_t frames, uint32_t full_every, uint32_t slots)
{
  roundtrip_args a = { fmt, frames, full_every, { 0, 0 }, { 0, 0 }, slots };
  pid_t pp, pc;
  REQUIRE(pipe(a.to_consumer) == 0 && pipe(a.to_producer) == 0);
  pp = spawn(roundtrip_producer, &a);
  pc = spawn(roundtrip_consumer, &a);
  CHECK_EQ_INT(reap(pc, 240), 0);
  CHECK_EQ_INT(reap(pp, 30), 0);
  close(a.to_consumer[0]);
  close(a.to_consumer[1]);
  close(a.to_producer[0]);
  close(a.to_producer[1]);
}

static void
test_roundtrip_1080p_rgba8(void)
{
  run_roundtrip((cudalink_format){ 1920, 1080, 4, CUDALINK_DTYPE_UINT8, 0 }, 1000, 1, 3);
}

static void
test_roundtrip_1_and_10_slots(void)
{
  run_roundtrip((cudalink_format){ 640, 480, 2, CUDALINK_DTYPE_UINT16, CUDALINK_FLAG_MONO_ALPHA },
                200, 1, 1);
  run_roundtrip((cudalink_format){ 640, 480, 1, CUDALINK_DTYPE_FLOAT16, 0 }, 200, 1, 10);
}

static void
test_roundtrip_4k_float32(void)
{
  run_roundtrip((cudalink_format){ 3840, 2160, 4, CUDALINK_DTYPE_FLOAT32, 0 }, 1000, 1, 3);
}

/* --- 2. reformat, clean shutdown ------------------------------------ */

static int
reformat_producer(void *arg)
{
  roundtrip_args *a = arg;
  cudalink_format f1 = { 320, 240, 4, CUDALINK_DTYPE_UINT8, 0 };
  cudalink_format f2 = { 640, 360, 1, CUDALINK_DTYPE_FLOAT32, 0 };
  framegen g1, g2;
  cudalink_producer *p;
  CUstream s;
  cuda_up();
  framegen_init(&g1, &f1, 2);
  framegen_init(&g2, &f2, 3);
  p = producer_up(&f1, 3);
  s = (CUstream)cudalink_producer_stream(p);
  send_byte(a->to_consumer[1], 'R');
  for (uint32_t k = 0; k < 10; k++) {
    framegen_make(&g1, k, s);
    ST(cudalink_producer_publish(p, g1.d_frame, g1.row, s, 0));
    if (recv_byte(a->to_producer[0], 10000) != 'A')
      return 10;
  }
  ST(cudalink_producer_reformat(p, &f2));
  for (uint32_t k = 0; k < 10; k++) {
    framegen_make(&g2, k, s);
    ST(cudalink_producer_publish(p, g2.d_frame, g2.row, s, 0));
    if (recv_byte(a->to_producer[0], 10000) != 'A')
      return 11;
  }
  cudalink_producer_destroy(p);
  return 0;
}

static int
check_frames(cudalink_consumer *c, framegen *g, uint32_t n, int ack_fd)
{
  CUdeviceptr d;
  uint8_t *host = malloc(g->size), *want = malloc(g->size);
  int bad = 0;
  CK(cu->MemAlloc(&d, g->size));
  for (uint32_t k = 0; k < n; k++) {
    cudalink_status st = cudalink_consumer_wait(c, 5000000);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "  frame %u: %s\n", k, cudalink_status_name(st));
      bad++;
      break;
    }
    st = cudalink_consumer_copy(c, d, g->row, NULL);
    bad += st != CUDALINK_OK;
    CK(cu->MemcpyDtoH(host, d, g->size));
    expected_frame(want, g->h_base, g->size, g->row, g->fmt.height, k);
    bad += memcmp(host, want, g->size) != 0;
    send_byte(ack_fd, 'A');
  }
  cu->MemFree(d);
  free(host);
  free(want);
  return bad;
}

static int
reformat_consumer(void *arg)
{
  roundtrip_args *a = arg;
  cudalink_format f1 = { 320, 240, 4, CUDALINK_DTYPE_UINT8, 0 };
  cudalink_format f2 = { 640, 360, 1, CUDALINK_DTYPE_FLOAT32, 0 };
  framegen g1, g2;
  cudalink_consumer *c;
  cudalink_consumer_stats stats;
  const cudalink_format *f;
  cudalink_status st;
  int bad = 0;

  cuda_up();
  if (recv_byte(a->to_consumer[0], 20000) != 'R')
    return 20;
  framegen_init(&g1, &f1, 2);
  framegen_init(&g2, &f2, 3);
  c = consumer_up();
  bad += check_frames(c, &g1, 10, a->to_producer[1]);
  st = cudalink_consumer_wait(c, 5000000);
  if (st != CUDALINK_ERR_FORMAT_CHANGED) {
    fprintf(stderr, "  expected FORMAT_CHANGED, got %s\n", cudalink_status_name(st));
    return 21;
  }
  f = cudalink_consumer_format(c);
  bad += !f || f->width != 640 || f->height != 360 || f->num_comps != 1 ||
         f->dtype != CUDALINK_DTYPE_FLOAT32;
  bad += check_frames(c, &g2, 10, a->to_producer[1]);
  st = cudalink_consumer_wait(c, 5000000);
  cudalink_consumer_get_stats(c, &stats);
  printf("  reformat 320x240 uint8x4 -> 640x360 float32x1 followed: reopens %llu, frames %llu, "
         "end %s\n",
         (unsigned long long)stats.reopens, (unsigned long long)stats.frames,
         cudalink_status_name(st));
  bad += st != CUDALINK_ERR_PRODUCER_GONE;
  bad += stats.reopens != 1 || stats.frames != 20;
  cudalink_consumer_destroy(c);
  return bad ? 22 : 0;
}

static void
test_reformat_and_clean_shutdown(void)
{
  roundtrip_args a;
  pid_t pp, pc;
  memset(&a, 0, sizeof a);
  REQUIRE(pipe(a.to_consumer) == 0 && pipe(a.to_producer) == 0);
  pp = spawn(reformat_producer, &a);
  pc = spawn(reformat_consumer, &a);
  CHECK_EQ_INT(reap(pc, 60), 0);
  CHECK_EQ_INT(reap(pp, 30), 0);
  close(a.to_consumer[0]);
  close(a.to_consumer[1]);
  close(a.to_producer[0]);
  close(a.to_producer[1]);
}

/* --- 3. producer killed ------------------------------------------------ */

typedef struct {
  int to_parent[2];
  uint32_t slots;
  int stall_us;
  uint32_t frames;
} free_args;

/* Publishes as fast as it can until killed or frames are done. */
static int
free_producer(void *arg)
{
  free_args *a = arg;
  cudalink_format f = { 1920, 1080, 4, CUDALINK_DTYPE_UINT8, 0 };
  framegen g;
  cudalink_producer *p;
  CUstream s;
  cuda_up();
  framegen_init(&g, &f, 4);
  p = producer_up(&f, a->slots);
  s = (CUstream)cudalink_producer_stream(p);
  send_byte(a->to_parent[1], 'R');
  for (uint32_t k = 0; (a->frames == 0 || k < a->frames) && !stop_requested; k++) {
    framegen_make(&g, k, s);
    ST(cudalink_producer_publish(p, g.d_frame, g.row, s, 1));
  }
  cudalink_producer_destroy(p);
  return 0;
}

static int
kill_consumer(void *arg)
{
  int *fds = arg; /* [0]: read 'K' when the producer was killed */
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  double t_kill, t_gone;
  int got = 0;
  cuda_up();
  c = consumer_up();
  while (got < 50 && cudalink_consumer_wait(c, 2000000) == CUDALINK_OK)
    got++;
  send_byte(fds[1], 'G'); /* go kill it */
  if (recv_byte(fds[0], 5000) != 'K')
    return 30;
  t_kill = cudalink_now();
  while (st == CUDALINK_OK || st == CUDALINK_ERR_TIMEOUT) {
    st = cudalink_consumer_wait(c, 100000);
    if (cudalink_now() - t_kill > 5)
      break;
  }
  t_gone = cudalink_now();
  printf("  producer SIGKILLed: consumer saw %s after %.1f ms (%d frames before)\n",
         cudalink_status_name(st), (t_gone - t_kill) * 1e3, got);
  cudalink_consumer_destroy(c);
  return st == CUDALINK_ERR_PRODUCER_GONE && t_gone - t_kill < 1.0 && got == 50 ? 0 : 31;
}

static void
test_producer_sigkill(void)
{
  free_args a = { { 0, 0 }, 3, 0, 0 };
  int to_c[2], from_c[2], fds[2];
  pid_t pp, pc;
  REQUIRE(pipe(a.to_parent) == 0 && pipe(to_c) == 0 && pipe(from_c) == 0);
  pp = spawn(free_producer, &a);
  REQUIRE(recv_byte(a.to_parent[0], 20000) == 'R');
  fds[0] = to_c[0];
  fds[1] = from_c[1];
  pc = spawn(kill_consumer, fds);
  CHECK(recv_byte(from_c[0], 20000) == 'G');
  kill(pp, SIGKILL);
  waitpid(pp, NULL, 0);
  send_byte(to_c[1], 'K');
  CHECK_EQ_INT(reap(pc, 30), 0);
  /* the dead producer's segment is taken over by the next one */
  close(a.to_parent[0]);
  close(a.to_parent[1]);
  close(to_c[0]);
  close(to_c[1]);
  close(from_c[0]);
  close(from_c[1]);
}

/* --- 4. torn frames ---------------------------------------------------- */

/* Copies each frame in two halves with a stall between them while the
 * producer runs on: copies the library calls clean must be whole (first
 * and last stamps equal); most stalled copies must be flagged torn. */
static int
torn_consumer(void *arg)
{
  int stall_us = *(int *)arg;
  cudalink_consumer *c;
  const cudalink_format *f;
  cudalink_consumer_stats stats;
  CUdeviceptr d;
  uint32_t size, row, clean = 0, torn = 0, torn_really_mixed = 0, clean_but_mixed = 0;
  cuda_up();
  c = consumer_up();
  f = cudalink_consumer_format(c);
  ST(cudalink_format_sizes(f, &size, &row));
  CK(cu->MemAlloc(&d, size));
  for (int i = 0; i < 300; i++) {
    uint64_t src;
    size_t pitch;
    uint32_t first, last;
    cudalink_status st = cudalink_consumer_wait(c, 2000000);
    if (st != CUDALINK_OK)
      break;
    ST(cudalink_consumer_acquire(c, NULL, &src, &pitch));
    CK(cu->MemcpyDtoH(&first, src, 4)); /* synchronous: start of the copy */
    if (stall_us)
      usleep((useconds_t)stall_us);
    CK(cu->MemcpyDtoH(&last, src + size - 4, 4));
    st = cudalink_consumer_release(c, NULL);
    if (st == CUDALINK_OK) {
      clean++;
      clean_but_mixed += first != last;
    } else if (st == CUDALINK_ERR_TORN) {
      torn++;
      torn_really_mixed += first != last;
    }
  }
  cudalink_consumer_get_stats(c, &stats);
  printf("  stall %d us: %u clean (%u of them mixed), %u torn (%u visibly mixed), "
         "missed %llu, stats.torn %llu\n",
         stall_us, clean, clean_but_mixed, torn, torn_really_mixed,
         (unsigned long long)stats.missed, (unsigned long long)stats.torn);
  cu->MemFree(d);
  cudalink_consumer_destroy(c);
  if (clean_but_mixed)
    return 40;
  if (stats.torn != torn)
    return 41;
  if (stall_us && torn_really_mixed == 0)
    return 42; /* the stall must actually have produced torn frames */
  if (!stall_us && clean == 0)
    return 43; /* and without a stall most copies are clean */
  return 0;
}

static void
test_torn_detection(void)
{
  free_args a = { { 0, 0 }, 3, 0, 0 };
  int stalls[2] = { 0, 20000 };
  pid_t pp, pc;
  REQUIRE(pipe(a.to_parent) == 0);
  pp = spawn(free_producer, &a);
  REQUIRE(recv_byte(a.to_parent[0], 20000) == 'R');
  for (int i = 0; i < 2; i++) {
    pc = spawn(torn_consumer, &stalls[i]);
    CHECK_EQ_INT(reap(pc, 120), 0);
  }
  kill(pp, SIGTERM);
  CHECK_EQ_INT(reap(pp, 20), 0);
  close(a.to_parent[0]);
  close(a.to_parent[1]);
}

/* --- 5. wake latency and GPU memory --------------------------------- */

static int
latency_consumer(void *arg)
{
  double *lat = calloc(1000, sizeof *lat);
  cudalink_consumer *c;
  int n = 0;
  (void)arg;
  cuda_up();
  c = consumer_up();
  while (n < 1000) {
    cudalink_frame_info info;
    if (cudalink_consumer_wait(c, 2000000) != CUDALINK_OK)
      break;
    cudalink_consumer_frame_info(c, &info);
    lat[n++] = (cudalink_now() - info.timestamp) * 1e6;
  }
  for (int i = 1; i < n; i++) /* insertion sort, n is small */
    for (int j = i; j > 0 && lat[j] < lat[j - 1]; j--) {
      double t = lat[j];
      lat[j] = lat[j - 1];
      lat[j - 1] = t;
    }
  printf("  wake latency (publish -> wait returns, %s producer, %d frames): p50 %.1f us, "
         "p99 %.1f us\n",
         cudalink_consumer_producer_is_ours(c) ? "cudalink" : "foreign", n,
         n ? lat[n / 2] : -1, n ? lat[n * 99 / 100] : -1);
  cudalink_consumer_destroy(c);
  free(lat);
  return n == 1000 ? 0 : 50;
}

/* A throttled producer (about 1 kHz): latency as a consumer sees it. */
static int
paced_producer(void *arg)
{
  free_args *a = arg;
  cudalink_format f = { 256, 256, 4, CUDALINK_DTYPE_UINT8, 0 };
  framegen g;
  cudalink_producer *p;
  CUstream s;
  cuda_up();
  framegen_init(&g, &f, 5);
  p = producer_up(&f, 3);
  s = (CUstream)cudalink_producer_stream(p);
  send_byte(a->to_parent[1], 'R');
  for (uint32_t k = 0; k < a->frames; k++) {
    framegen_make(&g, k, s);
    ST(cudalink_producer_publish(p, g.d_frame, g.row, s, 1));
    usleep(1000);
  }
  cudalink_producer_destroy(p);
  return 0;
}

static void
test_wake_latency(void)
{
  free_args a = { { 0, 0 }, 3, 0, 1300 };
  pid_t pp, pc;
  REQUIRE(pipe(a.to_parent) == 0);
  pp = spawn(paced_producer, &a);
  REQUIRE(recv_byte(a.to_parent[0], 20000) == 'R');
  pc = spawn(latency_consumer, NULL);
  CHECK_EQ_INT(reap(pc, 60), 0);
  CHECK_EQ_INT(reap(pp, 30), 0);
  close(a.to_parent[0]);
  close(a.to_parent[1]);
}

static int
short_consumer(void *arg)
{
  int die_hard = *(int *)arg;
  cudalink_consumer *c;
  CUdeviceptr d;
  cuda_up();
  c = consumer_up();
  CK(cu->MemAlloc(&d, 1920 * 1080 * 4));
  for (int i = 0; i < 5; i++)
    if (cudalink_consumer_wait(c, 2000000) == CUDALINK_OK)
      cudalink_consumer_copy(c, d, 1920 * 4, NULL);
  if (die_hard)
    raise(SIGKILL);
  cudalink_consumer_destroy(c);
  return 0;
}

static size_t
device_free_bytes(void)
{
  size_t free_b = 0, total = 0;
  CK(cu->MemGetInfo(&free_b, &total));
  return free_b;
}

/* Measures device memory whenever the parent asks ('m'), replying with
 * the free bytes; CUDA lives in this child only, so the parent can still
 * fork the producer and consumers. */
static int
memory_watch(void *arg)
{
  int *fds = arg; /* [0] requests in, [1] answers out */
  cuda_up();
  while (recv_byte(fds[0], 60000) == 'm') {
    size_t f = device_free_bytes();
    if (write(fds[1], &f, sizeof f) != (ssize_t)sizeof f)
      return 60;
  }
  return 0;
}

static size_t
ask_free(int fds[2][2])
{
  size_t f = 0;
  struct pollfd pfd = { fds[1][0], POLLIN, 0 };
  send_byte(fds[0][1], 'm');
  if (poll(&pfd, 1, 20000) == 1 && read(fds[1][0], &f, sizeof f) == (ssize_t)sizeof f)
    return f;
  return 0;
}

static void
test_no_gpu_memory_left(void)
{
  int w[2][2], watch_fds[2];
  free_args pa = { { 0, 0 }, 3, 0, 0 };
  size_t m0, m1, m2, m3;
  pid_t pw, pp;
  REQUIRE(pipe(w[0]) == 0 && pipe(w[1]) == 0 && pipe(pa.to_parent) == 0);
  watch_fds[0] = w[0][0];
  watch_fds[1] = w[1][1];
  pw = spawn(memory_watch, watch_fds);
  m0 = ask_free(w);
  pp = spawn(free_producer, &pa);
  REQUIRE(recv_byte(pa.to_parent[0], 20000) == 'R');
  usleep(200000);
  m1 = ask_free(w);
  for (int i = 0; i < 6; i++) {
    int hard = i % 2;
    pid_t pc = spawn(short_consumer, &hard);
    int r = reap(pc, 60);
    CHECK(r == 0 || (hard && r == 128 + SIGKILL));
  }
  usleep(200000);
  m2 = ask_free(w);
  kill(pp, SIGTERM);
  CHECK_EQ_INT(reap(pp, 20), 0);
  usleep(500000);
  m3 = ask_free(w);
  send_byte(w[0][1], 'q');
  CHECK_EQ_INT(reap(pw, 20), 0);
  printf("  device free memory: %.1f MiB with the producer, %.1f MiB after 6 consumers "
         "(3 SIGKILLed): %+.1f MiB; after the producer's shutdown %+.1f MiB vs before it\n",
         m1 / 1048576.0, m2 / 1048576.0, ((double)m2 - (double)m1) / 1048576.0,
         ((double)m3 - (double)m0) / 1048576.0);
  CHECK(m0 && m1 && m2 && m3);
  CHECK(m1 < m0); /* the ring is visible */
  /* 4 MiB of allocator granularity noise, nothing like a 24 MiB ring */
  CHECK((double)m1 - (double)m2 <= 4.0 * 1048576);
  CHECK((double)m0 - (double)m3 <= 4.0 * 1048576);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      close(w[i][j]);
  close(pa.to_parent[0]);
  close(pa.to_parent[1]);
}

/* --- 6. a foreign producer whose header claims more than its slots ---- */

typedef struct {
  int to_consumer[2], to_producer[2];
} liar_args;

static const cudalink_format liar_claim = { 1920, 1080, 4, CUDALINK_DTYPE_UINT8, 0 };
static const cudalink_format liar_truth = { 1024, 1024, 4, CUDALINK_DTYPE_UINT8, 0 };
#define LIAR_SLOT_BYTES (4u << 20) /* 1024x1024 RGBA exactly; 1080p needs 8294400 */
#define LIAR_FRAME 7u

/* A hand-written foreign producer (no lock, no library): 3 slots of 4 MiB,
 * announced as 1080p RGBA. On the consumer's word it tells the truth
 * (1024x1024, version 2) about the same slots, frame LIAR_FRAME in slot 0. */
static int
liar_producer(void *arg)
{
  liar_args *a = arg;
  cudalink_header h;
  CUdeviceptr mem[3];
  CUevent ev[3];
  framegen g;
  char path[128];
  size_t size = cudalink_layout_size(3);
  uint8_t *base;
  int fd;

  cuda_up();
  framegen_init(&g, &liar_truth, 6);
  memset(&h, 0, sizeof h);
  h.version = 1;
  h.num_slots = 3;
  h.format = liar_claim;
  for (int s = 0; s < 3; s++) {
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    CK(cu->MemAlloc(&mem[s], LIAR_SLOT_BYTES));
    CK(cu->EventCreate(&ev[s], CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING));
    CK(cu->IpcGetMemHandle(&mh, mem[s]));
    CK(cu->IpcGetEventHandle(&eh, ev[s]));
    memcpy(h.mem_handle[s], &mh, sizeof mh);
    memcpy(h.event_handle[s], &eh, sizeof eh);
  }
  framegen_make(&g, LIAR_FRAME, NULL);
  CK(cu->MemcpyDtoDAsync(mem[0], g.d_frame, g.size, NULL));
  CK(cu->EventRecord(ev[0], NULL));
  CK(cu->CtxSynchronize());
  h.write_idx = 1;
  h.timestamp = cudalink_now();
  snprintf(path, sizeof path, "/%s", seg);
  fd = shm_open(path, O_CREAT | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
    return 60;
  base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED || cudalink_header_write(&h, base, size) != CUDALINK_OK)
    return 61;
  send_byte(a->to_consumer[1], 'R');
  if (recv_byte(a->to_producer[0], 30000) != 'H')
    return 62;
  h.version = 2;
  h.format = liar_truth;
  h.timestamp = cudalink_now();
  if (cudalink_header_write(&h, base, size) != CUDALINK_OK)
    return 63;
  send_byte(a->to_consumer[1], 'F');
  if (recv_byte(a->to_producer[0], 30000) != 'D')
    return 64;
  for (int s = 0; s < 3; s++) {
    CK(cu->EventDestroy(ev[s]));
    CK(cu->MemFree(mem[s]));
  }
  munmap(base, size);
  shm_unlink(path);
  framegen_free(&g);
  return 0;
}

/* A copy between two buffers of our own, checked: the context works. */
static int
context_still_works(void)
{
  const size_t n = 1u << 20;
  CUdeviceptr x, y;
  uint8_t *host = malloc(n);
  int ok;
  CK(cu->MemAlloc(&x, n));
  CK(cu->MemAlloc(&y, n));
  CK(cu->MemsetD8Async(x, 0x5a, n, NULL));
  CK(cu->MemcpyDtoDAsync(y, x, n, NULL));
  CK(cu->CtxSynchronize());
  CK(cu->MemcpyDtoH(host, y, n));
  ok = host[0] == 0x5a && host[n - 1] == 0x5a && memcmp(host, host + 1, n - 1) == 0;
  CK(cu->MemFree(x));
  CK(cu->MemFree(y));
  free(host);
  return ok;
}

static int
liar_consumer(void *arg)
{
  liar_args *a = arg;
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_status st;
  framegen g;
  CUdeviceptr d;
  uint8_t *host, *want;
  const char *why;
  int bad = 0;

  cuda_up();
  framegen_init(&g, &liar_truth, 6);
  if (recv_byte(a->to_consumer[0], 30000) != 'R')
    return 65;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg;
  cfg.cuda_context = ctx;
  cfg.settle_ms = 200;
  ST(cudalink_consumer_create(&cfg, &c));
  st = cudalink_consumer_connect(c);
  why = cudalink_consumer_last_error(c);
  printf("  header claims 1080p RGBA in 4 MiB slots: %s: %s\n", cudalink_status_name(st), why);
  bad += st != CUDALINK_ERR_SLOT_TOO_SMALL;
  bad += !strstr(why, "slot 0's allocation is ");
  bad += !strstr(why, "the header's 1920x1080 uint8 x4 frame needs 8294400");
  /* the refusal came before any copy: our context is clean */
  CK(cu->CtxSynchronize());
  bad += !context_still_works();

  /* the same slots, honestly described: a normal copy on the same context */
  send_byte(a->to_producer[1], 'H');
  if (recv_byte(a->to_consumer[0], 30000) != 'F')
    return 66;
  st = cudalink_consumer_connect(c);
  if (st != CUDALINK_OK)
    fprintf(stderr, "  honest header: %s: %s\n", cudalink_status_name(st),
            cudalink_consumer_last_error(c));
  bad += st != CUDALINK_OK;
  host = malloc(g.size);
  want = malloc(g.size);
  CK(cu->MemAlloc(&d, g.size));
  if (st == CUDALINK_OK && cudalink_consumer_wait(c, 2000000) == CUDALINK_OK) {
    bad += cudalink_consumer_copy(c, d, g.row, NULL) != CUDALINK_OK;
    CK(cu->MemcpyDtoH(host, d, g.size));
    expected_frame(want, g.h_base, g.size, g.row, g.fmt.height, LIAR_FRAME);
    bad += memcmp(host, want, g.size) != 0;
  } else {
    bad++;
  }
  CK(cu->CtxSynchronize());
  printf("  then the honest 1024x1024 header on the same context: %s\n",
         bad ? "FAILED" : "frame copied and compared");
  cudalink_consumer_destroy(c);
  CK(cu->MemFree(d));
  framegen_free(&g);
  free(host);
  free(want);
  send_byte(a->to_producer[1], 'D');
  return bad ? 67 : 0;
}

static void
test_foreign_slot_too_small(void)
{
  liar_args a;
  pid_t pp, pc;
  REQUIRE(pipe(a.to_consumer) == 0 && pipe(a.to_producer) == 0);
  pp = spawn(liar_producer, &a);
  pc = spawn(liar_consumer, &a);
  CHECK_EQ_INT(reap(pc, 60), 0);
  CHECK_EQ_INT(reap(pp, 30), 0);
  for (int i = 0; i < 2; i++) {
    close(a.to_consumer[i]);
    close(a.to_producer[i]);
  }
  shm_unlink(seg); /* a failed producer may have left it */
}

/* --- 7. producer SIGKILLed while a consumer copies: no GPU memory left -- */

typedef struct {
  int cmd[2]; /* parent -> consumer: 'C' connect, 'K' killed, 'q' quit */
  int ack[2]; /* consumer -> parent: 'U' up, 'G' copying, 'D' disconnected */
} copier_args;

/* Copies every frame it can until the producer is gone; tells the parent
 * when it is up (context and buffer, nothing of the producer's), when it
 * has copied 50 frames, and when it has seen the producer go; then lives
 * on until told to quit, so that the parent can measure what it holds. */
static int
copying_consumer(void *arg)
{
  copier_args *a = arg;
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  CUdeviceptr d;
  int copies = 0, torn = 0, failed = 0, killed = 0;
  double t_kill = 0, t_gone;

  cuda_up();
  CK(cu->MemAlloc(&d, 1920 * 1080 * 4));
  send_byte(a->ack[1], 'U');
  if (recv_byte(a->cmd[0], 30000) != 'C')
    return 80;
  c = consumer_up();
  for (;;) {
    st = cudalink_consumer_wait(c, 100000);
    if (st == CUDALINK_OK) {
      cudalink_status cs = cudalink_consumer_copy(c, d, 1920 * 4, NULL);
      copies += cs == CUDALINK_OK;
      torn += cs == CUDALINK_ERR_TORN;
      if (cs != CUDALINK_OK && cs != CUDALINK_ERR_TORN && failed++ < 3)
        fprintf(stderr, "  copy %d: %s: %s\n", copies + torn, cudalink_status_name(cs),
                cudalink_consumer_last_error(c));
      if (cs == CUDALINK_OK && copies == 50)
        send_byte(a->ack[1], 'G');
    } else if (st != CUDALINK_ERR_TIMEOUT) {
      break;
    }
    if (!killed && recv_byte(a->cmd[0], 0) == 'K') {
      killed = 1;
      t_kill = cudalink_now();
    }
    if (killed && cudalink_now() - t_kill > 5)
      break;
  }
  t_gone = cudalink_now();
  printf("  producer SIGKILLed during copies: %s after %.1f ms (%d copies, %d torn, %d failed): "
         "%s\n",
         cudalink_status_name(st), killed ? (t_gone - t_kill) * 1e3 : -1.0, copies, torn,
         failed, cudalink_consumer_last_error(c));
  /* the death may be seen before the parent says it killed it: take the
   * word now (the detection then came at or before the kill's notice) */
  if (!killed && recv_byte(a->cmd[0], 10000) == 'K') {
    killed = 1;
    t_kill = cudalink_now();
  }
  send_byte(a->ack[1], 'D');
  if (recv_byte(a->cmd[0], 30000) != 'q')
    return 81;
  CK(cu->CtxSynchronize()); /* no sticky error */
  cudalink_consumer_destroy(c);
  CK(cu->MemFree(d));
  return st == CUDALINK_ERR_PRODUCER_GONE && killed && t_gone - t_kill < 1.0 && failed == 0 ? 0
                                                                                            : 82;
}

static void
test_producer_killed_mid_copy_leaves_no_memory(void)
{
  int w[2][2], watch_fds[2];
  copier_args ca;
  free_args pa = { { 0, 0 }, 3, 0, 0 };
  size_t m_up, m_copying, m_after = 0;
  pid_t pw, pp, pc;
  const double tolerance = 4.0 * 1048576; /* allocator granularity, as above */

  REQUIRE(pipe(w[0]) == 0 && pipe(w[1]) == 0 && pipe(pa.to_parent) == 0);
  REQUIRE(pipe(ca.cmd) == 0 && pipe(ca.ack) == 0);
  watch_fds[0] = w[0][0];
  watch_fds[1] = w[1][1];
  pw = spawn(memory_watch, watch_fds);
  pc = spawn(copying_consumer, &ca);
  REQUIRE(recv_byte(ca.ack[0], 30000) == 'U');
  m_up = ask_free(w); /* the consumer's context and buffer, no ring */
  pp = spawn(free_producer, &pa);
  REQUIRE(recv_byte(pa.to_parent[0], 20000) == 'R');
  send_byte(ca.cmd[1], 'C');
  CHECK(recv_byte(ca.ack[0], 30000) == 'G');
  m_copying = ask_free(w);
  kill(pp, SIGKILL);
  waitpid(pp, NULL, 0);
  send_byte(ca.cmd[1], 'K');
  CHECK(recv_byte(ca.ack[0], 10000) == 'D');
  /* the driver reclaims a killed process's memory a little later */
  for (int i = 0; i < 30; i++) {
    m_after = ask_free(w);
    if ((double)m_up - (double)m_after <= tolerance)
      break;
    usleep(100000);
  }
  printf("  device free memory with the consumer up: %.1f MiB; copying: %+.1f MiB; after the "
         "kill, the consumer still alive: %+.1f MiB\n",
         m_up / 1048576.0, ((double)m_copying - (double)m_up) / 1048576.0,
         ((double)m_after - (double)m_up) / 1048576.0);
  CHECK(m_up && m_copying && m_after);
  CHECK(m_copying < m_up); /* the producer's context and ring are visible */
  /* the dead producer's ring lives on only while someone maps it */
  CHECK((double)m_up - (double)m_after <= tolerance);
  send_byte(ca.cmd[1], 'q');
  CHECK_EQ_INT(reap(pc, 30), 0);
  send_byte(w[0][1], 'q');
  CHECK_EQ_INT(reap(pw, 20), 0);
  for (int i = 0; i < 2; i++) {
    for (int j = 0; j < 2; j++)
      close(w[i][j]);
    close(ca.cmd[i]);
    close(ca.ack[i]);
    close(pa.to_parent[i]);
  }
  shm_unlink(seg); /* the killed producer's */
}

static void
on_sigterm(int sig)
{
  (void)sig;
  stop_requested = 1;
}

int
main(int argc, char **argv)
{
  const char *only = argc > 1 ? argv[1] : NULL;
  /* a free-running producer child stops on SIGTERM and shuts down cleanly */
  signal(SIGTERM, on_sigterm);
  snprintf(seg, sizeof seg, "cudalink-gpu-test-%d", (int)getpid());
  {
    int status;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
      cudalink_status st;
      char why[256];
      st = cudalink_cuda_load(why, sizeof why);
      if (st != CUDALINK_OK)
        fprintf(stderr, "NO GPU: %s: %s (this suite fails without a GPU)\n",
                cudalink_strerror(st), why);
      _exit(st == CUDALINK_OK ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("0 passed, 1 failed\n");
      return 1;
    }
  }
#define MAYBE(fn) \
  if (!only || strstr(#fn, only)) RUN_TEST(fn)
  MAYBE(test_roundtrip_1080p_rgba8);
  MAYBE(test_roundtrip_4k_float32);
  MAYBE(test_roundtrip_1_and_10_slots);
  MAYBE(test_reformat_and_clean_shutdown);
  MAYBE(test_producer_sigkill);
  MAYBE(test_torn_detection);
  MAYBE(test_wake_latency);
  MAYBE(test_no_gpu_memory_left);
  MAYBE(test_foreign_slot_too_small);
  MAYBE(test_producer_killed_mid_copy_leaves_no_memory);
  shm_unlink(seg); /* in case a failed test left it */
  return TEST_SUMMARY();
}
