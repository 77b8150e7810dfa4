/* ring_win: libcudalink's producer and consumer moving frames between
 * Windows processes through a named mapping, on the CPU mock driver
 * (tests/unit/mock_cuda.c built as mockcuda.dll: "device" memory is a named
 * mapping too, so IPC handles open in another process). Windows only; run
 * under Wine by .ci/windows-check.sh:
 *
 *   ring_win scenario NAME     the whole story below, in child processes
 *   ring_win produce NAME [--frames N] [--fps F] [--reformat-at K] [--hold]
 *   ring_win consume NAME [--min-frames N] [--reformats N] [--died N]
 *                         [--shutdowns N] [--poll-us US] [--seconds S]
 *
 * The scenario: one consumer process follows the name throughout while
 *  1. producer 1 publishes 30 frames of 64x32, re-initialises to 96x48
 *     (reformat), publishes 30 more and shuts down cleanly;
 *  2. the mapping outlives producer 1 while a handle to it is open (ours),
 *     and is gone once the last handle is closed;
 *  3. producer 2 publishes until it is killed (TerminateProcess); a third
 *     producer of the same name is refused (ERR_BUSY) while it lives;
 *  4. producer 3 publishes 30 frames and shuts down.
 * The consumer checks every byte of every frame (a pattern of write_idx and
 * width), that the timestamps are of its own clock (QueryPerformanceCounter
 * seconds), that the doorbell wakes it (it polls only every 250 ms), and
 * that it saw the reformat, the death and both clean shutdowns.
 *
 * Exit codes: 0 fine, 1 a check failed, 2 no (mock) driver, 3 ERR_BUSY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "cuda_table.h" /* the library's own driver table (as cudalink-demo) */
#include "cudalink.h"

#define W1 64
#define H1 32
#define W2 96
#define H2 48
#define SLOTS 3

static uint8_t
pattern(uint32_t write_idx, uint32_t width, size_t i)
{
  return (uint8_t)(write_idx * 31u + (uint32_t)i * 7u + width);
}

static const cudalink_cuda *
driver(const char *who)
{
  char why[256];
  CUcontext ctx;
  const cudalink_cuda *cu = cudalink_cuda_up(&ctx, why, sizeof why);
  if (!cu) {
    printf("%s: no driver: %s\n", who, why);
    exit(2);
  }
  return cu;
}

static void
log_line(void *user, cudalink_log_level level, const char *msg)
{
  static const char *names[] = {"error", "warning", "info", "debug"};
  printf("%s: [%s] %s\n", (const char *)user, names[level], msg);
}

static const char *
opt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 3; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[i + 1] : "1";
  return def;
}

/* ---- producer ------------------------------------------------------------ */

static int
fill_and_publish(const cudalink_cuda *cu, cudalink_producer *p, CUdeviceptr src, uint8_t *host)
{
  const cudalink_format *f = cudalink_producer_format(p);
  cudalink_producer_stats st;
  uint32_t size = 0, row = 0;
  cudalink_format_sizes(f, &size, &row);
  cudalink_producer_get_stats(p, &st);
  for (size_t i = 0; i < size; i++)
    host[i] = pattern(st.write_idx + 1, f->width, i);
  if (cu->MemcpyHtoD(src, host, size) != CUDA_SUCCESS)
    return 0;
  return cudalink_producer_publish(p, src, row, NULL, 1) == CUDALINK_OK;
}

static int
produce(int argc, char **argv)
{
  const char *name = argv[2];
  long frames = atol(opt(argc, argv, "--frames", "30"));
  double fps = atof(opt(argc, argv, "--fps", "60"));
  long reformat_at = atol(opt(argc, argv, "--reformat-at", "0"));
  int hold = atoi(opt(argc, argv, "--hold", "0"));
  cudalink_format fmt = {W1, H1, 4, CUDALINK_DTYPE_UINT8, 0};
  cudalink_producer_config cfg;
  cudalink_producer *p = NULL;
  cudalink_segment_info info;
  CUdeviceptr src = 0;
  static uint8_t host[W2 * H2 * 4];
  const cudalink_cuda *cu = driver("producer");

  cudalink_producer_config_init(&cfg);
  cfg.name = name;
  cfg.num_slots = SLOTS;
  cfg.log = log_line;
  cfg.log_user_data = "producer";
  cudalink_status st = cudalink_producer_create(&cfg, &fmt, &p);
  if (st != CUDALINK_OK) {
    printf("producer: cannot publish '%s': %s (%s)\n", name, cudalink_status_name(st),
           cudalink_strerror(st));
    return st == CUDALINK_ERR_BUSY ? 3 : 1;
  }
  if (cudalink_segment_describe(name, 0, 0, &info) == CUDALINK_OK)
    printf("producer: '%s' created: %ux%u uint8 x4, %u slots, version %llu; a %llu-byte "
           "mapping for the %lu-byte layout\n",
           name, fmt.width, fmt.height, SLOTS, (unsigned long long)info.header.version,
           (unsigned long long)info.file_size, (unsigned long)cudalink_layout_size(SLOTS));
  if (cu->MemAlloc(&src, sizeof host) != CUDA_SUCCESS) {
    printf("producer: cuMemAlloc failed\n");
    return 1;
  }
  fflush(stdout);
  DWORD period_ms = fps > 0 ? (DWORD)(1000.0 / fps) : 0;
  long k;
  for (k = 0; hold || k < frames; k++) {
    if (reformat_at && k == reformat_at) {
      cudalink_format f2 = {W2, H2, 4, CUDALINK_DTYPE_UINT8, 0};
      st = cudalink_producer_reformat(p, &f2);
      printf("producer: reformat to %ux%u: %s\n", W2, H2, cudalink_status_name(st));
      fflush(stdout);
      if (st != CUDALINK_OK)
        return 1;
    }
    if (!fill_and_publish(cu, p, src, host)) {
      printf("producer: publish failed: %s\n", cudalink_producer_last_error(p));
      return 1;
    }
    if (k == 0 || (hold && k % 60 == 0)) {
      printf("producer: frame %ld published\n", k + 1);
      fflush(stdout);
    }
    Sleep(period_ms);
  }
  printf("producer: %ld frames published; clean shutdown\n", k);
  fflush(stdout);
  cudalink_producer_destroy(p);
  cu->MemFree(src);
  return 0;
}

/* ---- consumer ------------------------------------------------------------ */

typedef struct tally {
  long frames, bad, torn, reformats, died, shutdowns, connects;
  double lat_sum, lat_max, age_min;
} tally;

static int
check_frame(const cudalink_cuda *cu, cudalink_consumer *c, CUdeviceptr dst, uint8_t *host,
            tally *t)
{
  const cudalink_format *f = cudalink_consumer_format(c);
  cudalink_frame_info fi;
  uint32_t size = 0, row = 0;
  double age = cudalink_now();

  cudalink_consumer_frame_info(c, &fi);
  age -= fi.timestamp;
  cudalink_format_sizes(f, &size, &row);
  cudalink_status st = cudalink_consumer_copy(c, dst, row, NULL);
  if (st == CUDALINK_ERR_TORN) {
    t->torn++;
    return 1;
  }
  if (st != CUDALINK_OK || cu->MemcpyDtoH(host, dst, size) != CUDA_SUCCESS) {
    printf("consumer: copy of frame %u failed: %s\n", fi.write_idx, cudalink_status_name(st));
    t->bad++;
    return 0;
  }
  for (size_t i = 0; i < size; i++) {
    if (host[i] != pattern(fi.write_idx, f->width, i)) {
      printf("consumer: frame %u (%ux%u): byte %lu is %u, expected %u\n", fi.write_idx, f->width,
             f->height, (unsigned long)i, host[i], pattern(fi.write_idx, f->width, i));
      t->bad++;
      return 0;
    }
  }
  /* the producer's timestamp is of our clock: a little in the past */
  if (!(age >= 0 && age < 2.0)) {
    printf("consumer: frame %u: timestamp %.6f is %.6f s from now (%.6f): not this clock\n",
           fi.write_idx, fi.timestamp, -age, cudalink_now());
    t->bad++;
    return 0;
  }
  t->frames++;
  t->lat_sum += age;
  if (age > t->lat_max)
    t->lat_max = age;
  if (t->frames == 1 || age < t->age_min)
    t->age_min = age;
  return 1;
}

static int
consume(int argc, char **argv)
{
  const char *name = argv[2];
  long min_frames = atol(opt(argc, argv, "--min-frames", "1"));
  long want_reformats = atol(opt(argc, argv, "--reformats", "0"));
  long want_died = atol(opt(argc, argv, "--died", "0"));
  long want_shutdowns = atol(opt(argc, argv, "--shutdowns", "1"));
  uint32_t poll_us = (uint32_t)atol(opt(argc, argv, "--poll-us", "250000"));
  double seconds = atof(opt(argc, argv, "--seconds", "30"));
  const cudalink_cuda *cu = driver("consumer");
  cudalink_consumer_config cfg;
  cudalink_consumer *c = NULL;
  static uint8_t host[W2 * H2 * 4];
  CUdeviceptr dst = 0;
  tally t;
  double deadline = cudalink_now() + seconds;
  int connected = 0;
  cudalink_status last_connect = CUDALINK_OK;

  memset(&t, 0, sizeof t);
  cudalink_consumer_config_init(&cfg);
  cfg.name = name;
  cfg.poll_interval_us = poll_us;
  cudalink_consumer_create(&cfg, &c);
  if (cu->MemAlloc(&dst, sizeof host) != CUDA_SUCCESS)
    return 1;
  printf("consumer: following '%s' (poll interval %u ms)\n", name, poll_us / 1000);
  fflush(stdout);
  while (cudalink_now() < deadline &&
         !(t.frames >= min_frames && t.reformats >= want_reformats && t.died >= want_died &&
           t.shutdowns >= want_shutdowns)) {
    cudalink_status st;
    if (!connected) {
      st = cudalink_consumer_connect(c);
      if (st != CUDALINK_OK) {
        /* nothing there yet, or a producer still starting: say so once */
        if (st != last_connect) {
          printf("consumer: connect: %s: %s\n", cudalink_status_name(st),
                 cudalink_consumer_last_error(c));
          fflush(stdout);
        }
        last_connect = st;
        Sleep(20);
        continue;
      }
      last_connect = CUDALINK_OK;
      const cudalink_format *f = cudalink_consumer_format(c);
      cudalink_consumer_stats s;
      cudalink_consumer_get_stats(c, &s);
      printf("consumer: connected: %ux%u %s x%u, %u slots, version %llu, producer %s\n", f->width,
             f->height, cudalink_dtype_name(f->dtype), f->num_comps, s.num_slots,
             (unsigned long long)s.version,
             cudalink_consumer_producer_is_ours(c) ? "ours (holds the lock)" : "foreign");
      fflush(stdout);
      connected = 1;
      t.connects++;
    }
    st = cudalink_consumer_wait(c, 500000);
    if (st == CUDALINK_OK) {
      check_frame(cu, c, dst, host, &t);
    } else if (st == CUDALINK_ERR_FORMAT_CHANGED) {
      const cudalink_format *f = cudalink_consumer_format(c);
      t.reformats++;
      printf("consumer: producer re-initialised: now %ux%u (after %ld good frames)\n", f->width,
             f->height, t.frames);
    } else if (st == CUDALINK_ERR_PRODUCER_GONE) {
      const char *why = cudalink_consumer_last_error(c);
      if (strstr(why, "shut down"))
        t.shutdowns++;
      else if (strstr(why, "died"))
        t.died++;
      printf("consumer: %s (after %ld good frames)\n", why, t.frames);
      connected = 0;
    } else if (st != CUDALINK_ERR_TIMEOUT) {
      printf("consumer: wait: %s: %s\n", cudalink_status_name(st), cudalink_consumer_last_error(c));
      connected = 0;
      cudalink_consumer_disconnect(c);
    }
    fflush(stdout);
  }
  cudalink_consumer_stats s;
  cudalink_consumer_get_stats(c, &s);
  printf("consumer: %ld frames checked byte for byte, %ld bad, %ld torn (discarded), %llu "
         "missed; %ld connects, %ld re-initialisations, %ld producer deaths, %ld clean "
         "shutdowns\n",
         t.frames, t.bad, t.torn, (unsigned long long)s.missed, t.connects, t.reformats, t.died,
         t.shutdowns);
  double mean = t.frames ? t.lat_sum / (double)t.frames : 0;
  printf("consumer: publish -> wake-up %.2f ms mean, %.2f ms max (poll interval %u ms: the "
         "doorbell woke it)\n",
         mean * 1e3, t.lat_max * 1e3, poll_us / 1000);
  int ok = t.bad == 0 && t.frames >= min_frames && t.reformats >= want_reformats &&
           t.died >= want_died && t.shutdowns >= want_shutdowns;
  /* without the doorbell a wake-up would come a poll interval late on
   * average half of it */
  if (t.frames && poll_us >= 100000 && mean > 0.25 * poll_us * 1e-6) {
    printf("consumer: FAIL: wake-ups come as late as polling would: no doorbell\n");
    ok = 0;
  }
  if (!ok)
    printf("consumer: FAIL (wanted >= %ld frames, %ld re-initialisations, %ld deaths, %ld "
           "shutdowns, no bad frame)\n",
           min_frames, want_reformats, want_died, want_shutdowns);
  cu->MemFree(dst);
  cudalink_consumer_destroy(c);
  return ok ? 0 : 1;
}

/* ---- scenario ------------------------------------------------------------ */

static char self_path[MAX_PATH];

static HANDLE
spawn(const char *args)
{
  char cmd[MAX_PATH + 512];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  snprintf(cmd, sizeof cmd, "\"%s\" %s", self_path, args);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  fflush(stdout);
  if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
    printf("scenario: cannot start %s (error %lu)\n", cmd, (unsigned long)GetLastError());
    exit(1);
  }
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

static DWORD
finish(HANDLE h, DWORD ms)
{
  DWORD code = 255;
  if (WaitForSingleObject(h, ms) != WAIT_OBJECT_0) {
    TerminateProcess(h, 255);
    WaitForSingleObject(h, INFINITE);
  }
  GetExitCodeProcess(h, &code);
  CloseHandle(h);
  return code;
}

static int failures;

static void
expect(int ok, const char *what)
{
  printf("scenario: %s: %s\n", ok ? "ok" : "FAIL", what);
  fflush(stdout);
  if (!ok)
    failures++;
}

static cudalink_segment_info
look(const char *name, cudalink_status *st)
{
  cudalink_segment_info info;
  *st = cudalink_segment_describe(name, 0, 0, &info);
  return info;
}

static int
scenario(const char *name)
{
  char args[512], dll[MAX_PATH + 32], *slash;
  cudalink_segment_info info;
  cudalink_status st = CUDALINK_OK;

  /* the mock driver next to this program, for every child */
  GetModuleFileNameA(NULL, self_path, sizeof self_path);
  snprintf(dll, sizeof dll, "%s", self_path);
  if ((slash = strrchr(dll, '\\')) != NULL)
    strcpy(slash + 1, "mockcuda.dll");
  if (!getenv("CUDALINK_CUDA_LIBRARY"))
    SetEnvironmentVariableA("CUDALINK_CUDA_LIBRARY", dll);

  snprintf(args, sizeof args,
           "consume %s --min-frames 100 --reformats 1 --died 1 --shutdowns 2 --poll-us 250000 "
           "--seconds 40",
           name);
  HANDLE consumer = spawn(args);

  /* 1. frames, a reformat, a clean shutdown */
  snprintf(args, sizeof args, "produce %s --frames 60 --fps 60 --reformat-at 30", name);
  HANDLE p1 = spawn(args);
  for (int i = 0; i < 500; i++) {
    info = look(name, &st);
    if (st == CUDALINK_OK && info.header.write_idx > 0)
      break;
    Sleep(10);
  }
  /* 2. our own handle keeps the mapping alive after the producer left */
  HANDLE hold = OpenFileMappingA(FILE_MAP_READ, FALSE, name);
  expect(st == CUDALINK_OK && hold != NULL, "producer 1's segment is there, and we hold it");
  printf("scenario: '%s': %s, producer %s, %llu-byte mapping\n", name,
         cudalink_segment_state_name(info.state), info.ours == 1 ? "ours" : "not ours",
         (unsigned long long)info.file_size);
  expect(info.file_size % 4096 == 0 && info.file_size >= cudalink_layout_size(SLOTS),
         "the mapping is page-rounded");
  expect(finish(p1, 20000) == 0, "producer 1 published 60 frames, reformatted, shut down");
  info = look(name, &st);
  printf("scenario: after producer 1 left: %s (%s)\n",
         st == CUDALINK_OK ? cudalink_segment_state_name(info.state) : cudalink_status_name(st),
         info.why);
  expect(st == CUDALINK_OK && info.state == CUDALINK_SEGMENT_SHUT_DOWN,
         "the mapping lives on while a handle is open, shutdown flag set");
  CloseHandle(hold);
  for (int i = 0; i < 200; i++) {
    (void)look(name, &st);
    if (st == CUDALINK_ERR_NOT_FOUND)
      break;
    Sleep(10);
  }
  expect(st == CUDALINK_ERR_NOT_FOUND, "the mapping is gone with its last handle");

  /* 3. a producer that is killed; a second one of the name is refused */
  snprintf(args, sizeof args, "produce %s --fps 60 --hold", name);
  HANDLE p2 = spawn(args);
  Sleep(1500);
  snprintf(args, sizeof args, "produce %s --frames 1", name);
  expect(finish(spawn(args), 20000) == 3, "a second producer of the name: ERR_BUSY");
  info = look(name, &st);
  expect(st == CUDALINK_OK && info.ours == 1 && info.state == CUDALINK_SEGMENT_LIVE,
         "producer 2 is live and holds the lock");
  TerminateProcess(p2, 9);
  printf("scenario: producer 2 killed (TerminateProcess)\n");
  expect(finish(p2, 5000) == 9, "producer 2 is dead");
  Sleep(500);

  /* 4. a new producer under the name */
  snprintf(args, sizeof args, "produce %s --frames 30 --fps 60", name);
  expect(finish(spawn(args), 20000) == 0, "producer 3 published 30 frames and shut down");
  expect(finish(consumer, 30000) == 0, "the consumer saw it all, every byte right");
  printf("scenario: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}

int
main(int argc, char **argv)
{
  if (argc >= 3 && strcmp(argv[1], "produce") == 0)
    return produce(argc, argv);
  if (argc >= 3 && strcmp(argv[1], "consume") == 0)
    return consume(argc, argv);
  if (argc >= 3 && strcmp(argv[1], "scenario") == 0)
    return scenario(argv[2]);
  fprintf(stderr, "usage: ring_win scenario|produce|consume NAME [OPTIONS]\n");
  return 2;
}
