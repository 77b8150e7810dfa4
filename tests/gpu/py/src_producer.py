#!/usr/bin/env python3
"""A cuda-link producer in Python for the cudalinksrc GPU test.

Written from docs/PROTOCOL.md alone, the way the TouchDesigner / cuda_link
peers behave, with cupy for CUDA and nothing of libcudalink:

- the segment is /dev/shm/NAME opened with os.open + mmap (not
  multiprocessing.shared_memory, whose resource tracker would unlink it);
- slots come from cupy.cuda.runtime.malloc (rounded up to 2 MiB), exported
  with ipcGetMemHandle; one event per slot, created with
  cudaEventInterprocess | cudaEventDisableTiming, exported with
  ipcGetEventHandle;
- the header is written with struct, little-endian; no futex wake, no lock;
- a (re)initialisation writes the version FIRST, then num_slots,
  write_idx = 0, the handles, shutdown_flag = 0 and the metadata LAST,
  which is what the peers do (a consumer can see a new version next to old
  handles); the old buffers are freed 30 frames later (release 1.1's
  Sender);
- after --reinit-after frames it re-initialises with --width2 x --height2,
  and the first frame after that is published as write_idx = --jump
  (write_idx goes 0 -> 501, as the peers' counters can).

Frames are uint8 x 4 and carry the bytes of tests/gpu/src_pattern.h: the
base image of --seed, row (k % height) set to k * 7 + 1, and the frame
number k (counting every frame published) stamped into the first and last
4 bytes.

Prints READY after the first initialisation, REINIT after the second and
DONE at the end; SIGTERM ends it with the peers' clean shutdown.
"""
import argparse
import mmap
import os
import signal
import struct
import sys
import time

import numpy as np
import cupy as cp

MAGIC = 0x43495044
RT = cp.cuda.runtime
EVENT_FLAGS = 0x2 | 0x4  # cudaEventDisableTiming | cudaEventInterprocess


def layout(n):
    m = 20 + 128 * n
    return dict(size=m + 49, magic=0, version=4, num_slots=12, write_idx=16,
                mem0=20, ev0=84, stride=128, shutdown=m, width=m + 1,
                height=m + 5, comps=m + 9, kind=m + 13, bits=m + 14,
                flags=m + 15, data_size=m + 17, timestamp=m + 21)


def base_image(size, seed):
    i = np.arange(size, dtype=np.uint32)
    x = i * np.uint32(2654435761) + np.uint32((seed * 40503) & 0xFFFFFFFF)
    return ((x >> np.uint32(13)) ^ (i >> np.uint32(9))).astype(np.uint8)


def frame(base, k, width, height):
    out = base.copy()
    row = width * 4
    r = k % height
    out[r * row:(r + 1) * row] = (k * 7 + 1) & 0xFF
    stamp = np.frombuffer(struct.pack("<I", k & 0xFFFFFFFF), np.uint8)
    out[0:4] = stamp
    out[-4:] = stamp
    return out


class Producer:
    def __init__(self, name, slots):
        self.name = name
        self.n = slots
        self.L = layout(slots)
        path = "/dev/shm/" + name
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        if os.fstat(fd).st_size < self.L["size"]:
            os.ftruncate(fd, self.L["size"])
        self.mm = mmap.mmap(fd, self.L["size"])
        os.close(fd)
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.version = 0
        if struct.unpack_from("<I", self.mm, 0)[0] == MAGIC:
            self.version = struct.unpack_from("<Q", self.mm, 4)[0]
        self.mem, self.ev, self.old = [], [], []
        self.idx = 0

    def init(self, width, height):
        L, mm = self.L, self.mm
        size = width * height * 4
        alloc = (size + (2 << 20) - 1) & ~((2 << 20) - 1)
        if self.mem:
            self.old.append((self.mem, self.ev, 30))
        self.mem = [RT.malloc(alloc) for _ in range(self.n)]
        self.ev = [RT.eventCreateWithFlags(EVENT_FLAGS) for _ in range(self.n)]
        self.width, self.height, self.size = width, height, size
        self.base = base_image(size, self.seed)
        # the peers' order: version first ...
        self.version += 1
        struct.pack_into("<I", mm, L["magic"], MAGIC)
        struct.pack_into("<Q", mm, L["version"], self.version)
        struct.pack_into("<I", mm, L["num_slots"], self.n)
        struct.pack_into("<I", mm, L["write_idx"], 0)
        for s in range(self.n):
            mh = RT.ipcGetMemHandle(self.mem[s])
            eh = RT.ipcGetEventHandle(self.ev[s])
            mm[L["mem0"] + s * 128:L["mem0"] + s * 128 + 64] = bytes(mh)
            mm[L["ev0"] + s * 128:L["ev0"] + s * 128 + 64] = bytes(eh)
        mm[L["shutdown"]] = 0
        # ... and the metadata last
        struct.pack_into("<IIIBBHI", mm, L["width"], width, height, 4, 1, 8, 0,
                         size)
        self.idx = 0

    def publish(self, k):
        L, mm = self.L, self.mm
        slot = self.idx % self.n
        host = frame(self.base, k, self.width, self.height)
        RT.memcpyAsync(self.mem[slot], host.ctypes.data, self.size,
                       RT.memcpyHostToDevice, self.stream.ptr)
        RT.eventRecord(self.ev[slot], self.stream.ptr)
        self.stream.synchronize()
        struct.pack_into("<d", mm, L["timestamp"], time.perf_counter())
        mm[L["shutdown"]] = 0
        self.idx += 1
        struct.pack_into("<I", mm, L["write_idx"], self.idx)
        # free a replaced ring 30 frames later
        keep = []
        for mem, ev, left in self.old:
            if left <= 1:
                for e in ev:
                    RT.eventDestroy(e)
                for m in mem:
                    RT.free(m)
            else:
                keep.append((mem, ev, left - 1))
        self.old = keep

    def shutdown(self):
        L, mm = self.L, self.mm
        mm[L["shutdown"]] = 1
        for s in range(self.n):
            mm[L["mem0"] + s * 128:L["mem0"] + s * 128 + 128] = bytes(128)
        for e in self.ev:
            RT.eventDestroy(e)
        time.sleep(0.1)
        for mem, ev, _ in self.old:
            for e in ev:
                RT.eventDestroy(e)
            for m in mem:
                RT.free(m)
        for m in self.mem:
            RT.free(m)
        mm.close()
        try:
            os.unlink("/dev/shm/" + self.name)
        except FileNotFoundError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=72)
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--fps", type=float, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reinit-after", type=int, default=0)
    ap.add_argument("--width2", type=int, default=160)
    ap.add_argument("--height2", type=int, default=90)
    ap.add_argument("--jump", type=int, default=501)
    ap.add_argument("--hold-ms", type=int, default=300)
    ap.add_argument("--delay-ms", type=int, default=0)
    a = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    cp.cuda.Device(0).use()

    p = Producer(a.name, a.slots)
    p.seed = a.seed
    p.init(a.width, a.height)
    print("READY", flush=True)
    time.sleep(a.delay_ms / 1000.0)
    period = 1.0 / a.fps if a.fps > 0 else 0
    t = time.perf_counter()
    k = 0
    while not stop and k < a.frames:
        if a.reinit_after and k == a.reinit_after:
            p.init(a.width2, a.height2)
            p.idx = a.jump - 1  # the next publish stores write_idx = jump
            print("REINIT", flush=True)
        p.publish(k)
        k += 1
        if period:
            t += period
            delay = t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    print("DONE %d" % k, flush=True)
    end = time.perf_counter() + a.hold_ms / 1000.0
    while not stop and time.perf_counter() < end:
        time.sleep(0.01)
    p.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
