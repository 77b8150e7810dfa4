/* What shm.c (the common part and POSIX) and shm_win32.c share: the
 * segment object and the per-thread error text. Internal to the shm files. */
#ifndef CUDALINK_SHM_INTERNAL_H
#define CUDALINK_SHM_INTERNAL_H

#include <stdarg.h>

#include "shm.h"
#include "util.h"

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
#else
#  include <sys/types.h>
#endif

struct cudalink_shm {
  char name[CUDALINK_MAX_NAME + 1];
  void *data;     /* mapping; points at cudalink_shm_empty when size is 0 */
  size_t size;    /* bytes mapped */
  size_t max_map; /* never maps more than this (SIZE_MAX: all of it) */
  int writable;
#ifdef _WIN32
  HANDLE mapping;
  size_t file_size; /* the whole mapping's (page-rounded) size */
  HANDLE lock;      /* Local\cudalink_lock_NAME while we hold the producer lock */
  HANDLE doorbell;  /* Local\cudalink_db_NAME: our producer's, or the one we wait on */
  HANDLE wake;      /* process-local: cudalink_futex_wake() on a read-only mapping */
  HANDLE timer;     /* a consumer's high-resolution timeout for its waits */
  double doorbell_retry; /* cudalink_now() when a consumer looks for a doorbell again */
#else
  int fd;
  dev_t dev; /* identity of the object, for lost_name() */
  ino_t ino;
  struct guard_node *guard; /* the mapping's SIGBUS guard entry; NULL when size is 0 */
  int was_truncated;        /* an earlier mapping was zeroed, or the file shrank */
#endif
};

/* What data() gives for an empty segment: never NULL, never writable. */
extern const unsigned char cudalink_shm_empty[1];

/* The thread's last error (cudalink_shm_last_error()). Inside CLEANUP()
 * a new text is added to the failure's ("; ...") instead of replacing it. */
void cudalink_shm_set_error(const char *fmt, ...) CUDALINK_PRINTF(1, 2);
void cudalink_shm_vset_error(const char *fmt, va_list ap) CUDALINK_PRINTF(1, 0);
extern _Thread_local int cudalink_shm_error_cleanup;

/* Runs stmt, a clean-up on a path that has failed already: what fails in
 * it is added to the first failure's text, which stays first. */
#define CLEANUP(stmt)                 \
  do {                                \
    cudalink_shm_error_cleanup++;     \
    stmt;                             \
    cudalink_shm_error_cleanup--;     \
  } while (0)

#ifdef _WIN32
/* Kernel object names: a prefix of at most 31 characters and a segment
 * name. */
#  define CUDALINK_OBJECT_NAME_LEN (32 + CUDALINK_MAX_NAME + 1)

/** prefix + name as a kernel object name (UTF-16); 0 if name is not valid
 * UTF-8 (the thread's error text says so). Also for holds.c's objects. */
int cudalink_shm_object_name(const wchar_t *prefix, const char *name,
                             wchar_t out[CUDALINK_OBJECT_NAME_LEN]);
#else
/** Puts the MAP_SHARED mapping [data, data + len) under the segments'
 * SIGBUS guard (shm.c): once its file is truncated it reads zeros instead
 * of killing the process. For holds.c's table; the thread's error text
 * says why it failed. */
cudalink_status cudalink_shm_guard(void *data, size_t len, int prot, struct guard_node **out);

/** Takes the guard off (call it before unmapping) and frees it; NULL is
 * nothing. 1 if it had fired (the file was truncated under the mapping). */
int cudalink_shm_unguard(struct guard_node *guard);
#endif

/** A new object for name (checked already) with nothing mapped yet. */
cudalink_shm *cudalink_shm_alloc(const char *name, int writable, size_t max_map);

/** What every platform's cudalink_shm_open_sized() / _create_sized()
 * checks first (name, NULL pointers, sizes); clears the outputs. */
cudalink_status cudalink_shm_open_args_ok(const char *name, size_t max_map, cudalink_shm **out);
cudalink_status cudalink_shm_create_args_ok(const char *name, size_t size, size_t max_map,
                                            cudalink_shm **out, int *created);

#endif
