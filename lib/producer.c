/* The producer (exporter): a ring of CUDA IPC buffers announced through a
 * named segment, in the order PROTOCOL.md gives for our producer. Its frame
 * counter wraps the way segment.h says (after the largest multiple of the
 * slot count below 2^32, to 1), so that slot (write_idx - 1) % N never
 * jumps and write_idx is never 0 again after the first frame. */
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

#define SLOT_ALIGN (2u * 1024u * 1024u) /* what the peers round each slot up to */
#define MAX_SHADOWS 2                   /* old mappings still mirrored after a re-link */
#define RELINK_CHECK_S 0.25             /* how often we look for a lost name */
#define SHUTDOWN_LINGER_MS 100          /* consumers let go of the ring meanwhile */
#define DEFAULT_NUM_SLOTS 3             /* what 0 in the config means (cudalink.h) */
#define DEFAULT_GRACE_MS 200
#define DEFAULT_STALE_MS 1000
#define FIXED_HEADER_SIZE 20 /* magic, version, num_slots, write_idx */
#define CENSUS_S 1.0         /* how often we count importing readers */
#define HOLDS_LINGER_MS 2000 /* how long a shutdown waits for held slots */
#define GROW_STEP 2          /* slots added when an importing reader holds the next */
#define GRAPHS 16            /* publish graphs kept per ring (and copies remembered) */

/* What one publish copies: a graph is made for a copy seen twice. */
typedef struct copy_key {
  CUdeviceptr src, dst;
  size_t src_pitch, dst_pitch, width, height;
} copy_key;

/* A publish as one launch: the copy into a slot, then the slot's event
 * record (two submissions otherwise; on the H200 after a 5 ms idle the
 * frame's copy was done 18 us after the submit began instead of 24). */
typedef struct publish_graph {
  copy_key key;
  CUgraphExec exec;
  uint64_t used;
} publish_graph;

typedef struct ring {
  uint32_t num_slots;
  size_t slot_bytes;
  CUdeviceptr mem[CUDALINK_MAX_SLOTS];
  CUevent event[CUDALINK_MAX_SLOTS];
  uint64_t key[CUDALINK_MAX_SLOTS]; /* names each allocation in the holds channel */
  double free_after;                /* cudalink_now() when a retired ring may be freed */
  publish_graph graph[GRAPHS];      /* the least recently used goes first */
  copy_key seen[GRAPHS];            /* copies published once, without a graph */
  uint32_t seen_next;
  uint64_t publishes;
  int no_graphs; /* making or launching one failed: this ring copies */
  struct ring *next;
} ring;

struct cudalink_producer {
  char name[CUDALINK_MAX_NAME + 1];
  cudalink_producer_config config;
  const cudalink_cuda *cu;
  cudalink_cuda_context ctx;
  CUstream stream;

  cudalink_shm *seg;                 /* the segment under our name */
  cudalink_shm *shadow[MAX_SHADOWS]; /* unlinked ones consumers may still read */
  cudalink_layout layout;
  size_t seg_bytes;       /* the segment's size: the layout of max_slots */
  cudalink_header header; /* what we last wrote, the local truth */
  cudalink_holds *holds;  /* the back-channel of importing readers (holds.h) */
  uint64_t next_key;
  double next_census;
  uint32_t dead_seen; /* dead readers' entries with holds, at the last census */

  cudalink_format format;
  uint32_t frame_size, row_size;
  ring *ring;
  ring *retired;

  int begun;
  int no_graphs; /* CUDALINK_NO_GRAPHS set (not 0): publish with a copy and a record */
  double next_relink_check;
  cudalink_producer_stats stats;
  char last_error[256];
};

/* the object's last error, and its log callback (util.c) */
#define set_error(p_, ...) cudalink_textf((p_)->last_error, sizeof((p_)->last_error), __VA_ARGS__)
#define logf_(p_, level, ...) \
  cudalink_logf((p_)->config.log, (p_)->config.log_user_data, level, __VA_ARGS__)

static cudalink_status
cuda_fail(cudalink_producer *p, CUresult res, const char *call)
{
  return cudalink_cuda_check(p->cu, res, call, p->last_error, sizeof p->last_error);
}

/* A CUDA call that fails while we let go of something: nobody to return it
 * to, so it is logged. */
static void
cleanup_check(const cudalink_producer *p, CUresult res, const char *call)
{
  char why[200];
  if (res == CUDA_SUCCESS)
    return;
  cudalink_cuda_check(p->cu, res, call, why, sizeof why);
  logf_(p, CUDALINK_LOG_WARNING, "segment '%s': %s", p->name, why);
}

cudalink_status
cudalink_check_name(const char *name)
{
  return cudalink_shm_check_name(name);
}

void
cudalink_producer_config_init(cudalink_producer_config *config)
{
  memset(config, 0, sizeof *config);
  config->name = "cudalink";
  config->num_slots = DEFAULT_NUM_SLOTS;
  config->grace_ms = DEFAULT_GRACE_MS;
  config->stale_ms = DEFAULT_STALE_MS;
}

/* --- writing the segment ------------------------------------------------ */

static uint8_t *
seg_base(cudalink_shm *shm)
{
  return (uint8_t *)cudalink_shm_data(shm);
}

static void
store_u32(uint8_t *base, size_t off, uint32_t v)
{
  /* write_idx is 4-byte aligned in every layout (offset 16) and the mapping
   * is page aligned: a real atomic store, also usable as a futex word. */
  atomic_store_explicit((_Atomic uint32_t *)(void *)(base + off), v, memory_order_release);
}

/* Every mapping we still write: the named one first, then the shadows. */
#define FOR_EACH_SEGMENT(p, var)                                                                 \
  for (int seg_i_ = 0; seg_i_ <= MAX_SHADOWS; seg_i_++)                                          \
    for (uint8_t *var =                                                                          \
             seg_i_ == 0 ? seg_base((p)->seg)                                                    \
                         : ((p)->shadow[seg_i_ - 1] ? seg_base((p)->shadow[seg_i_ - 1]) : NULL); \
         var; var = NULL)

/* Writes the whole header in our safe order: write_idx 0, then handles and
 * metadata, then the version with a release store. */
static cudalink_status
write_header_ordered(cudalink_producer *p)
{
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  cudalink_status st;
  const cudalink_layout *L = &p->layout;

  st = cudalink_header_write(&p->header, buf, sizeof buf);
  if (st != CUDALINK_OK) {
    set_error(p, "cannot encode header: %s", cudalink_strerror(st));
    return st;
  }
  /* the keys of the ring before the version that announces it */
  if (p->ring)
    cudalink_holds_publish_ring(p->holds, p->header.version, p->header.num_slots, p->ring->key);
  FOR_EACH_SEGMENT(p, base)
  {
    store_u32(base, L->write_idx, p->header.write_idx);
    atomic_thread_fence(memory_order_release);
    memcpy(base, buf, L->version);                      /* magic */
    memcpy(base + L->num_slots, buf + L->num_slots, 4); /* num_slots */
    memcpy(base + L->mem_handle0, buf + L->mem_handle0, L->size - L->mem_handle0);
    /* version is not 8-byte aligned: two 32-bit release stores (segment.h) */
    cudalink_segment_store_version(base, p->header.version);
  }
  return CUDALINK_OK;
}

/* --- the ring --------------------------------------------------------- */

/* Graphs go before the events they record (an exec still running is
 * freed by the driver once done). */
static void
ring_drop_graphs(cudalink_producer *p, ring *r)
{
  for (int i = 0; i < GRAPHS; i++)
    if (r->graph[i].exec) {
      cleanup_check(p, p->cu->GraphExecDestroy(r->graph[i].exec), "cuGraphExecDestroy");
      r->graph[i].exec = NULL;
    }
}

static void
ring_free(cudalink_producer *p, ring *r)
{
  if (!r)
    return;
  ring_drop_graphs(p, r);
  for (uint32_t s = 0; s < r->num_slots; s++) {
    if (r->event[s])
      cleanup_check(p, p->cu->EventDestroy(r->event[s]), "cuEventDestroy");
    if (r->mem[s])
      cleanup_check(p, p->cu->MemFree(r->mem[s]), "cuMemFree");
  }
  free(r);
}

static cudalink_status
ring_new(cudalink_producer *p, ring **out)
{
  ring *r = calloc(1, sizeof *r);
  CUresult res = CUDA_SUCCESS;
  const char *call = "";

  if (!r)
    return CUDALINK_ERR_NO_MEMORY;
  r->num_slots = p->header.num_slots;
  r->slot_bytes = ((size_t)p->frame_size + SLOT_ALIGN - 1) / SLOT_ALIGN * SLOT_ALIGN;
  for (uint32_t s = 0; s < r->num_slots && res == CUDA_SUCCESS; s++) {
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    if ((res = p->cu->MemAlloc(&r->mem[s], r->slot_bytes)) != CUDA_SUCCESS) {
      call = "cuMemAlloc";
    } else if ((res = p->cu->EventCreate(&r->event[s],
                                         CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING)) !=
               CUDA_SUCCESS) {
      call = "cuEventCreate";
    } else if ((res = p->cu->IpcGetMemHandle(&mh, r->mem[s])) != CUDA_SUCCESS) {
      call = "cuIpcGetMemHandle";
    } else if ((res = p->cu->IpcGetEventHandle(&eh, r->event[s])) != CUDA_SUCCESS) {
      call = "cuIpcGetEventHandle";
    } else {
      memcpy(p->header.mem_handle[s], &mh, CUDALINK_IPC_HANDLE_SIZE);
      memcpy(p->header.event_handle[s], &eh, CUDALINK_IPC_HANDLE_SIZE);
      r->key[s] = ++p->next_key;
    }
  }
  if (res != CUDA_SUCCESS) {
    cudalink_status st = cuda_fail(p, res, call);
    ring_free(p, r);
    return st;
  }
  *out = r;
  return CUDALINK_OK;
}

/* Does an importing reader still hold a slot of r? */
static int
ring_held(cudalink_producer *p, const ring *r)
{
  for (uint32_t s = 0; s < r->num_slots; s++)
    if (cudalink_holds_is_held(p->holds, r->key[s]))
      return 1;
  return 0;
}

static void
free_retired(cudalink_producer *p, int all)
{
  ring **link = &p->retired;
  double now = cudalink_now();
  while (*link) {
    ring *r = *link;
    if (all || (now >= r->free_after && !ring_held(p, r))) {
      *link = r->next;
      ring_free(p, r);
    } else {
      link = &r->next;
    }
  }
}

/* --- create ----------------------------------------------------------- */

static int
push_ctx(cudalink_producer *p)
{
  CUresult res = p->cu->CtxPushCurrent(p->ctx.ctx);
  if (res != CUDA_SUCCESS) {
    cuda_fail(p, res, "cuCtxPushCurrent");
    return 0;
  }
  return 1;
}

static void
pop_ctx(cudalink_producer *p)
{
  cleanup_check(p, p->cu->CtxPopCurrent(NULL), "cuCtxPopCurrent");
}

static cudalink_status
set_format(cudalink_producer *p, const cudalink_format *format)
{
  cudalink_status st = cudalink_format_sizes(format, &p->frame_size, &p->row_size);
  if (st != CUDALINK_OK) {
    set_error(p, "unusable frame format %ux%u x%u %s: %s", format->width, format->height,
              format->num_comps, cudalink_dtype_name(format->dtype), cudalink_strerror(st));
    return st;
  }
  p->format = *format;
  p->format.flags &= (uint16_t)(CUDALINK_FLAG_MONO_ALPHA | CUDALINK_FLAG_BGRA);
  p->header.format = p->format;
  return CUDALINK_OK;
}

/* An existing segment under our name that nobody of ours holds: is somebody
 * else still publishing into it? Looks for stale_ms. */
static cudalink_status
check_takeover(cudalink_producer *p)
{
  const uint8_t *base = seg_base(p->seg);
  size_t size = cudalink_shm_size(p->seg);
  cudalink_header h;
  cudalink_status st = cudalink_header_parse(base, size, &h);
  uint32_t idx0;
  uint64_t ver0;
  unsigned waited = 0;

  if (h.magic != CUDALINK_MAGIC) {
    if (size && base[0])
      logf_(p, CUDALINK_LOG_WARNING, "segment '%s' held no cuda-link header: overwriting it",
            p->name);
    return CUDALINK_OK;
  }
  /* the version counter continues, read whole (segment.h) */
  if (size >= FIXED_HEADER_SIZE)
    h.version = cudalink_segment_load_version(base);
  if (h.version != 0 && h.version != UINT64_MAX)
    p->header.version = h.version;
  if (h.shutdown_flag) {
    logf_(p, CUDALINK_LOG_INFO, "re-using segment '%s' left by a producer that shut down", p->name);
    return CUDALINK_OK;
  }
  /* a half-valid header (st not OK) still tells us whether it moves */
  (void)st;
  idx0 = h.write_idx;
  ver0 = h.version;
  while (waited < p->config.stale_ms) {
    cudalink_sleep(0.01);
    waited += 10;
    (void)cudalink_header_parse(base, size, &h); /* as above */
    if (size >= FIXED_HEADER_SIZE)
      h.version = cudalink_segment_load_version(base);
    if (h.write_idx != idx0 || h.version != ver0 || h.shutdown_flag) {
      if (h.shutdown_flag)
        return CUDALINK_OK;
      set_error(p,
                "segment '%s' is being published to by another producer (write_idx %u -> %u "
                "within %u ms); stop it or choose another name",
                p->name, idx0, h.write_idx, waited);
      return CUDALINK_ERR_FOREIGN_PRODUCER;
    }
  }
  logf_(p, CUDALINK_LOG_WARNING,
        "taking over stale segment '%s': its producer published nothing for %u ms", p->name,
        waited);
  p->stats.took_over_stale = 1;
  return CUDALINK_OK;
}

static uint64_t
next_version(uint64_t v)
{
  return v + 1 == 0 ? 1 : v + 1;
}

/* A producer for config, nothing opened yet: the config's defaults
 * applied and the format checked (p->last_error says why not). */
static cudalink_status
producer_new(const cudalink_producer_config *config, const cudalink_format *format,
             cudalink_producer **out)
{
  cudalink_producer *p;
  cudalink_status st;

  *out = NULL;
  if ((st = cudalink_shm_check_name(config->name)) != CUDALINK_OK)
    return st;
  if (config->num_slots > CUDALINK_MAX_SLOTS)
    return CUDALINK_ERR_BAD_NUM_SLOTS;
  p = calloc(1, sizeof *p);
  if (!p)
    return CUDALINK_ERR_NO_MEMORY;
  p->config = *config;
  /* a cut name would be another segment's */
  if ((size_t)snprintf(p->name, sizeof p->name, "%s", config->name) >= sizeof p->name) {
    free(p);
    return CUDALINK_ERR_BAD_NAME;
  }
  p->config.name = p->name;
  if (!p->config.num_slots)
    p->config.num_slots = DEFAULT_NUM_SLOTS;
  if (!p->config.grace_ms)
    p->config.grace_ms = DEFAULT_GRACE_MS;
  if (!p->config.stale_ms)
    p->config.stale_ms = DEFAULT_STALE_MS;
  if (p->config.max_slots < p->config.num_slots)
    p->config.max_slots = p->config.num_slots;
  if (p->config.max_slots > CUDALINK_MAX_SLOTS)
    p->config.max_slots = CUDALINK_MAX_SLOTS;
  p->header.num_slots = p->config.num_slots;
  p->layout = cudalink_layout_for(p->config.num_slots);
  /* room for the largest ring from the start: growing never remaps */
  p->seg_bytes = cudalink_layout_for(p->config.max_slots).size;
  /* keys unique across restarts of a producer under this name */
  p->next_key = (uint64_t)(cudalink_now() * 1e6) << 8;
  *out = p;
  return set_format(p, format);
}

/* The driver, the context, our stream and the first ring. */
static cudalink_status
producer_cuda_up(cudalink_producer *p)
{
  cudalink_status st;
  CUresult res;

  p->cu = cudalink_cuda_get(&st, p->last_error, sizeof p->last_error);
  if (!p->cu)
    return st;
  st = cudalink_cuda_context_acquire(p->cu, p->config.cuda_context, p->config.device, &p->ctx,
                                     p->last_error, sizeof p->last_error);
  if (st != CUDALINK_OK)
    return st;
  if (!push_ctx(p))
    return CUDALINK_ERR_CUDA;
  res = p->cu->StreamCreate(&p->stream, CU_STREAM_NON_BLOCKING);
  if (res != CUDA_SUCCESS)
    st = cuda_fail(p, res, "cuStreamCreate");
  else
    st = ring_new(p, &p->ring);
  pop_ctx(p);
  return st;
}

/* The back-channel for importing readers, unless the config says no; a
 * failure only costs them the import (they copy). */
static void
open_holds(cudalink_producer *p)
{
  char why[200] = "";
  cudalink_status st;

  p->stats.mps = cudalink_cuda_mps_enabled(p->cu, p->ctx.device);
  if (!(p->config.flags & CUDALINK_PRODUCER_IMPORT)) {
    /* a table a dead producer of this name left would mislead readers */
    cudalink_holds_remove(p->name);
    return;
  }
  st = cudalink_holds_create(p->name, p->stats.mps == 1 ? CUDALINK_HOLDS_FLAG_MPS : 0, &p->holds,
                             why, sizeof why);
  if (st != CUDALINK_OK)
    logf_(p, st == CUDALINK_ERR_UNSUPPORTED ? CUDALINK_LOG_DEBUG : CUDALINK_LOG_WARNING,
          "segment '%s': readers cannot import, they copy: %s", p->name, why);
  p->stats.import = p->holds != NULL;
}

cudalink_status
cudalink_producer_create(const cudalink_producer_config *config, const cudalink_format *format,
                         cudalink_producer **out)
{
  cudalink_producer *p = NULL;
  cudalink_status st;
  int created = 0;

  if (!config || !format || !out)
    return CUDALINK_ERR_INVALID_ARG;
  *out = NULL;
  if ((st = producer_new(config, format, &p)) != CUDALINK_OK)
    goto fail;

  /* the segment first: who holds it is decided without CUDA */
  /* maps (and, after a consumer unlinks it, copies) only the layout, also
   * of a much larger file left under the name */
  st = cudalink_shm_create_sized(p->name, p->seg_bytes, p->seg_bytes, &p->seg, &created);
  if (st != CUDALINK_OK) {
    set_error(p, "cannot create segment '%s': %s", p->name, cudalink_shm_last_error());
    goto fail;
  }
  st = cudalink_shm_lock(p->seg);
  if (st != CUDALINK_OK) {
    set_error(p, "segment '%s' is held by another live cudalink producer", p->name);
    goto fail;
  }
  if (!created && (st = check_takeover(p)) != CUDALINK_OK)
    goto fail;
  if ((st = producer_cuda_up(p)) != CUDALINK_OK)
    goto fail;
  open_holds(p);
  p->no_graphs = getenv("CUDALINK_NO_GRAPHS") && *getenv("CUDALINK_NO_GRAPHS") &&
                 strcmp(getenv("CUDALINK_NO_GRAPHS"), "0") != 0;

  p->header.magic = CUDALINK_MAGIC;
  p->header.version = next_version(p->header.version);
  p->header.write_idx = 0;
  p->header.shutdown_flag = 0;
  p->header.timestamp = cudalink_now();
  if ((st = write_header_ordered(p)) != CUDALINK_OK)
    goto fail;
  p->next_relink_check = cudalink_now() + RELINK_CHECK_S;
  *out = p;
  return CUDALINK_OK;

fail:
  if (config->log && p && p->last_error[0])
    config->log(config->log_user_data, CUDALINK_LOG_ERROR, p->last_error);
  /* a segment we created goes again; one we re-used is left as it was */
  if (p && p->seg && created && !p->ring && cudalink_shm_unlink(p->name) != CUDALINK_OK)
    logf_(p, CUDALINK_LOG_WARNING, "segment '%s' could not be removed again: %s", p->name,
          cudalink_shm_last_error());
  cudalink_producer_destroy(p);
  return st;
}

/* --- shutdown --------------------------------------------------------- */

/* Importing readers may still hold slots (their buffers downstream): give
 * them a bounded while to let go before the memory is freed under them. */
static void
wait_for_holds(cudalink_producer *p)
{
  int held = 1;
  for (unsigned waited = 0; waited < HOLDS_LINGER_MS && held; waited += 10) {
    held = p->ring && ring_held(p, p->ring);
    for (ring *r = p->retired; r && !held; r = r->next)
      held = ring_held(p, r);
    if (held)
      cudalink_sleep(0.01);
  }
  if (held)
    logf_(p, CUDALINK_LOG_WARNING,
          "segment '%s': importing readers still hold slots after %u ms: freeing them", p->name,
          HOLDS_LINGER_MS);
}

void
cudalink_producer_destroy(cudalink_producer *p)
{
  if (!p)
    return;
  if (p->seg && p->ring) {
    const cudalink_layout *L = &p->layout;
    /* shutdown flag, handles zeroed; version, metadata, write_idx stay */
    FOR_EACH_SEGMENT(p, base)
    {
      base[L->shutdown_flag] = 1;
      atomic_thread_fence(memory_order_release);
      for (uint32_t s = 0; s < p->header.num_slots; s++)
        memset(base + L->mem_handle0 + s * L->slot_stride, 0, 2 * CUDALINK_IPC_HANDLE_SIZE);
      cudalink_futex_wake((volatile uint32_t *)(void *)(base + L->write_idx));
    }
  }
  if (p->cu && p->ctx.ctx && push_ctx(p)) {
    if (p->stream) {
      cleanup_check(p, p->cu->StreamSynchronize(p->stream), "cuStreamSynchronize");
      cleanup_check(p, p->cu->StreamDestroy(p->stream), "cuStreamDestroy");
    }
    if (p->ring || p->retired) {
      /* events first, as the peers do; buffers after consumers let go */
      for (ring *r = p->ring; r; r = NULL) {
        ring_drop_graphs(p, r);
        for (uint32_t s = 0; s < r->num_slots; s++)
          if (r->event[s]) {
            cleanup_check(p, p->cu->EventDestroy(r->event[s]), "cuEventDestroy");
            r->event[s] = NULL;
          }
      }
      cudalink_sleep(SHUTDOWN_LINGER_MS * 1e-3);
      wait_for_holds(p);
      ring_free(p, p->ring);
      free_retired(p, 1);
    }
    pop_ctx(p);
  }
  cudalink_holds_destroy(p->holds, 1);
  if (p->seg) {
    /* only our own name: a consumer may have unlinked it since */
    if (p->ring && !cudalink_shm_lost_name(p->seg) && cudalink_shm_unlink(p->name) != CUDALINK_OK)
      logf_(p, CUDALINK_LOG_WARNING, "segment '%s' could not be removed: %s", p->name,
            cudalink_shm_last_error());
    cudalink_shm_close(p->seg);
  }
  for (int i = 0; i < MAX_SHADOWS; i++)
    cudalink_shm_close(p->shadow[i]);
  if (p->cu && p->ctx.ctx)
    cleanup_check(p, cudalink_cuda_context_release(p->cu, &p->ctx), "cuDevicePrimaryCtxRelease");
  free(p);
}

/* --- per frame ------------------------------------------------------------ */

/* A consumer (Python's resource_tracker) may unlink our segment: put a copy
 * back under the name for late joiners and keep the old mapping updated for
 * those who have it open. */
/* Another process truncated our segment: our mapping now reads zeros and
 * absorbs writes (the SIGBUS guard), so consumers see nothing. Grow the
 * file back and publish the ring again under a new version; consumers
 * re-open it as after any re-initialisation. */
static void
restore_truncated(cudalink_producer *p)
{
  cudalink_shm *fresh = NULL;
  int created = 0;
  cudalink_status st;

  cudalink_shm_check_truncated(p->seg);
  logf_(p, CUDALINK_LOG_WARNING, "%s: restoring it", cudalink_shm_last_error());
  st = cudalink_shm_create_sized(p->name, p->seg_bytes, p->seg_bytes, &fresh, &created);
  if (st != CUDALINK_OK) {
    logf_(p, CUDALINK_LOG_ERROR, "segment '%s' was truncated and could not be restored: %s",
          p->name, cudalink_shm_last_error());
    return;
  }
  /* our lock is on the old descriptor: drop it before taking it again */
  cudalink_shm_close(p->seg);
  p->seg = fresh;
  if (cudalink_shm_lock(fresh) != CUDALINK_OK)
    logf_(p, CUDALINK_LOG_WARNING, "restored segment '%s' could not be locked", p->name);
  p->header.version = next_version(p->header.version);
  p->header.write_idx = 0;
  if (write_header_ordered(p) != CUDALINK_OK)
    logf_(p, CUDALINK_LOG_ERROR, "restored segment '%s': %s", p->name, p->last_error);
  p->stats.reinits++;
}

static void
relink_if_lost(cudalink_producer *p)
{
  cudalink_shm *fresh = NULL;
  double now = cudalink_now();

  if (now < p->next_relink_check)
    return;
  p->next_relink_check = now + RELINK_CHECK_S;
  if (cudalink_shm_truncated(p->seg) == 1) {
    restore_truncated(p);
    return;
  }
  if (!cudalink_shm_lost_name(p->seg))
    return;
  if (cudalink_shm_relink(p->seg, &fresh) != CUDALINK_OK) {
    logf_(p, CUDALINK_LOG_WARNING, "segment '%s' lost its name and could not be re-linked: %s",
          p->name, cudalink_shm_last_error());
    return;
  }
  if (cudalink_shm_lock(fresh) != CUDALINK_OK)
    logf_(p, CUDALINK_LOG_WARNING, "re-linked segment '%s' could not be locked", p->name);
  cudalink_shm_close(p->shadow[MAX_SHADOWS - 1]);
  memmove(&p->shadow[1], &p->shadow[0], (MAX_SHADOWS - 1) * sizeof p->shadow[0]);
  p->shadow[0] = p->seg;
  p->seg = fresh;
  p->stats.relinks++;
  logf_(p, CUDALINK_LOG_INFO, "segment '%s' was unlinked by a consumer: re-linked", p->name);
}

/* The slot the next frame goes to: the one consumers will compute from the
 * write_idx it is published as, (write_idx - 1) % N. */
static uint32_t
next_slot(const cudalink_producer *p)
{
  return (cudalink_write_idx_next(p->header.write_idx, p->header.num_slots) - 1u) %
         p->header.num_slots;
}

cudalink_status
cudalink_producer_set_write_idx(cudalink_producer *p, uint32_t write_idx)
{
  if (!p)
    return CUDALINK_ERR_INVALID_ARG;
  if (p->begun) {
    set_error(p,
              "cudalink_producer_set_write_idx(%lu) between _begin() and _commit(): the "
              "frame begun goes to the slot of write_idx %lu",
              (unsigned long)write_idx,
              (unsigned long)cudalink_write_idx_next(p->header.write_idx, p->header.num_slots));
    return CUDALINK_ERR_INVALID_ARG;
  }
  p->header.write_idx = write_idx;
  return CUDALINK_OK;
}

static cudalink_status reinit_ring(cudalink_producer *p, const cudalink_format *format,
                                   uint32_t num_slots);

/* Importing readers may hold the next slot: announce that we write it and
 * look for holds (holds.h); a held one makes the ring grow, up to
 * max_slots, and past that costs the frame. */
static cudalink_status
claim_next_slot(cudalink_producer *p)
{
  uint64_t key;
  cudalink_status st;

  if (!p->holds)
    return CUDALINK_OK;
  key = p->ring->key[next_slot(p)];
  cudalink_holds_set_writing(p->holds, key);
  if (!cudalink_holds_is_held(p->holds, key))
    return CUDALINK_OK;
  cudalink_holds_set_writing(p->holds, 0);
  if (p->header.num_slots < p->config.max_slots) {
    uint32_t n = p->header.num_slots + GROW_STEP;
    st = reinit_ring(p, &p->format, n < p->config.max_slots ? n : p->config.max_slots);
    if (st == CUDALINK_OK) {
      p->stats.grows++;
      logf_(p, CUDALINK_LOG_INFO,
            "segment '%s': importing readers hold the next slot: %u slots now", p->name,
            p->header.num_slots);
      /* a fresh ring: nobody holds its slots */
      cudalink_holds_set_writing(p->holds, p->ring->key[next_slot(p)]);
      return CUDALINK_OK;
    }
    /* no memory for more slots: drop frames instead, from now on */
    logf_(p, CUDALINK_LOG_WARNING,
          "segment '%s': the ring cannot grow (%s): frames an importing "
          "reader holds the slot of are dropped",
          p->name, p->last_error);
    p->config.max_slots = p->header.num_slots;
  }
  p->stats.held_drops++;
  set_error(p,
            "segment '%s': importing readers hold slot %u, the next to write, and the ring has "
            "max_slots (%u) already: frame not published",
            p->name, next_slot(p), p->config.max_slots);
  return CUDALINK_ERR_SLOTS_HELD;
}

/* Once a second: how many importing readers live, and whether one died
 * holding slots (which are free again: holds.h). */
static void
take_census(cudalink_producer *p, double now)
{
  cudalink_holds_census c;

  if (!p->holds || now < p->next_census)
    return;
  p->next_census = now + CENSUS_S;
  cudalink_holds_census_take(p->holds, &c);
  p->stats.import_readers = c.readers;
  p->stats.import_readers_mps = c.readers_mps;
  p->stats.holds = c.holds;
  if (c.dead_holding > p->dead_seen) {
    p->stats.dead_readers += c.dead_holding - p->dead_seen;
    logf_(p, CUDALINK_LOG_WARNING,
          "segment '%s': an importing reader (pid %u) died holding slots: they are free again",
          p->name, c.dead_pid);
  }
  p->dead_seen = c.dead_holding;
}

cudalink_status
cudalink_producer_begin(cudalink_producer *p, uint64_t *dst, size_t *dst_pitch)
{
  cudalink_status st;

  if (!p || !dst || !dst_pitch)
    return CUDALINK_ERR_INVALID_ARG;
  if ((st = claim_next_slot(p)) != CUDALINK_OK)
    return st;
  *dst = p->ring->mem[next_slot(p)];
  *dst_pitch = p->row_size;
  p->begun = 1;
  return CUDALINK_OK;
}

/* commit() with our context pushed (popped here): publish() queues its
 * copy and the slot's event under one push; recorded: a graph did both. */
static cudalink_status
commit_pushed(cudalink_producer *p, CUstream s, int wait, int recorded)
{
  const cudalink_layout *L = &p->layout;
  CUresult res;
  uint32_t slot = next_slot(p), next;
  double ts;

  p->begun = 0;
  /* (every failure below leaves `writing` set: readers skip that slot
   * until the next frame is published) */
  res = recorded ? CUDA_SUCCESS : p->cu->EventRecord(p->ring->event[slot], s);
  if (res == CUDA_SUCCESS && wait)
    res = p->cu->StreamSynchronize(s);
  if (p->retired)
    free_retired(p, 0);
  pop_ctx(p);
  if (res != CUDA_SUCCESS)
    return cuda_fail(p, res, wait ? "cuStreamSynchronize" : "cuEventRecord");

  relink_if_lost(p);

  /* The slot is written (its event recorded): readers may hold it from
   * now on. Cleared before the publish, not after: a reader woken by it
   * would otherwise find `writing` still naming this slot and skip the
   * frame (seen as missed frames on the H200). Safe (holds.h): a reader
   * that holds an older frame of this slot sees write_idx past it. */
  cudalink_holds_set_writing(p->holds, 0);
  ts = cudalink_now();
  next = cudalink_write_idx_next(p->header.write_idx, p->header.num_slots);
  p->header.write_idx = next;
  p->header.timestamp = ts;
  FOR_EACH_SEGMENT(p, base)
  {
    memcpy(base + L->timestamp, &ts, sizeof ts);
    base[L->shutdown_flag] = 0;
    store_u32(base, L->write_idx, next); /* publish LAST */
    cudalink_futex_wake((volatile uint32_t *)(void *)(base + L->write_idx));
  }
  take_census(p, ts);
  p->stats.frames++;
  return CUDALINK_OK;
}

cudalink_status
cudalink_producer_commit(cudalink_producer *p, void *stream, int wait)
{
  if (!p || !p->begun)
    return CUDALINK_ERR_INVALID_ARG;
  if (!push_ctx(p)) {
    p->begun = 0;
    return CUDALINK_ERR_CUDA;
  }
  return commit_pushed(p, stream ? (CUstream)stream : p->stream, wait, 0);
}

/* A graph of cp into slot, then the slot's event record; NULL (and the ring
 * makes no more) when the driver says no. Context pushed. */
static CUgraphExec
graph_make(cudalink_producer *p, const CUDA_MEMCPY2D *cp, uint32_t slot)
{
  const cudalink_cuda *cu = p->cu;
  CUDA_MEMCPY3D c3;
  CUgraph g = NULL;
  CUgraphNode copy, record;
  CUgraphExec exec = NULL;
  CUresult res;

  memset(&c3, 0, sizeof c3);
  c3.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  c3.srcDevice = cp->srcDevice;
  c3.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c3.dstDevice = cp->dstDevice;
  c3.Depth = 1;
  if (cp->srcPitch == cp->WidthInBytes && cp->dstPitch == cp->WidthInBytes) {
    c3.WidthInBytes = cp->WidthInBytes * cp->Height; /* one linear copy */
    c3.Height = 1;
  } else {
    c3.srcPitch = cp->srcPitch;
    c3.dstPitch = cp->dstPitch;
    c3.WidthInBytes = cp->WidthInBytes;
    c3.Height = cp->Height;
  }
  res = cu->GraphCreate(&g, 0);
  if (res == CUDA_SUCCESS)
    res = cu->GraphAddMemcpyNode(&copy, g, NULL, 0, &c3, p->ctx.ctx);
  if (res == CUDA_SUCCESS)
    res = cu->GraphAddEventRecordNode(&record, g, &copy, 1, p->ring->event[slot]);
  if (res == CUDA_SUCCESS)
    res = cu->GraphInstantiate(&exec, g, 0);
  if (g)
    cleanup_check(p, cu->GraphDestroy(g), "cuGraphDestroy");
  if (res != CUDA_SUCCESS) {
    char why[200];
    cudalink_cuda_check(cu, res, "making a publish graph", why, sizeof why);
    logf_(p, CUDALINK_LOG_INFO, "segment '%s': %s; publishing with copies", p->name, why);
    p->ring->no_graphs = 1;
    return NULL;
  }
  return exec;
}

/* A launch the driver refused: the ring's graphs go and it copies from now
 * on (a context that is gone fails the copy too: the publish's error). */
static void
graph_launch_failed(cudalink_producer *p, CUresult res)
{
  char why[200];
  ring_drop_graphs(p, p->ring);
  p->ring->no_graphs = 1;
  cudalink_cuda_check(p->cu, res, "cuGraphLaunch", why, sizeof why);
  logf_(p, CUDALINK_LOG_WARNING, "segment '%s': %s; publishing with copies", p->name, why);
}

/* The graph for a copy published before into the same slot; one is made
 * the second time a copy is seen (a pool's buffers come round again; fresh
 * memory every frame never makes one). NULL: copy and record. */
static CUgraphExec
graph_for(cudalink_producer *p, const CUDA_MEMCPY2D *cp, uint32_t slot)
{
  ring *r = p->ring;
  copy_key k;
  publish_graph *lru;
  int seen = 0;

  if (!p->cu->GraphLaunch || r->no_graphs || p->no_graphs)
    return NULL;
  memset(&k, 0, sizeof k);
  k.src = cp->srcDevice;
  k.dst = cp->dstDevice;
  k.src_pitch = cp->srcPitch;
  k.dst_pitch = cp->dstPitch;
  k.width = cp->WidthInBytes;
  k.height = cp->Height;
  r->publishes++;
  lru = &r->graph[0];
  for (int i = 0; i < GRAPHS; i++) {
    publish_graph *g = &r->graph[i];
    if (g->exec && memcmp(&g->key, &k, sizeof k) == 0) {
      g->used = r->publishes;
      return g->exec;
    }
    if (!g->exec || (lru->exec && g->used < lru->used))
      lru = g;
  }
  for (int i = 0; i < GRAPHS && !seen; i++)
    seen = memcmp(&r->seen[i], &k, sizeof k) == 0;
  if (!seen) {
    r->seen[r->seen_next] = k;
    r->seen_next = (r->seen_next + 1) % GRAPHS;
    return NULL;
  }
  if (lru->exec)
    cleanup_check(p, p->cu->GraphExecDestroy(lru->exec), "cuGraphExecDestroy");
  lru->exec = graph_make(p, cp, slot);
  lru->key = k;
  lru->used = r->publishes;
  return lru->exec;
}

cudalink_status
cudalink_producer_publish(cudalink_producer *p, uint64_t src, size_t src_pitch, void *stream,
                          int wait)
{
  CUDA_MEMCPY2D cp;
  uint64_t dst;
  size_t dst_pitch;
  CUstream s;
  CUgraphExec exec;
  CUresult res;
  cudalink_status st;

  if (!p || !src || src_pitch < p->row_size)
    return CUDALINK_ERR_INVALID_ARG;
  if ((st = cudalink_producer_begin(p, &dst, &dst_pitch)) != CUDALINK_OK)
    return st;
  memset(&cp, 0, sizeof cp);
  cp.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.srcDevice = (CUdeviceptr)src;
  cp.srcPitch = src_pitch;
  cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.dstDevice = (CUdeviceptr)dst;
  cp.dstPitch = dst_pitch;
  cp.WidthInBytes = p->row_size;
  cp.Height = p->format.height;
  if (!push_ctx(p)) {
    p->begun = 0;
    return CUDALINK_ERR_CUDA;
  }
  s = stream ? (CUstream)stream : p->stream;
  exec = graph_for(p, &cp, next_slot(p));
  if (exec && (res = p->cu->GraphLaunch(exec, s)) != CUDA_SUCCESS) {
    graph_launch_failed(p, res);
    exec = NULL;
  }
  if (!exec && (res = cudalink_cuda_copy_2d(p->cu, &cp, s)) != CUDA_SUCCESS) {
    pop_ctx(p);
    p->begun = 0;
    return cuda_fail(p, res, "cuMemcpy2DAsync");
  }
  return commit_pushed(p, s, wait, exec != NULL);
}

/* A ring for the new format once the old one's work is done (context
 * pushed; popped here). The old ring may still be written by work queued
 * on our stream: if that cannot be waited for, it stays as it is. */
static cudalink_status
ring_new_synced(cudalink_producer *p, ring **out)
{
  CUresult res = p->cu->StreamSynchronize(p->stream);
  cudalink_status st =
      res == CUDA_SUCCESS ? ring_new(p, out) : cuda_fail(p, res, "cuStreamSynchronize");
  pop_ctx(p);
  return st;
}

/* A new ring of num_slots for format once the old one's work is done,
 * published under a new version; the old ring is freed after the grace
 * period, once no importing reader holds a slot of it. Every failure
 * restores what was. */
static cudalink_status
reinit_ring(cudalink_producer *p, const cudalink_format *format, uint32_t num_slots)
{
  cudalink_format old_format = p->format;
  uint32_t old_frame = p->frame_size, old_row = p->row_size;
  cudalink_header old_header = p->header;
  ring *fresh = NULL;
  cudalink_status st;

  /* a format that does not check has zeroed frame_size and row_size, a new
   * ring the handles */
  st = set_format(p, format);
  p->header.num_slots = num_slots;
  if (st == CUDALINK_OK)
    st = push_ctx(p) ? ring_new_synced(p, &fresh) : CUDALINK_ERR_CUDA;
  if (st != CUDALINK_OK) {
    p->format = old_format;
    p->frame_size = old_frame;
    p->row_size = old_row;
    p->header = old_header;
    return st;
  }
  p->ring->free_after = cudalink_now() + p->config.grace_ms / 1000.0;
  p->ring->next = p->retired;
  p->retired = p->ring;
  p->ring = fresh;
  p->layout = cudalink_layout_for(num_slots);

  p->header.version = next_version(p->header.version);
  p->header.write_idx = 0;
  p->header.shutdown_flag = 0;
  p->begun = 0;
  if ((st = write_header_ordered(p)) != CUDALINK_OK)
    return st;
  p->stats.reinits++;
  return CUDALINK_OK;
}

cudalink_status
cudalink_producer_reformat(cudalink_producer *p, const cudalink_format *format)
{
  if (!p || !format)
    return CUDALINK_ERR_INVALID_ARG;
  return reinit_ring(p, format, p->header.num_slots);
}

/* --- accessors ------------------------------------------------------- */

const cudalink_format *
cudalink_producer_format(const cudalink_producer *p)
{
  return p ? &p->format : NULL;
}

void *
cudalink_producer_stream(const cudalink_producer *p)
{
  return p ? (void *)p->stream : NULL;
}

uint32_t
cudalink_producer_num_slots(const cudalink_producer *p)
{
  return p ? p->header.num_slots : 0;
}

void
cudalink_producer_get_stats(const cudalink_producer *p, cudalink_producer_stats *stats)
{
  if (!stats)
    return;
  memset(stats, 0, sizeof *stats);
  if (!p)
    return;
  *stats = p->stats;
  stats->version = p->header.version;
  stats->write_idx = p->header.write_idx;
}

const char *
cudalink_producer_last_error(const cudalink_producer *p)
{
  return p ? p->last_error : "";
}
