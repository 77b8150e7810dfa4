#!/usr/bin/env python3
"""report.py on made-up runs (no GPU): how runs of one mode merge, and that
a repeated cell shows every run's figures and the goals are checked within
each run, not across them. Prints "ok"/"FAIL" lines, exits 1 on a failure."""
import csv
import json
import os
import subprocess
import sys
import tempfile

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py")
FIELDS = ("mode,transport,label,width,height,format,frame_bytes,status,note,lat_fps,lat_frames,"
          "lat_p50_us,lat_p90_us,lat_p99_us,lat_max_us,lat_missed,lat_torn,lat_repeats,"
          "unthr_frames,unthr_s,unthr_fps,unthr_missed,unthr_torn,unthr_repeats,"
          "unthr_cpu_us_per_frame,unthr_lat_p50_us,producer_unthr_fps,cpu60_pct,cpu60_frames,"
          "cpu60_missed,cpu60_torn,cpu60_lat_p50_us,cpu60_lat_p99_us,cell_s,gpu,mps").split(",")
failures = 0


def check(what, cond):
    global failures
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    failures += not cond


def cell(mode, transport, fps, p50, p99, cpu, status="ok", w=1920, h=1080, fmt="rgba8"):
    r = dict.fromkeys(FIELDS, "")
    r.update(mode=mode, transport=transport, label=transport + " (label)", width=w, height=h,
             format=fmt, status=status, gpu="Test GPU", mps="off")
    if status == "ok":
        r.update(unthr_fps=fps, lat_p50_us=p50, lat_p99_us=p99, cpu60_pct=cpu, cell_s=5,
                 lat_frames=300, unthr_frames=int(fps), cpu60_frames=180)
    return r


def write_run(root, name, mode, started, rows):
    d = os.path.join(root, name, mode)
    os.makedirs(d)
    with open(os.path.join(d, "measurements.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(d, "env.json"), "w") as f:
        json.dump({"mode": mode, "started": started, "gpu": "Test GPU", "mps": "off",
                   "matrix_s": 60}, f)
    return os.path.join(root, name)


def report(root, *runs):
    out = os.path.join(root, "out-%d" % len(os.listdir(root)))
    env = dict(os.environ, MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, REPORT, out] + list(runs), env=env,
                       capture_output=True, text=True)
    check("report.py exits 0 (%s)" % (p.stderr.strip() or p.stdout.strip()), p.returncode == 0)
    with open(os.path.join(out, "report.md")) as f:
        return f.read()


def section(md, title):
    start = md.index(title)
    end = md.find("\n## ", start + 1)
    return md[start:end if end >= 0 else len(md)]


with tempfile.TemporaryDirectory() as root:
    # run A: ours beats cudaipc; run B, later: it does not, and its shm cell failed
    a = write_run(root, "a", "nomps", "2026-01-01 10:00:00 UTC", [
        cell("nomps", "cudalink-import", 5000, 100, 200, "1.00"),
        cell("nomps", "cudaipc-import", 4000, 500, 800, "4.00"),
        cell("nomps", "shm", 900, 2500, 3000, "8.00"),
    ])
    b = write_run(root, "b", "nomps", "2026-01-01 11:00:00 UTC", [
        cell("nomps", "cudalink-import", 3000, 120, 250, "1.20"),
        cell("nomps", "cudaipc-import", 4500, 480, 820, "4.10"),
        cell("nomps", "shm", 0, 0, 0, "", status="failed (a test failure)"),
    ])

    md = report(root, a, b)
    fps = section(md, "## Unthrottled")
    check("merged table: the later run's figure for a cell both measured",
          "| cudalink-import (label) | - | 3000 (" in fps)
    check("merged table: an ok cell is not replaced by a later failed one",
          "| shm (label) | - | 900 (" in fps)
    goals = section(md, "## Against the goals")
    check("merged goals: the later run's cells (3000 vs 4500 fps, not met)",
          "3000 fps vs cudaipc-import 4500 fps: 0.67x (need 1.0x) **not met**" in goals)
    check("run A's own verdict is listed (5000 vs 4000 fps, met)",
          "| nomps, 2026-01-01 10:00:00 UTC | unthrottled 1080p RGBA8" in goals
          and "5000 fps vs cudaipc-import 4000 fps: 1.25x (need 1.0x) **met**" in goals)
    check("run B's own verdict is listed (3000 vs 4500 fps, not met), besides the merged one",
          "| nomps, 2026-01-01 11:00:00 UTC | unthrottled 1080p RGBA8" in goals
          and goals.count("3000 fps vs cudaipc-import 4500 fps: 0.67x") == 2)
    check("the shm goal is checked in run A, which measured shm (25x lower)",
          "100 vs 2500 us p50: 25.0x lower (need 20x) **met**" in goals)
    check("the shm goal is not checked in run B, whose shm cell failed",
          "| nomps, 2026-01-01 11:00:00 UTC | >= 20x lower" not in goals)
    check("a cell both runs measured is listed once per run, oldest first",
          goals.find("| nomps | cudalink-import | 1920x1080 RGBA8 | 2026-01-01 10:00:00 UTC | 5000")
          >= 0 and goals.find("| nomps | cudalink-import | 1920x1080 RGBA8 | 2026-01-01 10:00:00")
          < goals.find("| nomps | cudalink-import | 1920x1080 RGBA8 | 2026-01-01 11:00:00 UTC"))
    check("a cell only one run measured ok is not listed run by run",
          "| nomps | shm | 1920x1080 RGBA8 |" not in goals)

    # given the other way round, run A's cells fill the tables, and the
    # run-by-run listing still goes by start time
    md = report(root, b, a)
    check("merged table follows the order given",
          "| cudalink-import (label) | - | 5000 (" in section(md, "## Unthrottled"))
    goals = section(md, "## Against the goals")
    check("run by run: oldest first whatever the order given",
          0 <= goals.find("| nomps, 2026-01-01 10:00:00 UTC |")
          < goals.find("| nomps, 2026-01-01 11:00:00 UTC |"))

    # a mode with one run (mps here) is not listed run by run
    m = write_run(root, "m", "mps", "2026-01-01 09:00:00 UTC", [
        cell("mps", "cudalink-import", 20000, 90, 150, "1.00"),
        cell("mps", "cudaipc-mmap", 5000, 600, 900, "5.00"),
    ])
    md = report(root, a, b, m)
    goals = section(md, "## Against the goals")
    check("a mode's only run is in the merged goals (4.00x) but not run by run",
          "20000 fps vs cudaipc-mmap 5000 fps: 4.00x" in goals and "| mps, 2026" not in goals)

    # one run a mode: no run-by-run section
    md = report(root, a)
    check("one run: no run-by-run listing", "Runs of one mode were merged" not in md
          and "| nomps, 2026-01-01" not in md)
    check("runs without the stamp read column: no stamp read table",
          "## Of that latency" not in md)

    # a newer run measures the consumer's stamp read, an older one does not
    # have the column; the newer one is given last, so its cell fills the
    # table
    r = cell("nomps", "cudalink-import", 6000, 90, 180, "1.10")
    r["lat_read_p50_us"] = "42.50"
    n = write_run(root, "n", "nomps", "2026-01-01 12:00:00 UTC", [r])
    with open(os.path.join(n, "nomps", "measurements.csv"), newline="") as f:
        hdr = f.readline()
    check("the newer run's CSV has the column", "lat_read_p50_us" in hdr)
    md = report(root, a, n)
    reads = section(md, "## Of that latency")
    check("stamp read table: the newer run's figure",
          "| cudalink-import (label) | - | 42.5 |" in reads)
    check("stamp read table: '-' where no run measured it", "| cudaipc-import (label) | - | - |" in reads)
    out = os.path.join(root, "out-%d" % (len(os.listdir(root)) - 1))
    with open(os.path.join(out, "measurements.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    check("merged CSV: both runs' columns, the figure where measured (%s)"
          % [(x["transport"], x.get("lat_read_p50_us")) for x in rows],
          sorted(x.get("lat_read_p50_us") or "" for x in rows) == ["", "", "42.50"])

print("%d failed" % failures)
sys.exit(1 if failures else 0)
