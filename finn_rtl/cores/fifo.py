"""Stream FIFO between layers, in the memory style its edge chose.

Amaranth's SyncFIFOBuffered reads its storage asynchronously, which no block RAM can do, so a
deep FIFO would always become LUT RAM. This FIFO reads its memory through a registered port
(the block RAM's own output latch) that is also the output register: `depth - 1` beats in the
memory plus one at the output. It takes a beat per cycle from depth 3 on (at depth 2 its ready,
from the registered count, lets every other beat through), like SyncFIFOBuffered.

A block RAM's output latch is slow (2.45 ns clock to out on 7-series -1, where a flip-flop's is
0.30): in front of a consumer's logic it took half of a 200 MHz cycle. Block-RAM storage
therefore gets a second output register (the block RAM's own DO_REG in Vivado), a pipeline stage
with its own valid, so the FIFO holds one beat more and its output comes one cycle later. A deep
LUT-RAM FIFO whose read multiplexer does not fit the clock (measured: a 1152-word one at 182 MHz)
is cut into banks (`memories.distributed_bank_words`), each bank's read latched, and the latches
multiplexed into the same output register.
"""
from __future__ import annotations

from amaranth import Array, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..graph.memory import BLOCK_STYLES, auto_style, fifo_memory, verilog_attrs
from .arith import counter_bits
from .memories import distributed_bank_words, distributed_read_ns
from .pipelining import BRAM_OUT_NS, StageBudget, counter_ns, lut_level_ns

PEAK_BITS = 16  # width of a monitored FIFO's peak level


class StreamFIFO(wiring.Component):
    """With `monitor`, outputs `level` (the fill level) and `peak` (the highest level seen), for
    FIFO sizing runs and stall diagnosis. `style`: the storage's memory style (default: the
    automatic choice for its shape)."""

    def __init__(self, width: int, depth: int, monitor: bool = False, style: str | None = None,
                 budget: StageBudget | None = None):
        if depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, got {depth}")
        if monitor and depth >= 1 << PEAK_BITS:
            raise ValueError(f"a monitored FIFO must be shallower than {1 << PEAK_BITS} beats")
        self.width, self.depth, self.monitor = width, depth, monitor
        self.memory = fifo_memory(width, depth)
        self.style = style or auto_style(self.memory)
        self.bank = fifo_bank_words(depth, self.memory, self.style, budget)
        ports = {
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        }
        if monitor:
            ports["peak"] = Out(PEAK_BITS)
            ports["level"] = Out(PEAK_BITS)
        super().__init__(ports)

    @staticmethod
    def path_ns(depth: int, style: str, budget: StageBudget | None = None) -> float:
        """By the delay model (`pipelining`): the counters, and a block RAM's output into the
        output register or a LUT RAM's read (by banks, then their multiplexer) into its latch."""
        if depth == 1:
            return lut_level_ns()
        memory = fifo_memory(1, depth)
        if style in BLOCK_STYLES:
            return max(counter_ns(memory.depth), BRAM_OUT_NS)
        return max(counter_ns(memory.depth),
                   distributed_read_ns(memory.depth, fifo_bank_words(depth, memory, style, budget)))

    @staticmethod
    def resource_features(depth: int, width: int, style: str, budget: StageBudget | None = None) -> dict[str, float]:
        """For the calibrated resource estimate (its storage apart): the three counters, and the
        pipeline registers (a flip-flop per bit): the output register behind block RAM or LUT-RAM
        banks, and the banks' latches."""
        memory = fifo_memory(width, depth)
        bank = fifo_bank_words(depth, memory, style, budget)
        registers = width * (1 + -(-memory.depth // bank)) if bank else width if output_registered(style, depth) else 0
        return {"const": 1, "counter_bits": 3 * counter_bits(depth), "pipeline_bits": registers}

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal()
        advance = ~out_valid | self.m.ready
        m.d.comb += self.m.valid.eq(out_valid)
        if self.depth == 1:  # the output register alone: a beat every other cycle
            level = out_valid
            m.d.comb += self.s.ready.eq(~out_valid)
            with m.If(self.s.valid & ~out_valid):
                m.d.sync += [out_valid.eq(1), self.m.payload.eq(self.s.payload)]
            with m.Elif(self.m.ready):
                m.d.sync += out_valid.eq(0)
        else:
            level = self._memory_fifo(m, out_valid, advance)
        if self.monitor:
            m.d.sync += self.peak.eq(Mux(level > self.peak, level, self.peak))
            m.d.comb += self.level.eq(level)
        return m

    def _memory_fifo(self, m, out_valid, advance):
        if not (self.bank or output_registered(self.style, self.depth)):
            data, held = self._storage(m, out_valid, advance)
            m.d.comb += self.m.payload.eq(data)
            return held
        # The read latch is a stage of its own (`latch_valid`), emptied into the output register.
        latch_valid = Signal()
        data, held = self._storage(m, latch_valid, ~latch_valid | advance)
        with m.If(advance):
            m.d.sync += out_valid.eq(latch_valid)
        with m.If(advance & latch_valid):  # no copy of an empty latch (a wide word costs a simulator)
            m.d.sync += self.m.payload.eq(data)
        return held + out_valid

    def _storage(self, m, latch_valid, load):
        """The memory and its read latch, which holds a beat where `latch_valid` and is loaded
        where `load`. Returns the latched beat and the number of beats held, the latch's included."""
        words = self.memory.depth
        count = Signal(range(words + 1))  # beats in the memory
        # Registered flags rather than comparisons of the count: the ready and the read's enable
        # come from flip-flops, not from a count through two LUT levels into the adder beyond.
        stored, room = Signal(), Signal(init=1)
        produce, consume = Signal(range(words)), Signal(range(words))
        take = self.s.valid & room
        fetch = load & stored
        m.d.comb += self.s.ready.eq(room)
        # The latch is read only where a beat is fetched: with nothing stored it would copy a stale
        # word (as wide as the stream) every cycle the FIFO is empty, and its valid is low anyway.
        data = self._banks(m, produce, consume, take, fetch) if self.bank else self._memory(m, produce, consume, take, fetch)
        with m.If(load):
            m.d.sync += latch_valid.eq(stored)
        with m.If(take):
            m.d.sync += produce.eq(Mux(produce == words - 1, 0, produce + 1))
        with m.If(fetch):
            m.d.sync += consume.eq(Mux(consume == words - 1, 0, consume + 1))
        with m.If(take & ~fetch):
            m.d.sync += [count.eq(count + 1), stored.eq(1), room.eq(count != words - 1)]
        with m.Elif(fetch & ~take):
            m.d.sync += [count.eq(count - 1), stored.eq(count != 1), room.eq(1)]
        held = Signal(range(words + 3))
        m.d.comb += held.eq(count + latch_valid)
        return data, held

    def _memory(self, m, produce, consume, take, load):
        """One memory, read through its registered port (the latch)."""
        m.submodules.storage = storage = Memory(shape=unsigned(self.width), depth=self.memory.depth, init=[],
                                                attrs=verilog_attrs(self.style, self.memory))
        write, read = storage.write_port(), storage.read_port()
        m.d.comb += [write.addr.eq(produce), write.data.eq(self.s.payload), write.en.eq(take),
                     read.addr.eq(consume), read.en.eq(load)]
        return read.data

    def _banks(self, m, produce, consume, take, load):
        """Banks of `self.bank` words, each read into a latch of its own; the latch of the bank
        read is selected behind them."""
        words, bank = self.memory.depth, self.bank
        low = bank.bit_length() - 1
        latches = []
        for index, start in enumerate(range(0, words, bank)):
            storage = Memory(shape=unsigned(self.width), depth=min(bank, words - start), init=[],
                             attrs=verilog_attrs(self.style, self.memory))
            m.submodules[f"storage{index}"] = storage
            write, read = storage.write_port(), storage.read_port(domain="comb")
            latch = Signal(self.width, name=f"bank{index}_latch")
            m.d.comb += [write.addr.eq(produce[:low]), write.data.eq(self.s.payload),
                         write.en.eq(take & (produce[low:] == index)), read.addr.eq(consume[:low])]
            with m.If(load):
                m.d.sync += latch.eq(read.data)
            latches.append(latch)
        selected = Signal(range(len(latches)))
        with m.If(load):
            m.d.sync += selected.eq(consume[low:])
        data = Signal(self.width)
        m.d.comb += data.eq(Array(latches)[selected])
        return data

def output_registered(style: str, depth: int) -> bool:
    """Whether a FIFO of `depth` beats in memory style `style` has the output register behind its
    block RAM."""
    return style in BLOCK_STYLES and depth > 1


def fifo_bank_words(depth: int, memory, style: str, budget: StageBudget | None) -> int | None:
    """Words per bank of a LUT-RAM FIFO whose read does not fit `budget` (None: it does, or no
    budget was given)."""
    if budget is None or depth <= 1:
        return None
    return distributed_bank_words(memory, style, budget)
