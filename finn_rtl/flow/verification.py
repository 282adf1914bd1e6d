"""Verification: input sets, the golden model (qonnx on the original file), bit-exact comparison
with rtlsim, and the verification part of report.json."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..graph.errors import CompileError
from ..graph.ingest import golden_chunk
from ..progress import status
from ..graph.network import NetworkSpec

if TYPE_CHECKING:
    from .build import Build

HEAD_TOLERANCE = 1e-5  # float64 host head against the golden model's float32 one
RECHECK_MAX_FRAMES = 64  # differing frames run again one at a time; more than this is a real difference
TRACED_FRAMES = 8  # frames not explained by ties that are traced before verification gives up


class VerificationError(RuntimeError):
    """The hardware's outputs differ from the golden model's."""


def load_inputs(path, *, input_scale: float | None = None, count: int | None = None):
    """(float inputs, labels or None) from .npy/.npz; uint8 data is divided by 255 unless scaled."""
    path = Path(path)
    if not path.is_file():
        raise CompileError(f"input file {path} does not exist")
    try:
        data = np.load(path)
    except Exception as exc:
        raise CompileError(f"{path} is not a readable .npy/.npz file ({exc})") from None
    labels = None
    if isinstance(data, np.lib.npyio.NpzFile):
        if "x" not in data.files:
            raise CompileError(f"{path} has no array 'x' (it has {', '.join(data.files) or 'none'}); "
                               "store the inputs as x and optional labels as y")
        x = data["x"]
        labels = data["y"] if "y" in data.files else None
    else:
        x = data
    if x.ndim < 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise CompileError(f"{path}: inputs must be a numeric array of frames [n, ...], got {x.dtype} of shape "
                           f"{x.shape}")
    if labels is not None and len(labels) != len(x):
        raise CompileError(f"{path}: {len(labels)} labels for {len(x)} frames")
    if count is not None:
        x = x[:count]
        labels = labels[:count] if labels is not None else None
    if not np.all(np.isfinite(x)):
        raise CompileError(f"{path}: the inputs contain NaN or infinite values "
                           f"(first in frame {int(np.nonzero(~np.isfinite(x.reshape(len(x), -1)))[0][0])})")
    scale = input_scale if input_scale is not None else (1 / 255 if x.dtype == np.uint8 else 1.0)
    return x.astype(np.float32) * np.float32(scale), labels


def check_input_shape(model_path, x: np.ndarray) -> None:
    """Frames must have the model input's number of elements per frame (checked before a build)."""
    from ..graph.ingest import read_model

    model = read_model(model_path)
    inits = {i.name for i in model.graph.initializer}
    graph_input = next((i for i in model.graph.input if i.name not in inits), None)
    dims = [] if graph_input is None else graph_input.type.tensor_type.shape.dim[1:]
    if not dims or any(d.dim_value <= 0 for d in dims):
        return  # symbolic or missing shape: the build itself will say more
    elements = int(np.prod([d.dim_value for d in dims]))
    if x[0].size != elements:
        raise CompileError(f"input frames have shape {tuple(x.shape[1:])} ({x[0].size} elements); "
                           f"the model takes {tuple(d.dim_value for d in dims)} ({elements} elements) per frame")


def random_inputs(b: "Build", count: int, low: float = 0.0, high: float = 1.0, seed: int = 0) -> np.ndarray:
    """Random frames for a build: uniform floats in [low, high] for a model with an input
    quantizer, uniform integers of the input type for an integer-typed model input."""
    shape = (count, *b.input_shape[1:])
    rng = np.random.default_rng(seed)
    quantizer = b.input_quantizer
    if quantizer.prefix is None:
        qtype = quantizer.qtype
        values = rng.choice([-1, 1], shape) if qtype.bipolar else rng.integers(qtype.min, qtype.max + 1, shape)
        return values.astype(np.float32)
    return rng.uniform(low, high, shape).astype(np.float32)


def compare(network: NetworkSpec, hw: np.ndarray, golden: np.ndarray) -> dict:
    """Bit-exact comparison of integer hardware outputs with the golden model's float outputs.

    Label select: hardware index == argmax of golden. Otherwise the golden
    outputs are mapped back through the output affine to integers; they must
    sit on that integer grid (within float32 rounding) and equal the hardware's.
    """
    wrong, grid_error, coarse_elements = element_errors(network, hw, golden)
    mismatched = np.nonzero(np.any(wrong, axis=1))[0]
    return {"frames": int(len(hw)), "mismatched_frames": int(len(mismatched)),
            "first_mismatches": mismatched[:10].tolist(),
            "grid_error_vs_float32_tolerance": grid_error,
            "elements_compared_within_float32_tolerance": coarse_elements,
            "bit_exact": bool(len(mismatched) == 0)}


def element_errors(network: NetworkSpec, hw: np.ndarray, golden: np.ndarray) -> tuple[np.ndarray, float, int]:
    """`compare`'s work: (which output elements differ [frame, element], the golden outputs'
    largest distance from the integer grid in float32 tolerances, elements compared within
    float32 precision)."""
    golden = np.asarray(golden, dtype=np.float64).reshape(len(hw), -1)
    coarse_elements = 0
    if network.output.label_select or network.output.host_argmax:
        # A model ending in ArgMax already gives the index; with --label-select it gives scores.
        scores = golden.shape[1] == network.layers[-1].out_elements
        expected = golden.argmax(axis=1)[:, None] if scores else np.round(golden).astype(np.int64)
        wrong = expected != network.output.apply(hw)
        grid_error = 0.0
    else:
        scale, offset = network.output.scale, network.output.offset
        expected = np.round((golden - offset) / scale)
        steps_off = np.abs(expected * scale + offset - golden) / np.abs(scale)
        # The golden model computes in float32: allow its rounding, relative to the magnitudes
        # involved. Where that allowance stays below a quarter step the integer is recovered
        # exactly and compared; where the float32 output cannot resolve single steps (an offset
        # that dwarfs the scale) the hardware value must match within float32 precision instead.
        allowed = 1e-3 + 256 * np.finfo(np.float32).eps * (np.abs(golden) + np.abs(offset)) / np.abs(scale)
        fine = allowed <= 0.25
        coarse_elements = int(np.count_nonzero(~fine))
        grid_error = float(np.max(np.where(fine, steps_off / allowed, 0.0))) if steps_off.size else 0.0
        if grid_error > 1:
            raise VerificationError(f"golden outputs are off the output affine's integer grid "
                                    f"({float(np.max(steps_off[fine])):.3g} steps): the streamlined tail is wrong")
        hw_steps_off = np.abs(network.output.apply(hw) - golden) / np.abs(scale)
        wrong = np.where(fine, expected != hw, hw_steps_off > allowed)
    return wrong, grid_error, coarse_elements


def golden_outputs(network: NetworkSpec, source, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qonnx on the original model: (what `compare` checks the hardware against, the model's
    output). With a host-side head the integers are checked on the head's input. On a cluster
    (`finn_rtl.cluster`) the frames run as shards there."""
    from .. import cluster

    head_node = network.output.head_node if network.output.head is not None else None
    on_cluster = cluster.active()
    shards = cluster.golden_shards(len(x), golden_chunk(x[0].size), on_cluster.cpus) if on_cluster is not None else []
    if len(shards) < 2:
        return golden_frames(source, head_node, x)
    model = on_cluster.put(Path(source).read_bytes())
    values, _ = on_cluster.run_tasks(golden_shard, [(model, head_node, x[shard]) for shard in shards],
                                     [f"golden model shard {i}" for i in range(len(shards))],
                                     f"golden model (qonnx) on {len(on_cluster.nodes)} nodes: {len(shards)} shards")
    return tuple(np.concatenate([value["value"][part] for value in values]) for part in (0, 1))


def golden_frames(source, head_node: str | None, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`golden_outputs` on this machine, of the model file `source`, `golden_chunk` frames at a time."""
    from ..graph.ingest import execute_batched

    chunk = golden_chunk(x[0].size)
    if head_node is None:
        output = execute_batched(source, x, chunk=chunk)
        return output, output
    output, head_input = execute_batched(source, x, input_of=head_node, chunk=chunk)
    return head_input, output


def golden_shard(model: bytes, head_node: str | None, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """On a cluster node: `golden_frames` of the model sent as bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="finn-rtl-golden-") as work:
        path = Path(work) / "original.onnx"
        path.write_bytes(model)
        return golden_frames(path, head_node, x)


def golden_alone(b: Build, x: np.ndarray, frames, golden: np.ndarray, golden_output: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The golden outputs with those of `frames` taken from qonnx run on each frame alone.

    The golden model runs a whole batch at once for speed, and float32 sums over a batch are
    rounded in another order than over one frame: where a sum is exactly a quantizer's tie, the
    two can land on either side of it (seen: a 1-bit signed Quant, which maps 0 to +1, got a
    batch sum of -4e-9 where the exact sum and the frame run alone give 0). The model a user
    runs is the frame alone; the hardware computes the exact integer sum."""
    golden, golden_output = np.array(golden, copy=True), np.array(golden_output, copy=True)
    for frame in frames:
        alone, alone_output = golden_outputs(b.network, b.out_dir / "original.onnx", x[frame:frame + 1])
        golden[frame], golden_output[frame] = alone[0], alone_output[0]
    return golden, golden_output


def verify(b: Build, x: np.ndarray, labels=None, *, valid_percent: int = 100, ready_percent: int = 100,
           seed: int = 1, cxx_opt: str | None = None, sweep=()) -> dict:
    """rtlsim `x` through the build and compare with qonnx on the original model. `cxx_opt`: g++
    optimisation of the simulator (default: chosen from the expected cycles and design size).
    `sweep`: more (valid %, ready %) points, simulated beside the first run; each must give the
    first run's outputs (backpressure never changes a result), and each point's II is reported."""
    from ..sim.rtlsim import simulate_points

    start = time.perf_counter()
    ints = b.input_quantizer.quantize(x)
    out = b.network.output
    with status(f"golden model (qonnx): {len(x)} frames"):
        golden, golden_output = golden_outputs(b.network, b.out_dir / "original.onnx", x)
    golden_seconds = time.perf_counter() - start
    stream = b.network.to_stream(ints)
    points = list(dict.fromkeys([(valid_percent, ready_percent), *sweep]))
    with status(f"rtlsim (Verilator build, then {len(x)} frames" + (f" at {len(points)} handshake rates)" if len(points) > 1 else ")")):
        run, *swept = simulate_points(b.network, b.verilog, stream, points, seed=seed, cxx_opt=cxx_opt)
    outputs = b.network.from_stream(run.outputs)
    result = compare(b.network, outputs, golden)
    if 0 < result["mismatched_frames"] <= RECHECK_MAX_FRAMES:
        differing = np.nonzero(np.any(element_errors(b.network, outputs, golden)[0], axis=1))[0]
        golden, golden_output = golden_alone(b, x, differing, golden, golden_output)
        result = {**compare(b.network, outputs, golden), "frames_rechecked_alone": result["mismatched_frames"]}
    if out.head is not None:
        result["head"] = out.head
        result["head_max_abs_error"] = float(np.max(np.abs(
            out.apply(outputs) - np.asarray(golden_output, dtype=np.float64).reshape(len(x), -1)), initial=0.0))
    reference_match = bool(np.array_equal(run.outputs, b.network.reference(stream)))
    result.update({
        "verified": result["bit_exact"],
        "hardware_matches_numpy_reference": reference_match,
        "measured_ii_cycles": run.cycles_per_frame,
        "expected_ii_cycles": b.network.analytic_ii,
        "ii_deviation": run.cycles_per_frame / b.network.analytic_ii - 1,
        "latency_cycles": run.latency_cycles,
        "total_cycles": run.total_cycles,
        "rtlsim_seconds": round(run.wall_seconds, 3),
        "rtlsim_loop_seconds": round(run.loop_seconds, 3),
        "rtlsim_cycles_per_second": round(run.cycles_per_second),
        "rtlsim_threads": run.threads,  # 2: the design cut in two, a thread per half (`sim.partition`)
        "verilator_build_seconds": round(run.build_seconds, 3),
        "golden_seconds": round(golden_seconds, 3),
        "valid_percent": valid_percent, "ready_percent": ready_percent,
    })
    if swept:
        result["sweep"] = [sweep_point(point, other, run) for point, other in zip(points[1:], swept)]
    if run.cluster is not None:
        from .. import cluster

        # the reruns of every job of this verification: golden-model shards and rtlsim shards
        result["cluster"] = {**run.cluster, "reruns": list(cluster.active().reruns)}
    if not result["bit_exact"] and reference_match:
        result.update(trace_differences(b, x, outputs, golden))
    if labels is not None:
        predicted = out.apply(outputs)[:, 0] if out.label_select or out.host_argmax else \
            out.apply(outputs).argmax(axis=1)
        result["top1_accuracy"] = float(np.mean(predicted == np.asarray(labels).reshape(-1)))
    b.report["verification"] = result
    b.write_report()
    if result.get("head_max_abs_error", 0.0) > HEAD_TOLERANCE:
        raise VerificationError(f"the host-side {out.head} differs from the golden model's by "
                                f"{result['head_max_abs_error']:.3g} (float32 allows {HEAD_TOLERANCE})")
    for point in result.get("sweep", []):
        if point["frames_differing_from_first_run"]:
            raise VerificationError(f"at valid {point['valid_percent']}%, ready {point['ready_percent']}% the outputs "
                                    f"of {point['frames_differing_from_first_run']} frames differ from the run at valid "
                                    f"{valid_percent}%, ready {ready_percent}% (first: frame "
                                    f"{point['first_differing_frame']}): the handshake changes results; see report.json")
    if not result["verified"]:
        from .divergence import explain

        raise VerificationError(f"{result['mismatched_frames']} of {result['frames']} frames differ from "
                                f"the golden model (first: {result['first_mismatches']})"
                                f"{explain(result.get('divergence', []))}; see report.json")
    return result


def sweep_point(point: tuple[int, int], run, first) -> dict:
    """report.json's entry for one point of a handshake sweep, against the first run."""
    differing = np.nonzero(np.any(run.outputs != first.outputs, axis=1))[0]
    return {"valid_percent": point[0], "ready_percent": point[1], "measured_ii_cycles": run.cycles_per_frame,
            "latency_cycles": run.latency_cycles, "total_cycles": run.total_cycles,
            "frames_differing_from_first_run": int(len(differing)),
            "first_differing_frame": int(differing[0]) if len(differing) else None}


def trace_differences(b: Build, x: np.ndarray, outputs: np.ndarray, golden: np.ndarray) -> dict:
    """Where the hardware equals its integer model but frames differ from the golden model:
    each differing frame, run alone, traced to its first difference (`flow.divergence`), ties
    followed.

    A frame that differs only at float32 rounding ties of the golden model (a quantizer input
    within 1e-3 steps of x.5, where the golden's float32 sums fall on one side and the exact
    integers on the other), and equals the golden bit for bit once those ties are taken the
    golden's way, is verified: both sides of such a tie are roundings of the same model, and
    the differences are listed. So is a frame that, run alone, is bit-exact (the batch's sums
    were rounded in another order). Anything else fails verification."""
    from .divergence import trace_frames

    differing = np.nonzero(np.any(element_errors(b.network, outputs, golden)[0], axis=1))[0]
    # Every differing frame is traced (on ImageNet-sized models a third of random frames meet a
    # tie somewhere), but after TRACED_FRAMES frames that ties do not explain it fails anyway.
    divergence = []
    with status(f"tracing {len(differing)} differing frames to their first difference"):
        for frame, trace in zip(differing, trace_frames(b, x[differing])):
            divergence.append({"frame": int(frame), **(trace or {})})
            if sum(not d.get("explained") for d in divergence) == TRACED_FRAMES:
                break
    explained = [d for d in divergence if d.get("explained")]
    with_ties = [d for d in explained if d["ties"]]
    return {"divergence": divergence, "frames_differing_only_at_float32_ties": len(with_ties),
            "float32_ties": sum(len(d["ties"]) for d in with_ties),
            "verified": len(explained) == len(differing)}
