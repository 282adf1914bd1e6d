"""The walker's state on the dynamic path: a quantized integer tensor, or a pending accumulator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datatypes import QType


@dataclass
class Affine:
    """real = scale * y + offset, arrays broadcasting over channels (last axis)."""

    scale: np.ndarray
    offset: np.ndarray



@dataclass(frozen=True)
class Quantized:
    """An integer tensor in the stream (the input, or an activation quantizer's output):
    real = affine.scale * q + affine.offset for integers q of `qtype`."""

    qtype: QType
    affine: Affine


@dataclass
class Pending:
    """An accumulator whose activation has not been reached yet."""

    name: str
    weights: np.ndarray  # [mh, mw] ints
    weight_type: QType
    input_type: QType
    acc_scale: np.ndarray  # [mh]: float value fed to the chain = acc * acc_scale + acc_offset
    acc_offset: np.ndarray  # [mh]
    matmul_output: str
    chain: list  # onnx NodeProtos after the MatMul, in order
    affine: Affine  # analytic (float64) view of the chain, valid while it stays affine
    sign: np.ndarray = None  # per channel: -1 where the activation falls as the accumulator rises
    rank: int = 2  # rank of the MatMul/Conv output tensor: chain constants broadcast against it
    vectors: int = 1  # output pixels of a convolution
    conv_channels: int | None = None
    pools: list = None  # max pools met in the chain: they commute with a rising activation
    sum_window: int = 0  # an average pool's window sum instead of a dot product (weights None)
    depthwise: bool = False  # weights [channels, window]: a vector unit, not an MVTU
