"""Dot products of low-precision vectors as weighted popcounts of bit-plane ANDs.

A vector of b-bit integers is held as b *bit planes*: plane ``a`` is the word of bit ``a`` of
every element. For two's complement the top plane counts negatively; a bipolar element
(bit 1 is +1, bit 0 is -1) is its bit plane minus the complemented plane. Then

    sum_i x_i * w_i = sum over plane pairs (p, q) of  +-2^(shift_p + shift_q) * popcount(X_p & W_q)

and the popcount terms are summed in two stages: full adders applied to three words at once
(sum = a^b^c, carry = majority, a carry-save stage that keeps the bit count) while a weight
has three or more words, then a population count (`popcount`) of each remaining word.

On an FPGA the first stage is one LUT6_2 per three bits with no carry chain, the second an
adder tree. In a cycle-based simulator a full adder on a 64-bit chunk is five word operations
and a 64-bit count about 24, instead of bit-level multiply-and-add steps per lane.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Signal, Value

from ..graph.datatypes import QType
from .arith import tree_sum
from .popcount import popcount

CHUNK = 64  # compressor word width: a machine word in the simulator, fine-grained for synthesis


@dataclass(frozen=True)
class BitPlane:
    bit: int  # which bit of the element code
    shift: int  # weight 2^shift
    negative: bool  # counts -2^shift (two's complement sign bit, bipolar's complement plane)
    complemented: bool  # the plane is ~bit (bipolar -1 elements)


def bit_planes(qtype: QType) -> list[BitPlane]:
    """Planes whose signed, weighted sum is the element value."""
    if qtype.bipolar:
        return [BitPlane(0, 0, False, False), BitPlane(0, 0, True, True)]
    top = qtype.bits - 1
    return [BitPlane(a, a, qtype.signed and a == top, False) for a in range(qtype.bits)]


def planar(word: Value, width: int, count: int) -> Value:
    """Re-pack `count` packed elements of `width` bits (element 0 in the LSBs) as `width` planes
    of `count` bits, plane 0 first. Pure wiring in hardware."""
    return Cat(*(word[i * width + a] for a in range(width) for i in range(count)))


def pack_planes(codes: np.ndarray, width: int) -> int:
    """Integer codes [rows, count] (unsigned) packed row after row, each row as `width` planes."""
    codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), -1)
    # bits[row, plane, element], flattened in that order: element 0 of plane 0 of row 0 is the LSB
    bits = ((codes[:, None, :] >> np.arange(width)[None, :, None]) & 1).astype(np.uint8)
    return int.from_bytes(np.packbits(bits.reshape(-1), bitorder="little").tobytes(), "little")


def chunks(word: Value) -> list[Value]:
    return [word[i:i + CHUNK] for i in range(0, len(word), CHUNK)]


def weighted_popcount(m, terms: list[tuple[int, Value]], name: str, platform=None) -> Value:
    """Unsigned sum of ``2^shift * popcount(word)`` over `terms`.

    While a column (weight) holds three or more words, full adders on whole words (sum = xor,
    carry = majority, to the next column) reduce it: one LUT6_2 per three bits in hardware,
    five word operations in a simulator. Each column's last one or two words are counted by
    `popcount` (an adder tree), and the shifted counts are added.
    """
    columns: dict[int, list[Value]] = defaultdict(list)
    for shift, word in terms:
        columns[shift].append(word)
    counts = []
    serial = 0
    shift = 0
    while any(columns[k] for k in list(columns) if k >= shift):
        words = sorted(columns.pop(shift, []), key=len, reverse=True)
        while len(words) >= 3:
            a, b, c = words.pop(0), words.pop(0), words.pop(0)
            total = Signal(len(a), name=f"{name}_s{shift}_{serial}")
            # A carry needs two ones, so it is no wider than the second widest word.
            carry = Signal(len(b), name=f"{name}_c{shift}_{serial}")
            serial += 1
            m.d.comb += [total.eq(a ^ b ^ c), carry.eq(((a & b) | (c & (a ^ b)))[:len(b)])]
            columns[shift + 1].append(carry)
            words = sorted(words + [total], key=len, reverse=True)
        for word in words:
            count = popcount(m, word, platform, f"{name}_pc{shift}_{len(counts)}")
            counts.append(count << shift if shift else count)
        shift += 1
    return tree_sum(counts, m, name)


def dot_product(m, x_planes: list[Value], w_planes: list[Value], x_type: QType, w_type: QType,
                name: str, platform=None) -> Value:
    """Signed dot product of two vectors given as bit planes (`bit_planes` order for each type).

    A negative term is counted by its complement, ``-popcount(t) = popcount(~t) - len(t)``, so that
    one compressor sums every term and a constant corrects the total."""
    terms, offset = [], 0
    for px in bit_planes(x_type):
        for pw in bit_planes(w_type):
            negative = px.negative != pw.negative
            for xc, wc in zip(chunks(x_planes[px.bit]), chunks(w_planes[pw.bit])):
                xc = ~xc if px.complemented else xc
                wc = ~wc if pw.complemented else wc
                term = Signal(max(len(xc), len(wc)), name=f"{name}_x{px.bit}{int(px.complemented)}"
                              f"_w{pw.bit}{int(pw.complemented)}_{len(terms)}")
                m.d.comb += term.eq(~(xc & wc) if negative else xc & wc)
                terms.append((px.shift + pw.shift, term))
                offset += len(term) << (px.shift + pw.shift) if negative else 0
    total = weighted_popcount(m, terms, name, platform)
    return total - offset if offset else total


def agreement_count(m, x_plane: Value, w_plane: Value, name: str, platform=None) -> Value:
    """Number of equal bits of two words (the XNOR-popcount of bipolar vectors)."""
    return weighted_popcount(m, [(0, ~(xc ^ wc)) for xc, wc in zip(chunks(x_plane), chunks(w_plane))], name,
                             platform)
