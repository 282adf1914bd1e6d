"""The folded IR on disk: a build directory's network.json/npz give back the same network
(same Verilog, same reference), and verify/deploy never streamline the model again."""
import json

import numpy as np
import onnx
import pytest
from support.convgen import ConvCfg, ConvNetCfg, ResidualCfg, make_convnet
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.cores.accelerator import to_verilog
from finn_rtl.flow import build, load_build
from finn_rtl.graph.errors import CompileError

MODELS = {
    "residual": lambda: make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, pad=1), ResidualCfg(4), ResidualCfg(8, stride=2, downsample=True, merge="concat")],
        fc=[LayerCfg(10, norm="none")]), seed=3),
    "mlp_label_select": lambda: make_mlp(MLPCfg(layers=[LayerCfg(8), LayerCfg(6)], tail="argmax"), seed=1),
    "bipolar_conv": lambda: make_convnet(ConvNetCfg(in_shape=(1, 2, 8, 8), features=[ConvCfg(4), ConvCfg(4)],
                                                    fc=[LayerCfg(4, w_bits=1, norm="none")], bipolar=True), seed=2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_directory_gives_back_the_same_network(name, tmp_path, monkeypatch):
    onnx.save(MODELS[name](), str(tmp_path / "model.onnx"))
    built = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=1024)
    import finn_rtl.graph.streamline as streamline_module

    def refuse(*args, **kwargs):
        raise AssertionError("load_build streamlined the model again")
    monkeypatch.setattr(streamline_module, "streamline", refuse)
    loaded = load_build(tmp_path / "out")
    a, b = built.network, loaded.network
    assert to_verilog(a) == to_verilog(b) == loaded.verilog
    assert a.edges == b.edges and a.folding == b.folding and a.fifo_depths == b.fifo_depths
    assert a.default_fifo_depths == b.default_fifo_depths and a.notes == b.notes
    x = np.random.default_rng(0).integers(a.input_type.min, a.input_type.max + 1, (6, a.in_elements))
    if a.input_type.bipolar:
        x = np.where(x > 0, 1, -1)
    assert np.array_equal(a.reference(x), b.reference(x))
    for name_ in ("input_order", "output_order"):
        assert np.array_equal(getattr(a, name_), getattr(b, name_)) or getattr(a, name_) is getattr(b, name_) is None
    assert np.array_equal(a.output.scale, b.output.scale) and a.output.label_select == b.output.label_select
    assert loaded.input_shape == built.input_shape
    assert loaded.input_quantizer.scale == built.input_quantizer.scale
    assert loaded.input_quantizer.qtype == built.input_quantizer.qtype
    assert loaded.input_quantizer.prefix == built.input_quantizer.prefix


def test_folding_json_feeds_back_including_lane_followers(tmp_path):
    onnx.save(MODELS["residual"](), str(tmp_path / "model.onnx"))
    built = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=1024)
    folding = json.loads((tmp_path / "out" / "folding.json").read_text())
    followers = {k: v for k, v in folding.items() if "follows" in v}
    assert any(k.endswith("_fork") for k in followers) and any(k.endswith("_swg") for k in followers)
    again = build(tmp_path / "model.onnx", tmp_path / "again", folding=folding)
    assert again.network.folding == built.network.folding
    assert again.verilog == built.verilog


def test_a_build_without_its_network_files_is_named(tmp_path):
    onnx.save(MODELS["mlp_label_select"](), str(tmp_path / "model.onnx"))
    build(tmp_path / "model.onnx", tmp_path / "out")
    (tmp_path / "out" / "network.json").unlink()
    with pytest.raises(CompileError, match="has no network.json/network.npz: build it again"):
        load_build(tmp_path / "out")
