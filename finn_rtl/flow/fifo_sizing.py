"""FIFO depths from simulation (`--size-fifos`)."""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..graph.network import NetworkSpec


def size_fifos(network: NetworkSpec, frames: int = 4, seed: int = 0) -> tuple[NetworkSpec, dict]:
    """FIFO depths from simulation: a few random frames through deep, monitored FIFOs give each
    FIFO's peak fill level; peak + 1 never lets a producer see a full FIFO, so it keeps the deep
    run's timing. Each FIFO gets the smaller of that and its default depth if a check run still
    reaches the analytic II, else peak + 1; a candidate must also run without a stall under
    input and output backpressure (`CHECK_POINTS`), both candidates checked at once."""
    from ..cores.accelerator import PortGeometry, to_verilog
    from ..sim.rtlsim import simulate
    from ..sim.verilator import FAST_BUILD

    start = time.perf_counter()
    if not network.edges:
        return network, {"depths": [], "peaks": [], "seconds": 0.0}
    defaults = network.default_fifo_depths
    deep = []
    for index, edge in enumerate(network.edges):
        # Deep enough never to throttle: a whole producer frame (capped for very large frames).
        frame = network.layer(edge.producer).out_elements // network.fifo_lanes(index)
        deep.append(max(defaults[index], min(frame, (1 << 15) - 1)))
    sizing = dataclasses.replace(network, fifo_depths=tuple(deep))
    qtype = network.input_type
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], (frames, network.in_elements)) if qtype.bipolar else \
        rng.integers(qtype.min, qtype.max + 1, (frames, network.in_elements))
    # Input arrives at the rate the design sustains (one frame per analytic II), as it would in
    # a system that keeps up with the accelerator: at full rate, upstream layers would run ahead
    # into the deep FIFOs and the peaks would measure that, not what the II needs.
    in_beats = PortGeometry.of(network).in_beats_per_frame
    valid_percent = max(1, min(100, -(-100 * in_beats // network.analytic_ii)))
    # A few frames: unoptimised C++ compiles several times faster and runs fast enough.
    run = simulate(sizing, to_verilog(sizing, monitor_fifos=True), x, jobs=1, seed=seed,
                   valid_percent=valid_percent, monitored_fifos=len(deep), cxx_opt=FAST_BUILD)
    peaks = [int(p) for p in run.fifo_peaks]
    # A FIFO behind a fast producer fills up to the producer's lead, which a shallower FIFO would
    # only turn into producer stalls that cost no throughput; so take the smaller of the peak
    # and the default depth, and fall back to the peaks if a check misses the analytic II.
    safe = tuple(max(2, p + 1) for p in peaks)
    lean = tuple(min(d, defaults[i]) for i, d in enumerate(safe))
    candidates = {"min(peak + 1, default)": lean, "peak + 1": safe}
    if lean == safe:
        del candidates["peak + 1"]
    # Both candidates at once (their Verilator builds too), each at full rate and under input
    # and output backpressure: depths that only work at full rate would deadlock a fork and its
    # join when the host or the DMA pauses. On a cluster (--cluster), every point is a task.
    with ThreadPoolExecutor(len(candidates)) as pool:
        checks = dict(zip(candidates, pool.map(lambda depths: _check(network, depths, x, seed),
                                               candidates.values())))
    used = next((name for name, check in checks.items() if check["passed"] and
                 (name == "peak + 1" or check["ii_cycles"] <= network.analytic_ii * 1.01)), None)
    depths = candidates[used] if used else network.fifo_depths
    lean_check = checks["min(peak + 1, default)"]
    # Where streams meet, the depth is the analytic one unless the deep run needed less; the
    # check runs show it deadlock-free at the analytic II (or the peaks are used).
    merges = [{"edge": str(edge), "analytic_depth": defaults[i], "deep_run_peak": peaks[i],
               "check_run_depth": lean[i],
               "check_run_peak": None if lean_check["peaks"] is None else lean_check["peaks"][i]}
              for i, edge in enumerate(network.edges) if network.layer(edge.consumer).inputs > 1]
    info = {"depths": list(defaults if depths is None else depths), "peaks": peaks,
            "check_run_ii_cycles": lean_check["ii_cycles"],
            "merge_inputs": merges,
            "used": used or "default (the sized depths stalled under backpressure)",
            "checks": {name: {key: value for key, value in check.items() if key != "peaks"}
                       for name, check in checks.items()},
            "deep_run_ii_cycles": run.cycles_per_frame, "frames": frames,
            "seconds": round(time.perf_counter() - start, 3)}
    return dataclasses.replace(network, fifo_depths=depths), info


# Where the sized depths are checked: full rate (the II), then input and output backpressure.
CHECK_POINTS = ((100, 100), (50, 100), (100, 50))


def _check(network: NetworkSpec, depths: tuple, x: np.ndarray, seed: int) -> dict:
    """`network` at `depths` run at every CHECK_POINTS point at once, monitored: whether every
    point finished without a stall, the full-rate II and FIFO peaks, and the points that stalled."""
    from ..cluster import ClusterError
    from ..cores.accelerator import to_verilog
    from ..sim.rtlsim import simulate_points
    from ..sim.verilator import FAST_BUILD, SimulationError

    def run(points):  # a shard per point: the II needs the frames back to back
        return simulate_points(candidate, verilog, x, points, seed=seed, jobs=len(points),
                               monitored_fifos=len(depths), cxx_opt=FAST_BUILD)

    def stall(error) -> bool:  # on a cluster, a shard's stall comes back as the task's failure
        return isinstance(error, SimulationError) or "stall:" in str(error)

    candidate = dataclasses.replace(network, fifo_depths=depths)
    verilog = to_verilog(candidate, monitor_fifos=True)
    results, stalled = {}, []
    try:
        results = dict(zip(CHECK_POINTS, run(list(CHECK_POINTS))))
    except (SimulationError, ClusterError) as error:  # which point: each alone (rare: the fallback)
        if not stall(error):
            raise
        for point in CHECK_POINTS:
            try:
                results[point] = run([point])[0]
            except (SimulationError, ClusterError) as alone:
                if not stall(alone):
                    raise
                stalled.append(list(point))
        stalled = stalled or [["unknown", str(error).splitlines()[0]]]
    full_rate = results.get(CHECK_POINTS[0])
    placement = next((r.cluster for r in results.values() if r.cluster), None)
    return {"passed": not stalled, "stalled_at_valid_ready_percent": stalled,
            "points_valid_ready_percent": [list(p) for p in CHECK_POINTS],
            "ii_cycles": None if full_rate is None else full_rate.cycles_per_frame,
            "peaks": None if full_rate is None else [int(p) for p in full_rate.fifo_peaks],
            "ran_on": "cluster" if placement else "this machine"}
