"""The emitted Verilog, driven by cocotb + cocotbext-axi through its AXI-stream ports."""
import json
import os
from pathlib import Path

import numpy as np
import onnx
from modelgen import LayerCfg, MLPCfg, make_mlp, random_inputs

from finn_rtl.cores.accelerator import PortGeometry
from finn_rtl.flow import build, compare
from finn_rtl.graph.ingest import execute_batched
from finn_rtl.sim.rtlsim import pack_beats
from finn_rtl.sim.verilator import verilator_env

CFG = MLPCfg(in_shape=(1, 12), in_bits=4, layers=[LayerCfg(8, w_bits=2, a_bits=3, a_signed=False, relu=True),
                                                  LayerCfg(6, w_bits=3, a_bits=2), LayerCfg(4, w_bits=2)])


def to_bytes(words: np.ndarray, width_bits: int) -> list[bytes]:
    return [row.astype("<u4").tobytes()[:width_bits // 8] for row in words]


def test_axis_boundary_with_cocotb(tmp_path):
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    onnx.save(make_mlp(CFG, seed=11), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out",
              folding={"MatMul_0": {"PE": 2, "SIMD": 3}, "MatMul_1": {"PE": 3, "SIMD": 4},
                       "MatMul_2": {"PE": 2, "SIMD": 2}})
    net, geometry = b.network, PortGeometry.of(b.network)
    x = random_inputs(CFG, 30, seed=12)
    ints = b.streamlined.input_quantizer.quantize(x)
    expected = net.reference(ints)
    assert compare(net, expected, execute_batched(tmp_path / "model.onnx", x))["bit_exact"]

    beats = to_bytes(pack_beats(ints, net.input_type, geometry.in_elements_per_beat, geometry.in_width),
                     geometry.in_width)
    out_bytes = b"".join(to_bytes(pack_beats(expected, net.output_type, geometry.out_elements_per_beat,
                                             geometry.out_width), geometry.out_width))
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"beats": [beat.hex() for beat in beats], "expected": out_bytes.hex()}))

    os.environ.update({k: v for k, v in verilator_env().items() if k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")})
    runner = get_runner("verilator")
    runner.build(sources=[b.verilog_path], hdl_toplevel=net.name, build_dir=tmp_path / "sim_build",
                 build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"])
    results = runner.test(hdl_toplevel=net.name, test_module="axis_cocotb_tb", test_dir=tmp_path,
                          build_dir=tmp_path / "sim_build",
                          extra_env={"FINN_RTL_AXIS_CASE": str(case),
                                     "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                                    os.environ.get("PYTHONPATH", "")])})
    total, failed = get_results(results)
    assert total == 1 and failed == 0
