#!/usr/bin/env python3
"""The protocol-only Python row of tests/bench/run: a cuda-link producer and
consumer written from docs/PROTOCOL.md alone (cupy for CUDA, no
libcudalink, no GStreamer), measured with the stamp, schedule and
accounting of tests/bench/peerstats.h, as bench_peer measures the
GStreamer rows. tests/bench/matrix.py starts one of each and talks to them
over stdin / stdout, as it does with bench_peer.

    cipd_peer.py produce NAME WIDTH HEIGHT uint8|float32 [plan options]
    cipd_peer.py consume NAME [--lat-out FILE] [--poll-us US] [--start-timeout S]

Producer (as tests/gpu/py/src_producer.py, the peers' way): 3 slots from
cudaMalloc rounded up to 2 MiB, an interprocess event per slot, no futex
wake. Its frame lives in a buffer of its own (the GPU frame a real
producer publishes); per frame it stamps that buffer on the GPU (tail
counter, then the Stamp) and copies it into the slot, both on its stream,
records the slot's event, synchronises the stream (what the peers do by
default), writes the timestamp and publishes write_idx.
Frames are 4 channels, uint8 or float32 (the protocol's own dtype).

Consumer: polls write_idx every --poll-us (default 200: peers never wake
consumers), makes its stream wait on the slot's event, copies the slot
into its own buffer, synchronises, applies the protocol's torn check
(write_idx moved N - 1 on: discarded, counted) and reads the stamp back
from its copy. Prints READY at the first stamped frame; "quit" or end of
input prints RESULT and writes the latencies.

Exit status 2 and an ERROR line when cupy or the GPU is not there.
"""
import mmap
import os
import resource
import signal
import struct
import sys
import threading
import time

MAGIC = 0x43495044
STAMP_MAGIC = 0x31484B4E494C4243
EVENT_FLAGS = 0x2 | 0x4  # cudaEventDisableTiming | cudaEventInterprocess
H2D, D2H, D2D = 1, 2, 3
PH_IDLE, PH_UNTHR, PH_CPU60, PH_LAT = 0, 1, 2, 3


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


try:
    import numpy as np
    import cupy as cp
    RT = cp.cuda.runtime
except Exception as e:  # pragma: no cover - the GPU machine has both
    say("ERROR cipd_peer: cupy not importable: %s" % str(e).splitlines()[0])
    sys.exit(2)


def layout(n):
    m = 20 + 128 * n
    return dict(size=m + 29, shutdown=m, width=m + 1, timestamp=m + 21)


def cpu_us():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1e6


class Plan:
    def __init__(self, argv):
        self.unthr_s, self.cpu60_s, self.lat_frames = 1.2, 0.0, 300
        self.lat_fps, self.lat_max_s, self.warm_fps = 200.0, 2.5, 50.0
        names = {"--unthrottled-s": "unthr_s", "--cpu60-s": "cpu60_s",
                 "--lat-frames": "lat_frames", "--lat-fps": "lat_fps",
                 "--lat-max-s": "lat_max_s", "--warm-fps": "warm_fps"}
        i = 0
        while i < len(argv):
            if argv[i] not in names or i + 1 >= len(argv):
                raise SystemExit("cipd_peer: unknown option %s" % argv[i])
            attr = names[argv[i]]
            setattr(self, attr, type(getattr(self, attr))(float(argv[i + 1])))
            i += 2


# peerstats.h's schedule, stage by stage
WAIT, SETTLE_A, UNTHR, SETTLE_B, CPU60, SETTLE_C, LAT, TAIL = range(8)


class Schedule:
    def __init__(self, plan):
        self.p = plan
        self.stage = WAIT
        self.stage_end = self.next_due = 0.0
        self.unthr_frames, self.unthr_t0, self.unthr_t1 = 0, 0.0, 0.0
        self.lat_fps, self.lat_n, self.lat_sent = 0.0, 0, 0
        self.sent = [0, 0, 0, 0]
        self.done = False

    def unthr_rate(self):
        d = self.unthr_t1 - self.unthr_t0
        return (self.unthr_frames - 1) / d if self.unthr_frames > 1 and d > 0 else 0.0

    def enter(self, stage, now):
        p = self.p
        self.stage, self.next_due = stage, 0.0
        if stage in (SETTLE_A, SETTLE_C):
            self.stage_end = now + 0.2
        elif stage == UNTHR:
            self.stage_end = now + p.unthr_s
        elif stage == SETTLE_B:
            rate = self.unthr_rate()
            self.stage_end = now + (min(3.0 / rate, 3.0) if rate > 0 and 3.0 / rate > 0.3 else 0.3)
            self.lat_fps = p.lat_fps
            if rate > 0 and rate * 0.5 < self.lat_fps:
                self.lat_fps = max(rate * 0.5, 1.0)
            self.lat_n = min(p.lat_frames, int(self.lat_fps * p.lat_max_s))
            if self.lat_n < 10:
                self.lat_n = min(p.lat_frames, 10)
        elif stage == CPU60:
            self.stage_end = now + p.cpu60_s
        elif stage == LAT:
            self.lat_sent = 0
        elif stage == TAIL:
            self.done = True

    def begin_frame(self, go, now):
        if self.stage == WAIT and go:
            self.enter(SETTLE_A, now)
        while True:
            st = self.stage
            if st in (SETTLE_A, UNTHR, SETTLE_B, CPU60, SETTLE_C) and now >= self.stage_end:
                nxt = st + 1
                if nxt == CPU60 and self.p.cpu60_s <= 0:
                    nxt = SETTLE_C
                self.enter(nxt, now)
                continue
            if st == LAT and self.lat_sent >= self.lat_n:
                self.enter(TAIL, now)
                continue
            break
        rate = {UNTHR: 0.0, CPU60: 60.0, LAT: self.lat_fps}.get(self.stage, self.p.warm_fps)
        if rate <= 0:
            due = now
        else:
            if self.next_due == 0 or self.next_due < now - 1.0 / rate:
                self.next_due = now
            due = self.next_due
            self.next_due += 1.0 / rate
        ph = {UNTHR: PH_UNTHR, CPU60: PH_CPU60, LAT: PH_LAT}.get(self.stage, PH_IDLE)
        return ph, due

    def end_frame(self, ph, now):
        self.sent[ph] += 1
        if ph == PH_UNTHR:
            if self.unthr_frames == 0:
                self.unthr_t0 = now
            self.unthr_frames += 1
            self.unthr_t1 = now
        elif ph == PH_LAT:
            self.lat_sent += 1

    def line(self):
        return ('PRODUCER {"unthr_fps": %.1f, "lat_fps": %.1f, "lat_n": %d, "sent": [%d, %d, %d, %d]}'
                % (self.unthr_rate(), self.lat_fps, self.lat_n, *self.sent))


class Phases:
    """peerstats.h's PhaseStats, phases 1..3"""

    def __init__(self):
        self.p = {i: dict(frames=0, missed=0, torn=0, repeats=0, max=-1, t0=0.0, t1=0.0,
                          c0=0.0, c1=0.0, lat=[]) for i in (1, 2, 3)}

    def add(self, phase, counter, torn, lat_us, now_s):
        if phase not in self.p:
            return
        p = self.p[phase]
        cpu = cpu_us()
        if p["max"] >= 0 and counter <= p["max"]:
            p["repeats"] += 1
            return
        if p["max"] >= 0:
            p["missed"] += counter - p["max"] - 1
        p["max"] = counter
        if p["frames"] == 0:
            p["t0"], p["c0"] = now_s, cpu
        p["frames"] += 1
        p["t1"], p["c1"] = now_s, cpu
        p["torn"] += 1 if torn else 0
        p["lat"].append(lat_us)

    def json(self):
        return "{" + ", ".join(
            '"%d": {"frames": %d, "missed": %d, "torn": %d, "repeats": %d, "wall_s": %.6f, '
            '"cpu_us": %.1f}' % (i, p["frames"], p["missed"], p["torn"], p["repeats"],
                                 p["t1"] - p["t0"], p["c1"] - p["c0"])
            for i, p in sorted(self.p.items())) + "}"

    def write(self, path):
        if not path:
            return
        with open(path, "w") as f:
            for i, p in sorted(self.p.items()):
                for v in p["lat"]:
                    f.write("%d %.2f\n" % (i, v))


class Control:
    """go / quit from stdin (end of input: quit), SIGTERM: quit"""

    def __init__(self):
        self.go = threading.Event()
        self.quit = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.quit.set())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in sys.stdin:
            if line.startswith("go"):
                self.go.set()
            elif line.startswith("quit"):
                break
        self.quit.set()


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def produce(argv):
    name, w, h, dtype = argv[0], int(argv[1]), int(argv[2]), argv[3]
    plan = Plan(argv[4:])
    if dtype not in ("uint8", "float32"):
        raise SystemExit("cipd_peer: dtype uint8 or float32")
    elem = 1 if dtype == "uint8" else 4
    kind, bits = (1, 8) if dtype == "uint8" else (2, 32)
    size = w * h * 4 * elem
    n = 3
    L = layout(n)
    ctl = Control()
    RT.setDevice(0)
    stream = cp.cuda.Stream(non_blocking=True)
    alloc = (size + (2 << 20) - 1) & ~((2 << 20) - 1)
    mem = [RT.malloc(alloc) for _ in range(n)]
    ev = [RT.eventCreateWithFlags(EVENT_FLAGS) for _ in range(n)]
    frame = RT.malloc(size)
    RT.memset(frame, 0, size)
    path = "/dev/shm/" + name
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, L["size"])
    mm = mmap.mmap(fd, L["size"])
    os.close(fd)
    # the peers' order: version first, the metadata last
    struct.pack_into("<I", mm, 0, MAGIC)
    struct.pack_into("<Q", mm, 4, 1)
    struct.pack_into("<II", mm, 12, n, 0)
    for s in range(n):
        mm[20 + s * 128:84 + s * 128] = bytes(RT.ipcGetMemHandle(mem[s]))
        mm[84 + s * 128:148 + s * 128] = bytes(RT.ipcGetEventHandle(ev[s]))
    mm[L["shutdown"]] = 0
    struct.pack_into("<IIIBBHI", mm, L["width"], w, h, 4, kind, bits, 0, size)

    head = np.zeros(4, dtype="<u8")
    tail = np.zeros(1, dtype="<u8")
    sched = Schedule(plan)
    idx = counter = 0
    said_ready = said_done = False
    while not ctl.quit.is_set():
        ph, due = sched.begin_frame(ctl.go.is_set(), time.monotonic())
        sleep_until(due)
        slot = idx % n
        tail[0] = counter
        RT.memcpyAsync(frame + size - 8, tail.ctypes.data, 8, H2D, stream.ptr)
        head[:] = (time.monotonic_ns(), counter, ph, STAMP_MAGIC)
        RT.memcpyAsync(frame, head.ctypes.data, 32, H2D, stream.ptr)
        RT.memcpyAsync(mem[slot], frame, size, D2D, stream.ptr)
        RT.eventRecord(ev[slot], stream.ptr)
        stream.synchronize()
        struct.pack_into("<d", mm, L["timestamp"], time.perf_counter())
        mm[L["shutdown"]] = 0
        idx += 1
        struct.pack_into("<I", mm, 16, idx)
        sched.end_frame(ph, time.monotonic())
        counter += 1
        if not said_ready:
            said_ready = True
            say("READY")
        if sched.done and not said_done:
            said_done = True
            say(sched.line())
            say("DONE")
    # the peers' clean shutdown
    mm[L["shutdown"]] = 1
    for s in range(n):
        mm[20 + s * 128:148 + s * 128] = bytes(128)
    time.sleep(0.1)
    for e in ev:
        RT.eventDestroy(e)
    for m in mem + [frame]:
        RT.free(m)
    mm.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return 0


def consume(argv):
    name = argv[0]
    lat_out, poll_s, start_s = None, 200e-6, 20.0
    i = 1
    while i < len(argv):
        if argv[i] == "--lat-out":
            lat_out = argv[i + 1]
        elif argv[i] == "--poll-us":
            poll_s = float(argv[i + 1]) / 1e6
        elif argv[i] == "--start-timeout":
            start_s = float(argv[i + 1])
        else:
            raise SystemExit("cipd_peer: unknown option %s" % argv[i])
        i += 2
    ctl = Control()
    RT.setDevice(0)
    deadline = time.monotonic() + start_s
    mm = None
    while mm is None:
        try:
            fd = os.open("/dev/shm/" + name, os.O_RDONLY)
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            os.close(fd)
            magic, version, n, _ = struct.unpack_from("<IQII", mm, 0)
            if magic != MAGIC or version == 0 or not 1 <= n <= 10 or len(mm) < layout(n)["size"] \
                    or mm[layout(n)["shutdown"]]:
                mm.close()
                mm = None
                raise FileNotFoundError
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                say("ERROR cipd_peer: no producer segment %s within %.0f s" % (name, start_s))
                return 1
            time.sleep(0.01)
    L = layout(n)
    w, h, c, kind, bits, flags, size = struct.unpack_from("<IIIBBHI", mm, L["width"])
    mems = [RT.ipcOpenMemHandle(bytes(mm[20 + s * 128:84 + s * 128]), 1) for s in range(n)]
    evs = [RT.ipcOpenEventHandle(bytes(mm[84 + s * 128:148 + s * 128])) for s in range(n)]
    stream = cp.cuda.Stream(non_blocking=True)
    own = RT.malloc(size)
    head = np.zeros(4, dtype="<u8")
    tail = np.zeros(1, dtype="<u8")
    ph = Phases()
    last = 0
    unstamped = discarded = 0
    ready = False
    while not ctl.quit.is_set():
        widx = struct.unpack_from("<I", mm, 16)[0]
        if widx == 0 or widx == last:
            if not ready and time.monotonic() > deadline:
                say("ERROR cipd_peer: no frame within %.0f s" % start_s)
                return 1
            time.sleep(poll_s)
            continue
        last = widx
        slot = (widx - 1) % n
        RT.streamWaitEvent(stream.ptr, evs[slot], 0)
        RT.memcpyAsync(own, mems[slot], size, D2D, stream.ptr)
        stream.synchronize()
        if struct.unpack_from("<I", mm, 16)[0] >= widx - 1 + n:
            discarded += 1  # the protocol's torn check: the slot was being rewritten
            continue
        RT.memcpy(head.ctypes.data, own, 32, D2H)
        now = time.monotonic_ns()
        RT.memcpy(tail.ctypes.data, own + size - 8, 8, D2H)
        if int(head[3]) != STAMP_MAGIC:
            unstamped += 1
            continue
        ph.add(int(head[2]), int(head[1]), int(tail[0]) != int(head[1]),
               (now - int(head[0])) / 1e3, now / 1e9)
        if not ready:
            ready = True
            say("READY")
    say('RESULT {"phases": %s, "unstamped": %d, "discarded": %d, "error": ""}'
        % (ph.json(), unstamped, discarded))
    ph.write(lat_out)
    for p in mems:
        RT.ipcCloseMemHandle(p)
    for e in evs:
        RT.eventDestroy(e)
    RT.free(own)
    return 0


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("produce", "consume"):
        print(__doc__, file=sys.stderr)
        return 64
    try:
        RT.getDeviceCount()
    except Exception as e:
        say("ERROR cipd_peer: no CUDA device: %s" % str(e).splitlines()[0])
        return 2
    if sys.argv[1] == "produce":
        return produce(sys.argv[2:])
    return consume(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
