/* The segment inspection API (cudalink_segment_*) against segments this
 * test writes into /dev/shm itself: live ones from a real producer on the
 * mock driver (in a child: this process loads no driver), foreign ones as
 * header bytes with and without a lock held, idle, stale, shut down,
 * corrupt and empty ones, and things in /dev/shm that are no segments (a
 * FIFO, a directory, a link, a file without the magic) which must be
 * skipped without blocking. Other tests may write their own segments at
 * the same time: only names this test made are checked for. */
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "cudalink.h"
#include "mock_producer.h"
#include "testutil.h"

static const cudalink_format fmt_rgba8 = {64, 32, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA};

static unsigned name_counter;

static void
nap(double seconds)
{
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void
new_name(char *buf, size_t len, const char *what)
{
  snprintf(buf, len, "cudalink-segtest-%d-%u-%s", (int)getpid(), name_counter++, what);
}

static void
shm_file(char *buf, size_t len, const char *name)
{
  snprintf(buf, len, "/dev/shm/%s", name);
}

static int
write_bytes(const char *name, const uint8_t *bytes, size_t len)
{
  char path[300];
  shm_file(path, sizeof path, name);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0)
    return 0;
  int ok = write(fd, bytes, len) == (ssize_t)len;
  close(fd);
  return ok;
}

static void
remove_file(const char *name)
{
  char path[300];
  shm_file(path, sizeof path, name);
  unlink(path);
}

/* A header as a peer writes it: 3 slots, fmt, handles non-zero. */
static size_t
make_header(uint8_t *buf, const cudalink_format *fmt, uint64_t version, uint32_t write_idx,
            double timestamp, uint8_t shutdown)
{
  cudalink_header h;
  memset(&h, 0, sizeof h);
  h.version = version;
  h.num_slots = 3;
  h.write_idx = write_idx;
  memset(h.mem_handle, 0xa5, sizeof h.mem_handle);
  memset(h.event_handle, 0x5a, sizeof h.event_handle);
  h.shutdown_flag = shutdown;
  h.format = *fmt;
  h.timestamp = timestamp;
  if (cudalink_header_write(&h, buf, CUDALINK_MAX_LAYOUT_SIZE) != CUDALINK_OK)
    return 0;
  return cudalink_layout_size(3);
}

static int
write_header(const char *name, const cudalink_format *fmt, uint64_t version, uint32_t write_idx,
             double timestamp, uint8_t shutdown)
{
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  size_t len = make_header(buf, fmt, version, write_idx, timestamp, shutdown);
  return len && write_bytes(name, buf, len);
}

/* Is name among the listed segments? */
static int
listed(const char *name)
{
  char **names = NULL;
  size_t count = 0;
  int found = 0;
  if (cudalink_segment_list(&names, &count) != CUDALINK_OK)
    return -1;
  for (size_t i = 0; i < count; i++)
    found |= strcmp(names[i], name) == 0;
  cudalink_segment_list_free(names);
  return found;
}

/* A write lock as our producer takes it (an OFD lock on its own open
 * file description); the descriptor, or -1. */
static int
take_lock(const char *name)
{
  char path[300];
  struct flock fl;
  shm_file(path, sizeof path, name);
  int fd = open(path, O_RDWR);
  if (fd < 0)
    return -1;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ------------------------------------------------------------------------ */

static void
test_state_names(void)
{
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_LIVE), "live") == 0);
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_IDLE), "idle") == 0);
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_SHUT_DOWN), "shut-down") == 0);
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_STALE), "stale") == 0);
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_CORRUPT), "corrupt") == 0);
  CHECK(strcmp(cudalink_segment_state_name(CUDALINK_SEGMENT_STARTING), "starting") == 0);
  CHECK(strcmp(cudalink_segment_state_name((cudalink_segment_state)99), "unknown") == 0);
}

static void
test_arguments(void)
{
  cudalink_segment_info info;
  char name[96];

  CHECK_EQ_INT(cudalink_segment_describe("x", 0, 0, NULL), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_segment_list(NULL, NULL), CUDALINK_ERR_INVALID_ARG);
  cudalink_segment_list_free(NULL);

  CHECK_EQ_INT(cudalink_segment_describe("a/b", 0, 0, &info), CUDALINK_ERR_BAD_NAME);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_BAD_NAME);
  CHECK_STR_CONTAINS(info.why, "'/'");
  CHECK_EQ_INT(cudalink_segment_describe("", 0, 0, &info), CUDALINK_ERR_BAD_NAME);

  new_name(name, sizeof name, "absent");
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_ERR_NOT_FOUND);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_NOT_FOUND);
  CHECK_STR_CONTAINS(info.why, "does not exist");
  CHECK(strcmp(info.name, name) == 0);
}

/* A producer of ours on the mock driver: live while it publishes, idle when
 * it stops (it still holds its lock), gone after a clean shutdown. */
static void
test_ours_live_then_idle_then_gone(void)
{
  cudalink_segment_info a, b;
  mock_producer mp;
  char name[96];
  double fps;

  new_name(name, sizeof name, "ours");
  REQUIRE(mock_producer_start(&mp, name, 4, &fmt_rgba8));
  CHECK(mock_producer_do(&mp, 'p', 5));

  CHECK_EQ_INT(listed(name), 1);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &a), CUDALINK_OK);
  CHECK_EQ_INT(a.state, CUDALINK_SEGMENT_LIVE);
  CHECK_EQ_INT(a.consumer_status, CUDALINK_OK);
  CHECK_EQ_INT(a.ours, 1);
  CHECK_EQ_INT(a.owner_uid, (long long)getuid());
  CHECK_EQ_INT(a.file_size, cudalink_layout_size(4));
  CHECK_EQ_INT(a.header.num_slots, 4);
  CHECK_EQ_INT(a.header.write_idx, 5);
  CHECK(a.header.version >= 1);
  CHECK_EQ_INT(a.header.format.width, 64);
  CHECK_EQ_INT(a.header.format.height, 32);
  CHECK_EQ_INT(a.header.format.num_comps, 4);
  CHECK_EQ_INT(a.header.format.dtype, CUDALINK_DTYPE_UINT8);
  CHECK_EQ_INT(a.header.format.flags, CUDALINK_FLAG_BGRA);
  CHECK_EQ_INT(a.wire_flags, CUDALINK_FLAG_BGRA);
  CHECK_EQ_INT(a.header.shutdown_flag, 0);
  CHECK(a.age_s >= 0 && a.age_s < 1.0);
  CHECK_STR_CONTAINS(a.why, "a cudalink producer, last frame");

  /* frames per second between two looks */
  CHECK(mock_producer_do(&mp, 'p', 10));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &b), CUDALINK_OK);
  CHECK_EQ_INT(b.header.write_idx, 15);
  fps = cudalink_segment_fps(&a, &b);
  CHECK(fps > 0 && fabs(fps - 10.0 / (b.read_at - a.read_at)) < 1e-6);
  CHECK(cudalink_segment_fps(&b, &a) < 0); /* write_idx went back */

  /* no frame for longer than idle_after: idle, lock still held */
  nap(0.05);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0.02, 0.03, &b), CUDALINK_OK);
  CHECK_EQ_INT(b.state, CUDALINK_SEGMENT_IDLE);
  CHECK_EQ_INT(b.ours, 1);
  CHECK_STR_CONTAINS(b.why, "holds the segment's lock");

  /* a clean shutdown unlinks the segment */
  CHECK(mock_producer_do(&mp, 'd', 1));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &b), CUDALINK_ERR_NOT_FOUND);
  CHECK_EQ_INT(listed(name), 0);
  CHECK_EQ_INT(mock_producer_finish(&mp), 0);
}

/* A producer of ours killed: its segment stays with no shutdown flag and no
 * lock; idle at first like a foreign one, stale once nothing came for
 * stale_after. */
static void
test_ours_killed_goes_stale(void)
{
  cudalink_segment_info info;
  mock_producer mp;
  char name[96];

  new_name(name, sizeof name, "killed");
  REQUIRE(mock_producer_start(&mp, name, 3, &fmt_rgba8));
  CHECK(mock_producer_do(&mp, 'p', 2));
  mock_producer_kill(&mp);

  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.ours, 0);
  CHECK_EQ_INT(info.header.shutdown_flag, 0);
  CHECK(info.state == CUDALINK_SEGMENT_LIVE || info.state == CUDALINK_SEGMENT_IDLE);

  nap(0.1);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0.01, 0.05, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STALE);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_OK);
  CHECK_STR_CONTAINS(info.why, "without a clean shutdown");
  remove_file(name);
}

/* Foreign producers (no lock): live, idle, stale by their timestamp. */
static void
test_foreign_by_timestamp(void)
{
  cudalink_segment_info info;
  char name[96];
  double now = cudalink_now();

  new_name(name, sizeof name, "foreign");
  REQUIRE(write_header(name, &fmt_rgba8, 3, 120, now - 0.01, 0));
  CHECK_EQ_INT(listed(name), 1);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_LIVE);
  CHECK_EQ_INT(info.ours, 0);
  CHECK_EQ_INT(info.header.version, 3);
  CHECK_EQ_INT(info.header.write_idx, 120);
  CHECK(info.age_s >= 0.01 && info.age_s < 1.0);
  CHECK_STR_CONTAINS(info.why, "a foreign producer");

  REQUIRE(write_header(name, &fmt_rgba8, 3, 120, now - 3.0, 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_IDLE);
  CHECK(info.age_s >= 3.0 && info.age_s < 4.0);
  CHECK_STR_CONTAINS(info.why, "no producer holds the lock");

  REQUIRE(write_header(name, &fmt_rgba8, 3, 120, now - 30.0, 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STALE);
  /* the thresholds are the caller's */
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 60.0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_IDLE);
  CHECK_EQ_INT(cudalink_segment_describe(name, 40.0, 60.0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_LIVE);

  /* no timestamp yet: the file's age stands in (just written: idle) */
  REQUIRE(write_header(name, &fmt_rgba8, 3, 0, 0.0, 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_IDLE);
  CHECK(info.age_s < 0);
  CHECK_STR_CONTAINS(info.why, "no frame yet");

  /* a timestamp from the future is not our clock's: unknown age */
  REQUIRE(write_header(name, &fmt_rgba8, 3, 9, now + 1000.0, 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK(info.age_s < 0);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_IDLE);
  remove_file(name);
}

/* The lock tells ours from foreign: held, the segment is ours and idle
 * however old its last frame. */
static void
test_lock_held_is_ours(void)
{
  cudalink_segment_info info;
  char name[96];
  int fd;

  new_name(name, sizeof name, "locked");
  REQUIRE(write_header(name, &fmt_rgba8, 1, 7, cudalink_now() - 60.0, 0));
  REQUIRE((fd = take_lock(name)) >= 0);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.ours, 1);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_IDLE);
  close(fd); /* the producer "dies": the lock goes with its descriptor */
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.ours, 0);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STALE);
  remove_file(name);
}

static void
test_shut_down(void)
{
  cudalink_segment_info info;
  char name[96];

  new_name(name, sizeof name, "shutdown");
  REQUIRE(write_header(name, &fmt_rgba8, 5, 42, cudalink_now(), 1));
  CHECK_EQ_INT(listed(name), 1);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_SHUT_DOWN);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_STALE);
  CHECK_EQ_INT(info.header.shutdown_flag, 1);
  CHECK_EQ_INT(info.header.write_idx, 42); /* what the peers leave as it was */
  CHECK_STR_CONTAINS(info.why, "shutdown flag is set");
  remove_file(name);
}

static void
test_corrupt(void)
{
  cudalink_segment_info info;
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  cudalink_layout l = cudalink_layout_for(3);
  char name[96];
  size_t len;

  new_name(name, sizeof name, "corrupt");
  REQUIRE((len = make_header(buf, &fmt_rgba8, 1, 0, cudalink_now(), 0)) > 0);

  buf[l.num_slots] = 11; /* num_slots 11 */
  REQUIRE(write_bytes(name, buf, len));
  CHECK_EQ_INT(listed(name), 1); /* it carries the magic: listed, as corrupt */
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_CORRUPT);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_BAD_NUM_SLOTS);
  CHECK_STR_CONTAINS(info.why, "num_slots is 11, must be 1..10");

  buf[l.num_slots] = 3;
  buf[l.data_size] ^= 1; /* data_size off by one */
  REQUIRE(write_bytes(name, buf, len));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_CORRUPT);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_BAD_DATA_SIZE);
  CHECK_STR_CONTAINS(info.why, "data_size is");

  buf[l.data_size] ^= 1;
  REQUIRE(write_bytes(name, buf, len - 1)); /* one byte short */
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_TRUNCATED);
  CHECK_EQ_INT(info.file_size, len - 1);

  /* not our magic: not listed, and described as what a consumer says */
  memcpy(buf, "JUNK", 4);
  REQUIRE(write_bytes(name, buf, len));
  CHECK_EQ_INT(listed(name), 0);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_CORRUPT);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_BAD_MAGIC);
  CHECK_STR_CONTAINS(info.why, "magic is");
  remove_file(name);
}

static void
test_starting(void)
{
  cudalink_segment_info info;
  uint8_t zeros[433];
  char name[96];

  new_name(name, sizeof name, "starting");
  memset(zeros, 0, sizeof zeros);
  REQUIRE(write_bytes(name, zeros, sizeof zeros));
  CHECK_EQ_INT(listed(name), 0); /* no magic yet */
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STARTING);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_NOT_CONNECTED);
  CHECK_STR_CONTAINS(info.why, "433 bytes of zeros");

  REQUIRE(write_bytes(name, zeros, 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STARTING);
  CHECK_EQ_INT(info.file_size, 0);

  REQUIRE(write_header(name, &fmt_rgba8, 0, 0, 0.0, 0)); /* version 0 */
  CHECK_EQ_INT(listed(name), 1);
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_STARTING);
  CHECK_STR_CONTAINS(info.why, "version 0");
  remove_file(name);
}

/* Every dtype and flag comes through as written. */
static void
test_formats_and_flags(void)
{
  static const cudalink_format bf16 = {16, 8, 2, CUDALINK_DTYPE_BFLOAT16,
                                       CUDALINK_FLAG_MONO_ALPHA};
  static const cudalink_format f32 = {7, 5, 1, CUDALINK_DTYPE_FLOAT32, 0};
  cudalink_segment_info info;
  char name[96];

  new_name(name, sizeof name, "formats");
  REQUIRE(write_header(name, &bf16, 2, 1, cudalink_now(), 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.header.format.dtype, CUDALINK_DTYPE_BFLOAT16);
  CHECK_EQ_INT(info.header.format.num_comps, 2);
  CHECK_EQ_INT(info.header.format.flags, CUDALINK_FLAG_MONO_ALPHA);
  CHECK_EQ_INT(info.wire_flags, CUDALINK_FLAG_MONO_ALPHA | CUDALINK_FLAG_BFLOAT16);
  CHECK_EQ_INT(info.header.data_size, 16 * 8 * 2 * 2);

  REQUIRE(write_header(name, &f32, 2, 1, cudalink_now(), 0));
  CHECK_EQ_INT(cudalink_segment_describe(name, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.header.format.dtype, CUDALINK_DTYPE_FLOAT32);
  CHECK_EQ_INT(info.wire_flags, 0);
  remove_file(name);
}

/* Lists /dev/shm in a child with a deadline: a FIFO opened without
 * O_NONBLOCK would hang it. */
static int
list_in_time(const char *want, const char *const *not_wanted, int n_not)
{
  int status = 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    int bad = listed(want) != 1;
    for (int i = 0; i < n_not; i++)
      bad |= listed(not_wanted[i]) != 0;
    _exit(bad);
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void
test_skips_what_is_no_segment(void)
{
  char seg[96], fifo[96], dir[96], link[96], plain[96], path[300], target[300];
  cudalink_segment_info info;
  double t0;

  new_name(seg, sizeof seg, "real");
  new_name(fifo, sizeof fifo, "fifo");
  new_name(dir, sizeof dir, "dir");
  new_name(link, sizeof link, "link");
  new_name(plain, sizeof plain, "plain");
  REQUIRE(write_header(seg, &fmt_rgba8, 1, 1, cudalink_now(), 0));
  REQUIRE(write_bytes(plain, (const uint8_t *)"not a segment, no magic", 23));
  shm_file(path, sizeof path, fifo);
  REQUIRE(mkfifo(path, 0600) == 0);
  shm_file(path, sizeof path, dir);
  REQUIRE(mkdir(path, 0700) == 0);
  shm_file(path, sizeof path, link);
  shm_file(target, sizeof target, seg);
  REQUIRE(symlink(target, path) == 0);

  const char *not_wanted[] = {fifo, dir, link, plain};
  t0 = cudalink_now();
  CHECK(list_in_time(seg, not_wanted, 4));
  CHECK(cudalink_now() - t0 < 5.0);

  /* describing each says what it is, without blocking either */
  CHECK_EQ_INT(cudalink_segment_describe(fifo, 0, 0, &info), CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(info.why, "is a FIFO, not a shared-memory segment");
  CHECK_EQ_INT(info.owner_uid, (long long)getuid());
  CHECK_EQ_INT(cudalink_segment_describe(dir, 0, 0, &info), CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(info.why, "is a directory");
  CHECK_EQ_INT(cudalink_segment_describe(link, 0, 0, &info), CUDALINK_ERR_SHM);
  CHECK_STR_CONTAINS(info.why, "is a symbolic link");
  CHECK_EQ_INT(cudalink_segment_describe(plain, 0, 0, &info), CUDALINK_OK);
  CHECK_EQ_INT(info.state, CUDALINK_SEGMENT_CORRUPT);
  CHECK_EQ_INT(info.consumer_status, CUDALINK_ERR_BAD_MAGIC);

  remove_file(seg);
  remove_file(fifo);
  remove_file(link);
  remove_file(plain);
  shm_file(path, sizeof path, dir);
  rmdir(path);
}

/* The listing is sorted and holds each name once. */
static void
test_list_sorted(void)
{
  char a[96], b[96];
  char **names = NULL;
  size_t count = 0;

  snprintf(a, sizeof a, "cudalink-segtest-%d-B", (int)getpid());
  snprintf(b, sizeof b, "cudalink-segtest-%d-A", (int)getpid());
  REQUIRE(write_header(a, &fmt_rgba8, 1, 1, cudalink_now(), 0));
  REQUIRE(write_header(b, &fmt_rgba8, 1, 1, cudalink_now(), 0));
  CHECK_EQ_INT(cudalink_segment_list(&names, &count), CUDALINK_OK);
  REQUIRE(names != NULL);
  CHECK(names[count] == NULL);
  int ia = -1, ib = -1;
  for (size_t i = 0; i < count; i++) {
    if (i > 0)
      CHECK(strcmp(names[i - 1], names[i]) < 0);
    if (strcmp(names[i], a) == 0)
      ia = (int)i;
    if (strcmp(names[i], b) == 0)
      ib = (int)i;
  }
  CHECK(ib >= 0 && ia == ib + 1);
  cudalink_segment_list_free(names);
  remove_file(a);
  remove_file(b);
}

/* The "nothing named X" hint: the name that differs only in case, and the
 * producers there are. */
static void
test_hint(void)
{
  char live[96], wanted[96], gone[96], text[1024], match[CUDALINK_MAX_NAME + 1];
  int n;

  /* "0...": first in the hint's sorted list of producers, which names
   * only the first 8: other tests running beside this one have live
   * segments of their own (seen failing under a parallel meson test) */
  snprintf(live, sizeof live, "0cudalink-segtest-%d-TD", (int)getpid());
  snprintf(wanted, sizeof wanted, "0cudalink-segtest-%d-td", (int)getpid());
  snprintf(gone, sizeof gone, "0cudalink-segtest-%d-Td", (int)getpid());

  /* only a shut-down one differing in case: named, with its state */
  REQUIRE(write_header(gone, &fmt_rgba8, 1, 1, cudalink_now(), 1));
  n = cudalink_segment_hint(wanted, text, sizeof text, match, sizeof match);
  CHECK(n >= 0);
  CHECK(strcmp(match, gone) == 0);
  CHECK_STR_CONTAINS(text, "but it is shut-down (names are case-sensitive)");

  /* a live one is preferred, and listed among the producers */
  REQUIRE(write_header(live, &fmt_rgba8, 1, 1, cudalink_now(), 0));
  n = cudalink_segment_hint(wanted, text, sizeof text, match, sizeof match);
  CHECK(n >= 1);
  CHECK(strcmp(match, live) == 0);
  CHECK_STR_CONTAINS(text, "There is a segment named '");
  CHECK_STR_CONTAINS(text, live);
  CHECK_STR_CONTAINS(text, "(names are case-sensitive)");
  CHECK_STR_CONTAINS(text, "Producers now: ");
  CHECK_STR_CONTAINS(text, "-TD' (live)");
  fprintf(stderr, "  hint: %s\n", text);

  /* an exact name is no case match; NULL buffers are fine */
  remove_file(gone);
  n = cudalink_segment_hint(live, text, sizeof text, match, sizeof match);
  CHECK(n >= 1);
  CHECK(strcmp(match, "") == 0);
  CHECK(cudalink_segment_hint(wanted, NULL, 0, NULL, 0) >= 1);
  /* a short buffer is cut, never overrun */
  char tiny[12];
  memset(tiny, 'x', sizeof tiny);
  cudalink_segment_hint(wanted, tiny, 8, NULL, 0);
  CHECK(strlen(tiny) == 7 && tiny[8] == 'x');

  remove_file(live);
}

int
main(void)
{
  RUN_TEST(test_state_names);
  RUN_TEST(test_arguments);
  RUN_TEST(test_ours_live_then_idle_then_gone);
  RUN_TEST(test_ours_killed_goes_stale);
  RUN_TEST(test_foreign_by_timestamp);
  RUN_TEST(test_lock_held_is_ours);
  RUN_TEST(test_shut_down);
  RUN_TEST(test_corrupt);
  RUN_TEST(test_starting);
  RUN_TEST(test_formats_and_flags);
  RUN_TEST(test_skips_what_is_no_segment);
  RUN_TEST(test_list_sorted);
  RUN_TEST(test_hint);
  return TEST_SUMMARY();
}
