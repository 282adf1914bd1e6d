"""CNV verification (1,000 CIFAR-10 images) and CNV synthesis on a Ray cluster of 1 and of 2 nodes
of 1 CPU each, on this machine (`tests/support/loopback_cluster.py`: each cluster in a private
network namespace with only loopback).

Prints wall times, the speed-up of 2 nodes over 1 (goal: at least 1.8x), and the per-shard
overhead of rtlsim on the cluster (wall time of the shards less the simulators' own clock loops,
per shard), from which it projects ImageNet validation (50,000 images) of the shared MobileNet-v1
on 64 nodes. The designs are built (and their Verilator model compiled) before timing; synthesis
runs with empty caches on the driver and the nodes (the Verilator model is built before timing on each).

    PYTHONPATH=. python benchmarks/bench_cluster.py [--images 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LOOPBACK_CLUSTER = ROOT / "tests" / "support" / "loopback_cluster.py"
CNV_II = 36_864
MOBILENET_II, MOBILENET_KCPS = 394_272, 60.0  # FINN's ZCU104 folding; rtlsim speed measured (bench_imagenet)


def inside(args) -> int:
    """In the cluster: the timed work, one JSON line on stdout."""
    from finn_rtl import cluster
    from finn_rtl.flow import load_build, synthesize_build
    from finn_rtl.sim.rtlsim import simulate

    from finn_rtl.sim.verilator import FAST_SIM, compile_verilog

    cluster.connect(cluster.address_from(None))
    b = load_build(args.build)
    x = np.load(args.inputs)["x"]
    stream = b.network.to_stream(b.input_quantizer.quantize(x))
    compile_verilog(b.verilog, b.network.name, cxx_opt=FAST_SIM)  # the Verilator build is not timed
    start = time.perf_counter()
    run = simulate(b.network, b.verilog, stream, cxx_opt=FAST_SIM)
    sim_wall = time.perf_counter() - start
    synthesis, synth_wall = {"layers": {}}, float("nan")
    if not args.no_synth:
        start = time.perf_counter()
        synthesis = synthesize_build(b)
        synth_wall = time.perf_counter() - start
    print(json.dumps({"sim_wall": sim_wall, "shards": run.cluster["shards"],
                      "loop_seconds": sum(run.cluster["shard_loop_seconds"]),
                      "total_cycles": run.total_cycles, "synth_wall": synth_wall,
                      "units": len(synthesis["layers"]), "outputs": run.outputs.tolist()}))
    return 0


def in_cluster(nodes: int, build: Path, inputs: Path, cache: Path, no_synth: bool) -> dict:
    # a fresh cache for synthesis from scratch; rtlsim alone keeps this machine's Verilator builds
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({} if no_synth else {"FINN_RTL_CACHE": str(cache)})}
    run = subprocess.run(["unshare", "--net", sys.executable, str(LOOPBACK_CLUSTER), "--nodes", str(nodes), "--",
                          sys.executable, __file__, "--inside", "--build", str(build), "--inputs", str(inputs),
                          *(["--no-synth"] if no_synth else [])],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise SystemExit(f"cluster of {nodes} failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--no-synth", action="store_true", help="rtlsim only")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(args)
    sys.path.insert(0, str(ROOT))
    from finn_rtl.flow import build
    from finn_rtl.sim.rtlsim import simulate
    from finn_rtl.sim.verilator import FAST_SIM, compile_verilog

    model = SHARED / "models" / "CNV_2W2A_trained.onnx"
    data = SHARED / "data" / "cifar10_test_jpeg.npz"
    if not model.is_file() or not data.is_file():
        print(f"skipped: {model} or {data} is not available")
        return 0
    work = Path(tempfile.mkdtemp(prefix="finn-rtl-bench-cluster-"))
    images = np.load(data)
    x = (images["x"][:args.images].astype(np.float32) / 255).transpose(0, 3, 1, 2).copy()
    np.savez(work / "inputs.npz", x=x)
    b = build(model, work / "cnv", target_ii=CNV_II)
    compile_verilog(b.verilog, b.network.name, cxx_opt=FAST_SIM)  # not timed, as in the clusters
    start = time.perf_counter()
    alone = simulate(b.network, b.verilog, b.network.to_stream(b.input_quantizer.quantize(x)), jobs=1,
                     cxx_opt=FAST_SIM)
    local_wall = time.perf_counter() - start
    results = {}
    for nodes in (1, 2):
        cache = work / f"cache{nodes}"
        results[nodes] = in_cluster(nodes, work / "cnv", work / "inputs.npz", cache, args.no_synth)
        if not np.array_equal(np.array(results[nodes].pop("outputs")), alone.outputs):
            raise SystemExit(f"the {nodes}-node cluster's outputs differ from this machine's")
    one, two = results[1], results[2]
    overhead = (one["sim_wall"] - one["loop_seconds"]) / one["shards"]  # one node: shards one after another
    print(f"CNV-w2a2 (shared, II {CNV_II:,}), {args.images} images, {one['units'] or 'no'} synthesis units; "
          f"outputs bit-identical on this machine and on both clusters\n")
    print(f"{'':34} {'this machine, 1 process':>24} {'1 node x 1 CPU':>15} {'2 nodes x 1 CPU':>16} {'speed-up':>9}")
    print(f"{'rtlsim wall s':34} {local_wall:>24.1f} {one['sim_wall']:>15.1f} {two['sim_wall']:>16.1f} "
          f"{one['sim_wall'] / two['sim_wall']:>8.2f}x")
    if not args.no_synth:
        print(f"{'Yosys synthesis wall s (no cache)':34} {'':>24} {one['synth_wall']:>15.1f} "
              f"{two['synth_wall']:>16.1f} {one['synth_wall'] / two['synth_wall']:>8.2f}x")
    print(f"\nrtlsim shards: {one['shards']} on 1 node, {two['shards']} on 2 nodes; per-shard overhead on the cluster "
          f"(wall less the simulators' clock loops): {overhead:.2f} s")
    frames, nodes = 50_000, 64
    per_frame = MOBILENET_II / (MOBILENET_KCPS * 1e3)
    shards = 2 * nodes
    projected = frames * per_frame / nodes + overhead * shards / nodes
    print(f"projection, ImageNet validation ({frames:,} images) of the shared MobileNet-v1 at FINN's ZCU104 folding "
          f"(II {MOBILENET_II:,}, {MOBILENET_KCPS:g}k cycles/s per simulator): {frames * per_frame / 3600:.1f} h on one "
          f"CPU; on {nodes} nodes of 1 CPU, {shards} shards: {projected / 3600:.2f} h of rtlsim (the golden "
          f"model runs in shards beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
