/* cudalinksrc's zero-copy output (gstcudalinkimport.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/cuda/gstcudamemory.h>

#include <string.h>

#include "gstcudalinkimport.h"

GST_DEBUG_CATEGORY_EXTERN (gst_cuda_link_src_debug);
#define GST_CAT_DEFAULT gst_cuda_link_src_debug

struct _GstCudaLinkImport
{
  gint refs;                    /* the owner's, and one per 1.22 lender */
  GstCudaContext *context;
  GstVideoInfo info;
  GMutex lock;
  GQueue free;                  /* 1.22: memories back home */
  gboolean closed;
};

static void
import_unref_internal (GstCudaLinkImport * import)
{
  if (!g_atomic_int_dec_and_test (&import->refs))
    return;
  gst_object_unref (import->context);
  g_mutex_clear (&import->lock);
  g_free (import);
}

static void
set_read_only (GstMemory * mem)
{
  GST_MINI_OBJECT_FLAG_SET (mem, GST_MEMORY_FLAG_READONLY);
}

typedef CUresult (CUDAAPI * CtxSynchronizeFn) (void);

/* Lets the producer have the slot again, once every GPU reader of it is
 * done: whoever freed the buffer may still have kernels reading it queued
 * on a stream of their own (1.24's converters do not wait for theirs), and
 * the memory does not know which. So the whole context is waited for. */
static void
release_after_gpu (GstCudaContext * context, cudalink_hold * hold)
{
  static CtxSynchronizeFn ctx_sync;
  cudalink_cuda_fn fn;

  if (!ctx_sync) {
    fn = cudalink_cuda_symbol ("cuCtxSynchronize");
    memcpy (&ctx_sync, &fn, sizeof (ctx_sync));
  }
  if (ctx_sync && gst_cuda_context_push (context)) {
    CUresult res = ctx_sync ();

    if (res != CUDA_SUCCESS)
      GST_WARNING ("cuCtxSynchronize before letting a held slot go: %d",
          (gint) res);
    gst_cuda_context_pop (NULL);
  }
  cudalink_hold_release (hold);
}

#if GST_CHECK_VERSION(1, 24, 0)

typedef struct
{
  GstCudaContext *context;
  cudalink_hold *hold;
} Wrapped;

static void
wrapped_free (gpointer data)
{
  Wrapped *w = data;

  release_after_gpu (w->context, w->hold);
  gst_object_unref (w->context);
  g_free (w);
}

static gboolean
import_check (GstCudaLinkImport * import, gchar ** why)
{
  (void) import;
  (void) why;
  return TRUE;
}

static GstMemory *
import_memory (GstCudaLinkImport * import, guint64 ptr, cudalink_hold * hold)
{
  Wrapped *w = g_new0 (Wrapped, 1);
  GstMemory *mem;

  w->context = gst_object_ref (import->context);
  w->hold = hold;
  mem = gst_cuda_allocator_alloc_wrapped (NULL, import->context, NULL,
      &import->info, (CUdeviceptr) ptr, w, wrapped_free);
  if (!mem) {
    wrapped_free (w);
    return NULL;
  }
  set_read_only (mem);
  return mem;
}

static void
import_drain (GstCudaLinkImport * import)
{
  (void) import;
}

#else /* 1.22: lenders (see the header) */

typedef struct
{
  GstCudaLinkImport *import;
  CUdeviceptr own;              /* the memory's own allocation */
  cudalink_hold *hold;          /* while lent out */
} Lender;

static GstCudaLinkImport *
import_ref (GstCudaLinkImport * import)
{
  g_atomic_int_inc (&import->refs);
  return import;
}

static GQuark
lender_quark (void)
{
  static GQuark q;

  if (!q)
    q = g_quark_from_static_string ("GstCudaLinkImportLender");
  return q;
}

/* 1.22's GstCudaMemoryPrivate starts with the device pointer. */
static CUdeviceptr *
device_ptr_field (GstMemory * mem)
{
  return (CUdeviceptr *) GST_CUDA_MEMORY_CAST (mem)->priv;
}

static void
lender_free (gpointer data)
{
  Lender *l = data;

  import_unref_internal (l->import);
  g_free (l);
}

/* The last reference went: the slot is let go, the memory gets its own
 * pointer back and goes home, or is freed when home is closed. */
static gboolean
lender_dispose (GstMiniObject * obj)
{
  GstMemory *mem = (GstMemory *) obj;
  Lender *l = gst_mini_object_get_qdata (obj, lender_quark ());
  GstCudaLinkImport *import = l->import;

  if (l->hold)
    release_after_gpu (import->context, l->hold);
  l->hold = NULL;
  *device_ptr_field (mem) = l->own;
  g_mutex_lock (&import->lock);
  if (!import->closed) {
    gst_memory_ref (mem);
    g_queue_push_tail (&import->free, mem);
    g_mutex_unlock (&import->lock);
    return FALSE;
  }
  g_mutex_unlock (&import->lock);
  obj->dispose = NULL;
  return TRUE;
}

static GstMemory *
lender_new (GstCudaLinkImport * import)
{
  /* 1.22 takes no NULL for the default allocator */
  GstAllocator *alloc = gst_allocator_find (GST_CUDA_MEMORY_TYPE_NAME);
  GstMemory *mem = NULL;
  Lender *l;

  if (alloc && GST_IS_CUDA_ALLOCATOR (alloc))
    mem = gst_cuda_allocator_alloc (GST_CUDA_ALLOCATOR (alloc),
        import->context, &import->info);
  if (alloc)
    gst_object_unref (alloc);
  if (!mem)
    return NULL;
  l = g_new0 (Lender, 1);
  l->import = import_ref (import);
  l->own = *device_ptr_field (mem);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (mem), lender_quark (), l,
      lender_free);
  return mem;
}

static gboolean
import_check (GstCudaLinkImport * import, gchar ** why)
{
  GstMemory *mem = lender_new (import);
  GstMapInfo map;
  gboolean ok = FALSE;

  if (!mem) {
    *why = g_strdup ("GstCudaAllocator could not allocate a frame");
    return FALSE;
  }
  if (GST_CUDA_MEMORY_CAST (mem)->info.stride[0] != import->info.stride[0]) {
    *why = g_strdup_printf ("the CUDA allocator pads rows to %d bytes, the "
        "producer's are %d", GST_CUDA_MEMORY_CAST (mem)->info.stride[0],
        import->info.stride[0]);
  } else if (!gst_memory_map (mem, &map, GST_MAP_READ | GST_MAP_CUDA)) {
    *why = g_strdup ("a GstCudaMemory could not be mapped");
  } else {
    ok = (CUdeviceptr) (guintptr) map.data == *device_ptr_field (mem);
    gst_memory_unmap (mem, &map);
    if (!ok)
      *why = g_strdup ("this GStreamer's GstCudaMemory is not laid out as "
          "1.22's");
  }
  if (ok) {
    g_queue_push_tail (&import->free, mem);
  } else {
    gst_memory_unref (mem);
  }
  return ok;
}

static GstMemory *
import_memory (GstCudaLinkImport * import, guint64 ptr, cudalink_hold * hold)
{
  GstMemory *mem;
  Lender *l;

  g_mutex_lock (&import->lock);
  mem = g_queue_pop_head (&import->free);
  g_mutex_unlock (&import->lock);
  if (!mem)
    mem = lender_new (import);
  if (!mem) {
    cudalink_hold_release (hold);
    return NULL;
  }
  l = gst_mini_object_get_qdata (GST_MINI_OBJECT_CAST (mem), lender_quark ());
  l->hold = hold;
  *device_ptr_field (mem) = (CUdeviceptr) ptr;
  /* a CPU map must download this frame, not return the last one's */
  GST_MINI_OBJECT_FLAG_SET (mem, GST_CUDA_MEMORY_TRANSFER_NEED_DOWNLOAD);
  GST_MINI_OBJECT_FLAG_UNSET (mem, GST_CUDA_MEMORY_TRANSFER_NEED_UPLOAD);
  set_read_only (mem);
  GST_MINI_OBJECT_CAST (mem)->dispose = lender_dispose;
  return mem;
}

static void
import_drain (GstCudaLinkImport * import)
{
  GstMemory *mem;

  while ((mem = g_queue_pop_head (&import->free)))
    gst_memory_unref (mem);     /* no dispose hook at home: freed */
}

#endif

GstCudaLinkImport *
gst_cuda_link_import_new (GstCudaContext * context, const GstVideoInfo * info,
    gchar ** why)
{
  GstCudaLinkImport *import;

  *why = NULL;
  if (GST_VIDEO_INFO_N_PLANES (info) != 1) {
    *why = g_strdup ("the output has more than one plane");
    return NULL;
  }
  import = g_new0 (GstCudaLinkImport, 1);
  import->refs = 1;
  import->context = gst_object_ref (context);
  import->info = *info;
  g_mutex_init (&import->lock);
  g_queue_init (&import->free);
  gst_cuda_memory_init_once ();
  if (!import_check (import, why)) {
    gst_cuda_link_import_unref (import);
    return NULL;
  }
  return import;
}

void
gst_cuda_link_import_unref (GstCudaLinkImport * import)
{
  if (!import)
    return;
  g_mutex_lock (&import->lock);
  import->closed = TRUE;
  g_mutex_unlock (&import->lock);
  import_drain (import);
  import_unref_internal (import);
}

GstBuffer *
gst_cuda_link_import_wrap (GstCudaLinkImport * import, guint64 ptr,
    cudalink_hold * hold)
{
  GstVideoInfo *info = &import->info;
  GstMemory *mem = import_memory (import, ptr, hold);
  GstBuffer *buf;

  if (!mem)
    return NULL;
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, mem);
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_INFO_FORMAT (info), GST_VIDEO_INFO_WIDTH (info),
      GST_VIDEO_INFO_HEIGHT (info), GST_VIDEO_INFO_N_PLANES (info),
      info->offset, info->stride);
  return buf;
}
