"""The accelerator's Verilog with each layer's core converted on its own (`cores.emit`): proven
equal by Yosys to a conversion of the whole design, from one process or two; a worker that dies
is an error naming its cores."""
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.convgen import TINY_RESIDUAL, make_convnet

from finn_rtl.cores import emit
from finn_rtl.graph.streamline import streamline


@pytest.fixture(scope="module")
def residual_network():
    """A padded conv, a residual block (a fork, two convs, an add), thresholds and an FC."""
    net = streamline(make_convnet(TINY_RESIDUAL, seed=2)).network
    return net.with_folding({"Conv_0": {"PE": 4, "SIMD": 3}, "Conv_1": {"PE": 2, "SIMD": 4}})


def whole_design_verilog(network) -> str:
    """The Verilog of one Amaranth conversion of the whole design (what to_verilog wrote before)."""
    from finn_rtl.cores.accelerator import Accelerator
    from finn_rtl.cores.popcount import convert

    return convert(Accelerator(network), network.name)


def numbered_per_module(verilog: str) -> str:
    """Amaranth names a signal it cannot name `$signal$N` and Yosys the wires it makes
    `$procmux$N_Y`, `$auto$...$N`, N counting over one conversion or one Yosys run: in each
    module, the k-th such name (in order of N) becomes `...$k`, so two conversions name a
    register alike and Yosys can pair them up."""
    numbered = re.compile(r"\\(\$\S*?)\$(\d+)(\S*) ")

    def renumber(chunk: str) -> str:
        keys = sorted({(m[0], m[2], int(m[1])) for m in numbered.findall(chunk)})
        rank = {key: i for i, key in enumerate(keys)}
        return numbered.sub(lambda m: f"\\{m[1]}${rank[m[1], m[3], int(m[2])]}{m[3]} ", chunk)

    return "\nmodule ".join(renumber(chunk) for chunk in verilog.split("\nmodule "))


@pytest.mark.parametrize("workers, groups", [pytest.param(1, 1, marks=pytest.mark.slow), (2, 3)])
def test_cores_converted_apart_are_proven_equal_to_the_whole_design(residual_network, tmp_path, workers, groups):
    """On one process and on two (which convert different groups of cores, each with its own
    numbering of unnamed signals, and run Yosys apart)."""
    from finn_rtl.resources.synthesis import yosys_command

    top = residual_network.name
    (tmp_path / "gold.v").write_text(numbered_per_module(whole_design_verilog(residual_network)))
    ours = emit.to_verilog(residual_network, workers=workers, groups=groups)
    (tmp_path / "gate.v").write_text(numbered_per_module(ours))
    cores = [layer.name for layer in residual_network.layers]
    assert all(f"module {emit.module_name(top, i, name)}(" in ours for i, name in enumerate(cores))
    assert ours.count("(* top =") == 1
    load = "read_verilog {0}.v; hierarchy -top {1}; proc; flatten; rename {1} {0}; design -stash {0}; "
    script = (load.format("gold", top) + load.format("gate", top)
              + "design -copy-from gold -as gold gold; design -copy-from gate -as gate gate; "
              "memory; opt_clean; equiv_make gold gate equiv; hierarchy -top equiv; "
              "equiv_simple -seq 2; equiv_induct -seq 2; equiv_status -assert")
    run = subprocess.run([*yosys_command(), "-p", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    matched = re.search(r"Found (\d+) \$equiv cells in equiv", run.stdout)
    assert matched and int(matched.group(1)) > 200  # registers and outputs were paired up
    assert "Equivalence successfully proven!" in run.stdout


class NotASpec:
    """Pickled here; not importable where the worker unpickles it."""

    name = "broken"


def test_the_verilog_is_the_same_text_on_every_build_however_many_processes(residual_network):
    """Yosys numbers the wires it makes over a run: with the cores in fixed groups, which process
    converts which group does not change a name, so a rebuild hits the simulator cache."""
    alone = emit.to_verilog(residual_network, workers=1, groups=3)
    assert emit.to_verilog(residual_network, workers=2, groups=3) == alone
    assert emit.to_verilog(residual_network, workers=3, groups=3) == alone
    assert "$procmux$" in alone  # the names that used to differ are there


def test_unit_groups_are_runs_of_consecutive_units_of_about_equal_work(residual_network):
    units = [(f"L{i}", layer) for i, layer in enumerate(residual_network.layers)]
    for count in (1, 2, 3, len(units), len(units) + 5):
        groups = emit.unit_groups(units, count)
        assert [unit for group in groups for unit in group] == units
        assert 1 <= len(groups) <= count and all(groups)
    works = [sum(emit._work(layer) for _, layer in group) for group in emit.unit_groups(units, 2)]
    biggest = max(emit._work(layer) for _, layer in units)
    assert abs(works[0] - works[1]) <= biggest
    assert emit.unit_groups([], 3) == [[]]


def test_a_worker_that_dies_is_an_error_naming_its_cores():
    group = [("finn_rtl_top__L7_broken", NotASpec())]
    items = iter([(0, group, pickle.dumps(group)), None])
    with pytest.raises(RuntimeError, match=r"converting finn_rtl_top__L7_broken to Verilog failed \(exit 1\): "
                                           r".*(No module named|Can't get attribute)"):
        emit._convert_in_worker(lambda: next(items), {})


def test_a_core_without_registers_still_gets_clock_and_reset_ports(monkeypatch):
    """The top level connects both before the core is converted (`Conversion.add`)."""
    from amaranth import Module
    from amaranth.lib import stream, wiring

    import finn_rtl.cores.accelerator

    class PassThrough(wiring.Component):
        s: wiring.In(stream.Signature(4))
        m: wiring.Out(stream.Signature(4))

        def elaborate(self, platform):
            m = Module()
            wiring.connect(m, wiring.flipped(self.s), wiring.flipped(self.m))
            return m

    monkeypatch.setattr(finn_rtl.cores.accelerator, "make_core", lambda layer: PassThrough())
    conversion = emit.Conversion()
    conversion.add("top__L0_wire", None)
    converted = conversion.finish()
    assert converted.modules[0].ports == {"clk", "rst", "s__payload", "s__valid", "s__ready", "m__payload",
                                          "m__valid", "m__ready"}
    header = re.search(r"module top__L0_wire\(([^)]*)\);", converted.verilog).group(1)
    assert {"clk", "rst"} <= set(header.split(", "))
    assert "(* top" not in converted.verilog


def test_workers_import_the_same_finn_rtl_as_the_driver_without_an_install(tmp_path, monkeypatch):
    """A script that puts a checkout on sys.path (no pip install) still gets working workers."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = emit._worker_environment()
    found = subprocess.run([sys.executable, "-c",
                            "import finn_rtl, pathlib; print(pathlib.Path(finn_rtl.__file__).resolve())"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert found == str(Path(emit.__file__).resolve().parents[1] / "__init__.py")
    assert env["PYTHONPATH"].split(os.pathsep)[1] == str(tmp_path)
