/* The frames that the cudalinksrc GPU tests and benchmark publish, and the
 * reference for what cudalinksrc must output for them. Plain C, no GLib, no
 * CUDA; tests/gpu/py/src_producer.py computes the same bytes with numpy.
 *
 * Byte dtypes (uint8, uint16, int8, int16): frame k of a seed is
 *   base[i] = srcpat_base(i, seed) for every byte i of the frame,
 *   then row (k % height) filled with byte (k * 7 + 1),
 *   then the frame number k stamped little-endian into the first 4 and the
 *   last 4 bytes.
 * So every frame carries its index, and a frame mixed from two frames
 * (torn) differs from srcpat_fill() of the index it carries.
 *
 * Float dtypes (float16, bfloat16, float32): component e of frame k is
 *   n = (e * 37 + k * 11) % 161,  v = (n - 16) / 128   (-0.125 .. 1.125),
 * exact in all three types, so conversions have one right answer. These
 * frames carry no stamp (the index comes from the buffer offset).
 */
#ifndef CUDALINK_SRC_PATTERN_H
#define CUDALINK_SRC_PATTERN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cudalink.h"

static inline uint8_t
srcpat_base(uint32_t i, uint32_t seed)
{
  uint32_t x = i * 2654435761u + seed * 40503u;
  return (uint8_t)((x >> 13) ^ (i >> 9));
}

static inline int
srcpat_is_float(cudalink_dtype d)
{
  return d == CUDALINK_DTYPE_FLOAT16 || d == CUDALINK_DTYPE_BFLOAT16 ||
         d == CUDALINK_DTYPE_FLOAT32;
}

static inline double
srcpat_float_value(uint64_t e, uint32_t k)
{
  uint32_t n = (uint32_t)((e * 37u + (uint64_t)k * 11u) % 161u);
  return ((double)n - 16.0) / 128.0;
}

static inline uint32_t
srcpat_f32_bits(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Exact for the pattern's values (normal, at most 8 significant bits). */
static inline uint16_t
srcpat_f16_bits(float f)
{
  uint32_t u = srcpat_f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  int32_t exp = (int32_t)((u >> 23) & 0xff);
  if ((u & 0x7fffffffu) == 0)
    return sign;
  exp = exp - 127 + 15;
  return (uint16_t)(sign | (uint16_t)(exp << 10) | (uint16_t)((u >> 13) & 0x3ffu));
}

static inline uint16_t
srcpat_bf16_bits(float f)
{
  return (uint16_t)(srcpat_f32_bits(f) >> 16);
}

/* Bytes of one tightly packed frame of fmt. */
static inline uint64_t
srcpat_frame_size(const cudalink_format *fmt)
{
  return (uint64_t)fmt->width * fmt->height * fmt->num_comps * cudalink_dtype_size(fmt->dtype);
}

static inline void
srcpat_fill(uint8_t *out, const cudalink_format *fmt, uint32_t k, uint32_t seed)
{
  uint64_t size = srcpat_frame_size(fmt);
  uint64_t row = size / fmt->height;

  if (!srcpat_is_float(fmt->dtype)) {
    uint64_t i;
    for (i = 0; i < size; i++)
      out[i] = srcpat_base((uint32_t)i, seed);
    memset(out + (uint64_t)(k % fmt->height) * row, (int)((k * 7u + 1u) & 0xffu), row);
    memcpy(out, &k, 4);
    memcpy(out + size - 4, &k, 4);
  } else {
    uint64_t n = size / cudalink_dtype_size(fmt->dtype), e;
    for (e = 0; e < n; e++) {
      float v = (float)srcpat_float_value(e, k);
      if (fmt->dtype == CUDALINK_DTYPE_FLOAT32) {
        memcpy(out + e * 4, &v, 4);
      } else {
        uint16_t h = fmt->dtype == CUDALINK_DTYPE_FLOAT16 ? srcpat_f16_bits(v)
                                                          : srcpat_bf16_bits(v);
        memcpy(out + e * 2, &h, 2);
      }
    }
  }
}

/* The index stamped into a byte-dtype frame. */
static inline uint32_t
srcpat_stamp(const uint8_t *frame)
{
  uint32_t k;
  memcpy(&k, frame, 4);
  return k;
}

/* Component e of a tightly packed frame as a normalised value: unsigned
 * v / max, signed v / max (so -1..1), floats as they are. */
static inline double
srcpat_normalised(const uint8_t *frame, cudalink_dtype d, uint64_t e, uint32_t k)
{
  switch (d) {
  case CUDALINK_DTYPE_UINT8:
    return frame[e] / 255.0;
  case CUDALINK_DTYPE_INT8:
    return (int8_t)frame[e] / 127.0;
  case CUDALINK_DTYPE_UINT16: {
    uint16_t v;
    memcpy(&v, frame + e * 2, 2);
    return v / 65535.0;
  }
  case CUDALINK_DTYPE_INT16: {
    int16_t v;
    memcpy(&v, frame + e * 2, 2);
    return v / 32767.0;
  }
  default:
    return srcpat_float_value(e, k);
  }
}

/* Whether `got` is a right conversion of normalised value v to an integer
 * of maximum `max`: clamp to 0..1, scale, round to nearest; at an exact
 * half (within float error) either neighbour is right. */
static inline int
srcpat_conv_ok(double v, uint32_t max, uint32_t got)
{
  double x, f;
  if (v < 0)
    v = 0;
  if (v > 1)
    v = 1;
  x = v * max;
  f = x - floor(x);
  /* the GPU computes in float32: near 65535 its spacing is 2^-8, so a value
   * within that of a .5 tie may round either way */
  if (fabs(f - 0.5) < (max > 255 ? 8e-3 : 1e-3))
    return got == (uint32_t)floor(x) || got == (uint32_t)floor(x) + 1;
  return got == (uint32_t)floor(x + 0.5);
}

#endif
