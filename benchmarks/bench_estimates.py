"""Resource estimates against Yosys on whole networks the calibration never saw: the error per
network and per core kind, and how long an estimate takes.

usage: python benchmarks/bench_estimates.py [--designs ...]

Goals (issue 11): within 15% per layer and 10% per network on LUTs, exact on BRAM and DSP.
Synthesis is cached, so a second run only estimates.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def generated(config_name: str, target_ii: int):
    def make(work: Path):
        from support import convgen

        config = {"resnet8-2bit": lambda: convgen.resnet8(2),
                  "mobilenet-4bit": lambda: convgen.mobilenet_v1(0.25, 4)}[config_name]()
        model = work / f"{config_name}.onnx"
        onnx.save(convgen.make_convnet(config, seed=9), str(model))
        return model, {"target_ii": target_ii}
    return make


def brevitas(name: str):
    """A real Brevitas export from tests/fixtures/brevitas (issue 23's constructs), at the
    default folding: networks the calibration sweep never saw."""
    def make(work: Path):
        return ROOT / "tests" / "fixtures" / "brevitas" / f"{name}.onnx", {}
    return make


BREVITAS = ("mlp_int32_bias", "stem_maxpool_pad", "avgpool_trunc", "conv1d_maxpool1d", "bottleneck")


def designs() -> dict:
    from bench_resources import DESIGNS

    return {**DESIGNS, "resnet8-2bit": generated("resnet8-2bit", 16384),
            "mobilenet-4bit": generated("mobilenet-4bit", 16384),
            **{f"brevitas {name}": brevitas(name) for name in BREVITAS}}


def error(predicted: float, measured: float) -> float:
    return (predicted - measured) / max(measured, 1)


def main() -> int:
    table = designs()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--designs", nargs="+", default=list(table), choices=list(table))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from bench_resources import synthesized_builds
    from finn_rtl.resources.estimate import estimate_network

    per_kind = defaultdict(list)
    print(f"{'design':26}{'II':>8}{'LUT est':>10}{'LUT Yosys':>11}{'err':>7}{'FF est':>9}{'FF Yosys':>10}{'err':>7}"
          f"{'BRAM18':>10}{'BRAM36':>10}{'DSP':>7}{'layers>15%':>12}{'estimate ms':>13}")
    for name, b in synthesized_builds(table, args.designs, 26):
        start = time.perf_counter()
        estimate_network(b.network)
        milliseconds = 1000 * (time.perf_counter() - start)
        est, syn = b.report["resources"]["estimate"], b.report["resources"]["synthesis"]
        kinds = {row["name"]: row["kind"] for row in b.report["layers"]}
        off = 0
        for unit, predicted in est["layers"].items():
            measured = syn["layers"][unit]
            per_kind[kinds.get(unit, "glue")].append((predicted["LUT"], measured["LUT"]))
            off += abs(error(predicted["LUT"], measured["LUT"])) > 0.15 and measured["LUT"] > 100
        e, s = est["total"], syn["total"]
        brams = [f"{e[c]}/{s[c]}" for c in ("BRAM18", "BRAM36", "DSP")]
        print(f"{name:26}{b.network.analytic_ii:>8}{e['LUT']:>10,}{s['LUT']:>11,}{error(e['LUT'], s['LUT']):>+7.0%}"
              f"{e['FF']:>9,}{s['FF']:>10,}{error(e['FF'], s['FF']):>+7.0%}{brams[0]:>10}{brams[1]:>10}{brams[2]:>7}"
              f"{off:>5}/{len(est['layers']):<6}{milliseconds:>13.1f}", flush=True)
    print(f"\n{'core kind':16}{'units':>6}{'LUT error, mean abs':>21}{'worst':>8}   (units over 100 LUTs)")
    for kind, pairs in sorted(per_kind.items()):
        errors = [abs(error(p, m)) for p, m in pairs if m > 100]
        if errors:
            print(f"{kind:16}{len(errors):>6}{sum(errors) / len(errors):>21.1%}{max(errors):>8.1%}")
    print("\nBRAM18/BRAM36/DSP columns: estimate/Yosys. Units are layers with their input FIFOs "
          "(and the top-level glue), out of context.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
