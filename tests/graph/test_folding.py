"""Folding without Verilator: the target-II search, lane followers on a graph, folding errors."""
import numpy as np
import pytest
from support.convgen import ConvCfg, ConvNetCfg, ResidualCfg, make_convnet
from support.modelgen import LayerCfg

from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.folding import fold_for_target, fold_layer
from finn_rtl.graph.merge_specs import DuplicateSpec
from finn_rtl.graph.specs import FoldingError, MVTUSpec
from finn_rtl.graph.streamline import streamline


@pytest.fixture(scope="module")
def residual():
    return streamline(make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(6, pad=1), ResidualCfg(6), ResidualCfg(12, stride=2, downsample=True, merge="concat")],
        fc=[LayerCfg(10, norm="none")]), seed=2)).network


def test_fold_layer_takes_the_fewest_lanes_and_prefers_simd():
    layer = MVTUSpec("fc", np.ones((8, 12), dtype=int), QType(2, False), QType(2, True))
    folded = fold_layer(layer, 24)  # 96 cycles unfolded: 4 lanes needed
    assert (folded.pe, folded.simd) == (1, 4) and folded.cycles_per_frame == 24
    with pytest.raises(CompileError, match=r"cannot reach 0 cycles .*fully parallel \(PE=8, SIMD=12\) it takes 1"):
        fold_layer(layer, 0)


@pytest.mark.parametrize("target", [4096, 1024, 600])
def test_fold_for_target_reaches_the_target_on_a_graph(residual, target):
    folded = fold_for_target(residual, target)
    assert folded.analytic_ii <= target
    assert folded.edges == residual.edges
    for layer in folded.layers:
        follows = folded.lane_followers.get(layer.name)
        if layer.lanes_follow == "consumer":
            consumer = folded.layer(follows["follows"])
            assert layer.simd == consumer.in_lanes
        elif isinstance(layer, DuplicateSpec):
            producer = folded.layer(follows["follows"])
            assert layer.simd == producer.out_lanes
    # Every foldable layer kind of the graph is folded: adds by PE, concats by SIMD.
    kinds = {layer.kind for layer in folded.foldable}
    assert {"MVTU", "Add", "Concat"} <= kinds


def test_folding_errors_name_the_layer_and_the_legal_values(residual):
    add = next(layer.name for layer in residual.layers if layer.kind == "Add")
    concat = next(layer.name for layer in residual.layers if layer.kind == "Concat")
    with pytest.raises(FoldingError, match=rf"layer {add}: PE=4 must divide the 6 channels \(legal: \[1, 2, 3, 6\]\)"):
        residual.with_folding({add: {"PE": 4}})
    with pytest.raises(FoldingError, match=rf"layer {concat}: SIMD=5 must divide the 12 channels"):
        residual.with_folding({concat: {"SIMD": 5}})
    with pytest.raises(FoldingError, match=r"unknown folding keys \['SIMD'\] \(use PE, ram_style"):
        residual.with_folding({add: {"SIMD": 2}})
    fork = next(layer.name for layer in residual.layers if layer.kind == "Duplicate")
    with pytest.raises(FoldingError, match="folding names unknown layers"):
        residual.with_folding({fork: {"SIMD": 2}})
    with pytest.raises(FoldingError, match="fold on their own"):
        residual.with_folding({add: {"PE": 2, "follows": "x"}})


def test_memory_styles_from_the_folding_file(residual):
    """FINN's ram_style / ram_style_thresholds and our memory_styles set the styles; a style a
    memory cannot take, or a key for memories a layer lacks, is one line naming both."""
    mvtu = next(layer for layer in residual.layers if layer.kind == "MVTU" and layer.thresholds is not None)
    assert set(mvtu.memories()) >= {"weights", "thresholds"}
    styled = residual.with_folding({mvtu.name: {"ram_style": "block", "ram_style_thresholds": "distributed"}})
    layer = styled.layer(mvtu.name)
    assert layer.memory_style("weights") == "block" and layer.memory_style("thresholds") == "distributed"
    assert styled.memory_styles[mvtu.name]["weights"] == "block"
    # what folding.json writes reads back to the same styles
    again = residual.with_folding({mvtu.name: {"memory_styles": styled.memory_styles[mvtu.name]}})
    assert again.memory_styles == styled.memory_styles
    # auto is the automatic choice
    auto = residual.with_folding({mvtu.name: {"ram_style": "auto"}})
    assert auto.memory_styles == residual.memory_styles
    with pytest.raises(CompileError, match=rf"layer {mvtu.name}: memory 'weights' is a ROM, so it cannot be "
                                           r"registers; use block or distributed"):
        residual.with_folding({mvtu.name: {"ram_style": "registers"}})
    with pytest.raises(CompileError, match="UltraRAM"):
        residual.with_folding({mvtu.name: {"ram_style": "ultra"}})
    with pytest.raises(CompileError, match=r"unknown ram_style 'bram'; use auto, block"):
        residual.with_folding({mvtu.name: {"ram_style": "bram"}})
    with pytest.raises(FoldingError, match=r"memory_styles must map its memories \(weights, thresholds"):
        residual.with_folding({mvtu.name: {"memory_styles": {"lines": "block"}}})
    fork = next(layer.name for layer in residual.layers if layer.kind == "Duplicate")
    with pytest.raises(FoldingError, match=f"layer {fork} has no memories"):
        residual.with_folding({fork: {"ram_style": "block", "follows": "x"}})
