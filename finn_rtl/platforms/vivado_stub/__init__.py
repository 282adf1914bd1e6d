"""Run generated Vivado scripts in a Tcl interpreter against a recording stub of Vivado.

Without Vivado, this is how finn-rtl knows its scripts would run: each Vivado command used by
the scripts is a stub that records the call and models just enough of Vivado to refuse what
Vivado would refuse:

* a project on the wrong part, files that do not exist, a top module that is not in them;
* IP packaging: bus interfaces that do not match the Verilog's ports (s_axi_control_* etc.),
  an interface without a clock, registers outside the address block or overlapping;
* block designs: an IP not in the catalog (or not packaged), a PS that does not fit the part,
  a CONFIG property the IP does not have, a cell, pin or interface used before it exists
  (PS ports appear only when their CONFIG enables them), master-to-master connections, a pin
  driven twice, an AXI slave with no address, unconnected clocks, resets or AXI ports, a PL
  clock that is not the requested frequency, steps out of order (a wrapper before validation,
  a bitstream before the wrapper is the top);
* Vitis packaging: kernel.xml arguments that do not match the core's registers and interfaces.

Unknown commands fail as in any Tcl interpreter. `run_script` returns the recorded calls.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...graph.errors import CompileError
from .block_design import BlockDesign, Cell
from .common import StubError, options, split_list, verilog_ports
from .ipx import IpPackaging

_ERROR = "__VIVADO_STUB_ERROR__"


class VivadoStub(IpPackaging, BlockDesign):
    def __init__(self, part: str, clock_mhz: float | None = None):
        self.part, self.clock_mhz = part, clock_mhz
        self.calls: list[tuple] = []
        self.messages: list[str] = []
        self.project = None
        self.sources: list[Path] = []
        self.top = None
        self.repo_paths: list[Path] = []
        self.catalog: dict[str, dict] = {}
        self.core = None
        self.cells: dict[str, Cell] = {}
        self.intf_links: dict[str, str] = {}
        self.drivers: dict[str, str] = {}  # input pin -> driving output pin
        self.addressed: set[str] = set()
        self.stage = set()

    def need(self, step: str, before: str) -> None:
        if step not in self.stage:
            raise StubError(f"{before} before {step}")

    def check_part(self, part: str) -> None:
        if part != self.part:
            raise StubError(f"part {part} is not the board's part {self.part}")

    def source_text(self) -> str:
        return "\n".join(path.read_text() for path in self.sources if path.suffix in (".v", ".sv"))

    def create_project(self, *args):
        opts = options(args, ("-part",), ("-force", "-in_memory"))
        self.check_part(opts["-part"])
        positional = opts["positional"] or ["in_memory"]
        self.project = positional[0]
        if len(positional) > 1:
            self.project_dir = Path(positional[1])
        self.sources, self.stage = [], {"project"}
        self.cells, self.intf_links, self.drivers, self.addressed = {}, {}, {}, set()
        return self.project

    def add_files(self, *args):
        self.need("project", "add_files")
        for name in options(args, (), ("-norecurse", "-fileset"))["positional"]:
            for item in split_list(name):
                path = Path(item)
                if not path.is_file():
                    raise StubError(f"add_files: {item} does not exist")
                self.sources.append(path)

    read_verilog = add_files


    def read_xdc(self, *args):
        path = Path(options(args, ("-mode",), ())["positional"][0])
        if not path.is_file():
            raise StubError(f"read_xdc: {path} does not exist")
        text = path.read_text()
        clocks = re.findall(r"create_clock .*\[get_ports (\w+)\]", text)
        if self.clock_mhz is not None:
            for period in re.findall(r"create_clock .*-period ([0-9.]+)", text):
                if abs(1000 / float(period) - self.clock_mhz) > 1e-3 * self.clock_mhz:
                    raise StubError(f"{path.name} constrains a {float(period):g} ns clock "
                                    f"({1000 / float(period):.1f} MHz), requested {self.clock_mhz:g} MHz")
        self.stage.add("constraints")
        self.constrained_clocks = clocks

    def set_property(self, *args):
        if args[0] == "-dict":
            pairs, target = split_list(args[1]), args[2]
            for key, value in zip(pairs[::2], pairs[1::2]):
                self._set(key, value, target)
        else:
            self._set(args[0], args[1], args[2])

    def _set(self, key, value, target):
        kind, _, name = target.partition(":")
        if kind == "fileset" and key == "top":
            ports = verilog_ports(self.source_text(), value) if not value.endswith("_wrapper") else None
            if value.endswith("_wrapper") and "wrapper_added" not in self.stage:
                raise StubError(f"top {value} is not among the project's sources")
            self.top, self.top_ports = value, ports
        elif kind == "project" and key == "ip_repo_paths":
            self.repo_paths = [Path(p) for p in split_list(value)]
        elif kind == "cell":
            self.set_cell_property(name, key, value)
        elif kind in self.CORE_OBJECTS:
            self.set_core_property(kind, name, key, value, target)
        return ""

    def current_fileset(self, *args):
        return "fileset:sources_1"

    def current_project(self, *args):
        return "project:"

    def get_files(self, *args):
        name = args[-1]
        if name.endswith(".bd"):
            self.need("bd", f"get_files {name}")
            return f"bdfile:{name}"
        raise StubError(f"get_files {name}: no such file")

    def noop(self, *args):
        return ""

    def launch_runs(self, *args):
        if self.top is None or not self.top.endswith("_wrapper"):
            raise StubError("launch_runs: the block design wrapper is not the top")
        self.stage.add("launched")

    def wait_on_run(self, run):
        self.need("launched", "wait_on_run")
        run_dir = Path(self.project_dir, f"{self.project}.runs/impl_1")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"{self.top}.bit").write_text("stub bitstream\n")
        hwh = Path(self.project_dir, f"{self.project}.gen/sources_1/bd/{self.bd_name}/hw_handoff/{self.bd_name}.hwh")
        hwh.parent.mkdir(parents=True, exist_ok=True)
        hwh.write_text("stub hwh\n")
        self.stage.add("implemented")

    def get_runs(self, name):
        return f"run:{name}"

    def get_property(self, key, target):
        values = {"PROGRESS": "100%", "DIRECTORY": str(Path(self.project_dir, f"{self.project}.runs/impl_1")),
                  "STATS.WNS": "0.500", "SLACK": "0.500"}
        if key not in values:
            raise StubError(f"get_property {key} is not modelled")
        return values[key]

    def open_run(self, run):
        self.need("implemented", "open_run")
        self.stage.add("opened")

    def report(self, *args):
        if not {"opened", "routed"} & self.stage:
            raise StubError("a report before the design is implemented")
        path = Path(options(args, ("-file",), ("-hierarchical",))["-file"])
        path.write_text("stub report\n")

    def synth_design(self, *args):
        opts = options(args, ("-top", "-part", "-mode"), ())
        self.check_part(opts["-part"])
        ports = verilog_ports(self.source_text(), opts["-top"])
        self.need("constraints", "synth_design")
        for clock in self.constrained_clocks:
            if clock not in ports:
                raise StubError(f"the clock constraint names port {clock}, which {opts['-top']} does not have")
        self.stage.add("synthesized")

    def get_timing_paths(self, *args):
        self.need("routed", "get_timing_paths")
        return "path:worst"

    FLOW_STEPS = {"opt_design": ("synthesized", "optimized"), "place_design": ("optimized", "placed"),
                  "route_design": ("placed", "routed")}

    def flow_step(self, command: str) -> None:
        """opt_design, place_design, route_design: each needs the one before."""
        needed, reached = self.FLOW_STEPS[command]
        self.need(needed, command)
        self.stage.add(reached)



COMMANDS = {
    "create_project": "create_project", "add_files": "add_files", "read_verilog": "read_verilog",
    "read_xdc": "read_xdc", "set_property": "set_property", "current_fileset": "current_fileset",
    "current_project": "current_project", "get_files": "get_files", "update_compile_order": "noop",
    "update_ip_catalog": "update_ip_catalog", "close_project": "noop",
    "ipx::package_project": "package_project", "ipx::current_core": "noop",
    "ipx::infer_bus_interface": "infer_bus_interface", "ipx::associate_bus_interfaces": "associate_bus_interfaces",
    "ipx::get_bus_interfaces": "get_bus_interfaces", "ipx::add_bus_parameter": "add_bus_parameter",
    "ipx::add_register_parameter": "add_register_parameter", "ipx::add_memory_map": "add_memory_map",
    "ipx::add_address_block": "add_address_block", "ipx::add_register": "add_register",
    "ipx::get_registers": "get_registers", "ipx::create_xgui_files": "noop", "ipx::update_checksums": "noop",
    "ipx::check_integrity": "check_integrity", "ipx::save_core": "save_core",
    "create_bd_design": "create_bd_design", "create_bd_cell": "create_bd_cell",
    "apply_bd_automation": "apply_bd_automation", "get_bd_cells": "get_bd_cells",
    "get_bd_intf_pins": "get_bd_intf_pins", "get_bd_pins": "get_bd_pins",
    "connect_bd_intf_net": "connect_bd_intf_net", "connect_bd_net": "connect_bd_net",
    "assign_bd_address": "assign_bd_address", "validate_bd_design": "validate_bd_design",
    "save_bd_design": "save_bd_design", "make_wrapper": "make_wrapper", "launch_runs": "launch_runs",
    "wait_on_run": "wait_on_run", "get_runs": "get_runs", "get_property": "get_property", "open_run": "open_run",
    "report_utilization": "report", "report_timing_summary": "report", "synth_design": "synth_design",
    "get_timing_paths": "get_timing_paths", "package_xo": "package_xo",
    **{step: "flow_step" for step in VivadoStub.FLOW_STEPS},
}


def run_script(script: Path, stub: VivadoStub) -> list[tuple]:
    """Source `script` (from its own folder) against `stub`; a StubError or Tcl error becomes a
    CompileError naming the script, line and message."""
    import os
    import tkinter

    script = Path(script).resolve()
    interp = tkinter.Tcl()
    interp.eval("namespace eval ipx {}")
    stub.project_dir = script.parent / "vivado_project"

    def bind(tcl_name, method):
        def call(*args):
            stub.calls.append((tcl_name, *args))
            # The ipx core handle is the only object a bare ipx::current_core returns.
            if tcl_name == "ipx::current_core":
                return "core:"
            try:
                method_args = (tcl_name,) if method == "flow_step" else args
                result = getattr(stub, method)(*method_args)
            except StubError as exc:
                return f"{_ERROR}{tcl_name}: {exc}"
            except (KeyError, IndexError, ValueError) as exc:
                return f"{_ERROR}{tcl_name}: malformed call ({type(exc).__name__}: {exc})"
            return "" if result is None else str(result)
        py_name = "py_" + tcl_name.replace("::", "_")
        interp.createcommand(py_name, call)
        interp.eval(f"proc {tcl_name} {{args}} {{ set r [{py_name} {{*}}$args]; "
                    f"if {{[string match {_ERROR}* $r]}} {{ error [string range $r {len(_ERROR)} end] }}; return $r }}")

    for tcl_name, method in COMMANDS.items():
        bind(tcl_name, method)
    # The scripts' messages are recorded, not printed.
    interp.createcommand("py_puts", lambda *args: stub.messages.append(args[-1]) or "")
    interp.eval("rename puts tcl_puts; proc puts {args} { py_puts {*}$args }")
    cwd = os.getcwd()  # Tcl's cd changes the process's directory
    try:
        interp.eval(f"cd {{{script.parent}}}")
        interp.eval(f"source {{{script.name}}}")
    except tkinter.TclError as exc:
        where = interp.eval("set errorInfo").strip().splitlines()
        line = next((w for w in where if "line" in w and script.name in w), "")
        raise CompileError(f"{script.name}{' ' + line.strip() if line else ''}: {exc}") from None
    finally:
        os.chdir(cwd)
    return stub.calls
