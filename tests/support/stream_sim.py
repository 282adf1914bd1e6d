"""Drive lib.stream components in the Amaranth simulator with random valid/ready gaps."""
from __future__ import annotations

import random
import sys

from amaranth.sim import Simulator


def run_stream(dut, in_beats: list[int], n_out: int, *, seed: int = 0, valid_prob: float = 1.0,
               ready_prob: float = 1.0, max_cycles: int | None = None) -> tuple[list[int], int]:
    """Feed `in_beats` into `dut.s`, collect `n_out` beats from `dut.m`.

    Returns the output beats and the number of cycles until the last one. A
    stall (no progress within max_cycles) raises instead of hanging.
    """
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    max_cycles = max_cycles or 100 * (len(in_beats) + n_out) + 1000
    out: list[int] = []
    state = {"cycles": 0, "inputs_done": False}

    async def producer(ctx):
        for beat in in_beats:
            while rng_in.random() >= valid_prob:
                await ctx.tick()
            ctx.set(dut.s.valid, 1)
            ctx.set(dut.s.payload, int(beat))
            await ctx.tick().until(dut.s.ready)
            ctx.set(dut.s.valid, 0)
        state["inputs_done"] = True

    async def consumer(ctx):
        cycles = 0
        while len(out) < n_out:
            ready = rng_out.random() < ready_prob
            ctx.set(dut.m.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.m.valid, dut.m.payload)
            cycles += 1
            if ready and valid:
                out.append(payload)
            if cycles > max_cycles:
                raise TimeoutError(f"stream stalled: {len(out)} of {n_out} output beats after "
                                   f"{cycles} cycles")
        ctx.set(dut.m.ready, 0)
        state["cycles"] = cycles
        # A core may emit its last output before taking its last input (a window generator
        # skips unused border pixels): the input must still be taken, without more output.
        while not state["inputs_done"]:
            _, _, valid = await ctx.tick().sample(dut.m.valid)
            cycles += 1
            if valid:
                raise AssertionError("output beyond the expected number of beats")
            if cycles > max_cycles:
                raise TimeoutError(f"input not fully consumed after {cycles} cycles")

    # pysim writes wide signal masks as decimal literals (a 784-lane word exceeds Python's default
    # cap) and compiles wide statements into nested expressions deeper than the default limit.
    sys.set_int_max_str_digits(0)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return out, state["cycles"]
