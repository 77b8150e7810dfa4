/* libFuzzer target for the header decoder (lib/protocol.c).
 *
 * Any input must give a status and a NUL-terminated reason, never a crash
 * or a read outside the input (ASan checks that). Whatever parses must
 * survive write -> parse unchanged, and the written bytes must equal the
 * input's layout bytes: the codec loses nothing it accepts. */
#include "cudalink.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_header(const cudalink_header *a, const cudalink_header *b) {
  if (a->magic != b->magic || a->version != b->version || a->num_slots != b->num_slots ||
      a->write_idx != b->write_idx || a->shutdown_flag != b->shutdown_flag ||
      a->data_size != b->data_size || memcmp(&a->timestamp, &b->timestamp, sizeof a->timestamp) ||
      a->format.width != b->format.width || a->format.height != b->format.height ||
      a->format.num_comps != b->format.num_comps || a->format.dtype != b->format.dtype ||
      a->format.flags != b->format.flags)
    return 0;
  return memcmp(a->mem_handle, b->mem_handle, sizeof a->mem_handle) == 0 &&
         memcmp(a->event_handle, b->event_handle, sizeof a->event_handle) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A private copy of exactly size bytes, so that ASan sees any over-read
   * (libFuzzer's own buffer is exact too, but a corpus replay may not be). */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf)
    abort();
  if (size)
    memcpy(buf, data, size);

  cudalink_header h;
  char why[160];
  cudalink_status st = cudalink_header_parse_verbose(buf, size, &h, why, sizeof why);
  if (!memchr(why, '\0', sizeof why))
    abort();
  if (cudalink_strerror(st) == NULL || strcmp(cudalink_status_name(st), "UNKNOWN") == 0)
    abort(); /* parse only returns codes from the map */
  if ((st == CUDALINK_OK) != (why[0] == '\0'))
    abort(); /* a reason for every failure, none for success */

  /* A short reason buffer gives a prefix of the same sentence. */
  size_t small_len = size ? (size_t)(data[0] % 24u) : 0u;
  char small[24];
  memset(small, 'Z', sizeof small);
  cudalink_header h2;
  if (cudalink_header_parse_verbose(buf, size, &h2, small, small_len) != st)
    abort();
  if (small_len > 0 && (strlen(small) >= small_len || strncmp(small, why, strlen(small)) != 0))
    abort();
  if (small_len < sizeof small && small[small_len] != 'Z')
    abort(); /* wrote past why_len */
  if (!same_header(&h, &h2))
    abort(); /* deterministic, also the partly decoded header on failure */
  if (cudalink_header_parse(buf, size, NULL) != st)
    abort();

  if (st == CUDALINK_OK) {
    size_t n = cudalink_layout_size(h.num_slots);
    if (n == 0 || n > size)
      abort();
    uint8_t *out = malloc(n);
    if (!out)
      abort();
    cudalink_status wst = cudalink_header_write(&h, out, n);
    if (h.format.flags & ~CUDALINK_FLAGS_KNOWN) {
      /* Unknown flag bits are passed on when parsing but never written. */
      if (wst != CUDALINK_ERR_INVALID_ARG)
        abort();
    } else {
      if (wst != CUDALINK_OK)
        abort();
      if (memcmp(out, buf, n) != 0)
        abort();
      cudalink_header back;
      if (cudalink_header_parse(out, n, &back) != CUDALINK_OK || !same_header(&h, &back))
        abort();
    }
    free(out);
  }
  free(buf);
  return 0;
}
