"""The walker's state per tensor: a quantized integer tensor, or a pending accumulator, and
where its stream comes from (`Context`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
from onnx import helper

from .datatypes import QType


@dataclass
class Affine:
    """real = scale * y + offset, arrays broadcasting over channels (last axis)."""

    scale: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class Quantized:
    """An integer tensor in the stream (the input, or an activation quantizer's output):
    real = affine.scale * q + affine.offset for integers q of `qtype`.

    `origin` is the tensor where the integers were last a quantizer's output (value q * scale
    exactly; None after a Concat) and `path` the ops since, ops that do not change values
    replaced by Identity: running `path` from `origin` gives the golden model's float values,
    which is how a residual Add is checked exactly."""

    qtype: QType
    affine: Affine
    origin: Optional[str] = None
    path: tuple = ()

    def passed_through(self, node, output: str) -> "Quantized":
        """The same integers after an op that does not change values (reshape, pool, pad...)."""
        if self.origin is None:
            return self
        same = helper.make_node("Identity", [node.input[0]], [output], name=f"{node.name}_values")
        return dataclasses.replace(self, path=self.path + (same,))

    def then(self, node, affine: Affine) -> "Quantized":
        """After an element-wise op with constants (its own node runs in `path`)."""
        return dataclasses.replace(self, affine=affine, path=self.path + (node,))


@dataclass(frozen=True)
class AddOperand:
    """One input of a residual Add: its integers, the factor aligning its scale, and how the
    golden model computes its float values (`Quantized.origin`/`path`)."""

    qtype: QType
    factor: int
    scale: np.ndarray  # per channel: the quantizer output is q * scale
    origin: str
    path: tuple
    quantizer: str  # the user's name of the quantizer, for errors


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
    element_type: Optional[QType] = None  # the pooled elements' type (input_type: their sum's)
    depthwise: bool = False  # weights [channels, window]: a vector unit, not an MVTU
    operands: tuple = ()  # a residual Add's two inputs (weights None): the sum of both streams
    merge_node: object = None  # that Add node
    sources: Optional[tuple] = None  # the layer's input streams (None: the walker's current one)


@dataclass
class Context:
    """What the walker knows at a tensor: its state, the stream carrying it (layer name, output
    port; None: the network input) and its stream order (see StreamLayout)."""

    state: object
    stream: Optional[tuple]
    order: Optional[np.ndarray]
    spatial_shape: Optional[tuple]
