/* The holds back-channel (holds.h): a small shared-memory table next to a
 * segment of ours, and the open-file-description locks that say which of
 * its reader entries belong to live processes. POSIX only; on Windows
 * every reader is told CUDALINK_ERR_UNSUPPORTED and copies. */
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
#define ENTRY_HOLDS 16 /* offset of the records inside an entry */
#define HOLDS_SIZE (OFF_ENTRIES + CUDALINK_HOLDS_READERS * ENTRY_SIZE)

#ifndef _WIN32

#  include <errno.h>
#  include <fcntl.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <unistd.h>

struct cudalink_holds {
  _Atomic int refs;
  int fd;
  uint8_t *base;
  int entry; /* the reader's entry, -1 for the producer */
  char path[CUDALINK_MAX_NAME + sizeof CUDALINK_HOLDS_PREFIX + 2];
};

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

static _Atomic uint64_t *
record_at(const cudalink_holds *h, int entry, int record)
{
  return u64_at(h, OFF_ENTRIES + (size_t)entry * ENTRY_SIZE + ENTRY_HOLDS + (size_t)record * 8);
}

static int
path_for(cudalink_holds *h, const char *name)
{
  return (size_t)snprintf(h->path, sizeof h->path, "/%s%s", CUDALINK_HOLDS_PREFIX, name) <
         sizeof h->path;
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
  fl.l_start = entry < 0 ? 0 : OFF_ENTRIES + (off_t)entry * ENTRY_SIZE;
  fl.l_len = 1;
  if (fcntl(fd, cmd, &fl) != 0)
    return -1;
  return cmd == F_OFD_GETLK ? fl.l_type != F_UNLCK : 1;
}

static cudalink_status
map_fd(cudalink_holds *h, int writable_header, char *why, size_t why_size)
{
  struct stat st;
  void *m;
  if (fstat(h->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cudalink_textf(why, why_size, "%s is not a regular file", h->path);
    return CUDALINK_ERR_SHM;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 022)) {
    cudalink_textf(why, why_size, "%s is not this user's alone (uid %lu, mode %04o)", h->path,
                   (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
    return CUDALINK_ERR_SHM;
  }
  if (st.st_size < HOLDS_SIZE && (!writable_header || ftruncate(h->fd, HOLDS_SIZE) != 0)) {
    cudalink_textf(why, why_size, "%s has %lld bytes, %d needed", h->path, (long long)st.st_size,
                   HOLDS_SIZE);
    return CUDALINK_ERR_SHM;
  }
  m = mmap(NULL, HOLDS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
  if (m == MAP_FAILED) {
    cudalink_textf(why, why_size, "mmap of %s: %s", h->path, strerror(errno));
    return CUDALINK_ERR_SHM;
  }
  h->base = m;
  return CUDALINK_OK;
}

static cudalink_holds *
holds_new(const char *name)
{
  cudalink_holds *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->fd = -1;
  h->entry = -1;
  atomic_init(&h->refs, 1);
  if (!path_for(h, name)) {
    free(h);
    return NULL;
  }
  return h;
}

static void
holds_free(cudalink_holds *h)
{
  if (h->base)
    munmap(h->base, HOLDS_SIZE);
  if (h->fd >= 0)
    close(h->fd); /* lets go of the entry's lock */
  free(h);
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
  h->fd = shm_open(h->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (h->fd < 0) {
    cudalink_textf(why, why_size, "shm_open %s: %s", h->path, strerror(errno));
    holds_free(h);
    return CUDALINK_ERR_SHM;
  }
  if ((st = map_fd(h, 1, why, why_size)) != CUDALINK_OK) {
    holds_free(h);
    return st;
  }
  /* alive while this lock is held: readers refuse a table without it (a
   * producer that died left it) */
  if (entry_lock(h->fd, -1, F_WRLCK, F_OFD_SETLK) != 1) {
    cudalink_textf(why, why_size, "%s is locked by another producer", h->path);
    holds_free(h);
    return CUDALINK_ERR_BUSY;
  }
  /* no ring yet: no key matches until publish_ring() */
  atomic_store(u64_at(h, OFF_RING_VERSION), 0);
  atomic_store(u64_at(h, OFF_WRITING), 0);
  atomic_store(u32_at(h, OFF_PRODUCER_FLAGS), producer_flags);
  atomic_store(u64_at(h, OFF_PID), (uint64_t)getpid());
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
    if (entry_holds(h, e, key) && entry_lock(h->fd, e, F_WRLCK, F_OFD_GETLK) != 0)
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
    const size_t off = OFF_ENTRIES + (size_t)e * ENTRY_SIZE;
    if (entry_lock(h->fd, e, F_WRLCK, F_OFD_GETLK) == 0) {
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
    shm_unlink(h->path);
  holds_free(h);
}

void
cudalink_holds_remove(const char *name)
{
  cudalink_holds *h = holds_new(name);
  if (h) {
    shm_unlink(h->path);
    holds_free(h);
  }
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
  h->fd = shm_open(h->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
  if (h->fd < 0) {
    int err = errno;
    cudalink_textf(why, why_size, "the producer of '%s' offers no import (%s)", name,
                   strerror(err));
    holds_free(h);
    return err == ENOENT ? CUDALINK_ERR_UNSUPPORTED : CUDALINK_ERR_SHM;
  }
  if ((st = map_fd(h, 0, why, why_size)) != CUDALINK_OK) {
    holds_free(h);
    return st;
  }
  if (atomic_load(u32_at(h, 0)) != HOLDS_MAGIC || atomic_load(u32_at(h, 4)) != HOLDS_LAYOUT) {
    cudalink_textf(why, why_size, "%s holds no holds table of layout %u", h->path, HOLDS_LAYOUT);
    holds_free(h);
    return CUDALINK_ERR_BAD_MAGIC;
  }
  /* a table whose producer is gone describes nobody's ring */
  if (entry_lock(h->fd, -1, F_WRLCK, F_OFD_GETLK) != 1) {
    cudalink_textf(why, why_size, "%s was left by a producer that is gone", h->path);
    holds_free(h);
    return CUDALINK_ERR_STALE;
  }
  for (int e = 0; e < CUDALINK_HOLDS_READERS; e++) {
    const size_t off = OFF_ENTRIES + (size_t)e * ENTRY_SIZE;
    if (entry_lock(h->fd, e, F_WRLCK, F_OFD_SETLK) != 1)
      continue;
    /* ours now: what a dead reader left goes, then who we are */
    for (int r = 0; r < CUDALINK_HOLDS_PER_READER; r++)
      atomic_store(record_at(h, e, r), 0);
    atomic_store(u32_at(h, off), (uint32_t)getpid());
    atomic_store(u32_at(h, off + 4), reader_flags);
    h->entry = e;
    *out = h;
    return CUDALINK_OK;
  }
  cudalink_textf(why, why_size, "all %d reader entries of %s are taken", CUDALINK_HOLDS_READERS,
                 h->path);
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

#else /* _WIN32: no back-channel; readers copy */

cudalink_status
cudalink_holds_create(const char *name, uint32_t producer_flags, cudalink_holds **out, char *why,
                      size_t why_size)
{
  (void)name, (void)producer_flags;
  *out = NULL;
  cudalink_textf(why, why_size, "import is not implemented on Windows");
  return CUDALINK_ERR_UNSUPPORTED;
}
void
cudalink_holds_publish_ring(cudalink_holds *h, uint64_t v, uint32_t n, const uint64_t *k)
{
  (void)h, (void)v, (void)n, (void)k;
}
void
cudalink_holds_set_writing(cudalink_holds *h, uint64_t key)
{
  (void)h, (void)key;
}
int
cudalink_holds_is_held(cudalink_holds *h, uint64_t key)
{
  (void)h, (void)key;
  return 0;
}
void
cudalink_holds_census_take(cudalink_holds *h, cudalink_holds_census *c)
{
  (void)h;
  memset(c, 0, sizeof *c);
}
void
cudalink_holds_destroy(cudalink_holds *h, int unlink_name)
{
  (void)h, (void)unlink_name;
}
void
cudalink_holds_remove(const char *name)
{
  (void)name;
}
cudalink_status
cudalink_holds_open(const char *name, uint32_t reader_flags, cudalink_holds **out, char *why,
                    size_t why_size)
{
  return cudalink_holds_create(name, reader_flags, out, why, why_size);
}
cudalink_holds *
cudalink_holds_ref(cudalink_holds *h)
{
  return h;
}
void
cudalink_holds_unref(cudalink_holds *h)
{
  (void)h;
}
uint64_t
cudalink_holds_key(cudalink_holds *h, uint64_t v, uint32_t s, uint32_t *f)
{
  (void)h, (void)v, (void)s, (void)f;
  return 0;
}
int
cudalink_holds_take(cudalink_holds *h, uint64_t key)
{
  (void)h, (void)key;
  return -1;
}
void
cudalink_holds_drop(cudalink_holds *h, int record)
{
  (void)h, (void)record;
}

#endif
