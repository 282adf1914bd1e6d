"""How much logic fits between two registers: the analytic delay model cores use to place their
pipeline registers, in 7-series -1 nanoseconds (the slower family at any clock a board here runs:
UltraScale+ paths are about a third of these, `resources.timing`).

Each kind of level a core builds has a delay from the same cell models and routing allowance the
timing analysis of synthesized netlists uses (`resources.timing`: Artix-7 cell delays, 0.45 ns
per general-routing hop), checked against it by `benchmarks/bench_timing.py`:

* a LUT level: a LUT through one of its slower pins and the hop into it;
* an adder of n bits: a LUT level into a carry chain, CARRY4's entry and 0.114 ns per further
  4 bits (measured on SWAR levels: a field of f bits adds f + 1 bits, ceil((f+1)/4) CARRY4 on the
  path, Yosys never carries across fields whose upper halves are constant 0);
* a register: clock to out (0.30 ns) and the hop into the next register.

`stage_cuts` packs a sequence of levels into stages greedily: a register goes after the last
level that still fits the period.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LUT_NS = 0.41  # LUT3-LUT6 through their middle pins (Artix-7: 0.13 to 0.64 by pin)
NET_NS = 0.45  # the routing allowance per hop, as resources.timing.SERIES7
CARRY_ENTRY_NS = 0.40  # into a CARRY4 (S -> O) after the LUT that drives it (fitted: SWAR levels of 2-8 bit fields)
CARRY4_NS = 0.114  # CI -> CO of every further CARRY4
REGISTER_NS = 0.30 + NET_NS  # clock to Q, and the hop into the next register
ROM_LEVEL_NS = 0.642 + NET_NS  # a LUT ROM's level: every LUT6 pin is used, the slowest (I0) too
DSP_MULTIPLY_NS = 2.823  # a DSP48E1's multiplier, A to P without its registers (Yosys's model)
DSP_CASCADE_NS = 1.025 + NET_NS  # a DSP48E1's post-adder (PCIN to P), and the hop from P
BRAM_OUT_NS = 2.454 - 0.303  # a block RAM's unregistered output, beyond a register's clock to Q
BRAM_ADDRESS_SETUP_NS = 0.566  # a block RAM's address setup (a register's is 0)
DEFAULT_MHZ = 200.0  # as platforms.boards.DEFAULT_CLOCK_MHZ: a core's budget when its spec names no clock


def lut_level_ns(levels: int = 1) -> float:
    return levels * (LUT_NS + NET_NS)


def rom_levels(depth: int) -> int:
    """LUT levels of a distributed ROM's read: a LUT6 per 64 words and bit, then 4:1 multiplexers
    (a LUT6 each; Vivado's MUXF7/F8 are faster)."""
    levels, words = 1, 64
    while words < depth:
        words, levels = words * 4, levels + 1
    return levels


def adder_ns(bits: int) -> float:
    """A two-operand adder of `bits` bits (its carry chain) behind a LUT level."""
    if bits <= 1:
        return lut_level_ns()
    return lut_level_ns() + CARRY_ENTRY_NS + (math.ceil(bits / 4) - 1) * CARRY4_NS


def counter_ns(limit: int) -> float:
    """A counter to `limit` that wraps: its increment, and the wrap's choice behind it."""
    return adder_ns(max(1, (int(limit) - 1).bit_length())) + lut_level_ns()


def mux_levels(inputs: int) -> int:
    """LUT levels of a multiplexer of `inputs` words (a LUT6 selects among four)."""
    levels = 0
    while inputs > 1:
        inputs, levels = -(-inputs // 4), levels + 1
    return levels


def swar_level_ns(field: int) -> float:
    """One SWAR level: neighbouring fields of `field` bits added (a field-wise adder)."""
    return lut_level_ns() if field == 1 else adder_ns(field + 1)


@dataclass(frozen=True)
class StageBudget:
    """The clock period the registers of a core are placed for (7-series -1 ns)."""

    period_ns: float

    @property
    def logic_ns(self) -> float:
        return self.period_ns - REGISTER_NS

    @classmethod
    def at(cls, mhz: float) -> "StageBudget":
        return cls(1000.0 / mhz)


def stage_cuts(costs: list[float], budget: StageBudget | None, used: float = 0.0,
               apart: list[bool] | None = None) -> tuple[list[int], float]:
    """Indices of the levels after which a register goes so that no stage's levels exceed the
    budget (a level that alone exceeds it gets a stage of its own), and the delay left in the
    last, open stage. `used`: the delay the open stage already holds. `apart`: levels of which
    no two may share a stage (two chained word adders become one multi-operand adder with a
    carry chain across the whole word). Without a budget, none."""
    if budget is None:
        return [], used + sum(costs)
    apart = apart or [False] * len(costs)
    cuts, holds_apart = [], False
    for index, cost in enumerate(costs):
        if used > 0 and (used + cost > budget.logic_ns or (apart[index] and holds_apart)):
            cuts.append(index - 1)
            used, holds_apart = 0.0, False
        used += cost
        holds_apart = holds_apart or apart[index]
    return cuts, used


def stage_delays(costs: list[float], cuts: list[int], used: float = 0.0) -> list[float]:
    """The delay of each stage that `stage_cuts` made of `costs` (the first holding `used` too;
    a cut at -1 registers before the first level)."""
    delays, current = ([used], 0.0) if -1 in cuts else ([], used)
    for index, cost in enumerate(costs):
        current += cost
        if index in cuts:
            delays.append(current)
            current = 0.0
    if current or not delays:
        delays.append(current)
    return delays
