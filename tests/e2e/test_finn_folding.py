"""FINN's folding configs read as they are (`graph.finn_folding`): MVAU/VVAU/Pool entries fold
finn-rtl's layers by kind and order, standalone thresholding entries split the thresholds out
into layers of their own, `ram_style: ultra` with `runtime_writeable_weights` puts weights in
UltraRAM; the result builds and verifies bit-exact. On the shared MobileNet-v1, finn-examples'
ZCU104 and U250 configs fit their boards (estimate, 80% of each resource)."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import shared_file
from support.convgen import ConvCfg, ConvNetCfg, PoolCfg, make_convnet
from support.modelgen import LayerCfg

from finn_rtl.flow import build, random_inputs, verify
from finn_rtl.graph.errors import CompileError
from finn_rtl.platforms.boards import get_board
from finn_rtl.resources.planner import Budget, device_use

FIXTURES = Path(__file__).parents[1] / "fixtures" / "finn_folding"

# conv 3x3 -> depthwise 3x3 -> pointwise 1x1 -> pool -> FC, as MobileNet's blocks
CFG = ConvNetCfg(in_shape=(1, 3, 10, 10), features=[ConvCfg(8, a_bits=4, w_bits=4), ConvCfg(8, depthwise=True, pad=1, a_bits=4, w_bits=4),
                                                    ConvCfg(16, kernel=1, a_bits=4, w_bits=4), PoolCfg()],
                 fc=[LayerCfg(10, w_bits=4, norm="none")])

FINN_CONFIG = {  # in FINN's graph order, with FINN's names and keys
    "Defaults": {},
    "StreamingFIFO_rtl_0": {"ram_style": "auto", "depth": 32, "impl_style": "rtl"},
    "ConvolutionInputGenerator_rtl_0": {"SIMD": 3, "ram_style": "distributed"},
    "MVAU_rtl_0": {"PE": 4, "SIMD": 3, "ram_style": "auto", "resType": "dsp", "mem_mode": "internal_decoupled",
                   "runtime_writeable_weights": 0},
    "Thresholding_rtl_0": {"PE": 2, "depth_trigger_bram": 512, "depth_trigger_uram": 1024},
    "FMPadding_rtl_0": {"SIMD": 2},
    "ConvolutionInputGenerator_rtl_1": {"SIMD": 2, "ram_style": "distributed"},
    "VVAU_hls_0": {"PE": 2, "resType": "lut"},
    "Thresholding_rtl_1": {"PE": 1},
    "MVAU_rtl_1": {"PE": 4, "SIMD": 8, "ram_style": "ultra", "runtime_writeable_weights": 1},
    "Thresholding_rtl_2": {"PE": 1, "ram_style": "distributed"},
    "MVAU_hls_0": {"PE": 2, "SIMD": 8, "ram_style": "block"},
    "LabelSelect_hls_0": {"PE": 1},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("finn_folding") / "model.onnx"
    onnx.save(make_convnet(CFG, seed=8), str(path))
    return path


def test_finn_config_folds_splits_thresholds_and_verifies(model, tmp_path):
    b = build(model, tmp_path / "out", folding=FINN_CONFIG, budget=Budget.of_board(get_board("zcu104")),
              clock_mhz=200.0)
    net = b.network
    mvtus = [layer for layer in net.layers if layer.kind == "MVTU"]
    assert [(layer.pe, layer.simd) for layer in mvtus] == [(4, 3), (4, 8), (2, 8)]
    assert [layer.pe for layer in net.layers if layer.kind == "VectorUnit"] == [2]
    split = [layer for layer in net.layers if layer.kind == "Threshold" and layer.name.endswith("_thresholds")]
    assert [layer.pe for layer in split][:3] == [2, 1, 1]
    assert all(layer.thresholds is None for layer in mvtus[:2])
    second = mvtus[1]
    assert second.runtime_writeable and second.memory_style("weights") == "ultra"
    assert b.report["resources"]["estimate"]["total"]["URAM"] >= 1
    assert any("thresholding layers of their own" in note for note in net.notes)
    assert mvtus[0].multipliers == "dsp"  # UINT8 x INT4 products, one DSP48 each
    folding = json.loads((b.out_dir / "folding.json").read_text())
    assert folding[second.name]["runtime_writeable_weights"] == 1
    x = random_inputs(b, 6, seed=4)
    result = verify(b, x, valid_percent=80, ready_percent=70)
    assert result["bit_exact"], result


def test_finn_config_for_another_network_is_refused(model, tmp_path):
    config = {name: entry for name, entry in FINN_CONFIG.items() if name != "MVAU_hls_0"}
    with pytest.raises(CompileError, match=r"FINN folding config has 2 MVTU layers \(MVAU_rtl_0\.\.\.\), this "
                                           r"network 3: it is for another network"):
        build(model, tmp_path / "out", folding=config)


@pytest.mark.parametrize("board, clock", [("zcu104", 185.0), ("u250", 333.0)])
def test_shared_mobilenet_fits_its_boards_at_finn_folding(board, clock):
    """finn-examples' configs fold the shared MobileNet-v1 to FINN's II; the estimate takes at
    most 80% of each device resource (block RAM and UltraRAM balanced on the ZCU104)."""
    from finn_rtl.flow.build import streamline
    from finn_rtl.resources.device import fit_to_device
    from finn_rtl.resources.estimate import estimate_network

    network = streamline(shared_file("models/MNV1_W4A4_imagenet.onnx")).network
    config = json.loads((FIXTURES / f"mobilenet-v1_{board.upper()}.json").read_text())
    device = get_board(board)
    fitted = fit_to_device(network.with_folding(config), Budget.of_board(device)).with_clock(clock)
    used = device_use(estimate_network(fitted)["total"])
    capacity = device.capacity
    shares = {name: used[name] / total for name, total in (("LUT", capacity.lut), ("BRAM36", capacity.bram36),
                                                         ("URAM", capacity.uram), ("DSP", capacity.dsp))}
    assert max(shares.values()) <= 0.8, shares
    # FINN's own II at these foldings: MVAU_1 (ZCU104: 112x112 pixels, 64 x 32 at PE 8 x SIMD 8)
    # and VVAU_0 / MVAU_0 (U250: 112x112 pixels, 9 window positions, one 32-channel fold)
    assert fitted.analytic_ii <= {"zcu104": 401_408, "u250": 112_896}[board]


@pytest.mark.slow
def test_shared_mobilenet_at_finn_zcu104_folding_verifies(tmp_path):
    """The shared MobileNet-v1 built as FINN folds it for the ZCU104 (185 MHz), rtlsim on two
    random frames: frame 0 differs from qonnx at one float32 rounding tie (Conv_17, channel 481:
    the golden sees 5.500000 steps), equals it with the tie taken its way, and is verified;
    frame 1 is bit-exact. About 8 minutes: 45 s to Verilog, 3-4 min of Verilator, 15 s of rtlsim."""
    model = shared_file("models/MNV1_W4A4_imagenet.onnx")
    config = json.loads((FIXTURES / "mobilenet-v1_ZCU104.json").read_text())
    b = build(model, tmp_path / "out", folding=config, budget=Budget.of_board(get_board("zcu104")),
              clock_mhz=185.0)
    assert b.network.analytic_ii == 394_272
    x = np.random.default_rng(0).random((20, 3, 224, 224), dtype=np.float32)[:2]
    result = verify(b, x)
    assert result["verified"] and not result["bit_exact"] and result["mismatched_frames"] == 1
    assert result["hardware_matches_numpy_reference"] and abs(result["ii_deviation"]) <= 0.01
    (traced,) = result["divergence"]
    assert traced["frame"] == 0 and traced["explained"]
    tie = traced["ties"][0]
    assert (tie["layer"], tie["channel"], tie["golden"], tie["hardware"]) == ("Conv_17_thresholds", 481, 6, 5)
