"""A FAKE cupy for tests/bench/rehearse.sh (read it first): the handful of
cupy.cuda.runtime calls tests/bench/py/cipd_peer.py makes, on host memory
(memfd + mmap, so that an IPC handle, carrying the owner's pid and fd,
opens in another process), copies with memmove, streams and events doing
nothing. Nothing it measures is a GPU figure."""
import ctypes
import mmap
import os
import struct
import types

__version__ = "0.0-fake (tests/bench/rehearse)"
_maps = {}


def _addr(mm):
    return ctypes.addressof(ctypes.c_char.from_buffer(mm))


def _malloc(n):
    fd = os.memfd_create("fakecupy")
    os.ftruncate(fd, n)
    mm = mmap.mmap(fd, n)
    a = _addr(mm)
    _maps[a] = (fd, mm, n)
    return a


def _free(a):
    fd, mm, _ = _maps.pop(a, (None, None, None))
    if fd is not None:
        os.close(fd)


def _ipc_get(a):
    fd, _, n = _maps[a]
    return struct.pack("<iiQ", os.getpid(), fd, n).ljust(64, b"\0")


def _ipc_open(h, flags=0):
    pid, fd, n = struct.unpack_from("<iiQ", bytes(h))
    own = os.open("/proc/%d/fd/%d" % (pid, fd), os.O_RDWR)
    mm = mmap.mmap(own, n)
    a = _addr(mm)
    _maps[a] = (own, mm, n)
    return a


def _memcpy(dst, src, n, kind, stream=0):
    ctypes.memmove(dst, src, n)


runtime = types.SimpleNamespace(
    setDevice=lambda d: None,
    getDeviceCount=lambda: 1,
    malloc=_malloc,
    free=_free,
    memset=lambda a, v, n: ctypes.memset(a, v, n),
    memcpy=_memcpy,
    memcpyAsync=_memcpy,
    ipcGetMemHandle=_ipc_get,
    ipcOpenMemHandle=_ipc_open,
    ipcCloseMemHandle=_free,
    eventCreateWithFlags=lambda f: 1,
    eventRecord=lambda e, s: None,
    eventDestroy=lambda e: None,
    ipcGetEventHandle=lambda e: bytes(64),
    ipcOpenEventHandle=lambda h: 1,
    streamWaitEvent=lambda s, e, f: None,
)


class Stream:
    def __init__(self, non_blocking=False):
        self.ptr = 0

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(runtime=runtime, Stream=Stream)
