"""CNV topologies (FINN/Brevitas CNV, seeded weights) on real CIFAR-10 images, bit-exact in rtlsim."""
import numpy as np
import onnx
import pytest
from conftest import cifar10_images, shared_file
from support.convgen import CNV_W1A1, CNV_W2A2, make_convnet

from finn_rtl.flow import build, verify

TARGET_II = 40_000
IMAGES = 100


@pytest.fixture(scope="module")
def cifar10():
    return cifar10_images(np.arange(IMAGES))


@pytest.mark.parametrize("name,cfg", [("w1a1", CNV_W1A1), pytest.param("w2a2", CNV_W2A2, marks=pytest.mark.slow)])
def test_cnv_cifar10_bit_exact_at_target_ii(name, cfg, cifar10, tmp_path):
    onnx.save(make_convnet(cfg, seed=7), str(tmp_path / "cnv.onnx"))
    b = build(tmp_path / "cnv.onnx", tmp_path / "out", target_ii=TARGET_II)
    assert b.network.analytic_ii <= TARGET_II
    x, y = cifar10
    result = verify(b, x, y)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"], result
    assert result["frames"] == IMAGES
    assert abs(result["ii_deviation"]) <= 0.01, result


@pytest.mark.slow
def test_trained_cnv_2w2a_from_brevitas(tmp_path):
    """The trained CNV exported by today's Brevitas (its last Gemm has no bias) on held-out images."""
    model = shared_file("models/CNV_2W2A_trained.onnx")
    data = np.load(shared_file("data/cifar10_test_jpeg.npz"))
    held_out = np.array([c * 1000 + i for c in range(10) for i in range(10)])  # mixed classes
    x = (data["x"][held_out].astype(np.float32) / 255).transpose(0, 3, 1, 2).copy()
    b = build(model, tmp_path / "out", target_ii=TARGET_II)
    result = verify(b, x, data["y"][held_out])
    assert result["bit_exact"] and abs(result["ii_deviation"]) <= 0.01, result
