"""Fake cudalinksrc (tests/ci/fakegpu): see fakegpu_common.LinkSrc."""
from gi.repository import GObject
from fakegpu_common import LinkSrc


class Fake(LinkSrc):
    pass


GObject.type_register(Fake)
__gstelementfactory__ = ("cudalinksrc", 0, Fake)
