/* cudalinksink tests that need no GPU (suite 'gst', run in CI):
 *
 * - the element: registration (with cudalinksrc), pad template, every
 *   property's default, range and flags, the refused video directions;
 * - the caps -> protocol mapping (gst/sinkformat.c, compiled in) for every
 *   format x channel-order x output-dtype x flip, checked against rules
 *   written out here independently of the implementation;
 * - the conversion kernel itself (gst/kernels/cudalink-convert.cu), compiled
 *   here as C for the CPU and checked against reference conversions done
 *   differently (double arithmetic, integer rounding);
 * - start() failures without a GPU: no CUDA driver (CUDALINK_CUDA_LIBRARY
 *   points at a missing file, so this holds on a GPU machine too) and bad
 *   ipc-names, each an error message on the bus, no crash.
 *
 * The environment variable is set in main(), before anything can load the
 * driver, so the suite also runs correctly with CK_FORK=no (valgrind).
 */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "sinkformat.h"

/* ---------------------------------------------------------------------- */
/* The kernel, compiled for the CPU                                       */
/* ---------------------------------------------------------------------- */

typedef struct
{
  unsigned int x, y, z;
} HostDim3;
static HostDim3 blockIdx, blockDim, threadIdx;

static inline float
__uint_as_float (unsigned int u)
{
  float f;
  memcpy (&f, &u, sizeof (f));
  return f;
}

static inline unsigned int
__float_as_uint (float f)
{
  unsigned int u;
  memcpy (&u, &f, sizeof (u));
  return u;
}

/* round half to even in float arithmetic (no libm needed) */
static inline float
host_rint (float v)
{
  float a = v < 0 ? -v : v, r;

  if (a >= 8388608.0f)
    return v;
  r = (a + 8388608.0f) - 8388608.0f;
  return v < 0 ? -r : r;
}

static inline unsigned int
__float2uint_rn (float v)
{
  return (unsigned int) host_rint (v);
}

static inline int
__float2int_rn (float v)
{
  return (int) host_rint (v);
}

/* CUDA's fminf/fmaxf: a NaN operand yields the other operand */
static inline float
host_fminf (float a, float b)
{
  if (a != a)
    return b;
  if (b != b)
    return a;
  return a < b ? a : b;
}

static inline float
host_fmaxf (float a, float b)
{
  if (a != a)
    return b;
  if (b != b)
    return a;
  return a > b ? a : b;
}

#define fminf host_fminf
#define fmaxf host_fmaxf
#define CUDALINK_DEVICE static inline
#define CUDALINK_KERNEL static
#pragma GCC diagnostic push
#pragma GCC optimize ("no-strict-aliasing")
#include "kernels/cudalink-convert.cu"
#pragma GCC diagnostic pop
#undef fminf
#undef fmaxf

/* Runs the kernel over every pixel, one "thread" per pixel. */
static void
cpu_convert (const guint8 * src, gsize src_pitch, gint src_comps,
    cudalink_dtype src_dtype, guint8 * dst, gsize dst_pitch, gint dst_comps,
    cudalink_dtype dst_dtype, gint width, gint height, const gint sw[4],
    gboolean flip)
{
  blockDim.x = blockDim.y = blockDim.z = 1;
  threadIdx.x = threadIdx.y = threadIdx.z = 0;
  for (blockIdx.y = 0; blockIdx.y < (guint) height; blockIdx.y++)
    for (blockIdx.x = 0; blockIdx.x < (guint) width; blockIdx.x++)
      cudalink_convert (src, src_pitch, src_comps, (int) src_dtype, dst,
          dst_pitch, dst_comps, (int) dst_dtype, width, height, sw[0], sw[1],
          sw[2], sw[3], flip ? 1 : 0);
}

static gsize
host_dtype_size (cudalink_dtype d)
{
  return d == CUDALINK_DTYPE_UINT8 || d == CUDALINK_DTYPE_INT8 ? 1 :
      (d == CUDALINK_DTYPE_FLOAT32 ? 4 : 2);
}

/* Converts one component value (given as raw bytes) with the kernel. */
static void
cpu_convert_one (const void *in, cudalink_dtype from, void *out,
    cudalink_dtype to)
{
  static const gint sw[4] = { 0, -1, -1, -1 };
  guint32 s = 0, d = 0;

  memcpy (&s, in, host_dtype_size (from));
  cpu_convert ((const guint8 *) &s, 4, 1, from, (guint8 *) & d, 4, 1, to, 1,
      1, sw, FALSE);
  memcpy (out, &d, host_dtype_size (to));
}

/* ---- references, computed differently from the kernel ---- */

static gdouble
pow2 (gint e)
{
  gdouble r = 1.0;

  for (; e > 0; e--)
    r *= 2.0;
  for (; e < 0; e++)
    r /= 2.0;
  return r;
}

/* nearest integer, ties to even, of a non-negative double < 2^52 */
static gdouble
rne_double (gdouble q)
{
  gdouble fl = (gdouble) (guint64) q, frac = q - fl;

  if (frac > 0.5 || (frac == 0.5 && ((guint64) fl & 1)))
    return fl + 1.0;
  return fl;
}

static gboolean
float_is_nan (gfloat f)
{
  return f != f;
}

static gfloat
ref_half_to_float (guint16 h)
{
  gint exp = (h >> 10) & 0x1f;
  gint man = h & 0x3ff;
  gdouble v;

  if (exp == 31)
    return man ? __uint_as_float (0x7fc00000u) :
        ((h & 0x8000) ? -__uint_as_float (0x7f800000u) :
        __uint_as_float (0x7f800000u));
  if (exp == 0)
    v = man * pow2 (-24);
  else
    v = (1024 + man) * pow2 (exp - 25);
  return (gfloat) ((h & 0x8000) ? -v : v);
}

static guint16
ref_float_to_half (gfloat f)
{
  guint16 sign = (__float_as_uint (f) >> 16) & 0x8000;
  gdouble a = f < 0 ? -(gdouble) f : (gdouble) f, q, r;
  gint e;

  if (float_is_nan (f))
    return sign | 0x7e00;
  if (a >= 65520.0)
    return sign | 0x7c00;
  if (a < pow2 (-14))
    return sign | (guint16) rne_double (a * pow2 (24));
  for (e = -14; a >= pow2 (e + 1); e++) {
  }
  q = a / pow2 (e - 10);        /* [1024, 2048) */
  r = rne_double (q);
  if (r >= 2048.0) {
    r = 1024.0;
    e++;
  }
  if (e > 15)
    return sign | 0x7c00;
  return sign | (guint16) (((e + 15) << 10) | ((guint) r - 1024));
}

static guint16
ref_float_to_bf16 (gfloat f)
{
  guint32 x = __float_as_uint (f);
  guint32 lo = x & 0xffff0000u, hi = lo + 0x10000u;
  gdouble dl, dh, d = f;

  if (float_is_nan (f))
    return (guint16) ((x >> 16) | 0x40);
  dl = __uint_as_float (lo);
  if ((lo & 0x7f800000u) == 0x7f800000u)        /* inf: already exact */
    return (guint16) (lo >> 16);
  dh = ((hi & 0x7fffffffu) == 0x7f800000u) ?
      ((x & 0x80000000u) ? -pow2 (128) : pow2 (128)) : __uint_as_float (hi);
  /* pick the nearer of lo / hi; ties to the even one */
  if (fabs (d - dl) < fabs (dh - d))
    return (guint16) (lo >> 16);
  if (fabs (d - dl) > fabs (dh - d))
    return (guint16) (hi >> 16);
  return (guint16) ((((lo >> 16) & 1) ? hi : lo) >> 16);
}

/* Random samples for the float16 and bfloat16 rounding tests. Under
 * valgrind (CI runs this suite there, within meson's 120 s) a twentieth:
 * the exhaustive and structured parts still run in full, and valgrind
 * finds nothing in arithmetic on stack values that more samples would add;
 * the full count alone took over two minutes there. */
static guint
random_samples (void)
{
  return RUNNING_ON_VALGRIND ? 100000 : 2000000;
}

static guint32
xorshift (guint32 * s)
{
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

GST_START_TEST (test_kernel_half_exhaustive)
{
  guint32 h, seed = 12345;
  guint i;

  /* half -> float: every bit pattern */
  for (h = 0; h < 0x10000; h++) {
    guint16 in = (guint16) h;
    gfloat got, want = ref_half_to_float (in);

    cpu_convert_one (&in, CUDALINK_DTYPE_FLOAT16, &got,
        CUDALINK_DTYPE_FLOAT32);
    if (float_is_nan (want))
      fail_unless (float_is_nan (got), "half 0x%04x: want nan", h);
    else
      fail_unless (__float_as_uint (got) == __float_as_uint (want),
          "half 0x%04x -> %a, want %a", h, got, want);
  }

  /* float -> half: all halves' exact values, their midpoints, neighbours
   * of those, and random bit patterns */
  for (i = 0; i < 0x10000 * 4 + random_samples (); i++) {
    gfloat f;
    guint16 got, want;

    if (i < 0x40000) {
      guint16 b = (guint16) (i >> 2);
      gfloat v = ref_half_to_float (b), nv;

      if (float_is_nan (v))
        continue;
      nv = ref_half_to_float ((guint16) (b + 1));
      switch (i & 3) {
        case 0:
          f = v;
          break;
        case 1:                /* midpoint towards the next half */
          if (float_is_nan (nv) || (b & 0x7fff) == 0x7fff)
            continue;
          f = (gfloat) (((gdouble) v + (gdouble) nv) / 2.0);
          break;
        case 2:
          f = __uint_as_float (__float_as_uint (v) + 1);
          break;
        default:
          f = __uint_as_float (__float_as_uint (v) - 1);
          break;
      }
    } else {
      f = __uint_as_float (xorshift (&seed));
    }

    want = ref_float_to_half (f);
    cpu_convert_one (&f, CUDALINK_DTYPE_FLOAT32, &got,
        CUDALINK_DTYPE_FLOAT16);
    if (float_is_nan (f))
      fail_unless ((got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0,
          "%a -> 0x%04x, want a nan", f, got);
    else
      fail_unless (got == want, "float %a (0x%08x) -> half 0x%04x, want "
          "0x%04x", f, __float_as_uint (f), got, want);
  }
}

GST_END_TEST;

GST_START_TEST (test_kernel_bfloat16)
{
  guint32 seed = 777, h;
  guint i;

  for (h = 0; h < 0x10000; h++) {
    guint16 in = (guint16) h;
    gfloat got;

    cpu_convert_one (&in, CUDALINK_DTYPE_BFLOAT16, &got,
        CUDALINK_DTYPE_FLOAT32);
    fail_unless (__float_as_uint (got) == h << 16, "bf16 0x%04x", h);
  }
  for (i = 0; i < random_samples (); i++) {
    guint32 bits = xorshift (&seed);
    gfloat f;
    guint16 got;

    if (i % 4 == 1)
      bits = (bits & 0xffff0000u) | 0x8000u;    /* exact ties */
    f = __uint_as_float (bits);
    cpu_convert_one (&f, CUDALINK_DTYPE_FLOAT32, &got,
        CUDALINK_DTYPE_BFLOAT16);
    if (float_is_nan (f))
      fail_unless ((got & 0x7f80) == 0x7f80 && (got & 0x7f) != 0);
    else
      fail_unless (got == ref_float_to_bf16 (f),
          "0x%08x -> 0x%04x, want 0x%04x", bits, got, ref_float_to_bf16 (f));
  }
}

GST_END_TEST;

GST_START_TEST (test_kernel_integers)
{
  guint v;

  for (v = 0; v < 256; v++) {
    guint8 in = (guint8) v;
    gfloat f;
    guint16 u16, half;

    /* uint8 -> float32: within 1e-6 of v/255 (the GPU test's bound) and
     * the correctly rounded quotient */
    cpu_convert_one (&in, CUDALINK_DTYPE_UINT8, &f, CUDALINK_DTYPE_FLOAT32);
    fail_unless (fabs (f - v / 255.0) < 1e-6, "%u -> %a", v, f);
    fail_unless (f == (gfloat) v / 255.0f);
    /* uint8 -> uint16 is exact: v * 257 */
    cpu_convert_one (&in, CUDALINK_DTYPE_UINT8, &u16, CUDALINK_DTYPE_UINT16);
    fail_unless_equals_int (u16, v * 257);
    /* uint8 -> float16 rounds v/255 once more */
    cpu_convert_one (&in, CUDALINK_DTYPE_UINT8, &half,
        CUDALINK_DTYPE_FLOAT16);
    fail_unless_equals_int (half, ref_float_to_half ((gfloat) v / 255.0f));
  }

  for (v = 0; v < 65536; v++) {
    guint16 in = (guint16) v;
    guint8 u8 = 0;
    gfloat f;

    /* uint16 -> uint8: nearest of v * 255 / 65535 (never a tie) */
    cpu_convert_one (&in, CUDALINK_DTYPE_UINT16, &u8, CUDALINK_DTYPE_UINT8);
    fail_unless_equals_int (u8, (v * 255 * 2 + 65535) / (2 * 65535));
    cpu_convert_one (&in, CUDALINK_DTYPE_UINT16, &f, CUDALINK_DTYPE_FLOAT32);
    fail_unless (fabs (f - v / 65535.0) < 1e-7, "%u -> %a", v, f);
  }

  /* float -> integer clamps, nan -> 0 */
  {
    const gfloat in[] = { -0.5f, 1.5f, __uint_as_float (0x7fc00000u), 0.5f,
      -__uint_as_float (0x7f800000u)
    };
    const guint8 want_u8[] = { 0, 255, 0, 128, 0 };
    const gint8 want_i8[] = { -64, 127, 0, 64, -127 };
    const gint16 want_i16[] = { -16384, 32767, 0, 16384, -32767 };
    guint i;

    for (i = 0; i < G_N_ELEMENTS (in); i++) {
      guint8 u8 = 1;
      gint8 i8 = 1;
      gint16 i16 = 1;

      cpu_convert_one (&in[i], CUDALINK_DTYPE_FLOAT32, &u8,
          CUDALINK_DTYPE_UINT8);
      fail_unless_equals_int (u8, want_u8[i]);
      cpu_convert_one (&in[i], CUDALINK_DTYPE_FLOAT32, &i8,
          CUDALINK_DTYPE_INT8);
      fail_unless_equals_int (i8, want_i8[i]);
      cpu_convert_one (&in[i], CUDALINK_DTYPE_FLOAT32, &i16,
          CUDALINK_DTYPE_INT16);
      fail_unless_equals_int (i16, want_i16[i]);
    }
  }

  /* signed -> float: -max..max over -1..1, the extra negative clamps */
  {
    gint8 i8 = -128;
    gint16 i16 = -32768;
    gfloat f;

    cpu_convert_one (&i8, CUDALINK_DTYPE_INT8, &f, CUDALINK_DTYPE_FLOAT32);
    fail_unless (f == -1.0f);
    cpu_convert_one (&i16, CUDALINK_DTYPE_INT16, &f, CUDALINK_DTYPE_FLOAT32);
    fail_unless (f == -1.0f);
    i8 = 127;
    cpu_convert_one (&i8, CUDALINK_DTYPE_INT8, &f, CUDALINK_DTYPE_FLOAT32);
    fail_unless (f == 1.0f);
  }
}

GST_END_TEST;

GST_START_TEST (test_kernel_same_dtype_bit_exact)
{
  /* same dtype: bits copied, even nan payloads and negative zero */
  const guint32 f32[] = { 0x7fc12345u, 0xff812345u, 0x80000000u, 0x00000001u,
    0x3f800001u
  };
  const guint16 f16[] = { 0x7e01, 0xfc01, 0x8000, 0x0001, 0x7bff };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (f32); i++) {
    guint32 out = 0;
    guint16 out16 = 0;

    cpu_convert_one (&f32[i], CUDALINK_DTYPE_FLOAT32, &out,
        CUDALINK_DTYPE_FLOAT32);
    fail_unless (out == f32[i], "0x%08x -> 0x%08x", f32[i], out);
    cpu_convert_one (&f16[i], CUDALINK_DTYPE_FLOAT16, &out16,
        CUDALINK_DTYPE_FLOAT16);
    fail_unless (out16 == f16[i]);
    cpu_convert_one (&f16[i], CUDALINK_DTYPE_BFLOAT16, &out16,
        CUDALINK_DTYPE_BFLOAT16);
    fail_unless (out16 == f16[i]);
  }
}

GST_END_TEST;

/* Whole frames: each format's own mapping (from sinkformat.c) applied by
 * the kernel to a pitched, padded source, compared pixel by pixel with
 * what the channel letters say. */
static const struct
{
  GstVideoFormat format;
  const gchar *layout;          /* channel letters in memory order */
  gint bytes;                   /* per component */
} formats[] = {
  {GST_VIDEO_FORMAT_RGBA, "RGBA", 1},
  {GST_VIDEO_FORMAT_RGBx, "RGBx", 1},
  {GST_VIDEO_FORMAT_BGRA, "BGRA", 1},
  {GST_VIDEO_FORMAT_BGRx, "BGRx", 1},
  {GST_VIDEO_FORMAT_RGB, "RGB", 1},
  {GST_VIDEO_FORMAT_BGR, "BGR", 1},
  {GST_VIDEO_FORMAT_GRAY8, "Y", 1},
  {GST_VIDEO_FORMAT_GRAY16_LE, "Y", 2},
  {GST_VIDEO_FORMAT_RGBA64_LE, "RGBA", 2},
};

static const GstCudaLinkOutputDtype all_dtypes[] = {
  GST_CUDA_LINK_OUTPUT_DTYPE_AUTO, GST_CUDA_LINK_OUTPUT_DTYPE_UINT8,
  GST_CUDA_LINK_OUTPUT_DTYPE_UINT16, GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16,
  GST_CUDA_LINK_OUTPUT_DTYPE_BFLOAT16, GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32,
};

/* normalised value of component c of input pixel (x, y) */
static gdouble
input_value (const guint8 * src, gsize pitch, gint x, gint y, gint comps,
    gint bytes, gint c)
{
  const guint8 *p = src + y * pitch + (x * comps + c) * bytes;

  if (bytes == 1)
    return p[0] / 255.0;
  return (p[0] | (p[1] << 8)) / 65535.0;
}

/* normalised value of output component c at (x, y) */
static gdouble
output_value (const guint8 * dst, gsize pitch, gint x, gint y, gint comps,
    cudalink_dtype dt, gint c)
{
  gint size = dt == CUDALINK_DTYPE_UINT8 ? 1 : (dt == CUDALINK_DTYPE_FLOAT32
      ? 4 : 2);
  const guint8 *p = dst + y * pitch + (x * comps + c) * size;
  guint16 u16;
  gfloat f;

  switch (dt) {
    case CUDALINK_DTYPE_UINT8:
      return p[0] / 255.0;
    case CUDALINK_DTYPE_UINT16:
      memcpy (&u16, p, 2);
      return u16 / 65535.0;
    case CUDALINK_DTYPE_FLOAT16:
      memcpy (&u16, p, 2);
      return ref_half_to_float (u16);
    case CUDALINK_DTYPE_BFLOAT16:
      memcpy (&u16, p, 2);
      return __uint_as_float ((guint32) u16 << 16);
    default:
      memcpy (&f, p, 4);
      return f;
  }
}

GST_START_TEST (test_kernel_frames)
{
  const gint w = 7, h = 5;
  guint fi, di, order, flip;
  guint32 seed = 99;

  for (fi = 0; fi < G_N_ELEMENTS (formats); fi++) {
    gint comps = (gint) strlen (formats[fi].layout);
    gint bytes = formats[fi].bytes;
    /* padded rows, by a whole number of components: the kernel needs rows
     * of 2-byte components to start at even addresses
     * (gstcudalinkconvert.h), as any pitch from the GPU does */
    gsize src_pitch = (gsize) w * comps * bytes + 13 * bytes;
    guint8 *src = g_malloc (src_pitch * h);
    gsize i;

    for (i = 0; i < src_pitch * h; i++)
      src[i] = (guint8) xorshift (&seed);

    for (di = 0; di < G_N_ELEMENTS (all_dtypes); di++)
      for (order = GST_CUDA_LINK_CHANNEL_ORDER_AUTO;
          order <= GST_CUDA_LINK_CHANNEL_ORDER_BGRA; order++)
        for (flip = 0; flip < 2; flip++) {
          GstCudaLinkSinkMapping m;
          guint8 *dst;
          gint x, y, c;
          gdouble tol;

          fail_unless (gst_cuda_link_sink_map_format (formats[fi].format, w,
                  h, order, all_dtypes[di], flip, &m));
          dst = g_malloc0 (m.frame_size);
          cpu_convert (src, src_pitch, (gint) m.src_comps, m.src_dtype, dst,
              m.row_size, (gint) m.format.num_comps, m.format.dtype, w, h,
              m.swizzle, m.flip_y);

          /* rounding of the output type, relative for the float types */
          switch (m.format.dtype) {
            case CUDALINK_DTYPE_UINT8:
              tol = 0.5 / 255.0 + 1e-9;
              break;
            case CUDALINK_DTYPE_UINT16:
              tol = 0.5 / 65535.0 + 1e-9;
              break;
            case CUDALINK_DTYPE_FLOAT16:
              tol = 1.0 / 2048.0;
              break;
            case CUDALINK_DTYPE_BFLOAT16:
              tol = 1.0 / 256.0;
              break;
            default:
              tol = 1e-6;
              break;
          }

          for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
              for (c = 0; c < (gint) m.format.num_comps; c++) {
                const gchar *out_order =
                    (m.format.flags & CUDALINK_FLAG_BGRA) ? "BGRA" : "RGBA";
                gchar letter = m.format.num_comps == 1 ? 'Y' : out_order[c];
                const gchar *pos = strchr (formats[fi].layout, letter);
                gint sy = flip ? h - 1 - y : y;
                gdouble want = pos ? input_value (src, src_pitch, x, sy,
                    comps, bytes, (gint) (pos - formats[fi].layout)) : 1.0;
                gdouble got = output_value (dst, m.row_size, x, y,
                    (gint) m.format.num_comps, m.format.dtype, c);

                fail_unless (fabs (got - want) <= tol,
                    "%s dtype %u order %u flip %u (%d,%d) channel %c: got "
                    "%f want %f", formats[fi].layout, all_dtypes[di], order,
                    flip, x, y, letter, got, want);
                /* the same dtype copies bits: exact */
                if (m.format.dtype == m.src_dtype)
                  fail_unless (got == want);
              }
          g_free (dst);
        }
    g_free (src);
  }
}

GST_END_TEST;

/* ---------------------------------------------------------------------- */
/* caps -> protocol mapping                                               */
/* ---------------------------------------------------------------------- */

static cudalink_dtype
expected_dtype (GstCudaLinkOutputDtype d, gint bytes)
{
  switch (d) {
    case GST_CUDA_LINK_OUTPUT_DTYPE_AUTO:
      return bytes == 1 ? CUDALINK_DTYPE_UINT8 : CUDALINK_DTYPE_UINT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_UINT8:
      return CUDALINK_DTYPE_UINT8;
    case GST_CUDA_LINK_OUTPUT_DTYPE_UINT16:
      return CUDALINK_DTYPE_UINT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16:
      return CUDALINK_DTYPE_FLOAT16;
    case GST_CUDA_LINK_OUTPUT_DTYPE_BFLOAT16:
      return CUDALINK_DTYPE_BFLOAT16;
    default:
      return CUDALINK_DTYPE_FLOAT32;
  }
}

static gint
dtype_bytes (cudalink_dtype d)
{
  return d == CUDALINK_DTYPE_UINT8 ? 1 : (d == CUDALINK_DTYPE_FLOAT32 ? 4 : 2);
}

/* The cases where a plain 2-D copy is right, listed by hand. */
static gboolean
expected_plain (GstVideoFormat f, guint order, GstCudaLinkOutputDtype d,
    gboolean flip)
{
  gboolean auto8 = d == GST_CUDA_LINK_OUTPUT_DTYPE_AUTO ||
      d == GST_CUDA_LINK_OUTPUT_DTYPE_UINT8;
  gboolean auto16 = d == GST_CUDA_LINK_OUTPUT_DTYPE_AUTO ||
      d == GST_CUDA_LINK_OUTPUT_DTYPE_UINT16;

  if (flip)
    return FALSE;
  switch (f) {
    case GST_VIDEO_FORMAT_RGBA:
      return order != GST_CUDA_LINK_CHANNEL_ORDER_BGRA && auto8;
    case GST_VIDEO_FORMAT_BGRA:
      return order != GST_CUDA_LINK_CHANNEL_ORDER_RGBA && auto8;
    case GST_VIDEO_FORMAT_GRAY8:
      return auto8;
    case GST_VIDEO_FORMAT_GRAY16_LE:
    case GST_VIDEO_FORMAT_RGBA64_LE:
      return auto16;
    default:
      return FALSE;
  }
}

GST_START_TEST (test_mapping_all_combinations)
{
  guint fi, di, order, flip, n = 0, n_plain = 0;

  for (fi = 0; fi < G_N_ELEMENTS (formats); fi++)
    for (di = 0; di < G_N_ELEMENTS (all_dtypes); di++)
      for (order = GST_CUDA_LINK_CHANNEL_ORDER_AUTO;
          order <= GST_CUDA_LINK_CHANNEL_ORDER_BGRA; order++)
        for (flip = 0; flip < 2; flip++) {
          const gchar *layout = formats[fi].layout;
          gint in_comps = (gint) strlen (layout);
          gboolean gray = in_comps == 1;
          cudalink_dtype dt = expected_dtype (all_dtypes[di],
              formats[fi].bytes);
          /* auto publishes B,G,R,A input as BGRA, all else as RGBA */
          gboolean b_first = formats[fi].format == GST_VIDEO_FORMAT_BGRA ||
              formats[fi].format == GST_VIDEO_FORMAT_BGRx;
          gboolean bgra = !gray && dt == CUDALINK_DTYPE_UINT8 &&
              (order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA ||
              (order == GST_CUDA_LINK_CHANNEL_ORDER_AUTO && b_first));
          guint comps = gray ? 1 : 4;
          GstCudaLinkSinkMapping m;
          guint c;

          fail_unless (gst_cuda_link_sink_map_format (formats[fi].format, 640,
                  360, order, all_dtypes[di], flip, &m), "%s", layout);
          n++;

          /* input */
          fail_unless_equals_int (m.src_comps, in_comps);
          fail_unless_equals_int (m.src_dtype, formats[fi].bytes == 1 ?
              CUDALINK_DTYPE_UINT8 : CUDALINK_DTYPE_UINT16);
          fail_unless_equals_int (m.src_pixel_size,
              in_comps * formats[fi].bytes);

          /* output: never 3 channels */
          fail_unless_equals_int (m.format.width, 640);
          fail_unless_equals_int (m.format.height, 360);
          fail_unless_equals_int (m.format.num_comps, comps);
          fail_if (m.format.num_comps == 3);
          fail_unless_equals_int (m.format.dtype, dt);
          fail_unless_equals_int (m.format.flags,
              bgra ? CUDALINK_FLAG_BGRA : 0);
          fail_unless_equals_int (m.row_size, 640 * comps * dtype_bytes (dt));
          fail_unless_equals_int (m.frame_size, m.row_size * 360);
          fail_unless_equals_int (m.flip_y, flip);

          /* swizzle, from the channel letters */
          for (c = 0; c < comps; c++) {
            gchar letter = gray ? 'Y' : (bgra ? "BGRA" : "RGBA")[c];
            const gchar *pos = strchr (layout, letter);

            if (pos) {
              fail_unless_equals_int (m.swizzle[c], (gint) (pos - layout));
            } else {
              fail_unless_equals_int (m.swizzle[c],
                  GST_CUDA_LINK_SWIZZLE_ONE);
            }
          }

          fail_unless_equals_int (m.plain, expected_plain (formats[fi].format,
                  order, all_dtypes[di], flip));
          if (m.plain)
            n_plain++;
          /* TouchDesigner reads uint8, uint16, float16, float32 */
          fail_unless_equals_int (m.td_unreadable,
              dt == CUDALINK_DTYPE_BFLOAT16);
          fail_unless_equals_int (m.order_ignored, !gray &&
              order == GST_CUDA_LINK_CHANNEL_ORDER_BGRA &&
              dt != CUDALINK_DTYPE_UINT8);
        }

  fail_unless_equals_int (n, 9 * 6 * 3 * 2);
  /* RGBA: 2 dtypes x (rgba, auto); BGRA: 2 x (bgra, auto); GRAY8,
   * GRAY16, RGBA64: 2 x 3 orders each */
  fail_unless_equals_int (n_plain, 4 + 4 + 6 + 6 + 6);
}

GST_END_TEST;

GST_START_TEST (test_mapping_rejects)
{
  GstCudaLinkSinkMapping m;

  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_I420, 64, 64, 0, 0,
          FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_ARGB, 64, 64, 0, 0,
          FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA, 0, 64, 0, 0,
          FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA, 64, 0, 0, 0,
          FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA,
          CUDALINK_MAX_DIMENSION + 1, 64, 0, 0, FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA, 64, 64,
          GST_CUDA_LINK_CHANNEL_ORDER_BGRA + 1, 0, FALSE, &m));
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA, 64, 64, 0, 6,
          FALSE, &m));
  /* 32768^2 x 4 x float32 = 16 GiB: data_size is a u32 */
  fail_if (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_RGBA,
          CUDALINK_MAX_DIMENSION, CUDALINK_MAX_DIMENSION, 0,
          GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32, FALSE, &m));
  fail_unless_equals_int (m.frame_size, 0);
  /* the largest uint8 frame that fits */
  fail_unless (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_GRAY8,
          CUDALINK_MAX_DIMENSION, CUDALINK_MAX_DIMENSION, 0, 0, FALSE, &m));
  fail_unless_equals_int (m.frame_size, 1u << 30);
}

GST_END_TEST;

GST_START_TEST (test_mapping_describe_and_names)
{
  GstCudaLinkSinkMapping m;
  gchar *d;

  fail_unless (gst_cuda_link_sink_map_format (GST_VIDEO_FORMAT_BGRx, 32, 16,
          GST_CUDA_LINK_CHANNEL_ORDER_BGRA, GST_CUDA_LINK_OUTPUT_DTYPE_AUTO,
          TRUE, &m));
  d = gst_cuda_link_sink_mapping_describe (&m);
  fail_unless (strstr (d, "32x16") && strstr (d, "uint8") &&
      strstr (d, "BGRA") && strstr (d, "flipped"), "%s", d);
  g_free (d);

  /* names: cudalink_check_name_why(), tests/unit/test_shm.c */

  fail_unless_equals_int (gst_cuda_link_sink_output_dtype
      (GST_CUDA_LINK_OUTPUT_DTYPE_AUTO, CUDALINK_DTYPE_UINT16),
      CUDALINK_DTYPE_UINT16);
  fail_unless_equals_int (gst_cuda_link_sink_output_dtype
      (GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT16, CUDALINK_DTYPE_UINT8),
      CUDALINK_DTYPE_FLOAT16);
}

GST_END_TEST;

/* ---------------------------------------------------------------------- */
/* The element                                                            */
/* ---------------------------------------------------------------------- */

GST_START_TEST (test_registration)
{
  GstElement *sink = gst_element_factory_make ("cudalinksink", NULL);
  GstElementFactory *src_factory;
  GstElementFactory *factory;

  fail_unless (sink != NULL, "cudalinksink is not registered");
  fail_unless (GST_IS_BASE_SINK (sink));
  fail_unless (GST_IS_VIDEO_DIRECTION (sink));
  factory = gst_element_get_factory (sink);
  fail_unless_equals_string (gst_plugin_feature_get_plugin_name
      (GST_PLUGIN_FEATURE (factory)), "cudalink");
  fail_unless (strstr (gst_element_factory_get_metadata (factory,
              GST_ELEMENT_METADATA_KLASS), "Sink") != NULL);
  gst_object_unref (sink);

  /* plugin_init registers both elements */
  src_factory = gst_element_factory_find ("cudalinksrc");
  fail_unless (src_factory != NULL, "cudalinksrc is not registered");
  gst_object_unref (src_factory);
}

GST_END_TEST;

static const gchar *expected_formats[] = { "RGBA", "RGBx", "BGRA", "BGRx",
  "RGB", "BGR", "GRAY8", "GRAY16_LE", "RGBA64_LE"
};

/* @field of template structure @s is exactly [ 1, CUDALINK_MAX_DIMENSION ]:
 * the protocol's limit (32768), not GST_VIDEO_CAPS_MAKE's G_MAXINT */
static void
check_size_range (const GstStructure * s, const gchar * field)
{
  const GValue *v = gst_structure_get_value (s, field);

  fail_unless (v != NULL && GST_VALUE_HOLDS_INT_RANGE (v), "%s: no int range",
      field);
  fail_unless_equals_int (gst_value_get_int_range_min (v), 1);
  fail_unless_equals_int (gst_value_get_int_range_max (v),
      CUDALINK_MAX_DIMENSION);
  fail_unless_equals_int (gst_value_get_int_range_max (v), 32768);
}

GST_START_TEST (test_pad_template)
{
  GstElementFactory *factory = gst_element_factory_find ("cudalinksink");
  const GList *l;
  GstCaps *caps = NULL, *too_big;
  guint i, n_cuda = 0, n_sys = 0, n_templates = 0;

  fail_unless (factory != NULL);
  for (l = gst_element_factory_get_static_pad_templates (factory); l;
      l = l->next) {
    GstStaticPadTemplate *t = l->data;

    n_templates++;
    fail_unless_equals_int (t->direction, GST_PAD_SINK);
    fail_unless_equals_int (t->presence, GST_PAD_ALWAYS);
    caps = gst_static_pad_template_get_caps (t);
  }
  fail_unless_equals_int (n_templates, 1);
  fail_unless (caps != NULL);
  fail_unless_equals_int (gst_caps_get_size (caps), 2);

  for (i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *s = gst_caps_get_structure (caps, i);
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    const GValue *formats_v = gst_structure_get_value (s, "format");
    guint j, k;

    fail_unless (gst_structure_has_name (s, "video/x-raw"));
    if (gst_caps_features_contains (f, "memory:CUDAMemory"))
      n_cuda++;
    else if (gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
      n_sys++;

    /* exactly the 9 formats */
    fail_unless (GST_VALUE_HOLDS_LIST (formats_v));
    fail_unless_equals_int (gst_value_list_get_size (formats_v),
        G_N_ELEMENTS (expected_formats));
    for (j = 0; j < G_N_ELEMENTS (expected_formats); j++) {
      gboolean found = FALSE;

      for (k = 0; k < gst_value_list_get_size (formats_v); k++)
        if (!g_strcmp0 (g_value_get_string (gst_value_list_get_value
                    (formats_v, k)), expected_formats[j]))
          found = TRUE;
      fail_unless (found, "%s missing", expected_formats[j]);
    }
    /* the sizes the protocol carries, any framerate */
    check_size_range (s, "width");
    check_size_range (s, "height");
    fail_unless (gst_structure_has_field_typed (s, "framerate",
            GST_TYPE_FRACTION_RANGE));
  }
  fail_unless_equals_int (n_cuda, 1);
  fail_unless_equals_int (n_sys, 1);

  /* one pixel too many either way does not negotiate */
  too_big = gst_caps_from_string ("video/x-raw, format=RGBA, "
      "width=32769, height=16, framerate=30/1; "
      "video/x-raw, format=RGBA, width=16, height=32769, framerate=30/1");
  fail_if (gst_caps_can_intersect (too_big, caps));
  gst_caps_unref (too_big);

  gst_caps_unref (caps);
  gst_object_unref (factory);
}

GST_END_TEST;

static void
check_enum_nicks (GParamSpec * pspec, const gchar ** nicks, guint n)
{
  GEnumClass *klass = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  guint i;

  fail_unless_equals_int (klass->n_values, n);
  for (i = 0; i < n; i++) {
    GEnumValue *v = g_enum_get_value_by_nick (klass, nicks[i]);

    fail_unless (v != NULL, "%s: no value %s", pspec->name, nicks[i]);
    fail_unless_equals_int (v->value, i);
  }
}

/* gst_structure_foreach: @field of another structure is in @user_data with
 * the same value */
static gboolean
has_same_field (GQuark field, const GValue * value, gpointer user_data)
{
  const GValue *ours =
      gst_structure_id_get_value ((const GstStructure *) user_data, field);

  fail_unless (ours != NULL, "stats lacks %s", g_quark_to_string (field));
  fail_unless (gst_value_compare (ours, value) == GST_VALUE_EQUAL,
      "stats' %s differs", g_quark_to_string (field));
  return TRUE;
}

GST_START_TEST (test_property_defaults)
{
  GstElement *sink = gst_element_factory_make ("cudalinksink", NULL);
  GObjectClass *klass = G_OBJECT_GET_CLASS (sink);
  const gchar *orders[] = { "auto", "rgba", "bgra" };
  const gchar *gpu_waits[] = { "none", "nap", "spin", "sleep" };
  const gchar *dtypes[] = { "auto", "uint8", "uint16", "float16", "bfloat16",
    "float32"
  };
  GParamSpec *p;
  gchar *name;
  guint slots;
  gint dev, order, dtype, wait;
  GstVideoOrientationMethod method;
  GstStructure *stats, *base_stats;
  guint64 u64;
  gdouble d;

  g_object_get (sink, "ipc-name", &name, "num-slots", &slots,
      "cuda-device-id", &dev, "channel-order", &order, "output-dtype", &dtype,
      "gpu-wait", &wait, "video-direction", &method, "stats", &stats, NULL);
  fail_unless_equals_string (name, "cudalink");
  fail_unless_equals_int (slots, 3);
  fail_unless_equals_int (dev, -1);
  fail_unless_equals_int (order, GST_CUDA_LINK_CHANNEL_ORDER_RGBA);
  fail_unless_equals_int (dtype, GST_CUDA_LINK_OUTPUT_DTYPE_AUTO);
  fail_unless_equals_int (wait, GST_CUDA_LINK_GPU_WAIT_NONE);
  fail_unless_equals_int (method, GST_VIDEO_ORIENTATION_IDENTITY);
  g_free (name);

  fail_unless (stats != NULL);
  /* one naming scheme with cudalinksrc's application/x-cudalinksrc-stats */
  fail_unless_equals_string (gst_structure_get_name (stats),
      "application/x-cudalinksink-stats");
  fail_unless (gst_structure_get_uint64 (stats, "frames-published", &u64));
  fail_unless_equals_uint64 (u64, 0);
  fail_unless (gst_structure_get_uint64 (stats, "reinits", &u64));
  fail_unless (gst_structure_get_uint64 (stats, "relinks", &u64));
  fail_unless (gst_structure_get_double (stats, "publish-time-p50-us", &d));
  fail_unless (gst_structure_get_double (stats, "publish-time-p99-us", &d));
  {
    /* named as cudalinksrc's latency-samples */
    guint samples = 1;
    fail_unless (gst_structure_get_uint (stats, "publish-time-samples",
            &samples));
    fail_unless_equals_int (samples, 0);
  }
  /* GstBaseSink's own stats, which our property of the same name hides,
   * are in ours */
  fail_unless (gst_structure_get_uint64 (stats, "rendered", &u64));
  fail_unless_equals_uint64 (u64, 0);
  fail_unless (gst_structure_get_uint64 (stats, "dropped", &u64));
  fail_unless_equals_uint64 (u64, 0);
  fail_unless (gst_structure_get_double (stats, "average-rate", &d));
  base_stats = gst_base_sink_get_stats (GST_BASE_SINK (sink));
  gst_structure_foreach (base_stats, has_same_field, stats);
  gst_structure_free (base_stats);
  gst_structure_free (stats);

  /* ranges, defaults and flags as the GParamSpecs declare them */
  p = g_object_class_find_property (klass, "num-slots");
  fail_unless_equals_int (G_PARAM_SPEC_UINT (p)->minimum, 1);
  fail_unless_equals_int (G_PARAM_SPEC_UINT (p)->maximum, 10);
  fail_unless_equals_int (G_PARAM_SPEC_UINT (p)->default_value, 3);
  p = g_object_class_find_property (klass, "cuda-device-id");
  fail_unless_equals_int (G_PARAM_SPEC_INT (p)->minimum, -1);
  fail_unless_equals_int (G_PARAM_SPEC_INT (p)->default_value, -1);
  fail_unless (p->flags & GST_PARAM_MUTABLE_READY);
  p = g_object_class_find_property (klass, "ipc-name");
  fail_unless_equals_string (G_PARAM_SPEC_STRING (p)->default_value,
      "cudalink");
  fail_unless (p->flags & GST_PARAM_MUTABLE_READY);
  p = g_object_class_find_property (klass, "channel-order");
  check_enum_nicks (p, orders, G_N_ELEMENTS (orders));
  p = g_object_class_find_property (klass, "output-dtype");
  check_enum_nicks (p, dtypes, G_N_ELEMENTS (dtypes));
  p = g_object_class_find_property (klass, "gpu-wait");
  check_enum_nicks (p, gpu_waits, G_N_ELEMENTS (gpu_waits));
  fail_unless_equals_int (G_PARAM_SPEC_ENUM (p)->default_value,
      GST_CUDA_LINK_GPU_WAIT_NONE);
  p = g_object_class_find_property (klass, "stats");
  fail_unless (p->flags & G_PARAM_READABLE);
  fail_if (p->flags & G_PARAM_WRITABLE);
  fail_unless (p->value_type == GST_TYPE_STRUCTURE);
  p = g_object_class_find_property (klass, "video-direction");
  fail_unless (p != NULL);
  fail_unless (p->value_type == GST_TYPE_VIDEO_ORIENTATION_METHOD);

  gst_object_unref (sink);
}

GST_END_TEST;

GST_START_TEST (test_property_ranges)
{
  GstElement *sink = gst_element_factory_make ("cudalinksink", NULL);
  GParamSpec *p = g_object_class_find_property (G_OBJECT_GET_CLASS (sink),
      "num-slots");
  GValue v = G_VALUE_INIT;
  guint slots;

  /* the GParamSpec rejects 0 and 11 ... */
  g_value_init (&v, G_TYPE_UINT);
  g_value_set_uint (&v, 0);
  fail_unless (g_param_value_validate (p, &v));  /* TRUE: had to change it */
  g_value_set_uint (&v, 11);
  fail_unless (g_param_value_validate (p, &v));
  g_value_set_uint (&v, 10);
  fail_if (g_param_value_validate (p, &v));
  g_value_unset (&v);

  /* ... so g_object_set warns and keeps the old value */
  g_object_set (sink, "num-slots", 7, NULL);
  ASSERT_WARNING (g_object_set (sink, "num-slots", 0, NULL));
  ASSERT_WARNING (g_object_set (sink, "num-slots", 11, NULL));
  g_object_get (sink, "num-slots", &slots, NULL);
  fail_unless_equals_int (slots, 7);
  g_object_set (sink, "num-slots", 1, NULL);
  g_object_get (sink, "num-slots", &slots, NULL);
  fail_unless_equals_int (slots, 1);

  ASSERT_WARNING (g_object_set (sink, "cuda-device-id", -2, NULL));

  /* max-slots: 0 (never grow) by default, at most the protocol's 10;
   * import is offered only when asked for */
  {
    guint max_slots = 99;
    gboolean offer = TRUE;
    g_object_get (sink, "offer-import", &offer, NULL);
    fail_unless (!offer);
    g_object_set (sink, "offer-import", TRUE, NULL);
    g_object_get (sink, "offer-import", &offer, NULL);
    fail_unless (offer);
    g_object_get (sink, "max-slots", &max_slots, NULL);
    fail_unless_equals_int (max_slots, 0);
    ASSERT_WARNING (g_object_set (sink, "max-slots", 11, NULL));
    g_object_set (sink, "max-slots", 6, NULL);
    g_object_get (sink, "max-slots", &max_slots, NULL);
    fail_unless_equals_int (max_slots, 6);
  }

  /* values that are taken */
  g_object_set (sink, "ipc-name", "td_in", "cuda-device-id", 1,
      "channel-order", GST_CUDA_LINK_CHANNEL_ORDER_BGRA, "output-dtype",
      GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32, "gpu-wait",
      GST_CUDA_LINK_GPU_WAIT_SLEEP, NULL);
  {
    gchar *name;
    gint dev, order, dtype, wait;

    g_object_get (sink, "ipc-name", &name, "cuda-device-id", &dev,
        "channel-order", &order, "output-dtype", &dtype, "gpu-wait", &wait,
        NULL);
    fail_unless_equals_string (name, "td_in");
    fail_unless_equals_int (dev, 1);
    fail_unless_equals_int (order, GST_CUDA_LINK_CHANNEL_ORDER_BGRA);
    fail_unless_equals_int (dtype, GST_CUDA_LINK_OUTPUT_DTYPE_FLOAT32);
    fail_unless_equals_int (wait, GST_CUDA_LINK_GPU_WAIT_SLEEP);
    g_free (name);
  }

  gst_object_unref (sink);
}

GST_END_TEST;

GST_START_TEST (test_video_direction)
{
  GstElement *pipeline = gst_pipeline_new (NULL);
  GstElement *sink = gst_element_factory_make ("cudalinksink", NULL);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstVideoOrientationMethod m;
  GstMessage *msg;

  gst_bin_add (GST_BIN (pipeline), sink);

  g_object_set (sink, "video-direction", GST_VIDEO_ORIENTATION_VERT, NULL);
  g_object_get (sink, "video-direction", &m, NULL);
  fail_unless_equals_int (m, GST_VIDEO_ORIENTATION_VERT);

  /* unsupported: refused with a warning message, previous value kept */
  g_object_set (sink, "video-direction", GST_VIDEO_ORIENTATION_90R, NULL);
  g_object_get (sink, "video-direction", &m, NULL);
  fail_unless_equals_int (m, GST_VIDEO_ORIENTATION_VERT);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning for video-direction=90r");
  {
    GError *err = NULL;

    gst_message_parse_warning (msg, &err, NULL);
    fail_unless (strstr (err->message, "90r") != NULL, "%s", err->message);
    g_error_free (err);
  }
  gst_message_unref (msg);

  g_object_set (sink, "video-direction", GST_VIDEO_ORIENTATION_HORIZ, NULL);
  g_object_set (sink, "video-direction", GST_VIDEO_ORIENTATION_AUTO, NULL);
  g_object_get (sink, "video-direction", &m, NULL);
  fail_unless_equals_int (m, GST_VIDEO_ORIENTATION_VERT);
  g_object_set (sink, "video-direction", GST_VIDEO_ORIENTATION_IDENTITY, NULL);
  g_object_get (sink, "video-direction", &m, NULL);
  fail_unless_equals_int (m, GST_VIDEO_ORIENTATION_IDENTITY);

  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* Runs @launch to PLAYING and returns the first error message (or NULL),
 * after bringing the pipeline back to NULL. */
static GstMessage *
run_until_error (const gchar * launch, GstElement ** sink_out)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstBus *bus;
  GstMessage *msg;

  fail_unless (pipeline != NULL && err == NULL, "%s: %s", launch,
      err ? err->message : "");
  fail_unless (GST_IS_PIPELINE (pipeline));
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  if (msg && GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ERROR)
    gst_clear_message (&msg);
  if (sink_out)
    *sink_out = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return msg;
}

static void
check_error (GstMessage * msg, GstElement * sink, const gchar * in_message,
    const gchar * in_debug)
{
  GError *err = NULL;
  gchar *debug = NULL;

  fail_unless (msg != NULL, "no error message on the bus");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (sink),
      "the error does not come from the sink but %s",
      GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)));
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("error: %s (%s)", err->message, debug);
  fail_unless (strstr (err->message, in_message) != NULL,
      "\"%s\" not in \"%s\"", in_message, err->message);
  fail_unless (debug && strstr (debug, in_debug) != NULL,
      "\"%s\" not in \"%s\"", in_debug, debug);
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);
}

/* Both elements map a missing driver to LIBRARY/INIT (the shared status
 * mapping in gstcudalinkutils.c). */
static void
check_error_is_library_init (GstMessage * msg)
{
  GError *err = NULL;

  fail_unless (msg != NULL, "no error message on the bus");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (err, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT),
      "%s: %s %d, want LIBRARY/INIT", err->message,
      g_quark_to_string (err->domain), err->code);
  g_error_free (err);
}

GST_START_TEST (test_no_driver)
{
  GstElement *sink = NULL;
  GstMessage *msg;

  /* CUDALINK_CUDA_LIBRARY is /nonexistent/libcuda.so.1 (main) */
  msg = run_until_error ("videotestsrc num-buffers=3 ! cudalinksink name=sink",
      &sink);
  check_error_is_library_init (msg);
  check_error (msg, sink, "CUDA driver", "/nonexistent/libcuda.so.1");
  gst_object_unref (sink);

  /* CUDA caps fail the same way, at start, before negotiation */
  msg = run_until_error ("videotestsrc num-buffers=3 ! "
      "video/x-raw,format=BGRx ! cudalinksink name=sink output-dtype=float32",
      &sink);
  check_error_is_library_init (msg);
  check_error (msg, sink, "CUDA driver", "libcuda");
  gst_object_unref (sink);
}

GST_END_TEST;

GST_START_TEST (test_bad_name)
{
  GstElement *sink = NULL;
  GstMessage *msg;
  gchar *launch, *long_name;

  msg = run_until_error ("videotestsrc num-buffers=3 ! cudalinksink "
      "name=sink ipc-name=a/b", &sink);
  check_error (msg, sink, "ipc-name", "'/'");
  gst_object_unref (sink);

  msg = run_until_error ("videotestsrc num-buffers=3 ! cudalinksink "
      "name=sink ipc-name=\"\"", &sink);
  check_error (msg, sink, "ipc-name", "empty");
  gst_object_unref (sink);

  long_name = g_strnfill (CUDALINK_MAX_NAME + 1, 'x');
  launch = g_strdup_printf ("videotestsrc num-buffers=3 ! cudalinksink "
      "name=sink ipc-name=%s", long_name);
  msg = run_until_error (launch, &sink);
  check_error (msg, sink, "ipc-name", "long");
  gst_object_unref (sink);
  g_free (launch);
  g_free (long_name);
}

GST_END_TEST;

static Suite *
cudalinksink_suite (void)
{
  Suite *s = suite_create ("cudalinksink");
  TCase *tc;

  tc = tcase_create ("element");
  tcase_add_test (tc, test_registration);
  tcase_add_test (tc, test_pad_template);
  tcase_add_test (tc, test_property_defaults);
  tcase_add_test (tc, test_property_ranges);
  tcase_add_test (tc, test_video_direction);
  suite_add_tcase (s, tc);

  tc = tcase_create ("mapping");
  tcase_add_test (tc, test_mapping_all_combinations);
  tcase_add_test (tc, test_mapping_rejects);
  tcase_add_test (tc, test_mapping_describe_and_names);
  suite_add_tcase (s, tc);

  tc = tcase_create ("kernel-on-cpu");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_kernel_half_exhaustive);
  tcase_add_test (tc, test_kernel_bfloat16);
  tcase_add_test (tc, test_kernel_integers);
  tcase_add_test (tc, test_kernel_same_dtype_bit_exact);
  tcase_add_test (tc, test_kernel_frames);
  suite_add_tcase (s, tc);

  tc = tcase_create ("start-errors");
  tcase_add_test (tc, test_no_driver);
  tcase_add_test (tc, test_bad_name);
  suite_add_tcase (s, tc);

  return s;
}

int
main (int argc, char **argv)
{
  const gchar *plugins = g_getenv ("CUDALINK_TEST_GST_PLUGINS_DIR");

  /* before anything can load the driver, also with CK_FORK=no */
  g_setenv ("CUDALINK_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", TRUE);
  /* meson empties the system plugin path; the pipelines need videotestsrc */
  if (plugins && *plugins)
    g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", plugins, TRUE);

  gst_check_init (&argc, &argv);
  return gst_check_run_suite (cudalinksink_suite (), "cudalinksink",
      __FILE__);
}
