"""MobileNet-v1-style nets (depthwise 3x3 + pointwise 1x1 blocks, 4-bit) bit-exact in rtlsim at
their analytic II: a small one on random inputs, the paper's 13 blocks on CIFAR-10 images."""
import onnx
import pytest
from conftest import MIXED_CIFAR10, cifar10_images
from support.convgen import make_convnet, mobilenet_v1

from finn_rtl.flow import build, random_inputs, verify

TARGET_II = 16384


def check(b, x, labels=None):
    result = verify(b, x, labels)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"], result
    assert abs(result["ii_deviation"]) <= 0.01, result
    return result


def test_small_mobilenet_on_random_inputs(tmp_path):
    onnx.save(make_convnet(mobilenet_v1(0.125, 4, blocks=6, size=16), seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=4096)
    assert sum(layer.kind == "VectorUnit" for layer in b.network.layers) == 6
    check(b, random_inputs(b, 20))


@pytest.mark.parametrize("width", [0.25, pytest.param(0.5, marks=pytest.mark.slow)])
def test_mobilenet_v1_cifar10_bit_exact(width, tmp_path):
    x, y = cifar10_images(MIXED_CIFAR10)
    onnx.save(make_convnet(mobilenet_v1(width, 4), seed=5), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=TARGET_II)
    assert sum(layer.kind == "VectorUnit" for layer in b.network.layers) == 13
    result = check(b, x, y)
    assert result["frames"] == 100
