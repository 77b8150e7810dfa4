/* The floor rows of tests/bench/run's matrix: the same stamp, schedule and
 * accounting as bench_peer (peerstats.h) around bare CUDA copies, with no
 * GStreamer and no libcudalink ring (a program, not a test; needs a GPU).
 *
 *   bench_floor check [HOLD_S]
 *       one line: "GPU <name>, driver <version>", or ERROR and why (exit 2);
 *       then keeps its CUDA context HOLD_S seconds (a client to look at:
 *       tests/bench/matrix.py asks MPS for its server meanwhile)
 *   bench_floor local|ipc-copy|ipc-read WIDTH HEIGHT BYTES_PER_PIXEL
 *               [PLAN OPTIONS] [--lat-out FILE]
 *
 * local: one process stamps frame A and copies it into B (one
 *   device-to-device copy + stream sync), then reads the stamp back from B:
 *   what a frame costs with no second process at all.
 * ipc-copy: a second process (forked) owns A and exports it with CUDA IPC;
 *   per frame this process asks for a frame (a futex), the other stamps A
 *   and answers (a futex), this one copies A into its own B and reads the
 *   stamp from B. Lockstep: the producer never writes while the copy runs,
 *   so nothing tears; the unthrottled rate is that of the handshake.
 * ipc-read: the same without the copy: the stamp is read from A where the
 *   other process wrote it (the zero-copy floor).
 * The latency of every frame runs from the producer's stamp (taken just
 * before its write) to the stamp read back in this process, as bench_peer
 * measures it. Prints PRODUCER and RESULT lines like bench_peer's and
 * writes the latencies to FILE. */
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "peerstats.h"

static const cudalink_cuda *cu;

typedef struct {
  _Atomic uint32_t req, pub;
  atomic_int ready, stop, failed;
  uint64_t counter, phase;
  CUipcMemHandle handle;
} Shared;

static void
futex_wait(_Atomic uint32_t *w, uint32_t val, int timeout_ms)
{
  struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *w)
{
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* tail counter, then the Stamp, at frame f of size bytes; then a sync of
 * the legacy stream (the bytes are in device memory) */
static CUresult
stamp(CUdeviceptr f, size_t size, uint64_t counter, uint64_t phase)
{
  Stamp s;
  CUresult r = cu->MemcpyHtoD(f + size - sizeof counter, &counter, sizeof counter);
  s.counter = counter;
  s.phase = phase;
  s.magic = STAMP_MAGIC;
  s.t_ns = mono_ns();
  if (r == CUDA_SUCCESS)
    r = cu->MemcpyHtoD(f, &s, sizeof s);
  if (r == CUDA_SUCCESS)
    r = cu->StreamSynchronize(NULL);
  return r;
}

/* reads the stamp back from f: its latency and whether it tore */
static CUresult
read_back(CUdeviceptr f, size_t size, PhaseStats *ph)
{
  Stamp s;
  uint64_t tail = 0, now, arrived = mono_ns();
  CUresult r = cu->MemcpyDtoH(&s, f, sizeof s);
  now = mono_ns();
  if (r == CUDA_SUCCESS)
    r = cu->MemcpyDtoH(&tail, f + size - sizeof tail, sizeof tail);
  if (r == CUDA_SUCCESS && s.magic == STAMP_MAGIC)
    phase_add(ph, s.phase, s.counter, tail != s.counter, (double)(int64_t)(now - s.t_ns) / 1e3,
              (double)(now - arrived) / 1e3, (double)now / 1e9);
  return r;
}

static int
fail(const char *what, CUresult r)
{
  const char *name = "?";
  if (cu && cu->GetErrorName)
    cu->GetErrorName(r, &name);
  printf("ERROR bench_floor: %s: %s\n", what, name);
  fflush(stdout);
  return 1;
}

static const cudalink_cuda *
up(CUcontext *ctx)
{
  char why[256];
  const cudalink_cuda *t = cudalink_cuda_up(ctx, why, sizeof why);
  if (!t) {
    printf("ERROR bench_floor: no CUDA driver or device: %s\n", why);
    fflush(stdout);
  }
  return t;
}

static int
check_main(double hold_s)
{
  typedef CUresult(CUDAAPI * name_fn)(char *, int, CUdevice);
  name_fn get_name;
  CUcontext ctx;
  CUdevice dev;
  char name[128] = "?";
  int version = 0;

  if (!(cu = up(&ctx)))
    return 2;
  get_name = (name_fn)cudalink_cuda_symbol("cuDeviceGetName");
  if (get_name && cu->CtxGetDevice(&dev) == CUDA_SUCCESS)
    get_name(name, sizeof name, dev);
  cu->DriverGetVersion(&version);
  printf("GPU %s, CUDA driver API %d.%d\n", name, version / 1000, (version % 1000) / 10);
  fflush(stdout);
  if (hold_s > 0)
    sleep_until(cudalink_now() + hold_s);
  return 0;
}

/* the producer process of ipc-copy / ipc-read */
static void
ipc_producer(Shared *sh, size_t size)
{
  CUcontext ctx;
  CUdeviceptr a;
  uint32_t seen = 0;

  if (!(cu = up(&ctx)) || cu->MemAlloc(&a, size) != CUDA_SUCCESS ||
      cu->MemsetD8Async(a, 0, size, NULL) != CUDA_SUCCESS ||
      cu->StreamSynchronize(NULL) != CUDA_SUCCESS ||
      cu->IpcGetMemHandle(&sh->handle, a) != CUDA_SUCCESS) {
    atomic_store(&sh->failed, 1);
    _exit(1);
  }
  atomic_store(&sh->ready, 1);
  while (!atomic_load(&sh->stop)) {
    uint32_t req = atomic_load(&sh->req);
    if (req == seen) {
      futex_wait(&sh->req, seen, 100);
      continue;
    }
    seen = req;
    if (stamp(a, size, sh->counter, sh->phase) != CUDA_SUCCESS) {
      atomic_store(&sh->failed, 1);
      futex_wake(&sh->pub);
      _exit(1);
    }
    atomic_store(&sh->pub, req);
    futex_wake(&sh->pub);
  }
  cu->MemFree(a);
  _exit(0);
}

int
main(int argc, char **argv)
{
  const char *mode, *lat_out = NULL;
  int w, h, bpp, ipc, copy, rc = 0;
  size_t size;
  Plan plan;
  Schedule sched;
  PhaseStats ph[PH_N];
  Shared *sh = NULL;
  pid_t child = -1;
  CUcontext ctx;
  CUdeviceptr a = 0, b = 0;
  CUstream s;
  CUresult r = CUDA_SUCCESS;
  uint64_t counter = 0;

  if ((argc == 2 || argc == 3) && strcmp(argv[1], "check") == 0)
    return check_main(argc == 3 ? atof(argv[2]) : 0);
  if (argc < 5 || (strcmp(argv[1], "local") != 0 && strcmp(argv[1], "ipc-copy") != 0 &&
                   strcmp(argv[1], "ipc-read") != 0)) {
    fprintf(stderr, "usage: bench_floor check [HOLD_S] | local|ipc-copy|ipc-read W H BYTES_PER_PIXEL "
                    "[plan options] [--lat-out FILE]\n");
    return 64;
  }
  mode = argv[1];
  w = atoi(argv[2]);
  h = atoi(argv[3]);
  bpp = atoi(argv[4]);
  size = (size_t)w * (size_t)h * (size_t)bpp;
  ipc = strncmp(mode, "ipc", 3) == 0;
  copy = strcmp(mode, "ipc-read") != 0;
  plan_defaults(&plan);
  for (int i = 5; i < argc; i++) {
    if (plan_option(&plan, argc, argv, &i))
      continue;
    if (strcmp(argv[i], "--lat-out") == 0 && i + 1 < argc) {
      lat_out = argv[++i];
    } else {
      fprintf(stderr, "bench_floor: unknown option %s\n", argv[i]);
      return 64;
    }
  }
  if (size < sizeof(Stamp) + 8) {
    fprintf(stderr, "bench_floor: frame too small\n");
    return 64;
  }
  if (ipc) {
    /* fork before either process touches CUDA */
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
      return 1;
    memset(sh, 0, sizeof *sh);
    fflush(stdout);
    if ((child = fork()) == 0)
      ipc_producer(sh, size);
    for (int i = 0; i < 2000 && !atomic_load(&sh->ready) && !atomic_load(&sh->failed); i++)
      usleep(10000);
    if (!atomic_load(&sh->ready)) {
      printf("ERROR bench_floor: the producer process did not start its CUDA side\n");
      rc = 1;
      goto out;
    }
  }
  if (!(cu = up(&ctx))) {
    rc = 2;
    goto out;
  }
  if (ipc)
    r = cu->IpcOpenMemHandle(&a, sh->handle, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
  else
    r = cu->MemAlloc(&a, size);
  if (r != CUDA_SUCCESS || (r = cu->MemAlloc(&b, size)) != CUDA_SUCCESS ||
      (r = cu->StreamCreate(&s, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS) {
    rc = fail("setup", r);
    goto out;
  }
  phases_init(ph);
  sched_init(&sched, &plan);
  while (!sched.done && r == CUDA_SUCCESS) {
    double due;
    int p = sched_begin_frame(&sched, 1, cudalink_now(), &due);
    sleep_until(due);
    if (ipc) {
      uint32_t req = atomic_load(&sh->req) + 1;
      sh->counter = counter;
      sh->phase = (uint64_t)p;
      atomic_store(&sh->req, req);
      futex_wake(&sh->req);
      while (atomic_load(&sh->pub) != req && !atomic_load(&sh->failed))
        futex_wait(&sh->pub, atomic_load(&sh->pub), 100);
      if (atomic_load(&sh->failed)) {
        printf("ERROR bench_floor: the producer process failed\n");
        rc = 1;
        break;
      }
    } else {
      r = stamp(a, size, counter, (uint64_t)p);
    }
    sched_end_frame(&sched, p, cudalink_now());
    counter++;
    if (r == CUDA_SUCCESS && copy) {
      r = cu->MemcpyDtoDAsync(b, a, size, s);
      if (r == CUDA_SUCCESS)
        r = cu->StreamSynchronize(s);
    }
    if (r == CUDA_SUCCESS)
      r = read_back(copy ? b : a, size, ph);
  }
  if (r != CUDA_SUCCESS)
    rc = fail("a frame", r);
  if (!rc) {
    sched_print(&sched, stdout, NULL);
    fputs("RESULT {\"phases\": ", stdout);
    phases_print_json(ph, stdout);
    fputs(", \"error\": \"\"}\n", stdout);
    fflush(stdout);
    if (phases_write_latencies(ph, lat_out) != 0) {
      printf("ERROR bench_floor: cannot write %s\n", lat_out);
      rc = 1;
    }
  }
  phases_free(ph);
  if (ipc && a)
    cu->IpcCloseMemHandle(a);
out:
  if (child > 0) {
    atomic_store(&sh->stop, 1);
    futex_wake(&sh->req);
    waitpid(child, NULL, 0);
  }
  return rc;
}
