/* A FAKE libcuda.so.1 for tests/bench/rehearse.sh (read it first): "device"
 * memory is host memory (memfd + mmap, so that a CUDA IPC handle, which
 * carries the owner's pid and fd, opens it in another process), copies are
 * memcpy, streams and events do nothing. It lets bench_floor and bench_peer
 * move stamped frames on a machine without a GPU, so that the matrix's
 * orchestration can be rehearsed. Nothing it measures is a GPU figure. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int CUresult;
typedef uintptr_t CUdeviceptr;
typedef struct { char reserved[64]; } CUipcMemHandle;

#define OK 0
#define ERR 1

#define API __attribute__((visibility("default")))

API CUresult cuInit(unsigned f) { (void)f; return OK; }
API CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
API CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
API CUresult cuDeviceGet(int *d, int o) { *d = o; return OK; }
API CUresult cuDeviceGetName(char *n, int len, int d) { (void)d; snprintf(n, len, "FAKE GPU (tests/bench/rehearse)"); return OK; }
API CUresult cuGetErrorName(CUresult r, const char **s) { *s = r ? "FAKE_CUDA_ERROR" : "CUDA_SUCCESS"; return OK; }
API CUresult cuGetErrorString(CUresult r, const char **s) { (void)r; *s = "fake libcuda (tests/bench/rehearse)"; return OK; }
API CUresult cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)0x1; return OK; }
API CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return OK; }
API CUresult cuCtxPushCurrent(void *c) { (void)c; return OK; }
API CUresult cuCtxPushCurrent_v2(void *c) { (void)c; return OK; }
API CUresult cuCtxPopCurrent(void **c) { if (c) *c = (void *)0x1; return OK; }
API CUresult cuCtxPopCurrent_v2(void **c) { if (c) *c = (void *)0x1; return OK; }
API CUresult cuCtxGetDevice(int *d) { *d = 0; return OK; }
API CUresult cuCtxSynchronize(void) { return OK; }

/* allocations: a memfd each, remembered so that IPC can name it */
#define MAX_ALLOC 256
static struct { uintptr_t p; size_t n; int fd; } allocs[MAX_ALLOC];

API CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
  int fd = memfd_create("fakecuda", 0);
  void *m;
  if (fd < 0 || ftruncate(fd, (off_t)n) != 0)
    return ERR;
  m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED)
    return ERR;
  for (int i = 0; i < MAX_ALLOC; i++)
    if (!allocs[i].p) {
      allocs[i].p = (uintptr_t)m;
      allocs[i].n = n;
      allocs[i].fd = fd;
      break;
    }
  *p = (CUdeviceptr)m;
  return OK;
}
API CUresult cuMemFree_v2(CUdeviceptr p)
{
  for (int i = 0; i < MAX_ALLOC; i++)
    if (allocs[i].p == p) {
      munmap((void *)p, allocs[i].n);
      close(allocs[i].fd);
      allocs[i].p = 0;
    }
  return OK;
}
API CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = *t = (size_t)1 << 34; return OK; }
API CUresult cuMemGetAddressRange_v2(CUdeviceptr *b, size_t *n, CUdeviceptr p) { (void)b; (void)n; (void)p; return ERR; }
API CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr p)
{
  memset(h, 0, sizeof *h);
  for (int i = 0; i < MAX_ALLOC; i++)
    if (allocs[i].p == p) {
      snprintf(h->reserved, sizeof h->reserved, "%d %d %zu", (int)getpid(), allocs[i].fd, allocs[i].n);
      return OK;
    }
  return ERR;
}
API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *p, CUipcMemHandle h, unsigned flags)
{
  int pid, fd, own;
  size_t n;
  char path[64];
  void *m;
  (void)flags;
  if (sscanf(h.reserved, "%d %d %zu", &pid, &fd, &n) != 3)
    return ERR;
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  own = open(path, O_RDWR);
  if (own < 0)
    return ERR;
  m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, own, 0);
  close(own);
  if (m == MAP_FAILED)
    return ERR;
  *p = (CUdeviceptr)m;
  return OK;
}
API CUresult cuIpcCloseMemHandle(CUdeviceptr p) { (void)p; return OK; }
API CUresult cuIpcGetEventHandle(void *h, void *e) { (void)e; memset(h, 0, 64); return OK; }
API CUresult cuIpcOpenEventHandle(void **e, CUipcMemHandle h) { (void)h; *e = (void *)0x2; return OK; }

API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)d, s, n); return OK; }
API CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { memcpy(d, (const void *)s, n); return OK; }
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st) { (void)st; memmove((void *)d, (const void *)s, n); return OK; }
API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void *st) { (void)st; memset((void *)d, v, n); return OK; }
API CUresult cuMemcpy2DAsync_v2(const void *cp, void *st) { (void)cp; (void)st; return ERR; }
API CUresult cuStreamCreate(void **s, unsigned f) { (void)f; *s = (void *)0x3; return OK; }
API CUresult cuStreamDestroy_v2(void *s) { (void)s; return OK; }
API CUresult cuStreamSynchronize(void *s) { (void)s; return OK; }
API CUresult cuStreamWaitEvent(void *s, void *e, unsigned f) { (void)s; (void)e; (void)f; return OK; }
API CUresult cuEventCreate(void **e, unsigned f) { (void)f; *e = (void *)0x2; return OK; }
API CUresult cuEventDestroy_v2(void *e) { (void)e; return OK; }
API CUresult cuEventRecord(void *e, void *s) { (void)e; (void)s; return OK; }
API CUresult cuEventSynchronize(void *e) { (void)e; return OK; }
API CUresult cuEventQuery(void *e) { (void)e; return OK; }
API CUresult cuModuleLoadData(void **m, const void *d) { (void)m; (void)d; return ERR; }
API CUresult cuModuleUnload(void *m) { (void)m; return OK; }
API CUresult cuModuleGetFunction(void **f, void *m, const char *n) { (void)f; (void)m; (void)n; return ERR; }
API CUresult cuLaunchKernel(void) { return ERR; }
