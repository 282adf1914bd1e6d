"""Streamline a cleaned QONNX chain into integer layer specs.

The walk follows the single dynamic path from the graph input to the output.
Every tensor on it is described as ``real = scale * y + offset`` where ``y``
is an integer the hardware carries:

* the *input quantizer* (everything up to the first activation ``Quant``/
  ``BipolarQuant``) runs on the host; the accelerator receives its integers;
* a ``MatMul`` with quantized weights turns the integers into an exact
  integer accumulator;
* the float ops between a ``MatMul`` and the next activation quantizer (bias,
  BatchNorm, Mul/Div/Add/Sub by constants, Relu) and the quantizer itself are
  evaluated *with qonnx, exactly as the golden model does*, on candidate
  accumulator values; a binary search per channel and output level yields the
  integer thresholds, and a check on both sides of every threshold proves the
  step function matches;
* the ops after the last layer form a per-channel affine that the host
  applies (``OutputSpec``), or an ``ArgMax`` that becomes label select.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from .datatypes import QType
from .errors import CompileError
from .heads import HEADS, head_problem, topk_problem
from .ingest import ORIGIN, _qonnx, clean, node_attributes
from .specs import (MVTUSpec, NetworkSpec, OutputSpec, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec,
                    VectorUnitSpec)

MAX_BITS = 8
ELEMENTWISE = ("Mul", "Div", "Add", "Sub")
SHAPE_ONLY = ("Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze")  # keep the flat order
LAYOUT = SHAPE_ONLY + ("Transpose",)
CHAIN_OPS = ELEMENTWISE + ("BatchNormalization", "Relu")
ACTIVATIONS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
# Ops whose output has their input's layout (channels last or not).
KEEP_LAYOUT = CHAIN_OPS + ACTIVATIONS + ("Identity", "MaxPoolNHWC")
SUPPORTED = ("MatMul", "Gemm", "Conv", "Im2Col", "MaxPool", "MaxPoolNHWC", "AveragePool", "GlobalAveragePool", "Pad",
             "BatchNormalization", "Relu", "ArgMax", "TopK") + HEADS + ACTIVATIONS + ELEMENTWISE + LAYOUT

# Ops that users meet in older exports, with what to do instead.
UNSUPPORTED_HINTS = {
    "Sign": "Sign is not supported: FINN reads it as a bipolar quantizer (x >= 0 -> +1), but the golden "
            "model's ONNX Sign maps 0 to 0, a third level, so no bit-exact hardware exists for it; "
            "re-export the activation as BipolarQuant (Brevitas QuantIdentity with 1 bit)",
}


def nhwc_order(shape) -> np.ndarray:
    """Stream order of an [1, C, *spatial] tensor carried channels last: stream index -> flat index."""
    channels, spatial = shape[1], tuple(shape[2:])
    return np.arange(int(np.prod(shape))).reshape(channels, *spatial).transpose(
        *range(1, len(spatial) + 1), 0).reshape(-1)


@dataclass
class _Affine:
    """real = scale * y + offset, arrays broadcasting over channels (last axis)."""

    scale: np.ndarray
    offset: np.ndarray


@dataclass
class _Pending:
    """An accumulator whose activation has not been reached yet."""

    name: str
    weights: np.ndarray  # [mh, mw] ints
    weight_type: QType
    input_type: QType
    acc_scale: np.ndarray  # [mh]: float value fed to the chain = acc * acc_scale + acc_offset
    acc_offset: np.ndarray  # [mh]
    matmul_output: str
    chain: list  # onnx NodeProtos after the MatMul, in order
    affine: _Affine  # analytic (float64) view of the chain, valid while it stays affine
    sign: np.ndarray = None  # per channel: -1 where the activation falls as the accumulator rises
    rank: int = 2  # rank of the MatMul/Conv output tensor: chain constants broadcast against it
    vectors: int = 1  # output pixels of a convolution
    conv_channels: int | None = None
    pools: list = None  # max pools met in the chain: they commute with a rising activation
    sum_window: int = 0  # an average pool's window sum instead of a dot product (weights None)
    depthwise: bool = False  # weights [channels, window]: a vector unit, not an MVTU


@dataclass(frozen=True)
class InputQuantizer:
    """Host-side preprocessing: the model's ops up to the first activation quantizer.

    ``prefix`` is an ONNX model (qonnx ops allowed) from the graph input to the
    quantizer output; the accelerator input is ``prefix(x) / scale`` as integers.
    With ``prefix`` None the model input already is integer.
    """

    prefix: bytes | None
    scale: float
    qtype: QType
    elements: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.prefix is None:
            if x[0].size != self.elements:
                raise CompileError(f"input frames have shape {tuple(x.shape[1:])}, the accelerator "
                                   f"takes {self.elements} integers per frame")
            y = x.reshape(len(x), -1).astype(np.float64)
        else:
            from .ingest import execute_batched
            y = execute_batched(onnx.load_from_string(self.prefix), x).reshape(len(x), -1)
            y = y.astype(np.float64) / self.scale
        ints = np.round(y).astype(np.int64)
        if ints.shape[1] != self.elements:
            raise CompileError(f"input gives {ints.shape[1]} elements per frame, the accelerator "
                               f"takes {self.elements}")
        # The quantizer's float output is q * scale rounded to float32: q is recovered by rounding.
        if np.any(np.abs(ints - y) > 1e-3) or not self.qtype.contains(ints):
            raise CompileError(f"input does not quantize to {self.qtype} integers")
        return ints


@dataclass(frozen=True)
class Streamlined:
    network: NetworkSpec
    input_quantizer: InputQuantizer
    model: onnx.ModelProto  # the cleaned model the specs were derived from


class _Walker:
    def __init__(self, wrapper, name: str, label_select: bool):
        self.w = wrapper
        self.name = name
        self.label_select = label_select
        self.label_select_requested = label_select
        self.layers: list[MVTUSpec] = []
        self.notes: list[str] = []
        self.consumers: dict[str, list] = {}
        # Tensors whose channel axis is the last one although they are images: a convolution
        # lowered to Transpose -> Im2Col -> MatMul (qonnx LowerConvsToMatMul, FINN) until the
        # Transpose back. Constants on them are per channel along the last axis.
        self.channels_last_tensors: set[str] = set()
        self.im2col_windows: dict[str, tuple] = {}  # Im2Col output -> (window spec, channels)
        for node in wrapper.graph.node:
            for tensor in node.input:
                self.consumers.setdefault(tensor, []).append(node)

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def error(message: str, node) -> CompileError:
        """An error naming the node as the user's file has it (cleanup renames nodes)."""
        original = node.doc_string[len(ORIGIN):] if node.doc_string.startswith(ORIGIN) else ""
        renamed = f", cleaned name {node.name}" if original and original != node.name else ""
        return CompileError(message, original or node.name, node.op_type + renamed)

    def init(self, tensor):
        return self.w.get_initializer(tensor)

    def is_constant(self, tensor) -> bool:
        if self.init(tensor) is not None:
            return True
        producer = self.w.find_producer(tensor)
        return producer is not None and all(self.is_constant(t) for t in producer.input if t)

    def dynamic_inputs(self, node):
        return [t for t in node.input if t and not self.is_constant(t)]

    def const_input(self, node, index=1):
        value = self.init(node.input[index]) if len(node.input) > index else None
        if value is None:
            raise self.error(f"{node.op_type} needs a constant input {index}; only one dynamic "
                             "tensor per op is supported", node)
        return np.asarray(value)

    def next_node(self, tensor):
        users = [n for n in self.consumers.get(tensor, []) if not self.is_constant(n.output[0])]
        if len(users) > 1:
            raise self.error(f"tensor '{tensor}' feeds {len(users)} nodes; only chains (MLPs) are "
                             "supported", users[0])
        return users[0] if users else None

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
        dynamic = [t for t in node.input if t and not self.is_constant(t)]
        shape = self.w.get_tensor_shape(dynamic[0]) if dynamic else None
        rank = len(shape) if shape else 2
        axis = -1 if rank <= 2 or dynamic[0] in self.channels_last_tensors else 1 - rank  # from the right
        flat = value.reshape(-1)
        if flat.size != channels or value.ndim < -axis or value.shape[axis] != channels:
            raise self.error(f"constant of shape {list(value.shape)} is neither scalar nor "
                             f"per-channel over {channels} channels", node)
        return flat

    def annotated_weights(self, node, tensor, out_axis: int):
        """FINN-ONNX dialect: float weights with an integer qonnx datatype annotation (no Quant)."""
        dtype = self.w.get_tensor_datatype(tensor)
        if not dtype.is_integer():
            raise self.error("MatMul weights are float (no Quant/BipolarQuant on them and no integer "
                             "datatype annotation); quantize the weights to 1-8 bits in Brevitas/QKeras", node)
        values = np.asarray(self.init(tensor), dtype=np.float64)
        qtype = QType.bipolar_type() if dtype.name == "BIPOLAR" else \
            QType.for_range(int(dtype.min()), int(dtype.max()))
        if not np.all(values == np.round(values)) or not qtype.contains(values.astype(np.int64)):
            raise self.error(f"its weights are annotated {dtype.name} but hold values outside it "
                             f"(from {values.min():g} to {values.max():g})", node)
        if qtype.bits > MAX_BITS:
            raise self.error(f"its weights are annotated {dtype.name}, wider than {MAX_BITS} bits", node)
        ints = values.astype(np.int64)
        if not qtype.bipolar:
            qtype = QType.for_range(min(ints.min(), qtype.min), max(ints.max(), qtype.max))
        return ints, qtype, np.ones(ints.shape[out_axis])

    def multithreshold_params(self, node):
        """(scale, qtype, qmin, qmax) of a FINN MultiThreshold: output out_scale * k + out_bias for
        k = 0..T steps; as integers q * scale with scale = out_scale (bipolar: out_scale / 2)."""
        thresholds = self.const_input(node, 1)
        attrs = node_attributes(node)
        out_dtype = attrs.get("out_dtype", b"")
        out_dtype = out_dtype.decode(errors="replace") if isinstance(out_dtype, bytes) else str(out_dtype)
        out_scale, out_bias = float(attrs.get("out_scale", 1.0)), float(attrs.get("out_bias", 0.0))
        steps = thresholds.shape[-1] if thresholds.ndim else 1
        if not np.isfinite(out_scale) or out_scale <= 0:
            raise self.error(f"MultiThreshold out_scale {out_scale:g} must be positive", node)
        if out_dtype == "BIPOLAR":
            if steps != 1 or not np.isclose(out_bias, -out_scale / 2):
                raise self.error("a BIPOLAR MultiThreshold needs one threshold and out_bias = -out_scale/2",
                                 node)
            return np.float64(out_scale / 2), QType.bipolar_type(), -1, 1
        base = out_bias / out_scale
        if base != round(base):
            raise self.error(f"MultiThreshold out_bias {out_bias:g} is not a whole number of out_scale steps",
                             node)
        qmin, qmax = int(round(base)), int(round(base)) + steps
        qtype = QType.for_range(qmin, qmax)
        if qtype.bits > MAX_BITS:
            raise self.error(f"MultiThreshold with {steps} thresholds gives {qtype}, wider than {MAX_BITS} bits",
                             node)
        return np.float64(out_scale), qtype, qmin, qmax

    def quant_params(self, node):
        """(scale, qtype, qmin, qmax) of a Quant/BipolarQuant node with constant parameters."""
        if node.op_type == "MultiThreshold":
            return self.multithreshold_params(node)
        if node.op_type == "BipolarQuant":
            return self.const_input(node, 1), QType.bipolar_type(), -1, 1
        if node.op_type != "Quant":
            raise self.error(f"{node.op_type} is not supported here (use Quant or BipolarQuant)",
                             node)
        scale, zeropt, bits = (self.const_input(node, i) for i in (1, 2, 3))
        attrs = node_attributes(node)
        if np.any(zeropt != 0):
            raise self.error("Quant with a non-zero zero point is not supported (use zero point 0)",
                             node)
        if bits.size != 1 or not np.isfinite(bits).all() or float(bits) != int(bits):
            raise self.error(f"bit width {bits} must be a scalar integer", node)
        bits = int(bits)
        if not 1 <= bits <= MAX_BITS:
            raise self.error(f"bit width {bits} is out of range: finn-rtl supports 1 to {MAX_BITS} "
                             "bits", node)
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        rounding = attrs.get("rounding_mode", b"ROUND")
        rounding = rounding.decode(errors="replace") if isinstance(rounding, bytes) else rounding
        if not isinstance(rounding, str) or rounding.upper() not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
            raise self.error(f"rounding mode {rounding} is not supported (ROUND, FLOOR, CEIL)",
                             node)
        if bits == 1 and signed:
            return scale, QType.bipolar_type(), -1, 1
        from qonnx.custom_op.general.quant import max_int, min_int
        return scale, QType(bits, signed), int(min_int(signed, narrow, bits)), int(max_int(signed, narrow, bits))

    def constant_weights(self, node, out_axis: int = 1):
        """Integer weights and per-output-channel scale of a MatMul's ([mw, mh], out_axis 1) or
        a Conv's ([out, in, *kernel], out_axis 0) weight input."""
        tensor = node.input[1]
        if self.init(tensor) is not None:
            return self.annotated_weights(node, tensor, out_axis)
        producer = self.w.find_producer(tensor)
        if producer is None or producer.op_type not in ("Quant", "BipolarQuant") or \
                self.init(producer.input[0]) is None:
            raise self.error("MatMul weights must be a constant tensor through Quant/BipolarQuant; "
                             "non-constant (dynamic) weights are not supported", node)
        scale, qtype, qmin, qmax = self.quant_params(producer)
        real = np.asarray(self._run_nodes([producer], {}, producer.output[0]), dtype=np.float64)
        scale_full = np.broadcast_to(np.asarray(scale, dtype=np.float64), real.shape)
        if np.any(scale_full <= 0):
            raise self.error("weight quantizer scale must be positive", producer)
        if (real.ndim != 2) if out_axis == 1 else (real.ndim not in (3, 4)):
            raise self.error(f"weights of rank {real.ndim} do not fit {node.op_type}", node)
        per_channel = np.moveaxis(scale_full, out_axis, 0).reshape(real.shape[out_axis], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise self.error("weight scale varies along the input dimension; only per-tensor or "
                             "per-output-channel weight scales are supported", producer)
        ints = np.round(real / scale_full)
        if not np.allclose(ints * scale_full, real, rtol=1e-6, atol=0):
            raise self.error("weights are not integer multiples of their scale", producer)
        ints = ints.astype(np.int64)
        if qtype.bipolar and not qtype.contains(ints):
            raise self.error("bipolar weights must be +-1 times the scale", producer)
        if not qtype.bipolar:
            qtype = QType.for_range(min(ints.min(), qmin), max(ints.max(), qmax))
        return ints, qtype, per_channel[:, 0]

    def _run_nodes(self, nodes, inputs: dict, output: str):
        """Execute nodes with qonnx (as the golden model does) on the given inputs."""
        _, execute_onnx, _ = _qonnx()
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes

        inits, seen = [], set()
        for node in nodes:
            for tensor in node.input:
                value = self.init(tensor) if tensor else None
                if value is not None and tensor not in seen:
                    seen.add(tensor)
                    inits.append(onnx.numpy_helper.from_array(np.asarray(value), tensor))
        graph_inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(arr.shape))
                        for name, arr in inputs.items()]
        graph = helper.make_graph(list(nodes), "chain", graph_inputs,
                                  [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
                                  initializer=inits)
        model = helper.make_model(graph, opset_imports=list(self.w.model.opset_import))
        model.ir_version = self.w.model.ir_version
        try:
            wrapper = ModelWrapper(model).transform(InferShapes())
            return execute_onnx(wrapper, {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})[output]
        except Exception as exc:  # onnxruntime and qonnx raise many types for invalid nodes
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise self.error(f"qonnx cannot execute this op ({detail}); check its attributes and inputs",
                             nodes[0]) from None

    # -- the walk ---------------------------------------------------------------
    def run(self) -> Streamlined:
        w = self.w
        for node in w.graph.node:
            if node.op_type in UNSUPPORTED_HINTS:
                raise self.error(UNSUPPORTED_HINTS[node.op_type], node)
            if node.op_type not in SUPPORTED:
                raise self.error(f"op {node.op_type} is not supported; supported ops: "
                                 f"{', '.join(sorted(set(SUPPORTED)))}", node)
        if not any(n.op_type in ("Quant", "BipolarQuant", "MultiThreshold") for n in w.graph.node) and \
                not any(w.get_tensor_datatype(i.name).is_integer() for i in w.graph.initializer):
            raise CompileError("float-only model: there is no Quant/BipolarQuant node; export a "
                               "quantized model (Brevitas/QKeras) with 1-8 bit weights and activations")
        tensor = w.graph.input[0].name
        input_quantizer, tensor, current = self.input_quantizer(tensor)
        # Stream order of the current tensor (stream index -> flat index); before the first layer
        # the host may still choose it, tracked as flat index -> quantizer output flat index.
        self.order = None
        self.spatial_shape = None  # [C, H, W] of the last image tensor
        self.free_source = np.arange(input_quantizer.elements)
        self.input_order = None
        self.head = None  # (op type, the user's node name) of a host-side head
        node = self.next_node(tensor)
        while node is not None:
            out_tensor = node.output[0]
            if self.head is not None and node.op_type not in SHAPE_ONLY + ("ArgMax", "TopK"):
                raise self.error(f"{node.op_type} after {self.head[0]}: only ArgMax, TopK (k = 1) or "
                                 "reshapes may follow a host-side head", node)
            if node.op_type == "Transpose":
                self.transpose(node)
                if isinstance(current, _Pending):  # e.g. NHWC -> NCHW after a lowered convolution
                    current.chain.append(node)
            elif node.op_type in SHAPE_ONLY:
                # The flat order is unchanged; shapes come from shape inference. Inside a layer's
                # chain, batch-preserving ones (older exports wrap BatchNorm in Unsqueeze/Squeeze)
                # join the chain so that it evaluates as one connected graph.
                if isinstance(current, _Pending) and node.op_type in ("Squeeze", "Unsqueeze", "Identity"):
                    self.check_keeps_batch(node)
                    current.chain.append(node)
            elif node.op_type == "MatMul":
                current = self.matmul(node, current)
            elif node.op_type == "Conv":
                current = self.conv(node, current)
            elif node.op_type == "Im2Col":
                current = self.im2col(node, current)
            elif node.op_type in ("MaxPool", "MaxPoolNHWC"):
                current = self.maxpool(node, current)
            elif node.op_type == "Pad":
                current = self.pad(node, current)
            elif node.op_type in ("AveragePool", "GlobalAveragePool"):
                current = self.avgpool(node, current)
            elif node.op_type in ACTIVATIONS:
                current = self.activation(node, current)
            elif node.op_type == "ArgMax":
                self.argmax(node)
            elif node.op_type == "TopK":
                problem = topk_problem(node, self.init(node.input[1]), w.get_tensor_shape(node.input[0]))
                if problem:
                    raise self.error(problem, node)
                self.label_select = True
                if w.graph.output[0].name != node.output[1]:
                    raise self.error("the model's output must be TopK's indices (label select)", node)
                out_tensor = node.output[1]
            elif node.op_type in HEADS:
                if not self.layers and not isinstance(current, _Pending):
                    raise self.error(f"{node.op_type} before any MatMul/Conv layer", node)
                problem = head_problem(node, w.get_tensor_shape(node.input[0]), self.opset())
                if problem:
                    raise self.error(problem, node)
                original = node.doc_string[len(ORIGIN):] if node.doc_string.startswith(ORIGIN) else node.name
                self.head = (node.op_type, original)
            elif isinstance(current, _Pending):
                if node.op_type not in CHAIN_OPS:
                    raise self.error(f"{node.op_type} cannot follow a MatMul", node)
                current.chain.append(node)
                current.affine = self.affine_step(node, current.affine, len(current.acc_scale))
            else:
                current = self.affine_step_on_ints(node, current)
            if node.op_type in KEEP_LAYOUT and any(t in self.channels_last_tensors for t in node.input):
                self.channels_last_tensors.add(node.output[0])
            tensor = out_tensor
            node = self.next_node(tensor)
        if tensor != w.graph.output[0].name:
            raise CompileError(f"the chain ends at '{tensor}', not at the graph output")
        if isinstance(current, _Pending):
            self.finish_layer(current, None)
            affine = current.affine
        else:
            qtype, affine = current
            if not self.layers:
                raise CompileError("the model has no MatMul layer to map to hardware")
        output = self.output_spec(affine, w.get_tensor_shape(tensor))
        network = NetworkSpec(self.name, tuple(self.layers), input_quantizer.qtype, output,
                              notes=tuple(self.notes), input_order=self.input_order,
                              output_order=None if output.label_select else self.order)
        return Streamlined(network, input_quantizer, w.model)

    # -- stream order -----------------------------------------------------------
    def transpose(self, node):
        shape = self.w.get_tensor_shape(node.input[0])
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
            raise self.error(f"{node.op_type} needs its input channels last (NHWC) in the stream, "
                             "but a Transpose inside the network reorders it; transposes are only "
                             "supported before the first layer and before fully connected layers", node)
        return self.order

    def channels_last_input(self, node):
        """An image op reads its input channels last (NHWC) from the stream."""
        self.stream_order(node, nhwc_order(self.w.get_tensor_shape(node.input[0])))

    def image_output(self, shape):
        """An image op writes its output channels last."""
        self.order = nhwc_order(shape)
        self.spatial_shape = tuple(shape[1:])

    def input_quantizer(self, tensor):
        """Collect the host-side prefix up to the first activation quantizer."""
        w = self.w
        prefix = []
        input_dt = w.get_tensor_datatype(tensor)
        node = self.next_node(tensor)
        while node is not None and node.op_type not in ("Quant", "BipolarQuant", "MultiThreshold", "MatMul"):
            prefix.append(node)
            node = self.next_node(node.output[0])
        if node is None:
            raise CompileError("no layer found after the input")
        if node.op_type == "MatMul":
            if not input_dt.is_integer():
                raise self.error("the float input reaches a MatMul without an input quantizer; "
                                 "add a Quant node on the input or annotate the input with an "
                                 "integer/bipolar qonnx datatype", node)
            allowed = LAYOUT + ELEMENTWISE + ("BatchNormalization", "Im2Col")
            bad = next((n for n in prefix if n.op_type not in allowed), None)
            if bad is not None:
                raise self.error("an integer input may only be reshaped, transposed, or scaled and "
                                 "shifted by constants (Mul/Div/Add/Sub/BatchNormalization) before the "
                                 "first MatMul (or its Im2Col)", bad)
            qtype = QType.bipolar_type() if input_dt.name == "BIPOLAR" else \
                QType.for_range(int(input_dt.min()), int(input_dt.max()))
            if qtype.bits > MAX_BITS:
                raise self.error(f"input datatype {input_dt.name} is wider than {MAX_BITS} bits",
                                 node)
            elements = int(np.prod(w.get_tensor_shape(tensor)[1:]))
            # The walk continues from the input itself: reshapes and transposes set the stream
            # order, and affine ops become the integers' affine view, folded into the first
            # layer's accumulator offset (exactly, as after a pool) and checked by its thresholds.
            return (InputQuantizer(None, 1.0, qtype, elements), tensor,
                    (qtype, _Affine(np.array(1.0), np.array(0.0))))
        scale, qtype, qmin, qmax = self.quant_params(node)
        if np.asarray(scale).size != 1:
            raise self.error("the input quantizer must have one (per-tensor) scale", node)
        prefix.append(node)
        shape = w.get_tensor_shape(node.output[0])
        elements = int(np.prod(shape[1:]))
        graph = helper.make_graph(
            prefix, "input_quantizer", [w.graph.input[0]],
            [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape)],
            initializer=[onnx.numpy_helper.from_array(np.asarray(self.init(t)), t)
                         for t in sorted({t for n in prefix for t in n.input if t and self.init(t) is not None})])
        model = helper.make_model(graph, opset_imports=list(w.model.opset_import))
        model.ir_version = w.model.ir_version
        self.notes.append(f"input quantizer {node.name}: {qtype}, scale {float(scale)}, runs on the host")
        return (InputQuantizer(model.SerializeToString(), float(scale), qtype, elements), node.output[0],
                (qtype, _Affine(np.asarray(scale, dtype=np.float64).reshape(()), np.array(0.0))))

    def matmul(self, node, current):
        if isinstance(current, _Pending):
            raise self.error("two MatMuls without an activation quantizer between them; insert a "
                             "Quant/BipolarQuant activation", node)
        if len(self.dynamic_inputs(node)) != 1 or node.input[0] not in self.dynamic_inputs(node):
            raise self.error("MatMul needs the activation as first input and constant weights as "
                             "second; non-constant weights are not supported", node)
        qtype, affine = current
        weights_t, weight_type, w_scale = self.constant_weights(node)
        weights = weights_t.T  # [mh, mw]
        mh, mw = weights.shape
        in_shape = self.w.get_tensor_shape(node.input[0])
        if len(in_shape) == 4 and in_shape[0] == 1 and in_shape[-1] == mw:
            return self.lowered_conv(node, current, weights, weight_type, w_scale)
        if in_shape[-1] != mw or int(np.prod(in_shape)) != mw:
            raise self.error(f"MatMul input of shape {in_shape} with {mw}-input weights; only "
                             "[1, features] inputs are supported (flatten first)", node)
        channel_affine = affine
        if np.asarray(affine.offset).size not in (1, mw):
            # Per-channel offsets of a flattened image: per element, in the model's order.
            channel_affine = _Affine(affine.scale, self.flat_offset(affine.offset))
        weights = weights[:, self.stream_order(node, None)]
        x_scale = np.asarray(affine.scale, dtype=np.float64)
        if x_scale.size != 1:
            if not np.all(x_scale == x_scale.reshape(-1)[0]):
                raise self.error("the MatMul input has per-channel scales; only a per-tensor "
                                 "activation scale can be folded into integer weights", node)
            x_scale = x_scale.reshape(-1)[0]
        x_offset = np.broadcast_to(np.asarray(channel_affine.offset, dtype=np.float64), (mw,))
        acc_scale = float(x_scale) * w_scale
        acc_offset = (weights_t.T @ x_offset) * w_scale  # model order on both sides
        self.order = np.arange(mh)
        return _Pending(node.name, weights, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                        _Affine(acc_scale, acc_offset), pools=[])

    # -- convolutional layers ---------------------------------------------------------
    def im2col(self, node, current):
        """qonnx/FINN Im2Col on a [1, H, W, C] tensor: the sliding-window generator of the
        MatMul that follows (rows in (ky, kx, channel) order, as the MVTU's weight columns)."""
        if isinstance(current, _Pending):
            raise self.error("two layers without an activation quantizer between them; insert a "
                             "Quant/BipolarQuant activation", node)
        qtype, affine = current
        shape = self.w.get_tensor_shape(node.input[0])
        if shape is None or len(shape) != 4 or shape[0] != 1:
            raise self.error(f"Im2Col input of shape {shape}; expected [1, H, W, C]", node)
        _, height, width, channels = shape
        attrs = node_attributes(node)
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.error(f"dilations {attrs['dilations']} are not supported (only 1)", node)
        kernel, stride = tuple(attrs.get("kernel_size", [])), tuple(attrs.get("stride", []))
        pads = tuple(attrs.get("pad_amount", [0, 0, 0, 0]))  # top, left, bottom, right
        if len(kernel) != 2 or len(stride) != 2 or len(pads) != 4:
            raise self.error("Im2Col needs 2-D kernel_size and stride and four pad_amount values", node)
        self.stream_order(node, np.arange(int(np.prod(shape))))  # channels last: NHWC as it is
        window = self.add_window(node, "swg", channels, height, width, kernel, stride, pads, qtype, affine,
                                 pad_real=float(attrs.get("pad_value", 0)))
        out_shape = self.w.get_tensor_shape(node.output[0])
        if list(out_shape[1:3]) != [window.out_h, window.out_w]:
            raise self.error(f"Im2Col output {out_shape} does not match {window.out_h}x{window.out_w} windows",
                             node)
        self.im2col_windows[node.output[0]] = (window, channels)
        return current

    def lowered_conv(self, node, current, weights, weight_type, w_scale):
        """A MatMul on a [1, H, W, C] tensor: a convolution lowered to Im2Col + MatMul, or a
        pointwise one (qonnx lowers 1x1 stride-1 convolutions to a MatMul alone)."""
        qtype, affine = current
        in_shape = self.w.get_tensor_shape(node.input[0])
        if node.input[0] in self.im2col_windows:
            window, channels = self.im2col_windows[node.input[0]]
        else:
            _, height, width, channels = in_shape
            self.stream_order(node, np.arange(int(np.prod(in_shape))))
            window = self.add_window(node, "swg", channels, height, width, (1, 1), (1, 1), (0, 0, 0, 0), qtype,
                                     affine)
        x_scale = np.asarray(affine.scale, dtype=np.float64).reshape(-1)
        if not np.all(x_scale == x_scale[0]):
            raise self.error("the MatMul input has per-channel scales; only a per-tensor activation "
                             "scale can be folded into integer weights", node)
        x_offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
        mh, mw = weights.shape
        acc_scale = float(x_scale[0]) * w_scale
        acc_offset = (weights @ np.tile(x_offset, mw // channels)) * w_scale  # columns (ky, kx, c)
        out_shape = self.w.get_tensor_shape(node.output[0])
        self.order = np.arange(int(np.prod(out_shape)))  # channels last, as the stream
        self.spatial_shape = (out_shape[3], out_shape[1], out_shape[2])
        self.channels_last_tensors.add(node.output[0])
        return _Pending(node.name, weights, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                        _Affine(acc_scale, acc_offset), rank=4, vectors=window.out_h * window.out_w,
                        conv_channels=channels, pools=[])

    def spatial_input(self, node):
        """(channels, height, width, rank) of a [1, C, H, W] or [1, C, W] input (1-D: height 1)."""
        shape = self.w.get_tensor_shape(node.input[0])
        if shape is None or len(shape) not in (3, 4) or shape[0] != 1:
            raise self.error(f"{node.op_type} input of shape {shape}; expected [1, C, H, W] or "
                             "[1, C, W]", node)
        return shape[1], (shape[2] if len(shape) == 4 else 1), shape[-1], len(shape)

    def window_attrs(self, node, rank, kernel):
        """Kernel, stride and (top, left, bottom, right) pads as 2-D, checking what is supported."""
        attrs = node_attributes(node)
        dims = rank - 2
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID"):
            raise self.error(f"auto_pad={auto_pad} is not supported; export explicit pads", node)
        if any(d != 1 for d in attrs.get("dilations", [1] * dims)):
            raise self.error(f"dilations {attrs['dilations']} are not supported (only 1)", node)
        strides = list(attrs.get("strides", [1] * dims))
        pads = list(attrs.get("pads", [0] * 2 * dims))
        kernel = list(kernel)
        if dims == 1:
            kernel, strides, pads = [1] + kernel, [1] + strides, [0, pads[0], 0, pads[1]]
        else:
            pads = [pads[0], pads[1], pads[2], pads[3]]
        return tuple(kernel), tuple(strides), tuple(pads), attrs

    def pad_value(self, node, qtype, affine, channels, real=0.0):
        """The integer whose real value is `real` (default 0, the padding of Conv and Pad)."""
        scale = np.broadcast_to(np.asarray(affine.scale, dtype=np.float64), (channels,))
        offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
        values = (real - offset) / scale
        value = float(np.round(values[0]))
        if not np.allclose(values, value, atol=1e-6) or qtype.bipolar or not qtype.contains([int(value)]):
            raise self.error(f"padding with {real} needs an integer {values[0]:.4g} of {qtype}, which "
                             "does not exist (bipolar and offset tensors cannot be zero-padded)", node)
        return int(value)

    def add_window(self, node, tag, channels, height, width, kernel, stride, pads, qtype, affine, pad_real=0.0):
        """Padding (if any) and the sliding-window generator in front of a conv or pool."""
        if any(pads):
            value = self.pad_value(node, qtype, affine, channels, real=pad_real)
            self.layers.append(PadSpec(f"{node.name}_pad", channels, height, width, pads, qtype, value))
            height, width = height + pads[0] + pads[2], width + pads[1] + pads[3]
        if kernel[0] > height or kernel[1] > width:
            raise self.error(f"kernel {kernel} is larger than the padded {height}x{width} input", node)
        window = SlidingWindowSpec(f"{node.name}_{tag}", channels, height, width, kernel, stride, qtype)
        self.layers.append(window)
        return window

    def conv(self, node, current):
        if isinstance(current, _Pending):
            raise self.error("two layers without an activation quantizer between them; insert a "
                             "Quant/BipolarQuant activation", node)
        qtype, affine = current
        channels, height, width, rank = self.spatial_input(node)
        weights, weight_type, w_scale = self.constant_weights(node, out_axis=0)
        out_channels = weights.shape[0]
        kernel, stride, pads, attrs = self.window_attrs(node, rank, weights.shape[2:])
        group = attrs.get("group", 1)
        weights = weights.reshape(out_channels, weights.shape[1], *kernel)  # 1-D: kernel height 1
        depthwise = group == channels == out_channels and weights.shape[1] == 1 and group > 1
        if not depthwise and group != 1:
            raise self.error(f"grouped convolution (group={group}) is not supported; use group=1 or "
                             "depthwise (group = in channels = out channels)", node)
        x_scale = np.asarray(affine.scale, dtype=np.float64).reshape(-1)
        if not np.all(x_scale == x_scale[0]):
            raise self.error("the Conv input has per-channel scales; only a per-tensor activation "
                             "scale can be folded into integer weights", node)
        self.channels_last_input(node)
        window = self.add_window(node, "swg", channels, height, width, kernel, stride, pads, qtype, affine)
        x_offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,))
        bias = np.zeros(out_channels)
        if len(node.input) > 2 and node.input[2]:
            if not self.is_constant(node.input[2]):
                raise self.error("Conv bias must be constant", node)
            bias = self.constant_value(node.input[2]).reshape(-1)
        acc_scale = float(x_scale[0]) * w_scale
        if depthwise:  # a vector unit: channel c sees only input channel c, weights [C, K*K]
            acc_offset = np.einsum("okl,o->o", weights[:, 0], x_offset) * w_scale + bias
            matrix = weights[:, 0].reshape(out_channels, -1)
        else:
            acc_offset = np.einsum("oikl,i->o", weights, x_offset) * w_scale + bias
            matrix = weights.transpose(0, 2, 3, 1).reshape(out_channels, -1)  # columns in (ky, kx, c) order
        out_shape = self.w.get_tensor_shape(node.output[0])
        if int(np.prod(out_shape[2:])) != window.out_h * window.out_w:
            raise self.error(f"output shape {out_shape} does not match {window.out_h}x{window.out_w} "
                             "windows", node)
        self.image_output(out_shape)
        return _Pending(node.name, matrix, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                        _Affine(acc_scale, acc_offset), rank=rank, vectors=window.out_h * window.out_w,
                        conv_channels=channels, pools=[], depthwise=depthwise)

    def constant_value(self, tensor) -> np.ndarray:
        """A constant tensor's value: an initializer, or computed (e.g. a quantized bias) with qonnx."""
        value = self.init(tensor)
        if value is not None:
            return np.asarray(value, dtype=np.float64)
        nodes = []

        def producers(t):
            producer = self.w.find_producer(t)
            if producer is not None:
                for source in producer.input:
                    if source and self.init(source) is None:
                        producers(source)
                nodes.append(producer)

        producers(tensor)
        return np.asarray(self._run_nodes(nodes, {}, tensor), dtype=np.float64)

    def maxpool(self, node, current):
        if isinstance(current, _Pending):
            pending = current
            pending.pools.append(node)  # moved past the activation (see finish_layer)
            # The threshold search evaluates the chain without the pool (a max pool commutes
            # with the rising activation): the pool's output is its input, whatever ops (a
            # lowered convolution's Transpose and bias Add) came before it.
            pending.chain.append(helper.make_node("Identity", [node.input[0]], [node.output[0]],
                                                  name=f"{node.name}_skipped", doc_string=node.doc_string))
            return pending
        qtype, affine = current
        if np.any(np.asarray(affine.scale) <= 0):
            raise self.error("MaxPool on a negatively scaled tensor is a min pool, which is not "
                             "supported", node)
        self.add_maxpool(node, qtype)
        return current

    def add_maxpool(self, node, qtype):
        nhwc = node.op_type == "MaxPoolNHWC"  # FINN's MaxPool on a [1, H, W, C] tensor
        if nhwc:
            shape = self.w.get_tensor_shape(node.input[0])
            if shape is None or len(shape) != 4 or shape[0] != 1:
                raise self.error(f"MaxPoolNHWC input of shape {shape}; expected [1, H, W, C]", node)
            (_, height, width, channels), rank = shape, 4
        else:
            channels, height, width, rank = self.spatial_input(node)
        attrs = node_attributes(node)
        kernel, stride, pads, _ = self.window_attrs(node, rank, attrs["kernel_shape"])
        if any(pads):
            raise self.error("MaxPool with pads is not supported; pad before pooling", node)
        out_shape = self.w.get_tensor_shape(node.output[0])
        if nhwc:
            self.stream_order(node, np.arange(int(np.prod(shape))))
        else:
            self.channels_last_input(node)
        window = self.add_window(node, "swg", channels, height, width, kernel, stride, pads, qtype, None)
        spatial = out_shape[1:3] if nhwc else out_shape[2:]
        if int(np.prod(spatial)) != window.out_h * window.out_w:
            raise self.error(f"MaxPool output {out_shape} needs ceil_mode, which is not supported", node)
        self.layers.append(PoolSpec(f"{node.name}", channels, window.window,
                                    window.out_h * window.out_w, "max", qtype))
        if nhwc:
            self.order = np.arange(int(np.prod(out_shape)))
            self.spatial_shape = (out_shape[3], out_shape[1], out_shape[2])
        else:
            self.image_output(out_shape)

    def avgpool(self, node, current):
        """Average pooling as a window sum; the scale 1/window joins the following chain, so a
        Trunc or Quant after it becomes thresholds on the sum."""
        if isinstance(current, _Pending):
            raise self.error(f"{node.op_type} between a layer and its activation quantizer is not "
                             "supported; pool after the activation", node)
        qtype, affine = current
        channels, height, width, rank = self.spatial_input(node)
        out_shape = self.w.get_tensor_shape(node.output[0])
        self.channels_last_input(node)
        if node.op_type == "GlobalAveragePool":
            window, pixels = height * width, 1  # the stream of one image is one window
        else:
            attrs = node_attributes(node)
            kernel, stride, pads, _ = self.window_attrs(node, rank, attrs["kernel_shape"])
            if any(pads) or attrs.get("ceil_mode", 0):
                raise self.error("AveragePool with pads or ceil_mode is not supported", node)
            swg = self.add_window(node, "swg", channels, height, width, kernel, stride, pads, qtype, None)
            window, pixels = swg.window, swg.out_h * swg.out_w
        pool = PoolSpec(node.name, channels, window, pixels, "sum", qtype)
        self.layers.append(pool)
        if int(np.prod(out_shape[2:])) != pixels:
            raise self.error(f"output shape {out_shape} does not match {pixels} windows", node)
        self.image_output(out_shape)
        scale = np.broadcast_to(np.asarray(affine.scale, dtype=np.float64), (channels,)) / window
        offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (channels,)).copy()
        return _Pending(node.name, None, None, pool.output_type, scale, offset, node.output[0], [],
                        _Affine(scale, offset), rank=len(out_shape), vectors=pixels, pools=[],
                        sum_window=window)

    def pad(self, node, current):
        if isinstance(current, _Pending):
            raise self.error("Pad between a layer and its activation quantizer is not supported", node)
        qtype, affine = current
        channels, height, width, rank = self.spatial_input(node)
        attrs = node_attributes(node)
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = attrs.get("pads")
        if pads is None:
            pads = [int(v) for v in self.const_input(node, 1)]
        constant = float(self.const_input(node, 2)) if len(node.input) > 2 and node.input[2] else 0.0
        if mode != "constant":
            raise self.error(f"Pad mode {mode} is not supported (only constant)", node)
        half = len(pads) // 2
        begin, end = pads[:half], pads[half:]
        if begin[:2] != [0, 0] or end[:2] != [0, 0] or min(pads) < 0:
            raise self.error(f"Pad {pads} pads batch or channel axes (or crops); only spatial "
                             "padding is supported", node)
        four = (begin[2], begin[3], end[2], end[3]) if rank == 4 else (0, begin[2], 0, end[2])
        value = self.pad_value(node, qtype, affine, channels, constant)
        self.channels_last_input(node)
        self.layers.append(PadSpec(node.name, channels, height, width, four, qtype, value))
        out_shape = self.w.get_tensor_shape(node.output[0])
        self.image_output(out_shape)
        return current

    def flat_offset(self, offset):
        """Per-channel offsets of the last image tensor, per element of its flattened form."""
        shape = self.spatial_shape
        return np.broadcast_to(np.asarray(offset, dtype=np.float64).reshape(-1, *([1] * (len(shape) - 1))),
                               shape).reshape(-1)

    def affine_step(self, node, affine: _Affine, channels: int) -> _Affine:
        """Analytic float64 composition of one op on an affine view; non-affine ops give None."""
        if affine is None or node.op_type == "Relu":
            return None
        if node.op_type == "BatchNormalization":
            gamma, beta, mean, var = (self.channel_vector(node, self.const_input(node, i), channels)
                                      for i in (1, 2, 3, 4))
            attrs = node_attributes(node)
            k = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            return _Affine(affine.scale * k, (affine.offset - mean) * k + beta)
        const_first = self.init(node.input[0]) is not None
        c = self.channel_vector(node, self.const_input(node, 0 if const_first else 1), channels)
        if node.op_type == "Mul":
            return _Affine(affine.scale * c, affine.offset * c)
        if node.op_type == "Add":
            return _Affine(affine.scale, affine.offset + c)
        if node.op_type == "Sub":
            if const_first:
                return _Affine(-affine.scale, c - affine.offset)
            return _Affine(affine.scale, affine.offset - c)
        if node.op_type == "Div" and not const_first:
            return _Affine(affine.scale / c, affine.offset / c)
        raise self.error(f"{node.op_type} with a constant first operand is not affine", node)

    def affine_step_on_ints(self, node, current):
        qtype, affine = current
        channels = self.w.get_tensor_shape(node.input[0])[-1]
        if node.op_type == "Relu":
            if qtype.min >= 0 and np.all(np.asarray(affine.scale) > 0) and np.all(affine.offset == 0):
                return current
            raise self.error("Relu on a signed quantized activation cannot be folded; put the Relu "
                             "before the activation quantizer", node)
        if node.op_type not in ELEMENTWISE + ("BatchNormalization",):
            raise self.error(f"{node.op_type} cannot follow a quantized activation here", node)
        return qtype, self.affine_step(node, affine, channels)

    def chain_quant(self, pending: _Pending, quant, acc: np.ndarray) -> np.ndarray:
        """Integer quantizer output for accumulator values acc [rows, mh] (ints)."""
        values = acc * pending.acc_scale + pending.acc_offset
        rows, channels = values.shape
        ones = [1] * (pending.rank - 2)
        if pending.matmul_output in self.channels_last_tensors:  # a lowered convolution's [1, H, W, C]
            values = values.reshape(rows, *ones, channels)
        else:
            values = values.reshape(rows, channels, *ones)
        feeds = {pending.matmul_output: values}
        real = self._run_nodes(pending.chain + [quant], feeds, quant.output[0])
        real = np.asarray(real).reshape(rows, channels)
        scale = self.channel_vector(quant, self.output_scale(quant), len(pending.acc_scale))
        return np.round(np.asarray(real, dtype=np.float64) / scale).astype(np.int64)

    def output_scale(self, node):
        """The real value of one integer step at an activation's output."""
        if node.op_type == "Trunc" and len(node.input) == 6:  # Trunc v2 has an output scale input
            return self.const_input(node, 4)
        if node.op_type == "MultiThreshold":
            return self.multithreshold_params(node)[0]
        return self.const_input(node, 1)

    def trunc_params(self, node, pending):
        """Scale, type and integer range of a Trunc output, from the accumulator's bounds."""
        for index in range(1, len(node.input)):
            self.const_input(node, index)
        if np.any(self.const_input(node, 2) != 0):
            raise self.error("Trunc with a non-zero zero point is not supported", node)
        lo, hi = self._acc_bounds(pending)
        ends = self.chain_quant(pending, node, np.stack([lo, hi]))
        qmin, qmax = int(ends.min()), int(ends.max())
        out_type = QType.for_range(qmin, qmax)
        if out_type.bits > MAX_BITS:
            raise self.error(f"Trunc output needs {out_type.bits} bits; finn-rtl supports up to {MAX_BITS}", node)
        return self.output_scale(node), out_type, qmin, qmax

    def activation(self, quant, current):
        if not isinstance(current, _Pending):
            raise self.error("an activation quantizer must follow a MatMul (a requantization "
                             "between two quantizers is not supported)", quant)
        if quant.op_type == "Trunc":
            scale, out_type, qmin, qmax = self.trunc_params(quant, current)
        else:
            scale, out_type, qmin, qmax = self.quant_params(quant)
        if np.any(np.asarray(scale) <= 0):
            raise self.error("activation quantizer scale must be positive", quant)
        thresholds = self.find_thresholds(current, quant, out_type, qmin, qmax)
        self.finish_layer(current, (thresholds, out_type, qmin))
        return out_type, _Affine(self.channel_vector(quant, scale, len(current.acc_scale)), np.zeros(()))

    def find_thresholds(self, pending: _Pending, quant, out_type, qmin, qmax) -> np.ndarray:
        """Per-channel integer thresholds by binary search on the exact qonnx evaluation."""
        mh = len(pending.acc_scale)
        lo, hi = self._acc_bounds(pending)
        q_lo = self.chain_quant(pending, quant, lo[None, :])[0]
        q_hi = self.chain_quant(pending, quant, hi[None, :])[0]
        decreasing = q_lo > q_hi
        if np.any(decreasing):
            # Those channels compare the negated accumulator, so that every channel's activation
            # rises with what is compared (negating the weights instead could widen them a bit).
            pending.sign = np.where(decreasing, -1, 1)
            pending.acc_scale = pending.acc_scale * pending.sign
            lo, hi = self._acc_bounds(pending)
        # A bipolar output has one step, from -1 straight to +1.
        levels = np.array([1]) if out_type.bipolar else np.arange(qmin + 1, qmax + 1)
        n = len(levels)
        low = np.broadcast_to(lo - 1, (n, mh)).copy()   # largest acc known below the level
        high = np.broadcast_to(hi + 1, (n, mh)).copy()  # smallest acc known at or above it
        start = self.chain_quant(pending, quant, np.broadcast_to(lo, (1, mh)))[0]
        reached = start[None, :] >= levels[:, None]
        high[reached] = lo[np.nonzero(reached)[1]]
        while np.any(high - low > 1):
            mid = (low + high) // 2
            q = self.chain_quant(pending, quant, mid)
            above = q >= levels[:, None]
            active = high - low > 1
            high = np.where(active & above, mid, high)
            low = np.where(active & ~above, mid, low)
        thresholds = high.T  # [mh, n]
        self._check_steps(pending, quant, thresholds, lo, hi, out_type, qmin)
        return thresholds

    def _acc_bounds(self, pending):
        """Bounds of the compared value: the accumulator, negated on decreasing channels."""
        sign = np.ones(len(pending.acc_scale), dtype=np.int64) if pending.sign is None else pending.sign
        if pending.sum_window:
            lo = pending.sum_window * pending.input_type.min
            hi = pending.sum_window * pending.input_type.max
            return np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)
        weights = pending.weights * sign[:, None]
        spec = MVTUSpec("bounds", weights, pending.input_type, QType.for_range(weights.min(), weights.max()))
        return spec.acc_range

    def _check_steps(self, pending, quant, thresholds, lo, hi, out_type, qmin):
        probes = np.concatenate([thresholds - 1, thresholds, lo[:, None], hi[:, None]], axis=1)
        probes = np.clip(probes, lo[:, None], hi[:, None]).T  # [rows, mh]
        q = self.chain_quant(pending, quant, probes)
        counts = (probes.T[:, :, None] >= thresholds[:, None, :]).sum(axis=2).T
        expect = np.where(counts > 0, 1, -1) if out_type.bipolar else qmin + counts
        bad = np.nonzero(q != expect)
        if len(bad[0]):
            channel = int(bad[1][0])
            raise self.error(f"the activation of channel {channel} is not a monotonic step function "
                             "of the accumulator, so it cannot be expressed as thresholds", quant)

    def make_layer(self, pending: _Pending, activation):
        if pending.sum_window:  # thresholds on a pooled sum: a standalone thresholding layer
            if activation is None:
                return None  # the pool's sums are the output
            thresholds, out_type, qmin = activation
            return ThresholdSpec(f"{pending.name}_thresholds", len(pending.acc_scale), pending.vectors,
                                 pending.input_type, thresholds, out_type, qmin, pending.sign)
        weight_type = pending.weight_type
        if not weight_type.bipolar:
            weight_type = QType.for_range(min(weight_type.min, pending.weights.min()),
                                          max(weight_type.max, pending.weights.max()))
        if pending.depthwise:
            thresholds = {}
            if activation is not None:
                thresholds = dict(zip(("thresholds", "output_type", "out_base"), activation),
                                  channel_sign=pending.sign)
            return VectorUnitSpec(pending.name, pending.weights, pending.vectors, pending.input_type,
                                  weight_type, **thresholds)
        shape = {"vectors": pending.vectors, "conv_channels": pending.conv_channels}
        if activation is None:
            return MVTUSpec(pending.name, pending.weights, pending.input_type, weight_type, **shape)
        thresholds, out_type, qmin = activation
        return MVTUSpec(pending.name, pending.weights, pending.input_type, weight_type,
                        thresholds=thresholds, output_type=out_type, out_base=qmin,
                        channel_sign=pending.sign, **shape)

    def finish_layer(self, pending: _Pending, activation):
        """Emit the layer and then the max pools met in its chain (moved past the activation)."""
        layer = self.make_layer(pending, activation)
        if layer is not None:
            self.layers.append(layer)
        pooled_type = pending.input_type if layer is None else layer.output_type  # None: pool sums
        for pool in pending.pools:
            if activation is not None and pending.sign is not None:
                raise self.error("MaxPool between a layer and its activation, where the activation "
                                 "falls as the accumulator rises for some channels: the pool cannot "
                                 "move past it; pool after the activation quantizer instead", pool)
            if activation is None and np.any(np.asarray(pending.acc_scale) < 0):
                raise self.error("MaxPool on an output with a negative scale is a min pool, which "
                                 "is not supported", pool)
            self.add_maxpool(pool, pooled_type)

    def check_keeps_batch(self, node) -> None:
        axes = node_attributes(node).get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.init(node.input[1])
        if axes is None and node.op_type == "Squeeze":
            raise self.error("Squeeze without axes inside a layer's chain: give the axes explicitly", node)
        if axes is not None and 0 in [int(a) for a in np.asarray(axes).reshape(-1)]:
            raise self.error(f"{node.op_type} of the batch axis inside a layer's chain is not supported", node)

    def opset(self) -> int:
        return next((o.version for o in self.w.model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def argmax(self, node):
        attrs = node_attributes(node)
        if attrs.get("keepdims", 1) not in (0, 1) or attrs.get("axis", 0) not in (1, -1):
            raise self.error("ArgMax must reduce the feature axis", node)
        self.label_select = True

    def output_spec(self, affine: _Affine, shape) -> OutputSpec:
        last = self.layers[-1]
        if affine is None:
            raise CompileError("the ops after the last MatMul are not affine (e.g. a Relu without a "
                               "quantizer); end the model with an affine tail or a quantizer",
                               last.name)
        if shape is not None and len(shape) > 2:  # an image output: per-channel values per element
            self.spatial_shape = tuple(shape[1:])
            scale, offset = (self.flat_offset(np.broadcast_to(v, (shape[1],))) for v in (affine.scale, affine.offset))
        else:
            scale = np.broadcast_to(affine.scale, (last.out_elements,)).astype(np.float64)
            offset = np.broadcast_to(affine.offset, (last.out_elements,)).astype(np.float64)
        if self.label_select and not (isinstance(last, MVTUSpec) and last.vectors == 1):
            raise CompileError("label select (ArgMax) needs a fully connected last layer", last.name)
        uniform = np.allclose(scale, scale[0], rtol=1e-6) and np.allclose(offset, offset[0], rtol=1e-6)
        if self.label_select and not uniform and not self.label_select_requested:
            # The model's own ArgMax follows per-class scaling: the integers alone cannot rank the
            # classes, so the accelerator returns scores and the host applies affine and argmax.
            self.notes.append("ArgMax after per-class output scaling: label select runs on the host")
            self.note_dropped_head()
            return OutputSpec(scale, offset, label_select=False, host_argmax=True)
        if self.label_select:
            if not uniform:
                raise CompileError("label select needs one output scale and offset for all classes; "
                                   "this model has per-class output scaling", last.name)
            if scale[0] < 0:
                if last.thresholds is not None:
                    raise CompileError("label select on a negatively scaled quantized output is not "
                                       "supported", last.name)
                self.layers[-1] = MVTUSpec(last.name, -last.weights, last.input_type,
                                           QType.bipolar_type() if last.weight_type.bipolar else
                                           QType.for_range(-last.weights.max(), -last.weights.min()))
                scale, offset = -scale, offset
            self.note_dropped_head()
            return OutputSpec(scale, offset, True)
        head, head_node = self.head or (None, None)
        return OutputSpec(scale, offset, False, head=head, head_node=head_node)

    def note_dropped_head(self):
        if self.head is not None:
            self.notes.append(f"{self.head[0]} before the final ArgMax/TopK keeps the top-1 class: not computed")


def streamline(source, name: str = "finn_rtl_top", label_select: bool = False) -> Streamlined:
    """QONNX model (path or ModelProto) -> integer NetworkSpec plus the host input quantizer."""
    wrapper = clean(source)
    return _Walker(wrapper, name, label_select).run()
