"""Memory contents written into RTLIL as one constant (`cores.fast_meminit`) give the same RTLIL
as Amaranth's own backend, for memories of every shape the cores make."""
from amaranth import Elaboratable, Module, signed, unsigned
from amaranth.back import rtlil
from amaranth.lib.memory import Memory

from finn_rtl.cores import fast_meminit


class Memories(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        shapes = [(unsigned(1), 2, [1]), (unsigned(7), 5, [3, 127, 0, 64]), (unsigned(33), 64, list(range(64))),
                  (signed(5), 9, [-16, 15, -1, 0, 7]), (unsigned(72), 3, [(1 << 72) - 1, 1 << 71, 12345]),
                  (unsigned(8), 4, [])]
        for index, (shape, depth, init) in enumerate(shapes):
            memory = Memory(shape=shape, depth=depth, init=init, attrs={"rom_style": "block"})
            m.submodules[f"mem{index}"] = memory
            read = memory.read_port()
            m.d.comb += read.addr.eq(0)
        return m


def test_the_same_rtlil_as_amaranths_backend():
    try:
        fast_meminit.original()
        expected = rtlil.convert(Memories(), name="top", emit_src=False, ports=[])
    finally:
        assert fast_meminit.installed()
    assert expected.count("$meminit_v2") >= 5  # the contents are there to compare
    assert rtlil.convert(Memories(), name="top", emit_src=False, ports=[]) == expected
