"""Resource estimates in milliseconds: the same units as `synthesis` (each layer with the FIFOs
and width converters of its input edges, plus the top level's glue), from each part's shape.

Block RAMs and LUT RAMs are counted exactly as Yosys maps the memories (`graph.memory`), DSP48s as
one per product of a layer in the "dsp" style (`graph.multipliers`). LUTs and
flip-flops are a linear model: every core names what its logic grows with
(`resource_features(spec)`: lanes x bits of its datapath, accumulators, comparators, counters),
every memory adds its own terms by style, and the coefficients are fitted to Yosys on a sweep
of generated networks (`benchmarks/calibrate_estimates.py` writes `calibration.json`;
`benchmarks/bench_estimates.py` prints the error per core kind and per network).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..graph.memory import (MemoryShape, bram_geometry, live_columns, lutram_geometry, mux_luts, uram_primitives,
                             varying_columns)
from ..graph.network import NetworkSpec

CALIBRATION = Path(__file__).with_name("calibration.json")
COLUMNS = ("LUT", "LUTRAM", "FF", "BRAM18", "BRAM36", "URAM", "DSP")
GLUE = "top level (register slices)"
LABEL_SELECT = "label select"
# Features that cost only one resource: registers loaded with an enable and nothing else (no
# LUTs), and the adders of popcounts (no flip-flops). No coefficient is fitted to them for the
# other column, where it would only soak up what other terms miss.
FLIP_FLOPS_ONLY = ("MVTU.in_bits", "MVTU.dsp_in_bits", "rom_register_bits", "pipeline_bits")
LUTS_ONLY = ("_popcount_", "_rom_bits_")
# Costs known from the structure, set instead of fitted: a fit let these terms absorb other
# terms' errors (LUTs: 0.64 to 1.44 per bit; flip-flops: 0.43 and 0.69 per register bit, which
# put TFC-w1a1 20% low). A LUT-RAM read multiplexer is `mux_luts` LUTs per bit (measured on
# LUT-RAM FIFOs of 2 to 16 blocks); a width converter's scatter register is a load-or-shift choice
# per bit; the MVTU's input register and a LUT ROM's read register are a flip-flop per bit (per
# live column). In front of DSP48s both are the DSPs' own input registers: separate, fitted terms.
SET_COEFFICIENTS = {
    "LUT": {"memory.lutram_mux_bits": 1.0, "WidthConverter.scatter_bits": 1.0},
    "FF": {"MVTU.in_bits": 1.0, "memory.rom_register_bits": 1.0, "MVTU.pipeline_bits": 1.0,
           "VectorUnit.pipeline_bits": 1.0, "FIFO.pipeline_bits": 1.0,
           "Threshold.pipeline_bits": 1.0, "Add.pipeline_bits": 1.0},
}


def fitted(column: str, name: str) -> bool:
    """Whether the model has a fitted coefficient of feature `name` in `column` ("LUT" or "FF");
    `SET_COEFFICIENTS` are set, not fitted."""
    if name in SET_COEFFICIENTS[column]:
        return False
    return not any(part in name for part in (FLIP_FLOPS_ONLY if column == "LUT" else LUTS_ONLY))


def memory_terms(shape: MemoryShape, style: str, role: str = "data", live: int | None = None,
                 into_dsps: bool = False) -> tuple[dict, dict]:
    """(exact counts, linear-model features) of one memory in its style; `role` separates
    threshold ROMs (ascending values) from other contents. Where a ROM's contents are known,
    `live` is the bit columns it costs: in LUTs the varying, distinct ones, in block RAM the
    varying ones (`graph.memory.live_columns`, `varying_columns`). `into_dsps`: the ROM's words
    feed DSP48s, whose input registers can take its read register."""
    exact = dict.fromkeys(COLUMNS, 0)
    features = {}
    if style == "ultra":  # URAM288s cascade in their own routing: no LUTs around them
        exact["URAM"] = uram_primitives(shape)
        return exact, features
    if style == "block":
        stored = shape if live is None else MemoryShape(shape.depth, live, rom=True)
        primitive, count, blocks = bram_geometry(stored)
        exact[primitive] = count
        # Deeper than one primitive: the read data is a multiplexer of the address blocks
        # (seen in CNV-w1a1's Conv_4: 2,304 x 128 bits in five blocks of 9 RAMB36, read through LUT6 4:1 muxes).
        features["memory.block_mux_bits"] = stored.width * (blocks - 1)
        return exact, features
    if shape.sync_read:
        features["memory.read_register_bits"] = shape.width
    if style == "registers":
        features["memory.register_bits"] = shape.bits
        features["memory.register_mux_bits"] = shape.width * max(0, shape.depth - 1)
    elif shape.rom and not shape.writable:
        # Distributed ROMs are LUT logic: up to 64 words a LUT per bit, whatever the depth (a
        # shallow ROM has few distinct columns, which `live` already counts), deeper a mux tree.
        # Measured on random 128-bit ROMs: 1.0 LUT per column at 8 to 64 words (the cores fill
        # a shallow ROM up to a power of two, `cores.memories.rom_words`). Its read register is a
        # flip-flop per column.
        shallow = shape.depth <= 64
        columns = shape.width if live is None else live
        features[f"memory.{role}_rom_bits_shallow"] = columns if shallow else 0
        features[f"memory.{role}_rom_bits_deep"] = 0 if shallow else columns * shape.depth / 64
        if shape.sync_read:
            features["memory.dsp_rom_register_bits" if into_dsps else "memory.rom_register_bits"] = columns
    else:
        # More than one block of LUT RAM: a read multiplexer per bit, a write enable per block.
        exact["LUTRAM"], blocks = lutram_geometry(shape)
        features["memory.lutram_mux_bits"] = shape.width * mux_luts(blocks)
        features["memory.lutram_blocks"] = blocks if blocks > 1 else 0
    return exact, features


def _add(total: dict, part: dict, scale: float = 1) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + scale * value


def part_terms(kind: str, features: dict, memories) -> tuple[dict, dict, dict]:
    """(exact counts, model features, memory styles) of one part: a core, FIFO or converter."""
    exact = dict.fromkeys(COLUMNS, 0)
    exact["DSP"] = features.get("dsp48", 0)  # one DSP48 per product in the "dsp" style: counted
    model = {f"{kind}.{name}": value for name, value in features.items() if value and name != "dsp48"}
    styles = {}
    for name, shape, style, live in memories:
        counts, terms = memory_terms(shape, style, "thresholds" if name == "thresholds" else "data", live,
                                     into_dsps=name == "weights" and bool(features.get("dsp48")))
        _add(exact, counts)
        _add(model, terms)
        styles[name] = style
    return exact, model, styles


def unit_parts(network: NetworkSpec, layer, streams) -> list[tuple[str, dict, list]]:
    """Each part of a layer's synthesis unit: (kind, features, [(memory, shape, style, live columns)]);
    `streams`: the network's edge_streams()."""
    from ..cores.accelerator import CORES
    from ..cores.fifo import StreamFIFO
    from ..cores.width_converter import WidthConverter

    core = CORES[type(layer)]
    memories = []
    for name, shape in layer.memories().items():
        style = layer.memory_style(name)
        # A ROM written at run time keeps every column: none is known to stay constant.
        known = shape.rom and not shape.writable and style in ("distributed", "block")
        fields = layer.rom_fields(name) if known else None
        live = None if fields is None else (live_columns if style == "distributed" else varying_columns)(*fields)
        memories.append((name, shape, style, live))
    parts = [(layer.kind, core.resource_features(layer), memories)]
    for index in network.in_edges(layer.name):
        edge = streams[index]
        parts.append(("FIFO", StreamFIFO.resource_features(edge.depth, edge.fifo_memory.width, edge.fifo_memory_style,
                                                        edge.stage_budget),
                      [(f"fifo from {edge.edge.producer}", edge.fifo_memory, edge.fifo_memory_style, None)]))
        if edge.width_converter is not None:
            converter = WidthConverter.resource_features(edge.dtype.bits, *edge.width_converter)
            parts.append(("WidthConverter", converter, []))
    return parts


def glue_parts(network: NetworkSpec) -> dict[str, list]:
    """The top level's units: its two register slices, and label select."""
    from ..cores.accelerator import PortGeometry
    from ..cores.register_slice import FIFO_DEPTH, SKID_MAX_BITS

    geometry = PortGeometry.of(network)
    parts = []
    for bits in (geometry.in_width, geometry.out_width):
        if bits > SKID_MAX_BITS:  # amaranth's buffered FIFO: two entries in LUT RAM, one register
            parts.append(("RegisterSlice", {"const": 1, "fifo_bits": bits},
                          [("slice", MemoryShape(FIFO_DEPTH - 1, bits, sync_read=False), "distributed", None)]))
        else:
            parts.append(("RegisterSlice", {"const": 1, "skid_bits": bits}, []))
    units = {GLUE: parts}
    if network.output.label_select:
        last = network.layers[-1]
        units[LABEL_SELECT] = [("LabelSelect", {"const": 1, "compare_bits": last.out_lanes * last.output_type.bits,
                                                "index_bits": geometry.out_element_bits}, [])]
    return units


def network_units(network: NetworkSpec) -> dict[str, list]:
    streams = network.edge_streams()
    return {**{layer.name: unit_parts(network, layer, streams) for layer in network.layers}, **glue_parts(network)}


def unit_terms(parts) -> tuple[dict, dict, dict]:
    exact, model, styles = dict.fromkeys(COLUMNS, 0), {}, {}
    for kind, features, memories in parts:
        counts, terms, chosen = part_terms(kind, features, memories)
        _add(exact, counts)
        _add(model, terms)
        styles.update(chosen)
    return exact, model, styles


@lru_cache(maxsize=1)
def calibration() -> dict:
    return json.loads(CALIBRATION.read_text()) if CALIBRATION.is_file() else {"LUT": {}, "FF": {}}


def coefficient(table: dict, name: str) -> float | None:
    """A term's fitted coefficient. The threshold stage is one piece of hardware in every core that
    has it (`cores.threshold`): a kind whose sweep layers never had a term of it (a thresholding
    layer of one channel group) takes the MVTU's."""
    if name in table:
        return table[name]
    term = name.partition(".")[2]
    return table.get(f"MVTU.{term}") if term.startswith("threshold_") else None


def estimate_unit(parts, coefficients: dict | None = None) -> dict:
    coefficients = coefficients or calibration()
    exact, model, styles = unit_terms(parts)
    result = dict(exact)
    for column in ("LUT", "FF"):
        result[column] = round(sum((coefficient(coefficients[column], name) or 0.0) * value
                                   for name, value in model.items()))
    return {"resources": result, "memory_styles": styles,
            "uncalibrated": sorted(name for name in model if coefficient(coefficients["LUT"], name) is None)}


def estimate_network(network: NetworkSpec) -> dict:
    """report.json's `resources.estimate`: per unit and in total, with each memory's style."""
    units = {name: estimate_unit(parts) for name, parts in network_units(network).items()}
    total = dict.fromkeys(COLUMNS, 0)
    for unit in units.values():
        _add(total, unit["resources"])
    uncalibrated = sorted({name for unit in units.values() for name in unit["uncalibrated"]})
    info = calibration()
    return {"total": total,
            "layers": {name: unit["resources"] for name, unit in units.items()},
            "memory_styles": {name: unit["memory_styles"] for name, unit in units.items() if unit["memory_styles"]},
            "model": {"calibrated_against": info.get("yosys", "uncalibrated"),
                      "fitted_units": info.get("units", 0),
                      **({"uncalibrated_terms": uncalibrated} if uncalibrated else {})}}
