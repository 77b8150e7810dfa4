/* GPU pixel conversion for the cudalink elements (see gstcudalinkconvert.h).
 *
 * Loading order, per converter (one per element, per CUDA context):
 * 1. the PTX that nvcc built with the plugin (lowest virtual architecture
 *    of the build's toolkit); the driver JIT-compiles it for the device.
 *    A driver older than that toolkit refuses it
 *    (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
 * 2. NVRTC on the embedded source: first GStreamer's helper
 *    (gst_cuda_nvrtc_compile, which asks for compute_52 in 1.22, so it only
 *    works with NVRTC <= 12), then our own NVRTC call that asks for the
 *    device's own architecture (what NVRTC 13, whose floor is compute_75,
 *    needs).
 * The environment variable CUDALINK_CONVERT_NO_PTX=1 skips step 1 (tests
 * use it to exercise the NVRTC path on a machine whose driver takes the
 * PTX).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinkconvert.h"

#include <gmodule.h>
#include <gst/cuda/gstcudautils.h>
#include <gst/cuda/gstcudanvrtc.h>
#include <string.h>

#include "cudalink-convert-kernels.h"
#include "sinkformat.h"

GST_DEBUG_CATEGORY_STATIC (gst_cuda_link_convert_debug);
#define GST_CAT_DEFAULT gst_cuda_link_convert_debug

/* sinkformat.h repeats the swizzle constants; they must agree */
G_STATIC_ASSERT (GST_CUDA_LINK_SWIZZLE_ZERO == -1);
G_STATIC_ASSERT (GST_CUDA_LINK_SWIZZLE_ONE == -2);

#define BLOCK_X 32
#define BLOCK_Y 8

struct _GstCudaLinkConverter
{
  GstCudaContext *context;
  CUmodule module;
  CUfunction func;
  gchar *origin;                /* "embedded PTX (compute_75)", "NVRTC (...)" */
};

static void
debug_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (gst_cuda_link_convert_debug, "cudalinkconvert",
        0, "cudalink GPU converter");
    g_once_init_leave (&once, 1);
  }
}

static gchar *
cuda_error_text (CUresult res)
{
  const gchar *name = NULL, *text = NULL;

  CuGetErrorName (res, &name);
  CuGetErrorString (res, &text);
  return g_strdup_printf ("%s (%s)", name ? name : "unknown CUDA error",
      text ? text : "no description");
}

/* ---------------------------------------------------------------------- */
/* Our own NVRTC call (GStreamer 1.22's asks for compute_52).             */
/* ---------------------------------------------------------------------- */

typedef int NvrtcResult;        /* nvrtcResult */
typedef struct _nvrtcProgram *NvrtcProgram;

typedef struct
{
  GModule *module;
  gchar *name;
    NvrtcResult (*CreateProgram) (NvrtcProgram *, const char *, const char *,
      int, const char *const *, const char *const *);
    NvrtcResult (*CompileProgram) (NvrtcProgram, int, const char *const *);
    NvrtcResult (*DestroyProgram) (NvrtcProgram *);
    NvrtcResult (*GetPTXSize) (NvrtcProgram, size_t *);
    NvrtcResult (*GetPTX) (NvrtcProgram, char *);
    NvrtcResult (*GetProgramLogSize) (NvrtcProgram, size_t *);
    NvrtcResult (*GetProgramLog) (NvrtcProgram, char *);
  const char *(*GetErrorString) (NvrtcResult);
} NvrtcTable;

static const NvrtcTable *
nvrtc_table (gchar ** why)
{
  static gsize once = 0;
  static NvrtcTable table;
  static gchar *load_error = NULL;

  if (g_once_init_enter (&once)) {
    const gchar *env = g_getenv ("GST_CUDA_NVRTC_LIBNAME");
    const gchar *names[] = { env, "libnvrtc.so", "libnvrtc.so.13",
      "libnvrtc.so.12", "libnvrtc.so.11.2", "/usr/local/cuda/lib64/libnvrtc.so"
    };
    GString *tried = g_string_new (NULL);
    guint i;

    for (i = 0; i < G_N_ELEMENTS (names) && !table.module; i++) {
      if (!names[i])
        continue;
      table.module = g_module_open (names[i], G_MODULE_BIND_LAZY);
      if (table.module)
        table.name = g_strdup (names[i]);
      else
        g_string_append_printf (tried, "%s%s", tried->len ? ", " : "",
            names[i]);
    }

    if (!table.module) {
      load_error = g_strdup_printf ("no NVRTC library found (tried %s)",
          tried->str);
    } else {
#define LOAD(field, sym) \
      if (!load_error && !g_module_symbol (table.module, sym, \
              (gpointer *) & table.field)) \
        load_error = g_strdup_printf ("%s lacks %s", table.name, sym)
      LOAD (CreateProgram, "nvrtcCreateProgram");
      LOAD (CompileProgram, "nvrtcCompileProgram");
      LOAD (DestroyProgram, "nvrtcDestroyProgram");
      LOAD (GetPTXSize, "nvrtcGetPTXSize");
      LOAD (GetPTX, "nvrtcGetPTX");
      LOAD (GetProgramLogSize, "nvrtcGetProgramLogSize");
      LOAD (GetProgramLog, "nvrtcGetProgramLog");
      LOAD (GetErrorString, "nvrtcGetErrorString");
#undef LOAD
      if (load_error) {
        g_module_close (table.module);
        table.module = NULL;
      }
    }
    g_string_free (tried, TRUE);
    g_once_init_leave (&once, 1);
  }

  if (!table.module) {
    if (why)
      *why = g_strdup (load_error);
    return NULL;
  }
  return &table;
}

static gchar *
nvrtc_compile_for (const NvrtcTable * t, const gchar * arch, gchar ** why)
{
  NvrtcProgram prog = NULL;
  NvrtcResult res;
  gchar *opt = g_strdup_printf ("--gpu-architecture=%s", arch);
  const char *opts[] = { opt };
  gchar *ptx = NULL;
  size_t size = 0;

  res = t->CreateProgram (&prog, gst_cuda_link_convert_source,
      "cudalink-convert.cu", 0, NULL, NULL);
  if (res != 0) {
    *why = g_strdup_printf ("nvrtcCreateProgram: %s", t->GetErrorString (res));
    g_free (opt);
    return NULL;
  }

  res = t->CompileProgram (prog, 1, opts);
  if (res != 0) {
    gchar *log = NULL;

    if (t->GetProgramLogSize (prog, &size) == 0 && size > 1) {
      log = g_malloc0 (size + 1);
      if (t->GetProgramLog (prog, log) != 0)
        log[0] = '\0';
      g_strstrip (log);
    }
    *why = g_strdup_printf ("nvrtcCompileProgram (%s): %s%s%s", opt,
        t->GetErrorString (res), log && *log ? ": " : "", log ? log : "");
    g_free (log);
  } else if (t->GetPTXSize (prog, &size) != 0 || size == 0) {
    *why = g_strdup ("nvrtcGetPTXSize failed");
  } else {
    ptx = g_malloc0 (size + 1);
    if (t->GetPTX (prog, ptx) != 0) {
      *why = g_strdup ("nvrtcGetPTX failed");
      g_clear_pointer (&ptx, g_free);
    }
  }

  t->DestroyProgram (&prog);
  g_free (opt);
  return ptx;
}

/* PTX for the device of @context from NVRTC, or NULL with *why set. The
 * context is current. */
static gchar *
nvrtc_compile (GstCudaContext * context, gchar ** origin, gchar ** why)
{
  const NvrtcTable *t;
  gchar *ptx, *why_dev = NULL, *why_75 = NULL, *arch;
  guint device_id = 0;
  CUdevice dev;
  gint major = 0, minor = 0;

  /* GStreamer's helper first (works with NVRTC up to 12) */
  if (gst_cuda_nvrtc_load_library ()) {
    ptx = gst_cuda_nvrtc_compile (gst_cuda_link_convert_source);
    if (ptx) {
      *origin = g_strdup ("NVRTC via GStreamer");
      return ptx;
    }
    GST_INFO ("GStreamer's NVRTC helper could not compile the kernel; "
        "trying NVRTC for the device's architecture");
  }

  t = nvrtc_table (why);
  if (!t)
    return NULL;

  g_object_get (context, "cuda-device-id", &device_id, NULL);
  if (CuDeviceGet (&dev, (gint) device_id) != CUDA_SUCCESS ||
      CuDeviceGetAttribute (&major,
          CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev) != CUDA_SUCCESS ||
      CuDeviceGetAttribute (&minor,
          CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev) != CUDA_SUCCESS) {
    major = 7;
    minor = 5;
  }

  arch = g_strdup_printf ("compute_%d%d", major, minor);
  ptx = nvrtc_compile_for (t, arch, &why_dev);
  if (!ptx) {
    /* an NVRTC older than the device: its lowest common denominator */
    ptx = nvrtc_compile_for (t, "compute_75", &why_75);
    if (ptx) {
      g_free (arch);
      arch = g_strdup ("compute_75");
    }
  }

  if (ptx)
    *origin = g_strdup_printf ("NVRTC %s (%s)", t->name, arch);
  else
    *why = g_strdup_printf ("%s; %s", why_dev, why_75);

  g_free (why_dev);
  g_free (why_75);
  g_free (arch);
  return ptx;
}

/* ---------------------------------------------------------------------- */

GstCudaLinkConverter *
gst_cuda_link_converter_new (GstCudaContext * context, GError ** error)
{
  GstCudaLinkConverter *conv;
  CUmodule module = NULL;
  CUfunction func = NULL;
  CUresult res;
  gchar *ptx_why = NULL, *nvrtc_why = NULL, *origin = NULL;

  g_return_val_if_fail (GST_IS_CUDA_CONTEXT (context), NULL);
  debug_init ();

  if (!gst_cuda_context_push (context)) {
    g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT,
        "Could not make the CUDA context current to load the GPU kernels");
    return NULL;
  }

  if (!GST_CUDA_LINK_CONVERT_HAVE_PTX) {
    ptx_why = g_strdup ("not built (no working nvcc at build time)");
  } else if (g_getenv ("CUDALINK_CONVERT_NO_PTX")) {
    ptx_why = g_strdup ("skipped (CUDALINK_CONVERT_NO_PTX is set)");
  } else {
    res = CuModuleLoadData (&module, gst_cuda_link_convert_ptx);
    if (res == CUDA_SUCCESS) {
      origin = g_strdup_printf ("embedded PTX (%s)",
          gst_cuda_link_convert_ptx_arch);
    } else {
      gchar *e = cuda_error_text (res);

      ptx_why = g_strdup_printf ("cuModuleLoadData: %s", e);
      g_free (e);
      module = NULL;
      GST_INFO ("embedded PTX refused (%s), trying NVRTC", ptx_why);
    }
  }

  if (!module) {
    gchar *ptx = nvrtc_compile (context, &origin, &nvrtc_why);

    if (ptx) {
      res = CuModuleLoadData (&module, ptx);
      if (res != CUDA_SUCCESS) {
        gchar *e = cuda_error_text (res);

        nvrtc_why = g_strdup_printf ("cuModuleLoadData of NVRTC's PTX: %s", e);
        g_free (e);
        g_clear_pointer (&origin, g_free);
        module = NULL;
      }
      g_free (ptx);
    }
  }

  if (module) {
    res = CuModuleGetFunction (&func, module,
        GST_CUDA_LINK_CONVERT_KERNEL_NAME);
    if (res != CUDA_SUCCESS) {
      gchar *e = cuda_error_text (res);

      g_free (nvrtc_why);
      nvrtc_why = g_strdup_printf ("cuModuleGetFunction: %s", e);
      g_free (e);
      CuModuleUnload (module);
      module = NULL;
      func = NULL;
    }
  }

  gst_cuda_context_pop (NULL);

  if (!func) {
    g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT,
        "GPU conversion kernels unavailable (embedded PTX: %s; NVRTC: %s). "
        "Conversions that need a kernel cannot run: RGB/BGR/RGBx/BGRx input, "
        "channel swizzles, an output-dtype other than the input's, vertical "
        "flip. Native RGBA/BGRA/GRAY8/GRAY16_LE/RGBA64_LE input with no "
        "conversion still works (plain copy).",
        ptx_why ? ptx_why : "not tried", nvrtc_why ? nvrtc_why : "not tried");
    g_free (ptx_why);
    g_free (nvrtc_why);
    g_free (origin);
    return NULL;
  }

  conv = g_new0 (GstCudaLinkConverter, 1);
  conv->context = gst_object_ref (context);
  conv->module = module;
  conv->func = func;
  conv->origin = origin;
  GST_INFO ("converter kernels loaded from %s", origin);

  g_free (ptx_why);
  g_free (nvrtc_why);
  return conv;
}

const gchar *
gst_cuda_link_converter_origin (GstCudaLinkConverter * conv)
{
  g_return_val_if_fail (conv != NULL, NULL);
  return conv->origin;
}

static gboolean
dtype_valid (cudalink_dtype dtype)
{
  return (guint) dtype < CUDALINK_DTYPE_COUNT_;
}

gboolean
gst_cuda_link_converter_run (GstCudaLinkConverter * conv,
    const GstCudaLinkConvertParams * p, CUstream stream, GError ** error)
{
  CUdeviceptr src, dst;
  guint64 src_pitch, dst_pitch;
  gint src_comps, src_dtype, dst_comps, dst_dtype, width, height, flip;
  gint sw[4];
  gpointer args[15];
  CUresult res;
  guint c;

  g_return_val_if_fail (conv != NULL, FALSE);
  g_return_val_if_fail (p != NULL, FALSE);

  if (p->src == 0 || p->dst == 0 || p->src_comps < 1 || p->src_comps > 4 ||
      p->dst_comps < 1 || p->dst_comps > 4 || !dtype_valid (p->src_dtype) ||
      !dtype_valid (p->dst_dtype) || p->width < 1 || p->height < 1 ||
      p->width > G_MAXINT || p->height > G_MAXINT) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "Invalid conversion parameters (%ux%u, %u -> %u channels, dtype %d "
        "-> %d)", p->width, p->height, p->src_comps, p->dst_comps,
        p->src_dtype, p->dst_dtype);
    return FALSE;
  }
  for (c = 0; c < 4; c++) {
    sw[c] = c < p->dst_comps ? p->swizzle[c] : GST_CUDA_LINK_SWIZZLE_ZERO;
    if (sw[c] != GST_CUDA_LINK_SWIZZLE_ZERO &&
        sw[c] != GST_CUDA_LINK_SWIZZLE_ONE &&
        (sw[c] < 0 || sw[c] >= (gint) p->src_comps)) {
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
          "Invalid swizzle: output channel %u reads channel %d of %u", c,
          sw[c], p->src_comps);
      return FALSE;
    }
  }

  src = (CUdeviceptr) p->src;
  dst = (CUdeviceptr) p->dst;
  src_pitch = p->src_pitch;
  dst_pitch = p->dst_pitch;
  src_comps = (gint) p->src_comps;
  src_dtype = (gint) p->src_dtype;
  dst_comps = (gint) p->dst_comps;
  dst_dtype = (gint) p->dst_dtype;
  width = (gint) p->width;
  height = (gint) p->height;
  flip = p->flip_y ? 1 : 0;

  args[0] = &src;
  args[1] = &src_pitch;
  args[2] = &src_comps;
  args[3] = &src_dtype;
  args[4] = &dst;
  args[5] = &dst_pitch;
  args[6] = &dst_comps;
  args[7] = &dst_dtype;
  args[8] = &width;
  args[9] = &height;
  args[10] = &sw[0];
  args[11] = &sw[1];
  args[12] = &sw[2];
  args[13] = &sw[3];
  args[14] = &flip;

  if (!gst_cuda_context_push (conv->context)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "Could not make the CUDA context current");
    return FALSE;
  }
  res = CuLaunchKernel (conv->func, (p->width + BLOCK_X - 1) / BLOCK_X,
      (p->height + BLOCK_Y - 1) / BLOCK_Y, 1, BLOCK_X, BLOCK_Y, 1, 0, stream,
      args, NULL);
  gst_cuda_context_pop (NULL);

  if (res != CUDA_SUCCESS) {
    gchar *e = cuda_error_text (res);

    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "Launching the conversion kernel failed: %s", e);
    g_free (e);
    return FALSE;
  }
  return TRUE;
}

void
gst_cuda_link_converter_free (GstCudaLinkConverter * conv)
{
  if (!conv)
    return;

  if (conv->module && gst_cuda_context_push (conv->context)) {
    CuModuleUnload (conv->module);
    gst_cuda_context_pop (NULL);
  }
  gst_object_unref (conv->context);
  g_free (conv->origin);
  g_free (conv);
}
