"""Vivado and Vitis scripts for a deploy directory (all paths relative to it).

  package_ip.tcl      the shell as an IP-XACT core in ip/ (for Alveo also a Vitis RTL kernel)
  block_design.tcl    Zynq: PS + interconnect + reset + the core -> <base>.bit and <base>.hwh
  kernel.xml, package_xo.tcl, link.cfg
                      Alveo: the kernel as <kernel>.xo, linked by v++ into <base>.xclbin
  synth_ooc.tcl       the accelerator alone, out of context: utilization and timing
  build.sh            all of it in order
"""
from __future__ import annotations

from dataclasses import dataclass

from .boards import ZYNQ7, AlveoBoard, Board, ZynqBoard
from .shell import CONTROL_ADDR_BITS, REGISTERS

VENDOR, LIBRARY, VERSION = "finn-rtl.org", "finn_rtl", "1.0"
IP_DIR, PROJECT_DIR, OOC_DIR = "ip", "vivado_project", "ooc"
BD_NAME = "finn_design"


@dataclass(frozen=True)
class DeployNames:
    kernel: str  # the shell's module (and IP, and Vitis kernel) name
    accelerator: str  # the bare accelerator's module name (out-of-context synthesis)
    base: str  # <base>.bit/.hwh/.xclbin/.json

    @property
    def vlnv(self) -> str:
        return f"{VENDOR}:{LIBRARY}:{self.kernel}:{VERSION}"


def _tcl_list(items) -> str:
    return " ".join(f"{{{item}}}" for item in items)


def _package_header(module: str, board: Board) -> str:
    return f"""# Package {module} as an IP-XACT core in {IP_DIR}/.
set part {board.part}
create_project -force {module}_ip {PROJECT_DIR}/ip_project -part $part
add_files -norecurse {module}.v
set_property top {module} [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir {IP_DIR} -vendor {VENDOR} -library {LIBRARY} -taxonomy /UserIP -import_files -set_current true
set core [ipx::current_core]
set_property name {module} $core
set_property version {VERSION} $core
set_property display_name "finn-rtl accelerator {module}" $core
"""


def _package_trailer(vlnv: str, kernel: bool) -> str:
    return f"""
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity {'-kernel ' if kernel else ''}$core
ipx::save_core $core
close_project
puts "packaged {vlnv} in {IP_DIR}/"
"""


def _clocking_tcl(clock: str, reset: str, polarity: str, buses: tuple[str, ...]) -> str:
    """Clock and reset interfaces, and every bus interface associated with the clock."""
    lines = [f"ipx::infer_bus_interface {clock} xilinx.com:signal:clock_rtl:1.0 $core",
             f"ipx::infer_bus_interface {reset} xilinx.com:signal:reset_rtl:1.0 $core"]
    lines += [f"ipx::associate_bus_interfaces -busif {bus} -clock {clock} $core" for bus in buses]
    lines += [f"ipx::associate_bus_interfaces -clock {clock} -reset {reset} $core",
              f"set_property value {polarity} [ipx::add_bus_parameter POLARITY "
              f"[ipx::get_bus_interfaces {reset} -of_objects $core]]"]
    return "\n".join(lines) + "\n"


def package_stream_ip_tcl(names: DeployNames, board: Board) -> str:
    """The bare accelerator as an AXI-stream IP (`--shell none`), for users who bring a DMA."""
    vlnv = f"{VENDOR}:{LIBRARY}:{names.accelerator}:{VERSION}"
    return _package_header(names.accelerator, board) + """
# Interfaces: AXI-stream in and out (m_axis has TLAST per frame), clock, active-high reset.
""" + _clocking_tcl("clk", "rst", "ACTIVE_HIGH", ("s_axis", "m_axis")) + _package_trailer(vlnv, kernel=False)


def package_ip_tcl(names: DeployNames, board: Board, control_bytes: int = 1 << CONTROL_ADDR_BITS) -> str:
    alveo = isinstance(board, AlveoBoard)
    # Vitis sees the kernel arguments as registers of their own (64-bit pointers), so for Alveo
    # they replace the 32-bit halves.
    arguments = ("INPUT_LO", "INPUT_HI", "OUTPUT_LO", "OUTPUT_HI", "FRAMES") if alveo else ()
    registers = "\n".join(f"    {name} {offset:#04x}" for name, offset in REGISTERS.items() if name not in arguments)
    kernel_properties = """
# A Vitis RTL kernel: ap_ctrl_hs control, one memory master.
set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
set_property vitis_drc {ctrl_protocol ap_ctrl_hs} $core
set_property ipi_drc {ignore_freq_hz true} $core
foreach {name offset size} {input 0x10 64 output 0x1c 64 frames 0x28 32} {
    set reg [ipx::add_register $name $block]
    set_property address_offset $offset $reg
    set_property size $size $reg
}
foreach arg {input output} {
    set reg [ipx::get_registers $arg -of_objects $block]
    set_property value m_axi_gmem [ipx::add_register_parameter ASSOCIATED_BUSIF $reg]
}
""" if alveo else ""
    return _package_header(names.kernel, board) + f"""
# Interfaces: AXI4-Lite control, AXI4 memory master, clock, active-low reset, interrupt.
{_clocking_tcl("ap_clk", "ap_rst_n", "ACTIVE_LOW", ("s_axi_control", "m_axi_gmem"))}\
ipx::infer_bus_interface interrupt xilinx.com:signal:interrupt_rtl:1.0 $core
set_property value LEVEL_HIGH [ipx::add_bus_parameter SENSITIVITY [ipx::get_bus_interfaces interrupt -of_objects $core]]

# The control registers' memory map (the driver's register map).
set map [ipx::add_memory_map s_axi_control $core]
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
set block [ipx::add_address_block reg0 $map]
set_property range {control_bytes} $block
foreach {{name offset}} {{
{registers}
}} {{
    set reg [ipx::add_register $name $block]
    set_property address_offset $offset $reg
    set_property size 32 $reg
}}
{kernel_properties}""" + _package_trailer(names.vlnv, kernel=alveo)


def _ps_config(board: ZynqBoard, clock_mhz: float) -> tuple[dict, dict]:
    """(CONFIG properties, pin names) for the board's processing system."""
    if board.ps == ZYNQ7:
        config = {"PCW_USE_M_AXI_GP0": 1, "PCW_USE_S_AXI_HP0": 1,
                  "PCW_S_AXI_HP0_DATA_WIDTH": board.memory_bits,
                  "PCW_FPGA0_PERIPHERAL_FREQMHZ": f"{clock_mhz:g}", "PCW_EN_CLK0_PORT": 1,
                  "PCW_EN_RST0_PORT": 1, "PCW_USE_FABRIC_INTERRUPT": 1, "PCW_IRQ_F2P_INTR": 1}
        pins = {"clk": "FCLK_CLK0", "resetn": "FCLK_RESET0_N", "ctrl": "M_AXI_GP0", "ctrl_clk": "M_AXI_GP0_ACLK",
                "mem": "S_AXI_HP0", "mem_clk": "S_AXI_HP0_ACLK", "irq": "IRQ_F2P"}
    else:
        config = {"PSU__USE__M_AXI_GP0": 1, "PSU__USE__M_AXI_GP1": 0, "PSU__USE__M_AXI_GP2": 0,
                  "PSU__USE__S_AXI_GP2": 1, "PSU__SAXIGP2__DATA_WIDTH": board.memory_bits,
                  "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": f"{clock_mhz:g}", "PSU__FPGA_PL0_ENABLE": 1,
                  "PSU__USE__IRQ0": 1}
        pins = {"clk": "pl_clk0", "resetn": "pl_resetn0", "ctrl": "M_AXI_HPM0_FPD", "ctrl_clk": "maxihpm0_fpd_aclk",
                "mem": "S_AXI_HP0_FPD", "mem_clk": "saxihp0_fpd_aclk", "irq": "pl_ps_irq0"}
    return config, pins


def block_design_tcl(names: DeployNames, board: ZynqBoard, clock_mhz: float, jobs: int = 2) -> str:
    config, pin = _ps_config(board, clock_mhz)
    config_list = " ".join(f"CONFIG.{key} {{{value}}}" for key, value in config.items())
    rule = "processing_system7" if board.ps == ZYNQ7 else "zynq_ultra_ps_e"
    ip = f"{names.kernel}_0"
    return f"""# Zynq block design for {board.name}: PS, AXI interconnects, reset, {names.kernel}; bitstream and .hwh.
set part {board.part}
create_project -force {names.base} {PROJECT_DIR} -part $part
set_property ip_repo_paths [list [file normalize {IP_DIR}]] [current_project]
update_ip_catalog
create_bd_design {BD_NAME}

create_bd_cell -type ip -vlnv {board.ps_vlnv} ps
# DDR and fixed I/O go to the package pins; the PS's own presets come from the board image (PYNQ's
# boot loader configures DDR), this design only enables the ports the shell needs.
apply_bd_automation -rule xilinx.com:bd_rule:{rule} -config {{make_external "FIXED_IO, DDR" Master "Disable" Slave "Disable"}} [get_bd_cells ps]
set_property -dict [list {config_list}] [get_bd_cells ps]

create_bd_cell -type ip -vlnv {names.vlnv} {ip}
create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:5.0 reset
create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect:1.0 control_interconnect
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells control_interconnect]
create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect:1.0 memory_interconnect
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells memory_interconnect]

connect_bd_intf_net [get_bd_intf_pins ps/{pin['ctrl']}] [get_bd_intf_pins control_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins control_interconnect/M00_AXI] [get_bd_intf_pins {ip}/s_axi_control]
connect_bd_intf_net [get_bd_intf_pins {ip}/m_axi_gmem] [get_bd_intf_pins memory_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins memory_interconnect/M00_AXI] [get_bd_intf_pins ps/{pin['mem']}]
connect_bd_net [get_bd_pins ps/{pin['clk']}] [get_bd_pins ps/{pin['ctrl_clk']}] [get_bd_pins ps/{pin['mem_clk']}] \\
    [get_bd_pins reset/slowest_sync_clk] [get_bd_pins control_interconnect/aclk] \\
    [get_bd_pins memory_interconnect/aclk] [get_bd_pins {ip}/ap_clk]
connect_bd_net [get_bd_pins ps/{pin['resetn']}] [get_bd_pins reset/ext_reset_in]
connect_bd_net [get_bd_pins reset/peripheral_aresetn] [get_bd_pins {ip}/ap_rst_n]
connect_bd_net [get_bd_pins reset/interconnect_aresetn] [get_bd_pins control_interconnect/aresetn] \\
    [get_bd_pins memory_interconnect/aresetn]
connect_bd_net [get_bd_pins {ip}/interrupt] [get_bd_pins ps/{pin['irq']}]
assign_bd_address
validate_bd_design
save_bd_design

make_wrapper -files [get_files {BD_NAME}.bd] -top
add_files -norecurse [glob {PROJECT_DIR}/{names.base}.*/sources_1/bd/{BD_NAME}/hdl/{BD_NAME}_wrapper.v]
set_property top {BD_NAME}_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs {jobs}
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] != "100%"}} {{
    error "implementation failed: see {PROJECT_DIR}/{names.base}.runs/impl_1/runme.log"
}}
open_run impl_1
report_utilization -hierarchical -file utilization.rpt
report_timing_summary -file timing.rpt
puts "WNS [get_property STATS.WNS [get_runs impl_1]]"
file copy -force [get_property DIRECTORY [get_runs impl_1]]/{BD_NAME}_wrapper.bit {names.base}.bit
file copy -force [lindex [glob {PROJECT_DIR}/{names.base}.*/sources_1/bd/{BD_NAME}/hw_handoff/{BD_NAME}.hwh] 0] {names.base}.hwh
puts "wrote {names.base}.bit and {names.base}.hwh"
"""


def kernel_xml(names: DeployNames, board: AlveoBoard, control_bytes: int = 1 << CONTROL_ADDR_BITS) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<root versionMajor="1" versionMinor="6">
  <kernel name="{names.kernel}" language="ip_c" vlnv="{names.vlnv}" attributes="" preferredWorkGroupSizeMultiple="0" workGroupSize="1" interrupt="true" hwControlProtocol="ap_ctrl_hs">
    <ports>
      <port name="s_axi_control" mode="slave" range="{control_bytes:#x}" dataWidth="32" portType="addressable" base="0x0"/>
      <port name="m_axi_gmem" mode="master" range="0xFFFFFFFFFFFFFFFF" dataWidth="{board.memory_bits}" portType="addressable" base="0x0"/>
    </ports>
    <args>
      <arg name="input" addressQualifier="1" id="0" port="m_axi_gmem" size="0x8" offset="{REGISTERS['INPUT_LO']:#x}" type="void*" hostOffset="0x0" hostSize="0x8"/>
      <arg name="output" addressQualifier="1" id="1" port="m_axi_gmem" size="0x8" offset="{REGISTERS['OUTPUT_LO']:#x}" type="void*" hostOffset="0x0" hostSize="0x8"/>
      <arg name="frames" addressQualifier="0" id="2" port="s_axi_control" size="0x4" offset="{REGISTERS['FRAMES']:#x}" type="uint" hostOffset="0x0" hostSize="0x4"/>
    </args>
  </kernel>
</root>
"""


def package_xo_tcl(names: DeployNames, board: AlveoBoard) -> str:
    return f"""# Package the shell IP as a Vitis RTL kernel: {names.kernel}.xo
set part {board.part}
create_project -force {names.kernel}_xo {PROJECT_DIR}/xo_project -part $part
set_property ip_repo_paths [list [file normalize {IP_DIR}]] [current_project]
update_ip_catalog
package_xo -force -xo_path {names.kernel}.xo -kernel_name {names.kernel} -ip_directory {IP_DIR} -kernel_xml kernel.xml
close_project
puts "wrote {names.kernel}.xo"
"""


def link_config(names: DeployNames, board: AlveoBoard, clock_mhz: float) -> str:
    return f"""# v++ link configuration for {board.name} ({board.platform})
platform={board.platform}
kernel_frequency={clock_mhz:g}

[connectivity]
nk={names.kernel}:1:{names.kernel}_1
sp={names.kernel}_1.m_axi_gmem:{board.memory}
"""


def synth_ooc_tcl(names: DeployNames, board: Board, clock_mhz: float) -> str:
    return f"""# Out-of-context synthesis and implementation of the accelerator alone ({names.accelerator}).
set part {board.part}
file mkdir {OOC_DIR}
create_project -in_memory -part $part
read_verilog {names.accelerator}.v
read_xdc -mode out_of_context ooc.xdc
synth_design -top {names.accelerator} -part $part -mode out_of_context
opt_design
place_design
route_design
report_utilization -hierarchical -file {OOC_DIR}/utilization.rpt
report_timing_summary -file {OOC_DIR}/timing.rpt
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
puts "WNS $wns"
puts "Fmax [expr {{1000.0 / ({1000 / clock_mhz:.4f} - $wns)}}] MHz"
"""


def ooc_xdc(clock_mhz: float) -> str:
    return f"create_clock -name clk -period {1000 / clock_mhz:.4f} [get_ports clk]\n"


def build_steps(names: DeployNames, board: Board, stream_only: bool = False) -> list[tuple[str, list[str], str]]:
    """(name, command, log file) of each build step, in order."""
    def vivado(script):
        stem = script.removesuffix(".tcl")
        return stem, ["vivado", "-mode", "batch", "-nojournal", "-log", f"{stem}.log", "-source", script], f"{stem}.log"

    steps = [vivado("package_ip.tcl")]
    if stream_only:
        return steps
    if isinstance(board, AlveoBoard):
        steps += [vivado("package_xo.tcl"),
                  ("v++ link", ["v++", "--link", "--target", "hw", "--config", "link.cfg", "--output",
                                f"{names.base}.xclbin", f"{names.kernel}.xo"], f"{names.base}.xclbin.link.log")]
    else:
        steps.append(vivado("block_design.tcl"))
    return steps


def build_sh(names: DeployNames, board: Board, stream_only: bool = False) -> str:
    lines = "\n".join(" ".join(command) for _, command, _ in build_steps(names, board, stream_only))
    what = "IP" if stream_only else "xclbin" if isinstance(board, AlveoBoard) else "bitstream"
    tools = "vivado" + (" and v++" if isinstance(board, AlveoBoard) and not stream_only else "")
    return f"""#!/usr/bin/env bash
# Builds the {board.name} {what} for {names.kernel}. Needs {tools} on PATH.
# The accelerator alone, out of context: vivado -mode batch -source synth_ooc.tcl
set -euo pipefail
cd "$(dirname "$0")"
{lines}
"""


def project_files(names: DeployNames, board: Board, clock_mhz: float, stream_only: bool = False,
                  control_bytes: int = 1 << CONTROL_ADDR_BITS) -> dict[str, str]:
    """File name -> contents of every script for `board` (`stream_only`: the bare AXI-stream IP;
    `control_bytes`: the shell's AXI4-Lite address range, `shell.control_bytes`)."""
    files = {"synth_ooc.tcl": synth_ooc_tcl(names, board, clock_mhz), "ooc.xdc": ooc_xdc(clock_mhz),
             "build.sh": build_sh(names, board, stream_only)}
    if stream_only:
        files["package_ip.tcl"] = package_stream_ip_tcl(names, board)
        return files
    files["package_ip.tcl"] = package_ip_tcl(names, board, control_bytes)
    if isinstance(board, AlveoBoard):
        files.update({"kernel.xml": kernel_xml(names, board, control_bytes), "package_xo.tcl": package_xo_tcl(names, board),
                      "link.cfg": link_config(names, board, clock_mhz)})
    else:
        files["block_design.tcl"] = block_design_tcl(names, board, clock_mhz)
    return files
