/* cudalink-demo: embedding libcudalink in a plain C program.
 *
 *   cudalink-demo                  producer and consumer in two processes,
 *                                  5 s of 1280x720 RGBA at 60 fps, stats
 *   cudalink-demo produce [NAME]   publish frames until Ctrl-C (a TouchDesigner
 *                                  Receiver or cuda_link Importer can read them)
 *   cudalink-demo consume [NAME]   read frames from any cuda-link producer
 *                                  (TD Sender, cuda_link Exporter, cudalinksink)
 *   ... [NAME [SECONDS]]           stop after SECONDS instead
 *
 * On a machine without an NVIDIA driver it says so and exits with 2. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#  include <windows.h>
#  define usleep(us) Sleep((DWORD)((us) / 1000))
#else
#  include <sys/wait.h>
#  include <unistd.h>
#endif

#include <cudalink/cudalink.h>

/* The few driver calls the demo makes itself go through the driver library
 * that libcudalink loaded (cudalink_cuda_symbol): no libcuda link, no
 * cuda.h. The driver API's types in plain C: CUresult is an int-sized enum
 * (0: CUDA_SUCCESS), CUdevice an int, CUdeviceptr an unsigned long long,
 * CUcontext and CUstream pointers. */
typedef unsigned long long cu_deviceptr;
typedef struct driver {
  int (*DeviceGet)(int *device, int ordinal);
  int (*DevicePrimaryCtxRetain)(void **ctx, int device);
  int (*CtxPushCurrent)(void *ctx);
  int (*MemAlloc)(cu_deviceptr *ptr, size_t size);
  int (*MemFree)(cu_deviceptr ptr);
  int (*MemsetD8Async)(cu_deviceptr ptr, unsigned char value, size_t n, void *stream);
} driver;

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

/* The driver function named sym (its exported, versioned name). */
static cudalink_cuda_fn
need(const char *sym)
{
  cudalink_cuda_fn fn = cudalink_cuda_symbol(sym);
  if (!fn) {
    fprintf(stderr, "cudalink-demo: the CUDA driver has no %s\n", sym);
    exit(2);
  }
  return fn;
}

/* Loads the driver and makes device 0's primary context current. */
static driver
cuda_or_die(void **ctx)
{
  cudalink_status st;
  char why[256];
  driver cu;
  int dev;

  st = cudalink_cuda_load(why, sizeof why);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-demo: %s: %s\n", cudalink_strerror(st), why);
    exit(2);
  }
  cu.DeviceGet = (int (*)(int *, int))need("cuDeviceGet");
  cu.DevicePrimaryCtxRetain = (int (*)(void **, int))need("cuDevicePrimaryCtxRetain");
  cu.CtxPushCurrent = (int (*)(void *))need("cuCtxPushCurrent_v2");
  cu.MemAlloc = (int (*)(cu_deviceptr *, size_t))need("cuMemAlloc_v2");
  cu.MemFree = (int (*)(cu_deviceptr))need("cuMemFree_v2");
  cu.MemsetD8Async = (int (*)(cu_deviceptr, unsigned char, size_t, void *))need("cuMemsetD8Async");
  if (cu.DeviceGet(&dev, 0) != 0 || cu.DevicePrimaryCtxRetain(ctx, dev) != 0) {
    fprintf(stderr, "cudalink-demo: no usable CUDA device 0\n");
    exit(2);
  }
  cu.CtxPushCurrent(*ctx);
  return cu;
}

static int
produce(const char *name, int seconds)
{
  void *ctx;
  driver cu = cuda_or_die(&ctx);
  cudalink_format fmt = { 1280, 720, 4, CUDALINK_DTYPE_UINT8, 0 };
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  cudalink_producer_stats stats;
  cu_deviceptr frame;
  void *s;
  uint32_t row = fmt.width * 4, bar = fmt.height / 8;
  cudalink_status st;
  double t0 = cudalink_now();

  cudalink_producer_config_init(&cfg);
  cfg.name = name;
  cfg.cuda_context = ctx;
  st = cudalink_producer_create(&cfg, &fmt, &p);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-demo: cannot publish '%s': %s\n", name, cudalink_strerror(st));
    return 1;
  }
  s = cudalink_producer_stream(p);
  cu.MemAlloc(&frame, (size_t)row * fmt.height);
  printf("producer: publishing 1280x720 RGBA8 as '%s'\n", name);
  for (uint32_t k = 0; !stop && (seconds <= 0 || cudalink_now() - t0 < seconds); k++) {
    /* eight grey bars scrolling down one row per frame */
    for (uint32_t b = 0; b < 8; b++) {
      uint32_t y0 = (b * bar + k) % fmt.height;
      uint32_t rows = y0 + bar <= fmt.height ? bar : fmt.height - y0;
      cu.MemsetD8Async(frame + (size_t)y0 * row, (unsigned char)(b * 32), (size_t)rows * row, s);
    }
    st = cudalink_producer_publish(p, frame, row, s, 0);
    if (st != CUDALINK_OK) {
      fprintf(stderr, "cudalink-demo: publish: %s (%s)\n", cudalink_strerror(st),
              cudalink_producer_last_error(p));
      break;
    }
    usleep(16667);
  }
  cudalink_producer_get_stats(p, &stats);
  printf("producer: %llu frames published, %llu segment re-links\n",
         (unsigned long long)stats.frames, (unsigned long long)stats.relinks);
  cudalink_producer_destroy(p);
  cu.MemFree(frame);
  return st == CUDALINK_OK ? 0 : 1;
}

static int
consume(const char *name, int seconds)
{
  void *ctx;
  driver cu = cuda_or_die(&ctx);
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_consumer_stats stats;
  cu_deviceptr dst = 0;
  size_t dst_size = 0;
  double t0 = cudalink_now(), lat_sum = 0;
  cudalink_status st = CUDALINK_ERR_NOT_FOUND;

  cudalink_consumer_config_init(&cfg);
  cfg.name = name;
  cfg.cuda_context = ctx;
  cudalink_consumer_create(&cfg, &c);
  while (!stop && st != CUDALINK_OK && cudalink_now() - t0 < 5) {
    st = cudalink_consumer_connect(c);
    if (st != CUDALINK_OK)
      usleep(50000);
  }
  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-demo: cannot read '%s': %s\n", name,
            cudalink_consumer_last_error(c));
    cudalink_consumer_destroy(c);
    return 1;
  }
  while (!stop && (seconds <= 0 || cudalink_now() - t0 < seconds)) {
    const cudalink_format *f = cudalink_consumer_format(c);
    uint32_t size = 0, row = 0;
    cudalink_frame_info info;
    st = cudalink_consumer_wait(c, 500000);
    if (st == CUDALINK_ERR_TIMEOUT)
      continue;
    if (st == CUDALINK_ERR_FORMAT_CHANGED) {
      f = cudalink_consumer_format(c);
      printf("consumer: format now %ux%u x%u %s\n", f->width, f->height, f->num_comps,
             cudalink_dtype_name(f->dtype));
      continue;
    }
    if (st != CUDALINK_OK) {
      printf("consumer: %s\n", cudalink_strerror(st));
      break;
    }
    cudalink_format_sizes(f, &size, &row);
    if (size > dst_size) {
      if (dst)
        cu.MemFree(dst);
      cu.MemAlloc(&dst, size);
      dst_size = size;
    }
    cudalink_consumer_frame_info(c, &info);
    lat_sum += cudalink_now() - info.timestamp;
    cudalink_consumer_copy(c, dst, row, NULL);
  }
  cudalink_consumer_get_stats(c, &stats);
  printf("consumer: %llu frames, %llu missed, %llu torn discarded, %llu re-opens, "
         "mean publish->wake %.1f us\n",
         (unsigned long long)stats.frames, (unsigned long long)stats.missed,
         (unsigned long long)stats.torn, (unsigned long long)stats.reopens,
         stats.frames ? lat_sum / (double)stats.frames * 1e6 : 0.0);
  if (dst)
    cu.MemFree(dst);
  cudalink_consumer_destroy(c);
  return stats.frames ? 0 : 1;
}

#ifdef _WIN32
/* No fork(): the self-demo runs this program twice, as a producer for 5 s
 * and a consumer for 6 s. */
static int
self_demo_win32(const char *self)
{
  char why[256], seg[64], cmd[2][MAX_PATH + 128];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi[2];
  DWORD code[2] = {1, 1};
  cudalink_status st = cudalink_cuda_load(why, sizeof why);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-demo: %s: %s\n", cudalink_strerror(st), why);
    return 2;
  }
  snprintf(seg, sizeof seg, "cudalink-demo-%lu", (unsigned long)GetCurrentProcessId());
  snprintf(cmd[0], sizeof cmd[0], "\"%s\" produce %s 5", self, seg);
  snprintf(cmd[1], sizeof cmd[1], "\"%s\" consume %s 6", self, seg);
  fflush(NULL);
  for (int i = 0; i < 2; i++) {
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessA(NULL, cmd[i], NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi[i])) {
      fprintf(stderr, "cudalink-demo: cannot start %s (error %lu)\n", cmd[i],
              (unsigned long)GetLastError());
      if (i == 1) {
        TerminateProcess(pi[0].hProcess, 1);
        CloseHandle(pi[0].hProcess);
        CloseHandle(pi[0].hThread);
      }
      return 1;
    }
  }
  for (int i = 0; i < 2; i++) {
    WaitForSingleObject(pi[i].hProcess, INFINITE);
    GetExitCodeProcess(pi[i].hProcess, &code[i]);
    CloseHandle(pi[i].hProcess);
    CloseHandle(pi[i].hThread);
  }
  return code[0] == 0 && code[1] == 0 ? 0 : 1;
}
#endif

int
main(int argc, char **argv)
{
  const char *name = argc > 2 ? argv[2] : "cudalink";
  int seconds = argc > 3 ? atoi(argv[3]) : 0;
  char why[256];
  cudalink_status st;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  if (argc > 1 && strcmp(argv[1], "produce") == 0)
    return produce(name, seconds);
  if (argc > 1 && strcmp(argv[1], "consume") == 0)
    return consume(name, seconds);
  if (argc > 1) {
    fprintf(stderr, "usage: %s [produce|consume [NAME [SECONDS]]]\n", argv[0]);
    return 64;
  }
#ifdef _WIN32
  (void)why;
  (void)st;
  return self_demo_win32(argv[0]);
#else

  /* Self-demo: check the driver in a child (the parent stays CUDA-free so
   * that it can fork), then a producer and a consumer process. */
  {
    pid_t pid = fork();
    int status = 0;
    if (pid == 0) {
      st = cudalink_cuda_load(why, sizeof why);
      if (st != CUDALINK_OK)
        fprintf(stderr, "cudalink-demo: %s: %s\n", cudalink_strerror(st), why);
      _exit(st == CUDALINK_OK ? 0 : 2);
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return 2;
  }
  {
    char seg[64];
    pid_t prod, cons;
    int sp = 0, sc = 0;
    snprintf(seg, sizeof seg, "cudalink-demo-%d", (int)getpid());
    fflush(NULL);
    /* each child flushes its own report: _exit() would drop what stdout
     * still buffers, all of it when stdout is a pipe or a file */
    if ((prod = fork()) == 0) {
      int rc = produce(seg, 5);
      fflush(NULL);
      _exit(rc);
    }
    if ((cons = fork()) == 0) {
      int rc = consume(seg, 6);
      fflush(NULL);
      _exit(rc);
    }
    waitpid(cons, &sc, 0);
    waitpid(prod, &sp, 0);
    return WIFEXITED(sp) && WEXITSTATUS(sp) == 0 && WIFEXITED(sc) && WEXITSTATUS(sc) == 0 ? 0 : 1;
  }
#endif
}
