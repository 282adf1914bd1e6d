"""The AcceleratorShell in simulation: registers over AXI4-Lite, frames through an AXI RAM model
with random stalls, results equal to the accelerator's numpy reference (shell_cocotb_tb.py)."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from support.cocotb_support import run_cocotb
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.flow import build, random_inputs
from finn_rtl.platforms.deploy import write_shell

HERE = Path(__file__).parent
CFG = MLPCfg(in_shape=(1, 30), in_bits=4, layers=[LayerCfg(8, w_bits=2, a_bits=3, a_signed=False, relu=True),
                                                  LayerCfg(5, w_bits=2)])

# (name, folding, memory word bytes): 2-byte beats cut from words with a partial last word per
# frame; 15-byte beats gathered from two words; the same narrow beats in 512-bit words, with the
# driver starting the kernel as on Alveo (the kernel call instead of register writes).
CASES = [
    ("narrow-beats-64bit", {"MatMul_0": {"PE": 2, "SIMD": 3}, "MatMul_1": {"PE": 1, "SIMD": 2}}, 8, "zynq"),
    ("wide-beats-64bit", {"MatMul_0": {"PE": 4, "SIMD": 30}, "MatMul_1": {"PE": 5, "SIMD": 8}}, 8, "zynq"),
    ("narrow-beats-512bit", {"MatMul_0": {"PE": 2, "SIMD": 3}, "MatMul_1": {"PE": 1, "SIMD": 2}}, 64, "alveo"),
]


def prepare(tmp_path, b, word_bytes, x, platform="zynq", **case):
    files = write_shell(b, tmp_path / "deploy", word_bytes, clock_mhz=100.0, platform=platform, base_name="accel")
    ints = b.network.to_stream(b.input_quantizer.quantize(x))
    np.save(tmp_path / "inputs.npy", ints)
    np.save(tmp_path / "expected.npy", b.network.reference(ints))
    np.save(tmp_path / "float_inputs.npy", x)
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps({
        "description": str(files.description), "driver_dir": str(files.out_dir),
        "fake_pynq_dir": str(HERE / "fake_pynq"),
        "inputs": str(tmp_path / "inputs.npy"), "expected": str(tmp_path / "expected.npy"),
        "float_inputs": str(tmp_path / "float_inputs.npy"), "bitfile": str(files.out_dir / "accel.bit"),
        "driver_outputs": str(tmp_path / "driver_outputs.npy"), "throughput": str(tmp_path / "throughput.json"),
        **case}))
    return files, case_file


def run_bench(tmp_path, files, case_file, testcase=None):
    return run_cocotb(files.verilog, files.kernel, "shell_cocotb_tb", HERE, tmp_path / "sim_build",
                      {"FINN_RTL_SHELL_CASE": str(case_file)}, testcase)


@pytest.mark.parametrize("name, folding, word_bytes, platform", CASES, ids=[c[0] for c in CASES])
def test_shell_moves_frames_through_memory(tmp_path, name, folding, word_bytes, platform):
    onnx.save(make_mlp(CFG, seed=5), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", folding=folding)
    x = random_inputs(b, 37, seed=3)
    files, case_file = prepare(tmp_path, b, word_bytes, x, platform, poll_cycles=50)
    layout = files.description_data
    print(name, layout["input"]["layout"], layout["output"]["layout"])
    total, failed = run_bench(tmp_path, files, case_file)
    assert (total, failed) == (5, 0)
    driver_outputs = np.load(tmp_path / "driver_outputs.npy")
    from finn_rtl.flow import compare
    from finn_rtl.graph.ingest import execute_batched

    golden = execute_batched(tmp_path / "model.onnx", x)
    assert np.array_equal(driver_outputs, b.network.output.apply(b.network.from_stream(
        b.network.reference(b.network.to_stream(b.input_quantizer.quantize(x))))))
    assert compare(b.network, b.network.from_stream(b.network.reference(
        b.network.to_stream(b.input_quantizer.quantize(x)))), golden)["bit_exact"]
