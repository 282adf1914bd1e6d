"""FIFO, width converter and label select in the Amaranth simulator with random valid/ready."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from finn_rtl.cores.arith import pack_ints
from finn_rtl.cores.fifo import StreamFIFO, output_registered
from finn_rtl.cores.label_select import LabelSelect
from finn_rtl.cores.register_slice import RegisterSlice
from finn_rtl.cores.width_converter import WidthConverter
from finn_rtl.graph.datatypes import QType
from support.stream_sim import run_stream


@pytest.mark.parametrize("lanes,channels", [(1, 10), (2, 10), (5, 10), (10, 10), (3, 12)])
def test_label_select_first_maximum_wins(lanes, channels):
    rng = np.random.default_rng(lanes * 100 + channels)
    qtype = QType(5, True)
    x = rng.integers(-16, 16, (24, channels))
    x[0] = 3  # all tied: index 0
    x[1, [2, 7]] = 15  # tie between two maxima: the lower index
    beats = [pack_ints(qtype.encode(f[i * lanes:(i + 1) * lanes]), 5) for f in x for i in range(channels // lanes)]
    out, _ = run_stream(LabelSelect(5, lanes, channels, 4), beats, len(x), valid_prob=0.7, ready_prob=0.5)
    assert out == list(x.argmax(axis=1))


@pytest.mark.parametrize("a,b", [(1, 4), (4, 1), (3, 2), (2, 3), (6, 4), (4, 6), (1, 7), (7, 1)])
def test_width_converter_keeps_order_and_rate(a, b):
    rng = np.random.default_rng(a * 10 + b)
    n = a * b * 6
    elements = rng.integers(0, 8, n)
    beats = [pack_ints(elements[i:i + a], 3) for i in range(0, n, a)]
    out, _ = run_stream(WidthConverter(3, a, b), beats, n // b, valid_prob=0.8, ready_prob=0.6)
    assert [(w >> (3 * j)) & 7 for w in out for j in range(b)] == list(elements)
    _, cycles = run_stream(WidthConverter(3, a, b), beats, n // b)
    assert cycles <= n // min(a, b) + 2  # one beat per cycle on the wide side


@pytest.mark.parametrize("depth,style", [(1, None), (2, "registers"), (3, "distributed"), (4, "block"),
                                         (5, "registers"), (17, "distributed"), (64, "block")])
@pytest.mark.parametrize("valid_prob,ready_prob", [(0.5, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_fifo_passes_everything_in_order(depth, style, valid_prob, ready_prob):
    rng = np.random.default_rng(5)
    beats = [int(v) for v in rng.integers(0, 256, 150)]
    out, _ = run_stream(StreamFIFO(8, depth, style=style), beats, len(beats), valid_prob=valid_prob,
                        ready_prob=ready_prob, seed=depth)
    assert out == beats


@pytest.mark.parametrize("depth,style", [(3, None), (4, None), (64, None), (3, "block"), (64, "block")])
def test_fifo_takes_a_beat_per_cycle_from_depth_3(depth, style):
    beats = list(range(200))
    out, cycles = run_stream(StreamFIFO(8, depth, style=style), beats, len(beats))
    assert out == beats and cycles <= len(beats) + 4


@pytest.mark.parametrize("depth,style", [(1, None), (2, None), (3, None), (7, None), (2, "block"), (7, "block")])
def test_fifo_holds_exactly_its_depth(depth, style):
    """With the consumer stalled, the FIFO takes `depth` beats (one more behind block RAM, whose
    output register is a stage of its own), and its monitored level says so."""
    dut = StreamFIFO(8, depth, monitor=True, style=style)
    depth += output_registered(dut.style, depth)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    taken = []

    async def bench(ctx):
        ctx.set(dut.m.ready, 0)
        ctx.set(dut.s.valid, 1)
        for _ in range(2 * depth + 5):  # offer beat len(taken) until it is taken
            ctx.set(dut.s.payload, len(taken))
            _, _, ready = await ctx.tick().sample(dut.s.ready)
            if ready:
                taken.append(len(taken))
        assert ctx.get(dut.level) == depth and ctx.get(dut.peak) == depth
    sim.add_testbench(bench)
    sim.run()
    assert taken == list(range(depth))


# 12 bits: the skid-buffer form; 100 bits: the buffered-FIFO form
@pytest.mark.parametrize("width", [12, 100])
@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.5, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_register_slice_passes_everything_in_order(width, valid_prob, ready_prob):
    rng = np.random.default_rng(7)
    beats = [int.from_bytes(rng.bytes(16), "little") % (1 << width) for _ in range(200)]
    out, cycles = run_stream(RegisterSlice(width), beats, len(beats), valid_prob=valid_prob,
                             ready_prob=ready_prob, seed=3)
    assert out == beats
    if valid_prob == ready_prob == 1.0:
        assert cycles <= len(beats) + 3  # full throughput


@pytest.mark.parametrize("width", [4, 100])
def test_register_slice_outputs_do_not_follow_inputs_in_the_same_cycle(width):
    from amaranth.sim import Simulator

    dut = RegisterSlice(width)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.s.valid, 1)
        ctx.set(dut.s.payload, 5)
        seen["valid follows s.valid"] = ctx.get(dut.m.valid)
        for _ in range(4):  # more beats than either form holds
            await ctx.tick()
        seen["ready when full"] = ctx.get(dut.s.ready)
        ctx.set(dut.m.ready, 1)  # consumer frees up: s.ready must not rise before the next edge
        seen["ready in the same cycle"] = ctx.get(dut.s.ready)
        await ctx.tick()
        seen["ready after the edge"] = ctx.get(dut.s.ready)
        ctx.set(dut.s.valid, 0)
        ctx.set(dut.m.ready, 0)
        seen["valid follows s.valid when full"] = ctx.get(dut.m.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"valid follows s.valid": 0, "ready when full": 0, "ready in the same cycle": 0,
                    "ready after the edge": 1, "valid follows s.valid when full": 1}


@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.5, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_a_deep_lut_ram_fifo_reads_through_banks_where_its_read_does_not_fit_the_clock(valid_prob, ready_prob):
    """599 words of LUT RAM: at 400 MHz the read multiplexer does not fit a cycle, so the FIFO reads
    ten banks of 64 words into latches of their own (one beat more held, full throughput); at
    200 MHz it reads the whole memory. In order under gaps either way."""
    from finn_rtl.cores.pipelining import StageBudget

    assert StreamFIFO(8, 600, style="distributed", budget=StageBudget.at(200.0)).bank is None
    dut = StreamFIFO(8, 600, style="distributed", budget=StageBudget.at(400.0))
    assert dut.bank == 64
    rng = np.random.default_rng(9)
    beats = [int(v) for v in rng.integers(0, 256, 1500)]
    out, cycles = run_stream(dut, beats, len(beats), valid_prob=valid_prob, ready_prob=ready_prob, seed=2)
    assert out == beats
    if valid_prob == ready_prob == 1.0:
        assert cycles <= len(beats) + 4
