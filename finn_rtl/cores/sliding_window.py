"""Sliding-window generator: an image stream in, the stream of its convolution windows out.

Input: pixels in raster order, channels last, SIMD channels per beat
(``channels / simd`` beats per pixel). Output: for each output pixel in raster
order, its window in (ky, kx, channel) order, SIMD channels per beat; this is
the order of an im2col row and of the MVTU's weight columns.

Storage is a line buffer of ``2*kernel_h + stride_h - 1`` image rows, not a
frame: while the reader walks the windows of one output row, the writer fills
the ``stride_h`` rows the next output row needs in addition, and during a
frame's last output row it can fill the unused bottom rows (fewer than
``stride_h``) and the next frame's first ``kernel_h`` rows, so frames follow
each other without a gap. Rows are tracked with
two counters relative to the oldest row still needed (released rows free their
slot), so a frame's unused bottom rows and the next frame's first rows flow
through without a special case.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import SlidingWindowSpec
from .arith import address_bits, constant_product_bits, nested_counters
from .memories import layer_memory


class SlidingWindow(wiring.Component):
    def __init__(self, spec: SlidingWindowSpec):
        self.spec = spec
        width = spec.simd * spec.dtype.bits
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    @staticmethod
    def resource_features(spec: SlidingWindowSpec) -> dict[str, float]:
        """What its logic grows with: the counters (a counter to 1 is a constant), the address
        arithmetic (`slot * row_beats` on both ports is a constant product: an adder per further
        set bit of the constant, over the address bits above it), and the column `ox * SW + kx`
        (bits put side by side when a window is no wider than a power-of-two stride)."""
        beats = spec.channels // spec.simd
        row_beats = spec.in_w * beats
        rows = spec.line_buffer_rows
        address = address_bits(spec.memories()["line_buffer"].depth)
        kernel_w, stride_w = spec.kernel[1], spec.stride[1]
        side_by_side = kernel_w <= stride_w and stride_w.bit_count() == 1
        return {"const": 1,
                "counter_bits": sum(address_bits(n) for n in (spec.out_h, spec.out_w, *spec.kernel, beats,
                                                              rows, row_beats, rows)),
                "address_product_bits": 2 * constant_product_bits(row_beats, address),
                "column_bits": 0 if side_by_side else address_bits(spec.in_w)}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        H, W = spec.in_h, spec.in_w
        KH, KW = spec.kernel
        SH, SW = spec.stride
        OH, OW = spec.out_h, spec.out_w
        CF = spec.channels // spec.simd  # beats per pixel
        rows = spec.line_buffer_rows
        row_beats = W * CF

        lines = layer_memory(m, spec, "line_buffer")
        write = lines.write_port()
        read = lines.read_port()

        # Rows relative to the oldest row still needed: `started` gates the writer (a slot must be
        # free), `complete` gates the reader (the rows of a window must be whole). A frame's last
        # release also frees its unused bottom rows before they arrive, so both may go negative.
        span = H + rows + 1
        started = Signal(signed(span.bit_length() + 1))
        complete = Signal(signed(span.bit_length() + 1))

        # -- writer
        accept = self.s.valid & self.s.ready
        w_slot, w_pos = nested_counters(m, accept, (rows, row_beats), ("w_slot", "w_pos"))
        row_start_ok = started < rows
        m.d.comb += [
            self.s.ready.eq((w_pos != 0) | row_start_ok),
            write.addr.eq(w_slot * row_beats + w_pos),
            write.data.eq(self.s.payload),
            write.en.eq(accept),
        ]
        row_started = accept & (w_pos == 0)
        row_done = accept & (w_pos == row_beats - 1)

        # -- reader: (oy, ox, ky, kx, cf), one beat per cycle; the read port is the output register
        out_valid = Signal()
        advance = ~out_valid | self.m.ready
        can_issue = complete >= KH
        issue = advance & can_issue
        oy, ox, ky, kx, cf = nested_counters(m, issue, (OH, OW, KH, KW, CF), ("oy", "ox", "ky", "kx", "cf"))
        base_slot = Signal(range(max(rows, 2)))  # slot of input row oy*SH
        slot = Signal(range(2 * rows))
        m.d.comb += slot.eq(base_slot + ky)
        wrapped = Mux(slot >= rows, slot - rows, slot)
        col = Signal(range(W + 1))
        m.d.comb += col.eq(ox * SW + kx)
        m.d.comb += [
            read.en.eq(advance),
            read.addr.eq(wrapped * row_beats + col * CF + cf),
            self.m.valid.eq(out_valid),
            self.m.payload.eq(read.data),
        ]
        with m.If(advance):
            m.d.sync += out_valid.eq(issue)

        window_done = (cf == CF - 1) & (kx == KW - 1) & (ky == KH - 1)
        out_row_done = issue & window_done & (ox == OW - 1)
        frame_done = out_row_done & (oy == OH - 1)
        # A finished output row releases SH rows; a finished frame releases the rest of the frame.
        tail_rows = H - (OH - 1) * SH
        release = Signal(range(max(SH, tail_rows) + 1))
        with m.If(frame_done):
            m.d.comb += release.eq(tail_rows)
        with m.Elif(out_row_done):
            m.d.comb += release.eq(SH)
        m.d.sync += [started.eq(started + row_started - release),
                     complete.eq(complete + row_done - release)]
        with m.If(out_row_done):
            step = Mux(frame_done, tail_rows % rows, SH % rows)
            moved = base_slot + step
            m.d.sync += base_slot.eq(Mux(moved >= rows, moved - rows, moved))

        return m
