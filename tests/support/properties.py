"""Shared steps of the property tests: any legal folding, drawn by hypothesis, with random
backpressure, must give a design that is bit-exact against qonnx in rtlsim."""
from __future__ import annotations

import os

import onnx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from finn_rtl.flow import build, random_inputs, verify
from finn_rtl.graph.specs import divisors


def property_settings(env_name: str, default: int):
    """Hypothesis settings for rtlsim properties: `env_name` overrides the number of examples."""
    return settings(max_examples=int(os.environ.get(env_name, default)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def check_random_folding(data, model, work, seed: int, frames: int = 8):
    """Build `model` with a folding drawn from `data` for every foldable layer, verify it under
    random backpressure and assert bit-exactness."""
    onnx.save(model, str(work / "model.onnx"))
    unfolded = build(work / "model.onnx", work / "plan")
    folding = {layer.name: {key: data.draw(st.sampled_from(divisors(n)), label=f"{layer.name}.{key}")
                            for key, n in layer.fold_dims.items()}
               for layer in unfolded.network.foldable}
    b = build(work / "model.onnx", work / "out", folding=folding)
    busy = data.draw(st.sampled_from([100, 70, 40]))
    result = verify(b, random_inputs(b, frames, seed=seed), valid_percent=busy, ready_percent=busy, seed=seed)
    assert result["bit_exact"] and result["hardware_matches_numpy_reference"], result
    return b
