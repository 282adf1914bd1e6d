"""Memory contents into RTLIL as one constant string, not bit by bit.

Amaranth 0.5's RTLIL backend writes a memory's initial contents as a signal of one constant net
object per bit (`ModuleEmitter.emit_memory`). MobileNet-v1's weights and thresholds are 24 M
bits: 58% of the time to Verilog went there (cProfile, 206 s of 352 with another job running:
24 M `Net.from_const` calls). The same `$meminit_v2` cell with its DATA as one binary constant,
formatted word by word, is the same RTLIL text (`tests/cores/test_fast_meminit.py` compares both
on every memory style and shape) in a fraction of the time.

`installed()` puts it in place for the Amaranth version it was written against, and leaves the
backend alone for any other.

Within `DeferredContents()`, a large memory's contents (`DEFER_BITS`) are not in the RTLIL at
all: Yosys's passes carried the constants through every pass (on MobileNet-v1 at FINN's U250
folding, 23.5 M bits: 15 of 40 s of Yosys), so they are written into Yosys's Verilog afterwards,
in the text Yosys itself writes (`tests/cores/test_fast_meminit.py` compares the two).
"""
from __future__ import annotations

import amaranth
from amaranth.back import rtlil
from amaranth.hdl import _nir

SUPPORTED = ("0.5.",)
DEFER_BITS = 1 << 16
_original = rtlil.ModuleEmitter.emit_memory
_deferring: list = []  # the DeferredContents being collected into, innermost last


def _emit_memory(self, cell_idx, cell):
    memory_info = self.memories[cell_idx]
    width, depth = cell.width, cell.depth
    rows = list(cell.init)
    if len(rows) != depth or not width:
        return _original(self, cell_idx, cell)
    if _deferring and width * depth >= DEFER_BITS:
        _deferring[-1].contents[(self.builder.name, memory_info.memid)] = (width, rows)
        return
    mask = (1 << width) - 1
    # The backend's constant: bit i of the concatenation (word 0 in the low bits) last, so the
    # string is the last word's bits, most significant first, down to the first word's.
    data = f"{width * depth}'" + "".join(f"{int(row) & mask:0{width}b}" for row in reversed(rows))
    self.builder.cell("$meminit_v2", ports={
        "ADDR": self.sigspec(),
        "DATA": data,
        "EN": self.sigspec(_nir.Value.ones(width)),
    }, parameters={
        "MEMID": memory_info.memid,
        "ABITS": 0,
        "WIDTH": width,
        "WORDS": depth,
        "PRIORITY": 0,
    }, src_loc=cell.src_loc)


class DeferredContents:
    """`with` it, the large memories' contents of the RTLIL converted are kept here instead;
    `into(verilog)` writes them into Yosys's Verilog of that RTLIL."""

    def __init__(self):
        self.contents: dict[tuple[str, str], tuple[int, list]] = {}  # (module, memory id) -> (width, rows)

    def __enter__(self):
        _deferring.append(self)
        return self

    def __exit__(self, *exc):
        _deferring.remove(self)

    def into(self, verilog: str) -> str:
        """`verilog` with an `initial` block after each deferred memory's declaration."""
        if not self.contents:
            return verilog
        by_module: dict[str, dict] = {}
        for (module, memid), content in self.contents.items():
            by_module.setdefault(module, {})[memid] = content
        chunks = verilog.split("\nmodule ")
        for index, chunk in enumerate(chunks[1:], start=1):
            memories = by_module.pop(_verilog_name(chunk), None)
            if memories:
                chunks[index] = _with_initial_blocks(chunk, memories)
        if by_module:
            raise RuntimeError(f"memories of {', '.join(sorted(by_module))} not found in Yosys's Verilog")
        return "\nmodule ".join(chunks)


def _verilog_name(chunk: str) -> str:
    """The RTLIL name of the module whose declaration starts `chunk` (after `module `)."""
    return chunk[1:chunk.index(" ")] if chunk.startswith("\\") else chunk[:chunk.index("(")]


def _identifier(memid: str) -> str:
    """A memory id as Yosys's `write_verilog -norename` writes it."""
    name = memid[1:] if memid.startswith("\\") else memid
    return name if name.isidentifier() and memid.startswith("\\") else f"\\{name} "


def _constant(value: int, width: int) -> str:
    """A fully defined constant as Yosys's Verilog backend writes it (`dump_const`)."""
    return f"32'd{value}" if width == 32 else f"{width}'h{value:0{-(-width // 4)}x}"


def _with_initial_blocks(chunk: str, memories: dict) -> str:
    declarations = {f"  reg [{width - 1}:0] {_identifier(memid)} [{len(rows) - 1}:0];": memid
                    for memid, (width, rows) in memories.items()}
    out = []
    for line in chunk.split("\n"):
        out.append(line)
        memid = declarations.pop(line, None)
        if memid is not None:
            width, rows = memories[memid]
            mask, name = (1 << width) - 1, _identifier(memid)
            out += ["  initial begin", *(f"    {name}[{i}] = {_constant(int(row) & mask, width)};"
                                         for i, row in enumerate(rows)), "  end"]
    if declarations:
        raise RuntimeError(f"memories {', '.join(declarations.values())} not declared in Yosys's Verilog")
    return "\n".join(out)


def installed() -> bool:
    """Use the fast emitter where this Amaranth is the one it matches; True if it is in place."""
    if not amaranth.__version__.startswith(SUPPORTED):
        return False
    rtlil.ModuleEmitter.emit_memory = _emit_memory
    return True


def original():
    """The backend as Amaranth ships it (for the equivalence test)."""
    rtlil.ModuleEmitter.emit_memory = _original
