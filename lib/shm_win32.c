/* Named shared memory on Windows (shm.h); shm.c holds the common part.
 *
 * A segment is a named file mapping NAME backed by the paging file
 * (CreateFileMappingW(INVALID_HANDLE_VALUE, ..., NAME)), what Python's
 * SharedMemory(name=NAME) and the cuda-link peers create: no Local\ or
 * Global\ prefix, so it lives in the session's namespace. Its size is
 * fixed at creation and every view is page-rounded (a 433-byte segment
 * maps as 4096 bytes), which the peers rely on when they re-initialise
 * with more slots. A mapping lives while any process holds a handle to
 * it: there is no name to unlink, a producer's clean shutdown sets the
 * shutdown flag and closes its handle, and consumers that still hold the
 * mapping keep reading that flag.
 *
 * Two named kernel objects ride alongside; peers that know nothing of
 * them work as before:
 *
 * - The doorbell Local\cudalink_db_NAME (PROTOCOL.md, cuda-link 1.11+): an
 *   auto-reset event. Our producer creates it with its segment and sets it
 *   (SetEvent) after every publish and at shutdown, through
 *   cudalink_futex_wake() on a word of its writable mapping. SetEvent, not
 *   PulseEvent: a consumer that is between its look at write_idx and its
 *   wait finds the event still set instead of missing the frame (at worst
 *   it wakes once for nothing), and PulseEvent can lose a wake-up even for
 *   a waiting thread. An auto-reset event wakes ONE waiter per publish, so
 *   consumers never sleep longer than their poll interval on it (wait.c).
 *   Our consumer opens the doorbell when there is one (it looks again
 *   every DOORBELL_RETRY_S while there is none) and cudalink_futex_wait()
 *   waits on it, the poll interval being the timeout.
 *
 * - The producer lock Local\cudalink_lock_NAME (ours only): an event that
 *   our producer creates and keeps open. The system closes it when the
 *   process ends, however it ends (TerminateProcess included), and a named
 *   object dies with its last handle: so it exists exactly while a live
 *   producer of ours holds NAME. cudalink_shm_is_locked() opens it for a
 *   moment to see whether it exists. That moment keeps the object alive:
 *   a producer that starts during it, after the holder died, is refused
 *   with ERR_BUSY once (its caller retries), and a look at the same moment
 *   takes it for alive once more (the next look, 50 ms later, does not).
 *
 * cudalink_futex_wait()/_wake() get only the address of a word. Each open
 * segment is registered with the range of its view, so that a word can
 * be traced to its segment's doorbell; a word outside every segment is
 * polled as before (Sleep(1)). */
#include "shm.h"
#include "shm_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "util.h"

#define set_error cudalink_shm_set_error

#define DOORBELL_PREFIX L"Local\\cudalink_db_"
#define LOCK_PREFIX L"Local\\cudalink_lock_"
/* room for a prefix and a name of CUDALINK_MAX_NAME UTF-16 units */
/* A consumer that found no doorbell looks for one again this often (a
 * producer may start ringing later: a new one, or a peer upgraded). */
#define DOORBELL_RETRY_S 0.5
/* Longest single wait (a day): keeps the timer's arithmetic in range. */
#define MAX_WAIT_US (86400ll * 1000000)
#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#  define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

/* GetLastError() text, without the trailing ".\r\n". */
static const char *
win_error_text(DWORD err, char *buf, size_t len)
{
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, err, 0,
                           buf, (DWORD)len, NULL);
  if (n == 0) {
    cudalink_textf(buf, len, "Windows error %lu", (unsigned long)err);
    return buf;
  }
  while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == '.'))
    buf[--n] = '\0';
  return buf;
}

static cudalink_status
win_error(cudalink_status status, const char *call, const char *name, DWORD err)
{
  char text[160];
  set_error("%s(%s): %s", call, name, win_error_text(err, text, sizeof text));
  return status;
}

/* Clean-up for failure paths (run under CLEANUP()). */
static void
undo_handle(const char *name, HANDLE h)
{
  if (!CloseHandle(h))
    (void)win_error(CUDALINK_ERR_SHM, "CloseHandle", name, GetLastError());
}

/* UTF-8 name to UTF-16; check_name() has bounded the length. */
static cudalink_status
wide_name(const char *name, wchar_t out[CUDALINK_MAX_NAME + 1])
{
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, out, CUDALINK_MAX_NAME + 1);
  if (n <= 0) {
    set_error("segment name \"%s\" is not valid UTF-8", name);
    return CUDALINK_ERR_BAD_NAME;
  }
  return CUDALINK_OK;
}

int
cudalink_shm_object_name(const wchar_t *prefix, const char *name,
                         wchar_t out[CUDALINK_OBJECT_NAME_LEN])
{
  wchar_t wname[CUDALINK_MAX_NAME + 1];
  if (wide_name(name, wname) != CUDALINK_OK)
    return 0;
  wcscpy(out, prefix);
  wcscat(out, wname);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Which segment a word lies in                                             */
/* ------------------------------------------------------------------------ */

static SRWLOCK registry_lock = SRWLOCK_INIT;
static cudalink_shm **registry; /* every segment with a view, unordered */
static size_t registry_len, registry_cap;

static cudalink_status
registry_add(cudalink_shm *shm)
{
  cudalink_status st = CUDALINK_OK;
  AcquireSRWLockExclusive(&registry_lock);
  if (registry_len == registry_cap) {
    size_t cap = registry_cap ? 2 * registry_cap : 16;
    cudalink_shm **grown = realloc(registry, cap * sizeof *grown);
    if (grown) {
      registry = grown;
      registry_cap = cap;
    } else {
      st = CUDALINK_ERR_NO_MEMORY;
    }
  }
  if (st == CUDALINK_OK)
    registry[registry_len++] = shm;
  ReleaseSRWLockExclusive(&registry_lock);
  if (st != CUDALINK_OK)
    set_error("out of memory");
  return st;
}

static void
registry_remove(cudalink_shm *shm)
{
  AcquireSRWLockExclusive(&registry_lock);
  for (size_t i = 0; i < registry_len; i++) {
    if (registry[i] == shm) {
      registry[i] = registry[--registry_len];
      break;
    }
  }
  if (registry_len == 0) {
    free(registry);
    registry = NULL;
    registry_cap = 0;
  }
  ReleaseSRWLockExclusive(&registry_lock);
}

/* What a wait or a wake-up on word needs of its segment. */
typedef struct word_owner {
  cudalink_shm *shm; /* NULL: the word lies in no segment */
  HANDLE doorbell;
  HANDLE wake;
  HANDLE timer;
  int writable;
} word_owner;

static word_owner
registry_find(const volatile void *word)
{
  word_owner o = {NULL, NULL, NULL, NULL, 0};
  const char *w = (const char *)(uintptr_t)word;
  AcquireSRWLockShared(&registry_lock);
  for (size_t i = 0; i < registry_len; i++) {
    const char *base = registry[i]->data;
    if (w >= base && w + 4 <= base + registry[i]->size) {
      o.shm = registry[i];
      o.doorbell = registry[i]->doorbell;
      o.wake = registry[i]->wake;
      o.timer = registry[i]->timer;
      o.writable = registry[i]->writable;
      break;
    }
  }
  ReleaseSRWLockShared(&registry_lock);
  return o;
}

/* ------------------------------------------------------------------------ */
/* Doorbell and waiting objects                                             */
/* ------------------------------------------------------------------------ */

/* Producer: creates the doorbell (or opens the one that exists: a
 * consumer never creates it, an earlier producer of the name may have).
 * Before the mapping, so that a consumer that finds the mapping finds the
 * doorbell too. NULL is no error: consumers then poll. */
static HANDLE
doorbell_create(const char *segment)
{
  wchar_t name[CUDALINK_OBJECT_NAME_LEN];
  if (!cudalink_shm_object_name(DOORBELL_PREFIX, segment, name))
    return NULL;
  return CreateEventW(NULL, FALSE /* auto-reset */, FALSE, name);
}

/* Consumer: opens the doorbell if a producer has made one. Called by the
 * thread that uses the segment (the one that waits on it). */
static void
doorbell_open(cudalink_shm *shm)
{
  wchar_t name[CUDALINK_OBJECT_NAME_LEN];
  HANDLE h = NULL;
  shm->doorbell_retry = cudalink_now() + DOORBELL_RETRY_S;
  if (cudalink_shm_object_name(DOORBELL_PREFIX, shm->name, name))
    h = OpenEventW(SYNCHRONIZE, FALSE, name);
  if (h) {
    AcquireSRWLockExclusive(&registry_lock);
    shm->doorbell = h;
    ReleaseSRWLockExclusive(&registry_lock);
  }
}

/* Consumer: what a wait needs besides the doorbell, made at open. A
 * process-local event for cudalink_futex_wake() on this read-only
 * mapping (cudalink_consumer_interrupt()), and a high-resolution timer
 * for the timeout: WaitForMultipleObjects' own millisecond timeout ends
 * up to a timer tick (15.6 ms by default) late, which would make a poll
 * of 1 ms one of 16. Either may be missing: then a wake-up waits for the
 * timeout, and the timeout is the coarse one. */
static void
waiting_objects_create(cudalink_shm *shm)
{
  shm->wake = CreateEventW(NULL, FALSE, FALSE, NULL);
  shm->timer = CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION,
                                      TIMER_ALL_ACCESS);
  if (!shm->timer) /* before Windows 10 1803 */
    shm->timer = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);
}

static void
close_if(HANDLE *h)
{
  if (*h)
    CloseHandle(*h);
  *h = NULL;
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                 */
/* ------------------------------------------------------------------------ */

/* Maps the whole mapping and reads its (page-rounded) size; if that is
 * more than max_map, maps only max_map bytes instead. (A view cannot be
 * larger than the mapping, and only a view tells the mapping's size.) */
static cudalink_status
win_map(cudalink_shm *shm)
{
  DWORD access = shm->writable ? FILE_MAP_READ | FILE_MAP_WRITE : FILE_MAP_READ;
  void *p = MapViewOfFile(shm->mapping, access, 0, 0, 0);
  if (!p)
    return win_error(CUDALINK_ERR_SHM, "MapViewOfFile", shm->name, GetLastError());
  MEMORY_BASIC_INFORMATION info;
  if (VirtualQuery(p, &info, sizeof info) == 0) {
    cudalink_status st = win_error(CUDALINK_ERR_SHM, "VirtualQuery", shm->name, GetLastError());
    if (!UnmapViewOfFile(p))
      CLEANUP((void)win_error(CUDALINK_ERR_SHM, "UnmapViewOfFile", shm->name, GetLastError()));
    return st;
  }
  size_t size = info.RegionSize;
  shm->file_size = info.RegionSize;
  if (info.RegionSize > shm->max_map) {
    if (!UnmapViewOfFile(p))
      return win_error(CUDALINK_ERR_SHM, "UnmapViewOfFile", shm->name, GetLastError());
    p = MapViewOfFile(shm->mapping, access, 0, 0, shm->max_map);
    if (!p)
      return win_error(CUDALINK_ERR_SHM, "MapViewOfFile", shm->name, GetLastError());
    size = shm->max_map;
  }
  shm->data = p;
  shm->size = size;
  return registry_add(shm);
}

cudalink_status
cudalink_shm_create_sized(const char *name, size_t size, size_t max_map, cudalink_shm **out,
                          int *created)
{
  cudalink_status st = cudalink_shm_create_args_ok(name, size, max_map, out, created);
  if (st != CUDALINK_OK)
    return st;
  wchar_t wname[CUDALINK_MAX_NAME + 1];
  st = wide_name(name, wname);
  if (st != CUDALINK_OK)
    return st;
  unsigned long long size64 = size;
  HANDLE doorbell = doorbell_create(name);
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)(size64 >> 32),
                                (DWORD)(size64 & 0xffffffffu), wname);
  if (!h) {
    st = win_error(CUDALINK_ERR_SHM, "CreateFileMappingW", name, GetLastError());
    close_if(&doorbell);
    return st;
  }
  int is_new = GetLastError() != ERROR_ALREADY_EXISTS;
  cudalink_shm *shm = cudalink_shm_alloc(name, 1, max_map);
  if (!shm) {
    CLEANUP(undo_handle(name, h));
    close_if(&doorbell);
    return CUDALINK_ERR_NO_MEMORY;
  }
  shm->mapping = h;
  shm->doorbell = doorbell;
  st = win_map(shm);
  if (st == CUDALINK_OK && shm->file_size < size) {
    /* A mapping's size is fixed at creation: it cannot grow. */
    set_error("mapping %s exists with %llu bytes, %llu needed; Windows cannot grow it", name,
              (unsigned long long)shm->file_size, size64);
    st = CUDALINK_ERR_SHM;
  }
  if (st != CUDALINK_OK) {
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
  wchar_t wname[CUDALINK_MAX_NAME + 1];
  st = wide_name(name, wname);
  if (st != CUDALINK_OK)
    return st;
  HANDLE h = OpenFileMappingW(FILE_MAP_READ, FALSE, wname);
  if (!h) {
    DWORD err = GetLastError();
    return win_error(err == ERROR_FILE_NOT_FOUND ? CUDALINK_ERR_NOT_FOUND : CUDALINK_ERR_SHM,
                     "OpenFileMappingW", name, err);
  }
  cudalink_shm *shm = cudalink_shm_alloc(name, 0, max_map);
  if (!shm) {
    CLEANUP(undo_handle(name, h));
    return CUDALINK_ERR_NO_MEMORY;
  }
  shm->mapping = h;
  waiting_objects_create(shm);
  st = win_map(shm);
  if (st != CUDALINK_OK) {
    CLEANUP(cudalink_shm_close(shm));
    return st;
  }
  doorbell_open(shm);
  *out = shm;
  return CUDALINK_OK;
}

void
cudalink_shm_close(cudalink_shm *shm)
{
  if (!shm)
    return;
  registry_remove(shm);
  /* Failures leave a text in last_error; the handle goes either way. */
  if (shm->data != (void *)cudalink_shm_empty && !UnmapViewOfFile(shm->data))
    (void)win_error(CUDALINK_ERR_SHM, "UnmapViewOfFile", shm->name, GetLastError());
  if (shm->mapping)
    undo_handle(shm->name, shm->mapping);
  close_if(&shm->doorbell);
  close_if(&shm->wake);
  close_if(&shm->timer);
  /* last: the lock says a producer holds the name */
  close_if(&shm->lock);
  free(shm);
}

cudalink_status
cudalink_shm_unlink(const char *name)
{
  /* A mapping has no name to remove: it dies with its last handle. */
  return cudalink_shm_check_name(name);
}

cudalink_status
cudalink_shm_refresh(cudalink_shm *shm)
{
  if (!shm) {
    set_error("cudalink_shm_refresh: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK; /* mappings never change size */
}

cudalink_status
cudalink_shm_file_size(const cudalink_shm *shm, uint64_t *size)
{
  if (!shm || !size) {
    set_error("cudalink_shm_file_size: %s is NULL", !shm ? "shm" : "size");
    return CUDALINK_ERR_INVALID_ARG;
  }
  *size = shm->file_size;
  return CUDALINK_OK;
}

/* A named mapping cannot shrink: nothing is ever truncated. */
int
cudalink_shm_truncated(const cudalink_shm *shm)
{
  (void)shm;
  return 0;
}

cudalink_status
cudalink_shm_check_truncated(const cudalink_shm *shm)
{
  if (!shm) {
    set_error("cudalink_shm_check_truncated: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK;
}

int64_t
cudalink_shm_pread(const cudalink_shm *shm, uint64_t offset, void *buf, size_t len)
{
  if (!shm || (!buf && len > 0)) {
    set_error("cudalink_shm_pread: %s is NULL", !shm ? "shm" : "buf");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (offset >= shm->size)
    return 0;
  size_t n = shm->size - (size_t)offset < len ? shm->size - (size_t)offset : len;
  memcpy(buf, (const char *)shm->data + offset, n);
  return (int64_t)n;
}

int
cudalink_shm_owner(const cudalink_shm *shm, unsigned long *uid, unsigned *mode)
{
  (void)uid;
  (void)mode;
  set_error("segment owners are not checked on Windows");
  return shm ? CUDALINK_ERR_UNSUPPORTED : CUDALINK_ERR_INVALID_ARG;
}

const char *
cudalink_shm_owner_text(unsigned long uid, unsigned mode, char *buf, size_t len)
{
  if (buf && len > 0)
    cudalink_textf(buf, len, "uid %lu (mode %04o)", uid, mode & 07777u);
  return buf;
}

/* ------------------------------------------------------------------------ */
/* Producer lock                                                            */
/* ------------------------------------------------------------------------ */

cudalink_status
cudalink_shm_lock(cudalink_shm *shm)
{
  wchar_t name[CUDALINK_OBJECT_NAME_LEN];
  if (!shm || !shm->writable) {
    set_error("cudalink_shm_lock: %s", !shm ? "shm is NULL" : "segment is opened read-only");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (shm->lock)
    return CUDALINK_OK;
  if (!cudalink_shm_object_name(LOCK_PREFIX, shm->name, name))
    return CUDALINK_ERR_BAD_NAME;
  HANDLE h = CreateEventW(NULL, TRUE, FALSE, name);
  if (!h)
    return win_error(CUDALINK_ERR_SHM, "CreateEventW(Local\\cudalink_lock_)", shm->name,
                     GetLastError());
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(h);
    set_error("segment '%s' is held by another live cudalink producer "
              "(Local\\cudalink_lock_%s exists)",
              shm->name, shm->name);
    return CUDALINK_ERR_BUSY;
  }
  shm->lock = h;
  return CUDALINK_OK;
}

int
cudalink_shm_is_locked(const cudalink_shm *shm)
{
  wchar_t name[CUDALINK_OBJECT_NAME_LEN];
  if (!shm) {
    set_error("cudalink_shm_is_locked: shm is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (shm->lock) /* our own: as on Linux, a holder asking gets 0 */
    return 0;
  if (!cudalink_shm_object_name(LOCK_PREFIX, shm->name, name))
    return CUDALINK_ERR_BAD_NAME;
  HANDLE h = OpenEventW(SYNCHRONIZE, FALSE, name);
  if (h) {
    CloseHandle(h);
    return 1;
  }
  DWORD err = GetLastError();
  if (err == ERROR_FILE_NOT_FOUND)
    return 0;
  return win_error(CUDALINK_ERR_SHM, "OpenEventW(Local\\cudalink_lock_)", shm->name, err);
}

int
cudalink_shm_lost_name(const cudalink_shm *shm)
{
  (void)shm;
  return 0;
}

cudalink_status
cudalink_shm_relink(const cudalink_shm *shm, cudalink_shm **fresh)
{
  (void)shm;
  if (fresh)
    *fresh = NULL;
  set_error("relinking is not needed nor supported on Windows");
  return CUDALINK_ERR_UNSUPPORTED;
}

/* ------------------------------------------------------------------------ */
/* "futex": the doorbell                                                    */
/* ------------------------------------------------------------------------ */

static uint32_t
load_word(const volatile uint32_t *word)
{
  return atomic_load_explicit((const volatile _Atomic uint32_t *)word, memory_order_acquire);
}

/* No segment: look every millisecond (or timer tick). */
static cudalink_status
poll_word(const volatile uint32_t *word, uint32_t expected, int64_t timeout_us)
{
  double deadline = cudalink_now() + (double)timeout_us * 1e-6;
  for (;;) {
    if (load_word(word) != expected)
      return CUDALINK_OK;
    if (cudalink_now() >= deadline)
      return CUDALINK_ERR_TIMEOUT;
    Sleep(1);
  }
}

cudalink_status
cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected, int64_t timeout_us)
{
  if (!word || ((uintptr_t)word & 3u) != 0 || timeout_us < 0) {
    set_error("cudalink_futex_wait: %s", !word            ? "word is NULL"
                                         : timeout_us < 0 ? "negative timeout"
                                                          : "word is not 4-byte aligned");
    return CUDALINK_ERR_INVALID_ARG;
  }
  if (load_word(word) != expected)
    return CUDALINK_OK;
  if (timeout_us > MAX_WAIT_US)
    timeout_us = MAX_WAIT_US;
  /* The handles stay valid: the segment belongs to this thread, which is
   * not closing it while it waits. */
  word_owner o = registry_find(word);
  if (o.shm && !o.writable && !o.doorbell && cudalink_now() >= o.shm->doorbell_retry) {
    doorbell_open(o.shm);
    o.doorbell = o.shm->doorbell;
  }
  HANDLE handles[3];
  DWORD n = 0;
  if (o.doorbell)
    handles[n++] = o.doorbell;
  if (o.wake)
    handles[n++] = o.wake;
  if (n == 0)
    return poll_word(word, expected, timeout_us);
  int timed = 0;
  if (o.timer) {
    LARGE_INTEGER due;
    due.QuadPart = timeout_us > 0 ? -(LONGLONG)timeout_us * 10 : -1; /* relative, 100 ns */
    if (SetWaitableTimer(o.timer, &due, 0, NULL, NULL, FALSE)) {
      handles[n++] = o.timer;
      timed = 1;
    }
  }
  DWORD r = WaitForMultipleObjects(n, handles, FALSE,
                                   timed ? INFINITE : (DWORD)((timeout_us + 999) / 1000));
  if (r == WAIT_FAILED)
    return win_error(CUDALINK_ERR_SHM, "WaitForMultipleObjects", o.shm->name, GetLastError());
  int timed_out = r == WAIT_TIMEOUT || (timed && r == WAIT_OBJECT_0 + n - 1);
  if (timed && !timed_out)
    CancelWaitableTimer(o.timer);
  if (timed_out)
    return load_word(word) != expected ? CUDALINK_OK : CUDALINK_ERR_TIMEOUT;
  return CUDALINK_OK; /* rung or woken: the caller looks */
}

cudalink_status
cudalink_futex_wake(volatile uint32_t *word)
{
  cudalink_status st = CUDALINK_OK;
  const char *w = (const char *)(uintptr_t)word;
  DWORD err = 0;
  char name[CUDALINK_MAX_NAME + 1] = "";

  if (!word) {
    set_error("cudalink_futex_wake: word is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  /* Under the lock: close() unregisters a segment before it closes its
   * handles, so none is set after it was closed (and reused). */
  AcquireSRWLockShared(&registry_lock);
  for (size_t i = 0; i < registry_len; i++) {
    cudalink_shm *shm = registry[i];
    const char *base = shm->data;
    if (w >= base && w + 4 <= base + shm->size) {
      /* a producer's mapping rings the doorbell; a consumer's wakes its
       * own waiter (an interrupt), never another process */
      HANDLE h = shm->writable ? shm->doorbell : shm->wake;
      if (h && !SetEvent(h)) {
        err = GetLastError();
        memcpy(name, shm->name, sizeof name);
        st = CUDALINK_ERR_SHM;
      }
      break;
    }
  }
  ReleaseSRWLockShared(&registry_lock);
  if (st != CUDALINK_OK)
    return win_error(st, "SetEvent", name, err);
  return CUDALINK_OK;
}
