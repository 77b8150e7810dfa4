/* Writes the seed corpus of fuzz_header into DIR (tests/fuzz/corpus/):
 * a few valid headers written by the codec and a few near misses.
 * Run again only when the seeds should change: the output is checked in.
 *   gen_corpus DIR */
#include "cudalink.h"

#include <stdio.h>
#include <string.h>

static int save(const char *dir, const char *name, const uint8_t *buf, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  int ok = f != NULL;
  if (ok && fwrite(buf, 1, len, f) != len)
    ok = 0;
  if (f && fclose(f) != 0)
    ok = 0;
  if (!ok)
    fprintf(stderr, "gen_corpus: cannot write %s\n", path);
  return !ok;
}

static size_t make(uint8_t *buf, size_t cap, uint32_t n, uint32_t w, uint32_t h, uint32_t c,
                   cudalink_dtype dtype, uint16_t flags) {
  cudalink_header hd;
  memset(&hd, 0, sizeof hd);
  hd.version = 7;
  hd.num_slots = n;
  hd.write_idx = 501;
  for (uint32_t s = 0; s < n; s++)
    for (unsigned i = 0; i < CUDALINK_IPC_HANDLE_SIZE; i++) {
      hd.mem_handle[s][i] = (uint8_t)(s * 64 + i);
      hd.event_handle[s][i] = (uint8_t)(255 - s * 64 - i);
    }
  hd.format = (cudalink_format){w, h, c, dtype, flags};
  hd.timestamp = 12.5;
  size_t len = cudalink_layout_size(n);
  if (len == 0 || len > cap || cudalink_header_write(&hd, buf, len) != CUDALINK_OK)
    return 0;
  return len;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  uint8_t buf[2048];
  size_t len;
  int err = 0;

  len = make(buf, sizeof buf, 3, 1920, 1080, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA);
  err |= !len || save(dir, "valid-n3-bgra8", buf, len);
  len = make(buf, sizeof buf, 1, 64, 32, 2, CUDALINK_DTYPE_BFLOAT16, CUDALINK_FLAG_MONO_ALPHA);
  err |= !len || save(dir, "valid-n1-bf16-mono-alpha", buf, len);
  len = make(buf, sizeof buf, 10, 7, 5, 1, CUDALINK_DTYPE_FLOAT32, 0);
  err |= !len || save(dir, "valid-n10-f32", buf, len);
  /* near misses: cut one byte short, data_size off by one */
  len = make(buf, sizeof buf, 2, 16, 16, 3, CUDALINK_DTYPE_INT16, 0);
  err |= !len || save(dir, "short-n2", buf, len - 1);
  len = make(buf, sizeof buf, 2, 16, 16, 3, CUDALINK_DTYPE_UINT16, 0);
  cudalink_layout l = cudalink_layout_for(2);
  buf[l.data_size] ^= 1;
  err |= !len || save(dir, "bad-data-size-n2", buf, len);
  return err ? 1 : 0;
}
