/* cudalink-check: can this machine move cuda-link frames? Loads the NVIDIA
 * CUDA driver the way libcudalink does (libcuda.so.1 at run time, cuInit)
 * and counts the devices.
 *
 *   cudalink-check      prints "cudalink-check: CUDA driver 13.0, 1 device"
 *                       and exits 0, or prints ONE line saying what is
 *                       missing (the library's message, e.g. "NVIDIA CUDA
 *                       driver library not found (libcuda.so.1 / nvcuda.dll):
 *                       ...") and exits 2
 *
 * examples/run-main.sh runs it before anything that needs the GPU:
 * GStreamer's own CUDA elements (cudaupload, ...) do not even register
 * without a driver, so a pipeline would only say "no element cudaupload". */
#include <stdio.h>

#include "cuda_table.h" /* the library's driver table: no libcuda link */
#include "cudalink.h"

int
main(void)
{
  cudalink_status st;
  char why[256] = "";
  const cudalink_cuda *cu = cudalink_cuda_get(&st, why, sizeof why);
  int version = 0, count = 0;

  if (!cu) {
    fprintf(stderr, "cudalink-check: %s: %s\n", cudalink_strerror(st), why);
    return 2;
  }
  cu->DriverGetVersion(&version);
  if (cu->DeviceGetCount(&count) != CUDA_SUCCESS || count < 1) {
    fprintf(stderr, "cudalink-check: the NVIDIA CUDA driver (%d.%d) loads but sees no GPU\n",
            version / 1000, version % 1000 / 10);
    return 2;
  }
  printf("cudalink-check: CUDA driver %d.%d, %d device%s\n", version / 1000,
         version % 1000 / 10, count, count == 1 ? "" : "s");
  return 0;
}
