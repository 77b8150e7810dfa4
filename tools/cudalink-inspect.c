/* cudalink-inspect: which cuda-link producers are there, and why a consumer
 * would or would not attach to one. Lists every segment in /dev/shm that
 * carries the protocol's magic with its header, frame rate (sampled from
 * write_idx), age of the last frame, owner and state; `cudalink-inspect
 * NAME` explains one segment field by field. No GStreamer, no GPU, no CUDA
 * driver: everything comes from libcudalink's cudalink_segment_* calls.
 * docs/INSPECT.md describes the output and the exit codes. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
/* Named mappings cannot be listed: only NAME works there (docs/WINDOWS.md). */
#  include <windows.h>
#  define SEGMENT_PLACE "mapping       "
#  define CLOCK_NAME "QueryPerformanceCounter"
#else
#  include <pwd.h>
#  define SEGMENT_PLACE "file          /dev/shm/"
#  define CLOCK_NAME "CLOCK_MONOTONIC"
#endif

#include <cudalink/cudalink.h>

/* Exit codes (docs/INSPECT.md) */
enum {
  EXIT_LIVE = 0,      /* listed; NAME: live */
  EXIT_NOT_LIVE = 1,  /* NAME: a consumer would attach but wait (idle, stale, starting) */
  EXIT_USAGE = 2,     /* bad command line */
  EXIT_REFUSED = 3,   /* NAME: a consumer would refuse it (shut down, corrupt, not a segment) */
  EXIT_NOT_FOUND = 4, /* NAME: no such segment */
  EXIT_SYSTEM = 5     /* the segments cannot be listed (/dev/shm unreadable) */
};

static const char usage_text[] =
    "usage: cudalink-inspect [OPTIONS]               list the cuda-link segments\n"
    "       cudalink-inspect [OPTIONS] [inspect] NAME  explain segment NAME\n"
    "\n"
    "Lists the shared-memory segments of cuda-link producers in /dev/shm (TouchDesigner\n"
    "Senders, cuda_link Python Exporters, cudalinksink, libcudalink programs) with their\n"
    "frame format, frame rate, age of the last frame, owner and state, or explains one\n"
    "segment field by field and why a consumer would or would not attach to it.\n"
    "Needs no GPU and no CUDA driver. Segment names are case-sensitive.\n"
    "\n"
    "options:\n"
    "  -w, --watch            refresh in place every interval until interrupted\n"
    "  -j, --json             JSON for scripts (with --watch: one object per line)\n"
    "  -i, --interval S       seconds over which write_idx is sampled for the frame rate,\n"
    "                         and between refreshes of --watch (default 0.5; 0: no rate)\n"
    "      --idle-after S     no frame for S seconds: idle, not live (default 1)\n"
    "      --stale-after S    no frame for S seconds and no producer lock: stale (default 10)\n"
    "  -n, --iterations N     with --watch: stop after N refreshes\n"
    "  -h, --help             this text\n"
    "  -V, --version          the library's version\n"
    "  --                     what follows is NAME, even \"inspect\"\n"
    "\n"
    "states: live, idle, stale, shut-down, corrupt, starting (docs/INSPECT.md)\n"
    "\n"
    "exit codes:\n"
    "  0  the list was printed; NAME is live\n"
    "  1  NAME: a consumer would attach but get no frames now (idle, stale, starting)\n"
    "  2  usage error\n"
    "  3  NAME: a consumer would refuse it (shut down, corrupt, not a segment, bad name)\n"
    "  4  NAME: no such segment (the closest names are suggested)\n"
    "  5  the segments cannot be listed (/dev/shm unreadable)\n";

typedef struct options {
  int watch;
  int json;
  double interval;
  double idle_after;
  double stale_after;
  long iterations;  /* 0: forever */
  const char *name; /* NULL: list */
} options;

/* One look at a segment: the library's description, and what describing
 * returned (OK, or why there is nothing to describe). */
typedef struct look {
  cudalink_status st;
  cudalink_segment_info info;
  double fps; /* negative: unknown */
} look;

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
  (void)sig;
  interrupted = 1;
}

static void
nap(double seconds)
{
#ifdef _WIN32
  if (seconds > 0)
    Sleep((DWORD)(seconds * 1000 + 0.5));
#else
  struct timespec ts;
  if (seconds <= 0)
    return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  /* a signal ends the nap: --watch then stops */
  nanosleep(&ts, NULL);
#endif
}

/* ---- formatting ---------------------------------------------------------- */

static void
format_age(double s, char *buf, size_t len)
{
  if (s < 0)
    snprintf(buf, len, "-");
  else if (s < 1.0)
    snprintf(buf, len, "%.0f ms", s * 1e3);
  else if (s < 120.0)
    snprintf(buf, len, "%.1f s", s);
  else if (s < 7200.0)
    snprintf(buf, len, "%.0f min", s / 60.0);
  else
    snprintf(buf, len, "%.1f h", s / 3600.0);
}

/* "bgra,mono-alpha,bfloat16,0x0010"; "-" for none. */
static void
format_flags(uint16_t flags, char *buf, size_t len)
{
  static const struct {
    uint16_t bit;
    const char *name;
  } names[] = {{CUDALINK_FLAG_BGRA, "bgra"},
               {CUDALINK_FLAG_MONO_ALPHA, "mono-alpha"},
               {CUDALINK_FLAG_BFLOAT16, "bfloat16"}};
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (flags & names[i].bit)
      used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s", used ? "," : "",
                               names[i].name);
  if (flags & ~CUDALINK_FLAGS_KNOWN)
    used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s0x%04x", used ? "," : "",
                             (unsigned)(flags & ~CUDALINK_FLAGS_KNOWN));
  if (!used)
    snprintf(buf, len, "-");
}

static void
owner_name(int64_t uid, char *buf, size_t len)
{
  if (uid < 0) {
    snprintf(buf, len, "-");
    return;
  }
#ifndef _WIN32
  struct passwd pw, *found = NULL;
  char scratch[1024];
  if (getpwuid_r((uid_t)uid, &pw, scratch, sizeof scratch, &found) == 0 && found) {
    snprintf(buf, len, "%s", found->pw_name);
    return;
  }
#endif
  snprintf(buf, len, "%lld", (long long)uid);
}

static const char *
producer_word(int ours)
{
  return ours == 1 ? "ours" : ours == 0 ? "foreign" : "-";
}

/* Which parts of the header the parser decoded: the 20-byte prefix
 * (version, num_slots, write_idx) once the magic matched, and the metadata
 * once the whole layout was there. */
static int
prefix_known(const look *l)
{
  return l->st == CUDALINK_OK && l->info.header.magic == CUDALINK_MAGIC;
}

static int
body_known(const look *l)
{
  cudalink_status c = l->info.consumer_status;
  return prefix_known(l) && c != CUDALINK_ERR_TRUNCATED && c != CUDALINK_ERR_BAD_NUM_SLOTS;
}

/* The state word: the library's, or what describing found instead. */
static const char *
state_word(const look *l)
{
  if (l->st == CUDALINK_OK)
    return cudalink_segment_state_name(l->info.state);
  return l->st == CUDALINK_ERR_NOT_FOUND ? "absent" : "unusable";
}

static int
exit_code_for(const look *l)
{
  if (l->st == CUDALINK_ERR_NOT_FOUND)
    return EXIT_NOT_FOUND;
  if (l->st != CUDALINK_OK)
    return EXIT_REFUSED;
  switch (l->info.state) {
  case CUDALINK_SEGMENT_LIVE:
    return EXIT_LIVE;
  case CUDALINK_SEGMENT_IDLE:
  case CUDALINK_SEGMENT_STALE:
  case CUDALINK_SEGMENT_STARTING:
    return EXIT_NOT_LIVE;
  default:
    return EXIT_REFUSED;
  }
}

/* ---- JSON ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t
utf8_length(const unsigned char *s)
{
  size_t n;
  unsigned cp;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2, cp = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3, cp = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, cp = s[0] & 0x07u;
  else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3fu);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

/* A JSON string. Bytes that are not UTF-8 (names are bytes) come out as
 * \u00XX, their Latin-1 reading. */
static void
json_string(FILE *out, const char *s)
{
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  fputc('"', out);
  while (*p) {
    size_t n;
    if (*p == '"' || *p == '\\') {
      fputc('\\', out);
      fputc(*p++, out);
    } else if (*p < 0x20 || *p == 0x7f) {
      fprintf(out, "\\u%04x", *p++);
    } else if ((n = utf8_length(p)) > 0) {
      fwrite(p, 1, n, out);
      p += n;
    } else {
      fprintf(out, "\\u%04x", *p++);
    }
  }
  fputc('"', out);
}

/* A number with digits significant digits, or null. */
static void
json_number(FILE *out, double v, int known, int digits)
{
  if (known && isfinite(v))
    fprintf(out, "%.*g", digits, v);
  else
    fputs("null", out);
}

static void
json_key(FILE *out, const char *key, int *first)
{
  if (!*first)
    fputc(',', out);
  *first = 0;
  json_string(out, key);
  fputc(':', out);
}

static void
json_look(FILE *out, const look *l, const char *hint, const char *case_match)
{
  const cudalink_segment_info *i = &l->info;
  const cudalink_header *h = &i->header;
  int prefix = prefix_known(l), body = body_known(l), first = 1;
  char owner[64];

  fputc('{', out);
  json_key(out, "name", &first);
  json_string(out, i->name);
  json_key(out, "state", &first);
  json_string(out, state_word(l));
  json_key(out, "attachable", &first);
  fputs(i->consumer_status == CUDALINK_OK ? "true" : "false", out);
  json_key(out, "consumer_status", &first);
  json_string(out, cudalink_status_name(i->consumer_status));
  json_key(out, "why", &first);
  json_string(out, i->why);
  json_key(out, "producer", &first);
  if (l->st == CUDALINK_OK && i->ours >= 0)
    json_string(out, producer_word(i->ours));
  else
    fputs("null", out);
  json_key(out, "ours", &first);
  fputs(l->st != CUDALINK_OK || i->ours < 0 ? "null" : i->ours ? "true" : "false", out);
  json_key(out, "owner_uid", &first);
  if (i->owner_uid >= 0)
    fprintf(out, "%lld", (long long)i->owner_uid);
  else
    fputs("null", out);
  json_key(out, "owner", &first);
  if (i->owner_uid >= 0) {
    owner_name(i->owner_uid, owner, sizeof owner);
    json_string(out, owner);
  } else {
    fputs("null", out);
  }
  json_key(out, "file_size", &first);
  if (l->st == CUDALINK_OK)
    fprintf(out, "%llu", (unsigned long long)i->file_size);
  else
    fputs("null", out);

#define JSON_UINT(key, known, value)                     \
  do {                                                   \
    json_key(out, key, &first);                          \
    if (known)                                           \
      fprintf(out, "%llu", (unsigned long long)(value)); \
    else                                                 \
      fputs("null", out);                                \
  } while (0)
  JSON_UINT("width", body, h->format.width);
  JSON_UINT("height", body, h->format.height);
  JSON_UINT("channels", body, h->format.num_comps);
  json_key(out, "dtype", &first);
  if (body)
    json_string(out, cudalink_dtype_name(h->format.dtype));
  else
    fputs("null", out);
  json_key(out, "flags", &first);
  if (body) {
    static const struct {
      uint16_t bit;
      const char *name;
    } names[] = {{CUDALINK_FLAG_BGRA, "bgra"},
                 {CUDALINK_FLAG_MONO_ALPHA, "mono-alpha"},
                 {CUDALINK_FLAG_BFLOAT16, "bfloat16"}};
    int n = 0;
    fputc('[', out);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      if (i->wire_flags & names[k].bit) {
        fputs(n++ ? "," : "", out);
        json_string(out, names[k].name);
      }
    fputc(']', out);
  } else {
    fputs("null", out);
  }
  JSON_UINT("wire_flags", body, i->wire_flags);
  JSON_UINT("data_size", body, h->data_size);
  JSON_UINT("num_slots", prefix, h->num_slots);
  JSON_UINT("version", prefix, h->version);
  JSON_UINT("write_idx", prefix, h->write_idx);
  JSON_UINT("shutdown_flag", body, h->shutdown_flag);
#undef JSON_UINT
  json_key(out, "timestamp", &first);
  json_number(out, h->timestamp, body, 17);
  json_key(out, "age_s", &first);
  json_number(out, i->age_s, l->st == CUDALINK_OK && i->age_s >= 0, 6);
  json_key(out, "fps", &first);
  json_number(out, l->fps, l->fps >= 0, 6);
  if (hint) {
    json_key(out, "hint", &first);
    json_string(out, hint);
    json_key(out, "case_match", &first);
    if (case_match && case_match[0])
      json_string(out, case_match);
    else
      fputs("null", out);
  }
  fputc('}', out);
}

/* ---- looking ------------------------------------------------------------- */

static void
look_at(const char *name, const options *o, look *l)
{
  l->st = cudalink_segment_describe(name, o->idle_after, o->stale_after, &l->info);
  l->fps = -1.0;
  if (!l->info.name[0]) /* a name the library refused: still say which */
    snprintf(l->info.name, sizeof l->info.name, "%.*s", (int)(sizeof l->info.name - 1), name);
}

/* The rate between an earlier look and this one. A producer whose
 * write_idx moved is publishing, whatever its timestamp says (one that does
 * not stamp its frames): live. */
static void
rate(look *now, const look *before)
{
  cudalink_segment_info *i = &now->info;
  char age[32];
  if (!before || before->st != CUDALINK_OK || now->st != CUDALINK_OK)
    return;
  now->fps = cudalink_segment_fps(&before->info, i);
  if (now->fps > 0 && (i->state == CUDALINK_SEGMENT_IDLE || i->state == CUDALINK_SEGMENT_STALE)) {
    format_age(i->age_s, age, sizeof age);
    i->state = CUDALINK_SEGMENT_LIVE;
    snprintf(i->why, sizeof i->why,
             "write_idx moves (%.1f frames a second) although the header's timestamp says %s: "
             "its producer does not stamp its frames",
             now->fps, age);
  }
}

typedef struct snapshot {
  look *looks;
  size_t count;
} snapshot;

static void
snapshot_free(snapshot *s)
{
  free(s->looks);
  s->looks = NULL;
  s->count = 0;
}

static const look *
find_look(const snapshot *s, const char *name)
{
  for (size_t i = 0; s && i < s->count; i++)
    if (strcmp(s->looks[i].info.name, name) == 0)
      return &s->looks[i];
  return NULL;
}

/* Every segment now, rated against before (may be NULL). */
static cudalink_status
take_snapshot(const options *o, const snapshot *before, snapshot *s)
{
  char **names = NULL;
  size_t count = 0;
  cudalink_status st = cudalink_segment_list(&names, &count);
  s->looks = NULL;
  s->count = 0;
  if (st != CUDALINK_OK)
    return st;
  s->looks = calloc(count ? count : 1, sizeof *s->looks);
  if (!s->looks) {
    cudalink_segment_list_free(names);
    return CUDALINK_ERR_NO_MEMORY;
  }
  for (size_t i = 0; i < count; i++) {
    look *l = &s->looks[s->count];
    look_at(names[i], o, l);
    if (l->st == CUDALINK_ERR_NOT_FOUND)
      continue; /* gone between the listing and the look */
    rate(l, find_look(before, names[i]));
    s->count++;
  }
  cudalink_segment_list_free(names);
  return CUDALINK_OK;
}

/* ---- the list ------------------------------------------------------------ */

/* Clear-to-end-of-line on a terminal that is refreshed in place. */
static const char *eol = "\n";

static void
print_table(FILE *out, const snapshot *s)
{
  static const char *const heads[] = {"NAME",      "STATE", "PRODUCER", "OWNER", "SIZE",
                                      "CH",        "DTYPE", "FLAGS",    "SLOTS", "VERSION",
                                      "WRITE_IDX", "FPS",   "AGE"};
  enum { COLS = sizeof heads / sizeof heads[0] };
  char cell[COLS][CUDALINK_MAX_NAME + 64];
  int width[COLS];
  size_t notes = 0;

  if (s->count == 0) {
    fprintf(out, "no cuda-link segments in /dev/shm%s", eol);
    return;
  }
  for (int c = 0; c < COLS; c++)
    width[c] = (int)strlen(heads[c]);
  /* two passes: widths, then rows */
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      for (int c = 0; c < COLS; c++)
        fprintf(out, "%-*s%s", c == COLS - 1 ? 0 : width[c], heads[c], c == COLS - 1 ? "" : "  ");
      fputs(eol, out);
    }
    for (size_t r = 0; r < s->count; r++) {
      const look *l = &s->looks[r];
      const cudalink_segment_info *i = &l->info;
      const cudalink_format *f = &i->header.format;
      int body = body_known(l), prefix = prefix_known(l);
      snprintf(cell[0], sizeof cell[0], "%s", i->name);
      snprintf(cell[1], sizeof cell[1], "%s", state_word(l));
      snprintf(cell[2], sizeof cell[2], "%s", producer_word(l->st == CUDALINK_OK ? i->ours : -1));
      owner_name(i->owner_uid, cell[3], sizeof cell[3]);
      if (body && l->info.state != CUDALINK_SEGMENT_CORRUPT) {
        snprintf(cell[4], sizeof cell[4], "%ux%u", f->width, f->height);
        snprintf(cell[5], sizeof cell[5], "%u", f->num_comps);
        snprintf(cell[6], sizeof cell[6], "%s", cudalink_dtype_name(f->dtype));
        format_flags(i->wire_flags, cell[7], sizeof cell[7]);
      } else {
        for (int c = 4; c <= 7; c++)
          snprintf(cell[c], sizeof cell[c], "-");
      }
      if (prefix) {
        snprintf(cell[8], sizeof cell[8], "%u", i->header.num_slots);
        snprintf(cell[9], sizeof cell[9], "%llu", (unsigned long long)i->header.version);
        snprintf(cell[10], sizeof cell[10], "%u", i->header.write_idx);
      } else {
        for (int c = 8; c <= 10; c++)
          snprintf(cell[c], sizeof cell[c], "-");
      }
      if (l->fps >= 0)
        snprintf(cell[11], sizeof cell[11], "%.1f", l->fps);
      else
        snprintf(cell[11], sizeof cell[11], "-");
      format_age(l->st == CUDALINK_OK ? i->age_s : -1.0, cell[12], sizeof cell[12]);
      for (int c = 0; c < COLS; c++) {
        if (pass == 0) {
          int w = (int)strlen(cell[c]);
          if (w > width[c])
            width[c] = w;
        } else {
          fprintf(out, "%-*s%s", c == COLS - 1 ? 0 : width[c], cell[c], c == COLS - 1 ? "" : "  ");
        }
      }
      if (pass == 1)
        fputs(eol, out);
      if (pass == 0 && !(l->st == CUDALINK_OK && l->info.state == CUDALINK_SEGMENT_LIVE))
        notes++;
    }
  }
  if (!notes)
    return;
  fputs(eol, out);
  for (size_t r = 0; r < s->count; r++) {
    const look *l = &s->looks[r];
    if (l->st == CUDALINK_OK && l->info.state == CUDALINK_SEGMENT_LIVE)
      continue;
    fprintf(out, "%s: %s: %s", l->info.name, state_word(l), l->info.why);
    if (l->info.consumer_status != CUDALINK_OK &&
        l->info.consumer_status != CUDALINK_ERR_NOT_CONNECTED)
      fprintf(out, " (a consumer refuses it: %s)", cudalink_status_name(l->info.consumer_status));
    fputs(eol, out);
  }
}

static void
print_snapshot_json(FILE *out, const snapshot *s, const options *o)
{
  fputs("{\"segments\":[", out);
  for (size_t r = 0; r < s->count; r++) {
    if (r)
      fputc(',', out);
    json_look(out, &s->looks[r], NULL, NULL);
  }
  fputs("],\"interval_s\":", out);
  json_number(out, o->interval, 1, 6);
  fputs(",\"now\":", out);
  json_number(out, cudalink_now(), 1, 17);
  fputs("}\n", out);
}

static int
run_list(const options *o)
{
  snapshot before = {NULL, 0}, now = {NULL, 0};
  long round = 0;
  int tty = !o->json && o->watch && isatty(STDOUT_FILENO);
  cudalink_status st;

  if (tty) {
    eol = "\033[K\n";
    fputs("\033[2J", stdout);
  }
  /* the first rate needs a look one interval earlier */
  if (o->interval > 0)
    st = take_snapshot(o, NULL, &before);
  else
    st = CUDALINK_OK;
  for (;;) {
    if (st != CUDALINK_OK)
      break;
    if (o->interval > 0)
      nap(o->interval);
    if (interrupted)
      break;
    st = take_snapshot(o, o->interval > 0 ? &before : NULL, &now);
    if (st != CUDALINK_OK)
      break;
    if (tty)
      fputs("\033[H", stdout);
    if (o->json) {
      print_snapshot_json(stdout, &now, o);
    } else {
      if (o->watch)
        fprintf(stdout, "cudalink-inspect: %lu segment%s, every %.1f s (Ctrl-C ends)%s%s",
                (unsigned long)now.count, now.count == 1 ? "" : "s", o->interval, eol, eol);
      print_table(stdout, &now);
    }
    if (tty)
      fputs("\033[J", stdout);
    else if (o->watch && !o->json)
      fputs("\n", stdout);
    fflush(stdout);
    snapshot_free(&before);
    before = now;
    now.looks = NULL;
    now.count = 0;
    if (!o->watch || (o->iterations > 0 && ++round >= o->iterations))
      break;
  }
  snapshot_free(&before);
  snapshot_free(&now);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "cudalink-inspect: cannot list the segments: %s%s\n", cudalink_strerror(st),
            st == CUDALINK_ERR_UNSUPPORTED ? " (name one: cudalink-inspect NAME)" : "");
    return EXIT_SYSTEM;
  }
  return EXIT_LIVE;
}

/* ---- one segment --------------------------------------------------------- */

static void
print_detail(FILE *out, const look *l, const options *o, const char *hint)
{
  const cudalink_segment_info *i = &l->info;
  const cudalink_header *h = &i->header;
  const cudalink_format *f = &h->format;
  char text[96], owner[64];

  fprintf(out, "%s: %s%s", i->name, state_word(l), eol);
  fprintf(out, "  %s%s", i->why, eol);
  if (l->st == CUDALINK_ERR_NOT_FOUND) {
    if (hint && hint[0])
      fprintf(out, "  %s%s", hint, eol);
    return;
  }
  if (l->st != CUDALINK_OK) {
    fprintf(out, "  consumer      refuses it: %s%s", cudalink_status_name(l->st), eol);
    return;
  }
  if (i->consumer_status == CUDALINK_OK)
    fprintf(out, "  consumer      would attach (OK)%s", eol);
  else if (i->consumer_status == CUDALINK_ERR_NOT_CONNECTED)
    fprintf(out, "  consumer      would wait and retry (%s)%s",
            cudalink_status_name(i->consumer_status), eol);
  else
    fprintf(out, "  consumer      refuses it: %s: %s%s", cudalink_status_name(i->consumer_status),
            cudalink_strerror(i->consumer_status), eol);
  fprintf(out, "  producer      %s%s",
          i->ours == 1   ? "ours (a cudalink producer holds the segment's lock)"
          : i->ours == 0 ? "foreign or none (nobody holds the segment's lock)"
                         : "unknown (no lock on this platform)",
          eol);
  owner_name(i->owner_uid, owner, sizeof owner);
  fprintf(out, "  owner         %s (uid %lld)%s", owner, (long long)i->owner_uid, eol);
  fprintf(out, "  " SEGMENT_PLACE "%s, %llu bytes", i->name,
          (unsigned long long)i->file_size);
  if (prefix_known(l) && cudalink_layout_size(h->num_slots))
    fprintf(out, " (%u slots need %lu)", h->num_slots,
            (unsigned long)cudalink_layout_size(h->num_slots));
  fputs(eol, out);
  if (!prefix_known(l))
    return;
  if (body_known(l)) {
    format_flags(i->wire_flags, text, sizeof text);
    fprintf(out, "  format        %ux%u, %u channel%s, %s, flags 0x%04x (%s)%s", f->width,
            f->height, f->num_comps, f->num_comps == 1 ? "" : "s", cudalink_dtype_name(f->dtype),
            (unsigned)i->wire_flags, text, eol);
    fprintf(out, "  data_size     %u bytes%s", h->data_size, eol);
  }
  fprintf(out, "  slots         %u%s", h->num_slots, eol);
  fprintf(out, "  version       %llu%s", (unsigned long long)h->version, eol);
  fprintf(out, "  write_idx     %u%s", h->write_idx, eol);
  if (l->fps >= 0)
    fprintf(out, "  fps           %.1f (write_idx over %.2f s)%s", l->fps, o->interval, eol);
  else
    fprintf(out, "  fps           - (%s)%s",
            o->interval <= 0                            ? "not sampled: --interval 0"
            : l->info.state == CUDALINK_SEGMENT_CORRUPT ? "no rate: the header does not parse"
                                                        : "no rate: the producer re-initialised",
            eol);
  if (body_known(l)) {
    format_age(i->age_s, text, sizeof text);
    if (i->age_s >= 0)
      fprintf(out, "  last frame    %s ago (timestamp %.6f s, " CLOCK_NAME ")%s", text,
              h->timestamp, eol);
    else if (h->timestamp == 0)
      fprintf(out, "  last frame    none yet (timestamp 0)%s", eol);
    else
      fprintf(out, "  last frame    unknown (timestamp %.6f s is not of this clock)%s",
              h->timestamp, eol);
    fprintf(out, "  shutdown_flag %u%s", h->shutdown_flag, eol);
  }
}

static int
run_one(const options *o)
{
  look before, now;
  char hint[1024] = "", case_match[CUDALINK_MAX_NAME + 1] = "";
  int code = EXIT_LIVE, tty = !o->json && o->watch && isatty(STDOUT_FILENO);
  long round = 0;

  memset(&before, 0, sizeof before);
  if (tty) {
    eol = "\033[K\n";
    fputs("\033[2J", stdout);
  }
  if (o->interval > 0)
    look_at(o->name, o, &before);
  for (;;) {
    if (before.st == CUDALINK_OK && o->interval > 0)
      nap(o->interval);
    if (interrupted)
      break;
    look_at(o->name, o, &now);
    if (o->interval > 0)
      rate(&now, &before);
    hint[0] = case_match[0] = '\0';
    if (now.st == CUDALINK_ERR_NOT_FOUND)
      cudalink_segment_hint(o->name, hint, sizeof hint, case_match, sizeof case_match);
    if (tty)
      fputs("\033[H", stdout);
    if (o->json) {
      json_look(stdout, &now, now.st == CUDALINK_ERR_NOT_FOUND ? hint : NULL, case_match);
      fputc('\n', stdout);
    } else {
      print_detail(stdout, &now, o, hint);
    }
    if (tty)
      fputs("\033[J", stdout);
    else if (o->watch && !o->json)
      fputs("\n", stdout);
    fflush(stdout);
    code = exit_code_for(&now);
    before = now;
    if (!o->watch || (o->iterations > 0 && ++round >= o->iterations))
      break;
    if (now.st != CUDALINK_OK && o->interval > 0)
      nap(o->interval); /* nothing to sample: just wait for the next round */
  }
  return code;
}

/* ---- command line -------------------------------------------------------- */

#ifdef __GNUC__
__attribute__((format(printf, 1, 2)))
#endif
static int
usage_error(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "cudalink-inspect: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'cudalink-inspect --help'.\n");
  return EXIT_USAGE;
}

static int
parse_seconds(const char *text, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v < 0 || v > 86400.0)
    return 0;
  *out = v;
  return 1;
}

/* The option's value: "--opt=V", or the next argument. */
static const char *
option_value(int argc, char **argv, int *k, const char *arg, size_t optlen)
{
  if (arg[optlen] == '=')
    return arg + optlen + 1;
  if (arg[optlen] == '\0' && *k + 1 < argc)
    return argv[++*k];
  return NULL;
}

static int
is_option(const char *arg, const char *shrt, const char *lng, size_t *len)
{
  size_t n = strlen(lng);
  if (shrt && strcmp(arg, shrt) == 0) {
    *len = strlen(shrt);
    return 1;
  }
  if (strncmp(arg, lng, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
    *len = n;
    return 1;
  }
  return 0;
}

int
main(int argc, char **argv)
{
  options o = {0, 0, 0.5, 0, 0, 0, NULL};
  int npos = 0, dashdash = 0, verb = 0;
#ifndef _WIN32
  struct sigaction sa;
#endif

  for (int k = 1; k < argc; k++) {
    const char *arg = argv[k], *val;
    size_t len;
    if (!dashdash && arg[0] == '-' && arg[1] != '\0') {
      if (strcmp(arg, "--") == 0) {
        dashdash = 1;
      } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
      } else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
        unsigned v = cudalink_version_number();
        printf("cudalink-inspect (libcudalink %u.%u.%u)\n", v / 10000, v / 100 % 100, v % 100);
        return 0;
      } else if (strcmp(arg, "-w") == 0 || strcmp(arg, "--watch") == 0) {
        o.watch = 1;
      } else if (strcmp(arg, "-j") == 0 || strcmp(arg, "--json") == 0) {
        o.json = 1;
      } else if (is_option(arg, "-i", "--interval", &len)) {
        if (!(val = option_value(argc, argv, &k, arg, len)) || !parse_seconds(val, &o.interval))
          return usage_error("--interval needs seconds (0..86400), got '%s'", val ? val : "");
      } else if (is_option(arg, NULL, "--idle-after", &len)) {
        if (!(val = option_value(argc, argv, &k, arg, len)) || !parse_seconds(val, &o.idle_after))
          return usage_error("--idle-after needs seconds (0..86400), got '%s'", val ? val : "");
      } else if (is_option(arg, NULL, "--stale-after", &len)) {
        if (!(val = option_value(argc, argv, &k, arg, len)) || !parse_seconds(val, &o.stale_after))
          return usage_error("--stale-after needs seconds (0..86400), got '%s'", val ? val : "");
      } else if (is_option(arg, "-n", "--iterations", &len)) {
        char *end;
        if (!(val = option_value(argc, argv, &k, arg, len)))
          return usage_error("%s needs a count", arg);
        errno = 0;
        o.iterations = strtol(val, &end, 10);
        if (errno || end == val || *end || o.iterations < 1)
          return usage_error("--iterations needs a count of 1 or more, got '%s'", val);
      } else {
        return usage_error("unknown option '%s'", arg);
      }
      continue;
    }
    /* "inspect" is the verb only in front of a name, before any "--" */
    if (npos == 0 && !dashdash && strcmp(arg, "inspect") == 0 && !verb) {
      verb = 1;
      continue;
    }
    if (npos == 1)
      return usage_error("too many arguments ('%s')", arg);
    o.name = arg;
    npos++;
  }
  if (verb && !o.name)
    return usage_error("%s", "inspect needs a NAME");
  if (o.iterations && !o.watch)
    return usage_error("%s", "--iterations goes with --watch");
  if (o.watch && o.interval <= 0)
    return usage_error("%s", "--watch needs an --interval above 0");

#ifdef _WIN32
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
#else
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
#endif

  return o.name ? run_one(&o) : run_list(&o);
}
