"""Stitch a NetworkSpec into one AXI-stream top module.

Ports (Vivado IP and cocotbext-axi connect without glue):
  s_axis_tdata/tvalid/tready  input: one beat carries SIMD of the first layer
                              elements, element 0 in the LSBs, zero-padded to bytes;
  m_axis_tdata/tvalid/tready  output: one beat carries PE of the last layer elements
                              (or one label index with label select), same packing;
  m_axis_tlast                on the last beat of each frame (for AXI DMA and friends);
  weights_addr/data/valid     only where layers have weights written at run time: 32-bit
                              register writes into the weight address space (`weight_port`).
Elements use the wire encoding of finn_rtl.graph.datatypes.

On every edge of the network's graph: a FIFO, and a width converter where the producer's
lanes differ from the consumer's (`graph.network.EdgeStream`). Both AXI-stream ports go
through a register slice, so no top-level output depends combinationally on a top-level input.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..graph.merge_specs import AddSpec, ConcatSpec, DuplicateSpec
from ..graph.network import NetworkSpec
from ..graph.weight_map import WeightMap
from ..graph.specs import MVTUSpec, PadSpec, PoolSpec, SlidingWindowSpec, ThresholdSpec, VectorUnitSpec
from .arith import nested_counters
from .emit import LayerInstance
from .fifo import PEAK_BITS, StreamFIFO
from .label_select import LabelSelect
from .merge import Concat, Duplicate
from .mvtu import MVTU
from .padding import Padding
from .ports import input_ports, output_ports
from .units import chain, edge_stages
from .pool import WindowPool
from .register_slice import RegisterSlice
from .sliding_window import SlidingWindow
from .thresholding import Thresholding
from .vector_unit import VectorUnit
from .weight_port import window_bits


def byte_aligned(bits: int) -> int:
    return max(8, -(-bits // 8) * 8)


@dataclass(frozen=True)
class PortGeometry:
    """How frames map onto the top level's AXI-stream beats."""

    in_elements_per_beat: int
    in_element_bits: int
    in_width: int
    in_beats_per_frame: int
    out_elements_per_beat: int
    out_element_bits: int
    out_width: int
    out_beats_per_frame: int

    @staticmethod
    def of(network: NetworkSpec) -> "PortGeometry":
        first, last = network.layers[0], network.layers[-1]
        if network.output.label_select:
            out_lanes, out_bits = 1, network.output_type.bits
        else:
            out_lanes, out_bits = last.out_lanes, last.output_type.bits
        return PortGeometry(
            first.in_lanes, first.input_type.bits, byte_aligned(first.in_lanes * first.input_type.bits),
            network.in_elements // first.in_lanes,
            out_lanes, out_bits, byte_aligned(out_lanes * out_bits), network.out_elements // out_lanes)


class Accelerator(wiring.Component):
    """With `monitor_fifos`, extra outputs carry each FIFO's highest (`fifo_peaks`) and current
    (`fifo_levels`) fill level, PEAK_BITS per FIFO, in the order of the network's edges (the first
in the LSBs): for
    FIFO sizing runs and stall diagnosis only."""

    def __init__(self, network: NetworkSpec, monitor_fifos: bool = False, instances: dict | None = None):
        self.network = network
        self.instances = instances or {}  # layer name -> its core's separately converted module (`emit`)
        self.geometry = PortGeometry.of(network)
        self.monitor_fifos = monitor_fifos
        monitored = PEAK_BITS * len(network.edges)
        extra = {"fifo_peaks": Out(monitored), "fifo_levels": Out(monitored)} \
            if monitor_fifos and network.edges else {}
        self.weight_map = WeightMap.of(network)
        if self.weight_map:
            extra.update(weights_addr=In(self.weight_map.address_bits), weights_data=In(32), weights_valid=In(1))
        super().__init__({
            **extra,
            "s_axis_tdata": In(unsigned(self.geometry.in_width)),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "m_axis_tdata": Out(unsigned(self.geometry.out_width)),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    def elaborate(self, platform):
        top = Module()
        # The cores see a registered copy of rst: a reset input that fans out combinationally into
        # every register's next-state logic is a top-level input to all of it, so Verilator would
        # re-evaluate the whole design on each input change, and Vivado prefers registered resets.
        top.domains.core = ClockDomain("core")
        top.d.comb += ClockSignal("core").eq(ClockSignal("sync"))
        top.d.sync += ResetSignal("core").eq(ResetSignal("sync"))
        in_reset = ResetSignal("core")
        m = Module()
        top.submodules.datapath = DomainRenamer("core")(m)
        fifos = []
        cores = {}
        for layer in self.network.layers:
            core = make_core(layer)
            if layer.name in self.instances:
                core = LayerInstance(core, self.instances[layer.name])
            cores[layer.name] = core
            m.submodules[layer.name] = core
        for index, edge in enumerate(self.network.edge_streams(), start=1):
            producer = output_ports(cores[edge.edge.producer], self.network.layer(edge.edge.producer).outputs)
            consumer = input_ports(cores[edge.edge.consumer], self.network.layer(edge.edge.consumer).inputs)
            stages = edge_stages(edge, monitor=self.monitor_fifos)
            for stage in stages:
                kind = "fifo" if isinstance(stage, StreamFIFO) else "dwc"
                m.submodules[f"{kind}{index}"] = stage
            fifos += [stage for stage in stages if isinstance(stage, StreamFIFO)]
            chain(m, [producer[edge.edge.producer_port], *stages, consumer[edge.edge.consumer_port]])
        if self.weight_map:
            self._weight_writes(m, cores)
        first, last = self.network.layers[0], self.network.layers[-1]
        head_port = input_ports(cores[first.name], first.inputs)[0]
        tail_port = cores[last.name].m
        if self.network.output.label_select:
            select = LabelSelect(last.output_type.bits, last.out_lanes, last.out_elements,
                                 self.geometry.out_element_bits)
            m.submodules.label_select = select
            wiring.connect(m, tail_port, select.s)
            tail_port = select.m
        m.submodules.in_slice = in_slice = RegisterSlice(head_port.payload.shape().width)
        m.submodules.out_slice = out_slice = RegisterSlice(tail_port.payload.shape().width)
        wiring.connect(m, in_slice.m, head_port)
        wiring.connect(m, tail_port, out_slice.s)
        head, tail = in_slice, out_slice
        if fifos and self.monitor_fifos:
            m.d.comb += [self.fifo_peaks.eq(Cat(fifo.peak for fifo in fifos)),
                         self.fifo_levels.eq(Cat(fifo.level for fifo in fifos))]
        m.d.comb += [
            head.s.payload.eq(self.s_axis_tdata),
            head.s.valid.eq(self.s_axis_tvalid & ~in_reset),
            self.s_axis_tready.eq(head.s.ready & ~in_reset),
            self.m_axis_tdata.eq(tail.m.payload),
            self.m_axis_tvalid.eq(tail.m.valid),
            tail.m.ready.eq(self.m_axis_tready),
        ]
        out_beat, = nested_counters(m, tail.m.valid & self.m_axis_tready, (self.geometry.out_beats_per_frame,),
                                    ("out_beat",))
        m.d.comb += self.m_axis_tlast.eq(out_beat == self.geometry.out_beats_per_frame - 1)
        return top


    def _weight_writes(self, m, cores) -> None:
        """Each register write, registered, then decoded to the memory whose window holds it and
        registered again into that core's weight port (`weight_port`)."""
        addr = Signal.like(self.weights_addr, name="write_addr")
        data, valid = Signal(32, name="write_data"), Signal(name="write_valid")
        m.d.sync += [addr.eq(self.weights_addr), data.eq(self.weights_data), valid.eq(self.weights_valid)]
        for memory in self.weight_map.memories:
            port = getattr(cores[memory.layer], f"{memory.memory}_write")
            low = window_bits(memory)
            hit = addr[low:] == memory.base >> low if low < len(addr) else 1
            m.d.sync += [port.addr.eq(addr[:low]), port.data.eq(data), port.valid.eq(valid & hit)]


CORES = {MVTUSpec: MVTU, SlidingWindowSpec: SlidingWindow, PadSpec: Padding, PoolSpec: WindowPool,
         ThresholdSpec: Thresholding, VectorUnitSpec: VectorUnit, AddSpec: Thresholding,
         DuplicateSpec: Duplicate, ConcatSpec: Concat}


def make_core(layer) -> wiring.Component:
    """The core that implements one layer spec."""
    core = CORES.get(type(layer))
    if core is None:
        raise TypeError(f"no core for {type(layer).__name__} ({layer.name})")
    return core(layer)


def to_verilog(network: NetworkSpec, monitor_fifos: bool = False, workers: int | None = None,
               groups: int | None = None) -> str:
    """Each core converted on its own, in `groups` fixed groups on `workers` processes (default:
    both by the design's size), then the top level (`emit`)."""
    from .emit import to_verilog

    return to_verilog(network, monitor_fifos, workers, groups)
