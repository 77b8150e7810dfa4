/* What cudalinksink and cudalinksrc both need: their shared enum property
 * types, one mapping from a libcudalink status to a GStreamer error, one way
 * to load the driver and open / close a CUDA context with a stream,
 * nearest-rank percentiles for their stats, and a pitched device buffer
 * that a frame passes through (the sink's upload target, the src's copy
 * before a download). */
#ifndef __GST_CUDA_LINK_UTILS_H__
#define __GST_CUDA_LINK_UTILS_H__

#include <gst/gst.h>
#include <gst/cuda/gstcudacontext.h>

#include "cudalink.h"
#include "gstcudalinktypes.h"

G_BEGIN_DECLS

#define GST_TYPE_CUDA_LINK_CHANNEL_ORDER (gst_cuda_link_channel_order_get_type ())
GType gst_cuda_link_channel_order_get_type (void);

#define GST_TYPE_CUDA_LINK_GPU_WAIT (gst_cuda_link_gpu_wait_get_type ())
#define GST_TYPE_CUDA_LINK_IO_MODE (gst_cuda_link_io_mode_get_type ())
GType gst_cuda_link_io_mode_get_type (void);
GType gst_cuda_link_gpu_wait_get_type (void);

/* The GStreamer error domain and code for a libcudalink status (the driver
 * missing is LIBRARY/INIT, a missing segment RESOURCE/NOT_FOUND, a bad or
 * stale one RESOURCE/OPEN_READ, ...). */
void gst_cuda_link_status_to_error (cudalink_status st, GQuark * domain,
    gint * code);

/* Does @st say a segment's header is malformed (a parse error)? */
gboolean gst_cuda_link_status_is_bad_header (cudalink_status st);

/* Posts one error message for @st on @element: @text is the user's sentence
 * (NULL: cudalink_strerror()), @detail the debug text, to which the status
 * name is appended. Both are copied. */
#define gst_cuda_link_post_status(element, st, text, detail) \
  gst_cuda_link_post_status_full (GST_ELEMENT (element), st, text, detail, \
      __FILE__, GST_FUNCTION, __LINE__)
void gst_cuda_link_post_status_full (GstElement * element, cudalink_status st,
    const gchar * text, const gchar * detail, const gchar * file,
    const gchar * function, gint line);

/* Loads the CUDA driver for libcudalink and for GStreamer's CUDA library.
 * CUDALINK_OK, or the status with a sentence in @why (@why_size bytes). */
cudalink_status gst_cuda_link_load_driver (gchar * why, gsize why_size);

/* Gets @element a CUDA context on @device_id (-1: any; shared through the
 * pipeline's GstContext when there is one) and, unless @stream is NULL, a
 * stream on it. FALSE after posting an error; nothing is left open then. */
gboolean gst_cuda_link_cuda_open (GstElement * element, gint device_id,
    GstCudaContext ** context, CUstream * stream);

/* Destroys @stream (may be NULL) and drops @context (may be unset). */
void gst_cuda_link_cuda_close (GstCudaContext ** context, CUstream * stream);

/* The name of a CUDA error ("CUDA_ERROR_OUT_OF_MEMORY"), for debug texts. */
const gchar *gst_cuda_link_cu_error_name (CUresult res);

/* Registers the enum type @name with @values (terminated by a zeroed entry)
 * once; @once is the caller's static storage for it. For an element's own
 * enum types. */
GType gst_cuda_link_enum_type (gsize * once, const gchar * name,
    const GEnumValue * values);

/* The @pct (0..100) percentile of @n samples, nearest-rank; 0 when n == 0.
 * Sorts @samples in place. */
guint64 gst_cuda_link_percentile (guint64 * samples, guint n, guint pct);

typedef struct
{
  CUdeviceptr ptr;              /* 0: none */
  gsize pitch;
  gsize row;                    /* bytes of a row asked for */
  guint height;
} GstCudaLinkStaging;

/* Does @staging already hold @row x @height? */
gboolean gst_cuda_link_staging_fits (const GstCudaLinkStaging * staging,
    gsize row, guint height);

/* Makes @staging a @row x @height pitched buffer in @context (kept when it
 * already fits, else freed and allocated anew). FALSE with @error set when
 * the GPU has no room. */
gboolean gst_cuda_link_staging_alloc (GstCudaLinkStaging * staging,
    GstCudaContext * context, gsize row, guint height, GError ** error);

/* The same, posting a RESOURCE error on @element instead. */
gboolean gst_cuda_link_staging_ensure (GstCudaLinkStaging * staging,
    GstElement * element, GstCudaContext * context, gsize row, guint height);

/* Frees @staging (a no-op when it holds nothing). */
void gst_cuda_link_staging_free (GstCudaLinkStaging * staging,
    GstCudaContext * context);

/* Posts a "cudalink-state" element message from @element: @state, the
 * segment @ipc_name, then the fields that follow (NULL-terminated, as
 * gst_structure_set). docs/elements/ list the states of each element. */
void gst_cuda_link_post_state (GstElement * element, const gchar * state,
    const gchar * ipc_name, const gchar * first_field, ...) G_GNUC_NULL_TERMINATED;

/* stats-interval: posts an element message carrying @get_stats (@element)
 * every @interval_ms (> 0) from the system clock's thread, until
 * _stats_ticker_stop (which takes NULL). The ticker holds a reference on
 * @element while a tick can still come. */
typedef GstStructure *(*GstCudaLinkGetStats) (GstElement * element);
typedef struct _GstCudaLinkStatsTicker GstCudaLinkStatsTicker;
GstCudaLinkStatsTicker *gst_cuda_link_stats_ticker_start (GstElement * element,
    guint interval_ms, GstCudaLinkGetStats get_stats);
void gst_cuda_link_stats_ticker_stop (GstCudaLinkStatsTicker * ticker);

G_END_DECLS

#endif
