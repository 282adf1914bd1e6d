"""MVTU against its numpy model, in the Amaranth simulator, with random backpressure."""
import zlib

import numpy as np
import pytest

from finn_rtl.cores.arith import pack_ints
from finn_rtl.cores import mvtu
from finn_rtl.cores.mvtu import MVTU
from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.specs import FoldingError, MVTUSpec
from support.stream_sim import run_stream

BIPOLAR = QType.bipolar_type()


def random_values(rng, qtype, shape):
    if qtype.bipolar:
        return rng.choice([-1, 1], shape)
    return rng.integers(qtype.min, qtype.max + 1, shape)


def make_spec(rng, mw, mh, pe, simd, in_type, w_type, levels, out_type):
    weights = random_values(rng, w_type, (mh, mw))
    spec = MVTUSpec("t", weights, in_type, w_type, pe=pe, simd=simd)
    if not levels:
        return spec
    lo, hi = spec.acc_range
    thresholds = np.sort(rng.integers(lo.min() - 1, hi.max() + 2, (mh, levels)), axis=1)
    base = -1 if out_type.bipolar else out_type.min
    return MVTUSpec("t", weights, in_type, w_type, thresholds=thresholds, output_type=out_type,
                    out_base=base, pe=pe, simd=simd)


def simulate_spec(spec, x, bit_planes=None, weight_planes=None, **kwargs):
    it = spec.input_type
    beats = [pack_ints(it.encode(frame[i * spec.simd:(i + 1) * spec.simd]), it.bits)
             for frame in x for i in range(spec.synapse_fold)]
    out, cycles = run_stream(MVTU(spec, bit_planes=bit_planes, weight_planes=weight_planes), beats, len(x) * spec.neuron_fold, **kwargs)
    ob = spec.output_type.bits
    codes = np.array([[(beat >> (i * ob)) & ((1 << ob) - 1) for i in range(spec.pe)] for beat in out])
    return spec.output_type.decode(codes.reshape(len(x), spec.mh)), cycles


CASES = [
    # mw, mh, pe, simd, input, weight, threshold levels, output
    (8, 4, 1, 1, QType(2, True), QType(2, True), 0, None),
    (8, 4, 2, 4, QType(3, False), QType(4, True), 3, QType(2, False)),
    (16, 8, 4, 8, BIPOLAR, BIPOLAR, 1, BIPOLAR),
    (16, 8, 8, 16, BIPOLAR, BIPOLAR, 0, None),
    (12, 6, 6, 12, QType(4, True), BIPOLAR, 0, None),
    (6, 3, 1, 1, BIPOLAR, QType(3, True), 7, QType(3, True)),
    (10, 4, 2, 5, QType(8, False), QType(8, True), 15, QType(4, False)),
    (4, 6, 3, 2, QType(1, False), QType(5, True), 2, QType(2, True)),
    (9, 4, 2, 3, QType(8, False), QType(2, True), 2, QType(2, False)),  # CNV's first layer
    (8, 4, 1, 4, QType(4, False), BIPOLAR, 1, BIPOLAR),
    (6, 2, 1, 6, QType(3, False), QType(2, False), 0, None),
]


# Every dot-product datapath, whatever the shape (the MVTU picks one from the shape and types);
# "lanes" multiplies per lane: a product a DSP48 could take is shifted partial products there,
# and `*` in the "dsp" style.
DATAPATHS = {"lanes": dict(bit_planes=False, weight_planes=False),
             "weight_planes": dict(bit_planes=False, weight_planes=True),
             "bit_planes": dict(bit_planes=True), "dsp": {}}


@pytest.mark.parametrize("datapath", DATAPATHS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-pe{c[2]}-simd{c[3]}-{c[4]}-{c[5]}" for c in CASES])
def test_mvtu_matches_numpy_under_backpressure(case, datapath):
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    mw, mh, pe, simd, in_type, w_type, levels, out_type = case
    spec = make_spec(rng, mw, mh, pe, simd, in_type, w_type, levels, out_type)
    if datapath == "dsp":
        if spec.products() is None or not spec.products().dsp_capable:
            pytest.skip("products too narrow for a DSP48")
        spec = spec.with_multiplier_style("dsp")
        assert mvtu.datapath(spec) == "multiply"
    x = random_values(rng, in_type, (4, mw))
    got, _ = simulate_spec(spec, x, **DATAPATHS[datapath], valid_prob=0.6, ready_prob=0.5, seed=3)
    assert np.array_equal(got, spec.reference(x))


def test_mvtu_sustains_one_fold_per_cycle():
    rng = np.random.default_rng(7)
    spec = make_spec(rng, 16, 8, 2, 4, QType(2, True), QType(2, True), 3, QType(2, True))
    frames = 6
    got, cycles = simulate_spec(spec, random_values(rng, spec.input_type, (frames, 16)))
    assert cycles <= frames * spec.cycles_per_frame + 6  # pipeline fill only


def test_wide_simd_lane_count():
    """784 lanes of 8 bits: the full TFC input width in one beat."""
    rng = np.random.default_rng(1)
    spec = make_spec(rng, 784, 4, 4, 784, QType(8, False), QType(8, True), 2, QType(2, True))
    x = random_values(rng, spec.input_type, (2, 784))
    got, _ = simulate_spec(spec, x)
    assert np.array_equal(got, spec.reference(x))


def test_illegal_folding_lists_legal_values():
    spec = MVTUSpec("fc1", np.ones((6, 10), dtype=int), QType(2, True), QType(2, True))
    with pytest.raises(FoldingError, match=r"fc1.*PE=4 must divide MH=6 \(legal: \[1, 2, 3, 6\]\)"):
        spec.folded(4, 5)
    with pytest.raises(FoldingError, match=r"SIMD=3 must divide MW=10 \(legal: \[1, 2, 5, 10\]\)"):
        spec.folded(2, 3)


@pytest.mark.parametrize("in_type,w_type", [(BIPOLAR, BIPOLAR), (QType(3, True), QType(2, True))])
def test_decreasing_channels_compare_the_negated_accumulator(in_type, w_type):
    rng = np.random.default_rng(11)
    base = make_spec(rng, 12, 6, 3, 4, in_type, w_type, 3 if not in_type.bipolar else 1,
                     QType(2, True) if not in_type.bipolar else BIPOLAR)
    sign = np.array([1, -1, -1, 1, -1, 1])
    lo, hi = base.acc_range
    thresholds = np.sort(rng.integers(-hi.max() - 1, hi.max() + 2, base.thresholds.shape), axis=1)
    spec = MVTUSpec("t", base.weights, in_type, w_type, thresholds=thresholds, output_type=base.output_type,
                    out_base=base.out_base, pe=3, simd=4, channel_sign=sign)
    x = random_values(rng, in_type, (5, 12))
    acc = x @ base.weights.T
    expected_counts = ((acc * sign)[:, :, None] >= thresholds[None]).sum(axis=2)
    reference = spec.reference(x)
    assert np.array_equal(reference, np.where(expected_counts > 0, 1, -1) if spec.output_type.bipolar
                          else spec.out_base + expected_counts)
    got, _ = simulate_spec(spec, x, valid_prob=0.7, ready_prob=0.6, seed=5)
    assert np.array_equal(got, reference)


def test_datapath_follows_lanes_types_and_multiplier_style():
    """XNOR layers with 8+ lanes count agreements on bit planes (a popcount, not an adder tree of
    lanes); products a DSP48 takes are shifted partial products in LUTs, `*` in DSPs."""
    xnor = MVTUSpec("x", np.ones((4, 16)), BIPOLAR, BIPOLAR, pe=2, simd=16)
    assert mvtu.datapath(xnor) == "planes" and mvtu.datapath(xnor.folded(2, 4)) == "xnor"
    wide = MVTUSpec("w", np.ones((4, 6)), QType(8, False), QType(4, True), pe=2, simd=3)
    assert mvtu.datapath(wide) == "weight_planes"
    assert mvtu.datapath(wide.with_multiplier_style("dsp")) == "multiply"
    narrow = MVTUSpec("n", np.ones((4, 6)), QType(4, True), QType(4, True), pe=2, simd=3)
    assert mvtu.datapath(narrow) == "multiply"  # 8-bit products: no DSP takes them


@pytest.mark.parametrize("in_type,w_type", [(BIPOLAR, BIPOLAR), (QType(3, True), QType(2, True)),
                                            (QType(2, False), QType(2, True))])
def test_flipped_thresholds_invert_every_comparison_over_the_value_range(in_type, w_type):
    """A decreasing channel's ROM thresholds t' (c - v >= t <=> not v >= t') give the same
    comparison as the negated value for every value the accumulator can hold, thresholds at and
    beyond its ends included (the clamped ones)."""
    rng = np.random.default_rng(3)
    base = make_spec(rng, 12, 6, 3, 4, in_type, w_type, 3, QType(2, False))
    lo, hi = base.acc_range
    reach = max(abs(int(lo.min())), abs(int(hi.max()))) + 3
    thresholds = np.sort(rng.integers(-reach, reach + 1, (6, 3)), axis=1)
    thresholds[0] = [-reach, 0, reach]  # the extremes
    spec = MVTUSpec("t", base.weights, in_type, w_type, thresholds=thresholds, output_type=QType(2, False),
                    out_base=0, pe=3, simd=4, channel_sign=np.array([-1, 1, -1, -1, 1, -1]))
    (codes, width), (signs, _) = spec.rom_fields("thresholds")
    offset = 1 << (width - 1) if spec.threshold_signed else 0
    stored = codes.reshape(2, 3, 3).reshape(6, 3) - offset  # [channel, threshold] as compared
    bits, is_signed = spec.accumulator
    values = np.arange(-(1 << (bits - 1)), 1 << (bits - 1)) if is_signed else np.arange(0, 1 << bits)
    values = values[(values >= int(lo.min())) & (values <= int(hi.max()))]
    domain = spec.threshold_values
    for channel in range(6):
        negative = bool(signs.reshape(6)[channel])
        assert negative == (spec.channel_sign[channel] < 0)
        for t_stored, t in zip(stored[channel], domain[channel]):
            hardware = values >= t_stored
            if negative:
                hardware = ~hardware
            wanted = (spec.negation_constant - values if negative else values) >= t
            assert np.array_equal(hardware, wanted), (channel, t, t_stored)


@pytest.mark.parametrize("datapath", ["lanes", "bit_planes"])
@pytest.mark.parametrize("clock_mhz", [50.0, 200.0, 400.0])
def test_pipelines_placed_for_the_clock_stay_bit_exact(datapath, clock_mhz):
    """Weights and input buffer in block RAM: at 200 MHz the operands are registered behind the
    memories before any arithmetic; faster clocks give more stages, slower ones fewer, all
    bit-exact under random valid/ready gaps."""
    rng = np.random.default_rng(21)
    spec = make_spec(rng, 64, 8, 2, 16, QType(2, False), QType(2, True), 3, QType(2, False))
    spec = spec.with_memory_styles({"weights": "block", "input_buffer": "block"}).with_clock(clock_mhz)
    assert mvtu.registers_operands(spec) == (clock_mhz >= 200)
    flags = {"bit_planes": datapath == "bit_planes", "weight_planes": False}
    stages = mvtu.dot_stages(spec, **flags)
    slower = mvtu.dot_stages(spec.with_clock(clock_mhz / 2), **flags)
    assert stages >= slower
    x = random_values(rng, spec.input_type, (3, 64))
    got, _ = simulate_spec(spec, x, **DATAPATHS[datapath], valid_prob=0.6, ready_prob=0.5, seed=8)
    assert np.array_equal(got, spec.reference(x))
    core = MVTU(spec, **DATAPATHS[datapath])
    from amaranth.back import rtlil
    rtlil.convert(core, name="t")  # elaborated: its dot stages are the spec's
    assert core.dot_stages == stages


@pytest.mark.parametrize("datapath", ["lanes", "bit_planes"])
def test_weights_over_several_block_ram_blocks_are_registered_per_block(datapath):
    """A 3072 x 16 weight ROM spans three block-RAM address blocks: at 200 MHz each block's read is
    registered and the multiplexer among them comes after the registers; bit-exact under gaps,
    with block-RAM thresholds registered before the comparisons."""
    rng = np.random.default_rng(33)
    spec = make_spec(rng, 768, 64, 1, 16, QType(2, False), BIPOLAR, 3, QType(2, False))
    spec = spec.with_memory_styles({"weights": "block", "thresholds": "block"}).with_clock(200.0)
    assert mvtu.weight_banks(spec) == 3
    assert mvtu.weight_banks(spec.with_clock(50.0)) == 1
    x = random_values(rng, spec.input_type, (2, 768))
    got, _ = simulate_spec(spec, x, **DATAPATHS[datapath], valid_prob=0.8, ready_prob=0.7, seed=3)
    assert np.array_equal(got, spec.reference(x))
