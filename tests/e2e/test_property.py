"""Property: any random quantized MLP with any legal folding is bit-exact in rtlsim.

At least 50 random networks per run (depth 1-4, widths, 1-8 bit weights and
activations, signedness, narrow ranges, every supported op, random PE/SIMD),
each built to Verilog, compiled with Verilator and compared to qonnx.
"""
import os

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.modelgen import LayerCfg, MLPCfg, make_mlp, random_inputs

from finn_rtl.flow import build, verify
from finn_rtl.graph.specs import divisors


@st.composite
def layer_cfgs(draw, width):
    a_bits = draw(st.integers(1, 8))
    return LayerCfg(
        width=width,
        w_bits=draw(st.integers(1, 8)), w_signed=draw(st.booleans()), w_narrow=draw(st.booleans()),
        per_channel_w_scale=draw(st.booleans()), gemm=draw(st.booleans()), bias=draw(st.booleans()),
        norm=draw(st.sampled_from(["bn", "affine", "div", "none"])), relu=draw(st.booleans()),
        a_bits=a_bits, a_signed=draw(st.booleans()), a_narrow=draw(st.booleans()) and a_bits > 1,
        bipolar_op=draw(st.booleans()))


@st.composite
def mlp_cfgs(draw):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 12)) for _ in range(depth)]
    in_features = draw(st.integers(1, 16))
    layers = [draw(layer_cfgs(w)) for w in widths]
    tail = draw(st.sampled_from(["affine", "none", "quant", "argmax"]))
    if tail == "argmax" and widths[-1] < 2:
        tail = "affine"
    return MLPCfg(in_shape=(1, in_features), input=draw(st.sampled_from(["float", "bipolar", "int"])),
                  in_bits=draw(st.integers(1, 8)), in_signed=draw(st.booleans()), layers=layers,
                  tail=tail, dyadic=draw(st.booleans()))


# CI runs a fixed sample (derandomized: a landing never depends on the draw); other runs explore
# new examples, and what they find becomes a regression test below.
@settings(max_examples=int(os.environ.get("FINN_RTL_PROPERTY_EXAMPLES", 50)), deadline=None, database=None,
          derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(cfg=mlp_cfgs(), seed=st.integers(0, 2**16), data=st.data())
def test_random_mlp_bit_exact_in_rtlsim(cfg, seed, data, tmp_path_factory):
    if cfg.input == "int" and cfg.in_signed and cfg.in_bits == 1:
        cfg.in_signed = False  # a 1-bit signed integer input type is bipolar, chosen separately
    work = tmp_path_factory.mktemp("mlp")
    onnx.save(make_mlp(cfg, seed=seed), str(work / "model.onnx"))
    sizes = [int(cfg.in_shape[1])] + [layer.width for layer in cfg.layers]
    folding = {f"MatMul_{i}": {"PE": data.draw(st.sampled_from(divisors(mh))),
                               "SIMD": data.draw(st.sampled_from(divisors(mw)))}
               for i, (mw, mh) in enumerate(zip(sizes, sizes[1:]))}
    b = build(work / "model.onnx", work / "out", folding=folding)
    busy = data.draw(st.sampled_from([100, 70, 40]))
    result = verify(b, random_inputs(cfg, 40, seed=seed), valid_percent=busy, ready_percent=busy, seed=seed)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"], result


def one_bit_layer(width, norm, a_signed):
    return LayerCfg(width=width, w_bits=1, w_signed=False, w_narrow=False, per_channel_w_scale=False, gemm=False,
                    bias=False, norm=norm, relu=False, a_bits=1, a_signed=a_signed, a_narrow=False, bipolar_op=False)


def test_regression_one_bit_signed_input_unsigned_one_bit_weights(tmp_path):
    """Found by the random test: 5 of 40 frames differed from qonnx run on the whole batch, whose
    float32 sums put a first-layer sum that is exactly 0 at -4e-9, which its 1-bit signed Quant
    (0 -> +1) turns into -1. qonnx on each frame alone, as a user runs the model, agrees with the
    hardware; `verify` runs differing frames again alone."""
    cfg = MLPCfg(in_shape=(1, 6), input="float", in_bits=1, in_signed=True, tail="affine", dyadic=False,
                 layers=[one_bit_layer(7, "none", True), one_bit_layer(4, "bn", False), one_bit_layer(1, "bn", False)])
    onnx.save(make_mlp(cfg, seed=0), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out")
    result = verify(b, random_inputs(cfg, 40, seed=0), seed=0)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"]
