"""Fmax without synthesis: each unit's slowest stage from the structure of its cores.

Every core states its slowest register-to-register stage by the delay model the cores place their
registers with (`path_ns`, in `cores.pipelining`'s 7-series nanoseconds of logic and routing);
a unit's is the slowest of its core, its input FIFOs and width converters. A linear map per device
family, fitted to the periods `resources.timing` measures on synthesized netlists
(`benchmarks/bench_timing.py --calibrate` writes it to calibration.json, and prints the model's
error), turns the model's period into an estimated period. `explore` and `--target-fps` count
frames per second at the clock a folding can reach by this estimate, in milliseconds per folding.
"""
from __future__ import annotations

import json

from ..graph.network import NetworkSpec
from .estimate import CALIBRATION, GLUE, LABEL_SELECT, calibration

FAMILIES = ("7series", "ultrascale_plus")
# Before a fit: the model's period on 7-series as it is, UltraScale+ at the ratio of the two
# families' measured periods on the bench designs (about 0.42).
UNFITTED = {"7series": {"scale": 1.0, "offset_ns": 0.0}, "ultrascale_plus": {"scale": 0.42, "offset_ns": 0.0}}


def unit_model_ns(network: NetworkSpec) -> dict[str, float]:
    """Each unit's modelled period (ns, 7-series): a register's clock to out and the hop into the
    next one, and the slowest stage of its parts."""
    from ..cores.accelerator import CORES
    from ..cores.fifo import StreamFIFO
    from ..cores.label_select import LabelSelect
    from ..cores.pipelining import REGISTER_NS, lut_level_ns
    from ..cores.width_converter import WidthConverter

    streams = network.edge_streams()
    units = {}
    for layer in network.layers:
        paths = [CORES[type(layer)].path_ns(layer)]
        for index in network.in_edges(layer.name):
            edge = streams[index]
            paths.append(StreamFIFO.path_ns(edge.depth, edge.fifo_memory_style, edge.stage_budget))
            if edge.width_converter is not None:
                paths.append(WidthConverter.path_ns(*edge.width_converter))
        units[layer.name] = REGISTER_NS + max(paths)
    units[GLUE] = REGISTER_NS + lut_level_ns()
    if network.output.label_select:
        last = network.layers[-1]
        units[LABEL_SELECT] = REGISTER_NS + LabelSelect.path_ns(last.output_type.bits, last.out_lanes)
    return units


def fit_of(family: str, table: dict | None = None) -> dict:
    return (table if table is not None else calibration()).get("timing", {}).get(family, UNFITTED[family])


def estimated_period_ns(model_ns: float, family: str, table: dict | None = None) -> float:
    fit = fit_of(family, table)
    return fit["offset_ns"] + fit["scale"] * model_ns


def estimate_fmax(network: NetworkSpec, table: dict | None = None) -> dict:
    """report.json's `timing.estimate`: per unit and family the estimated Fmax (MHz), and per
    family the design's (its slowest unit)."""
    model = unit_model_ns(network)
    units = {name: {"model_ns": round(ns, 3),
                    **{family: round(1000.0 / estimated_period_ns(ns, family, table), 1) for family in FAMILIES}}
             for name, ns in model.items()}
    families = {}
    for family in FAMILIES:
        slowest = min(units, key=lambda name: units[name][family])
        families[family] = {"fmax_mhz": units[slowest][family], "slowest_unit": slowest}
    return {"units": units, "families": families}


def reachable_mhz(network: NetworkSpec, clock_mhz: float, family: str = "7series") -> float:
    """The clock a design runs at: the requested one, or the estimated Fmax where that is lower."""
    return min(clock_mhz, estimate_fmax(network)["families"][family]["fmax_mhz"])


def fit(pairs: dict[str, list[tuple[float, float]]]) -> dict:
    """Least-squares (offset_ns, scale) per family from (model ns, measured period ns) pairs."""
    result = {}
    for family, points in pairs.items():
        n = len(points)
        mx = sum(x for x, _ in points) / n
        my = sum(y for _, y in points) / n
        var = sum((x - mx) ** 2 for x, _ in points)
        scale = sum((x - mx) * (y - my) for x, y in points) / var if var else my / mx
        result[family] = {"scale": round(scale, 4), "offset_ns": round(my - scale * mx, 4)}
    return result


def write_fit(coefficients: dict) -> None:
    """Store a fit in calibration.json (beside the resource model's coefficients)."""
    table = json.loads(CALIBRATION.read_text())
    table["timing"] = coefficients
    CALIBRATION.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    calibration.cache_clear()
