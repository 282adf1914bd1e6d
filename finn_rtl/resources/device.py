"""The build's device-dependent choices for what a folding file leaves open: memory styles at the
device's exchange rate of LUTs for block RAM (`graph.memory.auto_style`), and DSP48 or LUT
products (`resType`, `graph.multipliers`).

A DSP48 does one product for a few dozen LUTs' worth of partial products (measured, Yosys: an
UINT8 x INT4 MVTU of 4 products 300 LUTs as LUTs, 76 LUTs and 4 DSPs with DSPs), but a device
has few of them (220 on an xc7z020 against 53,200 LUTs). DSPs are spent only to lower the
design's largest device share (of LUTs, block RAM and DSPs: what the planner minimises):
layers move to DSPs, most LUTs saved per DSP first, while each move lowers that share (and
stays within a DSP budget). A design bound by block RAM, such as CNV-w1a1 at FINN's folding,
keeps its products in LUTs: a DSP would not make it fit better.
"""
from __future__ import annotations

import dataclasses

from ..cores.fifo import StreamFIFO
from ..graph.memory import MemoryStyleError, auto_style, bram18_equivalent, uram_primitives
from ..graph.network import NetworkSpec
from ..platforms.boards import DEFAULT_DEVICE_BOARD, get_board
from .estimate import estimate_network, estimate_unit, unit_parts


def device_of(budget) -> object:
    """The device (a board's `Capacity`) whose shares are weighed: a board's budget names it,
    else the default board's. A LUT limit does not move the balance, so a budget's frontier and
    its build agree."""
    return getattr(budget, "device", None) or get_board(DEFAULT_DEVICE_BOARD).capacity


def dsp_limit(budget) -> float:
    """The most DSPs to spend: an explicit limit, else the device's."""
    return budget.dsp if budget is not None and budget.dsp is not None else device_of(budget).dsp


def lut_saving(network: NetworkSpec, layer, streams) -> int:
    """Estimated LUTs the layer saves with its products in DSPs."""
    as_luts = estimate_unit(unit_parts(network, layer.with_multiplier_style("lut"), streams))["resources"]
    as_dsps = estimate_unit(unit_parts(network, layer.with_multiplier_style("dsp"), streams))["resources"]
    return as_luts["LUT"] - as_dsps["LUT"]


def with_device_styles(network: NetworkSpec, budget=None) -> NetworkSpec:
    """Memory styles chosen at the exchange rate of the budget's device (its LUTs per BRAM18),
    when the budget names one: explicit for the layers' memories a folding file left automatic,
    and the network's rate for its FIFOs (whose depths FIFO sizing may still change)."""
    device = getattr(budget, "device", None)
    if device is None or not device.bram36:
        return network
    if not device.uram:
        check_no_ultra(network, budget)
    rate = device.lut / (2 * device.bram36)
    uram_rate = device.lut / device.uram if device.uram else None
    unset = {layer.name: {name: auto_style(shape, rate, uram_rate) for name, shape in layer.memories().items()
                          if name not in dict(layer.memory_styles)} for layer in network.layers}
    fifo_styles = list(network.fifo_styles or (None,) * len(network.edges))
    balance_memories(dataclasses.replace(network, luts_per_bram18=rate, luts_per_uram=uram_rate), device, unset,
                     fifo_styles)
    layers = {layer.name: layer.with_memory_styles(unset[layer.name]) for layer in network.layers if unset[layer.name]}
    network = dataclasses.replace(network.with_layers(layers), luts_per_bram18=rate, luts_per_uram=uram_rate)
    return network.with_fifo_styles({str(edge): style for edge, style in zip(network.edges, fifo_styles) if style}) \
        if any(fifo_styles) else network


def balance_memories(network: NetworkSpec, device, unset: dict, fifo_styles: list) -> None:
    """Block RAMs moved to UltraRAM or LUTs while that lowers the largest of the device's LUT,
    block-RAM and UltraRAM shares: a cost per memory (`auto_style`) does not see that one
    resource runs out (MobileNet-v1 at FINN's ZCU104 folding: block RAM over its budget with
    most UltraRAMs and a fifth of the LUTs unused). Moves the automatic choices in `unset` (by
    layer and memory) and `fifo_styles` (None: automatic): each time the move that lowers the
    device's `pressure` most per block RAM it frees (taking the largest drop instead moves a
    whole weight ROM into LUTs first), until none lowers it."""
    streams = network.edge_streams()
    layers = {layer.name: layer.with_memory_styles(unset[layer.name]) for layer in network.layers}
    total = estimate_network(network.with_layers(layers))["total"]
    used = {"LUT": total["LUT"] + total["LUTRAM"], "BRAM18": 2 * total["BRAM36"] + total["BRAM18"],
            "URAM": total["URAM"]}
    capacity = {"LUT": device.lut, "BRAM18": 2 * device.bram36, "URAM": device.uram}

    options = {}  # memory -> [(style, change of the counts)]
    candidates = [(("layer", layer.name, name), shape) for layer in network.layers
                  for name, shape in layer.memories().items() if unset[layer.name].get(name) == "block"]
    candidates += [(("fifo", index), stream.fifo_memory) for index, stream in enumerate(streams)
                   if fifo_styles[index] is None and stream.fifo_memory_style == "block"]

    def luts(where, style) -> int:
        """Estimated LUTs of the part that holds the memory, with the memory in `style`."""
        if where[0] == "layer":
            layer = layers[where[1]]
            if style is not None:
                layer = layer.with_memory_styles({where[2]: style})
            parts = unit_parts(network, layer, streams)[:1]
        else:
            stream = streams[where[1]]
            style = style or stream.fifo_memory_style
            parts = [("FIFO", StreamFIFO.resource_features(stream.depth, stream.fifo_memory.width, style,
                                                           stream.stage_budget),
                      [("fifo", stream.fifo_memory, style, None)])]
        result = estimate_unit(parts)["resources"]
        return result["LUT"] + result["LUTRAM"]

    for where, shape in candidates:
        freed = {"BRAM18": -bram18_equivalent(shape)}
        moves = []
        if "distributed" in shape.allowed_styles():
            moves.append(("distributed", {**freed, "LUT": luts(where, "distributed") - luts(where, None)}))
        if device.uram and "ultra" in shape.allowed_styles():
            moves.append(("ultra", {**freed, "URAM": uram_primitives(shape)}))
        if moves:
            options[where] = moves
    def after(change):
        return {k: used[k] + change.get(k, 0) for k in used}

    def pressure(counts: dict) -> float:
        """Shares to the fourth power, summed: falls most where the fullest resource empties, and
        rises fast as another fills (a sum would trade a full LUT budget for an empty UltraRAM)."""
        return sum((counts[k] / capacity[k]) ** 4 for k in counts if capacity[k])

    while options:
        now = pressure(used)
        gains = [((pressure(after(change)) - now) / -change["BRAM18"], where, style, change)
                 for where, moves in options.items() for style, change in moves]
        gain, where, style, change = min(gains, key=lambda move: move[0])
        if gain >= 0:
            break
        used = after(change)
        del options[where]
        if where[0] == "layer":
            unset[where[1]][where[2]] = style
        else:
            fifo_styles[where[1]] = style


def check_no_ultra(network: NetworkSpec, budget) -> None:
    """A folding that puts memories in UltraRAM, for a device without it: one line naming the first."""
    where = [f"layer {layer.name}: memory {name!r}" for layer in network.layers
             for name, style in layer.memory_styles if style == "ultra"]
    where += [f"FIFO {edge}" for edge, style in zip(network.edges, network.fifo_styles or ()) if style == "ultra"]
    if where:
        raise MemoryStyleError(f"{where[0]}: ram_style 'ultra' needs UltraRAM, which {budget.name.split(' (')[0]} "
                               f"does not have; use block, distributed or auto")


def fit_to_device(network: NetworkSpec, budget=None) -> NetworkSpec:
    """The device-dependent choices a folded network leaves open: memory styles, then DSP or LUT
    products."""
    return assign_multipliers(with_device_styles(network, budget), budget)


def assign_multipliers(network: NetworkSpec, budget=None) -> NetworkSpec:
    """The network with DSP products on the layers that gain most from them (see the module's
    note); layers whose style is set, or whose products no DSP takes, are left as they are."""
    open_layers = [layer for layer in network.layers
                   if layer.multiplier_style is None and layer.products() is not None
                   and layer.products().dsp_capable]
    if not open_layers:
        return network
    device, limit = device_of(budget), dsp_limit(budget)
    if not limit:
        return network
    streams = network.edge_streams()
    gains = sorted(((lut_saving(network, layer, streams), layer) for layer in open_layers),
                   key=lambda gain: (-gain[0] / gain[1].products().count, gain[1].name))
    total = estimate_network(network)["total"]
    luts, dsps = total["LUT"] + total["LUTRAM"], total["DSP"]
    bram_share = (total["BRAM36"] + total["BRAM18"] / 2) / device.bram36 if device.bram36 else 0.0
    uram_share = total.get("URAM", 0) / device.uram if device.uram else 0.0

    def largest_share(luts: float, dsps: int) -> float:
        return max(luts / device.lut, dsps / device.dsp, bram_share, uram_share)

    chosen = {}
    for saving, layer in gains:
        count = layer.products().count
        if saving <= 0 or dsps + count > limit or largest_share(luts - saving, dsps + count) >= largest_share(luts, dsps):
            continue
        chosen[layer.name] = layer.with_multiplier_style("dsp")
        luts, dsps = luts - saving, dsps + count
    if not chosen:
        return network
    return network.with_layers(chosen)
