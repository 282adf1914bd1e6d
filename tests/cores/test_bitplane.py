"""Bit-plane dot products and the carry-save compressor, against numpy."""
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from finn_rtl.cores import bitplane
from finn_rtl.cores.arith import pack_ints, tree_sum, tree_sum_bits
from finn_rtl.cores.bitplane import CHUNK, agreement_count, dot_product, pack_planes, planar, popcount_terms
from finn_rtl.cores.popcount import weighted_popcount
from finn_rtl.graph.datatypes import QType


def run_comb(m, cases):
    """Apply each ([(signal, value)], check) case to the comb logic of `m`."""
    sim = Simulator(m)

    async def bench(ctx):
        for inputs, check in cases:
            for signal, value in inputs:
                ctx.set(signal, value)
            check(ctx)

    sim.add_testbench(bench)
    sim.run()


def test_weighted_popcount_mixed_widths_and_shifts():
    rng = random.Random(0)
    words = [Signal(w, name=f"w{i}") for i, w in enumerate([CHUNK, CHUNK, 17, 5, 1, CHUNK, 3])]
    shifts = [0, 0, 1, 3, 3, 2, 7]
    m = Module()
    total = weighted_popcount(m, list(zip(shifts, words)), None, "t")
    out = Signal(len(total))
    m.d.comb += out.eq(total)
    cases = []
    for _ in range(100):
        values = [rng.getrandbits(len(w)) for w in words]
        expected = sum(bin(v).count("1") << s for v, s in zip(values, shifts))

        def check(ctx, expected=expected):
            assert ctx.get(out) == expected
        cases.append((list(zip(words, values)), check))
    # every bit set: the largest count must fit the result
    largest = sum(len(w) << s for w, s in zip(words, shifts))

    def check_largest(ctx):
        assert ctx.get(out) == largest
    cases.append(([(w, (1 << len(w)) - 1) for w in words], check_largest))
    run_comb(m, cases)


TYPES = [QType.bipolar_type(), QType(1, False), QType(1, True), QType(2, True), QType(2, False),
         QType(3, True), QType(4, False), QType(4, True)]


@pytest.mark.parametrize("x_type", TYPES, ids=str)
@pytest.mark.parametrize("w_type", TYPES, ids=str)
def test_dot_product_matches_numpy(x_type, w_type):
    count = 70  # more than two compressor chunks, and not a multiple of one
    rng = np.random.default_rng(count)
    m = Module()
    x_word = Signal(count * x_type.bits)
    w_word = Signal(count * w_type.bits)
    x_planes = [x_word[a * count:(a + 1) * count] for a in range(x_type.bits)]
    w_planes = [w_word[b * count:(b + 1) * count] for b in range(w_type.bits)]
    if x_type.bipolar and w_type.bipolar:
        result = agreement_count(m, x_planes[0], w_planes[0], "dot")
    else:
        result = dot_product(m, x_planes, w_planes, x_type, w_type, "dot")
    out = Signal(signed(len(result) + 1))
    m.d.comb += out.eq(result)
    cases = []
    for extreme in range(12):
        if extreme == 0:  # every product at its largest magnitude
            x = np.full(count, x_type.min)
            w = np.full(count, w_type.min)
        else:
            x = rng.integers(x_type.min, x_type.max + 1, count)
            w = rng.integers(w_type.min, w_type.max + 1, count)
            if x_type.bipolar:
                x = np.where(x > 0, 1, -1)
            if w_type.bipolar:
                w = np.where(w > 0, 1, -1)
        expected = int(np.sum(x == w)) if x_type.bipolar and w_type.bipolar else int(np.dot(x, w))
        inputs = [(x_word, pack_planes(x_type.encode(x)[None, :], x_type.bits)),
                  (w_word, pack_planes(w_type.encode(w)[None, :], w_type.bits))]

        def check(ctx, expected=expected):
            assert ctx.get(out) == expected
        cases.append((inputs, check))
    run_comb(m, cases)


def test_planar_repacks_what_pack_planes_packs():
    rng = np.random.default_rng(3)
    width, count = 3, 11
    codes = rng.integers(0, 1 << width, count)
    m = Module()
    word = Signal(width * count)
    out = Signal(width * count)
    m.d.comb += out.eq(planar(word, width, count))

    def check(ctx):
        assert ctx.get(out) == pack_planes(codes[None, :], width)
    run_comb(m, [([(word, pack_ints(codes, width))], check)])


@pytest.mark.parametrize("lanes", [3, 8, 64, 70, 200])
@pytest.mark.parametrize("x_type, w_type, agreement", [
    (QType.bipolar_type(), QType.bipolar_type(), True), (QType(2, False), QType(2, True), False),
    (QType(4, True), QType.bipolar_type(), False)])
def test_popcount_terms_are_the_words_the_dot_product_counts(monkeypatch, lanes, x_type, w_type, agreement):
    """The resource estimate's view of a PE's popcount is the one the hardware builds."""
    counted = []

    def record(m, terms, platform, name, enable=None):
        counted.extend((shift, len(word)) for shift, word in terms)
        return Signal(1)

    monkeypatch.setattr(bitplane, "weighted_popcount", record)
    x_planes = [Signal(lanes) for _ in range(x_type.bits)]
    w_planes = [Signal(lanes) for _ in range(w_type.bits)]
    m = Module()
    if agreement:
        agreement_count(m, x_planes[0], w_planes[0], "dot")
    else:
        dot_product(m, x_planes, w_planes, x_type, w_type, "dot")
    terms = popcount_terms(lanes, x_type, w_type, agreement)
    assert sorted(counted) == sorted((shift, len(live)) for shift, live in terms)
    assert all(live.all() for _, live in terms)


def test_popcount_terms_drop_weight_planes_that_are_zero_in_every_row():
    int2 = QType(2, True)
    codes = np.array([[0b00, 0b01, 0b10, 0b11], [0b00, 0b01, 0b00, 0b01]])  # [row, lane]
    terms = popcount_terms(4, QType(1, False), int2, weight_codes=codes)
    assert [(shift, live.tolist()) for shift, live in terms] == [
        (0, [False, True, False, True]),  # plane 0: lanes 1 and 3 have a 1 in some row
        (1, [False, False, True, True])]  # plane 1 (the sign): lanes 2 and 3


@pytest.mark.parametrize("count, width", [(1, 4), (2, 4), (3, 1), (16, 8), (27, 5), (784, 2)])
def test_tree_sum_bits_are_the_widths_of_its_adders(count, width):
    class Sum:  # stands in for a value: records the width of every adder tree_sum makes
        bits = 0

        def __init__(self, width):
            self.width = width

        def __add__(self, other):
            Sum.bits += max(self.width, other.width) + 1
            return Sum(max(self.width, other.width) + 1)

    tree_sum([Sum(width) for _ in range(count)])
    assert tree_sum_bits(count, width) == Sum.bits
