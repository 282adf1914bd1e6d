"""Multi-threshold stage shared by the MVTU and the standalone thresholding core.

Per cycle, PE values of one channel group are compared against that group's
thresholds (one ROM word: PE x n thresholds, plus one "compare the negated
value" bit per lane where a channel's activation falls as its value rises).
The output element is ``out_base + count(value >= threshold)``; bipolar
outputs are the single comparison bit.

Signed values are compared in offset binary: the ROM holds each threshold with its sign bit
inverted and the value's sign bit is inverted once, so every comparison is unsigned. The
logic is the same (a signed comparator is an unsigned one on inverted sign bits), but a
simulator no longer sign-extends both operands of each comparison (measured in Verilator:
about a third of a 16-PE MVTU's cost per cycle went to its 48 signed comparisons).
"""
from __future__ import annotations

import numpy as np
from amaranth import Cat, Mux, Signal

from ..graph.specs import compared_bits
from .arith import lanes, pack_fields, tree_sum
from .memories import layer_memory


def threshold_features(pe: int, thresholds: int, value_bits: int, groups: int) -> dict[str, float]:
    """The threshold stage's terms of the resource estimate. Comparators against a ROM's thresholds
    grow with PE x thresholds x compared bits. With one or two channel groups the thresholds are
    constants, or one of two constants, and the stage is a function of each value (and the group)
    alone whose outputs are the bits of the count: it grows with the value's bits times the
    count's bits, and the two cases are separate terms (two groups cost more than one)."""
    if not thresholds:
        return {}
    if groups > 2:
        return {"threshold_bits": pe * thresholds * (value_bits + 1)}
    name = "threshold_const_bits" if groups == 1 else "threshold_pair_bits"
    return {name: pe * (value_bits + 1) * thresholds.bit_length()}


def threshold_stage(m, values, group, enable, *, spec, signs: np.ndarray | None,
                    value_shape, output_type, out_base: int, negate=lambda v: -v):
    """Compare `values` (PE signals) with the thresholds of channel group `group`.

    The ROM is read synchronously with `enable`: `values` must be the signals
    that are registered in the same cycle `group` is presented. Returns the PE
    output element values. The ROM holds the spec's `threshold_values` as `rom_fields` lays
    them out.
    """
    pe = len(values)
    n = spec.thresholds_per_channel
    width = compared_bits(value_shape.width, value_shape.signed)
    # Offset binary for signed values: t + 2^(width-1) fits `width` unsigned bits.
    offset = 1 << (width - 1) if value_shape.signed else 0
    negated = None if signs is None else (np.asarray(signs) < 0).astype(np.int64)
    sign_bits = pe if negated is not None else 0
    rom = layer_memory(m, spec, "thresholds", pack_fields(spec.rom_fields("thresholds")))
    assert rom.shape.width == pe * n * width + sign_bits, "the spec's threshold ROM shape is the core's"
    read = rom.read_port()
    m.d.comb += [read.addr.eq(group), read.en.eq(enable)]
    per_lane = lanes(read.data, width, pe * n)
    results = []
    for lane, value in enumerate(values):
        compared = value
        if sign_bits:
            compared = Signal(value_shape, name=f"thresholds_compared{lane}")
            m.d.comb += compared.eq(Mux(read.data[pe * n * width + lane], negate(value), value))
        if offset:
            biased = Signal(width, name=f"thresholds_biased{lane}")
            if compared.shape() != value_shape:  # sign-extend first
                exact = Signal(value_shape, name=f"thresholds_value{lane}")
                m.d.comb += exact.eq(compared)
                compared = exact
            m.d.comb += biased.eq(compared.as_unsigned() ^ offset)
            compared = biased
        passed = tree_sum([compared >= t for t in per_lane[lane * n:(lane + 1) * n]], m, f"thresholds_passed{lane}")
        results.append(passed if output_type.bipolar else out_base + passed)
    return results


def register_thresholded(m, spec, held, held_valid, group, advance, value_shape, out_valid, out_data):
    """Output register of a core whose `held` values (registered with `advance`, channel group
    `group`) go through the spec's thresholds, if it has any."""
    results = held
    if spec.thresholds is not None:
        results = threshold_stage(m, held, group, advance, spec=spec,
                                  signs=spec.channel_sign, value_shape=value_shape,
                                  output_type=spec.output_type, out_base=spec.out_base)
    with m.If(advance):
        m.d.sync += [out_valid.eq(held_valid),
                     out_data.eq(Cat(r.as_unsigned()[:spec.output_type.bits] for r in results))]
