/* One look at a segment's file: the platform half of segments.c
 * (segments_posix.c, segments_win32.c). Internal to libcudalink. */
#ifndef CUDALINK_SEGMENTS_H
#define CUDALINK_SEGMENTS_H

#include "cudalink.h"

typedef struct cudalink_segment_raw {
  uint8_t bytes[CUDALINK_MAX_LAYOUT_SIZE]; /* the first len bytes of the segment */
  size_t len;
  uint64_t file_size;
  int64_t owner_uid;    /* -1: unknown */
  int locked;           /* the producer lock: 1 held, 0 free, -1 unknown */
  double changed_age_s; /* seconds since the file last changed; negative: unknown */
} cudalink_segment_raw;

/** Reads segment name's first bytes and what the system knows of its file,
 * without blocking and without mapping it (Linux). name has passed
 * cudalink_check_name(). ERR_NOT_FOUND, or ERR_SHM for anything a consumer
 * could not open either (not a regular file, a link, no permission, a read
 * error); why gets the sentence. */
cudalink_status cudalink_segment_read_raw(const char *name, cudalink_segment_raw *raw, char *why,
                                          size_t why_len);

#endif
