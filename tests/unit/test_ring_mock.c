/* The producer/consumer ring end to end on the CPU mock driver
 * (tests/unit/mock_cuda.c): a producer process and a consumer process, each
 * loading the driver itself after fork, talk over the real protocol.
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
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "testutil.h"

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
  dlclose(h); /* drops only our reference: the library keeps it loaded */
  return mock_depth && mock_live && cu->DevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS;
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
  char op;  /* producer: 'p' publish n, 'r' reformat, 'd' destroy, 'q' quit */
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

/* Forks the producer; returns its pid (cmd_w / ack_r set) or -1. */
static pid_t
start_producer(const char *name)
{
  int cmd[2], ack[2];
  pid_t pid;
  msg m;
  if (pipe(cmd) != 0 || pipe(ack) != 0)
    return -1;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(cmd[1]);
    close(ack[0]);
    _exit(producer_main(name, cmd[0], ack[1]));
  }
  close(cmd[0]);
  close(ack[1]);
  cmd_w = cmd[1];
  ack_r = ack[0];
  if (pid < 0 || !recv_msg(ack_r, &m) || m.op != 'k')
    return -1;
  return pid;
}

static int
finish_producer(pid_t pid)
{
  int status = 0;
  send_msg(cmd_w, 'q', 0);
  close(cmd_w);
  close(ack_r);
  if (waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

/* Runs fn in a child (the consumer process); its exit code is its failure
 * count. */
static int
in_child(int (*fn)(void))
{
  int status = 0;
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0)
    _exit(fn());
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
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
    struct timespec c0, c1;
    double t0;
    CHECK(producer_do('p', 1));
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    t0 = cudalink_now();
    CHECK(copy_and_check(c, dst, &fmt_a, k));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    if (k > 40) { /* the first ones teach the default how long the GPU takes */
      wall += cudalink_now() - t0;
      cpu += (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
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
static double
thread_cpu_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
#define CHILD_TEST(name, fn)                                                      \
  static void name(void)                                                          \
  {                                                                               \
    CHECK_EQ_INT(in_child(fn), 0);                                                \
  }
CHILD_TEST(test_ring, consumer_ring)
CHILD_TEST(test_producer_killed, consumer_kill)
CHILD_TEST(test_slow_gpu, consumer_slow_gpu)
CHILD_TEST(test_idle_wait_sleeps, consumer_idle)
CHILD_TEST(test_paced_wait, consumer_paced)
CHILD_TEST(test_interrupt, consumer_interrupt)
CHILD_TEST(test_foreign_polls, consumer_foreign)
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
  RUN_TEST(test_oversized_segment);
  return TEST_SUMMARY();
}
