/* Named shared memory, the producer lock and the futex wake-up (shm.h).
 *
 * POSIX: shm_open("/" NAME), which is /dev/shm/NAME on Linux, the object
 * Python's multiprocessing.shared_memory.SharedMemory(name=NAME) opens.
 * Windows: a named file mapping NAME backed by the paging file, what
 * SharedMemory(name=NAME) uses there: shm_win32.c. This file holds the
 * common part and POSIX. No CUDA in these files.
 *
 * POSIX mappings are covered by a process-wide SIGBUS guard (see "SIGBUS
 * guard" below): another process truncating a segment cannot kill us. */
#include "shm.h"
#include "shm_internal.h"
#include "util.h"

#define set_error cudalink_shm_set_error

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#  include <errno.h>
#  include <fcntl.h>
#  include <limits.h>
#  include <pwd.h>
#  include <sched.h>
#  include <signal.h>
#  include <stdatomic.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <sys/syscall.h>
#  include <time.h>
#  include <unistd.h>
#  ifdef __linux__
#    include <linux/futex.h>
#  endif
#endif

/* Python creates its segments with mode 0o600 (SharedMemory._mode), so a
 * segment is readable and writable by its owner only, whichever side
 * creates it. We match that: the umask still applies on top. */
#define SHM_MODE 0600

/* How often the fallback futex (no cross-process wait primitive) looks. */
#define POLL_STEP_US 500

/* What data() gives for an empty segment: never NULL, never writable. */
const unsigned char cudalink_shm_empty[1];

/* ------------------------------------------------------------------------ */
/* Last error, per thread                                                    */
/* ------------------------------------------------------------------------ */

static _Thread_local char shm_error[512]; /* room for a 200-byte name twice */
/* > 0 while cleaning up after a failure: set_error() then adds to the
 * failure's text ("; ...") instead of replacing it (CLEANUP()). */
_Thread_local int cudalink_shm_error_cleanup;

void
cudalink_shm_vset_error(const char *fmt, va_list ap)
{
  char text[sizeof shm_error];
  int n = vsnprintf(text, sizeof text, fmt, ap);
  if (n < 0) /* an encoding error: the text is undefined, the format says most */
    cudalink_textf(text, sizeof text, "%s", fmt);
  size_t used = cudalink_shm_error_cleanup > 0 ? strlen(shm_error) : 0;
  if (used == 0)
    cudalink_textf(shm_error, sizeof shm_error, "%s", text);
  else
    cudalink_textf(shm_error + used, sizeof shm_error - used, "; %s", text);
}

void
cudalink_shm_set_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cudalink_shm_vset_error(fmt, ap);
  va_end(ap);
}

const char *
cudalink_shm_last_error(void)
{
  return shm_error;
}

#ifndef _WIN32
/* strerror_r exists in two flavours: GNU (returns the text) and XSI. */
static const char *
errno_text(int err, char *buf, size_t len)
{
#  if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len);
#  else
  if (strerror_r(err, buf, len) != 0)
    cudalink_textf(buf, len, "error %d", err);
  return buf;
#  endif
}

/* "shm_open(/name): Permission denied" from errno; returns status. */
static cudalink_status
errno_error(cudalink_status status, const char *call, const char *name, int err)
{
  char text[128];
  set_error("%s(/%s): %s", call, name, errno_text(err, text, sizeof text));
  return status;
}
#endif

/* ------------------------------------------------------------------------ */
/* Names and accessors                                                       */
/* ------------------------------------------------------------------------ */

cudalink_status
cudalink_check_name_why(const char *name, char *why, size_t why_size)
{
  char text[256] = "";
  cudalink_status st = CUDALINK_ERR_BAD_NAME;
  size_t len = name ? strlen(name) : 0;
  const char *p;

  if (!name) {
    cudalink_textf(text, sizeof text, "the segment name is NULL");
  } else if (len == 0) {
    cudalink_textf(text, sizeof text, "the segment name is empty");
  } else if (len > CUDALINK_MAX_NAME) {
    cudalink_textf(text, sizeof text, "the segment name is %lu bytes long, at most %u are allowed",
                   (unsigned long)len, CUDALINK_MAX_NAME);
  } else if ((p = strpbrk(name, "/\\")) != NULL) {
    cudalink_textf(text, sizeof text,
                   "the segment name contains '%c' at byte %ld (names are a single component: "
                   "/dev/shm/NAME)",
                   *p, (long)(p - name));
  } else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
    cudalink_textf(text, sizeof text, "the segment name \"%s\" is not allowed", name);
  } else if (strncmp(name, CUDALINK_HOLDS_PREFIX, sizeof CUDALINK_HOLDS_PREFIX - 1) == 0) {
    cudalink_textf(text, sizeof text,
                   "names starting with \"" CUDALINK_HOLDS_PREFIX "\" are cudalink's own (the "
                   "import back-channel of another segment)");
  } else {
    st = CUDALINK_OK;
    for (p = name; *p; p++) {
      unsigned char c = (unsigned char)*p;
      if (c < 0x20 || c == 0x7f) {
        cudalink_textf(text, sizeof text,
                       "the segment name contains control character 0x%02x at byte %ld", c,
                       (long)(p - name));
        st = CUDALINK_ERR_BAD_NAME;
        break;
      }
    }
  }
  if (why && why_size > 0)
    cudalink_textf(why, why_size, "%s", text);
  return st;
}

cudalink_status
cudalink_shm_check_name(const char *name)
{
  char why[256];
  cudalink_status st = cudalink_check_name_why(name, why, sizeof why);
  if (st != CUDALINK_OK)
    set_error("%s", why);
  return st;
}

void *
cudalink_shm_data(const cudalink_shm *shm)
{
  return shm ? shm->data : NULL;
}

size_t
cudalink_shm_size(const cudalink_shm *shm)
{
  return shm ? shm->size : 0;
}

const char *
cudalink_shm_name(const cudalink_shm *shm)
{
  return shm ? shm->name : NULL;
}

cudalink_shm *
cudalink_shm_alloc(const char *name, int writable, size_t max_map)
{
  cudalink_shm *shm = calloc(1, sizeof *shm);
  if (!shm) {
    set_error("out of memory");
    return NULL;
  }
  /* check_name() has bounded the length */
  memcpy(shm->name, name, strlen(name) + 1);
  shm->writable = writable;
  shm->max_map = max_map;
  shm->data = (void *)cudalink_shm_empty;
#ifndef _WIN32
  shm->fd = -1;
#endif
  return shm;
}

/* What every platform's cudalink_shm_open_sized() checks first. */
cudalink_status
cudalink_shm_open_args_ok(const char *name, size_t max_map, cudalink_shm **out)
{
  if (out)
    *out = NULL;
  cudalink_status st = cudalink_shm_check_name(name);
  if (st != CUDALINK_OK)
    return st;
  if (!out || max_map == 0) {
    set_error("cudalink_shm_open: %s", !out ? "out is NULL" : "max_map is 0");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK;
}

/* What every platform's cudalink_shm_create_sized() checks first. */
cudalink_status
cudalink_shm_create_args_ok(const char *name, size_t size, size_t max_map, cudalink_shm **out,
                            int *created)
{
  if (out)
    *out = NULL;
  if (created)
    *created = 0;
  cudalink_status st = cudalink_shm_check_name(name);
  if (st != CUDALINK_OK)
    return st;
  if (!out || size == 0 || max_map < size) {
    set_error("cudalink_shm_create: %s", !out        ? "out is NULL"
                                         : size == 0 ? "size is 0"
                                                     : "max_map is smaller than size");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK;
}

cudalink_status
cudalink_shm_create(const char *name, size_t size, cudalink_shm **out, int *created)
{
  return cudalink_shm_create_sized(name, size, SIZE_MAX, out, created);
}

cudalink_status
cudalink_shm_open(const char *name, cudalink_shm **out)
{
  return cudalink_shm_open_sized(name, SIZE_MAX, out);
}

#ifndef _WIN32
/* ======================================================================== */
/* POSIX                                                                     */
/* ======================================================================== */

static size_t
min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

static void
shm_path(const char *name, char path[CUDALINK_MAX_NAME + 2])
{
  path[0] = '/';
  memcpy(path + 1, name, strlen(name) + 1);
}

/* Flags every shm_open() here adds. What NAME holds is not trusted:
 * O_NONBLOCK: a FIFO under /dev/shm/NAME would block open() until a writer
 *   came, for ever; so it returns at once and fstat() refuses the FIFO.
 * O_NOFOLLOW: a symbolic link fails (ELOOP) instead of leading elsewhere.
 * O_NOCTTY: a terminal device never becomes our controlling terminal.
 * O_CLOEXEC: no descriptor leaks into exec'd children.
 * (glibc adds O_NOFOLLOW | O_CLOEXEC itself, musl O_NONBLOCK too; both
 * pass the others through to open().) Linux only: other systems' shm_open
 * refuses extra flags, and their objects live outside the file system,
 * where no FIFO or link can take a segment's place. O_NONBLOCK stays set
 * on the descriptor; it changes nothing for a regular file. */
#  ifdef __linux__
#    define SHM_OPEN_FLAGS (O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)
#    define SHM_DIR "/dev/shm/"
#  else
#    define SHM_OPEN_FLAGS 0
#  endif

/* shm_open("/" NAME) with SHM_OPEN_FLAGS: the descriptor, or -1 and errno. */
static int
open_fd(const char *name, int flags, mode_t mode)
{
  char path[CUDALINK_MAX_NAME + 2];
  shm_path(name, path);
  return shm_open(path, flags | SHM_OPEN_FLAGS, mode);
}

/* Clean-ups for failure paths (run them under CLEANUP()). */
static void
undo_fd(const char *name, int fd)
{
  /* fails only with EINTR/EIO, after which the descriptor is gone on
   * Linux: retrying could close someone else's */
  if (close(fd) != 0)
    (void)errno_error(CUDALINK_ERR_SHM, "close", name, errno);
}

/* Removes the segment a failed call created ("nothing new is left
 * behind"); says so when it cannot. */
static void
undo_create(const char *name)
{
  char path[CUDALINK_MAX_NAME + 2], text[128];
  shm_path(name, path);
  if (shm_unlink(path) != 0 && errno != ENOENT)
    set_error("the new segment is left behind: shm_unlink(/%s): %s", name,
              errno_text(errno, text, sizeof text));
}

const char *
cudalink_file_type_text(mode_t mode)
{
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISLNK(mode))
    return "a symbolic link";
  return "a file of unknown type";
}

/* "'NAME' is a FIFO, not a shared-memory segment" */
static cudalink_status
not_a_segment(const char *name, mode_t mode)
{
  set_error("'%s' is %s, not a shared-memory segment", name, cudalink_file_type_text(mode));
  return CUDALINK_ERR_SHM;
}

const char *
cudalink_shm_owner_text(unsigned long uid, unsigned mode, char *buf, size_t len)
{
  if (!buf || len == 0)
    return buf;
  /* getpwuid_r's buffer holds every string of the entry (name, gecos,
   * home, shell); one retry with a large one if that is not enough */
  char small[1024];
  char *strings = small;
  size_t strings_len = sizeof small;
  struct passwd pw, *found = NULL;
  int err;
  while ((err = getpwuid_r((uid_t)uid, &pw, strings, strings_len, &found)) == ERANGE &&
         strings == small) {
    strings_len = 65536;
    if (!(strings = malloc(strings_len))) {
      strings = small;
      break;
    }
  }
  /* err != 0 (ERANGE twice, EIO, ...) or no entry: the number alone */
  if (err == 0 && found && found->pw_name && found->pw_name[0])
    cudalink_textf(buf, len, "user '%s' (uid %lu, mode %04o)", found->pw_name, uid, mode & 07777u);
  else
    cudalink_textf(buf, len, "uid %lu (mode %04o)", uid, mode & 07777u);
  if (strings != small)
    free(strings);
  return buf;
}

/* The owner rule for publishing: this process's effective user's, and
 * nobody else may write it (group or others writing it could have a
 * writable descriptor open already: a later chmod would not take it). */
static int
owner_ok(const struct stat *st)
{
  return st->st_uid == geteuid() && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* "segment 'NAME' belongs to user 'bob' (uid 1001, mode 0666): refusing to
 * publish into it" for a segment that fails owner_ok(). */
static cudalink_status
not_ours(const char *name, const struct stat *st)
{
  char who[160];
  cudalink_shm_owner_text((unsigned long)st->st_uid, (unsigned)st->st_mode, who, sizeof who);
  set_error("segment '%s' belongs to %s%s: refusing to publish into it", name, who,
            st->st_uid == geteuid() ? " but is writable by its group or others" : "");
  return CUDALINK_ERR_SHM;
}

/* Why opening NAME failed with err. open() itself says little about what
 * it found (a socket gives ENXIO, a directory EISDIR, which glibc turns
 * into EINVAL, a link ELOOP, someone else's segment EACCES): on Linux, look
 * at the name and say what it holds, and whose it is. for_writing: the
 * producer, which would refuse someone else's segment anyway. ENOENT is
 * ERR_NOT_FOUND, everything else ERR_SHM. */
static cudalink_status
open_failed(const char *name, int err, int for_writing)
{
#  ifdef SHM_DIR
  if (err != ENOENT) {
    char path[sizeof SHM_DIR + CUDALINK_MAX_NAME];
    struct stat st;
    cudalink_textf(path, sizeof path, SHM_DIR "%s", name);
    /* lstat failing (gone meanwhile, say) leaves the plain errno text */
    if (lstat(path, &st) == 0) {
      if (!S_ISREG(st.st_mode))
        return not_a_segment(name, st.st_mode);
      if (err == EACCES && for_writing && !owner_ok(&st))
        return not_ours(name, &st);
      if (err == EACCES) {
        char text[128], who[160];
        cudalink_shm_owner_text((unsigned long)st.st_uid, (unsigned)st.st_mode, who, sizeof who);
        set_error("shm_open(/%s): %s (the segment belongs to %s)", name,
                  errno_text(err, text, sizeof text), who);
        return CUDALINK_ERR_SHM;
      }
    }
  }
#  else
  (void)for_writing;
#  endif
  return errno_error(err == ENOENT ? CUDALINK_ERR_NOT_FOUND : CUDALINK_ERR_SHM, "shm_open", name,
                     err);
}

/* -- SIGBUS guard ----------------------------------------------------------
 * Touching a MAP_SHARED page past the end of its file raises SIGBUS, so
 * one ftruncate() by a buggy or hostile peer would kill every process that
 * maps the segment. Every mapping made here is therefore registered with a
 * process-wide SIGBUS handler (installed on first use, never removed).
 * When the faulting address lies in one of our mappings, the handler maps
 * anonymous zero pages over that whole mapping (mmap MAP_FIXED, a plain
 * system call, fine in a handler), marks it and returns: the access runs
 * again and reads zeros; writes land in private memory. Any other SIGBUS
 * goes to the handler that was installed before ours, or gets what it
 * would have got without us: ignored if it was sent and ignored, else the
 * process dies of it (the default action is restored and it is raised).
 *
 * The registry is a list the handler walks without locks. Writers (map and
 * unmap, from any thread) exclude each other with a spin lock. A node
 * leaves the list before its mapping is unmapped and is freed only when no
 * handler is inside the list (guard_readers): a handler never remaps an
 * address range that is no longer ours, nor reads a freed node.
 *
 * Limits: a handler installed after ours that does not chain bypasses it;
 * the previous handler runs with our signal mask, not its own sa_mask; a
 * child fork()ed while another thread held the spin lock or was inside the
 * handler (microseconds) would wait for ever on its next map or unmap.
 * Under valgrind a handler that returns resumes with stale registers,
 * unless it runs with --vex-iropt-register-updates=allregs-at-mem-access. */

enum { GUARD_LIVE, GUARD_ZEROING, GUARD_ZEROED, GUARD_FAILED };

struct guard_node {
  _Atomic(struct guard_node *) next;
  uintptr_t start; /* the mapping, fixed while the node is listed */
  size_t len;
  int prot;
  atomic_int state; /* GUARD_*: the "truncated" flag */
};

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "the SIGBUS handler needs lock-free atomics");

static _Atomic(struct guard_node *) guard_list;
static atomic_int guard_readers; /* handlers inside the list */
/* Excludes writers of the list from each other; guards guard_installed. */
static atomic_flag guard_lock = ATOMIC_FLAG_INIT;
static int guard_installed;
/* Written before our handler is installed, read only by it. */
static struct sigaction guard_previous;
static struct sigaction guard_default;

/* Kernel-made faults have si_code > 0; kill(), sigqueue() and tgkill()
 * have si_code <= 0 and an si_addr that means nothing. BUS_MCEERR_AO is an
 * asynchronous notice: nothing faults again if it is ignored. */
static int
guard_is_fault(const siginfo_t *info)
{
  if (!info || info->si_code <= 0)
    return 0;
#  ifdef BUS_MCEERR_AO
  if (info->si_code == BUS_MCEERR_AO)
    return 0;
#  endif
  return 1;
}

/* 1 if addr lies in one of our mappings, which then reads zeros (or is
 * being zeroed by another thread: running the access again is right then
 * too); 0 if it is not ours, or could not be zeroed. Signal handler safe. */
static int
guard_zero_at(uintptr_t addr)
{
  int handled = 0;
  atomic_fetch_add(&guard_readers, 1);
  for (struct guard_node *n = atomic_load(&guard_list); n; n = atomic_load(&n->next)) {
    if (addr - n->start >= n->len)
      continue;
    int state = GUARD_LIVE;
    if (atomic_compare_exchange_strong(&n->state, &state, GUARD_ZEROING)) {
      void *p =
          mmap((void *)n->start, n->len, n->prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      state = p == MAP_FAILED ? GUARD_FAILED : GUARD_ZEROED;
      atomic_store(&n->state, state);
    }
    handled = state != GUARD_FAILED;
    break;
  }
  atomic_fetch_sub(&guard_readers, 1);
  return handled;
}

/* A SIGBUS that is not ours: what would have happened without us. */
static void
guard_chain(int sig, siginfo_t *info, void *uctx)
{
  const struct sigaction *prev = &guard_previous;
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction) {
      prev->sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (prev->sa_handler == SIG_IGN) {
    /* A sent signal stays ignored. A fault cannot be: the kernel kills
     * the process when it runs again, as it does below. */
    if (!guard_is_fault(info))
      return;
  } else if (prev->sa_handler != SIG_DFL) {
    prev->sa_handler(sig);
    return;
  }
  /* The default action: die of it. SIGBUS is blocked while we run, so the
   * raised signal arrives as soon as we return, before the faulting access
   * runs again: the core shows its registers, but si_code SI_TKILL. (Re-
   * queuing the original siginfo to ourselves works natively, but makes
   * valgrind abort.) If sigaction() fails, a fault comes back here: there
   * is nothing better to do then. */
  if (sigaction(sig, &guard_default, NULL) != 0)
    return;
  if (raise(sig) != 0)
    return;
}

static void
guard_handler(int sig, siginfo_t *info, void *uctx)
{
  int saved_errno = errno;
  if (!guard_is_fault(info) || !guard_zero_at((uintptr_t)info->si_addr))
    guard_chain(sig, info, uctx);
  errno = saved_errno;
}

static void
guard_take(void)
{
  while (atomic_flag_test_and_set_explicit(&guard_lock, memory_order_acquire))
    (void)sched_yield(); /* cannot fail on Linux; spinning on is right anyway */
}

static void
guard_give(void)
{
  atomic_flag_clear_explicit(&guard_lock, memory_order_release);
}

static int
same_action(const struct sigaction *a, const struct sigaction *b)
{
  return a->sa_flags == b->sa_flags &&
         ((a->sa_flags & SA_SIGINFO) ? a->sa_sigaction == b->sa_sigaction
                                     : a->sa_handler == b->sa_handler);
}

/* Installs the handler once; under guard_lock. */
static cudalink_status
guard_install(void)
{
  if (guard_installed)
    return CUDALINK_OK;
  struct sigaction ours, before, replaced;
  memset(&ours, 0, sizeof ours);
  memset(&before, 0, sizeof before);
  ours.sa_sigaction = guard_handler;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  guard_default.sa_handler = SIG_DFL;
  guard_default.sa_flags = 0;
  if (sigemptyset(&ours.sa_mask) != 0 || sigemptyset(&guard_default.sa_mask) != 0 ||
      sigaction(SIGBUS, NULL, &before) != 0) {
    char text[128];
    set_error("sigaction(SIGBUS): %s", errno_text(errno, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  /* keep what sent signals did to interrupted system calls */
  ours.sa_flags |= before.sa_flags & SA_RESTART;
  guard_previous = before;
  if (sigaction(SIGBUS, &ours, &replaced) != 0) {
    char text[128];
    set_error("sigaction(SIGBUS): %s", errno_text(errno, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  /* someone installed theirs between the two calls: chain to that one */
  if (!same_action(&replaced, &before))
    guard_previous = replaced;
  guard_installed = 1;
  return CUDALINK_OK;
}

/* Registers the mapping [data, data + len). */
static cudalink_status
guard_add(void *data, size_t len, int prot, struct guard_node **out)
{
  struct guard_node *n = calloc(1, sizeof *n);
  if (!n) {
    set_error("out of memory");
    return CUDALINK_ERR_NO_MEMORY;
  }
  n->start = (uintptr_t)data;
  n->len = len;
  n->prot = prot;
  atomic_init(&n->state, GUARD_LIVE);
  guard_take();
  cudalink_status st = guard_install();
  if (st == CUDALINK_OK) {
    atomic_init(&n->next, atomic_load(&guard_list));
    atomic_store(&guard_list, n); /* publishes the node, filled above */
  }
  guard_give();
  if (st != CUDALINK_OK) {
    free(n);
    return st;
  }
  *out = n;
  return CUDALINK_OK;
}

/* Takes n out of the list, then waits until no handler can still be
 * looking at it (handlers are short: they never wait for anything). */
static void
guard_remove(struct guard_node *n)
{
  guard_take();
  _Atomic(struct guard_node *) *link = &guard_list;
  for (struct guard_node *cur; (cur = atomic_load(link)) != NULL; link = &cur->next) {
    if (cur == n) {
      atomic_store(link, atomic_load(&n->next));
      break;
    }
  }
  guard_give();
  while (atomic_load(&guard_readers) != 0)
    (void)sched_yield();
}

static int
guard_fired(const struct guard_node *n)
{
  return n && atomic_load(&n->state) != GUARD_LIVE;
}

cudalink_status
cudalink_shm_guard(void *data, size_t len, int prot, struct guard_node **out)
{
  return guard_add(data, len, prot, out);
}

int
cudalink_shm_unguard(struct guard_node *guard)
{
  int fired;
  if (!guard)
    return 0;
  guard_remove(guard);
  fired = guard_fired(guard);
  free(guard);
  return fired;
}

/* Maps len bytes of shm->fd, guarded (len 0: the empty object, no guard). */
static cudalink_status
view_map(const cudalink_shm *shm, size_t len, void **data, struct guard_node **guard)
{
  *data = (void *)cudalink_shm_empty;
  *guard = NULL;
  if (len == 0)
    return CUDALINK_OK;
  int prot = shm->writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void *p = mmap(NULL, len, prot, MAP_SHARED, shm->fd, 0);
  if (p == MAP_FAILED)
    return errno_error(CUDALINK_ERR_SHM, "mmap", shm->name, errno);
  cudalink_status st = guard_add(p, len, prot, guard);
  if (st != CUDALINK_OK) {
    /* Unmapping what mmap just gave cannot fail; if it did, guard_add's
     * text is still the one that matters. */
    (void)munmap(p, len);
    return st;
  }
  *data = p;
  return CUDALINK_OK;
}

/* Undoes view_map(): out of the guard first, then unmapped; remembers in
 * shm whether the guard had fired. ERR_SHM if munmap fails (the range
 * stays mapped, unguarded: only a bug of ours can cause that). */
static cudalink_status
view_unmap(cudalink_shm *shm, void *data, size_t len, struct guard_node *guard)
{
  if (len == 0)
    return CUDALINK_OK;
  cudalink_status st = CUDALINK_OK;
  if (cudalink_shm_unguard(guard))
    shm->was_truncated = 1;
  if (munmap(data, len) != 0)
    st = errno_error(CUDALINK_ERR_SHM, "munmap", shm->name, errno);
  return st;
}

/* Maps len bytes of shm->fd into shm (len 0: the empty object). */
static cudalink_status
shm_map(cudalink_shm *shm, size_t len)
{
  void *data;
  struct guard_node *guard;
  cudalink_status st = view_map(shm, len, &data, &guard);
  if (st != CUDALINK_OK)
    return st;
  shm->data = data;
  shm->size = len;
  shm->guard = guard;
  return CUDALINK_OK;
}

static cudalink_status
shm_unmap(cudalink_shm *shm)
{
  cudalink_status st = view_unmap(shm, shm->data, shm->size, shm->guard);
  shm->data = (void *)cudalink_shm_empty;
  shm->size = 0;
  shm->guard = NULL;
  return st;
}

/* fstat, remembering the object's identity; the size as size_t, the rest
 * in *out (may be NULL). Anything but a regular file (a FIFO, a directory,
 * a device: what open() found under the name) is refused. */
static cudalink_status
shm_stat(cudalink_shm *shm, size_t *size, struct stat *out)
{
  struct stat st;
  if (fstat(shm->fd, &st) != 0)
    return errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
  if (!S_ISREG(st.st_mode))
    return not_a_segment(shm->name, st.st_mode);
  if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)SIZE_MAX) {
    set_error("segment /%s has an unusable size", shm->name);
    return CUDALINK_ERR_SHM;
  }
  shm->dev = st.st_dev;
  shm->ino = st.st_ino;
  *size = (size_t)st.st_size;
  if (out)
    *out = st;
  return CUDALINK_OK;
}

static int
size_fits_off_t(size_t size)
{
  /* off_t is signed and at least as wide as 32 bits; 64 here. */
  return (uintmax_t)size <= (uintmax_t)(sizeof(off_t) >= 8 ? INT64_MAX : INT32_MAX);
}

cudalink_status
cudalink_shm_create_sized(const char *name, size_t size, size_t max_map, cudalink_shm **out,
                          int *created)
{
  cudalink_status st = cudalink_shm_create_args_ok(name, size, max_map, out, created);
  if (st != CUDALINK_OK)
    return st;
  if (!size_fits_off_t(size)) {
    set_error("cudalink_shm_create: size must be 1..OFF_MAX");
    return CUDALINK_ERR_INVALID_ARG;
  }
  /* O_EXCL first so that we know whether we created it; if it exists, open
   * it. Someone may unlink it between the two calls: try again. */
  int fd = -1, is_new = 0;
  for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
    fd = open_fd(name, O_RDWR | O_CREAT | O_EXCL, SHM_MODE);
    if (fd >= 0) {
      is_new = 1;
    } else if (errno == EEXIST) {
      fd = open_fd(name, O_RDWR, 0);
      if (fd < 0 && errno != ENOENT)
        return open_failed(name, errno, 1);
    } else {
      /* ENOENT from O_CREAT: no /dev/shm. Not "no such segment". */
      st = open_failed(name, errno, 1);
      return st == CUDALINK_ERR_NOT_FOUND ? CUDALINK_ERR_SHM : st;
    }
  }
  if (fd < 0) {
    set_error("shm_open(/%s): name keeps appearing and disappearing", name);
    return CUDALINK_ERR_SHM;
  }

  cudalink_shm *shm = cudalink_shm_alloc(name, 1, max_map);
  if (!shm) {
    CLEANUP(undo_fd(name, fd));
    if (is_new)
      CLEANUP(undo_create(name));
    return CUDALINK_ERR_NO_MEMORY;
  }
  shm->fd = fd;

  size_t have = 0;
  struct stat info;
  st = shm_stat(shm, &have, &info);
  /* Someone else's segment, or one others may write too, is not published
   * into (they could rewrite the handles consumers import); our own
   * private one is re-used and made 0600 like a new one. */
  if (st == CUDALINK_OK && !is_new && !owner_ok(&info))
    st = not_ours(name, &info);
  if (st == CUDALINK_OK && !is_new && (info.st_mode & 07777) != SHM_MODE &&
      fchmod(fd, SHM_MODE) != 0)
    st = errno_error(CUDALINK_ERR_SHM, "fchmod", name, errno);
  if (st == CUDALINK_OK && have < size) {
    /* Grow only: peers re-use segments without checking their size. */
    if (ftruncate(fd, (off_t)size) != 0)
      st = errno_error(CUDALINK_ERR_SHM, "ftruncate", name, errno);
    else
      have = size;
  }
  /* Of a larger file (someone's 2 GB under our name) only max_map bytes */
  if (st == CUDALINK_OK)
    st = shm_map(shm, min_size(have, max_map));
  if (st != CUDALINK_OK) {
    if (is_new)
      CLEANUP(undo_create(name));
    CLEANUP(cudalink_shm_close(shm));
    return st;
  }
  *out = shm;
  if (created)
    *created = is_new;
  return CUDALINK_OK;
}

cudalink_status
cudalink_shm_open_sized(const char *name, size_t max_map, cudalink_shm **out)
{
  cudalink_status st = cudalink_shm_open_args_ok(name, max_map, out);
  if (st != CUDALINK_OK)
    return st;
  int fd = open_fd(name, O_RDONLY, 0);
  if (fd < 0)
    return open_failed(name, errno, 0);
  cudalink_shm *shm = cudalink_shm_alloc(name, 0, max_map);
  if (!shm) {
    CLEANUP(undo_fd(name, fd));
    return CUDALINK_ERR_NO_MEMORY;
  }
  shm->fd = fd;
  size_t have = 0;
  /* A zero-size or short segment (a producer between shm_open and
   * ftruncate) opens fine: the caller validates the size. */
  st = shm_stat(shm, &have, NULL);
  if (st == CUDALINK_OK)
    st = shm_map(shm, min_size(have, max_map));
  if (st != CUDALINK_OK) {
    CLEANUP(cudalink_shm_close(shm));
    return st;
  }
  *out = shm;
  return CUDALINK_OK;
}

void
cudalink_shm_close(cudalink_shm *shm)
{
  if (!shm)
    return;
  /* Failures leave a text in last_error; there is nobody to return them
   * to, and the handle goes either way. */
  (void)shm_unmap(shm);
  /* Closing the last descriptor of the open file description also drops
   * its OFD lock. */
  if (shm->fd >= 0)
    undo_fd(shm->name, shm->fd);
  free(shm);
}

cudalink_status
cudalink_shm_unlink(const char *name)
{
  cudalink_status st = cudalink_shm_check_name(name);
  if (st != CUDALINK_OK)
    return st;
  char path[CUDALINK_MAX_NAME + 2];
  shm_path(name, path);
  if (shm_unlink(path) != 0)
    return errno_error(errno == ENOENT ? CUDALINK_ERR_NOT_FOUND : CUDALINK_ERR_SHM, "shm_unlink",
                       name, errno);
  return CUDALINK_OK;
}

cudalink_status
cudalink_shm_refresh(cudalink_shm *shm)
{
  if (!shm) {
    set_error("cudalink_shm_refresh: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  /* Zero pages now, whatever the file holds again: the caller must
   * reconnect, and would not know to if this mapped the file anew. */
  if (guard_fired(shm->guard))
    return cudalink_shm_check_truncated(shm);
  size_t now = 0;
  cudalink_status st = shm_stat(shm, &now, NULL);
  now = min_size(now, shm->max_map);
  if (st != CUDALINK_OK || now == shm->size)
    return st;
  /* Grown: map the new size. Shrunk (another process truncated it: nobody
   * we know does that): map the smaller size too, since touching pages
   * past the end raises SIGBUS, and remember the truncation. */
  if (now < shm->size)
    shm->was_truncated = 1;
  void *data;
  struct guard_node *guard;
  st = view_map(shm, now, &data, &guard);
  if (st != CUDALINK_OK)
    return st; /* the old mapping is untouched */
  /* a failure to unmap the old one leaves its text in last_error; the
   * handle is consistent and the refresh done: not an error of the call */
  (void)view_unmap(shm, shm->data, shm->size, shm->guard);
  shm->data = data;
  shm->size = now;
  shm->guard = guard;
  return CUDALINK_OK;
}

int
cudalink_shm_truncated(const cudalink_shm *shm)
{
  if (!shm)
    return 0;
  if (shm->was_truncated || guard_fired(shm->guard))
    return 1;
  if (shm->size == 0)
    return 0;
  struct stat st;
  if (fstat(shm->fd, &st) != 0) {
    (void)errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
    return 0; /* cannot tell */
  }
  return st.st_size < 0 || (uintmax_t)st.st_size < (uintmax_t)shm->size;
}

cudalink_status
cudalink_shm_check_truncated(const cudalink_shm *shm)
{
  if (!shm) {
    set_error("cudalink_shm_check_truncated: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (!cudalink_shm_truncated(shm))
    return CUDALINK_OK;
  struct stat st;
  if (fstat(shm->fd, &st) == 0)
    set_error("segment '%s' truncated by another process (the file now has %lld bytes)", shm->name,
              (long long)st.st_size);
  else
    set_error("segment '%s' truncated by another process", shm->name);
  return CUDALINK_ERR_TRUNCATED;
}

int64_t
cudalink_shm_pread(const cudalink_shm *shm, uint64_t offset, void *buf, size_t len)
{
  const uint64_t off_max = sizeof(off_t) >= 8 ? INT64_MAX : INT32_MAX;
  if (!shm || (!buf && len > 0) || offset > off_max) {
    set_error("cudalink_shm_pread: %s", !shm   ? "shm is NULL"
                                        : !buf ? "buf is NULL"
                                               : "offset is beyond any file");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if ((uintmax_t)len > (uintmax_t)INT64_MAX)
    len = (size_t)INT64_MAX;
  size_t got = 0;
  while (got < len && offset + got <= off_max) {
    size_t want = len - got;
    if (want > (size_t)SSIZE_MAX)
      want = (size_t)SSIZE_MAX;
    ssize_t n = pread(shm->fd, (char *)buf + got, want, (off_t)(offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno_error(CUDALINK_ERR_SHM, "pread", shm->name, errno);
    if (n == 0)
      break; /* end of file */
    got += (size_t)n;
  }
  return (int64_t)got;
}

cudalink_status
cudalink_shm_file_size(const cudalink_shm *shm, uint64_t *size)
{
  if (!shm || !size) {
    set_error("cudalink_shm_file_size: %s is NULL", !shm ? "shm" : "size");
    return CUDALINK_ERR_INVALID_ARG;
  }
  struct stat st;
  if (fstat(shm->fd, &st) != 0)
    return errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
  *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  return CUDALINK_OK;
}

int
cudalink_shm_owner(const cudalink_shm *shm, unsigned long *uid, unsigned *mode)
{
  if (!shm) {
    set_error("cudalink_shm_owner: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  struct stat st;
  if (fstat(shm->fd, &st) != 0)
    return errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
  if (uid)
    *uid = (unsigned long)st.st_uid;
  if (mode)
    *mode = (unsigned)st.st_mode & 07777u;
  return owner_ok(&st);
}

/* -- producer lock --------------------------------------------------------
 * An OFD ("open file description") write lock on the whole segment. Unlike
 * classic POSIX record locks it belongs to the open file description, not
 * to the process: a second cudalink_shm_create() in the same process
 * conflicts with the first, and closing an unrelated descriptor of the same
 * file does not drop it. It is released when the last descriptor of the
 * description is closed, including at process exit or SIGKILL. Beware:
 * a fork()ed child inherits the descriptor and so shares the description
 * and the lock; the lock lives on until the child closes it or exits (the
 * descriptor is close-on-exec, so exec() drops it). */

#  ifdef F_OFD_SETLK
static struct flock
whole_file(short type)
{
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0; /* to the end, however large it grows */
  fl.l_pid = 0; /* must be 0 for OFD locks */
  return fl;
}
#  endif

cudalink_status
cudalink_shm_lock(cudalink_shm *shm)
{
  if (!shm || !shm->writable) {
    set_error("cudalink_shm_lock: %s", !shm ? "shm is NULL" : "segment is opened read-only");
    return CUDALINK_ERR_INVALID_ARG;
  }
#  ifdef F_OFD_SETLK
  struct flock fl = whole_file(F_WRLCK);
  if (fcntl(shm->fd, F_OFD_SETLK, &fl) != 0) {
    int err = errno;
    if (err == EAGAIN || err == EACCES) {
      set_error("segment /%s is locked by another producer", shm->name);
      return CUDALINK_ERR_BUSY;
    }
    return errno_error(CUDALINK_ERR_SHM, "fcntl(F_OFD_SETLK)", shm->name, err);
  }
#  endif
  return CUDALINK_OK;
}

int
cudalink_shm_is_locked(const cudalink_shm *shm)
{
  if (!shm) {
    set_error("cudalink_shm_is_locked: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
#  ifdef F_OFD_GETLK
  /* A read lock is what a read-only descriptor may ask about; any write
   * lock held through another description conflicts with it. */
  struct flock fl = whole_file(F_RDLCK);
  if (fcntl(shm->fd, F_OFD_GETLK, &fl) != 0)
    return errno_error(CUDALINK_ERR_SHM, "fcntl(F_OFD_GETLK)", shm->name, errno);
  return fl.l_type != F_UNLCK;
#  else
  set_error("producer locks need OFD locks (Linux)");
  return CUDALINK_ERR_UNSUPPORTED;
#  endif
}

/* -- lost name and relink ------------------------------------------------- */

int
cudalink_shm_lost_name(const cudalink_shm *shm)
{
  if (!shm)
    return 0;
  struct stat ours;
  if (fstat(shm->fd, &ours) != 0) {
    (void)errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
    return 0; /* cannot tell */
  }
  /* The cheap look first: unlinked, typically by a Python consumer's
   * resource_tracker. The look-up below would find that too. */
  if (ours.st_nlink == 0)
    return 1;
  /* Still linked somewhere: is NAME still this object? (Whatever took the
   * name, a FIFO included, opens without blocking and differs.) */
  int fd = open_fd(shm->name, O_RDONLY, 0);
  if (fd < 0) {
    int err = errno;
    (void)errno_error(CUDALINK_ERR_SHM, "shm_open", shm->name, err);
    /* ENOENT: gone. EACCES: someone else's object took the name. Anything
     * else (EMFILE, ...) says nothing: ask again later. */
    return err == ENOENT || err == EACCES;
  }
  /* an fstat that fails says nothing of the name: ask again later */
  struct stat now;
  int differs = 0;
  if (fstat(fd, &now) != 0)
    (void)errno_error(CUDALINK_ERR_SHM, "fstat", shm->name, errno);
  else
    differs = now.st_ino != ours.st_ino || now.st_dev != ours.st_dev;
  undo_fd(shm->name, fd);
  return differs;
}

cudalink_status
cudalink_shm_relink(const cudalink_shm *shm, cudalink_shm **fresh)
{
  if (fresh)
    *fresh = NULL;
  if (!shm || !fresh || shm->size == 0) {
    set_error("cudalink_shm_relink: %s", !shm     ? "shm is NULL"
                                         : !fresh ? "fresh is NULL"
                                                  : "segment is empty");
    return CUDALINK_ERR_INVALID_ARG;
  }
  /* O_EXCL: if the name exists again, someone else re-created it and it is
   * theirs. Consumers that open the name before the copy below lands see a
   * zero header for a moment; they retry as for a producer mid-init. */
  int fd = open_fd(shm->name, O_RDWR | O_CREAT | O_EXCL, SHM_MODE);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) {
      set_error("shm_open(/%s): name exists again, re-created by someone else", shm->name);
      return CUDALINK_ERR_BUSY;
    }
    return errno_error(CUDALINK_ERR_SHM, "shm_open", shm->name, err);
  }
  cudalink_shm *copy = cudalink_shm_alloc(shm->name, 1, shm->max_map);
  if (!copy) {
    CLEANUP(undo_fd(shm->name, fd));
    CLEANUP(undo_create(shm->name));
    return CUDALINK_ERR_NO_MEMORY;
  }
  copy->fd = fd;
  size_t have = 0;
  cudalink_status st = CUDALINK_OK;
  if (ftruncate(fd, (off_t)shm->size) != 0)
    st = errno_error(CUDALINK_ERR_SHM, "ftruncate", shm->name, errno);
  if (st == CUDALINK_OK)
    st = shm_stat(copy, &have, NULL);
  if (st == CUDALINK_OK)
    st = shm_map(copy, have);
  if (st != CUDALINK_OK) {
    CLEANUP(undo_create(shm->name));
    CLEANUP(cudalink_shm_close(copy));
    return st;
  }
  memcpy(copy->data, shm->data, shm->size);
  *fresh = copy;
  return CUDALINK_OK;
}

/* -- futex ----------------------------------------------------------------
 * FUTEX_WAIT / FUTEX_WAKE without the _PRIVATE flag: the kernel then keys
 * the wait queue on the shared page (inode + offset), so a waiter and a
 * waker in different processes, with different mappings of the segment,
 * even a read-only one, meet. */

static cudalink_status
futex_args_ok(const volatile uint32_t *word, int64_t timeout_us)
{
  if (!word || ((uintptr_t)word & 3u) != 0 || timeout_us < 0) {
    set_error("cudalink_futex_wait: %s", !word            ? "word is NULL"
                                         : timeout_us < 0 ? "negative timeout"
                                                          : "word is not 4-byte aligned");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK;
}

#  ifdef __linux__
/* EFAULT: the kernel could not reach the word. In a mapping of ours that
 * means its page lies past the end of the file (another process truncated
 * the segment): ERR_TRUNCATED, so that the caller stops waiting on it
 * instead of looping on an error. */
static cudalink_status
futex_failed(const char *op, int err)
{
  char text[128];
  if (err == EFAULT) {
    set_error("futex(%s): %s: the word is not mapped, or lies past the end of a segment "
              "truncated by another process",
              op, errno_text(err, text, sizeof text));
    return CUDALINK_ERR_TRUNCATED;
  }
  set_error("futex(%s): %s", op, errno_text(err, text, sizeof text));
  return CUDALINK_ERR_SHM;
}

cudalink_status
cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected, int64_t timeout_us)
{
  cudalink_status st = futex_args_ok(word, timeout_us);
  if (st != CUDALINK_OK)
    return st;
  struct timespec ts;
  ts.tv_sec = (time_t)(timeout_us / 1000000);
  ts.tv_nsec = (long)(timeout_us % 1000000) * 1000;
  /* relative timeout, CLOCK_MONOTONIC */
  long r = syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAIT, expected, &ts, NULL, 0);
  if (r == 0)
    return CUDALINK_OK;
  int err = errno;
  if (err == EAGAIN || err == EINTR)
    return CUDALINK_OK; /* value differed / spurious: the caller re-checks */
  if (err == ETIMEDOUT)
    return CUDALINK_ERR_TIMEOUT;
  return futex_failed("FUTEX_WAIT", err);
}

cudalink_status
cudalink_futex_wake(volatile uint32_t *word)
{
  if (!word) {
    set_error("cudalink_futex_wake: word is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) >= 0)
    return CUDALINK_OK;
  return futex_failed("FUTEX_WAKE", errno);
}
#  else
/* No cross-process futex: poll in short sleeps. */
cudalink_status
cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected, int64_t timeout_us)
{
  cudalink_status st = futex_args_ok(word, timeout_us);
  if (st != CUDALINK_OK)
    return st;
  for (int64_t slept = 0;; slept += POLL_STEP_US) {
    if (*word != expected)
      return CUDALINK_OK;
    if (slept >= timeout_us)
      return CUDALINK_ERR_TIMEOUT;
    int64_t step = timeout_us - slept < POLL_STEP_US ? timeout_us - slept : POLL_STEP_US;
    struct timespec ts = {0, (long)step * 1000};
    /* EINTR: a shorter step, harmless; anything else would repeat */
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR) {
      char text[128];
      set_error("nanosleep: %s", errno_text(errno, text, sizeof text));
      return CUDALINK_ERR_SHM;
    }
  }
}

cudalink_status
cudalink_futex_wake(volatile uint32_t *word)
{
  (void)word;
  return CUDALINK_OK;
}
#  endif

#endif /* !_WIN32 */
