"""ImageNet-scale networks end to end: time to Verilog, peak memory, Verilog size, Verilator build,
rtlsim speed, bit-exactness against qonnx, the estimate and the fit per board.

usage: python benchmarks/bench_imagenet.py [--frames N] [--designs NAME ...] [--boards B ...]

Designs: the shared Brevitas MobileNet-v1 (../shared, skipped when absent) at finn-examples'
ZCU104 and U250 folding configs (tests/fixtures/finn_folding), a seeded torchvision-style
ResNet-18 (w4a4) and ResNet-50 (w1a2, the precision finn-examples builds for the U250) at
224x224 (tests/support/convgen.py `imagenet_resnet`), folded to a target II. Each build runs in a
child process, whose peak resident memory (VmHWM) is the build's. Frames are uniform random
images (the shared MobileNet was calibrated on those); verification compares rtlsim with qonnx
on the original model file, frame by frame, bit for bit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FOLDINGS = ROOT / "tests" / "fixtures" / "finn_folding"
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

# name -> (model source, how to fold, board whose budget chooses memory styles, clock MHz)
DESIGNS = {
    "mobilenet-v1 @ FINN ZCU104": ("shared:models/MNV1_W4A4_imagenet.onnx", "finn:ZCU104", "zcu104", 185.0),
    "mobilenet-v1 @ FINN U250": ("shared:models/MNV1_W4A4_imagenet.onnx", "finn:U250", "u250", 333.0),
    # The 7x7/2 stem on 3 channels takes 112 x 112 x 49 = 614,656 cycles at most parallel (its window
    # generator gives at most the 3 channels of one pixel per beat): the II of both ResNets.
    "resnet18-w4a4": ("resnet:18:4:4", "ii:614656", "u250", 333.0),
    "resnet50-w1a2": ("resnet:50:1:2", "ii:614656", "u250", 333.0),
}


def model_path(source: str, work: Path) -> Path | None:
    kind, _, rest = source.partition(":")
    if kind == "shared":
        path = SHARED / rest
        return path if path.is_file() else None
    import onnx
    from support import convgen

    depth, w_bits, a_bits = (int(v) for v in rest.split(":"))
    path = work / f"resnet{depth}_w{w_bits}a{a_bits}.onnx"
    if not path.is_file():
        onnx.save(convgen.make_convnet(convgen.imagenet_resnet(depth, w_bits, a_bits), seed=1), str(path))
    return path


def peak_mb() -> float:
    """This process's peak resident memory plus the largest of its children's (the Verilog
    workers, which run beside it): an upper bound of the build's peak."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 + children
    return float("nan")


def build_in_child(model: str, out: str, folding: str, board: str, clock: float) -> dict:
    """One build, in its own process: (seconds, peak MB, Verilog bytes)."""
    from finn_rtl.flow import build
    from finn_rtl.platforms.boards import get_board
    from finn_rtl.resources.planner import Budget

    kind, _, value = folding.partition(":")
    options = {"budget": Budget.of_board(get_board(board)), "clock_mhz": clock}
    if kind == "finn":
        options["folding"] = json.loads((FOLDINGS / f"mobilenet-v1_{value}.json").read_text())
    else:
        options["target_ii"] = int(value)
    start = time.perf_counter()
    b = build(model, out, **options)
    return {"seconds": time.perf_counter() - start, "to_verilog": b.report["build"]["seconds_to_verilog"],
            "peak_mb": peak_mb(), "verilog_mb": len(b.verilog) / 1e6}


def fits(b, boards) -> str:
    from finn_rtl.platforms.boards import get_board
    from finn_rtl.resources.planner import device_use

    used = device_use(b.report["resources"]["estimate"]["total"])
    cells = []
    for name in boards:
        c = get_board(name).capacity
        shares = {k: used[k] / v for k, v in (("LUT", c.lut), ("BRAM36", c.bram36), ("URAM", c.uram), ("DSP", c.dsp))
                  if v}
        worst = max(shares, key=shares.get)
        cells.append(f"{name} {'yes' if shares[worst] <= 0.8 else 'no'} ({worst} {shares[worst]:.0%})")
    return ", ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2, help="frames simulated and verified per design")
    parser.add_argument("--designs", nargs="+", help="names (prefixes) to run")
    parser.add_argument("--boards", nargs="+", default=["zcu104", "u250"], help="boards whose fit is printed")
    parser.add_argument("--work", default="/tmp/finn-rtl-bench-imagenet", help="build directories")
    parser.add_argument("--no-sim", action="store_true", help="build and estimate only")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rtlsim runs per design (the verification's and more on the same frames); kcyc/s is "
                             "their median, best their fastest: the same executable's speed varies by up to 2x "
                             "within minutes on a shared machine")
    args = parser.parse_args()
    import numpy as np

    from finn_rtl.flow import load_build, verify
    from finn_rtl.flow.verification import VerificationError
    from finn_rtl.graph.errors import CompileError
    from finn_rtl.sim.rtlsim import simulate
    from finn_rtl.sim.verilator import FAST_SIM

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    header = (f"{'design':28} {'layers':>6} {'to Verilog s':>12} {'peak GB':>7} {'Verilog MB':>10} "
              f"{'Verilator s':>11} {'kcyc/s':>7} {'best':>6} {'thr':>3} {'s/frame':>8} {'II':>9} {'bit-exact':>10} {'LUT':>9} {'BRAM36':>7} "
              f"{'URAM':>5} {'DSP':>5}  fit (estimate <= 80%)")
    rows = [header, "-" * len(header)]
    for name, (source, folding, board, clock) in DESIGNS.items():
        if args.designs and not any(name.startswith(prefix) for prefix in args.designs):
            continue
        model = model_path(source, work)
        if model is None:
            rows.append(f"{name:28} skipped: {source} is not available")
            continue
        out = work / name.replace(" ", "_").replace("@", "at")
        with ProcessPoolExecutor(max_workers=1) as child:
            try:
                built = child.submit(build_in_child, str(model), str(out), folding, board, clock).result()
            except CompileError as error:
                rows.append(f"{name:28} build refused: {error}")
                print(rows[-1], flush=True)
                continue
        b = load_build(out)
        total = b.report["resources"]["estimate"]["total"]
        sim = {"verilator": float("nan"), "kcps": float("nan"), "best": float("nan"), "threads": "-", "spf": float("nan"),
               "exact": "-"}
        if not args.no_sim:
            x = np.random.default_rng(0).random((args.frames, *b.input_shape[1:]), dtype=np.float32)
            try:
                verify(b, x, cxx_opt=FAST_SIM)
            except VerificationError:
                pass  # the report says how many frames differ, and why
            r = b.report["verification"]
            # "ties": the differing frames differ only at float32 rounding ties of the golden model
            exact = "yes" if r["bit_exact"] else "ties" if r.get("verified") else "NO"
            speeds = [r["rtlsim_cycles_per_second"] / 1e3]
            stream = b.network.to_stream(b.input_quantizer.quantize(x))
            for _ in range(args.repeat - 1):
                speeds.append(simulate(b.network, b.verilog, stream, cxx_opt=FAST_SIM).cycles_per_second / 1e3)
            sim = {"verilator": r["verilator_build_seconds"], "kcps": float(np.median(speeds)), "best": max(speeds),
                   "threads": r.get("rtlsim_threads", 1),
                   "spf": r["rtlsim_seconds"] / r["frames"], "exact": f"{exact} {r['frames'] - r['mismatched_frames']}/{r['frames']}"}
        rows.append(f"{name:28} {len(b.network.layers):>6} {built['to_verilog']:>12.1f} {built['peak_mb'] / 1024:>7.2f} "
                    f"{built['verilog_mb']:>10.1f} {sim['verilator']:>11.1f} {sim['kcps']:>7.1f} {sim['best']:>6.1f} {sim['threads']:>3} {sim['spf']:>8.2f} "
                    f"{b.network.analytic_ii:>9,} {sim['exact']:>10} {total['LUT'] + total['LUTRAM']:>9,} "
                    f"{total['BRAM36'] + total['BRAM18'] / 2:>7g} {total.get('URAM', 0):>5} {total['DSP']:>5}  "
                    f"{fits(b, args.boards)}")
        print(rows[-1], flush=True)
    print("\n".join(rows))
    print(f"\nrtlsim: {args.frames} random frames per design against qonnx on the original model (bit-exact: frames "
          f"equal; 'ties': verified, the differing frames differ only at rounding ties of the golden model's float32 "
          f"arithmetic and equal it with those taken its way, flow/divergence.py); estimates from finn-rtl's "
          f"calibrated model; fit: 80% of each resource; kcyc/s: the median of {args.repeat} rtlsim runs, best: the "
          f"fastest; thr: simulator threads (2: the design cut in two, "
          f"sim/partition.py).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
