/* cudalink-inspect, the built command, run against segments this test
 * writes: a live producer of ours on the mock driver (in a child, fed a
 * frame every 20 ms by a thread), foreign idle and stale headers, a
 * shut-down one, a corrupt one, a FIFO. Its table is checked column by
 * column, its --json parsed strictly (json_check.h) and checked field by
 * field, and its exit codes one by one. Thresholds are given on the
 * command line (--idle-after 5 --stale-after 20) so that a slow run (under
 * valgrind) judges the same. Other tests' segments may be listed too:
 * only this test's names are looked at. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>

#include "cudalink.h"
#include "json_check.h"
#include "mock_producer.h"
#include "testutil.h"

#ifndef CUDALINK_INSPECT
#  error "CUDALINK_INSPECT must name the built command"
#endif

#define IDLE_AFTER "5"
#define STALE_AFTER "20"

static const cudalink_format fmt_live = {64, 32, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA};
static const cudalink_format fmt_idle = {16, 8, 1, CUDALINK_DTYPE_FLOAT32, 0};
static const cudalink_format fmt_stale = {40, 24, 4, CUDALINK_DTYPE_UINT16, 0};
static const cudalink_format fmt_bf16 = {8, 8, 2, CUDALINK_DTYPE_BFLOAT16, CUDALINK_FLAG_MONO_ALPHA};

static char n_nostamp[96];
static char n_live[96], n_idle[96], n_stale[96], n_shut[96], n_bad[96], n_fifo[96], n_absent[96],
    n_case[96];
static char owner[64];
static int have_stale; /* the clock is far enough from its start for an old timestamp */

/* ---- running the command -------------------------------------------------- */

typedef struct result {
  int code; /* exit status; -1: did not exit normally */
  char out[65536];
  char err[4096];
} result;

static result res;

/* Appends what fd has to buf (cap bytes); 0 at end of file. */
static int
drain(int fd, char *buf, size_t cap, size_t *len)
{
  char scratch[4096];
  ssize_t n = read(fd, scratch, sizeof scratch);
  if (n <= 0)
    return 0;
  size_t take = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;
  memcpy(buf + *len, scratch, take);
  *len += take;
  buf[*len] = '\0';
  return 1;
}

/* Runs the command with args (NULL-terminated) into res; 0 if it could
 * not be run or took more than 60 s. */
static int
run(const char *const *args)
{
  int out[2], err[2], status = 0;
  size_t out_len = 0, err_len = 0;
  const char *argv[16];
  int argc = 0;
  pid_t pid;

  argv[argc++] = CUDALINK_INSPECT;
  for (; *args && argc < 15; args++)
    argv[argc++] = *args;
  argv[argc] = NULL;
  memset(&res, 0, sizeof res);
  res.code = -1;
  if (pipe(out) != 0 || pipe(err) != 0)
    return 0;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    execv(CUDALINK_INSPECT, (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  double t0 = cudalink_now();
  while (open_fds > 0 && cudalink_now() - t0 < 60.0) {
    if (poll(fds, 2, 1000) <= 0)
      continue;
    if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP)) &&
        !drain(fds[0].fd, res.out, sizeof res.out, &out_len)) {
      close(fds[0].fd);
      fds[0].fd = -1;
      open_fds--;
    }
    if (fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)) &&
        !drain(fds[1].fd, res.err, sizeof res.err, &err_len)) {
      close(fds[1].fd);
      fds[1].fd = -1;
      open_fds--;
    }
  }
  if (open_fds > 0) {
    kill(pid, SIGKILL);
    for (int i = 0; i < 2; i++)
      if (fds[i].fd >= 0)
        close(fds[i].fd);
  }
  if (waitpid(pid, &status, 0) != pid)
    return 0;
  res.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (res.err[0])
    fprintf(stderr, "  stderr of cudalink-inspect: %s", res.err);
  return open_fds == 0;
}

#define RUN(...)                                      \
  do {                                                \
    const char *args_[] = {__VA_ARGS__, NULL};        \
    REQUIRE(run(args_));                              \
  } while (0)

/* The table row of segment name, split at white space into cols (the AGE
 * column, last, is the rest of the line); the number of columns, 0 if
 * there is no such row. */
static int
table_row(const char *name, char cols[13][256])
{
  const char *line = res.out;
  size_t nlen = strlen(name);
  while (line && *line) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > nlen && strncmp(line, name, nlen) == 0 && line[nlen] == ' ') {
      char copy[1024];
      int n = 0;
      snprintf(copy, sizeof copy, "%.*s", (int)len, line);
      char *save = NULL, *tok = strtok_r(copy, " ", &save);
      while (tok && n < 12) {
        snprintf(cols[n++], 256, "%s", tok);
        tok = strtok_r(NULL, " ", &save);
      }
      cols[n][0] = '\0';
      while (tok) { /* the age: "3 ms", "1.2 s", "-" */
        if (cols[n][0])
          strncat(cols[n], " ", 255 - strlen(cols[n]));
        strncat(cols[n], tok, 255 - strlen(cols[n]));
        tok = strtok_r(NULL, " ", &save);
      }
      return n + 1;
    }
    line = end ? end + 1 : NULL;
  }
  return 0;
}

/* A line of the output that starts with prefix, copied into line. */
static int
output_line(const char *prefix, char *line, size_t len)
{
  const char *p = res.out;
  size_t plen = strlen(prefix);
  while (p && *p) {
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= plen && strncmp(p, prefix, plen) == 0) {
      snprintf(line, len, "%.*s", (int)n, p);
      return 1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* ---- the segments ----------------------------------------------------------- */

static mock_producer producer;
static pthread_t feeder;
static volatile int feeding;
static int feeder_started;

/* Publishes a frame of the live producer every 20 ms, and moves the
 * write_idx of the segment whose producer never stamps its frames. */
static void *
feed(void *arg)
{
  char path[300];
  uint32_t idx = 0;
  (void)arg;
  snprintf(path, sizeof path, "/dev/shm/%s", n_nostamp);
  int fd = open(path, O_WRONLY);
  while (feeding) {
    struct timespec ts = {0, 20000000L};
    if (!mock_producer_do(&producer, 'p', 1))
      break;
    idx++;
    if (fd >= 0 && pwrite(fd, &idx, 4, (off_t)cudalink_layout_for(3).write_idx) != 4)
      break;
    nanosleep(&ts, NULL);
  }
  if (fd >= 0)
    close(fd);
  return NULL;
}

static int
write_header(const char *name, const cudalink_format *fmt, uint32_t slots, uint64_t version,
             uint32_t write_idx, double timestamp, uint8_t shutdown)
{
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  cudalink_header h;
  char path[300];
  memset(&h, 0, sizeof h);
  h.version = version;
  h.num_slots = slots;
  h.write_idx = write_idx;
  memset(h.mem_handle, 0xa5, sizeof h.mem_handle);
  memset(h.event_handle, 0x5a, sizeof h.event_handle);
  h.shutdown_flag = shutdown;
  h.format = *fmt;
  h.timestamp = timestamp;
  if (cudalink_header_write(&h, buf, sizeof buf) != CUDALINK_OK)
    return 0;
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0)
    return 0;
  size_t len = cudalink_layout_size(slots);
  int ok = write(fd, buf, len) == (ssize_t)len;
  close(fd);
  return ok;
}

static void
remove_name(const char *name)
{
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  unlink(path);
}

static int
setup(void)
{
  int pid = (int)getpid();
  double now = cudalink_now();
  char path[300];
  struct passwd *pw = getpwuid(getuid());

  snprintf(owner, sizeof owner, "%s", pw ? pw->pw_name : "");
  if (!pw)
    snprintf(owner, sizeof owner, "%d", (int)getuid());
  snprintf(n_live, sizeof n_live, "cudalink-cmdtest-%d-live", pid);
  snprintf(n_idle, sizeof n_idle, "cudalink-cmdtest-%d-idle", pid);
  snprintf(n_stale, sizeof n_stale, "cudalink-cmdtest-%d-stale", pid);
  snprintf(n_shut, sizeof n_shut, "cudalink-cmdtest-%d-shut", pid);
  snprintf(n_bad, sizeof n_bad, "cudalink-cmdtest-%d-bad", pid);
  snprintf(n_fifo, sizeof n_fifo, "cudalink-cmdtest-%d-fifo", pid);
  snprintf(n_absent, sizeof n_absent, "cudalink-cmdtest-%d-absent", pid);
  snprintf(n_case, sizeof n_case, "cudalink-cmdtest-%d-LIVE", pid);
  snprintf(n_nostamp, sizeof n_nostamp, "cudalink-cmdtest-%d-nostamp", pid);

  if (!mock_producer_start(&producer, n_live, 4, &fmt_live) || !mock_producer_do(&producer, 'p', 3))
    return 0;
  /* a foreign producer that moves write_idx but never stamps its frames */
  if (!write_header(n_nostamp, &fmt_idle, 3, 1, 0, now - 10.0, 0))
    return 0;
  feeding = 1;
  if (pthread_create(&feeder, NULL, feed, NULL) != 0)
    return 0;
  feeder_started = 1;
  /* foreign: idle (last frame 10 s ago), stale (40 s), shut down */
  have_stale = now > 60.0;
  if (!write_header(n_idle, &fmt_idle, 3, 2, 77, now - 10.0, 0) ||
      (have_stale && !write_header(n_stale, &fmt_stale, 2, 5, 1234, now - 40.0, 0)) ||
      !write_header(n_shut, &fmt_bf16, 3, 9, 10, now, 1))
    return 0;
  /* corrupt: num_slots 11 */
  if (!write_header(n_bad, &fmt_idle, 3, 1, 1, now, 0))
    return 0;
  snprintf(path, sizeof path, "/dev/shm/%s", n_bad);
  int fd = open(path, O_WRONLY);
  uint8_t eleven[4] = {11, 0, 0, 0};
  int ok = fd >= 0 && pwrite(fd, eleven, 4, (off_t)cudalink_layout_for(3).num_slots) == 4;
  if (fd >= 0)
    close(fd);
  snprintf(path, sizeof path, "/dev/shm/%s", n_fifo);
  return ok && mkfifo(path, 0600) == 0;
}

static int
teardown(void)
{
  int code = 0;
  feeding = 0;
  if (feeder_started)
    pthread_join(feeder, NULL);
  if (producer.pid > 0)
    code = mock_producer_finish(&producer);
  remove_name(n_idle);
  remove_name(n_nostamp);
  remove_name(n_stale);
  remove_name(n_shut);
  remove_name(n_bad);
  remove_name(n_fifo);
  return code;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_help_and_usage(void)
{
  RUN("--help");
  CHECK_EQ_INT(res.code, 0);
  CHECK_STR_CONTAINS(res.out, "usage: cudalink-inspect");
  CHECK_STR_CONTAINS(res.out, "exit codes:");
  RUN("--version");
  CHECK_EQ_INT(res.code, 0);
  CHECK_STR_CONTAINS(res.out, "libcudalink 0.");
  RUN("--bogus");
  CHECK_EQ_INT(res.code, 2);
  CHECK_STR_CONTAINS(res.err, "unknown option '--bogus'");
  RUN("a", "b");
  CHECK_EQ_INT(res.code, 2);
  RUN("inspect");
  CHECK_EQ_INT(res.code, 2);
  CHECK_STR_CONTAINS(res.err, "inspect needs a NAME");
  RUN("--interval", "-1");
  CHECK_EQ_INT(res.code, 2);
}

/* The table, column by column. */
static void
test_list_table(void)
{
  char c[13][256], line[512];

  RUN("--interval", "0.3", "--idle-after", IDLE_AFTER, "--stale-after", STALE_AFTER);
  CHECK_EQ_INT(res.code, 0);
  REQUIRE(output_line("NAME", line, sizeof line));
  CHECK_STR_CONTAINS(line, "STATE");
  CHECK_STR_CONTAINS(line, "WRITE_IDX  FPS");

  /* NAME STATE PRODUCER OWNER SIZE CH DTYPE FLAGS SLOTS VERSION WRITE_IDX FPS AGE */
  REQUIRE(table_row(n_live, c) == 13);
  CHECK(strcmp(c[1], "live") == 0);
  CHECK(strcmp(c[2], "ours") == 0);
  CHECK(strcmp(c[3], owner) == 0);
  CHECK(strcmp(c[4], "64x32") == 0);
  CHECK(strcmp(c[5], "4") == 0);
  CHECK(strcmp(c[6], "uint8") == 0);
  CHECK(strcmp(c[7], "bgra") == 0);
  CHECK(strcmp(c[8], "4") == 0);
  CHECK(strcmp(c[9], "1") == 0);
  CHECK(atoi(c[10]) >= 3);
  CHECK(atof(c[11]) > 1.0);
  CHECK_STR_CONTAINS(c[12], " ms");

  REQUIRE(table_row(n_idle, c) == 13);
  CHECK(strcmp(c[1], "idle") == 0);
  CHECK(strcmp(c[2], "foreign") == 0);
  CHECK(strcmp(c[4], "16x8") == 0);
  CHECK(strcmp(c[5], "1") == 0);
  CHECK(strcmp(c[6], "float32") == 0);
  CHECK(strcmp(c[7], "-") == 0);
  CHECK(strcmp(c[8], "3") == 0);
  CHECK(strcmp(c[9], "2") == 0);
  CHECK(strcmp(c[10], "77") == 0);
  CHECK(strcmp(c[11], "0.0") == 0);
  CHECK_STR_CONTAINS(c[12], " s");

  if (have_stale) {
    REQUIRE(table_row(n_stale, c) == 13);
    CHECK(strcmp(c[1], "stale") == 0);
    CHECK(strcmp(c[2], "foreign") == 0);
    CHECK(strcmp(c[4], "40x24") == 0);
    CHECK(strcmp(c[6], "uint16") == 0);
    CHECK(strcmp(c[8], "2") == 0);
    CHECK(strcmp(c[10], "1234") == 0);
  }

  REQUIRE(table_row(n_shut, c) == 13);
  CHECK(strcmp(c[1], "shut-down") == 0);
  CHECK(strcmp(c[6], "bfloat16") == 0);
  CHECK(strcmp(c[7], "mono-alpha,bfloat16") == 0);
  CHECK(strcmp(c[9], "9") == 0);

  REQUIRE(table_row(n_bad, c) == 13);
  CHECK(strcmp(c[1], "corrupt") == 0);
  CHECK(strcmp(c[4], "-") == 0);
  CHECK(strcmp(c[8], "11") == 0); /* the value that broke it */
  CHECK(strcmp(c[11], "-") == 0);

  CHECK_EQ_INT(table_row(n_fifo, c), 0); /* no segment: not listed */

  /* the notes say why for each one that is not live */
  snprintf(line, sizeof line, "%s: corrupt: num_slots is 11, must be 1..10 (a consumer refuses "
                              "it: ERR_BAD_NUM_SLOTS)",
           n_bad);
  CHECK_STR_CONTAINS(res.out, line);
  snprintf(line, sizeof line, "%s: shut-down: its shutdown flag is set", n_shut);
  CHECK_STR_CONTAINS(res.out, line);
  snprintf(line, sizeof line, "%s: idle: no producer holds the lock", n_idle);
  CHECK_STR_CONTAINS(res.out, line);
  snprintf(line, sizeof line, "%s: live", n_live);
  CHECK(strstr(res.out, line) == NULL);
}

static const json_value *
find_segment(const json_value *doc, const char *name)
{
  const json_value *segs = json_get(doc, "segments");
  if (!segs || segs->type != JSON_ARRAY)
    return NULL;
  for (size_t i = 0; i < segs->count; i++)
    if (strcmp(json_str(segs->items[i], "name"), name) == 0)
      return segs->items[i];
  return NULL;
}

static int
flags_are(const json_value *seg, const char *a, const char *b)
{
  const json_value *f = json_get(seg, "flags");
  size_t want = (a != NULL) + (b != NULL);
  if (!f || f->type != JSON_ARRAY || f->count != want)
    return 0;
  return (!a || strcmp(f->items[0]->string, a) == 0) && (!b || strcmp(f->items[1]->string, b) == 0);
}

/* --json, parsed strictly, field by field. */
static void
test_list_json(void)
{
  const json_value *s;
  json_value *doc;

  RUN("--json", "--interval", "0.3", "--idle-after", IDLE_AFTER, "--stale-after", STALE_AFTER);
  CHECK_EQ_INT(res.code, 0);
  REQUIRE((doc = json_parse(res.out)) != NULL);
  CHECK(json_num(doc, "interval_s") == 0.3);
  CHECK(json_num(doc, "now") > 0);

  s = find_segment(doc, n_live);
  CHECK(s != NULL);
  if (s) {
    CHECK(strcmp(json_str(s, "state"), "live") == 0);
    CHECK(json_get(s, "attachable")->boolean == 1);
    CHECK(strcmp(json_str(s, "consumer_status"), "OK") == 0);
    CHECK(strcmp(json_str(s, "producer"), "ours") == 0);
    CHECK(json_get(s, "ours")->type == JSON_BOOL && json_get(s, "ours")->boolean == 1);
    CHECK(json_num(s, "owner_uid") == (double)getuid());
    CHECK(strcmp(json_str(s, "owner"), owner) == 0);
    CHECK(json_num(s, "file_size") == (double)cudalink_layout_size(4));
    CHECK(json_num(s, "width") == 64);
    CHECK(json_num(s, "height") == 32);
    CHECK(json_num(s, "channels") == 4);
    CHECK(strcmp(json_str(s, "dtype"), "uint8") == 0);
    CHECK(flags_are(s, "bgra", NULL));
    CHECK(json_num(s, "wire_flags") == CUDALINK_FLAG_BGRA);
    CHECK(json_num(s, "data_size") == 64 * 32 * 4);
    CHECK(json_num(s, "num_slots") == 4);
    CHECK(json_num(s, "version") == 1);
    CHECK(json_num(s, "write_idx") >= 3);
    CHECK(json_num(s, "shutdown_flag") == 0);
    CHECK(json_num(s, "timestamp") > 0);
    CHECK(json_num(s, "age_s") >= 0 && json_num(s, "age_s") < 5);
    CHECK(json_num(s, "fps") > 1.0);
  }

  s = find_segment(doc, n_idle);
  CHECK(s != NULL);
  if (s) {
    CHECK(strcmp(json_str(s, "state"), "idle") == 0);
    CHECK(json_get(s, "attachable")->boolean == 1);
    CHECK(strcmp(json_str(s, "producer"), "foreign") == 0);
    CHECK(json_get(s, "ours")->boolean == 0);
    CHECK(strcmp(json_str(s, "dtype"), "float32") == 0);
    CHECK(flags_are(s, NULL, NULL));
    CHECK(json_num(s, "write_idx") == 77);
    CHECK(json_num(s, "age_s") >= 10 && json_num(s, "age_s") < 20);
    CHECK(json_num(s, "fps") == 0);
  }

  /* write_idx moves: live, whatever the timestamp says */
  s = find_segment(doc, n_nostamp);
  CHECK(s != NULL);
  if (s) {
    CHECK(strcmp(json_str(s, "state"), "live") == 0);
    CHECK(json_num(s, "fps") > 1.0);
    CHECK(json_num(s, "age_s") >= 10);
    CHECK(strstr(json_str(s, "why"), "does not stamp its frames") != NULL);
  }

  if (have_stale) {
    s = find_segment(doc, n_stale);
    CHECK(s && strcmp(json_str(s, "state"), "stale") == 0);
    CHECK(s && json_get(s, "attachable")->boolean == 1);
    CHECK(s && json_num(s, "num_slots") == 2);
  }

  s = find_segment(doc, n_shut);
  CHECK(s != NULL);
  if (s) {
    CHECK(strcmp(json_str(s, "state"), "shut-down") == 0);
    CHECK(json_get(s, "attachable")->boolean == 0);
    CHECK(strcmp(json_str(s, "consumer_status"), "ERR_STALE") == 0);
    CHECK(flags_are(s, "mono-alpha", "bfloat16"));
    CHECK(json_num(s, "shutdown_flag") == 1);
  }

  s = find_segment(doc, n_bad);
  CHECK(s != NULL);
  if (s) {
    CHECK(strcmp(json_str(s, "state"), "corrupt") == 0);
    CHECK(strcmp(json_str(s, "consumer_status"), "ERR_BAD_NUM_SLOTS") == 0);
    CHECK(strcmp(json_str(s, "why"), "num_slots is 11, must be 1..10") == 0);
    CHECK(json_num(s, "num_slots") == 11);
    CHECK(json_is_null(s, "width"));
    CHECK(json_is_null(s, "flags"));
    CHECK(json_is_null(s, "fps"));
  }
  CHECK(find_segment(doc, n_fifo) == NULL);
  json_free(doc);
}

/* One NAME: the exit code per state, and the lines that explain it. */
static void
test_one_name(void)
{
  char line[512];
  json_value *doc;

  RUN("--idle-after", IDLE_AFTER, "--stale-after", STALE_AFTER, n_live);
  CHECK_EQ_INT(res.code, 0);
  snprintf(line, sizeof line, "%s: live\n", n_live);
  CHECK_STR_CONTAINS(res.out, line);
  CHECK_STR_CONTAINS(res.out, "  consumer      would attach (OK)\n");
  CHECK_STR_CONTAINS(res.out, "  producer      ours (a cudalink producer holds the segment's lock)");
  CHECK_STR_CONTAINS(res.out, "  format        64x32, 4 channels, uint8, flags 0x0004 (bgra)\n");
  CHECK_STR_CONTAINS(res.out, "  slots         4\n");
  CHECK_STR_CONTAINS(res.out, "(write_idx over 0.50 s)");
  CHECK_STR_CONTAINS(res.out, "CLOCK_MONOTONIC");

  RUN("-i", "0", "--idle-after", IDLE_AFTER, "--stale-after", STALE_AFTER, "inspect", n_idle);
  CHECK_EQ_INT(res.code, 1);
  snprintf(line, sizeof line, "%s: idle\n", n_idle);
  CHECK_STR_CONTAINS(res.out, line);
  CHECK_STR_CONTAINS(res.out, "  producer      foreign or none");
  CHECK_STR_CONTAINS(res.out, "  fps           - (not sampled: --interval 0)");

  if (have_stale) {
    RUN("-i", "0", "--idle-after", IDLE_AFTER, "--stale-after", STALE_AFTER, n_stale);
    CHECK_EQ_INT(res.code, 1);
    CHECK_STR_CONTAINS(res.out, "without a clean shutdown");
  }

  RUN("-i", "0", n_shut);
  CHECK_EQ_INT(res.code, 3);
  CHECK_STR_CONTAINS(res.out, "  consumer      refuses it: ERR_STALE: ");
  CHECK_STR_CONTAINS(res.out, "  shutdown_flag 1\n");

  RUN("-i", "0", n_bad);
  CHECK_EQ_INT(res.code, 3);
  CHECK_STR_CONTAINS(res.out, "  num_slots is 11, must be 1..10\n");
  CHECK_STR_CONTAINS(res.out, "  consumer      refuses it: ERR_BAD_NUM_SLOTS: ");

  RUN("-i", "0", n_fifo);
  CHECK_EQ_INT(res.code, 3);
  CHECK_STR_CONTAINS(res.out, "is a FIFO, not a shared-memory segment");

  RUN("-i", "0", "a/b");
  CHECK_EQ_INT(res.code, 3);
  CHECK_STR_CONTAINS(res.out, "contains '/'");

  RUN("-i", "0", n_absent);
  CHECK_EQ_INT(res.code, 4);
  CHECK_STR_CONTAINS(res.out, "does not exist");
  CHECK_STR_CONTAINS(res.out, "Producers now: ");
  snprintf(line, sizeof line, "'%s' (live)", n_live);
  CHECK_STR_CONTAINS(res.out, line);

  /* the case-sensitive name: the one meant is suggested */
  RUN("-i", "0", n_case);
  CHECK_EQ_INT(res.code, 4);
  snprintf(line, sizeof line, "There is a segment named '%s' (names are case-sensitive)", n_live);
  CHECK_STR_CONTAINS(res.out, line);

  RUN("-i", "0", "--json", n_case);
  CHECK_EQ_INT(res.code, 4);
  REQUIRE((doc = json_parse(res.out)) != NULL);
  CHECK(strcmp(json_str(doc, "state"), "absent") == 0);
  CHECK(strcmp(json_str(doc, "consumer_status"), "ERR_NOT_FOUND") == 0);
  CHECK(strcmp(json_str(doc, "case_match"), n_live) == 0);
  CHECK(strstr(json_str(doc, "hint"), "case-sensitive") != NULL);
  CHECK(json_is_null(doc, "width"));
  json_free(doc);

  RUN("--json", "-i", "0.2", "--idle-after", IDLE_AFTER, n_live);
  CHECK_EQ_INT(res.code, 0);
  REQUIRE((doc = json_parse(res.out)) != NULL);
  CHECK(strcmp(json_str(doc, "state"), "live") == 0);
  CHECK(json_num(doc, "fps") > 1.0);
  CHECK(json_get(doc, "hint") == NULL);
  json_free(doc);
}

/* --watch --json: one object per refresh, one per line. */
static void
test_watch_json(void)
{
  json_value *doc;
  char *line, *save = NULL;
  int lines = 0;

  RUN("--watch", "--json", "-n", "3", "-i", "0.1", "--idle-after", IDLE_AFTER);
  CHECK_EQ_INT(res.code, 0);
  for (line = strtok_r(res.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lines++;
    doc = json_parse(line);
    CHECK(doc != NULL);
    CHECK(doc && find_segment(doc, n_live) != NULL);
    json_free(doc);
  }
  CHECK_EQ_INT(lines, 3);

  char head[128];
  RUN("--watch", "-n", "2", "-i", "0.1", n_shut);
  CHECK_EQ_INT(res.code, 3);
  snprintf(head, sizeof head, "%s: shut-down\n", n_shut);
  const char *first = strstr(res.out, head);
  CHECK(first && strstr(first + 1, head) != NULL); /* printed twice */
}

/* The JSON reader itself refuses what is not JSON. */
static void
test_json_reader(void)
{
  static const char *const bad[] = {"", "{", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "nul", "01",
                                    "1.", "\"\\x\"", "\"a\nb\"", "{} {}", "NaN", "\"\\ud800\""};
  json_value *v;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = json_parse(bad[i]);
    if (v)
      fprintf(stderr, "  accepted: %s\n", bad[i]);
    CHECK(v == NULL);
    json_free(v);
  }
  v = json_parse(" {\"a\":[1,-2.5e3,true,null,\"\\u00e9\\ud83d\\ude00\"]} ");
  REQUIRE(v != NULL);
  const json_value *a = json_get(v, "a");
  CHECK(a && a->count == 5 && a->items[1]->number == -2500.0);
  CHECK(a && strcmp(a->items[4]->string, "\xc3\xa9\xf0\x9f\x98\x80") == 0);
  json_free(v);
}

int
main(void)
{
  int setup_ok = setup();
  if (!setup_ok)
    fprintf(stderr, "  setup failed\n");
  RUN_TEST(test_json_reader);
  RUN_TEST(test_help_and_usage);
  if (setup_ok) {
    RUN_TEST(test_list_table);
    RUN_TEST(test_list_json);
    RUN_TEST(test_one_name);
    RUN_TEST(test_watch_json);
  }
  int producer_code = teardown();
  if (producer_code != 0) {
    fprintf(stderr, "  the producer child exited with %d\n", producer_code);
    tu_failed++;
  }
  if (!setup_ok)
    tu_failed++;
  return TEST_SUMMARY();
}
