"""Whole-network rtlsim: pack frames into AXI-stream beats, run Verilator, unpack, measure."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..cores.accelerator import PortGeometry
from ..cores.fifo import PEAK_BITS
from ..cores.weight_port import register_writes
from ..graph.datatypes import QType
from ..graph.network import NetworkSpec
from ..graph.weight_map import WeightMap
from . import partition, verilator

SHARD_CYCLES = 250_000  # simulated cycles per extra simulator process, at least


def pack_beats(values: np.ndarray, qtype: QType, lanes: int, beat_bits: int) -> np.ndarray:
    """ints [frames, elements] -> uint32 words [beats, ceil(beat_bits/32)], element 0 in the LSBs."""
    codes = qtype.encode(values).reshape(-1, lanes)  # [beats, lanes]
    bits = ((codes[:, :, None] >> np.arange(qtype.bits, dtype=np.uint64)) & 1).astype(np.uint8)
    bits = bits.reshape(len(codes), lanes * qtype.bits)
    n_words = verilator.words_per_beat(beat_bits)
    padded = np.zeros((len(codes), n_words * 32), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").reshape(len(codes), n_words)


def unpack_beats(words: np.ndarray, qtype: QType, lanes: int) -> np.ndarray:
    """uint32 words [beats, n] -> ints [beats * lanes]."""
    raw = np.ascontiguousarray(words, dtype="<u4").view(np.uint8)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :lanes * qtype.bits]
    bits = bits.reshape(len(words), lanes, qtype.bits).astype(np.uint64)
    codes = (bits << np.arange(qtype.bits, dtype=np.uint64)).sum(axis=2)
    return qtype.decode(codes.reshape(-1))


@dataclass(frozen=True)
class RtlsimResult:
    outputs: np.ndarray  # [frames, out_elements] ints
    total_cycles: int
    frame_in_cycle: np.ndarray
    frame_out_cycle: np.ndarray
    wall_seconds: float
    build_seconds: float
    loop_seconds: float  # slowest simulator process's clock loop (the processes run in parallel)
    fifo_peaks: np.ndarray | None = None  # highest fill level per FIFO, for monitored designs
    cluster: dict | None = None  # where it ran, on a cluster: nodes, shards, reruns
    threads: int = 1  # simulator threads per process: 2 where the design was cut in two (`partition`)

    @property
    def cycles_per_frame(self) -> float:
        """Steady-state initiation interval: spacing of frame completions after the first."""
        done = self.frame_out_cycle
        if len(done) < 2:
            return float(self.total_cycles)
        skip = min(len(done) // 4, 8)  # let the pipeline and FIFOs fill before measuring
        return float(done[-1] - done[skip]) / (len(done) - 1 - skip)

    @property
    def latency_cycles(self) -> int:
        """First frame: first input beat accepted to last output beat, on an empty pipeline."""
        return int(self.frame_out_cycle[0] - self.frame_in_cycle[0] + 1)

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles per second of all simulator processes together, in their clock loops
        (process start-up, ROM initialisation and file I/O are in `wall_seconds` only)."""
        return self.total_cycles / self.loop_seconds if self.loop_seconds else float("inf")


def describe_fifo_levels(network: NetworkSpec, stall_report: str) -> str:
    """Name, from a monitored stall report, the FIFOs that are full or empty: a full FIFO's
    consumer stopped taking data, an empty one's producer stopped delivering."""
    lines = [line for line in stall_report.splitlines() if line.startswith("fifo_levels")]
    if not lines:
        return "(no FIFO levels in the stall report)"
    count = len(network.edges)
    words = np.array(lines[-1].split()[1:], dtype=np.uint64).astype("<u4")[None, :]
    levels = unpack_beats(words, QType(PEAK_BITS, False), count)
    rows = []
    for index, (edge, level) in enumerate(zip(network.edges, levels)):
        depth = network.fifo_depth(index)
        state = "full: its consumer stopped taking data" if level >= depth else \
            "empty" if level == 0 else "partly filled"
        rows.append(f"  FIFO {edge}: {int(level)}/{depth} beats ({state})")
    return "FIFO levels at the stall:\n" + "\n".join(rows)


def simulate(network: NetworkSpec, verilog: str, inputs: np.ndarray, *, valid_percent: int = 100,
             ready_percent: int = 100, seed: int = 1, jobs: int | None = None,
             monitored_fifos: int = 0, cxx_opt: str | None = None) -> RtlsimResult:
    """Run int frames [n, in_elements] through the compiled design; returns int outputs.

    Large batches are split over `jobs` simulator processes (default: one per
    core); cycle statistics come from the first shard, which starts on an empty
    pipeline like every shard.
    """
    return simulate_points(network, verilog, inputs, [(valid_percent, ready_percent)], seed=seed, jobs=jobs,
                           monitored_fifos=monitored_fifos, cxx_opt=cxx_opt)[0]


def simulate_points(network: NetworkSpec, verilog: str, inputs: np.ndarray, points: list[tuple[int, int]], *,
                    seed: int = 1, jobs: int | None = None, monitored_fifos: int = 0,
                    cxx_opt: str | None = None) -> list[RtlsimResult]:
    """`simulate` of the same frames at each (input valid %, output ready %) point, all points'
    shards at once (local processes, or tasks on the active cluster): a backpressure sweep costs
    the wall time of its slowest shard, not the sum of its runs. One result per point."""
    inputs = np.asarray(inputs, dtype=np.int64).reshape(len(inputs), network.in_elements)
    # Optimised C++ pays back when cycles x design size is large (measured: TFC_2W2A at II 64 on
    # 10k frames takes 101 s in total at -O0, 30 s at -O2; a small random MLP the other way round).
    work = len(points) * len(inputs) * network.analytic_ii * len(verilog)
    opt = cxx_opt or (verilator.FAST_SIM if work > 1e11 else verilator.FAST_BUILD)
    peak_words = verilator.words_per_beat(PEAK_BITS * monitored_fifos) if monitored_fifos else 0
    writes = register_writes(network) if WeightMap.of(network) else None
    from .. import cluster

    on_cluster = cluster.active()
    cpus = jobs or os.cpu_count() or 1
    if on_cluster is not None:
        shards = shard_plan(len(inputs), network.analytic_ii, max(1, on_cluster.cpus // len(points)))
    else:
        shards = local_shards(len(inputs), network.analytic_ii, max(1, cpus // len(points)))
    plan = [(point, index, shard) for point in points for index, shard in enumerate(shards)]
    # One simulator process on a machine with a core to spare: a large design is cut in two, a
    # thread for each half (`partition`); cuts that are not exact are found as the run goes.
    threads = on_cluster is None and not monitored_fifos and len(plan) == 1 and cpus >= 2 and \
        partition.worth_threads(network)
    while True:
        try:
            design = verilator.compile_verilog(
                verilog, network.name, cxx_opt=opt, fifo_peak_words=peak_words, weight_port=writes is not None,
                split=(lambda: partition.partition(network, verilog)) if threads else None)
            start = time.perf_counter()
            if on_cluster is not None:
                runs, placement = _run_on_cluster(on_cluster, network, design, inputs, plan, shards, writes, seed)
            else:
                runs, placement = _run_here(network, design, inputs, plan, writes, seed, jobs, monitored_fifos), None
            break
        except partition.CutError:
            threads = False  # the whole design on one thread
        except verilator.SimulationError as error:
            if not (threads and partition.CUT_NOT_EXACT in str(error)):
                raise
            threads = False  # a half's values followed the cycle's inputs: one thread
    wall = time.perf_counter() - start
    results = []
    for number in range(len(points)):
        mine = runs[number * len(shards):(number + 1) * len(shards)]
        results.append(_result(network, len(inputs), mine, wall, design.build_seconds, monitored_fifos, placement,
                               2 if threads else 1))
    return results


def local_shards(frames: int, cycles_per_frame: int, jobs: int) -> list[np.ndarray]:
    """Frame indices of each local simulator process. A shard pays a process start and a
    pipeline fill, so it needs enough work: 64 frames, or SHARD_CYCLES cycles for slow designs
    (CNV at II 36,864 on 100 images, 3.7 M cycles, ran as one process at 0.85 M cycles/s, where
    two take 0.8 M each in parallel)."""
    enough = max(frames // 64, frames * cycles_per_frame // SHARD_CYCLES)
    worth = max(1, min(frames // 2, enough))
    return [s for s in np.array_split(np.arange(frames), min(jobs, worth)) if len(s)]


def _run_here(network, design, inputs, plan, writes, seed, jobs, monitored_fifos) -> list:
    """The plan's shards as local simulator processes; a stall is rerun with the FIFO levels
    exposed, to say where the stream stopped."""
    def run(job):
        (valid, ready), index, shard = job
        words, args, kwargs = shard_stream(network, inputs, shard, index, writes, valid_percent=valid,
                                           ready_percent=ready, seed=seed)
        try:
            return verilator.run_stream(design, words, *args, **kwargs)
        except verilator.SimulationError as error:
            error.point = (valid, ready)
            raise

    try:
        with ThreadPoolExecutor(max_workers=min(len(plan), jobs or os.cpu_count() or 1)) as pool:
            return list(pool.map(run, plan))
    except verilator.SimulationError as error:
        if "stall:" not in str(error) or monitored_fifos or not network.edges:
            raise
        from ..cores.accelerator import to_verilog
        valid, ready = error.point
        try:
            simulate(network, to_verilog(network, monitor_fifos=True), inputs, valid_percent=valid,
                     ready_percent=ready, seed=seed, jobs=jobs, monitored_fifos=len(network.edges))
        except verilator.SimulationError as diagnosed:
            raise verilator.SimulationError(f"{error}\n{describe_fifo_levels(network, str(diagnosed))}") from None
        raise


def _run_on_cluster(on_cluster, network, design, inputs, plan, shards, writes, seed) -> tuple[list, dict]:
    """The plan's shards (`shards` at each point) as tasks on a Ray cluster (`finn_rtl.cluster`);
    every frame of every point must come back exactly once."""
    from ..cluster import ClusterError, run_shard

    executable = on_cluster.ship(design.executable)
    key = design.executable.parent.name
    jobs, names = [], []
    for (valid, ready), index, shard in plan:
        words, args, kwargs = shard_stream(network, inputs, shard, index, writes, valid_percent=valid,
                                           ready_percent=ready, seed=seed)
        jobs.append((executable, key, network.name, shard.tolist(), words, args, kwargs))
        names.append(f"rtlsim shard {index}" + (f" at valid {valid}%, ready {ready}%" if (valid, ready) != (100, 100) else ""))
    results, reruns = on_cluster.run_tasks(run_shard, jobs, names,
                                           f"rtlsim on {len(on_cluster.nodes)} nodes: {len(jobs)} shards")
    for point in dict.fromkeys(point for point, _, _ in plan):
        covered = sorted(frame for (p, _, _), result in zip(plan, results) if p == point
                         for frame in result["value"]["frames"])
        if covered != list(range(len(inputs))):
            raise ClusterError(f"the cluster's shards returned {len(covered)} frames for {len(inputs)}")
    runs = [result["value"]["run"] for result in results]
    placement = {"shards": len(shards), "frames_per_shard": [len(s) for s in shards],
                 "shard_nodes": [result["node"] for result in results],
                 "shard_loop_seconds": [round(r.loop_seconds, 3) for r in runs], "reruns": reruns,
                 **on_cluster.describe()}
    return runs, placement


def _result(network, frames, runs, wall, build_seconds, monitored_fifos, placement, threads=1) -> RtlsimResult:
    """One point's shards put together in frame order; cycle statistics from the first shard."""
    top = PortGeometry.of(network)
    outputs = np.concatenate([unpack_beats(r.output_words, network.output_type, top.out_elements_per_beat)
                              for r in runs])
    peaks = None
    if monitored_fifos:
        words = np.stack([r.fifo_peak_words for r in runs]).astype("<u4")
        per_run = np.stack([unpack_beats(w[None, :], QType(PEAK_BITS, False), monitored_fifos) for w in words])
        peaks = per_run.max(axis=0)
    first = runs[0]
    return RtlsimResult(outputs.reshape(frames, network.out_elements), sum(r.total_cycles for r in runs),
                        first.frame_in_cycle, first.frame_out_cycle, wall, build_seconds,
                        max(r.loop_seconds for r in runs), peaks, placement, threads)


def shard_stream(network: NetworkSpec, inputs: np.ndarray, shard: np.ndarray, index: int, writes, *,
                 valid_percent: int, ready_percent: int, seed: int) -> tuple[np.ndarray, tuple, dict]:
    """One shard's `verilator.run_stream` arguments: (input words, positional rest, keywords)."""
    top = PortGeometry.of(network)
    words = pack_beats(inputs[shard], network.input_type, top.in_elements_per_beat, top.in_width)
    return words, (top.in_beats_per_frame, top.out_width, top.out_beats_per_frame, len(shard)), {
        "valid_percent": valid_percent, "ready_percent": ready_percent, "seed": seed + index,
        "max_idle": max(10_000, 4 * network.analytic_ii), "weight_writes": writes}


def shard_plan(frames: int, cycles_per_frame: int, cpus: int) -> list[np.ndarray]:
    """Frame indices of each cluster shard: about two shards per CPU for balance, each at least
    16 frames or SHARD_CYCLES cycles (a shard pays a process start and a pipeline fill)."""
    enough = max(1, min(frames // 16, frames * cycles_per_frame // SHARD_CYCLES))
    count = max(1, min(2 * cpus, enough, frames))
    return [s for s in np.array_split(np.arange(frames), count) if len(s)]
