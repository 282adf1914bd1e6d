"""Ops that join streams: a residual Add of two quantized tensors, a channel Concat.

A handler gets the walker, the node and the contexts of its inputs (state, stream, order) and
returns the state after the node, like the one-input handlers in handlers.py. Scales are
compared by value: after qonnx cleanup each Quant has its own scale tensor even where Brevitas
shared one quantizer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .datatypes import QType
from .ingest import node_attributes
from .layout import nhwc_order
from .merge_specs import ConcatSpec
from .onnx_graph import node_error, user_name
from .walk_state import AddOperand, Affine, Pending, Quantized

if TYPE_CHECKING:
    from .streamline import Walker

SCALE_RTOL = 1e-6
# Ops that join two or more streams: handler(walker, node, input contexts) -> state.
MERGES: dict[str, Callable] = {}


def merges(*op_types: str):
    def register(handler):
        for op_type in op_types:
            MERGES[op_type] = handler
        return handler
    return register


def quantized_inputs(walker: Walker, node, contexts) -> list[Quantized]:
    for context, tensor in zip(contexts, node.input):
        if isinstance(context.state, Pending):
            raise node_error(f"{node.op_type} input '{tensor}' is an accumulator without its activation "
                             f"quantizer; quantize every input of a {node.op_type}", node)
    return [context.state for context in contexts]


def quantizer_name(walker: Walker, state: Quantized) -> str:
    producer = walker.g.producers.get(state.origin) if state.origin else None
    return user_name(producer) if producer is not None else "the network input"


def image_geometry(walker: Walker, node, contexts, tensors) -> tuple[int, int, bool]:
    """(channels, pixels, channels_last) of inputs that stream pixel by pixel, channels last,
    in the same order; anything else is refused."""
    shape = walker.g.shape(tensors[0])
    channels_last = tensors[0] in walker.layout.channels_last
    if len(shape) in (3, 4) and not channels_last:
        channels = shape[1]
        wanted = [nhwc_order(walker.g.shape(t)) for t in tensors]
    else:
        channels = shape[-1] if channels_last else int(np.prod(shape[1:]))
        wanted = [np.arange(int(np.prod(walker.g.shape(t)))) for t in tensors]
    for context, order, tensor in zip(contexts, wanted, tensors):
        if context.order is None or not np.array_equal(context.order, order):
            raise node_error(f"{node.op_type} input '{tensor}' does not stream in the order of an image "
                             "(channels last) or of a layer's output; transposes may not sit inside a branch",
                             node)
    return channels, int(np.prod(shape[1:])) // channels, channels_last


def per_channel(value, channels: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1) if np.size(value) > 1
                           else np.asarray(value, dtype=np.float64).reshape(()), (channels,)).copy()


def align_scales(walker: Walker, node, states, scales) -> tuple[tuple[int, int], np.ndarray]:
    """Integer factors (k_a, k_b) and the common scale s with scale_a = k_a s, scale_b = k_b s."""
    a, b = scales
    if np.allclose(a / b, 1, rtol=SCALE_RTOL, atol=0):
        return (1, 1), b
    for ratio, common, place in ((a / b, b, 0), (b / a, a, 1)):
        k = int(np.round(ratio[0]))
        if k >= 2 and np.allclose(ratio, k, rtol=SCALE_RTOL, atol=0):
            return ((k, 1) if place == 0 else (1, k)), common
    names = [quantizer_name(walker, s) for s in states]
    raise node_error(f"the Add's inputs come from quantizers {names[0]} (scale {a[0]:.6g}) and {names[1]} "
                     f"(scale {b[0]:.6g}), whose scales are not integer multiples of each other, so no "
                     "exact integer sum exists; share one quantizer for both inputs (Brevitas: the same "
                     "QuantIdentity / act_quant) or make the ratio an integer", node)


@merges("Add")
def residual_add(walker: Walker, node, contexts):
    states = quantized_inputs(walker, node, contexts)
    shapes = [walker.g.shape(t) for t in node.input]
    if shapes[0] != shapes[1]:
        raise node_error(f"Add of shapes {shapes[0]} and {shapes[1]}; a residual Add needs equal shapes "
                         "(no broadcasting)", node)
    if states[0].origin is not None and states[0].origin == states[1].origin:
        raise node_error("Add of a tensor with itself: multiply it by 2 instead", node)
    channels, pixels, channels_last = image_geometry(walker, node, contexts, node.input)
    scales = [per_channel(s.affine.scale, channels) for s in states]
    if any(np.any(s <= 0) for s in scales):
        raise node_error("Add of a negatively scaled tensor is not supported", node)
    factors, common = align_scales(walker, node, states, scales)
    for state in states:
        if state.origin is None:
            raise node_error("an Add input comes from a Concat of inputs with scaled or shifted values, so "
                             "the exactness of the sum cannot be checked; quantize the Concat's output "
                             "before the Add", node)
    operands = tuple(AddOperand(s.qtype, f, scale, s.origin, s.path, quantizer_name(walker, s))
                     for s, f, scale in zip(states, factors, scales))
    offset = per_channel(states[0].affine.offset, channels) + per_channel(states[1].affine.offset, channels)
    walker.restore_context(contexts[0])
    if channels_last:
        walker.layout.channels_last.add(node.output[0])
    return Pending(node.name, None, None, states[0].qtype, common.copy(), offset, node.output[0], [],
                   Affine(common.copy(), offset.copy()), rank=len(shapes[0]), vectors=pixels, pools=[],
                   operands=operands, merge_node=node, sources=tuple(c.stream for c in contexts))


@merges("Concat")
def concat(walker: Walker, node, contexts):
    states = quantized_inputs(walker, node, contexts)
    tensors = [t for t in node.input if t]
    shapes = [walker.g.shape(t) for t in tensors]
    rank = len(shapes[0])
    channels_last = tensors[0] in walker.layout.channels_last
    axis = node_attributes(node).get("axis", 1)
    axis = axis + rank if axis < 0 else axis
    channel_axis = rank - 1 if channels_last or rank == 2 else 1
    if axis != channel_axis:
        raise node_error(f"Concat along axis {axis}: only the channel axis ({channel_axis}) is supported", node)
    if any(s.qtype.bipolar for s in states) and not all(s.qtype.bipolar for s in states):
        raise node_error("Concat of bipolar and integer tensors is not supported", node)
    channels = [shape[channel_axis] for shape in shapes]
    pixels = int(np.prod(shapes[0][1:])) // channels[0]
    orders = [nhwc_order(shape) if rank in (3, 4) and not channels_last else np.arange(int(np.prod(shape)))
              for shape in shapes]
    for context, order, tensor in zip(contexts, orders, tensors):
        if context.order is None or not np.array_equal(context.order, order):
            raise node_error(f"Concat input '{tensor}' does not stream channels last; transposes may not "
                             "sit inside a branch", node)
    scales = [per_channel(s.affine.scale, c) for s, c in zip(states, channels)]
    if not all(np.allclose(s, scales[0][0], rtol=SCALE_RTOL, atol=0) for s in scales):
        names = ", ".join(f"{quantizer_name(walker, s)} (scale {sc[0]:.6g})" for s, sc in zip(states, scales))
        raise node_error(f"Concat of tensors with different scales: {names}; share one quantizer for "
                         "all inputs (Brevitas: the same QuantIdentity / act_quant)", node)
    out_type = QType.bipolar_type() if states[0].qtype.bipolar else \
        QType.for_range(min(s.qtype.min for s in states), max(s.qtype.max for s in states))
    walker.add_layer(ConcatSpec(node.name, channels, pixels, [s.qtype for s in states], out_type),
                     sources=[c.stream for c in contexts])
    out_shape = walker.g.shape(node.output[0])
    if rank in (3, 4) and not channels_last:
        walker.layout.image_output(out_shape)
    else:
        walker.layout.order = np.arange(int(np.prod(out_shape)))
        if channels_last:
            walker.layout.channels_last.add(node.output[0])
            walker.layout.spatial_shape = (out_shape[-1], *out_shape[1:-1])
    offsets = [per_channel(s.affine.offset, c) for s, c in zip(states, channels)]
    offset = np.concatenate(offsets) if any(np.any(o != 0) for o in offsets) else np.zeros(())
    # Where every input is a quantizer's output as it is (q * scale in float32, one scale), so is
    # the concatenation: an Add after it can be proven exact from it (see Quantized.origin).
    common = np.float32(scales[0][0])
    exact = offset.size == 1 and all(
        s.origin is not None and all(n.op_type == "Identity" for n in s.path) and
        np.all(np.float32(sc) == common) for s, sc in zip(states, scales))
    return Quantized(out_type, Affine(np.asarray(scales[0][0]), offset), origin=node.output[0] if exact else None)
