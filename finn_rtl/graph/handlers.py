"""What each ONNX op does to the walker's state: one handler per op and state, in one table.

A handler gets the walker (its graph queries, stream layout, threshold search and the layers
so far), the node, and the state of its input: a `Quantized` integer tensor or a `Pending`
accumulator. It returns the state after the node. Supporting a new op is one function here with
`@handles("OpType")` (for both states) or `@handles("OpType", on=(Quantized,))`; `@refuses`
says why an op cannot take the other state. The op list users see (`SUPPORTED`) is this table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from onnx import helper

from .heads import HEADS, head_problem, topk_problem
from .ingest import node_attributes
from .onnx_graph import node_error, user_name
from .quantizers import constant_weights, quant_params
from .specs import PadSpec, PoolSpec, SlidingWindowSpec
from .walk_state import Affine, Pending, Quantized

if TYPE_CHECKING:
    from .streamline import Walker

ELEMENTWISE = ("Mul", "Div", "Add", "Sub")
SHAPE_ONLY = ("Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze")  # keep the flat order
CHAIN_OPS = ELEMENTWISE + ("BatchNormalization", "Relu")
ACTIVATIONS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
REQUANTIZERS = ("Quant", "BipolarQuant", "Trunc")  # those that may also requantize a quantized tensor
# Ops whose output has their input's layout (channels last or not).
KEEP_LAYOUT = CHAIN_OPS + ACTIVATIONS + ("Identity", "MaxPoolNHWC")

# Ops that users meet in older exports, with what to do instead.
UNSUPPORTED_HINTS = {
    "Sign": "Sign is not supported: FINN reads it as a bipolar quantizer (x >= 0 -> +1), but the golden "
            "model's ONNX Sign maps 0 to 0, a third level, so no bit-exact hardware exists for it; "
            "re-export the activation as BipolarQuant (Brevitas QuantIdentity with 1 bit)",
}

Handler = Callable[["Walker", object, "Quantized | Pending"], "Quantized | Pending"]
ANY_STATE = (Quantized, Pending)
HANDLERS: dict[str, dict[type, Handler]] = {}  # op type -> state type -> handler
REFUSALS: dict[tuple[str, type], str] = {}  # why an op cannot take a state, and what would work
OUTPUT_INDEX: dict[str, int] = {}  # which output the dynamic path continues on (TopK: its indices)


def handles(*op_types: str, on: tuple = ANY_STATE, output: int = 0):
    def register(handler: Handler) -> Handler:
        for op_type in op_types:
            for state in on:
                HANDLERS.setdefault(op_type, {})[state] = handler
            OUTPUT_INDEX[op_type] = output
        return handler
    return register


def refuses(*op_types: str, on: type, reason: str) -> None:
    """`reason` ({op} names the op type) is the error for an op meeting a state it cannot take."""
    for op_type in op_types:
        REFUSALS[(op_type, on)] = reason


def handler_for(node, current) -> Handler:
    handler = HANDLERS[node.op_type].get(type(current))
    if handler is None:
        raise node_error(REFUSALS[(node.op_type, type(current))].format(op=node.op_type), node)
    return handler


# -- layout and shape ops -------------------------------------------------------------
@handles("Transpose", on=(Quantized,))
def transpose(walker: Walker, node, current):
    walker.layout.transpose(node)
    return current


@handles("Transpose", on=(Pending,))
def transpose_in_chain(walker: Walker, node, pending: Pending):
    """E.g. NHWC -> NCHW after a lowered convolution, before its bias and activation."""
    walker.layout.transpose(node)
    pending.chain.append(node)
    return pending


@handles(*SHAPE_ONLY, on=(Quantized,))
def reshape(walker: Walker, node, current):
    """The flat order is unchanged; shapes come from shape inference."""
    return current


@handles(*SHAPE_ONLY, on=(Pending,))
def reshape_in_chain(walker: Walker, node, pending: Pending):
    """Inside a layer's chain, batch-preserving ones (older exports wrap BatchNorm in
    Unsqueeze/Squeeze) join the chain so that it evaluates as one connected graph."""
    if node.op_type in ("Squeeze", "Unsqueeze", "Identity"):
        check_keeps_batch(walker, node)
        pending.chain.append(node)
    return pending


# -- float ops between layers and their quantizers --------------------------------------
@handles(*CHAIN_OPS, on=(Pending,))
def elementwise_in_chain(walker: Walker, node, pending: Pending):
    pending.chain.append(node)
    pending.affine = affine_step(walker, node, pending.affine, len(pending.acc_scale))
    return pending


# -- outputs --------------------------------------------------------------------------
@handles("ArgMax")
def argmax_op(walker: Walker, node, current):
    argmax(walker, node)
    return current


@handles("TopK", output=1)
def topk(walker: Walker, node, current):
    problem = topk_problem(node, walker.g.init(node.input[1]), walker.g.shape(node.input[0]))
    if problem:
        raise node_error(problem, node)
    walker.label_select = True
    if walker.g.w.graph.output[0].name != node.output[1]:
        raise node_error("the model's output must be TopK's indices (label select)", node)
    return current


@handles(*HEADS, on=(Quantized,))
def head_on_ints(walker: Walker, node, current):
    if not walker.layers:
        raise node_error(f"{node.op_type} before any MatMul/Conv layer", node)
    return head(walker, node, current)


@handles(*HEADS, on=(Pending,))
def head(walker: Walker, node, current):
    problem = head_problem(node, walker.g.shape(node.input[0]), walker.g.opset())
    if problem:
        raise node_error(problem, node)
    walker.host_head = (node.op_type, user_name(node))
    return current


# -- layers ---------------------------------------------------------------------------
refuses("MatMul", "Conv", "Im2Col", on=Pending,
        reason="two layers without an activation quantizer between them; insert a Quant/BipolarQuant activation")


@handles("MatMul", on=(Quantized,))
def matmul(walker: Walker, node, current):
    if len(walker.g.dynamic_inputs(node)) != 1 or node.input[0] not in walker.g.dynamic_inputs(node):
        raise node_error("MatMul needs the activation as first input and constant weights as "
                         "second; non-constant weights are not supported", node)
    qtype, affine = current.qtype, current.affine
    weights_t, weight_type, w_scale = constant_weights(walker.g, node)
    weights = weights_t.T  # [mh, mw]
    mh, mw = weights.shape
    in_shape = walker.g.shape(node.input[0])
    if len(in_shape) == 4 and in_shape[0] == 1 and in_shape[-1] == mw:
        return lowered_conv(walker, node, current, weights, weight_type, w_scale)
    if in_shape[-1] != mw or int(np.prod(in_shape)) != mw:
        raise node_error(f"MatMul input of shape {in_shape} with {mw}-input weights; only "
                         "[1, features] inputs are supported (flatten first)", node)
    channel_affine = affine
    if np.asarray(affine.offset).size not in (1, mw):
        # Per-channel offsets of a flattened image: per element, in the model's order.
        channel_affine = Affine(affine.scale, walker.layout.flat_offset(affine.offset))
    weights = weights[:, walker.layout.stream_order(node, None)]
    x_scale = np.asarray(affine.scale, dtype=np.float64)
    if x_scale.size != 1:
        if not np.all(x_scale == x_scale.reshape(-1)[0]):
            raise node_error("the MatMul input has per-channel scales; only a per-tensor "
                             "activation scale can be folded into integer weights", node)
        x_scale = x_scale.reshape(-1)[0]
    x_offset = np.broadcast_to(np.asarray(channel_affine.offset, dtype=np.float64), (mw,))
    acc_scale = float(x_scale) * w_scale
    acc_offset = (weights_t.T @ x_offset) * w_scale  # model order on both sides
    walker.layout.order = np.arange(mh)
    return Pending(node.name, weights, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                   Affine(acc_scale, acc_offset), pools=[])


@handles("Im2Col", on=(Quantized,))
def im2col(walker: Walker, node, current):
    """qonnx/FINN Im2Col on a [1, H, W, C] tensor: the sliding-window generator of the
    MatMul that follows (rows in (ky, kx, channel) order, as the MVTU's weight columns)."""
    qtype, affine = current.qtype, current.affine
    shape = walker.g.shape(node.input[0])
    if shape is None or len(shape) != 4 or shape[0] != 1:
        raise node_error(f"Im2Col input of shape {shape}; expected [1, H, W, C]", node)
    _, height, width, channels = shape
    attrs = node_attributes(node)
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise node_error(f"dilations {attrs['dilations']} are not supported (only 1)", node)
    kernel, stride = tuple(attrs.get("kernel_size", [])), tuple(attrs.get("stride", []))
    pads = tuple(attrs.get("pad_amount", [0, 0, 0, 0]))  # top, left, bottom, right
    if len(kernel) != 2 or len(stride) != 2 or len(pads) != 4:
        raise node_error("Im2Col needs 2-D kernel_size and stride and four pad_amount values", node)
    walker.layout.stream_order(node, np.arange(int(np.prod(shape))))  # channels last: NHWC as it is
    window = add_window(walker, node, "swg", channels, height, width, kernel, stride, pads, qtype, affine,
                        pad_real=float(attrs.get("pad_value", 0)))
    out_shape = walker.g.shape(node.output[0])
    if list(out_shape[1:3]) != [window.out_h, window.out_w]:
        raise node_error(f"Im2Col output {out_shape} does not match {window.out_h}x{window.out_w} windows",
                         node)
    walker.im2col_windows[node.output[0]] = (window, channels)
    return current


def lowered_conv(walker: Walker, node, current, weights, weight_type, w_scale):
    """A MatMul on a [1, H, W, C] tensor: a convolution lowered to Im2Col + MatMul, or a
    pointwise one (qonnx lowers 1x1 stride-1 convolutions to a MatMul alone)."""
    qtype, affine = current.qtype, current.affine
    in_shape = walker.g.shape(node.input[0])
    if node.input[0] in walker.im2col_windows:
        window, channels = walker.im2col_windows[node.input[0]]
    else:
        _, height, width, channels = in_shape
        walker.layout.stream_order(node, np.arange(int(np.prod(in_shape))))
        window = add_window(walker, node, "swg", channels, height, width, (1, 1), (1, 1), (0, 0, 0, 0), qtype,
                            affine)
    x_scale = np.asarray(affine.scale, dtype=np.float64).reshape(-1)
    if not np.all(x_scale == x_scale[0]):
        raise node_error("the MatMul input has per-channel scales; only a per-tensor activation "
                         "scale can be folded into integer weights", node)
    x_offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
    mh, mw = weights.shape
    acc_scale = float(x_scale[0]) * w_scale
    acc_offset = (weights @ np.tile(x_offset, mw // channels)) * w_scale  # columns (ky, kx, c)
    out_shape = walker.g.shape(node.output[0])
    walker.layout.order = np.arange(int(np.prod(out_shape)))  # channels last, as the stream
    walker.layout.spatial_shape = (out_shape[3], out_shape[1], out_shape[2])
    walker.layout.channels_last.add(node.output[0])
    return Pending(node.name, weights, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                   Affine(acc_scale, acc_offset), rank=4, vectors=window.out_h * window.out_w,
                   conv_channels=channels, pools=[])


def spatial_input(walker: Walker, node):
    """(channels, height, width, rank) of a [1, C, H, W] or [1, C, W] input (1-D: height 1)."""
    shape = walker.g.shape(node.input[0])
    if shape is None or len(shape) not in (3, 4) or shape[0] != 1:
        raise node_error(f"{node.op_type} input of shape {shape}; expected [1, C, H, W] or "
                         "[1, C, W]", node)
    return shape[1], (shape[2] if len(shape) == 4 else 1), shape[-1], len(shape)


def window_attrs(walker: Walker, node, rank, kernel):
    """Kernel, stride and (top, left, bottom, right) pads as 2-D, checking what is supported."""
    attrs = node_attributes(node)
    dims = rank - 2
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise node_error(f"auto_pad={auto_pad} is not supported; export explicit pads", node)
    if any(d != 1 for d in attrs.get("dilations", [1] * dims)):
        raise node_error(f"dilations {attrs['dilations']} are not supported (only 1)", node)
    strides = list(attrs.get("strides", [1] * dims))
    pads = list(attrs.get("pads", [0] * 2 * dims))
    kernel = list(kernel)
    if dims == 1:
        kernel, strides, pads = [1] + kernel, [1] + strides, [0, pads[0], 0, pads[1]]
    else:
        pads = [pads[0], pads[1], pads[2], pads[3]]
    return tuple(kernel), tuple(strides), tuple(pads), attrs


def pad_value(walker: Walker, node, qtype, affine, channels, real=0.0):
    """The integer whose real value is `real` (default 0, the padding of Conv and Pad)."""
    scale = np.broadcast_to(np.asarray(affine.scale, dtype=np.float64), (channels,))
    offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
    values = (real - offset) / scale
    value = float(np.round(values[0]))
    if not np.allclose(values, value, atol=1e-6) or qtype.bipolar or not qtype.contains([int(value)]):
        raise node_error(f"padding with {real} needs an integer {values[0]:.4g} of {qtype}, which "
                         "does not exist (bipolar and offset tensors cannot be zero-padded)", node)
    return int(value)


def add_window(walker: Walker, node, tag, channels, height, width, kernel, stride, pads, qtype, affine, pad_real=0.0,
               pad_code: int | None = None):
    """Padding (if any) and the sliding-window generator in front of a conv or pool; returns the
    window's geometry (a 1x1, stride-1 window adds no layer). The padding is the integer whose real
    value is `pad_real`, or `pad_code` itself."""
    if any(pads):
        value = pad_code if pad_code is not None else pad_value(walker, node, qtype, affine, channels, real=pad_real)
        walker.add_layer(PadSpec(f"{node.name}_pad", channels, height, width, pads, qtype, value))
        height, width = height + pads[0] + pads[2], width + pads[1] + pads[3]
    if kernel[0] > height or kernel[1] > width:
        raise node_error(f"kernel {kernel} is larger than the padded {height}x{width} input", node)
    window = SlidingWindowSpec(f"{node.name}_{tag}", channels, height, width, kernel, stride, qtype)
    if not window.identity:  # a 1x1, stride-1 window is the stream as it is: no generator, as in FINN
        walker.add_layer(window)
    return window


@handles("Conv", on=(Quantized,))
def conv(walker: Walker, node, current):
    qtype, affine = current.qtype, current.affine
    channels, height, width, rank = spatial_input(walker, node)
    weights, weight_type, w_scale = constant_weights(walker.g, node, out_axis=0)
    out_channels = weights.shape[0]
    kernel, stride, pads, attrs = window_attrs(walker, node, rank, weights.shape[2:])
    group = attrs.get("group", 1)
    weights = weights.reshape(out_channels, weights.shape[1], *kernel)  # 1-D: kernel height 1
    depthwise = group == channels == out_channels and weights.shape[1] == 1 and group > 1
    if not depthwise and group != 1:
        raise node_error(f"grouped convolution (group={group}) is not supported; use group=1 or "
                         "depthwise (group = in channels = out channels)", node)
    x_scale = np.asarray(affine.scale, dtype=np.float64).reshape(-1)
    per_channel = not np.all(x_scale == x_scale[0])
    if per_channel and not depthwise:
        raise node_error("the Conv input has per-channel scales; only a per-tensor activation scale can be "
                         "folded into integer weights (a depthwise conv takes each channel's own)", node)
    walker.layout.channels_last_input(node)
    window = add_window(walker, node, "swg", channels, height, width, kernel, stride, pads, qtype, affine)
    x_offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
    bias = np.zeros(out_channels)
    if len(node.input) > 2 and node.input[2]:
        if not walker.g.is_constant(node.input[2]):
            raise node_error("Conv bias must be constant", node)
        bias = walker.g.constant_value(node.input[2]).reshape(-1)
    # A depthwise conv's channel c sees input channel c alone: its scale joins the weights' scale
    # of output channel c (exact; MobileNet's activations before depthwise convs are per channel).
    acc_scale = (np.broadcast_to(x_scale, (channels,)) if per_channel else float(x_scale[0])) * w_scale
    if depthwise:  # a vector unit: channel c sees only input channel c, weights [C, K*K]
        acc_offset = np.einsum("okl,o->o", weights[:, 0], x_offset) * w_scale + bias
        matrix = weights[:, 0].reshape(out_channels, -1)
    else:
        acc_offset = np.einsum("oikl,i->o", weights, x_offset) * w_scale + bias
        matrix = weights.transpose(0, 2, 3, 1).reshape(out_channels, -1)  # columns in (ky, kx, c) order
    out_shape = walker.g.shape(node.output[0])
    if int(np.prod(out_shape[2:])) != window.out_h * window.out_w:
        raise node_error(f"output shape {out_shape} does not match {window.out_h}x{window.out_w} "
                         "windows", node)
    walker.layout.image_output(out_shape)
    return Pending(node.name, matrix, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                   Affine(acc_scale, acc_offset), rank=rank, vectors=window.out_h * window.out_w,
                   conv_channels=channels, pools=[], depthwise=depthwise)


@handles("MaxPool", "MaxPoolNHWC", on=(Pending,))
def maxpool_in_chain(walker: Walker, node, pending: Pending):
    pending.pools.append(node)  # moved past the activation (see finish_layer)
    # The threshold search evaluates the chain without the pool (a max pool commutes with the
    # rising activation): the pool's output is its input, whatever ops (a lowered
    # convolution's Transpose and bias Add) came before it.
    pending.chain.append(helper.make_node("Identity", [node.input[0]], [node.output[0]],
                                          name=f"{node.name}_skipped", doc_string=node.doc_string))
    return pending


@handles("MaxPool", "MaxPoolNHWC", on=(Quantized,))
def maxpool(walker: Walker, node, current):
    qtype, affine = current.qtype, current.affine
    if np.any(np.asarray(affine.scale) <= 0):
        raise node_error("MaxPool on a negatively scaled tensor is a min pool, which is not "
                         "supported", node)
    add_maxpool(walker, node, qtype)
    return current


def add_maxpool(walker: Walker, node, qtype):
    nhwc = node.op_type == "MaxPoolNHWC"  # FINN's MaxPool on a [1, H, W, C] tensor
    if nhwc:
        shape = walker.g.shape(node.input[0])
        if shape is None or len(shape) != 4 or shape[0] != 1:
            raise node_error(f"MaxPoolNHWC input of shape {shape}; expected [1, H, W, C]", node)
        (_, height, width, channels), rank = shape, 4
    else:
        channels, height, width, rank = spatial_input(walker, node)
    attrs = node_attributes(node)
    kernel, stride, pads, _ = window_attrs(walker, node, rank, attrs["kernel_shape"])
    if any(pad >= size for pad, size in zip(pads, kernel + kernel)):
        raise node_error(f"MaxPool pads {pads} as large as its kernel {kernel}: a window of padding alone "
                         "has no maximum", node)
    out_shape = walker.g.shape(node.output[0])
    if nhwc:
        walker.layout.stream_order(node, np.arange(int(np.prod(shape))))
    else:
        walker.layout.channels_last_input(node)
    # In ONNX, padding never wins a max: padded with the type's least value, which no element is
    # below, every window (each holds an element) keeps its maximum.
    window = add_window(walker, node, "swg", channels, height, width, kernel, stride, pads, qtype, None,
                        pad_code=qtype.min)
    spatial = out_shape[1:3] if nhwc else out_shape[2:]
    if int(np.prod(spatial)) != window.out_h * window.out_w:
        raise node_error(f"MaxPool output {out_shape} needs ceil_mode, which is not supported", node)
    walker.add_layer(PoolSpec(f"{node.name}", channels, window.window,
                              window.out_h * window.out_w, "max", qtype))
    if nhwc:
        walker.layout.order = np.arange(int(np.prod(out_shape)))
        walker.layout.spatial_shape = (out_shape[3], out_shape[1], out_shape[2])
    else:
        walker.layout.image_output(out_shape)


refuses("AveragePool", "GlobalAveragePool", "Pad", on=Pending,
        reason="{op} between a layer and its activation quantizer is not supported; put it after the activation")


@handles("AveragePool", "GlobalAveragePool", on=(Quantized,))
def avgpool(walker: Walker, node, current):
    """Average pooling as a window sum; the scale 1/window joins the following chain, so a
    Trunc or Quant after it becomes thresholds on the sum."""
    qtype, affine = current.qtype, current.affine
    channels, height, width, rank = spatial_input(walker, node)
    out_shape = walker.g.shape(node.output[0])
    walker.layout.channels_last_input(node)
    if node.op_type == "GlobalAveragePool":
        window, pixels = height * width, 1  # the stream of one image is one window
    else:
        attrs = node_attributes(node)
        kernel, stride, pads, _ = window_attrs(walker, node, rank, attrs["kernel_shape"])
        if any(pads) or attrs.get("ceil_mode", 0):
            raise node_error("AveragePool with pads or ceil_mode is not supported", node)
        swg = add_window(walker, node, "swg", channels, height, width, kernel, stride, pads, qtype, None)
        window, pixels = swg.window, swg.out_h * swg.out_w
    pool = PoolSpec(node.name, channels, window, pixels, "sum", qtype)
    walker.add_layer(pool)
    if int(np.prod(out_shape[2:])) != pixels:
        raise node_error(f"output shape {out_shape} does not match {pixels} windows", node)
    walker.layout.image_output(out_shape)
    scale = np.broadcast_to(np.asarray(affine.scale, dtype=np.float64), (channels,)) / window
    offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,)).copy()
    return Pending(node.name, None, None, pool.output_type, scale, offset, node.output[0], [],
                   Affine(scale, offset), rank=len(out_shape), vectors=pixels, pools=[],
                   sum_window=window, element_type=qtype)


@handles("Pad", on=(Quantized,))
def pad(walker: Walker, node, current):
    qtype, affine = current.qtype, current.affine
    channels, height, width, rank = spatial_input(walker, node)
    attrs = node_attributes(node)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = attrs.get("pads")
    if pads is None:
        pads = [int(v) for v in walker.g.const_input(node, 1)]
    constant = float(walker.g.const_input(node, 2)) if len(node.input) > 2 and node.input[2] else 0.0
    if mode != "constant":
        raise node_error(f"Pad mode {mode} is not supported (only constant)", node)
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    if begin[:2] != [0, 0] or end[:2] != [0, 0] or min(pads) < 0:
        raise node_error(f"Pad {pads} pads batch or channel axes (or crops); only spatial "
                         "padding is supported", node)
    four = (begin[2], begin[3], end[2], end[3]) if rank == 4 else (0, begin[2], 0, end[2])
    value = pad_value(walker, node, qtype, affine, channels, constant)
    walker.layout.channels_last_input(node)
    walker.add_layer(PadSpec(node.name, channels, height, width, four, qtype, value))
    out_shape = walker.g.shape(node.output[0])
    walker.layout.image_output(out_shape)
    return current


def affine_step(walker: Walker, node, affine: Affine, channels: int) -> Affine:
    """Analytic float64 composition of one op on an affine view; non-affine ops give None."""
    if affine is None or node.op_type == "Relu":
        return None
    if node.op_type == "BatchNormalization":
        gamma, beta, mean, var = (walker.layout.channel_vector(node, walker.g.const_input(node, i), channels)
                                  for i in (1, 2, 3, 4))
        attrs = node_attributes(node)
        spread = var + attrs.get("epsilon", 1e-5)
        if not np.all(spread > 0):
            raise node_error("variance + epsilon must be positive on every channel (a BatchNormalization "
                             "divides by its square root)", node)
        k = gamma / np.sqrt(spread)
        return Affine(affine.scale * k, (affine.offset - mean) * k + beta)
    const_first = walker.g.init(node.input[0]) is not None
    c = walker.layout.channel_vector(node, walker.g.const_input(node, 0 if const_first else 1), channels)
    if node.op_type == "Mul":
        return Affine(affine.scale * c, affine.offset * c)
    if node.op_type == "Add":
        return Affine(affine.scale, affine.offset + c)
    if node.op_type == "Sub":
        if const_first:
            return Affine(-affine.scale, c - affine.offset)
        return Affine(affine.scale, affine.offset - c)
    if node.op_type == "Div" and not const_first:
        return Affine(affine.scale / c, affine.offset / c)
    raise node_error(f"{node.op_type} with a constant first operand is not affine", node)


@handles(*CHAIN_OPS, on=(Quantized,))
def affine_step_on_ints(walker: Walker, node, current):
    qtype, affine = current.qtype, current.affine
    channels = walker.g.shape(node.input[0])[-1]
    if node.op_type == "Relu":
        if qtype.min >= 0 and np.all(np.asarray(affine.scale) > 0) and np.all(affine.offset == 0):
            return current
        consumers = walker.g.consumers.get(node.output[0], [])
        if len(consumers) == 1 and consumers[0].op_type in REQUANTIZERS:
            # Relu -> Quant on a signed tensor (a signed shortcut into an unsigned activation):
            # the Relu joins the requantization's chain, the thresholds see both.
            return requantization(walker, node, current, chain=[node])
        raise node_error("Relu on a signed quantized activation cannot be folded unless a quantizer follows "
                         "it; put the Relu before the activation quantizer", node)
    if node.op_type not in ELEMENTWISE + ("BatchNormalization",):
        raise node_error(f"{node.op_type} cannot follow a quantized activation here", node)
    return current.then(node, affine_step(walker, node, affine, channels))


refuses("MultiThreshold", on=Quantized, reason="a MultiThreshold must follow a MatMul (a requantization "
        "between two quantizers is a Quant, Trunc or BipolarQuant)")


@handles(*REQUANTIZERS, on=(Quantized,))
def requantize(walker: Walker, node, current):
    """A quantizer on a quantized tensor (Brevitas requantizes at identity shortcuts, after pools
    and between signed and unsigned activations): a thresholding layer (FINN's Thresholding), its
    thresholds the exact map of every input integer to the output's level."""
    return activation(walker, node, requantization(walker, node, current))


def requantization(walker: Walker, node, current, chain=()) -> Pending:
    """The state of a thresholding layer on the quantized tensor into `node`: each element is its
    own one-element 'sum' (`Pending.sum_window` 1), `chain` the ops before the quantizer."""
    qtype, affine = current.qtype, current.affine
    shape = walker.g.shape(node.input[0])
    if shape is None or shape[0] != 1 or len(shape) not in (2, 3, 4):
        raise node_error(f"requantization of a tensor of shape {shape}; expected [1, C], [1, C, W] or "
                         "[1, C, H, W]", node)
    channels, vectors = shape[1], int(np.prod(shape[2:], dtype=np.int64))
    scale = np.broadcast_to(np.asarray(affine.scale, dtype=np.float64), (channels,)).copy()
    offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,)).copy()
    if len(shape) > 2:
        walker.layout.channels_last_input(node)
    elif not (np.all(scale == scale[0]) and np.all(offset == offset[0])):
        walker.layout.stream_order(node, np.arange(channels))  # per-feature values: in model order
    return Pending(node.name, None, None, qtype, scale, offset, node.input[0], list(chain), Affine(scale, offset),
                   rank=len(shape), vectors=vectors, pools=[], sum_window=1, element_type=qtype)


@handles(*ACTIVATIONS, on=(Pending,))
def activation(walker: Walker, quant, current):
    if quant.op_type == "Trunc":
        scale, out_type, qmin, qmax = walker.search.trunc_params(quant, current)
    else:
        scale, out_type, qmin, qmax = quant_params(walker.g, quant)
    if np.any(np.asarray(scale) <= 0):
        raise node_error("activation quantizer scale must be positive", quant)
    thresholds = walker.search.find_thresholds(current, quant, out_type, qmin, qmax)
    walker.finish_layer(current, (thresholds, out_type, qmin))
    channel_scale = walker.layout.channel_vector(quant, scale, len(current.acc_scale))
    walker.provenance[current.name] = {"quantizer": quant.name, "input": quant.input[0], "output": quant.output[0],
                                       "scale": np.broadcast_to(channel_scale, (len(current.acc_scale),)).tolist()}
    return Quantized(out_type, Affine(channel_scale, np.zeros(())), origin=quant.output[0])


def argmax(walker: Walker, node):
    attrs = node_attributes(node)
    if attrs.get("keepdims", 1) not in (0, 1) or attrs.get("axis", 0) not in (1, -1):
        raise node_error("ArgMax must reduce the feature axis", node)
    walker.label_select = True


def check_keeps_batch(walker: Walker, node) -> None:
    axes = node_attributes(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = walker.g.init(node.input[1])
    if axes is None and node.op_type == "Squeeze":
        raise node_error("Squeeze without axes inside a layer's chain: give the axes explicitly", node)
    if axes is not None and 0 in [int(a) for a in np.asarray(axes).reshape(-1)]:
        raise node_error(f"{node.op_type} of the batch axis inside a layer's chain is not supported", node)
