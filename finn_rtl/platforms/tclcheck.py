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
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from ..graph.errors import CompileError

_ERROR = "__VIVADO_STUB_ERROR__"
AXI_MASTER = ("awaddr", "awlen", "awvalid", "awready", "wdata", "wlast", "wvalid", "wready", "bresp", "bvalid",
              "bready", "araddr", "arlen", "arvalid", "arready", "rdata", "rresp", "rlast", "rvalid", "rready")
AXI_LITE = ("awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp", "bvalid", "bready",
            "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready")


class StubError(Exception):
    pass


def verilog_ports(text: str, module: str) -> dict[str, str]:
    """Port name -> 'input'/'output' of `module` in Verilog text."""
    match = re.search(rf"^module {re.escape(module)}\s*\((.*?)^endmodule", text, re.S | re.M)
    if not match:
        raise StubError(f"module {module} is not in the Verilog sources")
    return {name: direction for direction, name in
            re.findall(r"^\s*(input|output)\s+(?:\[[^\]]+\]\s*)?(\w+)\s*;", match.group(1), re.M)}


def infer_interfaces(ports: dict[str, str]) -> dict[str, str]:
    """AXI interfaces by port-name prefix, as ipx::package_project infers them: name -> mode."""
    interfaces = {}
    for prefix in {name.rsplit("_", 1)[0] for name in ports if "_" in name}:
        signals = {name[len(prefix) + 1:] for name in ports if name.startswith(prefix + "_")}
        if set(AXI_LITE) - {"wstrb"} <= signals:
            full = set(AXI_MASTER) <= signals
            mode = "master" if ports[f"{prefix}_awaddr"] == "output" else "slave"
            interfaces[prefix] = f"{mode}:{'aximm' if full else 'aximm-lite'}"
        elif {"tdata", "tvalid", "tready"} <= signals:
            interfaces[prefix] = f"{'slave' if ports[prefix + '_tdata'] == 'input' else 'master'}:axis"
    return interfaces


@dataclass
class Cell:
    name: str
    vlnv: str
    config: dict = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return self.vlnv.split(":")[2]


PS7_CONFIG = {"PCW_USE_M_AXI_GP0", "PCW_USE_M_AXI_GP1", "PCW_USE_S_AXI_HP0", "PCW_USE_S_AXI_HP1",
              "PCW_S_AXI_HP0_DATA_WIDTH", "PCW_FPGA0_PERIPHERAL_FREQMHZ", "PCW_EN_CLK0_PORT", "PCW_EN_RST0_PORT",
              "PCW_USE_FABRIC_INTERRUPT", "PCW_IRQ_F2P_INTR"}
PSU_CONFIG = {"PSU__USE__M_AXI_GP0", "PSU__USE__M_AXI_GP1", "PSU__USE__M_AXI_GP2", "PSU__USE__S_AXI_GP2",
              "PSU__SAXIGP2__DATA_WIDTH", "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", "PSU__FPGA_PL0_ENABLE",
              "PSU__USE__IRQ0"}
XILINX_IPS = {"xilinx.com:ip:processing_system7:5.5", "xilinx.com:ip:zynq_ultra_ps_e:3.5",
              "xilinx.com:ip:proc_sys_reset:5.0", "xilinx.com:ip:smartconnect:1.0"}


class VivadoStub:
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

    # -- helpers ----------------------------------------------------------------------------
    def need(self, step: str, before: str) -> None:
        if step not in self.stage:
            raise StubError(f"{before} before {step}")

    def check_part(self, part: str) -> None:
        if part != self.part:
            raise StubError(f"part {part} is not the board's part {self.part}")

    def source_text(self) -> str:
        return "\n".join(path.read_text() for path in self.sources if path.suffix in (".v", ".sv"))

    # -- projects and files -----------------------------------------------------------------
    def create_project(self, *args):
        opts = _options(args, ("-part",), ("-force", "-in_memory"))
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
        for name in _options(args, (), ("-norecurse", "-fileset"))["positional"]:
            for item in _split(name):
                path = Path(item)
                if not path.is_file():
                    raise StubError(f"add_files: {item} does not exist")
                self.sources.append(path)

    read_verilog = add_files

    def read_xdc(self, *args):
        path = Path(_options(args, ("-mode",), ())["positional"][0])
        if not path.is_file():
            raise StubError(f"read_xdc: {path} does not exist")
        clocks = re.findall(r"create_clock .*\[get_ports (\w+)\]", path.read_text())
        self.stage.add("constraints")
        self.constrained_clocks = clocks

    def set_property(self, *args):
        if args[0] == "-dict":
            pairs, target = _split(args[1]), args[2]
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
            self.repo_paths = [Path(p) for p in _split(value)]
        elif kind == "cell":
            cell = self.cells[name]
            if not key.startswith("CONFIG."):
                raise StubError(f"cell {name}: {key} is not a cell property")
            allowed = {"processing_system7": PS7_CONFIG, "zynq_ultra_ps_e": PSU_CONFIG,
                       "smartconnect": {"NUM_SI", "NUM_MI"}}.get(cell.ip, set())
            if key[7:] not in allowed:
                raise StubError(f"{key} is not a parameter of {cell.ip} ({name})")
            cell.config[key[7:]] = value
        elif kind in ("core", "busif", "register", "block", "busparam", "memmap"):
            self.core.setdefault("properties", {})[(target, key)] = value
            if kind == "busif" and key == "slave_memory_map_ref":
                if self.core["interfaces"].get(name, "").split(":")[0] != "slave":
                    raise StubError(f"memory map on {name}, which is not an AXI slave interface")
                self.core["memory_map_of"] = name
            if kind == "register":
                self.core["registers"][name][key] = int(value, 0)
            if kind == "block" and key == "range":
                self.core["range"] = int(value, 0)
            if kind == "busparam" and key == "value" and name.endswith("ASSOCIATED_BUSIF"):
                if value not in self.core["interfaces"]:
                    raise StubError(f"ASSOCIATED_BUSIF {value} is not an interface of the core")
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

    def update_ip_catalog(self, *args):
        for repo in self.repo_paths:
            for component in repo.glob("**/component.xml"):
                core = _read_component(component)
                self.catalog[core["vlnv"]] = core

    # -- IP packaging -------------------------------------------------------------------------
    def package_project(self, *args):
        opts = _options(args, ("-root_dir", "-vendor", "-library", "-taxonomy"), ("-import_files", "-set_current"))
        if self.top is None:
            raise StubError("ipx::package_project without a top module")
        ports = self.top_ports
        self.core = {"root": Path(opts["-root_dir"]), "vendor": opts["-vendor"], "library": opts["-library"],
                     "name": self.top, "version": "1.0", "ports": ports, "interfaces": infer_interfaces(ports),
                     "clocks": {}, "registers": {}, "range": 0, "properties": {}}
        return "core:"

    def infer_bus_interface(self, port, vlnv, core):
        if port not in self.core["ports"]:
            raise StubError(f"ipx::infer_bus_interface: {port} is not a port of {self.core['name']}")
        kind = vlnv.split(":")[2].removesuffix("_rtl")
        self.core["interfaces"][port] = kind
        return f"busif:{port}"

    def associate_bus_interfaces(self, *args):
        opts = _options(args, ("-busif", "-clock", "-reset"), ())
        clock = opts["-clock"]
        if self.core["interfaces"].get(clock) != "clock":
            raise StubError(f"ipx::associate_bus_interfaces: {clock} is not a clock interface")
        if "-busif" in opts:
            if opts["-busif"] not in self.core["interfaces"]:
                raise StubError(f"ipx::associate_bus_interfaces: no bus interface {opts['-busif']} "
                                f"(the core has {sorted(self.core['interfaces'])})")
            self.core["clocks"][opts["-busif"]] = clock
        if "-reset" in opts:
            if self.core["interfaces"].get(opts["-reset"]) != "reset":
                raise StubError(f"ipx::associate_bus_interfaces: {opts['-reset']} is not a reset interface")
            self.core["clocks"][opts["-reset"]] = clock

    def get_bus_interfaces(self, name, *args):
        if name not in self.core["interfaces"]:
            raise StubError(f"ipx::get_bus_interfaces: no interface {name}")
        return f"busif:{name}"

    def add_bus_parameter(self, name, busif):
        return f"busparam:{busif}/{name}"

    add_register_parameter = add_bus_parameter

    def add_memory_map(self, name, core):
        return f"memmap:{name}"

    def add_address_block(self, name, memmap):
        return f"block:{name}"

    def add_register(self, name, block):
        if name in self.core["registers"]:
            raise StubError(f"register {name} added twice")
        self.core["registers"][name] = {}
        return f"register:{name}"

    def get_registers(self, name, *args):
        if name not in self.core["registers"]:
            raise StubError(f"ipx::get_registers: no register {name}")
        return f"register:{name}"

    def check_integrity(self, *args):
        core = self.core
        for name, kind in core["interfaces"].items():
            if kind.startswith(("master", "slave")) and name not in core["clocks"]:
                raise StubError(f"bus interface {name} has no associated clock")
        if any(kind.startswith("slave:aximm") for kind in core["interfaces"].values()) and not core.get("memory_map_of"):
            raise StubError("no AXI slave interface references the register memory map")
        spans = sorted((r["address_offset"], r["address_offset"] + r.get("size", 32) // 8, name)
                       for name, r in core["registers"].items())
        for (start, end, name), following in zip(spans, spans[1:] + [(None, None, None)]):
            if end > core["range"]:
                raise StubError(f"register {name} at {start:#x} lies outside the {core['range']}-byte block")
            if following[0] is not None and following[0] < end:
                raise StubError(f"registers {name} and {following[2]} overlap")
        if "-kernel" in args:
            props = {key: value for (target, key), value in core["properties"].items() if target == "core:"}
            if props.get("sdx_kernel") != "true" or "ap_clk" not in core["ports"] or "ap_rst_n" not in core["ports"]:
                raise StubError("a Vitis kernel needs sdx_kernel true and ap_clk/ap_rst_n ports")

    def save_core(self, core):
        self.check_integrity()
        root = self.core["root"]
        root.mkdir(parents=True, exist_ok=True)
        _write_component(root / "component.xml", self.core)
        self.stage.add("packaged")

    # -- block designs ------------------------------------------------------------------------
    def create_bd_design(self, name):
        self.need("project", "create_bd_design")
        self.bd_name = name
        self.stage.add("bd")

    def create_bd_cell(self, *args):
        opts = _options(args, ("-type", "-vlnv"), ())
        vlnv, name = opts["-vlnv"], opts["positional"][0]
        if vlnv not in XILINX_IPS and vlnv not in self.catalog:
            raise StubError(f"IP {vlnv} is not in the catalog (packaged IPs: {sorted(self.catalog)})")
        if name in self.cells:
            raise StubError(f"cell {name} exists already")
        if ("processing_system7" in vlnv and not self.part.startswith("xc7z")) or \
                ("zynq_ultra_ps_e" in vlnv and not self.part.startswith(("xczu", "xck"))):
            raise StubError(f"{vlnv} does not exist on part {self.part}")
        self.cells[name] = Cell(name, vlnv)
        return f"cell:{name}"

    def apply_bd_automation(self, *args):
        opts = _options(args, ("-rule", "-config"), ())
        cell = self.cells[opts["positional"][0].partition(":")[2]]
        if opts["-rule"].split(":")[-1] != cell.ip:
            raise StubError(f"rule {opts['-rule']} does not apply to {cell.ip}")

    def get_bd_cells(self, name):
        if name not in self.cells:
            raise StubError(f"get_bd_cells: no cell {name}")
        return f"cell:{name}"

    def cell_pins(self, cell: Cell) -> tuple[dict, dict]:
        """(interface pin -> 'master'/'slave', pin -> 'in'/'out') as the cell's configuration gives them."""
        on = lambda key, default="0": str(cell.config.get(key, default)) == "1"  # noqa: E731
        if cell.ip == "processing_system7":
            intf, pins = {}, {"FCLK_CLK0": "out", "FCLK_RESET0_N": "out"}
            if on("PCW_USE_M_AXI_GP0", "1"):
                intf["M_AXI_GP0"], pins["M_AXI_GP0_ACLK"] = "master", "clkin"
            if on("PCW_USE_S_AXI_HP0"):
                intf["S_AXI_HP0"], pins["S_AXI_HP0_ACLK"] = "slave", "clkin"
            if on("PCW_USE_FABRIC_INTERRUPT") and on("PCW_IRQ_F2P_INTR"):
                pins["IRQ_F2P"] = "in"
        elif cell.ip == "zynq_ultra_ps_e":
            intf, pins = {}, {"pl_clk0": "out", "pl_resetn0": "out"}
            for index, (port, clock) in enumerate((("M_AXI_HPM0_FPD", "maxihpm0_fpd_aclk"),
                                                   ("M_AXI_HPM1_FPD", "maxihpm1_fpd_aclk"))):
                if on(f"PSU__USE__M_AXI_GP{index}", "1"):
                    intf[port], pins[clock] = "master", "clkin"
            if on("PSU__USE__S_AXI_GP2"):
                intf["S_AXI_HP0_FPD"], pins["saxihp0_fpd_aclk"] = "slave", "clkin"
            if on("PSU__USE__IRQ0"):
                pins["pl_ps_irq0"] = "in"
        elif cell.ip == "smartconnect":
            intf = {f"S{i:02d}_AXI": "slave" for i in range(int(cell.config.get("NUM_SI", 1)))}
            intf.update({f"M{i:02d}_AXI": "master" for i in range(int(cell.config.get("NUM_MI", 1)))})
            pins = {"aclk": "clkin", "aresetn": "rstin"}
        elif cell.ip == "proc_sys_reset":
            intf = {}
            pins = {"slowest_sync_clk": "clkin", "ext_reset_in": "rstin", "peripheral_aresetn": "out",
                    "interconnect_aresetn": "out", "peripheral_reset": "out"}
        else:
            core = self.catalog[cell.vlnv]
            intf = {name: mode.split(":")[0] for name, mode in core["interfaces"].items()
                    if mode.startswith(("master", "slave"))}
            kinds = {"clock": "clkin", "reset": "rstin"}
            pins = {name: kinds.get(core["interfaces"].get(name), "in" if direction == "input" else "out")
                    for name, direction in core["ports"].items() if not any(name.startswith(i + "_") for i in intf)}
        return intf, pins

    def get_bd_intf_pins(self, path):
        cell, _, pin = path.partition("/")
        if cell not in self.cells or pin not in self.cell_pins(self.cells[cell])[0]:
            raise StubError(f"get_bd_intf_pins: no interface pin {path}")
        return f"intf:{path}"

    def get_bd_pins(self, path):
        cell, _, pin = path.partition("/")
        if cell not in self.cells or pin not in self.cell_pins(self.cells[cell])[1]:
            raise StubError(f"get_bd_pins: no pin {path}")
        return f"pin:{path}"

    def _mode(self, path, interface=True):
        cell, _, pin = path.partition("/")
        return self.cell_pins(self.cells[cell])[0 if interface else 1][pin]

    def connect_bd_intf_net(self, a, b):
        a, b = a.partition(":")[2], b.partition(":")[2]
        modes = {self._mode(a), self._mode(b)}
        if modes != {"master", "slave"}:
            raise StubError(f"connect_bd_intf_net {a} {b}: connects {' and '.join(sorted(modes))}")
        for end in (a, b):
            if end in self.intf_links:
                raise StubError(f"{end} is connected twice")
        self.intf_links[a], self.intf_links[b] = b, a

    def connect_bd_net(self, *args):
        pins = [arg.partition(":")[2] for arg in args]
        outputs = [p for p in pins if self._mode(p, False) == "out"]
        if len(outputs) != 1:
            raise StubError(f"connect_bd_net {' '.join(pins)}: needs exactly one driver, has {len(outputs)}")
        for pin in pins:
            if pin != outputs[0]:
                if pin in self.drivers:
                    raise StubError(f"{pin} is driven twice")
                self.drivers[pin] = outputs[0]

    def _reaches(self, start: str, target_cell_ip: str) -> str | None:
        """Follow an AXI path from interface pin `start` through interconnects to a cell of `target_cell_ip`."""
        seen, frontier = set(), [start]
        while frontier:
            pin = frontier.pop()
            other = self.intf_links.get(pin)
            if other is None or other in seen:
                continue
            seen.add(other)
            cell = self.cells[other.partition("/")[0]]
            if cell.ip == target_cell_ip:
                return other
            if cell.ip == "smartconnect":
                intf = self.cell_pins(cell)[0]
                frontier += [f"{cell.name}/{p}" for p in intf if intf[p] != self._mode(other)]
        return None

    def assign_bd_address(self, *args):
        ps = next((c for c in self.cells.values() if c.ip in ("processing_system7", "zynq_ultra_ps_e")), None)
        for cell in self.cells.values():
            if cell.vlnv in self.catalog:
                for pin, mode in self.cell_pins(cell)[0].items():
                    if ps is not None and self._reaches(f"{cell.name}/{pin}", ps.ip):
                        self.addressed.add(f"{cell.name}/{pin}")
        self.stage.add("addressed")

    def validate_bd_design(self, *args):
        for cell in self.cells.values():
            intf, pins = self.cell_pins(cell)
            for pin in intf:
                if f"{cell.name}/{pin}" not in self.intf_links:
                    raise StubError(f"interface {cell.name}/{pin} is not connected")
                if cell.vlnv in self.catalog and intf[pin] == "slave" and f"{cell.name}/{pin}" not in self.addressed:
                    raise StubError(f"slave {cell.name}/{pin} has no address (assign_bd_address)")
            for pin, kind in pins.items():
                if kind in ("clkin", "rstin") and f"{cell.name}/{pin}" not in self.drivers:
                    raise StubError(f"{'clock' if kind == 'clkin' else 'reset'} pin {cell.name}/{pin} is not connected")
        clocks = {driver for pin, driver in self.drivers.items() if self._mode(pin, False) == "clkin"}
        if len(clocks) > 1:
            raise StubError(f"clock pins are driven from {sorted(clocks)}: the design has one clock")
        if self.clock_mhz is not None:
            for cell in self.cells.values():
                for key in ("PCW_FPGA0_PERIPHERAL_FREQMHZ", "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"):
                    if key in cell.config and float(cell.config[key]) != self.clock_mhz:
                        raise StubError(f"PL clock {cell.config[key]} MHz, requested {self.clock_mhz:g} MHz")
        self.stage.add("validated")

    def save_bd_design(self, *args):
        self.need("bd", "save_bd_design")

    def make_wrapper(self, *args):
        self.need("validated", "make_wrapper")
        wrapper = Path(self.project_dir, f"{self.project}.gen/sources_1/bd/{self.bd_name}/hdl/{self.bd_name}_wrapper.v")
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(f"module {self.bd_name}_wrapper;\nendmodule\n")
        self.stage.add("wrapper_added")

    # -- runs ------------------------------------------------------------------------------------
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
        path = Path(_options(args, ("-file",), ("-hierarchical",))["-file"])
        path.write_text("stub report\n")

    def synth_design(self, *args):
        opts = _options(args, ("-top", "-part", "-mode"), ())
        self.check_part(opts["-part"])
        ports = verilog_ports(self.source_text(), opts["-top"])
        self.need("constraints", "synth_design")
        for clock in self.constrained_clocks:
            if clock not in ports:
                raise StubError(f"the clock constraint names port {clock}, which {opts['-top']} does not have")
        self.stage.add("synthesized")

    def opt_design(self, *args):
        self.need("synthesized", "opt_design")
        self.stage.add("optimized")

    def place_design(self, *args):
        self.need("optimized", "place_design")
        self.stage.add("placed")

    def route_design(self, *args):
        self.need("placed", "route_design")
        self.stage.add("routed")

    def get_timing_paths(self, *args):
        self.need("routed", "get_timing_paths")
        return "path:worst"

    def package_xo(self, *args):
        opts = _options(args, ("-xo_path", "-kernel_name", "-ip_directory", "-kernel_xml"), ("-force",))
        component = Path(opts["-ip_directory"], "component.xml")
        if not component.is_file():
            raise StubError(f"package_xo: no packaged IP in {opts['-ip_directory']}")
        core = _read_component(component)
        if core["name"] != opts["-kernel_name"]:
            raise StubError(f"package_xo: the IP is {core['name']}, not {opts['-kernel_name']}")
        kernel = ElementTree.parse(opts["-kernel_xml"]).getroot().find("kernel")
        if kernel.get("vlnv") != core["vlnv"]:
            raise StubError(f"kernel.xml names {kernel.get('vlnv')}, the IP is {core['vlnv']}")
        ports = {port.get("name") for port in kernel.iter("port")}
        for port in ports:
            if port not in core["interfaces"]:
                raise StubError(f"kernel.xml port {port} is not an interface of the IP")
        offsets = {offset for offset, _ in core["registers"].values()}
        for arg in kernel.iter("arg"):
            if arg.get("port") not in ports or int(arg.get("offset"), 16) not in offsets:
                raise StubError(f"kernel.xml argument {arg.get('name')} matches no register of the IP")
        Path(opts["-xo_path"]).write_text("stub xo\n")


def _split(value: str) -> list[str]:
    import tkinter

    return list(tkinter.Tcl().splitlist(value)) if value else []


def _options(args, valued, flags) -> dict:
    opts, positional, items = {}, [], list(args)
    while items:
        item = items.pop(0)
        if item in valued:
            opts[item] = items.pop(0)
        elif item in flags:
            opts[item] = True
        elif item.startswith("-") and item not in valued:
            raise StubError(f"unknown option {item}")
        else:
            positional.append(item)
    opts["positional"] = positional
    return opts


def _write_component(path: Path, core: dict) -> None:
    root = ElementTree.Element("component", vlnv=f"{core['vendor']}:{core['library']}:{core['name']}:{core['version']}")
    for name, direction in core["ports"].items():
        ElementTree.SubElement(root, "port", name=name, direction=direction)
    for name, mode in core["interfaces"].items():
        ElementTree.SubElement(root, "interface", name=name, mode=mode)
    for name, reg in core["registers"].items():
        ElementTree.SubElement(root, "register", name=name, offset=str(reg["address_offset"]), size=str(reg.get("size", 32)))
    ElementTree.ElementTree(root).write(path)


def _read_component(path: Path) -> dict:
    root = ElementTree.parse(path).getroot()
    vlnv = root.get("vlnv")
    return {"vlnv": vlnv, "name": vlnv.split(":")[2],
            "ports": {p.get("name"): p.get("direction") for p in root.iter("port")},
            "interfaces": {i.get("name"): i.get("mode") for i in root.iter("interface")},
            "registers": {r.get("name"): (int(r.get("offset")), int(r.get("size"))) for r in root.iter("register")}}


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
    "opt_design": "opt_design", "place_design": "place_design", "route_design": "route_design",
    "get_timing_paths": "get_timing_paths", "package_xo": "package_xo",
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
                result = getattr(stub, method)(*args)
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
