"""Memory contents written into RTLIL as one constant (`cores.fast_meminit`) give the same RTLIL
as Amaranth's own backend, for memories of every shape the cores make."""
from amaranth import Elaboratable, Module, Signal, signed, unsigned
from amaranth.back import rtlil
from amaranth.lib import wiring
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


class LargeMemories(wiring.Component):
    """Memories above DEFER_BITS, of widths Yosys writes in decimal (32) and hex, with a
    submodule name Yosys escapes and a memory name it escapes, beside a small memory; each read
    at a counting address into one output bit, so none is optimized away."""

    out: wiring.Out(5)

    def elaborate(self, platform):
        import numpy as np

        rng = np.random.default_rng(5)
        m = Module()
        address = Signal(16)
        m.d.sync += address.eq(address + 1)
        for index, (width, depth) in enumerate([(32, 2048), (1, 1 << 16), (2048, 40), (72, 1000), (8, 4)]):
            init = [int(v) for v in rng.integers(0, 1 << min(width, 62), depth)]
            if width == 2048:
                init = [(v << 1986) | 12345 for v in init]
            memory = Memory(shape=unsigned(width), depth=depth, init=init, attrs={"rom_style": "block"})
            inner = Module()
            inner.submodules["$store" if index == 3 else "store"] = memory
            m.submodules[f"bank{index}"] = inner
            read = memory.read_port()
            inner.d.comb += [read.addr.eq(address), self.out[index].eq(read.data.xor())]
        return m


def test_deferred_contents_give_the_verilog_yosys_writes_with_them():
    from finn_rtl.cores.verilog_out import rtlil_to_verilog

    assert fast_meminit.installed()
    expected = rtlil_to_verilog(rtlil.convert(LargeMemories(), name="top", emit_src=False))
    with fast_meminit.DeferredContents() as deferred:
        text = rtlil.convert(LargeMemories(), name="top", emit_src=False)
    assert len(deferred.contents) == 4  # all but the small one bypass Yosys
    assert text.count("$meminit_v2") == 1 and len(text) < len(expected) / 10
    assert deferred.into(rtlil_to_verilog(text)) == expected
    assert "32'd" in expected and "2048'h" in expected and "\\$store " in expected


def test_deferred_contents_that_yosys_dropped_are_an_error():
    import pytest

    with fast_meminit.DeferredContents() as deferred:
        rtlil.convert(LargeMemories(), name="top", emit_src=False)
    with pytest.raises(RuntimeError, match="not found"):
        deferred.into("/* empty */\nmodule other(a);\nendmodule\n")
