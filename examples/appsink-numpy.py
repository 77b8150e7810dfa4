#!/usr/bin/env python3
"""Frames from a cuda-link producer into numpy arrays, through GStreamer.

    cudalinksrc ipc-name=NAME on-producer-loss=eos [PROPS] ! video/x-raw ! appsink

The producer: a TouchDesigner Sender (--td), the cuda_link Python Exporter,
a cudalinksink, any libcudalink program. Asking for video/x-raw (system
memory) makes cudalinksrc download each frame itself, one device-to-host
copy, as a cudadownload would. Each frame becomes an (height, width,
channels) numpy array (uint8, or uint16 for 16-bit formats), which this
example only summarises; put your processing in on_frame().

Output: "appsink-numpy: reading NAME ..." once the pipeline runs, a line
every 30 frames (size, format, dtype and shape, each channel's mean), and
last "appsink-numpy: N frames of WxH FORMAT dtype[H, W, C]; cudalinksrc:
frames N, missed N" (tests/gpu/gpu_recipes checks these).

usage: examples/appsink-numpy.py NAME [--frames N] [--td] [--timeout MS]
  --frames N   stop after N frames (default: until the producer goes away)
  --td         a TouchDesigner Sender: channel-order=bgra video-direction=vert
  --timeout MS how long to wait for the producer to appear (default 5000)

Exit status: 0 frames came, 1 an error on the bus (its message is printed),
2 something this machine lacks (PyGObject, numpy, the CUDA driver), 130
Ctrl-C.

Needs: python3 with PyGObject and numpy (Debian: python3-gi
gir1.2-gst-plugins-base-1.0 python3-numpy), GStreamer 1.22, the cudalink
plugin (build/gst is used when it exists), an NVIDIA GPU and its driver.
GPU machines without PyGObject (a bare CUDA/PyTorch image): carry Debian's
Python 3.11 with it there (tests/gpu/bundle.sh: .gpu/python3.11
examples/appsink-numpy.py NAME), or use the cuda_link Python Importer, or
cudalinksrc from C (examples/cudalink-appsink.c).
"""
import argparse
import sys

from recipe_lib import PROG, cuda_driver_problem, fail, use_build_plugin


def main():
    ap = argparse.ArgumentParser(prog=PROG, description="cudalinksrc -> appsink -> numpy")
    ap.add_argument("name", help="the producer's segment name (ipc-name)")
    ap.add_argument("--frames", type=int, default=0, help="stop after N frames (0: until EOS)")
    ap.add_argument("--td", action="store_true", help="TouchDesigner Sender: BGRA, bottom-up")
    ap.add_argument("--timeout", type=int, default=5000, help="ms to wait for the producer")
    args = ap.parse_args()

    use_build_plugin()
    try:
        import numpy as np
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        gi.require_version("GstVideo", "1.0")
        from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: F401 (GstApp: appsink API)
    except (ImportError, ValueError) as e:
        fail(f"needs numpy, PyGObject and GStreamer's introspection data ({e}); Debian: "
             "apt-get install python3-numpy python3-gi gir1.2-gst-plugins-base-1.0, and run "
             f"it with /usr/bin/python3 (this is {sys.executable})")

    Gst.init(None)
    if not Gst.ElementFactory.find("cudalinksrc"):
        fail("GStreamer has no cudalinksrc: build the plugin (meson compile -C build) "
             "or set GST_PLUGIN_PATH to the folder holding libgstcudalink.so")
    props = "channel-order=bgra video-direction=vert" if args.td else ""
    desc = (f"cudalinksrc name=src ipc-name={args.name} timeout={args.timeout} "
            f"on-producer-loss=eos {props} ! video/x-raw ! "
            "appsink name=sink emit-signals=false sync=false max-buffers=2 drop=false")
    try:
        pipeline = Gst.parse_launch(desc)
    except GLib.Error as e:
        fail(f"cannot build the pipeline '{desc}': {e.message}", 1)
    sink = pipeline.get_by_name("sink")

    why = cuda_driver_problem()
    if why:
        fail(f"{why}: this machine cannot read cuda-link frames (an NVIDIA GPU and its "
             "driver are needed)")

    state = {"frames": 0, "shape": "no frame"}

    def on_frame(frame, info, buf):
        """Your processing goes here: frame is (height, width, channels)."""
        n = state["frames"]
        if n == 0:
            state["shape"] = (f"{info.width}x{info.height} {info.finfo.name} "
                              f"{frame.dtype}{list(frame.shape)}")
        if n % 30 == 0:
            mean = ", ".join(f"{m:.1f}" for m in frame.reshape(-1, frame.shape[2]).mean(axis=0))
            print(f"frame {n} (producer frame {buf.offset}): {info.width}x{info.height} "
                  f"{info.finfo.name}, {frame.dtype}{list(frame.shape)}, channel means {mean}",
                  flush=True)

    def to_numpy(sample):
        buf = sample.get_buffer()
        info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        depth = info.finfo.bits
        dtype = np.uint16 if depth > 8 else np.uint8
        channels = info.finfo.n_components
        meta = GstVideo.buffer_get_video_meta(buf)
        stride = meta.stride[0] if meta else info.stride[0]
        offset = meta.offset[0] if meta else info.offset[0]
        ok, mapped = buf.map(Gst.MapFlags.READ)
        if not ok:
            fail("cannot map a buffer", 1)
        try:
            rows = np.frombuffer(mapped.data, np.uint8, count=stride * info.height, offset=offset)
            row_bytes = info.width * channels * dtype().itemsize
            frame = (rows.reshape(info.height, stride)[:, :row_bytes].copy()
                     .view(dtype).reshape(info.height, info.width, channels))
        finally:
            buf.unmap(mapped)
        return frame, info, buf

    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    print(f"{PROG}: reading {args.name} (its producer has {args.timeout} ms to appear)", flush=True)
    rc = 0
    try:
        while not args.frames or state["frames"] < args.frames:
            sample = sink.try_pull_sample(100 * Gst.MSECOND)
            if sample:
                on_frame(*to_numpy(sample))
                state["frames"] += 1
                continue
            msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg and msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
                print(f"{PROG}: {err.message}", file=sys.stderr)
                rc = 1
                break
            if msg or sink.is_eos():
                break
    except KeyboardInterrupt:
        rc = 130
    pipeline.set_state(Gst.State.NULL)
    stats = pipeline.get_by_name("src").get_property("stats")
    print(f"{PROG}: {state['frames']} frames of {state['shape']}; cudalinksrc: frames "
          f"{stats.get_uint64('frames')[1]}, missed {stats.get_uint64('missed')[1]}")
    if rc == 0 and state["frames"] == 0:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
