"""`finn-rtl deploy`: from a build directory to everything a board needs.

Writes the shell's Verilog, the host driver and its JSON description, and (see vivado.py) the
Vivado/Vitis scripts that package the IP and build the bitfile or xclbin.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import status
from .boards import AlveoBoard, Board
from .host import check_host_input, driver_description
from ..graph.errors import CompileError
from ..graph.weight_map import WeightMap
from .shell import control_bytes, shell_verilog

DRIVER = Path(__file__).with_name("driver.py")


def design_id(accelerator_verilog: str) -> int:
    """The first 32 bits of the accelerator Verilog's SHA-256: the driver checks it on the board."""
    return int(hashlib.sha256(accelerator_verilog.encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class ShellFiles:
    out_dir: Path
    kernel: str  # the shell's module name
    verilog: Path
    description: Path
    driver: Path
    description_data: dict


def write_shell(b, out_dir, word_bytes: int, *, clock_mhz: float, platform: str, base_name: str,
                memory_bank: str | None = None, check_inputs: np.ndarray | None = None) -> ShellFiles:
    """Shell Verilog, driver and driver description for build `b` in `out_dir`. The description
    is named `<base_name>.json`, beside the `<base_name>.bit`/`.xclbin` the driver will load."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kernel = f"{b.network.name}_shell"
    ident = design_id(b.verilog)
    # Vivado names a block-design cell after the IP with a _0 suffix; Vitis names compute units _1.
    ip_name = f"{kernel}_1" if platform == "alveo" else f"{kernel}_0"
    desc = driver_description(b, word_bytes, design_id=ident, ip_name=ip_name, platform=platform,
                              clock_mhz=clock_mhz, memory_bank=memory_bank)
    from ..flow import random_inputs

    samples = random_inputs(b, 256, seed=7)
    check_host_input(b, desc, samples if check_inputs is None else np.concatenate([samples, check_inputs]))
    verilog = out / f"{kernel}.v"
    verilog.write_text(shell_verilog(b.network, word_bytes, ident, name=kernel, accelerator_verilog=b.verilog))
    description = out / f"{base_name}.json"
    description.write_text(json.dumps(desc, indent=1) + "\n")
    driver = out / "driver.py"
    shutil.copyfile(DRIVER, driver)
    if desc["weights"] is not None:  # beside the bitfile: the driver loads them before its first run
        shutil.copytree(Path(b.out_dir) / desc["weights"]["directory"], out / desc["weights"]["directory"],
                        dirs_exist_ok=True)
    return ShellFiles(out, kernel, verilog, description, driver, desc)


def board_platform(board: Board) -> str:
    return "alveo" if isinstance(board, AlveoBoard) else "zynq"


def _check_scripts(out: Path, written: list, names, board: Board, clock_mhz: float, stream_only: bool) -> list[str]:
    """Run every generated Tcl script against the Vivado stub, in a scratch copy of the files
    deploy wrote (not of earlier Vivado projects in `out`)."""
    import tempfile

    from .vivado_stub import VivadoStub, run_script

    try:
        import tkinter  # noqa: F401
    except ImportError:
        return ["not checked: this Python has no tkinter (Tcl)"]
    scripts = ["package_ip.tcl"]
    if not stream_only:
        scripts.append("package_xo.tcl" if isinstance(board, AlveoBoard) else "block_design.tcl")
    scripts.append("synth_ooc.tcl")
    with tempfile.TemporaryDirectory(prefix="finn-rtl-tclcheck-") as scratch:
        for name in written:
            shutil.copyfile(out / name, Path(scratch) / name)
        checked = []
        for script in scripts:
            calls = run_script(Path(scratch) / script, VivadoStub(board.part, clock_mhz))
            checked.append(f"{script}: {len(calls)} Vivado commands checked")
    if isinstance(board, AlveoBoard) and not stream_only:
        checked.append(_check_link_config(out / "link.cfg", names, board, clock_mhz))
    return checked


def _check_link_config(path: Path, names, board: AlveoBoard, clock_mhz: float) -> str:
    from ..graph.errors import CompileError

    text = path.read_text()
    frequency = re.search(r"^kernel_frequency=([0-9.]+)$", text, re.M)
    if frequency is None or float(frequency.group(1)) != clock_mhz:
        raise CompileError(f"{path}: the kernel clock is {frequency.group(1) if frequency else 'not set'} MHz, "
                           f"requested {clock_mhz:g} MHz")
    instance = f"{names.kernel}_1"
    if f"nk={names.kernel}:1:{instance}" not in text or f"sp={instance}.m_axi_gmem:{board.memory}" not in text:
        raise CompileError(f"{path}: the kernel instance or its memory bank does not match {board.name}")
    if f"platform={board.platform}" not in text:
        raise CompileError(f"{path}: platform is not {board.platform}")
    return f"link.cfg: {instance}.m_axi_gmem -> {board.memory} on {board.platform}"


@dataclass(frozen=True)
class Deployment:
    out_dir: Path
    board: Board
    clock_mhz: float
    files: list
    checks: list
    tools_found: bool
    ran: dict | None  # the Vivado/Vitis run's outcome, when the tools were found


def shell_synthesis(b, board: Board) -> dict:
    """The memory shell's own logic at the board's memory word, synthesized (cached): a unit of
    its own (`shell.shell_unit`) for the timing and fit checks."""
    from ..resources.synthesis import synthesize, yosys_version
    from .shell import shell_unit

    return synthesize(*shell_unit(b.network, board.word_bytes), yosys_version())


def check_timing(b, board: Board, clock_mhz: float, shell: dict | None = None) -> dict:
    """The build's estimated Fmax on the board's device family (`report.json` timing, from
    synthesis; synthesized now, cached, if the build was not), and with `shell` (its
    `shell_synthesis`) the memory shell's; a clock above the slowest is refused in one line
    naming the slowest unit and the fastest clock that fits."""
    import math

    from ..flow import synthesize_build
    from ..graph.errors import CompileError
    from .shell import SHELL_UNIT

    if not b.report.get("timing"):
        synthesize_build(b)
    family = dict(b.report["timing"]["families"][board.timing_family])
    if shell is not None:
        path = shell["timing"][board.timing_family]
        family["shell_fmax_mhz"] = path["fmax_mhz"]
        if family["fmax_mhz"] is None or path["fmax_mhz"] < family["fmax_mhz"]:
            family.update(fmax_mhz=path["fmax_mhz"], slowest_unit=SHELL_UNIT)
    fmax, slowest = family["fmax_mhz"], family["slowest_unit"]
    if fmax is not None and fmax < clock_mhz:
        fits = math.floor(fmax)
        raise CompileError(
            f"--clock-mhz {clock_mhz:g} is out of reach on {board.name}: the slowest unit, {slowest}, is estimated "
            f"at {fmax:g} MHz on {family['family']}; deploy at --clock-mhz {fits} or lower, build again with "
            f"--clock-mhz {clock_mhz:g} so that the cores are pipelined for it, or pass --ignore-timing")
    return family


def check_fit(b, board: Board, shell: dict | None = None) -> dict:
    """The build's resources on the board's device: synthesis's count where the build was
    synthesized, else the estimate, with the memory shell's (its `shell_synthesis`) when it has
    one. A design that exceeds the device is refused in one line naming each resource it exceeds
    and by how much: hours into Vivado is too late to learn it."""
    from ..graph.errors import CompileError
    from ..resources.planner import device_use

    resources = b.report["resources"]
    source = "synthesis" if resources.get("synthesis") else "estimate"
    total = dict(resources[source]["total"])
    if shell is not None:
        for column, count in shell["resources"].items():
            total[column] = total.get(column, 0) + count
    used = device_use(total)
    capacity = {"LUT": board.capacity.lut, "FF": board.capacity.ff, "BRAM36": board.capacity.bram36,
                "URAM": board.capacity.uram, "DSP": board.capacity.dsp}
    over = {column: used[column] - capacity[column] for column in used if used[column] > capacity[column]}
    fit = {"source": source, "shell_included": shell is not None, "used": used, "capacity": capacity,
           "share": {column: round(used[column] / capacity[column], 4) for column in used if capacity[column]},
           "exceeds": {column: round(excess, 1) for column, excess in over.items()}}
    if over:
        parts = ", ".join(f"{column} {used[column]:,.0f} of {capacity[column]:,} (+{excess:,.0f}, "
                          f"{used[column] / capacity[column]:.0%})" for column, excess in over.items())
        raise CompileError(f"{b.network.name} does not fit {board.name} ({board.part}): {parts} by the {source}"
                           f"{' with the memory shell' if shell is not None else ''}; build again with --board {board.name} "
                           f"(it folds to fit) or with more folding, or pass --ignore-fit")
    return fit


def deploy(build_dir, board: Board, *, clock_mhz: float | None = None, out_dir=None, stream_only: bool = False,
           run_tools: bool = True, timeout: float = 6 * 3600, log=print, ignore_timing: bool = False,
           ignore_fit: bool = False) -> Deployment:
    """Everything `board` needs for the build in `build_dir`; runs Vivado/Vitis when on PATH. A
    clock the design is estimated not to reach is refused unless `ignore_timing`, a design that
    exceeds the device unless `ignore_fit`."""
    from ..flow import load_build
    from .vivado import DeployNames, project_files

    b = load_build(build_dir)
    if stream_only and WeightMap.of(b.network):
        raise CompileError(f"{b.network.name} has weights written at run time "
                           f"({', '.join(m.key for m in WeightMap.of(b.network).memories)}), which only the memory "
                           f"shell can write: deploy without --shell none, or build without runtime_writeable_weights")
    clock_mhz = board.default_mhz if clock_mhz is None else clock_mhz
    board.check_clock(clock_mhz)
    shell = None if stream_only or ignore_timing and ignore_fit else shell_synthesis(b, board)
    timing = None if ignore_timing else check_timing(b, board, clock_mhz, shell)
    fit = None if ignore_fit else check_fit(b, board, shell)
    out = Path(out_dir) if out_dir is not None else Path(build_dir) / f"deploy_{board.name}"
    out.mkdir(parents=True, exist_ok=True)
    name = b.network.name
    written = []
    if stream_only:
        kernel = name
    else:
        files = write_shell(b, out, board.word_bytes, clock_mhz=clock_mhz, platform=board_platform(board),
                            base_name=name, memory_bank=getattr(board, "memory", None))
        kernel = files.kernel
        written += [files.verilog.name, files.description.name, files.driver.name]
    shutil.copyfile(b.verilog_path, out / b.verilog_path.name)
    written.append(b.verilog_path.name)
    names = DeployNames(kernel, name, name)
    for file_name, text in project_files(names, board, clock_mhz, stream_only, control_bytes(b.network)).items():
        (out / file_name).write_text(text)
        written.append(file_name)
    (out / "build.sh").chmod(0o755)
    checks = _check_scripts(out, written, names, board, clock_mhz, stream_only)
    tools = ["vivado"] + (["v++"] if isinstance(board, AlveoBoard) and not stream_only else [])
    found = all(shutil.which(tool) for tool in tools)
    ran = run_build(out, names, board, stream_only, timeout, log) if found and run_tools else None
    b.report.setdefault("deploy", {})[board.name] = {
        "directory": str(out), "clock_mhz": clock_mhz, "shell": "none" if stream_only else "memory",
        "memory_bits": board.memory_bits, "files": written, "script_checks": checks,
        "estimated_fmax_mhz": None if timing is None else timing["fmax_mhz"], "timing_checked": timing is not None,
        "slowest_unit": None if timing is None else timing["slowest_unit"],
        "shell_fmax_mhz": None if timing is None else timing.get("shell_fmax_mhz"),
        "fit": fit, "fit_checked": fit is not None,
        "built": ran, "build_command": None if ran else f"bash {out / 'build.sh'}"}
    b.write_report()
    return Deployment(out, board, clock_mhz, written, checks, found, ran)


def run_build(out: Path, names, board: Board, stream_only: bool, timeout: float, log) -> dict:
    """Run the build steps with a timeout, report progress, check the outcome and timing."""
    import subprocess
    import time

    from ..graph.errors import CompileError
    from .vivado import build_steps

    result = {"steps": []}
    deadline = time.monotonic() + timeout
    for step, command, log_file in build_steps(names, board, stream_only):
        start = time.monotonic()
        log(f"  {step}: running {' '.join(command)} (log {out / log_file})")
        try:
            with status(f"{step}: {Path(command[0]).name} (log {log_file})"):
                proc = subprocess.run(command, cwd=out, capture_output=True, text=True,
                                      timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise CompileError(f"{step} did not finish within the {timeout:.0f} s timeout; see {out / log_file}") \
                from None
        seconds = time.monotonic() - start
        output = proc.stdout + proc.stderr
        log_path = out / log_file
        if log_path.is_file():
            output += log_path.read_text(errors="replace")
        errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
        if proc.returncode != 0 or errors:
            first = "\n    ".join(errors[:5]) or f"exit status {proc.returncode}"
            raise CompileError(f"{step} failed after {seconds:.0f} s:\n    {first}\n  full log: {log_path}")
        wns = [float(value) for value in re.findall(r"^WNS (-?[0-9.]+)", output, re.M)]
        result["steps"].append({"step": step, "seconds": round(seconds, 1), **({"wns_ns": wns[-1]} if wns else {})})
        log(f"  {step}: done in {seconds:.0f} s" + (f", WNS {wns[-1]:+.3f} ns" if wns else ""))
        if wns and wns[-1] < 0:
            raise CompileError(f"timing not met: WNS {wns[-1]:.3f} ns at {board.name}'s requested clock; "
                               f"deploy again with a lower --clock-mhz")
    products = [f"{names.base}.xclbin"] if isinstance(board, AlveoBoard) else [f"{names.base}.bit", f"{names.base}.hwh"]
    if not stream_only:
        missing = [p for p in products if not (out / p).is_file()]
        if missing:
            raise CompileError(f"the build finished but did not write {', '.join(missing)} in {out}")
        result["products"] = products
    return result
