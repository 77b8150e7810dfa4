/* GStreamer cudalinkdeviceprovider: the cuda-link producers on this machine
 * (TouchDesigner Senders, cuda_link Python Exporters, cudalinksink) as
 * Video/Source devices.
 */

/**
 * SECTION:provider-cudalinkdeviceprovider
 * @title: cudalinkdeviceprovider
 * @see_also: cudalinksrc, #GstDeviceMonitor
 *
 * Lists every cuda-link segment whose producer is there (state live or
 * idle, as libcudalink's cudalink_segment_describe() judges it) as a
 * Video/Source device with the caps cudalinksrc would offer for it. The
 * device's element is a cudalinksrc with ipc-name set (and channel-order
 * bgra when the producer flags its frames BGRA). While monitoring, the
 * segments are looked at every 500 ms: devices are added as producers
 * appear, changed when one changes its frame format, and removed when one
 * shuts down, dies (ours: its lock goes without a shutdown; foreign: no
 * frame for 10 s, stale), or its segment goes. No GPU and no
 * CUDA driver are needed to list.
 *
 * ## Example
 * |[
 * gst-device-monitor-1.0 Video/Source
 * ]| Lists the producers with their caps and a launch line for each.
 *
 * Since: 0.1
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstcudalinkdeviceprovider.h"
#include "gstcudalink.h"

#include <string.h>

#include "cudalink.h"
#include "srcformat.h"

GST_DEBUG_CATEGORY_STATIC (gst_cuda_link_device_provider_debug);
#define GST_CAT_DEFAULT gst_cuda_link_device_provider_debug

/* How often the segments are looked at while monitoring. */
#define POLL_INTERVAL (500 * G_TIME_SPAN_MILLISECOND)

/* ------------------------------------------------------------------------ */
/* The device                                                               */
/* ------------------------------------------------------------------------ */

struct _GstCudaLinkDevice
{
  GstDevice parent;

  /* set once at creation */
  gchar *ipc_name;
  gboolean bgra;                /* the producer flags its frames BGRA */
  gchar *signature;             /* what the caps and the element follow from */
  gint ours;                    /* cudalink_segment_info.ours */
  guint64 version;              /* the header's */
};

G_DEFINE_TYPE (GstCudaLinkDevice, gst_cuda_link_device, GST_TYPE_DEVICE);

static GstElement *
gst_cuda_link_device_create_element (GstDevice * device, const gchar * name)
{
  GstCudaLinkDevice *self = GST_CUDA_LINK_DEVICE (device);
  GstElement *elem = gst_element_factory_make ("cudalinksrc", name);

  if (!elem)
    return NULL;
  g_object_set (elem, "ipc-name", self->ipc_name, NULL);
  if (self->bgra)
    gst_util_set_object_arg (G_OBJECT (elem), "channel-order", "bgra");
  return elem;
}

static gboolean
gst_cuda_link_device_reconfigure_element (GstDevice * device,
    GstElement * element)
{
  GstCudaLinkDevice *self = GST_CUDA_LINK_DEVICE (device);
  GstElementFactory *factory = gst_element_get_factory (element);

  if (!factory || g_strcmp0 (GST_OBJECT_NAME (factory), "cudalinksrc") != 0)
    return FALSE;
  g_object_set (element, "ipc-name", self->ipc_name, NULL);
  gst_util_set_object_arg (G_OBJECT (element), "channel-order",
      self->bgra ? "bgra" : "auto");
  return TRUE;
}

static void
gst_cuda_link_device_finalize (GObject * object)
{
  GstCudaLinkDevice *self = GST_CUDA_LINK_DEVICE (object);

  g_free (self->ipc_name);
  g_free (self->signature);
  G_OBJECT_CLASS (gst_cuda_link_device_parent_class)->finalize (object);
}

static void
gst_cuda_link_device_init (GstCudaLinkDevice * self)
{
}

static void
gst_cuda_link_device_class_init (GstCudaLinkDeviceClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstDeviceClass *device_class = GST_DEVICE_CLASS (klass);

  gobject_class->finalize = gst_cuda_link_device_finalize;
  device_class->create_element =
      GST_DEBUG_FUNCPTR (gst_cuda_link_device_create_element);
  device_class->reconfigure_element =
      GST_DEBUG_FUNCPTR (gst_cuda_link_device_reconfigure_element);
}

/* A device for a segment a consumer can attach to (floating), or NULL when
 * cudalinksrc could not output its frames. */
static GstDevice *
device_new (const cudalink_segment_info * info)
{
  const cudalink_format *fmt = &info->header.format;
  gboolean bgra = (fmt->flags & CUDALINK_FLAG_BGRA) != 0;
  GstCudaLinkSrcPlan plan;
  GstCudaLinkDevice *device;
  GstStructure *props;
  GstCaps *caps;
  gchar *display_name, *path, *why = NULL;

  if (!gst_cuda_link_src_plan (fmt, bgra ? GST_CUDA_LINK_CHANNEL_ORDER_BGRA :
          GST_CUDA_LINK_CHANNEL_ORDER_AUTO, GST_CUDA_LINK_FLOAT_FORMAT_RGBA,
          &plan, &why)) {
    GST_DEBUG ("segment '%s' left out: %s", info->name, why);
    g_free (why);
    return NULL;
  }
  caps = gst_cuda_link_src_plan_caps (&plan, fmt->width, fmt->height, TRUE);
  if (!caps)
    return NULL;

  path = g_strdup_printf ("/dev/shm/%s", info->name);
  props = gst_structure_new ("cudalink-device",
      "device.api", G_TYPE_STRING, "cuda-link",
      "device.path", G_TYPE_STRING, path,
      "cudalink.ipc-name", G_TYPE_STRING, info->name,
      "cudalink.producer", G_TYPE_STRING,
      info->ours == 1 ? "ours" : info->ours == 0 ? "foreign" : "unknown",
      "cudalink.owner-uid", G_TYPE_INT64, (gint64) info->owner_uid,
      "cudalink.width", G_TYPE_UINT, fmt->width,
      "cudalink.height", G_TYPE_UINT, fmt->height,
      "cudalink.channels", G_TYPE_UINT, fmt->num_comps,
      "cudalink.dtype", G_TYPE_STRING, cudalink_dtype_name (fmt->dtype),
      "cudalink.flags", G_TYPE_UINT, (guint) info->wire_flags,
      "cudalink.num-slots", G_TYPE_UINT, info->header.num_slots, NULL);
  display_name = g_strdup_printf ("cuda-link: %s", info->name);

  device = g_object_new (GST_TYPE_CUDA_LINK_DEVICE,
      "display-name", display_name, "caps", caps,
      "device-class", "Video/Source", "properties", props, NULL);
  device->ipc_name = g_strdup (info->name);
  device->bgra = bgra;
  device->ours = info->ours;
  device->version = info->header.version;
  device->signature = g_strdup_printf ("%ux%u x%u %s flags 0x%x slots %u %d",
      fmt->width, fmt->height, fmt->num_comps,
      cudalink_dtype_name (fmt->dtype), (guint) info->wire_flags,
      info->header.num_slots, info->ours);

  g_free (display_name);
  g_free (path);
  gst_structure_free (props);
  gst_caps_unref (caps);
  return GST_DEVICE (device);
}

/* ------------------------------------------------------------------------ */
/* The provider                                                             */
/* ------------------------------------------------------------------------ */

struct _GstCudaLinkDeviceProvider
{
  GstDeviceProvider parent;

  /* the poll thread, under lock, from start() to stop() */
  GMutex lock;
  GCond cond;
  GThread *thread;
  gboolean running;

  /* ipc-name -> GstCudaLinkDevice (a reference of ours) for the devices
   * posted, and ipc-name -> the version (a guint64 *) of the producers of
   * ours seen dying: start() and then only the poll thread touch them,
   * stop() after joining the thread */
  GHashTable *devices;
  GHashTable *dead;
};

G_DEFINE_TYPE (GstCudaLinkDeviceProvider, gst_cuda_link_device_provider,
    GST_TYPE_DEVICE_PROVIDER);
GST_DEVICE_PROVIDER_REGISTER_DEFINE (cudalinkdeviceprovider,
    "cudalinkdeviceprovider", GST_RANK_PRIMARY,
    GST_TYPE_CUDA_LINK_DEVICE_PROVIDER);

/* ipc-name -> a device (a reference of ours, not floating) for every
 * segment a consumer can attach to now. */
static GHashTable *
scan (void)
{
  GHashTable *found = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      gst_object_unref);
  cudalink_segment_info *info = g_new0 (cudalink_segment_info, 1);
  char **names = NULL;
  size_t count = 0;
  cudalink_status st = cudalink_segment_list (&names, &count);

  if (st != CUDALINK_OK) {
    GST_WARNING ("cannot list the cuda-link segments: %s",
        cudalink_strerror (st));
    g_free (info);
    return found;
  }
  for (size_t i = 0; i < count; i++) {
    GstDevice *device;

    if (cudalink_segment_describe (names[i], 0, 0, info) != CUDALINK_OK)
      continue;
    if (info->state != CUDALINK_SEGMENT_LIVE
        && info->state != CUDALINK_SEGMENT_IDLE) {
      GST_LOG ("segment '%s' left out: %s: %s", names[i],
          cudalink_segment_state_name (info->state), info->why);
      continue;
    }
    device = device_new (info);
    if (device)
      g_hash_table_insert (found, g_strdup (names[i]),
          gst_object_ref_sink (device));
  }
  cudalink_segment_list_free (names);
  g_free (info);
  return found;
}

static GList *
gst_cuda_link_device_provider_probe (GstDeviceProvider * provider)
{
  GHashTable *found = scan ();
  GHashTableIter iter;
  gpointer device;
  GList *list = NULL;

  g_hash_table_iter_init (&iter, found);
  while (g_hash_table_iter_next (&iter, NULL, &device))
    list = g_list_prepend (list, gst_object_ref (device));
  g_hash_table_unref (found);
  return list;
}

/* Drops from @found the producers of ours that died: a device that was
 * ours (its producer held the segment's lock) and lost the lock with the
 * same version and no shutdown flag is a producer that died (a clean one
 * sets the flag), the rule consumers apply. Such a segment looks like a
 * foreign producer's until it turns stale, 10 s later; it stays out until
 * a producer takes it again (a lock, or a new version). */
static void
drop_dead (GstCudaLinkDeviceProvider * self, GHashTable * found)
{
  GHashTableIter iter;
  gpointer name, value;

  g_hash_table_iter_init (&iter, self->dead);
  while (g_hash_table_iter_next (&iter, &name, &value)) {
    GstCudaLinkDevice *now = g_hash_table_lookup (found, name);

    if (!now || now->ours != 0 || now->version != *(guint64 *) value)
      g_hash_table_iter_remove (&iter); /* gone, or taken again */
  }

  g_hash_table_iter_init (&iter, found);
  while (g_hash_table_iter_next (&iter, &name, &value)) {
    GstCudaLinkDevice *now = value;
    GstCudaLinkDevice *before = g_hash_table_lookup (self->devices, name);

    if (before && before->ours == 1 && now->ours == 0
        && before->version == now->version) {
      GST_INFO_OBJECT (self, "producer '%s' died (its lock went without a "
          "shutdown)", (gchar *) name);
      g_hash_table_replace (self->dead, g_strdup (name),
          g_memdup2 (&now->version, sizeof (now->version)));
    }
    if (g_hash_table_contains (self->dead, name))
      g_hash_table_iter_remove (&iter);
  }
}

/* Posts what changed since the last look: devices removed, changed (new
 * format or producer) and added. */
static void
update (GstCudaLinkDeviceProvider * self)
{
  GstDeviceProvider *provider = GST_DEVICE_PROVIDER (self);
  GHashTable *found = scan ();
  GHashTableIter iter;
  gpointer name, device;

  drop_dead (self, found);

  g_hash_table_iter_init (&iter, self->devices);
  while (g_hash_table_iter_next (&iter, &name, &device)) {
    if (g_hash_table_contains (found, name))
      continue;
    GST_INFO_OBJECT (self, "producer '%s' gone", (gchar *) name);
    gst_device_provider_device_remove (provider, GST_DEVICE (device));
    g_hash_table_iter_remove (&iter);
  }

  g_hash_table_iter_init (&iter, found);
  while (g_hash_table_iter_next (&iter, &name, &device)) {
    GstCudaLinkDevice *now = GST_CUDA_LINK_DEVICE (device);
    GstCudaLinkDevice *before = g_hash_table_lookup (self->devices, name);

    if (before && g_strcmp0 (before->signature, now->signature) == 0)
      continue;
    if (before) {
      GST_INFO_OBJECT (self, "producer '%s' changed: %s -> %s",
          (gchar *) name, before->signature, now->signature);
      gst_device_provider_device_changed (provider, GST_DEVICE (now),
          GST_DEVICE (before));
    } else {
      GST_INFO_OBJECT (self, "producer '%s' appeared: %s", (gchar *) name,
          now->signature);
      gst_device_provider_device_add (provider, GST_DEVICE (now));
    }
    g_hash_table_replace (self->devices, g_strdup (name),
        gst_object_ref (now));
  }
  g_hash_table_unref (found);
}

static gpointer
poll_thread (gpointer data)
{
  GstCudaLinkDeviceProvider *self = data;
  gint64 until;

  g_mutex_lock (&self->lock);
  while (self->running) {
    until = g_get_monotonic_time () + POLL_INTERVAL;
    while (self->running && g_cond_wait_until (&self->cond, &self->lock,
            until)) {
      /* woken early: stop(), or spuriously */
    }
    if (!self->running)
      break;
    g_mutex_unlock (&self->lock);
    update (self);
    g_mutex_lock (&self->lock);
  }
  g_mutex_unlock (&self->lock);
  return NULL;
}

static gboolean
gst_cuda_link_device_provider_start (GstDeviceProvider * provider)
{
  GstCudaLinkDeviceProvider *self = GST_CUDA_LINK_DEVICE_PROVIDER (provider);
  GError *error = NULL;

  /* the first look before returning: a monitor lists right after start */
  self->devices = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      gst_object_unref);
  self->dead = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  update (self);

  g_mutex_lock (&self->lock);
  self->running = TRUE;
  self->thread = g_thread_try_new ("cudalink-devices", poll_thread, self,
      &error);
  if (!self->thread) {
    self->running = FALSE;
    g_mutex_unlock (&self->lock);
    GST_ERROR_OBJECT (self, "cannot start the poll thread: %s",
        error->message);
    g_clear_error (&error);
    g_clear_pointer (&self->devices, g_hash_table_unref);
    g_clear_pointer (&self->dead, g_hash_table_unref);
    return FALSE;
  }
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static void
gst_cuda_link_device_provider_stop (GstDeviceProvider * provider)
{
  GstCudaLinkDeviceProvider *self = GST_CUDA_LINK_DEVICE_PROVIDER (provider);
  GThread *thread;

  g_mutex_lock (&self->lock);
  self->running = FALSE;
  thread = self->thread;
  self->thread = NULL;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (thread)
    g_thread_join (thread);
  /* the base class drops the devices it holds after this */
  g_clear_pointer (&self->devices, g_hash_table_unref);
  g_clear_pointer (&self->dead, g_hash_table_unref);
}

static void
gst_cuda_link_device_provider_finalize (GObject * object)
{
  GstCudaLinkDeviceProvider *self = GST_CUDA_LINK_DEVICE_PROVIDER (object);

  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gst_cuda_link_device_provider_parent_class)->finalize
      (object);
}

static void
gst_cuda_link_device_provider_init (GstCudaLinkDeviceProvider * self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
}

static void
gst_cuda_link_device_provider_class_init (GstCudaLinkDeviceProviderClass *
    klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstDeviceProviderClass *provider_class = GST_DEVICE_PROVIDER_CLASS (klass);

  gobject_class->finalize = gst_cuda_link_device_provider_finalize;
  provider_class->probe =
      GST_DEBUG_FUNCPTR (gst_cuda_link_device_provider_probe);
  provider_class->start =
      GST_DEBUG_FUNCPTR (gst_cuda_link_device_provider_start);
  provider_class->stop = GST_DEBUG_FUNCPTR (gst_cuda_link_device_provider_stop);

  gst_device_provider_class_set_static_metadata (provider_class,
      "cuda-link producer provider", "Source/Video",
      "Lists the cuda-link producers on this machine (TouchDesigner "
      "Senders, cuda_link Exporters, cudalinksink) as video sources",
      "cudalink");

  GST_DEBUG_CATEGORY_INIT (gst_cuda_link_device_provider_debug,
      "cudalinkdeviceprovider", 0, "cuda-link device provider");
}
