"""A "fine-tuned" copy of a QONNX model: the float weights behind some weight quantizers replaced by
other values on the quantizers' grids (same scale, bit width and shape), everything else kept."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def with_new_weights(model: onnx.ModelProto, weight_names, seed: int = 0) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {init.name: init for init in model.graph.initializer}
    rng = np.random.default_rng(seed)
    for node in model.graph.node:
        if node.op_type != "Quant" or node.input[0] not in weight_names:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]])
        bits = int(numpy_helper.to_array(inits[node.input[3]]))
        signed = next((a.i for a in node.attribute if a.name == "signed"), 1)
        narrow = next((a.i for a in node.attribute if a.name == "narrow"), 0)
        low = -(1 << (bits - 1)) + narrow if signed else 0
        high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        old = numpy_helper.to_array(inits[node.input[0]])
        ints = rng.integers(low, high + 1, old.shape)
        inits[node.input[0]].CopyFrom(numpy_helper.from_array((ints * scale).astype(old.dtype), node.input[0]))
    return model
