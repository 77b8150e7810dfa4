/* libcudalink: share GPU video frames between processes over CUDA IPC,
 * speaking the cuda-link shared-memory protocol (layout v0.5, magic "CIPD")
 * that TouchDesigner's cuda-link component and the cuda_link Python package
 * use. docs/PROTOCOL.md describes the wire format.
 *
 * How it fits together
 * --------------------
 * A producer owns a named shared-memory segment (a few hundred bytes) and a
 * ring of N device buffers ("slots") exported with CUDA IPC. For every frame
 * it copies the pixels into slot (k % N) on a CUDA stream, records that
 * slot's interprocess event, and then publishes the new frame counter
 * `write_idx` with a release store. Pixels never leave the GPU.
 *
 * A consumer opens the segment by name, validates it, opens every slot's
 * memory and event handle, and then waits for `write_idx` to move. For a new
 * frame it makes its own stream wait on the slot's event (GPU-side, no CPU
 * stall), copies the slot out and finally checks that the producer did not
 * overwrite the slot while it was copying ("torn" frame).
 *
 *     producer                                consumer
 *     cudalink_producer_create()              cudalink_consumer_create()
 *       (segment + ring, version bumped)      cudalink_consumer_connect()
 *     loop:                                   loop:
 *       cudalink_producer_publish()             cudalink_consumer_wait()
 *         or _begin() ... _commit()             cudalink_consumer_copy()
 *     cudalink_producer_reformat() (new size)     or _acquire() ... _release()
 *     cudalink_producer_destroy()             cudalink_consumer_destroy()
 *       (clean shutdown, segment unlinked)
 *
 * Our producer also wakes waiting consumers with a futex on the write_idx
 * word (Linux); our consumer sleeps on it with a short timeout
 * (`poll_interval_us`), so foreign producers, which wake nobody, are still
 * noticed by polling, at most poll_interval_us late. When the producer is
 * one of ours (it holds the segment's lock) the consumer sleeps up to 50 ms
 * at a time instead, checking between sleeps that the producer lives.
 * Windows: the wake-up is the protocol's doorbell event
 * (Local\cudalink_db_NAME), which our producer sets after each publish
 * and newer peers do too; it wakes one waiter per publish, so consumers
 * there always wait on it with poll_interval_us as the timeout.
 *
 * CUDA
 * ----
 * The library never links libcuda: the driver API is loaded at run time
 * (libcuda.so.1, nvcuda.dll). On a machine without a driver every call that
 * needs CUDA returns CUDALINK_ERR_NO_DRIVER and nothing crashes. Device
 * pointers, streams and contexts cross this API as the driver API's own
 * handle types carried in integers / void pointers, so that this header
 * needs no cuda.h: CUdeviceptr as uint64_t, CUstream and CUcontext as
 * void *. A NULL context means the device's primary context.
 *
 * Building
 * --------
 * Installed as <cudalink/cudalink.h> next to a pkg-config file, with the
 * shared library libcudalink.so.0 (docs/INSTALL.md):
 *
 *     cc app.c $(pkg-config --cflags --libs cudalink)
 *
 * Errors
 * ------
 * Every call returns a cudalink_status: CUDALINK_OK (0) or a negative code.
 * cudalink_strerror() gives a static English sentence for each code;
 * cudalink_*_last_error() gives the detail of the object's last failure
 * (the CUDA error name, the errno text, which check failed).
 *
 * Threads
 * -------
 * None of the objects is thread safe: use one object from one thread at a
 * time. Different objects may be used from different threads. The
 * protocol codec functions are pure and reentrant.
 */
#ifndef CUDALINK_H
#define CUDALINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUDALINK_VERSION_MAJOR 0
#define CUDALINK_VERSION_MINOR 1
#define CUDALINK_VERSION_PATCH 0
#define CUDALINK_VERSION_NUMBER \
  (CUDALINK_VERSION_MAJOR * 10000 + CUDALINK_VERSION_MINOR * 100 + CUDALINK_VERSION_PATCH)

/* CUDALINK_API marks the public functions, the only ones libcudalink.so
 * (cudalink.dll) exports: the library is compiled with hidden visibility
 * and CUDALINK_BUILD_SHARED. A module that links the library statically and
 * must not re-export it (our GStreamer plugin) defines CUDALINK_STATIC: the
 * functions then take that module's visibility. */
#ifndef CUDALINK_API
#  if defined(CUDALINK_STATIC)
#    define CUDALINK_API
#  elif defined(_WIN32)
#    if defined(CUDALINK_BUILD_SHARED)
#      define CUDALINK_API __declspec(dllexport)
#    else
#      define CUDALINK_API /* functions link through the import library */
#    endif
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define CUDALINK_API __attribute__((visibility("default")))
#  else
#    define CUDALINK_API
#  endif
#endif

/** Library version at run time, CUDALINK_VERSION_NUMBER of the build. */
CUDALINK_API unsigned cudalink_version_number(void);

/* ------------------------------------------------------------------------ */
/* Status codes. Values are stable: new codes are only ever appended.        */
/* ------------------------------------------------------------------------ */

/* ERR_SHM also covers a name that holds no usable segment: something other
 * than a regular file (a FIFO, a directory, a socket, a device, a symbolic
 * link: none is opened in a way that could block), or, for a producer, a
 * segment that belongs to another user or that group or others may write.
 * ERR_TRUNCATED also covers a segment that another process truncated under
 * a mapping (which then reads zeros instead of raising SIGBUS). The error
 * text the library logs says which case it is. */

#define CUDALINK_STATUS_MAP(X)                                                                   \
  X(OK, 0, "success")                                                                            \
  X(ERR_INVALID_ARG, -1, "invalid argument")                                                     \
  X(ERR_NO_MEMORY, -2, "out of host memory")                                                     \
  X(ERR_TRUNCATED, -10, "segment is shorter than the protocol layout needs")                     \
  X(ERR_BAD_MAGIC, -11, "segment has a wrong magic number (not a cuda-link segment)")            \
  X(ERR_BAD_NUM_SLOTS, -12, "segment has num_slots outside 1..10")                               \
  X(ERR_BAD_DTYPE, -13, "segment has an unknown pixel data type")                                \
  X(ERR_BAD_DIMENSIONS, -14, "segment has a zero or oversized width or height")                  \
  X(ERR_BAD_DATA_SIZE, -15, "segment's data_size is not width*height*channels*bytes")            \
  X(ERR_BAD_NUM_COMPS, -16, "segment has a channel count outside 1..4")                          \
  X(ERR_STALE, -17, "segment's shutdown flag is set (producer gone, stale segment)")             \
  X(ERR_SLOT_TOO_SMALL, -18, "a slot's device buffer is smaller than the segment's frames")      \
  X(ERR_BAD_NAME, -20, "invalid segment name (empty, contains '/', or too long)")                \
  X(ERR_SHM, -21, "shared-memory system call failed")                                            \
  X(ERR_NOT_FOUND, -22, "no segment of that name exists")                                        \
  X(ERR_BUSY, -23, "segment is held by another live cudalink producer")                          \
  X(ERR_FOREIGN_PRODUCER, -24, "segment is in use by another producer that is still publishing") \
  X(ERR_NO_DRIVER, -30, "NVIDIA CUDA driver library not found (libcuda.so.1 / nvcuda.dll)")      \
  X(ERR_DRIVER_SYMBOL, -31, "CUDA driver library lacks a required function (driver too old)")    \
  X(ERR_CUDA, -32, "a CUDA driver call failed")                                                  \
  X(ERR_NO_DEVICE, -33, "no such CUDA device")                                                   \
  X(ERR_IPC_OPEN, -34, "could not open the producer's CUDA IPC handles")                         \
  X(ERR_TIMEOUT, -40, "timed out waiting")                                                       \
  X(ERR_FORMAT_CHANGED, -41, "producer changed the frame format or ring (re-read the format)")   \
  X(ERR_PRODUCER_GONE, -42, "producer is gone")                                                  \
  X(ERR_TORN, -43, "frame was overwritten by the producer while it was copied (torn)")           \
  X(ERR_NO_FRAME, -44, "no frame is available")                                                  \
  X(ERR_NOT_CONNECTED, -45, "consumer is not connected to a producer")                           \
  X(ERR_UNSUPPORTED, -46, "not supported on this platform")                                      \
  X(ERR_INTERRUPTED, -47, "wait interrupted (cudalink_consumer_interrupt)")                      \
  X(ERR_SLOTS_HELD, -48, "the next slot is held by an importing reader: frame not published")    \
  X(ERR_NO_IMPORT, -49, "the producer offers no import (not a cudalink producer)")               \
  X(ERR_HOLDS_FULL, -50, "this consumer holds as many slots as it may: copy, or release some")

typedef enum cudalink_status {
#define CUDALINK_STATUS_ENUM_(name, value, text) CUDALINK_##name = value,
  CUDALINK_STATUS_MAP(CUDALINK_STATUS_ENUM_)
#undef CUDALINK_STATUS_ENUM_
} cudalink_status;

/** Static English text for a status code; never NULL, also for unknown codes. */
CUDALINK_API const char *cudalink_strerror(int status);
/** The enum name without prefix ("ERR_BAD_MAGIC"); "UNKNOWN" for others. */
CUDALINK_API const char *cudalink_status_name(int status);

/* ------------------------------------------------------------------------ */
/* Protocol codec: pure functions, no CUDA, no I/O.                          */
/* ------------------------------------------------------------------------ */

#define CUDALINK_MAGIC 0x43495044u /* "CIPD" read as a little-endian u32 */
#define CUDALINK_MAX_SLOTS 10u
#define CUDALINK_IPC_HANDLE_SIZE 64u
/** The largest layout, for 10 slots: 20 + 128*10 + 1 + 20 + 8 bytes. */
#define CUDALINK_MAX_LAYOUT_SIZE 1329u
/** Largest width or height we accept from a segment. */
#define CUDALINK_MAX_DIMENSION 32768u

/* flags field (u16) */
#define CUDALINK_FLAG_BFLOAT16 0x0001u   /* kind float, 16 bits: bfloat16 */
#define CUDALINK_FLAG_MONO_ALPHA 0x0002u /* 2 channels = luminance + alpha */
#define CUDALINK_FLAG_BGRA 0x0004u       /* uint8 x 4 in B,G,R,A byte order */
#define CUDALINK_FLAGS_KNOWN 0x0007u

/* cudaChannelFormatKind values used on the wire */
#define CUDALINK_KIND_SIGNED 0u
#define CUDALINK_KIND_UNSIGNED 1u
#define CUDALINK_KIND_FLOAT 2u

typedef enum cudalink_dtype {
  CUDALINK_DTYPE_UINT8 = 0,
  CUDALINK_DTYPE_UINT16 = 1,
  CUDALINK_DTYPE_INT8 = 2,
  CUDALINK_DTYPE_INT16 = 3,
  CUDALINK_DTYPE_FLOAT16 = 4,
  CUDALINK_DTYPE_BFLOAT16 = 5,
  CUDALINK_DTYPE_FLOAT32 = 6,
  CUDALINK_DTYPE_COUNT_ = 7
} cudalink_dtype;

/** Bytes of one component (1, 2 or 4); 0 for an invalid dtype. */
CUDALINK_API unsigned cudalink_dtype_size(cudalink_dtype dtype);
/** "uint8", "float32", ...; "invalid" otherwise. */
CUDALINK_API const char *cudalink_dtype_name(cudalink_dtype dtype);
/** Wire triple of a dtype; *flag_bits is CUDALINK_FLAG_BFLOAT16 or 0. */
CUDALINK_API cudalink_status cudalink_dtype_to_wire(cudalink_dtype dtype, uint8_t *kind,
                                                    uint8_t *bits, uint16_t *flag_bits);
/** dtype of a wire triple (only flag bit 0 of flags matters here);
 * CUDALINK_ERR_BAD_DTYPE for anything not in the table. */
CUDALINK_API cudalink_status cudalink_dtype_from_wire(uint8_t kind, uint8_t bits, uint16_t flags,
                                                      cudalink_dtype *dtype);

/** What one frame is. flags holds MONO_ALPHA / BGRA; the BFLOAT16 bit is
 * derived from dtype on writing and ignored here. */
typedef struct cudalink_format {
  uint32_t width;
  uint32_t height;
  uint32_t num_comps; /* 1..4 */
  cudalink_dtype dtype;
  uint16_t flags; /* CUDALINK_FLAG_MONO_ALPHA | CUDALINK_FLAG_BGRA */
} cudalink_format;

/** Checks a format (dimensions 1..CUDALINK_MAX_DIMENSION, num_comps 1..4,
 * known dtype, frame size fits u32) and returns the bytes of one tightly
 * packed frame in *frame_size and of one row in *row_size (either may be
 * NULL). Never overflows. */
CUDALINK_API cudalink_status cudalink_format_sizes(const cudalink_format *format,
                                                   uint32_t *frame_size, uint32_t *row_size);

/** Byte size of the segment layout for num_slots (20 + 128*N + 1 + 20 + 8);
 * 0 when num_slots is outside 1..10. */
CUDALINK_API size_t cudalink_layout_size(uint32_t num_slots);

/** Offsets of the layout's fields for num_slots; all 0 for an invalid N. */
typedef struct cudalink_layout {
  size_t size;
  size_t magic, version, num_slots, write_idx;
  size_t mem_handle0, event_handle0, slot_stride; /* slot s: X_handle0 + s*slot_stride */
  size_t shutdown_flag, width, height, num_comps, format_kind, bits_per_comp, flags, data_size,
      timestamp;
} cudalink_layout;
CUDALINK_API cudalink_layout cudalink_layout_for(uint32_t num_slots);

/** A whole decoded header. data_size is what the wire says; format is
 * decoded (dtype from kind/bits/flags). */
typedef struct cudalink_header {
  uint32_t magic;
  uint64_t version;
  uint32_t num_slots;
  uint32_t write_idx;
  uint8_t mem_handle[CUDALINK_MAX_SLOTS][CUDALINK_IPC_HANDLE_SIZE];
  uint8_t event_handle[CUDALINK_MAX_SLOTS][CUDALINK_IPC_HANDLE_SIZE];
  uint8_t shutdown_flag;
  cudalink_format format;
  uint32_t data_size;
  double timestamp;
} cudalink_header;

/** Writes the whole layout for header->num_slots into buf (little-endian).
 * magic is always CUDALINK_MAGIC and data_size is computed from format.
 * Fails with ERR_TRUNCATED if len is smaller than the layout, and with the
 * format's error if the format does not check. */
CUDALINK_API cudalink_status cudalink_header_write(const cudalink_header *header, uint8_t *buf,
                                                   size_t len);

/** Parses and fully validates a segment: length, magic, num_slots,
 * dtype, dimensions, num_comps, data_size, in that order; the first failing
 * check gives the code. The shutdown flag is decoded, not judged (see
 * CUDALINK_ERR_STALE, which consumers apply). out is filled as far as it
 * could be decoded, also on failure (zeroed first). */
CUDALINK_API cudalink_status cudalink_header_parse(const uint8_t *buf, size_t len,
                                                   cudalink_header *out);

/** Like cudalink_header_parse but into a caller buffer: a sentence saying
 * which check failed and with what values ("num_slots is 11, must be
 * 1..10"). Returns the same status. */
CUDALINK_API cudalink_status cudalink_header_parse_verbose(const uint8_t *buf, size_t len,
                                                           cudalink_header *out, char *why,
                                                           size_t why_len);

/** Seconds of the monotonic clock that the protocol's timestamp uses
 * (CLOCK_MONOTONIC / QueryPerformanceCounter, like Python's perf_counter). */
CUDALINK_API double cudalink_now(void);

/* ------------------------------------------------------------------------ */
/* CUDA driver                                                              */
/* ------------------------------------------------------------------------ */

/** Loads the CUDA driver library and cuInit()s it, once per process.
 * Thread safe. CUDALINK_ERR_NO_DRIVER / ERR_DRIVER_SYMBOL / ERR_CUDA; the
 * detail (library name, missing symbol, CUDA error) is copied into why. */
CUDALINK_API cudalink_status cudalink_cuda_load(char *why, size_t why_len);

/** Any driver function. */
typedef void (*cudalink_cuda_fn)(void);

/** A function of the driver library that cudalink_cuda_load() loaded, by
 * the name the library exports ("cuMemAlloc_v2": the versioned names that
 * cuda.h's macros select), for programs that make driver calls of their
 * own without linking libcuda; cast it to the function's type. NULL when
 * the driver is not loaded (cudalink_cuda_load() is called first if
 * needed, and failed) or lacks the name. Thread safe. */
CUDALINK_API cudalink_cuda_fn cudalink_cuda_symbol(const char *name);

/* ------------------------------------------------------------------------ */
/* Logging (optional)                                                       */
/* ------------------------------------------------------------------------ */

typedef enum cudalink_log_level {
  CUDALINK_LOG_ERROR = 0,
  CUDALINK_LOG_WARNING = 1,
  CUDALINK_LOG_INFO = 2,
  CUDALINK_LOG_DEBUG = 3
} cudalink_log_level;

typedef void (*cudalink_log_fn)(void *user_data, cudalink_log_level level, const char *message);

/* ------------------------------------------------------------------------ */
/* Producer (exporter)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct cudalink_producer cudalink_producer;

typedef struct cudalink_producer_config {
  const char *name;    /* segment name: 1..(CUDALINK_MAX_NAME) chars, no '/' */
  uint32_t num_slots;  /* 1..10; 0 means 3 */
  int device;          /* CUDA device ordinal, used when cuda_context is NULL */
  void *cuda_context;  /* CUcontext to allocate in; NULL: device's primary context */
  uint32_t grace_ms;   /* keep a replaced ring alive this long; 0 means 200 */
  uint32_t stale_ms;   /* a foreign producer that published nothing for this long
                          is taken over; 0 means 1000 */
  cudalink_log_fn log; /* may be NULL */
  void *log_user_data;
  /* With CUDALINK_PRODUCER_IMPORT, importing readers
   * (cudalink_consumer_hold()) that hold the next slot make the ring grow
   * (a re-initialisation) up to max_slots; at max_slots the frame is not
   * published (CUDALINK_ERR_SLOTS_HELD). 0 means num_slots: never grow.
   * TouchDesigner's Receiver does not follow a change of num_slots
   * (PROTOCOL.md): grow only where none reads. */
  uint32_t max_slots;
  uint32_t flags; /* CUDALINK_PRODUCER_* */
} cudalink_producer_config;

/* Offer the holds back-channel, so that our consumers can import
 * (cudalink_consumer_hold()) instead of copying. Off by default: with it,
 * cudalink_producer_begin() / _publish() can answer CUDALINK_ERR_SLOTS_HELD
 * (skip that frame) when a reader holds the next slot and the ring may not
 * grow, which costs every reader, TouchDesigner included, that frame. */
#define CUDALINK_PRODUCER_IMPORT 1u

#define CUDALINK_MAX_NAME 200u

/** Checks a segment name without touching anything: OK or
 * CUDALINK_ERR_BAD_NAME (empty, contains '/' or '\\', ".", "..", a control
 * character, or longer than CUDALINK_MAX_NAME). */
CUDALINK_API cudalink_status cudalink_check_name(const char *name);

/** The same check, saying why: CUDALINK_ERR_BAD_NAME also for a control
 * character (below 0x20, or 0x7f), and a sentence naming the rule broken and
 * where is copied into why (why_size bytes, NUL-terminated; "" when the name
 * is fine; why may be NULL). The one name rule of the library and both
 * elements. */
CUDALINK_API cudalink_status cudalink_check_name_why(const char *name, char *why, size_t why_size);

/** Fills config with defaults (num_slots 3, device 0, grace 200 ms). */
CUDALINK_API void cudalink_producer_config_init(cudalink_producer_config *config);

/** Creates (or re-uses) the segment, allocates the ring for format, exports
 * it and writes the header (version bumped, never 0).
 * Refuses with ERR_BUSY a segment that another live producer of ours holds,
 * with ERR_FOREIGN_PRODUCER one whose foreign producer still publishes;
 * takes over a stale one (shutdown flag set or idle for stale_ms), logging a
 * warning. Who holds the segment is decided before CUDA is loaded. The
 * reason for a failure (which CUDA call, what holds the segment) goes to
 * config->log at CUDALINK_LOG_ERROR level. */
CUDALINK_API cudalink_status cudalink_producer_create(const cudalink_producer_config *config,
                                                      const cudalink_format *format,
                                                      cudalink_producer **out);

/** Clean shutdown (PROTOCOL.md): shutdown flag, handles zeroed, events
 * destroyed, ~100 ms for consumers to let go, buffers freed, segment
 * unlinked. Accepts NULL. */
CUDALINK_API void cudalink_producer_destroy(cudalink_producer *producer);

/** The current frame format. */
CUDALINK_API const cudalink_format *cudalink_producer_format(const cudalink_producer *producer);

/** Copies one frame (device pointer src, row pitch src_pitch in bytes; the
 * frame must match the current format) into the next slot with a 2-D copy
 * on stream (NULL: the producer's own stream), records the slot's event,
 * then publishes. Does not wait for the copy unless wait is non-zero. */
CUDALINK_API cudalink_status cudalink_producer_publish(cudalink_producer *producer, uint64_t src,
                                                       size_t src_pitch, void *stream, int wait);

/** Two-phase publish for callers that write the slot themselves (a
 * conversion kernel): _begin gives the next slot's device pointer and row
 * pitch (tightly packed rows); the caller enqueues its writes on stream;
 * _commit records the event on that stream and publishes. */
CUDALINK_API cudalink_status cudalink_producer_begin(cudalink_producer *producer, uint64_t *dst,
                                                     size_t *dst_pitch);
CUDALINK_API cudalink_status cudalink_producer_commit(cudalink_producer *producer, void *stream,
                                                      int wait);

/* write_idx wraps: after the largest multiple of num_slots that fits in 32
 * bits (0xFFFFFFFF for 3 slots) the next frame is published as 1, so that
 * slot (write_idx - 1) % num_slots keeps its step across the wrap and 0,
 * which means "no frame yet" to every peer, is never published after the
 * first frame. Our consumer follows it, and also a foreign producer whose
 * counter goes on from 0xFFFFFFFF to 0 (that 0 is a frame, not a
 * re-initialisation). */

/** For tests of the 2^32 wrap without 4 billion frames (and for a producer
 * that carries on a count): sets the frame counter as if the last frame
 * published had been write_idx, so that the next frame is published as
 * write_idx + 1 (1 past the wrap), in slot (that - 1) % num_slots as
 * always. Publishes nothing; consumers count the jump as missed frames.
 * ERR_INVALID_ARG between _begin and _commit (last_error says why). */
CUDALINK_API cudalink_status cudalink_producer_set_write_idx(cudalink_producer *producer,
                                                             uint32_t write_idx);

/** New size or dtype: a new ring, version bumped in the same segment in the
 * safe order (write_idx 0, handles and metadata, then version); the old
 * ring is freed once grace_ms has passed. Only the producer's own stream is
 * synchronised first: a caller that queued writes into the old ring on a
 * stream of its own must synchronise that stream before calling this. */
CUDALINK_API cudalink_status cudalink_producer_reformat(cudalink_producer *producer,
                                                        const cudalink_format *format);

/** The ring's slot count now: num_slots, or more after growing for
 * importing readers (max_slots). 0 for NULL. */
CUDALINK_API uint32_t cudalink_producer_num_slots(const cudalink_producer *producer);

/** The producer's own CUDA stream (a CUstream). */
CUDALINK_API void *cudalink_producer_stream(const cudalink_producer *producer);

typedef struct cudalink_producer_stats {
  uint64_t frames;             /* frames published */
  uint64_t reinits;            /* reformats, and re-publications of a truncated segment */
  uint64_t relinks;            /* times the segment was re-linked after a consumer unlinked it */
  uint64_t version;            /* current version */
  uint32_t write_idx;          /* current write_idx */
  int took_over_stale;         /* the segment was taken over from a stale producer */
  uint64_t held_drops;         /* frames not published: the next slot was held */
  uint64_t grows;              /* times the ring grew for importing readers */
  uint32_t import_readers;     /* importing readers alive (checked every second) */
  uint32_t import_readers_mps; /* of those, MPS clients */
  uint32_t holds;              /* slots they hold */
  uint64_t dead_readers;       /* readers that died holding slots (released) */
  int import;                  /* 1: the holds back-channel is offered */
  int mps;                     /* our context is an MPS client: 1, 0, -1 unknown */
} cudalink_producer_stats;
CUDALINK_API void cudalink_producer_get_stats(const cudalink_producer *producer,
                                              cudalink_producer_stats *stats);

/** Detail of the last failure (CUDA error name, errno text), "" if none. */
CUDALINK_API const char *cudalink_producer_last_error(const cudalink_producer *producer);

/* ------------------------------------------------------------------------ */
/* Consumer (importer)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct cudalink_consumer cudalink_consumer;

typedef struct cudalink_consumer_config {
  const char *name;          /* segment name */
  int device;                /* CUDA device ordinal, used when cuda_context is NULL */
  void *cuda_context;        /* CUcontext; NULL: device's primary context */
  uint32_t poll_interval_us; /* longest sleep between looks at a foreign
                                producer's segment; 0 means 1000 */
  uint32_t settle_ms;        /* how long a half-written header after a version change
                                is retried before it is an error; 0 means 2000 */
  uint32_t flags;            /* CUDALINK_CONSUMER_* */
  cudalink_log_fn log;
  void *log_user_data;
} cudalink_consumer_config;

/* By default acquire() first asks whether the slot's event has already
 * completed (cuEventQuery, a few microseconds) and only makes the stream wait
 * on it when it has not: a GPU-side wait on an IPC event costs far more than
 * the query. This flag always waits (for measurements). */
#define CUDALINK_CONSUMER_ALWAYS_WAIT_EVENT 0x1u
/* By default release() waits for the copy by sleeping through the part of
 * the wait that earlier frames say is certain (without MPS the GPU needs
 * ~150 us to switch to this process's context first) and spinning the rest.
 * SLEEP_SYNC instead polls for 30 us and then sleeps on a blocking-sync
 * event in the driver (least CPU, most latency); SPIN_SYNC spins in
 * cuStreamSynchronize the whole time (most CPU). docs/BENCHMARKS.md
 * (bench_lib) has the three side by side. hold() waits for the producer's
 * event the same three ways, on the host: napping and spinning on
 * cuEventQuery, SLEEP_SYNC querying between 50 us sleeps after 30 us (an
 * IPC event has no blocking sync). */
#define CUDALINK_CONSUMER_SLEEP_SYNC 0x2u
#define CUDALINK_CONSUMER_SPIN_SYNC 0x4u
/* By default wait() learns the producer's pace from the timestamps it
 * writes and, when its frames come at a steady rate, sleeps until shortly
 * before the next one is due and spins (at most 1 % of the frame period on
 * each side of the due time) so that it sees the frame within a microsecond
 * of its publish instead of when the kernel wakes it up (10-50 us later, or
 * the next poll of a foreign producer). Irregular producers are not
 * spun for, and the window narrows when spinning costs more than 0.5 % of
 * the time on average (a noisy producer or machine). NO_PACE never spins:
 * wake-ups only. */
#define CUDALINK_CONSUMER_NO_PACE 0x8u
/* Offer to import: at each (re)connection to a cudalink producer, claim an
 * entry in its holds back-channel so that cudalink_consumer_hold() can
 * work. Without it hold() says ERR_NO_IMPORT. */
#define CUDALINK_CONSUMER_IMPORT 0x10u

CUDALINK_API void cudalink_consumer_config_init(cudalink_consumer_config *config);

/** Allocates a consumer; does not touch the segment or CUDA yet. */
CUDALINK_API cudalink_status cudalink_consumer_create(const cudalink_consumer_config *config,
                                                      cudalink_consumer **out);
/** Accepts NULL. Closes all handles. */
CUDALINK_API void cudalink_consumer_destroy(cudalink_consumer *consumer);

/** Opens and validates the segment (no CUDA needed for that part), then
 * loads CUDA and opens every slot's handles, retrying a header that is
 * being re-initialised for up to settle_ms. ERR_NOT_FOUND when no segment
 * exists; ERR_NOT_CONNECTED when it exists but is still empty (all zeros)
 * or at version 0 (a producer is starting: try again); a parse error code
 * for a bad header; ERR_STALE when its shutdown flag is set.
 * cudalink_consumer_last_error() says what was found. */
CUDALINK_API cudalink_status cudalink_consumer_connect(cudalink_consumer *consumer);

/** Closes handles and the segment; connect() may be called again. */
CUDALINK_API void cudalink_consumer_disconnect(cudalink_consumer *consumer);

/** Waits up to timeout_us (negative: forever) for a frame newer than the
 * last one returned. OK: a new frame is ready for _copy / _acquire.
 * ERR_FORMAT_CHANGED: the producer re-initialised; the consumer has already
 * re-opened everything, cudalink_consumer_format() has the new format, and
 * the next wait returns frames of it. ERR_PRODUCER_GONE: shutdown flag set,
 * our producer died (its lock was released), or handles no longer open;
 * the consumer is disconnected. ERR_TIMEOUT: nothing new.
 * ERR_INTERRUPTED: cudalink_consumer_interrupt() is in force. */
CUDALINK_API cudalink_status cudalink_consumer_wait(cudalink_consumer *consumer,
                                                    int64_t timeout_us);

/** From any thread: on = 1 makes wait() return ERR_INTERRUPTED, a wait in
 * progress too (at once when it sleeps on our producer's wake-up or spins,
 * within a poll interval for a foreign producer), until it is called with
 * on = 0. For a GStreamer element's unlock / unlock_stop: wait() can then
 * sleep until the next frame instead of waking up in slices to look for a
 * flush. A wake-up that crosses the moment wait() falls asleep can be
 * lost, so still give wait() a finite timeout (say 100 ms) as a backstop. */
CUDALINK_API void cudalink_consumer_interrupt(cudalink_consumer *consumer, int on);

/** Current format; NULL when not connected. */
CUDALINK_API const cudalink_format *cudalink_consumer_format(const cudalink_consumer *consumer);

/** Information about the frame the last successful wait returned. */
typedef struct cudalink_frame_info {
  uint32_t write_idx; /* write_idx seen: the frame is slot (write_idx-1) % N */
  uint32_t slot;
  uint64_t version;
  double timestamp; /* producer's cudalink_now() at publish */
} cudalink_frame_info;
CUDALINK_API cudalink_status cudalink_consumer_frame_info(const cudalink_consumer *consumer,
                                                          cudalink_frame_info *info);

/** Copies the current frame into dst (row pitch dst_pitch): the stream
 * waits on the slot's event, then a 2-D copy, then the stream is
 * synchronised and the torn check applied. OK: the copy is clean;
 * ERR_TORN: discard it (counted). stream NULL: the consumer's own stream. */
CUDALINK_API cudalink_status cudalink_consumer_copy(cudalink_consumer *consumer, uint64_t dst,
                                                    size_t dst_pitch, void *stream);

/** Two-phase copy for callers that read the slot with their own kernel:
 * _acquire makes stream wait on the slot's event (unless it already
 * completed) and gives the slot's device pointer and row pitch; _release
 * waits for stream's work (see CUDALINK_CONSUMER_SLEEP_SYNC for how)
 * and applies the torn check (OK or ERR_TORN). */
CUDALINK_API cudalink_status cudalink_consumer_acquire(cudalink_consumer *consumer, void *stream,
                                                       uint64_t *src, size_t *src_pitch);
CUDALINK_API cudalink_status cudalink_consumer_release(cudalink_consumer *consumer, void *stream);

/** Zero-copy import (a cudalink producer, CUDALINK_CONSUMER_IMPORT):
 * instead of copying the current frame, hold its slot. The producer never
 * rewrites a held slot (it grows its ring or skips a frame instead), so
 * *src stays the frame until cudalink_hold_release(). On OK the frame is
 * complete on the GPU (the producer's event was waited for on the host, as
 * CUDALINK_CONSUMER_SLEEP_SYNC says for hold(); stream is not used: a
 * wait queued on it would have the GPU switch between the two processes'
 * contexts for each frame) and usable from any stream; *hold must be released
 * exactly once, from any thread, also after the consumer was destroyed or
 * re-opened (the slot stays mapped until then), but before the CUDA
 * context goes. ERR_NO_IMPORT: the producer offers none (a foreign one):
 * copy. ERR_HOLDS_FULL: copy this frame, so as not to hold the producer
 * back: this consumer holds num_slots - 2 slots of the ring already
 * (0 with 2 slots or fewer: the producer keeps two free slots ahead of the
 * oldest hold), or it is behind (it missed frames before this one: a
 * slower reader that held slots would slow the producer to its pace).
 * ERR_TORN: the producer was rewriting the slot (counted as torn): skip
 * the frame. */
typedef struct cudalink_hold cudalink_hold;
CUDALINK_API cudalink_status cudalink_consumer_hold(cudalink_consumer *consumer, void *stream,
                                                    uint64_t *src, size_t *src_pitch,
                                                    cudalink_hold **hold);
/** hold() in two steps, for a caller with work to do while the producer's
 * GPU finishes the frame (cudalinksrc wraps the slot in a buffer
 * meanwhile). _hold_begin takes the hold and gives the slot, with hold()'s
 * statuses, without waiting: the frame may not be complete yet.
 * _hold_wait then waits for the producer's event as hold() does: OK, or
 * ERR_CUDA (the caller still releases the hold). Call it before any other
 * call on the consumer: it waits on the event of the ring that consumer
 * has open (ERR_INVALID_ARG once it opened another). */
CUDALINK_API cudalink_status cudalink_consumer_hold_begin(cudalink_consumer *consumer,
                                                          uint64_t *src, size_t *src_pitch,
                                                          cudalink_hold **hold);
CUDALINK_API cudalink_status cudalink_consumer_hold_wait(cudalink_consumer *consumer,
                                                         cudalink_hold *hold);
/** Lets the producer write the slot again. Accepts NULL. */
CUDALINK_API void cudalink_hold_release(cudalink_hold *hold);

/** Whether hold() can work now: 1 when the producer offers import and this
 * consumer has an entry in its back-channel; 0 otherwise (why, may be NULL,
 * gets the reason). */
CUDALINK_API int cudalink_consumer_can_hold(const cudalink_consumer *consumer, char *why,
                                            size_t why_size);

/** The consumer's own CUDA stream (valid while connected). */
CUDALINK_API void *cudalink_consumer_stream(const cudalink_consumer *consumer);

/** Is the producer one of ours (it holds the segment's lock)? Ours wake
 * consumers with a futex; foreign ones are polled. */
CUDALINK_API int cudalink_consumer_producer_is_ours(const cudalink_consumer *consumer);

/** Whose segment the consumer reads (as found at connect): 1 when it
 * belongs to this process's user alone (no group or other write
 * permission), 0 when not (another user, or writable by others: whoever can
 * write it can feed frames and rewrite the header: warn), a negative status
 * when it cannot tell (ERR_UNSUPPORTED on Windows, ERR_NOT_CONNECTED).
 * text (text_size bytes, may be NULL) gets the owner: "user 'bob' (uid
 * 1001, mode 0666)". */
CUDALINK_API int cudalink_consumer_segment_owner(const cudalink_consumer *consumer, char *text,
                                                 size_t text_size);

typedef struct cudalink_consumer_stats {
  uint64_t frames;  /* frames returned by wait() */
  uint64_t missed;  /* frames the producer published that we never saw */
  uint64_t torn;    /* copies discarded as torn */
  uint64_t reopens; /* re-opens after a version change */
  uint64_t paced;   /* frames wait() found spinning around their due
                       time rather than woken up (NO_PACE: 0) */
  uint64_t spin_us; /* microseconds wait() spent spinning for them:
                       the CPU time the wake-spin costs */
  uint64_t sleeps;  /* times wait() went to sleep (a futex wait or a
                       poll): each one costs a wake-up */
  uint32_t num_slots;
  uint64_t version;
  uint64_t holds;   /* frames imported by hold() or hold_wait() */
  uint32_t held;    /* holds not yet released */
  int mps;          /* our context is an MPS client: 1, 0, -1 unknown */
  int producer_mps; /* the producer's (from its back-channel), -1 unknown */
} cudalink_consumer_stats;
CUDALINK_API void cudalink_consumer_get_stats(const cudalink_consumer *consumer,
                                              cudalink_consumer_stats *stats);

CUDALINK_API const char *cudalink_consumer_last_error(const cudalink_consumer *consumer);

/* ------------------------------------------------------------------------ */
/* Segments present on this machine (inspection, no CUDA)                   */
/* ------------------------------------------------------------------------ */

/* What cudalink-inspect and the plugin's device provider are built on: which
 * segments exist, what their headers say, whether a producer is behind them
 * and what a consumer would make of them. Nothing here loads CUDA, maps a
 * segment on Linux or writes anything; every call is thread safe.
 *
 * Linux: segments are the regular files in /dev/shm whose first four bytes
 * are the protocol's magic. They are opened with O_NONBLOCK | O_NOFOLLOW
 * (a FIFO, a device or a link there never blocks or misleads a look) and
 * read with pread. Windows: named mappings cannot be enumerated, so listing
 * gives CUDALINK_ERR_UNSUPPORTED; describing one NAME works (through the
 * consumer's own read-only open). */

/* A segment's state, judged in this order:
 * - CORRUPT: the header does not parse (the parser's reason is in why);
 * - STARTING: the segment is empty, all zeros, or at version 0: a producer
 *   has created it and not written its header yet (a consumer retries);
 * - SHUT_DOWN: the shutdown flag is set: its producer left (peers unlink
 *   the segment after a clean shutdown; one that stays is a leftover);
 * - LIVE: the producer published a frame less than idle_after_s ago (by
 *   the header's timestamp, the clock of cudalink_now());
 * - IDLE: no recent frame, but the producer is there: it is ours and holds
 *   the segment's lock, or it is foreign (no lock: TouchDesigner, Python)
 *   and its last frame (or, before the first frame, the segment's last
 *   change) is less than stale_after_s old;
 * - STALE: no shutdown flag, no lock held, and nothing for stale_after_s:
 *   the producer most likely died without a clean shutdown (ours release
 *   their lock when they die, even on SIGKILL) or is paused for long. A
 *   consumer would attach and wait; a new cudalink producer of that name
 *   takes it over (cudalink_producer_config.stale_ms).
 * Values are stable: new states are only ever appended. */
typedef enum cudalink_segment_state {
  CUDALINK_SEGMENT_LIVE = 0,
  CUDALINK_SEGMENT_IDLE = 1,
  CUDALINK_SEGMENT_SHUT_DOWN = 2,
  CUDALINK_SEGMENT_STALE = 3,
  CUDALINK_SEGMENT_CORRUPT = 4,
  CUDALINK_SEGMENT_STARTING = 5
} cudalink_segment_state;

/** "live", "idle", "shut-down", "stale", "corrupt", "starting"; "unknown"
 * for other values. */
CUDALINK_API const char *cudalink_segment_state_name(cudalink_segment_state state);

/* Defaults of cudalink_segment_describe()'s thresholds (seconds). 1 s is
 * also how long our producer watches a foreign segment before it takes it
 * over. */
#define CUDALINK_SEGMENT_IDLE_AFTER_S 1.0
#define CUDALINK_SEGMENT_STALE_AFTER_S 10.0

/** Everything one look at a segment tells. */
typedef struct cudalink_segment_info {
  char name[CUDALINK_MAX_NAME + 1];
  cudalink_segment_state state;
  /* What a consumer's connect would make of it now, as far as it can be
   * told without CUDA: OK (LIVE, IDLE, STALE), ERR_NOT_CONNECTED
   * (STARTING: it retries), ERR_STALE (SHUT_DOWN), or the parser's code
   * (CORRUPT). */
  cudalink_status consumer_status;
  /* One sentence: why this state, and for a refused segment why a
   * consumer refuses it ("num_slots is 11, must be 1..10"). */
  char why[256];
  /* Decoded as far as the parser got (cudalink_header_parse_verbose). */
  cudalink_header header;
  uint16_t wire_flags; /* the flags field as written, BFLOAT16 bit included */
  uint64_t file_size;  /* bytes (Windows: the page-rounded mapping) */
  int64_t owner_uid;   /* the file's owner; -1 unknown (Windows) */
  /* 1: a cudalink producer holds the segment's lock (it is ours and
   * alive); 0: nobody does (a foreign producer, or none); -1 unknown. */
  int ours;
  /* Seconds since the producer's last frame: cudalink_now() - the header's
   * timestamp (our producers also stamp their start, before frame 1).
   * Negative when unknown: no timestamp yet (0), or one that cannot be of
   * this machine's clock (in the future, not finite). */
  double age_s;
  double read_at; /* cudalink_now() when the header was read */
} cudalink_segment_info;

/** The names of all segments (Linux: /dev/shm entries carrying the
 * magic, whatever their state), sorted by strcmp, in *names: a
 * NULL-terminated array in one allocation, freed with
 * cudalink_segment_list_free(); *count (may be NULL) is their number.
 * Entries that are not regular files, that this user cannot read, or whose
 * names break cudalink_check_name() are skipped. ERR_SHM when /dev/shm
 * cannot be read, ERR_NO_MEMORY, ERR_UNSUPPORTED on Windows. */
CUDALINK_API cudalink_status cudalink_segment_list(char ***names, size_t *count);

/** Frees what cudalink_segment_list() gave. Accepts NULL. */
CUDALINK_API void cudalink_segment_list_free(char **names);

/** Looks at segment name once (no CUDA, no waiting) and fills info.
 * idle_after_s and stale_after_s: the state thresholds (0 or less: the
 * defaults above). OK: info is filled, whatever the segment's state.
 * Otherwise info->consumer_status is the returned code and info->why says
 * what was found: ERR_BAD_NAME, ERR_NOT_FOUND (no such segment), ERR_SHM
 * (not a regular file, a symbolic link, permission denied: things a
 * consumer cannot open either), ERR_INVALID_ARG (info NULL). */
CUDALINK_API cudalink_status cudalink_segment_describe(const char *name, double idle_after_s,
                                                       double stale_after_s,
                                                       cudalink_segment_info *info);

/** Frames per second between two looks at the same segment (before read
 * earlier than after): write_idx's advance over the time between the
 * reads. Negative when it cannot be told: a corrupt header, another
 * version in between (the producer re-initialised, write_idx restarted),
 * write_idx went back, or no time passed. */
CUDALINK_API double cudalink_segment_fps(const cudalink_segment_info *before,
                                         const cudalink_segment_info *after);

/** For a "nothing named wanted" error: looks at the segments there are now.
 * text (text_size bytes, may be NULL) gets one sentence for the user: a
 * segment whose name differs from wanted only in ASCII case, when there is
 * one ("names are case-sensitive"), and the names a consumer could attach
 * to now (LIVE and IDLE), or that there are none. case_match (may be NULL)
 * gets that differing name, "" if none; a LIVE or IDLE one is preferred.
 * Returns how many LIVE or IDLE segments there are (wanted itself
 * included, if it is one), or a negative status: ERR_UNSUPPORTED on
 * Windows, ERR_SHM when /dev/shm cannot be read (text then says so). */
CUDALINK_API int cudalink_segment_hint(const char *wanted, char *text, size_t text_size,
                                       char *case_match, size_t case_match_size);

#ifdef __cplusplus
}
#endif

#endif /* CUDALINK_H */
