/* Zero-copy import (holds.h, cudalink_consumer_hold()) on the CPU mock
 * driver: the back-channel's table and locks on their own, then a
 * producer process and an importing consumer: a held slot is never
 * rewritten (the ring grows, or at max_slots the frame is not published),
 * a reader that dies lets go of everything, holds outlive a re-opened or
 * destroyed consumer and every mapping is given back at the end. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "holds.h"
#include "testutil.h"
#include "child_test.h"

#ifndef MOCK_CUDA
#  error "MOCK_CUDA must name the mock driver"
#endif

static const cudalink_format fmt = {64, 16, 4, CUDALINK_DTYPE_UINT8, 0};
static char seg_name[64];

static void
new_name(const char *what)
{
  static unsigned n;
  snprintf(seg_name, sizeof seg_name, "cudalink-import-%s-%d-%u", what, (int)getpid(), n++);
}

/* --- the table alone ------------------------------------------------- */

static void
test_channel(void)
{
  cudalink_holds *prod = NULL, *r1 = NULL, *r2 = NULL;
  cudalink_holds_census census;
  uint64_t keys[3] = {11, 12, 13};
  uint32_t flags = 0;
  char why[200] = "";
  int rec;

  new_name("channel");
  CHECK_EQ_INT(cudalink_holds_open(seg_name, 0, &r1, why, sizeof why), CUDALINK_ERR_UNSUPPORTED);
  CHECK_STR_CONTAINS(why, "offers no import");
  REQUIRE(cudalink_holds_create(seg_name, CUDALINK_HOLDS_FLAG_MPS, &prod, why, sizeof why) ==
          CUDALINK_OK);
  cudalink_holds_publish_ring(prod, 7, 3, keys);
  REQUIRE(cudalink_holds_open(seg_name, 0, &r1, why, sizeof why) == CUDALINK_OK);
  REQUIRE(cudalink_holds_open(seg_name, 0, &r2, why, sizeof why) == CUDALINK_OK);

  /* keys only for the ring announced */
  CHECK_EQ_INT(cudalink_holds_key(r1, 7, 1, &flags), 12);
  CHECK_EQ_INT(flags, CUDALINK_HOLDS_FLAG_MPS);
  CHECK_EQ_INT(cudalink_holds_key(r1, 6, 1, NULL), 0);

  rec = cudalink_holds_take(r1, 12);
  CHECK(rec >= 0);
  CHECK(cudalink_holds_is_held(prod, 12));
  CHECK(!cudalink_holds_is_held(prod, 11));
  cudalink_holds_census_take(prod, &census);
  CHECK_EQ_INT(census.readers, 2);
  CHECK_EQ_INT(census.holds, 1);
  cudalink_holds_drop(r1, rec);
  CHECK(!cudalink_holds_is_held(prod, 12));

  /* the producer writing the slot wins over a hold taken after it */
  cudalink_holds_set_writing(prod, 13);
  CHECK_EQ_INT(cudalink_holds_take(r2, 13), -2);
  CHECK(!cudalink_holds_is_held(prod, 13));
  cudalink_holds_set_writing(prod, 0);

  /* a reader's records run out */
  for (int i = 0; i < CUDALINK_HOLDS_PER_READER; i++)
    CHECK(cudalink_holds_take(r2, 11) >= 0);
  CHECK_EQ_INT(cudalink_holds_take(r2, 11), -1);
  cudalink_holds_unref(r2); /* its process lives on: the entry is free */
  CHECK(!cudalink_holds_is_held(prod, 11));

  cudalink_holds_unref(r1);
  /* the producer gone without removing its table: readers refuse it */
  cudalink_holds_destroy(prod, 0);
  CHECK_EQ_INT(cudalink_holds_open(seg_name, 0, &r1, why, sizeof why), CUDALINK_ERR_STALE);
  CHECK_STR_CONTAINS(why, "producer that is gone");
  cudalink_holds_remove(seg_name);
  CHECK_EQ_INT(cudalink_holds_open(seg_name, 0, &r1, why, sizeof why), CUDALINK_ERR_UNSUPPORTED);
}

/* Every entry taken: the next reader is told so and copies. */
static void
test_channel_full(void)
{
  cudalink_holds *prod = NULL, *r[CUDALINK_HOLDS_READERS + 1] = {0};
  char why[200] = "";

  new_name("full");
  REQUIRE(cudalink_holds_create(seg_name, 0, &prod, why, sizeof why) == CUDALINK_OK);
  for (int i = 0; i < CUDALINK_HOLDS_READERS; i++)
    CHECK_EQ_INT(cudalink_holds_open(seg_name, 0, &r[i], why, sizeof why), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_holds_open(seg_name, 0, &r[CUDALINK_HOLDS_READERS], why, sizeof why),
               CUDALINK_ERR_BUSY);
  CHECK_STR_CONTAINS(why, "are taken");
  for (int i = 0; i <= CUDALINK_HOLDS_READERS; i++)
    cudalink_holds_unref(r[i]);
  cudalink_holds_destroy(prod, 1);
}

/* A child process that runs take() (nonzero: it now holds a slot) and
 * then waits, holding, until it is killed: its pid once it said it holds,
 * -1 otherwise (a child that could not hold is reaped). */
static pid_t
start_holder(int (*take)(void))
{
  int fd[2];
  char ok = 0;
  pid_t pid;
  if (pipe(fd) != 0)
    return -1;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    ok = take() != 0;
    if (write(fd[1], &ok, 1) != 1)
      _exit(2);
    pause(); /* until killed, holding */
    _exit(0);
  }
  if (pid > 0 && (read(fd[0], &ok, 1) != 1 || !ok)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pid = -1;
  }
  close(fd[0]);
  close(fd[1]);
  return pid;
}

/* start_holder's take for the table alone: entry key 22 */
static int
take_key_22(void)
{
  cudalink_holds *r = NULL;
  char why[200];
  return cudalink_holds_open(seg_name, 0, &r, why, sizeof why) == CUDALINK_OK &&
         cudalink_holds_take(r, 22) >= 0;
}

/* A reader killed while it holds: the hold is no hold, the census says a
 * reader died holding, and the next reader takes the entry over clean. */
static void
test_channel_dead_reader(void)
{
  cudalink_holds *prod = NULL, *next = NULL;
  cudalink_holds_census census;
  uint64_t keys[3] = {21, 22, 23};
  char why[200] = "";
  int status = 0;
  pid_t pid;

  new_name("dead");
  REQUIRE(cudalink_holds_create(seg_name, 0, &prod, why, sizeof why) == CUDALINK_OK);
  cudalink_holds_publish_ring(prod, 1, 3, keys);
  REQUIRE((pid = start_holder(take_key_22)) > 0);
  CHECK(cudalink_holds_is_held(prod, 22));
  cudalink_holds_census_take(prod, &census);
  CHECK_EQ_INT(census.readers, 1);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(!cudalink_holds_is_held(prod, 22));
  cudalink_holds_census_take(prod, &census);
  CHECK_EQ_INT(census.readers, 0);
  CHECK_EQ_INT(census.dead_holding, 1);
  CHECK_EQ_INT(census.dead_pid, pid);
  REQUIRE(cudalink_holds_open(seg_name, 0, &next, why, sizeof why) == CUDALINK_OK);
  cudalink_holds_census_take(prod, &census);
  CHECK_EQ_INT(census.dead_holding, 0);
  CHECK_EQ_INT(census.holds, 0);
  cudalink_holds_unref(next);
  cudalink_holds_destroy(prod, 1);
}

/* --- producer process and importing consumer ---------------------------- */

#define SLOW_GPU_US 150000

/* CPU time of the calling thread, s */
#define STR_(x) #x
#define STR(x) STR_(x)

static const cudalink_cuda *cu;
static CUcontext ctx;
static long (*mock_live)(void);
static long (*mock_stream_waits)(void);
static int cmd_w = -1, ack_r = -1;
static int no_import; /* the next producer does not offer import */

/* The producer child: 'p' publishes frame k filled with byte k, 'q' quits;
 * each answer is the status (int), then for 'p' the producer's stats. */
static int
producer_main(uint32_t max_slots, int cmd, int ack)
{
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  cudalink_status st;
  char op;
  int k = 0;

  cudalink_producer_config_init(&cfg);
  cfg.name = seg_name;
  cfg.num_slots = 3;
  cfg.max_slots = max_slots;
  cfg.flags = no_import ? 0 : CUDALINK_PRODUCER_IMPORT;
  cfg.grace_ms = 1;
  st = cudalink_producer_create(&cfg, &fmt, &p);
  if (write(ack, &st, sizeof st) != sizeof st || st != CUDALINK_OK)
    return 1;
  while (read(cmd, &op, 1) == 1 && op != 'q') {
    cudalink_producer_stats stats;
    uint64_t dst;
    size_t pitch;
    /* 'a': from now on cuMemAlloc fails (the ring cannot grow); then
     * publishes as 'p' does */
    if (op == 'a')
      setenv("MOCK_CUDA_FAIL", "cuMemAlloc_v2", 1);
    /* 's': the GPU writes this frame SLOW_GPU_US late and the commit does
     * not wait for it (as cudalinksink's gpu-wait=none) */
    if (op == 's')
      setenv("MOCK_CUDA_GPU_US", STR(SLOW_GPU_US), 1);
    k++;
    st = cudalink_producer_begin(p, &dst, &pitch);
    if (st == CUDALINK_OK) {
      CUcontext c = NULL;
      cu->DevicePrimaryCtxRetain(&c, 0);
      cu->CtxPushCurrent(c);
      cu->MemsetD8Async(dst, (unsigned char)k, pitch * fmt.height, NULL);
      cu->CtxPopCurrent(NULL);
      cu->DevicePrimaryCtxRelease(0);
      st = cudalink_producer_commit(p, NULL, op != 's');
    }
    unsetenv("MOCK_CUDA_GPU_US");
    cudalink_producer_get_stats(p, &stats);
    if (write(ack, &st, sizeof st) != sizeof st || write(ack, &stats, sizeof stats) != sizeof stats)
      break;
  }
  cudalink_producer_destroy(p);
  return 0;
}

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
  dlclose(h);
  return mock_live && mock_stream_waits && cu->DevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS;
}

/* fork_peer's child: the driver, then producer_main (arg: max_slots) */
static int
producer_child(const void *max_slots, int cmd, int ack)
{
  cudalink_status st;
  cu = cudalink_cuda_get(&st, NULL, 0);
  return cu ? producer_main(*(const uint32_t *)max_slots, cmd, ack) : 3;
}

static pid_t
start_producer(uint32_t max_slots)
{
  cudalink_status st = CUDALINK_ERR_INVALID_ARG;
  pid_t pid = fork_peer(producer_child, &max_slots, &cmd_w, &ack_r);
  if (pid < 0 || read(ack_r, &st, sizeof st) != sizeof st || st != CUDALINK_OK)
    return -1;
  return pid;
}

/* One frame published with op ('p', or 'a': see producer_main): its
 * status, and the producer's stats after it. */
static cudalink_status
publish_op(const char *op, cudalink_producer_stats *stats)
{
  cudalink_status st = CUDALINK_ERR_INVALID_ARG;
  cudalink_producer_stats s;
  if (write(cmd_w, op, 1) != 1 || read(ack_r, &st, sizeof st) != sizeof st ||
      read(ack_r, &s, sizeof s) != sizeof s)
    return CUDALINK_ERR_INVALID_ARG;
  if (stats)
    *stats = s;
  return st;
}

static cudalink_status
publish(cudalink_producer_stats *stats)
{
  return publish_op("p", stats);
}

static int
finish_producer(pid_t pid)
{
  if (write(cmd_w, "q", 1) != 1)
    return 97;
  close(cmd_w);
  close(ack_r);
  return wait_child(pid);
}

/* The first byte of the held frame: its frame number. */
static int
first_byte(uint64_t ptr)
{
  unsigned char b = 0;
  if (cu->CtxPushCurrent(ctx) != CUDA_SUCCESS)
    return -1;
  if (cu->MemcpyDtoH(&b, (CUdeviceptr)ptr, 1) != CUDA_SUCCESS)
    b = 0;
  cu->CtxPopCurrent(NULL);
  return b;
}

static uint32_t importer_flags; /* more CUDALINK_CONSUMER_* for importer() */

static cudalink_consumer *
importer(void)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  cfg.flags = CUDALINK_CONSUMER_IMPORT | importer_flags;
  if (cudalink_consumer_create(&cfg, &c) != CUDALINK_OK)
    return NULL;
  if (cudalink_consumer_connect(c) != CUDALINK_OK) {
    fprintf(stderr, "  connect: %s\n", cudalink_consumer_last_error(c));
    cudalink_consumer_destroy(c);
    return NULL;
  }
  return c;
}

/* The start of a producer/importer test: the producer process (offering
 * import unless no_import, growing up to max_slots), the driver here, an
 * importing consumer connected. NULL when a step failed. */
static cudalink_consumer *
start_import_test(uint32_t max_slots, pid_t *producer)
{
  if ((*producer = start_producer(max_slots)) < 0 || !load_driver())
    return NULL;
  return importer();
}

/* Its end: the consumer goes, the producer quits cleanly, the driver's
 * context is let go. */
static void
finish_import_test(cudalink_consumer *c, pid_t producer)
{
  cudalink_consumer_destroy(c);
  CHECK_EQ_INT(finish_producer(producer), 0);
  cu->DevicePrimaryCtxRelease(0);
}

/* The producer publishes its next frame, c waits for it and holds its
 * slot (each step checked): the hold, NULL when refused. */
static cudalink_hold *
publish_and_hold(cudalink_consumer *c, uint64_t *ptr, size_t *pitch)
{
  cudalink_hold *hold = NULL;
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, ptr, pitch, &hold), CUDALINK_OK);
  return hold;
}

/* Frame 1 held (one of three slots: a second hold is refused); frames 2
 * and 3 go to the free slots; frame 4's slot is frame 1's: the ring grows
 * (max_slots 5) and the held frame stays frame 1 all along, also once the
 * consumer has re-opened the new ring (where it may hold 3) and after it
 * was destroyed. */
static int
consumer_grows(void)
{
  cudalink_producer_stats ps;
  cudalink_consumer_stats cs;
  cudalink_consumer *c;
  cudalink_hold *hold = NULL, *hold2 = NULL, *hold3 = NULL;
  uint64_t ptr = 0, ptr2 = 0, ptr3 = 0;
  size_t pitch = 0;
  long live0;
  pid_t producer;
  char why[200];

  tu_failures_in_test = 0;
  new_name("grow");
  if ((producer = start_producer(5)) < 0 || !load_driver())
    return 1;
  live0 = mock_live(); /* before the consumer maps the ring */
  if (!(c = importer()))
    return 1;
  CHECK(cudalink_consumer_can_hold(c, why, sizeof why));
  hold = publish_and_hold(c, &ptr, &pitch);
  CHECK_EQ_INT(pitch, fmt.width * 4);
  CHECK_EQ_INT(first_byte(ptr), 1);
  /* one hold is all a 3-slot ring allows a reader */
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr3, &pitch, &hold3), CUDALINK_ERR_HOLDS_FULL);
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK);
  CHECK_EQ_INT(ps.grows, 0);
  CHECK_EQ_INT(first_byte(ptr), 1);
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK); /* slot 0 is held: grows to 5 */
  CHECK_EQ_INT(ps.grows, 1);
  CHECK_EQ_INT(ps.held_drops, 0);
  CHECK_EQ_INT(first_byte(ptr), 1);

  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_ERR_FORMAT_CHANGED);
  CHECK_EQ_INT(cudalink_consumer_format(c) ? 1 : 0, 1);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  /* the old ring's hold cannot be waited for on the new ring's events */
  CHECK_EQ_INT(cudalink_consumer_hold_wait(c, hold), CUDALINK_ERR_INVALID_ARG);
  /* the new ring: a hold of its own (the old one still counts for the old
   * ring's map only) */
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr2, &pitch, &hold2), CUDALINK_OK);
  CHECK_EQ_INT(first_byte(ptr2), 5);
  CHECK_EQ_INT(first_byte(ptr), 1);
  cudalink_consumer_get_stats(c, &cs);
  CHECK_EQ_INT(cs.holds, 2);
  CHECK_EQ_INT(cs.num_slots, 5);

  cudalink_consumer_destroy(c);
  /* the held slots are still mapped and still frame 1 and 5 */
  CHECK_EQ_INT(first_byte(ptr), 1);
  CHECK_EQ_INT(first_byte(ptr2), 5);
  CHECK(hold3 == NULL);
  cudalink_hold_release(hold);
  cudalink_hold_release(hold2);
  CHECK_EQ_INT(mock_live(), live0);
  CHECK_EQ_INT(finish_producer(producer), 0);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* max_slots = num_slots: the held slot costs frames, counted; after the
 * release the producer goes on. A copy-mode consumer of the same segment
 * still reads every published frame. */
static int
consumer_drops(void)
{
  cudalink_producer_stats ps;
  cudalink_consumer *c;
  cudalink_hold *hold = NULL;
  uint64_t ptr = 0;
  size_t pitch = 0;
  pid_t producer;

  tu_failures_in_test = 0;
  new_name("drop");
  if (!(c = start_import_test(0, &producer)))
    return 1;
  hold = publish_and_hold(c, &ptr, &pitch);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(&ps), CUDALINK_ERR_SLOTS_HELD);
  CHECK_EQ_INT(publish(&ps), CUDALINK_ERR_SLOTS_HELD);
  CHECK_EQ_INT(ps.held_drops, 2);
  CHECK_EQ_INT(ps.frames, 3);
  CHECK_EQ_INT(first_byte(ptr), 1);
  cudalink_hold_release(hold);
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK);
  CHECK_EQ_INT(ps.frames, 4);
  CHECK_EQ_INT(ps.grows, 0);
  /* a reader that missed frames copies rather than hold the producer back */
  /* (frame bytes count the dropped attempts too: frame 4 is byte 6) */
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK); /* frame 4 */
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK); /* frame 6, 5 missed */
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_ERR_HOLDS_FULL);
  hold = publish_and_hold(c, &ptr, &pitch); /* frame 7, caught up */
  CHECK_EQ_INT(first_byte(ptr), 9);
  cudalink_hold_release(hold);
  finish_import_test(c, producer);
  return tu_failures_in_test;
}

/* An importer whose process dies holding a slot: the producer writes that
 * slot again at once, and its census (once a second) counts the death. */
/* start_holder's take for a whole importer: the published frame */
static int
import_and_hold(void)
{
  cudalink_consumer *c;
  cudalink_hold *hold = NULL;
  uint64_t ptr;
  size_t pitch;
  return load_driver() && (c = importer()) != NULL && cudalink_consumer_wait(c, 0) == CUDALINK_OK &&
         cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold) == CUDALINK_OK;
}

static int
consumer_dies_holding(void)
{
  cudalink_producer_stats ps;
  pid_t producer, reader;
  int status = 0;

  tu_failures_in_test = 0;
  new_name("killed");
  if ((producer = start_producer(0)) < 0)
    return 1;
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK((reader = start_holder(import_and_hold)) > 0);
  if (reader < 0) {
    finish_producer(producer);
    return tu_failures_in_test;
  }
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(&ps), CUDALINK_ERR_SLOTS_HELD); /* frame 1's slot, held */
  kill(reader, SIGKILL);
  waitpid(reader, &status, 0);
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK);
  usleep(1100000); /* the census runs once a second */
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK);
  CHECK_EQ_INT(ps.dead_readers, 1);
  CHECK_EQ_INT(ps.import_readers, 0);
  CHECK_EQ_INT(ps.import, 1);
  CHECK_EQ_INT(finish_producer(producer), 0);
  return tu_failures_in_test;
}

/* A consumer that did not ask for import, and a producer that offers
 * none (the default): hold() says ERR_NO_IMPORT and why, and copying works
 * as ever. */
static int
consumer_no_import(void)
{
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_hold *hold = NULL;
  uint64_t ptr;
  size_t pitch;
  pid_t producer;
  char why[200] = "";

  tu_failures_in_test = 0;
  new_name("noimport");
  if ((producer = start_producer(0)) < 0 || !load_driver())
    return 1;
  cudalink_consumer_config_init(&cfg);
  cfg.name = seg_name;
  CHECK_EQ_INT(cudalink_consumer_create(&cfg, &c), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_connect(c), CUDALINK_OK);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_ERR_NO_IMPORT);
  CHECK(hold == NULL);
  CHECK(!cudalink_consumer_can_hold(c, why, sizeof why));
  CHECK_STR_CONTAINS(why, "not asked for");
  cudalink_consumer_destroy(c);
  CHECK_EQ_INT(finish_producer(producer), 0);

  new_name("notoffered");
  no_import = 1;
  if ((producer = start_producer(0)) < 0)
    return 1;
  c = importer();
  CHECK(c != NULL);
  if (c) {
    CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_ERR_NO_IMPORT);
    CHECK(!cudalink_consumer_can_hold(c, why, sizeof why));
    CHECK_STR_CONTAINS(why, "offers no import");
    cudalink_consumer_destroy(c);
  }
  CHECK_EQ_INT(finish_producer(producer), 0);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* A table left by an importing producer that died (at version 1, like the
 * new ring below), and a new producer of the name WITHOUT import: it
 * removes the table, so the reader copies; trusting it, the reader held a
 * slot the new producer rewrote (found in review). */
static int
consumer_stale_table(void)
{
  cudalink_holds *stale = NULL;
  cudalink_consumer *c;
  cudalink_hold *hold = NULL;
  uint64_t keys[3] = {101, 102, 103}, ptr = 0;
  size_t pitch = 0;
  pid_t producer;
  char why[200] = "";

  tu_failures_in_test = 0;
  new_name("stale");
  if (cudalink_holds_create(seg_name, 0, &stale, why, sizeof why) != CUDALINK_OK)
    return 1;
  cudalink_holds_publish_ring(stale, 1, 3, keys);
  cudalink_holds_destroy(stale, 0);
  no_import = 1;
  if (!(c = start_import_test(0, &producer)))
    return 1;
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_ERR_NO_IMPORT);
  cudalink_hold_release(hold);
  finish_import_test(c, producer);
  cudalink_holds_remove(seg_name);
  return tu_failures_in_test;
}

/* The ring should grow for a held slot, but no memory is left: the frame
 * is dropped (counted), not the stream failed, and growth is not tried
 * again for every frame. */
static int
consumer_grow_fails(void)
{
  cudalink_producer_stats ps;
  cudalink_consumer *c;
  cudalink_hold *hold = NULL;
  uint64_t ptr = 0;
  size_t pitch = 0;
  pid_t producer;

  tu_failures_in_test = 0;
  new_name("nogrow");
  if (!(c = start_import_test(5, &producer)))
    return 1;
  hold = publish_and_hold(c, &ptr, &pitch);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
  CHECK_EQ_INT(publish_op("a", &ps), CUDALINK_ERR_SLOTS_HELD); /* growth failed */
  CHECK_EQ_INT(ps.grows, 0);
  CHECK_EQ_INT(ps.held_drops, 1);
  CHECK_EQ_INT(publish(&ps), CUDALINK_ERR_SLOTS_HELD);
  CHECK_EQ_INT(ps.held_drops, 2);
  CHECK_EQ_INT(first_byte(ptr), 1);
  cudalink_hold_release(hold);
  CHECK_EQ_INT(publish(&ps), CUDALINK_OK);
  finish_import_test(c, producer);
  return tu_failures_in_test;
}

static void *
release_later(void *hold)
{
  usleep(400000);
  cudalink_hold_release(hold);
  return NULL;
}

/* A producer that shuts down while a slot is held waits for the hold
 * (up to 2 s) before it frees the ring; the held frame stays readable
 * until it is released. */
static int
consumer_shutdown_waits(void)
{
  cudalink_consumer *c;
  cudalink_hold *hold = NULL;
  uint64_t ptr = 0;
  size_t pitch = 0;
  pthread_t t;
  pid_t producer;
  double t0, waited;

  tu_failures_in_test = 0;
  new_name("shutdown");
  if (!(c = start_import_test(0, &producer)))
    return 1;
  hold = publish_and_hold(c, &ptr, &pitch);
  if (pthread_create(&t, NULL, release_later, hold) != 0)
    return 1;
  t0 = cudalink_now();
  CHECK_EQ_INT(finish_producer(producer), 0);
  waited = cudalink_now() - t0;
  pthread_join(t, NULL);
  fprintf(stderr, "  shutdown took %.0f ms with a slot held for 400 ms\n", waited * 1e3);
  CHECK(waited >= 0.35 && waited < 2.0);
  cudalink_consumer_destroy(c);
  cu->DevicePrimaryCtxRelease(0);
  return tu_failures_in_test;
}

/* The producer publishes a frame its GPU is still writing ('s': done
 * SLOW_GPU_US after the publish command was sent): hold() returns only
 * once that work is done, with each wait flag, and it waits on the host:
 * no GPU-side wait is queued in this process (on a GPU without MPS such a
 * wait had the GPU switch between the two processes' contexts for every
 * frame: docs/BENCHMARKS.md). With SLEEP_SYNC the thread sleeps through
 * most of the wait (its CPU time is well under it; the driver cannot sleep
 * on an IPC event, so a cuEventSynchronize there would spin). */
static int
consumer_waits_for_producer_gpu(void)
{
  static const uint32_t ways[] = { 0, CUDALINK_CONSUMER_SLEEP_SYNC, CUDALINK_CONSUMER_SPIN_SYNC };
  unsigned i;

  tu_failures_in_test = 0;
  for (i = 0; i < sizeof ways / sizeof ways[0]; i++) {
    cudalink_consumer *c;
    cudalink_hold *hold = NULL;
    uint64_t ptr = 0;
    size_t pitch = 0;
    pid_t producer;
    long waits0;
    double t0, t1, waited, cpu0, cpu_share;

    new_name("lategpu");
    importer_flags = ways[i];
    c = start_import_test(0, &producer);
    importer_flags = 0;
    if (!c)
      return 1;
    waits0 = mock_stream_waits();
    t0 = cudalink_now();
    CHECK_EQ_INT(publish_op("s", NULL), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    cpu0 = thread_cpu_s();
    t1 = cudalink_now();
    CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_OK);
    cpu_share = (thread_cpu_s() - cpu0) / (cudalink_now() - t1);
    waited = cudalink_now() - t0;
    fprintf(stderr,
            "  flags 0x%x: hold returned %.0f ms after the publish (GPU done after %d), "
            "CPU %.0f%% of its wait\n",
            (unsigned)ways[i], waited * 1e3, SLOW_GPU_US / 1000, cpu_share * 100);
    CHECK(waited >= SLOW_GPU_US * 1e-6);
    /* (a thread that spins here shows 100 % on an idle machine, 43-50 %
     * on one busy with a parallel build: the bound leaves room for that) */
    if (ways[i] == CUDALINK_CONSUMER_SLEEP_SYNC)
      CHECK(cpu_share < 0.35);
    CHECK_EQ_INT(mock_stream_waits() - waits0, 0);
    CHECK_EQ_INT(first_byte(ptr), 1);
    /* the next frame, on time, is held at once */
    CHECK_EQ_INT(publish(NULL), CUDALINK_OK);
    CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
    cudalink_hold_release(hold);
    hold = NULL;
    t0 = cudalink_now();
    CHECK_EQ_INT(cudalink_consumer_hold(c, NULL, &ptr, &pitch, &hold), CUDALINK_OK);
    CHECK(cudalink_now() - t0 < SLOW_GPU_US * 1e-6 / 2);
    CHECK_EQ_INT(first_byte(ptr), 2);
    cudalink_hold_release(hold);
    finish_import_test(c, producer);
  }
  return tu_failures_in_test;
}

/* hold() in two steps: _begin holds the slot at once, while the
 * producer's GPU still writes the frame; _wait returns once it is done. A
 * failed wait leaves the hold to the caller. */
static int
consumer_holds_in_two_steps(void)
{
  cudalink_consumer *c;
  cudalink_consumer_stats st;
  cudalink_hold *hold = NULL;
  uint64_t ptr = 0;
  size_t pitch = 0;
  pid_t producer;
  double t0, begun, waited;

  tu_failures_in_test = 0;
  new_name("twostep");
  c = start_import_test(0, &producer);
  if (!c)
    return 1;
  t0 = cudalink_now();
  CHECK_EQ_INT(publish_op("s", NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold_begin(c, &ptr, &pitch, &hold), CUDALINK_OK);
  begun = cudalink_now() - t0;
  CHECK(hold != NULL);
  CHECK(ptr != 0);
  CHECK(pitch != 0);
  CHECK(begun < SLOW_GPU_US * 1e-6 / 2);
  cudalink_consumer_get_stats(c, &st);
  CHECK_EQ_INT((int)st.held, 1);
  CHECK_EQ_INT((int)st.holds, 0);
  CHECK_EQ_INT(cudalink_consumer_hold_wait(c, hold), CUDALINK_OK);
  waited = cudalink_now() - t0;
  fprintf(stderr, "  begin returned after %.1f ms, wait after %.0f ms (GPU done after %d)\n",
          begun * 1e3, waited * 1e3, SLOW_GPU_US / 1000);
  CHECK(waited >= SLOW_GPU_US * 1e-6);
  CHECK_EQ_INT(first_byte(ptr), 1);
  cudalink_consumer_get_stats(c, &st);
  CHECK_EQ_INT((int)st.holds, 1);
  cudalink_hold_release(hold);
  hold = NULL;

  /* the driver fails the wait: CUDA error, the slot still held until the
   * caller lets it go */
  CHECK_EQ_INT(publish_op("s", NULL), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_wait(c, 1000000), CUDALINK_OK);
  CHECK_EQ_INT(cudalink_consumer_hold_begin(c, &ptr, &pitch, &hold), CUDALINK_OK);
  setenv("MOCK_CUDA_FAIL", "cuEventQuery", 1);
  CHECK_EQ_INT(cudalink_consumer_hold_wait(c, hold), CUDALINK_ERR_CUDA);
  unsetenv("MOCK_CUDA_FAIL");
  CHECK(strstr(cudalink_consumer_last_error(c), "waiting for the producer's frame") != NULL);
  cudalink_consumer_get_stats(c, &st);
  CHECK_EQ_INT((int)st.held, 1);
  CHECK_EQ_INT((int)st.holds, 1);
  cudalink_hold_release(hold);
  cudalink_consumer_get_stats(c, &st);
  CHECK_EQ_INT((int)st.held, 0);
  CHECK_EQ_INT(cudalink_consumer_hold_begin(NULL, &ptr, &pitch, &hold), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_consumer_hold_wait(c, NULL), CUDALINK_ERR_INVALID_ARG);
  finish_import_test(c, producer);
  return tu_failures_in_test;
}

CHILD_TEST(test_import_grows, consumer_grows)
CHILD_TEST(test_import_drops, consumer_drops)
CHILD_TEST(test_importer_dies, consumer_dies_holding)
CHILD_TEST(test_no_import, consumer_no_import)
CHILD_TEST(test_stale_table, consumer_stale_table)
CHILD_TEST(test_grow_fails, consumer_grow_fails)
CHILD_TEST(test_shutdown_waits_for_holds, consumer_shutdown_waits)
CHILD_TEST(test_hold_waits_for_producer_gpu, consumer_waits_for_producer_gpu)
CHILD_TEST(test_hold_in_two_steps, consumer_holds_in_two_steps)

int
main(void)
{
  setenv("CUDALINK_CUDA_LIBRARY", MOCK_CUDA, 1);
  RUN_TEST(test_channel);
  RUN_TEST(test_channel_full);
  RUN_TEST(test_channel_dead_reader);
  RUN_TEST(test_import_grows);
  RUN_TEST(test_import_drops);
  RUN_TEST(test_importer_dies);
  RUN_TEST(test_no_import);
  RUN_TEST(test_stale_table);
  RUN_TEST(test_grow_fails);
  RUN_TEST(test_shutdown_waits_for_holds);
  RUN_TEST(test_hold_waits_for_producer_gpu);
  RUN_TEST(test_hold_in_two_steps);
  return TEST_SUMMARY();
}
