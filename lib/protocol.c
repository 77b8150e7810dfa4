/* The cuda-link protocol codec: status strings, dtypes, the segment layout
 * (offsets, magic, slot count) and the header encoder/decoder.
 *
 * This is the only file that knows where the fields of a segment live
 * (docs/PROTOCOL.md, "Layout"). Everything else asks cudalink_layout_for().
 *
 * All functions are pure and reentrant: no allocation, no global state, no
 * I/O (cudalink_now() reads a clock). Multi-byte fields are stored and
 * loaded byte by byte in little-endian order, never by copying a struct, so
 * the encoding is the same on every host and independent of padding.
 *
 * The header that cudalink_header_parse() reads usually lives in shared
 * memory that another process writes at the same time. Plain byte loads
 * are fine here: the result may be a mix of two states, and it is the
 * consumer's job to detect that (it reads version before and after, seqlock
 * style). The parser only has to never read outside [buf, buf + len).
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* clock_gettime under plain -std=c11 */
#endif

#include "cudalink.h"
#include "segment.h"

#include <cuda.h>
#include <float.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#else
#  include <time.h>
#endif

/* ------------------------------------------------------------------------ */
/* Layout constants (docs/PROTOCOL.md)                                       */
/* ------------------------------------------------------------------------ */

/* magic, version, num_slots, write_idx: the part whose place does not
 * depend on num_slots. */
#define FIXED_PREFIX_SIZE 20u
#define SLOT_STRIDE (2u * CUDALINK_IPC_HANDLE_SIZE) /* mem handle + event handle */
/* shutdown_flag (1), width, height, num_comps (4 each), format_kind (1),
 * bits_per_comp (1), flags (2), data_size (4): 21 bytes, then the timestamp. */
#define METADATA_SIZE 21u
#define TIMESTAMP_SIZE 8u
#define LAYOUT_SIZE(n) (FIXED_PREFIX_SIZE + SLOT_STRIDE * (n) + METADATA_SIZE + TIMESTAMP_SIZE)

_Static_assert(LAYOUT_SIZE(3u) == 433u, "the v0.5 layout is 433 bytes for 3 slots");
_Static_assert(LAYOUT_SIZE(1u) == 177u, "the v0.5 layout is 177 bytes for 1 slot");
_Static_assert(LAYOUT_SIZE(CUDALINK_MAX_SLOTS) == 1329u,
               "the v0.5 layout is 1329 bytes for 10 slots");
_Static_assert(SLOT_STRIDE == 128u, "a slot is a 64-byte mem handle and a 64-byte event handle");
_Static_assert(sizeof(CUipcMemHandle) == CUDALINK_IPC_HANDLE_SIZE,
               "CUipcMemHandle is 64 bytes on the wire");
_Static_assert(sizeof(CUipcEventHandle) == CUDALINK_IPC_HANDLE_SIZE,
               "CUipcEventHandle is 64 bytes on the wire");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53,
               "the timestamp is an IEEE-754 binary64 and so must double be");
_Static_assert(CUDALINK_MAGIC == 0x43495044u, "magic is \"CIPD\" read as a little-endian u32");
/* the version's two halves are 4-byte aligned in a (page aligned) mapping:
 * each is one 32-bit atomic (segment.h) */
#define VERSION_OFFSET 4u
_Static_assert(VERSION_OFFSET % 4u == 0 && (VERSION_OFFSET + 4u) % 4u == 0,
               "each half of the version is a 4-byte aligned u32");
_Static_assert(sizeof(_Atomic uint32_t) == 4, "a 32-bit atomic is 4 bytes");
_Static_assert(UINT64_MAX / 2u >=
                   (uint64_t)CUDALINK_MAX_DIMENSION * CUDALINK_MAX_DIMENSION * 4u * 4u,
               "frame sizes are computed in 64 bits without overflow");

/* ------------------------------------------------------------------------ */
/* Version and status strings                                               */
/* ------------------------------------------------------------------------ */

unsigned
cudalink_version_number(void)
{
  return CUDALINK_VERSION_NUMBER;
}

const char *
cudalink_strerror(int status)
{
  switch (status) {
#define CUDALINK_STRERROR_CASE_(name, value, text) \
  case value:                                      \
    return text;
    CUDALINK_STATUS_MAP(CUDALINK_STRERROR_CASE_)
#undef CUDALINK_STRERROR_CASE_
  default:
    return "unknown cudalink status";
  }
}

const char *
cudalink_status_name(int status)
{
  switch (status) {
#define CUDALINK_STATUS_NAME_CASE_(name, value, text) \
  case value:                                         \
    return #name;
    CUDALINK_STATUS_MAP(CUDALINK_STATUS_NAME_CASE_)
#undef CUDALINK_STATUS_NAME_CASE_
  default:
    return "UNKNOWN";
  }
}

/* ------------------------------------------------------------------------ */
/* dtypes                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct dtype_info {
  const char *name;
  uint8_t kind;
  uint8_t bits;
  uint16_t flag_bits; /* CUDALINK_FLAG_BFLOAT16 or 0 */
} dtype_info;

/* Indexed by cudalink_dtype. */
static const dtype_info dtype_table[CUDALINK_DTYPE_COUNT_] = {
    [CUDALINK_DTYPE_UINT8] = {"uint8", CUDALINK_KIND_UNSIGNED, 8, 0},
    [CUDALINK_DTYPE_UINT16] = {"uint16", CUDALINK_KIND_UNSIGNED, 16, 0},
    [CUDALINK_DTYPE_INT8] = {"int8", CUDALINK_KIND_SIGNED, 8, 0},
    [CUDALINK_DTYPE_INT16] = {"int16", CUDALINK_KIND_SIGNED, 16, 0},
    [CUDALINK_DTYPE_FLOAT16] = {"float16", CUDALINK_KIND_FLOAT, 16, 0},
    [CUDALINK_DTYPE_BFLOAT16] = {"bfloat16", CUDALINK_KIND_FLOAT, 16, CUDALINK_FLAG_BFLOAT16},
    [CUDALINK_DTYPE_FLOAT32] = {"float32", CUDALINK_KIND_FLOAT, 32, 0},
};

static const dtype_info *
dtype_lookup(cudalink_dtype dtype)
{
  unsigned i = (unsigned)dtype;
  return i < (unsigned)CUDALINK_DTYPE_COUNT_ ? &dtype_table[i] : NULL;
}

unsigned
cudalink_dtype_size(cudalink_dtype dtype)
{
  const dtype_info *info = dtype_lookup(dtype);
  return info ? info->bits / 8u : 0u;
}

const char *
cudalink_dtype_name(cudalink_dtype dtype)
{
  const dtype_info *info = dtype_lookup(dtype);
  return info ? info->name : "invalid";
}

cudalink_status
cudalink_dtype_to_wire(cudalink_dtype dtype, uint8_t *kind, uint8_t *bits, uint16_t *flag_bits)
{
  const dtype_info *info = dtype_lookup(dtype);
  if (!info)
    return CUDALINK_ERR_BAD_DTYPE;
  if (kind)
    *kind = info->kind;
  if (bits)
    *bits = info->bits;
  if (flag_bits)
    *flag_bits = info->flag_bits;
  return CUDALINK_OK;
}

cudalink_status
cudalink_dtype_from_wire(uint8_t kind, uint8_t bits, uint16_t flags, cudalink_dtype *dtype)
{
  /* Only flag bit 0 takes part: the exact (kind, bits, bit 0) triple must be
   * in the table, so bit 0 on anything but (float, 16) is an error. */
  uint16_t bf = (uint16_t)(flags & CUDALINK_FLAG_BFLOAT16);
  for (unsigned i = 0; i < (unsigned)CUDALINK_DTYPE_COUNT_; i++) {
    if (dtype_table[i].kind == kind && dtype_table[i].bits == bits &&
        dtype_table[i].flag_bits == bf) {
      if (dtype)
        *dtype = (cudalink_dtype)i;
      return CUDALINK_OK;
    }
  }
  return CUDALINK_ERR_BAD_DTYPE;
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */
/* ------------------------------------------------------------------------ */

cudalink_status
cudalink_format_sizes(const cudalink_format *format, uint32_t *frame_size, uint32_t *row_size)
{
  if (frame_size)
    *frame_size = 0;
  if (row_size)
    *row_size = 0;
  if (!format)
    return CUDALINK_ERR_INVALID_ARG;

  unsigned bytes = cudalink_dtype_size(format->dtype);
  if (bytes == 0)
    return CUDALINK_ERR_BAD_DTYPE;
  if (format->width == 0 || format->width > CUDALINK_MAX_DIMENSION || format->height == 0 ||
      format->height > CUDALINK_MAX_DIMENSION)
    return CUDALINK_ERR_BAD_DIMENSIONS;
  if (format->num_comps < 1 || format->num_comps > 4)
    return CUDALINK_ERR_BAD_NUM_COMPS;

  /* At most 32768 * 4 * 4 per row and 2^34 per frame: exact in 64 bits. */
  uint64_t row = (uint64_t)format->width * format->num_comps * bytes;
  uint64_t frame = row * format->height;
  /* data_size is a u32 on the wire: a larger frame cannot be described.
   * The dimensions are what is too large, hence ERR_BAD_DIMENSIONS. */
  if (frame > UINT32_MAX)
    return CUDALINK_ERR_BAD_DIMENSIONS;
  if (frame_size)
    *frame_size = (uint32_t)frame;
  if (row_size)
    *row_size = (uint32_t)row;
  return CUDALINK_OK;
}

/* ------------------------------------------------------------------------ */
/* Layout                                                                   */
/* ------------------------------------------------------------------------ */

static int
num_slots_valid(uint32_t num_slots)
{
  return num_slots >= 1u && num_slots <= CUDALINK_MAX_SLOTS;
}

size_t
cudalink_layout_size(uint32_t num_slots)
{
  return num_slots_valid(num_slots) ? (size_t)LAYOUT_SIZE(num_slots) : 0u;
}

cudalink_layout
cudalink_layout_for(uint32_t num_slots)
{
  cudalink_layout l;
  memset(&l, 0, sizeof l);
  if (!num_slots_valid(num_slots))
    return l;
  size_t meta = FIXED_PREFIX_SIZE + (size_t)SLOT_STRIDE * num_slots;
  l.size = LAYOUT_SIZE(num_slots);
  l.magic = 0;
  l.version = VERSION_OFFSET;
  l.num_slots = 12;
  l.write_idx = 16;
  l.mem_handle0 = FIXED_PREFIX_SIZE;
  l.event_handle0 = FIXED_PREFIX_SIZE + CUDALINK_IPC_HANDLE_SIZE;
  l.slot_stride = SLOT_STRIDE;
  l.shutdown_flag = meta;
  l.width = meta + 1;
  l.height = meta + 5;
  l.num_comps = meta + 9;
  l.format_kind = meta + 13;
  l.bits_per_comp = meta + 14;
  l.flags = meta + 15;
  l.data_size = meta + 17;
  l.timestamp = meta + 21;
  return l;
}

/* ------------------------------------------------------------------------ */
/* Little-endian byte access                                                */
/* ------------------------------------------------------------------------ */

static void
put_u16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
  for (unsigned i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
  for (unsigned i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_f64(uint8_t *p, double v)
{
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits); /* keeps every bit, NaN payloads included */
  put_u64(p, bits);
}

static uint16_t
get_u16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get_u32(const uint8_t *p)
{
  uint32_t v = 0;
  for (unsigned i = 0; i < 4; i++)
    v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static double
get_f64(const uint8_t *p)
{
  uint64_t bits = get_u64(p);
  double v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* ------------------------------------------------------------------------ */
/* Header encoder                                                           */
/* ------------------------------------------------------------------------ */

cudalink_status
cudalink_header_write(const cudalink_header *header, uint8_t *buf, size_t len)
{
  if (!header || !buf)
    return CUDALINK_ERR_INVALID_ARG;
  if (!num_slots_valid(header->num_slots))
    return CUDALINK_ERR_BAD_NUM_SLOTS;
  cudalink_layout l = cudalink_layout_for(header->num_slots);
  if (len < l.size)
    return CUDALINK_ERR_TRUNCATED;

  const cudalink_format *f = &header->format;
  uint32_t data_size;
  cudalink_status st = cudalink_format_sizes(f, &data_size, NULL);
  if (st != CUDALINK_OK)
    return st;
  /* The BFLOAT16 bit comes from dtype; other bits must be ones the protocol
   * defines ("others 0"). */
  uint16_t user_flags = (uint16_t)(f->flags & ~CUDALINK_FLAG_BFLOAT16);
  if (user_flags & ~CUDALINK_FLAGS_KNOWN)
    return CUDALINK_ERR_INVALID_ARG;
  uint8_t kind, bits;
  uint16_t flag_bits;
  st = cudalink_dtype_to_wire(f->dtype, &kind, &bits, &flag_bits);
  if (st != CUDALINK_OK)
    return st;

  put_u32(buf + l.magic, CUDALINK_MAGIC);
  put_u64(buf + l.version, header->version);
  put_u32(buf + l.num_slots, header->num_slots);
  put_u32(buf + l.write_idx, header->write_idx);
  for (uint32_t s = 0; s < header->num_slots; s++) {
    memcpy(buf + l.mem_handle0 + s * l.slot_stride, header->mem_handle[s],
           CUDALINK_IPC_HANDLE_SIZE);
    memcpy(buf + l.event_handle0 + s * l.slot_stride, header->event_handle[s],
           CUDALINK_IPC_HANDLE_SIZE);
  }
  buf[l.shutdown_flag] = header->shutdown_flag;
  put_u32(buf + l.width, f->width);
  put_u32(buf + l.height, f->height);
  put_u32(buf + l.num_comps, f->num_comps);
  buf[l.format_kind] = kind;
  buf[l.bits_per_comp] = bits;
  put_u16(buf + l.flags, (uint16_t)(user_flags | flag_bits));
  put_u32(buf + l.data_size, data_size);
  put_f64(buf + l.timestamp, header->timestamp);
  return CUDALINK_OK;
}

/* ------------------------------------------------------------------------ */
/* Header decoder                                                           */
/* ------------------------------------------------------------------------ */

/* One sentence into the caller's buffer, always NUL-terminated, silently
 * cut when the buffer is short; nothing when why is NULL or why_len 0. */
#define WHY(...)                           \
  do {                                     \
    if (why && why_len > 0) {              \
      snprintf(why, why_len, __VA_ARGS__); \
      why[why_len - 1] = '\0';             \
    }                                      \
  } while (0)

cudalink_status
cudalink_header_parse_verbose(const uint8_t *buf, size_t len, cudalink_header *out, char *why,
                              size_t why_len)
{
  cudalink_header local;
  cudalink_header *h = out ? out : &local;
  memset(h, 0, sizeof *h);
  WHY("%s", "");

  if (!buf) {
    WHY("%s", "segment buffer is NULL");
    return CUDALINK_ERR_INVALID_ARG;
  }
  /* Length comes before magic: nothing is read before we know it is there.
   * A buffer shorter than the 20-byte fixed prefix (magic, version,
   * num_slots, write_idx) is TRUNCATED even if its first bytes are not
   * "CIPD": we cannot tell a cut-off segment from a foreign one, and
   * "too short" is true either way. */
  if (len < FIXED_PREFIX_SIZE) {
    WHY("segment is %llu bytes, shorter than the %u-byte fixed header", (unsigned long long)len,
        FIXED_PREFIX_SIZE);
    return CUDALINK_ERR_TRUNCATED;
  }
  cudalink_layout fixed = cudalink_layout_for(1);
  h->magic = get_u32(buf + fixed.magic);
  h->version = get_u64(buf + fixed.version);
  h->num_slots = get_u32(buf + fixed.num_slots);
  h->write_idx = get_u32(buf + fixed.write_idx);

  if (h->magic != CUDALINK_MAGIC) {
    WHY("magic is 0x%08lx, must be 0x%08lx (\"CIPD\")", (unsigned long)h->magic,
        (unsigned long)CUDALINK_MAGIC);
    return CUDALINK_ERR_BAD_MAGIC;
  }
  if (!num_slots_valid(h->num_slots)) {
    WHY("num_slots is %lu, must be 1..%u", (unsigned long)h->num_slots, CUDALINK_MAX_SLOTS);
    return CUDALINK_ERR_BAD_NUM_SLOTS;
  }
  cudalink_layout l = cudalink_layout_for(h->num_slots);
  if (len < l.size) {
    WHY("segment is %llu bytes, the layout for %lu slots needs %llu", (unsigned long long)len,
        (unsigned long)h->num_slots, (unsigned long long)l.size);
    return CUDALINK_ERR_TRUNCATED;
  }

  /* Everything is in range now: decode all of it, then judge in order. */
  for (uint32_t s = 0; s < h->num_slots; s++) {
    memcpy(h->mem_handle[s], buf + l.mem_handle0 + s * l.slot_stride, CUDALINK_IPC_HANDLE_SIZE);
    memcpy(h->event_handle[s], buf + l.event_handle0 + s * l.slot_stride, CUDALINK_IPC_HANDLE_SIZE);
  }
  h->shutdown_flag = buf[l.shutdown_flag];
  cudalink_format *f = &h->format;
  f->width = get_u32(buf + l.width);
  f->height = get_u32(buf + l.height);
  f->num_comps = get_u32(buf + l.num_comps);
  uint8_t kind = buf[l.format_kind];
  uint8_t bits = buf[l.bits_per_comp];
  uint16_t flags = get_u16(buf + l.flags);
  /* Flags other than bit 0 are passed on as they are, unknown ones too:
   * peers may define more, and the consumer may want to see them. */
  f->flags = (uint16_t)(flags & ~CUDALINK_FLAG_BFLOAT16);
  h->data_size = get_u32(buf + l.data_size);
  h->timestamp = get_f64(buf + l.timestamp);

  if (cudalink_dtype_from_wire(kind, bits, flags, &f->dtype) != CUDALINK_OK) {
    f->dtype = CUDALINK_DTYPE_COUNT_; /* "invalid", not a real dtype */
    WHY("format_kind %u, bits_per_comp %u, bfloat16 flag %s is not a known dtype", kind, bits,
        (flags & CUDALINK_FLAG_BFLOAT16) ? "set" : "clear");
    return CUDALINK_ERR_BAD_DTYPE;
  }
  if (f->width == 0 || f->width > CUDALINK_MAX_DIMENSION) {
    WHY("width is %lu, must be 1..%u", (unsigned long)f->width, CUDALINK_MAX_DIMENSION);
    return CUDALINK_ERR_BAD_DIMENSIONS;
  }
  if (f->height == 0 || f->height > CUDALINK_MAX_DIMENSION) {
    WHY("height is %lu, must be 1..%u", (unsigned long)f->height, CUDALINK_MAX_DIMENSION);
    return CUDALINK_ERR_BAD_DIMENSIONS;
  }
  if (f->num_comps < 1 || f->num_comps > 4) {
    WHY("num_comps is %lu, must be 1..4", (unsigned long)f->num_comps);
    return CUDALINK_ERR_BAD_NUM_COMPS;
  }
  /* Exact in 64 bits (at most 2^34); a product above 2^32 - 1 can never
   * equal the u32 data_size, so a wrapped value is caught too. */
  uint64_t need = (uint64_t)f->width * f->height * f->num_comps * cudalink_dtype_size(f->dtype);
  if (need != h->data_size) {
    WHY("data_size is %lu but %lux%lux%lu %s needs %llu", (unsigned long)h->data_size,
        (unsigned long)f->width, (unsigned long)f->height, (unsigned long)f->num_comps,
        cudalink_dtype_name(f->dtype), (unsigned long long)need);
    return CUDALINK_ERR_BAD_DATA_SIZE;
  }
  return CUDALINK_OK;
}

cudalink_status
cudalink_header_parse(const uint8_t *buf, size_t len, cudalink_header *out)
{
  return cudalink_header_parse_verbose(buf, len, out, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* A live segment (segment.h)                                               */
/* ------------------------------------------------------------------------ */

static const _Atomic uint32_t *
version_half(const void *segment, unsigned high)
{
  return (const _Atomic uint32_t *)(const void *)((const uint8_t *)segment + VERSION_OFFSET +
                                                  4u * high);
}

/* A loaded half's bytes, in memory order, are the wire's little-endian
 * bytes: read them as such, so that this is right on any host. */
static uint32_t
le32_host(uint32_t wire)
{
  const uint8_t *b = (const uint8_t *)&wire;
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#define VERSION_READS 4 /* a writer mid-store is done long before this */

uint64_t
cudalink_segment_load_version(const void *segment)
{
  uint32_t lo = 0, hi = 0;
  for (int i = 0; i < VERSION_READS; i++) {
    uint32_t lo1 = atomic_load_explicit(version_half(segment, 0), memory_order_acquire);
    uint32_t hi1 = atomic_load_explicit(version_half(segment, 1), memory_order_acquire);
    lo = atomic_load_explicit(version_half(segment, 0), memory_order_acquire);
    hi = atomic_load_explicit(version_half(segment, 1), memory_order_acquire);
    if (lo == lo1 && hi == hi1)
      break;
  }
  /* still moving after VERSION_READS: the last read is as good as any, a
   * moving version differs from the one the caller holds */
  return (uint64_t)le32_host(hi) << 32 | le32_host(lo);
}

void
cudalink_segment_store_version(void *segment, uint64_t version)
{
  uint8_t wire[8];
  uint32_t lo, hi;
  for (unsigned i = 0; i < 8; i++)
    wire[i] = (uint8_t)(version >> (8 * i));
  memcpy(&lo, wire, 4);
  memcpy(&hi, wire + 4, 4);
  /* low half first: it is the one a +1 always changes */
  atomic_store_explicit((_Atomic uint32_t *)(uintptr_t)version_half(segment, 0), lo,
                        memory_order_release);
  atomic_store_explicit((_Atomic uint32_t *)(uintptr_t)version_half(segment, 1), hi,
                        memory_order_release);
}

int
cudalink_segment_same_ring(const uint8_t *a, const uint8_t *b, uint32_t num_slots)
{
  cudalink_layout l = cudalink_layout_for(num_slots);
  if (!l.size)
    return 0;
  return memcmp(a + l.magic, b + l.magic, 4) == 0 &&
         memcmp(a + l.num_slots, b + l.num_slots, 4) == 0 &&
         memcmp(a + l.mem_handle0, b + l.mem_handle0, l.shutdown_flag - l.mem_handle0) == 0 &&
         memcmp(a + l.width, b + l.width, l.timestamp - l.width) == 0;
}

uint32_t
cudalink_write_idx_top(uint32_t num_slots)
{
  return num_slots_valid(num_slots) ? UINT32_MAX - UINT32_MAX % num_slots : 0u;
}

uint32_t
cudalink_write_idx_next(uint32_t write_idx, uint32_t num_slots)
{
  uint32_t top = cudalink_write_idx_top(num_slots);
  if ((top && write_idx >= top) || write_idx == UINT32_MAX)
    return 1u;
  return write_idx + 1u;
}

uint32_t
cudalink_write_idx_distance(uint32_t from, uint32_t to, uint32_t num_slots, int our_wrap)
{
  uint32_t top = cudalink_write_idx_top(num_slots);
  uint32_t d = to - from; /* modulo 2^32 */
  /* ours went from `from` up to top, then 1..to: it skipped top+1 .. 2^32-1 and 0 */
  if (our_wrap && top && to != 0 && to < from && from <= top)
    d -= UINT32_MAX - top + 1u;
  return d;
}

/* ------------------------------------------------------------------------ */
/* Clock                                                                    */
/* ------------------------------------------------------------------------ */

double
cudalink_now(void)
{
#ifdef _WIN32
  /* What Python's time.perf_counter() reads on Windows. */
  LARGE_INTEGER count, freq;
  if (!QueryPerformanceFrequency(&freq) || freq.QuadPart <= 0 || !QueryPerformanceCounter(&count))
    return 0.0;
  /* Split so that a large count keeps its sub-second precision. */
  return (double)(count.QuadPart / freq.QuadPart) +
         (double)(count.QuadPart % freq.QuadPart) / (double)freq.QuadPart;
#else
  /* What Python's time.perf_counter() reads on Linux. */
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return 0.0;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#endif
}
