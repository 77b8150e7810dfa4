/* The SIGBUS guard of lib/shm.c, and what it answers: truncated(),
 * check_truncated(), refresh() and the futex on a truncated segment.
 *
 * The guard is process-wide and installs itself once, chaining to the
 * SIGBUS handler it found. So every case runs in a child forked from a
 * parent that never touches the library: each child sets up its own SIGBUS
 * disposition first, then calls the library. A child returns 0 when all is
 * well (else it prints what failed and returns 1), or dies of the signal a
 * case expects; alarm() turns a fault loop into a failure, and core dumps
 * are off. Segments are named "cudalink-guard-<pid>-<n>", unlinked by the
 * parent at the end; unrelated mappings come from memfd_create().
 *
 * Under valgrind, a handler that returns resumes the faulting instruction
 * with stale registers (valgrind keeps only SP/IP exact at memory accesses
 * unless run with --vex-iropt-register-updates=allregs-at-mem-access), so
 * the cases that read through a zeroed mapping skip themselves there;
 * CUDALINK_VALGRIND_PRECISE=1 says valgrind runs with that option and
 * keeps them. The chaining cases (nothing resumes) run everywhere. */
#include "holds.h"
#include "shm.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    define HAVE_VALGRIND_H 1
#  endif
#endif

#define PAGE 4096

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static int
under_valgrind(void)
{
#ifdef HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND)
    return 1;
#endif
  /* without the header: valgrind preloads its vgpreload_*.so */
  const char *preload = getenv("LD_PRELOAD");
  return preload && strstr(preload, "vgpreload") != NULL;
}

/* 1 (and says so) when a case that resumes after the guard fired cannot
 * run: under valgrind without precise registers. */
static int
skip_resuming_case(void)
{
  const char *precise = getenv("CUDALINK_VALGRIND_PRECISE");
  if (!under_valgrind() || (precise && strcmp(precise, "1") == 0))
    return 0;
  printf("  skipped under valgrind: resuming after SIGBUS needs "
         "--vex-iropt-register-updates=allregs-at-mem-access (then set "
         "CUDALINK_VALGRIND_PRECISE=1)\n");
  return 1;
}

#define MAX_NAMES 32
static char names[MAX_NAMES][64];
static int num_names;

static const char *
new_name(void)
{
  if (num_names == MAX_NAMES) {
    fprintf(stderr, "test_shm_guard: too many names\n");
    exit(2);
  }
  snprintf(names[num_names], sizeof names[0], "cudalink-guard-%ld-%d", (long)getpid(), num_names);
  return names[num_names++];
}

static void
unlink_all(void)
{
  for (int i = 0; i < num_names; i++) {
    char path[80];
    snprintf(path, sizeof path, "/%.63s", names[i]);
    shm_unlink(path); /* most are gone already */
  }
}

/* Exit code of pid, or 100 + the signal that killed it, -1 on error. */
static int
child_status(pid_t pid)
{
  int status;
  if (waitpid(pid, &status, 0) != pid)
    return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 100 + WTERMSIG(status);
  return -1;
}

/* In a child: counts failed expectations, printed as they happen. */
static int child_failures;

#define EXPECT(cond)                                                                \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "  %s:%d: failed in child: %s\n", __FILE__, __LINE__, #cond); \
      child_failures++;                                                             \
    }                                                                               \
  } while (0)

#define EXPECT_TEXT(hay, needle)                                                              \
  do {                                                                                        \
    const char *h_ = (hay);                                                                   \
    if (!strstr(h_, (needle))) {                                                              \
      fprintf(stderr, "  %s:%d: failed in child: \"%s\" does not contain \"%s\"\n", __FILE__, \
              __LINE__, h_, (needle));                                                        \
      child_failures++;                                                                       \
    }                                                                                         \
  } while (0)

typedef int (*case_fn)(const char *name);

/* Handles of a child that is meant to die of a signal: reachable from here
 * when it does, so that valgrind's leak check at its death does not count
 * them as lost (the compiler may keep the locals in registers only). */
static cudalink_shm *held[2];

/* Runs fn(name) in a fresh child: its exit code or 100 + signal. */
static int
in_child(case_fn fn, const char *name)
{
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0)
      _exit(90);
    alarm(20); /* a fault loop or a hang fails the case instead of the suite */
    child_failures = 0;
    int rc = fn(name);
    fflush(stdout);
    _exit(rc ? rc : child_failures ? 1 : 0);
  }
  return child_status(pid);
}

/* Sets name's file size as another process would (the test's own fd). */
static int
resize(const char *name, off_t size)
{
  char path[80];
  snprintf(path, sizeof path, "/%s", name);
  int fd = shm_open(path, O_RDWR, 0);
  if (fd < 0)
    return -1;
  int rc = ftruncate(fd, size);
  close(fd);
  return rc;
}

/* Truncates name from a forked grandchild: another process. */
static int
resize_from_child(const char *name, off_t size)
{
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0)
    _exit(resize(name, size) == 0 ? 0 : 1);
  return child_status(pid) == 0 ? 0 : -1;
}

/* Where reads whose value nobody needs go: valgrind's JIT drops a load
 * whose result is unused, volatile or not, and with it the fault. */
static volatile unsigned char sink;

static unsigned char
peek(const void *p, size_t off)
{
  return ((const volatile unsigned char *)p)[off];
}

static void
poke(void *p, size_t off, unsigned char v)
{
  ((volatile unsigned char *)p)[off] = v;
}

/* A mapping the library knows nothing of: a memfd of len bytes, page 1
 * written, then truncated to 0. Touching page 1 raises SIGBUS. */
static void *
unrelated_truncated_mapping(size_t len)
{
  int fd = (int)syscall(SYS_memfd_create, "unrelated", 0u);
  if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
    return NULL;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return NULL;
  poke(p, PAGE + 1, 9);
  if (ftruncate(fd, 0) != 0)
    return NULL;
  close(fd);
  return p;
}

/* 1 if our guard is what SIGBUS runs now (so a case feeds the chaining) */
static int
guard_installed(void)
{
  struct sigaction now;
  return sigaction(SIGBUS, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO);
}

/* ------------------------------------------------------------------------ */
/* the guard fires for our mappings                                          */
/* ------------------------------------------------------------------------ */

static int
case_reads_zeros_after_truncation(const char *name)
{
  cudalink_shm *p = NULL, *c = NULL, *q = NULL, *q2 = NULL;
  char other[80];
  snprintf(other, sizeof other, "%s-other", name);
  if (cudalink_shm_create(name, 3 * PAGE, &p, NULL) != CUDALINK_OK ||
      cudalink_shm_open(name, &c) != CUDALINK_OK ||
      cudalink_shm_create(other, 2 * PAGE, &q, NULL) != CUDALINK_OK ||
      cudalink_shm_open(other, &q2) != CUDALINK_OK)
    return 10;
  unsigned char *pd = cudalink_shm_data(p), *qd = cudalink_shm_data(q);
  const unsigned char *cd = cudalink_shm_data(c);
  poke(pd, 0, 'C');
  poke(pd, 2 * PAGE + 5, 0x77);
  poke(qd, PAGE + 3, 0x55);
  EXPECT(peek(cd, 2 * PAGE + 5) == 0x77);
  EXPECT(cudalink_shm_truncated(c) == 0);
  EXPECT(cudalink_shm_check_truncated(c) == CUDALINK_OK);

  /* another process truncates the segment to nothing */
  if (resize_from_child(name, 0) != 0)
    return 11;
  /* the consumer reads on: no signal, zeros */
  EXPECT(peek(cd, 2 * PAGE + 5) == 0);
  EXPECT(peek(cd, 0) == 0); /* the whole mapping is replaced */
  EXPECT(cudalink_shm_truncated(c) == 1);
  char want[200];
  snprintf(want, sizeof want,
           "segment '%s' truncated by another process (the file now has 0 bytes)", name);
  EXPECT(cudalink_shm_check_truncated(c) == CUDALINK_ERR_TRUNCATED);
  EXPECT_TEXT(cudalink_shm_last_error(), want);
  /* refresh will not map the file again: reconnect */
  EXPECT(cudalink_shm_refresh(c) == CUDALINK_ERR_TRUNCATED);
  EXPECT_TEXT(cudalink_shm_last_error(), want);
  EXPECT(cudalink_shm_data(c) == cd);

  /* the producer writes on: private memory now */
  poke(pd, PAGE + 1, 3);
  EXPECT(peek(pd, PAGE + 1) == 3);
  EXPECT(cudalink_shm_truncated(p) == 1);

  /* the file grows back: the handles stay truncated (sticky, and zeros) */
  if (resize(name, 3 * PAGE) != 0)
    return 12;
  EXPECT(cudalink_shm_truncated(c) == 1);
  EXPECT(peek(cd, 2 * PAGE + 5) == 0);

  /* another segment is untouched: still the file, still shared */
  EXPECT(cudalink_shm_truncated(q) == 0);
  EXPECT(peek(cudalink_shm_data(q2), PAGE + 3) == 0x55);
  poke(qd, 7, 0x66);
  EXPECT(peek(cudalink_shm_data(q2), 7) == 0x66);

  cudalink_shm_close(q2);
  cudalink_shm_close(q);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  EXPECT(cudalink_shm_unlink(other) == CUDALINK_OK);
  return 0;
}

static void
test_reads_zeros_after_truncation(void)
{
  if (skip_resuming_case())
    return;
  CHECK_EQ_INT(in_child(case_reads_zeros_after_truncation, new_name()), 0);
}

static int
case_holds_table_truncated(const char *name)
{
  /* the import back-channel (lib/holds.c) is a MAP_SHARED table too: a
   * peer that truncates it must not kill the producer or a reader that
   * holds a slot; the table then reads zeros (nothing held) and a new
   * reader is refused with the table's size */
  cudalink_holds *prod = NULL, *reader = NULL, *late = NULL;
  uint64_t keys[3] = {21, 22, 23};
  cudalink_holds_census census;
  char table[96], why[200] = "";
  int rec;
  if (cudalink_holds_create(name, 0, &prod, why, sizeof why) != CUDALINK_OK)
    return 20;
  cudalink_holds_publish_ring(prod, 1, 3, keys);
  if (cudalink_holds_open(name, 0, &reader, why, sizeof why) != CUDALINK_OK)
    return 21;
  rec = cudalink_holds_take(reader, 22);
  EXPECT(rec >= 0);
  EXPECT(cudalink_holds_is_held(prod, 22) == 1);
  snprintf(table, sizeof table, "%s%s", CUDALINK_HOLDS_PREFIX, name);
  if (resize_from_child(table, 0) != 0)
    return 22;
  EXPECT(cudalink_holds_is_held(prod, 22) == 0); /* fault: guarded, zeros */
  cudalink_holds_census_take(prod, &census);
  EXPECT(census.holds == 0);
  EXPECT(cudalink_holds_take(reader, 23) != -2); /* the reader's side too */
  EXPECT(cudalink_holds_open(name, 0, &late, why, sizeof why) == CUDALINK_ERR_SHM);
  EXPECT_TEXT(why, "has 0 bytes");
  if (rec >= 0)
    cudalink_holds_drop(reader, rec);
  cudalink_holds_unref(reader);
  cudalink_holds_destroy(prod, 1);
  return 0;
}

static void
test_holds_table_truncated(void)
{
  if (skip_resuming_case())
    return;
  CHECK_EQ_INT(in_child(case_holds_table_truncated, new_name()), 0);
}

static int
case_partial_truncation_same_process(const char *name)
{
  /* truncated through another descriptor of this process, to one page:
   * the first page needs no guard, the fault in the third replaces the
   * whole mapping */
  cudalink_shm *c = NULL, *p = NULL;
  if (cudalink_shm_create(name, 3 * PAGE, &p, NULL) != CUDALINK_OK ||
      cudalink_shm_open(name, &c) != CUDALINK_OK)
    return 10;
  const unsigned char *cd = cudalink_shm_data(c);
  poke(cudalink_shm_data(p), 100, 0x42);
  if (resize(name, PAGE) != 0)
    return 11;
  EXPECT(peek(cd, 100) == 0x42);          /* still there */
  EXPECT(cudalink_shm_truncated(c) == 1); /* by fstat: file < mapping */
  EXPECT(peek(cd, 2 * PAGE) == 0);        /* fault: guarded */
  EXPECT(peek(cd, 100) == 0);             /* the whole mapping is zeros now */
  EXPECT(cudalink_shm_check_truncated(c) == CUDALINK_ERR_TRUNCATED);
  EXPECT_TEXT(cudalink_shm_last_error(), "(the file now has 4096 bytes)");
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  return 0;
}

static void
test_partial_truncation_same_process(void)
{
  if (skip_resuming_case())
    return;
  CHECK_EQ_INT(in_child(case_partial_truncation_same_process, new_name()), 0);
}

#define READERS 4
struct reader_arg {
  const unsigned char *data;
  int page;
  atomic_int *stop;
  long reads;
};

static void *
reader(void *arg)
{
  struct reader_arg *a = arg;
  while (!atomic_load(a->stop)) {
    sink = peek(a->data, (size_t)a->page * PAGE + (size_t)(a->reads % PAGE));
    a->reads++;
  }
  return NULL;
}

static int
case_threads_survive(const char *name)
{
  /* four threads read four pages without pause while the segment is
   * truncated under them: every one of them survives */
  cudalink_shm *p = NULL, *c = NULL;
  if (cudalink_shm_create(name, READERS * PAGE, &p, NULL) != CUDALINK_OK ||
      cudalink_shm_open(name, &c) != CUDALINK_OK)
    return 10;
  atomic_int stop;
  atomic_init(&stop, 0);
  pthread_t threads[READERS];
  struct reader_arg args[READERS];
  for (int i = 0; i < READERS; i++) {
    args[i] = (struct reader_arg){cudalink_shm_data(c), i, &stop, 0};
    if (pthread_create(&threads[i], NULL, reader, &args[i]) != 0)
      return 11;
  }
  struct timespec ms20 = {0, 20000000};
  nanosleep(&ms20, NULL);
  if (resize_from_child(name, 0) != 0)
    return 12;
  nanosleep(&ms20, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < READERS; i++) {
    pthread_join(threads[i], NULL);
    EXPECT(args[i].reads > 0);
  }
  EXPECT(cudalink_shm_truncated(c) == 1);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  return 0;
}

static void
test_threads_survive(void)
{
  if (skip_resuming_case())
    return;
  CHECK_EQ_INT(in_child(case_threads_survive, new_name()), 0);
}

/* ------------------------------------------------------------------------ */
/* every other SIGBUS behaves as before                                      */
/* ------------------------------------------------------------------------ */

/* Opens a segment (installing the guard over whatever the child set up),
 * then touches a truncated mapping the library does not know. */
static int
touch_unrelated(const char *name)
{
  if (cudalink_shm_create(name, 2 * PAGE, &held[0], NULL) != CUDALINK_OK)
    return 20;
  if (!guard_installed())
    return 21;
  void *u = unrelated_truncated_mapping(2 * PAGE);
  if (!u)
    return 22;
  sink = peek(u, PAGE + 1); /* SIGBUS: not ours */
  return 23;                /* survived: the guard swallowed it */
}

static int
case_default_dies(const char *name)
{
  return touch_unrelated(name); /* SIG_DFL before us */
}

static void
test_chain_default_dies(void)
{
  CHECK_EQ_INT(in_child(case_default_dies, new_name()), 100 + SIGBUS);
}

static const void *volatile expected_addr; /* volatile: set before the fault */

static void
on_bus_siginfo(int sig, siginfo_t *info, void *uctx)
{
  (void)uctx;
  /* the previous handler sees the fault as the kernel reported it */
  int ok = sig == SIGBUS && info->si_code == BUS_ADRERR && info->si_addr == expected_addr;
  if (!ok)
    fprintf(stderr, "  sig %d code %d addr %p, expected %p\n", sig, info->si_code, info->si_addr,
            expected_addr);
  _exit(ok ? 42 : 41);
}

static int
case_siginfo_handler_runs(const char *name)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_bus_siginfo;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, NULL) != 0)
    return 30;
  if (cudalink_shm_create(name, 2 * PAGE, &held[0], NULL) != CUDALINK_OK)
    return 31;
  struct sigaction now;
  if (sigaction(SIGBUS, NULL, &now) != 0 || now.sa_sigaction == on_bus_siginfo)
    return 32; /* the guard is not in front */
  char *u = unrelated_truncated_mapping(2 * PAGE);
  if (!u)
    return 33;
  expected_addr = u + PAGE + 1;
  sink = peek(u, PAGE + 1);
  return 34;
}

static void
test_chain_siginfo_handler(void)
{
  CHECK_EQ_INT(in_child(case_siginfo_handler_runs, new_name()), 42);
}

static void
on_bus_plain(int sig)
{
  _exit(sig == SIGBUS ? 44 : 45);
}

static int
case_plain_handler_runs(const char *name)
{
  if (signal(SIGBUS, on_bus_plain) == SIG_ERR)
    return 40;
  return touch_unrelated(name);
}

static void
test_chain_plain_handler(void)
{
  CHECK_EQ_INT(in_child(case_plain_handler_runs, new_name()), 44);
}

static int
case_ignored_fault_dies(const char *name)
{
  /* SIG_IGN cannot stop a fault: the kernel kills. So must we. */
  if (signal(SIGBUS, SIG_IGN) == SIG_ERR)
    return 50;
  return touch_unrelated(name);
}

static void
test_chain_ignored_fault_dies(void)
{
  CHECK_EQ_INT(in_child(case_ignored_fault_dies, new_name()), 100 + SIGBUS);
}

static int
case_ignored_sent_signal_survives(const char *name)
{
  /* A SIGBUS sent by kill(), or queued with an si_addr inside our own
   * mapping, is no fault: ignored as before, and our mapping untouched. */
  if (signal(SIGBUS, SIG_IGN) == SIG_ERR)
    return 60;
  cudalink_shm *s = NULL;
  if (cudalink_shm_create(name, 2 * PAGE, &s, NULL) != CUDALINK_OK)
    return 61;
  if (!guard_installed())
    return 62;
  unsigned char *d = cudalink_shm_data(s);
  poke(d, PAGE, 0x31);
  EXPECT(kill(getpid(), SIGBUS) == 0);
  EXPECT(raise(SIGBUS) == 0);
  siginfo_t forged;
  memset(&forged, 0, sizeof forged);
  forged.si_signo = SIGBUS;
  forged.si_code = SI_QUEUE;
  forged.si_addr = d + PAGE;
  EXPECT(syscall(SYS_rt_sigqueueinfo, getpid(), SIGBUS, &forged) == 0);
  EXPECT(peek(d, PAGE) == 0x31); /* not zeroed */
  EXPECT(cudalink_shm_truncated(s) == 0);
  cudalink_shm_close(s);
  return 0;
}

static void
test_chain_ignored_sent_signal(void)
{
  CHECK_EQ_INT(in_child(case_ignored_sent_signal_survives, new_name()), 0);
}

static int
case_default_sent_signal_dies(const char *name)
{
  if (cudalink_shm_create(name, 2 * PAGE, &held[0], NULL) != CUDALINK_OK)
    return 70;
  if (!guard_installed())
    return 71;
  kill(getpid(), SIGBUS);
  return 72;
}

static void
test_chain_default_sent_signal_dies(void)
{
  CHECK_EQ_INT(in_child(case_default_sent_signal_dies, new_name()), 100 + SIGBUS);
}

/* ------------------------------------------------------------------------ */
/* closed and replaced mappings leave the guard                              */
/* ------------------------------------------------------------------------ */

/* Maps an unrelated truncated memfd at addr if the kernel agrees (a hint,
 * not MAP_FIXED) and touches it: SIGBUS must kill, not be swallowed. */
static int
touch_unrelated_at(void *addr, size_t len)
{
  int fd = (int)syscall(SYS_memfd_create, "unrelated", 0u);
  if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
    return 80;
  void *u = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (u == MAP_FAILED || ftruncate(fd, 0) != 0)
    return 81;
  if (u != addr)
    printf("  note: the old address was not reused\n");
  fflush(stdout);
  sink = peek(u, len - 1);
  return 82;
}

static int
case_close_unregisters(const char *name)
{
  cudalink_shm *s = NULL;
  if (cudalink_shm_create(name, 2 * PAGE, &s, NULL) != CUDALINK_OK)
    return 83;
  void *old = cudalink_shm_data(s);
  cudalink_shm_close(s);
  return touch_unrelated_at(old, 2 * PAGE);
}

static void
test_close_unregisters(void)
{
  CHECK_EQ_INT(in_child(case_close_unregisters, new_name()), 100 + SIGBUS);
}

static int
case_refresh_unregisters(const char *name)
{
  /* refresh maps anew and drops the old mapping's registration too */
  if (cudalink_shm_create(name, 2 * PAGE, &held[0], NULL) != CUDALINK_OK ||
      cudalink_shm_open(name, &held[1]) != CUDALINK_OK)
    return 84;
  cudalink_shm *c = held[1];
  void *old = cudalink_shm_data(c);
  if (resize(name, 64 * PAGE) != 0 || cudalink_shm_refresh(c) != CUDALINK_OK ||
      cudalink_shm_size(c) != 64 * PAGE)
    return 85;
  return touch_unrelated_at(old, 2 * PAGE);
}

static void
test_refresh_unregisters(void)
{
  CHECK_EQ_INT(in_child(case_refresh_unregisters, new_name()), 100 + SIGBUS);
}

/* ------------------------------------------------------------------------ */
/* the futex on a truncated segment                                          */
/* ------------------------------------------------------------------------ */

static int
case_futex_efault(const char *name)
{
  cudalink_shm *p = NULL, *c = NULL;
  if (cudalink_shm_create(name, 2 * PAGE, &p, NULL) != CUDALINK_OK ||
      cudalink_shm_open(name, &c) != CUDALINK_OK)
    return 90;
  const volatile uint32_t *word =
      (const volatile uint32_t *)((const char *)cudalink_shm_data(c) + PAGE);
  if (resize_from_child(name, 0) != 0)
    return 91;
  /* the kernel answers EFAULT at once: ERR_TRUNCATED, not a 2 s wait nor
   * an error to loop on */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  EXPECT(cudalink_futex_wait(word, 0, 2000000) == CUDALINK_ERR_TRUNCATED);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  EXPECT((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 1000000000L);
  EXPECT_TEXT(cudalink_shm_last_error(), "futex(FUTEX_WAIT): Bad address");
  EXPECT_TEXT(cudalink_shm_last_error(), "truncated by another process");
  EXPECT(cudalink_futex_wake((volatile uint32_t *)((char *)cudalink_shm_data(p) + PAGE)) ==
         CUDALINK_ERR_TRUNCATED);
  EXPECT_TEXT(cudalink_shm_last_error(), "futex(FUTEX_WAKE): Bad address");
  /* and the handle tells the caller what to report */
  EXPECT(cudalink_shm_check_truncated(c) == CUDALINK_ERR_TRUNCATED);
  char want[200];
  snprintf(want, sizeof want, "segment '%s' truncated by another process", name);
  EXPECT_TEXT(cudalink_shm_last_error(), want);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  return 0;
}

static void
test_futex_efault(void)
{
  CHECK_EQ_INT(in_child(case_futex_efault, new_name()), 0);
}

int
main(void)
{
  RUN_TEST(test_reads_zeros_after_truncation);
  RUN_TEST(test_partial_truncation_same_process);
  RUN_TEST(test_holds_table_truncated);
  RUN_TEST(test_threads_survive);
  RUN_TEST(test_chain_default_dies);
  RUN_TEST(test_chain_siginfo_handler);
  RUN_TEST(test_chain_plain_handler);
  RUN_TEST(test_chain_ignored_fault_dies);
  RUN_TEST(test_chain_ignored_sent_signal);
  RUN_TEST(test_chain_default_sent_signal_dies);
  RUN_TEST(test_close_unregisters);
  RUN_TEST(test_refresh_unregisters);
  RUN_TEST(test_futex_efault);
  unlink_all();
  for (int i = 0; i < num_names; i++) { /* the "-other" companions */
    char path[96];
    snprintf(path, sizeof path, "/%.63s-other", names[i]);
    shm_unlink(path);
  }
  return TEST_SUMMARY();
}
