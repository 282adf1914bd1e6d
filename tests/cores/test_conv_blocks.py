"""Sliding-window generator, padding and window pooling in the Amaranth simulator against numpy."""
import numpy as np
import pytest

from finn_rtl.cores.arith import pack_ints
from finn_rtl.cores.padding import Padding
from finn_rtl.cores.pool import WindowPool
from finn_rtl.cores.sliding_window import SlidingWindow
from finn_rtl.cores.thresholding import Thresholding
from finn_rtl.cores.vector_unit import VectorUnit
from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.specs import FoldingError, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec, VectorUnitSpec
from support.stream_sim import run_stream


def stream_through(core, spec, frames, valid_prob, ready_prob, seed=0):
    """Run int frames [n, in_elements] (stream order) through a core; returns [n, out_elements]."""
    qin, qout = spec.input_type, spec.output_type
    lanes_in, lanes_out = spec.in_lanes, spec.out_lanes
    codes = qin.encode(frames).reshape(-1, lanes_in)
    beats = [pack_ints(row, qin.bits) for row in codes]
    n_out = len(frames) * spec.out_elements // lanes_out
    out, cycles = run_stream(core, beats, n_out, seed=seed, valid_prob=valid_prob, ready_prob=ready_prob)
    mask = (1 << qout.bits) - 1
    out_codes = np.array([[(w >> (qout.bits * i)) & mask for i in range(lanes_out)] for w in out])
    return qout.decode(out_codes.reshape(-1)).reshape(len(frames), -1), cycles


def random_frames(spec, n, seed):
    rng = np.random.default_rng(seed)
    q = spec.input_type
    if q.bipolar:
        return rng.choice([-1, 1], (n, spec.in_elements))
    return rng.integers(q.min, q.max + 1, (n, spec.in_elements))


@pytest.mark.parametrize("h,w,c,k,s,simd", [
    (5, 5, 2, (3, 3), (1, 1), 1), (6, 7, 4, (3, 3), (2, 2), 2), (4, 4, 3, (2, 2), (2, 2), 3),
    (1, 9, 2, (1, 3), (1, 1), 2), (6, 5, 2, (1, 1), (2, 2), 1), (5, 6, 2, (3, 2), (1, 3), 1),
    (3, 3, 4, (3, 3), (1, 1), 4),
])
@pytest.mark.parametrize("clock_mhz", [50.0, 200.0])
def test_sliding_window_matches_numpy(h, w, c, k, s, simd, clock_mhz):
    """At 200 MHz the read address goes through two registers (`address_stages`), at 50 none."""
    from finn_rtl.cores.sliding_window import address_stages

    spec = SlidingWindowSpec("swg", c, h, w, k, s, QType(3, True), simd, clock_mhz=clock_mhz)
    assert address_stages(spec) == (2 if clock_mhz == 200 else 0)
    frames = random_frames(spec, 3, h * 100 + w)
    out, _ = stream_through(SlidingWindow(spec), spec, frames, 0.7, 0.6, seed=h)
    assert np.array_equal(out, spec.reference(frames))


def test_sliding_window_runs_at_one_beat_per_cycle():
    spec = SlidingWindowSpec("swg", 2, 8, 8, (3, 3), (1, 1), QType(2, False), 1)
    frames = random_frames(spec, 4, 1)
    out, cycles = stream_through(SlidingWindow(spec), spec, frames, 1.0, 1.0)
    assert np.array_equal(out, spec.reference(frames))
    per_frame = spec.out_elements // spec.simd
    assert cycles <= 4 * per_frame + 3 * 8 * 2 + 10  # output bound, after the first rows fill


@pytest.mark.parametrize("pads,simd,qtype,value", [((1, 1, 1, 1), 1, QType(3, False), 0),
                                                  ((0, 2, 1, 0), 2, QType(4, True), -3),
                                                  ((2, 0, 0, 1), 4, QType(1, False), 1)])
def test_padding_matches_numpy(pads, simd, qtype, value):
    spec = PadSpec("pad", 4, 3, 5, pads, qtype, value, simd)
    frames = random_frames(spec, 3, sum(pads))
    out, _ = stream_through(Padding(spec), spec, frames, 0.6, 0.7)
    assert np.array_equal(out, spec.reference(frames))


@pytest.mark.parametrize("op,qtype,window,simd", [("max", QType(3, True), 4, 2), ("max", QType(2, False), 9, 1),
                                                  ("max", QType.bipolar_type(), 4, 4), ("sum", QType(3, True), 4, 2),
                                                  ("sum", QType(4, False), 49, 1)])
def test_window_pool_matches_numpy(op, qtype, window, simd):
    spec = PoolSpec("pool", 4, window, 3, op, qtype, simd)
    frames = random_frames(spec, 2, window)
    out, _ = stream_through(WindowPool(spec), spec, frames, 0.7, 0.5)
    assert np.array_equal(out, spec.reference(frames))


def test_illegal_channel_folding_names_legal_values():
    with pytest.raises(FoldingError, match=r"SIMD=3 must divide the 4 channels \(legal: \[1, 2, 4\]\)"):
        SlidingWindowSpec("conv0_swg", 4, 5, 5, (3, 3), (1, 1), QType(2, False), 3)


@pytest.mark.parametrize("qin,qout,base,pe,signed_channels", [
    (QType(7, True), QType(2, False), 0, 2, True), (QType(5, False), QType(3, True), -4, 3, False),
    (QType(6, True), QType.bipolar_type(), -1, 6, True)])
def test_thresholding_matches_numpy(qin, qout, base, pe, signed_channels):
    rng = np.random.default_rng(pe)
    channels, levels = 6, 1 if qout.bipolar else 2 ** qout.bits - 1
    thresholds = np.sort(rng.integers(qin.min - 2, qin.max + 3, (channels, levels)), axis=1)
    sign = rng.choice([-1, 1], channels) if signed_channels else None
    spec = ThresholdSpec("thr", channels, 5, qin, thresholds, qout, base, sign, pe)
    frames = random_frames(spec, 3, pe)
    out, _ = stream_through(Thresholding(spec), spec, frames, 0.7, 0.6)
    assert np.array_equal(out, spec.reference(frames))


@pytest.mark.parametrize("qin,qw,window,pe,thresholded,multipliers", [
    (QType(3, False), QType(2, True), 9, 2, True, None), (QType(4, True), QType(3, True), 4, 4, False, None),
    (QType.bipolar_type(), QType(2, True), 9, 1, True, None), (QType(2, False), QType.bipolar_type(), 3, 4, True, None),
    # products a DSP48 can take, as shifted partial products (lut) and as `*` (dsp)
    (QType(8, False), QType(4, True), 9, 2, True, "lut"), (QType(5, True), QType(4, True), 4, 4, False, "lut"),
    (QType(8, False), QType(4, True), 9, 2, True, "dsp")])
def test_vector_unit_matches_numpy(qin, qw, window, pe, thresholded, multipliers):
    rng = np.random.default_rng(window * 10 + pe)
    channels = 4
    weights = rng.choice([-1, 1], (channels, window)) if qw.bipolar else rng.integers(qw.min, qw.max + 1, (channels, window))
    kwargs = {}
    if thresholded:
        dense = VectorUnitSpec("v", weights, 3, qin, qw)
        lo, hi = dense.acc_type.min // 2, dense.acc_type.max // 2
        kwargs = dict(thresholds=np.sort(rng.integers(lo, hi + 1, (channels, 3)), axis=1), output_type=QType(2, False),
                      out_base=0, channel_sign=rng.choice([-1, 1], channels))
    spec = VectorUnitSpec("dw", weights, 3, qin, qw, pe=pe, **kwargs).with_multiplier_style(multipliers)
    frames = random_frames(spec, 2, pe)
    # LUT products are registered before the partial sums at 200 MHz, not at 50 MHz
    for clock_mhz in (200.0, 50.0):
        core = VectorUnit(spec.with_clock(clock_mhz))
        assert core.product_stage == (clock_mhz == 200.0 and spec.multipliers != "dsp")
        out, _ = stream_through(core, spec, frames, 0.7, 0.6)
        assert np.array_equal(out, spec.reference(frames))


@pytest.mark.parametrize("clock_mhz,banks", [(50.0, 0), (250.0, 3), (400.0, 9)])
def test_vector_unit_reads_a_deep_weight_rom_ahead_in_banks(clock_mhz, banks):
    """A 576-word weight ROM: read whole one beat ahead where its read fits the clock, else in banks
    read two beats ahead (250 MHz: 256 words a bank, 400 MHz: 64); and block-RAM thresholds, whose
    slow output is registered before the comparisons at these clocks. Bit-exact under gaps."""
    from amaranth import signed

    from finn_rtl.cores.memories import distributed_bank_words
    from finn_rtl.cores.threshold import compared_width, threshold_registers

    rng = np.random.default_rng(int(clock_mhz))
    qin, qw, channels, window = QType(4, False), QType(4, True), 64, 9
    weights = rng.integers(qw.min, qw.max + 1, (channels, window))
    dense = VectorUnitSpec("v", weights, 3, qin, qw)
    lo, hi = dense.acc_type.min // 2, dense.acc_type.max // 2
    spec = VectorUnitSpec("dw", weights, 3, qin, qw, pe=1,
                          thresholds=np.sort(rng.integers(lo, hi + 1, (channels, 3)), axis=1),
                          output_type=QType(2, False), out_base=0, channel_sign=rng.choice([-1, 1], channels))
    spec = spec.with_memory_styles({"thresholds": "block"}).with_clock(clock_mhz)
    shape = spec.memories()["weights"]
    bank = distributed_bank_words(shape, spec.memory_style("weights"), spec.stage_budget)
    assert (0 if bank is None else -(-shape.depth // bank)) == banks
    width = compared_width(signed(spec.acc_type.bits), spec.channel_sign)
    assert threshold_registers(spec, width)[0] == (clock_mhz > 200)
    frames = random_frames(spec, 2, 1)
    out, _ = stream_through(VectorUnit(spec), spec, frames, 0.7, 0.6)
    assert np.array_equal(out, spec.reference(frames))
