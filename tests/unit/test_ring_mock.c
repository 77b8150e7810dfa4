/* The producer/consumer ring end to end on the CPU mock driver
 * (tests/unit/mock_cuda.c): a producer process and a consumer process, each
 * loading the driver itself after fork, talk over the real protocol. Some
 * tests put a hand-written foreign producer in the consumer's process
 * instead, one that can lie in its header.
 * In the consumer, every library call is followed by a check that the CUDA
 * context stack is empty again (a context left pushed breaks the caller's
 * own CUDA work), and both sides must give back every allocation and IPC
 * mapping they made. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "testutil.h"
#include "child_test.h"

#ifndef MOCK_CUDA
#  error "MOCK_CUDA must name the mock driver"
#endif

#define FRAMES 200
#define SLOTS 3u
#define PACE_PERIOD_NS 20000000L /* the steady producer's: 50 fps */

static const cudalink_format fmt_a = { 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
static const cudalink_format fmt_b = { 40, 24, 1, CUDALINK_DTYPE_UINT16, 0 };

/* ---- the mock's hooks, found after the library has loaded it ---------- */

static int (*mock_depth)(void);
static long (*mock_live)(void);
static long (*mock_range_errors)(void);
static const cudalink_cuda *cu;
static CUcontext ctx;

static int
load_driver(void)
{
  char why[256] = "";
  void *h;
  cudalink_status st;
  if ((st = cudalink_cuda_load(why, sizeof why)) != CUDALINK_OK) {
    fprintf(stderr, "  driver: %s: %s\n", cudalink_status_name(st), why);
    return 0;
  }
  cu = cudalink_cuda_get(&st, NULL, 0);
  h = dlopen(MOCK_CUDA, RTLD_NOW | RTLD_NOLOAD);
  if (!cu || !h)
    return 0;
  *(void **)&mock_depth = dlsym(h, "mock_cuda_ctx_depth");
  *(void **)&mock_live = dlsym(h, "mock_cuda_live_allocations");
  *(void **)&mock_range_errors = dlsym(h, "mock_cuda_range_errors");
  dlclose(h); /* drops only our reference: the library keeps it loaded */
  return mock_depth && mock_live && mock_range_errors &&
         cu->DevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS;
}

#define DEPTH0() CHECK_EQ_INT(mock_depth(), 0)

/* Frame k's bytes: a fill value for the whole frame, the first row a ramp
 * that starts at k (so every one of the 200 frames differs). */
static void
expected_frame(uint8_t *buf, size_t size, size_t row, uint32_t k)
{
  memset(buf, (int)((k * 7u + 1u) & 0xffu), size);
  for (size_t i = 0; i < row; i++)
    buf[i] = (uint8_t)(k + i);
  memcpy(buf, &k, sizeof k);
}

/* ---- pipes between the two processes ---------------------------------- */

typedef struct msg {
  char op;  /* producer: 'p' publish n, 'r' reformat, 'd' destroy, 'q' quit, 's' set_write_idx
               (uint32_t)n, 'B' set_write_idx between begin and commit, 'R' reformat
               while cuStreamSynchronize fails (see producer_main) */
  int n;
} msg;

static int
send_msg(int fd, char op, int n)
{
  msg m;
  memset(&m, 0, sizeof m); /* no uninitialised padding through the pipe */
  m.op = op;
  m.n = n;
  return write(fd, &m, sizeof m) == (ssize_t)sizeof m;
}

static int
recv_msg(int fd, msg *m)
{
  ssize_t got;
  do
    got = read(fd, m, sizeof *m);
  while (got < 0 && errno == EINTR);
  return got == (ssize_t)sizeof *m;
}

/* ---- producer process ------------------------------------------------- */

static int
publish_one(cudalink_producer *p, uint32_t k)
{
  const cudalink_format *f = cudalink_producer_format(p);
  uint32_t size, row;
  uint64_t dst;
  size_t pitch;
  uint8_t *buf;
  int ok;

  cudalink_format_sizes(f, &size, &row);
  if (cudalink_producer_begin(p, &dst, &pitch) != CUDALINK_OK || !(buf = malloc(size)))
    return 0;
  expected_frame(buf, size, row, k);
  ok = cu->CtxPushCurrent(ctx) == CUDA_SUCCESS;
  if (ok) {
    ok = cu->MemsetD8Async((CUdeviceptr)dst, buf[size - 1], size,
                           (CUstream)cudalink_producer_stream(p)) == CUDA_SUCCESS &&
         cu->StreamSynchronize((CUstream)cudalink_producer_stream(p)) == CUDA_SUCCESS &&
         cu->MemcpyHtoD((CUdeviceptr)dst, buf, row) == CUDA_SUCCESS;
    cu->CtxPopCurrent(NULL);
  }
  free(buf);
  return ok && cudalink_producer_commit(p, NULL, 1) == CUDALINK_OK;
}

/* Drops our producer's lock on segment name, so that consumers take it
 * for a foreign producer (TouchDesigner, Python): they poll it. */
static int
drop_lock(const char *name)
{
  char want[128], link[256], path[300];
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int dropped = 0;

  snprintf(want, sizeof want, "/dev/shm/%s", name);
  while (d && (e = readdir(d)) != NULL) {
    ssize_t n;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    n = readlink(path, link, sizeof link - 1);
    if (n <= 0)
      continue;
    link[n] = 0;
    if (strcmp(link, want) == 0) {
      struct flock fl;
      memset(&fl, 0, sizeof fl);
      fl.l_type = F_UNLCK;
      fl.l_whence = SEEK_SET;
      dropped |= fcntl(atoi(e->d_name), F_OFD_SETLK, &fl) == 0;
    }
  }
  if (d)
    closedir(d);
  return dropped;
}

/* set_write_idx() between _begin() and _commit() is refused, saying why,
 * and the frame begun is still published (its bytes are not written). */
static int
misuse_set_write_idx(cudalink_producer *p)
{
  uint64_t dst;
  size_t pitch;
  int ok = cudalink_producer_begin(p, &dst, &pitch) == CUDALINK_OK &&
           cudalink_producer_set_write_idx(p, 1000) == CUDALINK_ERR_INVALID_ARG;
  const char *why = cudalink_producer_last_error(p);
  if (!strstr(why, "cudalink_producer_set_write_idx(1000) between _begin() and _commit()")) {
    fprintf(stderr, "  producer: %s\n", why);
    ok = 0;
  }
  /* finish the frame begun, as publish_one would have */
  ok = cudalink_producer_commit(p, NULL, 1) == CUDALINK_OK && ok;
  return ok;
}

/* A reformat whose wait for the old ring's work fails (a sticky CUDA
 * error) is refused, says so, and leaves the ring as it was; so is one to
 * a format that does not check (the next frames must still be whole). */
static int
reformat_without_sync(cudalink_producer *p)
{
  static const cudalink_format empty = { 0, 24, 1, CUDALINK_DTYPE_UINT16, 0 };
  cudalink_producer_stats before, after;
  cudalink_status st;
  const char *why;
  int ok;

  uint64_t dst;
  size_t pitch = 0;

  cudalink_producer_get_stats(p, &before);
  if (cudalink_producer_reformat(p, &empty) != CUDALINK_ERR_BAD_DIMENSIONS ||
      !strstr(cudalink_producer_last_error(p), "unusable frame format 0x24 x1 uint16"))
    return 0;
  /* the next frame's rows are still fmt_a's (begun again by publish_one) */
  if (cudalink_producer_begin(p, &dst, &pitch) != CUDALINK_OK || pitch != fmt_a.width * 4u) {
    fprintf(stderr, "  producer: pitch %lu after a refused reformat\n", (unsigned long)pitch);
    return 0;
  }
  setenv("MOCK_CUDA_FAIL", "cuStreamSynchronize", 1);
  st = cudalink_producer_reformat(p, &fmt_b);
  unsetenv("MOCK_CUDA_FAIL");
  cudalink_producer_get_stats(p, &after);
  why = cudalink_producer_last_error(p);
  ok = st == CUDALINK_ERR_CUDA && after.version == before.version &&
       cudalink_producer_format(p)->width == fmt_a.width &&
       strstr(why, "cuStreamSynchronize: CUDA_ERROR_MOCK_INJECTED (mock driver error)") != NULL;
  if (!ok)
    fprintf(stderr, "  producer: reformat gave %s: %s\n", cudalink_status_name(st), why);
  return ok;
}

/* Serves commands until 'q' (or EOF); returns its failure count. */
static int
producer_main(const char *name, int cmd_fd, int ack_fd)
{
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  long live0;
  uint32_t k = 0;
  int failures = 0;
  msg m;

  if (!load_driver())
    return 1;
  live0 = mock_live();
  cudalink_producer_config_init(&cfg);
  cfg.name = name;
  cfg.num_slots = SLOTS;
  cfg.grace_ms = 1;
  if (cudalink_producer_create(&cfg, &fmt_a, &p) != CUDALINK_OK)
    return 1;
  send_msg(ack_fd, 'k', 0);
  while (recv_msg(cmd_fd, &m) && m.op != 'q') {
    int ok = 1;
    switch (m.op) {
      case 'p':
        for (int i = 0; i < m.n && ok; i++)
          ok = publish_one(p, ++k);
        break;
      case 't': { /* n frames, one every PACE_PERIOD_NS, on the clock */
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        for (int i = 0; i < m.n && ok; i++) {
          at.tv_nsec += PACE_PERIOD_NS;
          if (at.tv_nsec >= 1000000000L) {
            at.tv_nsec -= 1000000000L;
            at.tv_sec++;
          }
          while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) != 0) {
          }
          ok = publish_one(p, ++k);
        }
        break;
      }
      case 'r':
        ok = cudalink_producer_reformat(p, &fmt_b) == CUDALINK_OK;
        break;
      case 's':
        ok = cudalink_producer_set_write_idx(p, (uint32_t)m.n) == CUDALINK_OK;
        break;
      case 'B':
        ok = misuse_set_write_idx(p);
        k++; /* a frame was published, its bytes unwritten */
        break;
      case 'R':
        ok = reformat_without_sync(p);
        break;
      case 'u':
        ok = drop_lock(name);
        break;
      case 'd':
        cudalink_producer_destroy(p);
        p = NULL;
        break;
      default:
        ok = 0;
    }
    if (!ok)
      failures++;
    send_msg(ack_fd, ok ? 'k' : 'f', 0);
  }
  cudalink_producer_destroy(p);
  cu->DevicePrimaryCtxRelease(0);
  if (mock_live() != live0) {
    fprintf(stderr, "  producer: %ld allocations left (was %ld)\n", mock_live(), live0);
    failures++;
  }
  return failures;
}

/* ---- consumer side ---------------------------------------------------- */

static int cmd_w = -1, ack_r = -1;

static int
producer_do(char op, int n)
{
  msg m;
  return send_msg(cmd_w, op, n) && recv_msg(ack_r, &m) && m.op == 'k';
}

/* fork_peer's child (arg: the segment name) */
static int
producer_child(const void *name, int cmd, int ack)
{
  return producer_main(name, cmd, ack);
}

/* Forks the producer; returns its pid (cmd_w / ack_r set) or -1. */
static pid_t
start_producer(const char *name)
{
  msg m;
  pid_t pid = fork_peer(producer_child, name, &cmd_w, &ack_r);
  if (pid < 0 || !recv_msg(ack_r, &m) || m.op != 'k')
    return -1;
  return pid;
}

static int
finish_producer(pid_t pid)
{
  send_msg(cmd_w, 'q', 0);
  close(cmd_w);
  close(ack_r);
  return wait_child(pid);
}

static char seg_name[64];
static unsigned seg_counter;

static void
new_name(void)
{
  snprintf(seg_name, sizeof seg_name, "cudalink-mocktest-%d-%u", (int)getpid(), seg_counter++);
}

/* 0, or the errno of shm_unlink */
static int
unlink_segment(void)
{
  char path[80];
  snprintf(path, sizeof path, "/%s", seg_name);
  return shm_unlink(path) == 0 ? 0 : errno;
}

static int
alloc_dev(CUdeviceptr *p, size_t n)
{
  int ok = cu->CtxPushCurrent(ctx) == CUDA_SUCCESS;
  if (ok) {
    ok = cu->MemAlloc(p, n) == CUDA_SUCCESS;
    cu->CtxPopCurrent(NULL);
  }
  return ok;
}

static void
free_dev(CUdeviceptr p)
{
  if (cu->CtxPushCurrent(ctx) == CUDA_SUCCESS) {
    cu->MemFree(p);
    cu->CtxPopCurrent(NULL);
  }
}

/* Copies the current frame into dst, reads it back and compares with frame
 * k of format f. */
static int
copy_and_check(cudalink_consumer *c, CUdeviceptr dst, const cudalink_format *f, uint32_t k)
{
  uint32_t size, row;
  uint8_t *got, *want;
  cudalink_status st;
  int same = 0;

  cudalink_format_sizes(f, &size, &row);
  st = cudalink_consumer_copy(c, dst, row, NULL);
  DEPTH0();
  if (st != CUDALINK_OK) {
    fprintf(stderr, "  copy of frame %u: %s\n", k, cudalink_status_name(st));
    return 0;
  }
  got = malloc(size);
  want = malloc(size);
  if (got && want && cu->CtxPushCurrent(ctx) == CUDA_SUCCESS) {
    if (cu->MemcpyDtoH(got, dst, size) == CUDA_SUCCESS) {
      expected_frame(want, size, row, k);
      same = memcmp(got, want, size) == 0;
    }
    cu->CtxPopCurrent(NULL);
  }
  free(got);
  free(want);
  if (!same)
    fprintf(stderr, "  frame %u differs\n", k);
  return same;
}

static cudalink_consumer *
connect_consumer_with(uint32_t flags, uint32_t poll_interval_us)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_status st;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  cfg.flags = flags;
  cfg.poll_interval_us = poll_interval_us;
  if (cudalink_consumer_create(&cfg, &c) != CUDALINK_OK)
    return NULL;
  st = cudalink_consumer_connect(c);
  DEPTH0();
  if (st != CUDALINK_OK) {
    fprintf(stderr, "  connect: %s: %s\n", cudalink_status_name(st), cudalink_consumer_last_error(c));
    cudalink_consumer_destroy(c);
    return NULL;
  }
  return c;
}

/* The start of a consumer-side test: a producer process on a new segment
 * (foreign: its lock dropped, so that the consumer polls it as it would
 * TouchDesigner), the driver loaded in ours, when dst is given a device
 * buffer for one frame of fmt_a (*live0: the mock driver's allocations
 * before it), and a consumer connected with flags and poll_us. NULL when a
 * step failed. */
static cudalink_consumer *
start_consumer_test(uint32_t flags, uint32_t poll_us, int foreign, pid_t *producer,
                    CUdeviceptr *dst, long *live0)
{
  uint32_t size_a;

  new_name();
  if ((*producer = start_producer(seg_name)) < 0 || (foreign && !producer_do('u', 0)))
    return NULL;
  /* the producer has the driver loaded in its own process; now ours */
  if (!load_driver())
    return NULL;
  if (dst) {
    *live0 = mock_live();
    DEPTH0();
    cudalink_format_sizes(&fmt_a, &size_a, NULL);
    if (!alloc_dev(dst, size_a))
      return NULL;
  }
  return connect_consumer_with(flags, poll_us);
}

/* The end of a consumer-side test: the consumer goes (leaving no context
 * pushed); dst, when there is one, goes too and the mock driver must have
 * got back every allocation made since live0; the producer quits cleanly. */
static void
finish_consumer_test(cudalink_consumer *c, pid_t producer, CUdeviceptr dst, long live0)
{
  cudalink_consumer_destroy(c);
  DEPTH0();
  if (dst) {
    free_dev(dst);
    CHECK_EQ_INT(mock_live(), live0);
  }
  CHECK_EQ_INT(finish_producer(producer), 0);
  cu->DevicePrimaryCtxRelease(0);
}

/* Frames, missed frames, a torn frame, a reformat, a clean shutdown. */
static int
consumer_ring(void)
{
  cudalink_consumer *c;
  cudalink_consumer_stats stats;
  cudalink_frame_info info;
  const cudalink_format *f;
  CUdeviceptr dst = 0;
  uint64_t src;
  size_t src_pitch;
  long live0;
  uint32_t k;
  pid_t producer;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 0, 0, &producer, &dst, &live0)))
    return 1;
  f = cudalink_consumer_format(c);
  DEPTH0();
  CHECK(f && f->width == fmt_a.width && f->height == fmt_a.height);

  /* 200 frames, lock-step, bit-exact */
  for (k = 1; k <= FRAMES; k++) {
    cudalink_status st;
    if (!producer_do('p', 1))
      return tu_failures_in_test + 1;
    st = cudalink_consumer_wait(c, 1000000);
    DEPTH0();
    if (st != CUDALINK_OK) {
      fprintf(stderr, "  wait for frame %u: %s\n", k, cudalink_status_name(st));
      return tu_failures_in_test + 1;
    }
    CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
    DEPTH0();
    CHECK_EQ_INT(info.write_idx, k);
    CHECK_EQ_INT(info.slot, (k - 1) % SLOTS);
    CHECK(copy_and_check(c, dst, &fmt_a, k));
  }
  cudalink_consumer_get_stats(c, &stats);
  DEPTH0();
  CHECK_EQ_INT(stats.frames, FRAMES);
  CHECK_EQ_INT(stats.missed, 0);
  CHECK_EQ_INT(stats.torn, 0);
  CHECK_EQ_INT(stats.num_slots, SLOTS);

  /* nothing new: a timeout */
  CHECK_EQ_INT(cudalink_consumer_wait(c, 20000), CUDALINK_ERR_TIMEOUT);
  DEPTH0();

  /* 5 frames between two waits: 4 missed, the newest returned */
  CHECK(producer_do('p', 5));
  k += 4;
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();
  CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
  DEPTH0();
  CHECK_EQ_INT(info.write_idx, k);
  CHECK(copy_and_check(c, dst, &fmt_a, k));
  cudalink_consumer_get_stats(c, &stats);
  DEPTH0();
  CHECK_EQ_INT(stats.missed, 4);

  /* torn: the producer laps the ring while we hold the slot */
  CHECK(producer_do('p', 1));
  k++;
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();
  CHECK_EQ_INT(cudalink_consumer_acquire(c, NULL, &src, &src_pitch), CUDALINK_OK);
  DEPTH0();
  CHECK(producer_do('p', (int)SLOTS));
  k += SLOTS;
  CHECK_EQ_INT(cudalink_consumer_release(c, NULL), CUDALINK_ERR_TORN);
  DEPTH0();
  cudalink_consumer_get_stats(c, &stats);
  DEPTH0();
  CHECK_EQ_INT(stats.torn, 1);
  /* the newest frame is clean again */
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();
  CHECK(copy_and_check(c, dst, &fmt_a, k));

  /* reformat */
  CHECK(producer_do('r', 0));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  DEPTH0();
  f = cudalink_consumer_format(c);
  DEPTH0();
  CHECK(f && f->width == fmt_b.width && f->height == fmt_b.height &&
        f->num_comps == fmt_b.num_comps && f->dtype == fmt_b.dtype);
  CHECK(producer_do('p', 1));
  k++;
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();
  CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
  DEPTH0();
  CHECK_EQ_INT(info.write_idx, 1);
  CHECK(copy_and_check(c, dst, &fmt_b, k)); /* fmt_b frames are smaller */
  cudalink_consumer_get_stats(c, &stats);
  DEPTH0();
  CHECK_EQ_INT(stats.reopens, 1);

  /* clean shutdown */
  CHECK(producer_do('d', 0));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_PRODUCER_GONE);
  DEPTH0();
  CHECK(cudalink_consumer_format(c) == NULL);
  DEPTH0();
  cudalink_consumer_destroy(c);
  DEPTH0();
  free_dev(dst);
  CHECK_EQ_INT(mock_live(), live0);
  CHECK_EQ_INT(finish_producer(producer), 0);
  /* destroy unlinked the segment already */
  CHECK_EQ_INT(unlink_segment(), ENOENT);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* The producer is SIGKILLed: the consumer notices within a second. */
static int
consumer_kill(void)
{
  cudalink_consumer *c;
  cudalink_status st;
  CUdeviceptr dst = 0;
  long live0;
  pid_t producer;
  double t0;
  int status;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 0, 0, &producer, &dst, &live0)))
    return 1;
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  kill(producer, SIGKILL);
  waitpid(producer, &status, 0);
  t0 = cudalink_now();
  do {
    st = cudalink_consumer_wait(c, 100000);
    DEPTH0();
  } while (st == CUDALINK_ERR_TIMEOUT && cudalink_now() - t0 < 2.0);
  CHECK_EQ_INT(st, CUDALINK_ERR_PRODUCER_GONE);
  CHECK(cudalink_now() - t0 < 1.0);
  cudalink_consumer_destroy(c);
  DEPTH0();
  free_dev(dst);
  CHECK_EQ_INT(mock_live(), live0);
  cu->DevicePrimaryCtxRelease(0);

  /* what the killed producer left behind: its "device memory" and segment */
  close(cmd_w);
  close(ack_r);
  for (unsigned i = 0; i < 64; i++) {
    char shm[64];
    snprintf(shm, sizeof shm, "/mockcuda.%d.%u", (int)producer, i);
    shm_unlink(shm);
  }
  CHECK_EQ_INT(unlink_segment(), 0);
  return tu_failures_in_test;
}

/* The GPU takes 2 ms to run each copy (MOCK_CUDA_GPU_US): every frame is
 * still clean and bit-exact, with the default release() and with each of
 * its flags; by default and with SLEEP_SYNC the consumer sleeps through
 * most of the wait instead of spinning (its thread's CPU time is well under
 * the time it waits), while SPIN_SYNC spins (to show the check can fail). */
static int
consumer_slow_gpu_flags(uint32_t flags, double *cpu_share)
{
  cudalink_consumer *c;
  CUdeviceptr dst = 0;
  uint32_t k;
  pid_t producer;
  long live0;
  double cpu = 0, wall = 0;

  if (!(c = start_consumer_test(flags, 0, 0, &producer, &dst, &live0)))
    return 1;
  setenv("MOCK_CUDA_GPU_US", "2000", 1);
  for (k = 1; k <= 60; k++) {
    double t0, c0;
    CHECK(producer_do('p', 1));
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    c0 = thread_cpu_s();
    t0 = cudalink_now();
    CHECK(copy_and_check(c, dst, &fmt_a, k));
    if (k > 40) { /* the first ones teach the default how long the GPU takes */
      cpu += thread_cpu_s() - c0;
      wall += cudalink_now() - t0;
    }
  }
  unsetenv("MOCK_CUDA_GPU_US");
  *cpu_share = wall > 0 ? cpu / wall : 1;
  fprintf(stderr, "  flags 0x%x: CPU %.0f%% of the time spent copying\n", (unsigned)flags,
          *cpu_share * 100);
  finish_consumer_test(c, producer, dst, live0);
  return 0;
}

static int
consumer_slow_gpu(void)
{
  double share = 1;
  tu_failures_in_test = 0;
  CHECK_EQ_INT(consumer_slow_gpu_flags(0, &share), 0);
  CHECK(share < 0.5);
  CHECK_EQ_INT(consumer_slow_gpu_flags(CUDALINK_CONSUMER_SLEEP_SYNC, &share), 0);
  CHECK(share < 0.5);
  CHECK_EQ_INT(consumer_slow_gpu_flags(CUDALINK_CONSUMER_SPIN_SYNC, &share), 0);
  CHECK(share > 0.5);
  return tu_failures_in_test;
}

/* Our producer wakes consumers itself: a consumer waiting on it sleeps
 * until a frame (or a liveness check) instead of polling, even with a
 * 10 us poll interval that would otherwise wake it 100 000 times a
 * second. The frame published mid-wait still ends the wait at once. */

static int
consumer_idle(void)
{
  cudalink_consumer *c;
  pid_t producer;
  double cpu0, t0;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 10, 0, &producer, NULL, NULL)))
    return 1;
  CHECK(cudalink_consumer_producer_is_ours(c));
  cpu0 = thread_cpu_s();
  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_consumer_wait(c, 300000), CUDALINK_ERR_TIMEOUT);
  fprintf(stderr, "  300 ms idle wait on our producer: %.1f ms of CPU\n",
          (thread_cpu_s() - cpu0) * 1e3);
  CHECK(cudalink_now() - t0 >= 0.3);
  CHECK(thread_cpu_s() - cpu0 < 0.03);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  finish_consumer_test(c, producer, 0, 0);
  return tu_failures_in_test;
}

/* A producer publishing every 20 ms: with flags 0 the consumer learns its
 * pace and finds frames spinning around their due time (paced > 0), with
 * NO_PACE never; either way it gets every frame, sleeps most of the time,
 * and stops spinning once the producer stops. */
static int
consumer_paced_flags(uint32_t flags, uint64_t *paced)
{
  cudalink_consumer *c;
  cudalink_consumer_stats stats;
  pid_t producer;
  msg m;
  double cpu0, t0, share;
  int frames = 0;

  if (!(c = start_consumer_test(flags, 0, 0, &producer, NULL, NULL)))
    return 1;
  cpu0 = thread_cpu_s();
  t0 = cudalink_now();
  CHECK(send_msg(cmd_w, 't', 60));
  while (frames < 60 && cudalink_consumer_wait(c, 1000000) == CUDALINK_OK)
    frames++;
  DEPTH0();
  CHECK_EQ_INT(frames, 60);
  CHECK(recv_msg(ack_r, &m) && m.op == 'k');
  share = (thread_cpu_s() - cpu0) / (cudalink_now() - t0);
  cudalink_consumer_get_stats(c, &stats);
  *paced = stats.paced;
  fprintf(stderr, "  flags 0x%x: 60 frames at 50 fps, %llu found spinning, CPU %.1f%%\n",
          (unsigned)flags, (unsigned long long)stats.paced, share * 100);
  CHECK(share < 0.25);

  cpu0 = thread_cpu_s();
  CHECK_EQ_INT(cudalink_consumer_wait(c, 300000), CUDALINK_ERR_TIMEOUT);
  CHECK(thread_cpu_s() - cpu0 < 0.03);
  finish_consumer_test(c, producer, 0, 0);
  return 0;
}

static int
consumer_paced(void)
{
  uint64_t paced = 0;
  tu_failures_in_test = 0;
  CHECK_EQ_INT(consumer_paced_flags(0, &paced), 0);
  CHECK(paced > 0);
  CHECK_EQ_INT(consumer_paced_flags(CUDALINK_CONSUMER_NO_PACE, &paced), 0);
  CHECK_EQ_INT(paced, 0);
  return tu_failures_in_test;
}

/* A producer taken for a foreign one, at 50 fps: the consumer polls it
 * every millisecond until it learns the pace, then sleeps through the
 * first three quarters of each period (no frame can come then without
 * breaking the pace); with NO_PACE it polls all the time. Counted in
 * stats.sleeps, one per futex wait or poll. */
static int
consumer_foreign_flags(uint32_t flags, double *sleeps_per_frame)
{
  cudalink_consumer *c;
  cudalink_consumer_stats s0, s1;
  pid_t producer;
  msg m;
  int frames = 0;

  if (!(c = start_consumer_test(flags, 1000, 1, &producer, NULL, NULL)))
    return 1;
  CHECK(!cudalink_consumer_producer_is_ours(c));
  CHECK(send_msg(cmd_w, 't', 70));
  /* 10 frames to learn the pace, then 60 counted */
  while (frames < 10 && cudalink_consumer_wait(c, 1000000) == CUDALINK_OK)
    frames++;
  cudalink_consumer_get_stats(c, &s0);
  while (frames < 70 && cudalink_consumer_wait(c, 1000000) == CUDALINK_OK)
    frames++;
  cudalink_consumer_get_stats(c, &s1);
  DEPTH0();
  CHECK_EQ_INT(frames, 70);
  CHECK(recv_msg(ack_r, &m) && m.op == 'k');
  *sleeps_per_frame = (double)(s1.sleeps - s0.sleeps) / 60;
  fprintf(stderr, "  flags 0x%x: foreign producer at 50 fps, poll 1000 us: %.1f sleeps a frame, "
          "%llu of 60 frames found spinning\n", (unsigned)flags, *sleeps_per_frame,
          (unsigned long long)(s1.paced - s0.paced));
  finish_consumer_test(c, producer, 0, 0);
  return 0;
}

static int
consumer_foreign(void)
{
  double paced = 0, polled = 0;
  tu_failures_in_test = 0;
  CHECK_EQ_INT(consumer_foreign_flags(0, &paced), 0);
  CHECK_EQ_INT(consumer_foreign_flags(CUDALINK_CONSUMER_NO_PACE, &polled), 0);
  /* 20 ms between frames, a poll a millisecond without the pace; with it
   * one sleep to 15 ms, 5 polls, one precise sleep to the window */
  CHECK(polled > 14);
  CHECK(paced > 0 && paced < 10);
  return tu_failures_in_test;
}

static void *
interrupt_later(void *arg)
{
  usleep(100 * 1000);
  cudalink_consumer_interrupt(arg, 1);
  return NULL;
}

/* cudalink_consumer_interrupt(): a wait in progress returns INTERRUPTED
 * long before its timeout, so do waits that start while it is in force;
 * once lifted, waits time out and frames come as before. */
static int
consumer_interrupt(void)
{
  cudalink_consumer *c;
  pid_t producer;
  pthread_t th;
  double t0, took;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 0, 0, &producer, NULL, NULL)))
    return 1;
  cudalink_consumer_interrupt(c, 1);
  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_consumer_wait(c, 5000000), CUDALINK_ERR_INTERRUPTED);
  CHECK(cudalink_now() - t0 < 1.0);
  cudalink_consumer_interrupt(c, 0);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 50000), CUDALINK_ERR_TIMEOUT);

  /* our producer publishes nothing: the wait sleeps on its futex word */
  if (pthread_create(&th, NULL, interrupt_later, c) != 0) {
    finish_consumer_test(c, producer, 0, 0);
    return 1;
  }
  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_consumer_wait(c, 5000000), CUDALINK_ERR_INTERRUPTED);
  took = cudalink_now() - t0;
  pthread_join(th, NULL);
  fprintf(stderr, "  a 5 s wait interrupted after %.0f ms\n", took * 1e3);
  CHECK(took >= 0.09 && took < 2.0);
  DEPTH0();

  cudalink_consumer_interrupt(c, 0);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  finish_consumer_test(c, producer, 0, 0);
  return tu_failures_in_test;
}

/* cudalink_cuda_symbol(): the loaded driver's own functions, by name, work
 * as the library's table does (cudalink-demo makes its calls this way). */
static int
cuda_symbol(void)
{
  typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
  typedef CUresult (*memset_fn)(CUdeviceptr, unsigned char, size_t, CUstream);
  alloc_fn mem_alloc;
  memset_fn memset_d8;
  CUdeviceptr d = 0;
  uint8_t host[64];
  CUcontext popped;

  tu_failures_in_test = 0;
  CHECK(cudalink_cuda_symbol("cuMemAlloc_v2") != NULL); /* loads the driver */
  if (!load_driver())
    return 1;
  mem_alloc = (alloc_fn)cudalink_cuda_symbol("cuMemAlloc_v2");
  memset_d8 = (memset_fn)cudalink_cuda_symbol("cuMemsetD8Async");
  CHECK(mem_alloc == cu->MemAlloc);
  CHECK(memset_d8 == cu->MemsetD8Async);
  CHECK(cudalink_cuda_symbol("cuNoSuchFunction") == NULL);
  CHECK(cudalink_cuda_symbol(NULL) == NULL);
  if (!mem_alloc || !memset_d8)
    return 1;

  CHECK_EQ_INT(cu->CtxPushCurrent(ctx), CUDA_SUCCESS);
  CHECK_EQ_INT(mem_alloc(&d, sizeof host), CUDA_SUCCESS);
  CHECK_EQ_INT(memset_d8(d, 0x5a, sizeof host, NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(cu->StreamSynchronize(NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(cu->MemcpyDtoH(host, d, sizeof host), CUDA_SUCCESS);
  CHECK(host[0] == 0x5a && host[sizeof host - 1] == 0x5a);
  CHECK_EQ_INT(cu->MemFree(d), CUDA_SUCCESS);
  CHECK_EQ_INT(cu->CtxPopCurrent(&popped), CUDA_SUCCESS);
  DEPTH0();
  CHECK(mock_live() == 0);
  return tu_failures_in_test;
}

/* ---- a foreign producer, written by hand ------------------------------ */

/* What TouchDesigner or a Python exporter would leave in a segment, built
 * in the consumer's own process (the mock maps an IPC handle in any
 * process): slot s allocated with alloc[s] bytes whatever the header says,
 * and a header that is rewritten only when the test says so, version
 * included. */
typedef struct foreign {
  uint8_t *seg;
  size_t seg_size;
  cudalink_header h;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
  CUevent ev[CUDALINK_MAX_SLOTS];
  size_t alloc[CUDALINK_MAX_SLOTS];
} foreign;

/* Writes f->h as it is, all of it (a producer rewriting its header in place
 * need not bump the version). */
static int
foreign_rewrite(foreign *f)
{
  f->h.timestamp = cudalink_now();
  return cudalink_header_write(&f->h, f->seg, f->seg_size) == CUDALINK_OK;
}

static int
foreign_slots(foreign *f, const size_t *alloc)
{
  int ok = cu->CtxPushCurrent(ctx) == CUDA_SUCCESS;
  for (uint32_t s = 0; ok && s < f->h.num_slots; s++) {
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    f->alloc[s] = alloc[s];
    ok = cu->MemAlloc(&f->mem[s], alloc[s]) == CUDA_SUCCESS &&
         cu->EventCreate(&f->ev[s], CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING) ==
             CUDA_SUCCESS &&
         cu->IpcGetMemHandle(&mh, f->mem[s]) == CUDA_SUCCESS &&
         cu->IpcGetEventHandle(&eh, f->ev[s]) == CUDA_SUCCESS;
    memcpy(f->h.mem_handle[s], &mh, sizeof mh);
    memcpy(f->h.event_handle[s], &eh, sizeof eh);
  }
  if (ok || cu->CtxPushCurrent(ctx) == CUDA_SUCCESS) /* pushed either way */
    cu->CtxPopCurrent(NULL);
  return ok;
}

/* A segment seg_name at version 1 describing fmt in slots allocations. */
static int
foreign_up(foreign *f, const cudalink_format *fmt, uint32_t slots, const size_t *alloc)
{
  char path[80];
  int fd;
  void *m;

  memset(f, 0, sizeof *f);
  f->h.version = 1;
  f->h.num_slots = slots;
  f->h.format = *fmt;
  f->seg_size = cudalink_layout_size(slots);
  snprintf(path, sizeof path, "/%s", seg_name);
  if ((fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0)
    return 0;
  m = ftruncate(fd, (off_t)f->seg_size) == 0
          ? mmap(NULL, f->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
          : MAP_FAILED;
  close(fd);
  if (m == MAP_FAILED)
    return 0;
  f->seg = m;
  return foreign_slots(f, alloc) && foreign_rewrite(f);
}

/* Frame k as write_idx idx: its bytes (as many as the slot holds) into slot
 * (idx - 1) % N, computed modulo 2^32 as a C producer would, the event, the
 * timestamp, then write_idx. */
static int
foreign_publish(foreign *f, uint32_t idx, uint32_t k)
{
  cudalink_layout L = cudalink_layout_for(f->h.num_slots);
  uint32_t size, row, slot = (idx - 1u) % f->h.num_slots;
  uint8_t *buf;
  double ts = cudalink_now();
  int ok;

  cudalink_format_sizes(&f->h.format, &size, &row);
  if (!(buf = malloc(size)))
    return 0;
  expected_frame(buf, size, row, k);
  ok = cu->CtxPushCurrent(ctx) == CUDA_SUCCESS;
  if (ok) {
    ok = cu->MemcpyHtoD(f->mem[slot], buf, size < f->alloc[slot] ? size : f->alloc[slot]) ==
             CUDA_SUCCESS &&
         cu->EventRecord(f->ev[slot], NULL) == CUDA_SUCCESS;
    cu->CtxPopCurrent(NULL);
  }
  free(buf);
  f->h.write_idx = idx;
  memcpy(f->seg + L.timestamp, &ts, sizeof ts);
  atomic_store_explicit((_Atomic uint32_t *)(void *)(f->seg + L.write_idx), idx,
                        memory_order_release);
  return ok;
}

static void
foreign_down(foreign *f)
{
  char path[80];
  if (cu->CtxPushCurrent(ctx) == CUDA_SUCCESS) {
    for (uint32_t s = 0; s < f->h.num_slots; s++) {
      if (f->ev[s])
        cu->EventDestroy(f->ev[s]);
      if (f->mem[s])
        cu->MemFree(f->mem[s]);
    }
    cu->CtxPopCurrent(NULL);
  }
  if (f->seg)
    munmap(f->seg, f->seg_size);
  snprintf(path, sizeof path, "/%s", seg_name);
  shm_unlink(path);
}

static char log_text[4096];

static void
collect_log(void *user, cudalink_log_level level, const char *message)
{
  size_t n = strlen(log_text);
  (void)user;
  snprintf(log_text + n, sizeof log_text - n, "[%d] %s\n", (int)level, message);
}

/* A consumer of seg_name that settles a header for settle_ms; its connect
 * status in *st. */
static cudalink_consumer *
consumer_settling(uint32_t settle_ms, cudalink_status *st)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  cfg.settle_ms = settle_ms;
  cfg.poll_interval_us = 200;
  cfg.log = collect_log;
  log_text[0] = 0;
  if (cudalink_consumer_create(&cfg, &c) != CUDALINK_OK)
    return NULL;
  *st = cudalink_consumer_connect(c);
  DEPTH0();
  return c;
}

/* last_error is exactly "segment 'NAME'" followed by rest */
static int
error_is(const cudalink_consumer *c, const char *before_name, const char *rest)
{
  char want[512];
  snprintf(want, sizeof want, "%s'%s'%s", before_name, seg_name, rest);
  if (strcmp(cudalink_consumer_last_error(c), want) == 0)
    return 1;
  fprintf(stderr, "  last error: %s\n  expected:   %s\n", cudalink_consumer_last_error(c), want);
  return 0;
}

/* 1. A header that claims more than the slots hold: slot 1 (of 3) is a
 * 4 MiB allocation, the header a 1080p RGBA frame (8294400 bytes). The
 * connect is refused with the sizes, and no copy is ever tried. */
static int
consumer_slot_too_small(void)
{
  static const cudalink_format hd = { 1920, 1080, 4, CUDALINK_DTYPE_UINT8, 0 };
  static const size_t alloc[3] = { 8u << 20, 4u << 20, 4u << 20 };
  CUdeviceptr dst = 0;
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  foreign f;
  long live0, range0;

  tu_failures_in_test = 0;
  new_name();
  if (!load_driver())
    return 1;
  live0 = mock_live();
  range0 = mock_range_errors();
  CHECK(foreign_up(&f, &hd, 3, alloc));
  CHECK(foreign_publish(&f, 1, 1));
  CHECK(alloc_dev(&dst, 8u << 20));
  c = consumer_settling(50, &st);
  CHECK_EQ_INT(st, CUDALINK_ERR_SLOT_TOO_SMALL);
  CHECK(error_is(c, "segment ",
                 ": slot 1's allocation is 4194304 bytes, the header's 1920x1080 uint8 x4 frame "
                 "needs 8294400"));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 0), CUDALINK_ERR_NOT_CONNECTED);
  CHECK_EQ_INT(cudalink_consumer_copy(c, dst, 1920 * 4, NULL), CUDALINK_ERR_NOT_CONNECTED);
  DEPTH0();
  CHECK_EQ_INT(mock_range_errors(), range0); /* nothing reached past a slot */
  cudalink_consumer_destroy(c);
  free_dev(dst);
  foreign_down(&f);
  CHECK_EQ_INT(mock_live(), live0); /* the slots it had opened are closed */
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* 1 and 2. A header that grows past its slots between two frames, without
 * a new version: the consumer does not copy the frame with the old sizes,
 * it re-validates, and the new header's claim is refused as on connect. */
static int
consumer_header_outgrows_slots(void)
{
  static const size_t alloc[3] = { 8192, 8192, 8192 };
  CUdeviceptr dst = 0;
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  foreign f;
  long range0;
  char rest[400];

  tu_failures_in_test = 0;
  new_name();
  if (!load_driver())
    return 1;
  range0 = mock_range_errors();
  CHECK(foreign_up(&f, &fmt_a, 3, alloc)); /* 64x32 x4: 8192 bytes, exactly */
  CHECK(foreign_publish(&f, 1, 1));
  CHECK(alloc_dev(&dst, 16384));
  c = consumer_settling(50, &st);
  CHECK_EQ_INT(st, CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  f.h.format.width = 128; /* 16384 bytes a frame, version still 1 */
  CHECK(foreign_rewrite(&f));
  CHECK(foreign_publish(&f, 2, 2));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_PRODUCER_GONE);
  snprintf(rest, sizeof rest,
           " is gone: its segment changed its header without a new version, and the new ring "
           "could not be opened: segment '%s': slot 0's allocation is 8192 bytes, the header's "
           "128x32 uint8 x4 frame needs 16384",
           seg_name);
  CHECK(error_is(c, "producer of ", rest));
  CHECK_EQ_INT(cudalink_consumer_copy(c, dst, 128 * 4, NULL), CUDALINK_ERR_NOT_CONNECTED);
  CHECK_EQ_INT(mock_range_errors(), range0);
  DEPTH0();
  cudalink_consumer_destroy(c);
  free_dev(dst);
  foreign_down(&f);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* 2. The header changes under the consumer without a new version: a new
 * format between two frames, flags during a copy, handles swapped. Each
 * time the consumer takes the format-changed path (the copy in progress is
 * torn) and the frames after it are right. */
static int
consumer_header_changes_unannounced(void)
{
  static const cudalink_format small = { 32, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  static const size_t alloc[3] = { 16384, 16384, 16384 };
  cudalink_consumer_stats stats;
  CUdeviceptr dst = 0;
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  uint64_t src;
  size_t pitch;
  foreign f;
  uint8_t tmp[CUDALINK_IPC_HANDLE_SIZE];

  tu_failures_in_test = 0;
  new_name();
  if (!load_driver())
    return 1;
  CHECK(foreign_up(&f, &fmt_a, 3, alloc));
  CHECK(foreign_publish(&f, 1, 1));
  CHECK(alloc_dev(&dst, 16384));
  c = consumer_settling(50, &st);
  CHECK_EQ_INT(st, CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  /* a new format, same version */
  f.h.format = small;
  CHECK(foreign_rewrite(&f));
  CHECK(foreign_publish(&f, 2, 2));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK(error_is(c, "segment ",
                 " changed its header without a new version (still version 1): re-opened, "
                 "64x32 x4 uint8, 3 slots -> 32x32 x4 uint8, 3 slots"));
  CHECK_STR_CONTAINS(log_text, "changed its header without a new version");
  CHECK(cudalink_consumer_format(c) && cudalink_consumer_format(c)->width == 32);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &small, 2));

  /* flags change while a frame is being copied: the copy is torn */
  CHECK(foreign_publish(&f, 3, 3));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_acquire(c, NULL, &src, &pitch), CUDALINK_OK);
  f.h.format.flags = CUDALINK_FLAG_BGRA;
  CHECK(foreign_rewrite(&f));
  CHECK_EQ_INT(cudalink_consumer_release(c, NULL), CUDALINK_ERR_TORN);
  CHECK(foreign_publish(&f, 4, 4));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK(cudalink_consumer_format(c) && cudalink_consumer_format(c)->flags == CUDALINK_FLAG_BGRA);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &small, 4));

  /* slots 0 and 1 swap handles: same format, another ring */
  memcpy(tmp, f.h.mem_handle[0], sizeof tmp);
  memcpy(f.h.mem_handle[0], f.h.mem_handle[1], sizeof tmp);
  memcpy(f.h.mem_handle[1], tmp, sizeof tmp);
  CHECK(foreign_rewrite(&f));
  CHECK(foreign_publish(&f, 5, 5)); /* into our slot 1, which is its slot 0 now */
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK(error_is(c, "segment ",
                 " changed its header without a new version (still version 1): re-opened, "
                 "32x32 x4 uint8, 3 slots -> 32x32 x4 uint8, 3 slots"));
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.reopens, 3);
  CHECK_EQ_INT(stats.torn, 1);
  DEPTH0();
  cudalink_consumer_destroy(c);
  free_dev(dst);
  foreign_down(&f);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* 3. A foreign producer whose counter runs on from 0xFFFFFFFF to 0: the 0
 * is a frame like any other, nothing is missed or torn; a write_idx that
 * falls to 0 from low down is not a frame (a peer re-initialising). */
static int
consumer_foreign_wrap(void)
{
  static const size_t alloc[3] = { 8192, 8192, 8192 };
  static const uint32_t idx[] = { 0xFFFFFFFEu, 0xFFFFFFFFu, 0, 1, 2 };
  cudalink_consumer_stats stats;
  cudalink_frame_info info;
  CUdeviceptr dst = 0;
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  foreign f;
  uint32_t k;

  tu_failures_in_test = 0;
  new_name();
  if (!load_driver())
    return 1;
  CHECK(foreign_up(&f, &fmt_a, 3, alloc));
  CHECK(alloc_dev(&dst, 8192));
  c = consumer_settling(50, &st);
  CHECK_EQ_INT(st, CUDALINK_OK);
  for (k = 1; k <= 5; k++) {
    CHECK(foreign_publish(&f, idx[k - 1], k));
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
    CHECK(info.write_idx == idx[k - 1]);
    CHECK_EQ_INT(info.slot, (idx[k - 1] - 1u) % 3u);
    CHECK(copy_and_check(c, dst, &fmt_a, k));
  }
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.frames, 5);
  CHECK_EQ_INT(stats.missed, 0);
  CHECK_EQ_INT(stats.torn, 0);
  /* back to 0 from 2: no frame */
  CHECK(foreign_publish(&f, 0, 6));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 30000), CUDALINK_ERR_TIMEOUT);
  CHECK(foreign_publish(&f, 3, 7));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 7));
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.missed, 0);

  /* a burst across the wrap, after a re-initialisation at 0xFFFFFFFC:
   * 0xFFFFFFFD .. 0xFFFFFFFF, 0, 1 between two waits, four missed */
  f.h.version = 2;
  f.h.write_idx = 0xFFFFFFFCu;
  CHECK(foreign_rewrite(&f));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK(foreign_publish(&f, 0xFFFFFFFCu, 8));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  for (k = 9; k <= 13; k++)
    CHECK(foreign_publish(&f, 0xFFFFFFFDu + (k - 9), k));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 13));
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.missed, 4);
  DEPTH0();
  cudalink_consumer_destroy(c);
  free_dev(dst);
  foreign_down(&f);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* Waits for our producer's next frame, k, expecting write_idx want in the
 * slot after prev_slot (none when prev_slot is -1), and checks its bytes. */
static void
expect_frame(cudalink_consumer *c, CUdeviceptr dst, uint32_t k, uint32_t want, int prev_slot)
{
  cudalink_frame_info info;
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
  if (info.write_idx != want)
    fprintf(stderr, "  frame %u: write_idx %u, expected %u\n", k, info.write_idx, want);
  CHECK(info.write_idx == want);
  CHECK_EQ_INT(info.slot, (want - 1u) % SLOTS);
  if (prev_slot >= 0)
    CHECK_EQ_INT(info.slot, ((uint32_t)prev_slot + 1u) % SLOTS);
  CHECK(copy_and_check(c, dst, &fmt_a, k));
}

/* 3. Our producer across the 2^32 wrap (3 slots: 0xFFFFFFFF is the top,
 * then 1): every frame arrives whole in the next slot, none is missed; a
 * burst across the wrap counts exactly the frames skipped; a copy across
 * the wrap is torn only when the slot really was rewritten. Taken for ours
 * (woken, exact arithmetic) or for a foreign producer (polled). */
static int
consumer_our_wrap_as(int foreign_mode)
{
  static const uint32_t lockstep[] = { 0xFFFFFFFDu, 0xFFFFFFFEu, 0xFFFFFFFFu, 1, 2 };
  cudalink_consumer_stats stats;
  cudalink_consumer *c;
  CUdeviceptr dst = 0;
  uint64_t src;
  size_t pitch;
  pid_t producer;
  long live0;
  uint32_t k = 0;
  int slot = -1;

  if (!(c = start_consumer_test(0, 0, foreign_mode, &producer, &dst, &live0)))
    return 1;
  /* a burst across the wrap: 0xFFFFFFFE, 0xFFFFFFFF, 1 come between two
   * waits, two of them missed; counted modulo 2^32, for a producer not
   * known to be ours, the 0 it skipped counts too */
  CHECK(producer_do('s', (int)0xFFFFFFFCu));
  CHECK(producer_do('p', 1));
  expect_frame(c, dst, ++k, 0xFFFFFFFDu, -1);
  CHECK(producer_do('p', 3));
  k += 3;
  expect_frame(c, dst, k, 1, -1);
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.missed, foreign_mode ? 3 : 2);

  /* lock-step across the wrap: each frame in the slot after the last */
  CHECK(producer_do('s', (int)0xFFFFFFFCu));
  for (unsigned i = 0; i < sizeof lockstep / sizeof lockstep[0]; i++) {
    CHECK(producer_do('p', 1));
    expect_frame(c, dst, ++k, lockstep[i], slot);
    slot = (int)((lockstep[i] - 1u) % SLOTS);
  }
  cudalink_consumer_get_stats(c, &stats);
  CHECK_EQ_INT(stats.frames, 7);
  CHECK_EQ_INT(stats.torn, 0);

  /* held across the wrap: 0xFFFFFFFF's slot (2) is rewritten by the third
   * frame after it, so the copy is clean with one frame (1) published
   * meanwhile, torn with two (1, 2) for safety, as anywhere else. Counted
   * modulo 2^32 (not known to be ours) one frame looks like two: torn. */
  for (int more = 1; more <= 2; more++) {
    CHECK(producer_do('s', (int)0xFFFFFFFEu));
    CHECK(producer_do('p', 1));
    k++;
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_acquire(c, NULL, &src, &pitch), CUDALINK_OK);
    CHECK(producer_do('p', more));
    k += (uint32_t)more;
    CHECK_EQ_INT(cudalink_consumer_release(c, NULL),
                 more == 1 && !foreign_mode ? CUDALINK_OK : CUDALINK_ERR_TORN);
    expect_frame(c, dst, k, (uint32_t)more, -1); /* the newest is whole */
  }
  /* set_write_idx() where it must not be: refused, saying why */
  CHECK(producer_do('B', 0));
  k++;
  finish_consumer_test(c, producer, dst, live0);
  return 0;
}

static int
consumer_our_wrap(void)
{
  tu_failures_in_test = 0;
  CHECK_EQ_INT(consumer_our_wrap_as(0), 0);
  CHECK_EQ_INT(consumer_our_wrap_as(1), 0);
  return tu_failures_in_test;
}

/* A segment seg_name as a producer that shut down leaves it: version v,
 * shutdown flag set, handles zeroed. */
static int
leave_segment(uint64_t v)
{
  cudalink_header h;
  char path[80];
  size_t size = cudalink_layout_size(SLOTS);
  uint8_t *m;
  int fd, ok;

  memset(&h, 0, sizeof h);
  h.version = v;
  h.num_slots = SLOTS;
  h.write_idx = 77;
  h.shutdown_flag = 1;
  h.format = fmt_a;
  snprintf(path, sizeof path, "/%s", seg_name);
  if ((fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0)
    return 0;
  ok = ftruncate(fd, (off_t)size) == 0;
  m = ok ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (m == MAP_FAILED)
    return 0;
  ok = cudalink_header_write(&h, m, size) == CUDALINK_OK;
  munmap(m, size);
  return ok;
}

/* 4. The version crosses 2^32 while a consumer watches: our producer takes
 * over a segment left at 0xFFFFFFFE (so it starts at 0xFFFFFFFF) and its
 * reformat stores 0x100000000, both halves changing. The consumer sees the
 * change, says so with both values, and holds the new one whole. */
static int
consumer_version_carry(void)
{
  cudalink_consumer_stats stats;
  cudalink_frame_info info;
  cudalink_consumer *c;
  CUdeviceptr dst = 0;
  pid_t producer;
  uint32_t size_a;

  tu_failures_in_test = 0;
  new_name();
  if (!leave_segment(0xFFFFFFFEull) || (producer = start_producer(seg_name)) < 0 ||
      !load_driver())
    return 1;
  cudalink_format_sizes(&fmt_a, &size_a, NULL);
  CHECK(alloc_dev(&dst, size_a));
  if (!(c = connect_consumer_with(0, 0)))
    return tu_failures_in_test + 1;
  cudalink_consumer_get_stats(c, &stats);
  CHECK(stats.version == 0xFFFFFFFFull);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
  CHECK(info.version == 0xFFFFFFFFull);
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  CHECK(producer_do('r', 0));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK(error_is(c, "segment ",
                 " was re-initialised (version 4294967295 -> 4294967296): re-opened, "
                 "64x32 x4 uint8, 3 slots -> 40x24 x1 uint16, 3 slots"));
  cudalink_consumer_get_stats(c, &stats);
  CHECK(stats.version == 0x100000000ull);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_frame_info(c, &info), CUDALINK_OK);
  CHECK(info.version == 0x100000000ull);
  CHECK(copy_and_check(c, dst, &fmt_b, 2));
  free_dev(dst);
  finish_consumer_test(c, producer, 0, 0);
  return tu_failures_in_test;
}

/* 5. CUDA failures a working driver never gives, each checked and told:
 * a slot whose size cannot be asked (connect refused), an event query
 * that fails (copy fails, the next one works), a producer whose reformat
 * cannot wait for its old ring (refused, ring kept), and handles that do
 * not close (logged: nobody to return it to). */
static int
consumer_cuda_failures(void)
{
  cudalink_consumer *c;
  cudalink_status st = CUDALINK_OK;
  CUdeviceptr dst = 0;
  pid_t producer;
  long live0;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 0, 0, &producer, &dst, &live0)))
    return 1;
  cudalink_consumer_destroy(c);

  setenv("MOCK_CUDA_FAIL", "cuMemGetAddressRange_v2", 1);
  c = consumer_settling(20, &st);
  unsetenv("MOCK_CUDA_FAIL");
  CHECK_EQ_INT(st, CUDALINK_ERR_IPC_OPEN);
  CHECK(error_is(c, "segment ",
                 ": slot 0: cuMemGetAddressRange: CUDA_ERROR_MOCK_INJECTED (mock driver error)"));
  cudalink_consumer_destroy(c);

  c = consumer_settling(0, &st);
  CHECK_EQ_INT(st, CUDALINK_OK);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  setenv("MOCK_CUDA_FAIL", "cuEventQuery", 1);
  CHECK_EQ_INT(cudalink_consumer_copy(c, dst, 64 * 4, NULL), CUDALINK_ERR_CUDA);
  unsetenv("MOCK_CUDA_FAIL");
  CHECK_STR_CONTAINS(cudalink_consumer_last_error(c),
                     "cuEventQuery: CUDA_ERROR_MOCK_INJECTED (mock driver error)");
  DEPTH0();
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  CHECK(producer_do('R', 0)); /* checks the producer's own error text */
  CHECK_EQ_INT(cudalink_consumer_wait(c, 30000), CUDALINK_ERR_TIMEOUT); /* no new version */
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 2)); /* the producer's ring and sizes held */

  setenv("MOCK_CUDA_FAIL", "cuIpcCloseMemHandle", 1);
  cudalink_consumer_disconnect(c);
  unsetenv("MOCK_CUDA_FAIL");
  DEPTH0();
  CHECK_STR_CONTAINS(log_text, "[1] segment '");
  CHECK_STR_CONTAINS(log_text, "': cuIpcCloseMemHandle: CUDA_ERROR_MOCK_INJECTED (mock driver error)");
  cudalink_consumer_destroy(c);
  /* the mappings the mock could not close stay counted: no live0 check */
  free_dev(dst);
  (void)live0;
  finish_consumer_test(NULL, producer, 0, 0);
  return tu_failures_in_test;
}

/* Another process truncates the segment while the consumer waits on it:
 * no SIGBUS (the guard keeps the mapping readable, as zeros), the producer
 * counts as gone with the reason, and the producer notices at its next
 * publish, grows the file back and publishes again under a new version,
 * which a new connect finds. A page-rounded (larger) file attaches too,
 * and the segment's owner is ours alone. */
static int
consumer_truncated(void)
{
  cudalink_consumer *c;
  cudalink_status st;
  CUdeviceptr dst = 0;
  long live0;
  pid_t producer;
  char path[96], owner[160];
  int fd;
  double t0;

  tu_failures_in_test = 0;
  if (!(c = start_consumer_test(0, 0, 0, &producer, &dst, &live0)))
    return 1;
  CHECK_EQ_INT(cudalink_consumer_segment_owner(c, owner, sizeof owner), 1);
  CHECK_STR_CONTAINS(owner, "mode 0600");
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK(copy_and_check(c, dst, &fmt_a, 1));

  snprintf(path, sizeof path, "/dev/shm/%s", seg_name);
  fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, 0) == 0);
  t0 = cudalink_now();
  do {
    st = cudalink_consumer_wait(c, 100000);
  } while (st == CUDALINK_ERR_TIMEOUT && cudalink_now() - t0 < 2.0);
  CHECK_EQ_INT(st, CUDALINK_ERR_PRODUCER_GONE);
  CHECK_STR_CONTAINS(cudalink_consumer_last_error(c), "truncated by another process");
  DEPTH0();

  /* the producer's next publishes restore it (it looks every 0.25 s) */
  t0 = cudalink_now();
  do {
    CHECK(producer_do('p', 1));
    usleep(20000);
    st = cudalink_consumer_connect(c);
  } while (st != CUDALINK_OK && cudalink_now() - t0 < 3.0);
  CHECK_EQ_INT(st, CUDALINK_OK);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  DEPTH0();

  /* page-rounded, as every Windows mapping is: larger than the layout */
  CHECK(ftruncate(fd, 4096) == 0);
  close(fd);
  st = cudalink_consumer_connect(c);
  if (st != CUDALINK_OK)
    fprintf(stderr, "  4096-byte segment: %s\n", cudalink_consumer_last_error(c));
  CHECK_EQ_INT(st, CUDALINK_OK);
  CHECK(producer_do('p', 1));
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  {
    uint32_t row = 0;
    cudalink_format_sizes(&fmt_a, NULL, &row);
    CHECK_EQ_INT(cudalink_consumer_copy(c, dst, row, NULL), CUDALINK_OK);
  }
  finish_consumer_test(c, producer, dst, live0);
  return tu_failures_in_test;
}

/* A segment larger than the largest layout, re-used by the producer: 4096
 * bytes, what every segment is on Windows (mappings are page-rounded). The
 * consumer's wait for a settled header compares the layout's bytes only;
 * it used to call such a segment "changing" for ever (ERR_IPC_OPEN). */
static int
consumer_oversized(void)
{
  char path[80];
  cudalink_consumer *c;
  CUdeviceptr dst = 0;
  uint32_t size_a;
  long live0;
  pid_t producer;
  int fd;

  tu_failures_in_test = 0;
  new_name();
  snprintf(path, sizeof path, "/%s", seg_name);
  fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, 4096) != 0)
    return 1;
  close(fd);
  if ((producer = start_producer(seg_name)) < 0 || !load_driver())
    return 1;
  live0 = mock_live();
  cudalink_format_sizes(&fmt_a, &size_a, NULL);
  if (!alloc_dev(&dst, size_a))
    return 1;
  c = connect_consumer_with(0, 0);
  CHECK(c != NULL);
  if (c) {
    CHECK(producer_do('p', 1));
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    CHECK(copy_and_check(c, dst, &fmt_a, 1));
  }
  finish_consumer_test(c, producer, dst, live0);
  return tu_failures_in_test;
}

/* The tests: each runs its consumer side in a child (in_child) */
CHILD_TEST(test_ring, consumer_ring)
CHILD_TEST(test_producer_killed, consumer_kill)
CHILD_TEST(test_slow_gpu, consumer_slow_gpu)
CHILD_TEST(test_idle_wait_sleeps, consumer_idle)
CHILD_TEST(test_paced_wait, consumer_paced)
CHILD_TEST(test_interrupt, consumer_interrupt)
CHILD_TEST(test_foreign_polls, consumer_foreign)
CHILD_TEST(test_cuda_symbol, cuda_symbol)
CHILD_TEST(test_slot_too_small_refused, consumer_slot_too_small)
CHILD_TEST(test_header_outgrows_slots, consumer_header_outgrows_slots)
CHILD_TEST(test_header_change_unannounced, consumer_header_changes_unannounced)
CHILD_TEST(test_foreign_write_idx_wrap, consumer_foreign_wrap)
CHILD_TEST(test_our_write_idx_wrap, consumer_our_wrap)
CHILD_TEST(test_version_carry, consumer_version_carry)
CHILD_TEST(test_cuda_failures_reported, consumer_cuda_failures)
CHILD_TEST(test_truncated_under_consumer, consumer_truncated)
CHILD_TEST(test_oversized_segment, consumer_oversized)

int
main(void)
{
  /* before anything loads the driver; each process loads it after fork */
  setenv("CUDALINK_CUDA_LIBRARY", MOCK_CUDA, 1);
  RUN_TEST(test_ring);
  RUN_TEST(test_producer_killed);
  RUN_TEST(test_slow_gpu);
  RUN_TEST(test_idle_wait_sleeps);
  RUN_TEST(test_paced_wait);
  RUN_TEST(test_interrupt);
  RUN_TEST(test_foreign_polls);
  RUN_TEST(test_cuda_symbol);
  RUN_TEST(test_slot_too_small_refused);
  RUN_TEST(test_header_outgrows_slots);
  RUN_TEST(test_header_change_unannounced);
  RUN_TEST(test_foreign_write_idx_wrap);
  RUN_TEST(test_our_write_idx_wrap);
  RUN_TEST(test_version_carry);
  RUN_TEST(test_cuda_failures_reported);
  RUN_TEST(test_truncated_under_consumer);
  RUN_TEST(test_oversized_segment);
  return TEST_SUMMARY();
}
