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

#include <cudalink/cudalink.h>

/* the two driver entry points used, by their ABI (no cuda.h needed) */
typedef int (*get_int_fn)(int *);

int
main(void)
{
  char why[256] = "";
  cudalink_status st = cudalink_cuda_load(why, sizeof why);
  get_int_fn driver_version, device_count;
  int version = 0, count = 0;

  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-check: %s: %s\n", cudalink_strerror(st), why);
    return 2;
  }
  driver_version = (get_int_fn)cudalink_cuda_symbol("cuDriverGetVersion");
  device_count = (get_int_fn)cudalink_cuda_symbol("cuDeviceGetCount");
  if (driver_version)
    driver_version(&version);
  if (!device_count || device_count(&count) != 0 || count < 1) {
    fprintf(stderr, "cudalink-check: the NVIDIA CUDA driver (%d.%d) loads but sees no GPU\n",
            version / 1000, version % 1000 / 10);
    return 2;
  }
  printf("cudalink-check: CUDA driver %d.%d, %d device%s\n", version / 1000,
         version % 1000 / 10, count, count == 1 ? "" : "s");
  return 0;
}
