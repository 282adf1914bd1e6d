"""Folding that knows the device: the Pareto frontier of throughput against resources, from
estimates, and the folding a budget (a board, or explicit limits) allows.

Candidates are the network folded for each reachable initiation interval (every cycle count
some layer can take, thinned to steps of at least `STEP`), each layer with the fewest lanes that
reach it (`graph.folding`), as FINN's SetFolding does for one target. Each candidate is
estimated (`estimate.estimate_network`, and its Fmax at the requested clock by `fmax`), so a
whole frontier takes seconds. Frames per second are counted at the clock a candidate reaches: the
requested one, or its estimated Fmax where that is lower.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.errors import CompileError
from ..graph.folding import fold_for_target, fold_tables
from ..cores.pipelining import DEFAULT_MHZ
from ..graph.network import NetworkSpec
from ..progress import track
from .estimate import estimate_network
from .fmax import estimate_fmax
from .device import device_of, fit_to_device

STEP = 1.04  # candidate IIs at least 4% apart
DEFAULT_MARGIN = 0.8  # of each device resource: room for the shell, DMA and routing


@dataclass(frozen=True)
class Budget:
    """Resource limits: LUTs, flip-flops, block RAM (36 kb tiles: a BRAM18 is half a tile),
    DSPs; None where unlimited."""

    name: str
    lut: float | None = None
    ff: float | None = None
    bram36: float | None = None
    dsp: float | None = None
    uram: float | None = None
    device: object = None  # the board's `Capacity`, when the budget is a board's
    family: str = "7series"  # the timing family (`resources.timing.FAMILIES`) of the board

    @staticmethod
    def of_board(board, margin: float = DEFAULT_MARGIN) -> "Budget":
        c = board.capacity
        urams = f", {c.uram} URAM" if c.uram else ""
        return Budget(f"{board.name} ({margin:.0%} of {c.lut:,} LUTs, {c.bram36} BRAM36{urams}, {c.dsp} DSPs)",
                      margin * c.lut, margin * c.ff, margin * c.bram36, margin * c.dsp, margin * c.uram, c,
                      board.timing_family)

    def with_limits(self, lut=None, bram36=None, dsp=None) -> "Budget":
        """Explicit limits replace the board's (or stand alone)."""
        name = self.name if lut is bram36 is dsp is None else ", ".join(
            f"{label} {value:,}" for label, value in (("LUTs", lut), ("BRAM36", bram36), ("DSPs", dsp))
            if value is not None) + (f"; {self.name}" if self.name != "unlimited" else "")
        return Budget(name, lut if lut is not None else self.lut, self.ff,
                      bram36 if bram36 is not None else self.bram36, dsp if dsp is not None else self.dsp,
                      self.uram, self.device, self.family)

    def exceeded(self, total: dict) -> list[str]:
        """The limits `total` (estimate columns) goes over, as 'LUT 61,000 > 42,560'."""
        used = device_use(total)
        limits = {"LUT": self.lut, "FF": self.ff, "BRAM36": self.bram36, "URAM": self.uram, "DSP": self.dsp}
        return [f"{column} {used[column]:,.0f} > {limit:,.0f}" for column, limit in limits.items()
                if limit is not None and used[column] > limit]


UNLIMITED = Budget("unlimited")


def device_use(total: dict) -> dict:
    """What resource counts (estimate or synthesis columns) take of a device, in its units: LUTs
    (LUT RAM included), flip-flops, 36 kb block RAMs (a BRAM18 is half), UltraRAMs, DSPs."""
    return {"LUT": total["LUT"] + total.get("LUTRAM", 0), "FF": total["FF"],
            "BRAM36": total["BRAM36"] + total["BRAM18"] / 2, "URAM": total.get("URAM", 0), "DSP": total["DSP"]}


def device_share(total: dict, device) -> float:
    """The largest fraction of the device's LUTs, block RAM, UltraRAM and DSPs that estimate `total`
    takes: what "fewest resources" minimises, whichever resource is the scarce one."""
    used = device_use(total)
    shares = {"LUT": device.lut, "BRAM36": device.bram36, "URAM": device.uram, "DSP": device.dsp}
    return max(used[name] / capacity for name, capacity in shares.items() if capacity)


@dataclass(frozen=True)
class Candidate:
    ii: int
    network: NetworkSpec
    estimate: dict
    share: float  # `device_share` of the estimate
    fmax_mhz: float  # estimated Fmax (`fmax.estimate_fmax`) on the budget's family

    @property
    def total(self) -> dict:
        return self.estimate["total"]

    @property
    def luts(self) -> int:
        return self.total["LUT"] + self.total["LUTRAM"]

    def fps(self, clock_mhz: float) -> float:
        """Frames per second at the requested clock, or at the estimated Fmax where lower."""
        return min(clock_mhz, self.fmax_mhz) * 1e6 / self.ii

    def row(self, clock_mhz: float) -> dict:
        total = self.total
        return {"ii_cycles": self.ii, "fps": round(self.fps(clock_mhz), 1), "fmax_mhz": self.fmax_mhz,
                "LUT": self.luts, "FF": total["FF"],
                "BRAM36": total["BRAM36"] + total["BRAM18"] / 2, "URAM": total.get("URAM", 0), "DSP": total["DSP"],
                "device_share": round(self.share, 4), "folding": self.network.folding}


def candidate_iis(network: NetworkSpec, tables: dict) -> list[int]:
    """Reachable IIs, fastest first, thinned to steps of at least STEP."""
    # The fastest II: each foldable layer fully parallel, and the layers that do not fold.
    fastest = max([min(cycles for _, _, cycles in table) for table in tables.values()] +
                  [layer.cycles_per_frame for layer in network.layers
                   if not layer.fold_dims and layer.lanes_follow is None], default=1)
    reachable = sorted({cycles for table in tables.values() for _, _, cycles in table if cycles >= fastest}
                       | {fastest})
    kept = []
    for ii in reachable:
        if not kept or ii >= kept[-1] * STEP or ii == reachable[-1]:
            kept.append(ii)
    return kept


def candidates(network: NetworkSpec, budget: Budget | None = None, clock_mhz: float = DEFAULT_MHZ) -> list[Candidate]:
    """The network folded (fewest lanes) for each candidate II, fastest first, with estimates,
    its memory styles and products chosen for the budget's device (`device.fit_to_device`), its
    pipelines placed for `clock_mhz`. Foldings that reach the same II as a faster target are the
    same design: kept once."""
    tables = fold_tables(network)
    device = device_of(budget)
    found, seen = [], set()
    targets = candidate_iis(network, tables)
    for target in track(targets, f"estimating {len(targets)} foldings"):
        folded = fold_for_target(network, target, tables)
        key = tuple(sorted((name, tuple(sorted(entry.items()))) for name, entry in folded.folding.items()))
        if key in seen:
            continue
        seen.add(key)
        folded = fit_to_device(folded, budget).with_clock(clock_mhz)
        estimate = estimate_network(folded)
        fmax = estimate_fmax(folded)["families"][budget.family if budget else "7series"]["fmax_mhz"]
        found.append(Candidate(folded.analytic_ii, folded, estimate, device_share(estimate["total"], device), fmax))
    return found


def pareto(found: list[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both II and device share (fastest first)."""
    frontier = []
    for candidate in sorted(found, key=lambda c: (c.share, c.luts, c.ii)):
        if not frontier or candidate.ii < frontier[-1].ii:
            frontier.append(candidate)
    return sorted(frontier, key=lambda c: c.ii)


def plan(network: NetworkSpec, budget: Budget, clock_mhz: float, target_fps: float | None = None,
         found: list[Candidate] | None = None) -> Candidate:
    """With `target_fps`: the candidate that reaches it with the fewest resources (the smallest
    device share, then the fewest LUTs) within the budget. Without: the fastest that fits.
    CompileError says what fits when nothing asked for does."""
    found = found if found is not None else candidates(network, budget, clock_mhz)
    fitting = [c for c in found if not budget.exceeded(c.total)]
    if target_fps is not None:
        fast_enough = [c for c in fitting if c.fps(clock_mhz) >= target_fps]
        if fast_enough:
            return min(fast_enough, key=lambda c: (c.share, c.luts, c.ii))
        if fitting:
            best = min(fitting, key=lambda c: c.ii)
            raise CompileError(f"{target_fps:,.0f} FPS does not fit {budget.name} at {clock_mhz:g} MHz: the fastest "
                               f"folding that fits reaches {best.fps(clock_mhz):,.0f} FPS (II {best.ii} cycles, "
                               f"{best.luts:,} LUTs)")
    elif fitting:
        return min(fitting, key=lambda c: (c.ii, c.share, c.luts))
    smallest = min(found, key=lambda c: (c.share, c.luts))
    raise CompileError(f"no folding of {network.name} fits {budget.name}: even the smallest (II {smallest.ii} "
                       f"cycles) needs {'; '.join(budget.exceeded(smallest.total))}")
