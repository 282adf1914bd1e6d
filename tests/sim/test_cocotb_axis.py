"""The emitted Verilog, driven by cocotb + cocotbext-axi through its AXI-stream ports."""
import json
from pathlib import Path

import numpy as np
import onnx
from support.cocotb_support import run_cocotb
from support.modelgen import LayerCfg, MLPCfg, make_mlp, random_inputs

from finn_rtl.cores.accelerator import PortGeometry
from finn_rtl.flow import build, compare
from finn_rtl.graph.ingest import execute_batched
from finn_rtl.sim.rtlsim import pack_beats

CFG = MLPCfg(in_shape=(1, 12), in_bits=4, layers=[LayerCfg(8, w_bits=2, a_bits=3, a_signed=False, relu=True),
                                                  LayerCfg(6, w_bits=3, a_bits=2), LayerCfg(4, w_bits=2)])


def to_bytes(words: np.ndarray, width_bits: int) -> list[bytes]:
    return [row.astype("<u4").tobytes()[:width_bits // 8] for row in words]


def test_axis_boundary_with_cocotb(tmp_path):
    onnx.save(make_mlp(CFG, seed=11), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out",
              folding={"MatMul_0": {"PE": 2, "SIMD": 3}, "MatMul_1": {"PE": 3, "SIMD": 4},
                       "MatMul_2": {"PE": 2, "SIMD": 2}})
    net, geometry = b.network, PortGeometry.of(b.network)
    x = random_inputs(CFG, 30, seed=12)
    ints = b.input_quantizer.quantize(x)
    expected = net.reference(ints)
    assert compare(net, expected, execute_batched(tmp_path / "model.onnx", x))["bit_exact"]

    beats = to_bytes(pack_beats(ints, net.input_type, geometry.in_elements_per_beat, geometry.in_width),
                     geometry.in_width)
    out_bytes = b"".join(to_bytes(pack_beats(expected, net.output_type, geometry.out_elements_per_beat,
                                             geometry.out_width), geometry.out_width))
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"beats": [beat.hex() for beat in beats], "expected": out_bytes.hex(),
                               "frame_bytes": geometry.out_beats_per_frame * geometry.out_width // 8}))

    total, failed = run_cocotb(b.verilog_path, net.name, "axis_cocotb_tb", Path(__file__).parent,
                               tmp_path / "sim_build", {"FINN_RTL_AXIS_CASE": str(case)})
    assert total == 1 and failed == 0
