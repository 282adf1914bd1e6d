"""Measurement and table printing shared by the benchmark scripts."""
from __future__ import annotations

import time

# (header, width, format) of the measured columns, after each script's own key columns
COLUMNS = (("to Verilog s", 12, "{:.2f}"), ("Verilator s", 11, "{:.1f}"), ("verify s", 9, "{:.1f}"),
           ("rtlsim Mcyc/s", 13, "{:.3f}"), ("frames/s", 10, "{:.1f}"), ("II", 9, "{:.1f}"),
           ("expected", 8, "{}"), ("latency", 8, "{}"), ("top-1 %", 7, "{:.2f}"), ("exact", 5, "{}"))


def measure(b, x, y=None) -> list:
    """Verify a build on (x, y) and return the measured columns' values."""
    from finn_rtl.flow import verify
    from finn_rtl.sim.verilator import FAST_SIM

    start = time.perf_counter()
    # Always the optimised simulator: a short run would otherwise get the quick -O0 build.
    r = verify(b, x, y, cxx_opt=FAST_SIM)
    verify_seconds = time.perf_counter() - start - r["verilator_build_seconds"]
    return [b.report["build"]["seconds_to_verilog"], r["verilator_build_seconds"], verify_seconds,
            r["rtlsim_cycles_per_second"] / 1e6, r["frames"] / r["rtlsim_seconds"], r["measured_ii_cycles"],
            r["expected_ii_cycles"], r["latency_cycles"], 100 * r.get("top1_accuracy", float("nan")), r["bit_exact"]]


def header(keys: list[tuple[str, int]]) -> str:
    line = " ".join(f"{name:{width}}" for name, width in keys) + " " + \
        " ".join(f"{name:>{width}}" for name, width, _ in COLUMNS)
    return line + "\n" + "-" * len(line)


def row(keys: list[tuple[str, int]], key_values: list, values: list) -> str:
    return " ".join(f"{value:{width}}" for (_, width), value in zip(keys, key_values)) + " " + \
        " ".join(f"{fmt.format(value):>{width}}" for (_, width, fmt), value in zip(COLUMNS, values))
