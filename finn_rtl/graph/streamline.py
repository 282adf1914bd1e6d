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

from . import handlers
from .datatypes import QType
from .errors import CompileError
from .handlers import ELEMENTWISE, HANDLERS, KEEP_LAYOUT, OUTPUT_INDEX, SHAPE_ONLY, UNSUPPORTED_HINTS
from .ingest import clean
from .layout import StreamLayout
from .onnx_graph import GraphView, node_error
from .quantizers import MAX_BITS, quant_params
from .network import Edge, NetworkSpec, OutputSpec
from .specs import MVTUSpec, ThresholdSpec, VectorUnitSpec
from .thresholds import ThresholdSearch
from .walk_state import Affine, Pending, Quantized

# What the walk accepts: every op with a handler, and Gemm (ingest rewrites it to MatMul).
SUPPORTED = tuple(sorted(set(HANDLERS) | {"Gemm"}))


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


class Walker:
    def __init__(self, wrapper, name: str, label_select: bool):
        self.w = wrapper
        self.name = name
        self.label_select = label_select
        self.label_select_requested = label_select
        self.layers: list[MVTUSpec] = []
        self.notes: list[str] = []
        self.g = GraphView(wrapper)
        self.layout: StreamLayout | None = None  # from the input quantizer's output on
        self.im2col_windows: dict[str, tuple] = {}  # Im2Col output -> (window spec, channels)

    # -- the walk ---------------------------------------------------------------
    def run(self) -> Streamlined:
        w = self.w
        for node in w.graph.node:
            if node.op_type in UNSUPPORTED_HINTS:
                raise node_error(UNSUPPORTED_HINTS[node.op_type], node)
            if node.op_type not in SUPPORTED:
                raise node_error(f"op {node.op_type} is not supported; supported ops: "
                                 f"{', '.join(sorted(set(SUPPORTED)))}", node)
        if not any(n.op_type in ("Quant", "BipolarQuant", "MultiThreshold") for n in w.graph.node) and \
                not any(w.get_tensor_datatype(i.name).is_integer() for i in w.graph.initializer):
            raise CompileError("float-only model: there is no Quant/BipolarQuant node; export a "
                               "quantized model (Brevitas/QKeras) with 1-8 bit weights and activations")
        tensor = w.graph.input[0].name
        input_quantizer, tensor, current = self.input_quantizer(tensor)
        self.layout = StreamLayout(self.g, input_quantizer.elements)
        self.search = ThresholdSearch(self.g, self.layout)
        self.head = None  # (op type, the user's node name) of a host-side head
        node = self.g.next_node(tensor)
        while node is not None:
            if self.head is not None and node.op_type not in SHAPE_ONLY + ("ArgMax", "TopK"):
                raise node_error(f"{node.op_type} after {self.head[0]}: only ArgMax, TopK (k = 1) or "
                                 "reshapes may follow a host-side head", node)
            current = HANDLERS[node.op_type](self, node, current)
            if node.op_type in KEEP_LAYOUT and any(t in self.layout.channels_last for t in node.input):
                self.layout.channels_last.add(node.output[0])
            tensor = node.output[OUTPUT_INDEX[node.op_type]]
            node = self.g.next_node(tensor)
        if tensor != w.graph.output[0].name:
            raise CompileError(f"the chain ends at '{tensor}', not at the graph output")
        if isinstance(current, Pending):
            self.finish_layer(current, None)
            affine = current.affine
        else:
            affine = current.affine
            if not self.layers:
                raise CompileError("the model has no MatMul layer to map to hardware")
        output = self.output_spec(affine, w.get_tensor_shape(tensor))
        network = NetworkSpec(self.name, tuple(self.layers), input_quantizer.qtype, output,
                              notes=tuple(self.notes), input_order=self.layout.input_order,
                              output_order=None if output.label_select else self.layout.order)
        return Streamlined(network, input_quantizer, w.model)

    # -- stream order -----------------------------------------------------------
    def input_quantizer(self, tensor):
        """Collect the host-side prefix up to the first activation quantizer."""
        w = self.w
        prefix = []
        input_dt = w.get_tensor_datatype(tensor)
        node = self.g.next_node(tensor)
        while node is not None and node.op_type not in ("Quant", "BipolarQuant", "MultiThreshold", "MatMul"):
            prefix.append(node)
            node = self.g.next_node(node.output[0])
        if node is None:
            raise CompileError("no layer found after the input")
        if node.op_type == "MatMul":
            if not input_dt.is_integer():
                raise node_error("the float input reaches a MatMul without an input quantizer; "
                                 "add a Quant node on the input or annotate the input with an "
                                 "integer/bipolar qonnx datatype", node)
            allowed = SHAPE_ONLY + ELEMENTWISE + ("Transpose", "BatchNormalization", "Im2Col")
            bad = next((n for n in prefix if n.op_type not in allowed), None)
            if bad is not None:
                raise node_error("an integer input may only be reshaped, transposed, or scaled and "
                                 "shifted by constants (Mul/Div/Add/Sub/BatchNormalization) before the "
                                 "first MatMul (or its Im2Col)", bad)
            qtype = QType.bipolar_type() if input_dt.name == "BIPOLAR" else \
                QType.for_range(int(input_dt.min()), int(input_dt.max()))
            if qtype.bits > MAX_BITS:
                raise node_error(f"input datatype {input_dt.name} is wider than {MAX_BITS} bits",
                                 node)
            elements = int(np.prod(w.get_tensor_shape(tensor)[1:]))
            # The walk continues from the input itself: reshapes and transposes set the stream
            # order, and affine ops become the integers' affine view, folded into the first
            # layer's accumulator offset (exactly, as after a pool) and checked by its thresholds.
            return (InputQuantizer(None, 1.0, qtype, elements), tensor,
                    Quantized(qtype, Affine(np.array(1.0), np.array(0.0))))
        scale, qtype, qmin, qmax = quant_params(self.g, node)
        if np.asarray(scale).size != 1:
            raise node_error("the input quantizer must have one (per-tensor) scale", node)
        prefix.append(node)
        shape = w.get_tensor_shape(node.output[0])
        elements = int(np.prod(shape[1:]))
        graph = helper.make_graph(
            prefix, "input_quantizer", [w.graph.input[0]],
            [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape)],
            initializer=[onnx.numpy_helper.from_array(np.asarray(self.g.init(t)), t)
                         for t in sorted({t for n in prefix for t in n.input if t and self.g.init(t) is not None})])
        model = helper.make_model(graph, opset_imports=list(w.model.opset_import))
        model.ir_version = w.model.ir_version
        self.notes.append(f"input quantizer {node.name}: {qtype}, scale {float(scale)}, runs on the host")
        return (InputQuantizer(model.SerializeToString(), float(scale), qtype, elements), node.output[0],
                Quantized(qtype, Affine(np.asarray(scale, dtype=np.float64).reshape(()), np.array(0.0))))

    # -- convolutional layers ---------------------------------------------------------
    def make_layer(self, pending: Pending, activation):
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

    def finish_layer(self, pending: Pending, activation):
        """Emit the layer and then the max pools met in its chain (moved past the activation)."""
        layer = self.make_layer(pending, activation)
        if layer is not None:
            self.layers.append(layer)
        pooled_type = pending.input_type if layer is None else layer.output_type  # None: pool sums
        for pool in pending.pools:
            if activation is not None and pending.sign is not None:
                raise node_error("MaxPool between a layer and its activation, where the activation "
                                 "falls as the accumulator rises for some channels: the pool cannot "
                                 "move past it; pool after the activation quantizer instead", pool)
            if activation is None and np.any(np.asarray(pending.acc_scale) < 0):
                raise node_error("MaxPool on an output with a negative scale is a min pool, which "
                                 "is not supported", pool)
            handlers.add_maxpool(self, pool, pooled_type)

    def output_spec(self, affine: Affine, shape) -> OutputSpec:
        last = self.layers[-1]
        if affine is None:
            raise CompileError("the ops after the last MatMul are not affine (e.g. a Relu without a "
                               "quantizer); end the model with an affine tail or a quantizer",
                               last.name)
        if shape is not None and len(shape) > 2:  # an image output: per-channel values per element
            self.layout.spatial_shape = tuple(shape[1:])
            scale, offset = (self.layout.flat_offset(np.broadcast_to(v, (shape[1],))) for v in (affine.scale, affine.offset))
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
    return Walker(wrapper, name, label_select).run()
