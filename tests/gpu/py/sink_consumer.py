#!/usr/bin/env python3
"""A foreign cuda-link consumer for gpu_sink, written from PROTOCOL.md alone.

    sink_consumer.py NAME COUNT CHECKSUM[,CHECKSUM...]

Opens /dev/shm/NAME with os.open + mmap (not multiprocessing's
SharedMemory, whose resource_tracker would unlink the segment), parses the
header with struct, opens the slots with cupy's CUDA IPC calls, waits for
write_idx to move, waits on the slot's event, copies the frame to the host
and compares its checksum with the one gpu_sink computed for that frame.
Prints one line per frame ("frame I ..."); gpu_sink reads each line before
letting the sink publish the next frame. Exits 0 when every checksum
matched, 1 otherwise, 2 when it cannot run (no cupy, no segment).

checksum = sum(byte[i] * (i % 65521 + 1)) mod 2**64
"""
import mmap
import os
import struct
import sys
import time

import numpy as np

try:
    import cupy
except ImportError as e:  # the GPU machine has cupy: this is a failure there
    print("FAIL cupy not importable: %s" % e, flush=True)
    sys.exit(2)

MAGIC = 0x43495044
RT = cupy.cuda.runtime


def layout(n):
    base = 20 + 128 * n
    return {
        "shutdown": base, "width": base + 1, "height": base + 5,
        "comps": base + 9, "kind": base + 13, "bits": base + 14,
        "flags": base + 15, "data_size": base + 17, "timestamp": base + 21,
        "size": base + 29,
    }


def checksum(data):
    a = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    w = (np.arange(a.size, dtype=np.uint64) % np.uint64(65521)) + np.uint64(1)
    return int((a * w).sum(dtype=np.uint64))


class Segment:
    def __init__(self, name):
        self.fd = os.open("/dev/shm/" + name, os.O_RDONLY)
        self.buf = mmap.mmap(self.fd, 0, prot=mmap.PROT_READ)
        self.mems = []
        self.events = []

    def u32(self, off):
        return struct.unpack_from("<I", self.buf, off)[0]

    def header(self):
        magic, version, n, write_idx = struct.unpack_from("<IQII", self.buf, 0)
        if magic != MAGIC or not 1 <= n <= 10 or len(self.buf) < layout(n)["size"]:
            return None
        L = layout(n)
        w, h, c = struct.unpack_from("<III", self.buf, L["width"])
        kind, bits = self.buf[L["kind"]], self.buf[L["bits"]]
        flags, data_size = struct.unpack_from("<HI", self.buf, L["flags"])
        return {
            "version": version, "n": n, "write_idx": write_idx,
            "shutdown": self.buf[L["shutdown"]], "w": w, "h": h, "c": c,
            "kind": kind, "bits": bits, "flags": flags, "data_size": data_size,
        }

    def open_handles(self, hdr):
        self.close_handles()
        for s in range(hdr["n"]):
            mh = bytes(self.buf[20 + 128 * s:84 + 128 * s])
            eh = bytes(self.buf[84 + 128 * s:148 + 128 * s])
            self.mems.append(RT.ipcOpenMemHandle(mh, 1))
            self.events.append(RT.ipcOpenEventHandle(eh))

    def close_handles(self):
        for p in self.mems:
            RT.ipcCloseMemHandle(p)
        for e in self.events:
            RT.eventDestroy(e)
        self.mems, self.events = [], []


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    name, count = sys.argv[1], int(sys.argv[2])
    expected = [int(x) for x in sys.argv[3].split(",")]
    RT.setDevice(0)

    deadline = time.monotonic() + 20
    seg = None
    while seg is None:
        try:
            seg = Segment(name)
            hdr = seg.header()
            if hdr is None or hdr["version"] == 0 or hdr["shutdown"]:
                seg = None
                raise FileNotFoundError
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                print("FAIL no segment %s" % name, flush=True)
                return 2
            time.sleep(0.005)

    # seqlock: version, handles, version again
    while True:
        hdr = seg.header()
        seg.open_handles(hdr)
        again = seg.header()
        if again["version"] == hdr["version"]:
            break
    version, last = hdr["version"], 0
    ok = True
    i = 0
    frame_deadline = time.monotonic() + 20
    while i < count:
        h = seg.header()
        if h["version"] != version:
            seg.open_handles(h)
            version, last = h["version"], 0
            continue
        if h["write_idx"] == 0 or h["write_idx"] == last:
            if time.monotonic() > frame_deadline:
                print("FAIL timeout waiting for frame %d" % i, flush=True)
                return 1
            time.sleep(0.0002)
            continue
        last = h["write_idx"]
        slot = (last - 1) % h["n"]
        if h["data_size"] != h["w"] * h["h"] * h["c"] * h["bits"] // 8:
            print("FAIL data_size %d does not add up" % h["data_size"], flush=True)
            return 1
        RT.eventSynchronize(seg.events[slot])
        host = np.empty(h["data_size"], dtype=np.uint8)
        RT.memcpy(host.ctypes.data, seg.mems[slot], h["data_size"],
                  RT.memcpyDeviceToHost)
        got = checksum(host)
        good = i < len(expected) and got == expected[i]
        ok = ok and good
        print("frame %d %dx%dx%d kind %d bits %d flags %d write_idx %d checksum %d %s"
              % (i, h["w"], h["h"], h["c"], h["kind"], h["bits"], h["flags"],
                 last, got, "ok" if good else "BAD"), flush=True)
        i += 1
        frame_deadline = time.monotonic() + 20
    seg.close_handles()
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
