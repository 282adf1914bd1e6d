"""Ops that meet a state they cannot take are refused with one line naming the node and saying
what would work (handlers.refuses)."""
import copy

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from support.convgen import ConvCfg, ConvNetCfg, make_convnet
from support.modelgen import LayerCfg, MLPCfg, make_mlp

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


def test_requantization_between_two_quantizers():
    model = make_mlp(MLPCfg(layers=[LayerCfg(8), LayerCfg(4)]), seed=1)
    quant = second_matmul_input_quant(model)
    again = copy.deepcopy(quant)
    again.name, again.input[0], again.output[0] = "Requant", quant.output[0], "requantized"
    matmul = [n for n in model.graph.node if n.op_type == "MatMul"][1]
    matmul.input[0] = "requantized"
    index = list(model.graph.node).index(quant)
    model.graph.node.insert(index + 1, again)
    with pytest.raises(CompileError, match="Requant.*an activation quantizer must follow a MatMul"):
        streamline(model)


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
