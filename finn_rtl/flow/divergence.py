"""Where a frame that differs from the golden model first goes apart from it, and whether that is a
rounding tie in the golden model's float32 arithmetic.

The hardware computes exact integers; qonnx computes the model in float32. A quantizer's input
that is mathematically a hair from a rounding boundary (x.5 steps) can land on either side of it
in float32, by the order of a convolution's sums (seen on the shared MobileNet-v1: one element in
a 100,352-element layer, 5.500000 steps in the golden model, rounded half to even to 6, where
the exact comparison gives 5). After such a tie every later difference in the frame is its
consequence, so a frame is explained by its first difference alone.

For each differing frame: qonnx on the cleaned original model, that frame alone, with every
tensor kept; the compiler's integer model layer by layer; at each thresholded layer (in
topological order) the golden quantizer's integers, `round(output / scale)`, against the
layer's. The first element that differs is reported with the golden quantizer's input in steps,
and called a tie when that lies within float32 rounding of a half step.
"""
from __future__ import annotations

import json

import numpy as np

TIE_STEPS = 1e-3  # a float32 sum of a few thousand terms, relative to its magnitude in steps


def load_provenance(out_dir) -> dict:
    from .build import PROVENANCE

    path = out_dir / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}


def golden_tensors(wrapper, x: np.ndarray) -> dict:
    """Every tensor of qonnx's run of the cleaned model (`wrapper`, batch 1) on one frame."""
    from qonnx.core.onnx_exec import execute_onnx

    return execute_onnx(wrapper, {wrapper.graph.input[0].name: x.astype(np.float32)}, return_full_exec_context=True)


def channels_last(tensor: np.ndarray, channels: int) -> np.ndarray:
    """[1, C, *spatial] (or [1, C]) -> the stream's order, pixels major, channels fastest."""
    t = np.asarray(tensor, dtype=np.float64).reshape(channels, -1)
    return t.T.reshape(-1)


def first_divergences(b, frames: np.ndarray) -> list[dict | None]:
    """For each frame: the first thresholded layer where its golden integers differ from the
    hardware's, the element, both values and the golden quantizer's input in steps; None if none
    differs (or the build has no provenance: built before it was recorded)."""
    from ..graph.ingest import clean

    provenance = load_provenance(b.out_dir)
    if not provenance:
        return [None] * len(frames)
    wrapper = clean(b.out_dir / "original.onnx", batch_size=1)
    return [frame_divergence(b, provenance, golden_tensors(wrapper, frame[None]), frame) for frame in frames]


def first_divergence(b, x_frame: np.ndarray) -> dict | None:
    """`first_divergences` of one frame."""
    return first_divergences(b, x_frame[None])[0]


def frame_divergence(b, provenance: dict, tensors: dict, x_frame: np.ndarray) -> dict | None:
    network = b.network
    ours = network.layer_outputs(network.to_stream(b.input_quantizer.quantize(x_frame[None])))
    for layer in network.layers:
        if getattr(layer, "thresholds", None) is None:
            continue
        place = provenance.get(layer.name) or provenance.get(layer.name.removesuffix("_thresholds"))
        if place is None or place["output"] not in tensors:
            continue
        scale = np.asarray(place["scale"], dtype=np.float64)
        channels = len(scale)
        golden_out = channels_last(tensors[place["output"]], channels)
        if golden_out.size != layer.out_elements:
            continue  # a pool between the layer and its quantizer in the model: compared after it
        steps_scale = np.tile(scale, golden_out.size // channels)
        golden = np.round(golden_out / steps_scale).astype(np.int64)
        hardware = ours[layer.name][0]
        differing = np.nonzero(golden != hardware)[0]
        if not len(differing):
            continue
        index = int(differing[0])
        golden_in = channels_last(tensors[place["input"]], channels)[index] / steps_scale[index]
        tie = abs(abs(golden_in - np.floor(golden_in)) - 0.5) <= TIE_STEPS
        return {"layer": layer.name, "quantizer": place["quantizer"], "elements_differing": int(len(differing)),
                "element": index, "channel": index % channels, "pixel": index // channels,
                "hardware": int(hardware[index]), "golden": int(golden[index]),
                "golden_quantizer_input_steps": round(float(golden_in), 6), "float32_rounding_tie": bool(tie)}
    return None


def explain(diagnoses: list[dict]) -> str:
    """One sentence for the error message."""
    ties = [d for d in diagnoses if d and d["float32_rounding_tie"]]
    if diagnoses and len(ties) == len(diagnoses):
        d = ties[0]
        return (f"; each of the {len(ties)} frames traced first differs at a rounding tie of the golden model's "
                f"float32 arithmetic (e.g. layer {d['layer']}, channel {d['channel']}: its quantizer {d['quantizer']} "
                f"sees {d['golden_quantizer_input_steps']:.6f} steps and rounds to {d['golden']}, the exact "
                f"comparison gives {d['hardware']})")
    located = [d for d in diagnoses if d and not d["float32_rounding_tie"]]
    if located:
        d = located[0]
        return (f"; first difference: layer {d['layer']}, channel {d['channel']}, {d['hardware']} against the "
                f"golden {d['golden']} ({d['golden_quantizer_input_steps']:.6f} steps: not a rounding tie)")
    return ""
