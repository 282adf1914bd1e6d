"""Conv nets: build -> Verilog -> Verilator rtlsim, bit-exact against qonnx on the original model."""
import onnx
import pytest
from support.convgen import AvgPoolCfg, ConvCfg, ConvNetCfg, PoolCfg, make_convnet
from support.modelgen import LayerCfg

from finn_rtl.flow import build, random_inputs, verify
from finn_rtl.graph.specs import FoldingError

CONV_CONFIGS = {
    # stride 2 with padding, then a signed activation without Relu
    "pad_stride": ConvNetCfg(in_shape=(1, 2, 9, 9), features=[
        ConvCfg(4, kernel=3, stride=2, pad=1, a_bits=3), ConvCfg(6, kernel=2, a_signed=True, relu=False)]),
    # a scalar Mul after a max pool, the pattern FINN's streamliner cannot move past the pool
    "mul_after_pool": ConvNetCfg(in_shape=(1, 2, 8, 8), features=[
        ConvCfg(4, a_bits=3), PoolCfg(mul_after=0.375), ConvCfg(4, kernel=2)]),
    # a max pool between the conv (with bias input) and its activation, then a 1x1 conv with a
    # quantized bias
    "pool_in_chain": ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, bias=True), PoolCfg(in_chain=True), ConvCfg(4, kernel=1, bias=True, bias_bits=12)]),
    # KWS-like 1-D net: [1, C, W] input, padding, pooling, stride
    "conv1d": ConvNetCfg(in_shape=(1, 10, 49), features=[
        ConvCfg(8, kernel=5, pad=2), PoolCfg(), ConvCfg(8, kernel=3, stride=2)], fc=[LayerCfg(12, norm="none")]),
    # the ResNet stem's padded max pool (3x3, stride 2, pads 1) on signed activations, and padded in
    # the chain between a conv and its activation; a padded 1-D pool
    "maxpool_pads": ConvNetCfg(in_shape=(1, 2, 9, 9), features=[
        ConvCfg(4, a_signed=True, relu=False, a_bits=3), PoolCfg(kernel=3, stride=2, pad=1),
        ConvCfg(4), PoolCfg(kernel=3, stride=2, pad=1, in_chain=True), ConvCfg(4, kernel=1)]),
    "maxpool_pads_1d": ConvNetCfg(in_shape=(1, 3, 16), features=[
        ConvCfg(6, kernel=3, a_signed=True, relu=False), PoolCfg(kernel=3, stride=2, pad=1)], fc=[LayerCfg(5, norm="none")]),
    # MobileNet-style depthwise-separable block
    "depthwise_separable": ConvNetCfg(in_shape=(1, 4, 7, 7), features=[
        ConvCfg(6, kernel=1), ConvCfg(6, kernel=3, pad=1, depthwise=True), ConvCfg(4, kernel=1)]),
    # an explicit Pad node, 4-bit weights
    "pad_node": ConvNetCfg(in_shape=(1, 2, 6, 6), pad_op=1, features=[ConvCfg(4, w_bits=4)]),
    # quantized average pools (AveragePool/GlobalAveragePool -> Mul -> Trunc) become window sums
    # followed by a thresholding layer
    "global_avg_pool": ConvNetCfg(in_shape=(1, 3, 6, 6), features=[ConvCfg(4, a_bits=3), AvgPoolCfg()]),
    "avg_pool_signed": ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, a_signed=True, relu=False), AvgPoolCfg(2), ConvCfg(4)]),
    "global_avg_pool_1d": ConvNetCfg(in_shape=(1, 4, 12), features=[ConvCfg(6, kernel=3), AvgPoolCfg()],
                                     fc=[LayerCfg(5, norm="none")]),
    # CNV-w1a1 style: 8-bit input into integer x bipolar, then XNOR convs, pools, bipolar FCs, ArgMax
    "bipolar_cnv_style": ConvNetCfg(in_shape=(1, 3, 10, 10), bipolar=True, features=[
        ConvCfg(8), ConvCfg(8), PoolCfg(), ConvCfg(16)], fc=[
        LayerCfg(16, w_bits=1, a_bits=1, bipolar_op=True), LayerCfg(10, w_bits=1, norm="none")], tail="argmax"),
}


@pytest.mark.parametrize("name", sorted(CONV_CONFIGS))
def test_conv_net_rtlsim_bit_exact(name, tmp_path):
    onnx.save(make_convnet(CONV_CONFIGS[name], seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=1000)
    result = verify(b, random_inputs(b, 16, seed=5), valid_percent=80, ready_percent=70)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"], result
    full_rate = verify(b, random_inputs(b, 16, seed=6))
    assert abs(full_rate["ii_deviation"]) <= 0.01, full_rate


def test_conv_layers_fold_on_channels(tmp_path):
    onnx.save(make_convnet(CONV_CONFIGS["pad_stride"], seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", folding={"Conv_0": {"PE": 2, "SIMD": 2}})
    conv = next(layer for layer in b.network.layers if layer.name == "Conv_0")
    window = next(layer for layer in b.network.layers if layer.name == "Conv_0_swg")
    # cycles = output pixels * (K*K*C_in / SIMD) * (C_out / PE); the window generator follows SIMD
    assert conv.cycles_per_frame == 25 * (9 * 2 // 2) * (4 // 2)
    assert window.simd == 2
    with pytest.raises(FoldingError, match=r"SIMD=3 must divide the 2 input channels \(legal: \[1, 2\]\)"):
        build(tmp_path / "model.onnx", tmp_path / "bad", folding={"Conv_0": {"SIMD": 3}})


def test_window_generator_is_a_line_buffer_not_a_frame(tmp_path):
    onnx.save(make_convnet(ConvNetCfg(in_shape=(1, 2, 32, 32), features=[ConvCfg(4)]), seed=1),
              str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out")
    window = next(layer for layer in b.network.layers if layer.name.endswith("_swg"))
    depth = window.line_buffer_rows * window.in_w * window.channels // window.simd
    assert depth < window.in_h * window.in_w * window.channels // 4


@pytest.mark.parametrize("name", ["bipolar_cnv_style", "conv1d"])
def test_fifo_sizing_from_simulation_keeps_the_analytic_ii(name, tmp_path):
    onnx.save(make_convnet(CONV_CONFIGS[name], seed=3), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=1000, fifo_sizing=True)
    sizing = b.report["fifos"]["sized_by_simulation"]
    assert b.report["fifos"]["depths"] == sizing["depths"] == list(b.network.fifo_depths)
    assert all(2 <= depth <= peak + 1 for depth, peak in zip(sizing["depths"], sizing["peaks"]))
    result = verify(b, random_inputs(b, 16, seed=8))
    assert result["bit_exact"] and abs(result["ii_deviation"]) <= 0.01, result
    from finn_rtl.flow import load_build
    assert load_build(tmp_path / "out").network.fifo_depths == b.network.fifo_depths
