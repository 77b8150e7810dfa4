/* Named shared memory on Windows (shm.h); shm.c holds the common part.
 * A segment is a named file mapping NAME backed by the paging file, what
 * Python's SharedMemory(name=NAME) uses there. */
#include "shm.h"
#include "shm_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define set_error cudalink_shm_set_error

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
  return CUDALINK_OK;
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
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)(size64 >> 32),
                                (DWORD)(size64 & 0xffffffffu), wname);
  if (!h)
    return win_error(CUDALINK_ERR_SHM, "CreateFileMappingW", name, GetLastError());
  int is_new = GetLastError() != ERROR_ALREADY_EXISTS;
  cudalink_shm *shm = cudalink_shm_alloc(name, 1, max_map);
  if (!shm) {
    CLEANUP(undo_handle(name, h));
    return CUDALINK_ERR_NO_MEMORY;
  }
  shm->mapping = h;
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
  st = win_map(shm);
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
  /* Failures leave a text in last_error; the handle goes either way. */
  if (shm->data != (void *)cudalink_shm_empty && !UnmapViewOfFile(shm->data))
    (void)win_error(CUDALINK_ERR_SHM, "UnmapViewOfFile", shm->name, GetLastError());
  if (shm->mapping)
    undo_handle(shm->name, shm->mapping);
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

cudalink_status
cudalink_shm_lock(cudalink_shm *shm)
{
  if (!shm || !shm->writable) {
    set_error("cudalink_shm_lock: %s", !shm ? "shm is NULL" : "segment is opened read-only");
    return CUDALINK_ERR_INVALID_ARG;
  }
  return CUDALINK_OK;
}

int
cudalink_shm_is_locked(const cudalink_shm *shm)
{
  set_error("producer locks are not implemented on Windows");
  return shm ? CUDALINK_ERR_UNSUPPORTED : CUDALINK_ERR_INVALID_ARG;
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

/* WaitOnAddress only works within a process: poll in short sleeps. */
cudalink_status
cudalink_futex_wait(const volatile uint32_t *word, uint32_t expected, int64_t timeout_us)
{
  if (!word || ((uintptr_t)word & 3u) != 0 || timeout_us < 0) {
    set_error("cudalink_futex_wait: bad word or negative timeout");
    return CUDALINK_ERR_INVALID_ARG;
  }
  ULONGLONG deadline = GetTickCount64() + (ULONGLONG)((timeout_us + 999) / 1000);
  for (;;) {
    if (*word != expected)
      return CUDALINK_OK;
    ULONGLONG now = GetTickCount64();
    if (now >= deadline)
      return CUDALINK_ERR_TIMEOUT;
    Sleep(1);
  }
}

cudalink_status
cudalink_futex_wake(volatile uint32_t *word)
{
  (void)word;
  return CUDALINK_OK;
}
