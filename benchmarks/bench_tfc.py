"""Speed table for the TFC MNIST models: build, Verilator build, rtlsim rate, II and latency.

usage: python benchmarks/bench_tfc.py [--frames N] [--models TFC_1W1A TFC_2W2A]
Targets (issue 2): build < 10 s to Verilog; rtlsim >= 1 M cycles/s; 10k-image verify < 60 s
after Verilator compilation. Verilator builds are cached; the first run of a design pays for it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


SHARED = Path(__file__).resolve().parents[2] / "shared"
# Each folding is (explicit PE/SIMD per layer, target II for fold_for_target).
FOLDINGS = {
    "unfolded": (None, None),
    # Fewest lanes that reach 64 cycles per frame: what `finn-rtl build --target-ii 64` picks.
    "II<=64": (None, 64),
    # Every layer wide (64 cycles is only the first layer's bottleneck): shows how rtlsim speed
    # falls with lanes evaluated per cycle.
    "wide": ({"MatMul_0": {"PE": 16, "SIMD": 49}, "MatMul_1": {"PE": 16, "SIMD": 64},
              "MatMul_2": {"PE": 16, "SIMD": 64}, "MatMul_3": {"PE": 10, "SIMD": 64}}, None),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--models", nargs="+", default=["TFC_1W1A", "TFC_2W2A"])
    parser.add_argument("--foldings", nargs="+", default=["unfolded", "II<=64"], choices=list(FOLDINGS))
    args = parser.parse_args()
    data = SHARED / "data" / "mnist_test.npz"
    if not data.is_file():
        print(f"{data} not found", file=sys.stderr)
        return 1
    from finn_rtl.flow import build, load_inputs
    from table import header, measure, row

    x, y = load_inputs(data, count=args.frames)
    x = x.reshape(-1, 1, 28, 28)
    keys = [("model", 10), ("folding", 9)]
    print(header(keys))
    for model in args.models:
        for name in args.foldings:
            with tempfile.TemporaryDirectory() as out:
                folding, target_ii = FOLDINGS[name]
                b = build(SHARED / "models" / f"{model}.onnx", out, folding=folding, target_ii=target_ii)
                print(row(keys, [model, name], measure(b, x, y)), flush=True)
    print(f"\n{os.cpu_count()} cores; rtlsim runs one Verilator process per core; "
          "Verilator s is 0 when the build was cached.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
