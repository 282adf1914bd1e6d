"""Streamlining: the integer specs reproduce qonnx execution of the original model exactly."""
import numpy as np
import onnx
import pytest
from conftest import shared_file
from support.modelgen import OP_COVERAGE as CONFIGS
from support.modelgen import make_mlp, random_inputs

from finn_rtl.flow import compare, golden_outputs
from finn_rtl.graph.export import to_streamlined_onnx
from finn_rtl.graph.ingest import execute_batched, execute_frames
from finn_rtl.graph.streamline import streamline

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_generated_models_bit_exact_in_numpy(name):
    cfg = CONFIGS[name]
    model = make_mlp(cfg, seed=3)
    s = streamline(model)
    x = random_inputs(cfg, 300, seed=4)
    hw = s.network.reference(s.input_quantizer.quantize(x))
    compared, output = golden_outputs(s.network, model, x)
    result = compare(s.network, hw, compared)
    assert result["bit_exact"], result
    assert np.allclose(s.network.output.apply(s.network.from_stream(hw)), output.reshape(len(x), -1), atol=1e-5)
    # the activations really use several levels (the generator is not testing constants)
    assert len(np.unique(hw)) > 1


@pytest.mark.parametrize("name", ["TFC_1W1A", "TFC_2W2A"])
def test_tfc_streamlines_to_expected_layers(name, mnist):
    s = streamline(shared_file(f"models/{name}.onnx"))
    net = s.network
    assert [(layer.mw, layer.mh) for layer in net.layers] == [(784, 64), (64, 64), (64, 64), (64, 10)]
    if name == "TFC_1W1A":
        assert all(layer.binary_xnor for layer in net.layers)
    x, y = mnist
    hw = net.reference(s.input_quantizer.quantize(x[:2000]))
    result = compare(net, hw, execute_batched(shared_file(f"models/{name}.onnx"), x[:2000]))
    assert result["bit_exact"]


@pytest.mark.parametrize("name", ["non-dyadic-scales", "8bit-argmax"])
def test_batched_golden_agrees_with_frame_by_frame(name):
    """Batched execution may differ from frame-by-frame in the last float bit (summation order
    in MatMul), never on the integer grid the hardware is compared on."""
    cfg = CONFIGS[name]
    model = make_mlp(cfg, seed=5)
    x = random_inputs(cfg, 12, seed=6)
    s = streamline(model)
    hw = s.network.reference(s.input_quantizer.quantize(x))
    batched, frames = execute_batched(model, x), execute_frames(model, x)
    assert np.allclose(batched, frames, rtol=1e-5, atol=1e-6)
    assert compare(s.network, hw, batched)["bit_exact"]
    assert compare(s.network, hw, frames)["bit_exact"]


def test_golden_outputs_do_not_depend_on_where_the_frames_run():
    """The golden model runs `golden_chunk` frames at a time (its memory bounded: a whole ImageNet
    batch in one qonnx execution would keep every activation of every frame), and cluster shards
    are whole chunks, so each frame is computed in the same batch on one machine and in a shard.
    (For this model the batch does not change a result anyway; float32 sums may differ between
    batch compositions in general, as between a batch and a frame alone.)"""
    from finn_rtl.cluster import golden_shards
    from finn_rtl.flow.verification import golden_frames
    from finn_rtl.graph.ingest import golden_chunk

    cfg = CONFIGS["non-dyadic-scales"]
    model = make_mlp(cfg, seed=5)
    x = random_inputs(cfg, 2600, seed=6)
    chunk = golden_chunk(x[0].size)
    assert chunk == 1024
    whole = golden_frames(model, None, x)[0]
    shards = golden_shards(len(x), chunk, cpus=2)
    assert [len(shard) for shard in shards] == [1024, 1024, 552]
    assert np.array_equal(np.concatenate([golden_frames(model, None, x[shard])[0] for shard in shards]), whole)
    assert np.array_equal(execute_batched(model, x[:1024]), whole[:1024])  # a chunk is one batch


def test_streamlined_onnx_executes_like_the_hardware_model(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    cfg = CONFIGS["gemm-relu-unsigned"]
    s = streamline(make_mlp(cfg, seed=2))
    path = tmp_path / "streamlined.onnx"
    onnx.save(to_streamlined_onnx(s.network), str(path))
    model = ModelWrapper(str(path))
    ints = s.input_quantizer.quantize(random_inputs(cfg, 20, seed=1))
    reference = s.network.output.apply(s.network.reference(ints))
    for frame, expected in zip(ints, reference):
        out = execute_onnx(model, {"x": frame[None].astype(np.float32)})["y"]
        assert np.allclose(out[0], expected, rtol=1e-6, atol=1e-6)
    assert model.get_tensor_datatype("x").name == str(s.network.input_type)


def test_streamlined_conv_onnx_executes_like_the_hardware_model(tmp_path):
    """Conv nets export as Gather (windows, padding), MatMul over pixels, Mul+ReduceSum for
    depthwise, ReduceMax/ReduceSum pools and MultiThreshold, all on the stream-order elements."""
    from support.convgen import AvgPoolCfg, ConvCfg, ConvNetCfg, PoolCfg
    from support.convgen import make_convnet
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    cfg = ConvNetCfg(in_shape=(1, 2, 8, 8), features=[ConvCfg(3, pad=1), PoolCfg(), ConvCfg(4, kernel=2),
                                                      ConvCfg(4, kernel=2, depthwise=True), AvgPoolCfg()])
    s = streamline(make_convnet(cfg, seed=4))
    path = tmp_path / "streamlined.onnx"
    onnx.save(to_streamlined_onnx(s.network), str(path))
    model = ModelWrapper(str(path))
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 256, (6, s.network.in_elements))
    stream = s.network.to_stream(ints)
    reference = s.network.output.apply(s.network.reference(stream))
    for frame, expected in zip(stream, reference):
        out = execute_onnx(model, {"x": frame[None].astype(np.float32)})["y"]
        assert np.allclose(out[0], expected, rtol=1e-6, atol=1e-6)
