/* CK(call): a CUDA driver call that a GPU test or benchmark needs to
 * succeed, made through the cudalink_cuda table named `cu` in scope. A
 * failure prints the call, where it is and the driver's error name, and
 * ends the process at once with status 70: a test then fails instead of
 * measuring or comparing what a failed call left behind. _exit() because
 * several of these programs fork (a child must not flush its parent's
 * buffered output a second time). */
#ifndef CUDALINK_CUDA_CHECK_H
#define CUDALINK_CUDA_CHECK_H

#include <stdio.h>
#include <unistd.h>

#include "cuda_table.h"

#define CUDA_CHECK_EXIT 70

static inline void
cuda_check_failed(const cudalink_cuda *api, CUresult res, const char *call, const char *file,
                  int line)
{
  const char *name = "?";
  if (api && api->GetErrorName)
    api->GetErrorName(res, &name);
  fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, name);
  fflush(stderr);
  _exit(CUDA_CHECK_EXIT);
}

#define CK(call)                                                                        \
  do {                                                                                  \
    CUresult ck_res_ = (call);                                                          \
    if (ck_res_ != CUDA_SUCCESS)                                                        \
      cuda_check_failed(cu, ck_res_, #call, __FILE__, __LINE__);                        \
  } while (0)

#endif
