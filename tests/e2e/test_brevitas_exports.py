"""Real Brevitas exports (tests/fixtures/brevitas, written by export_fixtures.py with Brevitas
0.13.4 and torch 2.13): what exporters write that seeded stand-ins do not, built and verified
bit-exact against qonnx on the exported file."""
from pathlib import Path

import numpy as np
import pytest

from finn_rtl.flow import build, verify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "brevitas"


@pytest.mark.parametrize("name,shape", [("mlp_int32_bias", (16,)), ("stem_maxpool_pad", (3, 9, 9)),
                                        ("avgpool_trunc", (3, 6, 6)), ("conv1d_maxpool1d", (2, 24)),
                                        ("bottleneck", (4, 8, 8))])
def test_real_brevitas_export_builds_bit_exact(name, shape, tmp_path):
    """mlp_int32_bias: biases quantized by Brevitas (Int32Bias: a Quant on a constant into Gemm),
    folded to constants before streamlining; stem_maxpool_pad: the ResNet stem's MaxPool 3x3/2
    with pads 1 (padding never wins a max); avgpool_trunc: AveragePool -> Trunc with six inputs and
    no Mul; conv1d_maxpool1d: Conv1d and MaxPool1d on [N, C, L]; bottleneck: a ResNet bottleneck with
    a stride-2 downsample shortcut; all exported by torch's dynamo exporter, with its node metadata and external weight
    data."""
    b = build(FIXTURES / f"{name}.onnx", tmp_path / "out")
    x = np.random.default_rng(3).normal(0, 1, (32, *shape)).astype(np.float32)
    result = verify(b, x, valid_percent=70, ready_percent=60)
    assert result["bit_exact"]


SHARED_MOBILENET = Path(__file__).resolve().parents[3] / "shared" / "models" / "MNV1_W4A4_imagenet.onnx"


@pytest.mark.skipif(not SHARED_MOBILENET.is_file(), reason="../shared/models/MNV1_W4A4_imagenet.onnx is absent")
def test_shared_mobilenet_v1_streamlines_bit_exact():
    """The Brevitas MobileNet-v1 (w4a4, 224x224) of ../shared: its activations before each depthwise
    conv are scaled per channel, which the depthwise layer takes into its own thresholds; the
    integer model equals qonnx on the export for two frames (the numpy reference of every layer,
    which rtlsim is checked against elsewhere)."""
    from finn_rtl.flow.verification import compare, golden_outputs
    from finn_rtl.graph.specs import VectorUnitSpec
    from finn_rtl.graph.streamline import streamline

    s = streamline(SHARED_MOBILENET)
    assert sum(isinstance(layer, VectorUnitSpec) for layer in s.network.layers) == 13
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    hw = s.network.reference(s.network.to_stream(s.input_quantizer.quantize(x)))
    golden = golden_outputs(s.network, SHARED_MOBILENET, x)[0]
    assert compare(s.network, s.network.from_stream(hw), golden)["bit_exact"]
