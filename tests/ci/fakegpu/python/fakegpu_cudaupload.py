"""Fake cudaupload (tests/ci/fakegpu): a caps relabel, buffers untouched."""
from gi.repository import GObject
from fakegpu_common import ToCuda


class Fake(ToCuda):
    __gstmetadata__ = ("Uploads (fake)", "Filter/Video/Hardware", "fakegpu", "tests")


GObject.type_register(Fake)
__gstelementfactory__ = ("cudaupload", 0, Fake)
