"""Shell overhead: the accelerator through memory (AcceleratorShell + AXI RAM model, driven by the
host driver through the fake pynq) against the bare accelerator's AXI-stream rtlsim.

usage: python benchmarks/bench_shell.py [--models TFC_1W1A TFC_2W2A] [--board pynq-z2]
Goal (issue 8): steady-state II through memory within 2% of the bare accelerator's at II 64 on a
64-bit port. Cycles come from the shell's own cycle counter (start to done); the steady-state II
is the difference of the 1000- and 100-frame runs over 900 frames, so pipeline fill cancels out.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "platforms")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["TFC_1W1A", "TFC_2W2A"])
    parser.add_argument("--board", default="pynq-z2")
    parser.add_argument("--target-ii", type=int, default=64)
    args = parser.parse_args()

    from test_shell import prepare, run_bench

    from finn_rtl.flow import build, random_inputs, verify
    from finn_rtl.platforms.boards import get_board

    board = get_board(args.board)
    runs = [1, 100, 1000]
    header = (f"{'model':10} {'port':>5} {'bare II':>8} {'shell II':>9} {'II +%':>6} {'bare lat':>9} "
              f"{'1 frame':>8} {'+cycles':>8} {'100 fr/cyc':>10} {'1000 fr/cyc':>11}")
    rows = [header, "-" * len(header)]  # printed at the end, after the simulators' own output
    for model in args.models:
        path = SHARED / "models" / f"{model}.onnx"
        if not path.is_file():
            rows.append(f"{model}: {path} is not available")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            b = build(path, tmp / "out", target_ii=args.target_ii)
            bare = verify(b, random_inputs(b, 200, seed=1))
            files, case = prepare(tmp, b, board.word_bytes, random_inputs(b, 1, seed=2),
                                  throughput_frames=runs, max_frames=max(runs))
            total, failed = run_bench(tmp, files, case, testcase="driver_end_to_end")
            if failed:
                print(f"{model}: the shell bench failed")
                return 1
            cycles = {r["frames"]: r["cycles"] for r in json.loads((tmp / "throughput.json").read_text())}
        steady = (cycles[1000] - cycles[100]) / 900
        rows.append(f"{model:10} {board.memory_bits:>5} {bare['measured_ii_cycles']:>8.2f} {steady:>9.2f} "
              f"{100 * (steady / bare['measured_ii_cycles'] - 1):>6.2f} {bare['latency_cycles']:>9} "
              f"{cycles[1]:>8} {cycles[1] - bare['latency_cycles']:>8} {cycles[100] / 100:>10.2f} "
              f"{cycles[1000] / 1000:>11.2f}")
    print("\n".join(rows))
    print(f"\n{board.name}: {board.memory_bits}-bit memory port, no AXI stalls; '+cycles' is the shell's extra "
          "latency for one frame (memory reads, gearboxes, write and its response).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
