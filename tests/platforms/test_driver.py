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
