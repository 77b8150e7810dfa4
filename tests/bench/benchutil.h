/* Shared by the benchmark programs that time samples themselves. */
#ifndef CUDALINK_BENCHUTIL_H
#define CUDALINK_BENCHUTIL_H

#include <stdlib.h>

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts v and gives its p50 (v[n/2]) and p99 (v[n*99/100]); 0 for n = 0. */
static void
pct(double *v, int n, double *p50, double *p99)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  *p50 = n ? v[n / 2] : 0;
  *p99 = n ? v[(n * 99) / 100] : 0;
}

#endif
