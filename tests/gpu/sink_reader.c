/* sink_reader: a libcudalink consumer in its own process, for gpu_sink.
 *
 * Reads commands on stdin, one per line:
 *   read NAME COUNT   connect to segment NAME (retrying while it does not
 *                     exist yet), then copy COUNT frames to the host and
 *                     write each to stdout as a SinkReaderRecord followed by
 *                     data_size bytes; then disconnect
 *   quit              exit 0
 * A failure is a record with status != 0 and a message, and no data.
 * The driver is loaded at run time through libcudalink's own table (no
 * libcuda link); the device buffer lives in device 0's primary context.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "sink_reader.h"

static const cudalink_cuda *cu;
static CUcontext ctx;

static int
write_all(const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t n = write(STDOUT_FILENO, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void fail_record(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail_record(int status, const char *fmt, ...)
{
  SinkReaderRecord r;
  va_list ap;

  memset(&r, 0, sizeof r);
  r.magic = SINK_READER_MAGIC;
  r.status = status ? status : -1;
  va_start(ap, fmt);
  vsnprintf(r.message, sizeof r.message, fmt, ap);
  va_end(ap);
  write_all(&r, sizeof r);
}

static void
sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void
read_frames(const char *name, unsigned count)
{
  cudalink_consumer_config config;
  cudalink_consumer *c = NULL;
  cudalink_status st;
  CUdeviceptr dev = 0;
  size_t dev_size = 0;
  unsigned char *host = NULL;
  uint32_t changes = 0;
  int waited;

  cudalink_consumer_config_init(&config);
  config.name = name;
  config.device = 0;
  config.poll_interval_us = 200;
  if ((st = cudalink_consumer_create(&config, &c)) != CUDALINK_OK) {
    fail_record(st, "consumer_create failed");
    return;
  }

  /* the sink creates the segment when caps arrive; until its header is
   * written the segment is empty (ERR_NOT_CONNECTED) */
  for (waited = 0;; waited += 5) {
    st = cudalink_consumer_connect(c);
    if (st == CUDALINK_OK)
      break;
    if ((st != CUDALINK_ERR_NOT_FOUND && st != CUDALINK_ERR_STALE && st != CUDALINK_ERR_NOT_CONNECTED &&
         st != CUDALINK_ERR_BAD_MAGIC &&
         st != CUDALINK_ERR_TRUNCATED) ||
        waited > 20000) {
      fail_record(st, "connect: %s", cudalink_consumer_last_error(c));
      cudalink_consumer_destroy(c);
      return;
    }
    sleep_ms(5);
  }

  for (unsigned i = 0; i < count;) {
    const cudalink_format *f;
    cudalink_frame_info info;
    SinkReaderRecord r;
    uint32_t frame_size, row_size;

    st = cudalink_consumer_wait(c, 20 * 1000 * 1000);
    if (st == CUDALINK_ERR_FORMAT_CHANGED) {
      changes++;
      continue;
    }
    if (st != CUDALINK_OK) {
      fail_record(st, "wait: %s", cudalink_consumer_last_error(c));
      break;
    }
    f = cudalink_consumer_format(c);
    cudalink_consumer_frame_info(c, &info);
    if (cudalink_format_sizes(f, &frame_size, &row_size) != CUDALINK_OK) {
      fail_record(-1, "bad format");
      break;
    }
    if (frame_size > dev_size) {
      if (dev)
        cu->MemFree(dev);
      free(host);
      dev = 0;
      if (cu->MemAlloc(&dev, frame_size) != CUDA_SUCCESS || !(host = malloc(frame_size))) {
        fail_record(-1, "out of memory");
        dev = 0;
        dev_size = 0;
        break;
      }
      dev_size = frame_size;
    }
    st = cudalink_consumer_copy(c, dev, row_size, NULL);
    if (st != CUDALINK_OK) {
      fail_record(st, "copy: %s", cudalink_consumer_last_error(c));
      break;
    }
    if (cu->MemcpyDtoH(host, dev, frame_size) != CUDA_SUCCESS) {
      fail_record(-1, "cuMemcpyDtoH failed");
      break;
    }

    memset(&r, 0, sizeof r);
    r.magic = SINK_READER_MAGIC;
    r.width = f->width;
    r.height = f->height;
    r.num_comps = f->num_comps;
    r.dtype = (uint32_t)f->dtype;
    r.flags = f->flags;
    r.data_size = frame_size;
    r.version = info.version;
    r.write_idx = info.write_idx;
    r.format_changes = changes;
    if (write_all(&r, sizeof r) || write_all(host, frame_size))
      exit(3);
    i++;
  }

  if (dev)
    cu->MemFree(dev);
  free(host);
  cudalink_consumer_destroy(c);
}

int
main(void)
{
  char line[512], name[256];
  cudalink_status st;
  char why[256];
  CUdevice d;
  unsigned count;

  cu = cudalink_cuda_get(&st, why, sizeof why);
  if (!cu) {
    fprintf(stderr, "sink_reader: no CUDA: %s\n", why);
    fail_record(st, "no CUDA: %s", why);
    return 2;
  }
  if (cu->DeviceGet(&d, 0) != CUDA_SUCCESS || cu->DevicePrimaryCtxRetain(&ctx, d) != CUDA_SUCCESS ||
      cu->CtxPushCurrent(ctx) != CUDA_SUCCESS) {
    fail_record(-1, "no CUDA device 0");
    return 2;
  }

  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "read %255s %u", name, &count) == 2)
      read_frames(name, count);
    else if (!strncmp(line, "quit", 4))
      break;
    else
      fail_record(-1, "unknown command: %s", line);
  }
  cu->CtxPopCurrent(NULL);
  cu->DevicePrimaryCtxRelease(d);
  return 0;
}
