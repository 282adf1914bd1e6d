"""The accelerator as a dataflow graph: layer specs joined by streams (edges).

`NetworkSpec.layers` are in topological order; the network input feeds port 0 of the first
layer and the last layer's output is the network output. Each `Edge` joins one output port of
a producer to one input port of a consumer and carries a FIFO, plus a width converter where
the two sides' lanes differ: the edge's `EdgeStream` says which (FINN's InsertFIFO/InsertDWC
are graph passes for the same reason). A chain is the special case where layer i feeds i+1.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from .datatypes import QType
from .errors import CompileError
from .finn_folding import is_finn_config, translate as translate_finn_config
from .memory import DEFAULT_LUTS_PER_BRAM18, MemoryShape, auto_style, check_style, fifo_memory
from .specs import FoldingError, MVTUSpec, frozen_int_array

SHORTCUT_SLACK_BEATS = 8  # register stages of the merging core and the width converters
# A stream FIFO (cores.fifo.StreamFIFO) takes a beat per cycle from three entries on: its
# ready comes from the previous cycle's level, so two entries pass every other beat (measured:
# a 2-deep FIFO in front of a ResNet block's fork doubled the II, both sides at 100% duty).
FULL_RATE_DEPTH = 3


@dataclass(frozen=True)
class Edge:
    producer: str
    consumer: str
    producer_port: int = 0
    consumer_port: int = 0

    def __str__(self) -> str:
        src = self.producer + (f"[{self.producer_port}]" if self.producer_port else "")
        return f"{src} -> {self.consumer}" + (f"[{self.consumer_port}]" if self.consumer_port else "")


@dataclass(frozen=True)
class EdgeStream:
    """What the accelerator puts on an edge."""

    edge: Edge
    elements: int  # per frame
    dtype: QType
    producer_lanes: int
    consumer_lanes: int
    depth: int  # FIFO beats
    style: Optional[str] = None  # the FIFO's memory style; None: the automatic choice
    luts_per_bram18: float = DEFAULT_LUTS_PER_BRAM18  # the device's exchange rate for that choice
    luts_per_uram: Optional[float] = None  # and for UltraRAM, on a device that has it
    clock_mhz: Optional[float] = None  # the consumer's clock (`Layer.clock_mhz`)

    @property
    def stage_budget(self):
        """The logic delay each pipeline stage of the edge's FIFO may hold (`cores.pipelining`)."""
        from ..cores.pipelining import DEFAULT_MHZ, StageBudget

        return StageBudget.at(self.clock_mhz or DEFAULT_MHZ)

    @property
    def fifo_lanes(self) -> int:
        """The FIFO sits on the wide side of a width converter: on the narrow side it could only
        refill at the narrow rate, throttling a consumer that reads in bursts."""
        return max(self.producer_lanes, self.consumer_lanes)

    @property
    def fifo_memory(self) -> MemoryShape:
        return fifo_memory(self.fifo_lanes * self.dtype.bits, self.depth)

    @property
    def fifo_memory_style(self) -> str:
        return self.style or auto_style(self.fifo_memory, self.luts_per_bram18, self.luts_per_uram)

    @property
    def width_converter(self) -> Optional[tuple[int, int]]:
        if self.producer_lanes == self.consumer_lanes:
            return None
        return self.producer_lanes, self.consumer_lanes

    def report(self) -> dict:
        return {"producer": self.edge.producer, "producer_port": self.edge.producer_port,
                "consumer": self.edge.consumer, "consumer_port": self.edge.consumer_port,
                "elements_per_frame": self.elements, "type": str(self.dtype),
                "fifo_depth": self.depth, "fifo_lanes": self.fifo_lanes,
                "fifo_bits": self.depth * self.fifo_lanes * self.dtype.bits,
                "fifo_memory_style": self.fifo_memory_style,
                "width_converter": None if self.width_converter is None else
                {"in_lanes": self.producer_lanes, "out_lanes": self.consumer_lanes}}


# Folding-file keys for memory styles: FINN's `ram_style` (every memory but the thresholds) and
# `ram_style_thresholds`, or `memory_styles` by memory name (what folding.json writes).
MEMORY_KEYS = ("ram_style", "ram_style_thresholds", "memory_styles")
# FINN's key for where a layer's multiplications go: "lut", "dsp" or "auto" (graph.multipliers).
MULTIPLIER_KEY = "resType"
# FINN's key for weights written at run time (0 or 1): `Layer.runtime_writeable`.
WRITABLE_KEY = "runtime_writeable_weights"
# The folding file's entry (beside the layers) for FIFO memory styles by edge, {"A -> B": style}.
FIFO_STYLES_KEY = "fifo_styles"


def memory_style_entry(entry: dict) -> dict:
    return {key: entry[key] for key in MEMORY_KEYS if key in entry}


def with_memory_entry(layer, entry: dict):
    """The layer with the memory styles of its folding entry."""
    memories = layer.memories()
    if not memories:
        raise FoldingError(f"layer {layer.name} has no memories to give a ram_style")
    chosen = {}
    if "ram_style" in entry:
        chosen.update({name: entry["ram_style"] for name in memories if name != "thresholds"})
    if "ram_style_thresholds" in entry:
        if "thresholds" not in memories:
            raise FoldingError(f"layer {layer.name}: ram_style_thresholds given, but it has no thresholds")
        chosen["thresholds"] = entry["ram_style_thresholds"]
    named = entry.get("memory_styles", {})
    if not isinstance(named, dict) or not set(named) <= set(memories):
        raise FoldingError(f"layer {layer.name}: memory_styles must map its memories "
                           f"({', '.join(memories)}) to styles")
    chosen.update(named)
    return layer.with_memory_styles(chosen)


def chain_edges(layers) -> tuple[Edge, ...]:
    return tuple(Edge(a.name, b.name) for a, b in zip(layers, layers[1:]))


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """A dataflow graph of stream layers from the integer input stream to the output stream.

    Elements travel in hardware order: images channels last, (row, column,
    channel). ``input_order``/``output_order`` say where the model's own
    (flattened, e.g. NCHW) elements sit in that order: stream element ``i`` is
    model element ``order[i]``; None means the same order.
    """

    name: str
    layers: tuple
    input_type: QType
    output: "OutputSpec"
    # Beats of the FIFO on each edge, in `edges` order; None: the default sizing.
    fifo_depths: Optional[tuple] = None
    # The memory style of each edge's FIFO, in `edges` order (None: all automatic, or an entry
    # None), and the exchange rate of the automatic choice: the device's LUTs per BRAM18.
    fifo_styles: Optional[tuple] = None
    luts_per_bram18: float = DEFAULT_LUTS_PER_BRAM18
    luts_per_uram: Optional[float] = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    input_order: Optional[np.ndarray] = None
    output_order: Optional[np.ndarray] = None
    edges: Optional[tuple] = None  # None: a chain

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "edges", chain_edges(self.layers) if self.edges is None else tuple(self.edges))
        for name in ("input_order", "output_order"):
            order = getattr(self, name)
            if order is not None:
                order = frozen_int_array(order)
                object.__setattr__(self, name, None if np.array_equal(order, np.arange(len(order))) else order)
        if not self.layers:
            raise ValueError(f"{self.name}: a network needs at least one layer")
        self._check_graph()
        if self.fifo_depths is not None:
            object.__setattr__(self, "fifo_depths", tuple(int(d) for d in self.fifo_depths))
            if len(self.fifo_depths) != len(self.edges) or min(self.fifo_depths, default=2) < 2:
                raise ValueError(f"{self.name}: need {len(self.edges)} FIFO depths of at least 2")
        if self.fifo_styles is not None:
            object.__setattr__(self, "fifo_styles", tuple(self.fifo_styles))
            if len(self.fifo_styles) != len(self.edges):
                raise ValueError(f"{self.name}: need {len(self.edges)} FIFO styles")
        if self.layers[0].port_type(0) != self.input_type:
            raise ValueError("network input type does not match the first layer")
        if self.output.label_select and not (isinstance(self.layers[-1], MVTUSpec) and self.layers[-1].vectors == 1):
            raise ValueError("label select needs a fully connected last layer")

    def _check_graph(self) -> None:
        position = {layer.name: i for i, layer in enumerate(self.layers)}
        if len(position) != len(self.layers):
            raise ValueError(f"{self.name}: layer names must be unique")
        fed = {(self.layers[0].name, 0)}
        used = set()
        for edge in self.edges:
            if edge.producer not in position or edge.consumer not in position:
                raise ValueError(f"edge {edge} names an unknown layer")
            prev, nxt = self.layer(edge.producer), self.layer(edge.consumer)
            if position[edge.producer] >= position[edge.consumer]:
                raise ValueError(f"edge {edge} goes against the layers' topological order")
            if not (0 <= edge.producer_port < prev.outputs and 0 <= edge.consumer_port < nxt.inputs):
                raise ValueError(f"edge {edge} names a port its layers do not have")
            for ports, port in ((fed, (edge.consumer, edge.consumer_port)),
                                (used, (edge.producer, edge.producer_port))):
                if port in ports:
                    raise ValueError(f"edge {edge}: port {port[0]}[{port[1]}] is joined twice")
                ports.add(port)
            if prev.out_elements != nxt.port_elements(edge.consumer_port) or \
                    prev.output_type != nxt.port_type(edge.consumer_port):
                raise ValueError(f"layer {prev.name} ({prev.out_elements} x {prev.output_type}) does not "
                                 f"feed layer {nxt.name} ({nxt.port_elements(edge.consumer_port)} x "
                                 f"{nxt.port_type(edge.consumer_port)})")
        unfed = [f"{layer.name}[{p}]" for layer in self.layers for p in range(layer.inputs)
                 if (layer.name, p) not in fed]
        unused = [f"{layer.name}[{p}]" for layer in self.layers[:-1] for p in range(layer.outputs)
                  if (layer.name, p) not in used]
        if unfed or unused or self.layers[-1].outputs != 1:
            raise ValueError(f"{self.name}: unconnected ports: inputs {unfed}, outputs {unused}")

    # -- the graph ------------------------------------------------------------------------
    @cached_property
    def _by_name(self) -> dict:
        return {layer.name: layer for layer in self.layers}

    def layer(self, name: str):
        return self._by_name[name]

    @cached_property
    def _edge_index(self) -> tuple[dict, dict]:
        """Edge indices into and out of each layer, by port."""
        into, out_of = {}, {}
        for i, edge in enumerate(self.edges):
            into.setdefault(edge.consumer, []).append(i)
            out_of.setdefault(edge.producer, []).append(i)
        for table, port in ((into, "consumer_port"), (out_of, "producer_port")):
            for indices in table.values():
                indices.sort(key=lambda i: getattr(self.edges[i], port))
        return into, out_of

    def in_edges(self, name: str) -> list[int]:
        """Indices of the edges into a layer, by port."""
        return self._edge_index[0].get(name, [])

    def out_edges(self, name: str) -> list[int]:
        return self._edge_index[1].get(name, [])

    def followed(self, name: str) -> str | None:
        """The neighbour whose lanes a lane-following layer takes: a window generator's or
        padding's consumer, a duplicate's producer (None: it reads the network input)."""
        if self.layer(name).lanes_follow == "consumer":
            return self.edges[self.out_edges(name)[0]].consumer
        inputs = self.in_edges(name)
        return self.edges[inputs[0]].producer if inputs else None

    @property
    def is_chain(self) -> bool:
        return self.edges == chain_edges(self.layers)

    @property
    def in_elements(self) -> int:
        return self.layers[0].port_elements(0)

    @property
    def out_elements(self) -> int:
        return 1 if self.output.label_select else self.layers[-1].out_elements

    @property
    def output_type(self) -> QType:
        if self.output.label_select:
            return QType.for_range(0, max(1, self.layers[-1].out_elements - 1))
        return self.layers[-1].output_type

    # -- folding -----------------------------------------------------------------------
    @property
    def foldable(self) -> tuple:
        """Layers with their own folding entry (window generators, padding and duplicates
        follow a neighbour: `lane_followers`)."""
        return tuple(layer for layer in self.layers if layer.fold_dims)

    @property
    def folding(self) -> dict[str, dict[str, int]]:
        return {layer.name: {key: getattr(layer, key.lower()) for key in layer.fold_dims}
                for layer in self.foldable}

    @property
    def memory_styles(self) -> dict[str, dict[str, str]]:
        """Every layer memory's style, by layer: what the folding file's `memory_styles` reads."""
        return {layer.name: {name: layer.memory_style(name) for name in layer.memories()}
                for layer in self.layers if layer.memories()}

    @property
    def multiplier_styles(self) -> dict[str, str]:
        """Where each multiplying layer's products go, by layer: the folding file's `resType`."""
        return {layer.name: layer.multipliers for layer in self.layers if layer.multipliers}

    @property
    def dsps(self) -> int:
        return sum(layer.dsps for layer in self.layers)

    @property
    def lane_followers(self) -> dict[str, dict]:
        """Layers whose lanes follow a neighbour, with the lanes and whom they follow: a window
        generator or padding delivers whole channel groups at its consumer's SIMD; a duplicate
        passes its producer's beats on unchanged."""
        return {layer.name: {"SIMD": layer.in_lanes, "follows": self.followed(layer.name) or "network input"}
                for layer in self.layers if layer.lanes_follow is not None}

    def with_layers(self, replaced: dict) -> "NetworkSpec":
        """The network with some layers (by name) replaced by versions of themselves."""
        return dataclasses.replace(self, layers=tuple(replaced.get(layer.name, layer) for layer in self.layers))

    def with_clock(self, mhz: float) -> "NetworkSpec":
        """The network with every core's pipeline registers placed for a clock of `mhz`."""
        return dataclasses.replace(self, layers=tuple(layer.with_clock(mhz) for layer in self.layers))

    def with_folding(self, folding: dict[str, dict[str, int]]) -> "NetworkSpec":
        """The network with each foldable layer's PE/SIMD from `folding`. Entries marked
        "follows" (a folding.json lists lane followers that way) are derived, not read. A FINN
        folding config (FINN's layer names) is translated first (`graph.finn_folding`)."""
        folding = dict(folding)
        if is_finn_config(folding, {layer.name for layer in self.layers}):
            network, folding, notes = translate_finn_config(self, folding)
            network = dataclasses.replace(network, notes=network.notes + notes)
            return network.with_folding(folding)
        fifo_styles = folding.pop(FIFO_STYLES_KEY, None)
        followers = {name for name, entry in folding.items() if "follows" in entry}
        not_following = sorted(followers - {layer.name for layer in self.layers if layer.lanes_follow})
        if not_following:
            raise FoldingError(f"folding marks {not_following} as following a neighbour, but they fold "
                               "on their own; give them PE/SIMD")
        styles = {name: memory_style_entry(entry) for name, entry in folding.items()}
        folding = {name: entry for name, entry in folding.items() if name not in followers}
        names = {layer.name for layer in self.foldable}
        unknown = sorted(set(folding) - names - {name for name, style in styles.items() if style})
        if unknown:
            raise FoldingError(f"folding names unknown layers {unknown}; layers are {sorted(names)}")
        layers = {}
        for layer in self.layers:
            if layer.fold_dims:
                entry = folding.get(layer.name, {})
                extra = sorted(set(entry) - set(layer.fold_dims) - set(MEMORY_KEYS) - {MULTIPLIER_KEY, WRITABLE_KEY})
                if extra:
                    keys = [*layer.fold_dims, *(MEMORY_KEYS if layer.memories() else ()),
                            *((MULTIPLIER_KEY,) if layer.products() else ()),
                            *((WRITABLE_KEY,) if layer.WRITABLE_MEMORIES else ())]
                    raise FoldingError(f"layer {layer.name}: unknown folding keys {extra} (use {', '.join(keys)})")
                layer = layer.folded(int(entry.get("PE", getattr(layer, "pe", 1))),
                                     int(entry.get("SIMD", layer.simd)))
            layers[layer.name] = layer
        for layer in reversed(self.layers):  # consumers first
            if layer.lanes_follow == "consumer":
                layers[layer.name] = layer.with_lanes(layers[self.followed(layer.name)].in_lanes)
        for layer in self.layers:  # producers first
            if layer.lanes_follow == "producer":
                producer = self.followed(layer.name)
                lanes = layers[producer].out_lanes if producer else \
                    max(layers[self.edges[i].consumer].in_lanes for i in self.out_edges(layer.name))
                layers[layer.name] = layer.with_lanes(lanes)
        for name, entry in folding.items():  # before the styles: UltraRAM needs written weights
            if WRITABLE_KEY in entry and name in layers:
                try:
                    writable = bool(int(entry[WRITABLE_KEY]))
                    layers[name] = layers[name].with_runtime_writeable(writable)
                except (CompileError, ValueError, TypeError) as error:
                    raise FoldingError(str(error) if isinstance(error, CompileError) else
                                       f"layer {name}: {WRITABLE_KEY} must be 0 or 1") from None
                widened = layers[name].output_type != self.layer(name).output_type
                consumers = [self.edges[i].consumer for i in self.out_edges(name)]
                if widened and consumers:
                    raise FoldingError(f"layer {name}: {WRITABLE_KEY} widens its unthresholded output from "
                                       f"{self.layer(name).output_type} to {layers[name].output_type} (any weights' "
                                       f"sums), which {consumers[0]} does not take; write the weights of layers "
                                       f"with thresholds or of the last layer")
        for name, entry in styles.items():  # after the lanes: they set the memories' shapes
            if entry:
                layers[name] = with_memory_entry(layers[name], entry)
        for name, entry in folding.items():
            if MULTIPLIER_KEY in entry:
                layers[name] = layers[name].with_multiplier_style(entry[MULTIPLIER_KEY])
        network = dataclasses.replace(self, layers=tuple(layers[layer.name] for layer in self.layers))
        return network if fifo_styles is None else network.with_fifo_styles(fifo_styles)

    @property
    def analytic_ii(self) -> int:
        return max(layer.cycles_per_frame for layer in self.layers)

    # -- FIFOs and width converters on the edges ------------------------------------------------
    def fifo_lanes(self, index: int) -> int:
        edge = self.edges[index]
        return max(self.layer(edge.producer).out_lanes, self.layer(edge.consumer).in_lanes)

    @cached_property
    def default_fifo_depths(self) -> tuple[int, ...]:
        """One consumer input unit per FIFO (an MVTU's vector, a window generator's image row, a
        pool window): a whole MVTU input vector lets the consumer read its next vector at full
        rate while the producer runs ahead; smaller FIFOs throttle a consumer whose input phase
        is shorter than the producer's (measured: II 92 instead of 64 on TFC with a 32-deep FIFO).

        Where streams meet (Add, Concat), the FIFO on each input also covers what the other
        branches from their common fork can hold (`branch_storage`): otherwise the fork stalls
        on a full shortcut while the merge waits for the long branch, a deadlock.
        `flow.size_fifos` sets exact depths from simulation instead."""
        depths = []
        for index, edge in enumerate(self.edges):
            lanes = self.fifo_lanes(index)
            depth = max(FULL_RATE_DEPTH, self.layer(edge.consumer).fifo_unit // lanes)
            other = self.branch_storage(index, depths)
            if other:
                elements = self.layer(edge.consumer).port_elements(edge.consumer_port)
                depth = max(depth, -(-int(np.ceil(other * elements)) // lanes) + SHORTCUT_SLACK_BEATS)
            depths.append(depth)
        return tuple(depths)

    def fifo_depth(self, index: int) -> int:
        return self.fifo_depths[index] if self.fifo_depths is not None else self.default_fifo_depths[index]

    def branch_storage(self, index: int, depths) -> float:
        """For an edge into a merging layer: the most any other input's branch can hold while the
        merge waits on it, back to the latest fork they share, as a fraction of a frame (0 for
        other edges).

        A deadlock needs the fork stalled on this edge's full FIFO while the merge waits for
        another input, whose branch then starves: each of its cores waits for input, so the
        FIFOs between them are empty, and it holds at most `held_inputs`. FIFOs into a merge on
        that branch are the exception (their merge may wait on its other input): they count
        with their depth (`depths`, the edges before this one). What the branch holds equals
        what this FIFO holds, so a deeper FIFO cannot fill while the other branch starves."""
        edge = self.edges[index]
        merge = self.layer(edge.consumer)
        if merge.inputs < 2:
            return 0.0
        ports = self.in_edges(merge.name)
        forks = set.intersection(*(self._ancestor_forks(self.edges[i].producer) for i in ports))
        if not forks:
            return 0.0
        fork = max(forks, key=lambda name: self._position[name])
        held = self._storage_from(fork, depths)
        return max((held.get(self.edges[i].producer, 0.0) for i in ports if i != index), default=0.0)

    @cached_property
    def _position(self) -> dict:
        return {layer.name: i for i, layer in enumerate(self.layers)}

    def _ancestor_forks(self, name: str) -> set:
        found, stack, seen = set(), [name], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if self.layer(current).outputs > 1:
                found.add(current)
            stack += [self.edges[i].producer for i in self.in_edges(current)]
        return found

    def _storage_from(self, fork: str, depths) -> dict:
        """Longest storage (frame fraction) from the fork's output to each later layer's output."""
        held = {fork: 0.0}
        for layer in self.layers[self._position[fork] + 1:]:
            best = None
            for i in self.in_edges(layer.name):
                edge = self.edges[i]
                if edge.producer not in held or i >= len(depths):
                    continue
                fifo = depths[i] * self.fifo_lanes(i) / layer.port_elements(edge.consumer_port) \
                    if layer.inputs > 1 else 0.0
                value = held[edge.producer] + fifo
                best = value if best is None else max(best, value)
            if best is not None:
                held[layer.name] = best + layer.held_inputs / layer.port_elements(0)
        return held

    def edge_streams(self) -> list[EdgeStream]:
        styles = self.fifo_styles or (None,) * len(self.edges)
        return [EdgeStream(edge, self.layer(edge.producer).out_elements, self.layer(edge.producer).output_type,
                           self.layer(edge.producer).out_lanes, self.layer(edge.consumer).in_lanes,
                           self.fifo_depth(i), styles[i], self.luts_per_bram18, self.luts_per_uram,
                           self.layer(edge.consumer).clock_mhz)
                for i, edge in enumerate(self.edges)]

    def with_fifo_styles(self, styles: dict) -> "NetworkSpec":
        """The network with FIFO styles set by edge name ('A -> B', as reports name edges; 'auto':
        the automatic choice); FoldingError names an unknown edge or style."""
        names = [str(edge) for edge in self.edges]
        unknown = sorted(set(styles) - set(names))
        if not isinstance(styles, dict) or unknown:
            raise FoldingError(f"fifo_styles names unknown edges {unknown}; edges are {names}")
        chosen = list(self.fifo_styles or (None,) * len(self.edges))
        for name, style in styles.items():
            index = names.index(name)
            shape = fifo_memory(1, 2)  # every FIFO has a registered read: any style fits
            try:
                chosen[index] = check_style(style, shape, f"FIFO {name}")
            except CompileError as error:
                raise FoldingError(str(error)) from None
        return dataclasses.replace(self, fifo_styles=tuple(chosen) if any(chosen) else None)

    @property
    def fifo_style_entries(self) -> dict[str, str]:
        """Every FIFO's style by edge name: what the folding file's `fifo_styles` reads."""
        return {str(stream.edge): stream.fifo_memory_style for stream in self.edge_streams()}

    # -- numbers in, numbers out ---------------------------------------------------------
    def to_stream(self, x: np.ndarray) -> np.ndarray:
        """Model-order input elements [n, in] -> stream order."""
        x = np.asarray(x).reshape(len(x), -1)
        return x if self.input_order is None else x[:, self.input_order]

    def from_stream(self, y: np.ndarray) -> np.ndarray:
        """Stream-order output elements [n, out] -> model order."""
        y = np.asarray(y).reshape(len(y), -1)
        if self.output_order is None or self.output.label_select:
            return y
        out = np.empty_like(y)
        out[:, self.output_order] = y
        return out

    def layer_outputs(self, x: np.ndarray, overrides: dict[str, dict[int, int]] | None = None
                      ) -> dict[str, np.ndarray]:
        """Each layer's bit-exact numpy output, by name, for stream-order x [n, in].

        `overrides` {layer: {element: value}} replaces those elements of a layer's output (in
        every frame) before the layers after it read it: how a golden model's choice at a
        rounding tie is followed through the rest of the network."""
        outputs = {}
        for position, layer in enumerate(self.layers):
            if position == 0:
                inputs = [np.asarray(x, dtype=np.int64)]
            else:
                inputs = [outputs[self.edges[i].producer] for i in self.in_edges(layer.name)]
            outputs[layer.name] = layer.reference(*inputs)
            if overrides and layer.name in overrides:
                replaced = np.array(outputs[layer.name], copy=True)  # a layer may pass its input on
                for element, value in overrides[layer.name].items():
                    replaced[:, element] = value
                outputs[layer.name] = replaced
        return outputs

    def reference(self, x: np.ndarray, overrides: dict[str, dict[int, int]] | None = None) -> np.ndarray:
        """Bit-exact numpy model of the whole accelerator: stream-order x [n, in] -> [n, out]
        (`overrides` as in `layer_outputs`)."""
        y = self.layer_outputs(x, overrides)[self.layers[-1].name]
        if self.output.label_select:
            return y.argmax(axis=1)[:, None]
        return y


@dataclass(frozen=True, eq=False)
class OutputSpec:
    """How the host turns the last layer's integers into the model's output.

    ``model output = scale * y + offset`` per channel (arrays broadcast over the
    last axis). With ``label_select`` the accelerator returns the top-1 index;
    with ``host_argmax`` the host takes the argmax of that affine.
    """

    scale: np.ndarray
    offset: np.ndarray
    label_select: bool = False
    host_argmax: bool = False  # the model's output is argmax(scale * y + offset), taken on the host
    head: Optional[str] = None  # Softmax/LogSoftmax/Sigmoid applied on the host after the affine
    head_node: Optional[str] = None  # that op's name in the user's model (its input is compared)

    def __post_init__(self):
        for name in ("scale", "offset"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def apply(self, y: np.ndarray) -> np.ndarray:
        """The model's output for the accelerator's integers (label select: the index itself)."""
        if self.label_select:
            return np.asarray(y)
        values = np.asarray(y, dtype=np.float64) * self.scale + self.offset
        if self.host_argmax:
            return values.argmax(axis=-1)[..., None]
        from .heads import apply_head

        return apply_head(self.head, values)
