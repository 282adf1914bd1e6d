"""cocotb bench for the AcceleratorShell: AXI4-Lite registers driven by cocotbext-axi's
AxiLiteMaster, memory served by its AxiRam (which asserts that no burst crosses 4 KiB), with
random stalls on every AXI channel.

The case file named by FINN_RTL_SHELL_CASE gives the driver description, the driver's folder
(its packing functions build the buffers), stream-order input integers and the expected outputs.
"""
import importlib
import json
import os
import random
import sys

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

CASE = json.loads(open(os.environ["FINN_RTL_SHELL_CASE"]).read())
DESC = json.loads(open(CASE["description"]).read())
REG = DESC["registers"]
sys.path[:0] = [CASE["driver_dir"], CASE["fake_pynq_dir"]]  # the board-side driver and its pynq
driver = importlib.import_module("driver")
AP_DONE, AP_IDLE = 2, 4
PAGE = 4096


def random_pauses(seed, probability):
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=1 << 24)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.inputs = np.load(CASE["inputs"])
        self.expected = np.load(CASE["expected"])

    @classmethod
    async def start(cls, dut, stall_probability=0.0):
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        bench = cls(dut)
        if stall_probability:
            channels = (bench.ram.read_if.ar_channel, bench.ram.read_if.r_channel, bench.ram.write_if.aw_channel,
                        bench.ram.write_if.w_channel, bench.ram.write_if.b_channel)
            for seed, channel in enumerate(channels):
                channel.set_pause_generator(random_pauses(seed, stall_probability))
        dut.ap_rst_n.value = 0
        await ClockCycles(dut.ap_clk, 8)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 4)
        return bench

    async def write(self, name, value):
        await self.axil.write_dword(REG[name], value)

    async def read(self, name):
        return await self.axil.read_dword(REG[name])

    async def launch(self, in_addr, out_addr, frames):
        for name, value in (("INPUT_LO", in_addr & 0xFFFFFFFF), ("INPUT_HI", in_addr >> 32),
                            ("OUTPUT_LO", out_addr & 0xFFFFFFFF), ("OUTPUT_HI", out_addr >> 32),
                            ("FRAMES", frames), ("CTRL", 1)):
            await self.write(name, value)

    async def wait_done(self, limit_cycles):
        for _ in range(limit_cycles // 50):
            if await self.read("CTRL") & AP_DONE:
                return
            await ClockCycles(self.dut.ap_clk, 50)
        status = await self.read("STATUS")
        raise AssertionError(f"no ap_done after {limit_cycles} cycles (STATUS {status:#x}, words read "
                             f"{await self.read('WORDS_READ')}, written {await self.read('WORDS_WRITTEN')})")

    def cycle_limit(self, frames):
        words = frames * (DESC["input"]["layout"]["frame_bytes"] + DESC["output"]["layout"]["frame_bytes"])
        return 20_000 + 8 * frames * DESC["expected_ii_cycles"] + 16 * words // DESC["word_bytes"]

    async def run_frames(self, first, frames, in_addr, out_addr):
        """Frames [first, first+frames) through memory; checks results and the bytes around them."""
        packed = driver.pack_frames(self.inputs[first:first + frames], DESC["input"])
        out_bytes = frames * DESC["output"]["layout"]["frame_bytes"]
        self.ram.write(in_addr, packed.tobytes())
        self.ram.write(out_addr - 64, b"\xa5" * (out_bytes + 128))
        await self.launch(in_addr, out_addr, frames)
        await self.wait_done(self.cycle_limit(frames))
        assert await self.read("STATUS") == 0
        out = np.frombuffer(self.ram.read(out_addr, out_bytes), dtype=np.uint8).reshape(frames, -1)
        got = driver.unpack_frames(out, DESC["output"])
        wrong = np.nonzero(np.any(got != self.expected[first:first + frames], axis=1))[0]
        assert len(wrong) == 0, f"frames {(wrong + first)[:10].tolist()} differ from the reference"
        assert self.ram.read(out_addr - 64, 64) == b"\xa5" * 64, "the shell wrote before its output buffer"
        assert self.ram.read(out_addr + out_bytes, 64) == b"\xa5" * 64, "the shell wrote past its output buffer"
        return (await self.read("CYCLES_LO")) | (await self.read("CYCLES_HI")) << 32


@cocotb.test()
async def frames_through_memory(dut):
    """One frame with aligned buffers and an interrupt, then every frame with buffers at odd
    offsets into 4 KiB pages under random stalls on all five channels, then a count ending
    mid-burst."""
    bench = await Bench.start(dut, stall_probability=float(CASE.get("stall_probability", 0.3)))
    assert await bench.read("DESIGN_ID") == DESC["design_id"]
    assert await bench.read("IN_FRAME_BYTES") == DESC["input"]["layout"]["frame_bytes"]
    assert await bench.read("CTRL") & AP_IDLE
    await bench.write("GIE", 1)
    await bench.write("IER", 1)
    cycles = await bench.run_frames(0, 1, 0x10000, 0x80000)
    assert cycles > 0
    assert dut.interrupt.value == 1, "done with GIE and IER set must raise the interrupt"
    assert await bench.read("ISR") == 1
    await bench.write("ISR", 1)  # toggle-on-write clears it
    await RisingEdge(dut.ap_clk)
    assert dut.interrupt.value == 0
    n = len(bench.inputs)
    await bench.run_frames(0, n, 0x23000 + 3 * PAGE - 24 * DESC["word_bytes"], 0x400000 + PAGE - 8 * DESC["word_bytes"])
    odd = max(1, n // 3 + 1)
    await bench.run_frames(n - odd, odd, 0x5000 + 40 * DESC["word_bytes"], 0x600000 + 72 * DESC["word_bytes"])


@cocotb.test()
async def start_while_busy_is_ignored(dut):
    bench = await Bench.start(dut)
    n = len(bench.inputs)
    packed = driver.pack_frames(bench.inputs, DESC["input"])
    bench.ram.write(0x10000, packed.tobytes())
    await bench.launch(0x10000, 0x80000, n)
    await bench.write("CTRL", 1)
    await bench.wait_done(bench.cycle_limit(n))
    assert await bench.read("STATUS") == 8, "a start while running must be flagged in STATUS bit 3"
    assert not await bench.read("CTRL") & AP_DONE, "ap_done clears on read and no second run follows"
    await ClockCycles(dut.ap_clk, 200)
    assert await bench.read("CTRL") & AP_IDLE
    out = bench.ram.read(0x80000, n * DESC["output"]["layout"]["frame_bytes"])
    got = driver.unpack_frames(np.frombuffer(out, dtype=np.uint8).reshape(n, -1), DESC["output"])
    assert np.array_equal(got, bench.expected)
    await bench.run_frames(0, 2, 0x30000, 0x90000)  # and the next run is clean


@cocotb.test()
async def error_responses_are_reported(dut):
    bench = await Bench.start(dut)
    poisoned = range(0x200000, 0x200000 + PAGE)
    for interface in (bench.ram.read_if, bench.ram.write_if):
        method = "_read" if interface is bench.ram.read_if else "_write"
        original = getattr(interface, method)

        async def failing(address, data_or_length, original=original):
            if address in poisoned:
                raise OSError("poisoned")
            return await original(address, data_or_length)
        setattr(interface, method, failing)
    n = min(3, len(bench.inputs))
    await bench.launch(poisoned.start, 0x80000, n)
    await bench.wait_done(bench.cycle_limit(n))
    assert await bench.read("STATUS") == 1, "SLVERR on reads must set STATUS bit 0"
    await bench.launch(0x10000, poisoned.start, n)
    await bench.wait_done(bench.cycle_limit(n))
    assert await bench.read("STATUS") == 2, "SLVERR on writes must set STATUS bit 1"
    await bench.run_frames(0, n, 0x10000, 0x80000)


@cocotb.test()
async def misaligned_buffers_are_refused(dut):
    bench = await Bench.start(dut)
    await bench.launch(0x10001, 0x80000, 2)
    await bench.wait_done(1000)
    assert await bench.read("STATUS") == 4
    assert await bench.read("WORDS_READ") == 0
    await bench.launch(0x10000, 0x80000, 0)  # zero frames: done at once, nothing moves
    await bench.wait_done(1000)
    assert await bench.read("STATUS") == 0


@cocotb.test()
async def driver_end_to_end(dut):
    """The generated driver, unchanged, against the simulation through the fake pynq module."""
    import pynq

    bench = await Bench.start(dut, stall_probability=float(CASE.get("stall_probability", 0.0)))
    poll_cycles = int(CASE.get("poll_cycles", 200))

    async def read_register(offset):
        await ClockCycles(dut.ap_clk, poll_cycles)  # time passes between a host's register reads
        return await bench.axil.read_dword(offset)

    async def write_register(offset, value):
        await bench.axil.write_dword(offset, value)

    pynq.attach(resume(read_register), resume(write_register), bench.ram, DESC["ip_name"], REG,
                offset=int(CASE.get("buffer_offset", 0)))
    batch = str(CASE.get("max_frames", 4096))

    def host():
        # As a user would run it on the board: the driver's command line, then its Python API.
        status = driver.main(["--bitfile", CASE["bitfile"], "--description", CASE["description"],
                              "--input", CASE["float_inputs"], "--output", CASE["driver_outputs"],
                              "--timeout", "3600", "--batch", batch])
        assert status == 0, "the driver's command line failed"
        accel = driver.Accelerator(CASE["bitfile"], CASE["description"], timeout=3600, max_frames=int(batch))
        return [accel.throughput_test(n) for n in CASE.get("throughput_frames", [100])]

    throughput = await bridge(host)()
    with open(CASE["throughput"], "w") as f:
        json.dump(throughput, f)


async def driver_runtime_weights(dut):
    """Weights written at run time through the shell's AXI4-Lite window: the driver loads the
    build's own weights when it starts, then a fine-tuned build's with `load_weights`, and refuses
    weights of a network that differs beyond them."""
    import pynq

    bench = await Bench.start(dut)

    async def read_register(offset):
        await ClockCycles(dut.ap_clk, 20)
        return await bench.axil.read_dword(offset)

    async def write_register(offset, value):
        await bench.axil.write_dword(offset, value)

    pynq.attach(resume(read_register), resume(write_register), bench.ram, DESC["ip_name"], REG)
    x = np.load(CASE["float_inputs"])

    def host():
        accel = driver.Accelerator(CASE["bitfile"], CASE["description"], timeout=3600, max_frames=len(x))
        built = accel.execute(x)
        written = accel.load_weights(CASE["tuned_weights"])
        tuned = accel.execute(x)
        try:
            accel.load_weights(CASE["other_weights"])
            refusal = None
        except ValueError as exc:
            refusal = str(exc)
        return built, written, tuned, refusal

    built, written, tuned, refusal = await bridge(host)()
    np.save(CASE["built_outputs"], built)
    np.save(CASE["tuned_outputs"], tuned)
    with open(CASE["refusal"], "w") as f:
        json.dump({"written": written, "refusal": refusal}, f)


if "tuned_weights" in CASE:  # a case of its own (`test_driver.py`): the other benches stay as they are
    driver_runtime_weights = cocotb.test()(driver_runtime_weights)
