"""Weights written at run time (FINN's runtime_writeable_weights): an MVTU whose weight memory
starts empty computes with the weights written through its weight port, bit-exact, in every
memory style and across block-RAM banks."""
import dataclasses

import numpy as np
import pytest

from finn_rtl.cores.arith import pack_ints
from finn_rtl.cores.mvtu import MVTU, weight_banks, written_weights
from finn_rtl.cores.weight_port import memory_words
from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.specs import MVTUSpec
from support.stream_sim import run_stream
from test_mvtu import BIPOLAR, make_spec, random_values


def write_registers(core, image):
    async def setup(ctx):
        port = core.weights_write
        for index, value in enumerate(image):
            ctx.set(port.addr, index)
            ctx.set(port.data, int(value))
            ctx.set(port.valid, 1)
            await ctx.tick()
        ctx.set(port.valid, 0)
    return setup


def simulate_written(spec, loaded, x, **kwargs):
    """`spec`'s core with `loaded`'s weights written into it (same shapes and types)."""
    core = MVTU(spec)
    image = written_weights(spec).register_image(memory_words(loaded, "weights"))
    it = spec.input_type
    beats = [pack_ints(it.encode(frame[i * spec.simd:(i + 1) * spec.simd]), it.bits)
             for frame in x for i in range(spec.synapse_fold)]
    out, _ = run_stream(core, beats, len(x) * spec.neuron_fold, setup=write_registers(core, image), **kwargs)
    ob = spec.output_type.bits
    codes = np.array([[(beat >> (i * ob)) & ((1 << ob) - 1) for i in range(spec.pe)] for beat in out])
    return spec.output_type.decode(codes.reshape(len(x), spec.mh))


CASES = [
    # mw, mh, pe, simd, input, weight, threshold levels, output, weight style
    (8, 4, 2, 4, QType(3, False), QType(4, True), 3, QType(2, False), "distributed"),
    (64, 16, 4, 16, BIPOLAR, BIPOLAR, 1, BIPOLAR, "block"),
    (12, 6, 2, 3, QType(4, True), QType(2, True), 0, None, "ultra"),  # 8 + 24 bit pieces -> 1 register
    (40, 8, 8, 5, QType(2, False), QType(3, True), 2, QType(2, False), "ultra"),  # 120-bit words: 4 pieces
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-pe{c[2]}-simd{c[3]}-{c[8]}" for c in CASES])
def test_written_weights_replace_the_built_ones(case):
    rng = np.random.default_rng(sum(case[:4]))
    *shape, style = case
    built = make_spec(rng, *shape).with_runtime_writeable(True).with_memory_styles({"weights": style})
    # Fine-tuned: other weights of the same type, the same thresholds.
    tuned = dataclasses.replace(built, weights=random_values(rng, built.weight_type, built.weights.shape))
    x = random_values(rng, built.input_type, (3, built.mw))
    assert np.array_equal(simulate_written(built, tuned, x, valid_prob=0.7, ready_prob=0.6, seed=2), tuned.reference(x))
    assert np.array_equal(simulate_written(built, built, x), built.reference(x))


def test_written_weights_across_block_ram_banks():
    rng = np.random.default_rng(5)
    spec = make_spec(rng, 768, 64, 1, 16, QType(2, False), BIPOLAR, 3, QType(2, False))
    spec = spec.with_runtime_writeable(True).with_memory_styles({"weights": "block"}).with_clock(200.0)
    assert weight_banks(spec) == 3
    tuned = dataclasses.replace(spec, weights=random_values(rng, BIPOLAR, spec.weights.shape))
    x = random_values(rng, spec.input_type, (2, 768))
    assert np.array_equal(simulate_written(spec, tuned, x, valid_prob=0.8, ready_prob=0.7), tuned.reference(x))


def test_accumulator_holds_any_weights_of_the_type():
    weights = np.array([[1, 0, 0, 0]])  # the built weights would need a 3-bit accumulator
    spec = MVTUSpec("t", weights, QType(2, False), QType(4, True))
    written = spec.with_runtime_writeable(True)
    assert written.acc_range[1][0] == 4 * 3 * 7 and written.acc_range[0][0] == 4 * 3 * -8
    assert written.accumulator[0] > spec.accumulator[0]


def test_ultra_needs_written_weights_and_not_other_layers():
    rng = np.random.default_rng(1)
    spec = make_spec(rng, 8, 4, 2, 4, QType(3, False), QType(4, True), 3, QType(2, False))
    with pytest.raises(CompileError, match="runtime_writeable_weights: 1"):
        spec.with_memory_styles({"weights": "ultra"})
    with pytest.raises(CompileError, match="UltraRAM has no initial contents"):
        spec.with_memory_styles({"weights": "ultra"})
    assert spec.with_runtime_writeable(True).with_memory_styles({"weights": "ultra"}).memory_style("weights") == "ultra"
