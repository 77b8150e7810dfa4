/* libFuzzer target for the consumer (lib/consumer.c and what it stands on:
 * shm.c's mappings and SIGBUS guard, wait.c, pace.c, protocol.c), run on the
 * CPU mock driver (tests/unit/mock_cuda.c) against a segment that changes
 * its bytes AND its size while the consumer connects, waits and copies.
 *
 * The library's sources are compiled into this program with the fuzzer,
 * ASan and UBSan; the mock driver stays a separate, uninstrumented .so that
 * the library loads through CUDALINK_CUDA_LIBRARY (set below to MOCK_CUDA,
 * its path at build time).
 *
 * Set up once (LLVMFuzzerInitialize):
 * - a LIVE PRODUCER, a forked child that runs the library's producer on the
 *   mock and publishes a frame every 2 ms (reformatting every 400 frames)
 *   into its own segment: its header is a real one, with real handles;
 * - a POOL of "device" buffers this process allocated and exported itself
 *   (the mock opens IPC handles in the exporting process too, unlike a real
 *   GPU): 10 of 2 MiB (what producers allocate) and 6 of odd sizes (8 KiB,
 *   4 KiB, 1 B, 128 B, 1 MiB, 64 KiB), each with an IPC event;
 * - a DESTINATION buffer for copies, with guard bytes around it.
 *
 * Each input (fuzz_consumer.h gives the encoding) is a small program:
 * a prelude builds the fuzz-owned segment (our own name, never the live
 * one) from a synthetic header, the live producer's header, raw bytes, or
 * nothing, at some size; then consumer records run one after the other on
 * this thread (create, connect, wait with short timeouts, copy,
 * acquire/release, queries, disconnect, destroy, interrupt) while mutator
 * records run at their own times on a second thread: field writes, raw
 * byte writes, publishes (a steady pace too), re-inits in our producer's
 * order, version bumps, ftruncate to 0 / short / exact / 4096 / 64 KiB /
 * 16 MiB, unlink, unlink and recreate, the lock taken and dropped, a clean
 * shutdown, handles swapped, the live header copied in, interrupts, the
 * name replaced by a FIFO, a symlink or a directory, and writes to the
 * unlinked previous file.
 *
 * An input gets 60 ms (FUZZ_CONSUMER_BUDGET_MS) of consumer
 * records; the mutator stops when they are done. Every call is bounded
 * (waits of at most 10 ms, settle_ms at most 24 ms), so libFuzzer's
 * -timeout finds a hang.
 *
 * Checked besides crashes and sanitizer reports (a violation prints
 * "FINDING <class>" and aborts, unless FUZZ_CONSUMER_TOLERATE lists the
 * class, comma-separated, or "all"):
 *   status     a status outside what cudalink.h documents for the call
 *   state      state after a status that contradicts it (a format after
 *              PRODUCER_GONE, no frame info after OK, a slot >= num_slots,
 *              a last_error after a successful connect, ...)
 *   ctx        a CUDA context left pushed on this thread
 *   copy-oob   a copy wrote outside the destination rows
 *   slot-range acquire gave (pointer, pitch) for a frame that the slot's
 *              memory does not hold, or copy tried to read past the slot
 *              (the mock refuses it: a GPU faults)
 *   pitch      acquire's pitch is not the format's packed row size
 *   leak       mock allocations / IPC mappings, descriptors or mappings of
 *              the segment still there after the consumer was destroyed
 *   slow       one call ran 300 ms past its own time bound
 *   refused    a connect failed on a valid segment (a synthetic header over
 *              good slots, in a regular file of at least its layout size)
 *              while nothing changed it
 *   reason     connect, or wait's PRODUCER_GONE, left last_error empty
 * LeakSanitizer checks host memory as usual. FUZZ_CONSUMER_TRACE=1 prints
 * every record as it runs (for writing up a finding). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "fuzz_consumer.h"
#include "util.h"

#ifndef MOCK_CUDA
#  error "MOCK_CUDA must name the mock driver (tests/unit/meson.build builds it)"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GOOD_BYTES (2u * 1024u * 1024u)
#define DST_CAP (4u * 1024u * 1024u)
#define GUARD 4096u
#define PATTERN 0xa5
#define CHECK_CAP (8u * 1024u * 1024u) /* acquire: frames up to this are read back */
#define MAX_OPS 64
#define SLOW_MARGIN_S 0.3
#define LIVE_PERIOD_S 0.002

/* ---- set up once ------------------------------------------------------ */

static char seg_name[64];  /* ours: the mutator changes it */
static char seg_path[80];  /* /dev/shm/seg_name */
static char live_name[64]; /* the live producer's */
static pid_t live_pid = -1;
static int live_ok;

static const cudalink_cuda *cu;
static CUcontext ctx;
static long (*mock_live)(void);
static int (*mock_depth)(void);

typedef struct pool_buf {
  CUdeviceptr p;
  size_t size;
  CUevent ev;
  uint8_t mem_handle[CUDALINK_IPC_HANDLE_SIZE];
  uint8_t event_handle[CUDALINK_IPC_HANDLE_SIZE];
} pool_buf;
static pool_buf pool[POOL_COUNT];
static const size_t odd_sizes[POOL_ODD] = { 8192, 4096, 1, 128, 1u << 20, 65536 };
static CUdeviceptr dst_buf; /* GUARD + DST_CAP + GUARD */
static uint8_t *check_buf;  /* CHECK_CAP host bytes */
static long live_allocs0;

static const cudalink_format formats[FMT_COUNT] = {
  { 64, 32, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA },
  { 1, 1, 1, CUDALINK_DTYPE_UINT8, 0 },
  { 16, 16, 4, CUDALINK_DTYPE_FLOAT32, 0 },
  { 7, 3, 3, CUDALINK_DTYPE_UINT16, 0 },
  { 33, 17, 2, CUDALINK_DTYPE_BFLOAT16, CUDALINK_FLAG_MONO_ALPHA },
  { 256, 256, 4, CUDALINK_DTYPE_FLOAT32, 0 }, /* 1 MiB */
  { 1024, 1024, 4, CUDALINK_DTYPE_UINT8, 0 }, /* 4 MiB: more than any slot */
  { 32768, 1, 1, CUDALINK_DTYPE_INT8, 0 },
  { 640, 480, 4, CUDALINK_DTYPE_FLOAT16, 0 }, /* 2.34 MiB: just over 2 MiB */
};

/* ---- findings ----------------------------------------------------------- */

static const char *tolerate;
static int trace;
static const char *const classes[] = { "status", "state", "ctx", "copy-oob", "slot-range",
                                        "pitch", "leak", "slow", "refused", "reason" };
#define NCLASSES (sizeof classes / sizeof classes[0])
static unsigned long tolerated_count[NCLASSES];

static void
print_tolerated(void)
{
  for (size_t i = 0; i < NCLASSES; i++)
    if (tolerated_count[i])
      fprintf(stderr, "fuzz_consumer: tolerated %s findings: %lu\n", classes[i],
              tolerated_count[i]);
}

static void
tracef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
tracef(const char *fmt, ...)
{
  va_list ap;
  if (!trace)
    return;
  va_start(ap, fmt);
  fprintf(stderr, "[%9.3f ms] ", cudalink_now() * 1e3);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int
tolerated(const char *cls)
{
  size_t n = strlen(cls);
  const char *t = tolerate;
  if (!t)
    return 0;
  if (strcmp(t, "all") == 0)
    return 1;
  while (*t) {
    if (strncmp(t, cls, n) == 0 && (t[n] == ',' || t[n] == '\0'))
      return 1;
    t = strchr(t, ',');
    if (!t)
      break;
    t++;
  }
  return 0;
}

static void cleanup_at_exit(void);

static void
finding(const char *cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
finding(const char *cls, const char *fmt, ...)
{
  va_list ap;
  size_t k = 0;
  while (k < NCLASSES && strcmp(classes[k], cls) != 0)
    k++;
  if (k == NCLASSES)
    abort(); /* a class not in the list */
  if (tolerated(cls)) {
    if (tolerated_count[k]++ == 0 || trace) {
      va_start(ap, fmt);
      fprintf(stderr, "fuzz_consumer: tolerated (FUZZ_CONSUMER_TOLERATE) %s: ", cls);
      vfprintf(stderr, fmt, ap);
      fputc('\n', stderr);
      va_end(ap);
    }
    return;
  }
  va_start(ap, fmt);
  fprintf(stderr, "\n==fuzz_consumer== FINDING %s: ", cls);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  /* what atexit would do: the pool's and the live producer's shared memory
   * (tens of MiB in /dev/shm) must not outlive us; libFuzzer then writes
   * the input as a crash artifact */
  cleanup_at_exit();
  abort();
}

/* ---- the live producer (child process) --------------------------------- */

static volatile sig_atomic_t live_stop;

static void
live_on_term(int sig)
{
  (void)sig;
  live_stop = 1;
}

static void
live_main(pid_t parent)
{
  static const cudalink_format fa = { 64, 32, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA };
  static const cudalink_format fb = { 40, 24, 1, CUDALINK_DTYPE_UINT16, 0 };
  struct sigaction sa;
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  const cudalink_cuda *lcu;
  CUcontext lctx;
  CUdeviceptr src = 0;
  char why[256];
  unsigned k = 0;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = live_on_term;
  sigaction(SIGTERM, &sa, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    _exit(0);
  if (!(lcu = cudalink_cuda_up(&lctx, why, sizeof why)) || lcu->MemAlloc(&src, 8192) != CUDA_SUCCESS ||
      lcu->MemsetD8Async(src, 0x5a, 8192, NULL) != CUDA_SUCCESS) {
    fprintf(stderr, "fuzz_consumer: live producer: no driver: %s\n", why);
    _exit(1);
  }
  cudalink_producer_config_init(&cfg);
  cfg.name = live_name;
  cfg.num_slots = 3;
  cfg.grace_ms = 50;
  if (cudalink_producer_create(&cfg, &fa, &p) != CUDALINK_OK) {
    fprintf(stderr, "fuzz_consumer: live producer: create failed\n");
    _exit(1);
  }
  while (!live_stop && getppid() == parent) {
    const cudalink_format *f = cudalink_producer_format(p);
    uint32_t row = 0;
    cudalink_format_sizes(f, NULL, &row);
    cudalink_producer_publish(p, src, row, NULL, 1);
    if (++k % 400 == 0)
      cudalink_producer_reformat(p, (k / 400) % 2 ? &fb : &fa);
    cudalink_sleep(LIVE_PERIOD_S);
  }
  cudalink_producer_destroy(p);
  lcu->MemFree(src);
  _exit(0);
}

static int
read_file_bytes(const char *path, uint8_t *buf, size_t cap, size_t *got)
{
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  ssize_t n;
  if (fd < 0)
    return 0;
  n = pread(fd, buf, cap, 0);
  close(fd);
  if (n < 0)
    return 0;
  *got = (size_t)n;
  return 1;
}

static int
live_header(uint8_t *buf, size_t cap, size_t *len, cudalink_header *h)
{
  char path[96];
  snprintf(path, sizeof path, "/dev/shm/%s", live_name);
  return live_ok && read_file_bytes(path, buf, cap, len) &&
         cudalink_header_parse(buf, *len, h) == CUDALINK_OK;
}

static void
start_live(void)
{
  pid_t parent = getpid();
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  cudalink_header h;
  size_t len;

  if (getenv("FUZZ_CONSUMER_NO_LIVE"))
    return;
  fflush(NULL);
  live_pid = fork();
  if (live_pid == 0)
    live_main(parent);
  if (live_pid < 0)
    return;
  live_ok = 1;
  for (int i = 0; i < 500; i++) {
    if (live_header(buf, sizeof buf, &len, &h) && h.write_idx > 0 && !h.shutdown_flag)
      return;
    cudalink_sleep(0.01);
  }
  fprintf(stderr, "fuzz_consumer: the live producer did not start; going on without it\n");
  live_ok = 0;
}

static void
stop_live(void)
{
  if (live_pid > 0) {
    kill(live_pid, SIGTERM);
    waitpid(live_pid, NULL, 0);
    live_pid = -1;
  }
}

/* ---- pool and destination (this process's own "device" memory) -------- */

static void
push(void)
{
  if (cu->CtxPushCurrent(ctx) != CUDA_SUCCESS)
    abort();
}

static void
pop(void)
{
  cu->CtxPopCurrent(NULL);
}

static void
setup_memory(void)
{
  cudalink_status st;
  char why[256] = "";
  void *h;

  if (!(cu = cudalink_cuda_get(&st, why, sizeof why))) {
    fprintf(stderr, "fuzz_consumer: cannot load %s: %s\n", MOCK_CUDA, why);
    abort();
  }
  h = dlopen(MOCK_CUDA, RTLD_NOW | RTLD_NOLOAD);
  if (!h) {
    fprintf(stderr, "fuzz_consumer: %s is not the driver the library loaded\n", MOCK_CUDA);
    abort();
  }
  *(void **)&mock_live = dlsym(h, "mock_cuda_live_allocations");
  *(void **)&mock_depth = dlsym(h, "mock_cuda_ctx_depth");
  dlclose(h);
  if (!mock_live || !mock_depth || cu->DevicePrimaryCtxRetain(&ctx, 0) != CUDA_SUCCESS)
    abort();
  push();
  for (unsigned i = 0; i < POOL_COUNT; i++) {
    pool_buf *b = &pool[i];
    CUipcMemHandle mh;
    CUipcEventHandle eh;
    b->size = i < POOL_GOOD ? GOOD_BYTES : odd_sizes[i - POOL_GOOD];
    if (cu->MemAlloc(&b->p, b->size) != CUDA_SUCCESS ||
        cu->MemsetD8Async(b->p, (unsigned char)(0x10 + i), b->size, NULL) != CUDA_SUCCESS ||
        cu->IpcGetMemHandle(&mh, b->p) != CUDA_SUCCESS ||
        cu->EventCreate(&b->ev, CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS) != CUDA_SUCCESS ||
        cu->EventRecord(b->ev, NULL) != CUDA_SUCCESS ||
        cu->IpcGetEventHandle(&eh, b->ev) != CUDA_SUCCESS)
      abort();
    memcpy(b->mem_handle, &mh, sizeof mh);
    memcpy(b->event_handle, &eh, sizeof eh);
  }
  if (cu->MemAlloc(&dst_buf, GUARD + DST_CAP + GUARD) != CUDA_SUCCESS)
    abort();
  pop();
  if (!(check_buf = malloc(CHECK_CAP)))
    abort();
  live_allocs0 = mock_live();
}

static void
cleanup_at_exit(void)
{
  stop_live();
  shm_unlink(seg_path + 8);
  if (cu && ctx) {
    push();
    for (unsigned i = 0; i < POOL_COUNT; i++) {
      if (pool[i].ev)
        cu->EventDestroy(pool[i].ev);
      if (pool[i].p)
        cu->MemFree(pool[i].p);
      pool[i].p = 0;
      pool[i].ev = NULL;
    }
    if (dst_buf)
      cu->MemFree(dst_buf);
    dst_buf = 0;
    pop();
  }
  free(check_buf);
  check_buf = NULL;
  print_tolerated();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  setenv("CUDALINK_CUDA_LIBRARY", MOCK_CUDA, 1);
  unsetenv("MOCK_CUDA_GPU_US");
  tolerate = getenv("FUZZ_CONSUMER_TOLERATE");
  trace = getenv("FUZZ_CONSUMER_TRACE") && atoi(getenv("FUZZ_CONSUMER_TRACE")) > 0;
  snprintf(seg_name, sizeof seg_name, "cudalink-fuzz-c%d", (int)getpid());
  snprintf(seg_path, sizeof seg_path, "/dev/shm/%s", seg_name);
  snprintf(live_name, sizeof live_name, "cudalink-fuzz-p%d", (int)getpid());
  /* the child loads its own driver: fork before this process loads one */
  start_live();
  setup_memory();
  atexit(cleanup_at_exit);
  return 0;
}

/* ---- reading the program ---------------------------------------------- */

typedef struct reader {
  const uint8_t *p, *end;
} reader;

static uint8_t
r8(reader *r)
{
  return r->p < r->end ? *r->p++ : 0;
}

static uint16_t
r16(reader *r)
{
  uint16_t v = r8(r);
  return (uint16_t)(v | (unsigned)r8(r) << 8);
}

static uint32_t
r32(reader *r)
{
  uint32_t v = r16(r);
  return v | (uint32_t)r16(r) << 16;
}

static uint64_t
r64(reader *r)
{
  uint64_t v = r32(r);
  return v | (uint64_t)r32(r) << 32;
}

typedef struct op {
  uint8_t kind;
  uint8_t delay;
  uint8_t a[16];
  uint8_t alen;
  uint64_t wide;
} op;

/* ---- the segment the mutator owns --------------------------------------- */

typedef struct seg {
  int fd;      /* the file under our name, or unlinked: -1 if none */
  int old_fd;  /* the previous one (unlinked), for M_TARGET */
  int use_old; /* writes go to old_fd */
  int locked;  /* fd holds the OFD write lock */
  uint32_t n;  /* num_slots of the layout the fields are written at */
  uint64_t version;
  uint32_t widx;
} seg;

static int
target_fd(const seg *s)
{
  return s->use_old && s->old_fd >= 0 ? s->old_fd : s->fd;
}

static void
seg_write(seg *s, size_t off, const void *p, size_t len)
{
  int fd = target_fd(s);
  if (fd >= 0 && pwrite(fd, p, len, (off_t)off) < 0)
    (void)0; /* a full /dev/shm: the mutation just did not happen */
}

static cudalink_layout
seg_layout(const seg *s)
{
  return cudalink_layout_for(s->n >= 1 && s->n <= CUDALINK_MAX_SLOTS ? s->n : 3);
}

static void
put_le(uint8_t *b, uint64_t v, unsigned len)
{
  for (unsigned i = 0; i < len; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}

static void
seg_put(seg *s, size_t off, uint64_t v, unsigned len)
{
  uint8_t b[8];
  put_le(b, v, len);
  seg_write(s, off, b, len);
}

static size_t
size_of_class(const seg *s, unsigned cls, uint16_t arg)
{
  size_t exact = seg_layout(s).size;
  switch (cls % SIZE_COUNT) {
    case SIZE_EXACT: return exact;
    case SIZE_PAGE: return 4096;
    case SIZE_SHORT: return arg % exact;
    case SIZE_ZERO: return 0;
    case SIZE_LARGE: return 65536;
    case SIZE_ONE_LESS: return exact - 1;
    case SIZE_HUGE: return 16u << 20;
    default: return arg;
  }
}

/* futex wake on the write_idx word, as our producer does after a publish */
static void
seg_wake(const seg *s)
{
  int fd = target_fd(s);
  void *m;
  if (fd < 0)
    return;
  m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED)
    return;
  /* a page past the end of the file: EFAULT, no signal (kernel access) */
  syscall(SYS_futex, (uint32_t *)((uint8_t *)m + 16), FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
  munmap(m, 4096);
}

static void
set_lock(seg *s, int on)
{
  struct flock fl;
  if (s->fd < 0 || s->locked == on)
    return;
  memset(&fl, 0, sizeof fl);
  fl.l_type = on ? F_WRLCK : F_UNLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(s->fd, F_OFD_SETLK, &fl) == 0)
    s->locked = on;
}

/* whatever is under our name goes (a file, a FIFO, a link, a directory) */
static void
clear_name(void)
{
  if (unlink(seg_path) != 0 && (errno == EISDIR || errno == EPERM))
    rmdir(seg_path);
}

static int
new_file(size_t size)
{
  int fd = shm_open(seg_path + 8, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0 && ftruncate(fd, (off_t)size) != 0) {
    close(fd);
    shm_unlink(seg_path + 8);
    return -1;
  }
  return fd;
}

/* a valid header: format f, n slots, slot buffers by pool choice */
static size_t
build_header(uint8_t *buf, unsigned f, uint32_t n, uint8_t pool_sel, uint64_t version,
             uint32_t widx)
{
  cudalink_header h;
  memset(&h, 0, sizeof h);
  h.version = version;
  h.num_slots = n;
  h.write_idx = widx;
  for (uint32_t s = 0; s < n; s++) {
    const pool_buf *b = pool_sel & 0x80 ? &pool[(pool_sel + 3u * s) % POOL_COUNT] : &pool[s];
    memcpy(h.mem_handle[s], b->mem_handle, CUDALINK_IPC_HANDLE_SIZE);
    memcpy(h.event_handle[s], b->event_handle, CUDALINK_IPC_HANDLE_SIZE);
  }
  h.format = formats[f % FMT_COUNT];
  h.timestamp = cudalink_now();
  if (cudalink_header_write(&h, buf, cudalink_layout_size(n)) != CUDALINK_OK)
    abort();
  return cudalink_layout_size(n);
}

/* ---- the mutator thread ------------------------------------------------ */

typedef struct mutator {
  pthread_t thread;
  seg *s;
  op ops[MAX_OPS];
  int nops;
  double start;
  atomic_int stop;
} mutator;

/* mutations done so far in this input (the mutator counts them) */
static atomic_uint mutations;

static pthread_mutex_t consumer_lock = PTHREAD_MUTEX_INITIALIZER;
static cudalink_consumer *consumer; /* swapped under consumer_lock */
static int consumer_on_seg;         /* it follows seg_name */

/* sleeps until t; 0 when told to stop first */
static int
sleep_until(mutator *m, double t)
{
  for (;;) {
    double left = t - cudalink_now();
    if (atomic_load(&m->stop))
      return 0;
    if (left <= 0)
      return 1;
    cudalink_sleep(left < 0.001 ? left : 0.001);
  }
}

static void
publish(seg *s)
{
  cudalink_layout L = seg_layout(s);
  double ts = cudalink_now();
  uint64_t bits;
  memcpy(&bits, &ts, sizeof bits);
  seg_put(s, L.timestamp, bits, 8);
  seg_put(s, L.shutdown_flag, 0, 1);
  seg_put(s, L.write_idx, ++s->widx, 4);
  seg_wake(s);
}

static void
mutate(mutator *m, const op *o)
{
  seg *s = m->s;
  cudalink_layout L = seg_layout(s);
  uint8_t buf[CUDALINK_MAX_LAYOUT_SIZE];
  const uint8_t *a = o->a;

  switch (o->kind) {
    case M_W8:
    case M_W32:
    case M_W64: {
      unsigned f = a[0] % F_COUNT, w = o->kind == M_W8 ? 1 : o->kind == M_W32 ? 4 : 8;
      uint64_t v = o->wide;
      size_t off = 0;
      /* w bytes at the field's offset, whatever the field's own width */
      switch (f) {
        case F_MAGIC: off = L.magic; break;
        case F_VERSION: off = L.version; s->version = v; break;
        case F_NUM_SLOTS:
          off = L.num_slots;
          if (v >= 1 && v <= CUDALINK_MAX_SLOTS)
            s->n = (uint32_t)v;
          break;
        case F_WRITE_IDX: off = L.write_idx; s->widx = (uint32_t)v; break;
        case F_SHUTDOWN: off = L.shutdown_flag; break;
        case F_WIDTH: off = L.width; break;
        case F_HEIGHT: off = L.height; break;
        case F_NUM_COMPS: off = L.num_comps; break;
        case F_KIND: off = L.format_kind; break;
        case F_BITS: off = L.bits_per_comp; break;
        case F_FLAGS: off = L.flags; break;
        case F_DATA_SIZE: off = L.data_size; break;
        case F_TIMESTAMP: off = L.timestamp; break;
        default: /* F_MEM_HANDLE, F_EVENT_HANDLE: of slot (v >> 8) % 10 */
          off = (f == F_MEM_HANDLE ? L.mem_handle0 : L.event_handle0) +
                ((v >> 8) % CUDALINK_MAX_SLOTS) * L.slot_stride;
          break;
      }
      tracef("M field %u = %llu (%u bytes at %zu)", f, (unsigned long long)v, w, off);
      seg_put(s, off, v, w);
      break;
    }
    case M_BYTES: {
      size_t off = (a[0] | (size_t)a[1] << 8) % 1400, len = a[2] % 16;
      if (len > sizeof o->a - 3)
        len = sizeof o->a - 3;
      tracef("M bytes %zu at %zu", len, off);
      seg_write(s, off, a + 3, len);
      break;
    }
    case M_PUBLISH:
      tracef("M publish %u", s->widx + 1);
      publish(s);
      break;
    case M_PUBLISH_N: {
      unsigned n = 1 + a[0] % 32;
      double period = (1 + a[1]) * 50e-6, t = cudalink_now();
      tracef("M publish %u frames, every %.0f us", n, period * 1e6);
      for (unsigned i = 0; i < n; i++) {
        publish(s);
        if (!sleep_until(m, t += period))
          break;
      }
      break;
    }
    case M_REINIT: {
      uint32_t n = 1 + a[1] % CUDALINK_MAX_SLOTS;
      size_t len = build_header(buf, a[0], n, a[2], s->version + 1, 0);
      cudalink_layout NL = cudalink_layout_for(n);
      struct stat st;
      int fd = target_fd(s);
      tracef("M reinit: format %u, %u slots, pool %u, version %llu", a[0] % FMT_COUNT, n, a[2],
             (unsigned long long)(s->version + 1));
      /* our producer grows the file first (never shrinks it) */
      if (fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size < len && ftruncate(fd, (off_t)len))
        (void)0;
      seg_put(s, NL.write_idx, 0, 4);
      seg_write(s, NL.num_slots, buf + NL.num_slots, 4);
      seg_write(s, NL.mem_handle0, buf + NL.mem_handle0, NL.shutdown_flag - NL.mem_handle0);
      seg_write(s, NL.shutdown_flag, buf + NL.shutdown_flag, len - NL.shutdown_flag);
      seg_write(s, NL.version, buf + NL.version, 8);
      s->n = n;
      s->widx = 0;
      s->version++;
      break;
    }
    case M_VERSION:
      tracef("M version %llu", (unsigned long long)(s->version + 1));
      seg_put(s, L.version, ++s->version, 8);
      break;
    case M_TRUNCATE: {
      size_t size = size_of_class(s, a[0], (uint16_t)(a[1] | a[2] << 8));
      int fd = target_fd(s);
      tracef("M truncate to %zu", size);
      if (fd >= 0 && ftruncate(fd, (off_t)size) != 0)
        (void)0;
      break;
    }
    case M_UNLINK:
      tracef("M unlink");
      clear_name();
      break;
    case M_RECREATE: {
      size_t size = size_of_class(s, a[0], (uint16_t)(a[1] | a[2] << 8));
      size_t got = 0;
      int fd;
      tracef("M recreate at %zu bytes", size);
      if (s->fd >= 0) {
        ssize_t n = pread(s->fd, buf, sizeof buf, 0);
        got = n > 0 ? (size_t)n : 0;
      }
      clear_name();
      fd = new_file(size);
      if (fd < 0)
        break;
      if (got > size)
        got = size;
      if (got && pwrite(fd, buf, got, 0) < 0)
        (void)0;
      if (s->old_fd >= 0)
        close(s->old_fd);
      s->old_fd = s->fd; /* keeps its lock, if it had one: it is unlinked now */
      s->fd = fd;
      s->locked = 0;
      s->use_old = 0;
      break;
    }
    case M_LOCK:
      tracef("M lock %s", a[0] & 1 ? "on" : "off");
      set_lock(s, a[0] & 1);
      break;
    case M_SHUTDOWN:
      tracef("M shutdown");
      seg_put(s, L.shutdown_flag, 1, 1);
      memset(buf, 0, sizeof buf);
      seg_write(s, L.mem_handle0, buf, L.shutdown_flag - L.mem_handle0);
      break;
    case M_HANDLE: {
      unsigned slot = a[0] % CUDALINK_MAX_SLOTS, what = a[2] % 4;
      const pool_buf *b = &pool[a[1] % POOL_COUNT];
      uint8_t zero[CUDALINK_IPC_HANDLE_SIZE] = { 0 };
      size_t mo = L.mem_handle0 + slot * L.slot_stride, eo = L.event_handle0 + slot * L.slot_stride;
      tracef("M handle: slot %u <- pool %u (%s)", slot, a[1] % POOL_COUNT,
             (const char *[]){ "both", "mem", "event", "zeroed" }[what]);
      if (what == 0 || what == 1)
        seg_write(s, mo, b->mem_handle, CUDALINK_IPC_HANDLE_SIZE);
      if (what == 0 || what == 2)
        seg_write(s, eo, b->event_handle, CUDALINK_IPC_HANDLE_SIZE);
      if (what == 3) {
        seg_write(s, mo, zero, sizeof zero);
        seg_write(s, eo, zero, sizeof zero);
      }
      break;
    }
    case M_LIVE: {
      cudalink_header h;
      size_t len;
      if (!live_header(buf, sizeof buf, &len, &h))
        break;
      tracef("M live header copied: version %llu, %u slots", (unsigned long long)h.version,
             h.num_slots);
      seg_write(s, 0, buf, len);
      s->n = h.num_slots;
      s->version = h.version;
      s->widx = h.write_idx;
      break;
    }
    case M_INTERRUPT:
      tracef("M interrupt %s", a[0] & 1 ? "on" : "off");
      pthread_mutex_lock(&consumer_lock);
      cudalink_consumer_interrupt(consumer, a[0] & 1);
      pthread_mutex_unlock(&consumer_lock);
      break;
    case M_NONREG:
      tracef("M name -> %s", (const char *[]){ "fifo", "symlink", "directory" }[a[0] % 3]);
      clear_name();
      switch (a[0] % 3) {
        case 0: mkfifo(seg_path, 0600); break;
        case 1: {
          char live_path[96];
          snprintf(live_path, sizeof live_path, "/dev/shm/%s", live_name);
          if (symlink(live_path, seg_path) != 0)
            (void)0;
          break;
        }
        default: mkdir(seg_path, 0700); break;
      }
      break;
    case M_TARGET:
      tracef("M target %s", a[0] & 1 ? "old" : "current");
      s->use_old = a[0] & 1;
      break;
  }
}

static void *
mutator_main(void *arg)
{
  mutator *m = arg;
  double t = m->start;
  for (int i = 0; i < m->nops; i++) {
    t += m->ops[i].delay * 50e-6;
    if (!sleep_until(m, t))
      break;
    atomic_fetch_add(&mutations, 1); /* before: a connect that ends now saw it */
    mutate(m, &m->ops[i]);
  }
  return NULL;
}

/* ---- the consumer side ------------------------------------------------- */

typedef struct run {
  double start, budget;
  uint32_t poll_us, settle_ms, flags;
  int follow_live;
  /* the segment as the prelude made it holds a valid header of good slots
   * (2 MiB each, frames up to 2 MiB) in a regular file: while nothing
   * changes it, a connect must succeed */
  int must_connect;
} run;

static void
on_log(void *user, cudalink_log_level level, const char *message)
{
  (void)user;
  if ((unsigned)level > CUDALINK_LOG_DEBUG)
    finding("state", "log callback got level %d", (int)level);
  if (strlen(message) > 4096)
    finding("state", "log message of %zu bytes", strlen(message));
  tracef("   log %d: %s", (int)level, message);
}

static int
status_in(cudalink_status st, const cudalink_status *set, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (set[i] == st)
      return 1;
  return 0;
}

#define EXPECT(call, st, ...)                                                              \
  do {                                                                                     \
    static const cudalink_status ok_[] = { __VA_ARGS__ };                                  \
    if (!status_in((st), ok_, sizeof ok_ / sizeof ok_[0]))                                 \
      finding("status", "%s returned %s (%d): %s", call, cudalink_status_name(st), (int)(st), \
              cudalink_consumer_last_error(consumer));                                     \
  } while (0)

#define PARSE_ERRORS                                                                   \
  CUDALINK_ERR_TRUNCATED, CUDALINK_ERR_BAD_MAGIC, CUDALINK_ERR_BAD_NUM_SLOTS,          \
      CUDALINK_ERR_BAD_DTYPE, CUDALINK_ERR_BAD_DIMENSIONS, CUDALINK_ERR_BAD_DATA_SIZE, \
      CUDALINK_ERR_BAD_NUM_COMPS

static void
check_ctx(const char *after)
{
  int d = mock_depth();
  if (d != 0) {
    finding("ctx", "%d CUDA context(s) left pushed after %s", d, after);
    while (mock_depth() > 0)
      cu->CtxPopCurrent(NULL);
  }
}

/* last_error is a string (strlen runs into ASan's redzone otherwise) */
static size_t
check_last_error(void)
{
  const char *e = cudalink_consumer_last_error(consumer);
  if (!e)
    finding("state", "last_error is NULL");
  return strlen(e);
}

static double call_t0;

static void
call_begin(void)
{
  call_t0 = cudalink_now();
}

static void
call_end(const char *call, double bound_s)
{
  double took = cudalink_now() - call_t0;
  check_ctx(call);
  check_last_error();
  if (took > bound_s + SLOW_MARGIN_S)
    finding("slow", "%s took %.0f ms (bound %.0f ms + %.0f)", call, took * 1e3, bound_s * 1e3,
            SLOW_MARGIN_S * 1e3);
}

static double
settle_bound(const run *r)
{
  /* attach: settle_ms, one more snapshot (2 ms) and retry gap (5 ms) */
  return r->settle_ms / 1000.0 + 0.02;
}

static void
check_connected_state(const char *after)
{
  const cudalink_format *f = cudalink_consumer_format(consumer);
  cudalink_consumer_stats stats;
  cudalink_consumer_get_stats(consumer, &stats);
  if (!f)
    return;
  if (cudalink_format_sizes(f, NULL, NULL) != CUDALINK_OK)
    finding("state", "after %s: format %ux%u x%u dtype %d does not check", after, f->width,
            f->height, f->num_comps, (int)f->dtype);
  if (stats.num_slots < 1 || stats.num_slots > CUDALINK_MAX_SLOTS)
    finding("state", "after %s: connected with num_slots %u", after, stats.num_slots);
  if (!cudalink_consumer_stream(consumer))
    finding("state", "after %s: connected without a stream", after);
}

static void
check_frame(const char *after, int must_have)
{
  cudalink_frame_info info;
  cudalink_consumer_stats stats;
  cudalink_status st;
  if (!consumer)
    return;
  st = cudalink_consumer_frame_info(consumer, &info);
  EXPECT("cudalink_consumer_frame_info", st, CUDALINK_OK, CUDALINK_ERR_NO_FRAME);
  cudalink_consumer_get_stats(consumer, &stats);
  if (must_have && st != CUDALINK_OK)
    finding("state", "after %s: no frame info (%s)", after, cudalink_status_name(st));
  if (st != CUDALINK_OK)
    return;
  if (!cudalink_consumer_format(consumer))
    finding("state", "after %s: frame info while not connected", after);
  if (info.write_idx == 0 || stats.num_slots == 0 || info.slot >= stats.num_slots ||
      info.slot != (info.write_idx - 1) % stats.num_slots)
    finding("state", "after %s: frame write_idx %u slot %u of %u slots", after, info.write_idx,
            info.slot, stats.num_slots);
}

static void
do_create(run *r, const uint8_t *a)
{
  static char long_name[CUDALINK_MAX_NAME + 2];
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  cudalink_status st;
  unsigned sel = a[0] % 8;

  cudalink_consumer_config_init(&cfg);
  if (sel == 5)
    cfg.name = "";
  else if (sel == 6)
    cfg.name = "no/slash";
  else if (sel == 7) {
    memset(long_name, 'n', sizeof long_name - 1);
    cfg.name = long_name;
  } else
    cfg.name = r->follow_live || sel == 4 ? live_name : seg_name;
  cfg.poll_interval_us = a[1] ? 20u + 20u * a[1] : r->poll_us;
  cfg.settle_ms = a[2] ? 1u + a[2] % 24u : r->settle_ms;
  cfg.flags = a[3] ? a[3] & 0xfu : r->flags;
  cfg.log = on_log;
  r->settle_ms = cfg.settle_ms;
  tracef("C create '%.20s' poll %u us settle %u ms flags %#x", cfg.name, cfg.poll_interval_us,
         cfg.settle_ms, cfg.flags);
  call_begin();
  st = cudalink_consumer_create(&cfg, &c);
  pthread_mutex_lock(&consumer_lock);
  cudalink_consumer *old = consumer;
  consumer = NULL;
  pthread_mutex_unlock(&consumer_lock);
  cudalink_consumer_destroy(old);
  pthread_mutex_lock(&consumer_lock);
  consumer = c;
  pthread_mutex_unlock(&consumer_lock);
  consumer_on_seg = cfg.name == seg_name;
  EXPECT("cudalink_consumer_create", st, CUDALINK_OK, CUDALINK_ERR_BAD_NAME);
  if ((st == CUDALINK_OK) != (c != NULL))
    finding("state", "create returned %s with consumer %p", cudalink_status_name(st), (void *)c);
  if (sel >= 5 && st == CUDALINK_OK)
    finding("state", "create accepted a bad name");
  call_end("cudalink_consumer_create", 0.05);
}

static void
do_destroy(void)
{
  tracef("C destroy");
  pthread_mutex_lock(&consumer_lock);
  cudalink_consumer *c = consumer;
  consumer = NULL;
  pthread_mutex_unlock(&consumer_lock);
  call_begin();
  cudalink_consumer_destroy(c);
  call_end("cudalink_consumer_destroy", 0.05);
}

static void
do_connect(const run *r)
{
  cudalink_status st;
  unsigned muts = atomic_load(&mutations);
  call_begin();
  st = cudalink_consumer_connect(consumer);
  tracef("C connect: %s: %s", cudalink_status_name(st), cudalink_consumer_last_error(consumer));
  call_end("cudalink_consumer_connect", settle_bound(r));
  if (!consumer) {
    EXPECT("cudalink_consumer_connect(NULL)", st, CUDALINK_ERR_INVALID_ARG);
    return;
  }
  EXPECT("cudalink_consumer_connect", st, CUDALINK_OK, CUDALINK_ERR_NOT_FOUND,
         CUDALINK_ERR_NOT_CONNECTED, CUDALINK_ERR_SHM, CUDALINK_ERR_STALE, CUDALINK_ERR_IPC_OPEN,
         CUDALINK_ERR_CUDA, CUDALINK_ERR_NO_MEMORY, CUDALINK_ERR_SLOT_TOO_SMALL, PARSE_ERRORS);
  if (st == CUDALINK_OK) {
    if (!cudalink_consumer_format(consumer))
      finding("state", "connect OK without a format");
    if (check_last_error() != 0)
      finding("state", "connect OK with last_error '%s'", cudalink_consumer_last_error(consumer));
    check_connected_state("connect");
    check_frame("connect", 0);
  } else {
    if (r->must_connect && muts == 0 && atomic_load(&mutations) == 0 && !r->follow_live &&
        consumer_on_seg)
      finding("refused", "connect refused a valid segment that nothing changed: %s: %s",
              cudalink_status_name(st), cudalink_consumer_last_error(consumer));
    if (cudalink_consumer_format(consumer))
      finding("state", "connect failed (%s) but a format is there", cudalink_status_name(st));
    if (check_last_error() == 0)
      finding("reason", "connect failed (%s) without a reason in last_error",
              cudalink_status_name(st));
  }
}

static cudalink_status
do_wait(const run *r, int64_t timeout_us)
{
  cudalink_status st;
  call_begin();
  st = cudalink_consumer_wait(consumer, timeout_us);
  tracef("C wait %lld us: %s", (long long)timeout_us, cudalink_status_name(st));
  call_end("cudalink_consumer_wait", timeout_us * 1e-6 + settle_bound(r));
  if (!consumer) {
    EXPECT("cudalink_consumer_wait(NULL)", st, CUDALINK_ERR_INVALID_ARG);
    return st;
  }
  EXPECT("cudalink_consumer_wait", st, CUDALINK_OK, CUDALINK_ERR_TIMEOUT,
         CUDALINK_ERR_FORMAT_CHANGED, CUDALINK_ERR_PRODUCER_GONE, CUDALINK_ERR_NOT_CONNECTED,
         CUDALINK_ERR_INTERRUPTED);
  switch (st) {
    case CUDALINK_OK:
      check_connected_state("wait OK");
      check_frame("wait OK", 1);
      if (!cudalink_consumer_format(consumer))
        finding("state", "wait OK without a format");
      break;
    case CUDALINK_ERR_FORMAT_CHANGED:
      if (!cudalink_consumer_format(consumer))
        finding("state", "wait FORMAT_CHANGED without a format");
      check_connected_state("wait FORMAT_CHANGED");
      break;
    case CUDALINK_ERR_PRODUCER_GONE:
    case CUDALINK_ERR_NOT_CONNECTED:
      if (cudalink_consumer_format(consumer))
        finding("state", "wait %s but still a format", cudalink_status_name(st));
      if (cudalink_consumer_stream(consumer))
        finding("state", "wait %s but still a stream", cudalink_status_name(st));
      if (st == CUDALINK_ERR_PRODUCER_GONE && check_last_error() == 0)
        finding("reason", "wait PRODUCER_GONE without a reason in last_error");
      break;
    default:
      break;
  }
  return st;
}

static void
fill_dst(size_t len)
{
  uint8_t *p = (uint8_t *)(uintptr_t)dst_buf;
  memset(p, PATTERN, len);
}

/* bytes outside the destination rows must be untouched */
static void
check_dst(size_t filled, size_t pitch, size_t row, uint64_t height, int wrote)
{
  const uint8_t *p = (const uint8_t *)(uintptr_t)dst_buf;
  size_t span_end = GUARD;
  for (size_t i = 0; i < GUARD; i++)
    if (p[i] != PATTERN)
      finding("copy-oob", "copy wrote %zu bytes before the destination", GUARD - i);
  if (wrote) {
    for (uint64_t y = 0; y < height; y++) {
      size_t rs = GUARD + (size_t)y * pitch;
      for (size_t x = row; x < pitch && rs + x < filled; x++)
        if (p[rs + x] != PATTERN)
          finding("copy-oob", "copy wrote into row %llu's padding at byte %zu (row %zu, pitch %zu)",
                  (unsigned long long)y, x, row, pitch);
    }
    span_end = GUARD + (size_t)(pitch * (height - 1) + row);
  }
  for (size_t i = span_end; i < filled; i++)
    if (p[i] != PATTERN)
      finding("copy-oob", "copy wrote at byte %zu past the destination's start (span ends at %zu)",
              i - GUARD, span_end - GUARD);
}

static void
do_copy(uint8_t extra)
{
  const cudalink_format *f = cudalink_consumer_format(consumer);
  uint32_t row = 64, size = 0;
  uint64_t pitch, span = 0;
  size_t filled = 2 * GUARD, total = 2 * GUARD + DST_CAP;
  int fits = 0; /* the mock lets the copy write there */
  cudalink_status st;

  if (f)
    cudalink_format_sizes(f, &size, &row);
  pitch = extra == 255 ? (uint64_t)row - 1 : (uint64_t)row + extra;
  if (f) {
    span = pitch * (f->height - 1) + row;
    fits = span <= DST_CAP + GUARD;
    filled = span + 2 * GUARD < total ? (size_t)span + 2 * GUARD : total;
  }
  fill_dst(filled);
  call_begin();
  st = cudalink_consumer_copy(consumer, dst_buf + GUARD, (size_t)pitch, NULL);
  tracef("C copy pitch %llu: %s: %s", (unsigned long long)pitch, cudalink_status_name(st),
         cudalink_consumer_last_error(consumer));
  call_end("cudalink_consumer_copy", 0.05);
  EXPECT("cudalink_consumer_copy", st, CUDALINK_OK, CUDALINK_ERR_TORN, CUDALINK_ERR_INVALID_ARG,
         CUDALINK_ERR_NOT_CONNECTED, CUDALINK_ERR_NO_FRAME, CUDALINK_ERR_CUDA);
  if (st == CUDALINK_ERR_INVALID_ARG && consumer && pitch >= row)
    finding("status", "copy refused a destination pitch %llu >= row %u", (unsigned long long)pitch,
            row);
  if ((st == CUDALINK_OK || st == CUDALINK_ERR_TORN) && pitch < row)
    finding("state", "copy took a destination pitch %llu < row %u", (unsigned long long)pitch, row);
  if (st == CUDALINK_ERR_CUDA && f && span <= DST_CAP && pitch >= row &&
      strstr(cudalink_consumer_last_error(consumer), "cuMemcpy2DAsync"))
    finding("slot-range",
            "copy of a %ux%u x%u %s frame (%u bytes) failed in the driver: the slot's memory "
            "is smaller than the frame: %s",
            f->width, f->height, f->num_comps, cudalink_dtype_name(f->dtype), size,
            cudalink_consumer_last_error(consumer));
  check_dst(filled, (size_t)pitch, row, f ? f->height : 0,
            f && (st == CUDALINK_OK || st == CUDALINK_ERR_TORN) && fits);
  if (st == CUDALINK_OK || st == CUDALINK_ERR_TORN)
    check_frame("copy", 1);
}

static void
do_release(void)
{
  cudalink_status st;
  call_begin();
  st = cudalink_consumer_release(consumer, NULL);
  tracef("C release: %s", cudalink_status_name(st));
  call_end("cudalink_consumer_release", 0.05);
  EXPECT("cudalink_consumer_release", st, CUDALINK_OK, CUDALINK_ERR_TORN, CUDALINK_ERR_INVALID_ARG,
         CUDALINK_ERR_NOT_CONNECTED, CUDALINK_ERR_NO_FRAME, CUDALINK_ERR_CUDA);
}

static void
do_acquire(int release)
{
  uint64_t src = 0;
  size_t pitch = 0;
  cudalink_status st;
  call_begin();
  st = cudalink_consumer_acquire(consumer, NULL, &src, &pitch);
  tracef("C acquire: %s", cudalink_status_name(st));
  call_end("cudalink_consumer_acquire", 0.05);
  EXPECT("cudalink_consumer_acquire", st, CUDALINK_OK, CUDALINK_ERR_INVALID_ARG,
         CUDALINK_ERR_NOT_CONNECTED, CUDALINK_ERR_NO_FRAME, CUDALINK_ERR_CUDA);
  if (st == CUDALINK_ERR_INVALID_ARG && consumer)
    finding("status", "acquire: INVALID_ARG for valid arguments");
  if (st == CUDALINK_OK) {
    const cudalink_format *f = cudalink_consumer_format(consumer);
    uint32_t row = 0, size = 0;
    if (!f) {
      finding("state", "acquire OK while not connected");
      return;
    }
    cudalink_format_sizes(f, &size, &row);
    if (pitch != row)
      finding("pitch", "acquire: pitch %zu, the format's row is %u", pitch, row);
    /* what a kernel would read: every byte must be in the slot's memory */
    if (size > CHECK_CAP)
      finding("slot-range", "acquire gave a %u-byte frame (%ux%u x%u %s): no slot holds that",
              size, f->width, f->height, f->num_comps, cudalink_dtype_name(f->dtype));
    else {
      CUresult res;
      push();
      res = cu->MemcpyDtoH(check_buf, (CUdeviceptr)src, size);
      pop();
      if (res != CUDA_SUCCESS)
        finding("slot-range",
                "acquire gave a %u-byte frame (%ux%u x%u %s) that the slot's memory does not "
                "hold (a kernel reading it faults)",
                size, f->width, f->height, f->num_comps, cudalink_dtype_name(f->dtype));
    }
  }
  if (release)
    do_release();
}

static void
do_query(void)
{
  cudalink_consumer_stats stats;
  int ours;
  tracef("C query");
  call_begin();
  cudalink_consumer_get_stats(consumer, &stats);
  ours = cudalink_consumer_producer_is_ours(consumer);
  if (ours != 0 && ours != 1)
    finding("state", "producer_is_ours gave %d", ours);
  if (stats.version == 0 && cudalink_consumer_format(consumer))
    finding("state", "connected at version 0");
  check_connected_state("query");
  check_frame("query", 0);
  call_end("queries", 0.05);
}

static void
run_consumer(run *r, const op *o)
{
  const uint8_t *a = o->a;
  switch (o->kind) {
    case C_CREATE: do_create(r, a); break;
    case C_CONNECT: do_connect(r); break;
    case C_WAIT: do_wait(r, 40 * (int64_t)a[0]); break;
    case C_COPY: do_copy(a[0]); break;
    case C_ACQ_REL: do_acquire(1); break;
    case C_ACQUIRE: do_acquire(0); break;
    case C_RELEASE: do_release(); break;
    case C_QUERY: do_query(); break;
    case C_DISCONNECT:
      tracef("C disconnect");
      call_begin();
      cudalink_consumer_disconnect(consumer);
      call_end("cudalink_consumer_disconnect", 0.05);
      if (cudalink_consumer_format(consumer) || cudalink_consumer_stream(consumer))
        finding("state", "disconnect left a format or a stream");
      break;
    case C_DESTROY: do_destroy(); break;
    case C_SLEEP: cudalink_sleep(a[0] * 50e-6); break;
    case C_LOOP: {
      unsigned n = 1 + a[0] % 16;
      for (unsigned i = 0; i < n && cudalink_now() - r->start < r->budget; i++) {
        cudalink_status st = do_wait(r, 40 * (int64_t)a[1]);
        if (st == CUDALINK_OK)
          do_copy(0);
        else if (st != CUDALINK_ERR_TIMEOUT && st != CUDALINK_ERR_FORMAT_CHANGED)
          break;
      }
      break;
    }
    case C_INTERRUPT:
      tracef("C interrupt %s", a[0] & 1 ? "on" : "off");
      cudalink_consumer_interrupt(consumer, a[0] & 1);
      break;
  }
}

/* ---- one input --------------------------------------------------------- */

static int
count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own */
}

static int
count_seg_maps(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    n += strstr(line, seg_path) != NULL;
  fclose(f);
  return n;
}

static unsigned
arg_count(uint8_t kind, int mutator)
{
  if (mutator) {
    switch (kind) {
      case M_W8: return 1 + 1;
      case M_W32: return 1 + 4;
      case M_W64: return 1 + 8;
      case M_BYTES: return 3 + 13;
      case M_PUBLISH_N: return 2;
      case M_REINIT: return 3;
      case M_TRUNCATE: return 3;
      case M_RECREATE: return 3;
      case M_HANDLE: return 3;
      case M_LOCK:
      case M_INTERRUPT:
      case M_NONREG:
      case M_TARGET: return 1;
      default: return 0;
    }
  }
  switch (kind) {
    case C_CREATE: return 4;
    case C_WAIT:
    case C_COPY:
    case C_SLEEP:
    case C_INTERRUPT: return 1;
    case C_LOOP: return 2;
    default: return 0;
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static double budget = -1;
  reader r = { data, data + size };
  uint8_t pre[PRE_LEN], buf[4096];
  op cops[MAX_OPS];
  int ncops = 0;
  mutator m;
  seg s;
  run rn;
  size_t hlen = 0;
  int fds0, have_thread;
  long allocs_before;

  if (budget < 0) {
    const char *b = getenv("FUZZ_CONSUMER_BUDGET_MS");
    budget = (b ? atof(b) : 60.0) / 1000.0;
  }
  fds0 = count_fds();
  allocs_before = mock_live();
  if (allocs_before != live_allocs0)
    finding("leak", "%ld mock allocations before the input, %ld after set-up", allocs_before,
            live_allocs0);

  for (unsigned i = 0; i < PRE_LEN; i++)
    pre[i] = r8(&r);
  memset(&s, 0, sizeof s);
  s.fd = s.old_fd = -1;
  memset(&m, 0, sizeof m);
  m.s = &s;
  atomic_init(&m.stop, 0);

  /* the segment's first contents */
  memset(buf, 0, sizeof buf);
  switch (pre[PRE_BASE] & 3) {
    case BASE_SYNTH:
      s.n = 1 + pre[PRE_SLOTS] % CUDALINK_MAX_SLOTS;
      s.version = 1 + pre[PRE_SLOTS] / 16;
      hlen = build_header(buf, pre[PRE_FORMAT], s.n, pre[PRE_POOL], s.version, 0);
      break;
    case BASE_LIVE: {
      cudalink_header h;
      if (live_header(buf, sizeof buf, &hlen, &h)) {
        s.n = h.num_slots;
        s.version = h.version;
        s.widx = h.write_idx;
      } else {
        s.n = 3;
        s.version = 1;
        hlen = build_header(buf, 0, 3, 0, 1, 0);
      }
      break;
    }
    case BASE_RAW: {
      cudalink_header h;
      hlen = (size_t)r8(&r) * 6;
      for (size_t i = 0; i < hlen; i++)
        buf[i] = r8(&r);
      cudalink_header_parse(buf, hlen, &h);
      s.n = h.num_slots;
      s.version = h.version;
      s.widx = h.write_idx;
      break;
    }
    default:
      s.n = 3;
      break;
  }
  if ((pre[PRE_BASE] & 3) != BASE_NONE) {
    size_t fsize = size_of_class(&s, pre[PRE_SIZE], (uint16_t)(pre[PRE_SLOTS] * 7u));
    clear_name();
    s.fd = new_file(fsize);
    if (s.fd >= 0 && hlen && pwrite(s.fd, buf, hlen < fsize ? hlen : fsize, 0) < 0)
      (void)0;
    if (pre[PRE_BASE] & 4)
      set_lock(&s, 1);
    tracef("segment: base %d, %zu header bytes, file %zu bytes, %u slots%s", pre[PRE_BASE] & 3,
           hlen, fsize, s.n, s.locked ? ", locked" : "");
  }

  /* the program */
  while (r.p < r.end) {
    uint8_t b = r8(&r);
    int mut = (b & 0x80) != 0;
    op o;
    memset(&o, 0, sizeof o);
    o.kind = (uint8_t)((b & 0x7f) % (mut ? M_COUNT : C_COUNT));
    if (mut)
      o.delay = r8(&r);
    o.alen = (uint8_t)arg_count(o.kind, mut);
    for (unsigned i = 0; i < o.alen; i++)
      o.a[i] = r8(&r);
    if (mut && (o.kind == M_W8 || o.kind == M_W32 || o.kind == M_W64)) {
      reader ar = { o.a + 1, o.a + o.alen };
      o.wide = r64(&ar);
    }
    if (mut && m.nops < MAX_OPS)
      m.ops[m.nops++] = o;
    else if (!mut && ncops < MAX_OPS)
      cops[ncops++] = o;
  }

  memset(&rn, 0, sizeof rn);
  rn.poll_us = 20u + 20u * pre[PRE_POLL];
  rn.settle_ms = 1u + pre[PRE_SETTLE] % 24u;
  rn.flags = pre[PRE_CONFIG] & 0xfu;
  rn.follow_live = (pre[PRE_CONFIG] & 0x10) != 0 && live_ok;
  rn.budget = budget;
  rn.must_connect = (pre[PRE_BASE] & 3) == BASE_SYNTH && !(pre[PRE_POOL] & 0x80) &&
                    pre[PRE_FORMAT] % FMT_COUNT != 6 && pre[PRE_FORMAT] % FMT_COUNT != 8 &&
                    pre[PRE_SIZE] % SIZE_COUNT != SIZE_SHORT &&
                    pre[PRE_SIZE] % SIZE_COUNT != SIZE_ZERO &&
                    pre[PRE_SIZE] % SIZE_COUNT != SIZE_ONE_LESS &&
                    (pre[PRE_SIZE] % SIZE_COUNT != SIZE_ARG ||
                     pre[PRE_SLOTS] * 7u >= cudalink_layout_size(s.n));
  atomic_store(&mutations, 0);
  rn.start = m.start = cudalink_now();

  /* every input starts with a consumer (a C_CREATE may replace it) */
  {
    uint8_t a[4] = { 0, 0, 0, 0 };
    do_create(&rn, a);
  }
  have_thread = m.nops > 0 && pthread_create(&m.thread, NULL, mutator_main, &m) == 0;
  for (int i = 0; i < ncops && cudalink_now() - rn.start < rn.budget; i++)
    run_consumer(&rn, &cops[i]);
  if (have_thread) {
    atomic_store(&m.stop, 1);
    pthread_join(m.thread, NULL);
  }
  do_destroy();

  /* the segment goes */
  if (s.fd >= 0)
    close(s.fd);
  if (s.old_fd >= 0)
    close(s.old_fd);
  clear_name();

  /* nothing of the consumer is left */
  if (mock_live() != live_allocs0)
    finding("leak", "%ld mock allocations / IPC mappings left after the consumer was destroyed",
            mock_live() - live_allocs0);
  if (fds0 >= 0 && count_fds() != fds0)
    finding("leak", "%d file descriptors more after the input", count_fds() - fds0);
  if (count_seg_maps() != 0)
    finding("leak", "%d mappings of %s left after the input", count_seg_maps(), seg_path);
  return 0;
}
