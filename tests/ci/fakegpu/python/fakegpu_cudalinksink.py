"""Fake cudalinksink (tests/ci/fakegpu): see fakegpu_common.LinkSink."""
from gi.repository import GObject
from fakegpu_common import LinkSink


class Fake(LinkSink):
    pass


GObject.type_register(Fake)
__gstelementfactory__ = ("cudalinksink", 0, Fake)
