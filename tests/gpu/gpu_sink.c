/* GPU suite for cudalinksink: the element runs in this process
 * (gst_parse_launch), consumers run in other processes (sink_reader, built
 * on libcudalink's consumer, and py/sink_consumer.py, written from the
 * protocol alone with cupy), every frame is compared on the host with the
 * same videotestsrc frames rendered to system memory.
 *
 *   gpu_sink PATH/TO/sink_reader [test-name ...]
 *
 * Frames are gated: a pad probe on the sink's pad holds every buffer, caps
 * and EOS until every consumer has returned the previous frame, so no
 * frame is missed or overwritten and each comparison is deterministic.
 *
 * Exits non-zero when there is no GPU: this suite never skips. Prints what
 * it measured (frames checked, max error, timings) as it goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "cuda_table.h"
#include "cudalink.h"
#include "cuda_check.h"
#include "gpu_gst_util.h"
#include "sink_reader.h"

static const char *reader_path;
static guint name_counter;
static gboolean test_failed;
static guint frames_checked;

#define CHECK(cond, ...)                                                        \
  G_STMT_START {                                                                \
    if (!(cond)) {                                                              \
      fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
      test_failed = TRUE;                                                       \
    }                                                                           \
  } G_STMT_END

static gchar *
unique_name(void)
{
  return g_strdup_printf("cltest-sink-%d-%u", (int)getpid(), name_counter++);
}

static gboolean
segment_exists(const gchar *name)
{
  gchar *path = g_strdup_printf("/dev/shm/%s", name);
  gboolean ret = g_file_test(path, G_FILE_TEST_EXISTS);
  g_free(path);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* formats and references                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
  const gchar *name;   /* caps format */
  const gchar *layout; /* channel letters in memory order */
  gint bytes;          /* per component */
} Fmt;

static const Fmt formats[] = {
  {"RGBA", "RGBA", 1}, {"RGBx", "RGBx", 1}, {"BGRA", "BGRA", 1},
  {"BGRx", "BGRx", 1}, {"RGB", "RGB", 1},   {"BGR", "BGR", 1},
  {"GRAY8", "Y", 1},   {"GRAY16_LE", "Y", 2}, {"RGBA64_LE", "RGBA", 2},
};

#define PATTERN "pattern=ball foreground-color=0xffe0a040 background-color=0xff2050c0"

typedef struct {
  gint width, height;
  guint n;
  gsize frame_size; /* packed */
  guint8 **frames;
} Ref;

static void
ref_free(Ref *r)
{
  for (guint i = 0; r->frames && i < r->n; i++)
    g_free(r->frames[i]);
  g_free(r->frames);
  g_free(r);
}

/* The frames videotestsrc renders for these caps, tightly packed. */
static Ref *
render_reference(const Fmt *f, gint w, gint h, guint n)
{
  gchar *launch = g_strdup_printf(
      "videotestsrc num-buffers=%u " PATTERN " ! video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1 ! appsink name=out sync=false",
      n, f->name, w, h);
  GstElement *p = gst_parse_launch(launch, NULL);
  GstElement *out;
  Ref *r = g_new0(Ref, 1);
  gsize row = (gsize)w * strlen(f->layout) * f->bytes;

  g_assert(p);
  out = gst_bin_get_by_name(GST_BIN(p), "out");
  r->width = w;
  r->height = h;
  r->frame_size = row * h;
  r->frames = g_new0(guint8 *, n);
  gst_element_set_state(p, GST_STATE_PLAYING);
  for (r->n = 0; r->n < n; r->n++) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(out), 10 * GST_SECOND);
    GstVideoInfo info;
    GstVideoFrame vf;

    g_assert(s);
    gst_video_info_from_caps(&info, gst_sample_get_caps(s));
    g_assert(gst_video_frame_map(&vf, &info, gst_sample_get_buffer(s), GST_MAP_READ));
    r->frames[r->n] = g_malloc(r->frame_size);
    for (gint y = 0; y < h; y++)
      memcpy(r->frames[r->n] + y * row,
             (guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&vf, 0) + y * GST_VIDEO_FRAME_PLANE_STRIDE(&vf, 0),
             row);
    gst_video_frame_unmap(&vf);
    gst_sample_unref(s);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(out);
  gst_object_unref(p);
  g_free(launch);
  return r;
}

/* ------------------------------------------------------------------------ */
/* what the sink must publish                                               */
/* ------------------------------------------------------------------------ */

enum { DT_U8, DT_U16, DT_I8, DT_I16, DT_F16, DT_BF16, DT_F32 }; /* cudalink_dtype */

typedef struct {
  const gchar *order;  /* "rgba" / "bgra" */
  const gchar *dtype;  /* output-dtype nick */
  gboolean flip;
  gboolean wait;
} Cfg;

static gint
expected_dtype(const Cfg *c, const Fmt *f)
{
  if (!strcmp(c->dtype, "auto"))
    return f->bytes == 1 ? DT_U8 : DT_U16;
  if (!strcmp(c->dtype, "uint8"))
    return DT_U8;
  if (!strcmp(c->dtype, "uint16"))
    return DT_U16;
  if (!strcmp(c->dtype, "float16"))
    return DT_F16;
  if (!strcmp(c->dtype, "bfloat16"))
    return DT_BF16;
  return DT_F32;
}

static gint
dt_size(gint dt)
{
  return dt == DT_U8 || dt == DT_I8 ? 1 : (dt == DT_F32 ? 4 : 2);
}

static gchar *
cfg_props(const Cfg *c)
{
  return g_strdup_printf("channel-order=%s output-dtype=%s video-direction=%s gpu-wait=%s", c->order,
                         c->dtype, c->flip ? "vert" : "identity", c->wait ? "sleep" : "none");
}

static gdouble
half_value(guint16 h)
{
  gint e = (h >> 10) & 0x1f, m = h & 0x3ff;
  gdouble v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
  if (e == 31)
    v = m ? NAN : INFINITY;
  return (h & 0x8000) ? -v : v;
}

typedef struct {
  gdouble max_err;      /* largest |got - want| of normalised float outputs */
  guint64 components;   /* components compared */
} Cmp;

/* Compares one published frame with the reference, pixel by pixel. */
static gboolean
check_frame(const Fmt *f, const Cfg *c, const guint8 *ref, gint w, gint h,
            const SinkReaderRecord *rec, const guint8 *data, Cmp *cmp, const gchar *what)
{
  gint in_comps = (gint)strlen(f->layout);
  gboolean gray = in_comps == 1;
  gint dt = expected_dtype(c, f);
  gboolean bgra = !gray && !strcmp(c->order, "bgra") && dt == DT_U8;
  guint comps = gray ? 1 : 4;
  gint osize = dt_size(dt);
  guint bad = 0;

  CHECK(rec->width == (guint)w && rec->height == (guint)h, "%s: %ux%u, want %dx%d", what,
        rec->width, rec->height, w, h);
  CHECK(rec->num_comps == comps, "%s: %u channels, want %u", what, rec->num_comps, comps);
  CHECK(rec->dtype == (guint)dt, "%s: dtype %u, want %d", what, rec->dtype, dt);
  CHECK(rec->flags == (bgra ? CUDALINK_FLAG_BGRA : 0u), "%s: flags %u", what, rec->flags);
  CHECK(rec->data_size == (guint)(w * h * comps * osize), "%s: data_size %u", what, rec->data_size);
  if (rec->width != (guint)w || rec->height != (guint)h || rec->num_comps != comps ||
      rec->dtype != (guint)dt)
    return FALSE;

  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      for (guint ch = 0; ch < comps; ch++) {
        gchar letter = gray ? 'Y' : (bgra ? "BGRA" : "RGBA")[ch];
        const gchar *pos = strchr(f->layout, letter);
        gint sy = c->flip ? h - 1 - y : y;
        const guint8 *in = pos ? ref + ((gsize)sy * w * in_comps + (gsize)x * in_comps +
                                        (pos - f->layout)) * f->bytes
                               : NULL;
        const guint8 *out = data + ((gsize)y * w * comps + (gsize)x * comps + ch) * osize;
        guint raw = in ? (f->bytes == 1 ? in[0] : (guint)(in[0] | in[1] << 8)) : 0;
        gdouble want = in ? raw / (f->bytes == 1 ? 255.0 : 65535.0) : 1.0;
        gboolean ok;
        guint16 u16;
        gfloat f32;

        switch (dt) {
          case DT_U8:
            if (!in)
              ok = out[0] == 255;
            else if (f->bytes == 1)
              ok = out[0] == raw; /* same dtype: bit exact */
            else
              ok = out[0] == (raw * 255 * 2 + 65535) / (2 * 65535);
            break;
          case DT_U16:
            memcpy(&u16, out, 2);
            if (!in)
              ok = u16 == 65535;
            else
              ok = u16 == (f->bytes == 2 ? raw : raw * 257);
            break;
          case DT_F16:
          case DT_BF16: {
            gdouble got, err, tol;
            memcpy(&u16, out, 2);
            if (dt == DT_F16) {
              got = half_value(u16);
              tol = want / 2048.0 + 1e-7;
            } else {
              guint32 bits = (guint32)u16 << 16;
              memcpy(&f32, &bits, 4);
              got = f32;
              tol = want / 256.0 + 1e-30;
            }
            err = fabs(got - want);
            cmp->max_err = MAX(cmp->max_err, err);
            ok = err <= tol;
            break;
          }
          default: {
            gdouble err;
            memcpy(&f32, out, 4);
            err = fabs(f32 - want);
            cmp->max_err = MAX(cmp->max_err, err);
            ok = err < 1e-6;
            break;
          }
        }
        cmp->components++;
        if (!ok && bad++ < 5)
          fprintf(stderr, "  %s: pixel (%d,%d) channel %c wrong (input %u)\n", what, x, y,
                  letter, raw);
      }
  CHECK(bad == 0, "%s: %u components wrong", what, bad);
  return bad == 0;
}

/* ------------------------------------------------------------------------ */
/* consumer processes                                                       */
/* ------------------------------------------------------------------------ */

typedef enum { PEER_READER, PEER_PYTHON } PeerKind;

typedef struct {
  PeerKind kind;
  GPid pid;
  int in_fd, out_fd;
  gboolean broken;
  GPtrArray *records; /* SinkReaderRecord* followed by data, or gchar* lines */
  GString *line_buf;
} Peer;

static gboolean
read_exact(int fd, void *buf, gsize len, int timeout_ms)
{
  guint8 *p = buf;
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

  while (len) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int left = (int)((deadline - g_get_monotonic_time()) / 1000);
    ssize_t n;

    if (left <= 0 || poll(&pfd, 1, left) <= 0)
      return FALSE;
    n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    p += n;
    len -= (gsize)n;
  }
  return TRUE;
}

static Peer *
peer_spawn(PeerKind kind, gchar **argv)
{
  Peer *p = g_new0(Peer, 1);
  GError *err = NULL;

  p->kind = kind;
  p->records = g_ptr_array_new_with_free_func(g_free);
  p->line_buf = g_string_new(NULL);
  if (!g_spawn_async_with_pipes(NULL, argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, NULL, NULL,
                                &p->pid, &p->in_fd, &p->out_fd, NULL, &err)) {
    fprintf(stderr, "  cannot start %s: %s\n", argv[0], err->message);
    g_error_free(err);
    p->broken = TRUE;
    p->in_fd = p->out_fd = -1;
  }
  return p;
}

static Peer *
reader_spawn(void)
{
  gchar *argv[] = {(gchar *)reader_path, NULL};
  return peer_spawn(PEER_READER, argv);
}

static void
peer_free(Peer *p)
{
  int status;

  if (!p)
    return;
  if (p->in_fd >= 0) {
    if (p->kind == PEER_READER && !p->broken && write(p->in_fd, "quit\n", 5) < 0)
      p->broken = TRUE;
    close(p->in_fd);
  }
  if (p->pid) {
    if (p->broken)
      kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    g_spawn_close_pid(p->pid);
  }
  if (p->out_fd >= 0)
    close(p->out_fd);
  g_ptr_array_free(p->records, TRUE);
  g_string_free(p->line_buf, TRUE);
  g_free(p);
}

/* Python's exit status (after its last line). */
static int
peer_wait_exit(Peer *p)
{
  int status = -1;
  close(p->in_fd);
  p->in_fd = -1;
  waitpid(p->pid, &status, 0);
  g_spawn_close_pid(p->pid);
  p->pid = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Reads one frame (reader) or one line (python) from a peer. */
static gboolean
peer_read_one(Peer *p)
{
  if (p->broken)
    return FALSE;
  if (p->kind == PEER_READER) {
    SinkReaderRecord rec;
    guint8 *item;

    if (!read_exact(p->out_fd, &rec, sizeof rec, 30000) || rec.magic != SINK_READER_MAGIC) {
      fprintf(stderr, "  reader: no frame record (timeout or garbage)\n");
      p->broken = TRUE;
      return FALSE;
    }
    if (rec.status != 0) {
      fprintf(stderr, "  reader failed: %s (%s)\n", rec.message, cudalink_status_name(rec.status));
      p->broken = TRUE;
      return FALSE;
    }
    item = g_malloc(sizeof rec + rec.data_size);
    memcpy(item, &rec, sizeof rec);
    if (!read_exact(p->out_fd, item + sizeof rec, rec.data_size, 30000)) {
      g_free(item);
      p->broken = TRUE;
      return FALSE;
    }
    g_ptr_array_add(p->records, item);
    return TRUE;
  }
  for (;;) {
    gchar c;
    if (!read_exact(p->out_fd, &c, 1, 30000)) {
      p->broken = TRUE;
      return FALSE;
    }
    if (c == '\n')
      break;
    g_string_append_c(p->line_buf, c);
  }
  printf("    python: %s\n", p->line_buf->str);
  if (!g_str_has_prefix(p->line_buf->str, "frame ")) {
    p->broken = TRUE;
    g_ptr_array_add(p->records, g_string_free(g_string_new(p->line_buf->str), FALSE));
    g_string_truncate(p->line_buf, 0);
    return FALSE;
  }
  g_ptr_array_add(p->records, g_strdup(p->line_buf->str));
  g_string_truncate(p->line_buf, 0);
  return TRUE;
}

static gboolean
reader_start(Peer *p, const gchar *name, guint count)
{
  gchar *cmd = g_strdup_printf("read %s %u\n", name, count);
  gboolean ok = !p->broken && write(p->in_fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd);
  g_ptr_array_set_size(p->records, 0);
  g_free(cmd);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* gated pipeline runs                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
  Peer **peers;
  guint n_peers;
  guint passed; /* buffers let through to render */
  guint acked;  /* frames every peer has returned */
} Gate;

static void
gate_collect(Gate *g)
{
  while (g->acked < g->passed) {
    for (guint i = 0; i < g->n_peers; i++)
      peer_read_one(g->peers[i]);
    g->acked++;
  }
}

static GstPadProbeReturn
gate_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Gate *g = data;

  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    gate_collect(g);
    g->passed++;
  } else if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEventType t = GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info));
    if (t == GST_EVENT_CAPS || t == GST_EVENT_EOS)
      gate_collect(g);
  }
  return GST_PAD_PROBE_OK;
}

typedef struct {
  GstStructure *stats;   /* the sink's stats at EOS */
  gchar *error;          /* first error message, with debug text */
  GPtrArray *warnings;   /* warning messages */
  gboolean eos;
  gboolean gone_at_eos;  /* segment unlinked when EOS reached the bus */
  gboolean gone_at_null; /* and after NULL */
} RunResult;

static void
run_result_clear(RunResult *r)
{
  if (r->stats)
    gst_structure_free(r->stats);
  g_free(r->error);
  if (r->warnings)
    g_ptr_array_free(r->warnings, TRUE);
  memset(r, 0, sizeof *r);
}

/* Runs a pipeline whose sink is "cudalinksink name=sink", gating frames on
 * @peers, until EOS or error; @appsrc_feed (may be NULL) pushes data. */
typedef void (*FeedFunc)(GstElement *pipeline, gpointer data);

static void
run_pipeline(const gchar *launch, const gchar *name, Peer **peers, guint n_peers, FeedFunc feed,
             gpointer feed_data, RunResult *res)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch(launch, &err);
  GstElement *sink;
  GstPad *pad;
  GstBus *bus;
  Gate gate = {peers, n_peers, 0, 0};
  gint64 deadline = g_get_monotonic_time() + 120 * G_TIME_SPAN_SECOND;

  memset(res, 0, sizeof *res);
  res->warnings = g_ptr_array_new_with_free_func(g_free);
  if (!p || err) {
    res->error = g_strdup_printf("parse: %s", err ? err->message : "?");
    g_clear_error(&err);
    if (p)
      gst_object_unref(p);
    return;
  }
  sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                    gate_probe, &gate, NULL);
  bus = gst_element_get_bus(p);

  gst_element_set_state(p, GST_STATE_PLAYING);
  if (feed)
    feed(p, feed_data);

  while (!res->eos && !res->error) {
    GstMessage *m = gst_bus_timed_pop_filtered(
        bus, 1 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING);
    if (!m) {
      if (g_get_monotonic_time() > deadline) {
        res->error = g_strdup("timeout: no EOS after 120 s");
        break;
      }
      continue;
    }
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
      res->eos = TRUE;
      res->gone_at_eos = !segment_exists(name);
      g_object_get(sink, "stats", &res->stats, NULL);
    } else {
      GError *e = NULL;
      gchar *dbg = NULL;
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        gst_message_parse_error(m, &e, &dbg);
        res->error = g_strdup_printf("%s (%s)", e->message, dbg ? dbg : "");
      } else {
        gst_message_parse_warning(m, &e, &dbg);
        g_ptr_array_add(res->warnings, g_strdup(e->message));
      }
      g_clear_error(&e);
      g_free(dbg);
    }
    gst_message_unref(m);
  }

  gst_element_set_state(p, GST_STATE_NULL);
  res->gone_at_null = !segment_exists(name);
  if (!res->stats)
    g_object_get(sink, "stats", &res->stats, NULL);
  gst_object_unref(bus);
  gst_object_unref(pad);
  gst_object_unref(sink);
  gst_object_unref(p);
}

/* ------------------------------------------------------------------------ */
/* tests                                                                    */
/* ------------------------------------------------------------------------ */

static Peer *reader_a, *reader_b;

static void
ensure_readers(void)
{
  if (reader_a && reader_a->broken) {
    peer_free(reader_a);
    reader_a = NULL;
  }
  if (reader_b && reader_b->broken) {
    peer_free(reader_b);
    reader_b = NULL;
  }
  if (!reader_a)
    reader_a = reader_spawn();
  if (!reader_b)
    reader_b = reader_spawn();
}

/* After a run: a reader that did not return all its frames is in an
 * unknown state; replace it. */
static void
retire_if_short(Peer **p, guint want)
{
  if (*p && (*p)->records->len != want) {
    (*p)->broken = TRUE;
    peer_free(*p);
    *p = NULL;
  }
}


/* One format, one memory kind, one configuration, N frames, reader_a. */
static gboolean
run_and_check(const Fmt *f, gboolean cuda, const Cfg *c, gint w, gint h, guint n,
              const gchar *expect_path_prefix, RunResult *res_out)
{
  gchar *name = unique_name();
  gchar *props = cfg_props(c);
  gchar *launch = g_strdup_printf(
      "videotestsrc num-buffers=%u " PATTERN " ! video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1 ! %s cudalinksink name=sink ipc-name=%s sync=false %s",
      n, f->name, w, h, cuda ? "cudaupload !" : "", name, props);
  gchar *what;
  Ref *ref = render_reference(f, w, h, n);
  RunResult res;
  Cmp cmp = {0, 0};
  Peer *peers[1];
  gboolean ok = TRUE;
  guint64 published = 0;

  ensure_readers();
  peers[0] = reader_a;
  reader_start(reader_a, name, n);
  run_pipeline(launch, name, peers, 1, NULL, NULL, &res);

  what = g_strdup_printf("%s %s %s", f->name, cuda ? "CUDA" : "system", props);
  CHECK(res.error == NULL, "%s: %s", what, res.error);
  CHECK(res.eos, "%s: no EOS", what);
  CHECK(res.gone_at_eos, "%s: segment still there at EOS", what);
  CHECK(res.gone_at_null, "%s: segment still there after NULL", what);
  CHECK(reader_a->records->len == n, "%s: %u of %u frames read", what, reader_a->records->len, n);
  for (guint i = 0; i < reader_a->records->len && i < n; i++) {
    const SinkReaderRecord *rec = g_ptr_array_index(reader_a->records, i);
    gchar *fw = g_strdup_printf("%s frame %u", what, i);
    ok = check_frame(f, c, ref->frames[i], w, h, rec, (const guint8 *)(rec + 1), &cmp, fw) && ok;
    CHECK(rec->write_idx == i + 1, "%s: write_idx %u", fw, rec->write_idx);
    frames_checked++;
    g_free(fw);
  }
  CHECK(res.stats != NULL, "%s: the sink gave no stats", what);
  if (res.stats) {
    const gchar *path = gst_structure_get_string(res.stats, "path");
    guint64 rendered = 0;
    gst_structure_get_uint64(res.stats, "frames-published", &published);
    CHECK(published == n, "%s: frames-published %" G_GUINT64_FORMAT, what, published);
    /* GstBaseSink's count, merged into our stats */
    CHECK(gst_structure_get_uint64(res.stats, "rendered", &rendered) && rendered == n,
          "%s: rendered %" G_GUINT64_FORMAT, what, rendered);
    if (expect_path_prefix)
      CHECK(path && g_str_has_prefix(path, expect_path_prefix), "%s: path \"%s\", want \"%s...\"",
            what, path, expect_path_prefix);
    printf("    %-60s %u frames, %" G_GUINT64_FORMAT " components, max err %.3g, %s\n", what,
           reader_a->records->len, cmp.components, cmp.max_err, path ? path : "?");
  }
  retire_if_short(&reader_a, n);
  if (res_out)
    *res_out = res;
  else
    run_result_clear(&res);
  ref_free(ref);
  g_free(what);
  g_free(launch);
  g_free(props);
  g_free(name);
  return ok && !test_failed;
}

static void
test_formats(void)
{
  static const Cfg cfgs[] = {
    {"rgba", "auto", FALSE, FALSE},
    {"bgra", "auto", FALSE, FALSE},
    {"rgba", "float32", FALSE, FALSE},
    {"rgba", "auto", TRUE, TRUE},
  };

  for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
    for (guint m = 0; m < 2; m++) {
      gboolean cuda = m == 0;
      if (cuda && !cudaupload_supports(formats[i].name)) {
        printf("    %s: this cudaupload has no CUDA memory of it; system memory only\n",
               formats[i].name);
        continue;
      }
      for (guint k = 0; k < G_N_ELEMENTS(cfgs); k++)
        run_and_check(&formats[i], cuda, &cfgs[k], 118, 66, 4, NULL, NULL);
    }
  /* a realistic size on both paths */
  {
    Cfg plain = {"rgba", "auto", FALSE, FALSE}, conv = {"rgba", "float32", TRUE, FALSE};
    run_and_check(&formats[0], TRUE, &plain, 1280, 720, 3, "plain copy", NULL);
    run_and_check(&formats[3], TRUE, &conv, 1280, 720, 3, "embedded PTX", NULL);
  }
}

static void
test_dtypes(void)
{
  static const gchar *dtypes[] = {"uint8", "uint16", "float16", "bfloat16", "float32"};
  const Fmt *fs[] = {&formats[0], &formats[7], &formats[8], &formats[5]};

  for (guint i = 0; i < G_N_ELEMENTS(fs); i++)
    for (guint d = 0; d < G_N_ELEMENTS(dtypes); d++) {
      Cfg c = {"rgba", dtypes[d], FALSE, FALSE};
      RunResult res;
      gboolean warned = FALSE;

      run_and_check(fs[i], FALSE, &c, 64, 40, 3, NULL, &res);
      for (guint w = 0; res.warnings && w < res.warnings->len; w++)
        if (strstr(g_ptr_array_index(res.warnings, w), "TouchDesigner"))
          warned = TRUE;
      /* bfloat16: a warning that TouchDesigner cannot read it; else none */
      CHECK(warned == !strcmp(dtypes[d], "bfloat16"), "%s %s: TouchDesigner warning %d",
            fs[i]->name, dtypes[d], warned);
      run_result_clear(&res);
    }

  /* channel-order=bgra with a non-uint8 output: RGBA published, warned */
  {
    Cfg c = {"bgra", "float32", FALSE, FALSE};
    RunResult res;
    gboolean warned = FALSE;
    run_and_check(&formats[2], FALSE, &c, 64, 40, 3, NULL, &res);
    for (guint w = 0; res.warnings && w < res.warnings->len; w++)
      if (strstr(g_ptr_array_index(res.warnings, w), "channel-order=bgra"))
        warned = TRUE;
    CHECK(warned, "no warning for channel-order=bgra with float32");
    run_result_clear(&res);
  }
}

static void
test_kernel_origin(void)
{
  Cfg c = {"rgba", "float32", TRUE, FALSE};

  /* the embedded PTX by default ... */
  run_and_check(&formats[3], TRUE, &c, 200, 120, 3, "embedded PTX", NULL);
  /* ... NVRTC when the PTX is refused (forced here) */
  if (!g_getenv("GST_CUDA_NVRTC_LIBNAME")) {
    const gchar *cands[] = {"/usr/local/cuda/lib64/libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13",
                            "/usr/local/cuda/lib64/libnvrtc.so.12"};
    for (guint i = 0; i < G_N_ELEMENTS(cands); i++)
      if (g_file_test(cands[i], G_FILE_TEST_EXISTS)) {
        g_setenv("GST_CUDA_NVRTC_LIBNAME", cands[i], TRUE);
        break;
      }
  }
  g_setenv("CUDALINK_CONVERT_NO_PTX", "1", TRUE);
  run_and_check(&formats[3], TRUE, &c, 200, 120, 3, "NVRTC", NULL);
  run_and_check(&formats[5], FALSE, &(Cfg){"bgra", "auto", FALSE, FALSE}, 77, 33, 3, "NVRTC", NULL);
  g_unsetenv("CUDALINK_CONVERT_NO_PTX");
  /* and no kernel at all for native layouts */
  run_and_check(&formats[2], TRUE, &(Cfg){"bgra", "auto", FALSE, FALSE}, 200, 120, 3, "plain copy",
                NULL);
}

/* appsrc: 3 frames at 320x240, new caps, 3 frames at 160x96 */
typedef struct {
  Ref *a, *b;
} TwoRefs;

static void
push_frames(GstElement *appsrc, const Ref *r, const gchar *format, guint first)
{
  gchar *s = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format,
                             r->width, r->height);
  GstCaps *caps = gst_caps_from_string(s);

  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps);
  for (guint i = 0; i < r->n; i++) {
    GstBuffer *b = gst_buffer_new_memdup(r->frames[i], r->frame_size);
    GST_BUFFER_PTS(b) = (first + i) * GST_SECOND / 30;
    GST_BUFFER_DURATION(b) = GST_SECOND / 30;
    gst_app_src_push_buffer(GST_APP_SRC(appsrc), b);
  }
  gst_caps_unref(caps);
  g_free(s);
}

static void
feed_two_sizes(GstElement *pipeline, gpointer data)
{
  TwoRefs *t = data;
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");

  push_frames(src, t->a, "RGBA", 0);
  push_frames(src, t->b, "RGBA", t->a->n);
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  gst_object_unref(src);
}

static void
test_resolution_change(void)
{
  gchar *name = unique_name();
  gchar *launch = g_strdup_printf(
      "appsrc name=src format=time ! cudaupload ! cudalinksink name=sink ipc-name=%s sync=false",
      name);
  TwoRefs t = {render_reference(&formats[0], 320, 240, 3), render_reference(&formats[0], 160, 96, 3)};
  Cfg c = {"rgba", "auto", FALSE, FALSE};
  Peer *peers[2];
  RunResult res;
  Cmp cmp = {0, 0};
  guint64 reinits = 0;

  ensure_readers();
  peers[0] = reader_a;
  peers[1] = reader_b;
  reader_start(reader_a, name, 6);
  reader_start(reader_b, name, 6);
  run_pipeline(launch, name, peers, 2, feed_two_sizes, &t, &res);
  CHECK(res.error == NULL, "resolution change: %s", res.error);
  CHECK(res.eos && res.gone_at_eos && res.gone_at_null, "resolution change: shutdown");
  for (guint r = 0; r < 2; r++) {
    Peer *p = peers[r];
    CHECK(p->records->len == 6, "reader %u: %u frames", r, p->records->len);
    for (guint i = 0; i < p->records->len; i++) {
      const SinkReaderRecord *rec = g_ptr_array_index(p->records, i);
      const Ref *ref = i < 3 ? t.a : t.b;
      gchar *what = g_strdup_printf("resize reader %u frame %u", r, i);
      check_frame(&formats[0], &c, ref->frames[i % 3], ref->width, ref->height, rec,
                  (const guint8 *)(rec + 1), &cmp, what);
      if (i >= 3) {
        const SinkReaderRecord *first = g_ptr_array_index(p->records, 0);
        CHECK(rec->version > first->version, "%s: version %" G_GUINT64_FORMAT " not bumped",
              what, rec->version);
        CHECK(rec->format_changes >= 1, "%s: the reader saw no format change", what);
        CHECK(rec->write_idx == i - 2, "%s: write_idx %u (restarts at 1 in the new ring)", what,
              rec->write_idx);
      }
      frames_checked++;
      g_free(what);
    }
  }
  if (res.stats)
    gst_structure_get_uint64(res.stats, "reinits", &reinits);
  CHECK(reinits == 1, "reinits %" G_GUINT64_FORMAT ", want 1", reinits);
  printf("    320x240 -> 160x96 followed by 2 consumers, %" G_GUINT64_FORMAT
         " components checked, reinits %" G_GUINT64_FORMAT "\n",
         cmp.components, reinits);
  retire_if_short(&reader_a, 6);
  retire_if_short(&reader_b, 6);
  run_result_clear(&res);
  ref_free(t.a);
  ref_free(t.b);
  g_free(launch);
  g_free(name);
}

static void
test_two_consumers(void)
{
  gchar *name = unique_name();
  const Fmt *f = &formats[4]; /* RGB: converted to RGBA on the GPU */
  gchar *launch = g_strdup_printf(
      "videotestsrc num-buffers=5 " PATTERN " ! video/x-raw,format=RGB,width=320,height=180,"
      "framerate=30/1 ! cudaupload ! cudalinksink name=sink ipc-name=%s sync=false",
      name);
  Ref *ref = render_reference(f, 320, 180, 5);
  Cfg c = {"rgba", "auto", FALSE, FALSE};
  Peer *peers[2];
  RunResult res;
  Cmp cmp = {0, 0};

  ensure_readers();
  peers[0] = reader_a;
  peers[1] = reader_b;
  reader_start(reader_a, name, 5);
  reader_start(reader_b, name, 5);
  run_pipeline(launch, name, peers, 2, NULL, NULL, &res);
  CHECK(res.error == NULL, "two consumers: %s", res.error);
  for (guint r = 0; r < 2; r++) {
    CHECK(peers[r]->records->len == 5, "consumer %u: %u frames", r, peers[r]->records->len);
    for (guint i = 0; i < peers[r]->records->len; i++) {
      const SinkReaderRecord *rec = g_ptr_array_index(peers[r]->records, i);
      gchar *what = g_strdup_printf("consumer %u frame %u", r, i);
      check_frame(f, &c, ref->frames[i], 320, 180, rec, (const guint8 *)(rec + 1), &cmp, what);
      frames_checked++;
      g_free(what);
    }
  }
  printf("    2 consumers x 5 frames of RGB->RGBA 320x180: %" G_GUINT64_FORMAT " components\n",
         cmp.components);
  retire_if_short(&reader_a, 5);
  retire_if_short(&reader_b, 5);
  run_result_clear(&res);
  ref_free(ref);
  g_free(launch);
  g_free(name);
}

static guint64
checksum(const guint8 *p, gsize n)
{
  guint64 sum = 0;
  for (gsize i = 0; i < n; i++)
    sum += (guint64)p[i] * (i % 65521 + 1);
  return sum;
}

/* what an RGBA uint8 consumer receives for BGRx / RGBA input */
static guint8 *
expected_rgba8(const Fmt *f, const guint8 *ref, gint w, gint h)
{
  guint8 *out = g_malloc((gsize)w * h * 4);
  gint in_comps = (gint)strlen(f->layout);
  for (gint i = 0; i < w * h; i++)
    for (gint c = 0; c < 4; c++) {
      const gchar *pos = strchr(f->layout, "RGBA"[c]);
      out[i * 4 + c] = pos ? ref[i * in_comps + (pos - f->layout)] : 255;
    }
  return out;
}

static void
test_python_consumer(void)
{
  const gchar *pydir = g_getenv("CUDALINK_TEST_PYDIR");
  const Fmt *fs[] = {&formats[0], &formats[3]}; /* plain RGBA; BGRx swizzled */

  CHECK(pydir != NULL, "CUDALINK_TEST_PYDIR is not set");
  if (!pydir)
    return;
  for (guint k = 0; k < G_N_ELEMENTS(fs); k++) {
    const Fmt *f = fs[k];
    gchar *name = unique_name();
    gchar *script = g_build_filename(pydir, "sink_consumer.py", NULL);
    Ref *ref = render_reference(f, 256, 144, 4);
    GString *sums = g_string_new(NULL);
    gchar *launch = g_strdup_printf(
        "videotestsrc num-buffers=4 " PATTERN " ! video/x-raw,format=%s,width=256,height=144,"
        "framerate=30/1 ! cudaupload ! cudalinksink name=sink ipc-name=%s sync=false",
        f->name, name);
    gchar *count = g_strdup("4");
    Peer *py;
    RunResult res;
    int rc;

    for (guint i = 0; i < 4; i++) {
      guint8 *e = expected_rgba8(f, ref->frames[i], 256, 144);
      g_string_append_printf(sums, "%s%" G_GUINT64_FORMAT, i ? "," : "",
                             checksum(e, (gsize)256 * 144 * 4));
      g_free(e);
    }
    {
      gchar *argv[] = {(gchar *)"python3", script, name, count, sums->str, NULL};
      py = peer_spawn(PEER_PYTHON, argv);
    }
    run_pipeline(launch, name, &py, 1, NULL, NULL, &res);
    CHECK(res.error == NULL, "python %s: %s", f->name, res.error);
    CHECK(py->records->len == 4, "python %s: %u frames", f->name, py->records->len);
    for (guint i = 0; i < py->records->len; i++)
      CHECK(g_str_has_suffix(g_ptr_array_index(py->records, i), " ok"), "python frame %u: %s", i,
            (gchar *)g_ptr_array_index(py->records, i));
    /* its last line and exit status */
    if (!py->broken) {
      peer_read_one(py); /* "PASS" / "FAIL": not a frame line, marks broken */
      CHECK(py->line_buf->len == 0 && py->records->len == 5 &&
                !strcmp(g_ptr_array_index(py->records, 4), "PASS"),
            "python %s did not print PASS", f->name);
    }
    rc = peer_wait_exit(py);
    CHECK(rc == 0, "python %s exited %d", f->name, rc);
    frames_checked += MIN(py->records->len, 4);
    py->broken = FALSE;
    peer_free(py);
    run_result_clear(&res);
    g_string_free(sums, TRUE);
    ref_free(ref);
    g_free(count);
    g_free(launch);
    g_free(script);
    g_free(name);
  }
}

static void
expect_error(const gchar *launch, const gchar *name, const gchar *in_message, const gchar *what)
{
  RunResult res;
  run_pipeline(launch, name, NULL, 0, NULL, NULL, &res);
  CHECK(res.error && strstr(res.error, in_message), "%s: error \"%s\", want \"%s\"", what,
        res.error ? res.error : "(none)", in_message);
  if (res.error)
    printf("    %s: %s\n", what, res.error);
  run_result_clear(&res);
}

static void
test_errors(void)
{
  gchar *name = unique_name();
  gchar *launch;
  GstElement *first;
  GstMessage *m;
  GstBus *bus;

  launch = g_strdup_printf("videotestsrc num-buffers=2 ! cudalinksink name=sink ipc-name=%s "
                           "cuda-device-id=99",
                           name);
  expect_error(launch, name, "No such CUDA device", "no such device");
  g_free(launch);

  launch = g_strdup_printf("videotestsrc num-buffers=2 ! cudalinksink name=sink ipc-name=a/b");
  expect_error(launch, name, "ipc-name", "bad name");
  g_free(launch);

  /* a segment held by a live producer of ours: the second sink is refused */
  launch = g_strdup_printf("videotestsrc is-live=true ! video/x-raw,width=64,height=64 ! "
                           "cudalinksink name=sink ipc-name=%s",
                           name);
  first = gst_parse_launch(launch, NULL);
  bus = gst_element_get_bus(first);
  gst_element_set_state(first, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GST_MESSAGE_ASYNC_DONE | GST_MESSAGE_ERROR);
  CHECK(m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ASYNC_DONE, "first producer did not start");
  if (m)
    gst_message_unref(m);
  CHECK(segment_exists(name), "first producer has no segment");
  expect_error(launch, name, "held by another live cudalink producer", "busy");
  /* the refused sink left the first one's segment alone */
  CHECK(segment_exists(name), "the busy sink removed the other's segment");
  gst_element_set_state(first, GST_STATE_NULL);
  CHECK(!segment_exists(name), "segment left behind");
  gst_object_unref(bus);
  gst_object_unref(first);
  g_free(launch);
  g_free(name);
}

static void
test_relink_and_slots(void)
{
  gchar *name = unique_name();
  gchar *launch = g_strdup_printf("videotestsrc is-live=true ! video/x-raw,format=RGBA,width=64,"
                                  "height=64,framerate=60/1 ! cudalinksink name=sink ipc-name=%s",
                                  name);
  GstElement *p = gst_parse_launch(launch, NULL);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  gchar *path = g_strdup_printf("/dev/shm/%s", name);
  GstStructure *stats = NULL;
  guint64 relinks = 0, frames = 0;
  guint8 buf[2048];
  cudalink_header hdr;
  int fd;
  ssize_t n;

  gst_element_set_state(p, GST_STATE_PLAYING);
  g_usleep(300 * 1000);
  /* what Python's resource_tracker does to segments it merely opened */
  CHECK(unlink(path) == 0, "unlink %s: %s", path, g_strerror(errno));
  g_usleep(1000 * 1000);
  CHECK(segment_exists(name), "segment not re-linked");
  g_object_get(sink, "stats", &stats, NULL);
  gst_structure_get_uint64(stats, "relinks", &relinks);
  gst_structure_get_uint64(stats, "frames-published", &frames);
  CHECK(relinks >= 1, "relinks %" G_GUINT64_FORMAT, relinks);
  CHECK(frames >= 30, "only %" G_GUINT64_FORMAT " frames in 1.3 s at 60 fps", frames);
  printf("    relinks %" G_GUINT64_FORMAT " after an unlink, %" G_GUINT64_FORMAT " frames\n", relinks,
         frames);
  gst_structure_free(stats);

  /* num-slots while playing: clean shutdown, a new segment with 5 slots */
  g_object_set(sink, "num-slots", 5, NULL);
  g_usleep(500 * 1000);
  fd = open(path, O_RDONLY);
  CHECK(fd >= 0, "no segment after num-slots changed");
  if (fd >= 0) {
    n = read(fd, buf, sizeof buf);
    close(fd);
    CHECK(n > 0 && cudalink_header_parse(buf, (size_t)n, &hdr) == CUDALINK_OK,
          "new segment does not parse");
    CHECK(hdr.num_slots == 5, "num_slots %u, want 5", hdr.num_slots);
    CHECK(hdr.shutdown_flag == 0 && hdr.write_idx > 0, "new segment not publishing");
  }
  {
    /* the bus told it: created, re-linked, created again with 5 slots */
    GstBus *bus = gst_element_get_bus(p);
    GString *states = g_string_new(NULL);
    guint last_slots = 0;
    GstMessage *m;
    while ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT))) {
      const GstStructure *st = gst_message_get_structure(m);
      if (gst_structure_has_name(st, "cudalink-state")) {
        g_string_append_printf(states, "%s,", gst_structure_get_string(st, "state"));
        CHECK(g_strcmp0(gst_structure_get_string(st, "ipc-name"), name) == 0, "ipc-name");
        gst_structure_get_uint(st, "slots", &last_slots);
      }
      gst_message_unref(m);
    }
    printf("    bus: %s last segment-created had %u slots\n", states->str, last_slots);
    CHECK(g_str_has_prefix(states->str, "segment-created,segment-relinked,"), "states %s",
          states->str);
    CHECK(g_str_has_suffix(states->str, "segment-created,"), "states %s", states->str);
    CHECK(last_slots == 5, "slots %u", last_slots);
    g_string_free(states, TRUE);
    gst_object_unref(bus);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  CHECK(!segment_exists(name), "segment left behind");
  gst_object_unref(sink);
  gst_object_unref(p);
  g_free(path);
  g_free(launch);
  g_free(name);
}

/* No GPU memory or segment left behind after many start/stop cycles. */
static void
test_no_leaks(void)
{
  cudalink_status st;
  char why[256];
  const cudalink_cuda *cu = cudalink_cuda_get(&st, why, sizeof why);
  CUcontext ctx = NULL;
  CUdevice dev;
  size_t free0 = 0, free1 = 0, total = 0;

  CHECK(cu != NULL, "no CUDA: %s", why);
  if (!cu)
    return;
  CK(cu->DeviceGet(&dev, 0));
  CK(cu->DevicePrimaryCtxRetain(&ctx, dev));
  CK(cu->CtxPushCurrent(ctx));

  for (guint round = 0; round < 6; round++) {
    gchar *name = unique_name();
    gchar *launch = g_strdup_printf(
        "videotestsrc num-buffers=5 ! video/x-raw,format=BGRx,width=1920,height=1080 ! "
        "cudaupload ! cudalinksink name=sink ipc-name=%s sync=false output-dtype=float32 "
        "num-slots=4",
        name);
    RunResult res;

    run_pipeline(launch, name, NULL, 0, NULL, NULL, &res);
    CHECK(res.error == NULL && res.eos, "round %u: %s", round, res.error);
    CHECK(res.gone_at_null, "round %u: segment left behind", round);
    run_result_clear(&res);
    if (round == 0) /* first round: one-time allocations (modules, pools) */
      CK(cu->MemGetInfo(&free0, &total));
    g_free(launch);
    g_free(name);
  }
  CK(cu->MemGetInfo(&free1, &total));
  /* each round allocates 4 x 33 MB of ring: 5 leaked rounds = 660 MB */
  printf("    free GPU memory after round 1: %zu MiB, after round 6: %zu MiB\n", free0 >> 20,
         free1 >> 20);
  CHECK(free1 + (64u << 20) >= free0, "lost %zd MiB of GPU memory in 5 rounds",
        (ssize_t)(free0 - free1) >> 20);
  cu->CtxPopCurrent(NULL);
  cu->DevicePrimaryCtxRelease(dev);
}

static void
test_stats(void)
{
  Cfg c = {"rgba", "auto", FALSE, FALSE};
  RunResult res;
  gdouble p50 = 0, p99 = 0;

  run_and_check(&formats[0], TRUE, &c, 640, 360, 20, "plain copy", &res);
  CHECK(res.stats != NULL, "no stats");
  if (res.stats) {
    gst_structure_get_double(res.stats, "publish-time-p50-us", &p50);
    gst_structure_get_double(res.stats, "publish-time-p99-us", &p99);
    CHECK(p50 > 0 && p99 >= p50, "p50 %.1f p99 %.1f", p50, p99);
    printf("    render p50 %.1f us, p99 %.1f us (640x360 RGBA, gated)\n", p50, p99);
  }
  run_result_clear(&res);
}

typedef struct {
  const char *name;
  void (*fn)(void);
} Test;

static const Test tests[] = {
  {"formats", test_formats},
  {"dtypes", test_dtypes},
  {"kernel_origin", test_kernel_origin},
  {"resolution_change", test_resolution_change},
  {"two_consumers", test_two_consumers},
  {"python_consumer", test_python_consumer},
  {"errors", test_errors},
  {"relink_and_slots", test_relink_and_slots},
  {"no_leaks", test_no_leaks},
  {"stats", test_stats},
};

int
main(int argc, char **argv)
{
  char why[256] = "";
  cudalink_status st;
  int passed = 0, failed = 0;

  signal(SIGPIPE, SIG_IGN);
  gst_init(&argc, &argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH/TO/sink_reader [test ...]\n", argv[0]);
    return 2;
  }
  reader_path = argv[1];

  st = cudalink_cuda_load(why, sizeof why);
  if (st != CUDALINK_OK) {
    fprintf(stderr, "FAIL: no GPU: %s (%s)\n", cudalink_strerror(st), why);
    return 1;
  }
  if (!gst_element_factory_find("cudalinksink") || !gst_element_factory_find("cudaupload")) {
    fprintf(stderr, "FAIL: cudalinksink or cudaupload missing (GST_PLUGIN_PATH_1_0, nvcodec)\n");
    return 1;
  }

  for (guint i = 0; i < G_N_ELEMENTS(tests); i++) {
    gboolean selected = argc == 2;
    gint64 t0 = g_get_monotonic_time();
    for (int a = 2; a < argc; a++)
      if (!strcmp(argv[a], tests[i].name))
        selected = TRUE;
    if (!selected)
      continue;
    test_failed = FALSE;
    printf("%s\n", tests[i].name);
    fflush(stdout);
    tests[i].fn();
    printf("%s %s (%.1f s)\n", test_failed ? "FAIL" : "ok  ", tests[i].name,
           (g_get_monotonic_time() - t0) / 1e6);
    fflush(stdout);
    if (test_failed)
      failed++;
    else
      passed++;
  }
  peer_free(reader_a);
  peer_free(reader_b);
  printf("%u frames checked\n%d passed, %d failed\n", frames_checked, passed, failed);
  return failed ? 1 : (passed ? 0 : 1);
}
