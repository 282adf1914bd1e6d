"""report.html: one self-contained page per build, from report.json alone (charts are inline SVG
from matplotlib; no scripts, fonts or files from elsewhere), so `finn-rtl report` can render it
again for any build directory."""
from __future__ import annotations

import html
import re

from .divergence import describe_ties
from .plots import _figure, _svg
from .report import FIFO_COLUMNS, TIMING_COLUMNS, fifo_rows, timing_rows, timing_summary
from .report import verdict as verification_verdict

COLUMNS = ("LUT", "LUTRAM", "FF", "BRAM18", "BRAM36", "URAM", "DSP")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,td.text{text-align:left}
.bottleneck{background:#fde2e1}.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.pipeline{display:flex;flex-wrap:wrap;align-items:center;gap:.3em;font-size:.8em}
.stage{border:1px solid #888;border-radius:4px;padding:.3em .5em;background:#f7f9fc}
.stage.bottleneck{border-color:#c62828}.arrow{color:#888}
.summary td{text-align:left}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _cell(value) -> str:
    numeric = isinstance(value, (int, float)) or re.fullmatch(r"[-+]?[\d,.]+%?|-", str(value))
    return f"<td>{_e(value)}</td>" if numeric else f"<td class=\"text\">{_e(value)}</td>"


def _table(header, rows, row_classes=None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        f"<tr class=\"{(row_classes or {}).get(i, '')}\">" + "".join(_cell(v) for v in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def cycles_chart(layers, bottleneck: str) -> str:
    fig, ax = _figure(7, 0.3 * len(layers) + 1.2)
    names = [row["name"] for row in layers][::-1]
    cycles = [row["cycles_per_frame"] for row in layers][::-1]
    colors = ["tab:red" if name == bottleneck else "tab:blue" for name in names]
    ax.barh(names, cycles, color=colors)
    ax.set_xlabel("cycles per frame (analytic); red: the bottleneck, which sets the II")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def resources_chart(resources: dict) -> str:
    estimate = resources["estimate"]["layers"]
    synthesis = resources.get("synthesis", {}).get("layers", {})
    names = list(estimate)
    fig, (luts, brams) = _figure(7, 0.3 * len(names) + 1.5, ncols=2, sharey=True, width_ratios=(3, 1))
    y = range(len(names))
    height = 0.4 if synthesis else 0.8
    luts.barh([i + (height / 2 if synthesis else 0) for i in y],
              [estimate[n]["LUT"] + estimate[n]["LUTRAM"] for n in names], height, label="estimate")
    brams.barh([i + (height / 2 if synthesis else 0) for i in y],
               [estimate[n]["BRAM36"] + estimate[n]["BRAM18"] / 2 for n in names], height, label="estimate")
    if synthesis:
        measured = [synthesis.get(n, {}) for n in names]
        below = [i - height / 2 for i in y]
        luts.barh(below, [m.get("LUT", 0) + m.get("LUTRAM", 0) for m in measured], height, label="Yosys")
        brams.barh(below, [m.get("BRAM36", 0) + m.get("BRAM18", 0) / 2 for m in measured], height, label="Yosys")
    luts.set_yticks(list(y), names, fontsize=7)
    luts.invert_yaxis()
    luts.set_xlabel("LUTs (logic + LUT RAM)")
    brams.set_xlabel("BRAM36 tiles")
    luts.legend(fontsize=7)
    return _svg(fig)


def _pipeline(layers, bottleneck) -> str:
    stages = []
    for row in layers:
        lanes = ", ".join(f"{k} {row.get(k, row.get(k.lower()))}" for k in ("PE", "SIMD")
                          if k in row or k.lower() in row)
        cls = "stage bottleneck" if row["name"] == bottleneck else "stage"
        stages.append(f"<span class=\"{cls}\"><b>{_e(row['name'])}</b><br>{_e(row['kind'])}"
                      f"{'<br>' + _e(lanes) if lanes else ''}<br>{row['cycles_per_frame']:,} cyc</span>")
    return "<div class=\"pipeline\">" + "<span class=\"arrow\">&rarr;</span>".join(stages) + "</div>"


def _verification(v: dict) -> str:
    if not v:
        return "<p>Not verified in this build directory (run <code>finn-rtl verify</code>).</p>"
    verdict = "<span class=\"ok\">bit-exact</span>" if v["bit_exact"] else \
        f"<span class=\"ok\">{_e(describe_ties(v) or verification_verdict(v))}</span>" if v.get("verified") else \
        f"<span class=\"bad\">{v['mismatched_frames']} of {v['frames']} frames differ</span>"
    rows = [("frames", v["frames"]), ("result against qonnx on the original model", None),
            ("measured II (cycles)", f"{v['measured_ii_cycles']:.1f}"),
            ("analytic II (cycles)", v["expected_ii_cycles"]), ("latency (cycles)", v["latency_cycles"]),
            ("rtlsim speed (cycles/s)", f"{v['rtlsim_cycles_per_second']:,}")]
    if "top1_accuracy" in v:
        rows.append(("top-1 accuracy", f"{100 * v['top1_accuracy']:.2f}%"))
    cells = "".join(f"<tr><td>{_e(k)}</td><td>{verdict if val is None else _e(val)}</td></tr>" for k, val in rows)
    return f"<table class=\"summary\">{cells}</table>"


def _comparison(resources: dict) -> str:
    if "synthesis" not in resources:
        return "<p>Estimates only: run <code>finn-rtl synth BUILD_DIR</code> (or build with --synth) to measure.</p>"
    est, syn = resources["estimate"], resources["synthesis"]
    rows = []
    for name in est["layers"]:
        e, s = est["layers"][name], syn["layers"].get(name, {})
        error = (e["LUT"] - s.get("LUT", 0)) / max(1, s.get("LUT", 0))
        rows.append([name, e["LUT"], s.get("LUT", "-"), f"{error:+.0%}", e["FF"], s.get("FF", "-"),
                     e["BRAM18"], s.get("BRAM18", "-"), e["BRAM36"], s.get("BRAM36", "-")])
    e, s = est["total"], syn["total"]
    rows.append(["total", e["LUT"], s["LUT"], f"{(e['LUT'] - s['LUT']) / max(1, s['LUT']):+.0%}", e["FF"], s["FF"],
                 e["BRAM18"], s["BRAM18"], e["BRAM36"], s["BRAM36"]])
    return _table(["unit", "LUT est.", "LUT Yosys", "error", "FF est.", "FF Yosys", "BRAM18 est.", "BRAM18 Yosys",
                   "BRAM36 est.", "BRAM36 Yosys"], rows) + \
        f"<p>Yosys: {_e(syn['tool']['yosys'])}; {_e(syn['tool']['scope'])}.</p>"


def timing_chart(timing: dict) -> str:
    """Each unit's estimated Fmax per family against the requested clock."""
    names = [name for name, unit in timing["units"].items() if unit["7series"].get("fmax_mhz")]
    fig, ax = _figure(7, 0.3 * len(names) + 1.5)
    y = range(len(names))
    for offset, (key, color) in zip((-0.2, 0.2), (("7series", "tab:blue"), ("ultrascale_plus", "tab:green"))):
        ax.barh([i + offset for i in y], [timing["units"][n][key]["fmax_mhz"] for n in names], height=0.4,
                color=color, label=timing["families"][key]["family"])
    ax.axvline(timing["clock_mhz"], color="tab:red", linestyle="--", label=f"requested {timing['clock_mhz']:g} MHz")
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("estimated Fmax, MHz (longest path: cell delays + routing allowance)")
    ax.legend(fontsize=7)
    return _svg(fig)


def _timing(timing: dict) -> str:
    rows = timing_rows(timing)
    classes = {i: "bottleneck" for i, row in enumerate(rows)
               if isinstance(row[1], (int, float)) and row[1] < timing["clock_mhz"]}
    model = "; ".join(f"{k}: {v}" for k, v in timing["model"]["cell_delays"].items())
    routing = "; ".join(f"{k}: {v}" for k, v in timing["model"]["routing"].items())
    return (f"<p>{_e(timing_summary(timing))}</p>" + timing_chart(timing) + _table(TIMING_COLUMNS, rows, classes) +
            f"<p>Cell delays: {_e(model)}. Routing allowance: {_e(routing)}.</p>")


def render_html(report: dict) -> str:
    layers, build = report["layers"], report["build"]
    bottleneck = report["bottleneck_layer"]
    resources = report.get("resources", {})
    estimate = resources.get("estimate")
    layer_rows, classes = [], {}
    for i, row in enumerate(layers):
        unit = estimate["layers"].get(row["name"], {}) if estimate else {}
        memories = ", ".join([f"{name} {m['style']}" for name, m in row.get("memories", {}).items()] +
                             ([f"products {row['multipliers']}"] if row.get("multipliers") else []))
        pe, simd = row.get("PE", row.get("pe", "-")), row.get("SIMD", row.get("simd", "-"))
        layer_rows.append([row["name"], row["kind"], pe, simd,
                           f"{row['cycles_per_frame']:,}", unit.get("LUT", "-"), unit.get("FF", "-"),
                           unit.get("BRAM18", "-"), unit.get("BRAM36", "-"), unit.get("DSP", "-"), memories or "-"])
        if row["name"] == bottleneck:
            classes[i] = "bottleneck"
    total = estimate["total"] if estimate else {}
    summary = [("model", build["model"]), ("top module", build["name"]),
               ("analytic II", f"{report['expected_ii_cycles']:,} cycles (bottleneck {bottleneck})"),
               ("compile time to Verilog", f"{build['seconds_to_verilog']:.1f} s")]
    if total:
        summary.append(("resources (estimate)", ", ".join(f"{c} {total.get(c, 0):,}" for c in COLUMNS)))
    if "planning" in report:
        p = report["planning"]
        summary.append(("folding chosen for", f"{p['budget']}: {p['fps']:,} FPS at {p['clock_mhz']:g} MHz"))
    sections = [
        f"<h1>finn-rtl build: {_e(build['name'])}</h1>",
        "<table class=\"summary\">" + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in summary)
        + "</table>",
        "<h2>Pipeline</h2>", _pipeline(layers, bottleneck),
        "<h2>Cycles per layer</h2>", cycles_chart(layers, bottleneck),
        "<h2>Layers</h2>", _table(["layer", "kind", "PE", "SIMD", "cycles/frame", "LUT est.", "FF est.", "BRAM18 est.",
                                   "BRAM36 est.", "DSP est.", "memories and products"], layer_rows, classes),
    ]
    if estimate:
        sections += ["<h2>Resources per unit</h2>", resources_chart(resources),
                     "<h2>Estimate against synthesis</h2>", _comparison(resources)]
    if report.get("timing"):
        sections += ["<h2>Timing</h2>", _timing(report["timing"])]
    sections += ["<h2>FIFOs</h2>", _table(FIFO_COLUMNS, fifo_rows(report)),
                 "<h2>Verification</h2>", _verification(report.get("verification"))]
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>finn-rtl: {_e(build['name'])}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
