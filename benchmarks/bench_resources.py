"""Measured resources (Yosys synth_xilinx per layer, `finn-rtl synth`) of FINN's published designs
at FINN's folding, beside FINN's published figures.

usage: python benchmarks/bench_resources.py [--designs cnv-w1a1 tfc-w1a1 tfc-w2a2]

Our numbers are Yosys 7-series primitives of each layer out of context (sum of the units: the
accelerator alone); FINN's are Vivado post-implementation utilisation of the whole system on a
Pynq-Z1 (accelerator, DMA, interconnect). They are not the same count: compare LUT primitives and
BRAM tiles as an indication, not to the last unit. CNV-w1a1 uses seeded weights (the model zoo's
file is not available here): resources depend on weight values only through ROM contents.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))

# BNN-PYNQ's published whole-system figures on Pynq-Z1 (the numbers issue 11 quotes).
PUBLISHED = {"cnv-w1a1": {"LUT": 26072, "BRAM36": 124, "DSP": 24, "II": 32768},
             "lfc-w1a1": {"LUT": 28360, "BRAM36": 110, "DSP": 4, "II": 512}}
# FINN's per-layer (PE, SIMD) for CNV-w1a1 on Pynq-Z1: six convs, then three FC layers. FINN's
# pools are not folded by PE/SIMD; SIMD 2 keeps the first pool under the convs' II.
CNV_FOLDING = [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (5, 1)]


def cnv_w1a1(work: Path):
    from support.convgen import CNV_W1A1, make_convnet

    model = work / "cnv_w1a1.onnx"
    onnx.save(make_convnet(CNV_W1A1, seed=7), str(model))
    names = [f"Conv_{i}" for i in range(6)] + [f"MatMul_{i}" for i in range(3)]
    folding = {name: {"PE": pe, "SIMD": simd} for name, (pe, simd) in zip(names, CNV_FOLDING)}
    folding.update({"MaxPool_0": {"SIMD": 2}, "MaxPool_1": {"SIMD": 2}})
    return model, {"folding": folding}


# FINN's LFC-w1a1 folding pads L0's input to 832 (PE 32, SIMD 64) and L3's outputs to 64 (PE 16,
# SIMD 8). Without padding, the nearest legal foldings at the same II of 512 cycles: L0 SIMD 49
# (784 = 16 x 49) with PE 32; L1, L2 as FINN; L3 (10 outputs) PE 5, SIMD 4 (2 x 256 cycles).
LFC_FOLDING = {"MatMul_0": (32, 49), "MatMul_1": (64, 32), "MatMul_2": (32, 64), "MatMul_3": (5, 4)}


def lfc_w1a1(work: Path):
    """BNN-PYNQ's LFC: 784 binarized pixels, three fully connected 1024 layers and 10 outputs, all
    binary (XNOR) after the input, seeded weights."""
    from support.modelgen import LayerCfg, MLPCfg, make_mlp

    model = work / "lfc_w1a1.onnx"
    hidden = [LayerCfg(1024, w_bits=1, a_bits=1, bipolar_op=True) for _ in range(3)]
    cfg = MLPCfg(in_shape=(1, 784), input="bipolar", layers=[*hidden, LayerCfg(10, w_bits=1, norm="none")])
    onnx.save(make_mlp(cfg, seed=11), str(model))
    return model, {"folding": {name: {"PE": pe, "SIMD": simd} for name, (pe, simd) in LFC_FOLDING.items()}}


def tfc(name: str):
    def make(work: Path):
        model = SHARED / "models" / f"{name}.onnx"
        if not model.is_file():
            raise FileNotFoundError(model)
        return model, {"target_ii": 64}
    return make


DESIGNS = {"cnv-w1a1": cnv_w1a1, "lfc-w1a1": lfc_w1a1, "tfc-w1a1": tfc("TFC_1W1A"), "tfc-w2a2": tfc("TFC_2W2A")}


def synthesized_builds(designs: dict, names, width: int):
    """(name, build with synthesis) of each design, in a temporary directory each; a design whose
    model file is missing is reported as skipped."""
    from finn_rtl.flow import build

    for name in names:
        with tempfile.TemporaryDirectory() as out:
            try:
                model, options = designs[name](Path(out))
            except FileNotFoundError as missing:
                print(f"{name:{width}} skipped: {missing} not found")
                continue
            yield name, build(model, Path(out) / "build", synth=True, **options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    args = parser.parse_args()
    from finn_rtl.resources.synthesis import COLUMNS

    columns = ["II", *COLUMNS, "BRAM36 tiles", "synth s", "cached"]
    print(f"{'design':18}" + "".join(f"{c:>13}" for c in columns))
    for name, b in synthesized_builds(DESIGNS, args.designs, 18):
        synth = b.report["resources"]["synthesis"]
        total = synth["total"]
        tiles = total["BRAM36"] + total["BRAM18"] / 2
        values = [b.network.analytic_ii, *(total[c] for c in COLUMNS), f"{tiles:g}", f"{synth['seconds']:.0f}",
                  f"{synth['units_cached']}/{synth['units_cached'] + synth['units_synthesized']}"]
        print(f"{name + ' (ours)':18}" + "".join(f"{v:>13}" for v in values), flush=True)
        if name in PUBLISHED:
            published = PUBLISHED[name]
            values = [published["II"], published["LUT"], *["-"] * (len(COLUMNS) - 2), published["DSP"],
                      published["BRAM36"], "-", "-"]
            print(f"{name + ' (FINN)':18}" + "".join(f"{v:>13}" for v in values))
    print("\nours: Yosys synth_xilinx per layer out of context, sum of units; FINN: Vivado, whole system "
          "on Pynq-Z1 (BNN-PYNQ); LUT excludes LUT RAM; BRAM36 tiles = BRAM36 + BRAM18 / 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
