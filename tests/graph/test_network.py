"""The network graph without Verilator: edges, the FIFO-depth policy, lanes that follow a
neighbour, the numpy reference of a DAG, and what the walker makes of branching models."""
import dataclasses

import numpy as np
import onnx
import pytest
from support.convgen import TINY_RESIDUAL, ConvCfg, ConvNetCfg, ResidualCfg, make_convnet, resnet8
from support.modelgen import LayerCfg

from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.merge_specs import AddSpec, ConcatSpec, DuplicateSpec
from finn_rtl.graph.network import FULL_RATE_DEPTH, Edge, NetworkSpec, OutputSpec
from finn_rtl.graph.specs import MVTUSpec, ThresholdSpec
from finn_rtl.graph.streamline import streamline

U2, U3 = QType(2, False), QType(3, False)


def diamond(pe=1):
    """input -> fork -> (MVTU, identity) -> add."""
    rng = np.random.default_rng(0)
    fork = DuplicateSpec("fork", 8, 1, U2)
    mvtu = MVTUSpec("fc", rng.integers(-2, 2, (8, 8)), U2, QType(2, True),
                    thresholds=np.sort(rng.integers(-10, 10, (8, 3)), axis=1), output_type=U2, pe=pe)
    add = AddSpec("add", 8, 1, (U2, U2), (1, 1))
    edges = (Edge("fork", "fc"), Edge("fc", "add"), Edge("fork", "add", 1, 1))
    return NetworkSpec("diamond", (fork, mvtu, add), U2, OutputSpec(1.0, 0.0), edges=edges)


def test_a_chain_is_the_default_graph():
    net = diamond()
    chain = NetworkSpec("chain", net.layers[1:2], U2, OutputSpec(1.0, 0.0))
    assert chain.edges == () and chain.is_chain
    assert not net.is_chain and [str(e) for e in net.edges] == ["fork -> fc", "fc -> add", "fork[1] -> add[1]"]


@pytest.mark.parametrize("edges,message", [
    ((Edge("fork", "fc"), Edge("fc", "add")), r"unconnected ports: inputs \['add\[1\]'\], outputs \['fork\[1\]'\]"),
    ((Edge("fork", "fc"), Edge("fc", "add"), Edge("fork", "add", 1, 0)), "joined twice"),
    ((Edge("fork", "fc"), Edge("fc", "add"), Edge("fork", "add", 2, 1)), "port its layers do not have"),
    ((Edge("fc", "fork"), Edge("fc", "add"), Edge("fork", "add", 1, 1)), "topological order"),
])
def test_malformed_graphs_are_refused(edges, message):
    net = diamond()
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(net, edges=edges)


def test_reference_follows_the_edges():
    net = diamond()
    x = np.random.default_rng(1).integers(0, 4, (5, 8))
    expected = net.layer("fc").reference(x) + x
    assert np.array_equal(net.reference(x), expected)


def test_shortcut_fifo_covers_what_the_long_branch_holds():
    net = diamond()
    depths = net.default_fifo_depths
    shortcut = net.edges.index(Edge("fork", "add", 1, 1))
    held = net.layer("fc").held_inputs  # the MVTU's vector and pipeline, in fork elements
    assert depths[shortcut] * net.fifo_lanes(shortcut) >= held
    assert min(depths) >= FULL_RATE_DEPTH


def test_duplicate_lanes_follow_the_producer_and_windows_the_consumer():
    streamlined = streamline(make_convnet(TINY_RESIDUAL, seed=2))
    net = streamlined.network
    folded = net.with_folding({"Conv_0": {"PE": 4, "SIMD": 3}, "Conv_1": {"PE": 2, "SIMD": 4}})
    fork = next(layer for layer in folded.layers if isinstance(layer, DuplicateSpec))
    assert fork.simd == 4  # Conv_0's PE
    followers = folded.lane_followers
    assert followers[fork.name] == {"SIMD": 4, "follows": "Conv_0"}
    assert followers["Conv_1_swg"] == {"SIMD": 4, "follows": "Conv_1"}


def test_resnet_blocks_become_forks_and_adds():
    net = streamline(make_convnet(resnet8(2), seed=5)).network
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("Duplicate") == 3 and kinds.count("Add") == 3
    adds = [layer for layer in net.layers if isinstance(layer, AddSpec)]
    assert all(add.thresholds is not None and add.factors == (1, 1) for add in adds)
    # Each add reads the long branch's last conv on one port and the shortcut on the other.
    for add in adds:
        producers = sorted(net.layer(net.edges[i].producer).kind for i in net.in_edges(add.name))
        assert producers in (["Duplicate", "MVTU"], ["MVTU", "MVTU"])


def test_a_pointwise_window_is_the_stream_itself():
    """A 1x1, stride-1 convolution reads its input as it arrives (no sliding-window generator,
    as in FINN); a 1x1 window at stride 2 still needs one, to drop pixels."""
    net = streamline(make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, kernel=1), ConvCfg(4, kernel=1, stride=2), ConvCfg(4, kernel=1, pad=1)]), seed=1)).network
    windows = [layer.name for layer in net.layers if layer.kind == "SlidingWindow"]
    assert windows == ["Conv_1_swg"]
    assert [layer.kind for layer in net.layers].count("Pad") == 1  # the padded 1x1: Pad, then the MVTU


def test_scale_ratio_two_becomes_an_integer_factor():
    net = streamline(make_convnet(resnet8(2, scale_ratio=2), seed=5)).network
    first_add = next(layer for layer in net.layers if isinstance(layer, AddSpec))
    assert sorted(first_add.factors) == [1, 2]


def test_concat_block():
    net = streamline(make_convnet(resnet8(2, merge="concat"), seed=5)).network
    concat = next(layer for layer in net.layers if isinstance(layer, ConcatSpec))
    assert concat.channels == (16, 16) and concat.inputs == 2


def _rescale_quant(model, tensor_producer_index, factor):
    """Multiply the scale of the n-th Quant node feeding an Add by `factor`."""
    quant = [n for n in model.graph.node if n.op_type == "Quant"][tensor_producer_index]
    init = next(i for i in model.graph.initializer if i.name == quant.input[1])
    value = onnx.numpy_helper.to_array(init) * np.float32(factor)
    init.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), init.name))
    return quant


def _add_inputs(model):
    add = next(n for n in model.graph.node if n.op_type == "Add" and
               not any(i.name in n.input for i in model.graph.initializer))
    producers = {o: n for n in model.graph.node for o in n.output}
    return [producers[t] for t in add.input]


def test_add_of_unrelated_scales_names_both_quantizers():
    model = make_convnet(TINY_RESIDUAL, seed=2)
    long_quant = _add_inputs(model)[0]
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    _rescale_quant(model, quants.index(long_quant), 1.37)
    with pytest.raises(CompileError, match=r"not integer multiples.*share one quantizer") as info:
        streamline(model)
    message = str(info.value)
    assert long_quant.name in message and "Add" in message


def test_concat_of_different_scales_is_refused():
    model = make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), features=[ConvCfg(4, pad=1), ResidualCfg(4, merge="concat")],
                                    fc=[LayerCfg(10, norm="none")]), seed=2)
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    producers = {o: n for n in model.graph.node for o in n.output}
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    _rescale_quant(model, quants.index(producers[concat.input[0]]), 2.0)
    with pytest.raises(CompileError, match="Concat of tensors with different scales"):
        streamline(model)


def test_add_before_its_inputs_are_quantized_is_refused():
    model = make_convnet(TINY_RESIDUAL, seed=2)
    add = next(n for n in model.graph.node if n.op_type == "Add" and
               not any(i.name in n.input for i in model.graph.initializer))
    producers = {o: n for n in model.graph.node for o in n.output}
    quant = producers[add.input[0]]
    add.input[0] = quant.input[0]  # skip the long branch's quantizer
    model.graph.node.remove(quant)
    with pytest.raises(CompileError, match="without its activation quantizer"):
        streamline(model)


def test_threshold_spec_keeps_one_input():
    spec = ThresholdSpec("t", 4, 2, U3, np.zeros((4, 1)), U2)
    assert spec.inputs == 1 and spec.factors == (1,) and spec.input_types == (U3,)
