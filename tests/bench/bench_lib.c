/* libcudalink benchmark (a program, not a test): where the time goes
 * between a producer's publish and a consumer holding a clean copy, in two
 * processes on one GPU. Prints a markdown table.
 *
 *   bench_lib [frames]
 *
 * For each frame size, a producer publishes every 2 ms (publish without
 * waiting for its copy, as cudalinksink does by default); the consumer
 * measures, per frame:
 *   wake    producer timestamp -> cudalink_consumer_wait() returns (the
 *           wake-spin around the due time, or the futex wake-up)
 *   acquire cudalink_consumer_acquire() (event query or GPU-side event wait)
 *   copy    2-D copy into its own buffer + cudalink_consumer_release()
 *           (stream sync + torn check)
 *   total   producer timestamp -> clean copy in hand
 * with the default consumer (skip the GPU wait when the event already
 * completed; in release nap through the usual part of the wait, then
 * spin), with CUDALINK_CONSUMER_NO_PACE (no wake-spin: futex wake-up
 * only), with CUDALINK_CONSUMER_SPIN_SYNC (spin the whole wait), with
 * SLEEP_SYNC (poll 30 us, then sleep on a blocking-sync event), and with
 * ALWAYS_WAIT_EVENT; then
 * once more after a copy between the consumer's own buffers (no IPC memory)
 * made right after the wake, which shows what the GPU's switch between the
 * two processes' contexts costs. The copy is the library's (one linear copy
 * for packed rows). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"

static const cudalink_cuda *cu;
static CUcontext ctx;
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
  (void)sig;
  stop = 1;
}

static int
cuda_up(void)
{
  char why[256];
  if (!(cu = cudalink_cuda_up(&ctx, why, sizeof why)))
    fprintf(stderr, "bench_lib: %s\n", why);
  return cu != NULL;
}

static int
produce(const char *name, const cudalink_format *fmt, int ready_fd)
{
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  uint32_t size, row;
  CUdeviceptr frame;
  CUstream s;
  if (!cuda_up())
    return 1;
  cudalink_format_sizes(fmt, &size, &row);
  cudalink_producer_config_init(&cfg);
  cfg.name = name;
  cfg.cuda_context = ctx;
  if (cudalink_producer_create(&cfg, fmt, &p) != CUDALINK_OK)
    return 2;
  s = (CUstream)cudalink_producer_stream(p);
  CK(cu->MemAlloc(&frame, size));
  if (write(ready_fd, "R", 1) != 1)
    return 3;
  for (uint32_t k = 0; !stop; k++) {
    CK(cu->MemsetD8Async(frame, (unsigned char)k, size, s));
    cudalink_producer_publish(p, frame, row, s, 0);
    usleep(2000);
  }
  cudalink_producer_destroy(p);
  cu->MemFree(frame);
  return 0;
}

static int own_first;

static const char *
mode_name(uint32_t flags)
{
  if (flags & CUDALINK_CONSUMER_ALWAYS_WAIT_EVENT)
    return "event wait, spin";
  if (flags & CUDALINK_CONSUMER_SLEEP_SYNC)
    return "event query, poll 30 us then sleep (SLEEP_SYNC)";
  if (flags & CUDALINK_CONSUMER_SPIN_SYNC)
    return "event query, spin (SPIN_SYNC)";
  if (flags & CUDALINK_CONSUMER_NO_PACE)
    return "event query, nap then spin, futex wake only (NO_PACE)";
  return "event query, nap then spin (default)";
}

static CUdeviceptr own_a, own_b;

static int
consume(const char *name, uint32_t flags, int frames, const char *label)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  double *wake = calloc((size_t)frames, sizeof(double) * 5);
  double *acq = wake + frames, *copy = acq + frames, *total = copy + frames;
  double *sub = total + frames;
  double p[10];
  CUdeviceptr dst = 0;
  uint32_t size, row;
  int n = 0, torn = 0;
  double cpu_us;
  cudalink_status st = CUDALINK_ERR_NOT_FOUND;

  cudalink_consumer_config_init(&cfg);
  cfg.name = name;
  cfg.cuda_context = ctx;
  cfg.flags = flags;
  cudalink_consumer_create(&cfg, &c);
  for (int i = 0; i < 200 && st != CUDALINK_OK; i++)
    if ((st = cudalink_consumer_connect(c)) != CUDALINK_OK)
      usleep(10000);
  if (st != CUDALINK_OK)
    return 0;
  cudalink_format_sizes(cudalink_consumer_format(c), &size, &row);
  CK(cu->MemAlloc(&dst, size));
  {
    /* reference: the same copy between two buffers of this process */
    CUdeviceptr other;
    CUstream s = (CUstream)cudalink_consumer_stream(c);
    double *ref = calloc(200, sizeof(double)), r50, r99;
    CUDA_MEMCPY2D cp;
    CK(cu->MemAlloc(&other, size));
    memset(&cp, 0, sizeof cp);
    cp.srcMemoryType = cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    cp.srcDevice = other;
    cp.dstDevice = dst;
    cp.srcPitch = cp.dstPitch = cp.WidthInBytes = row;
    cp.Height = cudalink_consumer_format(c)->height;
    for (int i = 0; i < 200; i++) {
      double t = cudalink_now();
      CK(cu->Memcpy2DAsync(&cp, s));
      CK(cu->StreamSynchronize(s));
      ref[i] = (cudalink_now() - t) * 1e6;
    }
    pct(ref, 200, &r50, &r99);
    fprintf(stderr, "bench_lib: %s: own-buffer copy + sync p50 %.1f us p99 %.1f us\n", label,
            r50, r99);
    cu->MemFree(other);
    free(ref);
  }
  cudalink_consumer_wait(c, 1000000); /* the frame already there */
  cpu_us = cpu_now_us();
  while (n < frames) {
    cudalink_frame_info info;
    CUDA_MEMCPY2D cp;
    uint64_t src;
    size_t pitch;
    double t0, t1, t2, t3;
    if ((st = cudalink_consumer_wait(c, 1000000)) != CUDALINK_OK)
      break;
    if (own_first) {
      /* a copy that touches no IPC memory, right when the frame arrived */
      double ta = cudalink_now();
      CK(cu->MemcpyDtoDAsync(own_a, own_b, row, (CUstream)cudalink_consumer_stream(c)));
      CK(cu->StreamSynchronize((CUstream)cudalink_consumer_stream(c)));
      sub[n < frames ? n : 0] = (cudalink_now() - ta) * 1e6;
    }
    t0 = cudalink_now();
    cudalink_consumer_frame_info(c, &info);
    if ((st = cudalink_consumer_acquire(c, NULL, &src, &pitch)) != CUDALINK_OK)
      break;
    t1 = cudalink_now();
    slot_copy_params(&cp, src, pitch, dst, row, cudalink_consumer_format(c)->height);
    CK(cudalink_cuda_copy_2d(cu, &cp, (CUstream)cudalink_consumer_stream(c)));
    t2 = cudalink_now(); /* submitted */
    st = cudalink_consumer_release(c, NULL);
    t3 = cudalink_now();
    if (!own_first)
      sub[n < frames ? n : 0] = (t2 - t1) * 1e6;
    if (st == CUDALINK_ERR_TORN) {
      torn++;
      continue;
    }
    if (st != CUDALINK_OK)
      break;
    wake[n] = (t0 - info.timestamp) * 1e6;
    acq[n] = (t1 - t0) * 1e6;
    copy[n] = (t3 - t1) * 1e6;
    total[n] = (t3 - info.timestamp) * 1e6;
    n++;
  }
  cpu_us = cpu_now_us() - cpu_us;
  if (n < frames) {
    fprintf(stderr, "bench_lib: %s, %s: stopped after %d frames: %s (%s)\n", label,
            mode_name(flags), n, cudalink_status_name(st), cudalink_consumer_last_error(c));
    n = 0; /* no row from part of a run */
  } else {
    pct(wake, n, &p[0], &p[1]);
    pct(acq, n, &p[2], &p[3]);
    pct(copy, n, &p[4], &p[5]);
    pct(total, n, &p[6], &p[7]);
    pct(sub, n, &p[8], &p[9]);
    fprintf(stderr, "bench_lib: %s: %s p50 %.1f us p99 %.1f us\n", label,
            own_first ? "own 1-row copy + sync just before (no IPC memory)"
                      : "copy submission alone", p[8], p[9]);
    printf("| %s%s | %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.0f | %d / %d "
           "|\n",
           label, own_first ? " (after a local copy)" : "", mode_name(flags), p[0], p[1], p[2],
           p[3], p[4], p[5], p[6], p[7], cpu_us / n, n, torn);
  }
  cu->MemFree(dst);
  cudalink_consumer_destroy(c);
  free(wake);
  return n;
}

int
main(int argc, char **argv)
{
  int frames = argc > 1 ? atoi(argv[1]) : 1000;
  const struct {
    cudalink_format fmt;
    const char *label;
  } cases[] = {
    { { 64, 64, 4, CUDALINK_DTYPE_UINT8, 0 }, "64x64 RGBA8" },
    { { 1920, 1080, 4, CUDALINK_DTYPE_UINT8, 0 }, "1920x1080 RGBA8" },
    { { 3840, 2160, 4, CUDALINK_DTYPE_FLOAT32, 0 }, "3840x2160 float32x4" },
  };
  signal(SIGTERM, on_term);
  printf("| frame | acquire, release | wake p50 / p99 (us) | acquire p50 / p99 | copy + release "
         "p50 / p99 | total p50 / p99 | consumer CPU us/frame | clean / torn |\n"
         "|---|---|---|---|---|---|---|---|\n");
  fflush(stdout);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    int fds[2];
    char b;
    pid_t prod, cons;
    int status;
    snprintf(name, sizeof name, "cudalink-bench-lib-%d-%zu", (int)getpid(), i);
    if (pipe(fds))
      return 1;
    if ((prod = fork()) == 0)
      _exit(produce(name, &cases[i].fmt, fds[1]));
    if (read(fds[0], &b, 1) != 1)
      return 1;
    if ((cons = fork()) == 0) {
      int ok = cuda_up() && consume(name, 0, frames, cases[i].label) &&
               consume(name, CUDALINK_CONSUMER_NO_PACE, frames, cases[i].label) &&
               consume(name, CUDALINK_CONSUMER_SPIN_SYNC, frames, cases[i].label) &&
               consume(name, CUDALINK_CONSUMER_SLEEP_SYNC, frames, cases[i].label) &&
               consume(name, CUDALINK_CONSUMER_ALWAYS_WAIT_EVENT | CUDALINK_CONSUMER_SPIN_SYNC,
                        frames, cases[i].label);
      own_first = 1;
      CK(cu->MemAlloc(&own_a, 1 << 16));
      CK(cu->MemAlloc(&own_b, 1 << 16));
      ok = ok && consume(name, 0, frames, cases[i].label);
      fflush(stdout);
      _exit(ok ? 0 : 1);
    }
    waitpid(cons, &status, 0);
    kill(prod, SIGTERM);
    waitpid(prod, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
      fprintf(stderr, "bench_lib: %s failed\n", cases[i].label);
  }
  printf("\nproducer publishes every 2 ms without waiting for its copy; %d frames per row\n",
         frames);
  return 0;
}
