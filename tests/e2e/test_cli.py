"""The CLI: builds, verifies, and reports user errors without a traceback."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp
from onnx import TensorProto, helper, numpy_helper

CFG = MLPCfg(in_shape=(1, 12), layers=[LayerCfg(6, w_bits=2, a_bits=2), LayerCfg(4, w_bits=2)])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "finn_rtl.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(make_mlp(CFG, seed=1), str(path))
    return path


def test_build_and_verify(model_file, tmp_path):
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"MatMul_0": {"PE": 2, "SIMD": 3, "ram_style": "block"},
                                   "MatMul_1": {"PE": 2, "SIMD": 2}}))
    out = tmp_path / "out"
    result = run_cli("build", model_file, "-o", out, "--folding", folding, "--verify", 50)
    assert result.returncode == 0, result.stderr
    assert "bit-exact" in result.stdout
    for name in ("original.onnx", "streamlined.onnx", "input_quantizer.onnx", "finn_rtl_top.v",
                 "folding.json", "report.json"):
        assert (out / name).is_file(), name
    written = json.loads((out / "folding.json").read_text())
    fifo_styles = written.pop("fifo_styles")
    assert {name: {k: entry[k] for k in ("PE", "SIMD")} for name, entry in written.items()} == \
        {"MatMul_0": {"PE": 2, "SIMD": 3}, "MatMul_1": {"PE": 2, "SIMD": 2}}
    assert set(fifo_styles) == {"MatMul_0 -> MatMul_1"}
    # every memory's style, the one asked for included (a block-RAM weight ROM simulates bit-exactly)
    assert written["MatMul_0"]["memory_styles"]["weights"] == "block"
    assert set(written["MatMul_1"]["memory_styles"]) == {"weights", "input_buffer"}
    report = json.loads((out / "report.json").read_text())
    assert report["expected_ii_cycles"] == max(row["cycles_per_frame"] for row in report["layers"]) == 12
    assert report["verification"]["bit_exact"]
    # the written folding is accepted back as input
    again = run_cli("build", model_file, "-o", tmp_path / "again", "--folding", out / "folding.json")
    assert again.returncode == 0, again.stderr

    data = tmp_path / "inputs.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(0, 1, (40, 12)).astype(np.float32))
    checked = run_cli("verify", out, "--data", data, "--ready-percent", 50)
    assert checked.returncode == 0, checked.stderr
    assert "verified 40 frames: bit-exact" in checked.stdout


def test_handshake_sweep_gives_the_same_outputs_at_every_rate(model_file, tmp_path):
    """--sweep simulates the frames again at each ready/valid rate, beside the first run; the
    outputs must not change, and each point's II slows with its rate."""
    out = tmp_path / "out"
    result = run_cli("build", model_file, "-o", out, "--verify", 64, "--sweep", "50,25/50")
    # (for this MLP one output beat per frame: even ready 25% costs little of its II of 72)
    assert result.returncode == 0, result.stderr
    assert "handshake sweep, the same outputs at every point" in result.stdout
    verification = json.loads((out / "report.json").read_text())["verification"]
    assert verification["bit_exact"]
    sweep = verification["sweep"]
    assert [(p["valid_percent"], p["ready_percent"]) for p in sweep] == [(100, 50), (50, 25)]
    assert all(p["frames_differing_from_first_run"] == 0 for p in sweep)
    # a slower handshake never speeds the design up
    assert all(p["measured_ii_cycles"] >= verification["measured_ii_cycles"] for p in sweep)
    refused = run_cli("verify", out, "--sweep", "50,0")
    _error(refused, "--sweep 50,0", "'0' is not READY or READY/VALID")


def _error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_illegal_folding_is_a_clear_error(model_file, tmp_path):
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"MatMul_0": {"PE": 4, "SIMD": 5}}))
    _error(run_cli("build", model_file, "-o", tmp_path / "o", "--folding", folding),
           "MatMul_0", "PE=4 must divide MH=6 (legal: [1, 2, 3, 6])", "SIMD=5 must divide MW=12")
    folding.write_text(json.dumps({"fc9": {"PE": 1}}))
    _error(run_cli("build", model_file, "-o", tmp_path / "o", "--folding", folding), "unknown layers ['fc9']")


def _model_with(nodes, inits, in_shape=(1, 4)):
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
                                           for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _quant(inp, out, bits, name):
    return helper.make_node("Quant", [inp, "s", "z", bits], [out], name=name,
                            domain="qonnx.custom_op.general", signed=1, narrow=0, rounding_mode="ROUND")


COMMON = {"s": 0.5, "z": 0.0, "b2": 2.0, "b16": 16.0, "W": np.ones((4, 3))}


@pytest.mark.parametrize("case,fragments", [
    ("unsupported-op", ["Tanh", "not supported"]),
    ("wide-bits", ["Quant_w", "bit width 16", "1 to 8 bits"]),
    ("float-only", ["float-only model"]),
    ("dynamic-weights", ["W_in", "non-constant weights"]),
])
def test_bad_models_name_the_node(case, fragments, tmp_path):
    q_in = _quant("x", "xq", "b2", "Quant_in")
    if case == "unsupported-op":
        nodes = [q_in, _quant("W", "Wq", "b2", "Quant_w"), helper.make_node("MatMul", ["xq", "Wq"], ["m"], name="MatMul_0"),
                 helper.make_node("Tanh", ["m"], ["y"], name="Tanh_0")]
    elif case == "wide-bits":
        nodes = [q_in, _quant("W", "Wq", "b16", "Quant_w"), helper.make_node("MatMul", ["xq", "Wq"], ["y"], name="MatMul_0")]
    elif case == "float-only":
        nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="MatMul_0")]
    else:
        nodes = [q_in, _quant("W_in", "Wq", "b2", "Quant_w"), helper.make_node("MatMul", ["xq", "Wq"], ["y"], name="MatMul_0")]
    model = _model_with(nodes, COMMON)
    if case == "dynamic-weights":
        model.graph.input.append(helper.make_tensor_value_info("W_in", TensorProto.FLOAT, [4, 3]))
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    _error(run_cli("build", path, "-o", tmp_path / "o"), *fragments)


def test_malformed_and_missing_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00this is not protobuf\xff" * 10)
    _error(run_cli("build", junk, "-o", tmp_path / "o"), "junk.onnx")
    _error(run_cli("build", tmp_path / "missing.onnx", "-o", tmp_path / "o"), "does not exist")


def test_verify_random_frames_of_an_integer_input_model(tmp_path):
    cfg = MLPCfg(in_shape=(1, 10), input="int", in_bits=4, in_signed=True,
                 layers=[LayerCfg(6, w_bits=3, a_bits=2), LayerCfg(3, w_bits=2)])
    path = tmp_path / "int.onnx"
    onnx.save(make_mlp(cfg, seed=2), str(path))
    result = run_cli("build", path, "-o", tmp_path / "out", "--target-ii", "6", "--verify", 64)
    assert result.returncode == 0, result.stderr
    assert "verified 64 frames: bit-exact" in result.stdout
    assert json.loads((tmp_path / "out" / "report.json").read_text())["input"]["type"] == "INT4"


def test_wrong_input_shape_is_a_clear_error(model_file, tmp_path):
    out = tmp_path / "out"
    assert run_cli("build", model_file, "-o", out).returncode == 0
    data = tmp_path / "bad.npy"
    np.save(data, np.zeros((5, 13), dtype=np.float32))
    _error(run_cli("verify", out, "--data", data), "input frames", "(12,)")


def test_build_with_board_writes_a_deploy_directory(model_file, tmp_path):
    pytest.importorskip("tkinter")
    out = tmp_path / "out"
    result = run_cli("build", model_file, "-o", out, "--board", "kv260", "--clock-mhz", "150")
    assert result.returncode == 0, result.stderr
    assert "block_design.tcl: " in result.stdout and "project prepared" in result.stdout
    deploy = out / "deploy_kv260"
    assert (deploy / "driver.py").is_file() and (deploy / "finn_rtl_top.json").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["deploy"]["kv260"]["clock_mhz"] == 150.0
    assert "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {150}" in (deploy / "block_design.tcl").read_text()


def test_board_clock_refused_before_building(model_file, tmp_path):
    result = run_cli("build", model_file, "-o", tmp_path / "out", "--board", "pynq-z1", "--clock-mhz", "300")
    assert result.returncode == 2 and "at most 250 MHz" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert run_cli("build", model_file, "-o", tmp_path / "out").returncode == 0
    (tmp_path / "file").write_text("x")
    result = run_cli("deploy", tmp_path / "out", "--board", "pynq-z1", "-o", tmp_path / "file" / "sub")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'file'} is a file" in result.stderr  # said before the project is prepared
    assert result.stderr.startswith("finn-rtl: error:") and len(result.stderr.strip().splitlines()) == 1


def test_synth_prints_measured_resources(model_file, tmp_path):
    out = tmp_path / "out"
    assert run_cli("build", model_file, "-o", out).returncode == 0
    result = run_cli("synth", out)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["unit", "LUT", "LUTRAM", "SRL", "FF", "CARRY4", "BRAM18", "BRAM36", "DSP"]
    total = next(row for row in rows if row.startswith("total")).split()
    assert int(total[1]) > 0
    report = json.loads((out / "report.json").read_text())
    assert report["resources"]["synthesis"]["total"]["LUT"] == int(total[1])


@pytest.mark.slow
def test_explore_synth_measures_every_frontier_folding(model_file, tmp_path):
    """explore --synth: every Pareto-optimal folding synthesized (its distinct units once, in
    parallel), measured resources and Fmax beside the estimates; the measured counts are those
    `synth` reports for a build of the same folding."""
    result = run_cli("explore", model_file, "--synth", "--clock-mhz", "200", "--json", tmp_path / "frontier.json")
    assert result.returncode == 0, result.stderr
    assert "fits (measured)" in result.stdout
    frontier = json.loads((tmp_path / "frontier.json").read_text())["frontier"]
    assert len(frontier) >= 3 and all(row["measured"]["LUT"] > 0 for row in frontier)
    assert all(row["measured"]["fps"] == round(min(200.0, row["measured"]["fmax_mhz"]) * 1e6 / row["ii_cycles"], 1)
               for row in frontier)
    slowest = frontier[-1]
    out = tmp_path / "slowest"
    built = run_cli("build", model_file, "-o", out, "--target-ii", slowest["ii_cycles"], "--clock-mhz", "200",
                    "--synth")
    assert built.returncode == 0, built.stderr
    report = json.loads((out / "report.json").read_text())
    total = report["resources"]["synthesis"]["total"]
    assert slowest["measured"]["LUT"] == total["LUT"] + total["LUTRAM"] and slowest["measured"]["FF"] == total["FF"]
    assert slowest["measured"]["fmax_mhz"] == report["timing"]["families"]["7series"]["fmax_mhz"]


def test_synth_of_a_directory_that_is_not_a_build(tmp_path):
    result = run_cli("synth", tmp_path)
    assert result.returncode == 2 and "is not a finn-rtl build directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_explore_prints_the_frontier_and_build_takes_the_budget(model_file, tmp_path):
    """explore: the Pareto-optimal foldings from estimates, fastest first, with what fits; a build
    with the same budget picks the fastest folding that fits, and a budget nothing fits is one line
    saying what the smallest folding needs."""
    result = run_cli("explore", model_file, "--max-luts", "100000", "--clock-mhz", "200",
                     "--json", tmp_path / "frontier.json", "--plot", tmp_path / "frontier.svg")
    assert result.returncode == 0, result.stderr
    frontier = json.loads((tmp_path / "frontier.json").read_text())["frontier"]
    assert len(frontier) >= 3
    iis = [row["ii_cycles"] for row in frontier]
    luts = [row["LUT"] for row in frontier]
    assert iis == sorted(iis) and luts == sorted(luts, reverse=True)  # faster costs more
    # frames per second at the requested clock, or at the folding's estimated Fmax where lower
    assert all(row["fps"] == round(min(200.0, row["fmax_mhz"]) * 1e6 / row["ii_cycles"], 1) for row in frontier)
    assert "Pareto-optimal" in result.stdout and f"build it with --target-ii {iis[0]}" in result.stdout
    assert (tmp_path / "frontier.svg").read_text().startswith("<svg")

    # a LUT budget between the fastest and the slowest: the build takes the fastest that fits
    budget = (luts[0] + luts[-1]) // 2
    out = tmp_path / "planned"
    result = run_cli("build", model_file, "-o", out, "--max-luts", budget, "--clock-mhz", "200")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    fitting = [row for row in frontier if row["LUT"] <= budget]
    assert report["planning"]["ii_cycles"] == fitting[0]["ii_cycles"]
    assert report["resources"]["estimate"]["total"]["LUT"] + report["resources"]["estimate"]["total"]["LUTRAM"] \
        <= budget
    # a target FPS: the fewest LUTs that reach it
    out = tmp_path / "fps"
    slow_fps = frontier[-1]["fps"] * 1.5
    result = run_cli("build", model_file, "-o", out, "--target-fps", slow_fps, "--clock-mhz", "200")
    assert result.returncode == 0, result.stderr
    planning = json.loads((out / "report.json").read_text())["planning"]
    assert planning["fps"] >= slow_fps
    assert planning["ii_cycles"] == max(row["ii_cycles"] for row in frontier if row["fps"] >= slow_fps)

    result = run_cli("build", model_file, "-o", tmp_path / "none", "--max-luts", 10)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "fits LUTs 10: even the smallest" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("build", model_file, "-o", tmp_path / "toofast", "--max-luts", budget, "--target-fps", 1e12)
    assert result.returncode == 2 and "the fastest folding that fits reaches" in result.stderr


def test_report_command_prints_tables_and_renders_html(model_file, tmp_path):
    out = tmp_path / "out"
    assert run_cli("build", model_file, "-o", out, "--verify", 5).returncode == 0
    (out / "report.html").unlink()
    result = run_cli("report", out)
    assert result.returncode == 0, result.stderr
    for fragment in ("analytic II", "MatMul_0", "resources per unit (estimate)", "FIFOs", "bit-exact"):
        assert fragment in result.stdout, fragment
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 2 and "bit-exact" in page
    # self-contained: nothing to fetch (the only addresses are the SVG namespaces)
    assert "<script" not in page and "<link" not in page and "http" not in page.replace("http://www.w3.org", "")
