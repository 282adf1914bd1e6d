"""Layer specs where streams fork and meet: Duplicate, Add, Concat.

A tensor with two consumers becomes a `DuplicateSpec` (one stream in, one per consumer out);
a residual `Add` of two quantized tensors an `AddSpec` (integer sum with exact scale factors,
then the activation's thresholds); a channel `Concat` a `ConcatSpec`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import gcd
from typing import Optional

import numpy as np

from .datatypes import QType
from .specs import (Layer, PixelStream, apply_thresholds, check_channel_simd, compared_type, frozen_channel_sign,
                    frozen_thresholds)


@dataclass(frozen=True, eq=False)
class DuplicateSpec(PixelStream):
    """One stream to `outputs` consumers, each taking every element at its own pace (an eager
    fork: a beat leaves once every consumer has taken it). Its lanes follow its producer."""

    lanes_follow = "producer"
    lane_key = "SIMD"
    fold_dims = {}
    REPORTED = ("channels", "pixels", "outputs", "simd")

    name: str
    channels: int  # elements per pixel (a flat vector: all its elements, pixels 1)
    pixels: int
    dtype: QType
    outputs: int = 2
    simd: int = 1

    def __post_init__(self):
        if self.outputs < 2:
            raise ValueError(f"{self.name}: a duplicate needs at least two outputs")
        check_channel_simd(self.name, self.channels, self.simd)

    input_type = property(lambda self: self.dtype)
    output_type = property(lambda self: self.dtype)

    @property
    def fifo_unit(self) -> int:
        return 2 * self.simd

    def with_lanes(self, simd: int) -> "DuplicateSpec":
        """The largest lane count up to `simd` that divides a pixel's elements."""
        simd = max(d for d in range(1, min(simd, self.channels) + 1) if self.channels % d == 0)
        return dataclasses.replace(self, simd=simd)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class AddSpec(PixelStream):
    """Element-wise sum of two streams of the same shape, ``factors[0] * a + factors[1] * b``
    (integer factors align the two inputs' scales exactly), optionally multi-thresholded like
    an MVTU's accumulator: ``out_base + count(sign[c] * sum >= thresholds[c])``."""

    inputs = 2
    REPORTED = ("channels", "pixels", "factors", "pe")

    name: str
    channels: int
    pixels: int
    input_types: tuple
    factors: tuple
    thresholds: Optional[np.ndarray] = None
    output_type: Optional[QType] = None
    out_base: int = 0
    channel_sign: Optional[np.ndarray] = None
    pe: int = 1

    def __post_init__(self):
        object.__setattr__(self, "input_types", tuple(self.input_types))
        object.__setattr__(self, "factors", tuple(int(f) for f in self.factors))
        if len(self.input_types) != 2 or len(self.factors) != 2 or min(self.factors) < 1:
            raise ValueError(f"{self.name}: an add takes two inputs with positive integer factors")
        object.__setattr__(self, "channel_sign", frozen_channel_sign(self.channel_sign))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", frozen_thresholds(self.name, self.thresholds, self.channels))
            if self.output_type is None:
                raise ValueError(f"{self.name}: a thresholded add needs an output type")
        else:
            if self.channel_sign is not None:
                raise ValueError(f"{self.name}: channel_sign only applies to thresholded adds")
            object.__setattr__(self, "output_type", QType.for_range(*self.sum_range))
        check_channel_simd(self.name, self.channels, self.pe, "PE")

    def port_type(self, port: int) -> QType:
        return self.input_types[port]

    @property
    def input_type(self) -> QType:
        return self.input_types[0]

    simd = property(lambda self: self.pe)

    @property
    def sum_range(self) -> tuple[int, int]:
        lo = sum(f * t.min for f, t in zip(self.factors, self.input_types))
        hi = sum(f * t.max for f, t in zip(self.factors, self.input_types))
        return lo, hi

    @property
    def value_type(self) -> QType:
        """The compared value: the sum, or its negation on decreasing channels."""
        return compared_type(*self.sum_range, self.channel_sign, self.thresholds)

    def memories(self):
        return self.threshold_memory(self.value_type.bits, self.pe)

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        n = len(a)
        total = sum(f * np.asarray(x, dtype=np.int64).reshape(n, self.pixels, self.channels)
                    for f, x in zip(self.factors, (a, b)))
        if self.thresholds is not None:
            total = apply_thresholds(total, self.thresholds, self.channel_sign, self.output_type, self.out_base)
        return total.reshape(n, -1)


@dataclass(frozen=True, eq=False)
class ConcatSpec(Layer):
    """Channel concatenation of image streams: per pixel, the channels of input 0, then of
    input 1, ...; ``simd`` channels per beat on every port (it must divide each input's
    channels). Elements are re-encoded to the output type where an input's type is narrower."""

    REPORTED = ("channels", "pixels", "simd")

    name: str
    channels: tuple
    pixels: int
    input_types: tuple
    output_type: QType
    simd: int = 1

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "input_types", tuple(self.input_types))
        if len(self.channels) < 2 or len(self.input_types) != len(self.channels):
            raise ValueError(f"{self.name}: a concat needs two or more inputs, each with a type")
        for qtype in self.input_types:
            if qtype.bipolar != self.output_type.bipolar or not self.output_type.contains([qtype.min, qtype.max]):
                raise ValueError(f"{self.name}: input type {qtype} does not fit the output {self.output_type}")
        self.check_simd(self.simd)

    def check_simd(self, simd: int) -> None:
        for channels in self.channels:
            check_channel_simd(self.name, channels, simd)

    @property
    def inputs(self) -> int:
        return len(self.channels)

    def port_type(self, port: int) -> QType:
        return self.input_types[port]

    def port_elements(self, port: int) -> int:
        return self.pixels * self.channels[port]

    input_type = property(lambda self: self.input_types[0])
    in_lanes = property(lambda self: self.simd)
    out_lanes = property(lambda self: self.simd)

    @property
    def in_elements(self) -> int:
        return self.pixels * sum(self.channels)

    out_elements = in_elements

    @property
    def cycles_per_frame(self) -> int:
        return self.out_elements // self.simd

    @property
    def fold_dims(self) -> dict[str, int]:
        return {"SIMD": gcd(*self.channels)}

    @property
    def fifo_unit(self) -> int:
        return sum(self.channels)

    def folded(self, pe, simd: int) -> "ConcatSpec":
        self.check_simd(simd)
        return dataclasses.replace(self, simd=simd)

    def reference(self, *inputs: np.ndarray) -> np.ndarray:
        n = len(inputs[0])
        parts = [np.asarray(x, dtype=np.int64).reshape(n, self.pixels, c) for x, c in zip(inputs, self.channels)]
        return np.concatenate(parts, axis=2).reshape(n, -1)
