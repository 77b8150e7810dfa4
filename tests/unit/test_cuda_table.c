/* The driver loader without a driver: every path must end in a documented
 * status and a message naming what is missing, never a crash. The loader
 * runs once per process, so each case runs in a forked child. */
#include <signal.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cudalink.h"
#include "shm.h"
#include "testutil.h"

#ifndef FAKE_CUDA_FULL
#  error "FAKE_CUDA_FULL must name the full fake driver"
#endif

/* Runs fn in a child with CUDALINK_CUDA_LIBRARY=lib; the child's exit code is
 * its failure count. */
static int
in_child(const char *lib, int (*fn)(void))
{
  int status = 0;
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    setenv("CUDALINK_CUDA_LIBRARY", lib, 1);
    _exit(fn());
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

static int
expect_load(cudalink_status want, const char *text)
{
  char why[256] = "";
  cudalink_status st = cudalink_cuda_load(why, sizeof why);
  int bad = 0;
  if (st != want) {
    fprintf(stderr, "  load: got %s (%s), want %s\n", cudalink_status_name(st), why,
            cudalink_status_name(want));
    bad++;
  }
  if (!strstr(why, text)) {
    fprintf(stderr, "  load: message \"%s\" lacks \"%s\"\n", why, text);
    bad++;
  }
  /* a second call gives the same answer (loaded once) */
  if (cudalink_cuda_load(NULL, 0) != st)
    bad++;
  /* a driver that did not load lends no functions, even one it has */
  if (cudalink_cuda_symbol("cuInit") != NULL) {
    fprintf(stderr, "  cudalink_cuda_symbol(\"cuInit\") is not NULL\n");
    bad++;
  }
  return bad;
}

static int
child_missing(void)
{
  return expect_load(CUDALINK_ERR_NO_DRIVER, "/nonexistent/libcuda.so.1");
}
static int
child_partial(void)
{
  return expect_load(CUDALINK_ERR_DRIVER_SYMBOL, "has no cuDriverGetVersion");
}
static int
child_no_device(void)
{
  return expect_load(CUDALINK_ERR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE");
}

static void
test_no_driver(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_missing), 0);
}
static void
test_old_driver_lacks_symbol(void)
{
  CHECK_EQ_INT(in_child(FAKE_CUDA_PARTIAL, child_partial), 0);
}
static void
test_driver_without_device(void)
{
  CHECK_EQ_INT(in_child(FAKE_CUDA_FULL, child_no_device), 0);
}

static char seg_name[64];

/* The producer refuses before it touches the segment. */
static int
child_producer(void)
{
  cudalink_producer_config cfg;
  cudalink_format fmt = { 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  cudalink_producer *p = (cudalink_producer *)1;
  cudalink_status st;
  int bad = 0;

  cudalink_producer_config_init(&cfg);
  cfg.name = seg_name;
  st = cudalink_producer_create(&cfg, &fmt, &p);
  bad += st != CUDALINK_ERR_NO_DRIVER;
  bad += p != NULL;
  /* nothing was left behind in /dev/shm */
  {
    cudalink_shm *shm = NULL;
    bad += cudalink_shm_open(seg_name, &shm) != CUDALINK_ERR_NOT_FOUND;
    cudalink_shm_close(shm);
  }
  return bad;
}

/* A valid segment is validated first, for every slot count; only then does
 * the missing driver stop the consumer, with a message that says so. */
static int
consumer_meets_missing_driver(uint32_t slots)
{
  cudalink_header h;
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_shm *shm = NULL;
  int created = 0, bad = 0;
  cudalink_status st;

  memset(&h, 0, sizeof h);
  h.version = 3;
  h.num_slots = slots;
  h.format = (cudalink_format){ 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  for (uint32_t s = 0; s < slots; s++)
    memset(h.mem_handle[s], 0x11 + (int)s, CUDALINK_IPC_HANDLE_SIZE);
  if (cudalink_shm_create(seg_name, cudalink_layout_size(slots), &shm, &created) != CUDALINK_OK)
    return 50;
  bad += cudalink_header_write(&h, cudalink_shm_data(shm), cudalink_shm_size(shm)) !=
         CUDALINK_OK;

  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  bad += cudalink_consumer_create(&cfg, &c) != CUDALINK_OK;
  st = cudalink_consumer_connect(c);
  if (st != CUDALINK_ERR_NO_DRIVER) {
    fprintf(stderr, "  consumer (%u slots): got %s: %s\n", slots, cudalink_status_name(st),
            cudalink_consumer_last_error(c));
    bad++;
  }
  if (!strstr(cudalink_consumer_last_error(c), "libcuda")) {
    fprintf(stderr, "  consumer message: %s\n", cudalink_consumer_last_error(c));
    bad++;
  }
  bad += cudalink_consumer_wait(c, 0) != CUDALINK_ERR_NOT_CONNECTED;
  cudalink_consumer_destroy(c);
  cudalink_shm_close(shm);
  cudalink_shm_unlink(seg_name);
  return bad;
}

static int
child_consumer(void)
{
  return consumer_meets_missing_driver(1) + consumer_meets_missing_driver(3) +
         consumer_meets_missing_driver(10);
}

static void
test_producer_without_driver(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_producer), 0);
}
static void
test_consumer_without_driver(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_consumer), 0);
}

/* --- who holds a segment is decided before CUDA is needed ------------- */

static char log_text[2048];

static void
collect_log(void *user, cudalink_log_level level, const char *message)
{
  size_t n = strlen(log_text);
  (void)user;
  snprintf(log_text + n, sizeof log_text - n, "[%d] %s\n", (int)level, message);
}

static cudalink_status
try_producer(uint32_t stale_ms)
{
  cudalink_producer_config cfg;
  cudalink_format fmt = { 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  cudalink_producer *p = NULL;
  cudalink_status st;
  cudalink_producer_config_init(&cfg);
  cfg.name = seg_name;
  cfg.stale_ms = stale_ms;
  cfg.log = collect_log;
  log_text[0] = 0;
  st = cudalink_producer_create(&cfg, &fmt, &p);
  cudalink_producer_destroy(p);
  return st;
}

/* A segment holding a valid header, as a producer leaves it. */
static cudalink_shm *
make_segment(uint8_t shutdown_flag)
{
  cudalink_header h;
  cudalink_shm *shm = NULL;
  int created;
  memset(&h, 0, sizeof h);
  h.version = 41;
  h.num_slots = 3;
  h.write_idx = 77;
  h.shutdown_flag = shutdown_flag;
  h.format = (cudalink_format){ 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  if (cudalink_shm_create(seg_name, cudalink_layout_size(3), &shm, &created) != CUDALINK_OK)
    return NULL;
  cudalink_header_write(&h, cudalink_shm_data(shm), cudalink_shm_size(shm));
  return shm;
}

static int
child_busy(void)
{
  int to_holder[2], from_holder[2], bad = 0;
  pid_t holder;
  char b = 0;
  if (pipe(to_holder) || pipe(from_holder))
    return 50;
  holder = fork();
  if (holder == 0) {
    cudalink_shm *shm = make_segment(0);
    int ok = shm && cudalink_shm_lock(shm) == CUDALINK_OK;
    int rc = write(from_holder[1], ok ? "L" : "x", 1) != 1 || read(to_holder[0], &b, 1) != 1;
    cudalink_shm_close(shm); /* holds the lock until told to quit */
    _exit(rc);
  }
  if (read(from_holder[0], &b, 1) != 1 || b != 'L')
    bad++;
  if (try_producer(200) != CUDALINK_ERR_BUSY)
    bad++;
  if (!strstr(log_text, "held by another live cudalink producer")) {
    fprintf(stderr, "  log: %s\n", log_text);
    bad++;
  }
  if (write(to_holder[1], "q", 1) != 1)
    bad++;
  waitpid(holder, NULL, 0);
  /* once the holder is gone, the lock is free: the next refusal is the
   * missing driver, after taking the (idle) segment over */
  if (try_producer(100) != CUDALINK_ERR_NO_DRIVER)
    bad++;
  if (!strstr(log_text, "taking over stale segment")) {
    fprintf(stderr, "  log: %s\n", log_text);
    bad++;
  }
  cudalink_shm_unlink(seg_name);
  return bad;
}

static int
child_foreign_publisher(void)
{
  int bad = 0;
  pid_t pub;
  cudalink_shm *shm = make_segment(0);
  if (!shm)
    return 50;
  pub = fork();
  if (pub == 0) {
    /* a foreign producer: publishes every 5 ms, holds no lock */
    cudalink_layout L = cudalink_layout_for(3);
    uint8_t *base = cudalink_shm_data(shm);
    for (uint32_t k = 100; k < 500; k++) {
      memcpy(base + L.write_idx, &k, 4);
      usleep(5000);
    }
    _exit(0);
  }
  if (try_producer(300) != CUDALINK_ERR_FOREIGN_PRODUCER)
    bad++;
  if (!strstr(log_text, "being published to by another producer")) {
    fprintf(stderr, "  log: %s\n", log_text);
    bad++;
  }
  kill(pub, SIGKILL);
  waitpid(pub, NULL, 0);
  /* refused, so the segment is untouched and still there */
  {
    cudalink_header h;
    cudalink_shm *again = NULL;
    bad += cudalink_shm_open(seg_name, &again) != CUDALINK_OK;
    bad += cudalink_header_parse(cudalink_shm_data(again), cudalink_shm_size(again), &h) !=
           CUDALINK_OK;
    bad += h.version != 41;
    cudalink_shm_close(again);
  }
  cudalink_shm_close(shm);
  cudalink_shm_unlink(seg_name);
  return bad;
}

static int
child_shut_down_segment(void)
{
  int bad = 0;
  cudalink_shm *shm = make_segment(1);
  double t0 = cudalink_now();
  if (!shm)
    return 50;
  /* no waiting for a segment whose producer said goodbye */
  if (try_producer(5000) != CUDALINK_ERR_NO_DRIVER)
    bad++;
  if (cudalink_now() - t0 > 2.0)
    bad++;
  if (!strstr(log_text, "left by a producer that shut down")) {
    fprintf(stderr, "  log: %s\n", log_text);
    bad++;
  }
  /* a re-used segment is not unlinked when we fail */
  {
    cudalink_shm *again = NULL;
    bad += cudalink_shm_open(seg_name, &again) != CUDALINK_OK;
    cudalink_shm_close(again);
  }
  cudalink_shm_close(shm);
  cudalink_shm_unlink(seg_name);
  return bad;
}

static void
test_segment_of_live_producer_refused(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_busy), 0);
}
static void
test_segment_of_foreign_publisher_refused(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_foreign_publisher), 0);
}
static void
test_shut_down_segment_reused(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_shut_down_segment), 0);
}

/* A producer creates its file before it writes the header: an empty
 * segment means "starting", answered at once, not a bad header. */
static int
child_empty_segment(void)
{
  int bad = 0, created = 0;
  size_t sizes[2] = { 0, 433 };
  for (int i = 0; i < 2; i++) {
    cudalink_shm *shm = NULL;
    cudalink_consumer_config cfg;
    cudalink_consumer *c = NULL;
    cudalink_status st;
    double t0;
    if (sizes[i] == 0) {
      /* what a producer that died between shm_open and ftruncate leaves */
      char path[96];
      int fd;
      snprintf(path, sizeof path, "/%s", seg_name);
      fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
      if (fd < 0)
        return 50;
      close(fd);
    } else if (cudalink_shm_create(seg_name, sizes[i], &shm, &created) != CUDALINK_OK) {
      return 51;
    }
    cudalink_consumer_config_init(&cfg);
    cfg.name = seg_name;
    cudalink_consumer_create(&cfg, &c);
    t0 = cudalink_now();
    st = cudalink_consumer_connect(c);
    if (st != CUDALINK_ERR_NOT_CONNECTED || cudalink_now() - t0 > 0.5 ||
        !strstr(cudalink_consumer_last_error(c), "has not written a header yet")) {
      fprintf(stderr, "  %lu-byte empty segment: %s: %s\n", (unsigned long)sizes[i],
              cudalink_status_name(st), cudalink_consumer_last_error(c));
      bad++;
    }
    cudalink_consumer_destroy(c);
    cudalink_shm_close(shm);
    cudalink_shm_unlink(seg_name);
  }
  return bad;
}

static void
test_empty_segment_is_not_ready(void)
{
  CHECK_EQ_INT(in_child("/nonexistent/libcuda.so.1", child_empty_segment), 0);
}

int
main(void)
{
  snprintf(seg_name, sizeof seg_name, "cudalink-test-nodrv-%d", (int)getpid());
  RUN_TEST(test_no_driver);
  RUN_TEST(test_old_driver_lacks_symbol);
  RUN_TEST(test_driver_without_device);
  RUN_TEST(test_producer_without_driver);
  RUN_TEST(test_consumer_without_driver);
  RUN_TEST(test_segment_of_live_producer_refused);
  RUN_TEST(test_segment_of_foreign_publisher_refused);
  RUN_TEST(test_shut_down_segment_reused);
  RUN_TEST(test_empty_segment_is_not_ready);
  return TEST_SUMMARY();
}
