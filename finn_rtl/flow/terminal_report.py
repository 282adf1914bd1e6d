"""`finn-rtl report BUILD_DIR`: report.html's content as terminal tables (rich; plain text when
the output is not a terminal)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from .report import FIFO_COLUMNS, TIMING_COLUMNS, fifo_rows, timing_rows, timing_summary, verification_summary

PRIMITIVE = {"block": "BRAM", "distributed": "LUT", "registers": "FF"}  # what each memory style uses


def _resources_table(resources: dict) -> Table:
    estimate, synthesis = resources["estimate"], resources.get("synthesis")
    table = Table(title="resources per unit" + (": estimate / Yosys" if synthesis else " (estimate)"))
    table.add_column("unit")
    columns = ("LUT", "LUTRAM", "FF", "BRAM18", "BRAM36", "URAM", "DSP")
    for column in columns:
        table.add_column(column, justify="right")
    units = [*estimate["layers"], "total"]
    for name in units:
        e = estimate["total"] if name == "total" else estimate["layers"][name]
        s = None if synthesis is None else (synthesis["total"] if name == "total" else synthesis["layers"].get(name))
        table.add_row(name, *(f"{e.get(c, 0):,}" + ("" if s is None else f" / {s.get(c, 0):,}") for c in columns),
                      style="bold" if name == "total" else None)
    return table


def timing_table(timing: dict) -> Table:
    table = Table(title="longest register-to-register path per unit (cell delays + routing allowance)")
    for column in TIMING_COLUMNS:
        table.add_column(column, justify="left" if column in ("unit", TIMING_COLUMNS[-1]) else "right")
    clock = timing["clock_mhz"]
    for row in timing_rows(timing):
        slow = isinstance(row[1], (int, float)) and row[1] < clock
        table.add_row(*(str(v) for v in row), style="bold red" if slow else None)
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
        memories = ", ".join([f"{name} {PRIMITIVE[m['style']]}" for name, m in row.get("memories", {}).items()] +
                             ([f"products {row['multipliers'].upper()}"] if row.get("multipliers") else []))
        pe, simd = row.get("PE", row.get("pe", "-")), row.get("SIMD", row.get("simd", "-"))
        layers.add_row(row["name"], row["kind"], str(pe), str(simd),
                       f"{row['cycles_per_frame']:,}", memories or "-",
                       style="bold red" if row["name"] == bottleneck else None)
    console.print(layers)
    if "resources" in report:
        console.print(_resources_table(report["resources"]))
    if report.get("timing"):
        console.print(timing_table(report["timing"]))
        console.print(timing_summary(report["timing"]))

    fifos = Table(title="FIFOs")
    for column in FIFO_COLUMNS:
        fifos.add_column(column, justify="left" if column in ("edge", "memory", "width converter") else "right")
    for row in fifo_rows(report):
        fifos.add_row(*(f"{v:,}" if isinstance(v, int) else v for v in row))
    console.print(fifos)

    if report.get("verification"):
        console.print(verification_summary(report["verification"]))
    else:
        console.print("not verified (finn-rtl verify BUILD_DIR)")
