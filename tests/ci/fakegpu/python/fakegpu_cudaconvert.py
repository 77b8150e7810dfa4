"""Fake cudaconvert (tests/ci/fakegpu): videoconvert between two caps relabels."""
from gi.repository import GObject
from fakegpu_common import Wrapped


class Fake(Wrapped):
    __gstmetadata__ = ("cudaconvert (fake)", "Filter/Video/Hardware", "fakegpu", "tests")
    inner = "videoconvert"


GObject.type_register(Fake)
__gstelementfactory__ = ("cudaconvert", 0, Fake)
