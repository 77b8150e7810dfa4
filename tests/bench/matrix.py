#!/usr/bin/env python3
"""One mode of tests/bench/run's benchmark matrix (read tests/bench/run and
docs/BENCHMARKS.md first). Runs every transport x size x format cell the
same way and writes, under RESULTS/MODE/:

  measurements.csv   one row per cell (status ok, n/a: why, failed: why,
                     skipped: why), every figure of it
  latencies.csv      every frame's latency (us) of every cell, by phase
                     (of the unthrottled phase 2000 spread over it)
  env.json           GPU, driver, MPS state, what was found, timings
  cells/CELL/        each process's log

    matrix.py MODE RESULTS          (MODE: nomps or mps, a label only: the
                                     caller starts and stops MPS)

A cell is two processes (bench_peer produce / consume, cipd_peer.py
produce / consume) or one (bench_floor), each under `timeout`; a cell that
cannot run records why and the matrix goes on. Environments: GStreamer 1.22
rows and the floor with .gpu/env.sh's (plus build/gst), the 1.26 rows with
.anchor/env.sh's, the Python rows with this process's own; each captured
once from a bash that sourced only that script, so the two GStreamers never
share a variable.

Knobs (environment): BENCH_BUDGET_S (450: no cell starts that would end past it),
BENCH_UNTHROTTLED_S (1.2), BENCH_LAT_FRAMES (300), BENCH_LAT_FPS (200),
BENCH_CPU60_S (3), BENCH_ONLY (comma-separated transport keys),
BENCH_SIZES (e.g. 1920x1080:rgba8,512x512:float32), BENCH_BUILD (build),
BENCH_GST122_ENV (.gpu/env.sh), BENCH_GST126_ENV (.anchor/env.sh),
BENCH_PLUGIN_DIR (BUILD/gst), BENCH_CUDALINK_SINK_PROPS and BENCH_CUDALINK_SRC_PROPS
(properties added to cudalinksink's and cudalinksrc's, e.g. "gpu-wait=spin": for tuning
experiments; env.json records them).
"""
import csv
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def env_path(name, default):
    v = os.environ.get(name, default)
    return v if os.path.isabs(v) else os.path.join(ROOT, v)


BUILD = env_path("BENCH_BUILD", "build")
PEER = os.path.join(BUILD, "tests", "bench", "bench_peer")
FLOOR = os.path.join(BUILD, "tests", "bench", "bench_floor")
PYPEER = os.path.join(HERE, "py", "cipd_peer.py")

# priority order: the cells the goals need first, so that a run cut short
# by its time budget still has them
SIZES = [(1920, 1080, "rgba8"), (3840, 2160, "float32"), (512, 512, "rgba8"),
         (3840, 2160, "rgba8"), (1920, 1080, "float32"), (512, 512, "float32")]
CPU60_CELL = (1920, 1080, "rgba8")

# key, label, kind
TRANSPORTS = [
    ("floor-local", "floor: one process, device-to-device copy", "floor"),
    ("floor-ipc-copy", "floor: CUDA IPC, 2 processes, consumer copies (lockstep)", "floor"),
    ("floor-ipc-read", "floor: CUDA IPC, 2 processes, read in place (lockstep)", "floor"),
    ("cudalink-copy", "cudalinksink -> cudalinksrc io-mode=copy", "gst122"),
    ("cudalink-import", "cudalinksink -> cudalinksrc io-mode=import", "gst122"),
    ("cudaipc-copy", "1.26 cudaipcsink -> cudaipcsrc io-mode=copy", "gst126"),
    ("cudaipc-import", "1.26 cudaipcsink -> cudaipcsrc io-mode=import", "gst126"),
    ("cudaipc-mmap", "1.26 cudaipcsink ipc-mode=mmap -> cudaipcsrc", "gst126"),
    ("shm", "cudadownload ! shmsink -> shmsrc ! cudaupload (CPU path)", "gst122"),
    ("python", "Python CIPD producer -> Python consumer (cupy, polls 200 us)", "python"),
]
LABELS = {k: label for k, label, _ in TRANSPORTS}

FIELDS = ["mode", "transport", "label", "width", "height", "format", "frame_bytes", "status",
          "note", "lat_fps", "lat_frames", "lat_p50_us", "lat_p90_us", "lat_p99_us",
          "lat_max_us", "lat_missed", "lat_torn", "lat_repeats", "unthr_frames", "unthr_s",
          "unthr_fps", "unthr_missed", "unthr_torn", "unthr_repeats", "unthr_cpu_us_per_frame",
          "unthr_lat_p50_us", "producer_unthr_fps", "cpu60_pct", "cpu60_frames",
          "cpu60_missed", "cpu60_torn", "cpu60_lat_p50_us", "cpu60_lat_p99_us", "cell_s",
          "gpu", "mps", "lat_read_p50_us"]


def shown(path):
    """path relative to the checkout when inside it"""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def pct(sorted_v, q):
    """benchutil.h's pct(): v[n*q/100] of the sorted samples"""
    n = len(sorted_v)
    return sorted_v[min(n - 1, (n * q) // 100)] if n else None


def capture_env(script):
    """the environment after a bash sourced `script` (None, why)"""
    try:
        r = subprocess.run(["bash", "-c", script + "\nenv -0"], cwd=ROOT, capture_output=True,
                           timeout=300)
    except subprocess.TimeoutExpired:
        return None, "sourcing took over 300 s"
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        return None, (err[-1] if err else "exit status %d" % r.returncode)
    env = {}
    for item in r.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    for k in ("SHLVL", "_", "PWD", "OLDPWD"):
        env.pop(k, None)
    return env, None


def run_quick(cmd, env, timeout=60):
    """(rc, output) of a short command; rc None when it could not run"""
    try:
        r = subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % timeout
    except OSError as e:
        return None, str(e)


def first_line(text, want=None):
    for line in (text or "").splitlines():
        line = line.strip()
        if line and (want is None or line.startswith(want)):
            return line
    return ""


class Proc:
    """a cell's process under `timeout`, its output in a log and a queue"""

    def __init__(self, cmd, env, log_path, limit):
        self.log = open(log_path, "w")
        self.log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        self.log.flush()
        self.lines, self.all, self.errors = queue.Queue(), [], []
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(["timeout", "-k", "3", str(int(limit))] + cmd, env=env,
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1,
                                  errors="replace")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.log.write(line)
            self.log.flush()
            line = line.rstrip("\n")
            self.all.append(line)
            if line.startswith("ERROR "):
                self.errors.append(line[6:].strip())
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, word, timeout):
        """the first line starting with word, or None (timeout, end of output)"""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                return None
            if line.startswith(word):
                return line

    def line(self, word):
        for line in self.all:
            if line.startswith(word):
                return line
        return None

    def send(self, text):
        try:
            self.p.stdin.write(text + "\n")
            self.p.stdin.flush()
        except (OSError, ValueError):
            pass

    def why(self, waiting_for):
        if self.errors:
            return self.errors[0]
        rc = self.p.poll()
        if rc == 124:
            return "killed by timeout while waiting for %s" % waiting_for
        if rc is not None:
            tail = [x for x in self.all if x.strip()][-1:] or ["no output"]
            return "exited with status %d before %s (last line: %s)" % (rc, waiting_for, tail[0][:160])
        return "no %s after %.0f s" % (waiting_for, time.monotonic() - self.t0)

    def stop(self, grace=5.0):
        self.send("quit")
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(grace)
        except subprocess.TimeoutExpired:
            self.p.terminate()  # `timeout` passes it on to the program
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.reader.join(2)
        self.log.write("# exit status %s\n" % self.p.returncode)
        self.log.close()


class Matrix:
    def __init__(self, mode, results):
        self.mode = mode
        self.tree = os.path.join(results, mode)
        self.cells_dir = os.path.join(self.tree, "cells")
        os.makedirs(self.cells_dir, exist_ok=True)
        self.t_start = time.monotonic()
        self.budget = float(os.environ.get("BENCH_BUDGET_S", "450"))
        self.unthr_s = float(os.environ.get("BENCH_UNTHROTTLED_S", "1.2"))
        self.lat_frames = int(os.environ.get("BENCH_LAT_FRAMES", "300"))
        self.lat_fps = float(os.environ.get("BENCH_LAT_FPS", "200"))
        self.cpu60_s = float(os.environ.get("BENCH_CPU60_S", "3"))
        self.lat_max_s = 2.5
        only = os.environ.get("BENCH_ONLY", "")
        self.only = set(x.strip() for x in only.split(",") if x.strip())
        sizes = os.environ.get("BENCH_SIZES", "")
        self.sizes = SIZES
        if sizes:
            self.sizes = []
            for item in sizes.split(","):
                wh, fmt = item.split(":")
                w, h = wh.split("x")
                self.sizes.append((int(w), int(h), fmt))
        self.info = {"mode": self.mode, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "plan": {"unthrottled_s": self.unthr_s, "lat_frames": self.lat_frames,
                              "lat_fps": self.lat_fps, "lat_max_s": self.lat_max_s,
                              "cpu60_s": self.cpu60_s, "budget_s": self.budget}}
        # tuning experiments: more properties for our two elements
        self.extra_props = {k: os.environ.get("BENCH_CUDALINK_%s_PROPS" % k.upper(), "").split()
                            for k in ("sink", "src")}
        if any(p.startswith("io-mode=") for p in self.extra_props["src"]):
            # the transport key sets it: another value would relabel the cells
            raise SystemExit("bench: BENCH_CUDALINK_SRC_PROPS may not set io-mode "
                             "(cudalink-copy / cudalink-import set it)")
        self.info["cudalink_extra_props"] = {k: " ".join(v) for k, v in self.extra_props.items()}
        self.na = {}   # transport -> "n/a: why" for all its cells
        self.rows, self.latencies = [], []
        self.fail_streak = {}
        self.counter = 0

    def elapsed(self):
        return time.monotonic() - self.t_start

    # ---------------------------------------------------------------- setup
    def preflight(self):
        base = dict(os.environ)
        gpu_env = env_path("BENCH_GST122_ENV", ".gpu/env.sh")
        plugin_dir = env_path("BENCH_PLUGIN_DIR", os.path.join(BUILD, "gst"))
        anchor_env = env_path("BENCH_GST126_ENV", ".anchor/env.sh")
        nvrtc = ('n=$(ls /usr/local/cuda/lib64/libnvrtc.so.* 2>/dev/null | head -n 1); '
                 '[ -n "$n" ] && export GST_CUDA_NVRTC_LIBNAME=$n; ')
        self.env122 = self.env126 = None
        if os.path.exists(gpu_env):
            # (its status is its last loop's: not an error)
            self.env122, why = capture_env(
                '. %s >/dev/null 2>&1\nexport GST_PLUGIN_PATH_1_0=%s\n%s'
                % (shlex.quote(gpu_env), shlex.quote(plugin_dir), nvrtc))
            why122 = why and "sourcing %s failed: %s" % (gpu_env, why)
        else:
            why122 = "no %s (tests/gpu/bundle.sh -b build, carry .gpu)" % shown(gpu_env)
        if os.path.exists(anchor_env):
            # the driver's folder after the anchor's, as .gpu/env.sh adds it
            self.env126, why = capture_env(
                'export ANCHOR_QUIET=1\n. %s >/dev/null 2>&1\n[ -n "$ANCHOR_PREFIX" ] || exit 3\n'
                'for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64; do\n'
                '  [ -e "$d/libcuda.so.1" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d" && break\n'
                'done\n' % shlex.quote(anchor_env))
            why126 = why and "sourcing %s failed: %s" % (anchor_env, why)
        else:
            why126 = "no %s (cp -a ../shared/anchor-gst126 .anchor, carry .anchor)" % shown(anchor_env)
        self.env_floor = self.env122 or base
        self.env_py = base
        self.info["env"] = {"gst122": why122 or "ok", "gst126": why126 or "ok"}

        # the GPU, through the floor program (no driver: the whole run
        # stops); while it holds its context, MPS (if running) lists the
        # server that client made it start
        check = Proc([FLOOR, "check", "2"], self.env_floor, os.path.join(self.tree, "check.log"), 60)
        gpu_line = check.wait_for("GPU ", 60)
        mps_rc, mps_out = self.mps_servers() if gpu_line else (None, "")
        check.stop()
        if not gpu_line:
            why = check.why("the GPU's name")
            if why.startswith("bench_floor: "):
                why = why[len("bench_floor: "):]
            self.info["fatal"] = why
            return why
        self.info["gpu_check"] = gpu_line
        rc, out = run_quick(["nvidia-smi", "--query-gpu=name,driver_version",
                             "--format=csv,noheader"], base, 30)
        self.info["gpu"] = first_line(out) if rc == 0 else gpu_line[4:]
        self.gpu = self.info["gpu"]
        rc, out = mps_rc, mps_out
        self.info["mps_servers"] = out
        if self.mode == "mps":
            if rc != 0 or not out.strip():
                why = "MPS was asked for, but it lists no server while a CUDA client runs (%s)" % (
                    out.strip() or "status %s" % rc)
                self.info["fatal"] = why
                return why
            self.mps = "on (server %s)" % " ".join(out.split())
        else:
            self.mps = "off" if rc != 0 or not out.strip() else "ON?! (server %s)" % out.strip()
        self.info["mps"] = self.mps

        # GStreamer 1.22 (our elements, the shm path)
        found = {}
        if self.env122:
            for el in ("cudalinksink", "cudalinksrc", "cudaupload", "cudadownload", "imagefreeze",
                       "shmsink", "shmsrc"):
                rc, out = run_quick(["gst-inspect-1.0", el], self.env122, 120)
                found[el] = out if rc == 0 else None
            self.info["gst122_version"] = first_line(run_quick(["gst-inspect-1.0", "--version"],
                                                               self.env122)[1], "GStreamer")
        missing = lambda els: [e for e in els if not found.get(e)]
        for key in ("cudalink-copy", "cudalink-import"):
            m = missing(["cudalinksink", "cudalinksrc", "cudaupload", "imagefreeze"])
            if not self.env122:
                self.na[key] = "n/a: " + why122
            elif m:
                self.na[key] = "n/a: not registered in 1.22: " + ", ".join(m)
        src_doc = found.get("cudalinksrc") or ""
        self.io_mode = self.io_mode_values(src_doc)
        self.info["cudalinksrc_io_mode"] = self.io_mode
        if "cudalink-copy" not in self.na and self.io_mode is not None and "copy" not in self.io_mode:
            self.na["cudalink-copy"] = "n/a: cudalinksrc io-mode has no value copy"
        if "cudalink-import" not in self.na:
            if self.io_mode is None:
                self.na["cudalink-import"] = "n/a: this cudalinksrc has no io-mode property"
            elif "import" not in self.io_mode:
                self.na["cudalink-import"] = "n/a: cudalinksrc io-mode has no value import"
        m = missing(["cudaupload", "cudadownload", "imagefreeze", "shmsink", "shmsrc"])
        if not self.env122:
            self.na["shm"] = "n/a: " + why122
        elif m:
            self.na["shm"] = "n/a: not registered in 1.22: " + ", ".join(m)
        st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
        self.shm_free = st.f_bavail * st.f_frsize if st else 0
        self.info["dev_shm_free_mb"] = round(self.shm_free / 2**20)

        # GStreamer 1.26 (the anchor): cudaipcsink / cudaipcsrc
        why = None
        if not self.env126:
            why = "n/a: " + why126
        else:
            bad = []
            for el in ("cudaipcsink", "cudaipcsrc", "cudaupload", "imagefreeze"):
                rc, out = run_quick(["gst-inspect-1.0", el], self.env126, 180)
                if rc != 0:
                    bad.append(el)
            self.info["gst126_version"] = first_line(run_quick(["gst-inspect-1.0", "--version"],
                                                               self.env126)[1], "GStreamer")
            if bad:
                why = "n/a: not registered in the 1.26 anchor: " + ", ".join(bad)
        if why:
            for key in ("cudaipc-copy", "cudaipc-import", "cudaipc-mmap"):
                self.na[key] = why

        # Python: cupy and the GPU
        rc, out = run_quick([sys.executable, "-c", "import cupy; cupy.cuda.runtime.getDeviceCount();"
                             " print('cupy', cupy.__version__)"], self.env_py, 120)
        self.info["python"] = "Python %s, %s" % (sys.version.split()[0],
                                                 first_line(out) if rc == 0 else "no cupy")
        if rc != 0:
            self.na["python"] = "n/a: cupy or the GPU not usable from %s: %s" % (
                sys.executable, (first_line(out.splitlines()[-1] if out.strip() else "") or "?")[:200])
        if self.only:
            for key, _, _ in TRANSPORTS:
                if key not in self.only:
                    self.na[key] = "skipped: not in BENCH_ONLY"
        self.info["not_run"] = self.na
        log("bench: %s; MPS %s; %.0f s of setup" % (self.gpu, self.mps, self.elapsed()))
        for key, why in self.na.items():
            log("bench: %-16s %s" % (key, why))
        return None

    @staticmethod
    def mps_servers():
        try:
            r = subprocess.run(["nvidia-cuda-mps-control"], input=b"get_server_list\n",
                               capture_output=True, timeout=10)
            return r.returncode, r.stdout.decode(errors="replace").strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)

    @staticmethod
    def io_mode_values(doc):
        """the values of cudalinksrc's io-mode property in gst-inspect's
        text, None when there is no such property"""
        lines = doc.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("io-mode") and ":" in line:
                vals = []
                for more in lines[i + 1:i + 12]:
                    s = more.strip()
                    if not s:
                        break
                    if s.startswith("(") and "):" in s:
                        vals.append(s.split("):", 1)[1].split()[0])
                return vals
        return None

    # ---------------------------------------------------------------- cells
    def plan_args(self, cpu60):
        a = ["--unthrottled-s", str(self.unthr_s), "--lat-frames", str(self.lat_frames),
             "--lat-fps", str(self.lat_fps), "--lat-max-s", str(self.lat_max_s)]
        if cpu60:
            a += ["--cpu60-s", str(self.cpu60_s)]
        return a

    def plan_time(self, cpu60):
        """the longest a producer's schedule can take (peerstats.h)"""
        return 0.2 + self.unthr_s + 3.0 + (self.cpu60_s + 0.2 if cpu60 else 0.2) + self.lat_max_s + 1

    def cell_estimate(self, kind, cpu60):
        """what a cell usually takes: its schedule with short settles, and
        the processes' start and stop"""
        start = {"floor": 1.0, "python": 4.0}.get(kind, 3.0)
        return start + 0.6 + self.unthr_s + (self.cpu60_s + 0.2 if cpu60 else 0) + \
            min(self.lat_frames / self.lat_fps, self.lat_max_s)

    def cell(self, key, kind, w, h, fmt):
        f32 = fmt == "float32"
        frame_bytes = w * h * (16 if f32 else 4)
        row = {k: "" for k in FIELDS}
        row.update(mode=self.mode, transport=key, label=LABELS[key], width=w, height=h,
                   format=fmt, frame_bytes=frame_bytes, gpu=getattr(self, "gpu", ""),
                   mps=getattr(self, "mps", ""))
        name = "%s-%dx%d-%s" % (key, w, h, fmt)
        cpu60 = (w, h, fmt) == CPU60_CELL and self.cpu60_s > 0
        if key in self.na:
            row["status"] = self.na[key]
            return row
        if key == "shm" and self.shm_free < 3 * w * h * 4 * (4 if f32 else 1) + (64 << 20):
            row["status"] = "n/a: /dev/shm has %d MB free, shmsink needs 3 frames and some" % (
                self.shm_free >> 20)
            return row
        streak = self.fail_streak.get(key)
        if streak and streak[0] >= 2:
            row["status"] = "skipped: its two cells before failed (%s)" % streak[1][:200]
            return row
        if self.elapsed() + self.cell_estimate(kind, cpu60) > self.budget:
            row["status"] = "skipped: time budget (BENCH_BUDGET_S=%.0f) spent" % self.budget
            return row
        d = os.path.join(self.cells_dir, name)
        os.makedirs(d, exist_ok=True)
        lat_path = os.path.join(d, "latencies.txt")
        t0 = time.monotonic()
        self.counter += 1
        tag = "clbench-%d-%d" % (os.getpid(), self.counter)
        note = ""
        try:
            if kind == "floor":
                res, prod, why = self.run_floor(key, w, h, f32, cpu60, d, lat_path)
            else:
                res, prod, why, note = self.run_pair(key, kind, w, h, f32, cpu60, d, lat_path, tag)
        finally:
            for p in ("/tmp/%s.ipc" % tag, "/tmp/%s.shm" % tag, "/dev/shm/%s" % tag):
                if os.path.exists(p):
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
        row["cell_s"] = "%.1f" % (time.monotonic() - t0)
        row["note"] = note
        if why:
            row["status"] = "failed: " + why.replace("\n", " ")[:300]
        else:
            self.fill(row, res, prod, lat_path)
        if row["status"].startswith("failed"):
            n = self.fail_streak.get(key, (0, ""))[0] + 1
            self.fail_streak[key] = (n, row["status"][8:])
        else:
            self.fail_streak[key] = (0, "")
        return row

    def geometry(self, key, w, f32):
        """(width of the RGBA8 frame the producer pushes, note)"""
        if not f32:
            return w, ""
        if key.startswith("cudalink"):
            return w, ("float32 on the wire: the sink converts RGBA8 to float32, "
                       "the src back to RGBA8 (GStreamer has no float32 video format)")
        return 4 * w, ("float32: GStreamer has no float32x4 video format, these are the same "
                       "bytes as RGBA8 4x as wide")

    def run_floor(self, key, w, h, f32, cpu60, d, lat_path):
        mode = key[len("floor-"):]
        cmd = [FLOOR, mode, str(w), str(h), "16" if f32 else "4", "--lat-out", lat_path] + \
            self.plan_args(cpu60)
        p = Proc(cmd, self.env_floor, os.path.join(d, "floor.log"), self.plan_time(cpu60) + 40)
        line = p.wait_for("RESULT", self.plan_time(cpu60) + 30)
        why = None if line else p.why("its RESULT")
        p.stop()
        prod = p.line("PRODUCER")
        return self.parse(line), self.parse(prod), why

    def run_pair(self, key, kind, w, h, f32, cpu60, d, lat_path, tag):
        pw, note = self.geometry(key, w, f32)
        limit = self.plan_time(cpu60) + 60
        if kind == "python":
            env = self.env_py
            py = [sys.executable, "-u", PYPEER]
            pcmd = py + ["produce", tag, str(w), str(h), "float32" if f32 else "uint8"] + \
                self.plan_args(cpu60)
            ccmd = py + ["consume", tag, "--lat-out", lat_path]
            note = "float32: the protocol's own dtype" if f32 else ""
        else:
            env = self.env122 if kind == "gst122" else self.env126
            sink, src = self.descriptions(key, tag, pw, h, f32)
            if key == "cudalink-copy" and self.io_mode is None:
                note = (note + "; " if note else "") + "no io-mode property: copy, the element's only mode"
            pcmd = [PEER, "produce", sink, str(pw), str(h)] + self.plan_args(cpu60)
            ccmd = [PEER, "consume", src, "--lat-out", lat_path]
        prod = Proc(pcmd, env, os.path.join(d, "producer.log"), limit)
        cons = None
        try:
            if not prod.wait_for("READY", 20):
                return None, None, "producer: " + prod.why("READY"), note
            cons = Proc(ccmd, env, os.path.join(d, "consumer.log"), limit)
            if not cons.wait_for("READY", 20):
                why = cons.why("its first frame")
                if prod.errors:
                    why += "; producer: " + prod.errors[0]
                return None, None, "consumer: " + why, note
            prod.send("go")
            if not prod.wait_for("DONE", self.plan_time(cpu60) + 15):
                return None, None, "producer: " + prod.why("DONE"), note
            time.sleep(0.3)
            cons.send("quit")
            line = cons.wait_for("RESULT", 10)
            if not line:
                return None, None, "consumer: " + cons.why("its RESULT"), note
            return self.parse(line), self.parse(prod.line("PRODUCER")), None, note
        finally:
            # both at once: the RESULT is in, nothing waits for the other
            for p in (cons, prod):
                if p:
                    p.send("quit")
            if cons:
                cons.stop()
            prod.stop()

    def descriptions(self, key, tag, w, h, f32):
        cuda_out = " ! video/x-raw(memory:CUDAMemory)"
        if key.startswith("cudalink"):
            # import offered (the sink's default is not to); 4 slots: a
            # reader holds up to N - 2, fakesink's last-sample one
            sink = "cudalinksink ipc-name=%s num-slots=4 offer-import=true sync=false" % tag
            if f32:
                sink += " output-dtype=float32"
            src = "cudalinksrc ipc-name=%s timeout=20000" % tag
            if self.io_mode is not None:
                src += " io-mode=%s" % key.split("-")[1]
            sink = " ".join([sink] + self.extra_props["sink"])
            src = " ".join([src] + self.extra_props["src"])
            return sink, src + cuda_out
        if key.startswith("cudaipc"):
            addr = "/tmp/%s.ipc" % tag
            sink = "cudaipcsink address=%s sync=false" % addr
            if key == "cudaipc-mmap":
                sink += " ipc-mode=mmap"
            io = "import" if key == "cudaipc-import" else "copy"
            return sink, "cudaipcsrc address=%s io-mode=%s%s" % (addr, io, cuda_out)
        if key == "shm":
            sock = "/tmp/%s.shm" % tag
            frame = w * h * 4
            size = max(3 * frame + (1 << 20), 16 << 20)
            sink = ("cudadownload ! shmsink socket-path=%s shm-size=%d sync=false "
                    "wait-for-connection=true" % (sock, size))
            src = ("shmsrc socket-path=%s is-live=true ! video/x-raw,format=RGBA,width=%d,height=%d,"
                   "framerate=0/1 ! cudaupload" % (sock, w, h))
            return sink, src + cuda_out
        raise ValueError(key)

    @staticmethod
    def parse(line):
        if not line:
            return None
        try:
            return json.loads(line.split(" ", 1)[1])
        except (ValueError, IndexError):
            return None

    def fill(self, row, res, prod, lat_path):
        if not res:
            row["status"] = "failed: no RESULT line could be read"
            return
        ph = res.get("phases", {})
        lat = {1: [], 2: [], 3: []}
        try:
            with open(lat_path) as f:
                for line in f:
                    p, v = line.split()
                    lat[int(p)].append(float(v))
        except (OSError, ValueError):
            pass
        try:
            os.unlink(lat_path)  # latencies.csv has them (the tarball must stay small)
        except OSError:
            pass
        for p, vs in lat.items():
            # every latency of the paced and 60 fps phases; of the
            # unthrottled one (up to tens of thousands) 2000 evenly spread
            step = max(1, len(vs) // 2000) if p == 1 else 1
            for v in vs[::step]:
                self.latencies.append((self.mode, row["transport"], row["width"], row["height"],
                                       row["format"], p, v))
        fmt = lambda v, d=1: "" if v is None else ("%.*f" % (d, v))
        s3 = sorted(lat[3])
        p3 = ph.get("3", {})
        row.update(lat_frames=p3.get("frames", 0), lat_p50_us=fmt(pct(s3, 50)),
                   lat_p90_us=fmt(pct(s3, 90)), lat_p99_us=fmt(pct(s3, 99)),
                   lat_max_us=fmt(s3[-1] if s3 else None), lat_missed=p3.get("missed", ""),
                   lat_torn=p3.get("torn", ""), lat_repeats=p3.get("repeats", ""))
        read = p3.get("read_p50_us")  # the C peers' (-1: no frame), not the Python peer's
        row.update(lat_read_p50_us=fmt(read, 2) if isinstance(read, (int, float)) and read >= 0
                   else "")
        p1 = ph.get("1", {})
        n1, wall1 = p1.get("frames", 0), p1.get("wall_s", 0)
        row.update(unthr_frames=n1, unthr_s=fmt(wall1, 3),
                   unthr_fps=fmt((n1 - 1) / wall1 if n1 > 1 and wall1 > 0 else None),
                   unthr_missed=p1.get("missed", ""), unthr_torn=p1.get("torn", ""),
                   unthr_repeats=p1.get("repeats", ""),
                   unthr_cpu_us_per_frame=fmt(p1.get("cpu_us", 0) / (n1 - 1) if n1 > 1 else None),
                   unthr_lat_p50_us=fmt(pct(sorted(lat[1]), 50)))
        if prod:
            row["producer_unthr_fps"] = fmt(prod.get("unthr_fps"))
            row["lat_fps"] = fmt(prod.get("lat_fps"))
        p2 = ph.get("2", {})
        n2, wall2 = p2.get("frames", 0), p2.get("wall_s", 0)
        if n2:
            s2 = sorted(lat[2])
            row.update(cpu60_pct=fmt(100.0 * p2.get("cpu_us", 0) / (wall2 * 1e6) if wall2 > 0 else None, 2),
                       cpu60_frames=n2, cpu60_missed=p2.get("missed", ""),
                       cpu60_torn=p2.get("torn", ""), cpu60_lat_p50_us=fmt(pct(s2, 50)),
                       cpu60_lat_p99_us=fmt(pct(s2, 99)))
        notes = []
        if res.get("error"):
            notes.append("consumer: " + res["error"])
        if res.get("discarded"):
            notes.append("%d copies discarded by the protocol's torn check" % res["discarded"])
        if prod and prod.get("held_overwrites"):
            notes.append("producer wrote %d frames still held downstream" % prod["held_overwrites"])
        if prod and prod.get("stamp_error"):
            notes.append("producer: " + prod["stamp_error"])
        if prod and prod.get("ring") == 0:
            notes.append("no ring (deep copy failed): one buffer re-stamped in place")
        if notes:
            row["note"] = "; ".join(([row["note"]] if row["note"] else []) + notes)
        if not n1 or not p3.get("frames"):
            row["status"] = "failed: no frames arrived in the %s phase" % (
                "unthrottled" if not n1 else "latency")
        else:
            row["status"] = "ok"

    # ---------------------------------------------------------------- run
    def run(self):
        fatal = self.preflight()
        if fatal:
            log("bench: cannot run the matrix: %s" % fatal)
        todo = [(t, w, h, f) for (w, h, f) in self.sizes for t in TRANSPORTS]
        if not fatal:
            est = sum(self.cell_estimate(kind, (w, h, f) == CPU60_CELL)
                      for (key, _, kind), w, h, f in todo if key not in self.na)
            log("bench: %d cells to run, about %.0f s (no cell starts past %.0f s)" % (
                sum(1 for (key, _, _), _, _, _ in todo if key not in self.na), est, self.budget))
        for (key, _, kind), w, h, fmt in todo:
            if fatal:
                row = {k: "" for k in FIELDS}
                row.update(mode=self.mode, transport=key, label=LABELS[key], width=w, height=h,
                           format=fmt, status="failed: " + fatal)
                self.rows.append(row)
                continue
            row = self.cell(key, kind, w, h, fmt)
            self.rows.append(row)
            if row["cell_s"]:
                log("[%4.0f s] %-15s %4dx%-4d %-7s %5s s  %s" % (
                    self.elapsed(), key, w, h, fmt, row["cell_s"], self.brief(row)))
                self.write(final=False)
        self.write()
        return 2 if fatal else 0

    @staticmethod
    def brief(row):
        if row["status"] != "ok":
            return row["status"]
        s = "lat %s / %s us, %s fps, %s us CPU/frame" % (
            row["lat_p50_us"], row["lat_p99_us"], row["unthr_fps"], row["unthr_cpu_us_per_frame"])
        if row["cpu60_pct"]:
            s += ", 60 fps: %s %% CPU" % row["cpu60_pct"]
        bad = [("missed", row["lat_missed"]), ("torn", row["lat_torn"]),
               ("unthrottled torn", row["unthr_torn"])]
        bad = ["%s %s" % (n, v) for n, v in bad if v not in ("", 0, "0")]
        return s + ("; " + ", ".join(bad) if bad else "")

    def write(self, final=True):
        """the results so far (after every cell: a run stopped from outside
        still leaves what it measured)"""
        with open(os.path.join(self.tree, "measurements.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=FIELDS)
            wr.writeheader()
            for r in self.rows:
                wr.writerow(r)
        lat = os.path.join(self.tree, "latencies.csv")
        with open(lat, "a" if os.path.exists(lat) else "w", newline="") as f:
            wr = csv.writer(f)
            if f.tell() == 0:
                wr.writerow(["mode", "transport", "width", "height", "format", "phase",
                             "latency_us"])
            wr.writerows(self.latencies)
        self.latencies = []
        self.info["matrix_s"] = round(self.elapsed(), 1)
        self.info["transports"] = [{"key": k, "label": label} for k, label, _ in TRANSPORTS]
        with open(os.path.join(self.tree, "env.json"), "w") as f:
            json.dump(self.info, f, indent=1)
        if not final:
            return
        counts = {}
        for r in self.rows:
            k = r["status"].split(":")[0]
            counts[k] = counts.get(k, 0) + 1
        log("bench: %s cells in %.0f s: %s" % (len(self.rows), self.elapsed(), ", ".join(
            "%d %s" % (v, k) for k, v in sorted(counts.items()))))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("nomps", "mps"):
        print(__doc__, file=sys.stderr)
        return 64
    if not shutil.which("timeout"):
        print("bench: no `timeout` command (coreutils)", file=sys.stderr)
        return 2
    return Matrix(sys.argv[1], sys.argv[2]).run()


if __name__ == "__main__":
    sys.exit(main())
