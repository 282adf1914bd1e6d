"""Where rtlsim's time goes: Verilator instructions per simulated cycle, per layer.

usage: python benchmarks/profile_layers.py MODEL.onnx [--target-ii N] [--frames N] [--layers NAME ...]

Each layer is compiled alone (its core between the top's register slices, as in the
whole design) and run at full rate on random frames under callgrind. Instructions are
counted, not timed, so the numbers repeat exactly whatever else the machine does. The
marginal cost of a cycle is (Ir(2n frames) - Ir(n frames)) / (cycles(2n) - cycles(n)),
which removes process start-up and ROM initialisation. The whole design is measured the
same way; its cost minus the layers' sum is the FIFOs, width converters and the top.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def instructions(command: list[str], workdir: Path) -> int:
    out = workdir / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                   check=True, capture_output=True)
    text = out.read_text(errors="replace")
    return int(re.search(r"^summary: (\d+)", text, re.M).group(1))


def cycles_and_instructions(network, verilog: str, frames: int, seed: int = 0) -> tuple[int, int]:
    from finn_rtl.cores.accelerator import PortGeometry
    from finn_rtl.sim import verilator
    from finn_rtl.sim.rtlsim import pack_beats

    design = verilator.compile_verilog(verilog, network.name, cxx_opt=verilator.FAST_SIM)
    top = PortGeometry.of(network)
    rng = np.random.default_rng(seed)
    qtype = network.input_type
    x = rng.integers(qtype.min, qtype.max + 1, size=(frames, network.in_elements))
    words = pack_beats(x, qtype, top.in_elements_per_beat, top.in_width)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        words[:0].tofile(tmp / "none")
        result = []
        for count in (frames // 2, frames):
            np.ascontiguousarray(words[:count * top.in_beats_per_frame], dtype="<u4").tofile(tmp / "in.bin")
            command = [str(design.executable), str(words.shape[1]), str(top.in_beats_per_frame),
                       str(verilator.words_per_beat(top.out_width)), str(top.out_beats_per_frame), str(count),
                       str(tmp / "in.bin"), str(tmp / "out.bin"), str(tmp / "stats.txt"), "100", "100", "1",
                       str(max(10_000, 4 * network.analytic_ii))]
            ir = instructions(command, tmp)
            cycles = int((tmp / "stats.txt").read_text().split()[1])
            result.append((cycles, ir))
    (c0, i0), (c1, i1) = result
    return c1 - c0, i1 - i0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--target-ii", type=int)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--layers", nargs="*", help="only these layers (default: all, and the whole design)")
    parser.add_argument("--whole", action="store_true", help="only the whole design")
    args = parser.parse_args()

    from finn_rtl.cores.accelerator import to_verilog
    from finn_rtl.flow import build
    from finn_rtl.graph.specs import NetworkSpec, OutputSpec

    with tempfile.TemporaryDirectory() as out:
        network = build(args.model, Path(out) / "build", target_ii=args.target_ii).network
    print(f"{network.name}: II {network.analytic_ii}, {len(network.layers)} layers")
    print(f"{'layer':24} {'kind':18} {'PE':>4} {'SIMD':>4} {'in bits':>8} {'instr/cycle':>12}")
    total = 0.0
    for layer in network.layers:
        if args.whole or (args.layers and layer.name not in args.layers):
            continue
        alone = NetworkSpec(name="profiled", layers=(layer,), input_type=layer.input_type,
                            output=OutputSpec(scale=1.0, offset=0.0))
        cycles, ir = cycles_and_instructions(alone, to_verilog(alone), args.frames)
        total += ir / cycles
        print(f"{layer.name:24} {type(layer).__name__:18} {getattr(layer, 'pe', ''):>4} "
              f"{getattr(layer, 'simd', ''):>4} {layer.in_lanes * layer.input_type.bits:>8} "
              f"{ir / cycles:12.0f}", flush=True)
    if not args.layers:
        whole = dataclasses.replace(network, output=OutputSpec(scale=1.0, offset=0.0))
        cycles, ir = cycles_and_instructions(whole, to_verilog(whole), args.frames)
        if not args.whole:
            print(f"{'sum of layers':43} {total:27.0f}")
        print(f"{'whole design':43} {ir / cycles:27.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
