"""Fit the resource estimate's LUT and flip-flop coefficients to Yosys, and write
finn_rtl/resources/calibration.json.

usage: python benchmarks/calibrate_estimates.py [--check]

The sweep: generated networks (seeded weights) covering every core kind, datapath and memory
style, each at several foldings, so that PE, SIMD, bit widths, depths and thresholds vary.
Every unit (a layer with its input FIFOs and converters, and the top-level glue) is synthesized
with Yosys as `finn-rtl synth` does (cached), and the coefficients of each term are fitted by
non-negative least squares, weighting each unit by 1/size so small units count as much as big
ones; the costs in `estimate.SET_COEFFICIENTS` are set from the structure (and measurements of
it alone). Block RAM and LUT RAM are not fitted (counted exactly); the script prints where those
counts disagree with Yosys. `--check` fits nothing and prints the current file's error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def sweep_models():
    """(name, model, [slowdowns or foldings]) of the calibration sweep: each model is folded to
    reach its fastest II times each slowdown, or as each folding says."""
    from support.convgen import (AvgPoolCfg, ConvCfg, ConvNetCfg, PoolCfg, ResidualCfg, make_convnet,
                                 mobilenet_v1)
    from support.modelgen import LayerCfg, MLPCfg, make_mlp

    models = []
    for bits in (1, 2, 4):
        bipolar = bits == 1
        layers = [LayerCfg(w, w_bits=bits, a_bits=bits, bipolar_op=bipolar) for w in (128, 64)] + \
            [LayerCfg(10, w_bits=bits, norm="none")]
        cfg = MLPCfg(in_shape=(1, 256), layers=layers, input="bipolar" if bipolar else "float")
        models.append((f"mlp-w{bits}a{bits}", make_mlp(cfg, seed=bits), [64, 512, 4096]))
    models.append(("mlp-8bit-in", make_mlp(MLPCfg(in_shape=(1, 64), layers=[
        LayerCfg(32, w_bits=3, a_bits=3), LayerCfg(16, w_bits=8, a_bits=4), LayerCfg(10, w_bits=2, norm="none")]),
        seed=5), [8, 64, 512]))
    conv = ConvNetCfg(in_shape=(1, 3, 16, 16), in_bits=8, features=[
        ConvCfg(16, pad=1, w_bits=2, a_bits=2), PoolCfg(), ConvCfg(32, w_bits=2, a_bits=2),
        ResidualCfg(32, w_bits=2, a_bits=2), ConvCfg(0, depthwise=True, pad=1, w_bits=3, a_bits=3),
        AvgPoolCfg()], fc=[LayerCfg(10, w_bits=2, norm="none")])
    models.append(("convnet", make_convnet(conv, seed=3), [1, 2, 8, 64]))
    models.append(("concat", make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), in_bits=8, features=[
        ConvCfg(8, pad=1, w_bits=3, a_bits=3), ResidualCfg(8, merge="concat", w_bits=3, a_bits=3)],
        fc=[LayerCfg(10, w_bits=3, norm="none")]), seed=4), [4, 32]))
    models.append(("mobilenet", make_convnet(mobilenet_v1(0.25, 4, blocks=3, size=16), seed=6), [2, 16]))
    models.append(("mobilenet-3bit", make_convnet(mobilenet_v1(0.25, 3, blocks=5, size=16), seed=15), [1, 8, 128]))
    # Wide XNOR layers (an LFC's) and wide 2-bit layers at a short II (a TFC-w2a2's).
    models.append(("xnor-wide", make_mlp(MLPCfg(in_shape=(1, 512), input="bipolar", layers=[
        LayerCfg(256, w_bits=1, a_bits=1, bipolar_op=True), LayerCfg(256, w_bits=1, a_bits=1, bipolar_op=True),
        LayerCfg(10, w_bits=1, norm="none")]), seed=7), [16, 128]))
    models.append(("w2a2-wide", make_mlp(MLPCfg(in_shape=(1, 784), layers=[
        LayerCfg(64, w_bits=2, a_bits=2), LayerCfg(64, w_bits=2, a_bits=2), LayerCfg(10, w_bits=2, norm="none")]),
        seed=8), [64]))
    # FINN-style foldings, which the target-II planner never picks (it prefers SIMD to PE): many PEs
    # over block-RAM weights with per-PE thresholds (an LFC's, a CNV's), and one wide PE (a TFC's
    # input layer).
    xnor = LayerCfg(384, w_bits=1, a_bits=1, bipolar_op=True)
    models.append(("xnor-bram", make_mlp(MLPCfg(in_shape=(1, 640), input="bipolar", layers=[
        xnor, xnor, LayerCfg(10, w_bits=1, norm="none")]), seed=12), [
        folding(MatMul_0=(48, 32), MatMul_1=(32, 48), MatMul_2=(5, 8)),
        folding(MatMul_0=(8, 64), MatMul_1=(4, 32), MatMul_2=(1, 4)),
        folding(MatMul_0=(1, 640), MatMul_1=(1, 384), MatMul_2=(2, 4))]))
    models.append(("xnor-input", make_mlp(MLPCfg(in_shape=(1, 576), input="bipolar", layers=[
        LayerCfg(64, w_bits=1, a_bits=1, bipolar_op=True), LayerCfg(10, w_bits=1, norm="none")]), seed=16), [
        folding(MatMul_0=(1, 576), MatMul_1=(1, 64)), folding(MatMul_0=(2, 288), MatMul_1=(1, 32))]))
    bipolar = dict(w_bits=1, a_bits=1, a_signed=True, relu=False)
    models.append(("xnor-conv", make_convnet(ConvNetCfg(in_shape=(1, 3, 12, 12), in_bits=8, bipolar=True, features=[
        ConvCfg(32, **bipolar), ConvCfg(48, **bipolar), PoolCfg(), ConvCfg(96, **bipolar)],
        fc=[LayerCfg(10, w_bits=1, norm="none")]), seed=13), [
        folding(Conv_0=(8, 3), Conv_1=(24, 16), Conv_2=(12, 16), MatMul_0=(1, 8)),
        folding(Conv_0=(2, 3), Conv_1=(4, 32), Conv_2=(2, 48), MatMul_0=(1, 4))]))
    models.append(("w2a2-pe", make_convnet(ConvNetCfg(in_shape=(1, 3, 12, 12), in_bits=8, features=[
        ConvCfg(32, w_bits=2, a_bits=2), ConvCfg(64, w_bits=2, a_bits=2)],
        fc=[LayerCfg(10, w_bits=2, norm="none")]), seed=14), [
        folding(Conv_0=(8, 3), Conv_1=(16, 16), MatMul_0=(1, 16)),
        folding(Conv_0=(4, 3), Conv_1=(4, 32), MatMul_0=(1, 8))]))
    return models


def folding(**layers) -> dict:
    """A folding file's entries: layer name -> (PE, SIMD)."""
    return {name: {"PE": pe, "SIMD": simd} for name, (pe, simd) in layers.items()}


def sweep_units(work: Path):
    """Every unit of the sweep: (sources, top, parts, label)."""
    from finn_rtl.flow.build import BuildOptions, BuildState, step_fold, step_streamline
    from finn_rtl.resources.estimate import network_units
    from finn_rtl.resources.synthesis import synthesis_units

    units = []
    for name, model, targets in sweep_models():
        path = work / f"{name}.onnx"
        onnx.save(model, str(path))
        base = BuildState(path, work / "out", BuildOptions())
        step_streamline(base)
        fastest = base.network.with_folding({layer.name: layer.fold_dims for layer in base.network.foldable})
        for target in targets:
            options = BuildOptions(folding=target) if isinstance(target, dict) else \
                BuildOptions(target_ii=fastest.analytic_ii * target)
            state = BuildState(path, work / "out", options, network=base.network)
            step_fold(state)
            target = state.network.analytic_ii
            for style, network, only in [*multiplier_variants(state.network), *rom_variants(state.network)]:
                sources = synthesis_units(network)
                parts = network_units(network)
                for unit, (text, top) in sources.items():
                    if only is None or unit in only:
                        units.append((text, top, parts[unit], f"{name}@{target}{style}:{unit}"))
    return units


def multiplier_variants(network):
    """(label, network, units to take or None for all): the network as the build chose, and,
    when some layer's products a DSP48 could take, those layers with all products in LUTs and all
    in DSPs (only their units), so both styles are calibrated."""
    capable = [layer for layer in network.layers if layer.products() is not None and layer.products().dsp_capable]
    variants = [("", network, None)]
    for style in ("lut", "dsp") if capable else ():
        variants.append((f"/{style}", network.with_layers({layer.name: layer.with_multiplier_style(style)
                                                           for layer in capable}), {layer.name for layer in capable}))
    return variants


def rom_variants(network):
    """(label, network, units to take): the layers whose weight ROM the build put in LUTs, with it
    in block RAM instead (only their units), so that the fit sees a ROM's LUTs apart from the
    datapath that reads it; the two grow together in every layer, and their coefficients would
    otherwise trade off (seen: 0.74 LUT per ROM column, where a ROM alone measures 1.0 to 2.0)."""
    moved = {layer.name: layer.with_memory_styles({"weights": "block"}) for layer in network.layers
             if "weights" in layer.memories() and layer.memory_style("weights") == "distributed"
             and "block" in layer.memories()["weights"].allowed_styles()}
    return [("/rom-block", network.with_layers(moved), set(moved))] if moved else []


def kind_of(parts) -> str:
    return parts[0][0]


def fit(rows, targets, weights, names):
    from scipy.optimize import nnls

    matrix = np.array([[row.get(n, 0.0) for n in names] for row in rows])
    w = np.asarray(weights)[:, None]
    coef, _ = nnls(matrix * w, np.asarray(targets) * w[:, 0], maxiter=50 * len(names))
    return dict(zip(names, (round(float(c), 4) for c in coef)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="print the current calibration's error only")
    args = parser.parse_args()
    from finn_rtl.resources import estimate
    from finn_rtl.resources.synthesis import synthesize, yosys_command, yosys_version

    version = yosys_version()
    with tempfile.TemporaryDirectory() as work:
        units = sweep_units(Path(work))
    print(f"{len(units)} units; synthesizing (cached)...", flush=True)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        measured = list(pool.map(lambda u: synthesize(u[0], u[1], version)["resources"], units))

    terms = [estimate.unit_terms(parts) for _, _, parts, _ in units]
    exact_misses = [(label, column, t[0][column], m[column]) for (_, _, _, label), t, m in zip(units, terms, measured)
                    for column in ("LUTRAM", "BRAM18", "BRAM36") if t[0][column] != m[column]]
    if not args.check:
        names = sorted({name for _, model, _ in terms for name in model})
        set_costs = estimate.SET_COEFFICIENTS
        coefficients = {column: fit([t[1] for t in terms],
                                    [m[column] - sum(set_costs[column].get(n, 0) * v for n, v in t[1].items())
                                     for t, m in zip(terms, measured)],
                                    [1 / max(10, m[column]) for m in measured],
                                    [name for name in names if estimate.fitted(column, name)])
                        for column in ("LUT", "FF")}
        for column, table in coefficients.items():
            table.update({name: set_costs[column].get(name, 0.0)
                          for name in names if not estimate.fitted(column, name)})
        document = {"yosys": version, "command": " ".join(Path(c).name for c in yosys_command()),
                    "units": len(units), "sweep": [name for name, _, _ in sweep_models()], **coefficients}
        estimate.CALIBRATION.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        estimate.calibration.cache_clear()

    by_kind = defaultdict(list)
    for (_, _, parts, label), m in zip(units, measured):
        predicted = estimate.estimate_unit(parts)["resources"]
        by_kind[kind_of(parts)].append((label, predicted, m))
    print(f"\n{'kind':16}{'units':>6}{'LUT err (mean abs)':>20}{'worst':>8}{'FF err':>8}{'worst':>8}")
    for kind, rows in sorted(by_kind.items()):
        errors = {c: [abs(p[c] - m[c]) / max(m[c], 1) for _, p, m in rows] for c in ("LUT", "FF")}
        print(f"{kind:16}{len(rows):>6}{np.mean(errors['LUT']):>20.1%}{max(errors['LUT']):>8.1%}"
              f"{np.mean(errors['FF']):>8.1%}{max(errors['FF']):>8.1%}")
    print("\nworst units per kind (LUT estimate / Yosys):")
    for kind, rows in sorted(by_kind.items()):
        worst = sorted(rows, key=lambda r: -abs(r[1]["LUT"] - r[2]["LUT"]) / max(r[2]["LUT"], 1))[:3]
        print(f"  {kind}: " + "; ".join(f"{label.split(':')[0]} {p['LUT']}/{m['LUT']}" for label, p, m in worst))
    if exact_misses:
        print(f"\nexact columns that disagree with Yosys ({len(exact_misses)}):")
        for label, column, predicted, actual in exact_misses[:20]:
            print(f"  {label}: {column} estimated {predicted}, Yosys {actual}")
    else:
        print("\nLUTRAM, BRAM18 and BRAM36 agree with Yosys on every unit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
