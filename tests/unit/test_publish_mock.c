/* cudalink_producer_publish() on the CPU mock driver (tests/unit/mock_cuda.c):
 * a copy seen twice goes out as one graph launch (the copy, then the slot's
 * event record) and must publish exactly what the copy and the record did.
 * The producer and a consumer share this process; the "GPU" finishes every
 * copy GPU_US late, so a consumer that finds a slot's event already done
 * (no stream wait queued) read a frame whose event the publish did not
 * record. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "testutil.h"

#ifndef MOCK_CUDA
#  error "MOCK_CUDA must name the mock driver"
#endif

#define SOURCES 4 /* an upstream pool's buffers */
#define SLOTS 3u
#define FRAMES 40
#define GPU_US "20000"

static const cudalink_format fmt_a = { 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
static const cudalink_format fmt_b = { 40, 24, 1, CUDALINK_DTYPE_UINT16, 0 };

static const cudalink_cuda *cu;
static CUcontext ctx;
static long (*mock_live)(void);
static long (*mock_stream_waits)(void);
static long (*mock_launches)(void);
static long (*mock_execs)(void);

static int
load_driver(void)
{
  cudalink_status st;
  void *h;
  cu = cudalink_cuda_get(&st, NULL, 0);
  h = dlopen(MOCK_CUDA, RTLD_NOW | RTLD_NOLOAD);
  if (!cu || !h)
    return 0;
  *(void **)&mock_live = dlsym(h, "mock_cuda_live_allocations");
  *(void **)&mock_stream_waits = dlsym(h, "mock_cuda_stream_waits");
  *(void **)&mock_launches = dlsym(h, "mock_cuda_graph_launches");
  *(void **)&mock_execs = dlsym(h, "mock_cuda_live_graph_execs");
  dlclose(h);
  return mock_live && mock_stream_waits && mock_launches && mock_execs && cu->GraphLaunch &&
         cu->DevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS;
}

static char seg_name[64];
static char last_log[512]; /* the producer's last log line */

static void
keep_log(void *user_data, cudalink_log_level level, const char *message)
{
  (void)user_data;
  (void)level;
  snprintf(last_log, sizeof last_log, "%s", message);
}

/* Frame k's rows: byte (k * 31 + y * 7 + x) & 0xff; pitch-wide rows, the
 * padding 0xee (never published). */
static void
fill(uint8_t *buf, size_t pitch, size_t row, uint32_t height, uint32_t k)
{
  for (uint32_t y = 0; y < height; y++)
    for (size_t x = 0; x < pitch; x++)
      buf[y * pitch + x] = x < row ? (uint8_t)(k * 31u + y * 7u + x) : 0xee;
}

typedef struct run {
  cudalink_producer *p;
  cudalink_consumer *c;
  CUdeviceptr src[SOURCES];
  size_t pitch, row, frame;
  uint32_t height;
  uint8_t *host, *want;
  int bad, unwaited, failed;
} run;

static int
run_sources(run *r, const cudalink_format *f, size_t pad)
{
  uint32_t size, row;
  cudalink_format_sizes(f, &size, &row);
  r->row = row;
  r->height = f->height;
  r->pitch = row + pad;
  r->frame = r->pitch * f->height;
  free(r->host);
  free(r->want);
  r->host = malloc(r->frame);
  r->want = malloc((size_t)size);
  if (!r->host || !r->want || cu->CtxPushCurrent(ctx) != CUDA_SUCCESS)
    return 0;
  for (int i = 0; i < SOURCES; i++) {
    if (r->src[i])
      cu->MemFree(r->src[i]);
    r->src[i] = 0;
    if (cu->MemAlloc(&r->src[i], r->frame) != CUDA_SUCCESS)
      return cu->CtxPopCurrent(NULL), 0;
  }
  cu->CtxPopCurrent(NULL);
  return 1;
}

static void
run_free(run *r)
{
  cu->CtxPushCurrent(ctx);
  for (int i = 0; i < SOURCES; i++)
    if (r->src[i])
      cu->MemFree(r->src[i]);
  cu->CtxPopCurrent(NULL);
  cudalink_consumer_destroy(r->c);
  cudalink_producer_destroy(r->p);
  free(r->host);
  free(r->want);
  memset(r, 0, sizeof *r);
}

static int
run_start(run *r, size_t pad)
{
  cudalink_producer_config pc;
  cudalink_consumer_config cc;

  memset(r, 0, sizeof *r);
  snprintf(seg_name, sizeof seg_name, "cltest_pub_%d", (int)getpid());
  cudalink_producer_config_init(&pc);
  pc.name = seg_name;
  pc.num_slots = SLOTS;
  pc.grace_ms = 1;
  pc.log = keep_log;
  last_log[0] = 0;
  if (cudalink_producer_create(&pc, &fmt_a, &r->p) != CUDALINK_OK)
    return 0;
  cudalink_consumer_config_init(&cc);
  cc.name = seg_name;
  cc.flags = CUDALINK_CONSUMER_NO_PACE;
  return cudalink_consumer_create(&cc, &r->c) == CUDALINK_OK &&
         cudalink_consumer_connect(r->c) == CUDALINK_OK && run_sources(r, &fmt_a, pad);
}

/* Publishes frame k from source k % SOURCES, then reads it back through the
 * consumer: the bytes must be frame k's, and its slot's event not yet done
 * (the mock's GPU is GPU_US late) when the consumer first looks. */
static void
publish_and_read(run *r, uint32_t k)
{
  CUdeviceptr s = r->src[k % SOURCES];
  uint64_t slot_mem;
  size_t slot_pitch;
  long waits;
  cudalink_status st;
  int reopened;

  fill(r->host, r->pitch, r->row, r->height, k);
  if (cu->CtxPushCurrent(ctx) != CUDA_SUCCESS || cu->MemcpyHtoD(s, r->host, r->frame)) {
    r->failed++;
    return;
  }
  cu->CtxPopCurrent(NULL);
  st = cudalink_producer_publish(r->p, s, r->pitch, NULL, 0);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "  publish %u: %s: %s\n", k, cudalink_status_name(st),
            cudalink_producer_last_error(r->p));
    r->failed++;
    return;
  }
  st = cudalink_consumer_wait(r->c, 1000000);
  /* (re-opening the ring synchronises this process's "GPU", which in
   * this one-process test is also the producer's: its event is done) */
  reopened = st == CUDALINK_ERR_FORMAT_CHANGED;
  if (reopened)
    st = cudalink_consumer_wait(r->c, 1000000);
  waits = mock_stream_waits();
  if (st != CUDALINK_OK ||
      cudalink_consumer_acquire(r->c, NULL, &slot_mem, &slot_pitch) != CUDALINK_OK) {
    r->failed++;
    return;
  }
  if (mock_stream_waits() == waits && !reopened)
    r->unwaited++;
  if (cudalink_consumer_release(r->c, NULL) != CUDALINK_OK) {
    r->failed++;
    return;
  }
  cu->CtxPushCurrent(ctx);
  for (uint32_t y = 0; y < r->height; y++) {
    if (cu->MemcpyDtoH(r->want, (CUdeviceptr)(slot_mem + y * slot_pitch), r->row) ||
        memcmp(r->want, r->host + y * r->pitch, r->row) != 0) {
      r->bad++;
      break;
    }
  }
  cu->CtxPopCurrent(NULL);
}

/* What a run read, printed; every frame must have been published, read
 * back right, and waited for. */
static void
check_read(const run *r, const char *what, long launched)
{
  printf("  %s: %ld graph launches, bad %d, not waited for %d, failed %d\n", what, launched, r->bad,
         r->unwaited, r->failed);
  CHECK_EQ_INT(r->failed, 0);
  CHECK_EQ_INT(r->bad, 0);
  CHECK_EQ_INT(r->unwaited, 0);
}

/* 4 sources into 3 slots: 12 different copies, each made a graph the
 * second time it comes round, so frames 12.. are graph launches. */
static void
check_graphs(size_t pad)
{
  run r;
  long live0 = mock_live(), launched;
  char what[32];

  setenv("MOCK_CUDA_GPU_US", GPU_US, 1);
  CHECK(run_start(&r, pad));
  launched = mock_launches();
  for (uint32_t k = 0; k < FRAMES && r.p && r.c; k++)
    publish_and_read(&r, k);
  launched = mock_launches() - launched;
  snprintf(what, sizeof what, "pad %zu", pad);
  check_read(&r, what, launched);
  CHECK_EQ_INT(launched, FRAMES - SOURCES * SLOTS);
  CHECK(mock_execs() > 0);
  run_free(&r);
  unsetenv("MOCK_CUDA_GPU_US");
  CHECK_EQ_INT(mock_execs(), 0);
  CHECK_EQ_INT(mock_live(), live0);
}

static void
test_linear_copies(void)
{
  check_graphs(0);
}

static void
test_pitched_copies(void)
{
  check_graphs(64);
}

/* A new format is a new ring: the old ring's graphs (its slots and events)
 * go with it, the new one makes its own. */
static void
test_reformat(void)
{
  run r;
  long live0 = mock_live(), before, after;

  setenv("MOCK_CUDA_GPU_US", GPU_US, 1);
  CHECK(run_start(&r, 0));
  for (uint32_t k = 0; k < 30 && r.p; k++)
    publish_and_read(&r, k);
  before = mock_launches();
  CHECK(cudalink_producer_reformat(r.p, &fmt_b) == CUDALINK_OK);
  CHECK(run_sources(&r, &fmt_b, 0));
  for (uint32_t k = 30; k < 60 && r.p; k++)
    publish_and_read(&r, k);
  after = mock_launches();
  check_read(&r, "after the reformat", after - before);
  CHECK_EQ_INT(after - before, 30 - SOURCES * SLOTS);
  run_free(&r);
  unsetenv("MOCK_CUDA_GPU_US");
  CHECK_EQ_INT(mock_execs(), 0);
  CHECK_EQ_INT(mock_live(), live0);
}

/* No graph (the driver cannot make one, or CUDALINK_NO_GRAPHS): every frame
 * is a copy and a record, published the same. */
static void
check_no_graphs(const char *var, const char *value)
{
  run r;
  long launched;
  char what[96];

  setenv(var, value, 1);
  setenv("MOCK_CUDA_GPU_US", GPU_US, 1);
  CHECK(run_start(&r, 0));
  launched = mock_launches();
  for (uint32_t k = 0; k < 30 && r.p; k++)
    publish_and_read(&r, k);
  launched = mock_launches() - launched;
  snprintf(what, sizeof what, "%s=%s", var, value);
  check_read(&r, what, launched);
  CHECK_EQ_INT(launched, 0);
  CHECK_EQ_INT(mock_execs(), 0);
  run_free(&r);
  unsetenv("MOCK_CUDA_GPU_US");
  unsetenv(var);
}

static void
test_instantiate_fails(void)
{
  check_no_graphs("MOCK_CUDA_FAIL", "cuGraphInstantiateWithFlags");
  printf("  log: %s\n", last_log);
  CHECK(strstr(last_log, "making a publish graph") != NULL);
  CHECK(strstr(last_log, "publishing with copies") != NULL);
}

static void
test_graphs_turned_off(void)
{
  check_no_graphs("CUDALINK_NO_GRAPHS", "1");
}

/* CUDALINK_NO_GRAPHS=0 leaves them on */
static void
test_graphs_left_on(void)
{
  run r;
  long launched;

  setenv("CUDALINK_NO_GRAPHS", "0", 1);
  CHECK(run_start(&r, 0));
  launched = mock_launches();
  for (uint32_t k = 0; k < 2 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  CHECK_EQ_INT(r.failed + r.bad, 0);
  CHECK_EQ_INT(mock_launches() - launched, SOURCES * SLOTS);
  run_free(&r);
  unsetenv("CUDALINK_NO_GRAPHS");
}

/* A launch the driver refuses: that frame and every later one go as a
 * copy and a record, published the same (the exec is let go). */
static void
test_launch_fails(void)
{
  run r;
  long launched;

  CHECK(run_start(&r, 0));
  setenv("MOCK_CUDA_GPU_US", GPU_US, 1);
  for (uint32_t k = 0; k < 2 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  CHECK(mock_execs() > 0);
  setenv("MOCK_CUDA_FAIL", "cuGraphLaunch", 1);
  launched = mock_launches();
  for (uint32_t k = 2 * SOURCES * SLOTS; k < 3 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  unsetenv("MOCK_CUDA_FAIL");
  for (uint32_t k = 3 * SOURCES * SLOTS; k < 4 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  launched = mock_launches() - launched;
  check_read(&r, "after a refused launch", launched);
  printf("  log: %s\n", last_log);
  CHECK(strstr(last_log, "cuGraphLaunch") != NULL);
  CHECK(strstr(last_log, "publishing with copies") != NULL);
  CHECK_EQ_INT(launched, 0);
  CHECK_EQ_INT(mock_execs(), 0);
  run_free(&r);
  unsetenv("MOCK_CUDA_GPU_US");
}

/* One source published with two row pitches: two copies, two graphs. */
static void
test_pitch_change(void)
{
  run r;
  long launched;

  setenv("MOCK_CUDA_GPU_US", GPU_US, 1);
  CHECK(run_start(&r, 64));
  launched = mock_launches();
  for (uint32_t k = 0; k < 2 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  r.pitch = r.row; /* the same buffers, rows packed */
  r.frame = r.row * r.height;
  for (uint32_t k = 2 * SOURCES * SLOTS; k < 4 * SOURCES * SLOTS && r.p; k++)
    publish_and_read(&r, k);
  launched = mock_launches() - launched;
  check_read(&r, "pitch changed", launched);
  CHECK_EQ_INT(launched, 2 * SOURCES * SLOTS);
  run_free(&r);
  unsetenv("MOCK_CUDA_GPU_US");
}

int
main(void)
{
  unsetenv("MOCK_CUDA_FAIL");
  unsetenv("CUDALINK_NO_GRAPHS");
  setenv("CUDALINK_CUDA_LIBRARY", MOCK_CUDA, 1);
  if (!load_driver()) {
    fprintf(stderr, "the mock driver (%s) did not load\n", MOCK_CUDA);
    return 1;
  }
  RUN_TEST(test_linear_copies);
  RUN_TEST(test_pitched_copies);
  RUN_TEST(test_reformat);
  RUN_TEST(test_instantiate_fails);
  RUN_TEST(test_graphs_turned_off);
  RUN_TEST(test_graphs_left_on);
  RUN_TEST(test_launch_fails);
  RUN_TEST(test_pitch_change);
  return TEST_SUMMARY();
}
