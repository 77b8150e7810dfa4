/* What a consumer waiting on a slow, steady producer costs in CPU, and where
 * it goes (a program, not a test; prints a markdown table).
 *
 *   bench_idle [PATH/TO/src_producer] [seconds-per-row] [fps ...]
 *
 * A src_producer process publishes 1280x720 RGBA8 at 60 fps, then 500 fps
 * (or the rates given); this process follows it with libcudalink alone, as cudalinksrc
 * does (wait, acquire, 2-D copy into its own buffer, release), and reads
 * its thread's CPU clock around each phase. The first rows are floors: a
 * thread that only sleeps until each frame is due (one timer wake-up per
 * frame), and one that also naps 150 us after it (two). The gap between
 * the library's rows and cudalinksrc's CPU rows in bench_src is what
 * GStreamer and the element add. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"

static const cudalink_cuda *cu;
static CUcontext ctx;
static double row_s = 4.0;

static pid_t
start_producer(const char *path, const char *name, const char *fps)
{
  int fds[2];
  pid_t pid;
  char buf[256];
  size_t got = 0;

  if (pipe(fds))
    return -1;
  if ((pid = fork()) == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(path, path, name, "1280", "720", "4", "uint8", "--fps", fps, "--frames", "0",
          (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  while (got < sizeof buf - 1) {
    struct pollfd pfd = { fds[0], POLLIN, 0 };
    ssize_t n;
    if (poll(&pfd, 1, 10000) <= 0 || (n = read(fds[0], buf + got, sizeof buf - 1 - got)) <= 0)
      break;
    got += (size_t)n;
    buf[got] = 0;
    if (strstr(buf, "READY")) {
      close(fds[0]);
      return pid;
    }
  }
  close(fds[0]);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  fprintf(stderr, "bench_idle: %s did not get ready\n", path);
  return -1;
}

static void
stop_producer(pid_t pid)
{
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

/* one timer wake-up per period, plus a nap after it when nap_us > 0 */
static void
floor_row(double fps, long nap_us)
{
  struct timespec next;
  long step = (long)(1e9 / fps);
  int frames = (int)(row_s * fps);
  double t0, p0, wall0 = cudalink_now();

  clock_gettime(CLOCK_MONOTONIC, &next);
  t0 = thread_cpu_us();
  p0 = cpu_now_us();
  for (int i = 0; i < frames; i++) {
    next.tv_nsec += step;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    if (nap_us) {
      struct timespec nap = { 0, nap_us * 1000 };
      nanosleep(&nap, NULL);
    }
  }
  printf("| %.0f fps | %s | - | %.1f | - | - | - | %.1f | %.2f %% |\n", fps,
         nap_us ? "floor: sleep until due, then a 150 us nap" : "floor: sleep until due",
         (thread_cpu_us() - t0) / frames, (cpu_now_us() - p0) / frames,
         (cpu_now_us() - p0) / 1e4 / (cudalink_now() - wall0));
}

static const char *
flags_name(uint32_t flags)
{
  switch (flags) {
  case 0:
    return "default (wake-spin, nap then spin)";
  case CUDALINK_CONSUMER_NO_PACE:
    return "NO_PACE (futex wake, nap then spin)";
  case CUDALINK_CONSUMER_NO_PACE | CUDALINK_CONSUMER_SLEEP_SYNC:
    return "NO_PACE + SLEEP_SYNC";
  case CUDALINK_CONSUMER_NO_PACE | CUDALINK_CONSUMER_SPIN_SYNC:
    return "NO_PACE + SPIN_SYNC";
  case CUDALINK_CONSUMER_SPIN_SYNC:
    return "wake-spin + SPIN_SYNC";
  default:
    return "?";
  }
}

/* follows the producer for row_s; copy = 0: wait() only */
static int
consumer_row(const char *name, double fps, uint32_t flags, int copy)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_consumer_stats stats;
  CUdeviceptr dst = 0;
  uint32_t size = 0, row = 0;
  cudalink_status st = CUDALINK_ERR_NOT_FOUND;
  double cpu_wait = 0, cpu_copy = 0, cpu_release = 0, p0, wall0, *wake;
  double w50, w99;
  int frames = (int)(row_s * fps), n = 0, torn = 0;

  cudalink_consumer_config_init(&cfg);
  cfg.name = name;
  cfg.cuda_context = ctx;
  cfg.flags = flags;
  if (cudalink_consumer_create(&cfg, &c) != CUDALINK_OK)
    return 0;
  for (int i = 0; i < 200 && st != CUDALINK_OK; i++)
    if ((st = cudalink_consumer_connect(c)) != CUDALINK_OK)
      usleep(10000);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "bench_idle: connect: %s\n", cudalink_consumer_last_error(c));
    cudalink_consumer_destroy(c);
    return 0;
  }
  cudalink_format_sizes(cudalink_consumer_format(c), &size, &row);
  CK(cu->MemAlloc(&dst, size));
  wake = calloc((size_t)frames, sizeof *wake);
  /* a second to learn the pace and settle, not counted */
  for (double end = cudalink_now() + 1.0; cudalink_now() < end;)
    if (cudalink_consumer_wait(c, 100000) == CUDALINK_OK && copy)
      cudalink_consumer_copy(c, dst, row, NULL);
  cudalink_consumer_get_stats(c, &stats);
  {
    uint64_t paced0 = stats.paced, spun0 = stats.spin_us;
    p0 = cpu_now_us();
    wall0 = cudalink_now();
    while (n + torn < frames) {
      cudalink_frame_info info;
      uint64_t src;
      size_t pitch;
      CUDA_MEMCPY2D cp;
      double t0 = thread_cpu_us(), t1, t2;
      if ((st = cudalink_consumer_wait(c, 1000000)) != CUDALINK_OK)
        break;
      t1 = thread_cpu_us();
      cpu_wait += t1 - t0;
      cudalink_consumer_frame_info(c, &info);
      wake[n] = (cudalink_now() - info.timestamp) * 1e6;
      if (!copy) {
        n++;
        continue;
      }
      if ((st = cudalink_consumer_acquire(c, NULL, &src, &pitch)) != CUDALINK_OK)
        break;
      slot_copy_params(&cp, src, pitch, dst, row, cudalink_consumer_format(c)->height);
      CK(cu->CtxPushCurrent(ctx));
      CK(cudalink_cuda_copy_2d(cu, &cp, (CUstream)cudalink_consumer_stream(c)));
      CK(cu->CtxPopCurrent(NULL));
      t2 = thread_cpu_us();
      cpu_copy += t2 - t1;
      st = cudalink_consumer_release(c, NULL);
      cpu_release += thread_cpu_us() - t2;
      if (st == CUDALINK_OK) {
        n++;
      } else if (st == CUDALINK_ERR_TORN) {
        torn++;
        st = CUDALINK_OK; /* counted, not a failure */
      } else {
        break;
      }
    }
    cudalink_consumer_get_stats(c, &stats);
    pct(wake, n, &w50, &w99);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "bench_idle: %s: stopped after %d frames: %s (%s)\n", flags_name(flags),
              n, cudalink_status_name(st), cudalink_consumer_last_error(c));
    } else {
      int all = n + torn ? n + torn : 1;
      double wall = cudalink_now() - wall0, proc = cpu_now_us() - p0;
      char copy_cell[32] = "-", release_cell[48] = "-";
      if (copy) {
        snprintf(copy_cell, sizeof copy_cell, "%.1f", cpu_copy / all);
        snprintf(release_cell, sizeof release_cell, "%.1f (%d torn)", cpu_release / all, torn);
      }
      printf("| %.0f fps | %s%s | %.1f / %.1f | %.1f | %s | %s | %llu of %d (%.1f us a frame) | "
             "%.1f | %.2f %% |\n",
             fps, flags_name(flags), copy ? "" : ", wait() only", w50, w99, cpu_wait / all,
             copy_cell, release_cell, (unsigned long long)(stats.paced - paced0), all,
             (double)(stats.spin_us - spun0) / all, proc / all, proc / 1e4 / wall);
    }
  }
  fflush(stdout);
  free(wake);
  cu->MemFree(dst);
  cudalink_consumer_destroy(c);
  return st == CUDALINK_OK;
}

int
main(int argc, char **argv)
{
  const char *producer = argc > 1 ? argv[1] : "../gpu/src_producer";
  const char *default_rates[] = { "60", "500", NULL };
  const char **rates = default_rates;
  char why[256];
  int ok = 1;

  if (argc > 2)
    row_s = atof(argv[2]);
  if (argc > 3)
    rates = (const char **)argv + 3;
  if (!(cu = cudalink_cuda_up(&ctx, why, sizeof why))) {
    fprintf(stderr, "bench_idle: %s\n", why);
    return 1;
  }
  printf("| producer | consumer | woken p50 / p99 (us) | wait() CPU us/frame | copy submit | "
         "release | caught spinning (spun) | process CPU us/frame | process CPU |\n"
         "|---|---|---|---|---|---|---|---|---|\n");
  for (size_t r = 0; rates[r]; r++) {
    double fps = atof(rates[r]);
    char name[64];
    pid_t pid;
    snprintf(name, sizeof name, "cudalink-bench-idle-%d-%zu", (int)getpid(), r);
    floor_row(fps, 0);
    floor_row(fps, 150);
    if ((pid = start_producer(producer, name, rates[r])) < 0)
      return 1;
    ok &= consumer_row(name, fps, CUDALINK_CONSUMER_NO_PACE, 0);
    ok &= consumer_row(name, fps, 0, 0);
    ok &= consumer_row(name, fps, 0, 1);
    ok &= consumer_row(name, fps, CUDALINK_CONSUMER_NO_PACE, 1);
    ok &= consumer_row(name, fps, CUDALINK_CONSUMER_NO_PACE | CUDALINK_CONSUMER_SLEEP_SYNC, 1);
    ok &= consumer_row(name, fps, CUDALINK_CONSUMER_NO_PACE | CUDALINK_CONSUMER_SPIN_SYNC, 1);
    ok &= consumer_row(name, fps, CUDALINK_CONSUMER_SPIN_SYNC, 1);
    stop_producer(pid);
  }
  printf("\n1280x720 RGBA8 from src_producer; %.0f s per row after 1 s of settling; CPU is the "
         "thread's CPU clock (per phase) and getrusage (process)\n", row_s);
  return ok ? 0 : 1;
}
