"""Generated Vivado/Vitis scripts, run in Tcl against the recording Vivado stub: every board's
project passes, and the stub catches the mistakes that would break in Vivado."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.cli import main
from finn_rtl.flow import build
from finn_rtl.graph.errors import CompileError
from finn_rtl.platforms.boards import BOARDS, ZynqBoard, get_board
from finn_rtl.platforms.deploy import deploy
from finn_rtl.platforms.vivado_stub import VivadoStub, run_script

pytest.importorskip("tkinter")
CFG = MLPCfg(in_shape=(1, 16), in_bits=4, layers=[LayerCfg(8, a_signed=False, relu=True), LayerCfg(4)])


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("vivado")
    onnx.save(make_mlp(CFG, seed=2), str(root / "model.onnx"))
    build(root / "model.onnx", root / "out", target_ii=16)
    return root / "out"


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_gets_a_checked_project(build_dir, board, tmp_path):
    d = deploy(build_dir, BOARDS[board], out_dir=tmp_path / board)
    names = {p.name for p in d.out_dir.iterdir()}
    common = {"finn_rtl_top_shell.v", "finn_rtl_top.v", "finn_rtl_top.json", "driver.py", "package_ip.tcl",
              "synth_ooc.tcl", "ooc.xdc", "build.sh"}
    specific = {"block_design.tcl"} if isinstance(BOARDS[board], ZynqBoard) else {"kernel.xml", "package_xo.tcl",
                                                                                    "link.cfg"}
    assert names == common | specific
    assert len(d.checks) == 3 + (not isinstance(BOARDS[board], ZynqBoard))
    assert not d.tools_found


def test_stream_only_ip(build_dir, tmp_path):
    d = deploy(build_dir, BOARDS["pynq-z2"], out_dir=tmp_path / "axis", stream_only=True)
    assert "driver.py" not in d.files and any("package_ip.tcl" in c for c in d.checks)


def mutated(build_dir, tmp_path, board, script, old, new):
    out = tmp_path / "deploy"
    deploy(build_dir, BOARDS[board], out_dir=out)
    text = (out / script).read_text()
    assert old in text, f"{old!r} is not in {script}"
    (out / script).write_text(text.replace(old, new))
    if script != "package_ip.tcl":
        run_script(out / "package_ip.tcl", VivadoStub(BOARDS[board].part))
    return out / script


MUTATIONS = [
    ("pynq-z2", "block_design.tcl", "/m_axi_gmem]", "/m_axi_mem]", "no interface pin finn_rtl_top_shell_0/m_axi_mem"),
    ("pynq-z2", "block_design.tcl", "assign_bd_address\n", "\n", "has no address"),
    ("pynq-z2", "block_design.tcl", "set part xc7z020clg400-1", "set part xc7z010clg400-1", "not the board's part"),
    ("pynq-z2", "block_design.tcl", "CONFIG.PCW_USE_S_AXI_HP0 {1}", "CONFIG.PCW_USE_S_AXI_HP0 {0}",
     "no interface pin ps/S_AXI_HP0"),
    ("kv260", "block_design.tcl", "CONFIG.PSU__USE__S_AXI_GP2 {1}", "CONFIG.PCW_USE_S_AXI_HP0 {1}",
     "not a parameter of zynq_ultra_ps_e"),
    ("pynq-z2", "block_design.tcl", " [get_bd_pins finn_rtl_top_shell_0/ap_clk]", "",
     "clock pin finn_rtl_top_shell_0/ap_clk is not connected"),
    ("pynq-z2", "block_design.tcl", "validate_bd_design\nsave_bd_design\n", "save_bd_design\n",
     "make_wrapper before validated"),
    ("pynq-z2", "block_design.tcl", "[get_bd_intf_pins control_interconnect/S00_AXI]",
     "[get_bd_intf_pins memory_interconnect/S00_AXI]", "connected twice"),
    ("pynq-z2", "block_design.tcl", "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100}",
     "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {150}", "PL clock 150 MHz, requested 100 MHz"),
    ("pynq-z2", "package_ip.tcl", "-busif s_axi_control -clock", "-busif s_axi_ctrl -clock", "no bus interface s_axi_ctrl"),
    ("pynq-z2", "package_ip.tcl", "ipx::associate_bus_interfaces -busif m_axi_gmem -clock ap_clk $core\n", "",
     "m_axi_gmem has no associated clock"),
    ("pynq-z2", "package_ip.tcl", "STATUS 0x40", "STATUS 0x7e", "outside the 128-byte block"),
    ("u280", "kernel.xml", 'offset="0x28"', 'offset="0x2c"', "argument frames matches no register"),
    ("u280", "package_ip.tcl", "add_files -norecurse finn_rtl_top_shell.v", "add_files -norecurse shell.v",
     "shell.v does not exist"),
    ("pynq-z2", "synth_ooc.tcl", "-top finn_rtl_top ", "-top finn_rtl_shell ", "module finn_rtl_shell is not"),
    ("pynq-z2", "block_design.tcl",
     "connect_bd_net [get_bd_pins reset/peripheral_aresetn] [get_bd_pins finn_rtl_top_shell_0/ap_rst_n]\n", "",
     "reset pin finn_rtl_top_shell_0/ap_rst_n is not connected"),
    ("pynq-z2", "block_design.tcl", " [get_bd_pins finn_rtl_top_shell_0/ap_clk]\n",
     "\nconnect_bd_net [get_bd_pins reset/peripheral_reset] [get_bd_pins finn_rtl_top_shell_0/ap_clk]\n",
     "the design has one clock"),
    ("pynq-z2", "block_design.tcl", "[get_bd_intf_pins finn_rtl_top_shell_0/s_axi_control]",
     "[get_bd_intf_pins finn_rtl_top_shell_0/m_axi_gmem]", "connects master"),
    ("pynq-z2", "block_design.tcl", "connect_bd_net [get_bd_pins ps/FCLK_RESET0_N] [get_bd_pins reset/ext_reset_in]\n",
     "connect_bd_net [get_bd_pins ps/FCLK_RESET0_N] [get_bd_pins reset/ext_reset_in]\n"
     "connect_bd_net [get_bd_pins ps/FCLK_RESET0_N] [get_bd_pins finn_rtl_top_shell_0/ap_rst_n]\n",
     "finn_rtl_top_shell_0/ap_rst_n is driven twice"),
    ("pynq-z2", "package_ip.tcl", "STATUS 0x40", "STATUS 0x44", "registers DESIGN_ID and STATUS overlap"),
    ("u280", "package_ip.tcl", "set_property sdx_kernel true $core\n", "", "a Vitis kernel needs sdx_kernel true"),
    ("pynq-z2", "synth_ooc.tcl", "opt_design\nplace_design\n", "place_design\nopt_design\n",
     "place_design before optimized"),
    ("pynq-z2", "synth_ooc.tcl", "place_design\nroute_design\n", "route_design\nplace_design\n",
     "route_design before placed"),
    ("pynq-z2", "block_design.tcl", "set_property top finn_design_wrapper [current_fileset]\n", "",
     "the block design wrapper is not the top"),
    ("pynq-z2", "ooc.xdc", "-period 10.0000", "-period 5.0000", "constrains a 5 ns clock"),
]


@pytest.mark.parametrize("board, script, old, new, expected", MUTATIONS, ids=[m[4] for m in MUTATIONS])
def test_stub_catches_mistakes(build_dir, tmp_path, board, script, old, new, expected):
    path = mutated(build_dir, tmp_path, board, script, old, new)
    target = {"kernel.xml": path.with_name("package_xo.tcl"), "ooc.xdc": path.with_name("synth_ooc.tcl")}.get(script, path)
    with pytest.raises(CompileError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        run_script(target, VivadoStub(BOARDS[board].part, 100.0))


def test_the_kernel_clock_is_the_requested_clock(build_dir, tmp_path):
    out = tmp_path / "u280"
    deploy(build_dir, BOARDS["u280"], out_dir=out, clock_mhz=250)
    assert "kernel_frequency=250\n" in (out / "link.cfg").read_text()
    from finn_rtl.platforms.deploy import _check_link_config
    from finn_rtl.platforms.vivado import DeployNames

    (out / "link.cfg").write_text((out / "link.cfg").read_text().replace("kernel_frequency=250", "kernel_frequency=300"))
    with pytest.raises(CompileError, match="kernel clock is 300 MHz, requested 250 MHz"):
        _check_link_config(out / "link.cfg", DeployNames("finn_rtl_top_shell", "finn_rtl_top", "finn_rtl_top"),
                           BOARDS["u280"], 250)


def fake_tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport sys, pathlib\nargs = sys.argv[1:]\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_deploy_runs_vivado_when_on_path(build_dir, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "vivado", """
script = args[args.index("-source") + 1]
if script == "block_design.tcl":
    pathlib.Path("finn_rtl_top.bit").write_text("bit")
    pathlib.Path("finn_rtl_top.hwh").write_text("hwh")
    print("WNS 0.250")
print("INFO: ran", script)""")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "built finn_rtl_top.bit, finn_rtl_top.hwh" in out and "WNS +0.250 ns" in out

    fake_tool(bin_dir, "vivado", """
print("ERROR: [BD 41-758] The following clock pins are not connected to a valid clock source")
sys.exit(1)""")
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "package_ip failed" in err and "ERROR: [BD 41-758]" in err and "Traceback" not in err

    fake_tool(bin_dir, "vivado", """
if args[args.index("-source") + 1] == "block_design.tcl":
    print("WNS -1.200")""")
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "f")]) == 2
    assert "timing not met: WNS -1.200 ns" in capsys.readouterr().err


def test_deploy_errors_are_one_line(build_dir, tmp_path, capsys):
    assert main(["deploy", str(tmp_path / "missing"), "--board", "pynq-z2"]) == 2
    assert main(["deploy", str(build_dir), "--board", "u280", "--clock-mhz", "900"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a finn-rtl build directory" in err[0] and "at most 500 MHz" in err[1]
    with pytest.raises(CompileError, match="unknown board 'zedboard'"):
        get_board("zedboard")


@pytest.mark.vivado
def test_real_vivado_builds_pynq_z2_bitstream(build_dir, tmp_path):
    d = deploy(build_dir, BOARDS["pynq-z2"], out_dir=tmp_path / "real")
    assert d.ran and (d.out_dir / "finn_rtl_top.bit").is_file() and (d.out_dir / "finn_rtl_top.hwh").is_file()
    subprocess.run(["ls", "-l", str(d.out_dir)], check=True)


def test_a_clock_out_of_reach_is_refused_in_one_line(build_dir, tmp_path, capsys, monkeypatch):
    """The estimate (synthesis timing of every unit, run at deploy when the build was not
    synthesized) says which unit is slowest; --ignore-timing deploys anyway."""
    from finn_rtl.flow import load_build

    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "ok")]) == 0
    report = load_build(build_dir).report
    fmax = report["timing"]["families"]["7series"]["fmax_mhz"]
    deployed = report["deploy"]["pynq-z2"]
    # the memory shell at the board's word is a unit too: the deployed design's Fmax is the slower
    assert deployed["shell_fmax_mhz"] >= 200 and fmax >= 100
    assert deployed["estimated_fmax_mhz"] == min(fmax, deployed["shell_fmax_mhz"])
    capsys.readouterr()
    # Pretend the design is slower than the board's clock.
    import finn_rtl.platforms.deploy as deploy_module

    measured = deploy_module.check_timing

    def slow(b, board, clock_mhz, shell=None):
        measured(b, board, clock_mhz, shell)
        family = b.report["timing"]["families"][board.timing_family]
        family.update(fmax_mhz=80.0, slowest_unit="MatMul_0")
        return measured(b, board, clock_mhz, shell)

    monkeypatch.setattr(deploy_module, "check_timing", slow)
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "slow")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--clock-mhz 100 is out of reach on pynq-z2" in err[0]
    assert "MatMul_0, is estimated at 80 MHz" in err[0] and "--clock-mhz 80 or lower" in err[0]
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "forced"),
                 "--ignore-timing"]) == 0


def test_a_design_that_exceeds_the_device_is_refused_in_one_line(build_dir, tmp_path, capsys, monkeypatch):
    """deploy checks fit before it writes a project: a device smaller than the design (here the
    PYNQ-Z2 with 300 LUTs and 2 block RAMs) is refused in one line naming each resource it
    exceeds and by how much; --ignore-fit deploys anyway, and report.json says what was checked."""
    import dataclasses
    import json

    from finn_rtl.platforms import boards

    tiny = dataclasses.replace(BOARDS["pynq-z2"], capacity=boards.Capacity(lut=300, ff=106400, bram36=2, uram=0, dsp=220))
    monkeypatch.setitem(BOARDS, "pynq-z2", tiny)
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit pynq-z2" in err[0] and "LUT" in err[0] and "of 300 (+" in err[0]
    assert "with the memory shell" in err[0] and "--ignore-fit" in err[0] and not (tmp_path / "small").exists()
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "forced"), "--ignore-fit"]) == 0
    deployed = json.loads((build_dir / "report.json").read_text())["deploy"]["pynq-z2"]
    assert deployed["fit_checked"] is False
    monkeypatch.setitem(BOARDS, "pynq-z2", dataclasses.replace(tiny, capacity=BOARDS["pynq-z1"].capacity))
    assert main(["deploy", str(build_dir), "--board", "pynq-z2", "-o", str(tmp_path / "fits")]) == 0
    fit = json.loads((build_dir / "report.json").read_text())["deploy"]["pynq-z2"]["fit"]
    assert fit["exceeds"] == {} and 0 < fit["share"]["LUT"] < 1 and fit["source"] in ("estimate", "synthesis")


@pytest.mark.parametrize("board", ["zcu104", "u250"])
def test_written_weights_widen_the_control_window_in_every_script(tmp_path, board):
    """Weights written at run time sit in the upper half of a wider AXI4-Lite space: the IP's
    address block and Vitis's kernel.xml say the whole range, the driver's description says where
    the window starts, and the weight files travel beside the bitfile. `--shell none` cannot
    write them and says so in one line."""
    import json
    import xml.etree.ElementTree as ET

    from finn_rtl.platforms.shell import control_bytes, weight_window

    onnx.save(make_mlp(CFG, seed=2), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out",
              folding={"MatMul_0": {"PE": 2, "SIMD": 4, "runtime_writeable_weights": 1, "ram_style": "ultra"},
                       "MatMul_1": {"PE": 1, "SIMD": 2}})
    d = deploy(b.out_dir, get_board(board), out_dir=tmp_path / board, ignore_timing=True)
    span = control_bytes(b.network)
    assert span > 128 and weight_window(b.network) == span // 2
    description = json.loads((d.out_dir / "finn_rtl_top.json").read_text())
    assert description["weights"]["window"] == span // 2
    assert (d.out_dir / "weights" / "manifest.json").is_file()
    assert f"set_property range {span} $block" in (d.out_dir / "package_ip.tcl").read_text()
    if board == "u250":
        port = next(p for p in ET.parse(d.out_dir / "kernel.xml").iter("port") if p.get("name") == "s_axi_control")
        assert int(port.get("range"), 16) == span
    assert all("error" not in check.lower() for check in d.checks), d.checks
    with pytest.raises(CompileError, match=r"weights written at run time \(MatMul_0\.weights\), which only the "
                                           r"memory shell can write"):
        deploy(b.out_dir, get_board(board), out_dir=tmp_path / "axis", stream_only=True)
