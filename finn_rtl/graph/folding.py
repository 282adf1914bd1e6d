"""Choose PE/SIMD per layer to reach a target initiation interval with the fewest lanes."""
from __future__ import annotations

import itertools

from .errors import CompileError
from .network import NetworkSpec
from .specs import divisors


def fold_choices(layer) -> list[tuple[tuple, dict, int]]:
    """Every legal folding of a layer as (preference key, {key: value}, cycles per frame), most
    preferred first: fewest lanes (PE*SIMD), ties to SIMD (input-side parallelism needs no extra
    threshold logic). Computed once per layer: each folded() validates the whole spec."""
    dims = layer.fold_dims
    keys = list(dims)
    choices = []
    for values in itertools.product(*(divisors(dims[k]) for k in keys)):
        choice = dict(zip(keys, values))
        cycles = layer.folded(choice.get("PE"), choice.get("SIMD")).cycles_per_frame
        choices.append(((choice.get("PE", 1) * choice.get("SIMD", 1), choice.get("PE", 1)), choice, cycles))
    return sorted(choices, key=lambda c: c[0])


def fold_layer_choice(layer, target_cycles: int, choices=None) -> dict:
    """The preferred folding with cycles per frame <= target (CompileError if none is)."""
    for _, choice, cycles in choices or fold_choices(layer):
        if cycles <= target_cycles:
            return choice
    dims = layer.fold_dims
    fastest = layer.folded(dims.get("PE"), dims.get("SIMD")).cycles_per_frame
    raise CompileError(f"cannot reach {target_cycles} cycles per frame: fully parallel "
                       f"({', '.join(f'{k}={v}' for k, v in dims.items())}) it takes {fastest}", layer.name)


def fold_layer(layer, target_cycles: int):
    choice = fold_layer_choice(layer, target_cycles)
    return layer.folded(choice.get("PE"), choice.get("SIMD"))


def fold_for_target(network: NetworkSpec, target_cycles: int, tables: dict | None = None) -> NetworkSpec:
    """The network folded for `target_cycles`; `tables`: each layer's fold_choices, when the
    caller folds the same network for many targets."""
    if target_cycles < 1:
        raise CompileError(f"target II must be at least 1 cycle, got {target_cycles}")
    tables = tables or {}
    return network.with_folding({layer.name: fold_layer_choice(layer, target_cycles, tables.get(layer.name))
                                 for layer in network.foldable})


def fold_tables(network: NetworkSpec) -> dict:
    return {layer.name: fold_choices(layer) for layer in network.foldable}
