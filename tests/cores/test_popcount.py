"""Weighted popcount leaves: their Verilog modules in Verilator and their Amaranth model, against
Python counts, for the shapes the MVTU makes and for awkward ones."""
import random
import re

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from finn_rtl.cores.pipelining import StageBudget
from finn_rtl.cores.popcount import (CountPipeline, CountPlan, convert, leaf_verilog, pipelined_popcount,
                                     popcount_structure, weighted_popcount)

# (width, shift) per term
PLANS = [
    [(64, 0)],  # one plain count
    [(2, 0)], [(3, 0)], [(7, 0)], [(33, 0)], [(40, 0)], [(63, 0)],
    [(64, 0), (64, 1), (64, 1), (64, 2)],  # 2-bit x 2-bit planes
    [(64, 0), (6, 0), (64, 1), (6, 1), (64, 1), (6, 1), (64, 2), (6, 2)],  # 70 lanes: chunk + tail
    [(64, 0)] * 16,  # an XNOR layer of 1,024 lanes
    [(16, a + b) for a in range(4) for b in range(4)],  # 4-bit x 4-bit planes of 16 lanes
    [(64, 0), (64, 0), (17, 1), (5, 3), (1, 3), (64, 2), (3, 7)],  # mixed widths and shifts
    [(1, 0), (1, 1)],  # single bits
    [(8, a + b) for a in range(8) for b in range(2)],  # 8-bit x 2-bit planes of 8 lanes
]


def expected(plan, words):
    return sum(bin(word).count("1") << shift for (_, shift), word in zip(plan, words))


def patterns(plan, rng: random.Random) -> list[list[int]]:
    fulls = [(1 << width) - 1 for width, _ in plan]
    cases = [[0] * len(plan), fulls, [f & 0x5555555555555555 for f in fulls], [f & 0xAAAAAAAAAAAAAAAA for f in fulls]]
    for bit in range(max(width for width, _ in plan)):  # one bit set, and all bits but one
        cases.append([(1 << bit) & f for f in fulls])
        cases.append([f ^ ((1 << bit) & f) for f in fulls])
    return cases + [[rng.getrandbits(width) for width, _ in plan] for _ in range(150)]


class PlanLanes(wiring.Component):
    """Every plan's count per beat, behind the harness's AXI-stream port names."""

    def __init__(self, registered=False, budget=None):
        self.registered = registered  # the leaves' own count registers are the output register
        self.budget = budget  # pipeline registers for this budget (registered), counts aligned by delays
        self.in_bits = sum(width for plan in PLANS for width, _ in plan)
        self.out_bits = sum(self.count_bits(plan) for plan in PLANS)
        super().__init__({"s_axis_tdata": In(self.in_bits), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
                          "m_axis_tdata": Out(self.out_bits), "m_axis_tvalid": Out(1), "m_axis_tready": In(1)})

    @staticmethod
    def count_bits(plan) -> int:
        return CountPlan(tuple(w for w, _ in plan), tuple(s for _, s in plan)).count_bits

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.m_axis_tvalid | self.m_axis_tready)
        counts, stages, start = [], [], 0
        for index, plan in enumerate(PLANS):
            terms = []
            for width, shift in plan:
                terms.append((shift, self.s_axis_tdata[start:start + width]))
                start += width
            if self.budget is None:
                counts.append(weighted_popcount(m, terms, platform, f"count{index}",
                                                enable=advance if self.registered else None))
                stages.append(1)
            else:
                count, depth = pipelined_popcount(m, terms, platform, f"count{index}", lambda k: advance, self.budget)
                counts.append(count)
                stages.append(depth)
        for index, depth in enumerate(stages):  # the shallower counts delayed to the deepest
            for k in range(max(stages) - depth):
                delayed = Signal.like(counts[index], name=f"count{index}_d{k}")
                with m.If(advance):
                    m.d.sync += delayed.eq(counts[index])
                counts[index] = delayed
        valid = self.s_axis_tvalid
        for k in range(max(stages) - 1):
            delayed = Signal(name=f"valid_d{k}")
            with m.If(advance):
                m.d.sync += delayed.eq(valid)
            valid = delayed
        m.d.comb += self.s_axis_tready.eq(advance)
        with m.If(advance):
            m.d.sync += self.m_axis_tvalid.eq(valid)
        if self.registered:
            m.d.comb += self.m_axis_tdata.eq(Cat(*counts))
        else:
            with m.If(advance):
                m.d.sync += self.m_axis_tdata.eq(Cat(*counts))
        return m


def beats(rng):
    per_plan = [patterns(plan, rng) for plan in PLANS]
    count = max(len(cases) for cases in per_plan)
    return [[cases[i % len(cases)] for cases in per_plan] for i in range(count)]


def test_leaf_modules_appear_once_each():
    text = convert(PlanLanes(), "lanes")
    names = re.findall(r"^module (finn_rtl_popcount_\w+)", text, re.M)
    assert len(names) >= len(PLANS) - 1 and len(names) == len(set(names))
    one = CountPlan((64,), (0,))
    assert leaf_verilog(one) in text  # the first plan, a plain count, reaches Verilog unchanged


@pytest.mark.parametrize("registered, budget", [(False, None), (True, None), (True, StageBudget.at(250)),
                                                (True, StageBudget(1.0))],
                         ids=["combinational", "registered", "pipelined-250MHz", "register-per-level"])
def test_verilog_leaves_count_in_verilator(registered, budget):
    from finn_rtl.sim import verilator

    rng = random.Random(3)
    cases = beats(rng)
    top = PlanLanes(registered, budget)
    text = convert(top, "lanes")
    assert ("if (en[0]) begin : stage0" in text) == registered  # the sum inside the clocked block
    if budget is not None:
        assert "if (en[1]) begin : stage1" in text
    design = verilator.compile_verilog(text, "lanes", cxx_opt=verilator.FAST_BUILD)
    n_in = verilator.words_per_beat(top.in_bits)
    packed = []
    for beat in cases:
        value, offset = 0, 0
        for plan, words in zip(PLANS, beat):
            for (width, _), word in zip(plan, words):
                value |= word << offset
                offset += width
        packed.append(value)
    in_words = np.array([[(v >> (32 * i)) & 0xFFFFFFFF for i in range(n_in)] for v in packed], dtype=np.uint32)
    run = verilator.run_stream(design, in_words, 1, top.out_bits, 1, len(cases), ready_percent=70, valid_percent=80)
    assert len(run.output_words) == len(cases)
    for beat, row in zip(cases, run.output_words):
        value = sum(int(w) << (32 * i) for i, w in enumerate(row))
        for plan, words in zip(PLANS, beat):
            bits = PlanLanes.count_bits(plan)
            assert value & ((1 << bits) - 1) == expected(plan, words), (plan, [hex(w) for w in words])
            value >>= bits


@pytest.mark.parametrize("index", range(len(PLANS)))
def test_amaranth_model_counts_through_pipeline_registers(index):
    """The Amaranth form of a pipelined count (Amaranth's simulator runs it in core tests) has the
    registers the Verilog leaf has: the count of a word appears `stages` cycles later."""
    plan = PLANS[index]
    rng = random.Random(40 + index)
    m = Module()
    inputs = [Signal(width, name=f"x{i}") for i, (width, _) in enumerate(plan)]
    count, stages = pipelined_popcount(m, [(shift, x) for x, (_, shift) in zip(inputs, plan)], None, "c",
                                       lambda k: 1, StageBudget(1.0))
    assert stages == CountPipeline.of([(s, w) for w, s in plan], StageBudget(1.0)).stages
    sim = Simulator(m)
    sim.add_clock(1e-6)
    words_seen = []

    async def bench(ctx):
        for words in patterns(plan, rng)[:40]:
            for x, word in zip(inputs, words):
                ctx.set(x, word)
            words_seen.append(words)
            await ctx.tick()
            if len(words_seen) >= stages:
                assert ctx.get(count) == expected(plan, words_seen[-stages])

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("index", range(len(PLANS)))
def test_amaranth_model_counts(index):
    plan = PLANS[index]
    rng = random.Random(4 + index)
    m = Module()
    inputs = [Signal(width, name=f"x{i}") for i, (width, _) in enumerate(plan)]
    count = weighted_popcount(m, [(shift, x) for x, (_, shift) in zip(inputs, plan)], None, "c")
    sim = Simulator(m)

    async def bench(ctx):
        for words in patterns(plan, rng)[:60]:
            for x, word in zip(inputs, words):
                ctx.set(x, word)
            assert ctx.get(count) == expected(plan, words)

    sim.add_testbench(bench)
    sim.run()


def test_plan_fields_never_overflow():
    """F * sum(2^shift) < 2^F, and the padded word holds the largest count."""
    for plan in PLANS:
        cp = CountPlan(tuple(w for w, _ in plan), tuple(s for _, s in plan))
        assert cp.merge_field * cp.weight_sum < 1 << cp.merge_field
        assert cp.largest < 1 << cp.word


def full(width):
    return np.ones(width, dtype=bool)


def test_structure_counts_swar_adders_by_the_largest_field_count():
    # 64 bits: 32 fields of up to 2 (2 bits), 16 of up to 4 (3), 8 of 8, 4 of 16, 2 of 32, 1 of 64.
    assert popcount_structure([(0, full(64))]) == {"full_adder_bits": 0, "adder_bits": 64 + 48 + 32 + 20 + 12 + 7}
    # 3 bits: one pair (2 bits), then that pair and the lone bit (2 bits).
    assert popcount_structure([(0, full(3))]) == {"full_adder_bits": 0, "adder_bits": 4}
    assert popcount_structure([(0, full(1))])["adder_bits"] == 0
    assert popcount_structure([(0, full(0))]) == {"full_adder_bits": 0, "adder_bits": 0}
    # Wider counts cost more; constant bits cost nothing (one live bit of 64 is a wire).
    costs = [sum(popcount_structure([(0, full(w))]).values()) for w in (8, 16, 32, 64)]
    assert costs == sorted(costs) and len(set(costs)) == 4
    assert sum(popcount_structure([(0, np.arange(64) == 5)]).values()) == 0


def test_structure_counts_full_adders_with_two_or_more_live_inputs():
    # Three 4-bit words at one weight: one full adder, 4 sum and 4 carry bits.
    assert popcount_structure([(0, full(4))] * 3)["full_adder_bits"] == 8
    # A third word of constants: 4 half adders, still 8 gate outputs; two constant words: wires.
    assert popcount_structure([(0, full(4)), (0, full(4)), (0, ~full(4))])["full_adder_bits"] == 8
    assert popcount_structure([(0, full(4)), (0, ~full(4)), (0, ~full(4))])["full_adder_bits"] == 0
    # Words of different widths: positions beyond the second word are wires.
    assert popcount_structure([(0, full(6)), (0, full(2)), (0, full(1))])["full_adder_bits"] == 4


# (shift, live bits) per word: dense, and the same with a third of the bits constant 0 (weight
# planes that are 0 in every row), and the planes of a 2-bit x 2-bit dot product of 100 lanes.
RNG = np.random.default_rng(3)
STRUCTURES = {
    "xnor-256": [(0, full(64))] * 4,
    "xnor-256-sparse": [(0, RNG.random(64) > 0.33) for _ in range(4)],
    "planes-2x2-100": [(a + b, full(width)) for a in range(2) for b in range(2) for width in (64, 36)],
    "planes-2x2-100-sparse": [(a + b, RNG.random(width) > 0.33) for a in range(2) for b in range(2)
                              for width in (64, 36)],
}


def test_counted_structure_tracks_yosys():
    """LUTs per counted bit stay within a narrow band when words lose a third of their bits to
    constants (measured here: 0.89 to 0.92 with the LUT-count mapping of `synthesis.SCRIPT`)."""
    from amaranth.hdl import Const

    from finn_rtl.resources.synthesis import design_sources, synthesize, yosys_version

    class Count(wiring.Component):
        def __init__(self, terms):
            self.terms = terms
            super().__init__({"x": In(sum(len(live) for _, live in terms)), "count": Out(16)})

        def elaborate(self, platform):
            m, offset, words = Module(), 0, []
            for shift, live in self.terms:
                bits = [self.x[offset + i] if bit else Const(0, 1) for i, bit in enumerate(live)]
                word = Signal(len(live), name=f"w{len(words)}")
                m.d.comb += word.eq(Cat(*bits))
                words.append((shift, word))
                offset += len(live)
            m.d.comb += self.count.eq(weighted_popcount(m, words, platform, "count"))
            return m

    ratios = {}
    for name, terms in STRUCTURES.items():
        luts = synthesize(design_sources(Count(terms), "top"), "top", yosys_version())["resources"]["LUT"]
        counted = popcount_structure(terms)
        ratios[name] = luts / (0.65 * counted["adder_bits"] + counted["full_adder_bits"])
    assert max(ratios.values()) / min(ratios.values()) < 1.2, ratios
