#include <gst/check/gstcheck.h>
static Suite *placeholder_suite (void) { return suite_create ("placeholder"); }
GST_CHECK_MAIN (placeholder);
