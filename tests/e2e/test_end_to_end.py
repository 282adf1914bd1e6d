"""Whole networks: build -> Verilog -> Verilator rtlsim, bit-exact against qonnx on the original model."""
import json

import numpy as np
import onnx
import pytest
from conftest import shared_file
from support.modelgen import OP_COVERAGE as CONFIGS
from support.modelgen import ZOO_STYLE, make_mlp, random_inputs

from finn_rtl.flow import build, verify

FAST_FOLDING = {"MatMul_0": {"PE": 16, "SIMD": 49}, "MatMul_1": {"PE": 16, "SIMD": 64},
                "MatMul_2": {"PE": 16, "SIMD": 64}, "MatMul_3": {"PE": 10, "SIMD": 64}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_generated_model_rtlsim_bit_exact_with_backpressure(name, tmp_path):
    cfg = CONFIGS[name]
    onnx.save(make_mlp(cfg, seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=24)
    result = verify(b, random_inputs(cfg, 150, seed=9), valid_percent=70, ready_percent=60)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"]
    full_rate = verify(b, random_inputs(cfg, 150, seed=10))
    assert abs(full_rate["ii_deviation"]) <= 0.01, full_rate


@pytest.mark.parametrize("name", sorted(ZOO_STYLE))
def test_zoo_style_mlp_rtlsim_bit_exact(name, tmp_path):
    cfg = ZOO_STYLE[name]
    onnx.save(make_mlp(cfg, seed=21), str(tmp_path / "model.onnx"))
    for folding, target in (("unfolded", None), ("fast", 64)):
        b = build(tmp_path / "model.onnx", tmp_path / folding, target_ii=target)
        result = verify(b, random_inputs(cfg, 300, seed=22), ready_percent=80)
        assert result["bit_exact"], (folding, result)


@pytest.mark.parametrize("name,accuracy", [("TFC_1W1A", 0.9296), ("TFC_2W2A", 0.9660)])
@pytest.mark.parametrize("folding", ["fast", pytest.param("unfolded", marks=pytest.mark.slow)])
def test_tfc_mnist_bit_exact(name, accuracy, folding, mnist, tmp_path):
    model = shared_file(f"models/{name}.onnx")
    x, y = mnist
    if folding == "fast":
        b = build(model, tmp_path / "out", folding=FAST_FOLDING)
        assert b.network.analytic_ii <= 64
    else:
        b = build(model, tmp_path / "out")
        assert all(layer.pe == layer.simd == 1 for layer in b.network.layers)
    result = verify(b, x, y)
    assert result["bit_exact"] and result["frames"] == 10000
    assert result["top1_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert abs(result["ii_deviation"]) <= 0.01
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verification"]["measured_ii_cycles"] == result["measured_ii_cycles"]
    assert [row["cycles_per_frame"] for row in report["layers"]] == \
        [layer.cycles_per_frame for layer in b.network.layers]


def test_label_select_on_tfc(mnist, tmp_path):
    x, y = mnist
    b = build(shared_file("models/TFC_2W2A.onnx"), tmp_path / "out", target_ii=64, label_select=True)
    result = verify(b, x[:2000], y[:2000], ready_percent=50)
    assert result["bit_exact"]
    assert result["top1_accuracy"] == pytest.approx(np.mean(
        b.network.reference(b.input_quantizer.quantize(x[:2000]))[:, 0] == y[:2000]))


def test_stall_watchdog_names_the_stuck_stream(tmp_path):
    from finn_rtl.sim.rtlsim import simulate
    from finn_rtl.sim.verilator import SimulationError

    cfg = CONFIGS["tfc-like-bipolar"]
    onnx.save(make_mlp(cfg, seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out")
    ints = b.input_quantizer.quantize(random_inputs(cfg, 4, seed=1))
    with pytest.raises(SimulationError, match=r"stall: no stream moved.*output produced 0/\d+ beats \(tvalid=1\)") as info:
        simulate(b.network, b.verilog, ints, ready_percent=0)
    # The rerun with monitored FIFOs says where the data backed up: the last FIFO is full.
    last = b.network.layers[-1].name
    assert f"-> {last}: " in str(info.value) and "(full: its consumer stopped taking data)" in str(info.value)
