"""Pieces of an accelerator that stand alone, for out-of-context synthesis: a layer's core with
the FIFO (and width converter) of each edge into it, and the top level's stream glue."""
from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.network import EdgeStream, NetworkSpec
from .fifo import StreamFIFO
from .ports import input_names, input_ports, output_names, output_ports
from .register_slice import RegisterSlice
from .width_converter import WidthConverter


def edge_stages(edge: EdgeStream, monitor: bool = False) -> list:
    """The components on an edge in stream order: its FIFO, and a width converter where the
    lanes change, the FIFO on the wide side (on the narrow side it could only refill at the
    narrow rate, throttling a consumer that reads in bursts)."""
    fifo = StreamFIFO(edge.fifo_lanes * edge.dtype.bits, edge.depth, monitor=monitor, style=edge.fifo_memory_style,
                      budget=edge.stage_budget)
    if edge.width_converter is None:
        return [fifo]
    converter = WidthConverter(edge.dtype.bits, *edge.width_converter)
    return [fifo, converter] if edge.consumer_lanes <= edge.producer_lanes else [converter, fifo]


def chain(m, streams) -> None:
    """Connect a producer's output stream through stages (components with `s`/`m`) to a consumer's
    input stream."""
    source = streams[0]
    for stage in streams[1:-1]:
        wiring.connect(m, source, stage.s)
        source = stage.m
    wiring.connect(m, source, streams[-1])


class LayerUnit(wiring.Component):
    """One layer's core behind the FIFOs and width converters of the edges into it: ports `s`
    (or `s0, s1, ...`) at the producers' lanes, `m` (or `m0, ...`) at the core's."""

    def __init__(self, network: NetworkSpec, name: str):
        from .accelerator import make_core

        self.layer = network.layer(name)
        self.core = make_core(self.layer)
        streams = network.edge_streams()
        self.edges = [streams[i] for i in network.in_edges(name)]
        in_lanes = [e.producer_lanes for e in self.edges] or [self.layer.in_lanes]
        self.input_names, self.output_names = input_names(self.layer.inputs), output_names(self.layer.outputs)
        super().__init__({
            **{port: In(stream.Signature(unsigned(lanes * self.layer.port_type(i).bits)))
               for i, (port, lanes) in enumerate(zip(self.input_names, in_lanes))},
            **{port: Out(stream.Signature(unsigned(self.layer.out_lanes * self.layer.output_type.bits)))
               for port in self.output_names},
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        core_inputs = input_ports(self.core, self.layer.inputs)
        for port, name in enumerate(self.input_names):
            outside = wiring.flipped(getattr(self, name))
            stages = edge_stages(self.edges[port]) if self.edges else []
            for index, stage in enumerate(stages):
                m.submodules[f"{name}_stage{index}"] = stage
            chain(m, [outside, *stages, core_inputs[port]])
        for inside, name in zip(output_ports(self.core, self.layer.outputs), self.output_names):
            wiring.connect(m, inside, wiring.flipped(getattr(self, name)))
        return m


class StreamGlue(wiring.Component):
    """The top level's register slices on the input and output streams."""

    def __init__(self, in_bits: int, out_bits: int):
        self.in_bits, self.out_bits = in_bits, out_bits
        super().__init__({"s_in": In(stream.Signature(unsigned(in_bits))),
                          "m_in": Out(stream.Signature(unsigned(in_bits))),
                          "s_out": In(stream.Signature(unsigned(out_bits))),
                          "m_out": Out(stream.Signature(unsigned(out_bits)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.in_slice = in_slice = RegisterSlice(self.in_bits)
        m.submodules.out_slice = out_slice = RegisterSlice(self.out_bits)
        wiring.connect(m, wiring.flipped(self.s_in), in_slice.s)
        wiring.connect(m, in_slice.m, wiring.flipped(self.m_in))
        wiring.connect(m, wiring.flipped(self.s_out), out_slice.s)
        wiring.connect(m, out_slice.m, wiring.flipped(self.m_out))
        return m
