"""`build`: a model file becomes a build directory, step by step over one build state.

Steps: streamline (QONNX -> integer layer specs), fold (PE/SIMD), size FIFOs (optional, in
simulation), emit Verilog, write the directory (see `finn_rtl.flow` for its files). `load_build`
reads a build directory back, the folded network from `network.json`/`network.npz`, without
streamlining the original model again.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import onnx

from ..graph.errors import CompileError
from ..graph.export import to_streamlined_onnx
from ..graph.folding import fold_for_target
from .weights import write_weight_files
from ..graph.finn_folding import is_finn_config
from ..graph.network import FIFO_STYLES_KEY, MULTIPLIER_KEY, WRITABLE_KEY, NetworkSpec
from ..graph.persist import load_network, save_network
from ..platforms.boards import DEFAULT_CLOCK_MHZ
from ..graph.streamline import InputQuantizer, streamline
from ..progress import status
from ..resources.device import fit_to_device
from .report import build_report, resources_report, timing_report


# Where each thresholded layer's activation is in the model (`Streamlined.provenance`).
PROVENANCE = "provenance.json"


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


@dataclass
class Build:
    """A build directory's contents, as `build` made them or `load_build` read them."""

    out_dir: Path
    network: NetworkSpec
    input_quantizer: InputQuantizer
    input_shape: tuple  # the model input's shape, batch first
    verilog: str
    report: dict

    @property
    def verilog_path(self) -> Path:
        return self.out_dir / f"{self.network.name}.v"

    def write_report(self) -> None:
        """report.json, and report.html rendered from it."""
        from .html_report import render_html

        (self.out_dir / "report.json").write_text(json.dumps(self.report, indent=2) + "\n")
        (self.out_dir / "report.html").write_text(render_html(self.report))


@dataclass(frozen=True)
class BuildOptions:
    folding: Optional[dict] = None
    target_ii: Optional[int] = None
    label_select: bool = False
    name: str = "finn_rtl_top"
    fifo_sizing: bool = False
    synth: bool = False
    # Resource-aware folding (`resources.planner`): a budget, and the FPS to reach at a clock.
    budget: Optional[object] = None
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    target_fps: Optional[float] = None


@dataclass
class BuildState:
    """What the steps know so far; each step reads what earlier ones left and adds its part."""

    model_path: Path
    out_dir: Path
    options: BuildOptions
    network: Optional[NetworkSpec] = None
    input_quantizer: Optional[InputQuantizer] = None
    input_shape: Optional[tuple] = None
    fifo_sizing: Optional[dict] = None
    verilog: Optional[str] = None
    synthesis: Optional[dict] = None
    planning: Optional[dict] = None
    provenance: dict = field(default_factory=dict)  # `Streamlined.provenance`
    seconds: dict = field(default_factory=dict)


def step_streamline(state: BuildState) -> None:
    streamlined = streamline(state.model_path, name=state.options.name, label_select=state.options.label_select)
    state.network, state.input_quantizer = streamlined.network, streamlined.input_quantizer
    state.provenance = streamlined.provenance
    dims = streamlined.model.graph.input[0].type.tensor_type.shape.dim  # the cleaned model
    state.input_shape = tuple(d.dim_value for d in dims)


def step_fold(state: BuildState) -> None:
    options = state.options
    if options.target_ii is not None:
        state.network = fold_for_target(state.network, options.target_ii)
    elif (options.budget is not None or options.target_fps is not None) and \
            not folds_every_layer(state.network, options.folding):
        from ..resources.planner import UNLIMITED, candidates, plan

        found = candidates(state.network, options.budget, options.clock_mhz)
        budget = options.budget or UNLIMITED
        chosen = plan(state.network, budget, options.clock_mhz, options.target_fps, found)
        state.network = chosen.network
        state.planning = {"budget": budget.name, "clock_mhz": options.clock_mhz, "target_fps": options.target_fps,
                          "candidates": len(found), "ii_cycles": chosen.ii,
                          "fps": round(chosen.fps(options.clock_mhz), 1), "fmax_mhz": chosen.fmax_mhz,
                          "estimate": chosen.total}
    if state.options.folding:
        state.network = state.network.with_folding(state.options.folding)
    state.network = fit_to_device(state.network, options.budget).with_clock(options.clock_mhz)


def folds_every_layer(network, folding: dict | None) -> bool:
    """Whether a folding file leaves nothing for the planner: it names every foldable layer, or it
    is a FINN folding config (which folds every MVAU, VVAU and pool)."""
    if not folding:
        return False
    names = {layer.name for layer in network.layers}
    return is_finn_config(folding, names) or all(layer.name in folding for layer in network.foldable)


def step_size_fifos(state: BuildState) -> None:
    if state.options.fifo_sizing:
        from .fifo_sizing import size_fifos

        state.network, state.fifo_sizing = size_fifos(state.network)


def step_emit(state: BuildState) -> None:
    from ..cores.accelerator import to_verilog

    state.verilog = to_verilog(state.network)


def step_synthesize(state: BuildState) -> None:
    if state.options.synth:
        from ..resources.synthesis import synthesize_network

        state.synthesis = synthesize_network(state.network)


STEPS = {"streamline": step_streamline, "fold": step_fold, "size_fifos": step_size_fifos, "emit": step_emit,
         "synthesize": step_synthesize}


def write_build(state: BuildState) -> Build:
    out, network = state.out_dir, state.network
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state.model_path, out / "original.onnx")
    onnx.save(to_streamlined_onnx(network), str(out / "streamlined.onnx"))
    if state.input_quantizer.prefix is not None:
        (out / "input_quantizer.onnx").write_bytes(state.input_quantizer.prefix)
    save_network(out, network, state.input_quantizer, state.input_shape)
    write_weight_files(out, network, state.input_quantizer)
    (out / PROVENANCE).write_text(json.dumps(state.provenance, indent=1) + "\n")
    (out / f"{network.name}.v").write_text(state.verilog)
    followers = {name: {"SIMD": row["SIMD"], "follows": row["follows"]}
                 for name, row in network.lane_followers.items()}
    folding = {**network.folding, **followers}
    for name, styles in network.memory_styles.items():
        folding[name] = {**folding.get(name, {}), "memory_styles": styles}
    for name, style in network.multiplier_styles.items():
        folding[name] = {**folding.get(name, {}), MULTIPLIER_KEY: style}
    for layer in network.layers:
        if layer.runtime_writeable:
            folding[layer.name] = {**folding.get(layer.name, {}), WRITABLE_KEY: 1}
    folding[FIFO_STYLES_KEY] = network.fifo_style_entries
    (out / "folding.json").write_text(json.dumps(folding, indent=2) + "\n")
    result = Build(out, network, state.input_quantizer, state.input_shape, state.verilog, build_report(state))
    result.write_report()
    return result


def build(model_path, out_dir, *, folding: dict | None = None, target_ii: int | None = None,
          label_select: bool = False, name: str = "finn_rtl_top", fifo_sizing: bool = False,
          synth: bool = False, budget=None, clock_mhz: float = DEFAULT_CLOCK_MHZ, target_fps: float | None = None) -> Build:
    """`budget` (a `resources.planner.Budget`) and/or `target_fps` choose the folding from
    estimates when neither `target_ii` nor a folding for every layer is given."""
    if not name.isidentifier():
        raise CompileError(f"top-level name {name!r} must be a Verilog identifier")
    state = BuildState(Path(model_path), Path(out_dir),
                       BuildOptions(folding, target_ii, label_select, name, fifo_sizing, synth,
                                    budget, clock_mhz, target_fps))
    for step_name, step in STEPS.items():
        start = time.perf_counter()
        with status(f"{step_name.replace('_', ' ')}: {state.model_path.name}"):
            step(state)
        state.seconds[step_name] = time.perf_counter() - start
    return write_build(state)


def synthesize_build(b: Build) -> dict:
    """`finn-rtl synth BUILD_DIR`: measured resources of a build, into its report."""
    from ..resources.synthesis import synthesize_network

    result = synthesize_network(b.network)
    b.report["resources"] = resources_report(b.network, result)
    b.report["timing"] = timing_report(result, b.report.get("build", {}).get("clock_mhz") or DEFAULT_CLOCK_MHZ)
    b.write_report()
    return result


def load_build(out_dir) -> Build:
    out = Path(out_dir)
    try:
        report = json.loads((out / "report.json").read_text())
        options = report["build"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise CompileError(f"{out} is not a finn-rtl build directory ({exc})") from None
    network, quantizer, input_shape = load_network(out)
    try:
        verilog = (out / f"{options['name']}.v").read_text()
    except FileNotFoundError:
        raise CompileError(f"{out} has no {options['name']}.v: build it again") from None
    return Build(out, network, quantizer, input_shape, verilog, report)
