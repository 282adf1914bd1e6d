"""Where the memories written at run time (FINN's `runtime_writeable_weights`) sit in the
accelerator's weight address space, and what is written there.

The weight port takes 32-bit registers. Memory word `i` of a memory `width` bits wide is
`pieces = ceil(width / 32)` registers, least significant first, at registers
`base + i * stride + piece`, `stride` the pieces rounded up to a power of two; the word is
written into the memory with its last piece, so a word's pieces go lowest first. Each memory
spans a power-of-two window of registers, aligned to its size (largest windows first), so the
hardware finds a memory by comparing the high address bits with a constant. The register image
of a memory (`register_image`) is what the build writes and the driver copies there.

The words are the memory's words as its core stores them (`cores.weight_port.memory_words`);
this module only places and checks them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CompileError

REGISTER_BITS = 32


def _power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class WritableMemory:
    layer: str
    memory: str
    depth: int
    width: int
    base: int  # first register of the memory's window

    @property
    def pieces(self) -> int:
        return -(-self.width // REGISTER_BITS)

    @property
    def stride(self) -> int:
        return _power_of_two(self.pieces)

    @property
    def window(self) -> int:
        """Registers the memory's window spans (a power of two)."""
        return _power_of_two(self.depth * self.stride)

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.memory}"

    def register_image(self, words) -> np.ndarray:
        """The registers of the memory's window, [depth * stride] uint32 (unused pieces zero), from
        its `depth` words."""
        if len(words) != self.depth:
            raise CompileError(f"{self.key}: {len(words)} words for a memory of {self.depth}")
        image = np.zeros((self.depth, self.stride), dtype=np.uint32)
        for index, word in enumerate(words):
            word = int(word)
            if word < 0 or word >> self.width:
                raise CompileError(f"{self.key}: word {index} does not fit {self.width} bits")
            for piece in range(self.pieces):
                image[index, piece] = (word >> (REGISTER_BITS * piece)) & 0xFFFF_FFFF
        return image.reshape(-1)

    def describe(self) -> dict:
        return {"layer": self.layer, "memory": self.memory, "depth": self.depth, "width": self.width,
                "base_register": self.base, "pieces": self.pieces, "stride": self.stride, "window": self.window}


@dataclass(frozen=True)
class WeightMap:
    memories: tuple[WritableMemory, ...]

    @staticmethod
    def of(network) -> "WeightMap":
        found = [(layer.name, name, shape) for layer in network.layers
                 for name, shape in layer.writable_memories().items()]
        placed, base = [], 0
        # Largest windows first: each window then starts on a multiple of its size.
        for layer, name, shape in sorted(found, key=lambda f: -WritableMemory(f[0], f[1], f[2].depth, f[2].width, 0).window):
            memory = WritableMemory(layer, name, shape.depth, shape.width, base)
            placed.append(memory)
            base += memory.window
        return WeightMap(tuple(placed))

    def __bool__(self) -> bool:
        return bool(self.memories)

    @property
    def registers(self) -> int:
        return sum(memory.window for memory in self.memories)

    @property
    def address_bits(self) -> int:
        """Bits of a register index into the whole weight space."""
        return max(1, (self.registers - 1).bit_length())

    def of_layer(self, layer: str) -> list[WritableMemory]:
        return [memory for memory in self.memories if memory.layer == layer]

    def describe(self) -> list[dict]:
        return [memory.describe() for memory in self.memories]
