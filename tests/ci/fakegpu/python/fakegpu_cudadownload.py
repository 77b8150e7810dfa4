"""Fake cudadownload (tests/ci/fakegpu): a caps relabel, buffers untouched."""
from gi.repository import GObject
from fakegpu_common import ToSys


class Fake(ToSys):
    __gstmetadata__ = ("Downloads (fake)", "Filter/Video/Hardware", "fakegpu", "tests")


GObject.type_register(Fake)
__gstelementfactory__ = ("cudadownload", 0, Fake)
