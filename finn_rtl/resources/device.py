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

from ..graph.memory import auto_style
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
    rate = device.lut / (2 * device.bram36)
    layers = {}
    for layer in network.layers:
        unset = {name: auto_style(shape, rate) for name, shape in layer.memories().items()
                 if name not in dict(layer.memory_styles)}
        if unset:
            layers[layer.name] = layer.with_memory_styles(unset)
    return dataclasses.replace(network.with_layers(layers), luts_per_bram18=rate)


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
    def largest_share(luts: float, dsps: int) -> float:
        return max(luts / device.lut, dsps / device.dsp, bram_share)

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
