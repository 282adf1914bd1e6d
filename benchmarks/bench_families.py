"""Every model family finn-rtl ingests, built and verified bit-exact in rtlsim: build time, II,
latency, rtlsim speed.

usage: python benchmarks/bench_families.py [--frames N] [--families NAME ...]
Seeded stand-ins (tests/support/modelgen.py, tests/support/finngen.py) for the QONNX-zoo and FINN families, plus
the real files in ../shared when present (TFC_1W1A, the Brevitas-exported CNV_2W2A_trained).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT / "tests"), str(Path(__file__).parent)]


def families(frames: int):
    """name -> (model or path, target II, make inputs(count) -> (x, y or None))."""
    import numpy as np
    from support.finngen import finn_inputs, make_finn_mlp
    from support.modelgen import OP_COVERAGE, ZOO_STYLE, make_mlp, random_inputs

    def seeded(cfg, seed=21):
        return make_mlp(cfg, seed=seed), lambda n: (random_inputs(cfg, n, seed=22), None)

    table = {
        "jet-tagging (Softmax head)": (*seeded(ZOO_STYLE["jet-tagging"]), 64),
        "network-intrusion (typed bipolar (x+1)/2)": (*seeded(ZOO_STYLE["network-intrusion"]), 64),
        "kws-mlp (490-lane input)": (*seeded(ZOO_STYLE["kws-mlp"]), 128),
        "FINN dialect (MultiThreshold, TopK)": (make_finn_mlp(seed=5, widths=(64, 64, 10), in_features=64),
                                                lambda n: (finn_inputs(n, in_features=64), None), 64),
        "old export (Unsqueeze-BN-Squeeze, opset 11)": (*seeded(OP_COVERAGE["bn-unsqueezed-opset11"]), 16),
        "Gemm without bias": (*seeded(OP_COVERAGE["gemm-without-bias"]), 8),
    }
    if (SHARED / "models" / "TFC_1W1A.onnx").is_file():
        mnist = np.load(SHARED / "data" / "mnist_test.npz")
        table["TFC_1W1A (zoo file)"] = (SHARED / "models" / "TFC_1W1A.onnx", lambda n: (
            (mnist["x"][:n].astype(np.float32) / 255).reshape(-1, 1, 28, 28), mnist["y"][:n]), 64)
    if (SHARED / "models" / "CNV_2W2A_trained.onnx").is_file():
        cifar = np.load(SHARED / "data" / "cifar10_test_jpeg.npz")
        held_out = np.array([c * 1000 + i for c in range(10) for i in range(10)])
        table["CNV_2W2A trained (Brevitas file)"] = (SHARED / "models" / "CNV_2W2A_trained.onnx", lambda n: (
            (cifar["x"][held_out].astype(np.float32) / 255).transpose(0, 3, 1, 2).copy(), cifar["y"][held_out]),
            40000)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--families", nargs="+", help="names (prefixes) to run")
    args = parser.parse_args()
    import onnx
    from table import header, measure, row

    from finn_rtl.flow import build

    keys = [("family", 44), ("frames", 6)]
    lines = [header(keys)]
    for name, (model, inputs, target) in families(args.frames).items():
        if args.families and not any(name.startswith(prefix) for prefix in args.families):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = model
            if isinstance(model, onnx.ModelProto):
                path = Path(tmp) / "model.onnx"
                onnx.save(model, str(path))
            b = build(path, Path(tmp) / "out", target_ii=target)
            x, y = inputs(args.frames)
            lines.append(row(keys, [name, len(x)], measure(b, x, y)))
            print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))
    print(f"\n{os.cpu_count()} cores; top-1 is nan where the inputs are random; Verilator s is 0 when cached.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
