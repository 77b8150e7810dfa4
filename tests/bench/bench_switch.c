/* What it costs one process to touch the GPU right after another process
 * used it (a program, not a test; needs a GPU; prints a markdown table).
 *
 *   bench_switch [samples]
 *
 * No IPC memory and no libcudalink ring: process A ("the producer") makes a
 * 64 KiB memset on its own stream every 2 ms and waits for it; then
 * process B ("the consumer") waits `delay` microseconds after A's work is
 * done and times one operation of its own + stream sync. Rows: A idle
 * (never touches the GPU), A running a memset (SMs) or a frame copy, per
 * delay and per kind of operation, including copies that ask the driver
 * for a copy engine (cuMemcpyBatchAsync's PREFER_OVERLAP_WITH_COMPUTE,
 * CUDA 12.8+ drivers). This isolates the GPU's switch between the two processes'
 * contexts, the ~250 us that bench_lib finds in a consumer's first GPU
 * operation after a producer's frame. */
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "cuda_check.h"
#include "cuda_table.h"
#include "cudalink.h"

typedef struct {
  atomic_uint seq;
  atomic_int stop;
  atomic_int a_works; /* A_IDLE, A_MEMSET, A_COPY */
  _Atomic double t_done;
} shared_state;

static const cudalink_cuda *cu;

enum { A_IDLE, A_MEMSET, A_COPY, A_N };
static const char *const a_names[A_N] = { "idle (no GPU work)", "64 KiB memset + sync every 2 ms",
                                          "1080p RGBA8 copy + sync every 2 ms" };
#define FRAME_BYTES ((size_t)1920 * 1080 * 4)

static const char noop_ptx[] =
  ".version 7.0\n.target sm_75\n.address_size 64\n"
  ".visible .entry cudalink_noop()\n{\n ret;\n}\n";

static int
cuda_up(CUcontext *ctx, CUstream *s)
{
  char why[256];
  if (!(cu = cudalink_cuda_up(ctx, why, sizeof why)))
    fprintf(stderr, "bench_switch: %s\n", why);
  return cu && cu->StreamCreate(s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS;
}

static void
process_a(shared_state *sh)
{
  CUcontext ctx;
  CUstream s;
  CUdeviceptr buf, buf2;
  if (!cuda_up(&ctx, &s) || cu->MemAlloc(&buf, FRAME_BYTES) != CUDA_SUCCESS ||
      cu->MemAlloc(&buf2, FRAME_BYTES) != CUDA_SUCCESS)
    _exit(1);
  while (!atomic_load(&sh->stop)) {
    int mode = atomic_load(&sh->a_works);
    if (mode == A_MEMSET)
      CK(cu->MemsetD8Async(buf, 1, 1 << 16, s));
    else if (mode == A_COPY)
      CK(cu->MemcpyDtoDAsync(buf2, buf, FRAME_BYTES, s));
    CK(cu->StreamSynchronize(s));
    atomic_store(&sh->t_done, cudalink_now());
    atomic_fetch_add(&sh->seq, 1);
    usleep(2000);
  }
  _exit(0);
}

enum {
  OP_MEMSET, OP_COPY, OP_KERNEL, OP_EVENT, OP_HTOD, OP_FRAME, OP_FRAME_CE, OP_FRAME2D,
  OP_FRAME2D_CE, OP_HTOD_BIG, OP_N
};
static const char *const op_names[OP_N] = {
  "memset 256 B", "device-to-device copy 256 B", "empty kernel", "event record",
  "host-to-device copy 256 B", "1080p RGBA8 copy (cuMemcpyDtoDAsync)",
  "1080p RGBA8 copy (cuMemcpyBatchAsync, PREFER_OVERLAP_WITH_COMPUTE)",
  "1080p RGBA8 2-D copy, dst pitch 8192 (cuMemcpy2DAsync)",
  "1080p RGBA8 2-D copy, dst pitch 8192 (cuMemcpy3DBatchAsync, PREFER_OVERLAP_WITH_COMPUTE)",
  "host-to-device copy 1 MiB, pinned (cuMemcpyHtoDAsync)"
};
typedef CUresult (CUDAAPI *alloc_host_fn)(void **, size_t);
typedef CUresult (CUDAAPI *htod_async_fn)(CUdeviceptr, const void *, size_t, CUstream);

typedef CUresult (CUDAAPI *batch_fn)(CUdeviceptr *, CUdeviceptr *, size_t *, size_t,
                                     CUmemcpyAttributes *, size_t *, size_t, CUstream);
typedef CUresult (CUDAAPI *batch3d_fn)(size_t, CUDA_MEMCPY3D_BATCH_OP *, unsigned long long,
                                       CUstream);

int
main(int argc, char **argv)
{
  int samples = argc > 1 ? atoi(argv[1]) : 100;
  const int delays[] = { 0, 500 };
  shared_state *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
  CUcontext ctx;
  CUstream s;
  CUdeviceptr a, b, fa, fb;
  CUevent ev;
  void *lib = dlopen("libcuda.so.1", RTLD_NOW);
  batch_fn batch = lib ? (batch_fn)dlsym(lib, "cuMemcpyBatchAsync_v2") : NULL;
  batch3d_fn batch3d = lib ? (batch3d_fn)dlsym(lib, "cuMemcpy3DBatchAsync_v2") : NULL;
  CUmemcpyAttributes attr;
  CUDA_MEMCPY3D_BATCH_OP op3;
  CUDA_MEMCPY2D cp2;
  size_t fsize = FRAME_BYTES, zero = 0;
  CUresult res;
  alloc_host_fn alloc_host = lib ? (alloc_host_fn)dlsym(lib, "cuMemAllocHost_v2") : NULL;
  htod_async_fn htod_async = lib ? (htod_async_fn)dlsym(lib, "cuMemcpyHtoDAsync_v2") : NULL;
  void *pinned = NULL;
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
      cu->MemAlloc(&b, 256) != CUDA_SUCCESS || cu->MemAlloc(&fa, FRAME_BYTES) != CUDA_SUCCESS ||
      cu->MemAlloc(&fb, (size_t)8192 * 1080) != CUDA_SUCCESS ||
      cu->EventCreate(&ev, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS ||
      cu->ModuleLoadData(&mod, noop_ptx) != CUDA_SUCCESS ||
      cu->ModuleGetFunction(&fn, mod, "cudalink_noop") != CUDA_SUCCESS) {
    fprintf(stderr, "bench_switch: CUDA setup failed\n");
    atomic_store(&sh->stop, 1);
    waitpid(pa, NULL, 0);
    return 1;
  }
  memset(host, 3, sizeof host);
  memset(&attr, 0, sizeof attr);
  attr.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
  attr.flags = CU_MEMCPY_FLAG_PREFER_OVERLAP_WITH_COMPUTE;
  memset(&op3, 0, sizeof op3);
  op3.src.type = op3.dst.type = CU_MEMCPY_OPERAND_TYPE_POINTER;
  op3.src.op.ptr.ptr = fa;
  op3.src.op.ptr.rowLength = 7680;
  op3.dst.op.ptr.ptr = fb;
  op3.dst.op.ptr.rowLength = 8192;
  op3.extent.width = 7680;
  op3.extent.height = 1080;
  op3.extent.depth = 1;
  op3.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
  op3.flags = CU_MEMCPY_FLAG_PREFER_OVERLAP_WITH_COMPUTE;
  memset(&cp2, 0, sizeof cp2);
  cp2.srcMemoryType = cp2.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp2.srcDevice = fa;
  cp2.srcPitch = 7680;
  cp2.dstDevice = fb;
  cp2.dstPitch = 8192;
  cp2.WidthInBytes = 7680;
  cp2.Height = 1080;
  if (!alloc_host || !htod_async || alloc_host(&pinned, 1 << 20) != CUDA_SUCCESS)
    pinned = NULL;
  if (!batch || !batch3d)
    fprintf(stderr, "bench_switch: no cuMemcpyBatchAsync_v2 / cuMemcpy3DBatchAsync_v2 in this "
                    "driver (%s): those rows are skipped\n", lib ? "symbol" : dlerror());
  if (batch && (res = batch(&fb, &fa, &fsize, 1, &attr, &zero, 1, s)) != CUDA_SUCCESS)
    fprintf(stderr, "bench_switch: cuMemcpyBatchAsync_v2: %d\n", (int)res), batch = NULL;
  if (batch3d && (res = batch3d(1, &op3, 0, s)) != CUDA_SUCCESS)
    fprintf(stderr, "bench_switch: cuMemcpy3DBatchAsync_v2: %d\n", (int)res), batch3d = NULL;
  CK(cu->StreamSynchronize(s));
  printf("| process A | delay after A's work (us) | B's operation | B's op + sync p50 / p99 (us) |\n"
         "|---|---|---|---|\n");
  for (int works = 0; works < A_N; works++) {
    atomic_store(&sh->a_works, works);
    for (size_t d = 0; d < sizeof delays / sizeof delays[0]; d++) {
      for (int op = 0; op < OP_N; op++) {
        if ((op == OP_FRAME_CE && !batch) || (op == OP_FRAME2D_CE && !batch3d) ||
            (op == OP_HTOD_BIG && !pinned))
          continue;
        for (int i = 0; i < samples + 5; i++) {
          unsigned seq = atomic_load(&sh->seq);
          double t0, t_go, gave_up = cudalink_now() + 5.0;
          CUresult r, rs;
          while (atomic_load(&sh->seq) == seq)
            if (cudalink_now() > gave_up) {
              fprintf(stderr, "bench_switch: process A stopped working\n");
              kill(pa, SIGKILL);
              waitpid(pa, NULL, 0);
              return 1;
            }
          t_go = atomic_load(&sh->t_done) + delays[d] * 1e-6;
          while (cudalink_now() < t_go)
            ;
          t0 = cudalink_now();
          switch (op) {
          case OP_MEMSET: r = cu->MemsetD8Async(a, 7, 256, s); break;
          case OP_COPY: r = cu->MemcpyDtoDAsync(a, b, 256, s); break;
          case OP_HTOD: r = cu->MemcpyHtoD(a, host, 256); break;
          case OP_KERNEL: r = cu->LaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL); break;
          case OP_EVENT: r = cu->EventRecord(ev, s); break;
          case OP_FRAME: r = cu->MemcpyDtoDAsync(fb, fa, FRAME_BYTES, s); break;
          case OP_FRAME_CE: r = batch(&fb, &fa, &fsize, 1, &attr, &zero, 1, s); break;
          case OP_FRAME2D: r = cu->Memcpy2DAsync(&cp2, s); break;
          case OP_FRAME2D_CE: r = batch3d(1, &op3, 0, s); break;
          default: r = htod_async(fa, pinned, 1 << 20, s); break;
          }
          rs = cu->StreamSynchronize(s);
          if (i >= 5) /* the first ones warm up */
            v[i - 5] = (cudalink_now() - t0) * 1e6;
          CK(r);
          CK(rs);
        }
        double p50, p99;
        pct(v, samples, &p50, &p99);
        printf("| %s | %d | %s | %.1f / %.1f |\n", a_names[works], delays[d], op_names[op],
               p50, p99);
        fflush(stdout);
      }
    }
  }
  atomic_store(&sh->stop, 1);
  waitpid(pa, NULL, 0);
  printf("\n%d samples per row; B waits for A's work to finish, then the delay\n", samples);
  return 0;
}
