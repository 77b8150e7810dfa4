/* Shared by the GStreamer programs of the gpu suite (static inline: each
 * program uses what it needs). */
#ifndef CUDALINK_GPU_GST_UTIL_H
#define CUDALINK_GPU_GST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

/* Whether this GStreamer's cudaupload can output CUDA memory of format. */
static inline gboolean
cudaupload_supports(const gchar *format)
{
  GstElementFactory *f = gst_element_factory_find("cudaupload");
  gchar *s = g_strdup_printf("video/x-raw(memory:CUDAMemory),format=%s", format);
  GstCaps *want = gst_caps_from_string(s);
  gboolean ok = FALSE;

  for (const GList *l = f ? gst_element_factory_get_static_pad_templates(f) : NULL; l && !ok;
       l = l->next) {
    GstStaticPadTemplate *t = l->data;
    GstCaps *caps;

    if (t->direction != GST_PAD_SRC)
      continue;
    caps = gst_static_pad_template_get_caps(t);
    ok = gst_caps_can_intersect(caps, want);
    gst_caps_unref(caps);
  }
  gst_caps_unref(want);
  g_free(s);
  if (f)
    gst_object_unref(f);
  return ok;
}

/* A guint64 field of an element's stats. A missing field (a renamed
 * statistic, or no stats at all) is a broken test, not a zero that a
 * "missed == 0" check would pass on: it ends the program. */
static inline guint64
stat_u64(const GstStructure *s, const char *field)
{
  guint64 v = 0;
  if (!s || !gst_structure_get_uint64(s, field, &v)) {
    fprintf(stderr, "  the stats (%s) have no guint64 field '%s'\n", s ? "given" : "none",
            field);
    exit(1);
  }
  return v;
}

/* A duration field (-us, a gdouble) of an element's stats; missing ends the
 * program like stat_u64(). */
static inline gdouble
stat_us(const GstStructure *s, const char *field)
{
  gdouble v = 0;
  if (!s || !gst_structure_get_double(s, field, &v)) {
    fprintf(stderr, "  the stats (%s) have no gdouble field '%s'\n", s ? "given" : "none",
            field);
    exit(1);
  }
  return v;
}

/* The tests named on the command line from argv[first] on, or all when
 * none is named. */
static inline gboolean
test_wanted(int argc, char **argv, int first, const char *name)
{
  if (argc <= first)
    return TRUE;
  for (int i = first; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return TRUE;
  return FALSE;
}

/* RUN_TEST (testutil.h) when wanted, with the time it took */
#define RUN_WANTED(first, fn)                                                     \
  do {                                                                            \
    if (test_wanted(argc, argv, first, #fn)) {                                    \
      gint64 t0_ = g_get_monotonic_time();                                        \
      RUN_TEST(fn);                                                               \
      printf("     (%.1f s)\n", (g_get_monotonic_time() - t0_) / 1e6);            \
    }                                                                             \
  } while (0)

#endif
