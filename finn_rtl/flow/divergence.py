"""Where a frame that differs from the golden model first goes apart from it, and whether that is a
rounding tie in the golden model's float32 arithmetic.

The hardware computes exact integers; qonnx computes the model in float32. A quantizer's input
that is mathematically a hair from a rounding boundary (x.5 steps) can land on either side of it
in float32, by the order of a convolution's sums (seen on the shared MobileNet-v1: one element in
a 100,352-element layer, 5.500000 steps in the golden model, rounded half to even to 6, where
the exact comparison gives 5). Later differences in the frame may be its consequences, so the
integer model is run again with the golden's side of each tie, until no quantizer differs (the
frame is explained by ties, and the outputs must then be the golden's bit for bit) or one
differs that is no tie (the hardware is wrong there).

For each differing frame: qonnx on the cleaned original model, that frame alone, with every
tensor kept; the compiler's integer model layer by layer; at each thresholded layer (in
topological order) the golden quantizer's integers, `round(output / scale)`, against the
layer's. The first element that differs is reported with the golden quantizer's input in steps,
and called a tie when that lies within float32 rounding of a half step (TIE_STEPS).
"""
from __future__ import annotations

import json

import numpy as np

TIE_STEPS = 1e-3  # a float32 sum of a few thousand terms, relative to its magnitude in steps
MAX_TIES = 16  # ties followed in one frame; more and the frame counts as not explained


def load_provenance(out_dir) -> dict:
    from .build import PROVENANCE

    path = out_dir / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}


def golden_tensors(wrapper, x: np.ndarray) -> dict:
    """Every tensor of qonnx's run of the cleaned model (`wrapper`, batch 1) on one frame."""
    from qonnx.core.onnx_exec import execute_onnx

    name = wrapper.graph.input[0].name
    frame = x.astype(np.float32).reshape(wrapper.get_tensor_shape(name))  # as execute_batched takes it
    return execute_onnx(wrapper, {name: frame}, return_full_exec_context=True)


def channels_last(tensor: np.ndarray, channels: int) -> np.ndarray:
    """[1, C, *spatial] (or [1, C]) -> the stream's order, pixels major, channels fastest."""
    t = np.asarray(tensor, dtype=np.float64).reshape(channels, -1)
    return t.T.reshape(-1)


def trace_frames(b, frames: np.ndarray):
    """`trace_frame` for each of `frames` in turn (a generator: a caller may stop early); None
    for each when the build has no provenance (built before it was recorded)."""
    from ..graph.ingest import clean

    provenance = load_provenance(b.out_dir)
    wrapper = clean(b.out_dir / "original.onnx", batch_size=1) if provenance else None
    for frame in frames:
        if not provenance:
            yield None
            continue
        tensors = golden_tensors(wrapper, frame[None])
        yield trace_frame(b, provenance, tensors, compared_tensor(b, wrapper, tensors), frame)


def compared_tensor(b, wrapper, tensors: dict) -> np.ndarray:
    """What `compare` checks the hardware against, from a run's tensors: the model's output, or
    the input of its host-side head."""
    from ..graph.ingest import origin_node

    if b.network.output.head is None:
        return tensors[wrapper.graph.output[0].name]
    return tensors[origin_node(wrapper, b.network.output.head_node).input[0]]


def trace_frame(b, provenance: dict, tensors: dict, golden_row: np.ndarray, x_frame: np.ndarray) -> dict:
    """Where one frame, run alone, goes apart from the golden model, and whether float32 ties
    explain it all.

    The first differing element is found; while it is a float32 tie, the integer model takes
    the golden model's side of it (`NetworkSpec.layer_outputs` overrides) and the next
    difference is looked for. The frame is explained when, with every tie taken the golden's
    way, no quantizer differs and the outputs equal the golden's bit for bit (with no ties at
    all, the frame differed only in a batch's float32 sums: run alone, it is equal).

    {"first": the first difference, "ties": the ties followed, "untied": a difference that is
    no tie (None if none), "explained": bool}."""
    from .verification import element_errors

    network = b.network
    stream = network.to_stream(b.input_quantizer.quantize(x_frame[None]))
    ties, overrides, untied = [], {}, None
    while True:
        difference = first_difference(network, provenance, tensors, network.layer_outputs(stream, overrides))
        if difference is None or not difference["float32_rounding_tie"] or len(ties) == MAX_TIES:
            untied = difference
            break
        ties.append(difference)
        overrides.setdefault(difference["layer"], {})[difference["element"]] = difference["golden"]
    outputs = network.from_stream(network.reference(stream, overrides))
    outputs_equal = not element_errors(network, outputs, np.reshape(golden_row, (1, -1)))[0].any()
    return {"first": ties[0] if ties else untied, "ties": ties, "untied": untied,
            "explained": untied is None and outputs_equal}


def first_difference(network, provenance: dict, tensors: dict, ours: dict) -> dict | None:
    """The first thresholded layer (in order) whose golden quantizer integers differ from `ours`
    (`layer_outputs` of one frame): the element, both values, the golden quantizer's input in
    steps and whether that is a float32 rounding tie; None if every compared layer agrees."""
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


def explain(divergence: list[dict]) -> str:
    """One clause for the error message of a failed verification, from `verify`'s `divergence`
    (frames traced in order, each with its trace's keys)."""
    unexplained = [d for d in divergence if "explained" in d and not d["explained"]]
    if not unexplained:
        return ""
    d = unexplained[0]
    ties = f" after {plural(len(d['ties']), 'float32 rounding tie')} taken the golden's way" if d["ties"] else ""
    if d["untied"] is not None:
        u = d["untied"]
        if u["float32_rounding_tie"]:
            return f"; frame {d['frame']} has more than {MAX_TIES} float32 rounding ties"
        return (f"; first difference that is no float32 rounding tie: frame {d['frame']}, layer {u['layer']}, "
                f"channel {u['channel']}, {u['hardware']} against the golden {u['golden']} "
                f"({u['golden_quantizer_input_steps']:.6f} steps: not a rounding tie){ties}")
    return (f"; frame {d['frame']}: every quantizer agrees with the golden model{ties}, but the outputs "
            f"differ (after the last thresholded layer)")


def describe_ties(result: dict) -> str:
    """One clause for a verification passed with float32 ties (report.json's `verification`)."""
    explained = [d for d in result.get("divergence", []) if d.get("explained") and d["ties"]]
    if not explained:
        return ""
    t = explained[0]["ties"][0]
    differ = "differs" if len(explained) == 1 else "differ"
    return (f"{plural(len(explained), 'frame')} {differ} from qonnx only at {plural(result['float32_ties'], 'rounding tie')} of its "
            f"float32 arithmetic (e.g. frame {explained[0]['frame']}, layer {t['layer']}, channel {t['channel']}: "
            f"{t['golden_quantizer_input_steps']:.6f} steps, rounded to {t['golden']} where the exact integers give "
            f"{t['hardware']}), and equal it bit for bit with those ties taken its way")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
