/* The import back-channel on Windows (lib/holds.c's Windows part), run
 * under Wine by .ci/windows-check.sh: the table in a paging-file mapping,
 * readers' entries owned by live processes (owner word checked with
 * OpenProcess), a reader killed with TerminateProcess while it holds, a
 * table whose producer is gone refused.
 *
 *   holds_win NAME              the checks; prints "holds_win: passed"
 *   holds_win hold NAME EVENT   (child) claims an entry, holds key 22,
 *                               signals EVENT, then waits to be killed */
#include <stdio.h>
#include <string.h>
#include <windows.h>

#include "holds.h"

static int failures;

static void
check(int ok, const char *what)
{
  printf("holds_win: %s: %s\n", ok ? "ok" : "FAIL", what);
  if (!ok)
    failures++;
}

static int
child_hold(const char *name, const char *event)
{
  cudalink_holds *r = NULL;
  char why[200] = "";
  HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, event);
  if (!ev || cudalink_holds_open(name, 0, &r, why, sizeof why) != CUDALINK_OK ||
      cudalink_holds_take(r, 22) < 0) {
    printf("child: %s\n", why);
    return 2;
  }
  SetEvent(ev);
  Sleep(INFINITE);
  return 0;
}

/* A child process holding key 22; NULL when it did not get there. */
static HANDLE
start_holder(const char *self, const char *name)
{
  char event[96], cmd[600];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  HANDLE ev;

  snprintf(event, sizeof event, "holds_win_ready_%lu", (unsigned long)GetCurrentProcessId());
  ev = CreateEventA(NULL, TRUE, FALSE, event);
  snprintf(cmd, sizeof cmd, "\"%s\" hold %s %s", self, name, event);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!ev || !CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return NULL;
  CloseHandle(pi.hThread);
  if (WaitForSingleObject(ev, 10000) != WAIT_OBJECT_0) {
    TerminateProcess(pi.hProcess, 1);
    CloseHandle(pi.hProcess);
    pi.hProcess = NULL;
  }
  CloseHandle(ev);
  return pi.hProcess;
}

int
main(int argc, char **argv)
{
  cudalink_holds *prod = NULL, *r1 = NULL, *r2 = NULL, *left = NULL;
  cudalink_holds_census c;
  uint64_t keys[3] = { 21, 22, 23 };
  char self[MAX_PATH], why[200] = "";
  const char *name;
  HANDLE holder;
  uint32_t flags = 0;
  int rec;

  if (argc == 4 && strcmp(argv[1], "hold") == 0)
    return child_hold(argv[2], argv[3]);
  if (argc != 2) {
    fprintf(stderr, "usage: holds_win NAME\n");
    return 64;
  }
  name = argv[1];
  GetModuleFileNameA(NULL, self, sizeof self);

  check(cudalink_holds_open(name, 0, &r1, why, sizeof why) == CUDALINK_ERR_UNSUPPORTED,
        "no table: the producer offers no import");
  check(cudalink_holds_create(name, CUDALINK_HOLDS_FLAG_MPS, &prod, why, sizeof why) ==
            CUDALINK_OK,
        "the producer makes its table");
  if (!prod)
    return 1;
  cudalink_holds_publish_ring(prod, 7, 3, keys);
  check(cudalink_holds_open(name, 0, &r1, why, sizeof why) == CUDALINK_OK, "reader 1 opens");
  check(cudalink_holds_open(name, 0, &r2, why, sizeof why) == CUDALINK_OK, "reader 2 opens");
  check(cudalink_holds_key(r1, 7, 1, &flags) == 22 && flags == CUDALINK_HOLDS_FLAG_MPS,
        "the key of slot 1, and the producer's MPS flag");
  rec = cudalink_holds_take(r1, 22);
  check(rec >= 0 && cudalink_holds_is_held(prod, 22) && !cudalink_holds_is_held(prod, 21),
        "a hold is seen by the producer");
  cudalink_holds_census_take(prod, &c);
  check(c.readers == 2 && c.holds == 1, "census: 2 readers, 1 hold");
  cudalink_holds_drop(r1, rec);
  check(!cudalink_holds_is_held(prod, 22), "a dropped hold is gone");
  cudalink_holds_set_writing(prod, 23);
  check(cudalink_holds_take(r2, 23) == -2, "the slot being written cannot be taken");
  cudalink_holds_set_writing(prod, 0);
  rec = cudalink_holds_take(r2, 21);
  cudalink_holds_unref(r2);
  check(!cudalink_holds_is_held(prod, 21), "a reader that lets go frees its entry");
  cudalink_holds_census_take(prod, &c);
  check(c.readers == 1, "census: 1 reader left");

  holder = start_holder(self, name);
  check(holder != NULL, "a reader process holds key 22");
  if (holder) {
    check(cudalink_holds_is_held(prod, 22), "its hold counts while it lives");
    TerminateProcess(holder, 9);
    WaitForSingleObject(holder, 10000);
    CloseHandle(holder);
    check(!cudalink_holds_is_held(prod, 22), "killed (TerminateProcess): its hold is no hold");
    cudalink_holds_census_take(prod, &c);
    check(c.dead_holding == 1 && c.readers == 1, "census: a dead reader held slots");
  }

  /* the producer goes while reader 1 keeps the mapping: a new reader
   * refuses the table */
  cudalink_holds_destroy(prod, 1);
  check(cudalink_holds_open(name, 0, &left, why, sizeof why) == CUDALINK_ERR_STALE &&
            strstr(why, "producer that is gone") != NULL,
        "a table whose producer is gone is refused");
  cudalink_holds_unref(left);
  cudalink_holds_unref(r1);
  printf("holds_win: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
