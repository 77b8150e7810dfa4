/* Stand-ins for libcuda.so.1 so that the loader's failure paths can be
 * tested on machines without a driver. FAKE_PARTIAL builds one that lacks
 * most of the API (an old driver); the full one has every symbol the
 * loader needs, but cuInit reports that there is no device. */
/* No cuda.h here: the real prototypes would clash with the catch-all stubs.
 * Only the ABI matters to a dlsym() caller. */
typedef int CUresult;
#define CUDA_SUCCESS 0
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_NOT_SUPPORTED 801

#define FAKE_EXPORT __attribute__((visibility("default")))

CUresult FAKE_EXPORT cuInit(unsigned int flags);
CUresult FAKE_EXPORT cuInit(unsigned int flags)
{
  (void)flags;
  return CUDA_ERROR_NO_DEVICE;
}

#ifndef FAKE_PARTIAL
CUresult FAKE_EXPORT cuGetErrorName(CUresult error, const char **name);
CUresult FAKE_EXPORT cuGetErrorName(CUresult error, const char **name)
{
  *name = error == CUDA_ERROR_NO_DEVICE ? "CUDA_ERROR_NO_DEVICE" : "CUDA_ERROR_FAKE";
  return CUDA_SUCCESS;
}
CUresult FAKE_EXPORT cuGetErrorString(CUresult error, const char **text);
CUresult FAKE_EXPORT cuGetErrorString(CUresult error, const char **text)
{
  (void)error;
  *text = "fake driver";
  return CUDA_SUCCESS;
}
/* Every other entry point: present, never reached in the tests. */
#define FAKE_FN(sym)                       \
  CUresult FAKE_EXPORT sym(void);          \
  CUresult FAKE_EXPORT sym(void)           \
  {                                        \
    return CUDA_ERROR_NOT_SUPPORTED;       \
  }
FAKE_FN(cuDriverGetVersion) FAKE_FN(cuDeviceGet) FAKE_FN(cuDeviceGetCount)
FAKE_FN(cuDevicePrimaryCtxRetain) FAKE_FN(cuDevicePrimaryCtxRelease_v2)
FAKE_FN(cuCtxPushCurrent_v2) FAKE_FN(cuCtxPopCurrent_v2) FAKE_FN(cuCtxGetDevice)
FAKE_FN(cuCtxSynchronize) FAKE_FN(cuMemAlloc_v2) FAKE_FN(cuMemFree_v2) FAKE_FN(cuMemGetInfo_v2)
FAKE_FN(cuMemGetAddressRange_v2)
FAKE_FN(cuMemcpy2DAsync_v2) FAKE_FN(cuMemcpyDtoDAsync_v2) FAKE_FN(cuMemcpyHtoD_v2) FAKE_FN(cuMemcpyDtoH_v2)
FAKE_FN(cuMemsetD8Async) FAKE_FN(cuStreamCreate) FAKE_FN(cuStreamDestroy_v2)
FAKE_FN(cuStreamSynchronize) FAKE_FN(cuStreamWaitEvent) FAKE_FN(cuEventCreate)
FAKE_FN(cuEventDestroy_v2) FAKE_FN(cuEventRecord) FAKE_FN(cuEventSynchronize)
FAKE_FN(cuEventQuery) FAKE_FN(cuIpcGetMemHandle) FAKE_FN(cuIpcOpenMemHandle_v2)
FAKE_FN(cuIpcCloseMemHandle) FAKE_FN(cuIpcGetEventHandle) FAKE_FN(cuIpcOpenEventHandle)
FAKE_FN(cuModuleLoadData) FAKE_FN(cuModuleUnload) FAKE_FN(cuModuleGetFunction)
FAKE_FN(cuLaunchKernel)
#endif
