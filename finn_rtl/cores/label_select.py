"""Top-1 label select: a frame of `channels` signed values in, the index of the largest out.

Ties go to the lowest index (as numpy's argmax). Input beats carry `lanes`
values, value 0 in the LSBs; one output beat per frame.
"""
from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import lanes as split_lanes
from .pipelining import adder_ns, lut_level_ns, mux_levels


class LabelSelect(wiring.Component):
    def __init__(self, value_bits: int, lanes: int, channels: int, index_bits: int):
        if channels % lanes:
            raise ValueError(f"lanes={lanes} must divide channels={channels}")
        self.value_bits, self.lanes, self.channels, self.index_bits = value_bits, lanes, channels, index_bits
        super().__init__({
            "s": In(stream.Signature(unsigned(value_bits * lanes))),
            "m": Out(stream.Signature(unsigned(index_bits))),
        })

    @staticmethod
    def path_ns(value_bits: int, lanes: int) -> float:
        """By the delay model (`pipelining`): a comparison, then the choices among the lanes
        (synthesis flattens the lanes' priority chain: 10 lanes of 8 bits measured 3 LUT levels)."""
        return adder_ns(value_bits + 1) + lut_level_ns(1 + mux_levels(lanes))

    def elaborate(self, platform):
        m = Module()
        vb, n_lanes, beats = self.value_bits, self.lanes, self.channels // self.lanes
        values = [v.as_signed() for v in split_lanes(self.s.payload, vb, n_lanes)]

        beat = Signal(range(max(beats, 2)))
        best = Signal(signed(vb))
        best_index = Signal(range(self.channels))
        out_valid = Signal()
        out_index = Signal(self.index_bits)
        m.d.comb += [self.m.valid.eq(out_valid), self.m.payload.eq(out_index),
                     self.s.ready.eq(~out_valid | self.m.ready)]
        with m.If(self.m.ready):
            m.d.sync += out_valid.eq(0)

        # Winner of this beat, lanes scanned in order so the first maximum wins.
        beat_best, beat_index = values[0], 0
        for i, value in enumerate(values[1:], start=1):
            running_best = Signal(signed(vb), name=f"lane_best{i}")
            running_index = Signal(range(n_lanes), name=f"lane_index{i}")
            m.d.comb += [running_best.eq(beat_best), running_index.eq(beat_index)]
            with m.If(value > beat_best):
                m.d.comb += [running_best.eq(value), running_index.eq(i)]
            beat_best, beat_index = running_best, running_index
        candidate_index = beat * n_lanes + beat_index

        with m.If(self.s.valid & self.s.ready):
            first = beat == 0
            take = first | (beat_best > best)
            new_best = Signal(signed(vb))
            new_index = Signal.like(best_index)
            m.d.comb += [new_best.eq(best), new_index.eq(best_index)]
            with m.If(take):
                m.d.comb += [new_best.eq(beat_best), new_index.eq(candidate_index)]
            m.d.sync += [best.eq(new_best), best_index.eq(new_index)]
            with m.If(beat == beats - 1):
                m.d.sync += [beat.eq(0), out_valid.eq(1), out_index.eq(new_index)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        return m
