/* The driver loader without a driver: every path must end in a documented
 * status and a message naming what is missing, never a crash. The loader
 * runs once per process, so each case runs in a forked child. */
#include <stdlib.h>
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

/* A valid segment is validated first; only then does the missing driver
 * stop the consumer, with a message that says so. */
static int
child_consumer(void)
{
  cudalink_header h;
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_shm *shm = NULL;
  int created = 0, bad = 0;
  cudalink_status st;

  memset(&h, 0, sizeof h);
  h.version = 3;
  h.num_slots = 3;
  h.format = (cudalink_format){ 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
  for (int s = 0; s < 3; s++)
    memset(h.mem_handle[s], 0x11 + s, CUDALINK_IPC_HANDLE_SIZE);
  if (cudalink_shm_create(seg_name, cudalink_layout_size(3), &shm, &created) != CUDALINK_OK)
    return 50;
  bad += cudalink_header_write(&h, cudalink_shm_data(shm), cudalink_shm_size(shm)) !=
         CUDALINK_OK;

  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  bad += cudalink_consumer_create(&cfg, &c) != CUDALINK_OK;
  st = cudalink_consumer_connect(c);
  if (st != CUDALINK_ERR_NO_DRIVER) {
    fprintf(stderr, "  consumer: got %s: %s\n", cudalink_status_name(st),
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

int
main(void)
{
  snprintf(seg_name, sizeof seg_name, "cudalink-test-nodrv-%d", (int)getpid());
  RUN_TEST(test_no_driver);
  RUN_TEST(test_old_driver_lacks_symbol);
  RUN_TEST(test_driver_without_device);
  RUN_TEST(test_producer_without_driver);
  RUN_TEST(test_consumer_without_driver);
  return TEST_SUMMARY();
}
