/* The consumer (importer): follows a producer's segment, opens its ring over
 * CUDA IPC and copies frames out, following PROTOCOL.md's consumer steps:
 * open and validate the segment (connect, snapshot), let a header being
 * rewritten settle (attach), open the handles and check that every slot
 * holds a whole frame (open_ring), wait for a frame (wait; how it sleeps or
 * spins is wait.c's), acquire the slot, copy it and release it, checking
 * that the copy did not tear.
 *
 * Peers re-initialise by bumping the version FIRST and writing handles and
 * metadata after it, so a consistent version proves little. We take a
 * header only when two reads a few milliseconds apart agree byte for byte
 * and every IPC handle opens; otherwise we retry for up to settle_ms. And
 * we trust it only as long as it stays as it was: every frame, the header
 * must still describe the ring we opened (segment.h), or we re-open as for
 * a new version. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_table.h"
#include "holds.h"
#include "segment.h"
#include "shm.h"
#include "util.h"
#include "wait.h"

#define SETTLE_GAP_US 2000   /* two reads this far apart must agree */
#define RETRY_GAP_US 5000    /* between tries of a header being rewritten */
#define LOCK_CHECK_S 0.05    /* how often we ask whether our producer lives */
#define DEFAULT_POLL_US 1000 /* what 0 in the config means (cudalink.h) */
#define DEFAULT_SETTLE_MS 2000
/* A foreign producer's write_idx that falls to 0 from this close below
 * 2^32, version unchanged, wrapped: the 0 is its next frame. From further
 * down a 0 is a re-initialisation (or "no frame yet"), as for the peers. */
#define WRAP_WINDOW 65536u

/* The slot mappings of one opened ring, shared by the consumer and the
 * holds on it (import), which may outlive both the ring and the consumer:
 * the last of them closes the IPC handles. */
typedef struct ring_map {
  _Atomic int refs;
  _Atomic int held; /* holds not yet released */
  const cudalink_cuda *cu;
  CUcontext ctx;
  CUdevice device;
  int retained_primary; /* the map keeps the primary context alive */
  uint32_t num_slots;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
} ring_map;

struct cudalink_hold {
  cudalink_holds *channel;
  int record;
  ring_map *map;
  CUevent ready; /* the producer's event for the slot (hold_wait()) */
};

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
  uint8_t header_bytes[CUDALINK_MAX_LAYOUT_SIZE]; /* as we opened it */
  cudalink_layout layout;
  uint32_t row_size;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
  CUevent event[CUDALINK_MAX_SLOTS];
  CUevent done; /* recorded after the caller's copy: release() waits on it */

  cudalink_waiter waiter; /* how wait() and release() wait (wait.h) */

  /* import (CUDALINK_CONSUMER_IMPORT): the producer's back-channel and the
   * mappings holds keep alive */
  cudalink_holds *holds;
  ring_map *map;
  char no_import_why[200];
  int behind; /* frames were published between the last two we took */

  uint32_t last_idx; /* the write_idx of the last frame taken (have_frame) */
  int have_frame;
  cudalink_frame_info frame;
  int ours;
  double next_lock_check;
  double next_truncation_check;
  int owner_alone;      /* 1: this user's alone, 0: another's or shared, <0: unknown */
  char owner_text[160]; /* who owns it, for a warning */
  cudalink_consumer_stats stats;
  char last_error[512]; /* room for a 200-byte name twice */
};

/* the object's last error, and its log callback (util.c) */
#define set_error(c_, ...) cudalink_textf((c_)->last_error, sizeof((c_)->last_error), __VA_ARGS__)
#define logf_(c_, level, ...) \
  cudalink_logf((c_)->config.log, (c_)->config.log_user_data, level, __VA_ARGS__)

/* A CUDA call that fails while we let go of something: nobody to return it
 * to, so it is logged. */
static void
cleanup_check(const cudalink_consumer *c, CUresult res, const char *call)
{
  char why[200];
  if (res == CUDA_SUCCESS)
    return;
  cudalink_cuda_check(c->cu, res, call, why, sizeof why);
  logf_(c, CUDALINK_LOG_WARNING, "segment '%s': %s", c->name, why);
}

static void
pop_ctx(const cudalink_consumer *c)
{
  cleanup_check(c, c->cu->CtxPopCurrent(NULL), "cuCtxPopCurrent");
}

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
  /* a cut name would be another segment's */
  if ((size_t)snprintf(c->name, sizeof c->name, "%s", config->name) >= sizeof c->name) {
    free(c);
    return CUDALINK_ERR_BAD_NAME;
  }
  c->config.name = c->name;
  if (!c->config.poll_interval_us)
    c->config.poll_interval_us = DEFAULT_POLL_US;
  if (!c->config.settle_ms)
    c->config.settle_ms = DEFAULT_SETTLE_MS;
  cudalink_waiter_init(&c->waiter, config->flags);
  c->stats.mps = -1;
  c->stats.producer_mps = -1;
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

/* two 32-bit atomics, read until they agree (segment.h says why) */
static uint64_t
load_version(const cudalink_consumer *c)
{
  return cudalink_segment_load_version(seg_base(c));
}

static uint8_t
load_shutdown(const cudalink_consumer *c)
{
  uint8_t f = *(const volatile uint8_t *)(seg_base(c) + c->layout.shutdown_flag);
  atomic_thread_fence(memory_order_acquire);
  return f;
}

/* Does the live header still describe the ring we opened (everything but
 * version, write_idx, timestamp and shutdown_flag, which are looked at on
 * their own)? A few hundred bytes compared once a frame. */
static int
header_unchanged(const cudalink_consumer *c)
{
  return cudalink_segment_same_ring(c->header_bytes, seg_base(c), c->header.num_slots);
}

static int
all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

/* Judges a header read into raw (size bytes) that parsed as st (why). */
static cudalink_status
judge_header(cudalink_consumer *c, const uint8_t *raw, size_t size, const cudalink_header *h,
             cudalink_status st, const char *why)
{
  if (st != CUDALINK_OK && all_zero(raw, size)) {
    /* a producer creates the file before it writes the header */
    set_error(c,
              "segment '%s' is empty (%lu bytes of zeros): its producer has not written "
              "a header yet",
              c->name, (unsigned long)size);
    return CUDALINK_ERR_NOT_CONNECTED;
  }
  if (st != CUDALINK_OK) {
    set_error(c, "segment '%s': %s", c->name, why);
    return st;
  }
  if (h->shutdown_flag) {
    set_error(c, "segment '%s' is stale: its shutdown flag is set (the producer is gone)", c->name);
    return CUDALINK_ERR_STALE;
  }
  if (h->version == 0) {
    set_error(c, "segment '%s' has version 0 (producer still initialising)", c->name);
    return CUDALINK_ERR_NOT_CONNECTED;
  }
  return CUDALINK_OK;
}

/* PROTOCOL.md consumer steps 1 and 2: a parsed, validated copy of the
 * header in h, its bytes in raw; 'stable' when a second read SETTLE_GAP_US
 * later described the same ring at the same version. */
static cudalink_status
snapshot(cudalink_consumer *c, cudalink_header *h, uint8_t *raw, int *stable)
{
  uint8_t again[CUDALINK_MAX_LAYOUT_SIZE];
  int64_t n, n2;
  size_t size;
  cudalink_status st;
  char why[200];
  cudalink_layout L;

  *stable = 0;
  /* From the file, not the mapping: a truncation cannot turn this read
   * into a signal, and a segment larger than the layout (every Windows
   * mapping is page-rounded) reads like any other. */
  memset(raw, 0, CUDALINK_MAX_LAYOUT_SIZE);
  n = cudalink_shm_pread(c->seg, 0, raw, CUDALINK_MAX_LAYOUT_SIZE);
  if (n < 0) {
    set_error(c, "cannot read segment '%s': %s", c->name, cudalink_shm_last_error());
    return CUDALINK_ERR_SHM;
  }
  size = (size_t)n;
  atomic_thread_fence(memory_order_acquire);
  st = cudalink_header_parse_verbose(raw, size, h, why, sizeof why);
  st = judge_header(c, raw, size, h, st, why);
  cudalink_sleep(SETTLE_GAP_US * 1e-6);
  memset(again, 0, sizeof again);
  n2 = cudalink_shm_pread(c->seg, 0, again, sizeof again);
  L = cudalink_layout_for(h->num_slots);
  if (n2 != n)
    *stable = 0;
  else if (L.size && L.size <= size)
    *stable = cudalink_segment_same_ring(raw, again, h->num_slots) &&
              memcmp(raw + L.version, again + L.version, 8) == 0;
  else
    *stable = memcmp(raw, again, size) == 0;
  if (st == CUDALINK_OK && *stable) {
    /* what follows reads write_idx and friends through the mapping: it
     * must cover the layout (a producer may have grown the file) */
    if (cudalink_shm_refresh(c->seg) != CUDALINK_OK || cudalink_shm_size(c->seg) < L.size) {
      set_error(c, "segment '%s' could not be mapped whole: %s", c->name,
                cudalink_shm_last_error());
      *stable = 0;
      return CUDALINK_ERR_SHM;
    }
  }
  return st;
}

/* --- IPC handles ----------------------------------------------------- */

static void
map_unref(ring_map *m)
{
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
    return;
  if (m->cu->CtxPushCurrent(m->ctx) == CUDA_SUCCESS) {
    for (uint32_t s = 0; s < m->num_slots; s++)
      if (m->mem[s])
        (void)m->cu->IpcCloseMemHandle(m->mem[s]); /* nobody left to tell */
    (void)m->cu->CtxPopCurrent(NULL);
  }
  if (m->retained_primary)
    (void)m->cu->DevicePrimaryCtxRelease(m->device);
  free(m);
}

/* With import, the opened ring's memory goes into a map (see above). */
static void
map_new(cudalink_consumer *c)
{
  ring_map *m;
  if (!(c->config.flags & CUDALINK_CONSUMER_IMPORT) || !(m = calloc(1, sizeof *m)))
    return;
  atomic_init(&m->refs, 1);
  atomic_init(&m->held, 0);
  m->cu = c->cu;
  m->ctx = c->ctx.ctx;
  m->device = c->ctx.device;
  /* a hold outlives the consumer, whose retain may be the context's last */
  if (c->ctx.retained_primary) {
    CUcontext same = NULL;
    m->retained_primary = c->cu->DevicePrimaryCtxRetain(&same, c->ctx.device) == CUDA_SUCCESS;
  }
  m->num_slots = c->header.num_slots;
  memcpy(m->mem, c->mem, sizeof m->mem);
  c->map = m;
}

/* The producer's back-channel, opened again at every adoption: a producer
 * that restarted made a new one. */
static void
open_holds(cudalink_consumer *c)
{
  cudalink_status st = CUDALINK_ERR_NO_IMPORT;
  uint32_t flags = 0;

  cudalink_holds_unref(c->holds);
  c->holds = NULL;
  c->no_import_why[0] = 0;
  if (!(c->config.flags & CUDALINK_CONSUMER_IMPORT)) {
    cudalink_textf(c->no_import_why, sizeof c->no_import_why, "import was not asked for");
    return;
  }
  if (!c->ours) {
    cudalink_textf(c->no_import_why, sizeof c->no_import_why,
                   "the producer of '%s' is not a cudalink producer (its protocol has no "
                   "back-channel)",
                   c->name);
    return;
  }
  st = cudalink_holds_open(c->name, c->stats.mps == 1 ? CUDALINK_HOLDS_FLAG_MPS : 0, &c->holds,
                           c->no_import_why, sizeof c->no_import_why);
  if (st != CUDALINK_OK) {
    logf_(c, CUDALINK_LOG_INFO, "segment '%s': copying, no import: %s", c->name, c->no_import_why);
    return;
  }
  if (cudalink_holds_key(c->holds, c->header.version, 0, &flags))
    c->stats.producer_mps = (flags & CUDALINK_HOLDS_FLAG_MPS) != 0;
}

static void
close_ring(cudalink_consumer *c)
{
  if (!c->open)
    return;
  if (c->cu->CtxPushCurrent(c->ctx.ctx) == CUDA_SUCCESS) {
    if (c->stream)
      cleanup_check(c, c->cu->StreamSynchronize(c->stream), "cuStreamSynchronize");
    for (uint32_t s = 0; s < CUDALINK_MAX_SLOTS; s++) {
      if (c->event[s])
        cleanup_check(c, c->cu->EventDestroy(c->event[s]), "cuEventDestroy");
      /* with a map, the last of it and its holds closes the memory */
      if (c->mem[s] && !c->map)
        cleanup_check(c, c->cu->IpcCloseMemHandle(c->mem[s]), "cuIpcCloseMemHandle");
      c->event[s] = NULL;
      c->mem[s] = 0;
    }
    pop_ctx(c);
    map_unref(c->map);
    c->map = NULL;
  } else {
    /* nothing can be closed without the context: the handles are lost to
     * us, and the driver frees them with the process */
    logf_(c, CUDALINK_LOG_WARNING,
          "segment '%s': cannot make the CUDA context current to close the ring", c->name);
    memset(c->event, 0, sizeof c->event);
    memset(c->mem, 0, sizeof c->mem);
    map_unref(c->map);
    c->map = NULL;
  }
  c->open = 0;
  c->have_frame = 0;
  cudalink_waiter_restart(&c->waiter);
}

/* The copy never leaves a slot's allocation: a GPU read past it is a
 * sticky CUDA_ERROR_ILLEGAL_ADDRESS that poisons the context for everyone
 * who shares it. So each opened slot must hold height rows of row_size
 * bytes (tightly packed: the pitch acquire() hands out), whatever the
 * header claims. Context pushed. */
static cudalink_status
check_slot_sizes(cudalink_consumer *c, const cudalink_header *h)
{
  uint32_t row = 0;
  uint64_t need;
  cudalink_status st = cudalink_format_sizes(&h->format, NULL, &row);

  if (st != CUDALINK_OK) { /* the parser let it through: cannot happen */
    set_error(c, "segment '%s': unusable format: %s", c->name, cudalink_strerror(st));
    return st;
  }
  need = (uint64_t)row * h->format.height;
  for (uint32_t s = 0; s < h->num_slots; s++) {
    CUdeviceptr base = 0;
    size_t size = 0;
    uint64_t avail;
    CUresult res = c->cu->MemGetAddressRange(&base, &size, c->mem[s]);
    if (res != CUDA_SUCCESS) {
      char why[200];
      cudalink_cuda_check(c->cu, res, "cuMemGetAddressRange", why, sizeof why);
      set_error(c, "segment '%s': slot %u: %s", c->name, s, why);
      return CUDALINK_ERR_IPC_OPEN;
    }
    avail = c->mem[s] >= base && c->mem[s] - base <= size ? size - (c->mem[s] - base) : 0;
    if (avail < need) {
      set_error(c,
                "segment '%s': slot %u's allocation is %llu bytes, the header's %ux%u %s x%u "
                "frame needs %llu",
                c->name, s, (unsigned long long)avail, h->format.width, h->format.height,
                cudalink_dtype_name(h->format.dtype), h->format.num_comps,
                (unsigned long long)need);
      return CUDALINK_ERR_SLOT_TOO_SMALL;
    }
  }
  return CUDALINK_OK;
}

/* Opens slot s's memory and event handle; the call that failed in *call. */
static CUresult
open_slot(cudalink_consumer *c, const cudalink_header *h, uint32_t s, const char **call)
{
  CUipcMemHandle mh;
  CUipcEventHandle eh;
  CUresult res;

  memcpy(&mh, h->mem_handle[s], sizeof mh);
  memcpy(&eh, h->event_handle[s], sizeof eh);
  *call = "cuIpcOpenMemHandle";
  res = c->cu->IpcOpenMemHandle(&c->mem[s], mh, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
  if (res != CUDA_SUCCESS) {
    c->mem[s] = 0;
    return res;
  }
  *call = "cuIpcOpenEventHandle";
  res = c->cu->IpcOpenEventHandle(&c->event[s], eh);
  if (res != CUDA_SUCCESS)
    c->event[s] = NULL;
  return res;
}

/* Step 3: opens every slot's memory and event handle, and checks that each
 * slot holds a whole frame. */
static cudalink_status
open_ring(cudalink_consumer *c, const cudalink_header *h)
{
  cudalink_status st = CUDALINK_OK;
  CUresult res;
  const char *call = "";
  uint32_t s;

  if ((res = c->cu->CtxPushCurrent(c->ctx.ctx)) != CUDA_SUCCESS) {
    cudalink_cuda_check(c->cu, res, "cuCtxPushCurrent", c->last_error, sizeof c->last_error);
    return CUDALINK_ERR_CUDA;
  }
  for (s = 0; s < h->num_slots && st == CUDALINK_OK; s++) {
    char why[200];
    if (all_zero(h->mem_handle[s], CUDALINK_IPC_HANDLE_SIZE)) {
      set_error(c, "segment '%s': slot %u has no memory handle", c->name, s);
      st = CUDALINK_ERR_IPC_OPEN;
    } else if ((res = open_slot(c, h, s, &call)) != CUDA_SUCCESS) {
      cudalink_cuda_check(c->cu, res, call, why, sizeof why);
      set_error(c, "segment '%s': slot %u: %s", c->name, s, why);
      st = CUDALINK_ERR_IPC_OPEN;
    }
  }
  if (st == CUDALINK_OK)
    st = check_slot_sizes(c, h);
  pop_ctx(c);
  c->open = 1; /* so that close_ring frees what did open */
  if (st != CUDALINK_OK)
    close_ring(c);
  return st;
}

/* The driver, the context, our stream and the event release() waits on,
 * made once per connection. */
static cudalink_status
ensure_cuda(cudalink_consumer *c)
{
  cudalink_status st;
  CUresult res;
  const char *call = "cuCtxPushCurrent";

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
    c->stats.mps = cudalink_cuda_mps_enabled(c->cu, c->ctx.device);
  }
  if (c->stream)
    return CUDALINK_OK;
  res = c->cu->CtxPushCurrent(c->ctx.ctx);
  if (res == CUDA_SUCCESS) {
    call = "cuStreamCreate";
    res = c->cu->StreamCreate(&c->stream, CU_STREAM_NON_BLOCKING);
    /* SLEEP_SYNC sleeps on it in the driver; the others query it */
    if (res == CUDA_SUCCESS) {
      call = "cuEventCreate";
      res = c->cu->EventCreate(
          &c->done, (c->config.flags & CUDALINK_CONSUMER_SLEEP_SYNC ? CU_EVENT_BLOCKING_SYNC : 0) |
                        CU_EVENT_DISABLE_TIMING);
    }
    pop_ctx(c);
  }
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, call, c->last_error, sizeof c->last_error);
  return CUDALINK_OK;
}

/* The ring of h (its bytes in raw) is open and its version held still:
 * from now on it is the one we follow. */
static void
adopt(cudalink_consumer *c, const cudalink_header *h, const uint8_t *raw)
{
  c->header = *h;
  memcpy(c->header_bytes, raw, sizeof c->header_bytes);
  /* the parser let only a format through that checks */
  if (cudalink_format_sizes(&h->format, NULL, &c->row_size) != CUDALINK_OK)
    c->row_size = 0;
  c->last_idx = 0;
  c->have_frame = 0;
  c->ours = cudalink_shm_is_locked(c->seg) == 1;
  c->next_lock_check = cudalink_now() + LOCK_CHECK_S;
  c->stats.num_slots = h->num_slots;
  c->stats.version = h->version;
  c->last_error[0] = 0;
  map_new(c);
  open_holds(c);
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
    uint8_t raw[CUDALINK_MAX_LAYOUT_SIZE];
    int stable = 0;
    st = snapshot(c, &h, raw, &stable);
    if (st == CUDALINK_OK && stable) {
      if ((st = ensure_cuda(c)) != CUDALINK_OK)
        return st;
      c->layout = cudalink_layout_for(h.num_slots);
      st = open_ring(c, &h);
      if (st == CUDALINK_OK) {
        /* seqlock: the version must not have moved while we opened */
        uint64_t v = load_version(c);
        if (v == h.version && !load_shutdown(c)) {
          adopt(c, &h, raw);
          return CUDALINK_OK;
        }
        close_ring(c);
        if (v == h.version) {
          /* it shut down while we opened it: as good as found shut down */
          set_error(c, "segment '%s' is stale: its producer shut down while its ring was opened",
                    c->name);
          return CUDALINK_ERR_STALE;
        }
        set_error(c, "segment '%s' changed while its ring was opened (version %llu, now %llu)",
                  c->name, (unsigned long long)h.version, (unsigned long long)v);
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

/* Whose segment this is: anyone who can write it can feed us frames (and
 * rewrite the header under us), so the caller may want to warn. */
static void
note_owner(cudalink_consumer *c)
{
  unsigned long uid = 0;
  unsigned mode = 0;

  c->owner_alone = cudalink_shm_owner(c->seg, &uid, &mode);
  c->owner_text[0] = 0;
  if (c->owner_alone >= 0)
    cudalink_shm_owner_text(uid, mode, c->owner_text, sizeof c->owner_text);
  if (c->owner_alone == 0)
    logf_(c, CUDALINK_LOG_WARNING, "segment '%s' belongs to %s: not this user's alone", c->name,
          c->owner_text);
}

cudalink_status
cudalink_consumer_connect(cudalink_consumer *c)
{
  cudalink_status st;

  if (!c)
    return CUDALINK_ERR_INVALID_ARG;
  cudalink_consumer_disconnect(c);
  st = cudalink_shm_open_sized(c->name, CUDALINK_MAX_LAYOUT_SIZE, &c->seg);
  if (st != CUDALINK_OK) {
    if (st == CUDALINK_ERR_NOT_FOUND)
      set_error(c, "no segment named '%s' exists (no producer yet)", c->name);
    else
      set_error(c, "cannot open segment '%s': %s", c->name, cudalink_shm_last_error());
    return st;
  }
  note_owner(c);
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
        cleanup_check(c, c->cu->EventDestroy(c->done), "cuEventDestroy");
      if (c->stream)
        cleanup_check(c, c->cu->StreamDestroy(c->stream), "cuStreamDestroy");
      pop_ctx(c);
    }
    c->stream = NULL;
    c->done = NULL;
    cleanup_check(c, cudalink_cuda_context_release(c->cu, &c->ctx), "cuDevicePrimaryCtxRelease");
    cudalink_holds_unref(c->holds);
    c->holds = NULL;
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

/* "64x32 x4 uint8, 3 slots" */
static void
describe_ring(char *buf, size_t len, const cudalink_header *h)
{
  cudalink_textf(buf, len, "%ux%u x%u %s, %u slot%s", h->format.width, h->format.height,
                 h->format.num_comps, cudalink_dtype_name(h->format.dtype), h->num_slots,
                 h->num_slots == 1 ? "" : "s");
}

/* PROTOCOL.md consumer step 5: the version moved, or the header changed
 * under us without a new version (why says which). Re-opens everything
 * (slot count, format and handles may all have changed) after validating
 * the header again, as on connect. */
static cudalink_status
reopen(cudalink_consumer *c, const char *why)
{
  char was[96], now[96];
  uint64_t old_version = c->header.version;
  cudalink_status st;

  describe_ring(was, sizeof was, &c->header);
  close_ring(c);
  st = attach(c);
  if (st == CUDALINK_ERR_STALE)
    return producer_gone(c, "it shut down");
  if (st != CUDALINK_OK) {
    char gone[sizeof c->last_error + 96];
    cudalink_textf(gone, sizeof gone, "its segment %s, and the new ring could not be opened: %s",
                   why, c->last_error);
    return producer_gone(c, gone);
  }
  c->stats.reopens++;
  describe_ring(now, sizeof now, &c->header);
  /* not a failure, but what the caller will want to know */
  if (c->header.version == old_version)
    set_error(c, "segment '%s' %s (still version %llu): re-opened, %s -> %s", c->name, why,
              (unsigned long long)old_version, was, now);
  else
    set_error(c, "segment '%s' %s (version %llu -> %llu): re-opened, %s -> %s", c->name, why,
              (unsigned long long)old_version, (unsigned long long)c->header.version, was, now);
  logf_(c, c->header.version == old_version ? CUDALINK_LOG_WARNING : CUDALINK_LOG_INFO, "%s",
        c->last_error);
  return CUDALINK_ERR_FORMAT_CHANGED;
}

/* Step 4 for write_idx 0, version unchanged: a foreign producer whose
 * counter wrapped past 2^32 (from close below it: WRAP_WINDOW), whose
 * frame this is. Ours never publishes 0 after its first frame, and 0 is
 * how the peers say "no frame yet" (segment.h). */
static int
wrapped_to_zero(const cudalink_consumer *c)
{
  return c->have_frame && !c->ours && c->last_idx != 0 && 0u - c->last_idx <= WRAP_WINDOW;
}

/* Frames the producer published after write_idx from, up to to: modular,
 * and exact across our producer's wrap when we know it is ours. */
static uint32_t
frames_after(const cudalink_consumer *c, uint32_t from, uint32_t to)
{
  return cudalink_write_idx_distance(from, to, c->header.num_slots, c->ours);
}

/* Step 4: write_idx moved to idx, a new frame in slot (idx - 1) % N; spun
 * when the waiter caught it spinning. */
static void
take_frame(cudalink_consumer *c, uint32_t idx, int spun)
{
  uint32_t since = c->have_frame ? frames_after(c, c->last_idx, idx) : 0;

  if (since > 1)
    c->stats.missed += since - 1;
  c->behind = since > 1;
  c->last_idx = idx;
  c->frame.write_idx = idx;
  c->frame.slot = (idx - 1u) % c->header.num_slots; /* modulo 2^32 first, as a C producer's */
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

/* Every LOCK_CHECK_S, whoever the producer: has another process truncated
 * the segment under us? (The SIGBUS guard keeps the mapping readable, as
 * zeros; this tells the caller why frames stopped.) An fstat a look. */
static int
segment_truncated(cudalink_consumer *c, double now)
{
  if (now < c->next_truncation_check)
    return 0;
  c->next_truncation_check = now + LOCK_CHECK_S;
  return cudalink_shm_truncated(c->seg) == 1;
}

static cudalink_status
truncated_gone(cudalink_consumer *c)
{
  char why[sizeof c->last_error];

  cudalink_shm_check_truncated(c->seg);
  cudalink_textf(why, sizeof why, "%s", cudalink_shm_last_error());
  return producer_gone(c, why);
}

/* What the waiter's spin stops for besides write_idx (wait.h). */
static int
ring_changed(void *arg)
{
  const cudalink_consumer *c = arg;
  return load_version(c) != c->header.version || load_shutdown(c);
}

/* Is write_idx idx a frame we have not taken yet? */
static int
is_new_frame(const cudalink_consumer *c, uint32_t idx)
{
  if (!c->have_frame)
    return idx != 0;
  return idx != c->last_idx && (idx != 0 || wrapped_to_zero(c));
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
    /* the version first: after a re-init with another slot count the old
     * layout's shutdown_flag offset holds a handle's bytes */
    if (load_version(c) != c->header.version) {
      /* a truncated mapping reads as version 0 */
      if (cudalink_shm_truncated(c->seg) == 1)
        return truncated_gone(c);
      return reopen(c, "was re-initialised");
    }
    if (load_shutdown(c))
      return producer_gone(c, "it shut down");
    if (is_new_frame(c, idx)) {
      /* the frame is only as good as the header it was published under */
      if (!header_unchanged(c))
        return reopen(c, "changed its header without a new version");
      take_frame(c, idx, spun);
      return CUDALINK_OK;
    }

    now = cudalink_now();
    if (producer_died(c, idx, now))
      return producer_gone(c, "its process died (it no longer holds the segment)");
    if (segment_truncated(c, now))
      return truncated_gone(c);
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
  const char *call = "cuStreamWaitEvent";

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
   * have read: a completed query means the slot's frame is written, and s
   * needs no wait at all. */
  res = CUDA_ERROR_NOT_READY;
  if (!(c->config.flags & CUDALINK_CONSUMER_ALWAYS_WAIT_EVENT)) {
    call = "cuEventQuery";
    res = c->cu->EventQuery(c->event[c->frame.slot]);
  }
  if (res == CUDA_ERROR_NOT_READY) {
    call = "cuStreamWaitEvent";
    res = c->cu->StreamWaitEvent(s, c->event[c->frame.slot], 0);
  }
  pop_ctx(c);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, call, c->last_error, sizeof c->last_error);
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
 * seen-1+N on, i.e. once write_idx has reached seen-1+N, counted modulo
 * 2^32 (frames_after). With N = 1 no copy can be proven clean; we accept
 * one during which nothing new was published. A header that no longer
 * describes the ring we copied from makes the copy worthless too. */
static int
copy_torn(const cudalink_consumer *c)
{
  uint32_t n = c->header.num_slots;
  uint32_t after = frames_after(c, c->frame.write_idx, load_write_idx(c));

  return load_version(c) != c->frame.version || !header_unchanged(c) ||
         (n > 1 ? after >= n - 1 : after != 0);
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
  pop_ctx(c);
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
  pop_ctx(c);
  if (res != CUDA_SUCCESS)
    return cudalink_cuda_check(c->cu, res, "cuMemcpy2DAsync", c->last_error, sizeof c->last_error);
  return cudalink_consumer_release(c, stream);
}

/* The frame's slot, held: see cudalink.h. */
static cudalink_status
take_hold(cudalink_consumer *c, uint64_t key, cudalink_hold **out)
{
  cudalink_hold *hold = calloc(1, sizeof *hold);
  int rec;

  if (!hold)
    return CUDALINK_ERR_NO_MEMORY;
  rec = cudalink_holds_take(c->holds, key);
  if (rec == -1) {
    free(hold);
    return CUDALINK_ERR_HOLDS_FULL;
  }
  /* the producer is rewriting the slot now (-2), or rewrote it before our
   * hold was seen, or is shutting down (it frees the ring): the frame is
   * gone */
  if (rec == -2 || copy_torn(c) || load_shutdown(c)) {
    if (rec >= 0)
      cudalink_holds_drop(c->holds, rec);
    free(hold);
    c->stats.torn++;
    return CUDALINK_ERR_TORN;
  }
  hold->channel = cudalink_holds_ref(c->holds);
  hold->record = rec;
  hold->map = c->map;
  atomic_fetch_add(&c->map->refs, 1);
  atomic_fetch_add(&c->map->held, 1);
  *out = hold;
  return CUDALINK_OK;
}

cudalink_status
cudalink_consumer_hold_begin(cudalink_consumer *c, uint64_t *src, size_t *src_pitch,
                             cudalink_hold **hold)
{
  uint32_t n, limit;
  uint64_t key;
  cudalink_status st;

  if (!c || !src || !src_pitch || !hold)
    return CUDALINK_ERR_INVALID_ARG;
  *hold = NULL;
  if (!c->open)
    return CUDALINK_ERR_NOT_CONNECTED;
  if (!c->have_frame)
    return CUDALINK_ERR_NO_FRAME;
  if (!c->holds || !c->map)
    return CUDALINK_ERR_NO_IMPORT;
  n = c->header.num_slots;
  /* N - 2 held slots leave the producer two to write before it comes
   * round to the oldest hold; a sink's last-sample holds one of them */
  limit = n > 2 ? n - 2 : 0;
  /* a reader slower than the producer would hold it back: it copies */
  if (c->behind || (uint32_t)atomic_load(&c->map->held) >= limit)
    return CUDALINK_ERR_HOLDS_FULL;
  /* 0: the channel announces another ring (being re-initialised) */
  /* (the producer's flags were read at open_holds()) */
  key = cudalink_holds_key(c->holds, c->frame.version, c->frame.slot, NULL);
  if (!key)
    return CUDALINK_ERR_NO_IMPORT;
  if ((st = take_hold(c, key, hold)) != CUDALINK_OK)
    return st;
  (*hold)->ready = c->event[c->frame.slot];
  *src = c->mem[c->frame.slot];
  *src_pitch = c->row_size;
  return CUDALINK_OK;
}

/* Held: once the producer's work on the slot is done it is ours. Waited for
 * on the host, the way the consumer's flags say; not on a stream of ours: a
 * GPU-side wait queued while the producer's copy still runs has our context
 * wait on the GPU beside the producer's, and without MPS the GPU then
 * shuttles between the two contexts for every frame (an unthrottled 1080p
 * producer -> importing reader on the H200: 3501-5679 fps with the stream
 * wait, 7291-32246 with this one; docs/BENCHMARKS.md). A copy (acquire)
 * gains nothing from it: it needs our context on the GPU anyway. */
cudalink_status
cudalink_consumer_hold_wait(cudalink_consumer *c, cudalink_hold *hold)
{
  CUresult res;

  /* the event is the open ring's: not after a re-open (or a close) */
  if (!c || !hold || !c->open || hold->map != c->map)
    return CUDALINK_ERR_INVALID_ARG;
  if ((res = c->cu->CtxPushCurrent(c->ctx.ctx)) == CUDA_SUCCESS) {
    res = cudalink_waiter_sync_ipc(&c->waiter, c->cu, hold->ready);
    pop_ctx(c);
  }
  if (res != CUDA_SUCCESS) {
    cudalink_cuda_check(c->cu, res, "waiting for the producer's frame", c->last_error,
                        sizeof c->last_error);
    return CUDALINK_ERR_CUDA;
  }
  c->stats.holds++;
  return CUDALINK_OK;
}

cudalink_status
cudalink_consumer_hold(cudalink_consumer *c, void *stream, uint64_t *src, size_t *src_pitch,
                       cudalink_hold **hold)
{
  cudalink_status st;

  (void)stream; /* the wait is on the host (hold_wait()) */
  if ((st = cudalink_consumer_hold_begin(c, src, src_pitch, hold)) != CUDALINK_OK)
    return st;
  if ((st = cudalink_consumer_hold_wait(c, *hold)) != CUDALINK_OK) {
    cudalink_hold_release(*hold);
    *hold = NULL;
  }
  return st;
}

void
cudalink_hold_release(cudalink_hold *hold)
{
  if (!hold)
    return;
  /* the mapping goes (when it was the last user) before the producer may
   * free the slot */
  atomic_fetch_sub(&hold->map->held, 1);
  map_unref(hold->map);
  cudalink_holds_drop(hold->channel, hold->record);
  cudalink_holds_unref(hold->channel);
  free(hold);
}

int
cudalink_consumer_can_hold(const cudalink_consumer *c, char *why, size_t why_size)
{
  const char *text = !c          ? "no consumer"
                     : !c->open  ? "not connected"
                     : !c->holds ? c->no_import_why
                     : !c->map   ? "out of memory"
                                 : "";
  if (why && why_size)
    cudalink_textf(why, why_size, "%s", text);
  return c && c->open && c->holds && c->map;
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
    stats->held = c->map ? (uint32_t)atomic_load(&c->map->held) : 0;
    stats->sleeps = c->waiter.sleeps;
    stats->spin_us = (uint64_t)(c->waiter.spin_total_s * 1e6);
  }
}

const char *
cudalink_consumer_last_error(const cudalink_consumer *c)
{
  return c ? c->last_error : "";
}

int
cudalink_consumer_segment_owner(const cudalink_consumer *c, char *text, size_t text_size)
{
  if (!c || !c->seg)
    return CUDALINK_ERR_NOT_CONNECTED;
  if (text && text_size)
    cudalink_textf(text, text_size, "%s", c->owner_text);
  return c->owner_alone;
}
