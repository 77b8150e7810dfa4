"""Fake cudascale (tests/ci/fakegpu): videoscale between two caps relabels."""
from gi.repository import GObject
from fakegpu_common import Wrapped


class Fake(Wrapped):
    __gstmetadata__ = ("cudascale (fake)", "Filter/Video/Hardware", "fakegpu", "tests")
    inner = "videoscale"


GObject.type_register(Fake)
__gstelementfactory__ = ("cudascale", 0, Fake)
