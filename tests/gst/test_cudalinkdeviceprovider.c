/* cudalinkdeviceprovider without a GPU: the producers' segments are header
 * bytes this test writes into /dev/shm itself (a lock held like our
 * producer's, or none like a foreign one), since the provider only reads
 * headers. Checks the devices a probe lists (class, display name, caps as
 * cudalinksrc would offer them, properties), the cudalinksrc each creates
 * or reconfigures, and the monitor's device-added, -changed and -removed
 * messages as producers come, change format, shut down, die and go.
 *
 * Runs with CUDALINK_CUDA_LIBRARY=/nonexistent: listing needs no driver.
 * Other tests write segments into /dev/shm at the same time: only names
 * this test made are looked at.
 */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <gst/cuda/gstcudamemory.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cudalink.h"
#include "srcformat.h"

#define WAIT_MESSAGE (5 * GST_SECOND)

static const cudalink_format fmt_rgba8 = { 64, 32, 4, CUDALINK_DTYPE_UINT8, 0 };
static const cudalink_format fmt_bgra8 =
    { 48, 16, 4, CUDALINK_DTYPE_UINT8, CUDALINK_FLAG_BGRA };
static const cudalink_format fmt_f32 = { 20, 10, 1, CUDALINK_DTYPE_FLOAT32, 0 };
static const cudalink_format fmt_small = { 32, 16, 4, CUDALINK_DTYPE_UINT8, 0 };

/* ------------------------------------------------------------------------ */
/* segments                                                                 */
/* ------------------------------------------------------------------------ */

static guint name_counter;

static gchar *
unique_name (const gchar * what)
{
  return g_strdup_printf ("cudalink-devtest-%d-%u-%s", (gint) getpid (),
      name_counter++, what);
}

static gchar *
shm_path (const gchar * name)
{
  return g_strdup_printf ("/dev/shm/%s", name);
}

/* A header as a producer writes it: 3 slots, @fmt, published just now
 * (or @age seconds ago). */
static void
write_segment (const gchar * name, const cudalink_format * fmt, gdouble age,
    guint8 shutdown)
{
  guint8 buf[CUDALINK_MAX_LAYOUT_SIZE];
  cudalink_header h;
  gchar *path = shm_path (name);
  gsize len = cudalink_layout_size (3);
  int fd;

  memset (&h, 0, sizeof (h));
  h.version = 4;
  h.num_slots = 3;
  h.write_idx = 10;
  memset (h.mem_handle, 0xa5, sizeof (h.mem_handle));
  memset (h.event_handle, 0x5a, sizeof (h.event_handle));
  h.shutdown_flag = shutdown;
  h.format = *fmt;
  h.timestamp = cudalink_now () - age;
  fail_unless_equals_int (cudalink_header_write (&h, buf, sizeof (buf)),
      CUDALINK_OK);
  /* in place, not O_TRUNC: a lock held on the file stays */
  fd = open (path, O_CREAT | O_WRONLY, 0600);
  fail_unless (fd >= 0, "cannot create %s: %s", path, g_strerror (errno));
  fail_unless_equals_int ((gssize) pwrite (fd, buf, len, 0), (gssize) len);
  close (fd);
  g_free (path);
}

/* Holds the producer lock on @name as our producer does (an OFD write
 * lock); close the descriptor to let go. */
static int
hold_lock (const gchar * name)
{
  gchar *path = shm_path (name);
  struct flock fl;
  int fd = open (path, O_RDWR);

  fail_unless (fd >= 0);
  memset (&fl, 0, sizeof (fl));
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fail_unless_equals_int (fcntl (fd, F_OFD_SETLK, &fl), 0);
  g_free (path);
  return fd;
}

static void
set_shutdown_flag (const gchar * name)
{
  gchar *path = shm_path (name);
  cudalink_layout l = cudalink_layout_for (3);
  guint8 one = 1;
  int fd = open (path, O_WRONLY);

  fail_unless (fd >= 0);
  fail_unless_equals_int ((gssize) pwrite (fd, &one, 1, l.shutdown_flag), 1);
  close (fd);
  g_free (path);
}

static void
set_num_slots_11 (const gchar * name)
{
  gchar *path = shm_path (name);
  cudalink_layout l = cudalink_layout_for (3);
  guint8 eleven[4] = { 11, 0, 0, 0 };
  int fd = open (path, O_WRONLY);

  fail_unless (fd >= 0);
  fail_unless_equals_int ((gssize) pwrite (fd, eleven, 4, l.num_slots), 4);
  close (fd);
  g_free (path);
}

static void
remove_segment (const gchar * name)
{
  gchar *path = shm_path (name);
  unlink (path);
  g_free (path);
}

/* ------------------------------------------------------------------------ */
/* devices                                                                  */
/* ------------------------------------------------------------------------ */

static gchar *
device_ipc_name (GstDevice * device)
{
  GstStructure *props = gst_device_get_properties (device);
  gchar *name = NULL;

  if (props) {
    name = g_strdup (gst_structure_get_string (props, "cudalink.ipc-name"));
    gst_structure_free (props);
  }
  return name;
}

/* The device for segment @name in @devices (not a new reference). */
static GstDevice *
find_device (GList * devices, const gchar * name)
{
  for (GList * l = devices; l; l = l->next) {
    gchar *n = device_ipc_name (l->data);
    gboolean same = g_strcmp0 (n, name) == 0;

    g_free (n);
    if (same)
      return l->data;
  }
  return NULL;
}

/* The caps cudalinksrc would offer for @fmt (channel-order auto, which
 * follows the BGRA flag, float-format rgba), CUDA memory first. */
static GstCaps *
expected_caps (const cudalink_format * fmt)
{
  GstCudaLinkSrcPlan plan;

  fail_unless (gst_cuda_link_src_plan (fmt, GST_CUDA_LINK_CHANNEL_ORDER_AUTO,
          GST_CUDA_LINK_FLOAT_FORMAT_RGBA, &plan, NULL));
  return gst_cuda_link_src_plan_caps (&plan, fmt->width, fmt->height, TRUE);
}

static void
check_device (GstDevice * device, const gchar * name,
    const cudalink_format * fmt, const gchar * producer,
    const gchar * video_format)
{
  GstCaps *caps = gst_device_get_caps (device);
  GstCaps *want = expected_caps (fmt);
  GstStructure *props = gst_device_get_properties (device);
  gchar *display = gst_device_get_display_name (device);
  gchar *klass = gst_device_get_device_class (device);
  gchar *want_display = g_strdup_printf ("cuda-link: %s", name);
  guint width = 0;

  fail_unless_equals_string (klass, "Video/Source");
  fail_unless (gst_device_has_classes (device, "Video/Source"));
  fail_unless_equals_string (display, want_display);
  fail_unless (gst_caps_is_equal (caps, want), "caps %" GST_PTR_FORMAT
      ", expected %" GST_PTR_FORMAT, caps, want);
  /* CUDA memory first, then system memory, both in the format meant */
  fail_unless_equals_int (gst_caps_get_size (caps), 2);
  fail_unless (gst_caps_features_contains (gst_caps_get_features (caps, 0),
          GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY));
  fail_unless_equals_string (gst_structure_get_string (gst_caps_get_structure
          (caps, 1), "format"), video_format);

  fail_unless_equals_string (gst_structure_get_string (props, "device.api"),
      "cuda-link");
  fail_unless_equals_string (gst_structure_get_string (props,
          "cudalink.producer"), producer);
  fail_unless_equals_string (gst_structure_get_string (props,
          "cudalink.dtype"), cudalink_dtype_name (fmt->dtype));
  fail_unless (gst_structure_get_uint (props, "cudalink.width", &width));
  fail_unless_equals_int (width, fmt->width);

  g_free (want_display);
  g_free (klass);
  g_free (display);
  gst_structure_free (props);
  gst_caps_unref (want);
  gst_caps_unref (caps);
}

static gint
channel_order (GstElement * elem)
{
  gint order = -1;
  g_object_get (elem, "channel-order", &order, NULL);
  return order;
}

static gchar *
ipc_name_of (GstElement * elem)
{
  gchar *name = NULL;
  g_object_get (elem, "ipc-name", &name, NULL);
  return name;
}

/* ------------------------------------------------------------------------ */
/* tests                                                                    */
/* ------------------------------------------------------------------------ */

GST_START_TEST (test_registered)
{
  GstDeviceProviderFactory *factory =
      gst_device_provider_factory_find ("cudalinkdeviceprovider");

  fail_unless (factory != NULL);
  fail_unless_equals_int (gst_plugin_feature_get_rank (GST_PLUGIN_FEATURE
          (factory)), GST_RANK_PRIMARY);
  fail_unless (gst_device_provider_factory_has_classes (factory,
          "Video/Source"));
  gst_object_unref (factory);
}

GST_END_TEST;

/* A probe lists the producers that are there, with the caps cudalinksrc
 * would offer, and not the segments a consumer gets nothing from. */
GST_START_TEST (test_probe)
{
  gchar *ours = unique_name ("ours"), *bgra = unique_name ("bgra");
  gchar *f32 = unique_name ("f32"), *shut = unique_name ("shut");
  gchar *bad = unique_name ("bad"), *stale = unique_name ("stale");
  gboolean test_stale = cudalink_now () > 120.0;
  GstDeviceProvider *provider;
  GList *devices;
  GstDevice *dev;
  int lock;

  write_segment (ours, &fmt_rgba8, 60.0, 0);    /* old frame, lock held: idle */
  lock = hold_lock (ours);
  write_segment (bgra, &fmt_bgra8, 0.0, 0);     /* foreign, live */
  write_segment (f32, &fmt_f32, 0.0, 0);
  write_segment (shut, &fmt_rgba8, 0.0, 1);
  write_segment (bad, &fmt_rgba8, 0.0, 0);
  set_num_slots_11 (bad);
  if (test_stale)
    write_segment (stale, &fmt_rgba8, 60.0, 0); /* foreign, silent for 60 s */

  provider = gst_device_provider_factory_get_by_name ("cudalinkdeviceprovider");
  fail_unless (provider != NULL);
  devices = gst_device_provider_get_devices (provider);

  dev = find_device (devices, ours);
  fail_unless (dev != NULL, "no device for %s", ours);
  check_device (dev, ours, &fmt_rgba8, "ours", "RGBA");
  dev = find_device (devices, bgra);
  fail_unless (dev != NULL, "no device for %s", bgra);
  check_device (dev, bgra, &fmt_bgra8, "foreign", "BGRA");
  dev = find_device (devices, f32);
  fail_unless (dev != NULL, "no device for %s", f32);
  check_device (dev, f32, &fmt_f32, "foreign", "RGBA");     /* converted */
  fail_unless (find_device (devices, shut) == NULL);
  fail_unless (find_device (devices, bad) == NULL);
  if (test_stale)
    fail_unless (find_device (devices, stale) == NULL);

  g_list_free_full (devices, gst_object_unref);
  gst_object_unref (provider);
  close (lock);
  remove_segment (ours);
  remove_segment (bgra);
  remove_segment (f32);
  remove_segment (shut);
  remove_segment (bad);
  remove_segment (stale);
  g_free (ours);
  g_free (bgra);
  g_free (f32);
  g_free (shut);
  g_free (bad);
  g_free (stale);
}

GST_END_TEST;

/* Each device makes a cudalinksrc for its producer, channel-order bgra for
 * a BGRA-flagged one; reconfiguring points an existing one elsewhere. */
GST_START_TEST (test_create_element)
{
  gchar *rgba = unique_name ("rgba"), *bgra = unique_name ("bgra");
  GstDeviceProvider *provider;
  GstDevice *dev_rgba, *dev_bgra;
  GstElement *elem, *other;
  GList *devices;
  gchar *name;

  write_segment (rgba, &fmt_rgba8, 0.0, 0);
  write_segment (bgra, &fmt_bgra8, 0.0, 0);
  provider = gst_device_provider_factory_get_by_name ("cudalinkdeviceprovider");
  devices = gst_device_provider_get_devices (provider);
  dev_rgba = find_device (devices, rgba);
  dev_bgra = find_device (devices, bgra);
  fail_unless (dev_rgba != NULL && dev_bgra != NULL);

  elem = gst_device_create_element (dev_rgba, "fromdevice");
  fail_unless (elem != NULL);
  fail_unless_equals_string (GST_OBJECT_NAME (gst_element_get_factory (elem)),
      "cudalinksrc");
  fail_unless_equals_string (GST_OBJECT_NAME (elem), "fromdevice");
  name = ipc_name_of (elem);
  fail_unless_equals_string (name, rgba);
  g_free (name);
  fail_unless_equals_int (channel_order (elem),
      GST_CUDA_LINK_CHANNEL_ORDER_AUTO);

  other = gst_device_create_element (dev_bgra, NULL);
  fail_unless (other != NULL);
  name = ipc_name_of (other);
  fail_unless_equals_string (name, bgra);
  g_free (name);
  fail_unless_equals_int (channel_order (other),
      GST_CUDA_LINK_CHANNEL_ORDER_BGRA);
  gst_object_unref (other);

  /* the rgba element now reads the bgra producer, and back */
  fail_unless (gst_device_reconfigure_element (dev_bgra, elem));
  name = ipc_name_of (elem);
  fail_unless_equals_string (name, bgra);
  g_free (name);
  fail_unless_equals_int (channel_order (elem),
      GST_CUDA_LINK_CHANNEL_ORDER_BGRA);
  fail_unless (gst_device_reconfigure_element (dev_rgba, elem));
  fail_unless_equals_int (channel_order (elem),
      GST_CUDA_LINK_CHANNEL_ORDER_AUTO);
  gst_object_unref (elem);

  /* only a cudalinksrc can be pointed at a producer */
  other = gst_bin_new (NULL);
  fail_if (gst_device_reconfigure_element (dev_rgba, other));
  gst_object_unref (other);

  g_list_free_full (devices, gst_object_unref);
  gst_object_unref (provider);
  remove_segment (rgba);
  remove_segment (bgra);
  g_free (rgba);
  g_free (bgra);
}

GST_END_TEST;

/* The next device message of @type about segment @name on @bus within
 * WAIT_MESSAGE; the device (a new reference), or NULL. For a change,
 * @old gets the device it replaces. */
static GstDevice *
wait_device_message (GstBus * bus, GstMessageType type, const gchar * name,
    GstDevice ** old)
{
  GstClockTime deadline = gst_util_get_timestamp () + WAIT_MESSAGE;

  for (;;) {
    GstClockTime now = gst_util_get_timestamp ();
    GstMessage *msg;
    GstDevice *device = NULL, *changed = NULL;
    gchar *n;

    if (now >= deadline)
      return NULL;
    msg = gst_bus_timed_pop_filtered (bus, deadline - now,
        GST_MESSAGE_DEVICE_ADDED | GST_MESSAGE_DEVICE_REMOVED |
        GST_MESSAGE_DEVICE_CHANGED);
    if (!msg)
      return NULL;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_DEVICE_ADDED)
      gst_message_parse_device_added (msg, &device);
    else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_DEVICE_REMOVED)
      gst_message_parse_device_removed (msg, &device);
    else
      gst_message_parse_device_changed (msg, &device, &changed);
    n = device_ipc_name (device);
    if (GST_MESSAGE_TYPE (msg) == type && g_strcmp0 (n, name) == 0) {
      g_free (n);
      gst_message_unref (msg);
      if (old)
        *old = changed;
      else if (changed)
        gst_object_unref (changed);
      return device;
    }
    GST_INFO ("skipping %s about '%s'", GST_MESSAGE_TYPE_NAME (msg), n);
    g_free (n);
    gst_object_unref (device);
    if (changed)
      gst_object_unref (changed);
    gst_message_unref (msg);
  }
}

/* A monitor sees producers come, change format, shut down and go. */
GST_START_TEST (test_monitor)
{
  gchar *n_first = unique_name ("first"), *n_second = unique_name ("second");
  gchar *n_third = unique_name ("third"), *n_fourth = unique_name ("fourth");
  GstDeviceMonitor *monitor = gst_device_monitor_new ();
  GstDevice *dev, *old = NULL;
  GstBus *bus = gst_device_monitor_get_bus (monitor);
  GstCaps *caps;
  GList *devices;
  GstStructure *s;
  gint width = 0;
  int lock, lock4;

  write_segment (n_first, &fmt_rgba8, 0.0, 0);
  lock = hold_lock (n_first);
  fail_unless (gst_device_monitor_add_filter (monitor, "Video/Source",
          NULL) > 0);
  fail_unless (gst_device_monitor_start (monitor));

  /* there from the start */
  devices = gst_device_monitor_get_devices (monitor);
  fail_unless (find_device (devices, n_first) != NULL);
  g_list_free_full (devices, gst_object_unref);

  /* a producer appears */
  write_segment (n_second, &fmt_bgra8, 0.0, 0);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_ADDED, n_second, NULL);
  fail_unless (dev != NULL, "no device-added for %s", n_second);
  check_device (dev, n_second, &fmt_bgra8, "foreign", "BGRA");
  gst_object_unref (dev);

  /* it changes its frame size: the device changes with it */
  write_segment (n_second, &fmt_small, 0.0, 0);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_CHANGED, n_second, &old);
  fail_unless (dev != NULL, "no device-changed for %s", n_second);
  fail_unless (old != NULL);
  caps = gst_device_get_caps (dev);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_get_int (s, "width", &width));
  fail_unless_equals_int (width, fmt_small.width);
  fail_unless_equals_string (gst_structure_get_string (s, "format"), "RGBA");
  gst_caps_unref (caps);
  gst_object_unref (dev);
  gst_object_unref (old);

  /* the first one shuts down (its flag set, the segment still there) */
  set_shutdown_flag (n_first);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_REMOVED, n_first, NULL);
  fail_unless (dev != NULL, "no device-removed for %s", n_first);
  gst_object_unref (dev);

  /* the second one's segment goes */
  remove_segment (n_second);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_REMOVED, n_second, NULL);
  fail_unless (dev != NULL, "no device-removed for %s", n_second);
  gst_object_unref (dev);

  /* one whose header turns corrupt goes too */
  write_segment (n_third, &fmt_rgba8, 0.0, 0);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_ADDED, n_third, NULL);
  fail_unless (dev != NULL);
  gst_object_unref (dev);
  set_num_slots_11 (n_third);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_REMOVED, n_third, NULL);
  fail_unless (dev != NULL, "no device-removed for %s", n_third);
  gst_object_unref (dev);

  /* a producer of ours dies (its lock goes, no shutdown flag): removed at
   * the next look, not 10 s later when its segment would turn stale */
  write_segment (n_fourth, &fmt_rgba8, 0.0, 0);
  lock4 = hold_lock (n_fourth);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_ADDED, n_fourth, NULL);
  fail_unless (dev != NULL);
  gst_object_unref (dev);
  close (lock4);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_REMOVED, n_fourth, NULL);
  fail_unless (dev != NULL, "no device-removed for %s", n_fourth);
  gst_object_unref (dev);
  /* ... and it comes back when a producer takes the segment again */
  lock4 = hold_lock (n_fourth);
  dev = wait_device_message (bus, GST_MESSAGE_DEVICE_ADDED, n_fourth, NULL);
  fail_unless (dev != NULL, "no device-added for %s taken again", n_fourth);
  gst_object_unref (dev);
  close (lock4);

  devices = gst_device_monitor_get_devices (monitor);
  fail_unless (find_device (devices, n_first) == NULL);
  fail_unless (find_device (devices, n_second) == NULL);
  fail_unless (find_device (devices, n_third) == NULL);
  g_list_free_full (devices, gst_object_unref);

  gst_device_monitor_stop (monitor);
  gst_object_unref (bus);
  gst_object_unref (monitor);
  close (lock);
  remove_segment (n_first);
  remove_segment (n_third);
  remove_segment (n_fourth);
  g_free (n_fourth);
  g_free (n_first);
  g_free (n_second);
  g_free (n_third);
}

GST_END_TEST;

/* Started and stopped again and again: the poll thread comes and goes. */
GST_START_TEST (test_start_stop)
{
  GstDeviceProvider *provider =
      gst_device_provider_factory_get_by_name ("cudalinkdeviceprovider");

  for (int i = 0; i < 5; i++) {
    fail_unless (gst_device_provider_start (provider));
    fail_unless (gst_device_provider_is_started (provider));
    gst_device_provider_stop (provider);
  }
  fail_if (gst_device_provider_is_started (provider));
  gst_object_unref (provider);
}

GST_END_TEST;

static Suite *
cudalinkdeviceprovider_suite (void)
{
  Suite *s = suite_create ("cudalinkdeviceprovider");
  TCase *tc = tcase_create ("provider");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_registered);
  tcase_add_test (tc, test_probe);
  tcase_add_test (tc, test_create_element);
  tcase_add_test (tc, test_monitor);
  tcase_add_test (tc, test_start_stop);
  return s;
}

int
main (int argc, char **argv)
{
  /* before anything could load the driver: listing needs none */
  g_setenv ("CUDALINK_CUDA_LIBRARY", "/nonexistent", TRUE);
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (cudalinkdeviceprovider_suite (),
      "cudalinkdeviceprovider", __FILE__);
}
