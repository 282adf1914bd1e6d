"""Host-side heads after the last layer: what streamlining makes of them, and what it refuses."""
import numpy as np
import onnx
import pytest
from support.modelgen import OP_COVERAGE, LayerCfg, MLPCfg, make_mlp, random_inputs
from onnx import helper, numpy_helper

from finn_rtl.flow import build, verify
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.streamline import streamline


@pytest.mark.parametrize("name, head, label_select", [
    ("head-softmax-opset11", "Softmax", False), ("head-logsoftmax", "LogSoftmax", False),
    ("head-identity-sigmoid", "Sigmoid", False), ("head-topk", None, True), ("head-softmax-argmax", None, True)])
def test_heads_become_host_ops_or_label_select(name, head, label_select):
    out = streamline(make_mlp(OP_COVERAGE[name], seed=3)).network.output
    assert (out.head, out.label_select) == (head, label_select)


def test_softmax_is_verified_before_and_after_the_head(tmp_path):
    onnx.save(make_mlp(OP_COVERAGE["head-softmax-opset11"], seed=3), str(tmp_path / "m.onnx"))
    b = build(tmp_path / "m.onnx", tmp_path / "out")
    result = verify(b, random_inputs(OP_COVERAGE["head-softmax-opset11"], 40, seed=1))
    assert result["bit_exact"] and result["head"] == "Softmax" and result["head_max_abs_error"] < 1e-6
    assert "Softmax(" in b.report["output"]["meaning"]


def edited(cfg, edit):
    model = make_mlp(cfg, seed=3)
    edit(model)
    return model


def test_refusals_name_the_node():
    def softmax_then_mul(model):
        last = model.graph.node[-1]
        last.output[0] = "soft"
        model.graph.initializer.append(numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"))
        model.graph.node.append(helper.make_node("Mul", ["soft", "two"], ["output"], name="ScaleAfterSoftmax"))

    with pytest.raises(CompileError, match="ScaleAfterSoftmax.*Mul after Softmax"):
        streamline(edited(MLPCfg(in_shape=(1, 10), head="Softmax", layers=[LayerCfg(4)]), softmax_then_mul))

    def topk_two(model):
        k = next(i for i in model.graph.initializer if i.name.startswith("k"))
        k.CopyFrom(numpy_helper.from_array(np.array([2], dtype=np.int64), k.name))

    with pytest.raises(CompileError, match="TopK_head.*k other than a constant 1"):
        streamline(edited(OP_COVERAGE["head-topk"], topk_two))

    def softmax_axis_0(model):
        model.graph.node[-1].attribute[0].i = 0

    with pytest.raises(CompileError, match="Softmax over axis 0"):
        streamline(edited(MLPCfg(in_shape=(1, 10), head="Softmax", layers=[LayerCfg(4)]), softmax_axis_0))


def test_sign_is_refused_with_the_reason():
    def sign_activation(model):  # an old BNN export's activation: Sign instead of a quantizer
        norms = {n.output[0] for n in model.graph.node if n.op_type == "BatchNormalization"}
        activation = next(n for n in model.graph.node if n.op_type == "Quant" and n.input[0] in norms)
        activation.op_type, activation.domain = "Sign", ""
        del activation.input[1:]
        del activation.attribute[:]

    cfg = MLPCfg(in_shape=(1, 10), layers=[LayerCfg(6, a_bits=1), LayerCfg(4)])
    with pytest.raises(CompileError, match="Sign is not supported: FINN reads it as a bipolar"):
        streamline(edited(cfg, sign_activation))
