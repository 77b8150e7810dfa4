/* Named shared memory and the futex wake-up: internal to libcudalink, no
 * CUDA here. POSIX shm_open on Linux (/dev/shm/NAME), a paging-file backed
 * named file mapping on Windows (the names Python's SharedMemory uses).
 * Not thread safe: one segment object per thread. */
#ifndef CUDALINK_SHM_H
#define CUDALINK_SHM_H

#include "cudalink.h"

typedef struct cudalink_shm cudalink_shm;

/** Checks a segment name: 1..CUDALINK_MAX_NAME bytes, no '/', '\\' or NUL,
 * not "." or "..". */
cudalink_status cudalink_shm_check_name(const char *name);

/** Producer side: opens NAME read-write, creating it if absent (*created
 * set to 1), and grows it with ftruncate to at least size bytes (never
 * shrinks). Maps the whole segment. */
cudalink_status cudalink_shm_create(const char *name, size_t size, cudalink_shm **out,
                                    int *created);

/** Consumer side: opens an existing NAME read-only and maps all of it.
 * ERR_NOT_FOUND if it does not exist. */
cudalink_status cudalink_shm_open(const char *name, cudalink_shm **out);

/** Unmaps and closes; does not unlink. Accepts NULL. Releases the lock. */
void cudalink_shm_close(cudalink_shm *shm);

/** Removes the name (the memory lives on while mapped). */
cudalink_status cudalink_shm_unlink(const char *name);

void *cudalink_shm_data(const cudalink_shm *shm);
size_t cudalink_shm_size(const cudalink_shm *shm);
const char *cudalink_shm_name(const cudalink_shm *shm);

/** Re-reads the segment's current size and re-maps it if it grew (a
 * consumer of a producer that re-initialised with more slots). */
cudalink_status cudalink_shm_refresh(cudalink_shm *shm);

/** Producer lock (Linux: an OFD write lock on the whole segment).
 * ERR_BUSY if another open file description holds it. Windows: always OK. */
cudalink_status cudalink_shm_lock(cudalink_shm *shm);

/** Consumer-side test, acquires nothing: 1 if some producer holds the lock,
 * 0 if none does, negative status on error. Windows: ERR_UNSUPPORTED. */
int cudalink_shm_is_locked(const cudalink_shm *shm);

/** 1 if the segment lost its name (Linux: st_nlink == 0, a consumer
 * unlinked it) or the name now points at another object; 0 otherwise.
 * Always 0 on Windows. */
int cudalink_shm_lost_name(const cudalink_shm *shm);

/** Creates a fresh segment under shm's name holding a copy of shm's
 * current contents (same size) and returns it in *fresh (the lock is NOT
 * taken on it). The old one stays mapped: consumers that have it open keep
 * reading it, so the caller keeps writing to both for a while. */
cudalink_status cudalink_shm_relink(const cudalink_shm *shm, cudalink_shm **fresh);

/** errno / GetLastError text of the last failure in this thread. */
const char *cudalink_shm_last_error(void);

/* Futex on a 32-bit word inside a shared mapping (Linux; elsewhere wait
 * sleeps for the timeout and wake does nothing). */

/** Sleeps while *word == expected, at most timeout_us (>= 0). Returns 0 when
 * woken or the value differed, ERR_TIMEOUT on timeout. Spurious wake-ups
 * are possible: callers re-check. */
cudalink_status cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected,
                                    int64_t timeout_us);
/** Wakes every waiter on word. */
void cudalink_futex_wake(volatile uint32_t *word);

#endif
