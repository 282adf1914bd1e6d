"""The block-design half of the Vivado stub: cells with the pins their configuration gives
them, connections, addresses and validation."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .common import StubError, options


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


class BlockDesign:
    """PS ports exist only when their CONFIG enables them; a connection joins a master and a
    slave once; validation wants every AXI port, clock and reset connected, one clock, every
    slave of a packaged IP addressed and the PL clock at the requested frequency."""

    def set_cell_property(self, name: str, key: str, value: str) -> None:
        cell = self.cells[name]
        if not key.startswith("CONFIG."):
            raise StubError(f"cell {name}: {key} is not a cell property")
        allowed = {"processing_system7": PS7_CONFIG, "zynq_ultra_ps_e": PSU_CONFIG,
                   "smartconnect": {"NUM_SI", "NUM_MI"}}.get(cell.ip, set())
        if key[7:] not in allowed:
            raise StubError(f"{key} is not a parameter of {cell.ip} ({name})")
        cell.config[key[7:]] = value

    def create_bd_design(self, name):
        self.need("project", "create_bd_design")
        self.bd_name = name
        self.stage.add("bd")

    def create_bd_cell(self, *args):
        opts = options(args, ("-type", "-vlnv"), ())
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
        opts = options(args, ("-rule", "-config"), ())
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
