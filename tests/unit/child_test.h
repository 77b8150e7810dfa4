/* Child processes for the tests: tests whose body runs in a child (the
 * consumer side of the producer/consumer tests on the mock driver: each
 * process loads the driver itself after fork), peers commanded over pipes,
 * their exit codes. POSIX; CHILD_TEST needs testutil.h. */
#ifndef CUDALINK_CHILD_TEST_H
#define CUDALINK_CHILD_TEST_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Waits for the child pid: its exit code (98: it did not end normally,
 * 99: it could not be waited for). */
static int __attribute__((unused))
wait_child(pid_t pid)
{
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

/* Runs fn in a child; its exit code is its failure count (98, 99: it did
 * not end normally, or could not be started). */
static int __attribute__((unused))
in_child(int (*fn)(void))
{
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0)
    _exit(fn());
  return wait_child(pid);
}

/* Forks a peer process that exits with fn(arg, cmd, ack): it reads its
 * commands from cmd and answers on ack, the parent writes them to *cmd_w
 * and reads the answers from *ack_r. Its pid, or -1. */
static pid_t __attribute__((unused))
fork_peer(int (*fn)(const void *arg, int cmd, int ack), const void *arg, int *cmd_w, int *ack_r)
{
  int cmd[2], ack[2];
  pid_t pid;
  if (pipe(cmd) != 0 || pipe(ack) != 0)
    return -1;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(cmd[1]);
    close(ack[0]);
    _exit(fn(arg, cmd[0], ack[1]));
  }
  close(cmd[0]);
  close(ack[1]);
  *cmd_w = cmd[1];
  *ack_r = ack[0];
  return pid;
}

/* A test named name whose body is fn, run in a child. */
#define CHILD_TEST(name, fn)       \
  static void name(void)           \
  {                                \
    CHECK_EQ_INT(in_child(fn), 0); \
  }

#endif
