/* A functional CPU stand-in for libcuda.so.1 (and nvcuda.dll: the same file
 * builds as a Windows DLL for tests/win), so that the producer/consumer
 * ring logic runs in the GPU-free unit suite (CUDALINK_CUDA_LIBRARY names
 * it). Based on a local mock written for this project.
 *
 * - "Device" memory is host memory in POSIX shared memory (Windows: a
 *   named, paging-file backed file mapping); an IPC memory handle (64
 *   bytes) carries its name, so another process maps it. On Windows the
 *   memory then lives on while either process holds it, as a real IPC
 *   allocation does for a consumer whose producer was killed.
 * - Copies and memsets are synchronous; streams and events complete at once
 *   unless MOCK_CUDA_GPU_US makes the "GPU" late (below). An IPC event
 *   handle names a small shared object that holds the event's completion
 *   time, so the process that opened it sees the exporter's work finish.
 *   cuStreamWaitEvent calls are counted (mock_cuda_stream_waits()).
 * - Graphs of one device-to-device copy and one event record after it (the
 *   producer's publish) launch as that copy and that record; launches and
 *   live executable graphs are counted (mock_cuda_graph_launches(),
 *   mock_cuda_live_graph_execs()).
 * - The per-thread context stack is tracked (mock_cuda_ctx_depth()) and live
 *   allocations + IPC mappings are counted (mock_cuda_live_allocations()),
 *   so tests catch a context left pushed or a buffer never freed.
 * - Every allocation has its real size: the exporter's is the size asked
 *   for, and the shm object is cut to exactly that, so an importer maps and
 *   cuMemGetAddressRange reports what was allocated, whatever a producer's
 *   header claims. A copy or memset that reaches past an allocation fails
 *   with CUDA_ERROR_INVALID_VALUE (where a GPU would fault) and is counted
 *   (mock_cuda_range_errors()), so tests can tell it was never tried.
 * - MOCK_CUDA_FAIL (read at each call) names entry points, comma separated,
 *   that fail with CUDA_ERROR_MOCK_INJECTED instead of doing their work:
 *   how tests reach the library's handling of failures that a working
 *   driver never gives (a sticky error in the middle of a teardown).
 *
 * No cuda.h: its prototypes would clash. Only the ABI matters to the
 * loader's dlsym(); the few types needed are defined here. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#else
#  include <fcntl.h>
#  include <pthread.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <time.h>
#  include <unistd.h>
#endif

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext;
typedef void *CUstream;
typedef void *CUevent;
typedef void *CUmodule;
typedef void *CUfunction;
typedef struct { char reserved[64]; } CUipcMemHandle;
typedef struct { char reserved[64]; } CUipcEventHandle;
typedef struct {
  size_t srcXInBytes, srcY;
  int srcMemoryType;
  const void *srcHost;
  CUdeviceptr srcDevice;
  void *srcArray;
  size_t srcPitch;
  size_t dstXInBytes, dstY;
  int dstMemoryType;
  void *dstHost;
  CUdeviceptr dstDevice;
  void *dstArray;
  size_t dstPitch;
  size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;
typedef struct { /* cuda.h's CUDA_MEMCPY3D (v2), field for field */
  size_t srcXInBytes, srcY, srcZ, srcLOD;
  int srcMemoryType;
  const void *srcHost;
  CUdeviceptr srcDevice;
  void *srcArray;
  void *reserved0;
  size_t srcPitch, srcHeight;
  size_t dstXInBytes, dstY, dstZ, dstLOD;
  int dstMemoryType;
  void *dstHost;
  CUdeviceptr dstDevice;
  void *dstArray;
  void *reserved1;
  size_t dstPitch, dstHeight;
  size_t WidthInBytes, Height, Depth;
} CUDA_MEMCPY3D;
typedef void *CUgraph;
typedef void *CUgraphNode;
typedef void *CUgraphExec;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_INVALID_DEVICE 101
#define CUDA_ERROR_INVALID_CONTEXT 201
#define CUDA_ERROR_INVALID_HANDLE 400
#define CUDA_ERROR_NOT_FOUND 500
#define CUDA_ERROR_NOT_READY 600
#define CUDA_ERROR_NOT_SUPPORTED 801
#define CUDA_ERROR_MOCK_INJECTED 999
#define CU_MEMORYTYPE_HOST 1
#define CU_MEMORYTYPE_DEVICE 2

/* ---- platform: lock, clock, shared "device" memory -------------------- */

#ifdef _WIN32
#  define EXPORT __declspec(dllexport)
#  define NAME_PREFIX "mockcuda."
static SRWLOCK lock_ = SRWLOCK_INIT;
static void lock_take(void) { AcquireSRWLockExclusive(&lock_); }
static void lock_give(void) { ReleaseSRWLockExclusive(&lock_); }
static unsigned long process_id(void) { return GetCurrentProcessId(); }

static double
mono_now(void)
{
  LARGE_INTEGER c, f;
  QueryPerformanceCounter(&c);
  QueryPerformanceFrequency(&f);
  return (double)c.QuadPart / (double)f.QuadPart;
}

static void
nap(double seconds, int sleep)
{
  Sleep(sleep && seconds >= 1e-3 ? (DWORD)(seconds * 1e3) : 0);
}

/* A new named mapping of size bytes, mapped; NULL on failure. */
static void *
shared_new(const char *name, size_t size, void **handle)
{
  unsigned long long n = size;
  HANDLE h = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)(n >> 32),
                                (DWORD)n, name);
  void *p;
  if (!h)
    return NULL;
  if (GetLastError() == ERROR_ALREADY_EXISTS || !(p = MapViewOfFile(h, FILE_MAP_ALL_ACCESS, 0, 0, 0))) {
    CloseHandle(h);
    return NULL;
  }
  *handle = h;
  return p;
}

/* Maps an existing one; *size: the mapping's (page-rounded) size. */
static void *
shared_open(const char *name, size_t *size, void **handle)
{
  MEMORY_BASIC_INFORMATION info;
  HANDLE h = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
  void *p;
  if (!h)
    return NULL;
  if (!(p = MapViewOfFile(h, FILE_MAP_ALL_ACCESS, 0, 0, 0)) || !VirtualQuery(p, &info, sizeof info)) {
    if (p)
      UnmapViewOfFile(p);
    CloseHandle(h);
    return NULL;
  }
  *size = info.RegionSize;
  *handle = h;
  return p;
}

/* A mapping dies with its last handle: nothing to unlink. */
static void
shared_close(void *p, size_t size, void *handle, const char *unlink_name)
{
  (void)size;
  (void)unlink_name;
  UnmapViewOfFile(p);
  CloseHandle(handle);
}
#else
#  define EXPORT __attribute__((visibility("default")))
#  define NAME_PREFIX "/mockcuda."
static pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
static void lock_take(void) { pthread_mutex_lock(&lock_); }
static void lock_give(void) { pthread_mutex_unlock(&lock_); }
static unsigned long process_id(void) { return (unsigned long)getpid(); }

static double
mono_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
nap(double seconds, int sleep)
{
  struct timespec ts = { 0, (long)(seconds * 1e9) };
  if (sleep)
    nanosleep(&ts, NULL);
}

static void *
shared_new(const char *name, size_t size, void **handle)
{
  void *p;
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  *handle = NULL;
  if (fd < 0)
    return NULL;
  if (ftruncate(fd, (off_t)size) != 0) {
    close(fd);
    shm_unlink(name);
    return NULL;
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(name);
    return NULL;
  }
  return p;
}

static void *
shared_open(const char *name, size_t *size, void **handle)
{
  struct stat st;
  void *p;
  int fd = shm_open(name, O_RDWR, 0);
  *handle = NULL;
  if (fd < 0)
    return NULL;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return NULL;
  }
  *size = (size_t)st.st_size;
  p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? NULL : p;
}

static void
shared_close(void *p, size_t size, void *handle, const char *unlink_name)
{
  (void)handle;
  if (unlink_name)
    shm_unlink(unlink_name);
  munmap(p, size);
}
#endif

/* ---- memory ------------------------------------------------------------ */

typedef struct alloc {
  void *p;
  size_t size;
  char name[64];
  void *handle; /* Windows: the mapping's handle */
  int imported; /* an IPC mapping of another process's allocation */
  struct alloc *next;
} alloc;

static alloc *allocs;
static long live;
static long range_errors; /* copies refused for reaching past an allocation */
static size_t allocated;
static unsigned counter;
#define TOTAL_MEMORY (16ull << 30)

EXPORT long mock_cuda_live_allocations(void);
long
mock_cuda_live_allocations(void)
{
  long n;
  lock_take();
  n = live;
  lock_give();
  return n;
}

static void
add_alloc(alloc *a)
{
  lock_take();
  a->next = allocs;
  allocs = a;
  live++;
  if (!a->imported)
    allocated += a->size;
  lock_give();
}

/* The allocation that starts at p, removed from the list if take. */
static alloc *
find_alloc(CUdeviceptr p, int take, int imported)
{
  alloc **pp, *a = NULL;
  lock_take();
  for (pp = &allocs; *pp; pp = &(*pp)->next) {
    if ((uintptr_t)(*pp)->p == p && (imported < 0 || (*pp)->imported == imported)) {
      a = *pp;
      if (take) {
        *pp = a->next;
        live--;
        if (!a->imported)
          allocated -= a->size;
      }
      break;
    }
  }
  lock_give();
  return a;
}

EXPORT long mock_cuda_range_errors(void);
long
mock_cuda_range_errors(void)
{
  long n;
  lock_take();
  n = range_errors;
  lock_give();
  return n;
}

/* The live allocation or mapping holding byte p (lock held). */
static alloc *
alloc_holding(CUdeviceptr p)
{
  for (alloc *a = allocs; a; a = a->next) {
    uintptr_t b = (uintptr_t)a->p;
    if (p >= b && p < b + a->size)
      return a;
  }
  return NULL;
}

/* Any byte range inside a live allocation or mapping? A range that starts
 * inside one and runs past its end is what a GPU would fault on: counted. */
static int
valid_range(CUdeviceptr p, size_t n)
{
  int ok;
  alloc *a;
  lock_take();
  a = alloc_holding(p);
  ok = a && n <= (uintptr_t)a->p + a->size - p;
  if (!ok)
    range_errors++;
  lock_give();
  return ok;
}

/* ---- contexts ---------------------------------------------------------- */

#define MAX_DEVICES 8
#define CTX_MAGIC 0x4d4f434bu
typedef struct ctx {
  unsigned magic;
  int device;
  int retained;
} ctx;
static ctx primary[MAX_DEVICES];
static _Thread_local ctx *stack[64];
static _Thread_local int depth;

EXPORT int mock_cuda_ctx_depth(void);
int
mock_cuda_ctx_depth(void)
{
  return depth;
}

static int
n_devices(void)
{
  const char *e = getenv("MOCK_CUDA_DEVICES");
  int n = e ? atoi(e) : 1;
  return n < 0 ? 0 : n > MAX_DEVICES ? MAX_DEVICES : n;
}

static int initialized;
#define NEED_INIT()                   \
  do {                                \
    if (!initialized)                 \
      return CUDA_ERROR_NOT_INITIALIZED; \
  } while (0)
#define NEED_CTX()                        \
  do {                                    \
    NEED_INIT();                          \
    if (depth == 0)                       \
      return CUDA_ERROR_INVALID_CONTEXT;  \
  } while (0)

/* Is entry point name listed in MOCK_CUDA_FAIL? */
static int
injected(const char *name)
{
  const char *list = getenv("MOCK_CUDA_FAIL");
  size_t n = strlen(name);
  for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0))
      return 1;
  return 0;
}
#define INJECT(name)                   \
  do {                                 \
    if (injected(name))                \
      return CUDA_ERROR_MOCK_INJECTED; \
  } while (0)

/* Every exported entry point gets a prototype first (-Wmissing-prototypes). */
#define API(ret, name, args) EXPORT ret name args; ret name args

API(CUresult, cuInit, (unsigned int flags))
{
  (void)flags;
  initialized = 1;
  return CUDA_SUCCESS;
}
API(CUresult, cuDriverGetVersion, (int *v))
{
  *v = 13000;
  return CUDA_SUCCESS;
}
API(CUresult, cuGetErrorName, (CUresult r, const char **s))
{
  switch (r) {
    case CUDA_SUCCESS: *s = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *s = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CUDA_ERROR_INVALID_DEVICE: *s = "CUDA_ERROR_INVALID_DEVICE"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *s = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case CUDA_ERROR_INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
    case CUDA_ERROR_NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
    case CUDA_ERROR_NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; break;
    case CUDA_ERROR_MOCK_INJECTED: *s = "CUDA_ERROR_MOCK_INJECTED"; break;
    default: *s = "CUDA_ERROR_MOCK"; break;
  }
  return CUDA_SUCCESS;
}
API(CUresult, cuGetErrorString, (CUresult r, const char **s))
{
  *s = r == CUDA_SUCCESS ? "no error" : "mock driver error";
  return CUDA_SUCCESS;
}
API(CUresult, cuDeviceGetCount, (int *n))
{
  NEED_INIT();
  *n = n_devices();
  return CUDA_SUCCESS;
}
API(CUresult, cuDeviceGet, (CUdevice *d, int ordinal))
{
  NEED_INIT();
  if (ordinal < 0 || ordinal >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  *d = ordinal;
  return CUDA_SUCCESS;
}
API(CUresult, cuDeviceGetName, (char *name, int len, CUdevice d))
{
  NEED_INIT();
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  if (!name || len <= 0)
    return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)len, "Mock CUDA device %d", d);
  return CUDA_SUCCESS;
}
/* What GStreamer's CUDA library asks: compute capability 9.0, unified
 * addressing, a 512-byte texture (pitch) alignment; 0 for the rest. */
API(CUresult, cuDeviceGetAttribute, (int *v, int attrib, CUdevice d))
{
  NEED_INIT();
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  switch (attrib) {
    case 14: /* TEXTURE_ALIGNMENT */
    case 51: /* TEXTURE_PITCH_ALIGNMENT */
      *v = 512;
      break;
    case 41: /* UNIFIED_ADDRESSING */
      *v = 1;
      break;
    case 75: /* COMPUTE_CAPABILITY_MAJOR */
      *v = 9;
      break;
    default:
      *v = 0;
  }
  return CUDA_SUCCESS;
}
API(CUresult, cuDeviceCanAccessPeer, (int *can, CUdevice d, CUdevice peer))
{
  NEED_INIT();
  if (d < 0 || d >= n_devices() || peer < 0 || peer >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  *can = 1;
  return CUDA_SUCCESS;
}
API(CUresult, cuDevicePrimaryCtxRetain, (CUcontext *c, CUdevice d))
{
  NEED_INIT();
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  lock_take();
  primary[d].magic = CTX_MAGIC;
  primary[d].device = d;
  primary[d].retained++;
  lock_give();
  *c = &primary[d];
  return CUDA_SUCCESS;
}
API(CUresult, cuDevicePrimaryCtxRelease_v2, (CUdevice d))
{
  CUresult res = CUDA_SUCCESS;
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  lock_take();
  if (primary[d].retained <= 0)
    res = CUDA_ERROR_INVALID_CONTEXT;
  else
    primary[d].retained--;
  lock_give();
  return res;
}
API(CUresult, cuCtxPushCurrent_v2, (CUcontext c))
{
  ctx *x = c;
  NEED_INIT();
  if (!x || x->magic != CTX_MAGIC)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (depth >= (int)(sizeof stack / sizeof stack[0]))
    return CUDA_ERROR_OUT_OF_MEMORY;
  stack[depth++] = x;
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxPopCurrent_v2, (CUcontext *c))
{
  NEED_INIT();
  if (depth == 0)
    return CUDA_ERROR_INVALID_CONTEXT;
  depth--;
  if (c)
    *c = stack[depth];
  return CUDA_SUCCESS;
}
/* A context of its own (GStreamer's CUDA library makes one per device),
 * current once made, as the driver's is. */
API(CUresult, cuCtxCreate_v2, (CUcontext *c, unsigned int flags, CUdevice d))
{
  ctx *x;
  (void)flags;
  NEED_INIT();
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  if (depth >= (int)(sizeof stack / sizeof stack[0]))
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (!(x = calloc(1, sizeof *x)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  x->magic = CTX_MAGIC;
  x->device = d;
  stack[depth++] = x;
  *c = x;
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxDestroy_v2, (CUcontext c))
{
  ctx *x = c;
  NEED_INIT();
  if (!x || x->magic != CTX_MAGIC || (x >= primary && x < primary + MAX_DEVICES))
    return CUDA_ERROR_INVALID_CONTEXT;
  if (depth > 0 && stack[depth - 1] == x)
    depth--;
  x->magic = 0;
  free(x);
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxEnablePeerAccess, (CUcontext c, unsigned int flags))
{
  (void)c;
  (void)flags;
  NEED_CTX();
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxDisablePeerAccess, (CUcontext c))
{
  (void)c;
  NEED_CTX();
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxGetDevice, (CUdevice *d))
{
  NEED_CTX();
  *d = stack[depth - 1]->device;
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxSynchronize, (void))
{
  NEED_CTX();
  return CUDA_SUCCESS;
}

static CUresult
mem_alloc(CUdeviceptr *out, size_t size)
{
  alloc *a;
  if (size == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (!(a = calloc(1, sizeof *a)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  lock_take();
  snprintf(a->name, sizeof a->name, NAME_PREFIX "%lu.%u", process_id(), counter++);
  lock_give();
  if (!(a->p = shared_new(a->name, size, &a->handle))) {
    free(a);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  memset(a->p, 0xcd, size); /* like uninitialised device memory: not zero */
  a->size = size;
  add_alloc(a);
  *out = (CUdeviceptr)(uintptr_t)a->p;
  return CUDA_SUCCESS;
}
API(CUresult, cuMemAlloc_v2, (CUdeviceptr *out, size_t size))
{
  NEED_CTX();
  INJECT("cuMemAlloc_v2");
  return mem_alloc(out, size);
}
/* rows padded to 512 bytes, as a GPU's texture pitch alignment does */
API(CUresult, cuMemAllocPitch_v2,
    (CUdeviceptr *out, size_t *pitch, size_t width, size_t height, unsigned int elem))
{
  NEED_CTX();
  INJECT("cuMemAllocPitch_v2");
  if (!pitch || width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16))
    return CUDA_ERROR_INVALID_VALUE;
  *pitch = (width + 511) / 512 * 512;
  return mem_alloc(out, *pitch * height);
}
API(CUresult, cuMemAllocHost_v2, (void **p, size_t size))
{
  NEED_CTX();
  return (*p = malloc(size ? size : 1)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
API(CUresult, cuMemFreeHost, (void *p))
{
  free(p);
  return CUDA_SUCCESS;
}
API(CUresult, cuMemFree_v2, (CUdeviceptr p))
{
  alloc *a;
  NEED_INIT();
  if (!(a = find_alloc(p, 1, 0)))
    return CUDA_ERROR_INVALID_VALUE;
  shared_close(a->p, a->size, a->handle, a->name);
  free(a);
  return CUDA_SUCCESS;
}
API(CUresult, cuMemGetInfo_v2, (size_t *free_bytes, size_t *total))
{
  NEED_CTX();
  lock_take();
  *free_bytes = TOTAL_MEMORY - allocated;
  lock_give();
  *total = TOTAL_MEMORY;
  return CUDA_SUCCESS;
}

API(CUresult, cuMemGetAddressRange_v2, (CUdeviceptr *base, size_t *size, CUdeviceptr p))
{
  alloc *a;
  NEED_CTX();
  INJECT("cuMemGetAddressRange_v2");
  lock_take();
  a = alloc_holding(p);
  if (a && base)
    *base = (CUdeviceptr)(uintptr_t)a->p;
  if (a && size)
    *size = a->size;
  lock_give();
  return a ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

static void *
side(int type, const void *host, CUdeviceptr dev, size_t x, size_t y, size_t pitch, size_t w,
     size_t h)
{
  if (type == CU_MEMORYTYPE_HOST)
    return host ? (char *)(uintptr_t)host + y * pitch + x : NULL;
  if (type == CU_MEMORYTYPE_DEVICE) {
    CUdeviceptr start = dev + y * pitch + x;
    if (h == 0 || valid_range(start, (h - 1) * pitch + w))
      return (void *)(uintptr_t)start;
  }
  return NULL;
}

#define STREAM_MAGIC 0x5354524du
#define EVENT_MAGIC 0x4556454eu

/* Time on the "GPU": MOCK_CUDA_GPU_US (read at each operation) makes every
 * asynchronous copy or memset finish that many microseconds after the
 * work queued before it, the way a GPU that is busy elsewhere does (the
 * bytes move at once; only completion is late). Events complete with the
 * work recorded before them; cuStreamSynchronize and a non-blocking event's
 * synchronize spin until then, as the real driver does by default, a
 * BLOCKING_SYNC event's sleeps. */
typedef struct {
  unsigned magic;
  int blocking;
  double done_at;
  /* An event exported (cuIpcGetEventHandle) or opened from a handle keeps
   * its completion time in a small shared object instead, named in the
   * handle, so that the other process sees when this one's work is done
   * (CLOCK_MONOTONIC is one clock for both). The exporter unlinks it. */
  double *shared;
  void *shared_handle;
  size_t shared_size;
  int exported;
  char name[64];
} event;

static double
event_done_at(const event *ev)
{
  double t;
  uint64_t bits;
  if (!ev->shared)
    return ev->done_at;
  bits = __atomic_load_n((const uint64_t *)(const void *)ev->shared, __ATOMIC_ACQUIRE);
  memcpy(&t, &bits, sizeof t);
  return t;
}

static void
event_set_done_at(event *ev, double t)
{
  uint64_t bits;
  ev->done_at = t;
  if (!ev->shared)
    return;
  memcpy(&bits, &t, sizeof bits);
  __atomic_store_n((uint64_t *)(void *)ev->shared, bits, __ATOMIC_RELEASE);
}

static double last_done_at; /* when all work queued in this process is done */

static void
gpu_work(void)
{
  const char *gpu_us = getenv("MOCK_CUDA_GPU_US");
  double now = mono_now();
  last_done_at = (last_done_at > now ? last_done_at : now) + (gpu_us ? atof(gpu_us) * 1e-6 : 0);
}

static void
wait_until(double t, int sleep)
{
  double left;
  while ((left = t - mono_now()) > 0)
    nap(left, sleep);
}

static CUresult
event_new(CUevent *e, int blocking)
{
  event *ev = calloc(1, sizeof *ev);
  if (!ev)
    return CUDA_ERROR_OUT_OF_MEMORY;
  ev->magic = EVENT_MAGIC;
  ev->blocking = blocking;
  *e = (CUevent)ev;
  return CUDA_SUCCESS;
}

API(CUresult, cuMemcpy2DAsync_v2, (const CUDA_MEMCPY2D *c, CUstream s))
{
  const char *src;
  char *dst;
  (void)s;
  NEED_CTX();
  if (!c || (c->Height > 1 && (c->WidthInBytes > c->srcPitch || c->WidthInBytes > c->dstPitch)))
    return CUDA_ERROR_INVALID_VALUE;
  src = side(c->srcMemoryType, c->srcHost, c->srcDevice, c->srcXInBytes, c->srcY, c->srcPitch,
             c->WidthInBytes, c->Height);
  dst = side(c->dstMemoryType, c->dstHost, c->dstDevice, c->dstXInBytes, c->dstY, c->dstPitch,
             c->WidthInBytes, c->Height);
  if (!src || !dst)
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t y = 0; y < c->Height; y++)
    memmove(dst + y * c->dstPitch, src + y * c->srcPitch, c->WidthInBytes);
  gpu_work();
  return CUDA_SUCCESS;
}
API(CUresult, cuMemcpy2D_v2, (const CUDA_MEMCPY2D *c))
{
  return cuMemcpy2DAsync_v2(c, NULL);
}
API(CUresult, cuMemcpyDtoDAsync_v2, (CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st))
{
  (void)st;
  NEED_CTX();
  if (!valid_range(d, n) || !valid_range(s, n))
    return CUDA_ERROR_INVALID_VALUE;
  memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)s, n);
  gpu_work();
  return CUDA_SUCCESS;
}
API(CUresult, cuMemcpyHtoD_v2, (CUdeviceptr d, const void *s, size_t n))
{
  NEED_CTX();
  if (!valid_range(d, n))
    return CUDA_ERROR_INVALID_VALUE;
  memcpy((void *)(uintptr_t)d, s, n);
  return CUDA_SUCCESS;
}
API(CUresult, cuMemcpyDtoH_v2, (void *d, CUdeviceptr s, size_t n))
{
  NEED_CTX();
  if (!valid_range(s, n))
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(d, (const void *)(uintptr_t)s, n);
  return CUDA_SUCCESS;
}
API(CUresult, cuMemsetD8Async, (CUdeviceptr d, unsigned char v, size_t n, CUstream s))
{
  (void)s;
  NEED_CTX();
  if (!valid_range(d, n))
    return CUDA_ERROR_INVALID_VALUE;
  memset((void *)(uintptr_t)d, v, n);
  gpu_work();
  return CUDA_SUCCESS;
}

/* Streams and events: small heap objects (so valgrind sees leaks); all
 * work is done by the time a call returns. */
typedef struct obj { unsigned magic; } obj;

static CUresult
obj_new(void **out, unsigned magic)
{
  obj *o = malloc(sizeof *o);
  if (!o)
    return CUDA_ERROR_OUT_OF_MEMORY;
  o->magic = magic;
  *out = o;
  return CUDA_SUCCESS;
}
static int
obj_is(void *p, unsigned magic)
{
  return p && ((obj *)p)->magic == magic;
}
static CUresult
obj_free(void *p, unsigned magic)
{
  if (!obj_is(p, magic))
    return CUDA_ERROR_INVALID_HANDLE;
  ((obj *)p)->magic = 0;
  free(p);
  return CUDA_SUCCESS;
}

API(CUresult, cuStreamCreate, (CUstream *s, unsigned int flags))
{
  (void)flags;
  NEED_CTX();
  return obj_new(s, STREAM_MAGIC);
}
API(CUresult, cuStreamDestroy_v2, (CUstream s))
{
  NEED_INIT();
  return obj_free(s, STREAM_MAGIC);
}
/* the name GStreamer's CUDA library loads */
API(CUresult, cuStreamDestroy, (CUstream s))
{
  return cuStreamDestroy_v2(s);
}
API(CUresult, cuStreamSynchronize, (CUstream s))
{
  NEED_CTX();
  INJECT("cuStreamSynchronize");
  if (s && !obj_is(s, STREAM_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  wait_until(last_done_at, 0);
  return CUDA_SUCCESS;
}
/* GPU-side waits queued in this process (mock_cuda_stream_waits()) */
static long stream_waits;
EXPORT long mock_cuda_stream_waits(void);
long
mock_cuda_stream_waits(void)
{
  long n;
  lock_take();
  n = stream_waits;
  lock_give();
  return n;
}
API(CUresult, cuStreamWaitEvent, (CUstream s, CUevent e, unsigned int flags))
{
  (void)flags;
  NEED_CTX();
  if ((s && !obj_is(s, STREAM_MAGIC)) || !obj_is(e, EVENT_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  lock_take();
  stream_waits++;
  /* the work queued after it waits for the event's */
  if (event_done_at(e) > last_done_at)
    last_done_at = event_done_at(e);
  lock_give();
  return CUDA_SUCCESS;
}
API(CUresult, cuEventCreate, (CUevent *e, unsigned int flags))
{
  NEED_CTX();
  return event_new(e, (flags & 0x1) != 0); /* CU_EVENT_BLOCKING_SYNC */
}
API(CUresult, cuEventDestroy_v2, (CUevent e))
{
  event *ev = e;
  NEED_INIT();
  if (obj_is(e, EVENT_MAGIC) && ev->shared)
    shared_close(ev->shared, ev->shared_size, ev->shared_handle, ev->exported ? ev->name : NULL);
  return obj_free(e, EVENT_MAGIC);
}
API(CUresult, cuEventRecord, (CUevent e, CUstream s))
{
  NEED_CTX();
  if ((s && !obj_is(s, STREAM_MAGIC)) || !obj_is(e, EVENT_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  event_set_done_at(e, last_done_at);
  return CUDA_SUCCESS;
}
API(CUresult, cuEventSynchronize, (CUevent e))
{
  NEED_INIT();
  if (!obj_is(e, EVENT_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  wait_until(event_done_at(e), ((event *)(void *)e)->blocking);
  return CUDA_SUCCESS;
}
API(CUresult, cuEventQuery, (CUevent e))
{
  NEED_INIT();
  INJECT("cuEventQuery");
  if (!obj_is(e, EVENT_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  return mono_now() < event_done_at(e) ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

/* ---- IPC ----------------------------------------------------------------- */

API(CUresult, cuIpcGetMemHandle, (CUipcMemHandle *h, CUdeviceptr p))
{
  alloc *a;
  NEED_CTX();
  if (!(a = find_alloc(p, 0, 0)))
    return CUDA_ERROR_INVALID_VALUE;
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, a->name, strlen(a->name));
  return CUDA_SUCCESS;
}
API(CUresult, cuIpcOpenMemHandle_v2, (CUdeviceptr *p, CUipcMemHandle h, unsigned int flags))
{
  char name[sizeof h.reserved + 1];
  alloc *a;
  (void)flags;
  NEED_CTX();
  memcpy(name, h.reserved, sizeof h.reserved);
  name[sizeof h.reserved] = 0;
  if (strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (!(a = calloc(1, sizeof *a)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (!(a->p = shared_open(name, &a->size, &a->handle))) {
    free(a);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  a->imported = 1;
  snprintf(a->name, sizeof a->name, "%s", name);
  add_alloc(a);
  *p = (CUdeviceptr)(uintptr_t)a->p;
  return CUDA_SUCCESS;
}
API(CUresult, cuIpcCloseMemHandle, (CUdeviceptr p))
{
  alloc *a;
  NEED_INIT();
  INJECT("cuIpcCloseMemHandle");
  if (!(a = find_alloc(p, 1, 1)))
    return CUDA_ERROR_INVALID_VALUE;
  shared_close(a->p, a->size, a->handle, NULL);
  free(a);
  return CUDA_SUCCESS;
}
/* An event handle: this tag, then the name of the event's shared object */
#define EVENT_TAG "mockcuda-event"
#define EVENT_NAME_AT 16

API(CUresult, cuIpcGetEventHandle, (CUipcEventHandle *h, CUevent e))
{
  event *ev = e;
  NEED_CTX();
  if (!obj_is(e, EVENT_MAGIC))
    return CUDA_ERROR_INVALID_HANDLE;
  if (!ev->shared) {
    lock_take();
    snprintf(ev->name, sizeof ev->name, NAME_PREFIX "%lu.%u", process_id(), counter++);
    lock_give();
    ev->shared_size = sizeof(double);
    if (!(ev->shared = shared_new(ev->name, ev->shared_size, &ev->shared_handle)))
      return CUDA_ERROR_OUT_OF_MEMORY;
    ev->exported = 1;
    event_set_done_at(ev, ev->done_at);
  }
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, EVENT_TAG, strlen(EVENT_TAG));
  memcpy(h->reserved + EVENT_NAME_AT, ev->name, strlen(ev->name));
  return CUDA_SUCCESS;
}
API(CUresult, cuIpcOpenEventHandle, (CUevent *e, CUipcEventHandle h))
{
  event *ev;
  CUresult res;
  NEED_CTX();
  if (memcmp(h.reserved, EVENT_TAG, strlen(EVENT_TAG)) != 0)
    return CUDA_ERROR_INVALID_HANDLE;
  if ((res = event_new(e, 0)) != CUDA_SUCCESS)
    return res;
  ev = *e;
  /* (name has room for the handle's 48 bytes and a NUL; calloc zeroed it) */
  memcpy(ev->name, h.reserved + EVENT_NAME_AT, sizeof h.reserved - EVENT_NAME_AT);
  if (!(ev->shared = shared_open(ev->name, &ev->shared_size, &ev->shared_handle))) {
    obj_free(ev, EVENT_MAGIC);
    *e = NULL;
    return CUDA_ERROR_INVALID_HANDLE;
  }
  return CUDA_SUCCESS;
}

/* ---- modules: present, not implemented (no kernels on the CPU here) ---- */

API(CUresult, cuModuleLoadData, (CUmodule *m, const void *image))
{
  (void)m;
  (void)image;
  return CUDA_ERROR_NOT_SUPPORTED;
}
API(CUresult, cuModuleUnload, (CUmodule m))
{
  (void)m;
  return CUDA_ERROR_NOT_SUPPORTED;
}
API(CUresult, cuModuleGetFunction, (CUfunction *f, CUmodule m, const char *name))
{
  (void)f;
  (void)m;
  (void)name;
  return CUDA_ERROR_NOT_SUPPORTED;
}
API(CUresult, cuLaunchKernel,
    (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
     unsigned shared, CUstream s, void **params, void **extra))
{
  (void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz;
  (void)shared; (void)s; (void)params; (void)extra;
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- graphs: a copy then an event record (what the producer's publish
 * makes), launched as one piece of "GPU" work ---------------------------- */

#define GRAPH_MAGIC 0x47524150u
#define EXEC_MAGIC 0x45584543u

typedef struct {
  unsigned magic;
  CUDA_MEMCPY3D copy;
  int has_copy;
  CUevent record;
} graph;

static long graph_launches, graph_execs;

EXPORT long mock_cuda_graph_launches(void);
long
mock_cuda_graph_launches(void)
{
  long n;
  lock_take();
  n = graph_launches;
  lock_give();
  return n;
}

EXPORT long mock_cuda_live_graph_execs(void);
long
mock_cuda_live_graph_execs(void)
{
  long n;
  lock_take();
  n = graph_execs;
  lock_give();
  return n;
}

API(CUresult, cuGraphCreate, (CUgraph *g, unsigned int flags))
{
  graph *gr;
  NEED_INIT();
  if (!g || flags)
    return CUDA_ERROR_INVALID_VALUE;
  if (!(gr = calloc(1, sizeof *gr)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  gr->magic = GRAPH_MAGIC;
  *g = (CUgraph)(void *)gr;
  return CUDA_SUCCESS;
}
API(CUresult, cuGraphDestroy, (CUgraph g))
{
  NEED_INIT();
  return obj_free(g, GRAPH_MAGIC);
}
/* device-to-device copies only, the first node of a graph */
API(CUresult, cuGraphAddMemcpyNode, (CUgraphNode *node, CUgraph g, const CUgraphNode *deps,
                                     size_t n_deps, const CUDA_MEMCPY3D *c, CUcontext on))
{
  graph *gr = (graph *)(void *)g;
  (void)deps;
  (void)on;
  NEED_INIT();
  if (!obj_is(g, GRAPH_MAGIC) || !node || !c || n_deps || gr->has_copy)
    return CUDA_ERROR_INVALID_VALUE;
  if (c->srcMemoryType != CU_MEMORYTYPE_DEVICE || c->dstMemoryType != CU_MEMORYTYPE_DEVICE ||
      c->Depth != 1 || c->srcXInBytes || c->srcY || c->srcZ || c->dstXInBytes || c->dstY ||
      c->dstZ || (c->Height > 1 && (c->WidthInBytes > c->srcPitch || c->WidthInBytes > c->dstPitch)))
    return CUDA_ERROR_NOT_SUPPORTED;
  gr->copy = *c;
  gr->has_copy = 1;
  *node = (CUgraphNode)(void *)&gr->copy;
  return CUDA_SUCCESS;
}
/* an event record after the copy */
API(CUresult, cuGraphAddEventRecordNode,
    (CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t n_deps, CUevent e))
{
  graph *gr = (graph *)(void *)g;
  NEED_INIT();
  if (!obj_is(g, GRAPH_MAGIC) || !node || !obj_is(e, EVENT_MAGIC) || gr->record ||
      n_deps != (size_t)gr->has_copy || (n_deps && deps[0] != (CUgraphNode)(void *)&gr->copy))
    return CUDA_ERROR_INVALID_VALUE;
  gr->record = e;
  *node = (CUgraphNode)(void *)&gr->record;
  return CUDA_SUCCESS;
}
API(CUresult, cuGraphInstantiateWithFlags, (CUgraphExec *exec, CUgraph g, unsigned long long f))
{
  graph *x;
  NEED_INIT();
  INJECT("cuGraphInstantiateWithFlags");
  if (!exec || !obj_is(g, GRAPH_MAGIC) || f)
    return CUDA_ERROR_INVALID_VALUE;
  if (!(x = malloc(sizeof *x)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  *x = *(graph *)(void *)g;
  x->magic = EXEC_MAGIC;
  *exec = (CUgraphExec)(void *)x;
  lock_take();
  graph_execs++;
  lock_give();
  return CUDA_SUCCESS;
}
API(CUresult, cuGraphExecDestroy, (CUgraphExec exec))
{
  CUresult r;
  NEED_INIT();
  if ((r = obj_free(exec, EXEC_MAGIC)) == CUDA_SUCCESS) {
    lock_take();
    graph_execs--;
    lock_give();
  }
  return r;
}
/* launched as the copy's and the record's own calls */
API(CUresult, cuGraphLaunch, (CUgraphExec exec, CUstream s))
{
  graph *x = (graph *)(void *)exec;
  CUresult r = CUDA_SUCCESS;
  NEED_CTX();
  INJECT("cuGraphLaunch");
  if (!obj_is(exec, EXEC_MAGIC) || (s && !obj_is(s, STREAM_MAGIC)))
    return CUDA_ERROR_INVALID_HANDLE;
  if (x->has_copy) {
    CUDA_MEMCPY2D c2;
    memset(&c2, 0, sizeof c2);
    c2.srcMemoryType = x->copy.srcMemoryType;
    c2.srcDevice = x->copy.srcDevice;
    c2.srcPitch = x->copy.srcPitch;
    c2.dstMemoryType = x->copy.dstMemoryType;
    c2.dstDevice = x->copy.dstDevice;
    c2.dstPitch = x->copy.dstPitch;
    c2.WidthInBytes = x->copy.WidthInBytes;
    c2.Height = x->copy.Height;
    r = cuMemcpy2DAsync_v2(&c2, s);
  }
  if (r == CUDA_SUCCESS && x->record)
    r = cuEventRecord(x->record, s);
  if (r != CUDA_SUCCESS)
    return r;
  lock_take();
  graph_launches++;
  lock_give();
  return CUDA_SUCCESS;
}

/* ---- graphics interop and textures: GStreamer's CUDA library loads them;
 * none here ------------------------------------------------------------ */

/* an entry point that is there for the loader and does nothing */
#define UNSUPPORTED(name, args)        \
  API(CUresult, name, args)            \
  {                                    \
    return CUDA_ERROR_NOT_SUPPORTED;   \
  }
UNSUPPORTED(cuGLGetDevices_v2, (unsigned int *n, CUdevice *d, unsigned int size, int list))
UNSUPPORTED(cuGraphicsGLRegisterBuffer, (void **r, unsigned int buf, unsigned int flags))
UNSUPPORTED(cuGraphicsGLRegisterImage, (void **r, unsigned int img, unsigned int target, unsigned int flags))
UNSUPPORTED(cuGraphicsMapResources, (unsigned int n, void **r, CUstream s))
UNSUPPORTED(cuGraphicsUnmapResources, (unsigned int n, void **r, CUstream s))
UNSUPPORTED(cuGraphicsResourceGetMappedPointer_v2, (CUdeviceptr *p, size_t *size, void *r))
UNSUPPORTED(cuGraphicsResourceSetMapFlags_v2, (void *r, unsigned int flags))
UNSUPPORTED(cuGraphicsSubResourceGetMappedArray, (void **a, void *r, unsigned int i, unsigned int level))
UNSUPPORTED(cuGraphicsUnregisterResource, (void *r))
UNSUPPORTED(cuTexObjectCreate, (unsigned long long *t, const void *res, const void *tex, const void *view))
UNSUPPORTED(cuTexObjectDestroy, (unsigned long long t))

/* ---- what GStreamer 1.28's CUDA library (the Windows runtime) also
 * loads ----------------------------------------------------------------- */

API(CUresult, cuCtxGetLimit, (size_t *v, int limit))
{
  (void)limit;
  NEED_CTX();
  *v = 0;
  return CUDA_SUCCESS;
}
API(CUresult, cuCtxSetLimit, (int limit, size_t v))
{
  (void)limit;
  (void)v;
  NEED_CTX();
  return CUDA_SUCCESS;
}
API(CUresult, cuDeviceGetUuid, (unsigned char *uuid, CUdevice d))
{
  NEED_INIT();
  if (d < 0 || d >= n_devices())
    return CUDA_ERROR_INVALID_DEVICE;
  memset(uuid, 0, 16);
  uuid[15] = (unsigned char)d;
  return CUDA_SUCCESS;
}
API(CUresult, cuIpcOpenMemHandle, (CUdeviceptr *p, CUipcMemHandle h, unsigned int flags))
{
  return cuIpcOpenMemHandle_v2(p, h, flags);
}
API(CUresult, cuMemcpyDtoD_v2, (CUdeviceptr d, CUdeviceptr s, size_t n))
{
  return cuMemcpyDtoDAsync_v2(d, s, n, NULL);
}
API(CUresult, cuMemcpyDtoHAsync_v2, (void *d, CUdeviceptr s, size_t n, CUstream st))
{
  (void)st;
  return cuMemcpyDtoH_v2(d, s, n);
}
API(CUresult, cuMemcpyHtoDAsync_v2, (CUdeviceptr d, const void *s, size_t n, CUstream st))
{
  (void)st;
  return cuMemcpyHtoD_v2(d, s, n);
}

/* a 2-D memset of @size-byte elements */
static CUresult
memset_2d(CUdeviceptr d, size_t pitch, unsigned v, size_t size, size_t w, size_t h)
{
  NEED_CTX();
  if (h == 0 || w == 0)
    return CUDA_SUCCESS;
  if (w * size > pitch && h > 1)
    return CUDA_ERROR_INVALID_VALUE;
  if (!valid_range(d, pitch * (h - 1) + w * size))
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t y = 0; y < h; y++) {
    unsigned char *row = (unsigned char *)(uintptr_t)(d + y * pitch);
    for (size_t x = 0; x < w; x++)
      memcpy(row + x * size, &v, size); /* little-endian: the low bytes */
  }
  gpu_work();
  return CUDA_SUCCESS;
}
API(CUresult, cuMemsetD2D8_v2, (CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h))
{
  return memset_2d(d, pitch, v, 1, w, h);
}
API(CUresult, cuMemsetD2D16_v2, (CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h))
{
  return memset_2d(d, pitch, v, 2, w, h);
}
API(CUresult, cuMemsetD2D32_v2, (CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h))
{
  return memset_2d(d, pitch, v, 4, w, h);
}
API(CUresult, cuMemsetD2D8Async,
    (CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s))
{
  (void)s;
  return memset_2d(d, pitch, v, 1, w, h);
}
API(CUresult, cuMemsetD2D16Async,
    (CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h, CUstream s))
{
  (void)s;
  return memset_2d(d, pitch, v, 2, w, h);
}
API(CUresult, cuMemsetD2D32Async,
    (CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s))
{
  (void)s;
  return memset_2d(d, pitch, v, 4, w, h);
}

/* Virtual memory, memory pools, stream-ordered allocation, external memory
 * and semaphores, D3D11: not here (the device attributes say so; a caller
 * that tries anyway gets "not supported" and nothing is read) */
UNSUPPORTED(cuD3D11GetDevice, (void))
UNSUPPORTED(cuD3D11GetDevices, (void))
UNSUPPORTED(cuGraphicsD3D11RegisterResource, (void))
UNSUPPORTED(cuImportExternalMemory, (void))
UNSUPPORTED(cuDestroyExternalMemory, (void))
UNSUPPORTED(cuExternalMemoryGetMappedBuffer, (void))
UNSUPPORTED(cuExternalMemoryGetMappedMipmappedArray, (void))
UNSUPPORTED(cuImportExternalSemaphore, (void))
UNSUPPORTED(cuDestroyExternalSemaphore, (void))
UNSUPPORTED(cuSignalExternalSemaphoresAsync, (void))
UNSUPPORTED(cuWaitExternalSemaphoresAsync, (void))
UNSUPPORTED(cuMemAddressReserve, (void))
UNSUPPORTED(cuMemAddressFree, (void))
UNSUPPORTED(cuMemCreate, (void))
UNSUPPORTED(cuMemRelease, (void))
UNSUPPORTED(cuMemMap, (void))
UNSUPPORTED(cuMemUnmap, (void))
UNSUPPORTED(cuMemSetAccess, (void))
UNSUPPORTED(cuMemGetAccess, (void))
UNSUPPORTED(cuMemGetAllocationGranularity, (void))
UNSUPPORTED(cuMemGetAllocationPropertiesFromHandle, (void))
UNSUPPORTED(cuMemRetainAllocationHandle, (void))
UNSUPPORTED(cuMemExportToShareableHandle, (void))
UNSUPPORTED(cuMemImportFromShareableHandle, (void))
UNSUPPORTED(cuMemAllocAsync, (void))
UNSUPPORTED(cuMemAllocFromPoolAsync, (void))
UNSUPPORTED(cuMemFreeAsync, (void))
UNSUPPORTED(cuMemPoolCreate, (void))
UNSUPPORTED(cuMemPoolDestroy, (void))
UNSUPPORTED(cuMemPoolGetAttribute, (void))
UNSUPPORTED(cuMemPoolSetAttribute, (void))
