/* Segments on Windows (segments.h): named file mappings cannot be
 * enumerated, so there is no listing; one NAME is read through the
 * consumer's own read-only open (shm_win32.c), and the producer lock says
 * whether a producer of ours holds it. No owner, no file times: a mapping
 * lives only while some process holds it, so there are no leftovers to
 * age either. */
#include "segments.h"

#include <string.h>

#include "shm.h"
#include "util.h"

cudalink_status
cudalink_segment_read_raw(const char *name, cudalink_segment_raw *raw, char *why, size_t why_len)
{
  cudalink_shm *shm = NULL;
  cudalink_status st;
  size_t size;
  int locked;

  memset(raw, 0, sizeof *raw);
  raw->owner_uid = -1;
  raw->locked = -1;
  raw->changed_age_s = -1.0;
  cudalink_textf(why, why_len, "%s", "");

  st = cudalink_shm_open(name, &shm);
  if (st == CUDALINK_ERR_NOT_FOUND) {
    cudalink_textf(why, why_len, "no segment named '%s' (no file mapping of that name)", name);
    return st;
  }
  if (st != CUDALINK_OK) {
    cudalink_textf(why, why_len, "cannot open segment '%s': %s", name, cudalink_shm_last_error());
    return st;
  }
  size = cudalink_shm_size(shm);
  raw->file_size = size;
  raw->len = size < sizeof raw->bytes ? size : sizeof raw->bytes;
  memcpy(raw->bytes, cudalink_shm_data(shm), raw->len);
  locked = cudalink_shm_is_locked(shm);
  raw->locked = locked < 0 ? -1 : locked;
  cudalink_shm_close(shm);
  return CUDALINK_OK;
}

cudalink_status
cudalink_segment_list(char ***names, size_t *count)
{
  if (names)
    *names = NULL;
  if (count)
    *count = 0;
  return CUDALINK_ERR_UNSUPPORTED;
}
