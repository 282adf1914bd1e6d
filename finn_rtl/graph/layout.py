"""Where each element of the current tensor travels in the stream, and which axis is the channel.

The hardware streams images channels last. The model's tensors are NCHW (ONNX) or NHWC (a
convolution lowered to Im2Col, FINN's streamlined graphs); Transposes and flattening move
elements around. `StreamLayout` follows the dynamic path and keeps, for the current tensor, the
stream order (stream index -> flat index); before the first layer the host may still choose it.
"""
from __future__ import annotations

import numpy as np

from .ingest import node_attributes
from .onnx_graph import GraphView, node_error


def nhwc_order(shape) -> np.ndarray:
    """Stream order of an [1, C, *spatial] tensor carried channels last: stream index -> flat index."""
    channels, spatial = shape[1], tuple(shape[2:])
    return np.arange(int(np.prod(shape))).reshape(channels, *spatial).transpose(
        *range(1, len(spatial) + 1), 0).reshape(-1)


class StreamLayout:
    def __init__(self, graph: GraphView, input_elements: int):
        self.g = graph
        self.order = None  # stream index -> flat index of the current tensor (None: host's choice)
        self.free_source = np.arange(input_elements)  # before the first layer: flat -> input flat
        self.input_order = None  # the order the host feeds the input in
        self.spatial_shape = None  # [C, H, W] of the last image tensor
        # Tensors whose channel axis is the last one although they are images: a convolution
        # lowered to Transpose -> Im2Col -> MatMul (qonnx LowerConvsToMatMul, FINN) until the
        # Transpose back. Constants on them are per channel along the last axis.
        self.channels_last: set[str] = set()

    def transpose(self, node):
        shape = self.g.shape(node.input[0])
        attrs = node_attributes(node)
        perm = attrs.get("perm", list(range(len(shape)))[::-1])
        source = np.arange(int(np.prod(shape))).reshape(shape).transpose(perm).reshape(-1)
        if self.order is None:
            self.free_source = self.free_source[source]
        else:
            position = np.empty_like(source)
            position[source] = np.arange(len(source))
            self.order = position[self.order]

    def stream_order(self, node, wanted: np.ndarray | None):
        """Make the current tensor's stream order `wanted` (stream -> flat), or say why not.
        None: any order (a MatMul permutes its weight columns); returns the order in use."""
        if self.order is None:  # the host feeds the first layer in the order it wants
            order = np.arange(len(self.free_source)) if wanted is None else wanted
            self.input_order = self.free_source[order]
            self.order = order
        elif wanted is not None and not np.array_equal(self.order, wanted):
            raise node_error(f"{node.op_type} needs its input channels last (NHWC) in the stream, "
                             "but a Transpose inside the network reorders it; transposes are only "
                             "supported before the first layer and before fully connected layers", node)
        return self.order

    def channels_last_input(self, node):
        """An image op reads its input channels last (NHWC) from the stream."""
        self.stream_order(node, nhwc_order(self.g.shape(node.input[0])))

    def image_output(self, shape):
        """An image op writes its output channels last."""
        self.order = nhwc_order(shape)
        self.spatial_shape = tuple(shape[1:])

    def flat_offset(self, offset):
        """Per-channel offsets of the last image tensor, per element of its flattened form."""
        shape = self.spatial_shape
        return np.broadcast_to(np.asarray(offset, dtype=np.float64).reshape(-1, *([1] * (len(shape) - 1))),
                               shape).reshape(-1)

    def channel_vector(self, node, value, channels):
        """A constant that varies at most along the channel axis -> [channels] or scalar.

        The channel axis is the last one of a [1, features] tensor and axis 1 of
        an [1, C, H, W] or [1, C, W] tensor; constants broadcast from the right.
        """
        value = np.asarray(value, dtype=np.float64)
        if value.size == 1:
            return value.reshape(())
        if node.op_type == "BatchNormalization" and value.shape == (channels,):
            return value  # BatchNormalization's parameters are per channel by definition
        dynamic = [t for t in node.input if t and not self.g.is_constant(t)]
        shape = self.g.shape(dynamic[0]) if dynamic else None
        rank = len(shape) if shape else 2
        axis = -1 if rank <= 2 or dynamic[0] in self.channels_last else 1 - rank  # from the right
        flat = value.reshape(-1)
        if flat.size != channels or value.ndim < -axis or value.shape[axis] != channels:
            raise node_error(f"constant of shape {list(value.shape)} is neither scalar nor "
                             f"per-channel over {channels} channels", node)
        return flat
