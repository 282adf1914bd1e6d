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

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.memory import BLOCK_STYLES
from ..graph.specs import SlidingWindowSpec
from .arith import address_bits, constant_product_bits, nested_counters
from .memories import layer_memory
from .pipelining import BRAM_ADDRESS_SETUP_NS, adder_ns, counter_ns


def address_stages(spec: SlidingWindowSpec) -> int:
    """Registers between the reader's counters and the line buffer's read address: none where the
    whole computation (slot + ky with its wrap, `ox * SW + kx`, `slot * row_beats + col * CF +
    cf`: four adders' carry chains and the memory's address setup, measured 5.1-7.5 ns on CNV's
    generators) fits the spec's clock, else two (parts, then the address)."""
    return 0 if address_ns(spec) <= spec.stage_budget.logic_ns else 2


def address_ns(spec: SlidingWindowSpec) -> float:
    """The read address's computation (`address_stages`) with the memory's address setup."""
    memory = spec.memories()["line_buffer"]
    bits = address_bits(memory.depth)
    return 4 * adder_ns(bits) + (BRAM_ADDRESS_SETUP_NS if spec.memory_style("line_buffer") in BLOCK_STYLES else 0)


def path_ns(spec: SlidingWindowSpec) -> float:
    """The slowest stage by the delay model (`pipelining`): the read address (in two stages
    where `address_stages` registers it), or the writer's address counter."""
    stages = address_stages(spec)
    read = address_ns(spec) if not stages else address_ns(spec) / stages
    return max(read, counter_ns(spec.memories()["line_buffer"].depth))


class SlidingWindow(wiring.Component):
    def __init__(self, spec: SlidingWindowSpec):
        self.spec = spec
        self.address_stages = address_stages(spec)
        width = spec.simd * spec.dtype.bits
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    path_ns = staticmethod(path_ns)

    @staticmethod
    def resource_features(spec: SlidingWindowSpec) -> dict[str, float]:
        """What its logic grows with: the counters (a counter to 1 is a constant; the writer's
        address is one), the read address arithmetic (`slot * row_beats` is a constant product:
        an adder per further set bit of the constant, over the address bits above it), and the
        column `ox * SW + kx` (bits put side by side when a window is no wider than a power-of-two
        stride)."""
        beats = spec.channels // spec.simd
        row_beats = spec.in_w * beats
        rows = spec.line_buffer_rows
        address = address_bits(spec.memories()["line_buffer"].depth)
        kernel_w, stride_w = spec.kernel[1], spec.stride[1]
        side_by_side = kernel_w <= stride_w and stride_w.bit_count() == 1
        return {"const": 1,
                "counter_bits": sum(address_bits(n) for n in (spec.out_h, spec.out_w, *spec.kernel, beats,
                                                              rows * row_beats, row_beats, rows)),
                "address_product_bits": constant_product_bits(row_beats, address),
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
        # The writer walks the buffer in address order: its address is a counter of its own (no
        # slot * row_beats product on the write port), beside the position in the row.
        w_pos, = nested_counters(m, accept, (row_beats,), ("w_pos",))
        write_address, = nested_counters(m, accept, (rows * row_beats,), ("write_address",))
        row_start_ok = started < rows
        m.d.comb += [
            self.s.ready.eq((w_pos != 0) | row_start_ok),
            write.addr.eq(write_address),
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
        wrapped = Signal(range(max(rows, 2)))
        m.d.comb += wrapped.eq(Mux(slot >= rows, slot - rows, slot))
        col = Signal(range(W + 1))
        m.d.comb += col.eq(ox * SW + kx)
        # The read address, `pipelined` or not (`address_stages`): with registers, the row and
        # column are registered after the counters, and the address after its products and sums;
        # the reader stalls as one pipeline on `advance`.
        if self.address_stages:
            # (each stage's data loads only with a read issued: an idle generator's address
            # arithmetic costs a simulator nothing)
            held = Signal(len(wrapped) + len(col) + len(cf), name="address_parts")
            held_valid = Signal(name="address_parts_valid")
            with m.If(advance):
                m.d.sync += held_valid.eq(issue)
            with m.If(issue):
                m.d.sync += held.eq(Cat(wrapped, col, cf))
            h_wrapped, h_col = held[:len(wrapped)], held[len(wrapped):len(wrapped) + len(col)]
            h_cf = held[len(wrapped) + len(col):]
            address = Signal.like(read.addr, name="read_address")
            address_valid = Signal()
            with m.If(advance):
                m.d.sync += address_valid.eq(held_valid)
            with m.If(advance & held_valid):
                m.d.sync += address.eq(h_wrapped * row_beats + h_col * CF + h_cf)
            m.d.comb += read.addr.eq(address)
            read_valid = address_valid
        else:
            m.d.comb += read.addr.eq(wrapped * row_beats + col * CF + cf)
            read_valid = issue
        m.d.comb += [
            read.en.eq(advance & read_valid),  # the output register loads only with a beat
            self.m.valid.eq(out_valid),
            self.m.payload.eq(read.data),
        ]
        with m.If(advance):
            m.d.sync += out_valid.eq(read_valid)

        window_done = (cf == CF - 1) & (kx == KW - 1) & (ky == KH - 1)
        out_row_done = issue & window_done & (ox == OW - 1)
        # A finished output row releases SH rows; a finished frame releases the rest of the frame.
        # The amounts depend on the row counter alone (the frame's last row or not), so the
        # adders after them do not wait for `issue`, which waits for `complete`.
        tail_rows = H - (OH - 1) * SH
        last_row = oy == OH - 1
        release = Signal(range(max(SH, tail_rows) + 1))
        with m.If(out_row_done):
            m.d.comb += release.eq(Mux(last_row, tail_rows, SH))
        # The writer sees a release once the reads issued before it have read their rows.
        writer_release = release
        for k in range(self.address_stages):
            delayed = Signal.like(release, name=f"release_d{k}")
            m.d.sync += delayed.eq(writer_release)
            writer_release = delayed
        m.d.sync += [started.eq(started + row_started - writer_release),
                     complete.eq(complete + row_done - release)]
        with m.If(out_row_done):
            step = Mux(last_row, tail_rows % rows, SH % rows)
            moved = base_slot + step
            m.d.sync += base_slot.eq(Mux(moved >= rows, moved - rows, moved))

        return m
