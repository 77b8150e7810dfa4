/* What it costs one process to touch the GPU right after another process
 * used it (a program, not a test; needs a GPU; prints a markdown table).
 *
 *   bench_switch [samples]
 *
 * No IPC memory and no libcudalink ring: process A ("the producer") makes a
 * 64 KiB memset on its own stream every 2 ms and waits for it; then
 * process B ("the consumer") waits `delay` microseconds after A's work is
 * done and times one small operation of its own + stream sync. Rows: A idle
 * (never touches the GPU) vs A working, per delay and per kind of
 * operation. This isolates the GPU's switch between the two processes'
 * contexts, the ~250 us that bench_lib finds in a consumer's first GPU
 * operation after a producer's frame. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"

typedef struct {
  atomic_uint seq;
  atomic_int stop;
  atomic_int a_works; /* 0: A does nothing on the GPU */
  _Atomic double t_done;
} shared_state;

static const cudalink_cuda *cu;

static const char noop_ptx[] =
  ".version 7.0\n.target sm_75\n.address_size 64\n"
  ".visible .entry cudalink_noop()\n{\n ret;\n}\n";

static int
cuda_up(CUcontext *ctx, CUstream *s)
{
  cudalink_status st;
  char why[256];
  CUdevice dev;
  cu = cudalink_cuda_get(&st, why, sizeof why);
  if (!cu) {
    fprintf(stderr, "bench_switch: %s\n", why);
    return 0;
  }
  return cu->DeviceGet(&dev, 0) == CUDA_SUCCESS &&
         cu->DevicePrimaryCtxRetain(ctx, dev) == CUDA_SUCCESS &&
         cu->CtxPushCurrent(*ctx) == CUDA_SUCCESS &&
         cu->StreamCreate(s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS;
}

static void
process_a(shared_state *sh)
{
  CUcontext ctx;
  CUstream s;
  CUdeviceptr buf;
  if (!cuda_up(&ctx, &s) || cu->MemAlloc(&buf, 1 << 16) != CUDA_SUCCESS)
    _exit(1);
  while (!atomic_load(&sh->stop)) {
    if (atomic_load(&sh->a_works)) {
      cu->MemsetD8Async(buf, 1, 1 << 16, s);
      cu->StreamSynchronize(s);
    }
    atomic_store(&sh->t_done, cudalink_now());
    atomic_fetch_add(&sh->seq, 1);
    usleep(2000);
  }
  _exit(0);
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { OP_MEMSET, OP_COPY, OP_HTOD, OP_KERNEL, OP_N };
static const char *const op_names[OP_N] = {
  "memset 256 B", "device-to-device copy 256 B", "host-to-device copy 256 B", "empty kernel"
};

int
main(int argc, char **argv)
{
  int samples = argc > 1 ? atoi(argv[1]) : 100;
  const int delays[] = { 0, 100, 300, 1000 };
  shared_state *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
  CUcontext ctx;
  CUstream s;
  CUdeviceptr a, b;
  CUmodule mod;
  CUfunction fn;
  unsigned char host[256];
  double *v = calloc((size_t)samples, sizeof(double));
  pid_t pa;

  if (sh == MAP_FAILED || !v)
    return 1;
  memset(sh, 0, sizeof *sh);
  if ((pa = fork()) == 0)
    process_a(sh);
  if (!cuda_up(&ctx, &s) || cu->MemAlloc(&a, 256) != CUDA_SUCCESS ||
      cu->MemAlloc(&b, 256) != CUDA_SUCCESS ||
      cu->ModuleLoadData(&mod, noop_ptx) != CUDA_SUCCESS ||
      cu->ModuleGetFunction(&fn, mod, "cudalink_noop") != CUDA_SUCCESS) {
    fprintf(stderr, "bench_switch: CUDA setup failed\n");
    atomic_store(&sh->stop, 1);
    waitpid(pa, NULL, 0);
    return 1;
  }
  memset(host, 3, sizeof host);
  printf("| process A | delay after A's work (us) | B's operation | B's op + sync p50 / p99 (us) |\n"
         "|---|---|---|---|\n");
  for (int works = 0; works < 2; works++) {
    atomic_store(&sh->a_works, works);
    for (size_t d = 0; d < sizeof delays / sizeof delays[0]; d++) {
      for (int op = 0; op < OP_N; op++) {
        for (int i = 0; i < samples + 5; i++) {
          unsigned seq = atomic_load(&sh->seq);
          double t0, t_go;
          while (atomic_load(&sh->seq) == seq)
            ;
          t_go = atomic_load(&sh->t_done) + delays[d] * 1e-6;
          while (cudalink_now() < t_go)
            ;
          t0 = cudalink_now();
          switch (op) {
          case OP_MEMSET: cu->MemsetD8Async(a, 7, 256, s); break;
          case OP_COPY: cu->MemcpyDtoDAsync(a, b, 256, s); break;
          case OP_HTOD: cu->MemcpyHtoD(a, host, 256); break;
          default: cu->LaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL); break;
          }
          cu->StreamSynchronize(s);
          if (i >= 5) /* the first ones warm up */
            v[i - 5] = (cudalink_now() - t0) * 1e6;
        }
        qsort(v, (size_t)samples, sizeof *v, cmp_double);
        printf("| %s | %d | %s | %.1f / %.1f |\n", works ? "64 KiB memset + sync every 2 ms"
                                                         : "idle (no GPU work)",
               delays[d], op_names[op], v[samples / 2], v[(samples * 99) / 100]);
        fflush(stdout);
      }
    }
  }
  atomic_store(&sh->stop, 1);
  waitpid(pa, NULL, 0);
  printf("\n%d samples per row; B waits for A's work to finish, then the delay\n", samples);
  return 0;
}
