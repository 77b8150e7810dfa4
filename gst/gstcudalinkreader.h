/* The transport behind cudalinksrc: a reader follows one producer's
 * segment through libcudalink and turns each of its frames into a
 * GstBuffer.
 *
 * It owns the libcudalink consumer, the CUDA stream, the staging buffer a
 * frame passes through before a download, the conversion kernels, the
 * importer that hands held slots downstream (io-mode, gstcudalinkimport.h),
 * the statistics and its own flushing flag. The element keeps properties,
 * context, caps and timestamps (the split of GStreamer 1.24's cudaipcsrc
 * and its client object).
 *
 *   element                         reader
 *   start()        ---------------> _start (config)
 *   create()       ---------------> _read (pool)      (loops until one of:)
 *        FRAME                 <--- buffer filled, frame info
 *        FORMAT                <--- connected, or the producer re-initialised:
 *                                   _plan () / _format () say what to offer
 *        LOST                  <--- producer gone (disconnected; the next
 *                                   _read waits for a new one, forever)
 *        STALLED               <--- no frame for frame_timeout_ms
 *        FLUSHING / ERROR      <--- (ERROR: GError with GStreamer's domain
 *                                   and code, _error_detail () the debug text)
 *   set_caps()     ---------------> _set_output (info, cuda)
 *   unlock()       ---------------> _set_flushing (TRUE)
 *   unlock_stop()  ---------------> _set_flushing (FALSE)
 *   stop()         ---------------> _stop ()
 *
 * The reader posts "cudalink-state" element messages on the element
 * (waiting, connected, reconnected, format-changed, lost, stalled,
 * resumed) from the streaming thread.
 *
 * Threads: _read, _start, _stop and _set_output from the streaming thread
 * or with it stopped; _set_flushing and _get_stats from any thread.
 */
#ifndef __GST_CUDA_LINK_READER_H__
#define __GST_CUDA_LINK_READER_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/cuda/gstcudacontext.h>

#include "cudalink.h"
#include "gstcudalinktypes.h"
#include "srcformat.h"

G_BEGIN_DECLS

typedef struct _GstCudaLinkReader GstCudaLinkReader;

typedef struct
{
  const gchar *name;            /* segment name (copied) */
  gint64 timeout_ms;            /* first attach: -1 forever, 0 look once */
  gint device_id;               /* -1: the context's, else 0 */
  GstCudaContext *context;      /* NULL: no driver (segments are still
                                 * checked, connecting fails) */
  const gchar *no_driver_why;   /* why there is no context, for errors */
  guint poll_interval_us;
  GstCudaLinkGpuWait gpu_wait;  /* NAP, SPIN or SLEEP */
  gboolean wake_spin;
  GstCudaLinkChannelOrder channel_order;
  GstCudaLinkFloatFormat float_format;
  gint64 frame_timeout_ms;      /* STALLED after this long without a frame
                                 * from a foreign producer; 0: never */
  GstCudaLinkIoMode io_mode;    /* import: hold our producers' slots */
} GstCudaLinkReaderConfig;

typedef enum
{
  GST_CUDA_LINK_READ_FRAME,     /* *buffer holds a clean frame */
  GST_CUDA_LINK_READ_FORMAT,    /* new or changed format: renegotiate */
  GST_CUDA_LINK_READ_LOST,      /* the producer went away */
  GST_CUDA_LINK_READ_STALLED,   /* no frame for frame_timeout_ms (once per
                                 * silence; the next _read waits on) */
  GST_CUDA_LINK_READ_FLUSHING,
  GST_CUDA_LINK_READ_ERROR,
} GstCudaLinkReadResult;

typedef struct
{
  guint32 write_idx;            /* the producer's count after this frame */
  gdouble timestamp;            /* the producer's, cudalink_now () clock */
  gdouble woken;                /* cudalink_now () when the wait saw it */
  gboolean discont;             /* frames were lost (missed, torn, a new
                                 * format or producer) since the last one */
} GstCudaLinkReaderFrame;

GstCudaLinkReader *gst_cuda_link_reader_new (GstElement * element);
void gst_cuda_link_reader_free (GstCudaLinkReader * reader);

/* Creates the consumer (nothing is opened yet) and clears the stats.
 * FALSE with @error set when the library refuses the configuration. */
gboolean gst_cuda_link_reader_start (GstCudaLinkReader * reader,
    const GstCudaLinkReaderConfig * config, GError ** error);
void gst_cuda_link_reader_stop (GstCudaLinkReader * reader);

/* Sets or clears flushing; setting it ends a wait in _read at once. */
void gst_cuda_link_reader_set_flushing (GstCudaLinkReader * reader,
    gboolean flushing);

gboolean gst_cuda_link_reader_is_flushing (GstCudaLinkReader * reader);

/* What downstream agreed to: frames are written as @info, on the GPU when
 * @cuda (into GstCudaMemory), else into system memory. */
void gst_cuda_link_reader_set_output (GstCudaLinkReader * reader,
    const GstVideoInfo * info, gboolean cuda);

/* Attaches when needed (waiting as the config says), waits for the next
 * frame and fills a buffer from @pool with it, vertically flipped when
 * @flip. Torn copies and wake-ups without a frame are retried inside. */
GstCudaLinkReadResult gst_cuda_link_reader_read (GstCudaLinkReader * reader,
    GstBufferPool * pool, gboolean flip, GstBuffer ** buffer,
    GstCudaLinkReaderFrame * frame, GError ** error);

/* The caps to offer for the current format (NULL before the first
 * FORMAT result), and the format and plan behind them. */
GstCaps *gst_cuda_link_reader_get_caps (GstCudaLinkReader * reader);
gboolean gst_cuda_link_reader_get_plan (GstCudaLinkReader * reader,
    cudalink_format * format, GstCudaLinkSrcPlan * plan);

/* The debug text that goes with the last ERROR. */
const gchar *gst_cuda_link_reader_error_detail (GstCudaLinkReader * reader);

/* A new application/x-cudalinksrc-stats structure (documented in
 * docs/elements/cudalinksrc.md). */
GstStructure *gst_cuda_link_reader_get_stats (GstCudaLinkReader * reader);

G_END_DECLS

#endif /* __GST_CUDA_LINK_READER_H__ */
