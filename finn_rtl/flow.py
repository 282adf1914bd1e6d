"""Build and verify flows behind the CLI: model file -> build directory -> verified report.

A build directory holds:
  original.onnx          the input model, byte for byte (the golden model)
  streamlined.onnx       the integer model the hardware implements (qonnx-executable)
  input_quantizer.onnx   the host-side ops up to the first activation quantizer
  <name>.v               the accelerator
  folding.json           PE/SIMD per layer, same keys `--folding` accepts
  report.json            per-layer cycles, expected II, build options, verification results
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from .graph.errors import CompileError
from .graph.export import to_streamlined_onnx
from .graph.folding import fold_for_target
from .graph.network import NetworkSpec
from .graph.specs import FoldingError
from .graph.streamline import Streamlined, streamline


HEAD_TOLERANCE = 1e-5  # float64 host head against the golden model's float32 one


class VerificationError(RuntimeError):
    """The hardware's outputs differ from the golden model's."""


def read_folding(path) -> dict:
    path = Path(path)
    try:
        folding = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompileError(f"folding file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise CompileError(f"folding file {path} is not valid JSON: {exc}") from None
    if not isinstance(folding, dict) or not all(isinstance(v, dict) for v in folding.values()):
        raise CompileError(f"folding file {path} must map layer names to {{\"PE\": n, \"SIMD\": n}}")
    return folding


def layer_report(network: NetworkSpec) -> list[dict]:
    rows = []
    for layer in network.layers:
        row = {"name": layer.name, "kind": layer.kind,
               "input_type": str(layer.input_type), "output_type": str(layer.output_type),
               "in_elements": layer.in_elements, "out_elements": layer.out_elements}
        if layer.inputs > 1:
            row["input_types"] = [str(layer.port_type(p)) for p in range(layer.inputs)]
        row.update(layer.report_fields())
        row["cycles_per_frame"] = layer.cycles_per_frame
        rows.append(row)
    return rows


@dataclass
class Build:
    out_dir: Path
    streamlined: Streamlined
    network: NetworkSpec
    verilog: str
    report: dict

    @property
    def verilog_path(self) -> Path:
        return self.out_dir / f"{self.network.name}.v"

    def write_report(self) -> None:
        (self.out_dir / "report.json").write_text(json.dumps(self.report, indent=2) + "\n")


def _fold(network: NetworkSpec, folding: dict | None, target_ii: int | None) -> NetworkSpec:
    if target_ii is not None:
        network = fold_for_target(network, target_ii)
    if folding:
        network = network.with_folding(folding)
    return network


def size_fifos(network: NetworkSpec, frames: int = 4, seed: int = 0) -> tuple[NetworkSpec, dict]:
    """FIFO depths from simulation: a few random frames through deep, monitored FIFOs give each
    FIFO's peak fill level; peak + 1 never lets a producer see a full FIFO, so it keeps the deep
    run's timing. Each FIFO gets the smaller of that and its default depth if a check run still
    reaches the analytic II, else peak + 1."""
    from .cores.accelerator import PortGeometry, to_verilog
    from .sim.rtlsim import simulate
    from .sim.verilator import FAST_BUILD, SimulationError

    start = time.perf_counter()
    if not network.edges:
        return network, {"depths": [], "peaks": [], "seconds": 0.0}
    defaults = network.default_fifo_depths
    deep = []
    for index, edge in enumerate(network.edges):
        # Deep enough never to throttle: a whole producer frame (capped for very large frames).
        frame = network.layer(edge.producer).out_elements // network.fifo_lanes(index)
        deep.append(max(defaults[index], min(frame, (1 << 15) - 1)))
    sizing = dataclasses.replace(network, fifo_depths=tuple(deep))
    qtype = network.input_type
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], (frames, network.in_elements)) if qtype.bipolar else \
        rng.integers(qtype.min, qtype.max + 1, (frames, network.in_elements))
    # Input arrives at the rate the design sustains (one frame per analytic II), as it would in
    # a system that keeps up with the accelerator: at full rate, upstream layers would run ahead
    # into the deep FIFOs and the peaks would measure that, not what the II needs.
    in_beats = PortGeometry.of(network).in_beats_per_frame
    valid_percent = max(1, min(100, -(-100 * in_beats // network.analytic_ii)))
    # A few frames: unoptimised C++ compiles several times faster and runs fast enough.
    run = simulate(sizing, to_verilog(sizing, monitor_fifos=True), x, jobs=1, seed=seed,
                   valid_percent=valid_percent, monitored_fifos=len(deep), cxx_opt=FAST_BUILD)
    peaks = [int(p) for p in run.fifo_peaks]
    # A FIFO behind a fast producer fills up to the producer's lead, which a shallower FIFO would
    # only turn into producer stalls that cost no throughput; so take the smaller of the peak
    # and the default depth, and fall back to the peaks if a check run misses the analytic II.
    safe = tuple(max(2, p + 1) for p in peaks)
    lean = tuple(min(d, defaults[i]) for i, d in enumerate(safe))
    candidate = dataclasses.replace(network, fifo_depths=lean)
    try:  # monitored: the check run also says how full each FIFO got at the lean depths
        check = simulate(candidate, to_verilog(candidate, monitor_fifos=True), x, jobs=1, seed=seed,
                         valid_percent=100, monitored_fifos=len(lean), cxx_opt=FAST_BUILD)
        check_ii, check_peaks = check.cycles_per_frame, [int(p) for p in check.fifo_peaks]
    except SimulationError:  # e.g. a shortcut that the rate-limited run did not fill: keep peak + 1
        check_ii, check_peaks = None, None
    depths = lean if check_ii is not None and check_ii <= network.analytic_ii * 1.01 else safe
    # Where streams meet, the depth is the analytic one unless the deep run needed less; the check
    # run at full rate shows it deadlock-free at the analytic II (or falls back to the peaks).
    merges = [{"edge": str(edge), "analytic_depth": defaults[i], "deep_run_peak": peaks[i],
               "check_run_depth": lean[i], "check_run_peak": None if check_peaks is None else check_peaks[i]}
              for i, edge in enumerate(network.edges) if network.layer(edge.consumer).inputs > 1]
    info = {"depths": list(depths), "peaks": peaks, "check_run_ii_cycles": check_ii,
            "merge_inputs": merges,
            "used": "min(peak + 1, default)" if depths == lean else "peak + 1",
            "deep_run_ii_cycles": run.cycles_per_frame, "frames": frames,
            "seconds": round(time.perf_counter() - start, 3)}
    return dataclasses.replace(network, fifo_depths=depths), info


def build(model_path, out_dir, *, folding: dict | None = None, target_ii: int | None = None,
          label_select: bool = False, name: str = "finn_rtl_top", fifo_sizing: bool = False) -> Build:
    from .cores.accelerator import PortGeometry, to_verilog

    if not name.isidentifier():
        raise CompileError(f"top-level name {name!r} must be a Verilog identifier")
    start = time.perf_counter()
    streamlined = streamline(model_path, name=name, label_select=label_select)
    network = _fold(streamlined.network, folding, target_ii)
    streamline_seconds = time.perf_counter() - start
    sizing = None
    if fifo_sizing:
        network, sizing = size_fifos(network)
    verilog = to_verilog(network)
    build_seconds = time.perf_counter() - start

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, out / "original.onnx")
    onnx.save(to_streamlined_onnx(network), str(out / "streamlined.onnx"))
    quantizer = streamlined.input_quantizer
    if quantizer.prefix is not None:
        (out / "input_quantizer.onnx").write_bytes(quantizer.prefix)
    (out / f"{name}.v").write_text(verilog)
    (out / "folding.json").write_text(json.dumps(network.folding, indent=2) + "\n")
    layers = layer_report(network)
    bottleneck = max(layers, key=lambda row: row["cycles_per_frame"])
    geometry = PortGeometry.of(network)
    report = {
        "build": {"model": str(model_path), "name": name, "label_select": label_select,
                  "target_ii": target_ii, "streamline_seconds": round(streamline_seconds, 3),
                  "seconds_to_verilog": round(build_seconds, 3)},
        "input": {"elements": network.in_elements, "type": str(network.input_type),
                  "quantizer": "host runs input_quantizer.onnx, divides by scale" if quantizer.prefix
                  else "integer model input", "scale": quantizer.scale,
                  "axis_tdata_bits": geometry.in_width, "elements_per_beat": geometry.in_elements_per_beat,
                  "beats_per_frame": geometry.in_beats_per_frame},
        "output": {"elements": network.out_elements, "type": str(network.output_type),
                   "label_select": network.output.label_select,
                   "host_argmax": network.output.host_argmax,
                   "affine_scale": network.output.scale.tolist(),
                   "affine_offset": network.output.offset.tolist(),
                   "meaning": "y = index of the top-1 class" if network.output.label_select else
                   "model output = argmax(affine_scale * y + affine_offset)" if network.output.host_argmax
                   else f"model output = {network.output.head}(affine_scale * y + affine_offset)"
                   if network.output.head else "model output = affine_scale * y + affine_offset per channel",
                   "head": network.output.head,
                   "axis_tdata_bits": geometry.out_width, "elements_per_beat": geometry.out_elements_per_beat,
                   "beats_per_frame": geometry.out_beats_per_frame},
        "layers": layers,
        "fifos": {"depths": [network.fifo_depth(i) for i in range(len(network.edges))],
                  "sized_by_simulation": sizing},
        "edges": [stream.report() for stream in network.edge_streams()],
        "lane_followers": network.lane_followers,
        "expected_ii_cycles": network.analytic_ii,
        "bottleneck_layer": bottleneck["name"],
        "notes": list(network.notes),
    }
    result = Build(out, streamlined, network, verilog, report)
    result.write_report()
    return result


def load_build(out_dir) -> Build:
    out = Path(out_dir)
    try:
        report = json.loads((out / "report.json").read_text())
        options = report["build"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise CompileError(f"{out} is not a finn-rtl build directory ({exc})") from None
    streamlined = streamline(out / "original.onnx", name=options["name"], label_select=options["label_select"])
    network = _fold(streamlined.network, read_folding(out / "folding.json"), None)
    if (report.get("fifos") or {}).get("sized_by_simulation"):
        network = dataclasses.replace(network, fifo_depths=tuple(report["fifos"]["depths"]))
    verilog = (out / f"{options['name']}.v").read_text()
    return Build(out, streamlined, network, verilog, report)


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
    from .graph.ingest import read_model

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
    dims = b.streamlined.model.graph.input[0].type.tensor_type.shape.dim  # the cleaned model
    shape = (count, *(d.dim_value for d in dims[1:]))
    rng = np.random.default_rng(seed)
    quantizer = b.streamlined.input_quantizer
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
    mismatched = np.nonzero(np.any(wrong, axis=1))[0]
    return {"frames": int(len(hw)), "mismatched_frames": int(len(mismatched)),
            "first_mismatches": mismatched[:10].tolist(),
            "grid_error_vs_float32_tolerance": grid_error,
            "elements_compared_within_float32_tolerance": coarse_elements,
            "bit_exact": bool(len(mismatched) == 0)}


def golden_outputs(network: NetworkSpec, source, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qonnx on the original model: (what `compare` checks the hardware against, the model's
    output). With a host-side head the integers are checked on the head's input."""
    from .graph.ingest import execute_batched

    if network.output.head is None:
        output = execute_batched(source, x)
        return output, output
    output, head_input = execute_batched(source, x, input_of=network.output.head_node)
    return head_input, output


def verify(b: Build, x: np.ndarray, labels=None, *, valid_percent: int = 100, ready_percent: int = 100,
           seed: int = 1, cxx_opt: str | None = None) -> dict:
    """rtlsim `x` through the build and compare with qonnx on the original model. `cxx_opt`: g++
    optimisation of the simulator (default: chosen from the expected cycles and design size)."""
    from .sim.rtlsim import simulate

    start = time.perf_counter()
    ints = b.streamlined.input_quantizer.quantize(x)
    out = b.network.output
    golden, golden_output = golden_outputs(b.network, b.out_dir / "original.onnx", x)
    golden_seconds = time.perf_counter() - start
    stream = b.network.to_stream(ints)
    run = simulate(b.network, b.verilog, stream, valid_percent=valid_percent,
                   ready_percent=ready_percent, seed=seed, cxx_opt=cxx_opt)
    outputs = b.network.from_stream(run.outputs)
    result = compare(b.network, outputs, golden)
    if out.head is not None:
        result["head"] = out.head
        result["head_max_abs_error"] = float(np.max(np.abs(
            out.apply(outputs) - np.asarray(golden_output, dtype=np.float64).reshape(len(x), -1)), initial=0.0))
    reference_match = bool(np.array_equal(run.outputs, b.network.reference(stream)))
    result.update({
        "hardware_matches_numpy_reference": reference_match,
        "measured_ii_cycles": run.cycles_per_frame,
        "expected_ii_cycles": b.network.analytic_ii,
        "ii_deviation": run.cycles_per_frame / b.network.analytic_ii - 1,
        "latency_cycles": run.latency_cycles,
        "total_cycles": run.total_cycles,
        "rtlsim_seconds": round(run.wall_seconds, 3),
        "rtlsim_loop_seconds": round(run.loop_seconds, 3),
        "rtlsim_cycles_per_second": round(run.cycles_per_second),
        "verilator_build_seconds": round(run.build_seconds, 3),
        "golden_seconds": round(golden_seconds, 3),
        "valid_percent": valid_percent, "ready_percent": ready_percent,
    })
    if labels is not None:
        predicted = out.apply(outputs)[:, 0] if out.label_select or out.host_argmax else \
            out.apply(outputs).argmax(axis=1)
        result["top1_accuracy"] = float(np.mean(predicted == np.asarray(labels).reshape(-1)))
    b.report["verification"] = result
    b.write_report()
    if result.get("head_max_abs_error", 0.0) > HEAD_TOLERANCE:
        raise VerificationError(f"the host-side {out.head} differs from the golden model's by "
                                f"{result['head_max_abs_error']:.3g} (float32 allows {HEAD_TOLERANCE})")
    if not result["bit_exact"]:
        raise VerificationError(f"{result['mismatched_frames']} of {result['frames']} frames differ from "
                                f"the golden model (first: {result['first_mismatches']}); see report.json")
    return result


__all__ = ["build", "load_build", "verify", "load_inputs", "random_inputs", "compare", "read_folding",
           "Build", "VerificationError", "FoldingError"]
