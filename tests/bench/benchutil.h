/* Shared by the benchmark programs that time samples themselves. */
#ifndef CUDALINK_BENCHUTIL_H
#define CUDALINK_BENCHUTIL_H

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cuda_table.h"

static inline int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* CPU time of the calling thread, us. */
static inline double
thread_cpu_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* CPU time of this whole process (user + system, every thread), us. */
static inline double
cpu_now_us(void)
{
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

/* Sorts v and gives its p50 (v[n/2]) and p99 (v[n*99/100]); 0 for n = 0. */
static inline void
pct(double *v, int n, double *p50, double *p99)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  *p50 = n ? v[n / 2] : 0;
  *p99 = n ? v[(n * 99) / 100] : 0;
}

/* A device-to-device copy of height rows of row bytes from a slot (src,
 * pitch) into a packed buffer dst, as cudalinksrc makes it. */
static inline void
slot_copy_params(CUDA_MEMCPY2D *cp, uint64_t src, size_t pitch, CUdeviceptr dst, uint32_t row,
                 uint32_t height)
{
  memset(cp, 0, sizeof *cp);
  cp->srcMemoryType = cp->dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp->srcDevice = (CUdeviceptr)src;
  cp->srcPitch = pitch;
  cp->dstDevice = dst;
  cp->dstPitch = row;
  cp->WidthInBytes = row;
  cp->Height = height;
}

#endif
