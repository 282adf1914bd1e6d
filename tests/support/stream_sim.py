"""Drive lib.stream components in the Amaranth simulator with random valid/ready gaps."""
from __future__ import annotations

import random
import sys

from amaranth.sim import Simulator


def run_stream(dut, in_beats: list[int], n_out: int, *, seed: int = 0, valid_prob: float = 1.0,
               ready_prob: float = 1.0, max_cycles: int | None = None, setup=None) -> tuple[list[int], int]:
    """Feed `in_beats` into `dut.s`, collect `n_out` beats from `dut.m`.

    Returns the output beats and the number of cycles until the last one. A
    stall (no progress within max_cycles) raises instead of hanging.
    """
    outs, cycles = run_streams(dut, {"s": in_beats}, {"m": n_out}, seed=seed, valid_prob=valid_prob,
                               ready_prob=ready_prob, max_cycles=max_cycles, setup=setup)
    return outs["m"], cycles


def run_streams(dut, inputs: dict[str, list[int]], outputs: dict[str, int], *, seed: int = 0,
                valid_prob: float = 1.0, ready_prob: float = 1.0,
                max_cycles: int | None = None, setup=None) -> tuple[dict[str, list[int]], int]:
    """Several ports at once: feed each input port (by name) its beats and collect the given
    number of beats from each output port, every port with its own random gaps. Returns the
    output beats by port and the cycles until the last output beat. `setup(ctx)`, if given, runs
    to its end before any stream moves (weight writes)."""
    total = sum(len(b) for b in inputs.values()) + sum(outputs.values())
    max_cycles = max_cycles or 100 * total + 1000
    collected: dict[str, list[int]] = {name: [] for name in outputs}
    state = {"cycles": 0, "inputs_left": len(inputs), "outputs_left": len(outputs)}

    ready_to_go = {"setup": setup is None}

    async def wait_for_setup(ctx):
        while not ready_to_go["setup"]:
            await ctx.tick()

    def producer(port, beats, rng):
        async def run(ctx):
            await wait_for_setup(ctx)
            for beat in beats:
                while rng.random() >= valid_prob:
                    await ctx.tick()
                ctx.set(port.valid, 1)
                ctx.set(port.payload, int(beat))
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
            state["inputs_left"] -= 1
        return run

    def consumer(port, n_out, out, rng):
        async def run(ctx):
            await wait_for_setup(ctx)
            cycles = 0
            while len(out) < n_out:
                ready = rng.random() < ready_prob
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                cycles += 1
                if ready and valid:
                    out.append(payload)
                if cycles > max_cycles:
                    raise TimeoutError(f"stream stalled: {len(out)} of {n_out} output beats after "
                                       f"{cycles} cycles")
            ctx.set(port.ready, 0)
            state["cycles"] = max(state["cycles"], cycles)
            state["outputs_left"] -= 1
            # A core may emit its last output before taking its last input (a window generator
            # skips unused border pixels): the input must still be taken, without more output.
            while state["inputs_left"] or state["outputs_left"]:
                _, _, valid = await ctx.tick().sample(port.valid)
                cycles += 1
                if valid:
                    raise AssertionError("output beyond the expected number of beats")
                if cycles > max_cycles:
                    raise TimeoutError(f"input not fully consumed after {cycles} cycles")
        return run

    # pysim writes wide signal masks as decimal literals (a 784-lane word exceeds Python's default
    # cap) and compiles wide statements into nested expressions deeper than the default limit.
    sys.set_int_max_str_digits(0)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    if setup is not None:
        async def run_setup(ctx):
            await setup(ctx)
            ready_to_go["setup"] = True
        sim.add_testbench(run_setup)
    for index, (name, beats) in enumerate(inputs.items()):
        sim.add_testbench(producer(getattr(dut, name), beats, random.Random(seed + 2 * index)), background=True)
    for index, (name, n_out) in enumerate(outputs.items()):
        sim.add_testbench(consumer(getattr(dut, name), n_out, collected[name], random.Random(seed + 2 * index + 1)))
    sim.run()
    return collected, state["cycles"]
