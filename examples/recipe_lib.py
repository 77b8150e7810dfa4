"""What the Python recipes in examples/ share (as recipe-lib.sh serves the
shell ones): the plugin from the build tree, the driver check that comes
before any GStreamer CUDA element, and one-line failures named after the
recipe (appsink-numpy.py fails as "appsink-numpy: ...")."""
import ctypes
import os
import sys

PROG = os.path.splitext(os.path.basename(sys.argv[0]))[0]


def fail(msg, code=2):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def use_build_plugin():
    """The plugin from the checkout's build/ (or BUILD_DIR), like plugin-path.sh."""
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.environ.get("BUILD_DIR", os.path.join(here, "..", "build"))
    gst = os.path.join(build, "gst")
    if os.path.isdir(gst):
        old = os.environ.get("GST_PLUGIN_PATH_1_0")
        os.environ["GST_PLUGIN_PATH_1_0"] = gst + (os.pathsep + old if old else "")


def cuda_driver_problem():
    """None when the NVIDIA driver loads and initialises, else why not."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"NVIDIA CUDA driver library not found (libcuda.so.1): {e}"
    rc = cuda.cuInit(0)
    if rc != 0:
        return f"the NVIDIA CUDA driver did not initialise (cuInit returned {rc})"
    return None
