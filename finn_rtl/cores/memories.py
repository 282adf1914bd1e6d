"""A layer's memories as its spec describes them (`LayerSpec.memories`), with the spec's memory
style as the Verilog attribute that Vivado and Yosys obey."""
from __future__ import annotations

import math

from amaranth import Array, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from ..graph.memory import MemoryShape, bram_geometry, verilog_attrs
from .pipelining import ROM_LEVEL_NS, StageBudget, lut_level_ns, mux_levels, rom_levels

# Distributed ROMs up to this depth are whole LUT truth tables (one LUT6 per bit column).
LUT_TABLE_DEPTH = 64


def rom_words(shape: MemoryShape, style: str, init) -> list[int]:
    """A ROM's contents as the core stores them. A distributed ROM of up to 64 words whose depth
    is not a power of two is filled up to one by repeating its words: the added words are never
    addressed, and a fully defined table is one LUT per bit column, where Yosys turns the
    undefined tail into flip-flop set/reset logic (measured on random 64-bit ROMs: 9 words 110
    LUTs as they are, 88 padded with zeros, 59 repeated; 18 words 93 vs 64; 36 words 76 vs 64).
    For Vivado a column of up to 64 words is one LUT6 function either way."""
    words = list(init) + [0] * (shape.depth - len(init))
    padded = 1 << (shape.depth - 1).bit_length()
    if style == "distributed" and shape.rom and padded != shape.depth and shape.depth <= LUT_TABLE_DEPTH:
        words = [words[i % shape.depth] for i in range(padded)]
    return words


def layer_memory(m, spec, name: str, init=()) -> Memory:
    """The memory `name` of `spec`, added to `m` under that name."""
    return add_memory(m, name, spec.memories()[name], spec.memory_style(name), init)


def add_memory(m, name: str, shape: MemoryShape, style: str, init=()) -> Memory:
    words = rom_words(shape, style, init) if shape.rom else list(init)
    memory = Memory(shape=unsigned(shape.width), depth=max(shape.depth, len(words)), init=words,
                    attrs=verilog_attrs(style, shape))
    m.submodules[name] = memory
    return memory


def distributed_bank_words(shape: MemoryShape, style: str, budget: StageBudget) -> int | None:
    """Words per bank of a distributed memory (a LUT ROM, or LUT RAM read asynchronously) whose
    read does not fit one stage of `budget`: the largest bank whose read fits (`rom_levels`);
    None where the whole memory's read fits (or banks would not help)."""
    if style != "distributed" or rom_levels(shape.depth) * ROM_LEVEL_NS <= budget.logic_ns:
        return None
    bank = 64
    while rom_levels(bank * 4) * ROM_LEVEL_NS <= budget.logic_ns:
        bank *= 4
    return bank if bank < shape.depth else None


def distributed_read_ns(depth: int, bank: int | None) -> float:
    """The slowest stage of a distributed memory's read (`pipelining`): the whole memory's, or
    with banks of `bank` words a bank's read and, a stage later, the multiplexer among them."""
    if bank is None:
        return rom_levels(depth) * ROM_LEVEL_NS
    return max(rom_levels(bank) * ROM_LEVEL_NS, lut_level_ns(mux_levels(-(-depth // bank))))


def walked_rom_register_bits(spec, name: str, count: int) -> int:
    """Flip-flops of `walked_rom` (a resource-estimate feature): the word, and the banks' words."""
    shape = spec.memories()[name]
    bank = distributed_bank_words(shape, spec.memory_style(name), spec.stage_budget)
    banks = 0 if bank is None else -(-min(count, shape.depth) // bank)
    return shape.width * (1 + banks)


def walked_rom(m, spec, name: str, words: list[int], count: int, advance) -> Signal:
    """The word of ROM `name` (contents `words`) for the current step of a walk through its
    addresses 0, 1, ..., count - 1, 0, ... that steps where `advance`. The word is a register,
    loaded as the walk steps with the next address's word, which a counter one step ahead reads:
    the ROM's read is a stage of its own, not in front of the logic the word feeds. Where a
    distributed ROM's read does not fit the spec's clock (`distributed_bank_words`), it is split into banks
    read two steps ahead, each bank's word registered, and the registered words multiplexed."""
    shape = spec.memories()[name]
    style = spec.memory_style(name)
    assert len(words) >= count >= 1, "a walk reads the ROM's words"
    bank = distributed_bank_words(shape, style, spec.stage_budget)
    word = Signal(shape.width, name=f"{name}_word", init=words[0])
    # one step ahead, or two through the banks' registers
    ahead = Signal(range(max(count, 2)), name=f"{name}_ahead", init=(1 if bank is None else 2) % count)
    with m.If(advance):
        m.d.sync += ahead.eq(Mux(ahead == count - 1, 0, ahead + 1))
    if bank is None:
        read = add_memory(m, name, shape, style, words).read_port(domain="comb")
        m.d.comb += read.addr.eq(ahead)
        with m.If(advance):
            m.d.sync += word.eq(read.data)
        return word
    low = (bank - 1).bit_length()
    next_index = 1 % count
    banks = -(-min(count, shape.depth) // bank)
    bank_shape = MemoryShape(bank, shape.width, rom=True, sync_read=False)
    bank_words = []
    for index in range(banks):
        contents = list(words[index * bank:(index + 1) * bank])
        read = add_memory(m, f"{name}_bank{index}", bank_shape, style, contents).read_port(domain="comb")
        held = Signal(shape.width, name=f"{name}_bank{index}_word",
                      init=contents[next_index % bank] if next_index % bank < len(contents) else 0)
        m.d.comb += read.addr.eq(ahead[:low])
        with m.If(advance):
            m.d.sync += held.eq(read.data)
        bank_words.append(held)
    which = Signal(range(max(banks, 2)), name=f"{name}_bank", init=next_index // bank)
    with m.If(advance):
        m.d.sync += [which.eq(ahead[low:]), word.eq(Array(bank_words)[which])]
    return word


def rom_banks(shape: MemoryShape, style: str) -> list[MemoryShape]:
    """A block-RAM ROM cut into the address blocks its primitives hold (`bram_geometry`: one
    primitive's depth each, the last holding the rest), where it spans several; else itself."""
    blocks = bram_geometry(shape)[2] if style == "block" else 1
    if blocks <= 1:
        return [shape]
    depth = 1 << math.ceil(math.log2(math.ceil(shape.depth / blocks)))
    return [MemoryShape(min(depth, shape.depth - start), shape.width, rom=True, writable=shape.writable)
            for start in range(0, shape.depth, depth)]


def banked_rom_read(m, spec, name: str, words: list[int], addr, en, memories: list | None = None) -> tuple[list, Signal]:
    """ROM `name`, which spans several address blocks of its block RAM, read synchronously (with
    `en`, at `addr`), one memory per block (`rom_banks`): the banks' read latches, and the bank
    `addr` selected, registered beside them. A caller that registers the latches before it selects
    among them keeps the read multiplexer off the block RAM's slow output (2.45 ns on 7-series).
    `memories`, if given, receives each bank as (memory, first word, words), for its writes."""
    shape, style = spec.memories()[name], spec.memory_style(name)
    banks = rom_banks(shape, style)
    assert len(banks) > 1, "a ROM of one address block is read as it is"
    depth = banks[0].depth
    low = depth.bit_length() - 1
    latches = []
    for index, bank in enumerate(banks):
        memory = add_memory(m, f"{name}_bank{index}", bank, style, words[index * depth:index * depth + bank.depth])
        if memories is not None:
            memories.append((memory, index * depth, bank.depth))
        read = memory.read_port()
        m.d.comb += [read.addr.eq(addr[:max(1, (bank.depth - 1).bit_length())]), read.en.eq(en)]
        latches.append(read.data)
    selected = Signal(range(len(banks)), name=f"{name}_bank")
    with m.If(en):
        m.d.sync += selected.eq(addr[low:])
    return latches, selected
