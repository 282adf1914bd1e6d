"""Seeded models in the FINN-ONNX dialect, as FINN's own examples and streamlined models carry
them: integer weights stored as floats with a qonnx datatype annotation (no Quant nodes),
MultiThreshold activations (out_dtype, out_scale, out_bias), an annotated integer input and a
final TopK (or a Mul scale)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .modelgen import QDOMAIN


def make_finn_mlp(widths=(6, 5, 4), in_features=12, in_type="UINT4", seed=0, tail="topk",
                  domain="finn.custom_op.general", xnor=False) -> onnx.ModelProto:
    """Layers: MatMul (annotated weights) -> MultiThreshold, alternating UINT2 and BIPOLAR
    activations (BIPOLAR layers get BIPOLAR weights), last MatMul -> Mul -> TopK k=1 (or Mul only).
    `xnor`: then FINN's own ConvertBipolarMatMulToXnorPopcount, as older FINN graphs have it
    (BINARY MultiThreshold outputs, XnorPopcountMatMul on 0/1 weights, then Mul 2, Add -K)."""
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    rng = np.random.default_rng(seed)
    dt_in = DataType[in_type]
    sample = rng.integers(int(dt_in.min()), int(dt_in.max()) + 1, (256, in_features)).astype(np.float64)
    nodes, inits, annotations = [], [], {"global_in": in_type}
    tensor, width_in, act_type = "global_in", in_features, in_type
    for index, width in enumerate(widths):
        last = index == len(widths) - 1
        bipolar_w = act_type == "BIPOLAR"
        w_type = "BIPOLAR" if bipolar_w else "INT2"
        weights = rng.choice([-1.0, 1.0], (width_in, width)) if bipolar_w else \
            rng.integers(-2, 2, (width_in, width)).astype(np.float64)
        w_name = f"W{index}"
        inits.append(numpy_helper.from_array(weights.astype(np.float32), w_name))
        annotations[w_name] = w_type
        acc = sample @ weights
        nodes.append(helper.make_node("MatMul", [tensor, w_name], [f"acc{index}"], name=f"MatMul_{index}"))
        tensor = f"acc{index}"
        if last:
            break
        out_bipolar = index % 2 == 1
        steps = 1 if out_bipolar else 3
        quantiles = np.linspace(0, 1, steps + 2)[1:-1]
        thresholds = np.sort(np.round(np.quantile(acc, quantiles, axis=0).T), axis=1) + 0.5 * (index == 0)
        t_name = f"T{index}"
        inits.append(numpy_helper.from_array(thresholds.astype(np.float32), t_name))
        attrs = {"out_dtype": "BIPOLAR", "out_scale": 2.0, "out_bias": -1.0} if out_bipolar else \
            {"out_dtype": "UINT2"}
        nodes.append(helper.make_node("MultiThreshold", [tensor, t_name], [f"act{index}"], domain=domain,
                                      name=f"MultiThreshold_{index}", **attrs))
        counts = (acc[:, :, None] >= thresholds[None]).sum(axis=2)
        sample = (2.0 * counts - 1) if out_bipolar else counts.astype(np.float64)
        tensor, act_type, width_in = f"act{index}", attrs["out_dtype"], width
    inits.append(numpy_helper.from_array(np.array(0.125, dtype=np.float32), "out_scale"))
    nodes.append(helper.make_node("Mul", [tensor, "out_scale"], ["scores"], name="Mul_out"))
    if tail == "topk":
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "k"))
        nodes.append(helper.make_node("TopK", ["scores", "k"], ["top_values", "global_out"], name="TopK_0"))
        out = helper.make_tensor_value_info("global_out", TensorProto.INT64, [1, 1])
    else:
        nodes[-1].output[0] = "global_out"
        out = helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [1, widths[-1]])
    graph = helper.make_graph(nodes, "finn_mlp", [helper.make_tensor_value_info(
        "global_in", TensorProto.FLOAT, [1, in_features])], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    wrapper = ModelWrapper(model)
    for name, dtype in annotations.items():
        wrapper.set_tensor_datatype(name, DataType[dtype])
    if xnor:
        import warnings

        from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
        from qonnx.transformation.infer_datatypes import InferDataTypes
        from qonnx.transformation.infer_shapes import InferShapes

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapper = wrapper.transform(InferShapes()).transform(InferDataTypes())
            wrapper = wrapper.transform(ConvertBipolarMatMulToXnorPopcount())
    return wrapper.model


def make_finn_cnv(seed=0, in_shape=(3, 8, 8), channels=(8, 8), domain="finn.custom_op.general",
                  tail="topk") -> onnx.ModelProto:
    """A conv net as FINN's streamlining leaves it (channels last): UINT8 NCHW input -> Transpose ->
    [Im2Col -> MatMul (annotated INT2) -> MultiThreshold (UINT2, data_layout NHWC)] -> MaxPoolNHWC ->
    the second conv (2x2, padded) -> Transpose -> Flatten -> MatMul -> Mul -> TopK."""
    from numpy.lib.stride_tricks import sliding_window_view
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    rng = np.random.default_rng(seed)
    c_in, height, width = in_shape
    sample = rng.integers(0, 256, (64, height, width, c_in)).astype(np.float64)  # NHWC
    nodes = [helper.make_node("Transpose", ["global_in"], ["x_nhwc"], perm=[0, 2, 3, 1], name="Transpose_in")]
    inits, annotations, tensor = [], {"global_in": "UINT8"}, "x_nhwc"
    shapes = {"x_nhwc": [1, height, width, c_in]}  # FINN's files carry every tensor's shape
    for index, (out_c, kernel, pad) in enumerate(zip(channels, (3, 2), (0, 1))):
        n, h, w, c = sample.shape
        nodes.append(helper.make_node(
            "Im2Col", [tensor], [f"cols{index}"], domain=domain, name=f"Im2Col_{index}", stride=[1, 1],
            kernel_size=[kernel, kernel], pad_amount=[pad] * 4, input_shape=f"(1,{h},{w},{c})"))
        padded = np.pad(sample, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        windows = sliding_window_view(padded, (kernel, kernel), axis=(1, 2))  # n, oh, ow, c, ky, kx
        cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n, windows.shape[1], windows.shape[2], -1)
        weights = rng.integers(-2, 2, (cols.shape[-1], out_c)).astype(np.float64)
        inits.append(numpy_helper.from_array(weights.astype(np.float32), f"W{index}"))
        annotations[f"W{index}"] = "INT2"
        nodes.append(helper.make_node("MatMul", [f"cols{index}", f"W{index}"], [f"acc{index}"], name=f"MatMul_{index}"))
        acc = cols @ weights
        shapes[f"cols{index}"] = [1, *cols.shape[1:]]
        shapes[f"acc{index}"] = shapes[f"act{index}"] = [1, *acc.shape[1:]]
        flat = acc.reshape(-1, out_c)
        thresholds = np.sort(np.round(np.quantile(flat, [0.25, 0.5, 0.75], axis=0).T), axis=1) + 0.5
        inits.append(numpy_helper.from_array(thresholds.astype(np.float32), f"T{index}"))
        nodes.append(helper.make_node("MultiThreshold", [f"acc{index}", f"T{index}"], [f"act{index}"], domain=domain,
                                      name=f"MultiThreshold_{index}", out_dtype="UINT2", data_layout="NHWC"))
        sample = (acc[..., None] >= thresholds).sum(axis=-1).astype(np.float64)
        tensor = f"act{index}"
        if index == 0:
            nodes.append(helper.make_node("MaxPoolNHWC", [tensor], ["pooled"], domain=domain, name="MaxPoolNHWC_0",
                                          kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
            n, h, w, c = sample.shape
            sample = sample[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
            tensor = "pooled"
            shapes["pooled"] = [1, *sample.shape[1:]]
    n, h, w, c = sample.shape
    shapes.update(x_nchw=[1, c, h, w], flat=[1, c * h * w], logits=[1, 10], scores=[1, 10])
    nodes += [helper.make_node("Transpose", [tensor], ["x_nchw"], perm=[0, 3, 1, 2], name="Transpose_out"),
              helper.make_node("Flatten", ["x_nchw"], ["flat"], name="Flatten_0")]
    weights = rng.integers(-2, 2, (c * h * w, 10)).astype(np.float32)
    inits += [numpy_helper.from_array(weights, "W_fc"), numpy_helper.from_array(np.array(0.125, np.float32), "scale"),
              numpy_helper.from_array(np.array([1], dtype=np.int64), "k")]
    annotations["W_fc"] = "INT2"
    nodes += [helper.make_node("MatMul", ["flat", "W_fc"], ["logits"], name="MatMul_fc"),
              helper.make_node("Mul", ["logits", "scale"], ["scores"], name="Mul_out"),
              helper.make_node("TopK", ["scores", "k"], ["top_values", "global_out"], name="TopK_0")]
    out = helper.make_tensor_value_info("global_out", TensorProto.INT64, [1, 1])
    if tail != "topk":
        nodes[-2].output[0], out = "global_out", helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [1, 10])
        del nodes[-1], shapes["scores"]
    graph = helper.make_graph(nodes, "finn_cnv", [helper.make_tensor_value_info(
        "global_in", TensorProto.FLOAT, [1, *in_shape])], [out], initializer=inits,
        value_info=[helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in shapes.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    wrapper = ModelWrapper(model)
    for name, dtype in annotations.items():
        wrapper.set_tensor_datatype(name, DataType[dtype])
    import warnings

    from qonnx.transformation.infer_datatypes import InferDataTypes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wrapper.transform(InferDataTypes()).model  # FINN's files annotate every tensor


def finn_inputs(count, in_features=12, in_type="UINT4", seed=1) -> np.ndarray:
    from qonnx.core.datatype import DataType

    dt = DataType[in_type]
    rng = np.random.default_rng(seed)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, (count, in_features)).astype(np.float32)


__all__ = ["make_finn_mlp", "make_finn_cnv", "finn_inputs", "QDOMAIN"]
