"""The generated host driver, unchanged, against shell + accelerator in Verilator through a fake
pynq module: the model's float input in, the model's output back, bit-exact against qonnx."""
import json

import numpy as np
import onnx
from conftest import shared_file
from support.convgen import ConvCfg, ConvNetCfg, PoolCfg, make_convnet
from support.modelgen import LayerCfg
from test_shell import prepare, run_bench

from finn_rtl.flow import build, compare, random_inputs
from finn_rtl.graph.ingest import execute_batched


def check_driver(tmp_path, b, x, word_bytes, **case):
    files, case_file = prepare(tmp_path, b, word_bytes, x, **case)
    total, failed = run_bench(tmp_path, files, case_file, testcase="driver_end_to_end")
    assert (total, failed) == (1, 0)
    outputs = np.load(tmp_path / "driver_outputs.npy")
    net = b.network
    hardware = net.from_stream(net.reference(net.to_stream(b.input_quantizer.quantize(x))))
    result = compare(net, hardware, execute_batched(b.out_dir / "original.onnx", x))
    assert result["bit_exact"], result
    assert np.array_equal(outputs, net.output.apply(hardware)), "driver output differs from verify's"
    return outputs, json.loads((tmp_path / "throughput.json").read_text())


def test_driver_tfc_1w1a_on_mnist(tmp_path, mnist):
    model = shared_file("models/TFC_1W1A.onnx")
    x, labels = mnist[0][:1000], mnist[1][:1000]
    b = build(model, tmp_path / "out", target_ii=64)
    outputs, throughput = check_driver(tmp_path, b, x, 8, throughput_frames=[200], max_frames=512)
    accuracy = float(np.mean(outputs.argmax(axis=1) == labels))
    golden = execute_batched(model, x)
    assert accuracy == float(np.mean(golden.reshape(len(x), -1).argmax(axis=1) == labels))
    cycles_per_frame = throughput[0]["cycles_per_frame"]
    assert 64 <= cycles_per_frame < 64 * 1.1, throughput  # 200 frames incl. the pipeline's fill


def test_driver_conv_net_with_stalls(tmp_path):
    cfg = ConvNetCfg(in_shape=(1, 3, 10, 10), bipolar=True, features=[ConvCfg(8), PoolCfg(), ConvCfg(16)],
                     fc=[LayerCfg(16, w_bits=1, a_bits=1, bipolar_op=True), LayerCfg(10, w_bits=1, norm="none")],
                     tail="argmax")
    onnx.save(make_convnet(cfg, seed=4), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=1000)
    x = random_inputs(b, 24, seed=9)
    # 3-byte RGB beats in 4-byte slots of 128-bit words; buffers start mid-page; random AXI stalls.
    check_driver(tmp_path, b, x, 16, stall_probability=0.3, buffer_offset=0xF00, max_frames=10)


def test_driver_loads_fine_tuned_weights_without_a_new_bitstream(tmp_path):
    """FINN's runtime_writeable_weights: two layers' weights (one in UltraRAM, which has no initial
    contents) written through the shell's AXI4-Lite window. The driver loads the build's weights
    when it starts and a fine-tuned model's build with `load_weights`; both runs are bit-exact
    against qonnx on their own model, and a build whose thresholds differ too is refused."""
    from support.modelgen import MLPCfg, make_mlp
    from support.retrain import with_new_weights

    cfg = MLPCfg(in_shape=(1, 32), layers=[LayerCfg(16, w_bits=3), LayerCfg(12, w_bits=2),
                                           LayerCfg(8, w_bits=4, norm="none")], tail="none")
    model = make_mlp(cfg, seed=3)
    paths = {name: tmp_path / f"{name}.onnx" for name in ("built", "tuned", "other")}
    onnx.save(model, str(paths["built"]))
    onnx.save(with_new_weights(model, {"W_6", "W_48"}, seed=4), str(paths["tuned"]))
    onnx.save(with_new_weights(model, {"W_6", "W_27"}, seed=5), str(paths["other"]))  # W_27 is not written
    folding = {"MatMul_0": {"PE": 1, "SIMD": 32, "runtime_writeable_weights": 1, "ram_style": "ultra"},
               "MatMul_1": {"PE": 3, "SIMD": 4},
               "MatMul_2": {"PE": 1, "SIMD": 6, "runtime_writeable_weights": 1}}
    builds = {name: build(path, tmp_path / name, folding=folding) for name, path in paths.items()}
    b = builds["built"]
    assert b.network.layer("MatMul_0").memory_style("weights") == "ultra"
    x = random_inputs(b, 20, seed=2)
    outputs = {name: tmp_path / f"{name}_outputs.npy" for name in ("built", "tuned")}
    files, case_file = prepare(tmp_path, b, 8, x, tuned_weights=str(builds["tuned"].out_dir / "weights"),
                               other_weights=str(builds["other"].out_dir / "weights"),
                               built_outputs=str(outputs["built"]), tuned_outputs=str(outputs["tuned"]),
                               refusal=str(tmp_path / "refusal.json"))
    assert (files.out_dir / "weights" / "manifest.json").is_file()
    assert run_bench(tmp_path, files, case_file, testcase="driver_runtime_weights") == (1, 0)
    for name in ("built", "tuned"):
        net, golden = builds[name].network, execute_batched(paths[name], x)
        hardware = np.load(outputs[name])
        assert np.array_equal(hardware, net.output.apply(net.from_stream(net.reference(
            net.to_stream(builds[name].input_quantizer.quantize(x)))))), name
        assert np.allclose(hardware, golden.reshape(hardware.shape), rtol=0, atol=1e-6), name
    assert not np.array_equal(np.load(outputs["built"]), np.load(outputs["tuned"]))
    result = json.loads((tmp_path / "refusal.json").read_text())
    assert result["written"] == sum(m["depth"] * m["stride"] for m in files.description_data["weights"]["memories"])
    assert "differs from the loaded design beyond its weights" in result["refusal"]
