"""The popcount leaf: its Verilog module in Verilator and its Amaranth model, against Python counts."""
import random

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from finn_rtl.cores.popcount import convert, count_width, leaf_verilog, popcount

WIDTHS = [1, 2, 3, 7, 8, 32, 33, 40, 63, 64]


def patterns(width: int, rng: random.Random) -> list[int]:
    full = (1 << width) - 1
    words = [0, full, 0x5555555555555555 & full, 0xAAAAAAAAAAAAAAAA & full]
    words += [1 << bit for bit in range(width)] + [full ^ (1 << bit) for bit in range(width)]
    return words + [rng.getrandbits(width) for _ in range(200)]


class PopcountLanes(wiring.Component):
    """Counts several words of different widths per beat, with the harness's AXI-stream port names."""

    def __init__(self):
        self.in_bits, self.out_bits = sum(WIDTHS), sum(count_width(w) for w in WIDTHS)
        super().__init__({"s_axis_tdata": In(self.in_bits), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
                          "m_axis_tdata": Out(self.out_bits), "m_axis_tvalid": Out(1), "m_axis_tready": In(1)})

    def elaborate(self, platform):
        m = Module()
        counts, start = [], 0
        for index, width in enumerate(WIDTHS):
            counts.append(popcount(m, self.s_axis_tdata[start:start + width], platform, f"count{index}"))
            start += width
        advance = ~self.m_axis_tvalid | self.m_axis_tready
        m.d.comb += self.s_axis_tready.eq(advance)
        with m.If(advance):
            m.d.sync += [self.m_axis_tvalid.eq(self.s_axis_tvalid), self.m_axis_tdata.eq(Cat(*counts))]
        return m


def test_leaf_module_text_is_one_module_per_width():
    text = convert(PopcountLanes(), "lanes")
    for width in WIDTHS[1:]:
        assert text.count(f"module finn_rtl_popcount_{width} ") == 1
        assert leaf_verilog(width) in text
    assert "finn_rtl_popcount_1 " not in text  # a single bit is its own count


def test_verilog_leaf_counts_in_verilator():
    from finn_rtl.sim import verilator

    rng = random.Random(3)
    lanes = [patterns(width, rng) for width in WIDTHS]
    beats = max(len(words) for words in lanes)
    lanes = [(words * beats)[:beats] for words in lanes]
    top = PopcountLanes()
    design = verilator.compile_verilog(convert(top, "lanes"), "lanes", cxx_opt=verilator.FAST_BUILD)
    n_in = verilator.words_per_beat(top.in_bits)
    packed = [sum(word << offset for word, offset in zip(beat, np.cumsum([0] + WIDTHS[:-1]).tolist()))
              for beat in zip(*lanes)]
    in_words = np.array([[(value >> (32 * i)) & 0xFFFFFFFF for i in range(n_in)] for value in packed],
                        dtype=np.uint32)
    run = verilator.run_stream(design, in_words, 1, top.out_bits, 1, beats, ready_percent=70, valid_percent=80)
    outputs = [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in run.output_words]
    assert len(outputs) == beats
    for beat, value in enumerate(outputs):
        for width, words in zip(WIDTHS, lanes):
            bits = count_width(width)
            assert value & ((1 << bits) - 1) == bin(words[beat]).count("1"), (width, hex(words[beat]))
            value >>= bits


def test_amaranth_model_counts():
    rng = random.Random(4)
    m = Module()
    inputs = [Signal(width, name=f"x{width}") for width in WIDTHS]
    outputs = [popcount(m, x, None, f"c{len(x)}") for x in inputs]
    sim = Simulator(m)

    async def bench(ctx):
        for x, count in zip(inputs, outputs):
            for word in patterns(len(x), rng)[:80]:
                ctx.set(x, word)
                assert ctx.get(count) == bin(word).count("1")

    sim.add_testbench(bench)
    sim.run()
