#!/usr/bin/python3
"""The recipes' pipelines on a machine without a GPU (tests/ci/check-recipes.sh).

Every shell recipe in examples/ prints its gst-launch-1.0 command line when
run with CUDALINK_RECIPE_DRY=1 (examples/recipe-lib.sh). This script

  parse:     builds each of those pipelines with gst_parse_launchv and
             FATAL_ERRORS, so that a misspelt element, property or value
             fails. GStreamer's CUDA elements (cudaupload, cudadownload,
             cudaconvert, cudascale) do not register without a driver: they
             become identity here, their properties unchecked. cudalinksrc
             and cudalinksink do register, and are checked for real.

  rehearse:  runs them, on the CPU: cudalinksrc becomes a live videotestsrc
             with cudalinksrc's caps (RGBA or BGRA, framerate=0/1: arrival
             times, no announced rate), cudalinksink a counting fakesink,
             cudaupload/cudadownload identity, cudaconvert videoconvert,
             cudascale videoscale. What the GPU does not touch (encoders,
             muxers, RTP, SRT, decoders, caps) is then exercised end to end,
             and the outputs are checked: frames decoded from the MP4s, frames
             and size that reached each receiver's cudalinksink.

usage: tests/ci/check_pipelines.py [parse] [rehearse]   (run from the checkout root)
Prints "ok   NAME" / "FAIL NAME" lines and "N passed, N failed"; exit 1 on a failure.
Needs Debian's python3 with python3-gi, GStreamer 1.22 with plugins base, good,
bad (x265, srt, mpegts, openh264) and ugly (x264), and the built plugin
(GST_PLUGIN_PATH or BUILD_DIR/gst).
"""
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")
GPU_ONLY = {"cudaupload", "cudadownload", "cudaconvert", "cudascale"}
FRAMES = 60          # what a rehearsal's stand-in producer publishes
W, H = 320, 180

passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def dry(script, *args, env=None):
    """The gst-launch-1.0 command lines a recipe prints in dry mode, as argv lists."""
    e = dict(os.environ, CUDALINK_RECIPE_DRY="1", **(env or {}))
    cmd = ["bash", os.path.join(EX, script), *args]
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc {r.returncode}: {r.stderr.strip()}")
    lines = [shlex.split(line) for line in r.stdout.splitlines() if line.startswith("gst-launch-1.0")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no pipeline")
    out = []
    for argv in lines:
        argv = argv[1:]
        while argv and argv[0].startswith("-"):   # gst-launch options: -e -m -q -v
            argv = argv[1:]
        out.append(argv)
    return out


def segments(argv):
    """argv split at '!' into [name-or-caps, props...] lists."""
    segs, cur = [], []
    for a in argv:
        if a == "!":
            segs.append(cur)
            cur = []
        else:
            cur.append(a)
    segs.append(cur)
    return segs


def is_caps(tok):
    return "/" in tok and ("=" not in tok or tok.index("/") < tok.index("="))


def join(segs):
    argv = []
    for s in segs:
        if argv:
            argv.append("!")
        argv.extend(s)
    return argv


def for_parse(argv):
    """GPU-only elements become identity (nothing to check them against here)."""
    segs = []
    for s in segments(argv):
        segs.append(["identity"] if s and s[0] in GPU_ONLY else s)
    return join(segs)


def for_cpu(argv, frames=FRAMES):
    """The CPU stand-ins of a rehearsal (see the module's docstring)."""
    segs = []
    for s in segments(argv):
        name, props = s[0], s[1:]
        if is_caps(name):
            segs.append([name.replace("(memory:CUDAMemory)", "")])
        elif name == "cudalinksrc":
            fmt = "BGRA" if "channel-order=bgra" in props else "RGBA"
            segs += [["videotestsrc", "is-live=true", f"num-buffers={frames}", "pattern=ball"],
                     [f"video/x-raw,format={fmt},width={W},height={H},framerate=30/1"],
                     ["capssetter", "caps=video/x-raw,framerate=0/1"]]
        elif name == "cudalinksink":
            ipc = next((p.split("=", 1)[1] for p in props if p.startswith("ipc-name=")), "cudalink")
            sync = next((p for p in props if p.startswith("sync=")), "sync=true")
            segs.append(["fakesink", f"name=cudalinksink:{ipc}", "signal-handoffs=true", sync])
        elif name in ("cudaupload", "cudadownload"):
            segs.append(["identity"])
        elif name == "cudaconvert":
            segs.append(["videoconvert"])
        elif name == "cudascale":
            segs.append(["videoscale"])
        else:
            segs.append(s)
    return join(segs)


def build(argv):
    return Gst.parse_launchv_full(argv, None, Gst.ParseFlags.FATAL_ERRORS)


# ---------------------------------------------------------------------------
# parse


RECIPES = [
    ("run-main.sh", ["--no-build", "2"]),
    ("record.sh", ["td", "/tmp/x.mp4", "h264", "channel-order=bgra", "video-direction=vert"]),
    ("record.sh", ["td", "/tmp/x.mp4", "h265", "on-producer-loss=eos"]),
    ("rtp-send.sh", ["td", "192.0.2.10", "5000", "channel-order=bgra"]),
    ("rtp-receive.sh", ["remote", "5000", "channel-order=bgra", "video-direction=vert"]),
    ("rtp-receive.sh", ["-", "5000"]),
    ("srt-send.sh", ["td", "7001", "video-direction=vert"]),
    ("srt-receive.sh", ["remote", "192.0.2.10", "7001", "channel-order=bgra"]),
    ("srt-receive.sh", ["-"]),
    ("publish-file.sh", ["clip", "/tmp/in.mp4", "channel-order=bgra", "video-direction=vert"]),
    ("publish-file.sh", ["cam", "/dev/video0"]),
    ("publish-file.sh", ["ipcam", "rtsp://192.0.2.20/stream1"]),
    ("republish.sh", ["--td", "td", "td-small", "960", "540"]),
    ("republish.sh", ["in", "out"]),
]


def check_parse():
    for script, args in RECIPES:
        name = f"parse {script} {' '.join(args)}"
        try:
            for argv in dry(script, *args):
                build(for_parse(argv))
            report(True, name)
        except (RuntimeError, GLib.Error) as e:
            report(False, name, getattr(e, "message", str(e)))


# ---------------------------------------------------------------------------
# rehearse


class Run:
    """A pipeline running in this process, counting what reaches its
    stand-in cudalinksinks."""

    def __init__(self, argv, label):
        self.label = label
        self.pipeline = build(argv)
        self.error = None
        self.eos = threading.Event()
        self.frames = {}
        self.size = {}
        it = self.pipeline.iterate_sinks()
        while True:
            res, sink = it.next()
            if res != Gst.IteratorResult.OK:
                break
            if sink.get_name().startswith("cudalinksink:"):
                ipc = sink.get_name().split(":", 1)[1]
                self.frames[ipc] = 0
                sink.connect("handoff", self._handoff, ipc)
        bus = self.pipeline.get_bus()
        bus.enable_sync_message_emission()
        bus.connect("sync-message", self._message)

    def _handoff(self, sink, buf, pad, ipc):
        self.frames[ipc] += 1
        if ipc not in self.size:
            s = pad.get_current_caps().get_structure(0)
            self.size[ipc] = (s.get_value("width"), s.get_value("height"))

    def _message(self, bus, msg):
        if msg.type == Gst.MessageType.ERROR and not self.error:
            err, dbg = msg.parse_error()
            self.error = f"{err.message} ({dbg.splitlines()[0] if dbg else ''})"
            self.eos.set()
        elif msg.type == Gst.MessageType.EOS and msg.src == self.pipeline:
            self.eos.set()

    def start(self):
        self.pipeline.set_state(Gst.State.PLAYING)
        return self

    def wait(self, timeout):
        return self.eos.wait(timeout)

    def finish(self, timeout=10):
        """EOS (like gst-launch -e on Ctrl-C), wait for it, stop."""
        if not self.eos.is_set():
            self.pipeline.send_event(Gst.Event.new_eos())
            self.eos.wait(timeout)
        self.pipeline.set_state(Gst.State.NULL)


def decode_count(path):
    """(frames, (width, height)) decoded from a media file."""
    r = Run(["filesrc", f"location={path}", "!", "decodebin", "!",
             "fakesink", "name=cudalinksink:file", "signal-handoffs=true", "sync=false"],
            "decode " + path).start()
    r.wait(60)
    r.pipeline.set_state(Gst.State.NULL)
    if r.error:
        raise RuntimeError(f"decoding {path}: {r.error}")
    return r.frames["file"], r.size.get("file")


def expect(name, got, want_min, want_max, size, want_size, error=None):
    detail = f"{got} frames (want {want_min}..{want_max}), size {size} (want {want_size})"
    if error:
        detail += f", error: {error}"
    report(not error and want_min <= got <= want_max and size == want_size, name, detail)


def rehearse_record(tmp):
    for codec in ("h264", "h265"):
        out = os.path.join(tmp, f"rec-{codec}.mp4")
        name = f"rehearse record.sh {codec} (x{codec[1:]}enc, mp4mux)"
        try:
            (argv,) = dry("record.sh", "td", out, codec)
            r = Run(for_cpu(argv), name).start()
            r.wait(30)
            r.finish()
            n, size = decode_count(out) if not r.error else (0, None)
            # the last frame can be dropped by mp4mux (no duration at framerate=0/1)
            expect(name, n, FRAMES - 1, FRAMES, size, (W, H), r.error)
        except (RuntimeError, GLib.Error) as e:
            report(False, name, getattr(e, "message", str(e)))


def rehearse_pair(name, sender, receiver, ipc, min_frames, sender_first=False, frames=FRAMES):
    """The receiver first (the sender first with sender_first), then the
    other; after the sender's end, the receiver gets an EOS (Ctrl-C) and its
    cudalinksink's count is checked. The stand-in producer starts with the
    sender, so what the receiver misses while it connects is lost."""
    try:
        if sender_first:
            tx = Run(for_cpu(sender, frames), name + " sender").start()
            time.sleep(0.3)
            rx = Run(for_cpu(receiver, frames), name + " receiver").start()
        else:
            rx = Run(for_cpu(receiver, frames), name + " receiver").start()
            time.sleep(0.5)
            tx = Run(for_cpu(sender, frames), name + " sender").start()
        tx.wait(30)
        tx.finish()
        time.sleep(1.5)
        rx.finish()
        expect(name, rx.frames.get(ipc, 0), min_frames, frames, rx.size.get(ipc), (W, H),
               tx.error or rx.error)
    except (RuntimeError, GLib.Error) as e:
        report(False, name, getattr(e, "message", str(e)))


def rehearse_network():
    port = 20000 + os.getpid() % 20000
    (tx,) = dry("rtp-send.sh", "td", "127.0.0.1", str(port))
    (rx,) = dry("rtp-receive.sh", "remote", str(port))
    rehearse_pair("rehearse rtp-send.sh -> rtp-receive.sh (RTP/UDP, x264enc)", tx, rx, "remote",
                  int(FRAMES * 0.8))
    (tx,) = dry("srt-send.sh", "td", str(port + 1))
    (rx,) = dry("srt-receive.sh", "remote", "127.0.0.1", str(port + 1))
    # the sender (the listener) first; it drops frames until the receiver has called in
    # (wait-for-connection=false), and the receiver's picture starts at the next key frame
    # (every 30 frames): up to ~40 frames lost at the start, so a longer stream
    rehearse_pair("rehearse srt-send.sh -> srt-receive.sh (SRT, MPEG-TS, x264enc)", tx, rx,
                  "remote", 150 - 45, sender_first=True, frames=150)


def rehearse_file(tmp):
    name = "rehearse publish-file.sh (file -> decodebin -> cudalinksink)"
    src = os.path.join(tmp, "in.mp4")
    try:
        p = Run(["videotestsrc", f"num-buffers={FRAMES}", "pattern=ball", "!",
                 f"video/x-raw,format=I420,width={W},height={H},framerate=30/1", "!", "x264enc",
                 "!", "h264parse", "!", "mp4mux", "!", "filesink", f"location={src}"],
                "make in.mp4")
        p.start().wait(30)
        p.finish()
        (argv,) = dry("publish-file.sh", "clip", src, "channel-order=bgra")
        r = Run(for_cpu(argv), name).start()
        r.wait(30)
        r.finish()
        expect(name, r.frames.get("clip", 0), FRAMES, FRAMES, r.size.get("clip"), (W, H), r.error)
    except (RuntimeError, GLib.Error) as e:
        report(False, name, getattr(e, "message", str(e)))


def rehearse_republish():
    name = "rehearse republish.sh (cudalinksrc -> scale -> cudalinksink)"
    try:
        (argv,) = dry("republish.sh", "--td", "in", "out", "160", "90")
        r = Run(for_cpu(argv), name).start()
        r.wait(30)
        r.finish()
        expect(name, r.frames.get("out", 0), FRAMES, FRAMES, r.size.get("out"), (160, 90), r.error)
    except (RuntimeError, GLib.Error) as e:
        report(False, name, getattr(e, "message", str(e)))


def rehearse_main(tmp):
    name = "rehearse run-main.sh (publisher, reader -> MP4)"
    try:
        publisher, reader = dry("run-main.sh", "--no-build", "2", env={"RUN_MAIN_DIR": tmp})
        pub = Run(for_cpu(publisher), name + " publisher").start()
        rd = Run(for_cpu(reader), name + " reader").start()
        pub.wait(30)
        rd.wait(30)
        pub.finish()
        rd.finish()
        mp4 = os.path.join(tmp, "main.mp4")
        n, size = decode_count(mp4) if not rd.error else (0, None)
        # the publisher's frames reach its stand-in sink; the reader's MP4
        expect(name + " publisher", pub.frames.get(next(iter(pub.frames), ""), 0), FRAMES, FRAMES,
               (W, H), (W, H), pub.error)
        expect(name + " reader", n, FRAMES - 1, FRAMES, size, (W, H), rd.error)
    except (RuntimeError, GLib.Error, ValueError) as e:
        report(False, name, getattr(e, "message", str(e)))


def main():
    what = sys.argv[1:] or ["parse", "rehearse"]
    build_gst = os.path.join(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")), "gst")
    if os.path.isdir(build_gst):
        os.environ["GST_PLUGIN_PATH_1_0"] = build_gst
    Gst.init(None)
    for e in ("cudalinksrc", "cudalinksink"):
        if not Gst.ElementFactory.find(e):
            print(f"FAIL {e} is not registered (build the plugin: meson compile -C build)")
            return 1
    if "parse" in what:
        check_parse()
    if "rehearse" in what:
        with tempfile.TemporaryDirectory(prefix="cudalink-recipes-") as tmp:
            rehearse_main(tmp)
            rehearse_record(tmp)
            rehearse_network()
            rehearse_file(tmp)
            rehearse_republish()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
