"""Write a NetworkSpec back out as a streamlined (integer) QONNX model.

The model is executable with qonnx: integer input -> MatMul with integer
weights -> MultiThreshold -> ... -> last MatMul -> output affine (Mul, Add)
or ArgMax. Tensors are flat [1, elements] in the accelerator's stream order
(images channels last); a convolution's windows are a Gather of the image
(padding gathers from a prepended pad element), its MVTU a MatMul over
[pixels, K*K*C], a pool a ReduceMax/ReduceSum over each window. Tensors carry
qonnx datatype annotations. It documents exactly what the hardware computes
and is checked against the hardware's numpy reference in the tests.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .specs import MVTUSpec, NetworkSpec, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec, VectorUnitSpec


def _dtype_name(qtype) -> str:
    return str(qtype)


def _index_type(n: int):
    from .datatypes import QType
    return QType.for_range(0, n + 1)


def to_streamlined_onnx(network: NetworkSpec) -> onnx.ModelProto:
    from qonnx.core.modelwrapper import ModelWrapper

    nodes, inits, annotations = [], [], {}
    tensor = "x"
    annotations[tensor] = network.input_type
    def add(op, inputs, name, **attrs):
        out = f"{name}_out"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def shape_const(name, shape):
        inits.append(numpy_helper.from_array(np.asarray(shape, dtype=np.int64), name))
        return name

    def thresholds(layer, tensor):
        """[rows, channels] -> per-channel sign -> MultiThreshold."""
        if layer.channel_sign is not None:
            sign_name, signed_acc = f"{layer.name}_sign", f"{layer.name}_compared"
            inits.append(numpy_helper.from_array(layer.channel_sign.astype(np.float32), sign_name))
            nodes.append(helper.make_node("Mul", [tensor, sign_name], [signed_acc], name=f"{layer.name}_Sign"))
            tensor = signed_acc
        t_name, out = f"{layer.name}_thresholds", f"{layer.name}_out"
        inits.append(numpy_helper.from_array(layer.thresholds.astype(np.float32), t_name))
        bipolar = layer.output_type.bipolar
        nodes.append(helper.make_node(
            "MultiThreshold", [tensor, t_name], [out], name=f"{layer.name}_MultiThreshold",
            domain="qonnx.custom_op.general", out_dtype=_dtype_name(layer.output_type),
            out_scale=2.0 if bipolar else 1.0, out_bias=float(layer.out_base)))
        annotations[out] = layer.output_type
        return out

    for layer in network.layers:
        if isinstance(layer, VectorUnitSpec):  # weighted window sums per channel
            windows = add("Reshape", [tensor, shape_const(f"{layer.name}_shape",
                                                          [layer.out_pixels, layer.window, layer.channels])],
                          f"{layer.name}_windows")
            inits.append(numpy_helper.from_array(layer.weights.T.astype(np.float32), f"{layer.name}_W"))
            annotations[f"{layer.name}_W"] = layer.weight_type
            products = add("Mul", [windows, f"{layer.name}_W"], f"{layer.name}_products")
            tensor = add("ReduceSum", [products, shape_const(f"{layer.name}_axes", [1])], f"{layer.name}_sum",
                         keepdims=0)
            if layer.thresholds is not None:
                tensor = thresholds(layer, tensor)
            tensor = add("Reshape", [tensor, shape_const(f"{layer.name}_flat", [1, layer.out_elements])],
                         f"{layer.name}_flat")
            annotations[tensor] = layer.output_type
            continue
        if isinstance(layer, ThresholdSpec):
            rows = add("Reshape", [tensor, shape_const(f"{layer.name}_rows", [layer.pixels, layer.channels])],
                       f"{layer.name}_rows")
            tensor = add("Reshape", [thresholds(layer, rows), shape_const(f"{layer.name}_flat", [1, layer.out_elements])],
                         f"{layer.name}_flat")
            annotations[tensor] = layer.output_type
            continue
        if isinstance(layer, (SlidingWindowSpec, PadSpec)):
            # A fixed rearrangement: gather each output element from the input (index 0: the pad value).
            # The layer's own reference, run on element positions 1..n, says where each output comes from.
            positions = layer if isinstance(layer, SlidingWindowSpec) else \
                dataclasses.replace(layer, dtype=_index_type(layer.in_elements), value=0)
            source = positions.reference(np.arange(1, layer.in_elements + 1)[None, :])[0]
            value = getattr(layer, "value", 0)
            inits.append(numpy_helper.from_array(np.full((1, 1), value, dtype=np.float32), f"{layer.name}_padv"))
            inits.append(numpy_helper.from_array(source.astype(np.int64), f"{layer.name}_index"))
            padded = add("Concat", [f"{layer.name}_padv", tensor], f"{layer.name}_with_pad", axis=1)
            tensor = add("Gather", [padded, f"{layer.name}_index"], layer.name, axis=1)
            annotations[tensor] = layer.output_type
            continue
        if isinstance(layer, PoolSpec):
            windows = add("Reshape", [tensor, shape_const(f"{layer.name}_shape",
                                                          [layer.out_pixels, layer.window, layer.channels])],
                          f"{layer.name}_windows")
            reduce = "ReduceMax" if layer.op == "max" else "ReduceSum"
            if reduce == "ReduceSum":  # opset 13: axes are an input
                reduced = add(reduce, [windows, shape_const(f"{layer.name}_axes", [1])], layer.name, keepdims=0)
            else:
                reduced = add(reduce, [windows], layer.name, axes=[1], keepdims=0)
            tensor = add("Reshape", [reduced, shape_const(f"{layer.name}_flat", [1, layer.out_elements])],
                         f"{layer.name}_flat")
            annotations[tensor] = layer.output_type
            continue
        assert isinstance(layer, MVTUSpec)
        if layer.vectors > 1:
            tensor = add("Reshape", [tensor, shape_const(f"{layer.name}_rows", [layer.vectors, layer.mw])],
                         f"{layer.name}_im2col")
        w_name, acc = f"{layer.name}_W", f"{layer.name}_acc"
        inits.append(numpy_helper.from_array(layer.weights.T.astype(np.float32), w_name))
        annotations[w_name] = layer.weight_type
        nodes.append(helper.make_node("MatMul", [tensor, w_name], [acc], name=layer.name))
        tensor = acc
        if layer.thresholds is not None:
            tensor = thresholds(layer, tensor)
        if layer.vectors > 1:
            tensor = add("Reshape", [tensor, shape_const(f"{layer.name}_image", [1, layer.out_elements])],
                         f"{layer.name}_image")
            annotations[tensor] = layer.output_type
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
    for name, qtype in annotations.items():
        model.set_tensor_datatype(name, DataType[_dtype_name(qtype)])
    from qonnx.transformation.infer_shapes import InferShapes
    return model.transform(InferShapes()).model
