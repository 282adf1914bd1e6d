"""The FINN-ONNX dialect: annotated float weights, MultiThreshold activations, TopK."""
import onnx
import pytest
from support.finngen import finn_inputs, make_finn_cnv, make_finn_mlp

from finn_rtl.flow import build, compare, golden_outputs, verify
from finn_rtl.graph.errors import CompileError
from finn_rtl.graph.streamline import streamline


@pytest.mark.parametrize("tail", ["topk", "mul"])
@pytest.mark.parametrize("domain", ["finn.custom_op.general", "qonnx.custom_op.general"])
def test_finn_dialect_bit_exact_in_numpy(tail, domain):
    model = make_finn_mlp(tail=tail, seed=2, domain=domain)
    s = streamline(model)
    kinds = [(str(layer.weight_type), str(layer.output_type)) for layer in s.network.layers]
    assert kinds[:2] == [("INT2", "UINT2"), ("INT2", "BIPOLAR")] and s.network.layers[2].binary_xnor
    assert s.network.output.label_select == (tail == "topk")
    x = finn_inputs(300)
    hw = s.network.reference(s.input_quantizer.quantize(x))
    assert compare(s.network, hw, golden_outputs(s.network, model, x)[0])["bit_exact"]


def test_finn_dialect_rtlsim_with_backpressure(tmp_path):
    onnx.save(make_finn_mlp(seed=5, widths=(16, 8, 10), in_features=20), str(tmp_path / "m.onnx"))
    b = build(tmp_path / "m.onnx", tmp_path / "out", target_ii=8)
    x = finn_inputs(200, in_features=20, seed=3)
    assert verify(b, x, valid_percent=70, ready_percent=60)["bit_exact"]
    assert abs(verify(b, x)["ii_deviation"]) <= 0.01


def test_xnor_popcount_matmul_bit_exact(tmp_path):
    """Older FINN graphs: XnorPopcountMatMul on BINARY operands, made by FINN's own transformation."""
    model = make_finn_mlp(seed=6, widths=(16, 8, 10), in_features=20, xnor=True)
    ops = [node.op_type for node in model.graph.node]
    assert "XnorPopcountMatMul" in ops and "MatMul" in ops
    x = finn_inputs(300, in_features=20, seed=4)
    s = streamline(model)
    hw = s.network.reference(s.input_quantizer.quantize(x))
    assert compare(s.network, hw, golden_outputs(s.network, model, x)[0])["bit_exact"]
    onnx.save(model, str(tmp_path / "xnor.onnx"))
    b = build(tmp_path / "xnor.onnx", tmp_path / "out", target_ii=8)
    assert verify(b, x, valid_percent=70, ready_percent=60)["bit_exact"]


def test_xnor_popcount_matmul_with_non_binary_weights_is_named():
    model = make_finn_mlp(seed=6, xnor=True)
    node = next(n for n in model.graph.node if n.op_type == "XnorPopcountMatMul")
    weights = next(i for i in model.graph.initializer if i.name == node.input[1])
    values = onnx.numpy_helper.to_array(weights).copy()
    values[0, 0] = -1.0
    weights.CopyFrom(onnx.numpy_helper.from_array(values, weights.name))
    with pytest.raises(CompileError, match="XnorPopcountMatMul.*0/1 .BINARY. values"):
        streamline(model)


@pytest.mark.parametrize("tail", ["topk", "mul"])
def test_finn_streamlined_conv_net_bit_exact(tail, tmp_path):
    """Channels last as FINN's streamlining leaves a conv net: Transpose, Im2Col, MatMul, MultiThreshold
    with data_layout NHWC, MaxPoolNHWC, Transpose back, Flatten, MatMul."""
    import numpy as np

    model = make_finn_cnv(seed=1, tail=tail)
    s = streamline(model)
    kinds = [type(layer).__name__ for layer in s.network.layers]
    assert kinds == ["SlidingWindowSpec", "MVTUSpec", "SlidingWindowSpec", "PoolSpec", "PadSpec",
                     "SlidingWindowSpec", "MVTUSpec", "MVTUSpec"]
    x = np.random.default_rng(2).integers(0, 256, (60, 3, 8, 8)).astype(np.float32)
    hw = s.network.from_stream(s.network.reference(s.network.to_stream(s.input_quantizer.quantize(x))))
    assert compare(s.network, hw, golden_outputs(s.network, model, x)[0])["bit_exact"]
    if tail == "mul":
        onnx.save(model, str(tmp_path / "cnv.onnx"))
        b = build(tmp_path / "cnv.onnx", tmp_path / "out")
        assert verify(b, x[:24], valid_percent=70, ready_percent=60)["bit_exact"]


def test_annotation_that_does_not_fit_is_named():
    from qonnx.core.modelwrapper import ModelWrapper

    model = make_finn_mlp(seed=2)
    weights = next(i for i in model.graph.initializer if i.name == "W0")
    values = onnx.numpy_helper.to_array(weights).copy()
    values[0, 0] = 5.0
    weights.CopyFrom(onnx.numpy_helper.from_array(values, "W0"))
    with pytest.raises(CompileError, match="node 'MatMul_0' .*its weights are annotated INT2 but hold values outside it"):
        streamline(model)
    wrapper = ModelWrapper(make_finn_mlp(seed=2))
    from qonnx.core.datatype import DataType

    wrapper.set_tensor_datatype("W0", DataType["FLOAT32"])
    with pytest.raises(CompileError, match="no integer datatype annotation"):
        streamline(wrapper.model)


def test_multithreshold_bias_off_the_grid_is_refused():
    model = make_finn_mlp(seed=2)
    node = next(n for n in model.graph.node if n.op_type == "MultiThreshold")
    node.attribute.extend([onnx.helper.make_attribute("out_bias", 0.5)])
    with pytest.raises(CompileError, match="MultiThreshold out_bias 0.5 is not a whole number"):
        streamline(model)
