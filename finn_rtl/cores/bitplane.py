"""Dot products of low-precision vectors as weighted popcounts of bit-plane ANDs.

A vector of b-bit integers is held as b *bit planes*: plane ``a`` is the word of bit ``a`` of
every element. For two's complement the top plane counts negatively; a bipolar element
(bit 1 is +1, bit 0 is -1) is its bit plane minus the complemented plane. Then

    sum_i x_i * w_i = sum over plane pairs (p, q) of  +-2^(shift_p + shift_q) * popcount(X_p & W_q)

and one weighted population count (`popcount.weighted_popcount`, an adder tree over bit
fields) sums every term of a dot product. In a cycle-based simulator that is a few word
operations per 64 lanes, instead of bit-level multiply-and-add steps per lane.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Signal, Value

from ..graph.datatypes import QType
from .popcount import weighted_popcount

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


def plane_bit(code: Value, plane: BitPlane) -> Value:
    """The bit of element `code` that `plane` weighs."""
    return ~code[plane.bit] if plane.complemented else code[plane.bit]


def add_plane(total, partial: Value, plane: BitPlane):
    """`total` plus `partial` (already shifted) with the plane's sign."""
    return total - partial if plane.negative else total + partial


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


def popcount_terms(lanes: int, x_type: QType, w_type: QType, agreement: bool = False,
                   weight_codes: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
    """(shift, live bits) of the words whose weighted popcount `dot_product` (or, with
    `agreement`, `agreement_count`) takes for vectors of `lanes` elements: what the resource
    estimate counts. With `weight_codes` ([row, lane] codes of every row one PE reads), a lane
    whose weight plane is 0 in every row is a constant 0 bit of its words."""
    starts = range(0, lanes, CHUNK)
    if agreement:
        return [(0, np.ones(min(CHUNK, lanes - start), dtype=bool)) for start in starts]
    terms = []
    for pw in bit_planes(w_type):
        if weight_codes is None:
            live = np.ones(lanes, dtype=bool)
        else:
            bits = (np.asarray(weight_codes) >> pw.bit) & 1
            live = (bits == 0 if pw.complemented else bits == 1).any(axis=0)
        terms += [(px.shift + pw.shift, live[start:start + CHUNK]) for px in bit_planes(x_type) for start in starts]
    return terms


def dot_product_terms(m, x_planes: list[Value], w_planes: list[Value], x_type: QType, w_type: QType,
                      name: str) -> tuple[list[tuple[int, Value]], int]:
    """The words whose weighted popcount, less the returned offset, is the signed dot product of
    two vectors given as bit planes (`bit_planes` order for each type).

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
    return terms, offset


def agreement_terms(x_plane: Value, w_plane: Value) -> list[tuple[int, Value]]:
    """The words whose popcount is the number of equal bits of two words (the XNOR-popcount of
    bipolar vectors)."""
    return [(0, ~(xc ^ wc)) for xc, wc in zip(chunks(x_plane), chunks(w_plane))]


def dot_product(m, x_planes: list[Value], w_planes: list[Value], x_type: QType, w_type: QType,
                name: str, platform=None, enable: Value | None = None) -> Value:
    """Signed dot product of two vectors given as bit planes (`dot_product_terms`)."""
    terms, offset = dot_product_terms(m, x_planes, w_planes, x_type, w_type, name)
    total = weighted_popcount(m, terms, platform, name, enable)
    return total - offset if offset else total


def agreement_count(m, x_plane: Value, w_plane: Value, name: str, platform=None,
                    enable: Value | None = None) -> Value:
    """Number of equal bits of two words (the XNOR-popcount of bipolar vectors)."""
    return weighted_popcount(m, agreement_terms(x_plane, w_plane), platform, name, enable)
