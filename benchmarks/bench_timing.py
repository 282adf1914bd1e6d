"""Timing per unit: the estimated Fmax (`resources.timing`: Yosys's Xilinx cell delays and a
routing allowance) on 7-series -1 and UltraScale+ -1, routed Fmax on a Lattice ECP5-85F
(nextpnr-ecp5, out of context), LUT/FF, and the same without pipeline registers.

usage: python benchmarks/bench_timing.py [--designs ...] [--clock-mhz 200] [--no-ecp5]

Each design is built twice: at --clock-mhz (cores place their pipeline registers for it) and at
25 MHz, where no core needs a register beyond its own (the design as it was before issue 22,
with the same arithmetic). Goals (issue 22): every unit >= 200 MHz estimated on 7-series -1 and
>= 300 MHz on UltraScale+, LUTs within 10% of the unpipelined design. ECP5 is not Xilinx: its
routed Fmax checks that the estimate ranks units as routing does (Spearman's rank correlation
below) and that pipelining raises routed Fmax as it raises the estimate.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

UNPIPELINED_MHZ = 25.0


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2
        i = j + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean = (n - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var = (sum((x - mean) ** 2 for x in ra) * sum((y - mean) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def build_at(design, clock_mhz: float, work: Path):
    from finn_rtl.flow import build

    model, options = design(work)
    return build(model, work / f"build_{clock_mhz:g}", synth=True, clock_mhz=clock_mhz, **options)


def routed(b, max_luts: int) -> dict:
    from finn_rtl.resources.ecp5 import place_and_route
    from finn_rtl.resources.synthesis import synthesis_units

    sizes = b.report["resources"]["synthesis"]["layers"]
    units = synthesis_units(b.network)
    return {name: place_and_route(*unit) for name, unit in units.items() if sizes[name]["LUT"] <= max_luts}


def main() -> int:
    from bench_estimates import designs

    table = designs()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--designs", nargs="+", default=list(table), choices=list(table))
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--no-ecp5", action="store_true", help="skip place and route on ECP5")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit the analytic Fmax model (resources/fmax.py) to these measurements and write "
                             "the fit to finn_rtl/resources/calibration.json")
    parser.add_argument("--ecp5-max-luts", type=int, default=2500,
                        help="route only units of at most this many (Xilinx) LUTs: nextpnr-ecp5 in WebAssembly "
                             "takes minutes on the larger ones (default 2500)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from finn_rtl.resources.fmax import FAMILIES, estimate_fmax, fit

    head = (f"{'design':15}{'unit':30}{'logic ns':>9}{'route ns':>9}{'LUTs':>5}{'CY':>4}{'7s MHz':>8}{'model':>7}{'US+ MHz':>8}"
            f"{'ECP5 MHz':>9}{'LUT':>8}{'FF':>8}{'| before:':>10}{'7s MHz':>8}{'ECP5 MHz':>9}{'LUT':>8}{'FF':>8}")
    print(head + "\n" + "-" * len(head), flush=True)
    estimated, routed_fmax, gains = [], [], []
    worst = {"7series": (1e9, ""), "ultrascale_plus": (1e9, "")}
    lut_ratios = []
    model_pairs = {family: [] for family in FAMILIES}  # (model ns, measured period ns), both builds
    model_rows = []  # (unit, model-estimated 7-series MHz, measured MHz)
    for name in args.designs:
        with tempfile.TemporaryDirectory() as work:
            try:
                after = build_at(table[name], args.clock_mhz, Path(work))
                before = build_at(table[name], UNPIPELINED_MHZ, Path(work))
            except FileNotFoundError as missing:
                print(f"{name:15}skipped: {missing} not found")
                continue
            timing_a, timing_b = after.report["timing"]["units"], before.report["timing"]["units"]
            res_a = after.report["resources"]["synthesis"]["layers"]
            res_b = before.report["resources"]["synthesis"]["layers"]
            names = list(timing_a)
            modelled = estimate_fmax(after.network)["units"]
            modelled_before = estimate_fmax(before.network)["units"]
            ecp_a = {} if args.no_ecp5 else routed(after, args.ecp5_max_luts)
            ecp_b = {} if args.no_ecp5 else routed(before, args.ecp5_max_luts)
            for unit in names:
                seven, plus, old = timing_a[unit]["7series"], timing_a[unit]["ultrascale_plus"], timing_b[unit]["7series"]
                if not seven.get("fmax_mhz"):
                    continue
                for key, path in (("7series", seven), ("ultrascale_plus", plus)):
                    if path["fmax_mhz"] < worst[key][0]:
                        worst[key] = (path["fmax_mhz"], f"{name} {unit}")
                for family in FAMILIES:
                    model_pairs[family].append((modelled[unit]["model_ns"], timing_a[unit][family]["period_ns"]))
                    model_pairs[family].append((modelled_before[unit]["model_ns"], timing_b[unit][family]["period_ns"]))
                model_rows.append((f"{name} {unit}", modelled[unit]["7series"], seven["fmax_mhz"]))
                model_rows.append((f"{name} {unit} (before)", modelled_before[unit]["7series"], old["fmax_mhz"]))
                e_a = ecp_a.get(unit, {}).get("fmax_mhz")
                e_b = ecp_b.get(unit, {}).get("fmax_mhz")
                if e_a:
                    estimated.append(seven["fmax_mhz"])
                    routed_fmax.append(e_a)
                if e_a and e_b:
                    gains.append((seven["fmax_mhz"] / old["fmax_mhz"], e_a / e_b))
                print(f"{name:15}{unit[:29]:30}{seven['logic_ns']:>9.2f}{seven['routing_ns']:>9.2f}"
                      f"{seven['lut_levels']:>5}{seven['carry_cells']:>4}{seven['fmax_mhz']:>8.1f}{modelled[unit]['7series']:>7.0f}"
                      f"{plus['fmax_mhz']:>8.1f}"
                      f"{e_a or '-':>9}{res_a[unit]['LUT']:>8,}{res_a[unit]['FF']:>8,}{'|':>10}{old['fmax_mhz']:>8.1f}"
                      f"{e_b or '-':>9}{res_b[unit]['LUT']:>8,}{res_b[unit]['FF']:>8,}", flush=True)
            total_a = after.report["resources"]["synthesis"]["total"]
            total_b = before.report["resources"]["synthesis"]["total"]
            lut_ratios.append((name, total_a["LUT"] / total_b["LUT"], total_a["FF"] / total_b["FF"]))
            design_fmax = {k: v["fmax_mhz"] for k, v in after.report["timing"]["families"].items()}
            print(f"{name:15}{'design':30} estimated Fmax 7-series {design_fmax['7series']} MHz, UltraScale+ "
                  f"{design_fmax['ultrascale_plus']} MHz; LUT {total_b['LUT']:,} -> {total_a['LUT']:,} "
                  f"({total_a['LUT'] / total_b['LUT'] - 1:+.1%}), FF {total_b['FF']:,} -> {total_a['FF']:,} "
                  f"({total_a['FF'] / total_b['FF'] - 1:+.1%})\n", flush=True)
    print(f"slowest unit: 7-series {worst['7series'][0]} MHz ({worst['7series'][1]}), "
          f"UltraScale+ {worst['ultrascale_plus'][0]} MHz ({worst['ultrascale_plus'][1]})")
    if len(estimated) > 2:
        print(f"rank correlation (Spearman) of estimated 7-series Fmax and routed ECP5 Fmax over "
              f"{len(estimated)} units: {spearman(estimated, routed_fmax):.2f}")
    if gains:
        both = sum(1 for e, r in gains if (e > 1.05) == (r > 1.05))
        print(f"pipelining: estimated Fmax x{sum(e for e, _ in gains) / len(gains):.2f}, routed ECP5 Fmax "
              f"x{sum(r for _, r in gains) / len(gains):.2f} on average; the two agree on which units gained "
              f"(>5%) for {both} of {len(gains)} units")
    if model_rows:
        errors = [abs(model - measured) / measured for _, model, measured in model_rows]
        worst = max(range(len(errors)), key=errors.__getitem__)
        print(f"analytic Fmax model (calibration.json), 7-series: mean |error| {sum(errors) / len(errors):.1%}, "
              f"worst {errors[worst]:.1%} ({model_rows[worst][0]}: model {model_rows[worst][1]:.0f} MHz, "
              f"measured {model_rows[worst][2]:.0f} MHz) over {len(errors)} units, pipelined and not")
        fitted = fit(model_pairs)
        for family in FAMILIES:
            c = fitted[family]
            refit = [abs(1 / (c["offset_ns"] + c["scale"] * x) - 1 / y) * y for x, y in model_pairs[family]]
            print(f"  fitted here, {family}: period = {c['offset_ns']:.3f} ns + {c['scale']:.3f} x model; "
                  f"mean |error| {sum(refit) / len(refit):.1%}, worst {max(refit):.1%}")
        if args.calibrate:
            from finn_rtl.resources.fmax import write_fit

            write_fit(fitted)
            print("  written to finn_rtl/resources/calibration.json")
    print("\nlogic/route ns, LUTs (levels), CY (CARRY4 cells): the longest 7-series path of the pipelined unit. "
          "model: the analytic model's 7-series Fmax (resources/fmax.py). "
          "before: the same design at 25 MHz (no pipeline registers).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
