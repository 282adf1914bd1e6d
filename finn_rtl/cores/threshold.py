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
from amaranth import Cat, Signal, signed, unsigned

from ..graph.memory import BLOCK_STYLES
from ..graph.specs import compared_bits
from .arith import lanes, pack_fields, tree_sum
from .memories import layer_memory
from .pipelining import BRAM_OUT_NS, adder_ns, lut_level_ns


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


def compare_ns(width: int, thresholds: int) -> tuple[float, float]:
    """(comparisons, count) delays of the stage (`pipelining`): a value (negated or biased by a
    LUT level) against a threshold is an adder's carry chain; the passed comparisons are summed
    by a tree of small adders, and the output's base is added (measured on TFC's 2-bit layers:
    4 LUTs, 4 carry cells and 7 hops from the value register to the output register)."""
    levels = max(0, (thresholds - 1).bit_length())
    return lut_level_ns() + adder_ns(width + 1), levels * adder_ns(levels + 1) + adder_ns(levels + 1)


def compared_width(value_shape, signs) -> int:
    """Bits of each comparison: the value's, one more where decreasing channels are flipped."""
    return compared_bits(value_shape.width, value_shape.signed) + (signs is not None)


def _stage_ns(spec, width: int) -> tuple[float, float, float]:
    """(ROM output beyond a register's, comparisons, count) delays of the stage (`pipelining`)."""
    rom_out = BRAM_OUT_NS if spec.memory_style("thresholds") in BLOCK_STYLES else 0.0
    return (rom_out, *compare_ns(width, spec.thresholds_per_channel))


def threshold_registers(spec, width: int) -> tuple[bool, bool]:
    """(ROM word register, comparison register) of the stage (`pipelining`): comparing and
    counting after the ROM's read latch should fit one cycle; where they do not, the comparisons
    are registered before they are counted; where even the comparisons do not fit after a block
    RAM's slow output, the ROM word (and the values beside it) get a register first."""
    rom_out, comparing, counting = _stage_ns(spec, width)
    budget = spec.stage_budget.logic_ns
    if rom_out + comparing + counting <= budget:
        return False, False
    if rom_out + comparing <= budget:
        return False, True
    return True, comparing + counting > budget


def threshold_path_ns(spec, value_shape) -> float:
    """The slowest stage of the threshold stage by the delay model (`threshold_registers`); 0
    without thresholds."""
    if spec.thresholds is None:
        return 0.0
    width = compared_width(value_shape, spec.channel_sign)
    rom_out, comparing, counting = _stage_ns(spec, width)
    rom_register, compare_register = threshold_registers(spec, width)
    stages = [rom_out] if rom_register else []
    first = comparing + (0.0 if rom_register else rom_out)
    stages += [first, counting] if compare_register else [first + counting]
    return max(stages)


def threshold_register_bits(spec, value_shape) -> int:
    """Flip-flops of the stage's pipeline registers (`threshold_registers`; a resource-estimate
    feature, one per bit)."""
    if spec.thresholds is None:
        return 0
    rom_register, compare_register = threshold_registers(spec, compared_width(value_shape, spec.channel_sign))
    bits = spec.memories()["thresholds"].width + spec.pe * value_shape.width if rom_register else 0
    return bits + (spec.pe * spec.thresholds_per_channel if compare_register else 0)


def threshold_stage(m, values, group, advance, incoming, valid, *, spec, signs: np.ndarray | None,
                    value_shape, output_type, out_base: int):
    """Compare `values` (PE signals) with the thresholds of channel group `group`.

    The ROM is read where `advance & incoming` (`incoming`: a beat is presented with `group`):
    `values` must be the signals registered from that beat in the same cycle, and `valid` their
    valid. Returns the PE output element values and their valid, behind the pipeline registers of
    `threshold_registers`; each register loads only where it takes a beat (`advance` and its
    valid), so a simulator skips the comparisons of an idle layer. The ROM
    holds the spec's `threshold_values` as `rom_fields` lays them out: a decreasing channel's
    thresholds flipped, so that its comparisons are inverted instead of its value negated (no
    adder in front of the comparators).
    """
    pe = len(values)
    n = spec.thresholds_per_channel
    negated = signs is not None and bool((np.asarray(signs) < 0).any())
    width = compared_width(value_shape, signs)
    # Offset binary for signed values: t + 2^(width-1) fits `width` unsigned bits.
    offset = 1 << (width - 1) if value_shape.signed else 0
    sign_bits = pe if signs is not None else 0
    rom = layer_memory(m, spec, "thresholds", pack_fields(spec.rom_fields("thresholds")))
    assert rom.shape.width == pe * n * width + sign_bits, "the spec's threshold ROM shape is the core's"
    read = rom.read_port()
    m.d.comb += [read.addr.eq(group), read.en.eq(advance & incoming)]
    rom_register, compare_register = threshold_registers(spec, width)
    word = read.data
    if rom_register:
        word = Signal(len(read.data), name="thresholds_word")
        held = [Signal(v.shape(), name=f"thresholds_value{lane}_held") for lane, v in enumerate(values)]
        with m.If(advance & valid):
            m.d.sync += [word.eq(read.data), *(h.eq(v) for h, v in zip(held, values))]
        values = held
        valid = delayed(m, valid, 1, advance, "thresholds_word_valid")
    compared_valid = delayed(m, valid, 1, advance) if compare_register else valid
    per_lane = lanes(word, width, pe * n)
    results = []
    for lane, value in enumerate(values):
        compared = value
        if compared.shape().width != width:  # extended to the stored width first
            exact = Signal(signed(width) if value_shape.signed else unsigned(width), name=f"thresholds_value{lane}")
            m.d.comb += exact.eq(compared)
            compared = exact
        if offset:
            biased = Signal(width, name=f"thresholds_biased{lane}")
            m.d.comb += biased.eq(compared.as_unsigned() ^ offset)
            compared = biased
        bits = Cat(compared >= t for t in per_lane[lane * n:(lane + 1) * n])
        if negated:
            bits = bits ^ word[pe * n * width + lane].replicate(n)
        if compare_register:
            held = Signal(n, name=f"thresholds_passed{lane}_bits")
            with m.If(advance & valid):
                m.d.sync += held.eq(bits)
            bits = held
        passed = tree_sum(list(bits), m, f"thresholds_passed{lane}")
        results.append(passed if output_type.bipolar else out_base + passed)
    return results, compared_valid


def delayed(m, valid, cycles: int, enable, name: str = "compared_valid"):
    """`valid` through `cycles` registers loaded with `enable` (beside a pipeline's data)."""
    for stage in range(cycles):
        later = Signal(name=f"{name}{stage}" if cycles > 1 else name)
        with m.If(enable):
            m.d.sync += later.eq(valid)
        valid = later
    return valid


def register_thresholded(m, spec, held, incoming, held_valid, group, advance, value_shape, out_valid, out_data):
    """Output register of a core whose `held` values (registered from a beat presented with
    channel group `group` where `advance & incoming`; their valid `held_valid`) go through the
    spec's thresholds, if it has any."""
    results = held
    if spec.thresholds is not None:
        results, held_valid = threshold_stage(m, held, group, advance, incoming, held_valid, spec=spec,
                                              signs=spec.channel_sign, value_shape=value_shape,
                                              output_type=spec.output_type, out_base=spec.out_base)
    register_output(m, advance, held_valid, out_valid, out_data,
                    Cat(r.as_unsigned()[:spec.output_type.bits] for r in results))


def register_output(m, advance, valid, out_valid, out_data, value):
    """A stream's output register: `out_valid` follows `valid` where the pipeline advances, and
    `out_data` loads `value` only with a beat (a simulator then skips computing `value` in the
    cycles a starved layer advances empty)."""
    with m.If(advance):
        m.d.sync += out_valid.eq(valid)
    with m.If(advance & valid):
        m.d.sync += out_data.eq(value)
