/* Segments on Linux: the regular files in /dev/shm that carry the magic
 * (segments.h, cudalink.h "Segments present on this machine").
 *
 * /dev/shm is shared by every program on the machine and holds more than
 * segments: semaphores, other programs' buffers, and now and then a FIFO,
 * a directory or a link that someone left there. A look must never block
 * on any of them nor follow a link out of the directory: every entry is
 * opened with O_NONBLOCK | O_NOFOLLOW, checked with fstat to be a regular
 * file, and read with pread (no mmap: a file that shrinks under a mapping
 * raises SIGBUS). */
#include "segments.h"
#include "shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define SHM_DIR "/dev/shm"

/* The magic as it lies in the file (little-endian "CIPD"). */
static const uint8_t magic_bytes[4] = {
    (uint8_t)(CUDALINK_MAGIC & 0xffu), (uint8_t)((CUDALINK_MAGIC >> 8) & 0xffu),
    (uint8_t)((CUDALINK_MAGIC >> 16) & 0xffu), (uint8_t)((CUDALINK_MAGIC >> 24) & 0xffu)};

/* strerror_r exists in two flavours: GNU (returns the text) and XSI. */
static const char *
errno_text(int err, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len);
#else
  if (strerror_r(err, buf, len) != 0)
    snprintf(buf, len, "error %d", err);
  return buf;
#endif
}

/* Entry name of the directory dirfd, for reading, without blocking (a
 * FIFO opens at once) or following a link (ELOOP). -1 with errno. */
static int
open_entry(int dirfd, const char *name)
{
  return openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
}

/* Up to len bytes from offset 0; the count read, or -1 with errno. */
static ssize_t
read_start(int fd, uint8_t *buf, size_t len)
{
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

/* The producer lock's test, as cudalink_shm_is_locked() (shm.c) makes it,
 * on a descriptor of our own: a read lock is what a read-only descriptor
 * may ask about, and any producer's write lock conflicts with it. 1 held,
 * 0 free, -1 when the system cannot tell. */
static int
lock_held(int fd)
{
#ifdef F_OFD_GETLK
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  fl.l_pid = 0;
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
    return -1;
  return fl.l_type != F_UNLCK;
#else
  (void)fd;
  return -1;
#endif
}

static double
seconds_since(const struct timespec *then)
{
  struct timespec now;
  if (clock_gettime(CLOCK_REALTIME, &now) != 0)
    return -1.0;
  double age = (double)(now.tv_sec - then->tv_sec) + (double)(now.tv_nsec - then->tv_nsec) * 1e-9;
  return age < 0 ? 0.0 : age;
}

cudalink_status
cudalink_segment_read_raw(const char *name, cudalink_segment_raw *raw, char *why, size_t why_len)
{
  char text[128];
  struct stat st;
  int dirfd, fd, err;

  memset(raw, 0, sizeof *raw);
  raw->owner_uid = -1;
  raw->locked = -1;
  raw->changed_age_s = -1.0;
  cudalink_textf(why, why_len, "%s", "");

  dirfd = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    err = errno;
    cudalink_textf(why, why_len, "cannot open %s: %s", SHM_DIR, errno_text(err, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  /* What is there, before opening anything. */
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    err = errno;
    close(dirfd);
    if (err == ENOENT) {
      cudalink_textf(why, why_len, "no segment named '%s' (%s/%s does not exist)", name, SHM_DIR,
                     name);
      return CUDALINK_ERR_NOT_FOUND;
    }
    cudalink_textf(why, why_len, "cannot look at %s/%s: %s", SHM_DIR, name,
                   errno_text(err, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  raw->owner_uid = (int64_t)st.st_uid;
  if (!S_ISREG(st.st_mode)) {
    close(dirfd);
    cudalink_textf(why, why_len,
                   "%s/%s is %s, not a shared-memory segment: a consumer cannot map it", SHM_DIR,
                   name, cudalink_file_type_text(st.st_mode));
    return CUDALINK_ERR_SHM;
  }
  fd = open_entry(dirfd, name);
  err = errno;
  close(dirfd);
  if (fd < 0) {
    if (err == ENOENT) {
      cudalink_textf(why, why_len, "no segment named '%s' (it went away while looked at)", name);
      return CUDALINK_ERR_NOT_FOUND;
    }
    if (err == EACCES)
      cudalink_textf(why, why_len,
                     "%s/%s belongs to uid %lld (mode %03o): this user cannot read it, nor can "
                     "a consumer running as this user",
                     SHM_DIR, name, (long long)st.st_uid, (unsigned)(st.st_mode & 0777));
    else
      cudalink_textf(why, why_len, "cannot open %s/%s: %s", SHM_DIR, name,
                     errno_text(err, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  /* Again on what was opened: the name may have been replaced meanwhile. */
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    cudalink_textf(why, why_len, "%s/%s changed into something that is not a regular file", SHM_DIR,
                   name);
    return CUDALINK_ERR_SHM;
  }
  raw->owner_uid = (int64_t)st.st_uid;
  raw->file_size = st.st_size > 0 ? (uint64_t)st.st_size : 0u;
  raw->changed_age_s =
      seconds_since(st.st_mtim.tv_sec >= st.st_ctim.tv_sec ? &st.st_mtim : &st.st_ctim);
  ssize_t got = read_start(fd, raw->bytes, sizeof raw->bytes);
  if (got < 0) {
    err = errno;
    close(fd);
    cudalink_textf(why, why_len, "cannot read %s/%s: %s", SHM_DIR, name,
                   errno_text(err, text, sizeof text));
    return CUDALINK_ERR_SHM;
  }
  raw->len = (size_t)got;
  raw->locked = lock_held(fd);
  close(fd);
  return CUDALINK_OK;
}

/* Does entry name of dirfd look like a segment (a regular file starting
 * with the magic)? Never blocks. */
static int
carries_magic(int dirfd, const char *name)
{
  uint8_t head[4];
  struct stat st;
  int fd = open_entry(dirfd, name);
  int yes = 0;
  if (fd < 0)
    return 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 4 &&
      read_start(fd, head, sizeof head) == (ssize_t)sizeof head)
    yes = memcmp(head, magic_bytes, sizeof head) == 0;
  close(fd);
  return yes;
}

static int
compare_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* names[0..n) (each malloc'd) into one block: the array, NULL, the text. */
static char **
pack_names(char **names, size_t n)
{
  size_t bytes = (n + 1) * sizeof(char *);
  for (size_t i = 0; i < n; i++)
    bytes += strlen(names[i]) + 1;
  char **out = malloc(bytes);
  if (!out)
    return NULL;
  char *text = (char *)(out + n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(names[i]) + 1;
    memcpy(text, names[i], len);
    out[i] = text;
    text += len;
  }
  out[n] = NULL;
  return out;
}

cudalink_status
cudalink_segment_list(char ***names, size_t *count)
{
  char **found = NULL, **packed;
  size_t n = 0, cap = 0;
  cudalink_status st = CUDALINK_OK;
  struct dirent *e;
  DIR *dir;
  int dirfd;

  if (count)
    *count = 0;
  if (!names)
    return CUDALINK_ERR_INVALID_ARG;
  *names = NULL;
  dirfd = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return CUDALINK_ERR_SHM;
  dir = fdopendir(dirfd);
  if (!dir) {
    close(dirfd);
    return CUDALINK_ERR_SHM;
  }
  while ((e = readdir(dir)) != NULL) {
    /* d_type saves opening what is plainly no file; DT_UNKNOWN is opened
     * and judged by fstat. */
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
      continue;
    if (cudalink_check_name(e->d_name) != CUDALINK_OK || !carries_magic(dirfd, e->d_name))
      continue;
    if (n == cap) {
      size_t new_cap = cap ? cap * 2 : 16;
      char **grown = realloc(found, new_cap * sizeof *grown);
      if (!grown) {
        st = CUDALINK_ERR_NO_MEMORY;
        break;
      }
      found = grown;
      cap = new_cap;
    }
    if (!(found[n] = strdup(e->d_name))) {
      st = CUDALINK_ERR_NO_MEMORY;
      break;
    }
    n++;
  }
  closedir(dir); /* closes dirfd */
  packed = NULL;
  if (st == CUDALINK_OK) {
    if (n > 1)
      qsort(found, n, sizeof *found, compare_names);
    packed = pack_names(found, n);
    if (!packed)
      st = CUDALINK_ERR_NO_MEMORY;
  }
  for (size_t i = 0; i < n; i++)
    free(found[i]);
  free(found);
  if (st != CUDALINK_OK)
    return st;
  *names = packed;
  if (count)
    *count = n;
  return CUDALINK_OK;
}
