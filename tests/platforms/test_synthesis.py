"""Measured resources: Yosys synth_xilinx of each layer out of context, cached, in report.json."""
import json

import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.flow import build
from finn_rtl.resources import synthesis
from finn_rtl.resources.synthesis import COLUMNS, synthesize_network, tally

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def mlp_build(tmp_path_factory):
    work = tmp_path_factory.mktemp("synth")
    onnx.save(make_mlp(MLPCfg(in_shape=(1, 32), layers=[LayerCfg(16), LayerCfg(8)]), seed=1), str(work / "m.onnx"))
    return build(work / "m.onnx", work / "out", target_ii=32, synth=True)


def test_build_with_synth_reports_every_layer(mlp_build):
    report = json.loads((mlp_build.out_dir / "report.json").read_text())
    synth = report["resources"]["synthesis"]
    layers = [layer["name"] for layer in report["layers"]]
    assert set(layers) <= set(synth["layers"]) and "top level (register slices)" in synth["layers"]
    for name, row in synth["layers"].items():
        assert set(row) == set(COLUMNS), name
    assert synth["total"] == {c: sum(row[c] for row in synth["layers"].values()) for c in COLUMNS}
    assert synth["total"]["LUT"] > 0 and synth["total"]["FF"] > 0
    assert "yosys" in synth["tool"]["yosys"].lower() and "synth_xilinx" in synth["tool"]["script"]


def test_synthesis_is_cached_and_deterministic(mlp_build, tmp_path, monkeypatch):
    first = synthesize_network(mlp_build.network)
    assert first["units_synthesized"] == 0  # the build ran the same units
    monkeypatch.setenv("FINN_RTL_CACHE", str(tmp_path))  # an empty cache: synthesize again
    again = synthesize_network(mlp_build.network)
    assert again["units_cached"] == 0
    assert again["layers"] == first["layers"] and again["cells"] == first["cells"]


def test_unknown_primitives_are_an_error_not_a_zero():
    assert tally({"LUT6": 2, "RAM64M": 1, "FDRE": 3, "RAMB36E1": 1})["LUTRAM"] == 4
    with pytest.raises(synthesis.CompileError, match="does not know"):
        tally({"URAM288": 1})
