"""FIFO depths from simulation (`--size-fifos`)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..graph.network import NetworkSpec


def size_fifos(network: NetworkSpec, frames: int = 4, seed: int = 0) -> tuple[NetworkSpec, dict]:
    """FIFO depths from simulation: a few random frames through deep, monitored FIFOs give each
    FIFO's peak fill level; peak + 1 never lets a producer see a full FIFO, so it keeps the deep
    run's timing. Each FIFO gets the smaller of that and its default depth if a check run still
    reaches the analytic II, else peak + 1."""
    from ..cores.accelerator import PortGeometry, to_verilog
    from ..sim.rtlsim import simulate
    from ..sim.verilator import FAST_BUILD, SimulationError

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
    # and the default depth, and fall back to the peaks if a check run misses the analytic II.
    safe = tuple(max(2, p + 1) for p in peaks)
    lean = tuple(min(d, defaults[i]) for i, d in enumerate(safe))
    candidate = dataclasses.replace(network, fifo_depths=lean)
    try:  # monitored: the check run also says how full each FIFO got at the lean depths
        check = simulate(candidate, to_verilog(candidate, monitor_fifos=True), x, jobs=1, seed=seed,
                         valid_percent=100, monitored_fifos=len(lean), cxx_opt=FAST_BUILD)
        check_ii, check_peaks = check.cycles_per_frame, [int(p) for p in check.fifo_peaks]
    except SimulationError:  # e.g. a shortcut that the rate-limited run did not fill: keep peak + 1
        check_ii, check_peaks = None, None
    depths = lean if check_ii is not None and check_ii <= network.analytic_ii * 1.01 else safe
    # Where streams meet, the depth is the analytic one unless the deep run needed less; the check
    # run at full rate shows it deadlock-free at the analytic II (or falls back to the peaks).
    merges = [{"edge": str(edge), "analytic_depth": defaults[i], "deep_run_peak": peaks[i],
               "check_run_depth": lean[i], "check_run_peak": None if check_peaks is None else check_peaks[i]}
              for i, edge in enumerate(network.edges) if network.layer(edge.consumer).inputs > 1]
    info = {"depths": list(depths), "peaks": peaks, "check_run_ii_cycles": check_ii,
            "merge_inputs": merges,
            "used": "min(peak + 1, default)" if depths == lean else "peak + 1",
            "deep_run_ii_cycles": run.cycles_per_frame, "frames": frames,
            "seconds": round(time.perf_counter() - start, 3)}
    return dataclasses.replace(network, fifo_depths=depths), info
