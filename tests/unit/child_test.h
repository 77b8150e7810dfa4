/* Tests whose body runs in a child process (the consumer side of the
 * producer/consumer tests on the mock driver: each process loads the driver
 * itself after fork). POSIX; include after testutil.h. */
#ifndef CUDALINK_CHILD_TEST_H
#define CUDALINK_CHILD_TEST_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child; its exit code is its failure count (98, 99: it did
 * not end normally, or could not be started). */
static int __attribute__((unused))
in_child(int (*fn)(void))
{
  int status = 0;
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0)
    _exit(fn());
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

/* A test named name whose body is fn, run in a child. */
#define CHILD_TEST(name, fn)       \
  static void name(void)           \
  {                                \
    CHECK_EQ_INT(in_child(fn), 0); \
  }

#endif
