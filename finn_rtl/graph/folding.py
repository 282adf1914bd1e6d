"""Choose PE/SIMD per layer to reach a target initiation interval with the fewest lanes."""
from __future__ import annotations

import itertools

from .errors import CompileError
from .network import NetworkSpec
from .specs import divisors


def fold_layer(layer, target_cycles: int):
    """Fewest lanes (PE*SIMD) with cycles per frame <= target; ties favour SIMD (input-side
    parallelism needs no extra threshold logic). Window generators follow their consumer."""
    dims = layer.fold_dims
    keys = list(dims)
    best = None
    for values in itertools.product(*(divisors(dims[k]) for k in keys)):
        choice = dict(zip(keys, values))
        folded = layer.folded(choice.get("PE"), choice.get("SIMD"))
        if folded.cycles_per_frame <= target_cycles:
            lanes = choice.get("PE", 1) * choice.get("SIMD", 1)
            key = (lanes, choice.get("PE", 1))
            if best is None or key < best[0]:
                best = (key, folded)
    if best is None:
        fastest = layer.folded(dims.get("PE"), dims.get("SIMD")).cycles_per_frame
        raise CompileError(f"cannot reach {target_cycles} cycles per frame: fully parallel "
                           f"({', '.join(f'{k}={v}' for k, v in dims.items())}) it takes {fastest}",
                           layer.name)
    return best[1]


def fold_for_target(network: NetworkSpec, target_cycles: int) -> NetworkSpec:
    if target_cycles < 1:
        raise CompileError(f"target II must be at least 1 cycle, got {target_cycles}")
    return network.with_folding({
        layer.name: {key: getattr(folded, key.lower()) for key in layer.fold_dims}
        for layer in network.foldable for folded in [fold_layer(layer, target_cycles)]})
