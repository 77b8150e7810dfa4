#!/usr/bin/env python3
"""The report of tests/bench/run: markdown tables for docs/BENCHMARKS.md, one
CSV of every measurement, PNG plots, from the results of one or more modes.

    report.py OUTDIR INPUT...

INPUT: a results folder (tests/bench/run's RESULTS, or one mode's folder
in it) or a bench-MODE.tar.gz; every run found in them (a folder with
measurements.csv and env.json) is read. Runs of one mode merge cell by
cell in the tables, a later ok cell replacing an earlier one; a cell
measured in more than one run is also listed run by run, and the goals are
checked within each run too (a goal compares cells of one run), so that
repeats show their spread instead of hiding it. Writes OUTDIR/report.md,
OUTDIR/measurements.csv, OUTDIR/latencies.csv and OUTDIR/plots/*.png
(matplotlib; without it the plots are skipped and report.md says so).
"""
import csv
import glob
import json
import os
import sys
import tarfile
import tempfile

from collections import defaultdict

MODES = [("nomps", "without MPS"), ("mps", "with MPS")]
SIZES = [(512, 512, "rgba8"), (1920, 1080, "rgba8"), (3840, 2160, "rgba8"),
         (512, 512, "float32"), (1920, 1080, "float32"), (3840, 2160, "float32")]
FMT = {"rgba8": "RGBA8", "float32": "float32"}
CIPC = ["cudaipc-copy", "cudaipc-import", "cudaipc-mmap"]
OURS = ["cudalink-copy", "cudalink-import"]


def mode_rank(mode):
    """Where a mode sorts: MODES' order, unknown modes after them."""
    names = [m for m, _ in MODES]
    return names.index(mode) if mode in names else len(names)


def size_label(w, h, f):
    return "%dx%d %s" % (w, h, FMT.get(f, f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_us(v):
    v = num(v)
    if v is None:
        return "-"
    return "%.0f" % v if v >= 100 else "%.1f" % v


def fmt_fps(v):
    v = num(v)
    return "-" if v is None else "%.0f" % v


def find_modes(inputs, tmp):
    """{mode: [folders holding measurements.csv], in the order given}: several
    runs of one mode (e.g. a rerun of some cells with BENCH_ONLY / BENCH_SIZES)
    are merged cell by cell, a later ok cell replacing an earlier one."""
    found = {}
    for src in inputs:
        if os.path.isfile(src) and (src.endswith(".tar.gz") or src.endswith(".tgz")):
            dest = tempfile.mkdtemp(dir=tmp)
            with tarfile.open(src) as t:
                for m in t.getmembers():
                    if m.name.startswith("/") or ".." in m.name.split("/"):
                        raise SystemExit("report: unsafe path in %s: %s" % (src, m.name))
                t.extractall(dest)
            src = dest
        if not os.path.isdir(src):
            raise SystemExit("report: no such folder or tarball: %s" % src)
        paths = sorted(glob.glob(os.path.join(src, "**", "measurements.csv"), recursive=True))
        for p in paths:
            d = os.path.dirname(p)
            if not os.path.exists(os.path.join(d, "env.json")):
                continue  # a report's copy, not a run
            with open(p) as f:
                first = next(csv.DictReader(f), None)
            mode = first["mode"] if first else os.path.basename(d)
            found.setdefault(mode, []).append(d)
    return found


class Report:
    def __init__(self, mode_dirs):
        self.rows = []
        self.lat = defaultdict(list)  # (mode, transport, w, h, fmt, phase) -> [us]
        self.labels = {}
        self.order = []
        self.by = {}
        self.runs = defaultdict(list)  # mode -> the env.json of each run merged
        self.per_run = []  # (mode, run's start, {cell key: its ok row}), in merge order
        for mode, dirs in sorted(mode_dirs.items(), key=lambda kv: mode_rank(kv[0])):
            for d in dirs:
                self.merge_run(mode, d)
        self.rows = list(self.by.values())
        self.modes = [m for m, _ in MODES if any(r["mode"] == m for r in self.rows)]
        self.modes += sorted(set(r["mode"] for r in self.rows) - set(self.modes))

    def merge_run(self, mode, d):
        """One run's cells: each replaces the same cell of an earlier run of
        the mode unless that one was ok and this one is not."""
        taken = set()
        own = {}
        with open(os.path.join(d, "measurements.csv")) as f:
            for r in csv.DictReader(f):
                key = (r["mode"], r["transport"], int(r["width"]), int(r["height"]), r["format"])
                if r["status"] == "ok":
                    own[key] = r
                old = self.by.get(key)
                if old and old["status"] == "ok" and r["status"] != "ok":
                    continue
                self.by[key] = r
                taken.add(key)
                if r["transport"] not in self.labels:
                    self.labels[r["transport"]] = r["label"]
                    self.order.append(r["transport"])
        for key in list(self.lat):
            if key[:5] in taken:
                del self.lat[key]
        lp = os.path.join(d, "latencies.csv")
        if os.path.exists(lp):
            with open(lp) as f:
                for r in csv.DictReader(f):
                    cell = (r["mode"], r["transport"], int(r["width"]), int(r["height"]),
                            r["format"])
                    if cell in taken:
                        self.lat[cell + (int(r["phase"]),)].append(float(r["latency_us"]))
        started = d
        ep = os.path.join(d, "env.json")
        if os.path.exists(ep):
            with open(ep) as f:
                env = json.load(f)
            self.runs[mode].append(env)
            started = env.get("started", d)
        self.per_run.append((mode, started, own))

    def get(self, mode, t, w, h, f, cells=None):
        return (self.by if cells is None else cells).get((mode, t, w, h, f))

    @staticmethod
    def short(status):
        if status.startswith("n/a"):
            return "n/a"
        if status.startswith("failed"):
            return "failed"
        if status.startswith("skipped"):
            return "skipped"
        return status or "-"

    def mode_title(self, m):
        return dict(MODES).get(m, m)

    # ------------------------------------------------------------ tables
    def table(self, title, cell_fn, out):
        for m in self.modes:
            out.append("%s, %s:\n" % (title, self.mode_title(m)))
            out.append("| transport | " + " | ".join(size_label(*s) for s in SIZES) + " |")
            out.append("|---" * (len(SIZES) + 1) + "|")
            for t in self.order:
                cells = []
                for s in SIZES:
                    r = self.get(m, t, *s)
                    if not r:
                        cells.append("-")
                    elif r["status"] != "ok":
                        cells.append(self.short(r["status"]))
                    else:
                        cells.append(cell_fn(r))
                out.append("| %s | %s |" % (self.labels[t], " | ".join(cells)))
            out.append("")

    def ratio(self, a, b):
        a, b = num(a), num(b)
        return a / b if a is not None and b else None

    def best(self, mode, keys, field, size, lowest, cells=None):
        vals = []
        for k in keys:
            r = self.get(mode, k, *size, cells=cells)
            if r and r["status"] == "ok" and num(r[field]) is not None:
                vals.append((num(r[field]), k))
        if not vals:
            return None, None
        return (min if lowest else max)(vals)

    def goal_checks(self):
        """[(goal, fn(mode, ours, cells) -> its cell of the table)]: cells is
        None for the merged tables, or one run's {cell key: row}."""
        hd = (1920, 1080, "rgba8")
        k4 = (3840, 2160, "float32")

        def verdict(ok):
            return "**met**" if ok else "**not met**"

        def ok_row(r):
            return r if r and r["status"] == "ok" else None

        def fps_goal(m, ours, cells):
            need = 1.5 if m == "mps" else 1.0
            r = ok_row(self.get(m, ours, *hd, cells=cells))
            best, which = self.best(m, CIPC, "unthr_fps", hd, lowest=False, cells=cells)
            if not r or best is None:
                return "-"
            x = num(r["unthr_fps"]) / best
            return "%s fps vs %s %.0f fps: %.2fx (need %.1fx) %s" % (
                fmt_fps(r["unthr_fps"]), which, best, x, need, verdict(x >= need))

        def lat_goal(m, ours, cells):
            r = ok_row(self.get(m, ours, *hd, cells=cells))
            best, which = self.best(m, CIPC, "lat_p50_us", hd, lowest=True, cells=cells)
            if not r or best is None:
                return "-"
            c = self.get(m, which, *hd, cells=cells)
            x50 = num(r["lat_p50_us"]) / num(c["lat_p50_us"])
            x99 = num(r["lat_p99_us"]) / num(c["lat_p99_us"])
            return "%s / %s us vs %s %s / %s: %.2fx / %.2fx (need 0.7x) %s" % (
                fmt_us(r["lat_p50_us"]), fmt_us(r["lat_p99_us"]), which, fmt_us(c["lat_p50_us"]),
                fmt_us(c["lat_p99_us"]), x50, x99, verdict(x50 <= 0.7 and x99 <= 0.7))

        def cpu_goal(m, ours, cells):
            r = ok_row(self.get(m, ours, *hd, cells=cells))
            best, which = self.best(m, CIPC, "cpu60_pct", hd, lowest=True, cells=cells)
            if not r or not r["cpu60_pct"] or best is None:
                return "-"
            return "%s %% vs %s %.2f %% %s" % (r["cpu60_pct"], which, best,
                                               verdict(num(r["cpu60_pct"]) <= best))

        def shm_goal(size, need):
            def fn(m, ours, cells):
                r = ok_row(self.get(m, ours, *size, cells=cells))
                s = ok_row(self.get(m, "shm", *size, cells=cells))
                if not r or not s:
                    return "-"
                x = num(s["lat_p50_us"]) / num(r["lat_p50_us"])
                # one decimal: 19.8x rounds to the 20x it misses
                return "%s vs %s us p50: %.1fx lower (need %dx) %s" % (
                    fmt_us(r["lat_p50_us"]), fmt_us(s["lat_p50_us"]), x, need, verdict(x >= need))
            return fn

        return [("unthrottled 1080p RGBA8 >= cudaipc's best mode (1.5x under MPS)", fps_goal),
                ("1080p RGBA8 latency p50 and p99 <= 0.7x cudaipc's (its lowest-p50 mode)",
                 lat_goal),
                ("consumer CPU at 60 fps (1080p RGBA8) <= cudaipc's lowest", cpu_goal),
                (">= 20x lower latency than the shm CPU path, 1080p RGBA8", shm_goal(hd, 20)),
                (">= 50x lower latency than the shm CPU path, 4K float32", shm_goal(k4, 50))]

    @staticmethod
    def goal_cell(fn, mode, ours, cells):
        """fn's cell, "-" where a figure it needs is missing."""
        try:
            return fn(mode, ours, cells)
        except (TypeError, ZeroDivisionError):
            return "-"

    def goals(self, out):
        out.append("| goal (issue 16) | ours | " + " | ".join(self.mode_title(m) for m in self.modes)
                   + " |")
        out.append("|---|---|" + "---|" * len(self.modes))
        for goal, fn in self.goal_checks():
            for ours in OURS:
                cells = [self.goal_cell(fn, m, ours, None) for m in self.modes]
                out.append("| %s | %s | %s |" % (goal, ours, " | ".join(cells)))
        out.append("")

    def repeated(self):
        """Whether some mode was merged from more than one run."""
        return any(len(envs) > 1 for envs in self.runs.values())

    def runs_in_order(self):
        """per_run by mode (MODES' order), then start time."""
        return sorted(self.per_run, key=lambda run: (mode_rank(run[0]), run[0], run[1]))

    def goals_by_run(self, out):
        """The goals checked within each run alone (a row where the run
        measured the cells the goal compares), for the modes merged from
        several runs (a mode's only run is the table above)."""
        out.append("| run | goal (issue 16) | %s |" % " | ".join(OURS))
        out.append("|---|---|" + "---|" * len(OURS))
        for mode, started, cells in self.runs_in_order():
            if len(self.runs[mode]) < 2:
                continue
            for goal, fn in self.goal_checks():
                got = [self.goal_cell(fn, mode, ours, cells) for ours in OURS]
                if any(g != "-" for g in got):
                    out.append("| %s, %s | %s | %s |" % (mode, started, goal, " | ".join(got)))
        out.append("")

    def cells_by_run(self, out):
        """Every cell measured (ok) in more than one run, one line a run."""
        seen = defaultdict(list)
        for mode, started, cells in self.runs_in_order():
            for key, r in cells.items():
                seen[key].append((started, r))
        keys = [k for k, v in seen.items() if len(v) > 1]
        order = {t: i for i, t in enumerate(self.order)}
        keys.sort(key=lambda k: (mode_rank(k[0]), SIZES.index(k[2:]) if k[2:] in SIZES else 99,
                                 order.get(k[1], 99)))
        out.append("| mode | transport | frames | run | unthrottled fps | latency p50 / p99 us "
                   "| CPU at 60 fps |")
        out.append("|---|---|---|---|---|---|---|")
        for k in keys:
            for started, r in seen[k]:
                out.append("| %s | %s | %s | %s | %s | %s / %s | %s |" % (
                    k[0], k[1], size_label(*k[2:]), started, fmt_fps(r["unthr_fps"]),
                    fmt_us(r["lat_p50_us"]), fmt_us(r["lat_p99_us"]),
                    "%s %%" % r["cpu60_pct"] if r["cpu60_pct"] else "-"))
        out.append("")

    def markdown(self, plots):
        out = []
        info = {m: envs[0] for m, envs in self.runs.items()}  # each mode's first run
        first = next(iter(info.values()), {})
        out.append("# Benchmark report (tests/bench/run)\n")
        gpus = sorted(set(i.get("gpu", "?") for i in info.values()))
        out.append("GPU: %s. Modes: %s. Runs: %s." % (
            "; ".join(gpus), ", ".join(self.mode_title(m) for m in self.modes),
            "; ".join("%s started %s, %.0f s" % (m, i.get("started", "?"), i.get("matrix_s", 0))
                      for m, envs in self.runs.items() for i in envs)))
        vers = []
        for key, what in (("gst122_version", "ours and the shm path"),
                          ("gst126_version", "cudaipcsink / cudaipcsrc"), ("python", "the Python peer")):
            if first.get(key):
                vers.append("%s (%s)" % (first[key], what))
        if vers:
            out.append("Software: " + "; ".join(vers) + ".")
        for m, i in info.items():
            out.append("MPS in the %s run: %s." % (m, i.get("mps", "?")))
            if i.get("fatal"):
                out.append("\n**The %s run could not start: %s**" % (m, i["fatal"]))
        plan = first.get("plan", {})
        out.append("""
Every transport is measured the same way, in one run per mode: the producer
stamps each frame on the GPU just before it enters the transport
(CLOCK_MONOTONIC, the frame counter at its first and last bytes); the
consumer process reads the stamp back on the GPU when the frame reaches it
(a synchronous device-to-host copy of the frame's first bytes in its CUDA
context): latency = that moment - the stamp. Phases of each cell: unthrottled
for %s s (the producer hands over frames as fast as the transport takes
them; frames per second into the consumer, the consumer process's CPU per
frame, getrusage), then %s frames paced at %s fps (fewer for a transport
whose unthrottled rate is under twice that) for the latency, and at
1920x1080 RGBA8 %s s at 60 fps for the consumer's CPU (%% of one core).
Missed frames: gaps in the counter; torn: first and last counters differ.
The consumer's own stamp reads (two small synchronous copies a frame) are in
every transport's CPU and latency alike. Producers push one uploaded frame
re-stamped from a ring of 8 copies (`imagefreeze`), consumers end in
`fakesink sync=false`.
""" % (plan.get("unthrottled_s", "?"), plan.get("lat_frames", "?"), plan.get("lat_fps", "?"),
       plan.get("cpu60_s", "?")))
        out.append("## Transports\n")
        out.append("| key | transport |\n|---|---|")
        for t in self.order:
            out.append("| `%s` | %s |" % (t, self.labels[t]))
        out.append("")
        out.append("## Latency, paced (p50 / p99 us)\n")
        self.table("Latency p50 / p99 (us)",
                   lambda r: "%s / %s" % (fmt_us(r["lat_p50_us"]), fmt_us(r["lat_p99_us"])), out)
        if any(num(r.get("lat_read_p50_us")) is not None for r in self.rows):
            out.append("## Of that latency, the consumer's own stamp read (p50 us)\n")
            out.append("From the frame mapped in the consumer (after any sync its memory "
                       "asked for) to its stamp read back: the read and, without MPS, the GPU's switch to the consumer's "
                       "context. The rest of the latency is the transport's, producer side "
                       "included.\n")
            self.table("Stamp read p50 (us)", lambda r: fmt_us(r.get("lat_read_p50_us")), out)
        out.append("## Unthrottled: frames per second into the consumer (consumer CPU us per frame)\n")
        self.table("Frames per second (CPU us a frame)",
                   lambda r: "%s (%s)" % (fmt_fps(r["unthr_fps"]), fmt_us(r["unthr_cpu_us_per_frame"])),
                   out)
        out.append("## Consumer CPU at 60 fps, 1920x1080 RGBA8\n")
        out.append("| transport | " + " | ".join("%s: CPU, latency p50 / p99 us" % self.mode_title(m)
                                                 for m in self.modes) + " |")
        out.append("|---" * (len(self.modes) + 1) + "|")
        for t in self.order:
            cells = []
            for m in self.modes:
                r = self.get(m, t, 1920, 1080, "rgba8")
                if not r or r["status"] != "ok" or not r["cpu60_pct"]:
                    cells.append(self.short(r["status"]) if r else "-")
                else:
                    cells.append("%s %% (%s / %s)" % (r["cpu60_pct"], fmt_us(r["cpu60_lat_p50_us"]),
                                                      fmt_us(r["cpu60_lat_p99_us"])))
            out.append("| %s | %s |" % (self.labels[t], " | ".join(cells)))
        out.append("")
        out.append("## Missed and torn frames (all sizes and formats)\n")
        out.append("| transport | mode | cells | latency phase: frames, missed, torn | unthrottled: "
                   "frames, missed, torn | 60 fps: frames, missed, torn |")
        out.append("|---|---|---|---|---|---|")
        for t in self.order:
            for m in self.modes:
                rs = [r for r in self.rows if r["mode"] == m and r["transport"] == t
                      and r["status"] == "ok"]
                if not rs:
                    continue
                tot = lambda f: sum(int(num(r[f]) or 0) for r in rs)
                out.append("| %s | %s | %d | %d, %d, %d | %d, %d, %d | %d, %d, %d |" % (
                    t, m, len(rs), tot("lat_frames"), tot("lat_missed"), tot("lat_torn"),
                    tot("unthr_frames"), tot("unthr_missed"), tot("unthr_torn"),
                    tot("cpu60_frames"), tot("cpu60_missed"), tot("cpu60_torn")))
        out.append("""
Missed frames in the unthrottled phase are expected of every transport that
keeps only the newest frame (ours, cudaipc); the shm path and the lockstep
floors block the producer instead. A torn frame is one whose first and last
bytes came from different frames: it reached the consumer as such.
""")
        out.append("## Against the goals\n")
        self.goals(out)
        if self.repeated():
            out.append("""Runs of one mode were merged: the tables above hold, for each cell, the
last run given that measured it (ok). The goals checked within each run of
such a mode, and every cell measured ok in more than one run, run by run:
""")
            self.goals_by_run(out)
            self.cells_by_run(out)
        notes = defaultdict(list)
        for r in self.rows:
            for n in filter(None, (x.strip() for x in r["note"].split(";"))):
                notes[n].append("%s %s %s" % (r["mode"], r["transport"], size_label(
                    int(r["width"]), int(r["height"]), r["format"])))
        out.append("## Notes\n")
        out.append("- 4-channel float32: GStreamer has no float32x4 video format. cudalinksink "
                   "converts the RGBA8 frame to float32 (`output-dtype=float32`) and cudalinksrc "
                   "back to RGBA8, so the wire carries float32 and each end runs a kernel; the "
                   "Python peer carries float32 natively; cudaipc, the shm path and the floors "
                   "move the same bytes as an RGBA8 frame 4x as wide.")
        for n, cells in sorted(notes.items()):
            out.append("- %s (%s)" % (n, ", ".join(cells) if len(cells) <= 4
                                      else "%d cells" % len(cells)))
        bad = defaultdict(list)
        for r in self.rows:
            if r["status"] != "ok":
                bad[(r["mode"], r["transport"], r["status"])].append(
                    size_label(int(r["width"]), int(r["height"]), r["format"]))
        if bad:
            out.append("\n## Cells without numbers\n")
            out.append("| mode | transport | frames | status |\n|---|---|---|---|")
            for (m, t, st), frames in bad.items():
                out.append("| %s | %s | %s | %s |" % (
                    m, t, "all %d" % len(frames) if len(frames) == len(SIZES) else ", ".join(frames),
                    st.replace("|", "/")))
        out.append("\n## Time per transport (s, all its cells)\n")
        out.append("| transport | " + " | ".join(self.modes) + " |")
        out.append("|---" * (len(self.modes) + 1) + "|")
        for t in self.order:
            out.append("| %s | %s |" % (t, " | ".join(
                "%.0f" % sum(num(r["cell_s"]) or 0 for r in self.rows
                             if r["mode"] == m and r["transport"] == t) for m in self.modes)))
        out.append("")
        out.append("## Plots\n")
        if isinstance(plots, str):
            out.append(plots)
        else:
            for p, title in plots:
                out.append("![%s](plots/%s)" % (title, p))
        out.append("")
        return "\n".join(out)

    # ------------------------------------------------------------ plots
    def plots(self, outdir):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            return "Plots skipped: matplotlib is not importable here (%s)." % e
        d = os.path.join(outdir, "plots")
        os.makedirs(d, exist_ok=True)
        made = []
        colors = {t: plt.cm.tab10(i % 10) for i, t in enumerate(self.order)}
        for s in SIZES:
            w, h, f = s
            if not any(self.lat.get((m, t, w, h, f, 3)) for m in self.modes for t in self.order):
                continue
            fig, axes = plt.subplots(1, len(self.modes), figsize=(6.5 * len(self.modes), 4.5),
                                     squeeze=False, sharey=True)
            for ax, m in zip(axes[0], self.modes):
                for t in self.order:
                    v = sorted(self.lat.get((m, t, w, h, f, 3), []))
                    if not v:
                        continue
                    y = [(i + 1) / len(v) for i in range(len(v))]
                    ax.step(v, y, where="post", label=t, color=colors[t],
                            linestyle="--" if t.startswith("floor") else "-")
                ax.set_xscale("log")
                ax.set_xlabel("latency, stamp to usable on the consumer's GPU (us)")
                ax.set_title("%s, %s" % (size_label(w, h, f), self.mode_title(m)))
                ax.grid(True, which="both", alpha=0.3)
            axes[0][0].set_ylabel("fraction of frames")
            axes[0][-1].legend(fontsize=7, loc="lower right")
            fig.tight_layout()
            name = "lat-cdf-%dx%d-%s.png" % (w, h, f)
            fig.savefig(os.path.join(d, name), dpi=110)
            plt.close(fig)
            made.append((name, "latency CDF " + size_label(w, h, f)))
        fmts = [f for f in ("rgba8", "float32") if any(r["format"] == f for r in self.rows)]
        if fmts:
            fig, axes = plt.subplots(len(fmts), len(self.modes),
                                     figsize=(7 * len(self.modes), 4.2 * len(fmts)), squeeze=False)
            res = [(512, 512), (1920, 1080), (3840, 2160)]
            for i, f in enumerate(fmts):
                for j, m in enumerate(self.modes):
                    ax = axes[i][j]
                    n = len(self.order)
                    width = 0.8 / max(n, 1)
                    for k, t in enumerate(self.order):
                        xs, ys = [], []
                        for x, (w, h) in enumerate(res):
                            r = self.get(m, t, w, h, f)
                            v = num(r["unthr_fps"]) if r and r["status"] == "ok" else None
                            if v:
                                xs.append(x - 0.4 + width * (k + 0.5))
                                ys.append(v)
                        if ys:
                            ax.bar(xs, ys, width, label=t, color=colors[t])
                    ax.set_xticks(range(len(res)))
                    ax.set_xticklabels(["%dx%d" % r for r in res])
                    ax.set_yscale("log")
                    ax.set_ylabel("frames per second into the consumer")
                    ax.set_title("unthrottled, %s, %s" % (FMT[f], self.mode_title(m)))
                    ax.grid(True, axis="y", which="both", alpha=0.3)
            axes[0][-1].legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(os.path.join(d, "fps.png"), dpi=110)
            plt.close(fig)
            made.append(("fps.png", "unthrottled fps per resolution"))
        cpu = [(t, m, num(r["cpu60_pct"])) for t in self.order for m in self.modes
               for r in [self.get(m, t, 1920, 1080, "rgba8")] if r and num(r["cpu60_pct"])]
        if cpu:
            fig, ax = plt.subplots(figsize=(8, 4))
            width = 0.8 / len(self.modes)
            for j, m in enumerate(self.modes):
                xs = [self.order.index(t) - 0.4 + width * (j + 0.5) for t, mm, _ in cpu if mm == m]
                ys = [v for _, mm, v in cpu if mm == m]
                ax.bar(xs, ys, width, label=self.mode_title(m))
            ax.set_xticks(range(len(self.order)))
            ax.set_xticklabels(self.order, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("consumer CPU, % of one core")
            ax.set_title("consumer CPU at 60 fps, 1920x1080 RGBA8")
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(d, "cpu60.png"), dpi=110)
            plt.close(fig)
            made.append(("cpu60.png", "consumer CPU at 60 fps"))
        return made

    def write_csv(self, outdir):
        if not self.rows:
            return
        # runs of older code lack later columns: the union, in order
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(os.path.join(outdir, "measurements.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(self.rows)
        with open(os.path.join(outdir, "latencies.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["mode", "transport", "width", "height", "format", "phase", "latency_us"])
            for key, vs in sorted(self.lat.items()):
                for v in vs:
                    w.writerow(list(key) + [v])


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        modes = find_modes(sys.argv[2:], tmp)
        if not modes:
            print("report: no measurements.csv in %s" % " ".join(sys.argv[2:]), file=sys.stderr)
            return 1
        rep = Report(modes)
        rep.write_csv(outdir)
        plots = rep.plots(outdir)
        md = rep.markdown(plots)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(md)
    print("report: %s (%s; %d cells%s)" % (
        os.path.join(outdir, "report.md"), ", ".join(rep.modes), len(rep.rows),
        "; %d plots" % len(plots) if not isinstance(plots, str) else "; no plots: " + plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
