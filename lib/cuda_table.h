/* The CUDA driver API, loaded at run time (libcuda.so.1 / nvcuda.dll).
 * Internal to libcudalink. Types come from the toolkit's cuda.h; no symbol
 * of it is linked. */
#ifndef CUDALINK_CUDA_TABLE_H
#define CUDALINK_CUDA_TABLE_H

#include <cuda.h>

#include "cudalink.h"

/* clang-format reads CUresult (CUDAAPI *f) as a call CUresult(...): it
 * would glue the two, so this table keeps its hand layout. */
typedef struct cudalink_cuda {
  /* clang-format off */
  CUresult (CUDAAPI *Init)(unsigned int);
  CUresult (CUDAAPI *DriverGetVersion)(int *);
  CUresult (CUDAAPI *GetErrorName)(CUresult, const char **);
  CUresult (CUDAAPI *GetErrorString)(CUresult, const char **);
  CUresult (CUDAAPI *DeviceGet)(CUdevice *, int);
  CUresult (CUDAAPI *DeviceGetCount)(int *);
  CUresult (CUDAAPI *DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (CUDAAPI *DevicePrimaryCtxRelease)(CUdevice);
  CUresult (CUDAAPI *CtxPushCurrent)(CUcontext);
  CUresult (CUDAAPI *CtxPopCurrent)(CUcontext *);
  CUresult (CUDAAPI *CtxGetDevice)(CUdevice *);
  CUresult (CUDAAPI *CtxSynchronize)(void);
  CUresult (CUDAAPI *MemAlloc)(CUdeviceptr *, size_t);
  CUresult (CUDAAPI *MemFree)(CUdeviceptr);
  CUresult (CUDAAPI *MemGetInfo)(size_t *, size_t *);
  /* base and size of the allocation holding a pointer: what an imported
   * slot really holds, whatever the producer's header claims */
  CUresult (CUDAAPI *MemGetAddressRange)(CUdeviceptr *, size_t *, CUdeviceptr);
  CUresult (CUDAAPI *Memcpy2DAsync)(const CUDA_MEMCPY2D *, CUstream);
  CUresult (CUDAAPI *MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (CUDAAPI *MemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (CUDAAPI *MemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (CUDAAPI *MemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (CUDAAPI *StreamCreate)(CUstream *, unsigned int);
  CUresult (CUDAAPI *StreamDestroy)(CUstream);
  CUresult (CUDAAPI *StreamSynchronize)(CUstream);
  CUresult (CUDAAPI *StreamWaitEvent)(CUstream, CUevent, unsigned int);
  CUresult (CUDAAPI *EventCreate)(CUevent *, unsigned int);
  CUresult (CUDAAPI *EventDestroy)(CUevent);
  CUresult (CUDAAPI *EventRecord)(CUevent, CUstream);
  CUresult (CUDAAPI *EventSynchronize)(CUevent);
  CUresult (CUDAAPI *EventQuery)(CUevent);
  CUresult (CUDAAPI *IpcGetMemHandle)(CUipcMemHandle *, CUdeviceptr);
  CUresult (CUDAAPI *IpcOpenMemHandle)(CUdeviceptr *, CUipcMemHandle, unsigned int);
  CUresult (CUDAAPI *IpcCloseMemHandle)(CUdeviceptr);
  CUresult (CUDAAPI *IpcGetEventHandle)(CUipcEventHandle *, CUevent);
  CUresult (CUDAAPI *IpcOpenEventHandle)(CUevent *, CUipcEventHandle);
  CUresult (CUDAAPI *ModuleLoadData)(CUmodule *, const void *);
  CUresult (CUDAAPI *ModuleUnload)(CUmodule);
  CUresult (CUDAAPI *ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (CUDAAPI *LaunchKernel)(CUfunction, unsigned int, unsigned int, unsigned int,
                                   unsigned int, unsigned int, unsigned int, unsigned int,
                                   CUstream, void **, void **);
  /* Optional: NULL, all of them, when the driver lacks one (the producer
   * then publishes with a copy and an event record, as before). */
  CUresult (CUDAAPI *GraphCreate)(CUgraph *, unsigned int);
  CUresult (CUDAAPI *GraphDestroy)(CUgraph);
  CUresult (CUDAAPI *GraphAddMemcpyNode)(CUgraphNode *, CUgraph, const CUgraphNode *, size_t,
                                         const CUDA_MEMCPY3D *, CUcontext);
  CUresult (CUDAAPI *GraphAddEventRecordNode)(CUgraphNode *, CUgraph, const CUgraphNode *,
                                              size_t, CUevent);
  CUresult (CUDAAPI *GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
  CUresult (CUDAAPI *GraphLaunch)(CUgraphExec, CUstream);
  CUresult (CUDAAPI *GraphExecDestroy)(CUgraphExec);
  /* clang-format on */
} cudalink_cuda;

/** The loaded table, or NULL with *status set (ERR_NO_DRIVER,
 * ERR_DRIVER_SYMBOL, ERR_CUDA when cuInit fails). Loads once per process;
 * thread safe. why (may be NULL) receives the detail. */
const cudalink_cuda *cudalink_cuda_get(cudalink_status *status, char *why, size_t why_len);

/** Maps a CUresult to a status (ERR_CUDA, ERR_NO_DEVICE for
 * CUDA_ERROR_INVALID_DEVICE / NO_DEVICE) and writes "cuXxx: NAME (text)"
 * into why. */
cudalink_status cudalink_cuda_check(const cudalink_cuda *cu, CUresult res, const char *call,
                                    char *why, size_t why_len);

/** An asynchronous device-to-device 2-D copy; rows that are packed on both
 * sides go as one linear copy, which the H100 runs faster (bench_lib:
 * 4K float32 550 vs 610 us). */
CUresult cudalink_cuda_copy_2d(const cudalink_cuda *cu, const CUDA_MEMCPY2D *cp, CUstream s);

/** A context to work in: the caller's, or the device's primary context
 * retained for us. */
typedef struct cudalink_cuda_context {
  CUcontext ctx;
  CUdevice device;
  int retained_primary;
} cudalink_cuda_context;

/** given non-NULL: use it (the device is looked up); else retain device's
 * primary context (ERR_NO_DEVICE for a device that does not exist). */
cudalink_status cudalink_cuda_context_acquire(const cudalink_cuda *cu, void *given, int device,
                                              cudalink_cuda_context *out, char *why,
                                              size_t why_len);
/** Releases what acquire() retained (nothing for a caller's context) and
 * clears c; what cuDevicePrimaryCtxRelease said, for the caller to log. */
CUresult cudalink_cuda_context_release(const cudalink_cuda *cu, cudalink_cuda_context *c);

/** Whether contexts on device are MPS clients (cuDeviceGetAttribute
 * CU_DEVICE_ATTRIBUTE_MPS_ENABLED): 1 or 0, -1 when the driver cannot say
 * (too old for the attribute). */
int cudalink_cuda_mps_enabled(const cudalink_cuda *cu, CUdevice device);

/** For programs that drive the GPU themselves (tests, benchmarks): loads
 * the driver, retains device 0's primary context and makes it current on
 * the calling thread. NULL with why filled when any step fails. */
const cudalink_cuda *cudalink_cuda_up(CUcontext *ctx, char *why, size_t why_len);

/** Test hook: the library file name to dlopen instead of the default
 * (environment CUDALINK_CUDA_LIBRARY overrides too). Must be called before
 * the first load. */
void cudalink_cuda_set_library_name(const char *name);

#endif
