"""Memory contents into RTLIL as one constant string, not bit by bit.

Amaranth 0.5's RTLIL backend writes a memory's initial contents as a signal of one constant net
object per bit (`ModuleEmitter.emit_memory`). MobileNet-v1's weights and thresholds are 24 M
bits: 58% of the time to Verilog went there (cProfile, 206 s of 352 with another job running:
24 M `Net.from_const` calls). The same `$meminit_v2` cell with its DATA as one binary constant,
formatted word by word, is the same RTLIL text (`tests/cores/test_fast_meminit.py` compares both
on every memory style and shape) in a fraction of the time.

`installed()` puts it in place for the Amaranth version it was written against, and leaves the
backend alone for any other.
"""
from __future__ import annotations

import amaranth
from amaranth.back import rtlil
from amaranth.hdl import _nir

SUPPORTED = ("0.5.",)
_original = rtlil.ModuleEmitter.emit_memory


def _emit_memory(self, cell_idx, cell):
    memory_info = self.memories[cell_idx]
    width, depth = cell.width, cell.depth
    rows = list(cell.init)
    if len(rows) != depth or not width:
        return _original(self, cell_idx, cell)
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


def installed() -> bool:
    """Use the fast emitter where this Amaranth is the one it matches; True if it is in place."""
    if not amaranth.__version__.startswith(SUPPORTED):
        return False
    rtlil.ModuleEmitter.emit_memory = _emit_memory
    return True


def original():
    """The backend as Amaranth ships it (for the equivalence test)."""
    rtlil.ModuleEmitter.emit_memory = _original
