"""Duplicate, Add (two-input thresholding) and Concat in the Amaranth simulator, every port with
its own random valid/ready gaps, against the specs' numpy references."""
import numpy as np
import pytest

from finn_rtl.cores.arith import pack_ints
from finn_rtl.cores.merge import Concat, Duplicate
from finn_rtl.cores.thresholding import Thresholding
from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.merge_specs import AddSpec, ConcatSpec, DuplicateSpec
from support.stream_sim import run_streams

GAPS = [(1.0, 1.0), (0.6, 0.5), (1.0, 0.3)]


def beats_of(frames, qtype, lanes):
    flat = np.asarray(frames).reshape(-1)
    return [pack_ints(qtype.encode(flat[i:i + lanes]), qtype.bits) for i in range(0, len(flat), lanes)]


def elements_of(beats, qtype, lanes):
    codes = [(b >> (qtype.bits * j)) & ((1 << qtype.bits) - 1) for b in beats for j in range(lanes)]
    return qtype.decode(codes)


def random_frames(rng, qtype, n, elements):
    if qtype.bipolar:
        return rng.choice([-1, 1], (n, elements))
    return rng.integers(qtype.min, qtype.max + 1, (n, elements))


@pytest.mark.parametrize("valid_prob,ready_prob", GAPS)
@pytest.mark.parametrize("outputs,simd", [(2, 1), (3, 4)])
def test_duplicate_gives_every_consumer_every_beat(outputs, simd, valid_prob, ready_prob):
    spec = DuplicateSpec("fork", 8, 3, QType(3, True), outputs, simd)
    x = random_frames(np.random.default_rng(outputs), spec.dtype, 4, spec.in_elements)
    beats = beats_of(x, spec.dtype, simd)
    names = [f"m{i}" for i in range(outputs)]
    outs, cycles = run_streams(Duplicate(spec), {"s": beats}, {n: len(beats) for n in names},
                               valid_prob=valid_prob, ready_prob=ready_prob)
    for name in names:
        assert outs[name] == beats
    if valid_prob == ready_prob == 1.0:
        assert cycles <= len(beats) + 2  # a beat per cycle


@pytest.mark.parametrize("valid_prob,ready_prob", GAPS)
@pytest.mark.parametrize("types,factors,thresholded,pe", [
    ((QType(2, False), QType(2, True)), (1, 1), True, 2),
    ((QType(3, False), QType(3, False)), (2, 1), True, 4),
    ((QType(4, True), QType(2, False)), (1, 3), False, 1),
    ((QType.bipolar_type(), QType.bipolar_type()), (1, 1), True, 8),
])
def test_add_sums_with_factors_then_thresholds(types, factors, thresholded, pe, valid_prob, ready_prob):
    rng = np.random.default_rng(sum(factors) + pe)
    channels, pixels = 8, 5
    extra = {}
    if thresholded:
        lo = sum(f * t.min for f, t in zip(factors, types))
        hi = sum(f * t.max for f, t in zip(factors, types))
        out_type = QType(2, False)
        thresholds = np.sort(rng.integers(lo, hi + 1, (channels, 3)), axis=1)
        sign = rng.choice([-1, 1], channels)
        thresholds = np.where(sign[:, None] < 0, np.sort(rng.integers(-hi, -lo + 1, (channels, 3)), axis=1), thresholds)
        extra = dict(thresholds=thresholds, output_type=out_type, out_base=0, channel_sign=sign)
    spec = AddSpec("add", channels, pixels, types, factors, pe=pe, **extra)
    a, b = (random_frames(rng, t, 3, spec.in_elements) for t in types)
    outs, cycles = run_streams(Thresholding(spec), {"s0": beats_of(a, types[0], pe), "s1": beats_of(b, types[1], pe)},
                               {"m": a.size // pe}, valid_prob=valid_prob, ready_prob=ready_prob, seed=4)
    assert list(elements_of(outs["m"], spec.output_type, pe)) == list(spec.reference(a, b).reshape(-1))
    if valid_prob == ready_prob == 1.0:
        assert cycles <= a.size // pe + 4


@pytest.mark.parametrize("valid_prob,ready_prob", GAPS)
@pytest.mark.parametrize("channels,types,simd", [
    ((4, 6), (QType(2, False), QType(2, False)), 2),
    ((2, 4, 6), (QType(2, False), QType(3, True), QType(1, False)), 2),
    ((8, 8), (QType.bipolar_type(), QType.bipolar_type()), 8),
])
def test_concat_interleaves_channel_groups_per_pixel(channels, types, simd, valid_prob, ready_prob):
    rng = np.random.default_rng(sum(channels))
    out_type = types[0] if all(t == types[0] for t in types) else \
        QType.for_range(min(t.min for t in types), max(t.max for t in types))
    spec = ConcatSpec("cat", channels, 5, types, out_type, simd)
    xs = [random_frames(rng, t, 3, spec.port_elements(i)) for i, t in enumerate(types)]
    inputs = {f"s{i}": beats_of(x, t, simd) for i, (x, t) in enumerate(zip(xs, types))}
    out_beats = spec.out_elements * 3 // simd
    outs, cycles = run_streams(Concat(spec), inputs, {"m": out_beats}, valid_prob=valid_prob, ready_prob=ready_prob)
    assert list(elements_of(outs["m"], out_type, simd)) == list(spec.reference(*xs).reshape(-1))
    if valid_prob == ready_prob == 1.0:
        assert cycles <= out_beats + 2
