/* Unit tests of the protocol codec (lib/protocol.c) against the layout in
 * docs/PROTOCOL.md. The golden vector below is assembled by hand from the
 * table there, not with the library's own offsets. */
#include "cudalink.h"
#include "segment.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v & 0xff);
  p[1] = (uint8_t)((v >> 8) & 0xff);
  p[2] = (uint8_t)((v >> 16) & 0xff);
  p[3] = (uint8_t)((v >> 24) & 0xff);
}

static void fill_handles(cudalink_header *h, uint32_t n) {
  for (uint32_t s = 0; s < n; s++)
    for (unsigned i = 0; i < CUDALINK_IPC_HANDLE_SIZE; i++) {
      h->mem_handle[s][i] = (uint8_t)(0x10 * (s + 1) + i);
      h->event_handle[s][i] = (uint8_t)(0xA0 ^ (s * 7 + i * 3));
    }
}

/* A valid header with n slots: 4x4x4 uint8 unless changed. */
static cudalink_header make_header(uint32_t n) {
  cudalink_header h;
  memset(&h, 0, sizeof h);
  h.magic = CUDALINK_MAGIC;
  h.version = 3;
  h.num_slots = n;
  h.write_idx = 9;
  fill_handles(&h, n);
  h.format.width = 4;
  h.format.height = 4;
  h.format.num_comps = 4;
  h.format.dtype = CUDALINK_DTYPE_UINT8;
  h.format.flags = 0;
  h.data_size = 64;
  h.timestamp = 1.25;
  return h;
}

static int headers_equal(const cudalink_header *a, const cudalink_header *b) {
  if (a->magic != b->magic || a->version != b->version || a->num_slots != b->num_slots ||
      a->write_idx != b->write_idx || a->shutdown_flag != b->shutdown_flag ||
      a->data_size != b->data_size || memcmp(&a->timestamp, &b->timestamp, sizeof a->timestamp))
    return 0;
  if (a->format.width != b->format.width || a->format.height != b->format.height ||
      a->format.num_comps != b->format.num_comps || a->format.dtype != b->format.dtype ||
      a->format.flags != b->format.flags)
    return 0;
  for (uint32_t s = 0; s < a->num_slots && s < CUDALINK_MAX_SLOTS; s++)
    if (memcmp(a->mem_handle[s], b->mem_handle[s], CUDALINK_IPC_HANDLE_SIZE) ||
        memcmp(a->event_handle[s], b->event_handle[s], CUDALINK_IPC_HANDLE_SIZE))
      return 0;
  return 1;
}

/* Writes h into buf (its own layout size) or fails the test. */
static size_t write_or_fail(const cudalink_header *h, uint8_t *buf, size_t cap) {
  size_t n = cudalink_layout_size(h->num_slots);
  if (n == 0 || n > cap)
    return 0;
  memset(buf, 0xEE, cap);
  if (cudalink_header_write(h, buf, n) != CUDALINK_OK)
    return 0;
  return n;
}

/* ------------------------------------------------------------------------ */
/* tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_version(void) {
  CHECK_EQ_INT(cudalink_version_number(), CUDALINK_VERSION_NUMBER);
}

static void test_layout_table(void) {
  for (uint32_t n = 1; n <= 10; n++) {
    size_t m = 20 + 128 * (size_t)n; /* start of the metadata block */
    cudalink_layout l = cudalink_layout_for(n);
    CHECK_EQ_INT(cudalink_layout_size(n), 20 + 128 * n + 1 + 20 + 8);
    CHECK_EQ_INT(l.size, cudalink_layout_size(n));
    CHECK_EQ_INT(l.magic, 0);
    CHECK_EQ_INT(l.version, 4);
    CHECK_EQ_INT(l.num_slots, 12);
    CHECK_EQ_INT(l.write_idx, 16);
    CHECK_EQ_INT(l.mem_handle0, 20);
    CHECK_EQ_INT(l.event_handle0, 84);
    CHECK_EQ_INT(l.slot_stride, 128);
    CHECK_EQ_INT(l.shutdown_flag, m);
    CHECK_EQ_INT(l.width, m + 1);
    CHECK_EQ_INT(l.height, m + 5);
    CHECK_EQ_INT(l.num_comps, m + 9);
    CHECK_EQ_INT(l.format_kind, m + 13);
    CHECK_EQ_INT(l.bits_per_comp, m + 14);
    CHECK_EQ_INT(l.flags, m + 15);
    CHECK_EQ_INT(l.data_size, m + 17);
    CHECK_EQ_INT(l.timestamp, m + 21);
    CHECK_EQ_INT(l.timestamp + 8, l.size);
  }
  CHECK_EQ_INT(cudalink_layout_size(3), 433);
  CHECK_EQ_INT(cudalink_layout_size(1), 177);
  CHECK_EQ_INT(cudalink_layout_size(10), 1329);
  CHECK_EQ_INT(cudalink_layout_for(3).timestamp, 425);

  static const uint32_t bad[] = {0, 11, 12, 0xFFFFFFFFu};
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cudalink_layout l = cudalink_layout_for(bad[i]);
    static const cudalink_layout zero;
    CHECK_EQ_INT(cudalink_layout_size(bad[i]), 0);
    CHECK(memcmp(&l, &zero, sizeof l) == 0);
  }
}

/* 1920x1080x4 uint8 BGRA, version 7, write_idx 501, 3 slots, t = 12.5,
 * placed byte by byte from the table in docs/PROTOCOL.md. */
static void build_golden(uint8_t g[433]) {
  memset(g, 0, 433);
  g[0] = 0x44; g[1] = 0x50; g[2] = 0x49; g[3] = 0x43;               /* "DPIC" = 0x43495044 */
  g[4] = 7;                                                         /* version u64 */
  g[12] = 3;                                                        /* num_slots */
  g[16] = 0xF5; g[17] = 0x01;                                       /* write_idx 501 */
  for (unsigned s = 0; s < 3; s++)
    for (unsigned i = 0; i < 64; i++) {
      g[20 + 128 * s + i] = (uint8_t)(0x10 * (s + 1) + i);          /* mem handle */
      g[84 + 128 * s + i] = (uint8_t)(0xA0 ^ (s * 7 + i * 3));      /* event handle */
    }
  g[404] = 0;                                                       /* shutdown_flag */
  g[405] = 0x80; g[406] = 0x07;                                     /* width 1920 */
  g[409] = 0x38; g[410] = 0x04;                                     /* height 1080 */
  g[413] = 4;                                                       /* num_comps */
  g[417] = 1;                                                       /* kind unsigned */
  g[418] = 8;                                                       /* bits */
  g[419] = 0x04; g[420] = 0x00;                                     /* flags BGRA */
  g[421] = 0x00; g[422] = 0x90; g[423] = 0x7E; g[424] = 0x00;       /* 8294400 */
  g[431] = 0x29; g[432] = 0x40;                                     /* 12.5 = 0x4029000000000000 */
}

static void test_golden_vector(void) {
  uint8_t golden[433], out[433 + 16];
  build_golden(golden);

  cudalink_header h;
  memset(&h, 0, sizeof h);
  h.version = 7;
  h.num_slots = 3;
  h.write_idx = 501;
  fill_handles(&h, 3);
  h.format.width = 1920;
  h.format.height = 1080;
  h.format.num_comps = 4;
  h.format.dtype = CUDALINK_DTYPE_UINT8;
  h.format.flags = CUDALINK_FLAG_BGRA;
  h.data_size = 12345; /* ignored on writing: computed */
  h.magic = 0;         /* ignored on writing */
  h.timestamp = 12.5;

  memset(out, 0xCC, sizeof out);
  CHECK_EQ_INT(cudalink_header_write(&h, out, 433), CUDALINK_OK);
  for (unsigned i = 0; i < 433; i++)
    if (out[i] != golden[i]) {
      fprintf(stderr, "  byte %u: wrote 0x%02x, golden 0x%02x\n", i, out[i], golden[i]);
      CHECK(out[i] == golden[i]);
    }
  for (unsigned i = 433; i < sizeof out; i++)
    CHECK_EQ_INT(out[i], 0xCC); /* nothing written past the layout */

  cudalink_header p;
  char why[128] = "x";
  CHECK_EQ_INT(cudalink_header_parse_verbose(golden, 433, &p, why, sizeof why), CUDALINK_OK);
  CHECK_EQ_INT(why[0], '\0');
  CHECK_EQ_INT(p.magic, CUDALINK_MAGIC);
  CHECK_EQ_INT(p.version, 7);
  CHECK_EQ_INT(p.num_slots, 3);
  CHECK_EQ_INT(p.write_idx, 501);
  CHECK_EQ_INT(p.shutdown_flag, 0);
  CHECK_EQ_INT(p.format.width, 1920);
  CHECK_EQ_INT(p.format.height, 1080);
  CHECK_EQ_INT(p.format.num_comps, 4);
  CHECK_EQ_INT(p.format.dtype, CUDALINK_DTYPE_UINT8);
  CHECK_EQ_INT(p.format.flags, CUDALINK_FLAG_BGRA);
  CHECK_EQ_INT(p.data_size, 8294400);
  CHECK(p.timestamp == 12.5);
  CHECK(memcmp(p.mem_handle[2], h.mem_handle[2], 64) == 0);
  CHECK(memcmp(p.event_handle[0], h.event_handle[0], 64) == 0);
  for (unsigned s = 3; s < CUDALINK_MAX_SLOTS; s++) {
    static const uint8_t zero[64];
    CHECK(memcmp(p.mem_handle[s], zero, 64) == 0); /* unused slots zeroed */
  }

  /* A larger buffer parses the same (a segment may be page-rounded). */
  uint8_t big[4096];
  memset(big, 0x5A, sizeof big);
  memcpy(big, golden, 433);
  cudalink_header q;
  CHECK_EQ_INT(cudalink_header_parse(big, sizeof big, &q), CUDALINK_OK);
  CHECK(headers_equal(&p, &q));
}

static void test_roundtrip_all_dtypes(void) {
  static const uint32_t slots[] = {1, 2, 3, 7, 10};
  uint8_t buf[2048], buf2[2048];
  for (unsigned d = 0; d < CUDALINK_DTYPE_COUNT_; d++)
    for (unsigned k = 0; k < sizeof slots / sizeof slots[0]; k++) {
      cudalink_header h = make_header(slots[k]);
      h.format.dtype = (cudalink_dtype)d;
      h.format.width = 33 + d;
      h.format.height = 17 + k;
      h.format.num_comps = 1 + (d + k) % 4;
      h.format.flags = (h.format.num_comps == 2) ? CUDALINK_FLAG_MONO_ALPHA : 0;
      h.version = 0x0102030405060708ull + d;
      h.write_idx = 0xFFFFFFF0u + k;
      h.shutdown_flag = (uint8_t)(k & 1);
      h.timestamp = -3.75e9 + d;
      h.data_size = h.format.width * h.format.height * h.format.num_comps *
                    cudalink_dtype_size(h.format.dtype);
      size_t n = write_or_fail(&h, buf, sizeof buf);
      REQUIRE(n == cudalink_layout_size(slots[k]));
      CHECK_EQ_INT(buf[n], 0xEE);

      cudalink_header p;
      CHECK_EQ_INT(cudalink_header_parse(buf, n, &p), CUDALINK_OK);
      CHECK(headers_equal(&h, &p));
      if (!headers_equal(&h, &p))
        fprintf(stderr, "  dtype %s, %u slots\n", cudalink_dtype_name((cudalink_dtype)d),
                slots[k]);
      /* and write(parse(x)) == x */
      CHECK_EQ_INT(cudalink_header_write(&p, buf2, n), CUDALINK_OK);
      CHECK(memcmp(buf, buf2, n) == 0);
    }
}

static void test_bfloat16_flag_on_wire(void) {
  uint8_t buf[512];
  cudalink_header h = make_header(3);
  h.format.dtype = CUDALINK_DTYPE_BFLOAT16;
  h.format.flags = CUDALINK_FLAG_BGRA; /* user flags survive next to the derived bit */
  size_t n = write_or_fail(&h, buf, sizeof buf);
  REQUIRE(n == 433);
  CHECK_EQ_INT(buf[417], 2);
  CHECK_EQ_INT(buf[418], 16);
  CHECK_EQ_INT(buf[419], 0x05);
  CHECK_EQ_INT(buf[420], 0x00);
  cudalink_header p;
  CHECK_EQ_INT(cudalink_header_parse(buf, n, &p), CUDALINK_OK);
  CHECK_EQ_INT(p.format.dtype, CUDALINK_DTYPE_BFLOAT16);
  CHECK_EQ_INT(p.format.flags, CUDALINK_FLAG_BGRA); /* bit 0 is in dtype, not flags */

  /* A BFLOAT16 bit the caller leaves in format.flags is ignored on writing. */
  h.format.dtype = CUDALINK_DTYPE_FLOAT16;
  h.format.flags = CUDALINK_FLAG_BFLOAT16;
  n = write_or_fail(&h, buf, sizeof buf);
  REQUIRE(n == 433);
  CHECK_EQ_INT(buf[419], 0x00);
  CHECK_EQ_INT(cudalink_header_parse(buf, n, &p), CUDALINK_OK);
  CHECK_EQ_INT(p.format.dtype, CUDALINK_DTYPE_FLOAT16);

  /* Unknown flag bits from a peer are passed on, not rejected. */
  buf[420] = 0x80;
  CHECK_EQ_INT(cudalink_header_parse(buf, n, &p), CUDALINK_OK);
  CHECK_EQ_INT(p.format.flags, 0x8000);
}

static void test_write_rejects(void) {
  uint8_t buf[2048];
  memset(buf, 0x77, sizeof buf);
  cudalink_header h = make_header(3);

  CHECK_EQ_INT(cudalink_header_write(NULL, buf, sizeof buf), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_header_write(&h, NULL, sizeof buf), CUDALINK_ERR_INVALID_ARG);
  CHECK_EQ_INT(cudalink_header_write(&h, buf, 432), CUDALINK_ERR_TRUNCATED);
  CHECK_EQ_INT(cudalink_header_write(&h, buf, 0), CUDALINK_ERR_TRUNCATED);

  h.num_slots = 0;
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_BAD_NUM_SLOTS);
  h.num_slots = 11;
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_BAD_NUM_SLOTS);

  h = make_header(3);
  h.format.dtype = CUDALINK_DTYPE_COUNT_;
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_BAD_DTYPE);
  h = make_header(3);
  h.format.width = 0;
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_BAD_DIMENSIONS);
  h = make_header(3);
  h.format.num_comps = 5;
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_BAD_NUM_COMPS);
  h = make_header(3);
  h.format.flags = 0x0008; /* not a protocol flag */
  CHECK_EQ_INT(cudalink_header_write(&h, buf, sizeof buf), CUDALINK_ERR_INVALID_ARG);

  /* None of the failures above wrote anything. */
  for (unsigned i = 0; i < sizeof buf; i++)
    if (buf[i] != 0x77) {
      CHECK(buf[i] == 0x77);
      break;
    }
}

/* One rejected buffer: code and why text. */
static void expect_reject(const uint8_t *buf, size_t len, cudalink_status code,
                          const char *why_part, int line) {
  char why[256];
  memset(why, 'Z', sizeof why);
  cudalink_header p;
  cudalink_status st = cudalink_header_parse_verbose(buf, len, &p, why, sizeof why);
  if (st != code)
    fprintf(stderr, "  (line %d) got %s: %s\n", line, cudalink_status_name(st), why);
  CHECK_EQ_INT(st, code);
  CHECK(memchr(why, '\0', sizeof why) != NULL);
  CHECK_STR_CONTAINS(why, why_part);
  /* The plain parser agrees. */
  CHECK_EQ_INT(cudalink_header_parse(buf, len, &p), code);
}
#define EXPECT_REJECT(buf, len, code, part) expect_reject(buf, len, code, part, __LINE__)

static void test_parse_rejects(void) {
  uint8_t good[433], b[433];
  build_golden(good);

  /* short buffers, before and after num_slots can be read */
  static const size_t shorts[] = {0, 1, 3, 4, 12, 16, 19};
  for (unsigned i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
    char want[64];
    snprintf(want, sizeof want, "segment is %u bytes", (unsigned)shorts[i]);
    EXPECT_REJECT(good, shorts[i], CUDALINK_ERR_TRUNCATED, want);
  }
  EXPECT_REJECT(good, 20, CUDALINK_ERR_TRUNCATED,
                "segment is 20 bytes, the layout for 3 slots needs 433");
  EXPECT_REJECT(good, 100, CUDALINK_ERR_TRUNCATED,
                "segment is 100 bytes, the layout for 3 slots needs 433");
  EXPECT_REJECT(good, 432, CUDALINK_ERR_TRUNCATED,
                "segment is 432 bytes, the layout for 3 slots needs 433");
  /* a short buffer with a wrong magic is still TRUNCATED (length first) */
  memcpy(b, good, sizeof b);
  b[0] = 'X';
  EXPECT_REJECT(b, 10, CUDALINK_ERR_TRUNCATED, "shorter than the 20-byte fixed header");
  EXPECT_REJECT(NULL, 433, CUDALINK_ERR_INVALID_ARG, "NULL");

  /* magic */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_MAGIC, "magic is 0x43495058, must be 0x43495044");
  memcpy(b, good, sizeof b);
  b[0] = 0x43; b[1] = 0x49; b[2] = 0x50; b[3] = 0x44; /* big-endian "CIPD" */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_MAGIC, "magic is 0x44504943");

  /* num_slots */
  memcpy(b, good, sizeof b);
  le32(b + 12, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_SLOTS, "num_slots is 0, must be 1..10");
  le32(b + 12, 11);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_SLOTS, "num_slots is 11, must be 1..10");
  le32(b + 12, 0x80000003u);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_SLOTS, "num_slots is 2147483651");
  le32(b + 12, 4); /* valid N, but 433 bytes are too few for 4 slots */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_TRUNCATED,
                "segment is 433 bytes, the layout for 4 slots needs 561");

  /* dtype */
  memcpy(b, good, sizeof b);
  b[417] = 3;
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE, "format_kind 3, bits_per_comp 8");
  memcpy(b, good, sizeof b);
  b[417] = 2; /* float with 8 bits */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE, "format_kind 2, bits_per_comp 8");
  memcpy(b, good, sizeof b);
  b[419] |= 0x01; /* bfloat16 flag on uint8 */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE,
                "format_kind 1, bits_per_comp 8, bfloat16 flag set");
  memcpy(b, good, sizeof b);
  b[417] = 2; b[418] = 32; b[419] = 0x01; /* bfloat16 flag on float32 */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE, "bits_per_comp 32, bfloat16 flag set");
  memcpy(b, good, sizeof b);
  b[418] = 24;
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE, "is not a known dtype");
  {
    cudalink_header p;
    CHECK_EQ_INT(cudalink_header_parse(b, sizeof b, &p), CUDALINK_ERR_BAD_DTYPE);
    CHECK_EQ_INT(p.num_slots, 3); /* decoded as far as it went */
    CHECK_EQ_INT(p.write_idx, 501);
    CHECK_EQ_INT(p.format.width, 1920);
    CHECK_EQ_INT(p.format.dtype, CUDALINK_DTYPE_COUNT_);
    CHECK(strcmp(cudalink_dtype_name(p.format.dtype), "invalid") == 0);
  }

  /* dimensions */
  memcpy(b, good, sizeof b);
  le32(b + 405, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DIMENSIONS, "width is 0, must be 1..32768");
  memcpy(b, good, sizeof b);
  le32(b + 409, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DIMENSIONS, "height is 0, must be 1..32768");
  le32(b + 409, 32769);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DIMENSIONS, "height is 32769, must be 1..32768");
  /* 65535 x 65535 x 1 uint8, data_size the wrapped u32 product */
  memcpy(b, good, sizeof b);
  le32(b + 405, 65535);
  le32(b + 409, 65535);
  le32(b + 413, 1);
  le32(b + 421, (uint32_t)(65535u * 65535u));
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DIMENSIONS, "width is 65535");
  /* In range, but the product overflows u32: 32768 x 32767 x 4 float32,
   * data_size the wrapped product. */
  memcpy(b, good, sizeof b);
  le32(b + 405, 32768);
  le32(b + 409, 32767);
  b[417] = 2; b[418] = 32; b[419] = 0;
  le32(b + 421, (uint32_t)(32768ull * 32767ull * 16ull));
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DATA_SIZE,
                "data_size is 4294443008 but 32768x32767x4 float32 needs 17179344896");
  /* 32768 x 32768 x 4 uint8 = 2^32 wraps to data_size 0 */
  memcpy(b, good, sizeof b);
  le32(b + 405, 32768);
  le32(b + 409, 32768);
  le32(b + 421, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DATA_SIZE,
                "data_size is 0 but 32768x32768x4 uint8 needs 4294967296");

  /* num_comps */
  memcpy(b, good, sizeof b);
  le32(b + 413, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_COMPS, "num_comps is 0, must be 1..4");
  le32(b + 413, 5);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_COMPS, "num_comps is 5, must be 1..4");

  /* data_size */
  memcpy(b, good, sizeof b);
  le32(b + 421, 8294401);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DATA_SIZE,
                "data_size is 8294401 but 1920x1080x4 uint8 needs 8294400");
  le32(b + 421, 0);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DATA_SIZE, "data_size is 0 but");
  memcpy(b, good, sizeof b);
  le32(b + 405, 4); le32(b + 409, 4); le32(b + 421, 100);
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DATA_SIZE, "data_size is 100 but 4x4x4 uint8 needs 64");

  /* Order: with several faults the earliest check wins. */
  memcpy(b, good, sizeof b);
  le32(b + 405, 0);     /* width */
  b[417] = 9;           /* dtype */
  le32(b + 421, 1);     /* data_size */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_DTYPE, "format_kind 9");
  le32(b + 12, 11);     /* num_slots */
  EXPECT_REJECT(b, sizeof b, CUDALINK_ERR_BAD_NUM_SLOTS, "num_slots is 11");

  /* The shutdown flag is decoded, not judged. */
  memcpy(b, good, sizeof b);
  b[404] = 1;
  {
    cudalink_header p;
    CHECK_EQ_INT(cudalink_header_parse(b, sizeof b, &p), CUDALINK_OK);
    CHECK_EQ_INT(p.shutdown_flag, 1);
  }
}

static void test_why_buffer(void) {
  uint8_t b[433];
  build_golden(b);
  le32(b + 12, 11);
  cudalink_header p;
  /* NULL / zero-size why are fine */
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, &p, NULL, 0), CUDALINK_ERR_BAD_NUM_SLOTS);
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, &p, NULL, 64), CUDALINK_ERR_BAD_NUM_SLOTS);
  char one = 'Q';
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, &p, &one, 0), CUDALINK_ERR_BAD_NUM_SLOTS);
  CHECK_EQ_INT(one, 'Q'); /* why_len 0: untouched */
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, &p, &one, 1), CUDALINK_ERR_BAD_NUM_SLOTS);
  CHECK_EQ_INT(one, '\0');
  /* truncated safely: a prefix of the full sentence, NUL inside the buffer */
  char small[10 + 4];
  memset(small, 'Z', sizeof small);
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, &p, small, 10), CUDALINK_ERR_BAD_NUM_SLOTS);
  CHECK_EQ_INT(small[9], '\0');
  CHECK(strcmp(small, "num_slots") == 0);
  CHECK_EQ_INT(small[10], 'Z'); /* not a byte further */
  /* out may be NULL */
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, NULL, small, 10), CUDALINK_ERR_BAD_NUM_SLOTS);
  /* success clears why */
  char why[64];
  strcpy(why, "stale text");
  build_golden(b);
  CHECK_EQ_INT(cudalink_header_parse_verbose(b, sizeof b, NULL, why, sizeof why), CUDALINK_OK);
  CHECK_EQ_INT(why[0], '\0');
}

static void test_status_strings(void) {
  int count = 0;
#define CHECK_ONE_(name, value, text)                                     \
  do {                                                                    \
    CHECK(strcmp(cudalink_strerror(value), text) == 0);                   \
    CHECK(strcmp(cudalink_status_name(value), #name) == 0);               \
    CHECK(cudalink_strerror(value) == cudalink_strerror(CUDALINK_##name)); \
    count++;                                                              \
  } while (0);
  CUDALINK_STATUS_MAP(CHECK_ONE_)
#undef CHECK_ONE_
  CHECK(count >= 29); /* codes are only ever appended */
  CHECK(strcmp(cudalink_status_name(CUDALINK_ERR_BAD_MAGIC), "ERR_BAD_MAGIC") == 0);
  CHECK(strcmp(cudalink_status_name(0), "OK") == 0);
  CHECK_STR_CONTAINS(cudalink_strerror(CUDALINK_ERR_TRUNCATED), "shorter");
  CHECK_EQ_INT(CUDALINK_ERR_SLOT_TOO_SMALL, -18);
  CHECK_STR_CONTAINS(cudalink_strerror(CUDALINK_ERR_SLOT_TOO_SMALL), "smaller than");
  static const int unknown[] = {1, -3, -9, -19, -51, -1000, 12345, -2147483647 - 1};
  for (unsigned i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CHECK(strcmp(cudalink_strerror(unknown[i]), "unknown cudalink status") == 0);
    CHECK(strcmp(cudalink_status_name(unknown[i]), "UNKNOWN") == 0);
  }
}

static void test_dtype_table(void) {
  static const struct {
    cudalink_dtype dtype;
    const char *name;
    uint8_t kind, bits;
    uint16_t flag;
    unsigned size;
  } table[] = {
      {CUDALINK_DTYPE_UINT8, "uint8", 1, 8, 0, 1},
      {CUDALINK_DTYPE_UINT16, "uint16", 1, 16, 0, 2},
      {CUDALINK_DTYPE_INT8, "int8", 0, 8, 0, 1},
      {CUDALINK_DTYPE_INT16, "int16", 0, 16, 0, 2},
      {CUDALINK_DTYPE_FLOAT16, "float16", 2, 16, 0, 2},
      {CUDALINK_DTYPE_BFLOAT16, "bfloat16", 2, 16, 1, 2},
      {CUDALINK_DTYPE_FLOAT32, "float32", 2, 32, 0, 4},
  };
  CHECK_EQ_INT(sizeof table / sizeof table[0], CUDALINK_DTYPE_COUNT_);
  for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {
    uint8_t kind = 0xFF, bits = 0xFF;
    uint16_t flag = 0xFFFF;
    CHECK_EQ_INT(cudalink_dtype_to_wire(table[i].dtype, &kind, &bits, &flag), CUDALINK_OK);
    CHECK_EQ_INT(kind, table[i].kind);
    CHECK_EQ_INT(bits, table[i].bits);
    CHECK_EQ_INT(flag, table[i].flag);
    CHECK_EQ_INT(cudalink_dtype_size(table[i].dtype), table[i].size);
    CHECK(strcmp(cudalink_dtype_name(table[i].dtype), table[i].name) == 0);
    cudalink_dtype d = CUDALINK_DTYPE_COUNT_;
    CHECK_EQ_INT(cudalink_dtype_from_wire(table[i].kind, table[i].bits, table[i].flag, &d),
                 CUDALINK_OK);
    CHECK_EQ_INT(d, table[i].dtype);
    /* flags other than bit 0 do not change the dtype */
    d = CUDALINK_DTYPE_COUNT_;
    CHECK_EQ_INT(cudalink_dtype_from_wire(table[i].kind, table[i].bits,
                                          (uint16_t)(table[i].flag | 0xFFFE), &d),
                 CUDALINK_OK);
    CHECK_EQ_INT(d, table[i].dtype);
    /* bit 0 on anything that is not (float, 16) is an error */
    if (!(table[i].kind == 2 && table[i].bits == 16))
      CHECK_EQ_INT(cudalink_dtype_from_wire(table[i].kind, table[i].bits, 1, &d),
                   CUDALINK_ERR_BAD_DTYPE);
  }
  /* Every other (kind, bits) is unknown: count the accepted triples. */
  int accepted = 0;
  for (unsigned kind = 0; kind < 256; kind++)
    for (unsigned bits = 0; bits < 256; bits++)
      for (unsigned f = 0; f < 2; f++) {
        cudalink_dtype d;
        if (cudalink_dtype_from_wire((uint8_t)kind, (uint8_t)bits, (uint16_t)f, &d) == CUDALINK_OK)
          accepted++;
      }
  CHECK_EQ_INT(accepted, 7);
  CHECK_EQ_INT(cudalink_dtype_from_wire(3, 8, 0, NULL), CUDALINK_ERR_BAD_DTYPE);
  CHECK_EQ_INT(cudalink_dtype_from_wire(2, 8, 0, NULL), CUDALINK_ERR_BAD_DTYPE);
  CHECK_EQ_INT(cudalink_dtype_from_wire(1, 32, 0, NULL), CUDALINK_ERR_BAD_DTYPE);

  /* invalid dtypes */
  static const int bad[] = {CUDALINK_DTYPE_COUNT_, 8, 100, -1};
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cudalink_dtype d = (cudalink_dtype)bad[i];
    uint8_t kind = 0x5A;
    CHECK_EQ_INT(cudalink_dtype_size(d), 0);
    CHECK(strcmp(cudalink_dtype_name(d), "invalid") == 0);
    CHECK_EQ_INT(cudalink_dtype_to_wire(d, &kind, NULL, NULL), CUDALINK_ERR_BAD_DTYPE);
    CHECK_EQ_INT(kind, 0x5A);
  }
  CHECK_EQ_INT(cudalink_dtype_to_wire(CUDALINK_DTYPE_FLOAT32, NULL, NULL, NULL), CUDALINK_OK);
}

static void test_format_sizes(void) {
  cudalink_format f = {1920, 1080, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA};
  uint32_t frame = 1, row = 1;
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_OK);
  CHECK_EQ_INT(frame, 8294400);
  CHECK_EQ_INT(row, 7680);
  CHECK_EQ_INT(cudalink_format_sizes(&f, NULL, NULL), CUDALINK_OK);

  f = (cudalink_format){3, 5, 3, CUDALINK_DTYPE_FLOAT32, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_OK);
  CHECK_EQ_INT(frame, 180);
  CHECK_EQ_INT(row, 36);

  /* largest frames: 32768 x 32767 x 4 x 1 fits, 32768 x 32768 x 4 x 1 = 2^32 does not */
  f = (cudalink_format){32768, 32767, 4, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_OK);
  CHECK_EQ_INT(frame, 4294836224u);
  CHECK_EQ_INT(row, 131072);
  f.height = 32768;
  frame = row = 7;
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  CHECK_EQ_INT(frame, 0);
  CHECK_EQ_INT(row, 0);
  f = (cudalink_format){32768, 32768, 4, CUDALINK_DTYPE_FLOAT32, 0}; /* 2^34 */
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, NULL), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){32768, 16384, 4, CUDALINK_DTYPE_UINT16, 0}; /* 2^32 */
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, NULL), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){32768, 16383, 4, CUDALINK_DTYPE_UINT16, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, NULL), CUDALINK_OK);
  CHECK_EQ_INT(frame, 4294705152u); /* 2^32 - 2^18 */

  /* each rejection */
  f = (cudalink_format){0, 10, 4, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){10, 0, 4, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){32769, 1, 1, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){65535, 65535, 1, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){0xFFFFFFFFu, 0xFFFFFFFFu, 4, CUDALINK_DTYPE_FLOAT32, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DIMENSIONS);
  f = (cudalink_format){10, 10, 0, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_NUM_COMPS);
  f = (cudalink_format){10, 10, 5, CUDALINK_DTYPE_UINT8, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_NUM_COMPS);
  f = (cudalink_format){10, 10, 4, (cudalink_dtype)7, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DTYPE);
  f = (cudalink_format){10, 10, 4, (cudalink_dtype)-1, 0};
  CHECK_EQ_INT(cudalink_format_sizes(&f, &frame, &row), CUDALINK_ERR_BAD_DTYPE);
  CHECK_EQ_INT(cudalink_format_sizes(NULL, &frame, &row), CUDALINK_ERR_INVALID_ARG);
}

static void test_now_monotonic(void) {
  double first = cudalink_now();
  CHECK(first > 0.0);
  CHECK(isfinite(first));
  double prev = first;
  int went_back = 0;
  for (int i = 0; i < 100000; i++) {
    double t = cudalink_now();
    if (t < prev)
      went_back = 1;
    prev = t;
  }
  CHECK(!went_back);
  /* It advances: spin until it has moved by at least a microsecond, and
   * make sure that takes far less than a second of its own time. */
  double start = cudalink_now(), t = start;
  long spins = 0;
  while (t - start < 1e-6 && spins < 100000000L) {
    t = cudalink_now();
    spins++;
  }
  CHECK(t - start >= 1e-6);
  CHECK(t - start < 1.0);
}

/* ------------------------------------------------------------------------ */
/* a live segment (lib/segment.h)                                           */
/* ------------------------------------------------------------------------ */

/* A mapping is page aligned; so is this stand-in. */
static _Alignas(4096) uint8_t live[4096];

/* The version's two halves: stored and loaded whole, little-endian at
 * offset 4, across the 32-bit carry, and read as the codec reads it. */
static void test_segment_version_roundtrip(void) {
  static const uint64_t values[] = {1, 0xFFFFFFFFull, 0x100000000ull, 0x1234567890ABCDEFull,
                                    0xFFFFFFFFFFFFFFFFull};
  uint8_t buf[512];
  cudalink_header h = make_header(3);
  size_t n = write_or_fail(&h, buf, sizeof buf);
  REQUIRE(n != 0);
  for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
    cudalink_header back;
    memcpy(live, buf, n);
    cudalink_segment_store_version(live, values[i]);
    CHECK(cudalink_segment_load_version(live) == values[i]);
    for (unsigned b = 0; b < 8; b++)
      CHECK_EQ_INT(live[4 + b], (values[i] >> (8 * b)) & 0xff);
    /* nothing else moved */
    CHECK(memcmp(live, buf, 4) == 0 && memcmp(live + 12, buf + 12, n - 12) == 0);
    CHECK_EQ_INT(cudalink_header_parse(live, n, &back), CUDALINK_OK);
    CHECK(back.version == values[i]);
  }
}

/* A writer stopped between its two stores (the low half is stored first):
 * the half-written version already differs from the old one, so a
 * consumer comparing with the version it holds sees the change. */
static void test_segment_version_half_written(void) {
  static const uint64_t olds[] = {7, 0xFFFFFFFFull, 0x1FFFFFFFFull};
  for (unsigned i = 0; i < sizeof olds / sizeof olds[0]; i++) {
    uint64_t old = olds[i], next = old + 1;
    uint32_t lo = (uint32_t)next;
    cudalink_segment_store_version(live, old);
    memcpy(live + 4, &lo, 4); /* the low half of next only (little-endian host) */
    CHECK(cudalink_segment_load_version(live) != old);
    cudalink_segment_store_version(live, next);
    CHECK(cudalink_segment_load_version(live) == next);
  }
}

typedef struct {
  atomic_int stop;
  uint64_t last;
} bump_arg;

static void *bump_versions(void *arg) {
  bump_arg *a = arg;
  uint64_t v = 1;
  while (!atomic_load(&a->stop) && v < 2000000)
    cudalink_segment_store_version(live, ++v);
  a->last = v;
  return NULL;
}

/* One thread bumps the version as fast as it can, another reads it: every
 * read is a version that was stored, never behind an earlier read. */
static void test_segment_version_concurrent(void) {
  bump_arg a;
  pthread_t th;
  uint64_t prev = 0;
  long bad = 0, reads = 0;
  cudalink_segment_store_version(live, 1);
  atomic_init(&a.stop, 0);
  a.last = 0;
  REQUIRE(pthread_create(&th, NULL, bump_versions, &a) == 0);
  for (reads = 0; reads < 1000000; reads++) {
    uint64_t v = cudalink_segment_load_version(live);
    if (v < prev || v > 2000000)
      bad++;
    prev = v;
  }
  atomic_store(&a.stop, 1);
  pthread_join(th, NULL);
  CHECK_EQ_INT(bad, 0);
  CHECK(cudalink_segment_load_version(live) == a.last);
}

/* Everything but version, write_idx, timestamp and shutdown_flag counts. */
static void test_segment_same_ring(void) {
  uint8_t a[1400], b[1400];
  cudalink_layout L = cudalink_layout_for(3);
  cudalink_header h = make_header(3);
  size_t n = write_or_fail(&h, a, sizeof a);
  REQUIRE(n != 0);
  memcpy(b, a, sizeof b);
  CHECK(cudalink_segment_same_ring(a, b, 3));
  /* what moves with every frame, and the version (compared on its own) */
  b[L.write_idx] ^= 0x5a;
  b[L.timestamp + 3] ^= 0x5a;
  b[L.shutdown_flag] = 1;
  b[L.version] ^= 1;
  CHECK(cudalink_segment_same_ring(a, b, 3));
  /* what describes the ring */
  const size_t fields[] = {L.magic, L.num_slots, L.mem_handle0, L.event_handle0 + 2 * L.slot_stride,
                           L.mem_handle0 + 2 * L.slot_stride + 63, L.width, L.height + 3,
                           L.num_comps, L.format_kind, L.bits_per_comp, L.flags + 1,
                           L.data_size + 2};
  for (unsigned i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    memcpy(b, a, sizeof b);
    b[fields[i]] ^= 0x01;
    if (cudalink_segment_same_ring(a, b, 3))
      fprintf(stderr, "  a change at byte %zu went unnoticed\n", fields[i]);
    CHECK(!cudalink_segment_same_ring(a, b, 3));
  }
  CHECK(!cudalink_segment_same_ring(a, a, 11)); /* no layout for 11 slots */
}

/* Our producer's counter: the top is the largest multiple of N, then 1;
 * the slot ((write_idx - 1) % N) steps by one across the wrap for every
 * N, and 0 never comes again. */
static void test_write_idx_wrap(void) {
  CHECK(cudalink_write_idx_top(3) == 0xFFFFFFFFu);
  CHECK(cudalink_write_idx_top(10) == 4294967290u);
  CHECK(cudalink_write_idx_top(4) == 0xFFFFFFFCu);
  CHECK(cudalink_write_idx_top(1) == 0xFFFFFFFFu);
  CHECK_EQ_INT(cudalink_write_idx_top(0), 0);
  CHECK_EQ_INT(cudalink_write_idx_top(11), 0);
  CHECK_EQ_INT(cudalink_write_idx_next(0, 3), 1);
  CHECK_EQ_INT(cudalink_write_idx_next(5, 3), 6);
  CHECK_EQ_INT(cudalink_write_idx_next(0xFFFFFFFFu, 3), 1);
  CHECK_EQ_INT(cudalink_write_idx_next(4294967290u, 10), 1);
  CHECK_EQ_INT(cudalink_write_idx_next(4294967293u, 10), 1); /* above the top too */
  for (uint32_t n = 1; n <= CUDALINK_MAX_SLOTS; n++) {
    uint32_t idx = cudalink_write_idx_top(n) - 3 * n, steps = 0;
    int bad = 0;
    for (unsigned i = 0; i < 6 * n; i++) {
      uint32_t next = cudalink_write_idx_next(idx, n);
      bad += next == 0;
      bad += (next - 1) % n != idx % n;       /* slot of next = slot of idx + 1 */
      bad += cudalink_write_idx_distance(idx, next, n, 1) != 1;
      steps += next < idx;
      idx = next;
    }
    if (bad || steps != 1)
      fprintf(stderr, "  %u slots: %d bad steps, %u wraps\n", n, bad, steps);
    CHECK(bad == 0 && steps == 1);
  }
  /* distances: modular, and ours skips the values past the top and 0 */
  CHECK_EQ_INT(cudalink_write_idx_distance(5, 9, 3, 0), 4);
  CHECK_EQ_INT(cudalink_write_idx_distance(0xFFFFFFFFu, 0, 3, 0), 1);
  CHECK_EQ_INT(cudalink_write_idx_distance(0xFFFFFFFFu, 2, 3, 0), 3);
  CHECK_EQ_INT(cudalink_write_idx_distance(0xFFFFFFFFu, 2, 3, 1), 2);
  CHECK_EQ_INT(cudalink_write_idx_distance(4294967289u, 3, 10, 1), 4);
  CHECK_EQ_INT(cudalink_write_idx_distance(4294967289u, 3, 10, 0), 10);
}

int main(void) {
  RUN_TEST(test_version);
  RUN_TEST(test_layout_table);
  RUN_TEST(test_golden_vector);
  RUN_TEST(test_roundtrip_all_dtypes);
  RUN_TEST(test_bfloat16_flag_on_wire);
  RUN_TEST(test_write_rejects);
  RUN_TEST(test_parse_rejects);
  RUN_TEST(test_why_buffer);
  RUN_TEST(test_status_strings);
  RUN_TEST(test_dtype_table);
  RUN_TEST(test_format_sizes);
  RUN_TEST(test_now_monotonic);
  RUN_TEST(test_segment_version_roundtrip);
  RUN_TEST(test_segment_version_half_written);
  RUN_TEST(test_segment_version_concurrent);
  RUN_TEST(test_segment_same_ring);
  RUN_TEST(test_write_idx_wrap);
  return TEST_SUMMARY();
}
