/* The CUDA driver API table: libcuda.so.1 (nvcuda.dll) is opened at run
 * time so that programs using libcudalink start, and report a clear error,
 * on machines without an NVIDIA driver. */
#include "cuda_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
#  define CUDALINK_DEFAULT_CUDA_LIBRARY "nvcuda.dll"
#else
#  include <dlfcn.h>
#  include <pthread.h>
#  define CUDALINK_DEFAULT_CUDA_LIBRARY "libcuda.so.1"
#endif

static cudalink_cuda cuda_table;
static void *cuda_library; /* set once loaded, for cudalink_cuda_symbol() */
static cudalink_status load_status = CUDALINK_ERR_NO_DRIVER;
static char load_why[256];
static const char *library_override;

void
cudalink_cuda_set_library_name(const char *name)
{
  library_override = name;
}

static void *
open_library(const char *name)
{
#ifdef _WIN32
  return (void *)LoadLibraryA(name);
#else
  return dlopen(name, RTLD_NOW | RTLD_LOCAL);
#endif
}

static void *
find_symbol(void *lib, const char *name)
{
#ifdef _WIN32
  return (void *)GetProcAddress((HMODULE)lib, name);
#else
  return dlsym(lib, name);
#endif
}

/* Exported names: the _v2 entry points are what cuda.h's macros select. */
#define CUDA_SYMBOLS(X)                                      \
  X(Init, "cuInit")                                          \
  X(DriverGetVersion, "cuDriverGetVersion")                  \
  X(GetErrorName, "cuGetErrorName")                          \
  X(GetErrorString, "cuGetErrorString")                      \
  X(DeviceGet, "cuDeviceGet")                                \
  X(DeviceGetCount, "cuDeviceGetCount")                      \
  X(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")      \
  X(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2") \
  X(CtxPushCurrent, "cuCtxPushCurrent_v2")                   \
  X(CtxPopCurrent, "cuCtxPopCurrent_v2")                     \
  X(CtxGetDevice, "cuCtxGetDevice")                          \
  X(CtxSynchronize, "cuCtxSynchronize")                      \
  X(MemAlloc, "cuMemAlloc_v2")                               \
  X(MemFree, "cuMemFree_v2")                                 \
  X(MemGetInfo, "cuMemGetInfo_v2")                           \
  X(MemGetAddressRange, "cuMemGetAddressRange_v2")           \
  X(Memcpy2DAsync, "cuMemcpy2DAsync_v2")                     \
  X(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")                 \
  X(MemcpyHtoD, "cuMemcpyHtoD_v2")                           \
  X(MemcpyDtoH, "cuMemcpyDtoH_v2")                           \
  X(MemsetD8Async, "cuMemsetD8Async")                        \
  X(StreamCreate, "cuStreamCreate")                          \
  X(StreamDestroy, "cuStreamDestroy_v2")                     \
  X(StreamSynchronize, "cuStreamSynchronize")                \
  X(StreamWaitEvent, "cuStreamWaitEvent")                    \
  X(EventCreate, "cuEventCreate")                            \
  X(EventDestroy, "cuEventDestroy_v2")                       \
  X(EventRecord, "cuEventRecord")                            \
  X(EventSynchronize, "cuEventSynchronize")                  \
  X(EventQuery, "cuEventQuery")                              \
  X(IpcGetMemHandle, "cuIpcGetMemHandle")                    \
  X(IpcOpenMemHandle, "cuIpcOpenMemHandle_v2")               \
  X(IpcCloseMemHandle, "cuIpcCloseMemHandle")                \
  X(IpcGetEventHandle, "cuIpcGetEventHandle")                \
  X(IpcOpenEventHandle, "cuIpcOpenEventHandle")              \
  X(ModuleLoadData, "cuModuleLoadData")                      \
  X(ModuleUnload, "cuModuleUnload")                          \
  X(ModuleGetFunction, "cuModuleGetFunction")                \
  X(LaunchKernel, "cuLaunchKernel")

/* CUDA graphs (CUDA 11.4 and later drivers): the producer's one-launch
 * publish. Loaded all or none. */
#define CUDA_OPTIONAL_SYMBOLS(X)                            \
  X(GraphCreate, "cuGraphCreate")                           \
  X(GraphDestroy, "cuGraphDestroy")                         \
  X(GraphAddMemcpyNode, "cuGraphAddMemcpyNode")             \
  X(GraphAddEventRecordNode, "cuGraphAddEventRecordNode")   \
  X(GraphInstantiate, "cuGraphInstantiateWithFlags")        \
  X(GraphLaunch, "cuGraphLaunch")                           \
  X(GraphExecDestroy, "cuGraphExecDestroy")

static void
load_once(void)
{
  const char *name = getenv("CUDALINK_CUDA_LIBRARY");
  void *lib;
  CUresult res;

  if (!name || !*name)
    name = library_override ? library_override : CUDALINK_DEFAULT_CUDA_LIBRARY;

  lib = open_library(name);
  if (!lib) {
#ifdef _WIN32
    snprintf(load_why, sizeof load_why, "could not load %s (error %lu)", name,
             (unsigned long)GetLastError());
#else
    const char *err = dlerror();
    snprintf(load_why, sizeof load_why, "could not load %s: %s", name, err ? err : "not found");
#endif
    load_status = CUDALINK_ERR_NO_DRIVER;
    return;
  }

#define LOAD_SYMBOL_(field, sym)                                                        \
  {                                                                                     \
    void *p_ = find_symbol(lib, sym);                                                   \
    if (!p_) {                                                                          \
      snprintf(load_why, sizeof load_why, "%s has no %s (driver too old?)", name, sym); \
      load_status = CUDALINK_ERR_DRIVER_SYMBOL;                                         \
      return;                                                                           \
    }                                                                                   \
    memcpy(&cuda_table.field, &p_, sizeof p_);                                          \
  }
  CUDA_SYMBOLS(LOAD_SYMBOL_)
#undef LOAD_SYMBOL_

  {
    int all = 1;
#define LOAD_OPTIONAL_(field, sym)                      \
  {                                                     \
    void *p_ = find_symbol(lib, sym);                   \
    all = all && p_;                                    \
    memcpy(&cuda_table.field, &p_, sizeof p_);          \
  }
    CUDA_OPTIONAL_SYMBOLS(LOAD_OPTIONAL_)
#undef LOAD_OPTIONAL_
#define CLEAR_OPTIONAL_(field, sym) cuda_table.field = NULL;
    if (!all) {
      CUDA_OPTIONAL_SYMBOLS(CLEAR_OPTIONAL_)
    }
#undef CLEAR_OPTIONAL_
  }

  res = cuda_table.Init(0);
  if (res != CUDA_SUCCESS) {
    const char *ename = NULL;
    if (cuda_table.GetErrorName(res, &ename) != CUDA_SUCCESS)
      ename = NULL;
    snprintf(load_why, sizeof load_why, "cuInit failed: %s (%d)%s", ename ? ename : "?", (int)res,
             res == CUDA_ERROR_NO_DEVICE ? ": no CUDA-capable device" : "");
    load_status = res == CUDA_ERROR_NO_DEVICE ? CUDALINK_ERR_NO_DEVICE : CUDALINK_ERR_CUDA;
    return;
  }
  load_status = CUDALINK_OK;
  cuda_library = lib;
  snprintf(load_why, sizeof load_why, "%s loaded", name);
  /* The library stays loaded for the process's life: function pointers
   * into it are handed out. */
}

#ifdef _WIN32
static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK
load_once_win(PINIT_ONCE o, PVOID p, PVOID *c)
{
  (void)o;
  (void)p;
  (void)c;
  load_once();
  return TRUE;
}
#else
static pthread_once_t once = PTHREAD_ONCE_INIT;
#endif

static void
copy_why(char *why, size_t why_len, const char *text)
{
  if (why && why_len) {
    snprintf(why, why_len, "%s", text);
  }
}

const cudalink_cuda *
cudalink_cuda_get(cudalink_status *status, char *why, size_t why_len)
{
#ifdef _WIN32
  int ran = InitOnceExecuteOnce(&once, load_once_win, NULL, NULL) != 0;
#else
  int ran = pthread_once(&once, load_once) == 0;
#endif
  if (!ran) {
    /* load_status stays ERR_NO_DRIVER: say why */
    if (status)
      *status = CUDALINK_ERR_NO_DRIVER;
    copy_why(why, why_len, "could not run the CUDA driver loader (once-initialisation failed)");
    return NULL;
  }
  if (status)
    *status = load_status;
  if (load_status != CUDALINK_OK) {
    copy_why(why, why_len, load_why);
    return NULL;
  }
  return &cuda_table;
}

cudalink_status
cudalink_cuda_load(char *why, size_t why_len)
{
  cudalink_status st;
  cudalink_cuda_get(&st, why, why_len);
  if (st == CUDALINK_OK)
    copy_why(why, why_len, load_why);
  return st;
}

cudalink_cuda_fn
cudalink_cuda_symbol(const char *name)
{
  cudalink_cuda_fn fn = NULL;
  void *p;

  /* cuda_library is written before the once-call returns, read after */
  if (!name || !cudalink_cuda_get(NULL, NULL, 0))
    return NULL;
  p = find_symbol(cuda_library, name);
  memcpy(&fn, &p, sizeof fn);
  return fn;
}

int
cudalink_cuda_mps_enabled(const cudalink_cuda *cu, CUdevice device)
{
  typedef CUresult(CUDAAPI * attribute_fn)(int *, CUdevice_attribute, CUdevice);
  cudalink_cuda_fn fn = cu ? cudalink_cuda_symbol("cuDeviceGetAttribute") : NULL;
  attribute_fn get;
  int v = 0;

  if (!fn)
    return -1;
  memcpy(&get, &fn, sizeof get);
  if (get(&v, CU_DEVICE_ATTRIBUTE_MPS_ENABLED, device) != CUDA_SUCCESS)
    return -1;
  return v != 0;
}

cudalink_status
cudalink_cuda_check(const cudalink_cuda *cu, CUresult res, const char *call, char *why,
                    size_t why_len)
{
  const char *ename = NULL, *etext = NULL;

  if (res == CUDA_SUCCESS)
    return CUDALINK_OK;
  if (cu) {
    /* an unknown code leaves them NULL (and says so): handled below */
    if (cu->GetErrorName(res, &ename) != CUDA_SUCCESS)
      ename = NULL;
    if (cu->GetErrorString(res, &etext) != CUDA_SUCCESS)
      etext = NULL;
  }
  if (why && why_len)
    snprintf(why, why_len, "%s: %s (%s)", call, ename ? ename : "CUDA error", etext ? etext : "?");
  switch (res) {
  case CUDA_ERROR_INVALID_DEVICE:
  case CUDA_ERROR_NO_DEVICE:
    return CUDALINK_ERR_NO_DEVICE;
  default:
    return CUDALINK_ERR_CUDA;
  }
}

cudalink_status
cudalink_cuda_context_acquire(const cudalink_cuda *cu, void *given, int device,
                              cudalink_cuda_context *out, char *why, size_t why_len)
{
  CUresult res;
  int count = 0;

  memset(out, 0, sizeof *out);
  if (given) {
    out->ctx = (CUcontext)given;
    /* the device of a caller's context, for messages and peers */
    res = cu->CtxPushCurrent(out->ctx);
    if (res != CUDA_SUCCESS)
      return cudalink_cuda_check(cu, res, "cuCtxPushCurrent", why, why_len);
    res = cu->CtxGetDevice(&out->device);
    if (res != CUDA_SUCCESS) {
      /* the pop's own failure would hide the first one */
      (void)cu->CtxPopCurrent(NULL);
      return cudalink_cuda_check(cu, res, "cuCtxGetDevice", why, why_len);
    }
    res = cu->CtxPopCurrent(NULL);
    return cudalink_cuda_check(cu, res, "cuCtxPopCurrent", why, why_len);
  }
  res = cu->DeviceGetCount(&count);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(cu, res, "cuDeviceGetCount", why, why_len);
  if (device < 0 || device >= count) {
    if (why && why_len)
      snprintf(why, why_len, "CUDA device %d does not exist (%d device%s found)", device, count,
               count == 1 ? "" : "s");
    return CUDALINK_ERR_NO_DEVICE;
  }
  res = cu->DeviceGet(&out->device, device);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(cu, res, "cuDeviceGet", why, why_len);
  res = cu->DevicePrimaryCtxRetain(&out->ctx, out->device);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(cu, res, "cuDevicePrimaryCtxRetain", why, why_len);
  out->retained_primary = 1;
  return CUDALINK_OK;
}

const cudalink_cuda *
cudalink_cuda_up(CUcontext *ctx, char *why, size_t why_len)
{
  cudalink_status st;
  cudalink_cuda_context c;
  CUresult res;
  const cudalink_cuda *cu = cudalink_cuda_get(&st, why, why_len);

  if (!cu || cudalink_cuda_context_acquire(cu, NULL, 0, &c, why, why_len) != CUDALINK_OK)
    return NULL;
  if ((res = cu->CtxPushCurrent(c.ctx)) != CUDA_SUCCESS) {
    cudalink_cuda_check(cu, res, "cuCtxPushCurrent", why, why_len);
    /* why already tells the failure that matters */
    (void)cudalink_cuda_context_release(cu, &c);
    return NULL;
  }
  *ctx = c.ctx;
  return cu;
}

CUresult
cudalink_cuda_context_release(const cudalink_cuda *cu, cudalink_cuda_context *c)
{
  CUresult res = CUDA_SUCCESS;
  if (c->retained_primary)
    res = cu->DevicePrimaryCtxRelease(c->device);
  memset(c, 0, sizeof *c);
  return res;
}

CUresult
cudalink_cuda_copy_2d(const cudalink_cuda *cu, const CUDA_MEMCPY2D *cp, CUstream s)
{
  if (cp->srcMemoryType == CU_MEMORYTYPE_DEVICE && cp->dstMemoryType == CU_MEMORYTYPE_DEVICE &&
      cp->srcPitch == cp->WidthInBytes && cp->dstPitch == cp->WidthInBytes && !cp->srcXInBytes &&
      !cp->srcY && !cp->dstXInBytes && !cp->dstY)
    return cu->MemcpyDtoDAsync(cp->dstDevice, cp->srcDevice, cp->WidthInBytes * cp->Height, s);
  return cu->Memcpy2DAsync(cp, s);
}
