#!/usr/bin/env python3
"""Frames made in Python (numpy, or torch) published as a cuda-link segment.

    appsrc (RGBA frames, 30 fps, live) ! cudalinksink ipc-name=NAME [PROPS]

Readers: a TouchDesigner Receiver (Ipcmemname NAME; --td publishes its
native BGRA bottom-up layout), the cuda_link Python Importer, cudalinksrc
(examples/appsink-numpy.py NAME). The frames are system memory: cudalinksink
uploads each one inside the element (one host-to-device copy) and publishes
it. make_frame() draws a moving gradient with the frame number in the
first pixel's red and green bytes; put your own frames there. Last line:
"appsrc-numpy: N frames of WxH pushed; cudalinksink published N".

With --torch the frames are computed by torch on the GPU and copied to the
host for appsrc (.cpu()), then uploaded again: GStreamer 1.22 cannot wrap a
torch CUDA tensor as a buffer. To publish torch tensors without that round
trip, use the cuda_link Python Exporter (the protocol straight from CUDA
memory) instead of GStreamer.

usage: examples/appsrc-numpy.py NAME [--frames N] [--size WxH] [--fps F] [--td] [--torch]
  --frames N  publish N frames, then end cleanly (default 300; 0: until Ctrl-C)

Exit status: 0 done, 1 an error on the bus (its message is printed), 2
something this machine lacks (PyGObject, numpy, torch with --torch, the
CUDA driver), 130 Ctrl-C (the segment is still shut down cleanly).

Needs: python3 with PyGObject and numpy (Debian: python3-gi
gir1.2-gst-plugins-base-1.0 python3-numpy), torch for --torch, GStreamer
1.22, the cudalink plugin (build/gst is used when it exists), an NVIDIA GPU
and its driver. GPU machines without PyGObject: carry Debian's Python 3.11
with it there (tests/gpu/bundle.sh: .gpu/python3.11 examples/appsrc-numpy.py
NAME; it has numpy, not torch), or use the cuda_link Python Exporter.
"""
import argparse
import sys

from recipe_lib import PROG, cuda_driver_problem, fail, use_build_plugin


def main():
    ap = argparse.ArgumentParser(prog=PROG, description="numpy/torch -> appsrc -> cudalinksink")
    ap.add_argument("name", help="the segment name to publish (ipc-name)")
    ap.add_argument("--frames", type=int, default=300, help="frames to publish (0: forever)")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    ap.add_argument("--td", action="store_true", help="for a TouchDesigner Receiver: BGRA, bottom-up")
    ap.add_argument("--torch", action="store_true", help="compute the frames with torch on the GPU")
    args = ap.parse_args()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        fail(f"--size {args.size}: want WIDTHxHEIGHT, e.g. 1280x720", 64)

    use_build_plugin()
    try:
        import numpy as np
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import GLib, Gst, GstApp  # noqa: F401 (GstApp: appsrc API)
    except (ImportError, ValueError) as e:
        fail(f"needs numpy, PyGObject and GStreamer's introspection data ({e}); Debian: "
             "apt-get install python3-numpy python3-gi gir1.2-gst-plugins-base-1.0, and run "
             f"it with /usr/bin/python3 (this is {sys.executable})")
    torch = None
    if args.torch:
        try:
            import torch
        except ImportError as e:
            fail(f"--torch needs PyTorch ({e})")

    Gst.init(None)
    if not Gst.ElementFactory.find("cudalinksink"):
        fail("GStreamer has no cudalinksink: build the plugin (meson compile -C build) "
             "or set GST_PLUGIN_PATH to the folder holding libgstcudalink.so")
    props = "channel-order=bgra video-direction=vert" if args.td else ""
    caps = f"video/x-raw,format=RGBA,width={width},height={height},framerate={args.fps}/1"
    desc = (f"appsrc name=src is-live=true format=time block=true caps={caps} ! "
            f"cudalinksink name=sink ipc-name={args.name} {props}")
    try:
        pipeline = Gst.parse_launch(desc)
    except GLib.Error as e:
        fail(f"cannot build the pipeline '{desc}': {e.message}", 1)
    src = pipeline.get_by_name("src")

    why = cuda_driver_problem()
    if why:
        fail(f"{why}: this machine cannot publish cuda-link frames (an NVIDIA GPU and its "
             "driver are needed)")
    if torch is not None and not torch.cuda.is_available():
        fail("--torch: torch sees no CUDA device")

    # A horizontal gradient scrolling by 4 pixels a frame, a vertical one,
    # opaque alpha; the frame number (mod 65536) in pixel (0, 0)'s R and G.
    if torch is not None:
        xs = torch.arange(width, device="cuda", dtype=torch.int32)
        ys = torch.arange(height, device="cuda", dtype=torch.int32)

        def make_frame(k):
            f = torch.empty((height, width, 4), device="cuda", dtype=torch.uint8)
            f[..., 0] = ((xs + 4 * k) % 256).to(torch.uint8)[None, :]
            f[..., 1] = (ys * 255 // max(height - 1, 1)).to(torch.uint8)[:, None]
            f[..., 2] = 128
            f[..., 3] = 255
            f[0, 0, 0], f[0, 0, 1] = k & 0xFF, (k >> 8) & 0xFF
            return f.cpu().numpy()
    else:
        xs = np.arange(width, dtype=np.int32)
        ys = np.arange(height, dtype=np.int32)

        def make_frame(k):
            f = np.empty((height, width, 4), np.uint8)
            f[..., 0] = ((xs + 4 * k) % 256)[None, :]
            f[..., 1] = (ys * 255 // max(height - 1, 1))[:, None]
            f[..., 2] = 128
            f[..., 3] = 255
            f[0, 0, 0], f[0, 0, 1] = k & 0xFF, (k >> 8) & 0xFF
            return f

    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    period = Gst.SECOND // args.fps
    rc, k = 0, 0
    try:
        while not args.frames or k < args.frames:
            buf = Gst.Buffer.new_wrapped(make_frame(k).tobytes())
            buf.pts, buf.duration, buf.offset = k * period, period, k
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                break
            k += 1
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg:
                err, dbg = msg.parse_error()
                print(f"{PROG}: {err.message}", file=sys.stderr)
                rc = 1
                break
        if rc == 0:
            src.emit("end-of-stream")
            msg = bus.timed_pop_filtered(10 * Gst.SECOND,
                                         Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg and msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
                print(f"{PROG}: {err.message}", file=sys.stderr)
                rc = 1
    except KeyboardInterrupt:
        rc = 130
    stats = pipeline.get_by_name("sink").get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    print(f"{PROG}: {k} frames of {width}x{height} pushed; cudalinksink published "
          f"{stats.get_uint64('frames-published')[1]}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
