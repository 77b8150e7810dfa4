/* What a look at a segment tells, on every platform: its state, what a
 * consumer would make of it, the frame rate between two looks, and the hint
 * for a name that is not there (cudalink.h, "Segments present on this
 * machine"). Reading the files is segments_posix.c's / segments_win32.c's
 * job. */
#include "segments.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A producer re-initialising its header leaves it unparsable for a moment
 * (the peers write the version first and the metadata last): a header that
 * carries the magic but does not parse is read again this often, this far
 * apart, before it is called corrupt. */
#define REREADS 2
#define REREAD_GAP_S 0.005

/* A timestamp this far in the future is not of our clock. */
#define FUTURE_SLACK_S 1.0

/* How many names a hint lists before "and N more". */
#define HINT_NAMES 8

const char *
cudalink_segment_state_name(cudalink_segment_state state)
{
  switch (state) {
  case CUDALINK_SEGMENT_LIVE:
    return "live";
  case CUDALINK_SEGMENT_IDLE:
    return "idle";
  case CUDALINK_SEGMENT_SHUT_DOWN:
    return "shut-down";
  case CUDALINK_SEGMENT_STALE:
    return "stale";
  case CUDALINK_SEGMENT_CORRUPT:
    return "corrupt";
  case CUDALINK_SEGMENT_STARTING:
    return "starting";
  }
  return "unknown";
}

void
cudalink_segment_list_free(char **names)
{
  free(names);
}

static int
all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

static int
has_magic(const cudalink_segment_raw *raw)
{
  cudalink_header h;
  cudalink_header_parse(raw->bytes, raw->len, &h);
  return raw->len >= 4 && h.magic == CUDALINK_MAGIC;
}

/* The flags field as written; 0 when the header is too short for it. */
static uint16_t
wire_flags(const cudalink_segment_raw *raw, uint32_t num_slots)
{
  cudalink_layout l = cudalink_layout_for(num_slots);
  if (!l.size || raw->len < l.flags + 2)
    return 0;
  return (uint16_t)(raw->bytes[l.flags] | (raw->bytes[l.flags + 1] << 8));
}

/* "3 ms", "2.5 s", "4 min" */
static void
format_age(double s, char *buf, size_t len)
{
  if (s < 1.0)
    cudalink_textf(buf, len, "%.0f ms", s * 1e3);
  else if (s < 120.0)
    cudalink_textf(buf, len, "%.1f s", s);
  else if (s < 7200.0)
    cudalink_textf(buf, len, "%.0f min", s / 60.0);
  else
    cudalink_textf(buf, len, "%.1f h", s / 3600.0);
}

/* The state of a segment whose header parsed and that is neither shut down
 * nor starting: is a producer behind it? */
static void
judge_producer(cudalink_segment_info *info, double changed_age_s, double idle_after_s,
               double stale_after_s)
{
  char age[32], quiet_text[32];
  int ours = info->ours == 1;
  double quiet;

  if (info->age_s >= 0)
    format_age(info->age_s, age, sizeof age);
  if (info->age_s >= 0 && info->age_s < idle_after_s) {
    info->state = CUDALINK_SEGMENT_LIVE;
    cudalink_textf(info->why, sizeof info->why, "%s producer, last frame %s ago",
                   ours ? "a cudalink" : "a foreign", age);
    return;
  }
  if (ours) {
    info->state = CUDALINK_SEGMENT_IDLE;
    if (info->age_s >= 0)
      cudalink_textf(info->why, sizeof info->why,
                     "its cudalink producer holds the segment's lock but has published nothing "
                     "for %s",
                     age);
    else
      cudalink_textf(info->why, sizeof info->why,
                     "its cudalink producer holds the segment's lock but has published nothing");
    return;
  }
  /* Foreign, or ours dead: only time tells. Before a first timestamp, the
   * file's last change stands in for it. */
  quiet = info->age_s >= 0 ? info->age_s : changed_age_s;
  if (quiet < 0 || quiet < stale_after_s) {
    info->state = CUDALINK_SEGMENT_IDLE;
    if (info->age_s >= 0)
      cudalink_textf(info->why, sizeof info->why,
                     "no producer holds the lock (a foreign producer?); last frame %s ago", age);
    else
      cudalink_textf(info->why, sizeof info->why,
                     "no producer holds the lock (a foreign producer?); no frame yet");
    return;
  }
  info->state = CUDALINK_SEGMENT_STALE;
  format_age(quiet, quiet_text, sizeof quiet_text);
  cudalink_textf(info->why, sizeof info->why,
                 "no producer holds the lock and nothing was published for %s: its producer "
                 "probably died without a clean shutdown (or is paused); a consumer would "
                 "attach and wait, a new producer of this name takes it over",
                 quiet_text);
}

/* The state of a header read from raw. */
static void
classify(const cudalink_segment_raw *raw, double idle_after_s, double stale_after_s,
         cudalink_segment_info *info)
{
  char why[200];
  cudalink_header *h = &info->header;
  cudalink_status st = cudalink_header_parse_verbose(raw->bytes, raw->len, h, why, sizeof why);
  double ts = h->timestamp;

  info->wire_flags = wire_flags(raw, h->num_slots);
  info->file_size = raw->file_size;
  info->owner_uid = raw->owner_uid;
  info->ours = raw->locked;
  info->age_s = -1.0;
  /* The parser leaves fields it did not get to at 0: no timestamp. */
  if (isfinite(ts) && ts > 0 && ts <= info->read_at + FUTURE_SLACK_S)
    info->age_s = info->read_at > ts ? info->read_at - ts : 0.0;

  if (st != CUDALINK_OK && all_zero(raw->bytes, raw->len)) {
    info->state = CUDALINK_SEGMENT_STARTING;
    info->consumer_status = CUDALINK_ERR_NOT_CONNECTED;
    if (raw->file_size == 0)
      cudalink_textf(info->why, sizeof info->why, "%s",
                     "empty (0 bytes): a producer has created it but not sized it yet; a "
                     "consumer retries");
    else
      cudalink_textf(info->why, sizeof info->why,
                     "empty (%llu bytes of zeros): a producer has created it but written no "
                     "header yet; a consumer retries",
                     (unsigned long long)raw->file_size);
  } else if (st != CUDALINK_OK) {
    info->state = CUDALINK_SEGMENT_CORRUPT;
    info->consumer_status = st;
    cudalink_textf(info->why, sizeof info->why, "%s", why);
  } else if (h->shutdown_flag) {
    info->state = CUDALINK_SEGMENT_SHUT_DOWN;
    info->consumer_status = CUDALINK_ERR_STALE;
    cudalink_textf(info->why, sizeof info->why,
                   "its shutdown flag is set: the producer shut down%s",
                   raw->locked == 1 ? " (it still holds the lock: it is removing the segment)"
                                    : " and left the segment behind");
  } else if (h->version == 0) {
    info->state = CUDALINK_SEGMENT_STARTING;
    info->consumer_status = CUDALINK_ERR_NOT_CONNECTED;
    cudalink_textf(info->why, sizeof info->why,
                   "version 0: a producer is still writing its header; a consumer retries");
  } else {
    info->consumer_status = CUDALINK_OK;
    judge_producer(info, raw->changed_age_s, idle_after_s, stale_after_s);
  }
}

cudalink_status
cudalink_segment_describe(const char *name, double idle_after_s, double stale_after_s,
                          cudalink_segment_info *info)
{
  cudalink_segment_raw raw;
  cudalink_status st;

  if (!info)
    return CUDALINK_ERR_INVALID_ARG;
  memset(info, 0, sizeof *info);
  info->state = CUDALINK_SEGMENT_CORRUPT;
  info->owner_uid = -1;
  info->ours = -1;
  info->age_s = -1.0;
  if (idle_after_s <= 0)
    idle_after_s = CUDALINK_SEGMENT_IDLE_AFTER_S;
  if (stale_after_s <= 0)
    stale_after_s = CUDALINK_SEGMENT_STALE_AFTER_S;

  st = cudalink_check_name_why(name, info->why, sizeof info->why);
  if (st != CUDALINK_OK) {
    info->consumer_status = st;
    return st;
  }
  memcpy(info->name, name, strlen(name) + 1);

  for (int attempt = 0;; attempt++) {
    info->read_at = cudalink_now();
    st = cudalink_segment_read_raw(name, &raw, info->why, sizeof info->why);
    if (st != CUDALINK_OK) {
      info->consumer_status = st;
      info->owner_uid = raw.owner_uid;
      return st;
    }
    if (attempt == REREADS || !has_magic(&raw) ||
        cudalink_header_parse(raw.bytes, raw.len, NULL) == CUDALINK_OK)
      break;
    cudalink_sleep(REREAD_GAP_S);
  }
  classify(&raw, idle_after_s, stale_after_s, info);
  return CUDALINK_OK;
}

double
cudalink_segment_fps(const cudalink_segment_info *before, const cudalink_segment_info *after)
{
  double dt;
  if (!before || !after || strcmp(before->name, after->name) != 0)
    return -1.0;
  if (before->state == CUDALINK_SEGMENT_CORRUPT || after->state == CUDALINK_SEGMENT_CORRUPT ||
      before->header.magic != CUDALINK_MAGIC || after->header.magic != CUDALINK_MAGIC ||
      before->header.version != after->header.version ||
      after->header.write_idx < before->header.write_idx)
    return -1.0;
  dt = after->read_at - before->read_at;
  if (!(dt > 0))
    return -1.0;
  return (double)(after->header.write_idx - before->header.write_idx) / dt;
}

/* ASCII-only case-insensitive equality: names are bytes, not text. */
static int
same_but_case(const char *a, const char *b)
{
  for (;; a++, b++) {
    unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
    if (x >= 'A' && x <= 'Z')
      x = (unsigned char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = (unsigned char)(y - 'A' + 'a');
    if (x != y)
      return 0;
    if (!x)
      return 1;
  }
}

static int
attachable(cudalink_segment_state state)
{
  return state == CUDALINK_SEGMENT_LIVE || state == CUDALINK_SEGMENT_IDLE;
}

/* Appends to buf (len bytes, NUL-terminated) what fits. */
static void
append(char *buf, size_t len, const char *text)
{
  if (!buf || !len)
    return;
  size_t used = strlen(buf);
  if (used + 1 < len)
    cudalink_textf(buf + used, len - used, "%s", text);
}

int
cudalink_segment_hint(const char *wanted, char *text, size_t text_size, char *case_match,
                      size_t case_match_size)
{
  char **names = NULL;
  size_t count = 0, left_over = 0;
  char match[CUDALINK_MAX_NAME + 1] = "";
  char part[CUDALINK_MAX_NAME + 128];
  cudalink_segment_state match_state = CUDALINK_SEGMENT_LIVE;
  cudalink_segment_info *info;
  char *live = NULL;
  size_t live_size = 1024;
  int num_live = 0, match_live = 0;
  cudalink_status st;

  cudalink_textf(text, text_size, "%s", "");
  cudalink_textf(case_match, case_match_size, "%s", "");
  st = cudalink_segment_list(&names, &count);
  if (st != CUDALINK_OK) {
    if (st != CUDALINK_ERR_UNSUPPORTED)
      cudalink_textf(text, text_size, "The segments in /dev/shm cannot be listed (%s).",
                     cudalink_strerror(st));
    return st;
  }
  info = malloc(sizeof *info);
  live = calloc(1, live_size);
  if (!info || !live) {
    free(info);
    free(live);
    cudalink_segment_list_free(names);
    return CUDALINK_ERR_NO_MEMORY;
  }
  for (size_t i = 0; i < count; i++) {
    if (cudalink_segment_describe(names[i], 0, 0, info) != CUDALINK_OK)
      continue;
    int ok = attachable(info->state);
    if (wanted && strcmp(names[i], wanted) != 0 && same_but_case(names[i], wanted) &&
        (!match[0] || (ok && !match_live))) {
      memcpy(match, names[i], strlen(names[i]) + 1);
      match_state = info->state;
      match_live = ok;
    }
    if (!ok) {
      left_over++;
      continue;
    }
    if (num_live < HINT_NAMES) {
      cudalink_textf(part, sizeof part, "%s'%s' (%s)", num_live ? ", " : "", names[i],
                     cudalink_segment_state_name(info->state));
      append(live, live_size, part);
    }
    num_live++;
  }
  free(info);
  cudalink_segment_list_free(names);

  if (match[0]) {
    if (match_live)
      cudalink_textf(part, sizeof part,
                     "There is a segment named '%s' (names are case-sensitive). ", match);
    else
      cudalink_textf(part, sizeof part,
                     "There is a segment named '%s', but it is %s (names are case-sensitive). ",
                     match, cudalink_segment_state_name(match_state));
    append(text, text_size, part);
    cudalink_textf(case_match, case_match_size, "%s", match);
  }
  if (num_live) {
    append(text, text_size, "Producers now: ");
    append(text, text_size, live);
    if (num_live > HINT_NAMES) {
      cudalink_textf(part, sizeof part, " and %d more", num_live - HINT_NAMES);
      append(text, text_size, part);
    }
    append(text, text_size, ".");
  } else if (left_over) {
    cudalink_textf(part, sizeof part,
                   "No producer is running; %lu segment%s left over (shut down, stale, "
                   "corrupt or starting): cudalink-inspect shows %s.",
                   (unsigned long)left_over, left_over == 1 ? " is" : "s are",
                   left_over == 1 ? "it" : "them");
    append(text, text_size, part);
  } else {
    append(text, text_size, "No producer is running (no cuda-link segment in /dev/shm).");
  }
  free(live);
  return num_live;
}
