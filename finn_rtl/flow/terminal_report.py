"""`finn-rtl report BUILD_DIR`: report.html's content as terminal tables (rich; plain text when
the output is not a terminal)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

PRIMITIVE = {"block": "BRAM", "distributed": "LUT", "registers": "FF"}  # what each memory style uses


def _resources_table(resources: dict) -> Table:
    estimate, synthesis = resources["estimate"], resources.get("synthesis")
    table = Table(title="resources per unit" + (": estimate / Yosys" if synthesis else " (estimate)"))
    table.add_column("unit")
    columns = ("LUT", "LUTRAM", "FF", "BRAM18", "BRAM36", "DSP")
    for column in columns:
        table.add_column(column, justify="right")
    units = [*estimate["layers"], "total"]
    for name in units:
        e = estimate["total"] if name == "total" else estimate["layers"][name]
        s = None if synthesis is None else (synthesis["total"] if name == "total" else synthesis["layers"].get(name))
        table.add_row(name, *(f"{e[c]:,}" + ("" if s is None else f" / {s[c]:,}") for c in columns),
                      style="bold" if name == "total" else None)
    return table


def print_report(report: dict, console: Console | None = None) -> None:
    # A pipe or file gets wide tables, not ones folded to 80 columns.
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    build, bottleneck = report["build"], report["bottleneck_layer"]
    console.print(f"[bold]{build['name']}[/bold] from {build['model']}: analytic II "
                  f"{report['expected_ii_cycles']:,} cycles, bottleneck {bottleneck}")
    if "planning" in report:
        p = report["planning"]
        console.print(f"folding chosen for {p['budget']}: {p['fps']:,} FPS at {p['clock_mhz']:g} MHz")

    layers = Table(title="layers")
    for column in ("layer", "kind", "PE", "SIMD", "cycles/frame", "memories"):
        layers.add_column(column, justify="left" if column in ("layer", "kind", "memories") else "right")
    for row in report["layers"]:
        memories = ", ".join(f"{name} {PRIMITIVE[m['style']]}" for name, m in row.get("memories", {}).items())
        pe, simd = row.get("PE", row.get("pe", "-")), row.get("SIMD", row.get("simd", "-"))
        layers.add_row(row["name"], row["kind"], str(pe), str(simd),
                       f"{row['cycles_per_frame']:,}", memories or "-",
                       style="bold red" if row["name"] == bottleneck else None)
    console.print(layers)
    if "resources" in report:
        console.print(_resources_table(report["resources"]))

    peaks = (report.get("fifos", {}).get("sized_by_simulation") or {}).get("peaks") or []
    fifos = Table(title="FIFOs")
    for column in ("edge", "depth", "bits", "memory", "measured peak", "width converter"):
        fifos.add_column(column, justify="left" if column in ("edge", "memory", "width converter") else "right")
    for i, e in enumerate(report["edges"]):
        converter = e["width_converter"]
        fifos.add_row(f"{e['producer']} -> {e['consumer']}", str(e["fifo_depth"]), f"{e['fifo_bits']:,}",
                      e.get("fifo_memory_style", "-"), str(peaks[i]) if i < len(peaks) else "-",
                      "-" if converter is None else f"{converter['in_lanes']} -> {converter['out_lanes']}")
    console.print(fifos)

    v = report.get("verification")
    if v:
        verdict = "bit-exact" if v["bit_exact"] else f"{v['mismatched_frames']} of {v['frames']} frames differ"
        line = (f"verified {v['frames']} frames: {verdict}; II {v['measured_ii_cycles']:.1f} cycles measured "
                f"({v['expected_ii_cycles']} analytic), latency {v['latency_cycles']} cycles, rtlsim "
                f"{v['rtlsim_cycles_per_second']:,} cycles/s")
        if "top1_accuracy" in v:
            line += f", top-1 accuracy {100 * v['top1_accuracy']:.2f}%"
        console.print(line)
    else:
        console.print("not verified (finn-rtl verify BUILD_DIR)")
