"""AcceleratorShell: the stitched accelerator as a memory-mapped kernel for Zynq and Alveo.

The host writes a buffer address for the input frames, one for the results and a frame
count, then starts the kernel; the shell reads the frames from memory, streams them through
the accelerator and writes the results back (layout: finn_rtl.platforms.gearbox).

Ports, named as Vivado and Vitis expect of an RTL kernel:
  ap_clk, ap_rst_n (active low, registered inside), interrupt
  s_axi_control_*  AXI4-Lite slave, 7-bit addresses (wider with a weight window), the register
                   map below (ap_ctrl_hs)
  m_axi_gmem_*     AXI4 master, 64-bit addresses, data width from the board

Register map (32-bit registers; writes take the whole word, WSTRB is ignored):
  0x00 CTRL     bit 0 ap_start (write 1 to start; reads 1 while running), bit 1 ap_done (clears
                on read), bit 2 ap_idle, bit 3 ap_ready (clears on read)
  0x04 GIE      bit 0: global interrupt enable
  0x08 IER      bit 0: interrupt on done, bit 1: on ready
  0x0C ISR      interrupt status, same bits; writing 1 toggles a bit
  0x10/0x14     input buffer address, low/high word
  0x1C/0x20     output buffer address, low/high word
  0x28 FRAMES   frames to process
  0x40 STATUS   (read only) STATUS_BITS below, cleared by the next accepted start
  0x44 DESIGN_ID, 0x48 IN_FRAME_BYTES, 0x4C OUT_FRAME_BYTES, 0x60 WORD_BYTES (read only)
  0x50/0x54     cycles from start to done of the last run (counting while running)
  0x58/0x5C     memory words read / written so far in this run
A start written while the kernel runs is ignored (and flagged in STATUS): the host starts the
next run after ap_done.

Where layers have weights written at run time (`cores.weight_port`), the address space doubles
past the weight address space and its upper half is the weight window (`weight_window`): a write
there is a write of register (offset - window) / 4 of the weight space; reads there return 0.
Weights are written between runs.
"""
from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..cores.accelerator import Accelerator, PortGeometry
from ..graph.network import NetworkSpec
from ..graph.weight_map import WeightMap
from .axi import COUNT_BITS, ReadMaster, WriteMaster, forward_ports, read_channel_members, write_channel_members
from .gearbox import BeatsToWords, MemoryLayout, WordsToBeats

REGISTERS = {
    "CTRL": 0x00, "GIE": 0x04, "IER": 0x08, "ISR": 0x0C,
    "INPUT_LO": 0x10, "INPUT_HI": 0x14, "OUTPUT_LO": 0x1C, "OUTPUT_HI": 0x20, "FRAMES": 0x28,
    "STATUS": 0x40, "DESIGN_ID": 0x44, "IN_FRAME_BYTES": 0x48, "OUT_FRAME_BYTES": 0x4C,
    "CYCLES_LO": 0x50, "CYCLES_HI": 0x54, "WORDS_READ": 0x58, "WORDS_WRITTEN": 0x5C, "WORD_BYTES": 0x60,
}
CONTROL_ADDR_BITS = 7
STATUS_BITS = {
    0: "read error: the memory answered a read burst with SLVERR/DECERR (is the input address mapped?)",
    1: "write error: the memory answered a write burst with SLVERR/DECERR (is the output address mapped?)",
    2: "a buffer address is not aligned to the memory word: nothing was transferred",
    3: "ap_start was written while the kernel was running and was ignored",
}


def control_addr_bits(network: NetworkSpec) -> int:
    """Address bits of the AXI4-Lite slave: the registers', or with a weight window twice the
    larger of the registers' and the weight space's."""
    weights = WeightMap.of(network)
    return max(CONTROL_ADDR_BITS, weights.address_bits + 2) + 1 if weights else CONTROL_ADDR_BITS


def control_bytes(network: NetworkSpec) -> int:
    return 1 << control_addr_bits(network)


def weight_window(network: NetworkSpec) -> int | None:
    """Byte offset of the weight window in the AXI4-Lite space; None without written weights."""
    return 1 << (control_addr_bits(network) - 1) if WeightMap.of(network) else None


def control_members(address_bits: int = CONTROL_ADDR_BITS) -> dict:
    """The AXI4-Lite slave, as seen by the kernel."""
    a = address_bits
    return {
        "awaddr": In(a), "awvalid": In(1), "awready": Out(1), "wdata": In(32), "wstrb": In(4),
        "wvalid": In(1), "wready": Out(1), "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(a), "arvalid": In(1), "arready": Out(1), "rdata": Out(32), "rresp": Out(2),
        "rvalid": Out(1), "rready": In(1),
    }


def prefixed(prefix: str, members: dict) -> dict:
    return {prefix + name: member for name, member in members.items()}


class AcceleratorShell(wiring.Component):
    """`stand_in`: the accelerator replaced by a register between its streams, so that the shell's
    own logic is a synthesis unit of its own (`shell_unit`)."""

    def __init__(self, network: NetworkSpec, word_bytes: int, design_id: int = 0, stand_in: bool = False,
                 accelerator_module: str | None = None):
        self.network = network
        self.stand_in = stand_in
        self.accelerator_module = accelerator_module  # an instance of the build's top module, if named
        self.geometry = geometry = PortGeometry.of(network)
        self.word_bytes = word_bytes
        self.design_id = design_id & 0xFFFF_FFFF
        self.input_layout = MemoryLayout(word_bytes, geometry.in_width // 8, geometry.in_beats_per_frame)
        self.output_layout = MemoryLayout(word_bytes, geometry.out_width // 8, geometry.out_beats_per_frame)
        data_bits = 8 * word_bytes
        super().__init__({
            "ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1),
            **prefixed("s_axi_control_", control_members(control_addr_bits(network))),
            **prefixed("m_axi_gmem_", read_channel_members(data_bits)),
            **prefixed("m_axi_gmem_", write_channel_members(data_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        # ap_rst_n comes from another clock domain's reset block in Vivado: register it.
        m.domains.sync = ClockDomain("sync")
        m.domains.reset_sync = ClockDomain("reset_sync", reset_less=True)
        reset = Signal(init=1)
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ClockSignal("reset_sync").eq(self.ap_clk),
                     ResetSignal("sync").eq(reset)]
        m.d.reset_sync += reset.eq(~self.ap_rst_n)

        geometry = self.geometry
        if self.stand_in:
            accel = StreamStandIn(geometry.in_width, geometry.out_width)
        elif self.accelerator_module:
            from ..cores.emit import CLOCK_PORTS, LayerInstance, LayerModule

            accel = LayerInstance(Accelerator(self.network), LayerModule(self.accelerator_module, CLOCK_PORTS))
        else:
            accel = Accelerator(self.network)
        m.submodules.accelerator = accel
        m.submodules.reader = reader = ReadMaster(self.word_bytes)
        m.submodules.writer = writer = WriteMaster(self.word_bytes)
        m.submodules.unpack = unpack = WordsToBeats(self.input_layout)
        m.submodules.pack = pack = BeatsToWords(self.output_layout)
        forward_ports(m, self, "m_axi_gmem_", reader, read_channel_members(8 * self.word_bytes))
        forward_ports(m, self, "m_axi_gmem_", writer, write_channel_members(8 * self.word_bytes))
        wiring.connect(m, reader.data, unpack.s)
        wiring.connect(m, pack.m, writer.data)
        m.d.comb += [accel.s_axis_tdata.eq(unpack.m.payload), accel.s_axis_tvalid.eq(unpack.m.valid),
                     unpack.m.ready.eq(accel.s_axis_tready),
                     pack.s.payload.eq(accel.m_axis_tdata), pack.s.valid.eq(accel.m_axis_tvalid),
                     accel.m_axis_tready.eq(pack.s.ready)]
        self._control(m, reader, writer)
        return m

    def _control(self, m: Module, reader: ReadMaster, writer: WriteMaster) -> None:
        bus = {name: getattr(self, "s_axi_control_" + name) for name in control_members()}
        window = weight_window(self.network)
        regs = {name: Signal(32, name=name.lower()) for name in ("GIE", "IER", "ISR", "INPUT_LO", "INPUT_HI",
                                                                   "OUTPUT_LO", "OUTPUT_HI", "FRAMES")}
        running, done, ready = Signal(), Signal(), Signal()
        status, cycles = Signal(4), Signal(64)
        read_only = {
            "CTRL": (ready << 3) | (~running << 2) | (done << 1) | running,
            "STATUS": status, "DESIGN_ID": self.design_id,
            "IN_FRAME_BYTES": self.input_layout.frame_bytes, "OUT_FRAME_BYTES": self.output_layout.frame_bytes,
            "CYCLES_LO": cycles[:32], "CYCLES_HI": cycles[32:], "WORDS_READ": reader.moved[:32],
            "WORDS_WRITTEN": writer.moved[:32], "WORD_BYTES": self.word_bytes,
        }

        # Write channel: take address and data together, answer OKAY.
        write = bus["awvalid"] & bus["wvalid"] & ~bus["bvalid"]
        m.d.comb += [bus["awready"].eq(write), bus["wready"].eq(write)]
        with m.If(bus["bvalid"] & bus["bready"]):
            m.d.sync += bus["bvalid"].eq(0)
        with m.If(write):
            m.d.sync += bus["bvalid"].eq(1)
        start = Signal()
        if window is not None and not self.stand_in:
            # The accelerator registers the write before it decodes it.
            bits = control_addr_bits(self.network) - 1
            accel = m.submodules.accelerator
            m.d.comb += [accel.weights_addr.eq(bus["awaddr"][2:bits]), accel.weights_data.eq(bus["wdata"]),
                         accel.weights_valid.eq(write & bus["awaddr"][bits])]
        with m.If(write):
            with m.Switch(bus["awaddr"] & ~3):
                for name, reg in regs.items():
                    with m.Case(REGISTERS[name]):
                        m.d.sync += reg.eq(bus["wdata"] ^ regs["ISR"] if name == "ISR" else bus["wdata"])
                with m.Case(REGISTERS["CTRL"]):
                    with m.If(bus["wdata"][0]):
                        with m.If(running):
                            m.d.sync += status[3].eq(1)
                        with m.Else():
                            m.d.comb += start.eq(1)

        # Read channel: one registered answer per address.
        read_ctrl = Signal()
        m.d.comb += bus["arready"].eq(~bus["rvalid"])
        with m.If(bus["rvalid"] & bus["rready"]):
            m.d.sync += bus["rvalid"].eq(0)
        with m.If(bus["arvalid"] & bus["arready"]):
            m.d.sync += [bus["rvalid"].eq(1), bus["rdata"].eq(0)]
            with m.Switch(bus["araddr"] & ~3):
                for name, value in {**regs, **read_only}.items():
                    with m.Case(REGISTERS[name]):
                        m.d.sync += bus["rdata"].eq(value)
                        if name == "CTRL":
                            m.d.comb += read_ctrl.eq(1)

        # A run: start both movers, count cycles, finish when the last result is acknowledged.
        input_addr = (regs["INPUT_HI"] << 32) | regs["INPUT_LO"]
        output_addr = (regs["OUTPUT_HI"] << 32) | regs["OUTPUT_LO"]
        align = self.word_bytes - 1
        misaligned = ((input_addr & align) != 0) | ((output_addr & align) != 0)
        go = start & ~misaligned & (regs["FRAMES"] != 0)
        # The word counts are products with constants: registered, a cycle behind FRAMES (a start
        # is a later AXI4-Lite write, two cycles apart at least: a write waits for its response).
        words_in, words_out = Signal(COUNT_BITS), Signal(COUNT_BITS)
        m.d.sync += [words_in.eq(regs["FRAMES"] * self.input_layout.frame_words),
                     words_out.eq(regs["FRAMES"] * self.output_layout.frame_words)]
        m.d.comb += [reader.start.eq(go), reader.address.eq(input_addr), reader.words.eq(words_in),
                     writer.start.eq(go), writer.address.eq(output_addr), writer.words.eq(words_out)]
        finished = (running & ~reader.busy & ~writer.busy) | (start & ~go)
        with m.If(read_ctrl):
            m.d.sync += [done.eq(0), ready.eq(0)]
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(start):
            m.d.sync += [running.eq(go), cycles.eq(0), status.eq(misaligned << 2)]
        with m.If(finished):
            m.d.sync += [running.eq(0), done.eq(1), ready.eq(1),
                         regs["ISR"].eq(regs["ISR"] | (regs["IER"] & 0b11))]
        with m.If(running):
            m.d.sync += status[:2].eq(status[:2] | (writer.error << 1) | reader.error)
        m.d.comb += [bus["bresp"].eq(0), bus["rresp"].eq(0),
                     self.interrupt.eq(regs["GIE"][0] & (regs["ISR"][:2] != 0))]


class StreamStandIn(wiring.Component):
    """The accelerator's stream ports with a register slice between them (in the shell's timing
    unit): like the accelerator's own boundary, every output a flip-flop."""

    def __init__(self, in_width: int, out_width: int):
        super().__init__({"s_axis_tdata": In(in_width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
                          "m_axis_tdata": Out(out_width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
                          "m_axis_tlast": Out(1)})

    def elaborate(self, platform):
        from ..cores.register_slice import RegisterSlice

        m = Module()
        m.submodules.slice = link = RegisterSlice(len(self.s_axis_tdata))
        m.d.comb += [link.s.payload.eq(self.s_axis_tdata), link.s.valid.eq(self.s_axis_tvalid),
                     self.s_axis_tready.eq(link.s.ready), self.m_axis_tdata.eq(link.m.payload),
                     self.m_axis_tvalid.eq(link.m.valid), link.m.ready.eq(self.m_axis_tready)]
        return m


SHELL_UNIT = "memory shell"


def shell_unit(network: NetworkSpec, word_bytes: int) -> tuple[dict, str]:
    """(sources, top) of the shell's own logic for synthesis: control registers, AXI masters and
    gearboxes, the accelerator stood in for by a register."""
    from ..resources.synthesis import design_sources

    return design_sources(AcceleratorShell(network, word_bytes, stand_in=True), "shell"), "shell"


def shell_verilog(network: NetworkSpec, word_bytes: int, design_id: int = 0, name: str = "finn_rtl_shell",
                  accelerator_verilog: str | None = None) -> str:
    """The shell around the accelerator. With `accelerator_verilog` (the build's Verilog, whose
    top module is `network.name`), the shell instantiates that module and the text follows the
    shell's: the accelerator is not converted again (MobileNet-v1: seconds, not a minute)."""
    import re

    from ..cores.popcount import convert

    if accelerator_verilog is None or name == network.name:
        return convert(AcceleratorShell(network, word_bytes, design_id), name)
    shell = convert(AcceleratorShell(network, word_bytes, design_id, accelerator_module=network.name), name)
    # One top for the tools: the build's top module is a submodule here.
    return shell + re.sub(r"\(\* top = +1 +\*\)\n(?=(?:\(\*[^\n]*\*\)\n)*module " + re.escape(network.name) + r"\()",
                          "", accelerator_verilog, count=1)
