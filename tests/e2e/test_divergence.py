"""A frame that differs from the golden model is traced to the first layer whose integers differ
(`flow.divergence`), and a difference there that is a rounding tie of the golden model's float32
arithmetic is told apart from one that is not."""
import dataclasses

import numpy as np
import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.cores.accelerator import to_verilog
from finn_rtl.flow import build, random_inputs, verify
from finn_rtl.flow.divergence import explain, first_divergence
from finn_rtl.flow.verification import VerificationError

CFG = MLPCfg(in_shape=(1, 12), layers=[LayerCfg(8, a_bits=2), LayerCfg(6, a_bits=3), LayerCfg(4, norm="none")],
             tail="none")


def test_a_wrong_threshold_is_traced_to_its_layer_and_is_no_tie(tmp_path):
    onnx.save(make_mlp(CFG, seed=6), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=8)
    x = random_inputs(b, 40, seed=3)
    assert first_divergence(b, x[0]) is None  # the build is right: nothing to trace
    # One threshold of the second layer's channel 2 moved: the hardware is now wrong there.
    layer = b.network.layer("MatMul_1")
    thresholds = np.array(layer.thresholds)
    thresholds[2, 0] += 1  # still ascending: a level boundary one accumulator step later
    assert np.all(np.diff(thresholds, axis=1) >= 0)
    broken = b.network.with_layers({layer.name: dataclasses.replace(layer, thresholds=thresholds)})
    wrong = dataclasses.replace(b, network=broken, verilog=to_verilog(broken))
    with pytest.raises(VerificationError, match=r"first difference: layer MatMul_1, channel 2, .* not a rounding tie"):
        verify(wrong, x)
    result = wrong.report["verification"]
    assert result["hardware_matches_numpy_reference"] and not result["traced_differences_are_float32_ties"]
    traced = result["divergence"][0]
    assert traced["layer"] == "MatMul_1" and traced["channel"] == 2 and traced["elements_differing"] >= 1
    assert traced["golden"] == traced["hardware"] + 1  # the moved threshold is reached one step later


def test_ties_are_explained_in_one_sentence():
    tie = {"layer": "Conv_17_thresholds", "quantizer": "Quant_46", "channel": 481, "hardware": 5, "golden": 6,
           "golden_quantizer_input_steps": 5.5, "float32_rounding_tie": True}
    text = explain([tie, {**tie, "channel": 3}])
    assert "each of the 2 frames traced first differs at a rounding tie" in text and "5.500000 steps" in text
    assert "not a rounding tie" in explain([tie, {**tie, "float32_rounding_tie": False}])
