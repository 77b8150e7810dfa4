/* Named shared memory and the futex wake-up: internal to libcudalink, no
 * CUDA here. POSIX shm_open on Linux (/dev/shm/NAME, shm.c), a paging-file
 * backed named file mapping on Windows (the names Python's SharedMemory
 * uses; shm_win32.c, which also says how the lock and the wake-up are
 * done there). Not thread safe: one segment object per thread.
 *
 * What the name holds is not trusted. Opening never blocks (a FIFO under
 * /dev/shm/NAME is refused, not waited on), links are not followed, and
 * anything but a regular file is refused with ERR_SHM: "'NAME' is a FIFO,
 * not a shared-memory segment" (or a directory, a socket, a character or
 * block device, a symbolic link).
 *
 * Every POSIX mapping is covered by a process-wide SIGBUS guard (thread
 * safe): when another process truncates the file under it, the access that
 * faults gets zero pages instead of killing the process, and the handle
 * reports itself truncated (cudalink_shm_truncated()). The guard passes
 * every SIGBUS outside our mappings to the handler installed before it (no
 * handler: the process dies of it as before); a handler installed after it
 * that does not chain bypasses it. Under valgrind a fired guard resumes
 * with stale registers unless valgrind runs with
 * --vex-iropt-register-updates=allregs-at-mem-access. */
#ifndef CUDALINK_SHM_H
#define CUDALINK_SHM_H

#include "cudalink.h"

typedef struct cudalink_shm cudalink_shm;

/** The import back-channel's names (holds.h): PREFIX + segment name.
 * Never a segment's name. */
#define CUDALINK_HOLDS_PREFIX ".cudalink-holds-"

/** Checks a segment name: 1..CUDALINK_MAX_NAME bytes, no '/', '\\' or NUL,
 * not "." or "..", not starting with CUDALINK_HOLDS_PREFIX. */
cudalink_status cudalink_shm_check_name(const char *name);

#ifndef _WIN32
#  include <sys/types.h>
/** "a FIFO", "a directory", ... for a file type that is not a segment's. */
const char *cudalink_file_type_text(mode_t mode);
#endif

/** Producer side: opens NAME read-write, creating it if absent (*created
 * set to 1; created may be NULL), and grows it with ftruncate to at least
 * size bytes (never shrinks). Maps the whole segment. size must be >= 1.
 * New segments get mode 0600 like Python's SharedMemory (minus the umask).
 * An existing segment is re-used only if it belongs to this process's
 * effective user and neither group nor others may write it; it is then
 * fchmod()ed to 0600. Otherwise ERR_SHM, with a last_error that names the
 * owner and the mode: "segment 'NAME' belongs to user 'bob' (uid 1001,
 * mode 0666): refusing to publish into it". Windows: a mapping's size is
 * fixed, so an existing one smaller than size gives ERR_SHM, and owners are
 * not checked. On failure *out is NULL and nothing new is left behind. */
cudalink_status cudalink_shm_create(const char *name, size_t size, cudalink_shm **out,
                                    int *created);

/** cudalink_shm_create() that maps at most max_map bytes (size <= max_map;
 * SIZE_MAX maps everything, which is what cudalink_shm_create() does). Of an
 * existing segment larger than max_map only the first max_map bytes are
 * mapped, and cudalink_shm_relink() copies only those; the file keeps its
 * size (never shrinks). A producer passes its layout size for both, so that
 * a 2 GB file left under the name costs it one page, not 2 GB. */
cudalink_status cudalink_shm_create_sized(const char *name, size_t size, size_t max_map,
                                          cudalink_shm **out, int *created);

/** Consumer side: opens an existing NAME read-only and maps all of it.
 * ERR_NOT_FOUND if it does not exist, ERR_SHM if it is not a segment (see
 * above). A zero-size or short segment (a producer between creating and
 * sizing it) opens fine: check the size. Any owner is accepted: see
 * cudalink_shm_owner() to warn about it. */
cudalink_status cudalink_shm_open(const char *name, cudalink_shm **out);

/** cudalink_shm_open() that maps at most max_map bytes (>= 1; SIZE_MAX: all
 * of it): min(file size, max_map) are mapped, now and by every refresh.
 * A consumer passes CUDALINK_MAX_LAYOUT_SIZE: a larger segment is fine (a
 * Windows mapping is page-rounded to 4096) and costs no more to map.
 * cudalink_shm_file_size() tells the file's real size. */
cudalink_status cudalink_shm_open_sized(const char *name, size_t max_map, cudalink_shm **out);

/** Unmaps and closes; does not unlink. Accepts NULL. Releases the lock. */
void cudalink_shm_close(cudalink_shm *shm);

/** Removes the name (the memory lives on while mapped). ERR_NOT_FOUND if
 * there is no such name. Windows: only checks the name (a mapping dies with
 * its last handle). */
cudalink_status cudalink_shm_unlink(const char *name);

/** The mapping; never NULL for an open segment, also when its size is 0
 * (then it points at a read-only dummy). Read-only for cudalink_shm_open()
 * handles. May change after cudalink_shm_refresh(). */
void *cudalink_shm_data(const cudalink_shm *shm);
/** Bytes mapped: at most the max_map asked for; Windows: page-rounded. */
size_t cudalink_shm_size(const cudalink_shm *shm);
const char *cudalink_shm_name(const cudalink_shm *shm);

/** The segment file's size now (a fresh fstat), which may exceed what is
 * mapped (max_map) or, after a truncation, fall short of it. Windows: the
 * whole mapping's page-rounded size. ERR_INVALID_ARG for NULL arguments. */
cudalink_status cudalink_shm_file_size(const cudalink_shm *shm, uint64_t *size);

/** Who owns the segment now (a fresh fstat): the owner's uid in *uid and
 * its permission bits (e.g. 0600) in *mode; either may be NULL. Returns 1
 * when it belongs to this process's effective user and neither group nor
 * others may write it (what cudalink_shm_create() demands of a segment it
 * re-uses), 0 when not (a consumer may warn; format the owner with
 * cudalink_shm_owner_text()), a negative status on error. Windows:
 * ERR_UNSUPPORTED (named mappings carry no owner we check). */
int cudalink_shm_owner(const cudalink_shm *shm, unsigned long *uid, unsigned *mode);

/** Formats an owner into buf (len bytes, always NUL-terminated when len >
 * 0): "user 'bob' (uid 1001, mode 0666)" with the name from the password
 * database, "uid 1001 (mode 0666)" when it has none (always on Windows).
 * Returns buf. */
const char *cudalink_shm_owner_text(unsigned long uid, unsigned mode, char *buf, size_t len);

/** Re-reads the segment's current size and re-maps min(size, max_map) if
 * that changed: it grew (a consumer of a producer that re-initialised with
 * more slots), or it shrank (pages past the end would raise SIGBUS).
 * Re-fetch data and size afterwards. On failure the old mapping stays.
 * A shrink counts as a truncation (see below). ERR_TRUNCATED, mapping
 * untouched, once the SIGBUS guard fired for this handle: close it and
 * open the name again. Windows: no-op. */
cudalink_status cudalink_shm_refresh(cudalink_shm *shm);

/** 1 once another process truncated the segment under this handle: the
 * SIGBUS guard fired for its mapping (which now reads zeros and absorbs
 * writes), an earlier refresh found the file shrunk, or fstat shows the
 * file shorter than the mapping now. 0 otherwise, also when it cannot tell
 * (fstat failed: last_error says why). Sticky: only a new handle starts at
 * 0 again. Costs an fstat while 0. Always 0 on Windows. */
int cudalink_shm_truncated(const cudalink_shm *shm);

/** CUDALINK_OK if not cudalink_shm_truncated(); else ERR_TRUNCATED, with
 * last_error "segment 'NAME' truncated by another process (the file now
 * has N bytes)" for the caller to pass on. ERR_INVALID_ARG for NULL. */
cudalink_status cudalink_shm_check_truncated(const cudalink_shm *shm);

/** Reads up to len bytes at offset from the segment FILE (pread on its
 * descriptor), not through the mapping: a header snapshot no truncation
 * can turn into a signal or a zeroed page, and not limited to max_map.
 * Returns the bytes that are there (short, down to 0, at the end of the
 * file) or a negative status (ERR_INVALID_ARG, ERR_SHM). Windows: copies
 * from the mapping (which cannot shrink). */
int64_t cudalink_shm_pread(const cudalink_shm *shm, uint64_t offset, void *buf, size_t len);

/** Producer lock (Linux: an OFD write lock on the whole segment).
 * ERR_BUSY if another open file description holds it, also one in this
 * process; OK again if this handle holds it already. ERR_INVALID_ARG on a
 * read-only handle. Released by cudalink_shm_close() or process death
 * (SIGKILL included), but a child fork()ed while it is held shares it until
 * the child closes the inherited descriptor or exits (exec closes it).
 * Windows: the named event Local\cudalink_lock_NAME, which exists while
 * the holder has it open (process death closes it); ERR_BUSY when it
 * exists already. */
cudalink_status cudalink_shm_lock(cudalink_shm *shm);

/** Consumer-side test, acquires nothing: 1 if some producer holds the lock,
 * 0 if none does, negative status on error. A holder asking through its
 * own locked handle gets 0. Windows: whether Local\cudalink_lock_NAME
 * exists. */
int cudalink_shm_is_locked(const cudalink_shm *shm);

/** 1 if the segment lost its name (Linux: st_nlink == 0, a consumer
 * unlinked it) or the name now points at another object; 0 otherwise,
 * also when it cannot tell (last_error says why; ask again later). Costs an
 * fstat, a shm_open and a close. Always 0 on Windows. */
int cudalink_shm_lost_name(const cudalink_shm *shm);

/** Creates a fresh segment under shm's name holding a copy of shm's
 * current contents (as many bytes as shm maps, not the old file's size;
 * mapped with shm's max_map) and returns it in *fresh (the lock is NOT
 * taken on it). The old one stays mapped: consumers that have it open keep
 * reading it, so the caller keeps writing to both for a while. ERR_BUSY if
 * the name exists (someone re-created it: not ours to replace). Between
 * the name appearing and the copy landing (microseconds) a consumer may
 * see a zero-filled segment. Windows: ERR_UNSUPPORTED. */
cudalink_status cudalink_shm_relink(const cudalink_shm *shm, cudalink_shm **fresh);

/** errno / GetLastError text of the last failure in this thread. */
const char *cudalink_shm_last_error(void);

/* Futex on a 32-bit word inside a shared mapping (Linux). Windows: the
 * word's segment's doorbell (Local\cudalink_db_NAME, PROTOCOL.md): wake on
 * a producer's writable mapping sets it, wait on a consumer's mapping
 * waits on it (and on wake from this process) for at most the timeout.
 * Elsewhere, or for a word in no segment, wait polls and wake does
 * nothing. */

/** Sleeps while *word == expected, at most timeout_us (>= 0). Returns 0 when
 * woken or the value differed, ERR_TIMEOUT on timeout. Spurious wake-ups
 * are possible: callers re-check. ERR_INVALID_ARG for NULL, a word not
 * 4-byte aligned or a negative timeout. Works on a read-only mapping.
 * ERR_TRUNCATED when the kernel cannot reach the word (EFAULT: its page
 * lies past the end of a segment another process truncated): do not wait
 * on it again; cudalink_shm_check_truncated() gives the error text. */
cudalink_status cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected,
                                    int64_t timeout_us);
/** Wakes every waiter on word. OK; ERR_TRUNCATED when the kernel cannot
 * reach the word (a truncated segment, or unmapped already: harmless for a
 * wake-up); ERR_INVALID_ARG for NULL, ERR_SHM otherwise. Callers may
 * ignore the result. */
cudalink_status cudalink_futex_wake(volatile uint32_t *word);

#endif
