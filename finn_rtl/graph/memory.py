"""Memories of a layer and where they go: block RAM, LUTs ("distributed") or flip-flops.

Every core memory (weight and threshold ROMs, line and partial-sum buffers, FIFOs) has a
`MemoryShape` from its spec, and a style: chosen here by cost unless the folding file sets one
(FINN's `ram_style` / `ram_style_thresholds`). The style becomes the Verilog attribute
`rom_style`/`ram_style` on the memory, which Vivado and Yosys both obey, and the report says
which was used. A distributed ROM is LUT logic (Vivado's `rom_style="distributed"`); a
distributed RAM is LUT RAM.

The automatic choice compares what the styles take of a device: block RAMs counted as
Yosys's 7-series mapping places them (`bram_primitives`), LUTs from a fit to Yosys on random
contents (`distributed_luts`), exchanged at the device's LUTs per BRAM18 (the xc7z020 of a
Pynq-Z1 unless a board says otherwise), and on UltraScale+ devices that have them, UltraRAMs
(`uram_primitives`) at the device's LUTs per URAM288.

UltraRAM ("ultra", FINN's `ram_style: ultra`) holds 4096 x 72 bits per URAM288, read through a
register like block RAM. A bitstream cannot give it initial contents (UG573), so a ROM may be
UltraRAM only where its words are loaded at run time (a `writable` memory: a layer with
`runtime_writeable_weights`); RAMs (FIFOs, buffers) need no contents.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CompileError

STYLES = ("block", "distributed", "registers", "ultra")
# Styles whose memories are block RAM primitives, read through the primitive's output latch.
BLOCK_STYLES = ("block", "ultra")
URAM_DEPTH, URAM_WIDTH = 4096, 72  # a URAM288; deeper memories cascade them (no LUTs)
# xc7z020 (Pynq-Z1, Pynq-Z2): 53,200 LUTs and 140 BRAM36 = 280 BRAM18.
DEFAULT_LUTS_PER_BRAM18 = 53200 / 280
REGISTER_MAX_DEPTH = 2  # a RAM this shallow is a couple of registers, not a LUT RAM


class MemoryStyleError(CompileError):
    pass


@dataclass(frozen=True)
class MemoryShape:
    """One memory as the core instantiates it: `depth` words of `width` bits. A ROM has initial
    contents and no write port; `sync_read` memories have a registered read port (block RAM
    needs one); a `single_port` RAM reads and writes the same address (a buffer revisited in
    place), which LUT RAM stores at twice the density of one with two addresses."""

    depth: int
    width: int
    rom: bool = False
    sync_read: bool = True
    single_port: bool = False
    writable: bool = False  # a ROM whose words are also written at run time

    @property
    def bits(self) -> int:
        return self.depth * self.width

    def allowed_styles(self) -> tuple[str, ...]:
        if self.rom:
            if not self.sync_read:
                return ("distributed",)
            return ("block", "distributed", "ultra") if self.writable else ("block", "distributed")
        return STYLES if self.sync_read else ("distributed", "registers")


# Yosys's 7-series block RAM library (techlibs/xilinx/brams_xc4v.txt): a RAMB18 ("HALF") holds
# 2^14 addresses of its narrowest width, a RAMB36 ("FULL") 2^15, at the widths below (9/18/36/72
# with parity bits, 72 only in simple dual-port mode), at the cost memory_libmap minimises.
_BRAM_MODES = (("BRAM18", 14, (1, 2, 4, 9, 18, 36), 129), ("BRAM36", 15, (1, 2, 4, 9, 18, 36, 72), 257))
_BRAM_BYTE = 9  # write-enable granularity: a written word is padded to whole bytes
_MUX_COST = _DEMUX_COST = 0.5  # per output bit and input of the multiplexers between primitives


def _geometry_cost(cost: float, widthscale: float, count: int, blocks: int, unit: int, shape: "MemoryShape") -> float:
    """memory_libmap's cost of one geometry (handle_geom): `count` primitives of `unit` bits
    holding `blocks` address ranges, with a read multiplexer between the blocks, and for a RAM a
    write demultiplexer."""
    total = (cost - widthscale) * count + widthscale * blocks * shape.width / unit
    total += _MUX_COST * (blocks - 1) * shape.width
    return total + (_DEMUX_COST * blocks if not shape.rom and blocks > 1 else 0)


def bram_primitives(shape: MemoryShape) -> dict[str, int]:
    """RAMB18/RAMB36 count of a memory in block RAM, as Yosys's memory_libmap places it
    (passes/memory/memory_libmap.cc, handle_geom): for each primitive and width, the memory's
    address range is cut into `blocks` of the primitive's depth and the blocks' words are laid
    side by side across primitives (a 32-bit word in 36-bit primitives leaves room for parts of
    other blocks' words); the cost is the primitives' plus a read multiplexer (and a write
    demultiplexer) between the blocks, and the cheapest geometry wins."""
    name, count, _ = bram_geometry(shape)
    counts = {"BRAM18": 0, "BRAM36": 0}
    counts[name] = count
    return counts


def bram_geometry(shape: MemoryShape) -> tuple[str, int, int]:
    """(primitive, count, address blocks) of `bram_primitives`' choice; with more than one block
    every read bit is a multiplexer of the blocks, in LUTs."""
    best = None
    for name, abits, widths, cost in _BRAM_MODES:
        for index, unit in enumerate(widths):
            blocks = math.ceil(shape.depth / (1 << (abits - index)))
            byte = 1 if shape.rom else min(_BRAM_BYTE, unit)
            padded = math.ceil(shape.width / byte) * byte
            count = math.ceil(blocks * padded / unit)
            total = _geometry_cost(cost, 0, count, blocks, unit, shape)
            if best is None or total < best[0]:
                best = (total, name, count, blocks)
    return best[1:]


def bram18_equivalent(shape: MemoryShape) -> int:
    counts = bram_primitives(shape)
    return counts["BRAM18"] + 2 * counts["BRAM36"]


def _varying(fields) -> np.ndarray:
    """The bit columns [column, word] of a ROM that vary over its words; `fields` are (codes,
    bits) pairs: word i holds the unsigned `bits`-bit codes[i, :] of each."""
    columns = np.concatenate([((np.asarray(codes, dtype=np.int64)[:, :, None] >> np.arange(bits)) & 1)
                              .reshape(len(codes), -1).T for codes, bits in fields])
    return columns[columns.min(axis=1) != columns.max(axis=1)]


def live_columns(*fields) -> int:
    """Bit columns of a ROM that a LUT mapping must build: columns constant over all words are
    wires, and equal columns are built once (synthesis drops the first, shares the second)."""
    varying = _varying(fields)
    return len(np.unique(varying, axis=0)) if len(varying) else 0


def varying_columns(*fields) -> int:
    """Bit columns of a ROM that a block RAM must hold: Yosys drops the constant ones (opt_mem)
    but keeps equal ones (measured: a 4096 x 16 ROM with 8 constant columns takes one RAMB36,
    with 8 columns repeating the other 8 two)."""
    return len(_varying(fields))


def fifo_memory(width: int, depth: int) -> MemoryShape:
    """The storage of a `depth`-beat stream FIFO: one beat waits in its output register."""
    return MemoryShape(max(1, depth - 1), width)


# Yosys's 7-series LUT RAM library (techlibs/xilinx/lutrams_xc5v.txt and its map file): per kind
# (cost, widthscale, options), each option (address bits, width per primitive, LUTs per primitive
# or per bit used). SP needs the read and write address to be one; the others take two.
_LUTRAM_KINDS = {
    "SP": (8, 8, ((5, 8, 4, False), (6, 4, 1, True), (7, 2, 2, True), (8, 1, 4, True))),  # RAM32M, RAMnX1S
    "DP": (8, 8, ((5, 4, 4, False), (6, 2, 2, True), (7, 1, 4, True))),  # RAM32M, RAM64X1D, RAM128X1D
    "QP": (7, 7, ((5, 2, 4, False), (6, 1, 4, False))),  # RAM32M, RAM64M
    "SDP": (8, 7, ((5, 6, 4, False), (6, 3, 4, False))),  # RAM32M, RAM64M
}


def mux_luts(inputs: int) -> int:
    """LUT6s of an `inputs`:1 multiplexer of one bit, as Yosys builds it from LUTs alone (no
    MUXF7/F8): each LUT6 is a 4:1 mux, taking three inputs off the tree. Measured on LUT-RAM
    FIFOs, per read bit: 2 and 4 banks of 64 words 1 LUT, 8 banks 3, 16 banks 4.75."""
    return math.ceil((inputs - 1) / 3)


def lutram_geometry(shape: MemoryShape) -> tuple[int, int]:
    """(LUTs in LUT RAM primitives, address blocks), as Yosys's memory_libmap places a RAM (the
    cost search of `bram_geometry` over `_LUTRAM_KINDS`): a word padded to whole primitives per
    block of 2^abits words; RAM32M/RAM64M take 4 LUTs whatever bits they hold, RAMnX1S/D one
    primitive per bit used. The blocks are read through a LUT multiplexer (`mux_luts`); the
    search may pick more, shallower blocks (a 144-word RAM: five blocks of RAM32M, not three of
    RAM64M)."""
    best = None
    for kind, (cost, widthscale, options) in _LUTRAM_KINDS.items():
        if kind == "SP" and not shape.single_port:
            continue
        for abits, unit, luts, per_bit in options:
            blocks = math.ceil(shape.depth / (1 << abits))
            count = blocks * math.ceil(shape.width / unit)
            total = _geometry_cost(cost, widthscale, count, blocks, unit, shape)
            used = blocks * shape.width * luts if per_bit else count * luts
            if best is None or total < best[0]:
                best = (total, used, blocks)
    return best[1:]


def lutram_luts(shape: MemoryShape) -> int:
    return lutram_geometry(shape)[0]


def distributed_luts(shape: MemoryShape) -> float:
    """LUTs of a memory in LUTs (fitted to Yosys synth_xilinx on random contents, 64-bit words):
    a ROM costs a LUT per bit up to 64 words and about one per 36 words per bit beyond (the
    LUT multiplexers of deep ROMs); a LUT RAM its primitives and the multiplexer of their
    address blocks (`lutram_geometry`)."""
    depth, width = shape.depth, shape.width
    if shape.rom:
        if depth <= 2:
            return 0.0
        return width * (min(1.0, depth / 16) if depth <= 64 else depth / 36)
    luts, blocks = lutram_geometry(shape)
    return luts + width * mux_luts(blocks)


def uram_primitives(shape: MemoryShape) -> int:
    """URAM288s of a memory in UltraRAM: columns of 72 bits, each a cascade of 4096-word URAMs."""
    return math.ceil(shape.depth / URAM_DEPTH) * math.ceil(shape.width / URAM_WIDTH)


def auto_style(shape: MemoryShape, luts_per_bram18: float = DEFAULT_LUTS_PER_BRAM18,
               luts_per_uram: float | None = None) -> str:
    """The style that takes the smallest share of the device; UltraRAM only where the device has
    it (`luts_per_uram` given)."""
    if not shape.rom and shape.depth <= REGISTER_MAX_DEPTH:
        return "registers"
    allowed = shape.allowed_styles()
    if "block" not in allowed:
        return "distributed"
    costs = {"distributed": distributed_luts(shape), "block": bram18_equivalent(shape) * luts_per_bram18}
    if luts_per_uram and "ultra" in allowed:
        costs["ultra"] = uram_primitives(shape) * luts_per_uram
    return min(costs, key=lambda style: (costs[style], style != "block"))


def check_style(style: str, shape: MemoryShape, where: str) -> str:
    """A style asked for in a folding file; 'auto' is no choice (returns None)."""
    if style == "auto":
        return None
    if style == "ultra" and shape.rom and not shape.writable:
        raise MemoryStyleError(f"{where}: ram_style 'ultra' needs its words loaded at run time (UltraRAM "
                               f"has no initial contents): set runtime_writeable_weights: 1, or use block")
    if style not in STYLES:
        raise MemoryStyleError(f"{where}: unknown ram_style {style!r}; use auto, {', '.join(STYLES)}")
    allowed = shape.allowed_styles()
    if style not in allowed:
        why = "a ROM" if shape.rom and style == "registers" else "read asynchronously"
        raise MemoryStyleError(f"{where} is {why}, so it cannot be {style}; use {' or '.join(allowed)}")
    return style


def verilog_attrs(style: str, shape: MemoryShape) -> dict[str, str]:
    """A written memory is a RAM to Vivado (`ram_style`), even one whose words are also its initial contents."""
    return {("rom_style" if shape.rom and not shape.writable else "ram_style"): style}
