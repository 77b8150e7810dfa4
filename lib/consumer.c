/* The consumer (importer): follows a producer's segment, opens its ring over
 * CUDA IPC and copies frames out, following PROTOCOL.md's consumer steps:
 * open and validate the segment (connect, snapshot), let a header being
 * rewritten settle (attach), open the handles (open_ring), wait for a frame
 * (wait; how it sleeps or spins is wait.c's), acquire the slot, copy it and
 * release it, checking that the copy did not tear.
 *
 * Peers re-initialise by bumping the version FIRST and writing handles and
 * metadata after it, so a consistent version proves little. We take a
 * header only when two reads a few milliseconds apart agree byte for byte
 * and every IPC handle opens; otherwise we retry for up to settle_ms. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_table.h"
#include "shm.h"
#include "util.h"
#include "wait.h"

#define SETTLE_GAP_US 2000   /* two reads this far apart must agree */
#define RETRY_GAP_US 5000    /* between tries of a header being rewritten */
#define LOCK_CHECK_S 0.05    /* how often we ask whether our producer lives */
#define DEFAULT_POLL_US 1000 /* what 0 in the config means (cudalink.h) */
#define DEFAULT_SETTLE_MS 2000

struct cudalink_consumer {
  char name[CUDALINK_MAX_NAME + 1];
  cudalink_consumer_config config;
  const cudalink_cuda *cu;
  cudalink_cuda_context ctx;
  CUstream stream;
  cudalink_shm *seg;

  /* the ring we have open */
  int open;
  cudalink_header header;
  cudalink_layout layout;
  uint32_t row_size;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
  CUevent event[CUDALINK_MAX_SLOTS];
  CUevent done; /* recorded after the caller's copy: release() waits on it */

  cudalink_waiter waiter; /* how wait() and release() wait (wait.h) */

  uint32_t last_idx;
  int have_frame;
  cudalink_frame_info frame;
  int ours;
  double next_lock_check;
  cudalink_consumer_stats stats;
  char last_error[320];
};

/* the object's last error, and its log callback (util.c) */
#define set_error(c_, ...) cudalink_textf((c_)->last_error, sizeof((c_)->last_error), __VA_ARGS__)
#define logf_(c_, level, ...) \
  cudalink_logf((c_)->config.log, (c_)->config.log_user_data, level, __VA_ARGS__)

void
cudalink_consumer_config_init(cudalink_consumer_config *config)
{
  memset(config, 0, sizeof *config);
  config->name = "cudalink";
  config->poll_interval_us = DEFAULT_POLL_US;
  config->settle_ms = DEFAULT_SETTLE_MS;
}

cudalink_status
cudalink_consumer_create(const cudalink_consumer_config *config, cudalink_consumer **out)
{
  cudalink_consumer *c;
  cudalink_status st;

  if (!config || !out)
    return CUDALINK_ERR_INVALID_ARG;
  *out = NULL;
  if ((st = cudalink_shm_check_name(config->name)) != CUDALINK_OK)
    return st;
  c = calloc(1, sizeof *c);
  if (!c)
    return CUDALINK_ERR_NO_MEMORY;
  c->config = *config;
  snprintf(c->name, sizeof c->name, "%s", config->name);
  c->config.name = c->name;
  if (!c->config.poll_interval_us)
    c->config.poll_interval_us = DEFAULT_POLL_US;
  if (!c->config.settle_ms)
    c->config.settle_ms = DEFAULT_SETTLE_MS;
  cudalink_waiter_init(&c->waiter, config->flags);
  *out = c;
  return CUDALINK_OK;
}

/* --- reading the segment --------------------------------------------- */

static const uint8_t *
seg_base(const cudalink_consumer *c)
{
  return (const uint8_t *)cudalink_shm_data(c->seg);
}

static uint32_t
load_write_idx(const cudalink_consumer *c)
{
  return atomic_load_explicit(
      (const _Atomic uint32_t *)(const void *)(seg_base(c) + c->layout.write_idx),
      memory_order_acquire);
}

static uint64_t
load_version(const cudalink_consumer *c)
{
  uint64_t v;
  memcpy(&v, seg_base(c) + c->layout.version, sizeof v);
  atomic_thread_fence(memory_order_acquire);
  return v;
}

static uint8_t
load_shutdown(const cudalink_consumer *c)
{
  uint8_t f = *(const volatile uint8_t *)(seg_base(c) + c->layout.shutdown_flag);
  atomic_thread_fence(memory_order_acquire);
  return f;
}

static int
all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

/* PROTOCOL.md consumer steps 1 and 2: a parsed, validated copy of the
 * header; 'stable' when a second read SETTLE_GAP_US later gave the same
 * bytes (write_idx and timestamp excluded: they move with every frame). */
static cudalink_status
snapshot(cudalink_consumer *c, cudalink_header *h, int *stable)
{
  uint8_t a[CUDALINK_MAX_LAYOUT_SIZE], b[CUDALINK_MAX_LAYOUT_SIZE];
  size_t size, mapped;
  cudalink_status st;
  char why[200];
  cudalink_layout L;

  cudalink_shm_refresh(c->seg);
  /* only the largest layout is compared: more may be mapped (a Windows
   * mapping is page-rounded, a peer may have made the segment larger) */
  mapped = cudalink_shm_size(c->seg);
  size = mapped > sizeof a ? sizeof a : mapped;
  memcpy(a, seg_base(c), size);
  atomic_thread_fence(memory_order_acquire);
  st = cudalink_header_parse_verbose(a, size, h, why, sizeof why);
  if (st != CUDALINK_OK && all_zero(a, size)) {
    /* a producer creates the file before it writes the header */
    set_error(c,
              "segment '%s' is empty (%lu bytes of zeros): its producer has not written "
              "a header yet",
              c->name, (unsigned long)size);
    st = CUDALINK_ERR_NOT_CONNECTED;
  } else if (st != CUDALINK_OK)
    set_error(c, "segment '%s': %s", c->name, why);
  else if (h->shutdown_flag) {
    set_error(c, "segment '%s' is stale: its shutdown flag is set (the producer is gone)", c->name);
    st = CUDALINK_ERR_STALE;
  } else if (h->version == 0) {
    set_error(c, "segment '%s' has version 0 (producer still initialising)", c->name);
    st = CUDALINK_ERR_NOT_CONNECTED;
  }
  cudalink_sleep(SETTLE_GAP_US * 1e-6);
  memcpy(b, seg_base(c), size);
  L = cudalink_layout_for(h->num_slots);
  if (L.size && L.size <= size) {
    /* write_idx and timestamp may move: compare the rest */
    memset(a + L.write_idx, 0, 4);
    memset(b + L.write_idx, 0, 4);
    memset(a + L.timestamp, 0, 8);
    memset(b + L.timestamp, 0, 8);
    memset(a + L.shutdown_flag, 0, 1);
    memset(b + L.shutdown_flag, 0, 1);
  }
  *stable = memcmp(a, b, size) == 0 && mapped == cudalink_shm_size(c->seg);
  return st;
}

/* --- IPC handles ----------------------------------------------------- */

static void
close_ring(cudalink_consumer *c)
{
  if (!c->open)
    return;
  if (c->cu->CtxPushCurrent(c->ctx.ctx) == CUDA_SUCCESS) {
    if (c->stream)
      c->cu->StreamSynchronize(c->stream);
    for (uint32_t s = 0; s < CUDALINK_MAX_SLOTS; s++) {
      if (c->event[s])
        c->cu->EventDestroy(c->event[s]);
      if (c->mem[s])
        c->cu->IpcCloseMemHandle(c->mem[s]);
      c->event[s] = NULL;
      c->mem[s] = 0;
    }
    c->cu->CtxPopCurrent(NULL);
  }
  c->open = 0;
  c->have_frame = 0;
  cudalink_waiter_restart(&c->waiter);
}

/* Step 3: opens every slot's memory and event handle. */
static cudalink_status
open_ring(cudalink_consumer *c, const cudalink_header *h)
{
  CUresult res = CUDA_SUCCESS;
  const char *call = "";
  uint32_t s;

  if (c->cu->CtxPushCurrent(c->ctx.ctx) != CUDA_SUCCESS) {
    set_error(c, "cannot make the CUDA context current");
    return CUDALINK_ERR_CUDA;
  }
  for (s = 0; s < h->num_slots; s++) {
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    if (all_zero(h->mem_handle[s], CUDALINK_IPC_HANDLE_SIZE)) {
      set_error(c, "segment '%s': slot %u has no memory handle", c->name, s);
      res = CUDA_ERROR_INVALID_HANDLE;
      break;
    }
    memcpy(&mh, h->mem_handle[s], sizeof mh);
    memcpy(&eh, h->event_handle[s], sizeof eh);
    res = c->cu->IpcOpenMemHandle(&c->mem[s], mh, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
    if (res != CUDA_SUCCESS) {
      call = "cuIpcOpenMemHandle";
      c->mem[s] = 0;
      break;
    }
    res = c->cu->IpcOpenEventHandle(&c->event[s], eh);
    if (res != CUDA_SUCCESS) {
      call = "cuIpcOpenEventHandle";
      c->event[s] = NULL;
      break;
    }
  }
  c->cu->CtxPopCurrent(NULL);
  c->open = 1; /* so that close_ring frees what did open */
  if (res != CUDA_SUCCESS) {
    char why[200] = "";
    if (*call)
      cudalink_cuda_check(c->cu, res, call, why, sizeof why);
    close_ring(c);
    if (*call)
      set_error(c, "segment '%s': slot %u: %s", c->name, s, why);
    return CUDALINK_ERR_IPC_OPEN;
  }
  return CUDALINK_OK;
}

/* Takes the header as it is now and opens its ring, retrying a header that
 * is being rewritten for up to settle_ms. Header errors that stay put are
 * reported at once. */
static cudalink_status
attach(cudalink_consumer *c)
{
  double deadline = cudalink_now() + c->config.settle_ms / 1000.0;
  cudalink_status st;

  for (;;) {
    cudalink_header h;
    int stable = 0;
    st = snapshot(c, &h, &stable);
    if (st == CUDALINK_OK && stable) {
      if (!c->cu) {
        c->cu = cudalink_cuda_get(&st, c->last_error, sizeof c->last_error);
        if (!c->cu)
          return st;
        st = cudalink_cuda_context_acquire(c->cu, c->config.cuda_context, c->config.device, &c->ctx,
                                           c->last_error, sizeof c->last_error);
        if (st != CUDALINK_OK) {
          c->cu = NULL;
          return st;
        }
      }
      if (!c->stream) {
        CUresult res = c->cu->CtxPushCurrent(c->ctx.ctx);
        if (res == CUDA_SUCCESS) {
          res = c->cu->StreamCreate(&c->stream, CU_STREAM_NON_BLOCKING);
          /* SLEEP_SYNC sleeps on it in the driver; the others query it */
          if (res == CUDA_SUCCESS)
            res = c->cu->EventCreate(
                &c->done,
                (c->config.flags & CUDALINK_CONSUMER_SLEEP_SYNC ? CU_EVENT_BLOCKING_SYNC : 0) |
                    CU_EVENT_DISABLE_TIMING);
          c->cu->CtxPopCurrent(NULL);
        }
        if (res != CUDA_SUCCESS)
          return cudalink_cuda_check(c->cu, res, "cuStreamCreate", c->last_error,
                                     sizeof c->last_error);
      }
      c->layout = cudalink_layout_for(h.num_slots);
      st = open_ring(c, &h);
      if (st == CUDALINK_OK) {
        /* seqlock: the version must not have moved while we opened */
        if (load_version(c) == h.version && !load_shutdown(c)) {
          c->header = h;
          cudalink_format_sizes(&h.format, NULL, &c->row_size);
          c->last_idx = 0;
          c->ours = cudalink_shm_is_locked(c->seg) == 1;
          c->next_lock_check = cudalink_now() + LOCK_CHECK_S;
          c->stats.num_slots = h.num_slots;
          c->stats.version = h.version;
          c->last_error[0] = 0;
          return CUDALINK_OK;
        }
        close_ring(c);
        st = CUDALINK_ERR_IPC_OPEN;
      }
    } else if (st != CUDALINK_OK && stable) {
      /* a bad header that is not being rewritten, or an empty one: the
       * caller decides how long to wait for a producer */
      return st;
    }
    if (cudalink_now() >= deadline) {
      if (st == CUDALINK_OK)
        set_error(c, "segment '%s' kept changing for %u ms", c->name, c->config.settle_ms);
      return st == CUDALINK_OK ? CUDALINK_ERR_IPC_OPEN : st;
    }
    cudalink_sleep(RETRY_GAP_US * 1e-6);
  }
}

cudalink_status
cudalink_consumer_connect(cudalink_consumer *c)
{
  cudalink_status st;

  if (!c)
    return CUDALINK_ERR_INVALID_ARG;
  cudalink_consumer_disconnect(c);
  st = cudalink_shm_open(c->name, &c->seg);
  if (st != CUDALINK_OK) {
    if (st == CUDALINK_ERR_NOT_FOUND)
      set_error(c, "no segment named '%s' exists (no producer yet)", c->name);
    else
      set_error(c, "cannot open segment '%s': %s", c->name, cudalink_shm_last_error());
    return st;
  }
  st = attach(c);
  if (st != CUDALINK_OK) {
    cudalink_consumer_disconnect(c);
    return st;
  }
  logf_(c, CUDALINK_LOG_INFO, "connected to '%s': %ux%u x%u %s, %u slots, version %llu%s", c->name,
        c->header.format.width, c->header.format.height, c->header.format.num_comps,
        cudalink_dtype_name(c->header.format.dtype), c->header.num_slots,
        (unsigned long long)c->header.version, c->ours ? " (cudalink producer)" : "");
  return CUDALINK_OK;
}

void
cudalink_consumer_disconnect(cudalink_consumer *c)
{
  if (!c)
    return;
  if (c->cu) {
    close_ring(c);
    if ((c->stream || c->done) && c->cu->CtxPushCurrent(c->ctx.ctx) == CUDA_SUCCESS) {
      if (c->done)
        c->cu->EventDestroy(c->done);
      if (c->stream)
        c->cu->StreamDestroy(c->stream);
      c->cu->CtxPopCurrent(NULL);
    }
    c->stream = NULL;
    c->done = NULL;
    cudalink_cuda_context_release(c->cu, &c->ctx);
    c->cu = NULL;
  }
  cudalink_shm_close(c->seg);
  c->seg = NULL;
  c->open = 0;
  c->have_frame = 0;
  cudalink_waiter_restart(&c->waiter);
}

void
cudalink_consumer_destroy(cudalink_consumer *c)
{
  if (!c)
    return;
  cudalink_consumer_disconnect(c);
  free(c);
}

/* --- frames ---------------------------------------------------------- */

static cudalink_status
producer_gone(cudalink_consumer *c, const char *why)
{
  set_error(c, "producer of '%s' is gone: %s", c->name, why);
  logf_(c, CUDALINK_LOG_INFO, "%s", c->last_error);
  cudalink_consumer_disconnect(c);
  return CUDALINK_ERR_PRODUCER_GONE;
}

void
cudalink_consumer_interrupt(cudalink_consumer *c, int on)
{
  if (!c)
    return;
  cudalink_waiter_interrupt(&c->waiter, on);
}

/* PROTOCOL.md consumer step 5: the version moved. Re-opens everything
 * (slot count, format and handles may all have changed). */
static cudalink_status
reopen(cudalink_consumer *c)
{
  cudalink_status st;

  close_ring(c);
  st = attach(c);
  if (st == CUDALINK_ERR_STALE)
    return producer_gone(c, "it shut down");
  if (st != CUDALINK_OK) {
    char why[sizeof c->last_error + 64];
    snprintf(why, sizeof why, "its new ring could not be opened: %s", c->last_error);
    return producer_gone(c, why);
  }
  c->stats.reopens++;
  return CUDALINK_ERR_FORMAT_CHANGED;
}

/* Step 4: write_idx moved to idx, a new frame in slot (idx - 1) % N; spun
 * when the waiter caught it spinning. */
static void
take_frame(cudalink_consumer *c, uint32_t idx, int spun)
{
  uint32_t since = c->last_idx != 0 && idx > c->last_idx ? idx - c->last_idx : 0;

  if (since > 1)
    c->stats.missed += since - 1;
  c->last_idx = idx;
  c->frame.write_idx = idx;
  c->frame.slot = (idx - 1) % c->header.num_slots;
  c->frame.version = c->header.version;
  memcpy(&c->frame.timestamp, seg_base(c) + c->layout.timestamp, sizeof(double));
  c->have_frame = 1;
  c->stats.frames++;
  if (spun)
    c->stats.paced++;
  cudalink_waiter_frame(&c->waiter, c->frame.timestamp, since);
}

/* Ours, every LOCK_CHECK_S: 1 when the producer's process died (its lock
 * is gone) without a shutdown or another frame (write_idx still idx). */
static int
producer_died(cudalink_consumer *c, uint32_t idx, double now)
{
  if (!c->ours || now < c->next_lock_check)
    return 0;
  c->next_lock_check = now + LOCK_CHECK_S;
  return cudalink_shm_is_locked(c->seg) == 0 && !load_shutdown(c) && load_write_idx(c) == idx;
}

/* What the waiter's spin stops for besides write_idx (wait.h). */
static int
ring_changed(void *arg)
{
  const cudalink_consumer *c = arg;
  return load_version(c) != c->header.version || load_shutdown(c);
}

cudalink_status
cudalink_consumer_wait(cudalink_consumer *c, int64_t timeout_us)
{
  double deadline;
  cudalink_wait_on on;
  int spun = 0; /* did the last look find the change spinning? */

  if (!c)
    return CUDALINK_ERR_INVALID_ARG;
  if (!c->seg || !c->open)
    return CUDALINK_ERR_NOT_CONNECTED;
  deadline = timeout_us < 0 ? -1.0 : cudalink_now() + (double)timeout_us / 1e6;
  memset(&on, 0, sizeof on);
  on.changed = ring_changed;
  on.arg = c;
  on.poll_us = c->config.poll_interval_us;

  for (;;) {
    uint32_t idx = load_write_idx(c);
    double now;

    if (cudalink_waiter_interrupted(&c->waiter))
      return CUDALINK_ERR_INTERRUPTED;
    if (load_shutdown(c))
      return producer_gone(c, "it shut down");
    if (load_version(c) != c->header.version)
      return reopen(c);
    if (idx != 0 && idx != c->last_idx) {
      take_frame(c, idx, spun);
      return CUDALINK_OK;
    }

    now = cudalink_now();
    if (producer_died(c, idx, now))
      return producer_gone(c, "its process died (it no longer holds the segment)");
    if (deadline >= 0 && now >= deadline)
      return CUDALINK_ERR_TIMEOUT;
    /* nothing new: ours wakes us on every publish, a foreign one is polled */
    on.word = (const volatile uint32_t *)(const void *)(seg_base(c) + c->layout.write_idx);
    on.idx = idx;
    on.woken = c->ours;
    on.recheck = c->next_lock_check;
    spun = cudalink_waiter_wait(&c->waiter, &on, now, deadline);
  }
}

const cudalink_format *
cudalink_consumer_format(const cudalink_consumer *c)
{
  return c && c->open ? &c->header.format : NULL;
}

cudalink_status
cudalink_consumer_frame_info(const cudalink_consumer *c, cudalink_frame_info *info)
{
  if (!c || !info)
    return CUDALINK_ERR_INVALID_ARG;
  if (!c->have_frame)
    return CUDALINK_ERR_NO_FRAME;
  *info = c->frame;
  return CUDALINK_OK;
}

cudalink_status
cudalink_consumer_acquire(cudalink_consumer *c, void *stream, uint64_t *src, size_t *src_pitch)
{
  CUresult res;
  CUstream s;

  if (!c || !src || !src_pitch)
    return CUDALINK_ERR_INVALID_ARG;
  if (!c->open)
    return CUDALINK_ERR_NOT_CONNECTED;
  if (!c->have_frame)
    return CUDALINK_ERR_NO_FRAME;
  s = stream ? (CUstream)stream : c->stream;
  if ((res = c->cu->CtxPushCurrent(c->ctx.ctx)) != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuCtxPushCurrent", c->last_error, sizeof c->last_error);
  /* The producer recorded the event before it published write_idx, which we
   * have read: a completed query means the slot's frame is written. */
  if (!(c->config.flags & CUDALINK_CONSUMER_ALWAYS_WAIT_EVENT) &&
      c->cu->EventQuery(c->event[c->frame.slot]) == CUDA_SUCCESS)
    res = CUDA_SUCCESS;
  else
    res = c->cu->StreamWaitEvent(s, c->event[c->frame.slot], 0);
  c->cu->CtxPopCurrent(NULL);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuStreamWaitEvent", c->last_error,
                               sizeof c->last_error);
  *src = c->mem[c->frame.slot];
  *src_pitch = c->row_size;
  return CUDALINK_OK;
}

/* Waits until the caller's copy on s is done: SPIN_SYNC spins in the
 * driver, the others record our event after the copy and let the waiter
 * wait for it (wait.h). */
static CUresult
wait_for_copy(cudalink_consumer *c, CUstream s)
{
  CUresult res;

  if (c->config.flags & CUDALINK_CONSUMER_SPIN_SYNC)
    return c->cu->StreamSynchronize(s);
  if ((res = c->cu->EventRecord(c->done, s)) != CUDA_SUCCESS)
    return res;
  return cudalink_waiter_sync(&c->waiter, c->cu, c->done);
}

/* PROTOCOL.md "Torn frames": slot (seen-1)%N is rewritten from frame
 * seen-1+N on, i.e. once write_idx has reached seen-1+N. With N = 1 no
 * copy can be proven clean; we accept one during which nothing new was
 * published. */
static int
copy_torn(const cudalink_consumer *c)
{
  uint32_t idx = load_write_idx(c);
  uint32_t n = c->header.num_slots;
  uint32_t seen = c->frame.write_idx;

  return load_version(c) != c->frame.version ||
         (n > 1 ? (uint32_t)(idx - (seen - 1)) >= n : idx != seen);
}

cudalink_status
cudalink_consumer_release(cudalink_consumer *c, void *stream)
{
  CUresult res;

  if (!c)
    return CUDALINK_ERR_INVALID_ARG;
  if (!c->open)
    return CUDALINK_ERR_NOT_CONNECTED;
  if (!c->have_frame)
    return CUDALINK_ERR_NO_FRAME;
  if ((res = c->cu->CtxPushCurrent(c->ctx.ctx)) != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuCtxPushCurrent", c->last_error, sizeof c->last_error);
  res = wait_for_copy(c, stream ? (CUstream)stream : c->stream);
  c->cu->CtxPopCurrent(NULL);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res,
                               c->config.flags & CUDALINK_CONSUMER_SPIN_SYNC
                                   ? "cuStreamSynchronize"
                                   : "cuEventRecord/cuEventQuery (waiting for the copy)",
                               c->last_error, sizeof c->last_error);
  if (copy_torn(c)) {
    c->stats.torn++;
    return CUDALINK_ERR_TORN;
  }
  return CUDALINK_OK;
}

cudalink_status
cudalink_consumer_copy(cudalink_consumer *c, uint64_t dst, size_t dst_pitch, void *stream)
{
  CUDA_MEMCPY2D cp;
  uint64_t src;
  size_t src_pitch;
  CUresult res;
  cudalink_status st;

  if (!c || !dst)
    return CUDALINK_ERR_INVALID_ARG;
  if ((st = cudalink_consumer_acquire(c, stream, &src, &src_pitch)) != CUDALINK_OK)
    return st;
  if (dst_pitch < c->row_size)
    return CUDALINK_ERR_INVALID_ARG;
  memset(&cp, 0, sizeof cp);
  cp.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.srcDevice = (CUdeviceptr)src;
  cp.srcPitch = src_pitch;
  cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.dstDevice = (CUdeviceptr)dst;
  cp.dstPitch = dst_pitch;
  cp.WidthInBytes = c->row_size;
  cp.Height = c->header.format.height;
  if ((res = c->cu->CtxPushCurrent(c->ctx.ctx)) != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuCtxPushCurrent", c->last_error, sizeof c->last_error);
  res = cudalink_cuda_copy_2d(c->cu, &cp, stream ? (CUstream)stream : c->stream);
  c->cu->CtxPopCurrent(NULL);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuMemcpy2DAsync", c->last_error, sizeof c->last_error);
  return cudalink_consumer_release(c, stream);
}

void *
cudalink_consumer_stream(const cudalink_consumer *c)
{
  return c ? (void *)c->stream : NULL;
}

int
cudalink_consumer_producer_is_ours(const cudalink_consumer *c)
{
  return c ? c->ours : 0;
}

void
cudalink_consumer_get_stats(const cudalink_consumer *c, cudalink_consumer_stats *stats)
{
  if (!stats)
    return;
  memset(stats, 0, sizeof *stats);
  if (c) {
    *stats = c->stats;
    stats->sleeps = c->waiter.sleeps;
    stats->spin_us = (uint64_t)(c->waiter.spin_total_s * 1e6);
  }
}

const char *
cudalink_consumer_last_error(const cudalink_consumer *c)
{
  return c ? c->last_error : "";
}
