"""Integer element types that travel on the accelerator's streams.

Wire encoding (documented once, used by cores, stitching and host packing):
  * ``int``: two's complement (signed) or plain binary (unsigned) in ``bits`` bits;
  * ``bipolar``: one bit, 1 encodes +1 and 0 encodes -1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QType:
    bits: int
    signed: bool
    bipolar: bool = False

    def __post_init__(self):
        if self.bipolar and (self.bits != 1 or not self.signed):
            raise ValueError("a bipolar type is 1 bit and signed")
        if self.bits < 1:
            raise ValueError(f"bit width must be at least 1, got {self.bits}")

    @staticmethod
    def bipolar_type() -> "QType":
        return QType(1, True, True)

    @staticmethod
    def int_type(bits: int, signed: bool) -> "QType":
        return QType(bits, signed)

    @staticmethod
    def for_range(lo: int, hi: int) -> "QType":
        """Smallest integer type holding every value in [lo, hi]."""
        lo, hi = int(lo), int(hi)
        if lo >= 0:
            return QType(max(1, int(hi).bit_length()), False)
        bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
        return QType(bits, True)

    @property
    def min(self) -> int:
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def values(self) -> np.ndarray:
        """Every value of the type, ascending."""
        return np.array([-1, 1]) if self.bipolar else np.arange(self.min, self.max + 1)

    def contains(self, values) -> bool:
        values = np.asarray(values)
        if self.bipolar:
            return bool(np.all((values == 1) | (values == -1)))
        return bool(np.all((values >= self.min) & (values <= self.max)))

    def encode(self, values) -> np.ndarray:
        """Integers -> unsigned wire codes (uint64)."""
        values = np.asarray(values, dtype=np.int64)
        if not self.contains(values):
            raise ValueError(f"values outside {self}: [{values.min()}, {values.max()}]")
        if self.bipolar:
            return (values > 0).astype(np.uint64)
        return (values & ((1 << self.bits) - 1)).astype(np.uint64)

    def decode(self, codes) -> np.ndarray:
        """Unsigned wire codes -> integers (int64)."""
        codes = np.asarray(codes, dtype=np.int64) & ((1 << self.bits) - 1)
        if self.bipolar:
            return np.where(codes == 1, 1, -1).astype(np.int64)
        if self.signed:
            return np.where(codes >= (1 << (self.bits - 1)), codes - (1 << self.bits), codes)
        return codes

    def __str__(self) -> str:
        if self.bipolar:
            return "BIPOLAR"
        return f"{'INT' if self.signed else 'UINT'}{self.bits}"
