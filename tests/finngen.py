"""Seeded models in the FINN-ONNX dialect, as FINN's own examples and streamlined models carry
them: integer weights stored as floats with a qonnx datatype annotation (no Quant nodes),
MultiThreshold activations (out_dtype, out_scale, out_bias), an annotated integer input and a
final TopK (or a Mul scale)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelgen import QDOMAIN


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


def finn_inputs(count, in_features=12, in_type="UINT4", seed=1) -> np.ndarray:
    from qonnx.core.datatype import DataType

    dt = DataType[in_type]
    rng = np.random.default_rng(seed)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, (count, in_features)).astype(np.float32)


__all__ = ["make_finn_mlp", "finn_inputs", "QDOMAIN"]
