"""Streamline a cleaned QONNX graph into a network of integer layer specs.

The walk visits the dynamic nodes in topological order; a tensor read by several nodes forks
(a Duplicate layer) and an Add or Concat of two computed tensors joins streams. Every tensor is
described as ``real = scale * y + offset`` where ``y`` is an integer the hardware carries:

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

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from . import handlers
from .datatypes import QType
from .errors import CompileError
from .handlers import (ELEMENTWISE, HANDLERS, KEEP_LAYOUT, OUTPUT_INDEX, SHAPE_ONLY, UNSUPPORTED_HINTS,
                       handler_for)
from .ingest import clean
from .layout import StreamLayout, nhwc_order
from .merge_handlers import MERGES
from .merge_specs import AddSpec, DuplicateSpec
from .onnx_graph import GraphView, node_error
from .quantizers import MAX_BITS, quant_params
from .network import Edge, NetworkSpec, OutputSpec
from .specs import MVTUSpec, ThresholdSpec, VectorUnitSpec
from .thresholds import ThresholdSearch
from .walk_state import Affine, Context, Pending, Quantized

# What the walk accepts: every op with a handler, and Gemm (ingest rewrites it to MatMul).
SUPPORTED = tuple(sorted(set(HANDLERS) | set(MERGES) | {"Gemm"}))


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
    # Where each thresholded layer's activation is in the cleaned model, by the layer's name:
    # {"quantizer": node, "input"/"output": its tensors, "scale": per channel}, for tracing a
    # mismatch to the first layer whose integers differ from the golden model's (`verification`).
    provenance: dict = field(default_factory=dict)


class Walker:
    def __init__(self, wrapper, name: str, label_select: bool):
        self.w = wrapper
        self.name = name
        self.label_select = label_select
        self.label_select_requested = label_select
        self.provenance: dict = {}  # `Streamlined.provenance`
        self.layers: list = []
        self.edges: list[Edge] = []
        self.stream = None  # the stream the next layer reads: (layer name, port); None: the input
        self.host_head = None  # (op type, the user's node name) of a host-side head
        self.notes: list[str] = []
        self.g = GraphView(wrapper)
        self.layout: StreamLayout | None = None  # from the input quantizer's output on
        self.im2col_windows: dict[str, tuple] = {}  # Im2Col output -> (window spec, channels)

    # -- the walk ---------------------------------------------------------------------------
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
        input_quantizer, tensor, current = self.input_quantizer(w.graph.input[0].name)
        self.layout = StreamLayout(self.g, input_quantizer.elements)
        self.search = ThresholdSearch(self.g, self.layout)
        self.contexts = {tensor: Context(current, None, None, None)}
        self.forks: dict[str, tuple] = {}  # forked tensor -> (duplicate layer, its consumers)
        for node in w.graph.node:  # ONNX keeps nodes in topological order
            inputs = [t for t in self.g.dynamic_inputs(node) if t in self.contexts]
            if not inputs:
                continue  # constants, and the host-side input quantizer
            missing = [t for t in self.g.dynamic_inputs(node) if t not in self.contexts]
            if missing:
                raise node_error(f"input '{missing[0]}' does not come from the quantized stream (only "
                                 "the network input's quantizer may start one)", node)
            self.visit(node, [self.context_for(t, node) for t in inputs])
        output = w.graph.output[0].name
        if output not in self.contexts:
            raise CompileError(f"the graph output '{output}' is not computed from the quantized input")
        context = self.restore(output)
        current = context.state
        if isinstance(current, Pending):
            self.finish_layer(current, None)
        elif not self.layers:
            raise CompileError("the model has no MatMul layer to map to hardware")
        if self.stream != (self.layers[-1].name, 0):
            raise CompileError(f"part of the network does not lead to the output '{output}' (a branch "
                               f"ends at layer {self.layers[-1].name})")
        output_spec = self.output_spec(current.affine, w.get_tensor_shape(output))
        network = NetworkSpec(self.name, tuple(self.layers), input_quantizer.qtype, output_spec,
                              notes=tuple(self.notes), input_order=self.layout.input_order,
                              output_order=None if output_spec.label_select else self.layout.order,
                              edges=tuple(self.edges))
        return Streamlined(network, input_quantizer, w.model, self.provenance)

    def visit(self, node, contexts: list) -> None:
        """Run a node's handler in the context of its input(s) and record its output's context."""
        if len(contexts) > 1:
            if node.op_type not in MERGES:
                raise node_error(f"{node.op_type} of two computed tensors is not supported (only "
                                 f"{', '.join(sorted(MERGES))} join streams)", node)
            current = MERGES[node.op_type](self, node, contexts)
        else:
            self.restore_context(contexts[0])
            current = contexts[0].state
            if self.host_head is not None and node.op_type not in SHAPE_ONLY + ("ArgMax", "TopK"):
                raise node_error(f"{node.op_type} after {self.host_head[0]}: only ArgMax, TopK (k = 1) or "
                                 "reshapes may follow a host-side head", node)
            before = current
            current = handler_for(node, current)(self, node, current)
            if node.op_type in KEEP_LAYOUT and any(t in self.layout.channels_last for t in node.input):
                self.layout.channels_last.add(node.output[0])
            if current is before and isinstance(current, Quantized):
                current = current.passed_through(node, node.output[OUTPUT_INDEX[node.op_type]])
        tensor = node.output[OUTPUT_INDEX.get(node.op_type, 0)]
        self.contexts[tensor] = Context(current, self.stream, self.layout.order, self.layout.spatial_shape)

    def restore_context(self, context: Context) -> None:
        self.stream = context.stream
        self.layout.order, self.layout.spatial_shape = context.order, context.spatial_shape

    def restore(self, tensor: str) -> Context:
        context = self.contexts[tensor]
        self.restore_context(context)
        return context

    def context_for(self, tensor: str, node) -> Context:
        """The context a node sees of its input: a tensor read by several nodes is forked by a
        Duplicate layer, each reader taking one of its outputs."""
        users = self.g.dynamic_users(tensor)
        context = self.contexts[tensor]
        if len(users) < 2:
            return context
        if tensor not in self.forks:
            if isinstance(context.state, Pending):
                raise node_error(f"tensor '{tensor}' feeds {len(users)} nodes before its activation "
                                 "quantizer; quantize it before it branches", users[0])
            self.forks[tensor] = (self.add_fork(tensor, context, len(users), node), users)
        fork, readers = self.forks[tensor]
        port = next(i for i, user in enumerate(readers) if user is node or user.name == node.name)
        return Context(context.state, (fork, port), context.order, context.spatial_shape)

    def add_fork(self, tensor: str, context: Context, outputs: int, node) -> str:
        self.restore_context(context)
        shape = self.g.shape(tensor)
        image = len(shape) in (3, 4) and tensor not in self.layout.channels_last
        if self.layout.order is None:  # the host's choice is still open: images go channels last
            self.layout.stream_order(node, nhwc_order(shape) if image else None)
            context.order = self.layout.order
        if len(shape) in (3, 4):
            channels = shape[-1] if tensor in self.layout.channels_last else shape[1]
        else:
            channels = int(np.prod(shape[1:]))
        pixels = int(np.prod(shape[1:])) // channels
        producer = self.g.producers.get(tensor)
        name = f"{producer.name if producer is not None else 'input'}_fork"
        self.add_layer(DuplicateSpec(name, channels, pixels, context.state.qtype, outputs))
        return name

    def add_layer(self, layer, sources=None) -> None:
        """Append a layer fed by `sources` (streams; default: the current one); it becomes the
        current stream."""
        sources = [self.stream] if sources is None else list(sources)
        if self.layers and None in sources:
            raise CompileError(f"layer {layer.name} reads the network input, which already feeds "
                               f"layer {self.layers[0].name}")
        self.layers.append(layer)
        self.edges += [Edge(source[0], layer.name, source[1], port)
                       for port, source in enumerate(sources) if source is not None]
        self.stream = (layer.name, 0)

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
                    Quantized(qtype, Affine(np.array(1.0), np.array(0.0)), origin=tensor))
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
                Quantized(qtype, Affine(np.asarray(scale, dtype=np.float64).reshape(()), np.array(0.0)),
                          origin=node.output[0]))

    # -- convolutional layers ---------------------------------------------------------
    def make_layer(self, pending: Pending, activation):
        thresholds = {}
        if activation is not None:
            thresholds = dict(zip(("thresholds", "output_type", "out_base"), activation),
                              channel_sign=pending.sign)
        if pending.operands:  # a residual add
            return AddSpec(pending.name, len(pending.acc_scale), pending.vectors,
                           [o.qtype for o in pending.operands], [o.factor for o in pending.operands],
                           **thresholds)
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
            self.add_layer(layer, pending.sources)
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
        head, head_node = self.host_head or (None, None)
        return OutputSpec(scale, offset, False, head=head, head_node=head_node)

    def note_dropped_head(self):
        if self.host_head is not None:
            self.notes.append(f"{self.host_head[0]} before the final ArgMax/TopK keeps the top-1 class: not computed")


def streamline(source, name: str = "finn_rtl_top", label_select: bool = False) -> Streamlined:
    """QONNX model (path or ModelProto) -> integer NetworkSpec plus the host input quantizer."""
    wrapper = clean(source)
    return Walker(wrapper, name, label_select).run()
