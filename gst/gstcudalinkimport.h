/* cudalinksrc's zero-copy output: a slot of our producer's ring, held
 * through libcudalink (cudalink_consumer_hold()), handed downstream as
 * GstCudaMemory without a copy; freeing the memory releases the hold.
 *
 * GStreamer 1.24 has gst_cuda_allocator_alloc_wrapped() for this. 1.22
 * has no way to wrap a foreign device pointer, so there a small set of
 * GstCudaMemory objects of the output's size is allocated once and each
 * one lends its device pointer slot to the held one while it is out,
 * coming back through the memory's dispose hook (as buffer pools recycle
 * buffers). That needs 1.22's private layout (the device pointer is the
 * first field of GstCudaMemoryPrivate): _new() checks it against what a
 * GST_MAP_CUDA map returns and refuses to import when they differ, and
 * when the allocator's row pitch is not the slot's packed one.
 *
 * Threads: _wrap from the streaming thread; memories come back from any
 * thread; _unref from anywhere (memories still out free themselves when
 * they come back). */
#ifndef __GST_CUDA_LINK_IMPORT_H__
#define __GST_CUDA_LINK_IMPORT_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/cuda/gstcudacontext.h>

#include "cudalink.h"

G_BEGIN_DECLS

typedef struct _GstCudaLinkImport GstCudaLinkImport;

/* An importer for frames of @info (one plane, rows packed) in @context,
 * or NULL with @why (free it) when this GStreamer cannot wrap them. */
GstCudaLinkImport *gst_cuda_link_import_new (GstCudaContext * context,
    const GstVideoInfo * info, gchar ** why);
void gst_cuda_link_import_unref (GstCudaLinkImport * import);

/* A read-only buffer with the frame at @ptr; takes @hold, released when
 * the buffer's memory is freed. NULL (hold released) on failure. */
GstBuffer *gst_cuda_link_import_wrap (GstCudaLinkImport * import,
    guint64 ptr, cudalink_hold * hold);

G_END_DECLS

#endif /* __GST_CUDA_LINK_IMPORT_H__ */
