"""Write a NetworkSpec back out as a streamlined (integer) QONNX model.

The model is executable with qonnx: integer input -> MatMul with integer
weights -> MultiThreshold -> ... -> last MatMul -> output affine (Mul, Add)
or ArgMax. Tensors are flat [1, elements] in the accelerator's stream order
(images channels last); a convolution's windows are a Gather of the image
(padding gathers from a prepended pad element), its MVTU a MatMul over
[pixels, K*K*C], a pool a ReduceMax/ReduceSum over each window, an add a weighted
Add, a concat a Concat of [pixels, channels] views; a duplicate is a tensor read twice.
Tensors carry
qonnx datatype annotations. It documents exactly what the hardware computes
and is checked against the hardware's numpy reference in the tests.
"""
from __future__ import annotations

import dataclasses
from functools import singledispatch

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .merge_specs import AddSpec, ConcatSpec, DuplicateSpec
from .network import NetworkSpec
from .specs import MVTUSpec, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec, VectorUnitSpec


def _dtype_name(qtype) -> str:
    return str(qtype)


def _index_type(n: int):
    from .datatypes import QType
    return QType.for_range(0, n + 1)


class Exporter:
    """The nodes, initializers and datatype annotations of the model being written."""

    def __init__(self):
        self.nodes, self.inits, self.annotations = [], [], {}

    def add(self, op, inputs, name, **attrs) -> str:
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(self, name, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def shape_const(self, name, shape) -> str:
        return self.const(name, shape, np.int64)

    def reshape(self, tensor, name, shape) -> str:
        return self.add("Reshape", [tensor, self.shape_const(f"{name}_shape", shape)], name)

    def flat(self, layer, tensor) -> str:
        """[.., ..] -> [1, out_elements], annotated with the layer's output type."""
        tensor = self.reshape(tensor, f"{layer.name}_flat", [1, layer.out_elements])
        self.annotations[tensor] = layer.output_type
        return tensor

    def thresholds(self, layer, tensor) -> str:
        """[rows, channels] -> per-channel sign -> MultiThreshold."""
        if layer.channel_sign is not None:
            sign = self.const(f"{layer.name}_sign", layer.channel_sign)
            tensor = self.add("Mul", [tensor, sign], f"{layer.name}_Sign")
        t_name = self.const(f"{layer.name}_thresholds", layer.thresholds)
        bipolar = layer.output_type.bipolar
        out = self.add("MultiThreshold", [tensor, t_name], f"{layer.name}_MultiThreshold",
                       domain="qonnx.custom_op.general", out_dtype=_dtype_name(layer.output_type),
                       out_scale=2.0 if bipolar else 1.0, out_bias=float(layer.out_base))
        self.annotations[out] = layer.output_type
        return out


@singledispatch
def export_layer(layer, ex: Exporter, inputs: list[str]) -> str:
    """Nodes computing `layer` on flat [1, elements] input tensors; returns its output tensor."""
    raise TypeError(f"no ONNX export for {type(layer).__name__} ({layer.name})")


@export_layer.register
def _(layer: VectorUnitSpec, ex: Exporter, inputs):  # weighted window sums per channel
    windows = ex.reshape(inputs[0], f"{layer.name}_windows", [layer.out_pixels, layer.window, layer.channels])
    weights = ex.const(f"{layer.name}_W", layer.weights.T)
    ex.annotations[weights] = layer.weight_type
    products = ex.add("Mul", [windows, weights], f"{layer.name}_products")
    tensor = ex.add("ReduceSum", [products, ex.shape_const(f"{layer.name}_axes", [1])], f"{layer.name}_sum",
                    keepdims=0)
    if layer.thresholds is not None:
        tensor = ex.thresholds(layer, tensor)
    return ex.flat(layer, tensor)


@export_layer.register
def _(layer: ThresholdSpec, ex: Exporter, inputs):
    rows = ex.reshape(inputs[0], f"{layer.name}_rows", [layer.pixels, layer.channels])
    return ex.flat(layer, ex.thresholds(layer, rows))


@export_layer.register(SlidingWindowSpec)
@export_layer.register(PadSpec)
def _(layer, ex: Exporter, inputs):
    # A fixed rearrangement: gather each output element from the input (index 0: the pad value).
    # The layer's own reference, run on element positions 1..n, says where each output comes from.
    positions = layer if isinstance(layer, SlidingWindowSpec) else \
        dataclasses.replace(layer, dtype=_index_type(layer.in_elements), value=0)
    source = positions.reference(np.arange(1, layer.in_elements + 1)[None, :])[0]
    pad_value = ex.const(f"{layer.name}_padv", np.full((1, 1), getattr(layer, "value", 0)))
    index = ex.const(f"{layer.name}_index", source, np.int64)
    padded = ex.add("Concat", [pad_value, inputs[0]], f"{layer.name}_with_pad", axis=1)
    tensor = ex.add("Gather", [padded, index], layer.name, axis=1)
    ex.annotations[tensor] = layer.output_type
    return tensor


@export_layer.register
def _(layer: PoolSpec, ex: Exporter, inputs):
    windows = ex.reshape(inputs[0], f"{layer.name}_windows", [layer.out_pixels, layer.window, layer.channels])
    if layer.op == "sum":  # opset 13: ReduceSum's axes are an input
        reduced = ex.add("ReduceSum", [windows, ex.shape_const(f"{layer.name}_axes", [1])], layer.name,
                         keepdims=0)
    else:
        reduced = ex.add("ReduceMax", [windows], layer.name, axes=[1], keepdims=0)
    return ex.flat(layer, reduced)


@export_layer.register
def _(layer: MVTUSpec, ex: Exporter, inputs):
    tensor = inputs[0]
    if layer.vectors > 1:
        tensor = ex.reshape(tensor, f"{layer.name}_im2col", [layer.vectors, layer.mw])
    weights = ex.const(f"{layer.name}_W", layer.weights.T)
    ex.annotations[weights] = layer.weight_type
    tensor = ex.add("MatMul", [tensor, weights], layer.name)
    if layer.thresholds is not None:
        tensor = ex.thresholds(layer, tensor)
    return ex.flat(layer, tensor)


@export_layer.register
def _(layer: DuplicateSpec, ex: Exporter, inputs):
    return inputs[0]  # every consumer reads the same tensor


@export_layer.register
def _(layer: AddSpec, ex: Exporter, inputs):
    terms = []
    for port, (tensor, factor) in enumerate(zip(inputs, layer.factors)):
        rows = ex.reshape(tensor, f"{layer.name}_rows{port}", [layer.pixels, layer.channels])
        if factor != 1:
            rows = ex.add("Mul", [rows, ex.const(f"{layer.name}_factor{port}", float(factor))],
                          f"{layer.name}_scaled{port}")
        terms.append(rows)
    tensor = ex.add("Add", terms, layer.name)
    if layer.thresholds is not None:
        tensor = ex.thresholds(layer, tensor)
    return ex.flat(layer, tensor)


@export_layer.register
def _(layer: ConcatSpec, ex: Exporter, inputs):
    parts = [ex.reshape(tensor, f"{layer.name}_pixels{port}", [layer.pixels, channels])
             for port, (tensor, channels) in enumerate(zip(inputs, layer.channels))]
    return ex.flat(layer, ex.add("Concat", parts, layer.name, axis=1))


def to_streamlined_onnx(network: NetworkSpec) -> onnx.ModelProto:
    from qonnx.core.modelwrapper import ModelWrapper

    ex = Exporter()
    ex.annotations["x"] = network.input_type
    outputs = {}
    for position, layer in enumerate(network.layers):
        inputs = ["x"] if position == 0 else \
            [outputs[network.edges[i].producer] for i in network.in_edges(layer.name)]
        outputs[layer.name] = export_layer(layer, ex, inputs)
    tensor = outputs[network.layers[-1].name]
    nodes, inits = ex.nodes, ex.inits
    if network.output.label_select:
        nodes.append(helper.make_node("ArgMax", [tensor], ["y"], axis=1, keepdims=1, name="LabelSelect"))
        out_info = helper.make_tensor_value_info("y", TensorProto.INT64, [1, 1])
    else:
        inits += [numpy_helper.from_array(network.output.scale.astype(np.float32), "out_scale"),
                  numpy_helper.from_array(network.output.offset.astype(np.float32), "out_offset")]
        affine_out = "scores" if network.output.host_argmax else "y"
        nodes += [helper.make_node("Mul", [tensor, "out_scale"], ["scaled"], name="OutputScale"),
                  helper.make_node("Add", ["scaled", "out_offset"], [affine_out], name="OutputOffset")]
        if network.output.host_argmax:
            nodes.append(helper.make_node("ArgMax", ["scores"], ["y"], axis=1, keepdims=1, name="HostArgMax"))
            out_info = helper.make_tensor_value_info("y", TensorProto.INT64, [1, 1])
        else:
            out_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, network.out_elements])
    graph = helper.make_graph(
        nodes, network.name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, network.in_elements])],
        [out_info], initializer=inits)
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    from qonnx.core.datatype import DataType
    for name, qtype in ex.annotations.items():
        model.set_tensor_datatype(name, DataType[_dtype_name(qtype)])
    from qonnx.transformation.infer_shapes import InferShapes
    return model.transform(InferShapes()).model
