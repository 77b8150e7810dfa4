/* Named shared memory, the producer lock and the futex (lib/shm.c), Linux.
 * Every segment gets a unique name "cudalink-test-<pid>-<n>"; main()
 * unlinks all of them at the end, also when a test failed half-way.
 * Forked children report through their exit status (0 = all good, else
 * the number of the step that failed) and never return into the harness. */
#include "shm.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* shm_unlink() as glibc does it, unless a test makes it fail: the library
 * is linked statically into this program, so its calls land here. */
static int fail_shm_unlink;

int shm_unlink(const char *name)
{
  if (fail_shm_unlink) {
    errno = EPERM;
    return -1;
  }
  char path[300];
  if (!name || name[0] != '/' || snprintf(path, sizeof path, "/dev/shm%s", name) >= 300) {
    errno = EINVAL;
    return -1;
  }
  return unlink(path);
}

#define MAX_NAMES 64
static char names[MAX_NAMES][CUDALINK_MAX_NAME + 1];
static int num_names;

/* A fresh name of at least min_len bytes (padded with 'z'), remembered for
 * the final clean-up. */
static const char *new_name_len(size_t min_len)
{
  if (num_names == MAX_NAMES || min_len > CUDALINK_MAX_NAME) {
    fprintf(stderr, "test_shm: too many names\n");
    exit(2);
  }
  char *n = names[num_names];
  int len = snprintf(n, sizeof names[0], "cudalink-test-%ld-%d", (long)getpid(), num_names);
  for (size_t i = (size_t)len; i < min_len; i++)
    n[i] = 'z';
  if ((size_t)len < min_len)
    n[min_len] = '\0';
  num_names++;
  return n;
}

static const char *new_name(void)
{
  return new_name_len(0);
}

static void unlink_all(void)
{
  char path[CUDALINK_MAX_NAME + 2];
  for (int i = 0; i < num_names; i++) {
    path[0] = '/';
    memcpy(path + 1, names[i], strlen(names[i]) + 1);
    shm_unlink(path); /* most are gone already: ENOENT is fine */
  }
}

/* A test that crashes (SIGSEGV, SIGBUS, SIGABRT) still leaves /dev/shm
 * clean: the main process unlinks every name, then dies of the signal. */
static pid_t main_pid;

static void on_fatal_signal(int sig)
{
  if (getpid() == main_pid)
    unlink_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_crash_cleanup(void)
{
  main_pid = getpid();
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], on_fatal_signal);
}

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us)
{
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static int path_exists(const char *name)
{
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  struct stat st;
  return stat(path, &st) == 0;
}

/* Pipes carry one byte at a time between parent and child. */
static int send_byte(int fd, char c)
{
  return write(fd, &c, 1) == 1 ? 0 : -1;
}

static int recv_byte(int fd)
{
  char c;
  ssize_t n;
  do {
    n = read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1 ? (unsigned char)c : -1;
}

/* Waits for pid; its exit code, or 100 + signal number, -1 on error. */
static int child_status(pid_t pid)
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

/* ------------------------------------------------------------------------ */
/* names                                                                     */
/* ------------------------------------------------------------------------ */

static void test_name_checks(void)
{
  char longest[CUDALINK_MAX_NAME + 2];
  memset(longest, 'a', sizeof longest);
  longest[CUDALINK_MAX_NAME] = '\0';

  CHECK_EQ_INT(cudalink_shm_check_name("ok-name_1.x"), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_check_name("..."), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_check_name(longest), CUDALINK_OK);

  CHECK_EQ_INT(cudalink_shm_check_name(NULL), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_shm_check_name(""), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "empty");
  CHECK_EQ_INT(cudalink_shm_check_name("a/b"), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "'/' at byte 1");
  CHECK_EQ_INT(cudalink_shm_check_name("/lead"), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_shm_check_name("a\\b"), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_shm_check_name("."), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_shm_check_name(".."), CUDALINK_ERR_BAD_NAME);
  longest[CUDALINK_MAX_NAME] = 'a';
  longest[CUDALINK_MAX_NAME + 1] = '\0';
  CHECK_EQ_INT(cudalink_shm_check_name(longest), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "201 bytes");

  /* the public form says why; control characters are refused everywhere */
  char why[256] = "x";
  CHECK_EQ_INT(cudalink_check_name_why("TD out 1.2_x-y", why, sizeof why), CUDALINK_OK);
  CHECK(why[0] == '\0');
  CHECK_EQ_INT(cudalink_check_name_why("a\nb", why, sizeof why), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(why, "control character 0x0a at byte 1");
  CHECK_EQ_INT(cudalink_check_name_why("del\x7f", why, sizeof why), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(why, "0x7f at byte 3");
  CHECK_EQ_INT(cudalink_check_name("tab\tname"), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_check_name_why("a\\b", why, sizeof why), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(why, "'\\' at byte 1");
  CHECK_EQ_INT(cudalink_check_name_why("..", why, sizeof why), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(why, "\"..\" is not allowed");
  /* the import back-channel's names (holds.h) are not segments' */
  CHECK_EQ_INT(cudalink_check_name_why(".cudalink-holds-TD", why, sizeof why), CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(why, "back-channel");
  CHECK_EQ_INT(cudalink_check_name(".cudalink-hold"), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_check_name_why(NULL, NULL, 0), CUDALINK_ERR_BAD_NAME);
  char tiny[8];
  CHECK_EQ_INT(cudalink_check_name_why("", tiny, sizeof tiny), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT((int)strlen(tiny), 7);

  /* every entry point checks, and leaves *out NULL */
  cudalink_shm *shm = (cudalink_shm *)&shm;
  int created = 7;
  CHECK_EQ_INT(cudalink_shm_create("..", 64, &shm, &created), CUDALINK_ERR_BAD_NAME);
  CHECK(shm == NULL);
  CHECK_EQ_INT(created, 0);
  shm = (cudalink_shm *)&shm;
  CHECK_EQ_INT(cudalink_shm_open("x/y", &shm), CUDALINK_ERR_BAD_NAME);
  CHECK(shm == NULL);
  CHECK_EQ_INT(cudalink_shm_open(longest, &shm), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(cudalink_shm_unlink(""), CUDALINK_ERR_BAD_NAME);
}

static void test_longest_name_works(void)
{
  const char *longest = new_name_len(CUDALINK_MAX_NAME);
  REQUIRE(strlen(longest) == CUDALINK_MAX_NAME);

  cudalink_shm *shm = NULL;
  int created = 0;
  REQUIRE(cudalink_shm_create(longest, 16, &shm, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 1);
  CHECK_EQ_INT(strlen(cudalink_shm_name(shm)), CUDALINK_MAX_NAME);
  CHECK(path_exists(longest));
  cudalink_shm_close(shm);
  CHECK_EQ_INT(cudalink_shm_unlink(longest), CUDALINK_OK);
  CHECK(!path_exists(longest));
}

static void test_bad_arguments(void)
{
  const char *name = new_name();
  cudalink_shm *shm = NULL;
  CHECK_EQ_INT(cudalink_shm_create(name, 0, &shm, NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK(shm == NULL);
  CHECK_EQ_INT(cudalink_shm_create(name, 64, NULL, NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_open(name, NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK(!path_exists(name)); /* nothing was created by the failed calls */
  CHECK_EQ_INT(cudalink_shm_refresh(NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_lock(NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_is_locked(NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_lost_name(NULL), 0);
  CHECK(cudalink_shm_data(NULL) == NULL);
  CHECK_EQ_INT(cudalink_shm_size(NULL), 0);
  CHECK(cudalink_shm_name(NULL) == NULL);
  cudalink_shm *fresh = NULL;
  CHECK_EQ_INT(cudalink_shm_relink(NULL, &fresh), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_truncated(NULL), 0);
  CHECK_EQ_INT(cudalink_shm_check_truncated(NULL), CUDALINK_ERR_INVALID_ARG);
  char buf[8];
  CHECK_EQ_INT(cudalink_shm_pread(NULL, 0, buf, sizeof buf), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_futex_wake(NULL), CUDALINK_ERR_INVALID_ARG);
  cudalink_shm_close(NULL); /* accepted */
}

/* ------------------------------------------------------------------------ */
/* create, open, unlink                                                      */
/* ------------------------------------------------------------------------ */

static void test_create_reuse_grow(void)
{
  const char *name = new_name();
  cudalink_shm *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  int created = -1;

  REQUIRE(cudalink_shm_create(name, 64, &a, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 1);
  CHECK_EQ_INT(cudalink_shm_size(a), 64);
  CHECK(strcmp(cudalink_shm_name(a), name) == 0);
  unsigned char *pa = cudalink_shm_data(a);
  REQUIRE(pa != NULL);
  int zero = 1;
  for (int i = 0; i < 64; i++)
    zero &= pa[i] == 0;
  CHECK(zero);
  for (int i = 0; i < 64; i++)
    pa[i] = (unsigned char)(i + 1);
  cudalink_shm_close(a);

  /* mode 0600 like Python's SharedMemory (the umask can only remove bits) */
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  struct stat st;
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ_INT(st.st_mode & 0777 & ~0600, 0);

  /* re-use: same contents */
  REQUIRE(cudalink_shm_create(name, 64, &b, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 0);
  CHECK_EQ_INT(cudalink_shm_size(b), 64);
  unsigned char *pb = cudalink_shm_data(b);
  CHECK(pb[0] == 1 && pb[63] == 64);

  /* re-use with a larger size: grown, old bytes kept, new bytes zero */
  REQUIRE(cudalink_shm_create(name, 433, &c, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 0);
  CHECK_EQ_INT(cudalink_shm_size(c), 433);
  unsigned char *pc = cudalink_shm_data(c);
  CHECK(pc[0] == 1 && pc[63] == 64 && pc[64] == 0 && pc[432] == 0);
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ_INT(st.st_size, 433);

  /* re-use with a smaller size: never shrinks, maps everything */
  REQUIRE(cudalink_shm_create(name, 16, &d, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 0);
  CHECK_EQ_INT(cudalink_shm_size(d), 433);
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ_INT(st.st_size, 433);

  /* all mappings are the same memory */
  pc[400] = 0xab;
  CHECK(((unsigned char *)cudalink_shm_data(d))[400] == 0xab);
  pb[5] = 0xcd;
  CHECK(pc[5] == 0xcd);

  cudalink_shm_close(b);
  cudalink_shm_close(c);
  cudalink_shm_close(d);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_open(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;

  CHECK_EQ_INT(cudalink_shm_open(name, &c), CUDALINK_ERR_NOT_FOUND);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), name);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "No such file");

  REQUIRE(cudalink_shm_create(name, 100, &p, NULL) == CUDALINK_OK);
  unsigned char *pp = cudalink_shm_data(p);
  memcpy(pp, "CIPD", 4);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 100);
  const unsigned char *pc = cudalink_shm_data(c);
  CHECK(memcmp(pc, "CIPD", 4) == 0);
  pp[99] = 42; /* later writes show through at once */
  CHECK_EQ_INT(pc[99], 42);
  /* a consumer cannot take the producer lock */
  CHECK_EQ_INT(cudalink_shm_lock(c), CUDALINK_ERR_INVALID_ARG);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* The size of name's file, -1 if it cannot be read. */
static long long file_size_of(const char *name)
{
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Sets name's file size from outside the library, as another process would. */
static int resize_file(const char *name, off_t size)
{
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_RDWR);
  if (fd < 0)
    return -1;
  int rc = ftruncate(fd, size);
  close(fd);
  return rc;
}

static void test_open_sized(void)
{
  /* A consumer maps what the protocol needs, of a segment that may be
   * larger (Windows page-rounds its mappings to 4096 bytes). */
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL, *small = NULL;
  uint64_t fsize = 0;
  REQUIRE(cudalink_shm_create(name, 433, &p, NULL) == CUDALINK_OK);
  memcpy(cudalink_shm_data(p), "CIPD", 4);

  /* smaller than max_map: all of it */
  REQUIRE(cudalink_shm_open_sized(name, CUDALINK_MAX_LAYOUT_SIZE, &small) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(small), 433);
  CHECK_EQ_INT(cudalink_shm_file_size(small, &fsize), CUDALINK_OK);
  CHECK_EQ_INT(fsize, 433);

  /* page-rounded by its producer: max_map of it, and the real size */
  REQUIRE(resize_file(name, 8192) == 0);
  REQUIRE(cudalink_shm_open_sized(name, CUDALINK_MAX_LAYOUT_SIZE, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), CUDALINK_MAX_LAYOUT_SIZE);
  CHECK_EQ_INT(cudalink_shm_file_size(c, &fsize), CUDALINK_OK);
  CHECK_EQ_INT(fsize, 8192);
  CHECK(memcmp(cudalink_shm_data(c), "CIPD", 4) == 0);

  /* refresh keeps to max_map: the small handle grows up to it, no further */
  CHECK_EQ_INT(cudalink_shm_refresh(small), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(small), CUDALINK_MAX_LAYOUT_SIZE);
  CHECK_EQ_INT(cudalink_shm_file_size(small, &fsize), CUDALINK_OK);
  CHECK_EQ_INT(fsize, 8192);
  /* and follows a shrink to below it */
  REQUIRE(resize_file(name, 1000) == 0);
  CHECK_EQ_INT(cudalink_shm_refresh(c), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 1000);

  /* bad arguments */
  cudalink_shm *none = (cudalink_shm *)&none;
  CHECK_EQ_INT(cudalink_shm_open_sized(name, 0, &none), CUDALINK_ERR_INVALID_ARG);
  CHECK(none == NULL);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "max_map is 0");
  CHECK_EQ_INT(cudalink_shm_file_size(NULL, &fsize), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_file_size(c, NULL), CUDALINK_ERR_INVALID_ARG);

  cudalink_shm_close(small);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_create_maps_only_layout(void)
{
  /* Someone left a 2 GB file under the producer's name (sparse: it costs
   * tmpfs nothing). The producer maps, and relink copies, its layout's 433
   * bytes of it, and the file keeps its size. */
  const long long big = 2LL << 30;
  const char *name = new_name();
  cudalink_shm *old = NULL, *p = NULL, *fresh = NULL;
  int created = -1;
  REQUIRE(cudalink_shm_create(name, 64, &old, NULL) == CUDALINK_OK);
  memcpy(cudalink_shm_data(old), "CIPD", 4);
  cudalink_shm_close(old);
  REQUIRE(resize_file(name, (off_t)big) == 0);

  CHECK_EQ_INT(cudalink_shm_create_sized(name, 433, 64, &p, NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK(p == NULL);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "max_map is smaller than size");

  REQUIRE(cudalink_shm_create_sized(name, 433, 433, &p, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 0);
  CHECK_EQ_INT(cudalink_shm_size(p), 433);
  uint64_t fsize = 0;
  CHECK_EQ_INT(cudalink_shm_file_size(p, &fsize), CUDALINK_OK);
  CHECK_EQ_INT(fsize, big);
  CHECK_EQ_INT(file_size_of(name), big); /* never shrinks */
  unsigned char *pp = cudalink_shm_data(p);
  CHECK(memcmp(pp, "CIPD", 4) == 0);
  pp[432] = 0x42;

  /* a Python consumer's tracker unlinks it: the copy is the layout only */
  REQUIRE(cudalink_shm_unlink(name) == CUDALINK_OK);
  REQUIRE(cudalink_shm_relink(p, &fresh) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(fresh), 433);
  CHECK_EQ_INT(file_size_of(name), 433);
  CHECK(memcmp(cudalink_shm_data(fresh), "CIPD", 4) == 0);
  CHECK_EQ_INT(((unsigned char *)cudalink_shm_data(fresh))[432], 0x42);

  /* a small existing file still grows to size, mapped in full */
  cudalink_shm_close(fresh);
  cudalink_shm_close(p);
  REQUIRE(resize_file(name, 100) == 0);
  REQUIRE(cudalink_shm_create_sized(name, 433, 433, &p, &created) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(p), 433);
  CHECK_EQ_INT(file_size_of(name), 433);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_open_empty_segment(void)
{
  /* a producer caught between shm_open and ftruncate: size 0 */
  const char *name = new_name();
  char path[CUDALINK_MAX_NAME + 2];
  snprintf(path, sizeof path, "/%s", name);
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  REQUIRE(fd >= 0);
  cudalink_shm *c = NULL;
  CHECK_EQ_INT(cudalink_shm_open(name, &c), CUDALINK_OK);
  if (c) {
    CHECK_EQ_INT(cudalink_shm_size(c), 0);
    CHECK(cudalink_shm_data(c) != NULL);
    /* the producer grows it; refresh maps the new size */
    CHECK(ftruncate(fd, 200) == 0);
    CHECK_EQ_INT(cudalink_shm_refresh(c), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_shm_size(c), 200);
    cudalink_shm_close(c);
  }
  close(fd);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* what the name holds: only a regular file is a segment                     */
/* ------------------------------------------------------------------------ */

/* What a child reports about one call. */
struct child_result {
  int status;
  int created;
  char text[256];
};

typedef void (*child_fn)(const char *name, struct child_result *r);

static void call_open(const char *name, struct child_result *r)
{
  cudalink_shm *s = NULL;
  r->status = cudalink_shm_open(name, &s);
  snprintf(r->text, sizeof r->text, "%s", cudalink_shm_last_error());
  r->created = s != NULL; /* must stay NULL on failure */
  cudalink_shm_close(s);
}

static void call_create(const char *name, struct child_result *r)
{
  cudalink_shm *s = NULL;
  r->created = -1;
  r->status = cudalink_shm_create(name, 128, &s, &r->created);
  snprintf(r->text, sizeof r->text, "%s", cudalink_shm_last_error());
  if (s)
    r->created = 100 + r->created; /* must stay NULL on failure */
  cudalink_shm_close(s);
}

/* Runs fn(name) in a forked child and collects what it reports. Returns 0,
 * or -1 when the child did not answer within 5 s (it blocked: killed). */
static int in_child(child_fn fn, const char *name, struct child_result *r)
{
  int fds[2];
  memset(r, 0, sizeof *r);
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    struct child_result mine;
    memset(&mine, 0, sizeof mine);
    fn(name, &mine);
    _exit(write(fds[1], &mine, sizeof mine) == (ssize_t)sizeof mine ? 0 : 1);
  }
  close(fds[1]);
  struct pollfd pfd = {fds[0], POLLIN, 0};
  int ready = poll(&pfd, 1, 5000);
  ssize_t n = ready == 1 ? read(fds[0], r, sizeof *r) : -1;
  close(fds[0]);
  if (n != (ssize_t)sizeof *r) {
    fprintf(stderr, "  %s: the child did not answer within 5 s: blocked\n", name);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return child_status(pid) == 0 ? 0 : -1;
}

/* Both sides refuse name with ERR_SHM and "'NAME' is WHAT, not a
 * shared-memory segment", without blocking and without leaving a handle. */
static void check_refused(const char *name, const char *what)
{
  char want[300];
  snprintf(want, sizeof want, "'%s' is %s, not a shared-memory segment", name, what);
  struct child_result r;
  CHECK_EQ_INT(in_child(call_open, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(r.text, want);
  CHECK_EQ_INT(r.created, 0);
  CHECK_EQ_INT(in_child(call_create, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(r.text, want);
  CHECK_EQ_INT(r.created, 0);
}

static void shm_file(const char *name, char path[300])
{
  snprintf(path, 300, "/dev/shm/%s", name);
}

static void test_fifo_is_not_a_segment(void)
{
  /* shm_open(O_RDONLY) of a FIFO used to wait for a writer for ever */
  const char *name = new_name();
  char path[300];
  shm_file(name, path);
  REQUIRE(mkfifo(path, 0600) == 0);
  check_refused(name, "a FIFO");
  struct stat st;
  CHECK(lstat(path, &st) == 0 && S_ISFIFO(st.st_mode)); /* left as it was */
  CHECK(unlink(path) == 0);
}

static void test_directory_is_not_a_segment(void)
{
  /* read-only open() of a directory succeeds, then mmap said "No such
   * device"; read-write open fails with EISDIR, which glibc makes EINVAL */
  const char *name = new_name();
  char path[300];
  shm_file(name, path);
  REQUIRE(mkdir(path, 0700) == 0);
  check_refused(name, "a directory");
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "shm_unlink(/");
  CHECK(rmdir(path) == 0);
}

static void test_socket_is_not_a_segment(void)
{
  /* open() of a socket fails with ENXIO: the name is looked at to say why */
  const char *name = new_name();
  char path[300];
  shm_file(name, path);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  REQUIRE(strlen(path) < sizeof addr.sun_path);
  memcpy(addr.sun_path, path, strlen(path) + 1);
  if (bind(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(sock);
    REQUIRE(!"bind");
  }
  check_refused(name, "a socket");
  close(sock);
  CHECK(unlink(path) == 0);
}

static void test_symlink_is_not_followed(void)
{
  /* A link to someone's segment (or to nothing) is refused by name: it is
   * neither read, nor grown, nor created at its target. */
  const char *name = new_name();
  const char *target = new_name();
  const char *nowhere = new_name();
  char path[300], target_path[300], nowhere_path[300];
  shm_file(name, path);
  shm_file(target, target_path);
  shm_file(nowhere, nowhere_path);
  cudalink_shm *t = NULL;
  REQUIRE(cudalink_shm_create(target, 64, &t, NULL) == CUDALINK_OK);
  cudalink_shm_close(t);
  REQUIRE(symlink(target_path, path) == 0);
  check_refused(name, "a symbolic link");
  struct stat st;
  CHECK(stat(target_path, &st) == 0 && st.st_size == 64); /* not grown to 128 */
  CHECK(unlink(path) == 0);

  REQUIRE(symlink(nowhere_path, path) == 0); /* dangling */
  check_refused(name, "a symbolic link");
  CHECK(!path_exists(nowhere)); /* O_CREAT did not create the target */
  CHECK(unlink(path) == 0);
  CHECK_EQ_INT(cudalink_shm_unlink(target), CUDALINK_OK);
}

static void test_devices_are_not_segments(void)
{
  /* mknod needs CAP_MKNOD (root here, often not in CI): skipped without */
  const char *name = new_name();
  char path[300];
  shm_file(name, path);
  if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) != 0) { /* /dev/null */
    printf("  skipped: mknod: %s (needs CAP_MKNOD)\n", strerror(errno));
    return;
  }
  check_refused(name, "a character device");
  CHECK(unlink(path) == 0);
  /* a block device whose driver is absent fails open() with ENXIO; one that
   * opens is refused by fstat: the same text either way */
  REQUIRE(mknod(path, S_IFBLK | 0600, makedev(7, 250)) == 0);
  check_refused(name, "a block device");
  CHECK(unlink(path) == 0);
}

/* name's alias: name with "-alias" appended (cleaned up by the test) */
static void alias_file(const char *name, char path[300])
{
  snprintf(path, 300, "/dev/shm/%s-alias", name);
}

static void lost_name_to_fifo(const char *name, struct child_result *r)
{
  cudalink_shm *p = NULL;
  char path[300], alias[300];
  shm_file(name, path);
  alias_file(name, alias);
  r->status = -100;
  /* the segment keeps a link (st_nlink 1), so lost_name() must open NAME */
  if (cudalink_shm_create(name, 64, &p, NULL) != CUDALINK_OK || link(path, alias) != 0 ||
      unlink(path) != 0 || mkfifo(path, 0600) != 0)
    return;
  r->status = cudalink_shm_lost_name(p);
  cudalink_shm_close(p);
}

static void test_lost_name_to_fifo(void)
{
  /* the producer's look-up of its name must not block on a FIFO either */
  const char *name = new_name();
  struct child_result r;
  CHECK_EQ_INT(in_child(lost_name_to_fifo, name, &r), 0);
  CHECK_EQ_INT(r.status, 1);
  char path[300], alias[300];
  shm_file(name, path);
  alias_file(name, alias);
  CHECK(unlink(path) == 0);
  CHECK(unlink(alias) == 0);
}

/* ------------------------------------------------------------------------ */
/* failure paths clean up, and say so when they cannot                      */
/* ------------------------------------------------------------------------ */

/* create of a 64 KiB segment where files may not exceed 1000 bytes: the
 * new segment is made, ftruncate fails (EFBIG), and the name must go */
static void create_over_fsize_limit(const char *name, struct child_result *r)
{
  struct rlimit limit = {1000, 1000};
  r->status = -100;
  if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &limit) != 0)
    return;
  cudalink_shm *s = NULL;
  r->created = -1;
  r->status = cudalink_shm_create(name, 65536, &s, &r->created);
  snprintf(r->text, sizeof r->text, "%s", cudalink_shm_last_error());
  cudalink_shm_close(s);
}

static void create_over_fsize_limit_unlink_fails(const char *name, struct child_result *r)
{
  fail_shm_unlink = 1;
  create_over_fsize_limit(name, r);
}

static void test_failed_create_removes_new_segment(void)
{
  const char *name = new_name();
  struct child_result r;
  char want[400];
  CHECK_EQ_INT(in_child(create_over_fsize_limit, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  CHECK_EQ_INT(r.created, 0);
  snprintf(want, sizeof want, "ftruncate(/%s): File too large", name);
  CHECK_STR_CONTAINS(r.text, want);
  CHECK(strstr(r.text, "left behind") == NULL);
  CHECK(!path_exists(name)); /* nothing new is left behind */

  /* the clean-up fails too: the first failure stays first, and the text
   * says what is left */
  CHECK_EQ_INT(in_child(create_over_fsize_limit_unlink_fails, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  snprintf(want, sizeof want,
           "ftruncate(/%s): File too large; the new segment is left behind: shm_unlink(/%s): "
           "Operation not permitted",
           name, name);
  CHECK_STR_CONTAINS(r.text, want);
  CHECK(path_exists(name));
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* owners                                                                    */
/* ------------------------------------------------------------------------ */

static int set_mode(const char *name, mode_t mode)
{
  char path[300];
  shm_file(name, path);
  return chmod(path, mode);
}

static unsigned mode_of(const char *name)
{
  char path[300];
  shm_file(name, path);
  struct stat st;
  return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 07777u;
}

/* "user 'NAME' (uid N, mode M)" as the library should write it for uid,
 * from the password database, or "uid N (mode M)" */
static void expected_owner(unsigned long uid, unsigned mode, char *buf, size_t len)
{
  struct passwd *pw = getpwuid((uid_t)uid);
  if (pw && pw->pw_name[0])
    snprintf(buf, len, "user '%s' (uid %lu, mode %04o)", pw->pw_name, uid, mode);
  else
    snprintf(buf, len, "uid %lu (mode %04o)", uid, mode);
}

/* A uid with no password entry, for the "uid N" form. */
static unsigned long unknown_uid(void)
{
  unsigned long uid = 54321;
  while (getpwuid((uid_t)uid))
    uid++;
  return uid;
}

static void test_owner_text(void)
{
  char buf[200], want[200];
  unsigned long me = (unsigned long)geteuid();
  expected_owner(me, 0600, want, sizeof want);
  CHECK_STR_CONTAINS(want, "user '"); /* this user has a name here */
  CHECK(cudalink_shm_owner_text(me, 0100600, buf, sizeof buf) == buf); /* file type bits dropped */
  CHECK(strcmp(buf, want) == 0);
  unsigned long nobody = unknown_uid();
  snprintf(want, sizeof want, "uid %lu (mode 0666)", nobody);
  cudalink_shm_owner_text(nobody, 0666, buf, sizeof buf);
  CHECK(strcmp(buf, want) == 0);
  char tiny[6] = "xxxxx";
  cudalink_shm_owner_text(me, 0600, tiny, sizeof tiny);
  CHECK_EQ_INT(strlen(tiny), 5);
  CHECK(cudalink_shm_owner_text(me, 0600, NULL, 0) == NULL);
}

static void test_owner_accessor(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  unsigned long uid = 7;
  unsigned mode = 7;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_owner(c, &uid, &mode), 1);
  CHECK_EQ_INT(uid, geteuid());
  CHECK_EQ_INT(mode, 0600);
  REQUIRE(set_mode(name, 0640) == 0); /* others may read: still private enough */
  CHECK_EQ_INT(cudalink_shm_owner(c, NULL, &mode), 1);
  CHECK_EQ_INT(mode, 0640);
  REQUIRE(set_mode(name, 0620) == 0); /* the group may write: a consumer may warn */
  CHECK_EQ_INT(cudalink_shm_owner(c, &uid, NULL), 0);
  REQUIRE(set_mode(name, 0602) == 0);
  CHECK_EQ_INT(cudalink_shm_owner(p, NULL, NULL), 0);
  CHECK_EQ_INT(cudalink_shm_owner(NULL, &uid, &mode), CUDALINK_ERR_INVALID_ARG);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_reuse_refuses_writable_by_others(void)
{
  /* Our own segment, but group or others may write it: someone may hold a
   * writable descriptor already, so it is refused, and left as it was.
   * A consumer still opens it, and can tell. */
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  char who[200], want[400];
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  cudalink_shm_close(p);
  p = NULL;
  static const mode_t modes[] = {0666, 0620, 0602};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    REQUIRE(set_mode(name, modes[i]) == 0);
    int created = 7;
    CHECK_EQ_INT(cudalink_shm_create(name, 128, &p, &created), CUDALINK_ERR_SHM);
    CHECK(p == NULL);
    CHECK_EQ_INT(created, 0);
    expected_owner(geteuid(), (unsigned)modes[i], who, sizeof who);
    snprintf(want, sizeof want,
             "segment '%s' belongs to %s but is writable by its group or others: refusing to "
             "publish into it",
             name, who);
    CHECK_STR_CONTAINS(cudalink_shm_last_error(), want);
    CHECK_EQ_INT(mode_of(name), modes[i]);
    CHECK_EQ_INT(file_size_of(name), 64); /* not grown either */
    CHECK_EQ_INT(cudalink_shm_open(name, &c), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_shm_owner(c, NULL, NULL), 0);
    cudalink_shm_close(c);
    c = NULL;
  }
  /* readable by others only: re-used, and made 0600 */
  REQUIRE(set_mode(name, 0644) == 0);
  CHECK_EQ_INT(cudalink_shm_create(name, 128, &p, NULL), CUDALINK_OK);
  CHECK_EQ_INT(mode_of(name), 0600);
  CHECK_EQ_INT(file_size_of(name), 128);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_reuse_refuses_other_user(void)
{
  /* needs root to give a segment away: skipped without */
  if (geteuid() != 0) {
    printf("  skipped: needs root (fchown to another user)\n");
    return;
  }
  const char *name = new_name();
  char path[300], who[200], want[400];
  shm_file(name, path);
  cudalink_shm *p = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  cudalink_shm_close(p);
  p = NULL;
  /* a named user (nobody, where it exists) and a bare uid */
  const unsigned long owners[] = {65534, unknown_uid()};
  for (int i = 0; i < 2; i++) {
    REQUIRE(chown(path, (uid_t)owners[i], (gid_t)-1) == 0);
    REQUIRE(set_mode(name, 0600) == 0);
    CHECK_EQ_INT(cudalink_shm_create(name, 64, &p, NULL), CUDALINK_ERR_SHM);
    CHECK(p == NULL);
    expected_owner(owners[i], 0600, who, sizeof who);
    snprintf(want, sizeof want, "segment '%s' belongs to %s: refusing to publish into it", name,
             who);
    CHECK_STR_CONTAINS(cudalink_shm_last_error(), want);
    /* the consumer opens it and learns whose it is */
    unsigned long uid = 0;
    unsigned mode = 0;
    REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
    CHECK_EQ_INT(cudalink_shm_owner(c, &uid, &mode), 0);
    CHECK_EQ_INT(uid, owners[i]);
    CHECK_EQ_INT(mode, 0600);
    cudalink_shm_close(c);
    c = NULL;
  }
  if (!getpwuid(65534))
    printf("  note: uid 65534 has no name here: only the bare-uid form was fed\n");
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* as another user (root: setuid to nobody) or unprivileged: as ourselves */
static int drop_to(uid_t uid)
{
  if (geteuid() != 0 || uid == 0)
    return 0;
  return setgid(65534) == 0 && setuid(uid) == 0 ? 0 : -1;
}

static void open_as_nobody(const char *name, struct child_result *r)
{
  if (drop_to(65534) != 0) {
    r->status = -100;
    return;
  }
  call_open(name, r);
}

static void create_as_nobody(const char *name, struct child_result *r)
{
  if (drop_to(65534) != 0) {
    r->status = -100;
    return;
  }
  call_create(name, r);
}

static void test_open_denied_names_owner(void)
{
  /* EACCES from open(): the text says whose segment it is. Root makes a
   * 0600 segment and tries as nobody; others make their own mode 0000 one
   * (root would open anything). */
  const char *name = new_name();
  cudalink_shm *p = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  cudalink_shm_close(p);
  int root = geteuid() == 0;
  unsigned mode = root ? 0600 : 0000;
  REQUIRE(set_mode(name, mode) == 0);
  char who[200], want[400];
  expected_owner(geteuid(), mode, who, sizeof who);

  struct child_result r;
  CHECK_EQ_INT(in_child(open_as_nobody, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  snprintf(want, sizeof want, "shm_open(/%s): Permission denied (the segment belongs to %s)",
           name, who);
  CHECK_STR_CONTAINS(r.text, want);

  CHECK_EQ_INT(in_child(create_as_nobody, name, &r), 0);
  CHECK_EQ_INT(r.status, CUDALINK_ERR_SHM);
  if (root) /* someone else's: the refusal */
    snprintf(want, sizeof want, "segment '%s' belongs to %s: refusing to publish into it", name,
             who);
  CHECK_STR_CONTAINS(r.text, want);
  CHECK_EQ_INT(r.created, 0);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_unlink(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  CHECK(path_exists(name));
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
  CHECK(!path_exists(name));
  CHECK_EQ_INT(cudalink_shm_open(name, &c), CUDALINK_ERR_NOT_FOUND);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_ERR_NOT_FOUND);
  /* the memory lives on while mapped */
  unsigned char *pp = cudalink_shm_data(p);
  pp[10] = 9;
  CHECK_EQ_INT(pp[10], 9);
  cudalink_shm_close(p);
}

static void test_refresh(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *p2 = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 64);
  void *before = cudalink_shm_data(c);
  CHECK_EQ_INT(cudalink_shm_refresh(c), CUDALINK_OK); /* unchanged: same mapping */
  CHECK(cudalink_shm_data(c) == before);

  /* the producer re-initialises with more slots */
  REQUIRE(cudalink_shm_create(name, 1301, &p2, NULL) == CUDALINK_OK);
  ((unsigned char *)cudalink_shm_data(p2))[1300] = 77;
  CHECK_EQ_INT(cudalink_shm_size(c), 64);
  CHECK_EQ_INT(cudalink_shm_refresh(c), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 1301);
  CHECK_EQ_INT(((const unsigned char *)cudalink_shm_data(c))[1300], 77);
  /* the producer's first handle refreshes too */
  CHECK_EQ_INT(cudalink_shm_refresh(p), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(p), 1301);
  ((unsigned char *)cudalink_shm_data(p))[1299] = 78;
  CHECK_EQ_INT(((const unsigned char *)cudalink_shm_data(c))[1299], 78);

  cudalink_shm_close(c);
  cudalink_shm_close(p2);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* truncation seen without a signal (the SIGBUS guard: test_shm_guard.c)     */
/* ------------------------------------------------------------------------ */

static void test_pread(void)
{
  /* the header read from the file, not the mapping: short once truncated,
   * and not limited to what is mapped */
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 433, &p, NULL) == CUDALINK_OK);
  unsigned char *pp = cudalink_shm_data(p);
  for (int i = 0; i < 433; i++)
    pp[i] = (unsigned char)(i * 5 + 1);
  REQUIRE(cudalink_shm_open_sized(name, 64, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 64);

  unsigned char buf[CUDALINK_MAX_LAYOUT_SIZE];
  memset(buf, 0xee, sizeof buf);
  CHECK_EQ_INT(cudalink_shm_pread(c, 0, buf, sizeof buf), 433);
  CHECK(memcmp(buf, pp, 433) == 0);
  CHECK_EQ_INT(buf[433], 0xee); /* nothing written past what is there */
  CHECK_EQ_INT(cudalink_shm_pread(c, 400, buf, 100), 33);
  CHECK(memcmp(buf, pp + 400, 33) == 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 433, buf, 10), 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 1ULL << 40, buf, 10), 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 0, buf, 0), 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 0, NULL, 0), 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 0, NULL, 4), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_shm_pread(c, UINT64_MAX, buf, 4), CUDALINK_ERR_INVALID_ARG);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "offset");

  /* truncated by someone: pread returns what is left, the handle knows */
  CHECK_EQ_INT(cudalink_shm_truncated(c), 0);
  REQUIRE(resize_file(name, 40) == 0);
  CHECK_EQ_INT(cudalink_shm_pread(c, 0, buf, sizeof buf), 40);
  CHECK(memcmp(buf, pp, 40) == 0);
  CHECK_EQ_INT(cudalink_shm_truncated(c), 1); /* fstat: 40 < 64 mapped */
  CHECK_EQ_INT(cudalink_shm_truncated(p), 1);
  char want[300];
  snprintf(want, sizeof want,
           "segment '%s' truncated by another process (the file now has 40 bytes)", name);
  CHECK_EQ_INT(cudalink_shm_check_truncated(c), CUDALINK_ERR_TRUNCATED);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), want);
  /* grown back before anyone touched it: a valid mapping again, nothing
   * fired: no longer truncated */
  REQUIRE(resize_file(name, 433) == 0);
  CHECK_EQ_INT(cudalink_shm_truncated(c), 0);
  CHECK_EQ_INT(cudalink_shm_check_truncated(c), CUDALINK_OK);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_refresh_after_shrink_stays_truncated(void)
{
  /* refresh maps a shrunk file smaller (no page past the end stays
   * mapped), and the handle stays truncated although file and mapping now
   * agree */
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 3 * 4096, &p, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  REQUIRE(resize_file(name, 4096) == 0);
  CHECK_EQ_INT(cudalink_shm_refresh(c), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(c), 4096);
  CHECK_EQ_INT(cudalink_shm_truncated(c), 1);
  CHECK_EQ_INT(cudalink_shm_check_truncated(c), CUDALINK_ERR_TRUNCATED);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "(the file now has 4096 bytes)");
  /* a fresh handle starts clean */
  cudalink_shm *again = NULL;
  REQUIRE(cudalink_shm_open(name, &again) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_truncated(again), 0);
  cudalink_shm_close(again);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* lost name, relink                                                         */
/* ------------------------------------------------------------------------ */

static void test_lost_name(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_lost_name(p), 0);
  CHECK_EQ_INT(cudalink_shm_lost_name(c), 0);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK); /* a Python consumer's tracker */
  CHECK_EQ_INT(cudalink_shm_lost_name(p), 1);
  CHECK_EQ_INT(cudalink_shm_lost_name(c), 1);
  cudalink_shm_close(c);
  cudalink_shm_close(p);
}

static void test_lost_name_other_object(void)
{
  /* Our object keeps a link elsewhere (st_nlink stays 1) while NAME is
   * re-created as another object: lost_name must compare identities. */
  const char *name = new_name();
  const char *alias = new_name();
  char path[300], alias_path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  snprintf(alias_path, sizeof alias_path, "/dev/shm/%s", alias);
  cudalink_shm *p = NULL, *other = NULL;
  int created = 0;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  REQUIRE(link(path, alias_path) == 0);
  REQUIRE(unlink(path) == 0);
  CHECK_EQ_INT(cudalink_shm_lost_name(p), 1); /* linked, but not as NAME */
  REQUIRE(cudalink_shm_create(name, 64, &other, &created) == CUDALINK_OK);
  CHECK_EQ_INT(created, 1);
  CHECK_EQ_INT(cudalink_shm_lost_name(other), 0);
  CHECK_EQ_INT(cudalink_shm_lost_name(p), 1);
  cudalink_shm_close(other);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_unlink(alias), CUDALINK_OK);
}

static void test_relink(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL, *old_reader = NULL, *fresh = NULL, *late = NULL, *again = NULL;
  REQUIRE(cudalink_shm_create(name, 433, &p, NULL) == CUDALINK_OK);
  unsigned char *pp = cudalink_shm_data(p);
  for (int i = 0; i < 433; i++)
    pp[i] = (unsigned char)(i * 7 + 3);
  REQUIRE(cudalink_shm_open(name, &old_reader) == CUDALINK_OK);

  /* name still there: relink refuses, it is not ours to replace */
  CHECK_EQ_INT(cudalink_shm_relink(p, &fresh), CUDALINK_ERR_BUSY);
  CHECK(fresh == NULL);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), name);

  REQUIRE(cudalink_shm_unlink(name) == CUDALINK_OK);
  REQUIRE(cudalink_shm_lost_name(p) == 1);
  REQUIRE(cudalink_shm_relink(p, &fresh) == CUDALINK_OK);
  REQUIRE(fresh != NULL);
  CHECK_EQ_INT(cudalink_shm_size(fresh), 433);
  CHECK(strcmp(cudalink_shm_name(fresh), name) == 0);
  CHECK(cudalink_shm_data(fresh) != cudalink_shm_data(p));
  CHECK(memcmp(cudalink_shm_data(fresh), pp, 433) == 0);
  CHECK_EQ_INT(cudalink_shm_lost_name(fresh), 0);
  CHECK_EQ_INT(cudalink_shm_lost_name(p), 1);

  /* a late joiner finds the copy */
  REQUIRE(cudalink_shm_open(name, &late) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_size(late), 433);
  CHECK(memcmp(cudalink_shm_data(late), pp, 433) == 0);
  ((unsigned char *)cudalink_shm_data(fresh))[20] = 0xee;
  CHECK_EQ_INT(((const unsigned char *)cudalink_shm_data(late))[20], 0xee);

  /* the old mapping still works for readers that had it, and is separate */
  pp[21] = 0x5a;
  CHECK_EQ_INT(((const unsigned char *)cudalink_shm_data(old_reader))[21], 0x5a);
  CHECK(((const unsigned char *)cudalink_shm_data(late))[21] != 0x5a);

  /* relink again while the name exists (our fresh copy holds it): BUSY */
  CHECK_EQ_INT(cudalink_shm_relink(p, &again), CUDALINK_ERR_BUSY);
  CHECK(again == NULL);

  cudalink_shm_close(late);
  cudalink_shm_close(old_reader);
  cudalink_shm_close(fresh);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* across processes                                                          */
/* ------------------------------------------------------------------------ */

static void test_fork_shares_memory(void)
{
  const char *name = new_name();
  int to_child[2], to_parent[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(to_parent) == 0);
  /* fork first: the child inherits nothing of the segment and opens it by
   * name itself */
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 0;
    cudalink_shm *s = NULL;
    int created = -1;
    if (recv_byte(to_child[0]) != 'w')
      rc = 1;
    else if (cudalink_shm_create(name, 256, &s, &created) != CUDALINK_OK)
      rc = 2;
    else if (created != 0)
      rc = 3;
    else if (memcmp(cudalink_shm_data(s), "from parent", 12) != 0)
      rc = 4;
    if (s) {
      memcpy((char *)cudalink_shm_data(s) + 128, "from child", 11);
      cudalink_shm_close(s);
    }
    send_byte(to_parent[1], 'd');
    _exit(rc);
  }
  cudalink_shm *p = NULL;
  CHECK_EQ_INT(cudalink_shm_create(name, 256, &p, NULL), CUDALINK_OK);
  if (p)
    memcpy(cudalink_shm_data(p), "from parent", 12);
  CHECK(send_byte(to_child[1], 'w') == 0);
  CHECK_EQ_INT(recv_byte(to_parent[0]), 'd');
  CHECK_EQ_INT(child_status(pid), 0);
  if (p)
    CHECK(memcmp((char *)cudalink_shm_data(p) + 128, "from child", 11) == 0);
  cudalink_shm_close(p);
  close(to_child[0]);
  close(to_child[1]);
  close(to_parent[0]);
  close(to_parent[1]);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_lock_same_process(void)
{
  /* OFD locks belong to open file descriptions, so two producers in one
   * process exclude each other too */
  const char *name = new_name();
  cudalink_shm *a = NULL, *b = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &a, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_create(name, 64, &b, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  CHECK_EQ_INT(cudalink_shm_lock(a), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_lock(a), CUDALINK_OK); /* again: still ours */
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 1);
  CHECK_EQ_INT(cudalink_shm_is_locked(b), 1);
  CHECK_EQ_INT(cudalink_shm_is_locked(a), 0); /* one's own lock never conflicts */
  CHECK_EQ_INT(cudalink_shm_lock(b), CUDALINK_ERR_BUSY);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "locked");
  cudalink_shm_close(a);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  CHECK_EQ_INT(cudalink_shm_lock(b), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 1);
  cudalink_shm_close(b);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  cudalink_shm_close(c);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_lock_across_fork(void)
{
  /* The parent holds the lock; a child opening its OWN description gets
   * BUSY and sees the lock from its consumer handle. */
  const char *name = new_name();
  cudalink_shm *a = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &a, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_lock(a) == CUDALINK_OK);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    /* the child inherited a's descriptor too, but opens its own */
    int rc = 0;
    cudalink_shm *mine = NULL, *reader = NULL;
    if (cudalink_shm_create(name, 64, &mine, NULL) != CUDALINK_OK)
      rc = 1;
    else if (cudalink_shm_lock(mine) != CUDALINK_ERR_BUSY)
      rc = 2;
    else if (cudalink_shm_open(name, &reader) != CUDALINK_OK)
      rc = 3;
    else if (cudalink_shm_is_locked(reader) != 1)
      rc = 4;
    cudalink_shm_close(reader);
    cudalink_shm_close(mine);
    _exit(rc);
  }
  CHECK_EQ_INT(child_status(pid), 0);
  cudalink_shm_close(a);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* A child that creates NAME, locks it, says 'l' and then obeys: 'c' close
 * and say 'x', 'q' exit. Forked before the parent opens anything. */
static pid_t spawn_holder(const char *name, int to_child[2], int to_parent[2])
{
  if (pipe(to_child) != 0 || pipe(to_parent) != 0)
    return -1;
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  cudalink_shm *s = NULL;
  int rc = 0;
  if (cudalink_shm_create(name, 64, &s, NULL) != CUDALINK_OK || cudalink_shm_lock(s) != 0)
    rc = 1;
  close(to_child[1]); /* so that a parent gone away reads as EOF */
  close(to_parent[0]);
  send_byte(to_parent[1], rc ? 'e' : 'l');
  for (;;) {
    int cmd = recv_byte(to_child[0]);
    if (cmd == 'c') {
      cudalink_shm_close(s);
      s = NULL;
      send_byte(to_parent[1], 'x');
    } else {
      break;
    }
  }
  cudalink_shm_close(s);
  _exit(rc);
}

static void close_pipes(int a[2], int b[2])
{
  close(a[0]);
  close(a[1]);
  close(b[0]);
  close(b[1]);
}

static void test_is_locked_follows_holder(void)
{
  const char *name = new_name();
  int to_child[2], to_parent[2];
  pid_t pid = spawn_holder(name, to_child, to_parent);
  REQUIRE(pid > 0);
  REQUIRE(recv_byte(to_parent[0]) == 'l');
  cudalink_shm *c = NULL, *mine = NULL;
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 1);
  REQUIRE(cudalink_shm_create(name, 64, &mine, NULL) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_lock(mine), CUDALINK_ERR_BUSY);
  /* the holder closes its segment but lives on */
  CHECK(send_byte(to_child[1], 'c') == 0);
  CHECK_EQ_INT(recv_byte(to_parent[0]), 'x');
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  CHECK_EQ_INT(cudalink_shm_lock(mine), CUDALINK_OK);
  cudalink_shm_close(mine);
  CHECK(send_byte(to_child[1], 'q') == 0);
  CHECK_EQ_INT(child_status(pid), 0);
  cudalink_shm_close(c);
  close_pipes(to_child, to_parent);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_is_locked_after_sigkill(void)
{
  const char *name = new_name();
  int to_child[2], to_parent[2];
  pid_t pid = spawn_holder(name, to_child, to_parent);
  REQUIRE(pid > 0);
  REQUIRE(recv_byte(to_parent[0]) == 'l');
  cudalink_shm *c = NULL;
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 1);
  CHECK(kill(pid, SIGKILL) == 0);
  CHECK_EQ_INT(child_status(pid), 100 + SIGKILL);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  /* the segment itself survives a crashed producer */
  CHECK_EQ_INT(cudalink_shm_lost_name(c), 0);
  cudalink_shm_close(c);
  close_pipes(to_child, to_parent);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

static void test_lock_inherited_by_fork(void)
{
  /* documented caveat: a child forked while the lock is held shares the
   * open file description, so the lock outlives the parent's close() until
   * the child exits */
  const char *name = new_name();
  cudalink_shm *a = NULL, *c = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &a, NULL) == CUDALINK_OK);
  REQUIRE(cudalink_shm_lock(a) == CUDALINK_OK);
  REQUIRE(cudalink_shm_open(name, &c) == CUDALINK_OK);
  int to_child[2];
  REQUIRE(pipe(to_child) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(to_child[1]);
    int rc = recv_byte(to_child[0]) == -1 ? 0 : 1; /* wait for EOF */
    _exit(rc);
  }
  close(to_child[0]);
  cudalink_shm_close(a);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 1); /* the child's copy holds it */
  close(to_child[1]);                         /* child exits on EOF */
  CHECK_EQ_INT(child_status(pid), 0);
  CHECK_EQ_INT(cudalink_shm_is_locked(c), 0);
  cudalink_shm_close(c);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* ------------------------------------------------------------------------ */
/* futex                                                                     */
/* ------------------------------------------------------------------------ */

static void test_futex_local(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL;
  REQUIRE(cudalink_shm_create(name, 64, &p, NULL) == CUDALINK_OK);
  volatile uint32_t *word = cudalink_shm_data(p);
  *word = 5;

  /* value differs: returns at once */
  int64_t t0 = now_ns();
  CHECK_EQ_INT(cudalink_futex_wait(word, 4, 2000000), CUDALINK_OK);
  int64_t dt = now_ns() - t0;
  CHECK(dt < 500 * 1000000LL);

  /* equal: times out after about the timeout */
  const int64_t timeout_us = 30000;
  t0 = now_ns();
  CHECK_EQ_INT(cudalink_futex_wait(word, 5, timeout_us), CUDALINK_ERR_TIMEOUT);
  dt = now_ns() - t0;
  CHECK(dt >= timeout_us * 1000 - 1000000); /* 1 ms slack for clock granularity */
  CHECK(dt <= (10 * timeout_us + 50000) * 1000);

  t0 = now_ns();
  CHECK_EQ_INT(cudalink_futex_wait(word, 5, 0), CUDALINK_ERR_TIMEOUT);
  CHECK(now_ns() - t0 < 500 * 1000000LL);

  /* bad arguments */
  CHECK_EQ_INT(cudalink_futex_wait(NULL, 0, 10), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_futex_wait(word, 5, -1), CUDALINK_ERR_INVALID_ARG);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "negative");
  const volatile uint32_t *odd =
      (const volatile uint32_t *)(const void *)((const volatile char *)word + 1);
  CHECK_EQ_INT(cudalink_futex_wait(odd, 0, 10), CUDALINK_ERR_INVALID_ARG);
  CHECK_STR_CONTAINS(cudalink_shm_last_error(), "aligned");

  cudalink_futex_wake(word); /* nobody waits: harmless */
  cudalink_futex_wake(NULL);
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

/* Latency segment: seq (parent -> child), ack (child -> parent), then the
 * parent's time just before each wake and the child's time once woken. */
#define ROUNDS 200
#define WAIT_LIMIT_NS 5000000000LL /* a round that takes this long: no wake came */
#define WOKEN_WITHIN_NS 1000000000LL /* sanity bound on one wake-up */
struct latency_area {
  uint32_t seq;
  uint32_t ack;
  uint32_t child_failed; /* round whose wait failed, 0 if none */
  uint32_t pad;
  int64_t t_wake[ROUNDS + 1];
  int64_t t_woken[ROUNDS + 1];
};

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The child sleeps on seq through a READ-ONLY consumer mapping (as our
 * consumers do), and reports through its own read-write mapping. It gives
 * up at the first round not woken within WOKEN_WITHIN_NS: its own futex
 * timeout is far longer, so a wake that never arrives shows up as a slow
 * round, not as a round rescued by the timeout. */
static int latency_child(const char *name)
{
  cudalink_shm *ro = NULL, *rw = NULL;
  if (cudalink_shm_open(name, &ro) != CUDALINK_OK ||
      cudalink_shm_create(name, sizeof(struct latency_area), &rw, NULL) != CUDALINK_OK) {
    cudalink_shm_close(ro);
    return 1;
  }
  const struct latency_area *in = cudalink_shm_data(ro);
  struct latency_area *out = cudalink_shm_data(rw);
  uint32_t seen = 0;
  int rc = 0;
  while (seen < ROUNDS) {
    __atomic_store_n(&out->ack, seen, __ATOMIC_RELEASE);
    cudalink_futex_wake(&out->ack);
    int64_t give_up = now_ns() + WAIT_LIMIT_NS;
    uint32_t v;
    while ((v = __atomic_load_n(&in->seq, __ATOMIC_ACQUIRE)) == seen) {
      int64_t left_us = (give_up - now_ns()) / 1000;
      if (left_us <= 0 || cudalink_futex_wait(&in->seq, seen, left_us) == CUDALINK_ERR_SHM)
        break;
    }
    int64_t t = now_ns();
    if (v != seen + 1) {
      rc = 2; /* never woken, or a round skipped */
    } else {
      out->t_woken[v] = t;
      if (t - in->t_wake[v] > WOKEN_WITHIN_NS)
        rc = 3;
    }
    if (rc) {
      out->child_failed = seen + 1;
      break;
    }
    seen = v;
  }
  __atomic_store_n(&out->ack, seen, __ATOMIC_RELEASE);
  cudalink_futex_wake(&out->ack);
  cudalink_shm_close(ro);
  cudalink_shm_close(rw);
  return rc;
}

static void test_futex_cross_process_latency(void)
{
  const char *name = new_name();
  cudalink_shm *p = NULL;
  REQUIRE(cudalink_shm_create(name, sizeof(struct latency_area), &p, NULL) == CUDALINK_OK);
  struct latency_area *a = cudalink_shm_data(p);
  pid_t pid = fork();
  if (pid == 0)
    _exit(latency_child(name));
  if (pid < 0) {
    cudalink_shm_close(p);
    REQUIRE(pid >= 0);
  }
  int ok = 1, status = -1;
  for (uint32_t i = 1; i <= ROUNDS && ok; i++) {
    /* wait for the child's ack of round i-1, or its early exit */
    int64_t give_up = now_ns() + 2 * WAIT_LIMIT_NS;
    uint32_t ack;
    while ((ack = __atomic_load_n(&a->ack, __ATOMIC_ACQUIRE)) != i - 1) {
      int st;
      if (now_ns() > give_up || waitpid(pid, &st, WNOHANG) == pid) {
        fprintf(stderr, "  round %u: no ack from the child (child failed in round %u)\n", i,
                a->child_failed);
        ok = 0;
        if (now_ns() > give_up)
          kill(pid, SIGKILL);
        break;
      }
      cudalink_futex_wait(&a->ack, ack, 100000);
    }
    if (!ok)
      break;
    sleep_us(300); /* let the child get into FUTEX_WAIT */
    a->t_wake[i] = now_ns();
    __atomic_store_n(&a->seq, i, __ATOMIC_RELEASE);
    cudalink_futex_wake(&a->seq);
  }
  if (ok)
    status = child_status(pid);
  else
    waitpid(pid, NULL, 0); /* reaped already, or killed: ECHILD is fine */
  CHECK(ok);
  CHECK_EQ_INT(status, 0);
  CHECK_EQ_INT(a->child_failed, 0);
  if (ok && status == 0) {
    int64_t lat[ROUNDS];
    int bad = 0;
    for (int i = 1; i <= ROUNDS; i++) {
      lat[i - 1] = a->t_woken[i] - a->t_wake[i];
      if (lat[i - 1] < 0 || lat[i - 1] > WOKEN_WITHIN_NS)
        bad++;
    }
    CHECK_EQ_INT(bad, 0);
    qsort(lat, ROUNDS, sizeof lat[0], cmp_i64);
    printf("  futex wake latency over %d cross-process round trips: p50 %.1f us, "
           "p99 %.1f us, max %.1f us\n",
           ROUNDS, lat[ROUNDS / 2] / 1000.0, lat[ROUNDS * 99 / 100] / 1000.0,
           lat[ROUNDS - 1] / 1000.0);
  }
  cudalink_shm_close(p);
  CHECK_EQ_INT(cudalink_shm_unlink(name), CUDALINK_OK);
}

int main(void)
{
  install_crash_cleanup();
  RUN_TEST(test_name_checks);
  RUN_TEST(test_longest_name_works);
  RUN_TEST(test_bad_arguments);
  RUN_TEST(test_create_reuse_grow);
  RUN_TEST(test_open);
  RUN_TEST(test_open_empty_segment);
  RUN_TEST(test_open_sized);
  RUN_TEST(test_create_maps_only_layout);
  RUN_TEST(test_fifo_is_not_a_segment);
  RUN_TEST(test_directory_is_not_a_segment);
  RUN_TEST(test_socket_is_not_a_segment);
  RUN_TEST(test_symlink_is_not_followed);
  RUN_TEST(test_devices_are_not_segments);
  RUN_TEST(test_lost_name_to_fifo);
  RUN_TEST(test_failed_create_removes_new_segment);
  RUN_TEST(test_owner_text);
  RUN_TEST(test_owner_accessor);
  RUN_TEST(test_reuse_refuses_writable_by_others);
  RUN_TEST(test_reuse_refuses_other_user);
  RUN_TEST(test_open_denied_names_owner);
  RUN_TEST(test_unlink);
  RUN_TEST(test_refresh);
  RUN_TEST(test_pread);
  RUN_TEST(test_refresh_after_shrink_stays_truncated);
  RUN_TEST(test_lost_name);
  RUN_TEST(test_lost_name_other_object);
  RUN_TEST(test_relink);
  RUN_TEST(test_fork_shares_memory);
  RUN_TEST(test_lock_same_process);
  RUN_TEST(test_lock_across_fork);
  RUN_TEST(test_is_locked_follows_holder);
  RUN_TEST(test_is_locked_after_sigkill);
  RUN_TEST(test_lock_inherited_by_fork);
  RUN_TEST(test_futex_local);
  RUN_TEST(test_futex_cross_process_latency);
  unlink_all();
  return TEST_SUMMARY();
}
