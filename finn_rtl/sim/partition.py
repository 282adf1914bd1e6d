"""A design cut in two for a simulator thread each (`harness.cpp`, built with -DPARTS).

Verilator runs a model on one thread. Its own `--threads` splits the evaluation of each cycle
into many small tasks that wait on each other several times a cycle, and on the shared
MobileNet-v1 that was 2.5x slower than one thread. Here the accelerator's layers are split
into two contiguous halves of about equal simulation cost instead, each half its own Verilator
model on its own thread, and each thread publishes, once a cycle, the signals its half drives
across the cut: the stream between two layers (valid, payload one way, ready the other), the
registered reset, and the top-level ports a half owns.

Exact, and checked every cycle: each thread publishes the values its half drives across the
cut right after the clock edge, before it sees the other half's values for that cycle, which
is right only if those values depend on registers alone, not combinationally on what crosses
the cut or on the top-level inputs. The harness re-reads them after the cycle's inputs are
applied and stops with an error (exit 4) the first cycle they differ, so a cut through
combinational logic cannot give wrong results, only that error, and `rtlsim` then runs the
whole design on one thread. The cut is chosen where this holds: at the FIFO in front of a
layer (its ready is its fill level, a register) after a producer whose valid and payload come
from its output register.

Lookahead: where the cut crosses a single edge straight into its FIFO, the first half need not
wait for the second every cycle. The only value it reads from the second half is that FIFO's
ready, which is high while the FIFO's memory holds fewer beats than it has words; the FIFO holds
at most the beats that went in (which the first half knows) less those that came out by the
last cycle the second half has simulated. While that bound is below the words, the ready is
high for certain and the first half runs on, up to a ring of cycles ahead (`harness.cpp`). The
second half, downstream, never needs a value before the first half has made it.

The cut itself is Yosys's: the top level and its FIFOs and width converters are flattened
around the layers' modules (read as black boxes), every cell is given to a half, and `submod`
moves each half's cells into a module of its own; the wires between the two modules are the
signals that cross.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..graph.memory import fifo_memory
from ..graph.specs import MVTUSpec, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec, VectorUnitSpec

CUT_NOT_EXACT = "values crossing the cut changed within cycle"  # the harness's words (exit 4)
# A top-level port added to the cut design (and to nothing else) that shows the output handshake
# (valid, ready) of the FIFO the cut crosses into. (A port on the FIFO's input, whose nets cross
# the cut, made Yosys's `submod` drop the second half's input for them.)
CUT_FIFO_OUT = "cut_fifo_out"
# Below this cost (`simulation_cost`) a cycle's work is too small to pay for the threads' meeting
# once a cycle. Measured on 2 cores: the shared CNV at II 36,864 (cost 453) 0.48M cycles/s on
# two threads and 0.47-0.53M on one; the shared MobileNet-v1 at FINN's ZCU104 folding (1,145)
# 0.19-0.22M against 0.11M.
THREADS_FROM = 800


@dataclass(frozen=True)
class PortBits:
    """A port of a half (or of the top level) and the nets of its bits."""

    name: str
    bits: tuple

    @property
    def width(self) -> int:
        return len(self.bits)


@dataclass(frozen=True)
class PartitionedDesign:
    """`halves`: each half's Verilog, its module (`part_modules`) and the modules under it, so
    that each verilation parses only its own half; `header`: the C++ that moves the signals
    between the halves and the harness (`harness.cpp` with -DPARTS)."""

    halves: tuple  # (Verilog of half 0, of half 1)
    header: str
    layers: tuple  # the layers of each half, by name


def part_modules(top: str) -> tuple[str, str]:
    """The halves' module names (Yosys's `submod` names them after the top)."""
    return f"{top}_part0", f"{top}_part1"


# What a layer costs the simulator per cycle, with the FIFO and width converter of its input
# edge, in per mille of the shared MobileNet-v1's cycle at FINN's ZCU104 folding (perf samples,
# `benchmarks/profile_layers.py --sample`): an MVTU's lanes dominate; a depthwise unit's lanes cost
# a third as much; an edge (FIFO, width converter, handshakes) about as much as a thresholding layer.
# (Measured before the cores loaded data registers only with a beat. Since then callgrind puts an
# MVTU at 7.4 + 0.127 per lane, a depthwise unit at 4.0 + 0.027, a thresholding layer at 4.5 and
# an edge at 3.2; on that design the cut these constants choose is still the best of all cuts
# between layers: 20.9k and 19.5k instructions per cycle.)
LANE_COST = {MVTUSpec: 0.117, VectorUnitSpec: 0.033}
LAYER_COST = {MVTUSpec: 5.0, VectorUnitSpec: 3.5, ThresholdSpec: 5.0, SlidingWindowSpec: 4.0, PadSpec: 0.5,
              PoolSpec: 3.0}
EDGE_COST = 5.6


def simulation_cost(layer) -> float:
    kind = type(layer)
    lanes = getattr(layer, "pe", 1) * getattr(layer, "simd", 1)
    return LAYER_COST.get(kind, 3.0) + LANE_COST.get(kind, 0.0) * lanes + EDGE_COST


def worth_threads(network) -> bool:
    return len(network.layers) >= 4 and sum(simulation_cost(layer) for layer in network.layers) >= THREADS_FROM


def split_layers(network) -> tuple[list[str], list[str]]:
    """The layers in order, cut where the cost before the cut first reaches half. Each edge's
    FIFO goes with its consumer, so the cut is at FIFOs."""
    costs = [simulation_cost(layer) for layer in network.layers]
    total, running = sum(costs), 0
    for index, cost in enumerate(costs):
        if running + cost / 2 >= total / 2 and index > 0:
            break
        running += cost
    index = max(1, min(index, len(costs) - 1))
    names = [layer.name for layer in network.layers]
    return names[:index], names[index:]


class CutError(RuntimeError):
    """The design could not be cut in two; rtlsim simulates it whole."""


def partition(network, verilog: str) -> PartitionedDesign:
    """The design's Verilog cut between two halves of its layers (`split_layers`)."""
    try:
        return _partition(network, verilog)
    except CutError:
        raise
    except (KeyError, ValueError, StopIteration, OSError, json.JSONDecodeError) as error:
        raise CutError(f"{network.name} could not be cut in two ({type(error).__name__}: {error})") from None


def _partition(network, verilog: str) -> PartitionedDesign:
    top = network.name
    first, second = split_layers(network)
    modules = verilog_modules(verilog)
    glue, stubs = _glue_and_stubs(modules, top)
    with tempfile.TemporaryDirectory(prefix="finn-rtl-parts-") as work:
        work = Path(work)
        (work / "glue.v").write_text(stubs + glue)
        _yosys(work, f"read_verilog glue.v; hierarchy -top {top}; proc; flatten -noscopeinfo; memory_collect; "
                     "opt_clean; write_json flat.json")
        design = json.loads((work / "flat.json").read_text())
        _assign_cells(design["modules"][top], top, network, set(second))
        cut_fifo = _watch_cut_fifo(design["modules"][top], network, set(second))
        (work / "parted.json").write_text(json.dumps(design))
        _yosys(work, f"read_json parted.json; hierarchy -top {top}; submod; opt_clean; write_json cut.json")
        design = json.loads((work / "cut.json").read_text())
        _plain_port_names(design["modules"], top)
        (work / "renamed.json").write_text(json.dumps(design))
        _yosys(work, f"read_json renamed.json; select {top}_part0 {top}_part1; "
                     "write_verilog -norename -noattr -selected parts.v")
        parts_verilog = (work / "parts.v").read_text()
    header = _exchange_header(design["modules"], top, cut_fifo)
    modules.update(verilog_modules(parts_verilog))
    halves = tuple("".join(modules[name] for name in _modules_under(modules, root)) for root in part_modules(top))
    return PartitionedDesign(halves, header, (tuple(first), tuple(second)))


def _yosys(work: Path, script: str) -> None:
    from ..resources.synthesis import yosys_command

    run = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=work, capture_output=True, text=True)
    if run.returncode != 0:
        detail = " / ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
        raise CutError(f"Yosys could not cut the design in two: {detail or 'no output'}")


MODULE = re.compile(r"^module (\S+?)\s*\(.*?^endmodule\n", re.M | re.S)
PORT_DECLARATION = re.compile(r"^\s*(?:input|output|inout)\b[^;]*;\n", re.M)
FUNCTION = re.compile(r"^\s*function\b.*?^\s*endfunction\b", re.M | re.S)  # inputs of its own


def verilog_modules(verilog: str) -> dict[str, str]:
    """Each module's Verilog by its name (without the escaping backslash)."""
    return {match.group(1).lstrip("\\"): match.group(0) for match in MODULE.finditer(verilog)}


def _modules_under(modules: dict[str, str], root: str) -> list[str]:
    """`root` and the modules it instantiates, directly or further down, in the design's order.
    An instance is a statement whose first word is a module's name (Yosys writes one per line)."""
    reached, pending = {root}, [root]
    while pending:
        for line in modules[pending.pop()].splitlines():
            word = line.split(maxsplit=1)[0].lstrip("\\") if line.strip() else ""
            if word in modules and word not in reached:
                reached.add(word)
                pending.append(word)
    return [name for name in modules if name in reached]


def _glue_and_stubs(modules: dict[str, str], top: str) -> tuple[str, str]:
    """The top level's own two modules (the top and its datapath), whole; every other module
    (the layers' cores, FIFOs, width converters, register slices, leaves) as a black box: its
    header and port declarations. Yosys then only sees the wiring between them (flattening the
    FIFOs too took 5 minutes on MobileNet-v1: their zero-initialised storage is thousands of
    initialisation cells)."""
    glue, stubs = [], []
    for name, text in modules.items():
        if name in (top, f"{top}.datapath"):
            glue.append(text)
        else:
            header = text.split(";\n", 1)[0] + ";\n"
            stubs.append("(* blackbox *)\n" + header + "".join(PORT_DECLARATION.findall(FUNCTION.sub("", text))) + "endmodule\n")
    return "".join(glue), "".join(stubs)


def _plain_port_names(modules: dict, top: str) -> None:
    """The halves' ports that are not the top's own get names C++ can use as they are (`submod`
    names them after hierarchical wires, `datapath.s__payload$648`, which Verilator encodes)."""
    for k in (0, 1):
        name = f"{top}_part{k}"
        module = modules[name]
        instance = next(cell for cell in modules[top]["cells"].values() if cell["type"] == name)
        renamed = {}
        for index, port in enumerate(list(module["ports"])):
            plain = port if port in modules[top]["ports"] else f"cut{k}_{index}"
            renamed[port] = plain
        module["ports"] = {renamed[port]: info for port, info in module["ports"].items()}
        for port, plain in renamed.items():
            if port != plain:
                module["netnames"][plain] = module["netnames"].pop(port)
        instance["connections"] = {renamed[port]: bits for port, bits in instance["connections"].items()}
        instance["port_directions"] = {renamed[port]: d for port, d in instance["port_directions"].items()}


def _assign_cells(module: dict, top: str, network, second: set) -> None:
    """Marks every cell of the flattened top with the half it goes to (Yosys's `submod`
    attribute): a layer's core and the FIFOs and width converters of the edges into it go
    with the layer, the input slice with the first layer, the output slice (and label select)
    with the last; the remaining glue as `_place_glue` says."""
    half_of = {}
    for layer in network.layers:
        half_of[layer.name] = 1 if layer.name in second else 0
    for index, edge in enumerate(network.edges, start=1):
        half_of[f"fifo{index}"] = half_of[f"dwc{index}"] = half_of[edge.consumer]
    half_of["in_slice"] = half_of[network.layers[0].name]
    half_of["out_slice"] = half_of["label_select"] = half_of[network.layers[-1].name]
    cells = module["cells"]
    part = {}
    for name in cells:
        # flattened cells are named `$flatten\datapath.\fifo3.$procdff$12`, kept instances `datapath.Conv_4`
        pieces = name.replace("$flatten\\", "", 1).replace("\\", "").split(".")
        if len(pieces) >= 2 and pieces[0] == "datapath" and pieces[1] in half_of:
            part[name] = half_of[pieces[1]]
        elif pieces[0] != "datapath":  # the top's own: the reset register, which crosses downstream
            part[name] = 0
    _place_glue(cells, part)
    for name, cell in cells.items():
        cell.setdefault("attributes", {})["submod"] = f"part{part[name]}"


def _watch_cut_fifo(module: dict, network, second: set) -> tuple[str, int] | None:
    """Where exactly one edge crosses the cut, the top-level port `CUT_FIFO_OUT` on its FIFO's
    output handshake; returns the FIFO's cell and the words of its memory (`fifo_memory`: its
    ready is that it holds fewer beats), or None where the cut crosses more."""
    crossing = [(index, stream) for index, stream in enumerate(network.edge_streams(), start=1)
                if stream.edge.producer not in second and stream.edge.consumer in second]
    if len(crossing) != 1:
        return None
    index, stream = crossing[0]
    fifo = f"datapath.fifo{index}"
    if fifo not in module["cells"]:
        return None
    ports = module["cells"][fifo]["connections"]
    module["ports"][CUT_FIFO_OUT] = {"direction": "output", "bits": ports["m__valid"] + ports["m__ready"]}
    return fifo, fifo_memory(1, stream.depth).depth


def _place_glue(cells: dict, part: dict) -> None:
    """The top level's own logic goes with the cells that read what it drives (so that the
    reset's inverter and the gate on the input's tvalid sit with the input slice that reads them,
    and only the reset register's output crosses the cut); logic that drives only top-level
    outputs goes with the cells that drive it. A cell waits while any cell reading it is unplaced;
    loops (counters) are then placed by all their neighbours."""
    readers, drivers = {}, {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            table = drivers if cell.get("port_directions", {}).get(port) == "output" else readers
            for net in bits:
                if isinstance(net, int):
                    table.setdefault(net, set()).add(name)

    def nets(name, direction):
        cell = cells[name]
        return [net for port, bits in cell["connections"].items() for net in bits
                if isinstance(net, int) and (cell.get("port_directions", {}).get(port) == "output") == direction]

    # A cell whose output every layer reads (the reset register) says nothing of where a loop
    # that reads it belongs (the output's tlast counter, which it resets).
    broadcast = {name for name in cells if sum(len(readers.get(net, ())) for net in nets(name, True)) > 8}
    pending = [name for name in cells if name not in part]
    patient = True
    while pending:
        left = []
        for name in pending:
            sinks = {other for net in nets(name, True) for other in readers.get(net, ()) if other != name}
            sources = {other for net in nets(name, False) for other in drivers.get(net, ()) if other != name}
            if patient and any(other not in part for other in sinks):
                left.append(name)
                continue
            neighbours = sorted(sinks or sources) if patient else sorted(sinks | (sources - broadcast))
            votes = Counter(part[other] for other in neighbours if other in part)
            if votes:
                part[name] = votes.most_common(1)[0][0]
            else:
                left.append(name)
        if len(left) == len(pending):
            if not patient:  # touches nothing placed at all: the first half
                part.update({name: 0 for name in left})
                break
            patient = False
        else:
            patient = True
        pending = left


def _exchange_header(modules: dict, top: str, cut_fifo: tuple[str, int] | None = None) -> str:
    """C++ for `harness.cpp` -DPARTS: the two halves' classes, and for each half what it
    publishes after a clock edge (the bits it drives into the other half or out of the top),
    and how its inputs are set from the top level's ports and the other half's publication;
    with `cut_fifo` (`_watch_cut_fifo`), what the first half's lookahead needs, where the cut
    allows it."""
    top_module = modules[top]
    instances = {cell["type"]: cell for cell in top_module["cells"].values()}
    halves = [instances[f"{top}_part{k}"] for k in (0, 1)]
    probes = {port: info["bits"] for port, info in top_module["ports"].items() if port == CUT_FIFO_OUT}
    outputs = {port: info for port, info in top_module["ports"].items()
               if info["direction"] == "output" and port not in probes}
    read = {net for k, cell in enumerate(halves) for port, bits in cell["connections"].items()
            if cell["port_directions"][port] == "input" for net in bits}
    read |= {net for info in outputs.values() for net in info["bits"]}
    driven = {}  # net -> (half, bit offset in its publication)
    drivers = {}  # net -> (half, port, bit), of every output of a half
    published = [[], []]
    for k, cell in enumerate(halves):
        offset = 0
        for port, bits in cell["connections"].items():
            if cell["port_directions"][port] != "output":
                continue
            drivers.update({net: (k, port, i) for i, net in enumerate(bits)})
            if not read.intersection(bits):  # a probe's alone: watched, never exchanged
                continue
            published[k].append((port, len(bits), offset))
            for i, net in enumerate(bits):
                driven[net] = (k, offset + i)
            offset += -(-len(bits) // 32) * 32
    top_inputs = {}
    for port, info in top_module["ports"].items():
        if info["direction"] == "input":
            for i, net in enumerate(info["bits"]):
                top_inputs[net] = (port, i)
    lines = ["// generated by finn_rtl.sim.partition", '#include "VPart0.h"', '#include "VPart1.h"', ""]
    for k in (0, 1):
        words = sum(-(-width // 32) for _, width, _ in published[k])
        lines.append(f"static const int PUBLISHED_WORDS{k} = {max(1, words)};")
    for k, cell in enumerate(halves):
        model = f"VPart{k}"
        lines += [f"static void publish{k}(const {model}& m, uint32_t* w) {{"]
        for port, width, offset in published[k]:
            lines.append(f"    get_port(m.{verilator_spelling(port)}, w + {offset // 32}, {-(-width // 32)});")
        lines.append("}")
        lines.append(f"template <class Proxy> static void apply{k}({model}& m, const Proxy& top, const uint32_t* other) {{")
        for port, bits in cell["connections"].items():
            if cell["port_directions"][port] != "input":
                continue
            lines.append(_gather(f"m.{verilator_spelling(port)}", bits, k, driven, top_inputs))
        lines.append("}")
    lines.append("template <class Proxy> static void top_outputs(Proxy& top, const uint32_t* const* published) {")
    for port, info in outputs.items():
        lines.append(_gather(f"top.{verilator_spelling(port)}", info["bits"], None, driven, top_inputs, published=True))
    lines.append("}")
    lines += _lookahead(modules[f"{top}_part1"], halves, probes, driven, drivers, cut_fifo)
    lines.append("#define PART_TOP_PORTS \\")
    for port, info in top_module["ports"].items():
        if port not in probes:
            lines.append(f"    {_ctype(len(info['bits']))} {verilator_spelling(port)} = {{}}; \\")
    lines.append("")
    return "\n".join(lines) + "\n"


def _lookahead(second: dict, halves: list, probes: dict, driven: dict, drivers: dict,
               cut_fifo: tuple[str, int] | None) -> list[str]:
    """`CUT_LOOKAHEAD` 1 where the first half reads nothing from the second but the cut FIFO's
    ready, and the FIFO's input valid comes from the first half: then the FIFO's words, where
    the valid and ready sit in the halves' publications, and the FIFO's output handshake, read
    on the second half's model within a cycle. `second`: the second half's module, whose ports
    lead from the FIFO's own nets to the top level's."""
    if cut_fifo is None or not probes or cut_fifo[0] not in second["cells"]:
        return ["#define CUT_LOOKAHEAD 0"]
    name, words = cut_fifo
    fifo = second["cells"][name]["connections"]
    on_top = {}  # the second half's nets at its ports -> the top level's
    for port, bits in halves[1]["connections"].items():
        on_top.update(zip(second["ports"][port]["bits"], bits))
    valid, ready = on_top.get(fifo["s__valid"][0]), on_top.get(fifo["s__ready"][0])
    out_valid, out_ready = probes[CUT_FIFO_OUT]
    from_second = {net for port, bits in halves[0]["connections"].items()
                   if halves[0]["port_directions"][port] == "input" for net in bits if driven.get(net, (0,))[0] == 1}
    if None in (valid, ready) or from_second != {ready} or driven.get(valid, (1,))[0] != 0 or \
            any(drivers.get(net, (0,))[0] != 1 for net in (out_valid, out_ready)):
        return ["#define CUT_LOOKAHEAD 0"]

    def bit(net):
        _, port, index = drivers[net]
        return f"port_bit(m.{verilator_spelling(port)}, {index})"

    return ["#define CUT_LOOKAHEAD 1",
            f"static const uint64_t CUT_FIFO_WORDS = {words};",
            f"static const int CUT_VALID_BIT = {driven[valid][1]};  // in the first half's publication",
            f"static const int CUT_READY_BIT = {driven[ready][1]};  // in the second half's",
            f"static bool cut_fifo_out_fire(const VPart1& m) {{ return {bit(out_valid)} && {bit(out_ready)}; }}"]


def _gather(target: str, bits: list, half, driven: dict, top_inputs: dict, published: bool = False) -> str:
    """`target` set from its bits' sources, as runs of consecutive bits: another half's
    publication, a top-level input, a constant."""
    words = -(-len(bits) // 32)
    runs = []  # (source expression, source bit, target bit, length)
    for i, net in enumerate(bits):
        if isinstance(net, str):
            source = ("const", 1 if net == "1" else 0)
        elif net in driven:
            k, bit = driven[net]
            source = (f"published[{k}]" if published else ("self" if k == half else "other"), bit)
        elif net in top_inputs:
            port, bit = top_inputs[net]
            source = (f"top.{verilator_spelling(port)}", bit)
        else:
            source = ("const", 0)  # undriven: Verilator's x-initial fast gives 0
        if runs and runs[-1][0] == source[0] and source[0] != "const" and runs[-1][1] + runs[-1][3] == source[1] \
                and runs[-1][2] + runs[-1][3] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2], runs[-1][3] + 1)
        elif runs and source[0] == "const" and runs[-1][0] == "const" and runs[-1][1] == source[1] \
                and runs[-1][2] + runs[-1][3] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2], runs[-1][3] + 1)
        else:
            runs.append((source[0], source[1], i, 1))
    parts = [f"{{ uint32_t v[{words}] = {{}};"]
    for source, at, to, length in runs:
        if source == "self":
            raise ValueError("a half's input driven by itself")
        if source == "const":
            if at:
                parts.append(f"set_bits(v, {to}, {length});")
        elif source.startswith("top."):
            parts.append(f"{{ uint32_t s[{max(1, -(-(at + length) // 32))}]; get_port({source}, s, "
                         f"{max(1, -(-(at + length) // 32))}); copy_bits(v, {to}, s, {at}, {length}); }}")
        else:
            parts.append(f"copy_bits(v, {to}, {source}, {at}, {length});")
    parts.append(f"set_port({target}, v, {words}); }}")
    return "    " + " ".join(parts)


def verilator_spelling(name: str) -> str:
    """Verilator's C++ name of a Verilog name: `s__payload$282` -> `s___05Fpayload__024282` (an
    underscore after an underscore, and characters C++ names cannot hold, become `__0` + hex)."""
    spelt = []
    for index, ch in enumerate(name):
        plain = ch.isalnum() or (ch == "_" and (index == 0 or name[index - 1] != "_"))
        spelt.append(ch if plain else f"__0{ord(ch):X}")
    return "".join(spelt)


def _ctype(width: int) -> str:
    if width <= 8:
        return "CData"
    if width <= 16:
        return "SData"
    if width <= 32:
        return "IData"
    if width <= 64:
        return "QData"
    return f"VlWide<{-(-width // 32)}>"
