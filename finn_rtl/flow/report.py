"""report.json: what a build says about itself (the schema lives here, in one place)."""
from __future__ import annotations

from ..graph.network import NetworkSpec


def layer_report(network: NetworkSpec) -> list[dict]:
    rows = []
    for layer in network.layers:
        row = {"name": layer.name, "kind": layer.kind,
               "input_type": str(layer.input_type), "output_type": str(layer.output_type),
               "in_elements": layer.in_elements, "out_elements": layer.out_elements}
        if layer.inputs > 1:
            row["input_types"] = [str(layer.port_type(p)) for p in range(layer.inputs)]
        row.update(layer.report_fields())
        row["memories"] = {name: {"depth": shape.depth, "width": shape.width, "bits": shape.bits,
                                  "kind": "ROM" if shape.rom else "RAM", "style": layer.memory_style(name)}
                           for name, shape in layer.memories().items()}
        row["cycles_per_frame"] = layer.cycles_per_frame
        rows.append(row)
    return rows


def output_meaning(network: NetworkSpec) -> str:
    out = network.output
    if out.label_select:
        return "y = index of the top-1 class"
    if out.host_argmax:
        return "model output = argmax(affine_scale * y + affine_offset)"
    if out.head:
        return f"model output = {out.head}(affine_scale * y + affine_offset)"
    return "model output = affine_scale * y + affine_offset per channel"


FIFO_COLUMNS = ("edge", "depth", "lanes", "bits", "memory", "measured peak", "width converter")


def fifo_rows(report: dict) -> list[list]:
    """One row per edge of a report (FIFO_COLUMNS), for the HTML and terminal renderings."""
    peaks = (report.get("fifos", {}).get("sized_by_simulation") or {}).get("peaks") or []
    rows = []
    for i, e in enumerate(report["edges"]):
        converter = e["width_converter"]
        rows.append([f"{e['producer']} -> {e['consumer']}", e["fifo_depth"], e["fifo_lanes"], e["fifo_bits"],
                     e.get("fifo_memory_style", "-"), peaks[i] if i < len(peaks) else "-",
                     "-" if converter is None else f"{converter['in_lanes']} -> {converter['out_lanes']}"])
    return rows


TIMING_COLUMNS = ("unit", "7-series MHz", "logic ns", "routing ns", "LUT levels", "carry cells",
                  "UltraScale+ MHz", "longest path (7-series)")


def timing_rows(timing: dict) -> list[list]:
    """One row per synthesized unit (TIMING_COLUMNS), for the HTML and terminal renderings."""
    rows = []
    for name, unit in timing["units"].items():
        seven, plus = unit["7series"], unit["ultrascale_plus"]
        if not seven.get("fmax_mhz"):
            rows.append([name, "-", "-", "-", "-", "-", "-", "no register-to-register path"])
            continue
        rows.append([name, seven["fmax_mhz"], seven["logic_ns"], seven["routing_ns"], seven["lut_levels"],
                     seven["carry_cells"], plus["fmax_mhz"], f"{seven['from']} -> {seven['to']}"])
    return rows


def timing_summary(timing: dict) -> str:
    """One line: the design's estimated Fmax per family against the requested clock."""
    parts = []
    for family in timing["families"].values():
        if family["fmax_mhz"] is None:
            continue
        verdict = "meets" if family["meets_clock"] else f"misses ({len(family['units_below_clock'])} units below)"
        parts.append(f"{family['family']} {family['fmax_mhz']:g} MHz ({family['slowest_unit']}), {verdict}")
    return f"estimated Fmax at {timing['clock_mhz']:g} MHz requested: " + "; ".join(parts)


def verdict(result: dict) -> str:
    """A verification's verdict in a few words."""
    if result["bit_exact"]:
        return "bit-exact"
    if result.get("verified") and not result.get("frames_differing_only_at_float32_ties"):
        return "bit-exact (each differing frame run alone)"
    if result.get("verified"):
        from .divergence import plural

        return (f"bit-exact but for float32 rounding ties of the golden model in "
                f"{plural(result['frames_differing_only_at_float32_ties'], 'frame')}")
    return f"{result['mismatched_frames']} mismatched"


def verification_summary(result: dict) -> str:
    """One line for a verification result (report.json's `verification`)."""
    text = (f"verified {result['frames']} frames: {verdict(result)}; "
            f"II {result['measured_ii_cycles']:.1f} cycles (expected {result['expected_ii_cycles']}), "
            f"latency {result['latency_cycles']} cycles, rtlsim {result['rtlsim_cycles_per_second']:,} cycles/s"
            + (" (2 threads)" if result.get("rtlsim_threads", 1) > 1 else ""))
    if "top1_accuracy" in result:
        text += f", top-1 accuracy {100 * result['top1_accuracy']:.2f}%"
    if result.get("sweep"):
        rates = ", ".join(f"valid {p['valid_percent']}%/ready {p['ready_percent']}%: II {p['measured_ii_cycles']:.1f}"
                          for p in result["sweep"])
        text += f"\n  handshake sweep, the same outputs at every point: {rates}"
    if result.get("frames_differing_only_at_float32_ties"):
        from .divergence import describe_ties

        text += f"\n  {describe_ties(result)}"
    return text


def resources_report(network: NetworkSpec, synthesis: dict | None) -> dict:
    """`resources`: the estimate always, Yosys's counts when synthesis ran; both per unit (each
    layer with its input FIFOs, and the top-level glue) and in total, with every memory's style."""
    from ..resources.estimate import estimate_network

    estimate = estimate_network(network)
    report = {"estimate": estimate}
    if synthesis is not None:
        report["synthesis"] = {**synthesis, "memory_styles": estimate["memory_styles"]}
    return report


def timing_report(synthesis: dict | None, clock_mhz: float) -> dict | None:
    """`timing`: each synthesized unit's longest path per device family (`resources.timing`), and
    the design's estimated Fmax (its slowest unit) against the requested clock."""
    if synthesis is None or "timing" not in synthesis:
        return None
    from ..resources.timing import FAMILIES, MODEL

    units = synthesis["timing"]
    families = {}
    for key, family in FAMILIES.items():
        paths = {name: unit[key] for name, unit in units.items() if unit[key].get("fmax_mhz")}
        slowest = max(paths, key=lambda name: paths[name]["period_ns"]) if paths else None
        fmax = paths[slowest]["fmax_mhz"] if slowest else None
        families[key] = {"family": family.name, "fmax_mhz": fmax, "slowest_unit": slowest,
                         "meets_clock": fmax is None or fmax >= clock_mhz,
                         "units_below_clock": sorted(name for name, path in paths.items()
                                                     if path["fmax_mhz"] < clock_mhz)}
    return {"clock_mhz": clock_mhz, "families": families, "units": units, "model": MODEL}


def timing_estimate(network) -> dict:
    """`timing_estimate`: each unit's Fmax by the analytic model (`resources.fmax`), without
    synthesis: what folding and `--target-fps` count with."""
    from ..resources.fmax import estimate_fmax

    return {**estimate_fmax(network), "model": "slowest stage of each unit by the cores' delay model "
            "(cores.pipelining), mapped by a linear fit to the periods measured on Yosys netlists "
            "(benchmarks/bench_timing.py --calibrate)"}


def build_report(state) -> dict:
    """The report of a finished build (`build.BuildState`), before verification."""
    from ..cores.accelerator import PortGeometry

    network, options, quantizer = state.network, state.options, state.input_quantizer
    layers = layer_report(network)
    bottleneck = max(layers, key=lambda row: row["cycles_per_frame"])
    geometry = PortGeometry.of(network)
    return {
        "build": {"model": str(state.model_path), "name": options.name, "label_select": options.label_select,
                  "target_ii": options.target_ii, "clock_mhz": options.clock_mhz, "streamline_seconds": round(state.seconds["streamline"], 3),
                  "seconds_to_verilog": round(sum(state.seconds.values()), 3),
                  "step_seconds": {step: round(t, 3) for step, t in state.seconds.items()}},
        "input": {"elements": network.in_elements, "type": str(network.input_type),
                  "quantizer": "host runs input_quantizer.onnx, divides by scale" if quantizer.prefix
                  else "integer model input", "scale": quantizer.scale,
                  "axis_tdata_bits": geometry.in_width, "elements_per_beat": geometry.in_elements_per_beat,
                  "beats_per_frame": geometry.in_beats_per_frame},
        "output": {"elements": network.out_elements, "type": str(network.output_type),
                   "label_select": network.output.label_select,
                   "host_argmax": network.output.host_argmax,
                   "affine_scale": network.output.scale.tolist(),
                   "affine_offset": network.output.offset.tolist(),
                   "meaning": output_meaning(network),
                   "head": network.output.head,
                   "axis_tdata_bits": geometry.out_width, "elements_per_beat": geometry.out_elements_per_beat,
                   "beats_per_frame": geometry.out_beats_per_frame},
        "layers": layers,
        "fifos": {"depths": [network.fifo_depth(i) for i in range(len(network.edges))],
                  "sized_by_simulation": state.fifo_sizing},
        "edges": [stream.report() for stream in network.edge_streams()],
        "lane_followers": network.lane_followers,
        "expected_ii_cycles": network.analytic_ii,
        "bottleneck_layer": bottleneck["name"],
        "notes": list(network.notes),
        "resources": resources_report(network, state.synthesis),
        "timing_estimate": timing_estimate(network),
        **({"timing": timing_report(state.synthesis, options.clock_mhz)} if state.synthesis else {}),
        **({"planning": state.planning} if state.planning else {}),
    }
