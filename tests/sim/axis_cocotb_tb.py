"""cocotb bench: drive the emitted top through its AXI-stream ports with cocotbext-axi.

Random pauses on both sides (source tvalid gaps, sink tready backpressure).
Stimulus and expected output bytes come from the JSON file named by FINN_RTL_AXIS_CASE.
"""
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource


def random_pauses(seed, probability):
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


@cocotb.test()
async def stream_frames_with_backpressure(dut):
    case = json.loads(open(os.environ["FINN_RTL_AXIS_CASE"]).read())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
    source.set_pause_generator(random_pauses(1, 0.3))
    sink.set_pause_generator(random_pauses(2, 0.4))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    expected = bytes.fromhex(case["expected"])
    for beat in case["beats"]:
        await source.send(bytes.fromhex(beat))
    received = bytearray()
    while len(received) < len(expected):  # one frame per TLAST
        frame = await sink.recv()
        assert len(frame.tdata) == case["frame_bytes"], "TLAST must end every frame, and only frames"
        received += bytes(frame.tdata)
    assert bytes(received) == expected, "output stream differs from the reference"
    await ClockCycles(dut.clk, 20)
    assert sink.empty(), "the design produced more output than expected"
