"""Ops that meet a state they cannot take are refused with one line naming the node and saying
what would work (handlers.refuses)."""
import copy

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from support.convgen import ConvCfg, ConvNetCfg, make_convnet
from support.modelgen import LayerCfg, MLPCfg, make_mlp, random_inputs

from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.streamline import streamline


def producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def second_matmul_input_quant(model):
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    return producers(model)[matmuls[1].input[0]]


def test_two_layers_without_an_activation_between_them():
    model = make_mlp(MLPCfg(layers=[LayerCfg(8), LayerCfg(4)]), seed=1)
    quant = second_matmul_input_quant(model)
    for node in model.graph.node:
        for i, tensor in enumerate(node.input):
            if tensor == quant.output[0]:
                node.input[i] = quant.input[0]
    model.graph.node.remove(quant)
    with pytest.raises(CompileError, match="MatMul.*two layers without an activation quantizer between them"):
        streamline(model)


@pytest.mark.parametrize("bits,signed", [(2, 0), (3, 1), (4, 0)])
def test_requantization_between_two_quantizers_is_a_thresholding_layer(bits, signed):
    """A Quant on a quantized tensor (here a narrower, wider or signed copy of the activation, with
    another scale) becomes a thresholding layer, exact against qonnx on every input."""
    from finn_rtl.flow.verification import compare, golden_outputs
    from finn_rtl.graph.specs import ThresholdSpec

    cfg = MLPCfg(layers=[LayerCfg(8), LayerCfg(4)])
    model = make_mlp(cfg, seed=1)
    quant = second_matmul_input_quant(model)
    again = copy.deepcopy(quant)
    again.name, again.input[0], again.output[0] = "Requant", quant.output[0], "requantized"
    scale = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == quant.input[1]))
    inits = {f"requant_{k}": v for k, v in (("scale", scale * 0.7), ("zero", np.zeros_like(scale)),
                                            ("bits", np.float32(bits)))}
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items())
    again.input[1:4] = list(inits)
    for attribute in again.attribute:
        if attribute.name == "signed":
            attribute.i = signed
    matmul = [n for n in model.graph.node if n.op_type == "MatMul"][1]
    matmul.input[0] = "requantized"
    model.graph.node.insert(list(model.graph.node).index(quant) + 1, again)
    s = streamline(model)
    assert sum(isinstance(layer, ThresholdSpec) for layer in s.network.layers) == 1
    x = random_inputs(cfg, 200, seed=2)
    hw = s.network.reference(s.network.to_stream(s.input_quantizer.quantize(x)))
    assert compare(s.network, s.network.from_stream(hw), golden_outputs(s.network, model, x)[0])["bit_exact"]


def test_pad_between_a_conv_and_its_activation():
    model = make_convnet(ConvNetCfg(in_shape=(1, 2, 6, 6), features=[ConvCfg(3)], fc=[LayerCfg(4, norm="none")]),
                         seed=1)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "chain_pads")
    model.graph.initializer.append(pads)
    pad = helper.make_node("Pad", [conv.output[0], "chain_pads"], ["padded"], name="ChainPad", mode="constant")
    for node in model.graph.node:
        for i, tensor in enumerate(node.input):
            if tensor == conv.output[0]:
                node.input[i] = "padded"
    model.graph.node.insert(list(model.graph.node).index(conv) + 1, pad)
    with pytest.raises(CompileError, match="ChainPad.*Pad between a layer and its activation quantizer"):
        streamline(onnx.load_from_string(model.SerializeToString()))


def test_relu_then_quant_on_a_signed_activation_is_a_thresholding_layer():
    """Relu -> Quant after a signed activation quantizer (a signed tensor into an unsigned one):
    the Relu joins the requantization, exact against qonnx."""
    from finn_rtl.flow.verification import compare, golden_outputs
    from finn_rtl.graph.specs import ThresholdSpec

    cfg = MLPCfg(layers=[LayerCfg(8, a_signed=True), LayerCfg(4)])
    model = make_mlp(cfg, seed=3)
    quant = second_matmul_input_quant(model)
    relu = helper.make_node("Relu", [quant.output[0]], ["rectified"], name="ReluAfterQuant")
    again = copy.deepcopy(quant)
    again.name, again.input[0], again.output[0] = "Requant", "rectified", "requantized"
    for attribute in again.attribute:
        if attribute.name == "signed":
            attribute.i = 0
    [n for n in model.graph.node if n.op_type == "MatMul"][1].input[0] = "requantized"
    index = list(model.graph.node).index(quant)
    model.graph.node.insert(index + 1, relu)
    model.graph.node.insert(index + 2, again)
    s = streamline(model)
    assert sum(isinstance(layer, ThresholdSpec) for layer in s.network.layers) == 1
    x = random_inputs(cfg, 200, seed=4)
    hw = s.network.reference(s.network.to_stream(s.input_quantizer.quantize(x)))
    assert compare(s.network, s.network.from_stream(hw), golden_outputs(s.network, model, x)[0])["bit_exact"]
