"""Frames in memory and the gearboxes between memory words and accelerator beats.

Buffer layout (the driver packs and unpacks exactly this; see MemoryLayout):

* every accelerator beat (its AXI-stream tdata, element 0 in the LSBs, zero-padded to whole
  bytes) occupies a *slot*: the smallest power of two of bytes that holds it when a beat is
  narrower than a memory word, else a whole number of words;
* a frame is its beats' slots in order, little-endian, padded with zeros to whole memory words;
* frame f starts at byte ``f * frame_bytes`` of the buffer.

Slots tile words exactly, so both gearboxes only ever shift by constants: a word is cut into
slots, or slots are placed at fixed positions in a word, and each frame starts a new word.
The price is padding: a 3-byte beat (8-bit RGB pixels) takes 4 bytes of memory bandwidth.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..cores.arith import nested_counters
from ..cores.width_converter import WidthConverter


@dataclass(frozen=True)
class MemoryLayout:
    word_bytes: int
    beat_bytes: int  # the accelerator port's tdata width in bytes
    beats_per_frame: int

    @property
    def slot_bytes(self) -> int:
        if self.beat_bytes >= self.word_bytes:
            return -(-self.beat_bytes // self.word_bytes) * self.word_bytes
        return 1 << (self.beat_bytes - 1).bit_length()

    @property
    def slots_per_word(self) -> int:
        return max(1, self.word_bytes // self.slot_bytes)

    @property
    def words_per_slot(self) -> int:
        return max(1, self.slot_bytes // self.word_bytes)

    @property
    def frame_words(self) -> int:
        return -(-self.beats_per_frame * self.slot_bytes // self.word_bytes)

    @property
    def frame_bytes(self) -> int:
        return self.frame_words * self.word_bytes

    def to_dict(self) -> dict:
        return {"word_bytes": self.word_bytes, "beat_bytes": self.beat_bytes,
                "beats_per_frame": self.beats_per_frame, "slot_bytes": self.slot_bytes,
                "frame_bytes": self.frame_bytes}


def _stream(bits: int):
    return stream.Signature(unsigned(bits))


class WordsToBeats(wiring.Component):
    """Memory words in, accelerator beats out (the input side)."""

    def __init__(self, layout: MemoryLayout):
        self.layout = layout
        super().__init__({"s": In(_stream(8 * layout.word_bytes)), "m": Out(_stream(8 * layout.beat_bytes))})

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        beat_bits = 8 * lay.beat_bytes
        if lay.slots_per_word == 1:
            m.submodules.gather = gather = WidthConverter(8 * lay.word_bytes, 1, lay.words_per_slot)
            wiring.connect(m, wiring.flipped(self.s), gather.s)
            m.d.comb += [self.m.valid.eq(gather.m.valid), self.m.payload.eq(gather.m.payload[:beat_bits]),
                         gather.m.ready.eq(self.m.ready)]
            return m
        k, frame = lay.slots_per_word, lay.beats_per_frame
        hold = Signal(8 * lay.word_bytes)
        slots_left = Signal(range(k + 1))  # slots of the held word still to send
        # A frame's last word holds only the frame's remaining slots (the rest is padding): words
        # are counted within the frame, not beats, so the slots of a word are one of two constants
        # (a beat count and the subtraction from the frame size were 8.6 ns on 7-series).
        words = lay.frame_words
        word, = nested_counters(m, self.s.valid & self.s.ready, (words,), ("word",))
        last_slots = frame - (words - 1) * k
        taken = self.m.valid & self.m.ready
        m.d.comb += [self.m.valid.eq(slots_left != 0), self.m.payload.eq(hold[:beat_bits]),
                     self.s.ready.eq((slots_left == 0) | ((slots_left == 1) & self.m.ready))]
        with m.If(self.s.valid & self.s.ready):
            m.d.sync += [hold.eq(self.s.payload), slots_left.eq(Mux(word == words - 1, last_slots, k))]
        with m.Elif(taken):
            m.d.sync += [hold.eq(hold >> (8 * lay.slot_bytes)), slots_left.eq(slots_left - 1)]
        return m


class BeatsToWords(wiring.Component):
    """Accelerator beats in, memory words out (the output side); a frame's last word is
    zero-padded."""

    def __init__(self, layout: MemoryLayout):
        self.layout = layout
        super().__init__({"s": In(_stream(8 * layout.beat_bytes)), "m": Out(_stream(8 * layout.word_bytes))})

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        word_bits, slot_bits = 8 * lay.word_bytes, 8 * lay.slot_bytes
        if lay.slots_per_word == 1:
            m.submodules.scatter = scatter = WidthConverter(word_bits, lay.words_per_slot, 1)
            wiring.connect(m, scatter.m, wiring.flipped(self.m))
            m.d.comb += [scatter.s.valid.eq(self.s.valid), scatter.s.payload.eq(self.s.payload),
                         self.s.ready.eq(scatter.s.ready)]
            return m
        k, frame = lay.slots_per_word, lay.beats_per_frame
        fill = Signal(word_bits)
        slot = Signal(range(k))
        beat = Signal(range(frame))
        out_valid, out_data = Signal(), Signal(word_bits)
        completing = (slot == k - 1) | (beat == frame - 1)
        m.d.comb += [self.s.ready.eq(~completing | ~out_valid | self.m.ready),
                     self.m.valid.eq(out_valid), self.m.payload.eq(out_data)]
        # The word with this beat in place: lower slots from `fill`, zeros above.
        word = Signal(word_bits)
        with m.Switch(slot):
            for i in range(k):
                with m.Case(i):
                    parts = [fill[:i * slot_bits]] if i else []
                    parts.append(self.s.payload)
                    m.d.comb += word.eq(Cat(*parts))
        with m.If(self.m.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.s.valid & self.s.ready):
            m.d.sync += beat.eq(Mux(beat == frame - 1, 0, beat + 1))
            with m.If(completing):
                m.d.sync += [out_data.eq(word), out_valid.eq(1), slot.eq(0)]
            with m.Else():
                m.d.sync += [fill.eq(word), slot.eq(slot + 1)]
        return m
