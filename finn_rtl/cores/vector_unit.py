"""Vector unit for depthwise convolutions: weighted window sums per channel, then thresholds.

Input: the sliding-window stream, per output pixel ``window`` kernel positions
of ``channels/pe`` beats each (PE channels per beat). Partial sums per channel
group live in a small RAM read combinationally (LUT RAM), the weights of
kernel position k and channel group g in a ROM word at k*groups + g. When a
window's last position arrives its sums go to the threshold stage (or out). The weights of
the current beat come from a register loaded, as each beat is taken, with the next beat's ROM
word: the ROM's read is a stage of its own, not in front of the multipliers.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import VectorUnitSpec
from .arith import address_bits, counter_bits, lane_product, lanes, nested_counters, pack_fields, resized
from .memories import distributed_bank_words, distributed_read_ns, layer_memory, walked_rom, walked_rom_register_bits
from .pipelining import adder_ns, counter_ns, lut_level_ns
from .threshold import register_thresholded, threshold_features, threshold_path_ns, threshold_register_bits


def product_stage(spec: VectorUnitSpec) -> bool:
    """Whether the products are registered before the partial sums (`pipelining`): a LUT
    multiplier (three LUT levels and its adder) and the accumulate with its partial-sum read and
    write (an adder, a LUT-RAM read and write) do not fit the spec's clock together."""
    if spec.multipliers == "dsp":
        return False
    needed = lut_level_ns(3) + adder_ns(spec.weight_type.bits + spec.input_type.bits) \
        + adder_ns(spec.acc_type.bits) + lut_level_ns(2)
    return needed > spec.stage_budget.logic_ns


def pipeline_register_bits(spec: VectorUnitSpec) -> int:
    """Flip-flops of the unit's pipeline registers (a resource-estimate feature, one per bit): the
    current beat's weights, the registered products with their tags, the threshold stage's."""
    bits = walked_rom_register_bits(spec, "weights", spec.window * spec.channels // spec.pe)
    if product_stage(spec):
        products = spec.pe * (spec.weight_type.bits + spec.input_type.bits + 1)
        bits += products + 3 + address_bits(spec.channels // spec.pe)
    return bits + threshold_register_bits(spec, signed(spec.acc_type.bits))


def path_ns(spec: VectorUnitSpec) -> float:
    """The slowest stage by the delay model (`pipelining`), logic and routing: the weight ROM's
    read (by banks and their multiplexer where banked), the products and the partial sums'
    read-modify-write, the threshold stage's."""
    shape = spec.memories()["weights"]
    bank = distributed_bank_words(shape, spec.memory_style("weights"), spec.stage_budget)
    paths = [distributed_read_ns(shape.depth, bank), counter_ns(shape.depth)]
    multiply = 0.0 if spec.multipliers == "dsp" else \
        lut_level_ns(3) + adder_ns(spec.weight_type.bits + spec.input_type.bits)
    accumulate = adder_ns(spec.acc_type.bits) + lut_level_ns(2)
    paths += [multiply, accumulate] if product_stage(spec) else [multiply + accumulate]
    return max(paths + [threshold_path_ns(spec, signed(spec.acc_type.bits))])


class VectorUnit(wiring.Component):
    def __init__(self, spec: VectorUnitSpec):
        self.spec = spec
        self.product_stage = product_stage(spec)
        super().__init__({
            "s": In(stream.Signature(unsigned(spec.pe * spec.input_type.bits))),
            "m": Out(stream.Signature(unsigned(spec.pe * spec.output_type.bits))),
        })

    path_ns = staticmethod(path_ns)

    @staticmethod
    def resource_features(spec: VectorUnitSpec) -> dict[str, float]:
        thresholds = spec.thresholds_per_channel
        acc = spec.acc_type.bits
        dsps = spec.dsps
        return {"const": 1, "dsp48": dsps, "dsp_products": dsps,
                "multiply_bits": 0 if dsps else spec.pe * spec.input_type.bits * spec.weight_type.bits,
                "acc_bits": spec.pe * acc,
                **threshold_features(spec.pe, thresholds, acc, spec.channels // spec.pe),
                "out_bits": spec.pe * spec.output_type.bits, "pipeline_bits": pipeline_register_bits(spec),
                "counter_bits": counter_bits(spec.window, spec.channels // spec.pe, spec.window * spec.channels // spec.pe)}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        PE, groups = spec.pe, spec.channels // spec.pe
        acc_shape = signed(spec.acc_type.bits)
        aw = acc_shape.width

        partial = layer_memory(m, spec, "partial_sums")
        assert partial.shape.width == PE * aw, "the spec's partial-sum shape is the core's"
        partial_read = partial.read_port(domain="comb")
        partial_write = partial.write_port()

        out_valid, out_data = Signal(), Signal(PE * spec.output_type.bits)
        advance = ~out_valid | self.m.ready
        accept = self.s.valid & advance
        position, group = nested_counters(m, accept, (spec.window, groups), ("position", "group"))
        first, last = position == 0, position == spec.window - 1
        m.d.comb += [self.s.ready.eq(advance), self.m.valid.eq(out_valid), self.m.payload.eq(out_data)]
        # The weights of (position, group) sit at position * groups + group, which the beats walk
        # in order: the ROM is read ahead of the beats into a register.
        beat_weights = walked_rom(m, spec, "weights", pack_fields(spec.rom_fields("weights")),
                                  spec.window * groups, accept)

        x_lanes = lanes(self.s.payload, spec.input_type.bits, PE)
        w_lanes = lanes(beat_weights, spec.weight_type.bits, PE)
        products = [lane_product(m, x_lanes[lane], w_lanes[lane], spec, f"product{lane}") for lane in range(PE)]
        # With `product_stage`, the products (and the beat's window position and group) are
        # registered before the partial sums are read, added and written back: the read-modify-
        # write stays within one cycle, so a beat reads what the beat before it wrote.
        valid = accept
        if self.product_stage:
            # (Each register has its product's shape: a wider one reads the product twice, its sign
            # bit and itself, and Verilator then computes the product every cycle, not with a beat.)
            held_products = [Signal(Value.cast(p).shape(), name=f"product{lane}_held") for lane, p in enumerate(products)]
            tags = Signal(2 + len(group) + 1, name="product_tags")
            with m.If(accept):
                m.d.sync += [h.eq(p) for h, p in zip(held_products, products)]
                m.d.sync += tags.eq(Cat(first, last, group, accept))
            with m.Elif(advance):
                m.d.sync += tags[-1].eq(0)
            products = held_products
            first, last, group, valid = tags[0], tags[1], tags[2:2 + len(group)], tags[-1]
        m.d.comb += [partial_read.addr.eq(group), partial_write.addr.eq(group)]

        p_lanes = lanes(partial_read.data, aw, PE)

        def sums():
            # Not named signals: each use (the write-back, the held window) has the adds where it
            # loads, so a simulator does them only with a beat; synthesis merges the two copies.
            return [resized(Mux(first, 0, p_lanes[lane].as_signed()) + products[lane], acc_shape)
                    for lane in range(PE)]

        m.d.comb += [partial_write.data.eq(Cat(sums())), partial_write.en.eq(advance & valid & ~last)]

        # A finished window is held one cycle while its channel group's thresholds are read.
        held_valid = Signal()
        held = [Signal(acc_shape, name=f"held{lane}") for lane in range(PE)]
        finished = valid & last
        with m.If(advance):
            m.d.sync += held_valid.eq(finished)
        with m.If(advance & finished):
            m.d.sync += [h.eq(t) for h, t in zip(held, sums())]
        register_thresholded(m, spec, held, finished, held_valid, group, advance, acc_shape, out_valid, out_data)
        return m
