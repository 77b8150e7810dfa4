/* A FAKE libcuda.so.1 for tests/ci/fakegpu (read run.sh): every symbol
 * libcudalink's driver table resolves, none doing anything. It lets
 * cudalink_cuda_load() and cudalink-check pass on a machine without a GPU,
 * so that tests/gpu/gpu_recipes and run-main.sh get past their driver check
 * and run against the fake elements. Nothing may ever use it to move
 * frames: a device pointer from here is meaningless. GStreamer's nvcodec
 * resolves symbols this stub lacks, so it registers nothing with it. */
#include <stddef.h>

int cuInit(unsigned int flags);
int cuDriverGetVersion(int *v);
int cuDeviceGetCount(int *n);
int cuGetErrorName(int res, const char **s);
int cuGetErrorString(int res, const char **s);

int cuInit(unsigned int flags) { (void)flags; return 0; }
int cuDriverGetVersion(int *v) { *v = 12080; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuGetErrorName(int res, const char **s) { (void)res; *s = "FAKE_CUDA"; return 0; }
int cuGetErrorString(int res, const char **s) { (void)res; *s = "fake libcuda (tests/ci/fakegpu)"; return 0; }

/* the rest: succeed, do nothing (arguments ignored) */
int cuDeviceGet(void); int cuDeviceGet(void) { return 0; }
int cuDevicePrimaryCtxRetain(void); int cuDevicePrimaryCtxRetain(void) { return 0; }
int cuDevicePrimaryCtxRelease_v2(void); int cuDevicePrimaryCtxRelease_v2(void) { return 0; }
int cuCtxPushCurrent_v2(void); int cuCtxPushCurrent_v2(void) { return 0; }
int cuCtxPopCurrent_v2(void); int cuCtxPopCurrent_v2(void) { return 0; }
int cuCtxGetDevice(void); int cuCtxGetDevice(void) { return 0; }
int cuCtxSynchronize(void); int cuCtxSynchronize(void) { return 0; }
int cuMemAlloc_v2(void); int cuMemAlloc_v2(void) { return 0; }
int cuMemFree_v2(void); int cuMemFree_v2(void) { return 0; }
int cuMemGetInfo_v2(void); int cuMemGetInfo_v2(void) { return 0; }
int cuMemGetAddressRange_v2(void); int cuMemGetAddressRange_v2(void) { return 0; }
int cuMemcpy2DAsync_v2(void); int cuMemcpy2DAsync_v2(void) { return 0; }
int cuMemcpyDtoDAsync_v2(void); int cuMemcpyDtoDAsync_v2(void) { return 0; }
int cuMemcpyHtoD_v2(void); int cuMemcpyHtoD_v2(void) { return 0; }
int cuMemcpyDtoH_v2(void); int cuMemcpyDtoH_v2(void) { return 0; }
int cuMemsetD8Async(void); int cuMemsetD8Async(void) { return 0; }
int cuStreamCreate(void); int cuStreamCreate(void) { return 0; }
int cuStreamDestroy_v2(void); int cuStreamDestroy_v2(void) { return 0; }
int cuStreamSynchronize(void); int cuStreamSynchronize(void) { return 0; }
int cuStreamWaitEvent(void); int cuStreamWaitEvent(void) { return 0; }
int cuEventCreate(void); int cuEventCreate(void) { return 0; }
int cuEventDestroy_v2(void); int cuEventDestroy_v2(void) { return 0; }
int cuEventRecord(void); int cuEventRecord(void) { return 0; }
int cuEventSynchronize(void); int cuEventSynchronize(void) { return 0; }
int cuEventQuery(void); int cuEventQuery(void) { return 0; }
int cuIpcGetMemHandle(void); int cuIpcGetMemHandle(void) { return 0; }
int cuIpcOpenMemHandle_v2(void); int cuIpcOpenMemHandle_v2(void) { return 0; }
int cuIpcCloseMemHandle(void); int cuIpcCloseMemHandle(void) { return 0; }
int cuIpcGetEventHandle(void); int cuIpcGetEventHandle(void) { return 0; }
int cuIpcOpenEventHandle(void); int cuIpcOpenEventHandle(void) { return 0; }
int cuModuleLoadData(void); int cuModuleLoadData(void) { return 0; }
int cuModuleUnload(void); int cuModuleUnload(void) { return 0; }
int cuModuleGetFunction(void); int cuModuleGetFunction(void) { return 0; }
int cuLaunchKernel(void); int cuLaunchKernel(void) { return 0; }
