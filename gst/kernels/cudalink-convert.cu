/* cudalink-convert.cu: the one GPU kernel of the cudalink plugin.
 *
 * Reads every pixel of a source frame (any protocol dtype, 1..4 channels,
 * any row pitch), picks each output channel from a source channel or a
 * constant (swizzle), optionally flips vertically, and writes any protocol
 * dtype, tightly packed or pitched. See gst/gstcudalinkconvert.h for the
 * numerics. Compiled to PTX by nvcc at build time and, as a fallback, by
 * NVRTC at run time: so it includes NO header (half and bfloat16 are done
 * with bit manipulation) and uses only built-in device functions.
 *
 * The CPU test (tests/gst/test_cudalinksink.c) compiles this same file as
 * C, defining CUDALINK_DEVICE / CUDALINK_KERNEL and the few intrinsics
 * used, to check the numerics of every conversion without a GPU: keep it
 * C-compatible (no templates, no references, no overloading).
 */

#ifndef CUDALINK_DEVICE
#define CUDALINK_DEVICE __device__ static __forceinline__
#define CUDALINK_KERNEL extern "C" __global__
#endif

/* cudalink_dtype values (lib/cudalink.h) */
#define DT_UINT8 0
#define DT_UINT16 1
#define DT_INT8 2
#define DT_INT16 3
#define DT_FLOAT16 4
#define DT_BFLOAT16 5
#define DT_FLOAT32 6

/* swizzle constants (gst/gstcudalinkconvert.h) */
#define SW_ZERO (-1)
#define SW_ONE (-2)

CUDALINK_DEVICE int
dtype_size (int dt)
{
  return (dt == DT_UINT8 || dt == DT_INT8) ? 1 : (dt == DT_FLOAT32 ? 4 : 2);
}

CUDALINK_DEVICE float
half_to_float (unsigned int h)
{
  unsigned int sign = (h & 0x8000u) << 16;
  unsigned int exp = (h >> 10) & 0x1fu;
  unsigned int man = h & 0x3ffu;

  if (exp == 0) {
    /* zero or subnormal: man * 2^-24, exact in float */
    float f = (float) man * 5.9604644775390625e-8f;
    return __uint_as_float (__float_as_uint (f) | sign);
  }
  if (exp == 31)                /* inf, nan */
    return __uint_as_float (sign | 0x7f800000u | (man << 13));
  return __uint_as_float (sign | ((exp + 112u) << 23) | (man << 13));
}

/* round to nearest even, overflow to inf, nan stays nan */
CUDALINK_DEVICE unsigned short
float_to_half (float f)
{
  unsigned int x = __float_as_uint (f);
  unsigned int sign = (x >> 16) & 0x8000u;
  unsigned int ax = x & 0x7fffffffu;
  unsigned int h, rest;

  if (ax >= 0x7f800000u)
    return (unsigned short) (sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u)        /* >= 65520: rounds to inf */
    return (unsigned short) (sign | 0x7c00u);
  if (ax < 0x38800000u) {       /* below 2^-14: subnormal (or the smallest normal) */
    float v = __uint_as_float (ax) * 16777216.0f;       /* in units of 2^-24, exact */
    return (unsigned short) (sign | __float2uint_rn (v));
  }
  h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);
  rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    h++;                        /* a carry into the exponent is still right */
  return (unsigned short) (sign | h);
}

CUDALINK_DEVICE float
bf16_to_float (unsigned int b)
{
  return __uint_as_float (b << 16);
}

CUDALINK_DEVICE unsigned short
float_to_bf16 (float f)
{
  unsigned int x = __float_as_uint (f);

  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (unsigned short) ((x >> 16) | 0x40u);        /* quiet nan */
  x += 0x7fffu + ((x >> 16) & 1u);
  return (unsigned short) (x >> 16);
}

CUDALINK_DEVICE float
clampf (float v, float lo, float hi)
{
  return v != v ? 0.0f : fminf (fmaxf (v, lo), hi);    /* nan -> 0 */
}

CUDALINK_DEVICE float
load_norm (const unsigned char *p, int dt)
{
  switch (dt) {
    case DT_UINT8:
      return (float) p[0] / 255.0f;
    case DT_UINT16:
      return (float) *(const unsigned short *) p / 65535.0f;
    case DT_INT8:
      return fmaxf ((float) *(const signed char *) p / 127.0f, -1.0f);
    case DT_INT16:
      return fmaxf ((float) *(const short *) p / 32767.0f, -1.0f);
    case DT_FLOAT16:
      return half_to_float (*(const unsigned short *) p);
    case DT_BFLOAT16:
      return bf16_to_float (*(const unsigned short *) p);
    default:
      return *(const float *) p;
  }
}

CUDALINK_DEVICE void
store_norm (unsigned char *p, int dt, float v)
{
  switch (dt) {
    case DT_UINT8:
      p[0] = (unsigned char) __float2uint_rn (clampf (v, 0.0f, 1.0f) * 255.0f);
      break;
    case DT_UINT16:
      *(unsigned short *) p =
          (unsigned short) __float2uint_rn (clampf (v, 0.0f, 1.0f) * 65535.0f);
      break;
    case DT_INT8:
      *(signed char *) p =
          (signed char) __float2int_rn (clampf (v, -1.0f, 1.0f) * 127.0f);
      break;
    case DT_INT16:
      *(short *) p = (short) __float2int_rn (clampf (v, -1.0f, 1.0f) * 32767.0f);
      break;
    case DT_FLOAT16:
      *(unsigned short *) p = float_to_half (v);
      break;
    case DT_BFLOAT16:
      *(unsigned short *) p = float_to_bf16 (v);
      break;
    default:
      *(float *) p = v;
      break;
  }
}

/* the bits of one component, for same-dtype copies (bit exact) */
CUDALINK_DEVICE unsigned int
load_bits (const unsigned char *p, int size)
{
  if (size == 1)
    return p[0];
  if (size == 2)
    return *(const unsigned short *) p;
  return *(const unsigned int *) p;
}

CUDALINK_DEVICE void
store_bits (unsigned char *p, int size, unsigned int bits)
{
  if (size == 1)
    p[0] = (unsigned char) bits;
  else if (size == 2)
    *(unsigned short *) p = (unsigned short) bits;
  else
    *(unsigned int *) p = bits;
}

CUDALINK_KERNEL void
cudalink_convert (const unsigned char *src, unsigned long long src_pitch,
    int src_comps, int src_dtype, unsigned char *dst,
    unsigned long long dst_pitch, int dst_comps, int dst_dtype, int width,
    int height, int sw0, int sw1, int sw2, int sw3, int flip_y)
{
  int x = blockIdx.x * blockDim.x + threadIdx.x;
  int y = blockIdx.y * blockDim.y + threadIdx.y;
  int sy, ssize, dsize, c;
  const unsigned char *sp;
  unsigned char *dp;

  if (x >= width || y >= height)
    return;

  sy = flip_y ? height - 1 - y : y;
  ssize = dtype_size (src_dtype);
  dsize = dtype_size (dst_dtype);
  sp = src + (unsigned long long) sy * src_pitch +
      (unsigned long long) x * src_comps * ssize;
  dp = dst + (unsigned long long) y * dst_pitch +
      (unsigned long long) x * dst_comps * dsize;

  for (c = 0; c < dst_comps; c++) {
    int s = c == 0 ? sw0 : (c == 1 ? sw1 : (c == 2 ? sw2 : sw3));
    unsigned char *d = dp + c * dsize;

    if (s >= 0 && s < src_comps) {
      if (src_dtype == dst_dtype)
        store_bits (d, dsize, load_bits (sp + s * ssize, ssize));
      else
        store_norm (d, dst_dtype, load_norm (sp + s * ssize, src_dtype));
    } else if (s == SW_ONE) {
      store_norm (d, dst_dtype, 1.0f);
    } else {
      store_bits (d, dsize, 0u);
    }
  }
}
