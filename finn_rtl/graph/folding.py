"""Choose PE/SIMD per layer to reach a target initiation interval with the fewest lanes."""
from __future__ import annotations

from .errors import CompileError
from .specs import MVTUSpec, NetworkSpec, divisors


def fold_layer(layer: MVTUSpec, target_cycles: int) -> MVTUSpec:
    """Smallest PE*SIMD with (MH/PE)*(MW/SIMD) <= target; ties favour SIMD (input-side parallelism
    needs no extra threshold logic)."""
    best = None
    for pe in divisors(layer.mh):
        for simd in divisors(layer.mw):
            if (layer.mh // pe) * (layer.mw // simd) <= target_cycles:
                key = (pe * simd, pe)
                if best is None or key < best[0]:
                    best = (key, pe, simd)
                break  # larger SIMD only costs more for this PE
    if best is None:
        raise CompileError(f"cannot reach {target_cycles} cycles per frame even fully parallel", layer.name)
    return layer.folded(best[1], best[2])


def fold_for_target(network: NetworkSpec, target_cycles: int) -> NetworkSpec:
    if target_cycles < 1:
        raise CompileError(f"target II must be at least 1 cycle, got {target_cycles}")
    return network.with_folding({
        layer.name: {"PE": folded.pe, "SIMD": folded.simd}
        for layer in network.layers for folded in [fold_layer(layer, target_cycles)]})
