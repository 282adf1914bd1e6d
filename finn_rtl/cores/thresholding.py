"""Channel-wise core: the weighted sum of one or more streams (PE channels per beat each),
each channel's sum mapped through its thresholds. One input: standalone thresholding (after a
quantized average pool). Two: a residual add (`AddSpec`), factors aligning the scales."""
from __future__ import annotations

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import counter_bits, element_value, lanes, nested_counters
from .ports import input_names
from .pipelining import adder_ns, counter_ns, lut_level_ns
from .threshold import register_thresholded, threshold_features, threshold_path_ns, threshold_register_bits


class Thresholding(wiring.Component):
    def __init__(self, spec):
        self.spec = spec
        self.input_names = input_names(len(spec.input_types))
        super().__init__({
            **{name: In(stream.Signature(unsigned(spec.pe * qtype.bits)))
               for name, qtype in zip(self.input_names, spec.input_types)},
            "m": Out(stream.Signature(unsigned(spec.pe * spec.output_type.bits))),
        })

    @staticmethod
    def path_ns(spec) -> float:
        """By the delay model (`pipelining`): the weighted sum of the inputs (constant factors are
        shifts and adds), the threshold stage's slowest stage."""
        inputs = len(spec.input_types)
        summing = lut_level_ns() + (inputs - 1 + sum(f != 1 for f in spec.factors)) * adder_ns(spec.value_type.bits)
        return max(summing, threshold_path_ns(spec, signed(spec.value_type.bits)), counter_ns(spec.channels // spec.pe))

    @staticmethod
    def resource_features(spec) -> dict[str, float]:
        thresholds = spec.thresholds_per_channel
        value = spec.value_type.bits
        return {"const": 1, "sum_bits": spec.pe * value * len(spec.input_types),
                **threshold_features(spec.pe, thresholds, value, spec.channels // spec.pe),
                "out_bits": spec.pe * spec.output_type.bits, "counter_bits": counter_bits(spec.channels // spec.pe),
                "pipeline_bits": threshold_register_bits(spec, signed(spec.value_type.bits))}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        groups = spec.channels // spec.pe
        value_shape = signed(spec.value_type.bits)
        inputs = [getattr(self, name) for name in self.input_names]
        out_valid, out_data = Signal(), Signal(spec.pe * spec.output_type.bits)
        advance = ~out_valid | self.m.ready
        all_valid = Cat(port.valid for port in inputs).all()
        accept = all_valid & advance
        group, = nested_counters(m, accept, (groups,), ("group",))
        # A beat is taken from every input at once (a join): each input is ready when all are valid.
        m.d.comb += [port.ready.eq(accept) for port in inputs]
        m.d.comb += [self.m.valid.eq(out_valid), self.m.payload.eq(out_data)]

        # Stage 1 holds the (weighted) sum while its channel group's thresholds are read.
        held_valid = Signal()
        held = [Signal(value_shape, name=f"held{i}") for i in range(spec.pe)]
        per_input = [lanes(port.payload, qtype.bits, spec.pe) for port, qtype in zip(inputs, spec.input_types)]
        with m.If(advance):
            m.d.sync += held_valid.eq(accept)
        with m.If(accept):
            for lane, h in enumerate(held):
                terms = [element_value(values[lane], qtype) * factor if factor != 1 else
                         element_value(values[lane], qtype)
                         for values, qtype, factor in zip(per_input, spec.input_types, spec.factors)]
                total = terms[0]
                for term in terms[1:]:
                    total = total + term
                m.d.sync += h.eq(total)
        register_thresholded(m, spec, held, all_valid, held_valid, group, advance, value_shape, out_valid, out_data)
        return m
