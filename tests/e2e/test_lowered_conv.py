"""Convolutions lowered to Transpose -> Im2Col -> MatMul -> Transpose (qonnx's LowerConvsToMatMul, the
form FINN's conv models carry after step_qonnx_to_finn): built and verified bit-exact like Conv."""
import warnings

import onnx
import pytest
from support.convgen import ConvCfg, ConvNetCfg, PoolCfg, make_convnet
from support.modelgen import LayerCfg

from finn_rtl.flow import build, compare, golden_outputs, random_inputs, verify
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.streamline import streamline

LOWERED = {
    # padding, stride, a pool between layers, a 1x1 conv (a MatMul without Im2Col), then FC
    "pad_stride_pointwise": ConvNetCfg(in_shape=(1, 3, 9, 9), features=[
        ConvCfg(4, kernel=3, stride=2, pad=1, a_bits=3), ConvCfg(6, kernel=1), PoolCfg(), ConvCfg(5, kernel=2)],
        fc=[LayerCfg(7, norm="none")]),
    # CNV-w1a1 style: integer x bipolar first layer, then XNOR convs, bias inputs, ArgMax
    "bipolar": ConvNetCfg(in_shape=(1, 3, 8, 8), bipolar=True, features=[ConvCfg(8), ConvCfg(8), PoolCfg()],
                          fc=[LayerCfg(10, w_bits=1, norm="none")], tail="argmax"),
    "pool_in_chain": ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, bias=True), PoolCfg(in_chain=True), ConvCfg(4, kernel=3, pad=1)]),
}


def lowered(cfg, seed=3):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = cleanup_model(ModelWrapper(make_convnet(cfg, seed=seed)))
        wrapper = wrapper.transform(LowerConvsToMatMul()).transform(InferShapes())
    assert "Im2Col" in [node.op_type for node in wrapper.graph.node]
    return wrapper.model  # (qonnx lowers convs with Quant weights; BipolarQuant-weight convs stay Conv)


@pytest.mark.parametrize("name", LOWERED)
def test_lowered_conv_bit_exact_in_numpy(name):
    model = lowered(LOWERED[name])
    s = streamline(model)
    import numpy as np

    x = np.random.default_rng(1).uniform(0, 1, (40, *LOWERED[name].in_shape[1:])).astype("float32")
    hw = s.network.reference(s.network.to_stream(s.input_quantizer.quantize(x)))
    assert compare(s.network, s.network.from_stream(hw), golden_outputs(s.network, model, x)[0])["bit_exact"]


@pytest.mark.parametrize("name", ["pad_stride_pointwise", "bipolar"])
def test_lowered_conv_rtlsim_with_backpressure(name, tmp_path):
    onnx.save(lowered(LOWERED[name]), str(tmp_path / "m.onnx"))
    b = build(tmp_path / "m.onnx", tmp_path / "out")
    x = random_inputs(b, 24)
    r = verify(b, x, valid_percent=70, ready_percent=60)
    assert r["bit_exact"]
    assert abs(verify(b, x)["ii_deviation"]) <= 0.01


def test_im2col_with_dilation_is_refused():
    model = lowered(LOWERED["pad_stride_pointwise"])
    node = next(n for n in model.graph.node if n.op_type == "Im2Col")
    for attribute in node.attribute:
        if attribute.name == "dilations":
            attribute.ints[:] = [2, 2]
    with pytest.raises(CompileError, match="dilations"):
        streamline(model)
