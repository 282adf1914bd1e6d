"""Where rtlsim's time goes: Verilator instructions per simulated cycle, per layer.

usage: python benchmarks/profile_layers.py MODEL.onnx [--target-ii N] [--frames N] [--signals LAYER ...]
       python benchmarks/profile_layers.py MODEL.onnx --alone [--layers NAME ...]
       python benchmarks/profile_layers.py --build BUILD_DIR --sample [--frames 1] [--signals LAYER ...]

Instructions are counted with callgrind, not timed, so the numbers repeat exactly whatever
else the machine does (wall-clock rates here vary by +-30%).

Default: the whole design is compiled once with debug information and run under callgrind;
every executed instruction is mapped back (through inlined Verilator helpers, `addr2line -i`)
to the generated C++ statement it belongs to, and the statement to the layer, FIFO or width
converter whose signal it assigns. `--signals LAYER` also lists that layer's costliest signals
(digits folded, so `dot3_x1_w0_2` and `dot7_x1_w0_2` count together); `--signals top` those of
the top level (Verilator's scheduling and the statements no layer owns).

`--sample`: time shares from `perf record` samples (cpu-clock) attributed the same way, at the
simulator's full speed: what the README's MobileNet-v1 breakdown was measured with (`--build` of
its build directory, 1 frame, about 5 minutes with the debug build).

`--alone`: each layer compiled alone between the top's register slices; the marginal cost of a
cycle is (Ir(n frames) - Ir(n/2 frames)) / (cycles(n) - cycles(n/2)), which removes process
start-up and ROM initialisation but includes the harness and slices (about 600 per layer).
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stream_command(executable: Path, network, frames: int, workdir: Path, seed: int = 0) -> tuple[list[str], Path]:
    """The harness command line for `frames` random frames at full rate, and its stats file."""
    from finn_rtl.cores.accelerator import PortGeometry
    from finn_rtl.sim import verilator
    from finn_rtl.sim.rtlsim import pack_beats

    top = PortGeometry.of(network)
    qtype = network.input_type
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], (frames, network.in_elements)) if qtype.bipolar else \
        rng.integers(qtype.min, qtype.max + 1, size=(frames, network.in_elements))
    words = pack_beats(x, qtype, top.in_elements_per_beat, top.in_width)
    np.ascontiguousarray(words, dtype="<u4").tofile(workdir / "in.bin")
    stats = workdir / "stats.txt"
    return [str(executable), str(words.shape[1]), str(top.in_beats_per_frame),
            str(verilator.words_per_beat(top.out_width)), str(top.out_beats_per_frame), str(frames),
            str(workdir / "in.bin"), str(workdir / "out.bin"), str(stats), "100", "100", "1",
            str(max(10_000, 4 * network.analytic_ii))], stats


def callgrind(command: list[str], out: Path, *extra: str) -> str:
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *extra, *command],
                   check=True, capture_output=True)
    return out.read_text(errors="replace")


def simulated_cycles(stats: Path) -> int:
    return int(stats.read_text().split()[1])


# -- each layer alone --------------------------------------------------------------------
def marginal_cost(network, verilog: str, frames: int) -> float:
    from finn_rtl.sim import verilator

    design = verilator.compile_verilog(verilog, network.name, cxx_opt=verilator.FAST_SIM)
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for count in (max(1, frames // 2), frames):
            command, stats = stream_command(design.executable, network, count, tmp)
            text = callgrind(command, tmp / "callgrind.out")
            points.append((simulated_cycles(stats), int(re.search(r"^summary: (\d+)", text, re.M).group(1))))
    (c0, i0), (c1, i1) = points
    return (i1 - i0) / (c1 - c0)


def profile_alone(network, frames: int, names) -> None:
    from finn_rtl.cores.accelerator import to_verilog
    from finn_rtl.graph.network import NetworkSpec, OutputSpec

    print(f"{'layer':24} {'kind':18} {'PE':>4} {'SIMD':>4} {'in bits':>8} {'instr/cycle':>12}")
    for layer in network.layers:
        if names and layer.name not in names:
            continue
        alone = NetworkSpec(name="profiled", layers=(layer,), input_type=layer.input_type,
                            output=OutputSpec(scale=1.0, offset=0.0))
        cost = marginal_cost(alone, to_verilog(alone), frames)
        print(f"{layer.name:24} {type(layer).__name__:18} {getattr(layer, 'pe', ''):>4} "
              f"{getattr(layer, 'simd', ''):>4} {layer.in_lanes * layer.input_type.bits:>8} {cost:12.0f}",
              flush=True)


# -- the whole design, attributed ----------------------------------------------------------
def build_with_debug_info(verilog: str, top: str, workdir: Path) -> Path:
    from finn_rtl.sim import compiler, verilator

    (workdir / "top.v").write_text(verilog)
    env = verilator.verilator_env()
    defines = f"-DTOP_CLASS=V{top} -DTOP_HEADER='\"V{top}.h\"'"
    subprocess.run([verilator.verilator_bin(), "--cc", "--exe", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                    "--x-assign", "fast", "--x-initial", "fast", "-O3", "--top-module", top, "-CFLAGS", defines,
                    "--Mdir", str(workdir / "obj"), "-o", f"V{top}", str(workdir / "top.v"), str(verilator.HARNESS)],
                   check=True, env=env, capture_output=True)
    subprocess.run(["make", "-s", "-j2", "-C", str(workdir / "obj"), "-f", f"V{top}.mk", "OPT_FAST=-O2 -g",
                    "OPT_SLOW=-O0", "OPT_GLOBAL=-O2 -g", *compiler.make_options()], check=True, env=env,
                   capture_output=True)
    return workdir / "obj" / f"V{top}"


def self_cost_by_address(text: str, binary_name: str) -> collections.Counter:
    """Instruction address -> Ir spent there, from a callgrind profile with --dump-instr=yes,
    for code of the object `binary_name` (calls' inclusive costs are skipped)."""
    cost, objects, current, in_call, address = collections.Counter(), {}, None, False, 0
    for line in text.splitlines():
        match = re.match(r"(c?)ob=\((\d+)\)(?: (.*))?", line)
        if match:
            if match.group(3):
                objects[match.group(2)] = match.group(3)
            if not match.group(1):
                current = objects[match.group(2)]
            continue
        if line.startswith("calls="):
            in_call = True
            continue
        if line[:1] in ("+", "-", "*") or line.startswith("0x"):
            parts = line.split()
            if parts[0].startswith("0x"):
                address = int(parts[0], 16)
            elif parts[0] != "*":
                address += int(parts[0], 0)
            if not in_call and current and current.endswith(binary_name) and len(parts) > 1:
                cost[address] += int(parts[1])
            in_call = False
    return cost


ASSIGNED = re.compile(r"^\s+(?:vlSelfRef\.|vlSelf->)?(\w+__DOT__\w+|__V\w+)")


def statement_owner(lines: list[str], number: int) -> str:
    """The signal assigned by the statement around `lines[number - 1]` (the nearest line above
    that starts with an assignment target)."""
    for index in range(min(number, len(lines)) - 1, -1, -1):
        match = ASSIGNED.match(lines[index])
        if match:
            return match.group(1)
        if lines[index].startswith(("void ", "VL_ATTR")):
            break
    return "?"


def perf_cost_by_address(command: list[str], out: Path, binary: Path) -> collections.Counter:
    """Instruction address (in the binary) -> cpu-clock samples there, from `perf record` of the
    command: time, not instruction counts, so that stalls (instruction fetch, branch misses)
    count; it runs at full speed, so a whole MobileNet-v1 frame takes seconds, not hours."""
    subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", str(out), *command], check=True, capture_output=True)
    mmaps = subprocess.run(["perf", "script", "-i", str(out), "--show-mmap-events"], capture_output=True,
                           text=True).stdout
    mapped = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+) [^\]]*\]: r-xp \S*" + re.escape(binary.name),
                       mmaps)
    base = int(mapped.group(1), 16) - int(mapped.group(3), 16)  # a position-independent executable
    samples = subprocess.run(["perf", "script", "-i", str(out), "-F", "ip,dso"], capture_output=True,
                             text=True).stdout
    cost = collections.Counter()
    for line in samples.splitlines():
        parts = line.split()
        if len(parts) >= 2 and binary.name in parts[1]:
            cost[int(parts[0], 16) - base] += 1
    return cost


OUTPUT_PORTS = ("m__payload", "m__valid", "s__ready", "out_valid")  # a stream stage's outputs


def stream_wire_drivers(verilog: str, top: str) -> dict[str, str]:
    """Each top-level stream wire (in Verilator's C++ spelling) -> the instance whose output port
    drives it, from the datapath's port connections (`.m__payload(\\s__payload$282 )`)."""
    from finn_rtl.sim.partition import verilog_modules, verilator_spelling

    drivers, instance = {}, None
    for line in verilog_modules(verilog).get(f"{top}.datapath", "").splitlines():
        opened = re.match(r"^\s+\S+\s+(\S+)\s+\($", line)
        if opened:
            instance = opened.group(1).lstrip("\\")
        connection = re.match(r"^\s+\.(\w+)\((\\?\S+)\s*\),?$", line)
        if instance and connection and connection.group(1) in OUTPUT_PORTS:
            drivers[verilator_spelling(connection.group(2).lstrip("\\"))] = instance
    return drivers


def profile_whole(network, frames: int, signal_layers, sample: bool = False) -> None:
    from finn_rtl.cores.accelerator import to_verilog

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        verilog = to_verilog(network)
        executable = build_with_debug_info(verilog, network.name, tmp)
        command, stats = stream_command(executable, network, frames, tmp)
        if sample:
            cost = perf_cost_by_address(command, tmp / "perf.data", executable)
        else:
            text = callgrind(command, tmp / "callgrind.out", "--dump-instr=yes", "--dump-line=no")
            cost = self_cost_by_address(text, executable.name)
        cycles = simulated_cycles(stats)
        addresses = sorted(cost)
        lines = subprocess.run(["addr2line", "-i", "-a", "-e", str(executable)], capture_output=True, text=True,
                               input="\n".join(hex(a) for a in addresses)).stdout.splitlines()
        outermost, address = {}, None
        for line in lines:  # "0xADDR", then the inlining chain, innermost first
            if line.startswith("0x"):
                address = int(line, 16)
            elif line.strip():
                outermost[address] = line.strip()
        sources: dict[str, list[str]] = {}
        by_part, by_signal = collections.Counter(), collections.Counter()
        prefix = f"{network.name}__DOT__datapath__DOT__"
        driver = stream_wire_drivers(verilog, network.name)
        for address, ir in cost.items():
            file, _, number = outermost.get(address, "?:0").rpartition(":")
            number = re.match(r"\d+", number)
            if "/obj/" not in file:
                part, signal = "harness and Verilator runtime", "-"
            else:
                if file not in sources:
                    sources[file] = Path(file).read_text().splitlines() if Path(file).is_file() else []
                signal = statement_owner(sources[file], int(number.group(0)) if number else 0)
                # `__Vdly__X`/`__VdlySet__X`: X's non-blocking assignment, part of X's owner's cost
                signal = re.sub(r"^__Vdly(?:Set)?__", "", signal)
                inside = re.match(rf"{re.escape(prefix)}([A-Za-z0-9_]+?)__DOT__(\w+)", signal)
                wire = re.match(rf"{re.escape(prefix)}(\w+)$", signal)
                if inside:
                    part = inside.group(1)
                    signal = f"{part}: {re.sub(r'[0-9]+', '#', inside.group(2))}"
                elif wire and wire.group(1) in driver:
                    # a stream wire between two stages: Verilator computes it with the logic of the
                    # instance whose output drives it (the modules are inlined into one)
                    part = driver[wire.group(1)]
                    signal = f"{part}: output {re.sub(r'[0-9]+', '#', wire.group(1))}"
                else:
                    part = "top level (scheduling, glue)"
                    signal = f"top: {re.sub(r'[0-9]+', '#', signal)}"
            by_part[part] += ir
            by_signal[signal] += ir
    total = sum(by_part.values())
    kinds = {layer.name: type(layer).__name__ for layer in network.layers}
    if sample:
        print(f"{network.name}: II {network.analytic_ii}, {frames} frames, {cycles} cycles, {total} samples "
              "(cpu-clock, perf)")
        by_kind = collections.Counter()
        for part, n in by_part.items():
            glue = "FIFO" if part.startswith("fifo") else "width converter" if part.startswith("dwc") else part
            by_kind[kinds.get(part, glue)] += n
        for kind, n in by_kind.most_common(12):
            print(f"  {kind:50} {100 * n / total:5.1f}%")
        print(f"{'part':50} {'kind':18} {'share':>6}")
        for part, n in by_part.most_common(30):
            print(f"{part:50} {kinds.get(part, ''):18} {100 * n / total:5.1f}%")
    else:
        print(f"{network.name}: II {network.analytic_ii}, {frames} frames, {cycles} cycles, "
              f"{total / cycles:.0f} instructions per cycle")
        print(f"{'part':50} {'kind':18} {'instr/cycle':>12} {'share':>6}")
        for part, ir in by_part.most_common():
            if ir / cycles >= 20:
                print(f"{part:50} {kinds.get(part, ''):18} {ir / cycles:12.0f} {100 * ir / total:5.1f}%")
    for layer in signal_layers or []:
        print(f"\n{layer}: costliest signals")
        rows = [(s, ir) for s, ir in by_signal.items() if s.startswith(f"{layer}: ")]
        for signal, ir in sorted(rows, key=lambda r: -r[1])[:12]:
            print(f"  {signal[len(layer) + 2:]:48} " + (f"{100 * ir / total:11.1f}%" if sample else f"{ir / cycles:12.0f}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="QONNX model (or --build)")
    parser.add_argument("--target-ii", type=int)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--clock-mhz", type=float, default=200.0, help="the clock the cores are pipelined for")
    parser.add_argument("--alone", action="store_true", help="compile and measure each layer alone")
    parser.add_argument("--layers", nargs="*", help="with --alone: only these layers")
    parser.add_argument("--signals", nargs="*", help="list the costliest signals of these layers")
    parser.add_argument("--sample", action="store_true",
                        help="time shares from perf samples instead of callgrind's instruction counts "
                             "(fast enough for ImageNet networks; needs `perf`)")
    parser.add_argument("--build", help="profile this build directory's network (its folding) instead of "
                                        "building the model")
    args = parser.parse_args()

    from finn_rtl.flow import build, load_build

    if args.build:
        network = load_build(args.build).network
    else:
        with tempfile.TemporaryDirectory() as out:
            network = build(args.model, Path(out) / "build", target_ii=args.target_ii,
                            clock_mhz=args.clock_mhz).network
    if args.alone:
        profile_alone(network, max(2, args.frames), args.layers)
    else:
        profile_whole(network, args.frames, args.signals, args.sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
