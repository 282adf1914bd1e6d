"""Window pooling: reduce each window of a sliding-window stream to one pixel (max or sum).

Input per output pixel: ``window`` pixels, each ``channels/simd`` beats, in
(pixel, channel group) order; output: ``channels/simd`` beats. Partial results
per channel group live in a small RAM read combinationally (LUT RAM), so the
core takes one beat per cycle.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import PoolSpec
from .arith import counter_bits, element_value, lanes, nested_counters, resized
from .memories import layer_memory
from .pipelining import adder_ns, lut_level_ns


class WindowPool(wiring.Component):
    def __init__(self, spec: PoolSpec):
        self.spec = spec
        super().__init__({
            "s": In(stream.Signature(unsigned(spec.simd * spec.input_type.bits))),
            "m": Out(stream.Signature(unsigned(spec.simd * spec.output_type.bits))),
        })

    @staticmethod
    def path_ns(spec: PoolSpec) -> float:
        """By the delay model (`pipelining`): the partial result's LUT-RAM read, the compare or
        add, the first pixel's choice into the LUT RAM's write."""
        return lut_level_ns() + adder_ns(spec.output_type.bits + 1) + lut_level_ns()

    @staticmethod
    def resource_features(spec: PoolSpec) -> dict[str, float]:
        return {"const": 1, f"{spec.op}_bits": spec.simd * spec.output_type.bits,
                "counter_bits": counter_bits(spec.window, spec.channels // spec.simd)}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        ib, ob = spec.input_type.bits, spec.output_type.bits
        beats = spec.channels // spec.simd
        partial = layer_memory(m, spec, "partial_results")
        read = partial.read_port(domain="comb")
        write = partial.write_port()

        accept = Signal()
        pixel, group = nested_counters(m, accept, (spec.window, beats), ("pixel", "group"))
        first, last = pixel == 0, pixel == spec.window - 1
        m.d.comb += [read.addr.eq(group), write.addr.eq(group)]

        def result():
            """The pixel reduced into the partial result. Built per use (the write-back, the
            output register), not a named signal: a simulator then reduces only with a beat."""
            reduced = []
            for x, acc in zip(lanes(self.s.payload, ib, spec.simd), lanes(read.data, ob, spec.simd)):
                value = element_value(x, spec.input_type)
                previous = element_value(acc, spec.output_type)
                if spec.op == "max":
                    combined = Mux(value > previous, value, previous)
                else:
                    combined = previous + value
                chosen = Mux(first, value, combined)
                # Wire code: two's complement low bits, or for bipolar the bit "is +1".
                reduced.append(resized(chosen > 0 if spec.output_type.bipolar else chosen, unsigned(ob)))
            return Cat(*reduced)

        # The last pixel of a window goes out instead of into the RAM; the output register is
        # free when empty or being read.
        out_valid, out_data = Signal(), Signal(spec.simd * ob)
        room = ~out_valid | self.m.ready
        m.d.comb += [
            self.s.ready.eq(~last | room),
            self.m.valid.eq(out_valid),
            self.m.payload.eq(out_data),
            write.data.eq(result()),
        ]
        m.d.comb += [accept.eq(self.s.valid & self.s.ready), write.en.eq(accept & ~last)]
        with m.If(room):
            m.d.sync += out_valid.eq(accept & last)
        with m.If(accept & last):
            m.d.sync += out_data.eq(result())
        return m
