"""Where streams fork and meet: Duplicate (one stream to several consumers) and Concat
(channel concatenation). The residual add is `thresholding.Thresholding` with two inputs."""
from __future__ import annotations

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.merge_specs import ConcatSpec, DuplicateSpec
from .arith import counter_bits, element_value, lanes, nested_counters
from .pipelining import adder_ns, counter_ns, lut_level_ns, mux_levels
from .ports import input_names, output_names


class Duplicate(wiring.Component):
    """An eager fork: each output takes the current beat when it is ready, independently of the
    others; the input beat is released once every output has taken it. A slow consumer
    therefore delays the others by at most one beat (FIFOs behind the outputs decouple them)."""

    def __init__(self, spec: DuplicateSpec):
        self.spec = spec
        width = spec.simd * spec.dtype.bits
        self.output_names = output_names(spec.outputs)
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            **{name: Out(stream.Signature(unsigned(width))) for name in self.output_names},
        })

    @staticmethod
    def path_ns(spec: DuplicateSpec) -> float:
        """By the delay model: the outputs' readies into the input's ready and the taken flags."""
        return lut_level_ns(1 + mux_levels(spec.outputs))

    @staticmethod
    def resource_features(spec: DuplicateSpec) -> dict[str, float]:
        return {"const": 1, "outputs": spec.outputs}

    def elaborate(self, platform):
        m = Module()
        outputs = [getattr(self, name) for name in self.output_names]
        taken = Signal(len(outputs))  # outputs that already took the current beat
        done = [Signal(name=f"done{i}") for i in range(len(outputs))]
        for i, port in enumerate(outputs):
            m.d.comb += [port.payload.eq(self.s.payload), port.valid.eq(self.s.valid & ~taken[i]),
                         done[i].eq(taken[i] | port.ready)]
        m.d.comb += self.s.ready.eq(Cat(done).all())
        with m.If(self.s.valid):
            with m.If(self.s.ready):
                m.d.sync += taken.eq(0)
            with m.Else():
                m.d.sync += taken.eq(Cat(done))
        return m


class Concat(wiring.Component):
    """Per pixel, the channel groups of input 0, then of input 1, ...: a stream merger that
    passes one input's beats through at a time, re-encoding elements to the output type."""

    def __init__(self, spec: ConcatSpec):
        self.spec = spec
        self.input_names = input_names(spec.inputs)
        super().__init__({
            **{name: In(stream.Signature(unsigned(spec.simd * qtype.bits)))
               for name, qtype in zip(self.input_names, spec.input_types)},
            "m": Out(stream.Signature(unsigned(spec.simd * spec.output_type.bits))),
        })

    @staticmethod
    def path_ns(spec: ConcatSpec) -> float:
        """By the delay model: the beat counter's comparisons selecting an input, its choice."""
        beats = sum(c // spec.simd for c in spec.channels)
        return max(counter_ns(beats), adder_ns(beats.bit_length()) + lut_level_ns(1 + mux_levels(spec.inputs)))

    @staticmethod
    def resource_features(spec: ConcatSpec) -> dict[str, float]:
        beats = sum(c // spec.simd for c in spec.channels)
        return {"const": 1, "select_bits": spec.inputs * spec.simd * spec.output_type.bits,
                "counter_bits": counter_bits(beats)}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        inputs = [getattr(self, name) for name in self.input_names]
        beats = [c // spec.simd for c in spec.channels]  # beats per pixel from each input
        bits = spec.output_type.bits
        moved = self.m.valid & self.m.ready
        beat, = nested_counters(m, moved, (sum(beats),), ("beat",))
        start = 0
        for port, qtype, count in zip(inputs, spec.input_types, beats):
            payload = port.payload
            if qtype != spec.output_type and not qtype.bipolar:  # widen: sign- or zero-extend
                payload = Signal(spec.simd * bits, name=f"{port.payload.name}_widened")
                m.d.comb += [payload.word_select(i, bits).eq(element_value(x, qtype))
                             for i, x in enumerate(lanes(port.payload, qtype.bits, spec.simd))]
            selected = (beat >= start) & (beat < start + count)
            with m.If(selected):
                m.d.comb += [self.m.valid.eq(port.valid), self.m.payload.eq(payload),
                             port.ready.eq(self.m.ready)]
            start += count
        return m
