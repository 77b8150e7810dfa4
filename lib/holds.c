/* The holds back-channel (holds.h): a small shared-memory table next to a
 * segment of ours, and what says whether its producer and each reader
 * entry's owner are alive. The table and the protocol on it are common;
 * the platform parts at the end map it and judge liveness:
 * - POSIX: /dev/shm/.cudalink-holds-NAME; the producer and each reader
 *   hold an open-file-description lock (the kernel drops it with the
 *   process).
 * - Windows: the paging-file mapping Local\cudalink_holds_NAME; the
 *   producer keeps the event Local\cudalink_holdslive_NAME open for its
 *   life (it exists while a handle does), and a reader's entry carries an
 *   owner word, pid << 32 | a hash of the process's creation time, which
 *   others check with OpenProcess (a pid reused by another process has
 *   another creation time). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* F_OFD_SETLK */
#endif
#include "holds.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HOLDS_MAGIC 0x444C4843u
#define HOLDS_LAYOUT 1u
#define OFF_RING_VERSION 8
#define OFF_NUM_SLOTS 16
#define OFF_PRODUCER_FLAGS 20
#define OFF_WRITING 24
#define OFF_PID 32
#define OFF_KEYS 64
#define OFF_ENTRIES 256
#define ENTRY_SIZE 256
#define ENTRY_OWNER 8  /* Windows: the owner word inside an entry */
#define ENTRY_HOLDS 16 /* offset of the records inside an entry */
#define HOLDS_SIZE (OFF_ENTRIES + CUDALINK_HOLDS_READERS * ENTRY_SIZE)

#include "shm_internal.h" /* Windows: windows.h, kernel object names; POSIX: the SIGBUS guard */
#ifndef _WIN32
#  include <errno.h>
#  include <fcntl.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <unistd.h>
#endif

struct cudalink_holds {
  _Atomic int refs;
  uint8_t *base;
  int entry;                         /* the reader's entry, -1 for the producer */
  char what[CUDALINK_MAX_NAME + 64]; /* the table's name, for messages */
#ifdef _WIN32
  HANDLE mapping;
  HANDLE alive;   /* the producer's liveness event */
  uint64_t owner; /* a reader's owner word */
#else
  int fd;
  struct guard_node *guard; /* the mapping's SIGBUS guard (shm.c) */
#endif
};

/* --- the platform part (at the end) --------------------------------------- */

static cudalink_holds *holds_new(const char *name);
static void holds_free(cudalink_holds *h);
/* Creates or re-uses the table and marks the producer alive. */
static cudalink_status platform_create(cudalink_holds *h, const char *name, char *why,
                                       size_t why_size);
/* Opens and maps an existing table. */
static cudalink_status platform_open(cudalink_holds *h, const char *name, char *why,
                                     size_t why_size);
/* 1 while the producer that made the table lives. */
static int producer_alive(cudalink_holds *h, const char *name);
/* Takes entry e if nobody alive owns it: 1 taken. */
static int entry_claim(cudalink_holds *h, int e);
/* 1 when a live reader owns entry e. */
static int entry_alive(cudalink_holds *h, int e);
static uint32_t own_pid(void);
/* Removes the table's name (POSIX; a Windows mapping goes with its last
 * handle). */
static void platform_unlink(cudalink_holds *h);

/* --- the table ------------------------------------------------------------- */

static _Atomic uint32_t *
u32_at(const cudalink_holds *h, size_t off)
{
  return (_Atomic uint32_t *)(void *)(h->base + off);
}

static _Atomic uint64_t *
u64_at(const cudalink_holds *h, size_t off)
{
  return (_Atomic uint64_t *)(void *)(h->base + off);
}

static size_t
entry_off(int e)
{
  return OFF_ENTRIES + (size_t)e * ENTRY_SIZE;
}

static _Atomic uint64_t *
record_at(const cudalink_holds *h, int entry, int record)
{
  return u64_at(h, entry_off(entry) + ENTRY_HOLDS + (size_t)record * 8);
}

cudalink_status
cudalink_holds_create(const char *name, uint32_t producer_flags, cudalink_holds **out, char *why,
                      size_t why_size)
{
  cudalink_holds *h = holds_new(name);
  cudalink_status st;

  *out = NULL;
  if (!h)
    return CUDALINK_ERR_NO_MEMORY;
  if ((st = platform_create(h, name, why, why_size)) != CUDALINK_OK) {
    holds_free(h);
    return st;
  }
  /* no ring yet: no key matches until publish_ring() */
  atomic_store(u64_at(h, OFF_RING_VERSION), 0);
  atomic_store(u64_at(h, OFF_WRITING), 0);
  atomic_store(u32_at(h, OFF_PRODUCER_FLAGS), producer_flags);
  atomic_store(u64_at(h, OFF_PID), own_pid());
  atomic_store(u32_at(h, 4), HOLDS_LAYOUT);
  atomic_store(u32_at(h, 0), HOLDS_MAGIC);
  *out = h;
  return CUDALINK_OK;
}

void
cudalink_holds_publish_ring(cudalink_holds *h, uint64_t version, uint32_t num_slots,
                            const uint64_t *keys)
{
  if (!h)
    return;
  /* version 0 first: a reader that reads a key meanwhile sees no match */
  atomic_store(u64_at(h, OFF_RING_VERSION), 0);
  atomic_store(u32_at(h, OFF_NUM_SLOTS), num_slots);
  for (uint32_t s = 0; s < CUDALINK_MAX_SLOTS; s++)
    atomic_store(u64_at(h, OFF_KEYS + s * 8), s < num_slots ? keys[s] : 0);
  atomic_store(u64_at(h, OFF_RING_VERSION), version);
}

void
cudalink_holds_set_writing(cudalink_holds *h, uint64_t key)
{
  if (h)
    atomic_store(u64_at(h, OFF_WRITING), key); /* seq_cst: see holds.h */
}

static int
entry_holds(const cudalink_holds *h, int e, uint64_t key)
{
  for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++) {
    uint64_t k = atomic_load(record_at(h, e, r));
    if (k && (!key || k == key))
      return 1;
  }
  return 0;
}

int
cudalink_holds_is_held(cudalink_holds *h, uint64_t key)
{
  if (!h || !key)
    return 0;
  for (int e = 0; e < CUDALINK_HOLDS_READERS; e++) {
    /* a record without a live owner is a dead reader's: not a hold */
    if (entry_holds(h, e, key) && entry_alive(h, e))
      return 1;
  }
  return 0;
}

void
cudalink_holds_census_take(cudalink_holds *h, cudalink_holds_census *c)
{
  memset(c, 0, sizeof *c);
  if (!h)
    return;
  for (int e = 0; e < CUDALINK_HOLDS_READERS; e++) {
    const size_t off = entry_off(e);
    if (!entry_alive(h, e)) {
      if (entry_holds(h, e, 0)) {
        c->dead_holding++;
        c->dead_pid = atomic_load(u32_at(h, off));
      }
      continue;
    }
    c->readers++;
    if (atomic_load(u32_at(h, off + 4)) & CUDALINK_HOLDS_FLAG_MPS)
      c->readers_mps++;
    for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++)
      c->holds += atomic_load(record_at(h, e, r)) != 0;
  }
}

void
cudalink_holds_destroy(cudalink_holds *h, int unlink_name)
{
  if (!h)
    return;
  if (unlink_name)
    platform_unlink(h);
  holds_free(h);
}

cudalink_status
cudalink_holds_open(const char *name, uint32_t reader_flags, cudalink_holds **out, char *why,
                    size_t why_size)
{
  cudalink_holds *h = holds_new(name);
  cudalink_status st;

  *out = NULL;
  if (!h)
    return CUDALINK_ERR_NO_MEMORY;
  if ((st = platform_open(h, name, why, why_size)) != CUDALINK_OK) {
    holds_free(h);
    return st;
  }
  if (atomic_load(u32_at(h, 0)) != HOLDS_MAGIC || atomic_load(u32_at(h, 4)) != HOLDS_LAYOUT) {
    cudalink_textf(why, why_size, "%s holds no holds table of layout %u", h->what, HOLDS_LAYOUT);
    holds_free(h);
    return CUDALINK_ERR_BAD_MAGIC;
  }
  /* a table whose producer is gone describes nobody's ring */
  if (!producer_alive(h, name)) {
    cudalink_textf(why, why_size, "%s was left by a producer that is gone", h->what);
    holds_free(h);
    return CUDALINK_ERR_STALE;
  }
  for (int e = 0; e < CUDALINK_HOLDS_READERS; e++) {
    const size_t off = entry_off(e);
    if (!entry_claim(h, e))
      continue;
    /* ours now: what a dead reader left goes, then who we are */
    for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++)
      atomic_store(record_at(h, e, r), 0);
    atomic_store(u32_at(h, off), own_pid());
    atomic_store(u32_at(h, off + 4), reader_flags);
    h->entry = e;
    *out = h;
    return CUDALINK_OK;
  }
  cudalink_textf(why, why_size, "all %d reader entries of %s are taken", CUDALINK_HOLDS_READERS,
                 h->what);
  holds_free(h);
  return CUDALINK_ERR_BUSY;
}

cudalink_holds *
cudalink_holds_ref(cudalink_holds *h)
{
  if (h)
    atomic_fetch_add(&h->refs, 1);
  return h;
}

void
cudalink_holds_unref(cudalink_holds *h)
{
  if (h && atomic_fetch_sub(&h->refs, 1) == 1)
    holds_free(h);
}

uint64_t
cudalink_holds_key(cudalink_holds *h, uint64_t version, uint32_t slot, uint32_t *producer_flags)
{
  uint64_t key;
  if (!h || slot >= CUDALINK_MAX_SLOTS || atomic_load(u64_at(h, OFF_RING_VERSION)) != version)
    return 0;
  key = atomic_load(u64_at(h, OFF_KEYS + slot * 8));
  if (producer_flags)
    *producer_flags = atomic_load(u32_at(h, OFF_PRODUCER_FLAGS));
  /* the ring was re-announced while we read the key */
  return atomic_load(u64_at(h, OFF_RING_VERSION)) == version ? key : 0;
}

int
cudalink_holds_take(cudalink_holds *h, uint64_t key)
{
  if (!h || h->entry < 0 || !key)
    return -1;
  for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++) {
    _Atomic uint64_t *rec = record_at(h, h->entry, r);
    if (atomic_load_explicit(rec, memory_order_relaxed) != 0)
      continue;
    atomic_store(rec, key); /* seq_cst, then the producer's word */
    if (atomic_load(u64_at(h, OFF_WRITING)) == key) {
      atomic_store(rec, 0);
      return -2;
    }
    return r;
  }
  return -1;
}

void
cudalink_holds_drop(cudalink_holds *h, int record)
{
  if (h && h->entry >= 0 && record >= 0 && record < CUDALINK_HOLDS_PER_READER)
    atomic_store(record_at(h, h->entry, record), 0);
}

static cudalink_holds *
holds_new(const char *name)
{
  cudalink_holds *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->entry = -1;
#ifdef _WIN32
  cudalink_textf(h->what, sizeof h->what, "Local\\cudalink_holds_%s", name);
#else
  h->fd = -1;
  cudalink_textf(h->what, sizeof h->what, "/%s%s", CUDALINK_HOLDS_PREFIX, name);
#endif
  atomic_init(&h->refs, 1);
  return h;
}

/* --- POSIX ----------------------------------------------------------------- */
#ifndef _WIN32

static uint32_t
own_pid(void)
{
  return (uint32_t)getpid();
}

/* The lock that says entry is owned: one byte at its start; entry -1 is
 * the header's first byte, which the producer locks for its life. */
static int
entry_lock(int fd, int entry, short type, int cmd)
{
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = entry < 0 ? 0 : (off_t)entry_off(entry);
  fl.l_len = 1;
  if (fcntl(fd, cmd, &fl) != 0)
    return -1;
  return cmd == F_OFD_GETLK ? fl.l_type != F_UNLCK : 1;
}

static int
entry_claim(cudalink_holds *h, int e)
{
  return entry_lock(h->fd, e, F_WRLCK, F_OFD_SETLK) == 1;
}

static int
entry_alive(cudalink_holds *h, int e)
{
  /* an error counts as alive: never rewrite what may be held */
  return entry_lock(h->fd, e, F_WRLCK, F_OFD_GETLK) != 0;
}

static cudalink_status
map_fd(cudalink_holds *h, int writable_header, char *why, size_t why_size)
{
  struct stat st;
  cudalink_status res;
  void *m;
  if (fstat(h->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cudalink_textf(why, why_size, "%s is not a regular file", h->what);
    return CUDALINK_ERR_SHM;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 022)) {
    cudalink_textf(why, why_size, "%s is not this user's alone (uid %lu, mode %04o)", h->what,
                   (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
    return CUDALINK_ERR_SHM;
  }
  if (st.st_size < HOLDS_SIZE && (!writable_header || ftruncate(h->fd, HOLDS_SIZE) != 0)) {
    cudalink_textf(why, why_size, "%s has %lld bytes, %d needed", h->what, (long long)st.st_size,
                   HOLDS_SIZE);
    return CUDALINK_ERR_SHM;
  }
  m = mmap(NULL, HOLDS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
  if (m == MAP_FAILED) {
    cudalink_textf(why, why_size, "mmap of %s: %s", h->what, strerror(errno));
    return CUDALINK_ERR_SHM;
  }
  /* a peer's ftruncate() would otherwise kill us at the next access */
  if ((res = cudalink_shm_guard(m, HOLDS_SIZE, PROT_READ | PROT_WRITE, &h->guard)) !=
      CUDALINK_OK) {
    cudalink_textf(why, why_size, "%s: %s", h->what, cudalink_shm_last_error());
    munmap(m, HOLDS_SIZE);
    return res;
  }
  h->base = m;
  return CUDALINK_OK;
}

static cudalink_status
platform_create(cudalink_holds *h, const char *name, char *why, size_t why_size)
{
  cudalink_status st;

  (void)name;
  h->fd = shm_open(h->what, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (h->fd < 0) {
    cudalink_textf(why, why_size, "shm_open %s: %s", h->what, strerror(errno));
    return CUDALINK_ERR_SHM;
  }
  if ((st = map_fd(h, 1, why, why_size)) != CUDALINK_OK)
    return st;
  /* alive while this lock is held: readers refuse a table without it (a
   * producer that died left it) */
  if (entry_lock(h->fd, -1, F_WRLCK, F_OFD_SETLK) != 1) {
    cudalink_textf(why, why_size, "%s is locked by another producer", h->what);
    return CUDALINK_ERR_BUSY;
  }
  return CUDALINK_OK;
}

static cudalink_status
platform_open(cudalink_holds *h, const char *name, char *why, size_t why_size)
{
  h->fd = shm_open(h->what, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
  if (h->fd < 0) {
    int err = errno;
    cudalink_textf(why, why_size, "the producer of '%s' offers no import (%s)", name,
                   strerror(err));
    return err == ENOENT ? CUDALINK_ERR_UNSUPPORTED : CUDALINK_ERR_SHM;
  }
  return map_fd(h, 0, why, why_size);
}

static int
producer_alive(cudalink_holds *h, const char *name)
{
  (void)name;
  return entry_lock(h->fd, -1, F_WRLCK, F_OFD_GETLK) == 1;
}

static void
platform_unlink(cudalink_holds *h)
{
  shm_unlink(h->what);
}

void
cudalink_holds_remove(const char *name)
{
  cudalink_holds *h = holds_new(name);
  if (h) {
    shm_unlink(h->what);
    holds_free(h);
  }
}

static void
holds_free(cudalink_holds *h)
{
  cudalink_shm_unguard(h->guard);
  if (h->base)
    munmap(h->base, HOLDS_SIZE);
  if (h->fd >= 0)
    close(h->fd); /* lets go of the entry's lock */
  free(h);
}

/* --- Windows --------------------------------------------------------------- */
#else

static uint32_t
own_pid(void)
{
  return (uint32_t)GetCurrentProcessId();
}

/* pid << 32 | a hash of the process's creation time; 0 when it cannot be
 * told (the process is gone). */
static uint64_t
owner_word(HANDLE process, uint32_t pid)
{
  FILETIME created, exited, kernel, user;
  uint64_t t;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user))
    return 0;
  t = ((uint64_t)created.dwHighDateTime << 32) | created.dwLowDateTime;
  return ((uint64_t)pid << 32) | (uint32_t)(t ^ (t >> 32));
}

/* Is the process that wrote owner word w still alive (the same one)? */
static int
owner_alive(uint64_t w)
{
  uint32_t pid = (uint32_t)(w >> 32);
  HANDLE p;
  int alive;

  if (!w)
    return 0;
  if (pid == GetCurrentProcessId())
    return owner_word(GetCurrentProcess(), pid) == w;
  p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, pid);
  if (!p) /* denied: another user's, alive; not found: gone */
    return GetLastError() == ERROR_ACCESS_DENIED;
  alive = WaitForSingleObject(p, 0) == WAIT_TIMEOUT && owner_word(p, pid) == w;
  CloseHandle(p);
  return alive;
}

static _Atomic uint64_t *
owner_at(const cudalink_holds *h, int e)
{
  return u64_at(h, entry_off(e) + ENTRY_OWNER);
}

static int
entry_claim(cudalink_holds *h, int e)
{
  uint64_t cur = atomic_load(owner_at(h, e));
  if (!h->owner)
    h->owner = owner_word(GetCurrentProcess(), GetCurrentProcessId());
  if (!h->owner || (cur && owner_alive(cur)))
    return 0;
  return atomic_compare_exchange_strong(owner_at(h, e), &cur, h->owner);
}

static int
entry_alive(cudalink_holds *h, int e)
{
  return owner_alive(atomic_load(owner_at(h, e)));
}

/* The table's mapping name and its producer's liveness event's; 0 (why
 * filled) when name is not valid UTF-8. */
static int
table_names(const char *name, wchar_t table[CUDALINK_OBJECT_NAME_LEN],
            wchar_t live[CUDALINK_OBJECT_NAME_LEN], char *why, size_t why_size)
{
  if (cudalink_shm_object_name(L"Local\\cudalink_holds_", name, table) &&
      cudalink_shm_object_name(L"Local\\cudalink_holdslive_", name, live))
    return 1;
  cudalink_textf(why, why_size, "segment name \"%s\" is not valid UTF-8", name);
  return 0;
}

static cudalink_status
map_view(cudalink_holds *h, char *why, size_t why_size)
{
  h->base = MapViewOfFile(h->mapping, FILE_MAP_ALL_ACCESS, 0, 0, HOLDS_SIZE);
  if (!h->base) {
    cudalink_textf(why, why_size, "MapViewOfFile of %s: error %lu", h->what,
                   (unsigned long)GetLastError());
    return CUDALINK_ERR_SHM;
  }
  return CUDALINK_OK;
}

static cudalink_status
platform_create(cudalink_holds *h, const char *name, char *why, size_t why_size)
{
  wchar_t wname[CUDALINK_OBJECT_NAME_LEN], wlive[CUDALINK_OBJECT_NAME_LEN];

  if (!table_names(name, wname, wlive, why, why_size))
    return CUDALINK_ERR_BAD_NAME;
  /* (one producer per name: the segment's lock says so; a reader may be
   * holding the event open for an instant while it checks) */
  h->alive = CreateEventW(NULL, TRUE, FALSE, wlive);
  if (!h->alive) {
    cudalink_textf(why, why_size, "CreateEventW for %s: error %lu", h->what,
                   (unsigned long)GetLastError());
    return CUDALINK_ERR_SHM;
  }
  h->mapping = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, HOLDS_SIZE, wname);
  if (!h->mapping) {
    cudalink_textf(why, why_size, "CreateFileMappingW %s: error %lu", h->what,
                   (unsigned long)GetLastError());
    return CUDALINK_ERR_SHM;
  }
  return map_view(h, why, why_size);
}

static cudalink_status
platform_open(cudalink_holds *h, const char *name, char *why, size_t why_size)
{
  wchar_t wname[CUDALINK_OBJECT_NAME_LEN], wlive[CUDALINK_OBJECT_NAME_LEN];

  if (!table_names(name, wname, wlive, why, why_size))
    return CUDALINK_ERR_BAD_NAME;
  h->mapping = OpenFileMappingW(FILE_MAP_ALL_ACCESS, FALSE, wname);
  if (!h->mapping) {
    DWORD err = GetLastError();
    cudalink_textf(why, why_size, "the producer of '%s' offers no import (error %lu)", name,
                   (unsigned long)err);
    return err == ERROR_FILE_NOT_FOUND ? CUDALINK_ERR_UNSUPPORTED : CUDALINK_ERR_SHM;
  }
  return map_view(h, why, why_size);
}

static int
producer_alive(cudalink_holds *h, const char *name)
{
  wchar_t wname[CUDALINK_OBJECT_NAME_LEN], wlive[CUDALINK_OBJECT_NAME_LEN];
  char why[200];
  HANDLE live;

  (void)h;
  if (!table_names(name, wname, wlive, why, sizeof why))
    return 0;
  /* the producer's event exists while it lives (readers never keep it) */
  live = OpenEventW(SYNCHRONIZE, FALSE, wlive);
  if (!live)
    return 0;
  CloseHandle(live);
  return 1;
}

static void
platform_unlink(cudalink_holds *h)
{
  (void)h;
}

void
cudalink_holds_remove(const char *name)
{
  (void)name; /* a stale table is refused by its missing liveness event */
}

static void
holds_free(cudalink_holds *h)
{
  if (h->base && h->entry >= 0) {
    /* a live process leaves no lock behind to drop: free the entry */
    uint64_t mine = h->owner;
    for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++)
      atomic_store(record_at(h, h->entry, r), 0);
    atomic_compare_exchange_strong(owner_at(h, h->entry), &mine, 0);
  }
  if (h->base)
    UnmapViewOfFile(h->base);
  if (h->mapping)
    CloseHandle(h->mapping);
  if (h->alive)
    CloseHandle(h->alive);
  free(h);
}

#endif
