/* Shared by cudalinksink and cudalinksrc (see gstcudalinkutils.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinkutils.h"

#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudautils.h>
#include <gst/cuda/gstcudamemory.h>
#include <stdarg.h>
#include <stdlib.h>

static int
compare_u64 (const void *a, const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return (x > y) - (x < y);
}

guint64
gst_cuda_link_percentile (guint64 * samples, guint n, guint pct)
{
  guint rank;

  if (n == 0)
    return 0;
  if (pct > 100)
    pct = 100;

  qsort (samples, n, sizeof (guint64), compare_u64);
  /* nearest rank: ceil (pct / 100 * n), at least 1 */
  rank = (pct * n + 99) / 100;
  if (rank == 0)
    rank = 1;
  return samples[rank - 1];
}

gboolean
gst_cuda_link_staging_fits (const GstCudaLinkStaging * staging, gsize row,
    guint height)
{
  return staging->ptr && staging->row == row && staging->height == height;
}

void
gst_cuda_link_staging_free (GstCudaLinkStaging * staging,
    GstCudaContext * context)
{
  if (staging->ptr && context && gst_cuda_context_push (context)) {
    gst_cuda_result (CuMemFree (staging->ptr));
    gst_cuda_context_pop (NULL);
  }
  staging->ptr = 0;
  staging->pitch = staging->row = 0;
  staging->height = 0;
}

gboolean
gst_cuda_link_staging_alloc (GstCudaLinkStaging * staging,
    GstCudaContext * context, gsize row, guint height, GError ** error)
{
  CUresult res = CUDA_ERROR_INVALID_CONTEXT;

  if (gst_cuda_link_staging_fits (staging, row, height))
    return TRUE;

  gst_cuda_link_staging_free (staging, context);
  if (gst_cuda_context_push (context)) {
    res = CuMemAllocPitch (&staging->ptr, &staging->pitch, row, height, 16);
    gst_cuda_context_pop (NULL);
  }
  if (res != CUDA_SUCCESS) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT,
        "Could not allocate a %" G_GSIZE_FORMAT " x %u byte buffer on the "
        "GPU (%s).", row, height, gst_cuda_link_cu_error_name (res));
    staging->ptr = 0;
    staging->pitch = 0;
    return FALSE;
  }
  staging->row = row;
  staging->height = height;
  return TRUE;
}

gboolean
gst_cuda_link_staging_ensure (GstCudaLinkStaging * staging,
    GstElement * element, GstCudaContext * context, gsize row, guint height)
{
  GError *err = NULL;

  if (gst_cuda_link_staging_alloc (staging, context, row, height, &err))
    return TRUE;
  GST_ELEMENT_ERROR (element, RESOURCE, NO_SPACE_LEFT, ("%s", err->message),
      ("cuMemAllocPitch"));
  g_clear_error (&err);
  return FALSE;
}

GType
gst_cuda_link_enum_type (gsize * once, const gchar * name,
    const GEnumValue * values)
{
  if (g_once_init_enter (once)) {
    GType t = g_enum_register_static (name, values);
    g_once_init_leave (once, t);
  }
  return (GType) * once;
}

GType
gst_cuda_link_channel_order_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_CHANNEL_ORDER_AUTO, "cudalinksrc: BGRA when the producer "
          "sets the BGRA flag, else RGBA; cudalinksink: BGRA for BGRA/BGRx "
          "input, else RGBA", "auto"},
    {GST_CUDA_LINK_CHANNEL_ORDER_RGBA, "R, G, B, A bytes", "rgba"},
    {GST_CUDA_LINK_CHANNEL_ORDER_BGRA, "B, G, R, A bytes with the protocol's "
          "BGRA flag (TouchDesigner 8-bit textures)", "bgra"},
    {0, NULL, NULL},
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkChannelOrder", values);
}

GType
gst_cuda_link_gpu_wait_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_GPU_WAIT_NONE, "Do not wait (cudalinksink only: consumers "
          "wait on the slot's event)", "none"},
    {GST_CUDA_LINK_GPU_WAIT_NAP, "Sleep in short naps, spin the end", "nap"},
    {GST_CUDA_LINK_GPU_WAIT_SPIN, "Spin a core for the whole wait", "spin"},
    {GST_CUDA_LINK_GPU_WAIT_SLEEP, "Sleep in the driver until the GPU is done",
        "sleep"},
    {0, NULL, NULL},
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkGpuWait", values);
}

GType
gst_cuda_link_io_mode_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_CUDA_LINK_IO_MODE_COPY, "Copy every frame out of the ring", "copy"},
    {GST_CUDA_LINK_IO_MODE_IMPORT, "Hand the producer's slot downstream "
          "(cudalink producers only; copies when it cannot)", "import"},
    {GST_CUDA_LINK_IO_MODE_AUTO, "Import when the producer offers it, else "
          "copy", "auto"},
    {0, NULL, NULL},
  };

  return gst_cuda_link_enum_type (&type, "GstCudaLinkIoMode", values);
}

gboolean
gst_cuda_link_status_is_bad_header (cudalink_status st)
{
  switch (st) {
    case CUDALINK_ERR_TRUNCATED:
    case CUDALINK_ERR_BAD_MAGIC:
    case CUDALINK_ERR_BAD_NUM_SLOTS:
    case CUDALINK_ERR_BAD_DTYPE:
    case CUDALINK_ERR_BAD_DIMENSIONS:
    case CUDALINK_ERR_BAD_DATA_SIZE:
    case CUDALINK_ERR_BAD_NUM_COMPS:
      return TRUE;
    default:
      return FALSE;
  }
}

void
gst_cuda_link_status_to_error (cudalink_status st, GQuark * domain,
    gint * code)
{
  *domain = GST_RESOURCE_ERROR;
  if (gst_cuda_link_status_is_bad_header (st)) {
    *code = GST_RESOURCE_ERROR_OPEN_READ;
    return;
  }
  switch (st) {
    case CUDALINK_ERR_NO_DRIVER:
    case CUDALINK_ERR_DRIVER_SYMBOL:
      *domain = GST_LIBRARY_ERROR;
      *code = GST_LIBRARY_ERROR_INIT;
      return;
    case CUDALINK_ERR_INVALID_ARG:
    case CUDALINK_ERR_BAD_NAME:
      *code = GST_RESOURCE_ERROR_SETTINGS;
      return;
    case CUDALINK_ERR_NO_DEVICE:
    case CUDALINK_ERR_NOT_FOUND:
      *code = GST_RESOURCE_ERROR_NOT_FOUND;
      return;
    case CUDALINK_ERR_BUSY:
    case CUDALINK_ERR_FOREIGN_PRODUCER:
      *code = GST_RESOURCE_ERROR_BUSY;
      return;
    case CUDALINK_ERR_NO_MEMORY:
      *code = GST_RESOURCE_ERROR_NO_SPACE_LEFT;
      return;
    case CUDALINK_ERR_SHM:
      *code = GST_RESOURCE_ERROR_OPEN_READ_WRITE;
      return;
    case CUDALINK_ERR_STALE:
    case CUDALINK_ERR_PRODUCER_GONE:
    case CUDALINK_ERR_IPC_OPEN:
      *code = GST_RESOURCE_ERROR_OPEN_READ;
      return;
    default:
      *code = GST_RESOURCE_ERROR_FAILED;
      return;
  }
}

void
gst_cuda_link_post_status_full (GstElement * element, cudalink_status st,
    const gchar * text, const gchar * detail, const gchar * file,
    const gchar * function, gint line)
{
  GQuark domain;
  gint code;

  gst_cuda_link_status_to_error (st, &domain, &code);
  gst_element_message_full (element, GST_MESSAGE_ERROR, domain, code,
      g_strdup (text ? text : cudalink_strerror (st)),
      g_strdup_printf ("%s%s(%s)", detail ? detail : "",
          detail && *detail ? " " : "", cudalink_status_name (st)),
      file, function, line);
}

cudalink_status
gst_cuda_link_load_driver (gchar * why, gsize why_size)
{
  cudalink_status st = cudalink_cuda_load (why, why_size);

  if (st != CUDALINK_OK)
    return st;
  if (!gst_cuda_load_library ()) {
    g_snprintf (why, why_size, "GStreamer's CUDA library could not load the "
        "driver that libcudalink loaded (gst_cuda_load_library failed)");
    return CUDALINK_ERR_NO_DRIVER;
  }
  gst_cuda_memory_init_once ();
  return CUDALINK_OK;
}

const gchar *
gst_cuda_link_cu_error_name (CUresult res)
{
  const gchar *name = NULL;

  if (CuGetErrorName (res, &name) != CUDA_SUCCESS || !name)
    return "unknown CUDA error";
  return name;
}

gboolean
gst_cuda_link_cuda_open (GstElement * element, gint device_id,
    GstCudaContext ** context, CUstream * stream)
{
  CUresult res;

  if (stream)
    *stream = NULL;
  if (!gst_cuda_ensure_element_context (element, device_id, context)) {
    gint count = -1;

    CuDeviceGetCount (&count);
    if (device_id >= 0)
      GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
          ("No such CUDA device: cuda-device-id=%d.", device_id),
          ("the driver reports %d device(s)", count));
    else
      GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
          ("Could not get a CUDA context on the default CUDA device."),
          ("cuda-device-id=-1; the driver reports %d device(s)", count));
    return FALSE;
  }
  if (!stream)
    return TRUE;
  if (!gst_cuda_context_push (*context)) {
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
        ("Could not make the CUDA context current."), ("cuCtxPushCurrent"));
    gst_clear_object (context);
    return FALSE;
  }
  res = CuStreamCreate (stream, CU_STREAM_DEFAULT);
  gst_cuda_context_pop (NULL);
  if (res != CUDA_SUCCESS) {
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
        ("Could not create a CUDA stream."), ("cuStreamCreate: %s",
            gst_cuda_link_cu_error_name (res)));
    *stream = NULL;
    gst_clear_object (context);
    return FALSE;
  }
  return TRUE;
}

void
gst_cuda_link_cuda_close (GstCudaContext ** context, CUstream * stream)
{
  if (stream && *stream && *context && gst_cuda_context_push (*context)) {
    CuStreamDestroy (*stream);
    gst_cuda_context_pop (NULL);
  }
  if (stream)
    *stream = NULL;
  gst_clear_object (context);
}

struct _GstCudaLinkStatsTicker
{
  GstClock *clock;
  GstClockID id;
};

typedef struct
{
  GstElement *element;
  GstCudaLinkGetStats get_stats;
} TickData;

static void
tick_data_free (gpointer data)
{
  TickData *t = data;

  gst_object_unref (t->element);
  g_free (t);
}

static gboolean
on_tick (GstClock * clock, GstClockTime time, GstClockID id, gpointer data)
{
  TickData *t = data;
  GstStructure *s = t->get_stats (t->element);

  gst_element_post_message (t->element,
      gst_message_new_element (GST_OBJECT (t->element), s));
  return TRUE;
}

GstCudaLinkStatsTicker *
gst_cuda_link_stats_ticker_start (GstElement * element, guint interval_ms,
    GstCudaLinkGetStats get_stats)
{
  GstCudaLinkStatsTicker *ticker = g_new0 (GstCudaLinkStatsTicker, 1);
  GstClockTime interval = interval_ms * GST_MSECOND;
  TickData *t = g_new0 (TickData, 1);

  t->element = gst_object_ref (element);
  t->get_stats = get_stats;
  ticker->clock = gst_system_clock_obtain ();
  ticker->id = gst_clock_new_periodic_id (ticker->clock,
      gst_clock_get_time (ticker->clock) + interval, interval);
  if (gst_clock_id_wait_async (ticker->id, on_tick, t, tick_data_free) !=
      GST_CLOCK_OK)
    GST_WARNING_OBJECT (element, "could not schedule the stats ticker");
  return ticker;
}

void
gst_cuda_link_stats_ticker_stop (GstCudaLinkStatsTicker * ticker)
{
  if (!ticker)
    return;
  gst_clock_id_unschedule (ticker->id);
  gst_clock_id_unref (ticker->id);
  gst_object_unref (ticker->clock);
  g_free (ticker);
}

void
gst_cuda_link_post_state (GstElement * element, const gchar * state,
    const gchar * ipc_name, const gchar * first_field, ...)
{
  GstStructure *s = gst_structure_new ("cudalink-state", "state",
      G_TYPE_STRING, state, "ipc-name", G_TYPE_STRING, ipc_name, NULL);
  va_list args;

  if (first_field) {
    va_start (args, first_field);
    gst_structure_set_valist (s, first_field, args);
    va_end (args);
  }
  GST_DEBUG_OBJECT (element, "%" GST_PTR_FORMAT, s);
  gst_element_post_message (element,
      gst_message_new_element (GST_OBJECT (element), s));
}
