/* A real cudalink producer in a child process, on the CPU mock driver
 * (mock_cuda.c), for tests that look at segments from outside: the test
 * process itself never loads a driver. The child serves one-letter
 * commands over a pipe and acknowledges each:
 *   'p' publish one frame   'd' destroy the producer (clean shutdown)
 *   'q' quit
 * Header-only: each test includes it once. MOCK_CUDA names the driver. */
#ifndef CUDALINK_MOCK_PRODUCER_H
#define CUDALINK_MOCK_PRODUCER_H

/* each test uses some of these */
#define MOCK_PRODUCER_FN static __attribute__((unused))

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_test.h"
#include "cudalink.h"

#ifndef MOCK_CUDA
#  error "MOCK_CUDA must name the mock driver"
#endif

typedef struct mock_producer {
  pid_t pid;
  int cmd; /* to the child */
  int ack; /* from the child */
} mock_producer;

MOCK_PRODUCER_FN int
mock_producer_serve(const char *name, uint32_t slots, const cudalink_format *fmt, int cmd, int ack)
{
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  char op, reply;

  cudalink_producer_config_init(&cfg);
  cfg.name = name;
  cfg.num_slots = slots;
  cfg.grace_ms = 1;
  reply = cudalink_producer_create(&cfg, fmt, &p) == CUDALINK_OK ? 'k' : 'f';
  if (write(ack, &reply, 1) != 1 || reply != 'k')
    return 1;
  while (read(cmd, &op, 1) == 1 && op != 'q') {
    int ok = 1;
    if (op == 'p') {
      uint64_t dst;
      size_t pitch;
      /* the pixels do not matter here: publish whatever the slot holds */
      ok = p && cudalink_producer_begin(p, &dst, &pitch) == CUDALINK_OK &&
           cudalink_producer_commit(p, NULL, 1) == CUDALINK_OK;
    } else if (op == 'd') {
      cudalink_producer_destroy(p);
      p = NULL;
    } else {
      ok = 0;
    }
    reply = ok ? 'k' : 'f';
    if (write(ack, &reply, 1) != 1)
      break;
  }
  cudalink_producer_destroy(p);
  return 0;
}

typedef struct mock_producer_args {
  const char *name;
  uint32_t slots;
  const cudalink_format *fmt;
} mock_producer_args;

/* fork_peer's child: the mock driver, then mock_producer_serve */
MOCK_PRODUCER_FN int
mock_producer_child(const void *arg, int cmd, int ack)
{
  const mock_producer_args *a = arg;
  setenv("CUDALINK_CUDA_LIBRARY", MOCK_CUDA, 1);
  return mock_producer_serve(a->name, a->slots, a->fmt, cmd, ack);
}

/* Starts the child; 0 when its producer could not be created. */
MOCK_PRODUCER_FN int
mock_producer_start(mock_producer *mp, const char *name, uint32_t slots,
                    const cudalink_format *fmt)
{
  mock_producer_args a = {name, slots, fmt};
  char reply = 0;

  mp->pid = fork_peer(mock_producer_child, &a, &mp->cmd, &mp->ack);
  return mp->pid > 0 && read(mp->ack, &reply, 1) == 1 && reply == 'k';
}

/* One command, n times; 1 when every one was acknowledged as done. */
MOCK_PRODUCER_FN int
mock_producer_do(mock_producer *mp, char op, int n)
{
  char reply;
  for (int i = 0; i < n; i++)
    if (write(mp->cmd, &op, 1) != 1 || read(mp->ack, &reply, 1) != 1 || reply != 'k')
      return 0;
  return 1;
}

/* Quits the child (its producer shuts down cleanly); its exit status. */
MOCK_PRODUCER_FN int
mock_producer_finish(mock_producer *mp)
{
  int status;
  char op = 'q';
  if (mp->pid <= 0)
    return 99;
  if (write(mp->cmd, &op, 1) != 1) {
    /* already gone: reaped below */
  }
  close(mp->cmd);
  close(mp->ack);
  status = wait_child(mp->pid);
  if (status != 99) /* reaped */
    mp->pid = -1;
  return status;
}

/* SIGKILLs the child: its segment stays, without a shutdown flag, and its
 * lock goes. The mock driver's "device memory" it leaves is removed. */
MOCK_PRODUCER_FN void
mock_producer_kill(mock_producer *mp)
{
  int status;
  if (mp->pid <= 0)
    return;
  kill(mp->pid, SIGKILL);
  waitpid(mp->pid, &status, 0);
  close(mp->cmd);
  close(mp->ack);
  for (unsigned i = 0; i < 64; i++) {
    char shm[64];
    snprintf(shm, sizeof shm, "/mockcuda.%d.%u", (int)mp->pid, i);
    shm_unlink(shm);
  }
  mp->pid = -1;
}

#endif
