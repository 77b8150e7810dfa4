"""Fake GPU elements for tests/ci/fakegpu (read ../run.sh first).

NOT cuda-link: stand-ins with the names and properties of GStreamer's CUDA
elements (cudaupload, cudadownload, cudaconvert, cudascale) and of ours
(cudalinksrc, cudalinksink), so that tests/gpu/gpu_recipes, README's
run-main.sh and the recipes run end to end on a machine without a GPU, and
their orchestration (processes, Ctrl-C, EOS, logs, counting) is exercised.
Frames travel between processes through shmsink/shmsrc, in system memory;
caps say memory:CUDAMemory where the real elements' would.
"""
import os
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, GObject, Gst, GstApp, GstBase  # noqa: E402,F401 (GstApp: appsink API)

Gst.init(None)
CUDA = "(memory:CUDAMemory)"
ANY = Gst.Caps.new_any()
RW = GObject.ParamFlags.READWRITE


def relabel(caps, cuda):
    """caps with every structure in CUDA memory (cuda) or system memory."""
    if caps.is_any():
        return caps.copy()
    out = []
    for i in range(caps.get_size()):
        s = caps.get_structure(i)
        name = s.get_name()
        fields = s.to_string().rstrip(";")[len(name):]
        out.append(name + (CUDA if cuda else "") + fields)
    return Gst.Caps.from_string("; ".join(out)) if out else Gst.Caps.new_empty()


def both(caps, cuda_first):
    first, second = relabel(caps, cuda_first), relabel(caps, not cuda_first)
    return first.merge(second)


class Relabel(GstBase.BaseTransform):
    """Passes buffers through; its output caps are in CUDA memory (to_cuda)
    or system memory, its input takes either."""
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, ANY),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, ANY),
    )
    to_cuda = True

    def __init__(self):
        super().__init__()
        self.set_passthrough(True)

    def do_transform_caps(self, direction, caps, filt):
        if direction == Gst.PadDirection.SINK:
            res = both(caps, self.to_cuda)
        else:
            res = both(caps, not self.to_cuda)
        if filt:
            res = filt.intersect_full(res, Gst.CapsIntersectMode.FIRST)
        return res

    def do_transform_ip(self, buf):
        return Gst.FlowReturn.OK


class ToCuda(Relabel):
    __gstmetadata__ = ("fake to-CUDA relabel", "Filter", "fakegpu", "tests")
    to_cuda = True


class ToSys(Relabel):
    __gstmetadata__ = ("fake to-system relabel", "Filter", "fakegpu", "tests")
    to_cuda = False


GObject.type_register(ToCuda)
GObject.type_register(ToSys)


def make(factory_or_type, **props):
    e = factory_or_type() if isinstance(factory_or_type, type) else Gst.ElementFactory.make(factory_or_type)
    for k, v in props.items():
        e.set_property(k.replace("_", "-"), v)
    return e


class Wrapped(Gst.Bin):
    """sink ghost -> [to system] -> INNER -> [to CUDA] -> src ghost"""
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, ANY),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, ANY),
    )
    inner = "identity"

    def __init__(self):
        super().__init__()
        a, b, c = make(ToSys), make(self.inner), make(ToCuda)
        for e in (a, b, c):
            self.add(e)
        a.link(b)
        b.link(c)
        self.add_pad(Gst.GhostPad.new("sink", a.get_static_pad("sink")))
        self.add_pad(Gst.GhostPad.new("src", c.get_static_pad("src")))


def paths(ipc):
    base = os.path.join(os.environ.get("FAKEGPU_DIR", "/tmp"), "fakegpu-" + ipc)
    return base, base + ".caps"


class LinkSink(Gst.Bin):
    """cudalinksink stand-in: [to system] -> shmsink at FAKEGPU_DIR/fakegpu-NAME,
    the caps beside it in fakegpu-NAME.caps."""
    __gstmetadata__ = ("CUDA Link Sink (FAKE, tests/ci/fakegpu)", "Sink/Video/Hardware",
                       "shmsink in disguise", "tests")
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, ANY),
    )
    __gproperties__ = SINK_PROPS = {
        "ipc-name": (str, "ipc-name", "", "cudalink", RW),
        "sync": (bool, "sync", "", True, RW),
        "num-slots": (GObject.TYPE_UINT, "num-slots", "", 1, 10, 3, RW),
        "max-slots": (GObject.TYPE_UINT, "max-slots", "", 0, 10, 0, RW),
        "offer-import": (bool, "offer-import", "", False, RW),
        "cuda-device-id": (GObject.TYPE_INT, "cuda-device-id", "", -1, 64, -1, RW),
        "channel-order": (str, "channel-order", "", "rgba", RW),
        "output-dtype": (str, "output-dtype", "", "auto", RW),
        "gpu-wait": (str, "gpu-wait", "", "none", RW),
        "video-direction": (str, "video-direction", "", "identity", RW),
        "stats-interval": (GObject.TYPE_UINT, "stats-interval", "", 0, GLib.MAXUINT, 0, RW),
        "stats": (Gst.Structure, "stats", "", GObject.ParamFlags.READABLE),
    }

    def __init__(self):
        super().__init__()
        self.props_ = {k: v[3] for k, v in LinkSink.SINK_PROPS.items() if k != "stats"}
        self.published = 0
        self.eos_seen = False
        self.conv = make(ToSys)
        self.shm = make("shmsink", wait_for_connection=False, shm_size=256 * 1024 * 1024)
        self.add(self.conv)
        self.add(self.shm)
        self.conv.link(self.shm)
        pad = Gst.GhostPad.new("sink", self.conv.get_static_pad("sink"))
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._event)
        pad.add_probe(Gst.PadProbeType.BUFFER, self._count)
        self.add_pad(pad)

    def _count(self, pad, info):
        self.published += 1
        return Gst.PadProbeReturn.OK

    def do_get_property(self, prop):
        if prop.name == "stats":  # the fields examples/appsrc-numpy.py reads
            return Gst.Structure.from_string(
                "application/x-cudalinksink-stats, "
                f"frames-published=(guint64){self.published}")[0]
        return self.props_[prop.name]

    def do_set_property(self, prop, value):
        self.props_[prop.name] = value
        if prop.name == "sync":
            self.shm.set_property("sync", value)

    def do_handle_message(self, msg):
        # shmsink 1.22 posts "Failed waiting on fd activity" when it stops
        # after EOS with a client connected: not an error of the stream
        if msg.type == Gst.MessageType.ERROR and msg.src == self.shm and self.eos_seen:
            return
        Gst.Bin.do_handle_message(self, msg)

    def _event(self, pad, info):
        ev = info.get_event()
        if ev.type == Gst.EventType.EOS:
            self.eos_seen = True
        if ev.type == Gst.EventType.CAPS:
            _, capsfile = paths(self.props_["ipc-name"])
            with open(capsfile + ".tmp", "w") as f:
                f.write(relabel(ev.parse_caps(), False).to_string())
            os.replace(capsfile + ".tmp", capsfile)
        return Gst.PadProbeReturn.OK

    def do_change_state(self, transition):
        sock, capsfile = paths(self.props_["ipc-name"])
        if transition == Gst.StateChange.NULL_TO_READY:
            self.shm.set_property("socket-path", sock)
        ret = Gst.Bin.do_change_state(self, transition)
        if transition == Gst.StateChange.PAUSED_TO_READY:
            try:
                os.unlink(capsfile)
            except FileNotFoundError:
                pass
        return ret


class LinkSrc(Gst.Bin):
    """cudalinksrc stand-in: appsrc (live, arrival times) ! [to CUDA]. A thread
    waits for fakegpu-NAME and its caps, then pulls the frames out of a
    private shmsrc ! appsink pipeline and pushes them; the producer going
    away (shmsrc's read error) becomes end-of-stream, whatever
    on-producer-loss says. Caps: the producer's with framerate=0/1, like
    cudalinksrc's."""
    __gstmetadata__ = ("CUDA Link Source (FAKE, tests/ci/fakegpu)", "Source/Video/Hardware",
                       "shmsrc in disguise", "tests")
    __gsttemplates__ = (
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, ANY),
    )
    __gproperties__ = SRC_PROPS = {
        "ipc-name": (str, "ipc-name", "", "cudalink", RW),
        "timeout": (GObject.TYPE_INT64, "timeout", "", -1, GLib.MAXINT64, 5000, RW),
        "on-producer-loss": (str, "on-producer-loss", "", "wait", RW),
        "channel-order": (str, "channel-order", "", "auto", RW),
        "float-format": (str, "float-format", "", "rgba", RW),
        "video-direction": (str, "video-direction", "", "identity", RW),
        "cuda-device-id": (GObject.TYPE_INT, "cuda-device-id", "", -1, 64, -1, RW),
        "poll-interval": (GObject.TYPE_UINT, "poll-interval", "", 10, 1000000, 1000, RW),
        "gpu-wait": (str, "gpu-wait", "", "nap", RW),
        "wake-spin": (bool, "wake-spin", "", True, RW),
        "frame-timeout": (GObject.TYPE_UINT, "frame-timeout", "", 0, GLib.MAXUINT, 5000, RW),
        "stats-interval": (GObject.TYPE_UINT, "stats-interval", "", 0, GLib.MAXUINT, 0, RW),
        "stats": (Gst.Structure, "stats", "", GObject.ParamFlags.READABLE),
    }

    def __init__(self):
        super().__init__()
        self.props_ = {k: v[3] for k, v in LinkSrc.SRC_PROPS.items() if k != "stats"}
        self.frames = 0
        self.running = False
        self.app = make("appsrc", is_live=True, format=Gst.Format.TIME, do_timestamp=True)
        up = make(ToCuda)
        self.add(self.app)
        self.add(up)
        self.app.link(up)
        ghost = Gst.GhostPad.new("src", up.get_static_pad("src"))
        ghost.add_probe(Gst.PadProbeType.BUFFER, self._count)
        self.add_pad(ghost)

    def do_get_property(self, prop):
        if prop.name == "stats":
            return self._stats()
        return self.props_[prop.name]

    def do_set_property(self, prop, value):
        self.props_[prop.name] = value

    def _count(self, pad, info):
        self.frames += 1
        return Gst.PadProbeReturn.OK

    def _stats(self):
        return Gst.Structure.from_string(
            f"application/x-cudalinksrc-stats, frames=(guint64){self.frames}, "
            "missed=(guint64)0, torn-discarded=(guint64)0, reopens=(guint64)0, "
            "first-offset=(gint64)0, latency-p50-us=(double)0, latency-p99-us=(double)0, "
            "latency-samples=(uint)0")[0]

    def _ticker(self):
        ms = self.props_["stats-interval"]
        while self.running and ms:
            time.sleep(ms / 1000)
            if self.running:
                self.post_message(Gst.Message.new_element(self, self._stats()))

    def _wait_for_producer(self, limit_ms):
        """True once fakegpu-NAME and its caps exist; False when stopped or
        (posting cudalinksrc's error) after limit_ms (-1: forever)."""
        name = self.props_["ipc-name"]
        sock, capsfile = paths(name)
        t0 = time.monotonic()
        while self.running and not (os.path.exists(sock) and os.path.exists(capsfile)):
            if 0 <= limit_ms < (time.monotonic() - t0) * 1000:
                Gst.Element.message_full(
                    self, Gst.MessageType.ERROR, Gst.ResourceError.quark(),
                    Gst.ResourceError.NOT_FOUND,
                    f"No cuda-link producer: nothing named '{name}' appeared within "
                    f"{limit_ms / 1000:.0f} s. (fakegpu)", None, __file__, "_run", 0)
                return False
            time.sleep(0.05)
        return self.running

    def _read(self):
        """Frames of one producer until it goes away (True) or we stop (False)."""
        sock, capsfile = paths(self.props_["ipc-name"])
        with open(capsfile) as f:
            caps = Gst.Caps.from_string(f.read())
        caps.set_value("framerate", Gst.Fraction(0, 1))
        self.app.set_property("caps", caps)
        inner = Gst.parse_launch(f"shmsrc socket-path={sock} is-live=true ! "
                                 "appsink name=s sync=false max-buffers=4 drop=true")
        sink = inner.get_by_name("s")
        bus = inner.get_bus()
        inner.set_state(Gst.State.PLAYING)
        lost = False
        while self.running:
            sample = sink.try_pull_sample(100 * Gst.MSECOND)
            if sample:
                buf = sample.get_buffer().copy()
                buf.pts = buf.dts = buf.duration = Gst.CLOCK_TIME_NONE
                if self.app.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    break
                continue
            if bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS) or sink.is_eos():
                lost = True
                break
        inner.set_state(Gst.State.NULL)
        return lost

    def _run(self):
        limit = self.props_["timeout"]
        while self._wait_for_producer(limit) and self._read():
            # the producer went away: on-producer-loss=wait looks for the next one
            if self.props_["on-producer-loss"] != "wait":
                self.app.emit("end-of-stream")
                return
            while self.running and os.path.exists(paths(self.props_["ipc-name"])[0]):
                time.sleep(0.05)
            limit = -1

    def do_change_state(self, transition):
        if transition == Gst.StateChange.READY_TO_PAUSED:
            self.running = True
            threading.Thread(target=self._run, daemon=True).start()
            threading.Thread(target=self._ticker, daemon=True).start()
        elif transition == Gst.StateChange.PAUSED_TO_READY:
            self.running = False
        return Gst.Bin.do_change_state(self, transition)
