"""FINN's folding configs (`--folding` files from finn-examples' `folding_config/`), read as they are.

FINN names its layers after its own ops, numbered per op in graph order (`MVAU_hls_3`,
`MatrixVectorActivation_3`, `VVAU_hls_2`, `Thresholding_Batch_5`...), where finn-rtl names layers
after the ONNX nodes. The translation goes by kind and order: the k-th matrix-vector entry of the
file (FINN writes its config in graph order, whatever the op's variant) folds finn-rtl's k-th
MVTU, the k-th vector-vector entry its k-th depthwise VectorUnit, the k-th pool entry its k-th
pool. The two networks must agree on those counts; a file that does not is refused in one line.

What carries over: PE and SIMD, `ram_style` (`auto`/`block`/`distributed`/`ultra`), `resType`
and `runtime_writeable_weights`. A config with standalone thresholding layers (FINN's Zynq
MobileNet builds: `Thresholding_*` after each MVAU and VVAU, at 1 or 2 channels per cycle where
the MVAU makes 16 to 32 every few dozen cycles) gets them here too (`split_thresholds`): the
k-th thresholded MVTU or VectorUnit outputs its accumulators to a ThresholdSpec layer of its own
with the entry's PE and ram_style, which compares a few channels per cycle instead of PE
channels once per output beat. What does not carry over, and why (each becomes a note of the
build): window generators, paddings and width converters follow their neighbours' lanes; FIFO
depths and styles are sized and chosen by finn-rtl; `mem_mode` and `impl_style` are how FINN
builds a layer, which finn-rtl has one way of.
"""
from __future__ import annotations

import dataclasses
import re

from .errors import CompileError

# FINN op name (any variant suffix) -> finn-rtl layer kind it folds
FOLDED_KINDS = {
    "MatrixVectorActivation": "MVTU", "MVAU": "MVTU",
    "Vector_Vector_Activate": "VectorUnit", "VVAU": "VectorUnit",
    "Pool": "Pool",
}
THRESHOLDING = "Thresholding"
IGNORED_OPS = (THRESHOLDING, "ConvolutionInputGenerator", "FMPadding", "StreamingDataWidthConverter",
               "StreamingFIFO", "StreamingMaxPool", "ChannelwiseOp", "LabelSelect", "DuplicateStreams",
               "AddStreams", "StreamingConcat", "GlobalAccPool", "Defaults")
_NAME = re.compile(r"^(?P<op>[A-Za-z_]+?)(?:_(?:hls|rtl|Batch))*(?:_(?P<index>\d+))?$")
CARRIED_KEYS = ("PE", "SIMD", "ram_style", "resType", "runtime_writeable_weights")
IGNORED_KEYS = ("mem_mode", "impl_style", "depth", "ram_style_thresholds", "depth_trigger_bram",
                "depth_trigger_uram")


def finn_op(name: str) -> str | None:
    """The FINN op a config key names (its variant and index stripped), or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    op = match.group("op")
    return op if op in FOLDED_KINDS or op in IGNORED_OPS else None


def is_finn_config(folding: dict, layer_names) -> bool:
    """Whether `folding` names FINN's layers rather than this network's."""
    foreign = [name for name in folding if name not in layer_names and name != "fifo_styles"]
    return bool(foreign) and all(finn_op(name) for name in foreign)


def split_thresholds(network, entries: list) -> tuple:
    """`network` with the thresholds of its k-th thresholded MVTU or VectorUnit moved into a
    ThresholdSpec layer `<name>_thresholds` after it, for each k-th FINN thresholding entry
    (name, entry); (network, {new layer: entry})."""
    from .network import Edge
    from .specs import ThresholdSpec

    thresholded = [layer for layer in network.layers
                   if layer.kind in ("MVTU", "VectorUnit") and layer.thresholds is not None]
    if len(entries) != len(thresholded):
        raise CompileError(f"the FINN folding config has {len(entries)} thresholding layers ({entries[0][0]}...), "
                           f"this network {len(thresholded)} thresholded MVTU or VectorUnit layers: it is for "
                           f"another network")
    layers, edges, placed = [], list(network.edges), {}
    split = {layer.name: entry for layer, (_, entry) in zip(thresholded, entries)}
    for layer in network.layers:
        if layer.name not in split:
            layers.append(layer)
            continue
        accumulating = dataclasses.replace(layer, thresholds=None, output_type=None, out_base=0, channel_sign=None,
                                           memory_styles=tuple(item for item in layer.memory_styles
                                                               if item[0] != "thresholds"))
        name = f"{layer.name}_thresholds"
        channels = layer.mh if layer.kind == "MVTU" else layer.channels
        pixels = layer.vectors if layer.kind == "MVTU" else layer.out_pixels
        thresholds = ThresholdSpec(name, channels, pixels, accumulating.output_type, layer.thresholds,
                                   layer.output_type, layer.out_base, layer.channel_sign, clock_mhz=layer.clock_mhz)
        layers += [accumulating, thresholds]
        edges = [Edge(name, e.consumer, e.producer_port, e.consumer_port) if e.producer == layer.name else e
                 for e in edges] + [Edge(layer.name, name)]
        placed[name] = split[layer.name]
    position = {layer.name: index for index, layer in enumerate(layers)}
    edges.sort(key=lambda e: (position[e.producer], position[e.consumer]))
    return dataclasses.replace(network, layers=tuple(layers), edges=tuple(edges), fifo_depths=None,
                               fifo_styles=None), placed


def translate(network, folding: dict) -> tuple:
    """(network, finn-rtl folding, notes) of a FINN folding config for `network`: the network is
    itself, or with its thresholds split out where the config has thresholding layers."""
    thresholding = [(name, entry) for name, entry in folding.items() if finn_op(name) == THRESHOLDING]
    by_kind: dict[str, list] = {kind: [] for kind in set(FOLDED_KINDS.values())}
    ignored: dict[str, int] = {}
    for name, entry in folding.items():
        op = finn_op(name)
        if op in FOLDED_KINDS:
            by_kind[FOLDED_KINDS[op]].append((name, entry))
        elif op is not None and op not in ("Defaults", THRESHOLDING):
            ignored[op] = ignored.get(op, 0) + 1
    for kind, entries in by_kind.items():
        layers = [layer for layer in network.layers if layer.kind == kind]
        if entries and len(entries) != len(layers):
            raise CompileError(f"the FINN folding config has {len(entries)} {kind} layers "
                               f"({entries[0][0]}...), this network {len(layers)}: it is for another network")
    translated, notes, narrow = {}, [], []
    if thresholding:
        # Weights written at run time widen an accumulator to any weights' sums: set before the
        # split, so that the thresholding layer takes the widened accumulator.
        mvtus = [layer for layer in network.layers if layer.kind == "MVTU"]
        network = network.with_layers({layer.name: layer.with_runtime_writeable(True)
                                       for layer, (_, entry) in zip(mvtus, by_kind["MVTU"])
                                       if int(entry.get("runtime_writeable_weights", 0))})
        network, placed = split_thresholds(network, thresholding)
        for name, entry in placed.items():
            translated[name] = {{"ram_style": "ram_style_thresholds"}.get(key, key): entry[key]
                                for key in ("PE", "ram_style") if key in entry}
        notes.append(f"{len(placed)} thresholding layers of their own, as FINN's {thresholding[0][0]} ... "
                     f"{thresholding[-1][0]}")
    for kind, entries in by_kind.items():
        if not entries:
            continue
        layers = [layer for layer in network.layers if layer.kind == kind]
        for (finn_name, entry), layer in zip(entries, layers):
            unknown = sorted(set(entry) - set(CARRIED_KEYS) - set(IGNORED_KEYS))
            if unknown:
                raise CompileError(f"{finn_name} (layer {layer.name}): FINN folding keys {unknown} are not known "
                                   f"here; known: {', '.join(CARRIED_KEYS + IGNORED_KEYS)}")
            ours = {key: entry[key] for key in CARRIED_KEYS if key in entry}
            if "PE" in ours and "PE" not in layer.fold_dims:  # FINN's pool PE is a lane count here
                ours[next(iter(layer.fold_dims))] = ours.pop("PE")
            if ours.get("resType") == "auto":
                ours.pop("resType")
            if ours.get("resType") == "dsp" and not (layer.products() and layer.products().dsp_capable):
                ours.pop("resType")  # FINN packs several narrow products into one DSP; here they are LUTs
                narrow.append(layer.name)
            translated[layer.name] = ours
        notes.append(f"{len(entries)} {kind} layers folded from FINN's {entries[0][0]} ... {entries[-1][0]}")
    if narrow:
        notes.append(f"resType dsp dropped on {len(narrow)} layers whose products are too narrow for one DSP48 "
                     f"each (FINN packs several there): {', '.join(narrow)}")
    if ignored:
        notes.append("not carried over from the FINN config (window generators and paddings follow their "
                     "neighbours, FIFOs are sized here): " +
                     ", ".join(f"{count} {op}" for op, count in sorted(ignored.items())))
    return network, translated, tuple(notes)
