"""Branching networks end to end: seeded residual nets (identity and 1x1 stride-2 downsample
shortcuts, one with a Concat) bit-exact in rtlsim at their analytic II, with and without
backpressure, on the default FIFO depths; FIFO sizing and stall diagnosis where streams meet."""
import dataclasses

import numpy as np
import onnx
import pytest
from conftest import MIXED_CIFAR10, cifar10_images
from support.convgen import ConvCfg, ConvNetCfg, ResidualCfg, make_convnet, resnet8
from support.modelgen import LayerCfg

from finn_rtl.cores.accelerator import to_verilog
from finn_rtl.flow import build, random_inputs, verify
from finn_rtl.graph.merge_specs import AddSpec
from finn_rtl.sim.rtlsim import simulate
from finn_rtl.sim.verilator import SimulationError

SMALL = dict(in_shape=(1, 3, 8, 8), fc=[LayerCfg(10, norm="none")])
CIFAR_II = 16384
IMAGES = 100


def small_net(merge="add", bits=2, dyadic=True):
    return ConvNetCfg(**SMALL, dyadic=dyadic, features=[
        ConvCfg(4, pad=1, w_bits=bits, a_bits=bits),
        ResidualCfg(4, merge=merge, w_bits=bits, a_bits=bits),
        ResidualCfg(8, stride=2, downsample=True, w_bits=bits, a_bits=bits)])


def check_bit_exact_at_ii(b, x, labels=None):
    full = verify(b, x, labels)
    assert full["bit_exact"] and full["hardware_matches_numpy_reference"], full
    assert abs(full["ii_deviation"]) <= 0.01, full
    gaps = verify(b, x, labels, valid_percent=70, ready_percent=60, seed=3)
    assert gaps["bit_exact"] and gaps["hardware_matches_numpy_reference"], gaps
    return full


@pytest.mark.parametrize("name,cfg", [
    ("identity_and_downsample", small_net()),
    ("concat", small_net("concat")),
    ("float32_scales_4bit", small_net(bits=4, dyadic=False)),
    # Found by the DAG property test: an identity shortcut whose Add reads a Concat's output.
    ("concat_then_identity_add", ConvNetCfg(**SMALL, features=[
        ConvCfg(3, pad=1), ResidualCfg(2, merge="concat", downsample=True, long_convs=1),
        ResidualCfg(4, long_convs=2)])),
])
def test_small_residual_nets_bit_exact(name, cfg, tmp_path):
    onnx.save(make_convnet(cfg, seed=11), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=2048)
    check_bit_exact_at_ii(b, random_inputs(b, 24))
    edges = b.report["edges"]
    assert any(e["consumer_port"] == 1 for e in edges)  # a second input of a merge, in the report


def test_fifo_sizing_confirms_the_analytic_shortcut_depths(tmp_path):
    onnx.save(make_convnet(small_net(), seed=11), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", fifo_sizing=True)
    sizing = b.report["fifos"]["sized_by_simulation"]
    # The check run at full rate, every merge input at its analytic depth (or less where the
    # deep run needed less), reached the analytic II without a deadlock.
    assert sizing["check_run_ii_cycles"] <= b.network.analytic_ii * 1.01, sizing
    merges = sizing["merge_inputs"]
    assert len(merges) == 4 and all(m["check_run_depth"] <= m["analytic_depth"] for m in merges), merges
    assert any(m["check_run_depth"] == m["analytic_depth"] > 100 for m in merges), merges  # a shortcut
    # ... and ran without a stall with the input and the output paused half the time
    lean = sizing["checks"]["min(peak + 1, default)"]
    assert lean["passed"] and lean["points_valid_ready_percent"] == [[100, 100], [50, 100], [100, 50]], lean
    assert lean["ran_on"] == "this machine" and sizing["used"] == "min(peak + 1, default)"
    check_bit_exact_at_ii(b, random_inputs(b, 16))


def test_sized_depths_that_stall_under_backpressure_are_not_used(monkeypatch):
    """The lean depths reach the II at full rate but stall with the output paused: the peaks
    are used; if those stall too, the default depths are."""
    from finn_rtl.flow import fifo_sizing
    from finn_rtl.graph.streamline import streamline
    from finn_rtl.sim import rtlsim
    from finn_rtl.sim.verilator import SimulationError

    net = streamline(make_convnet(small_net(), seed=11)).network
    real = rtlsim.simulate_points
    stalling = {"lean": True, "safe": False}

    def points(network, verilog, x, pts, **kwargs):
        runs = real(network, verilog, x, pts, **kwargs)
        # the lean candidate is at most the default depth everywhere; the peaks exceed it somewhere
        is_lean = all(d <= default for d, default in zip(network.fifo_depths, net.default_fifo_depths))
        if (100, 50) in pts and (stalling["lean"] if is_lean else stalling["safe"]):
            raise SimulationError("rtlsim failed (exit 3): stall: no stream moved for 100000 cycles")
        return runs

    monkeypatch.setattr(rtlsim, "simulate_points", points)
    sized, info = fifo_sizing.size_fifos(net)
    assert info["checks"]["min(peak + 1, default)"]["stalled_at_valid_ready_percent"] == [[100, 50]]
    assert info["used"] == "peak + 1" and sized.fifo_depths == tuple(max(2, p + 1) for p in info["peaks"])
    stalling["safe"] = True
    sized, info = fifo_sizing.size_fifos(net)
    assert info["used"].startswith("default") and sized.fifo_depths == net.fifo_depths


def test_a_stalled_shortcut_is_named(tmp_path):
    onnx.save(make_convnet(small_net(), seed=11), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out")
    net = b.network
    add = next(layer for layer in net.layers if isinstance(layer, AddSpec))
    shortcut = next(i for i in net.in_edges(add.name) if net.layer(net.edges[i].producer).outputs > 1)
    depths = list(net.default_fifo_depths)
    depths[shortcut] = 3  # far less than the long branch holds: the fork stalls, the add starves
    starved = dataclasses.replace(net, fifo_depths=tuple(depths))
    x = np.random.default_rng(0).integers(0, 256, (2, net.in_elements))
    with pytest.raises(SimulationError) as info:
        simulate(starved, to_verilog(starved), x, jobs=1)
    assert f"FIFO {net.edges[shortcut]}: 3/3 beats (full" in str(info.value)


@pytest.fixture(scope="module")
def cifar10():
    return cifar10_images(MIXED_CIFAR10)


@pytest.mark.parametrize("name,cfg", [
    ("resnet8_2bit", resnet8(2)),
    ("resnet8_3bit_concat", resnet8(3, merge="concat")),
    ("resnet8_4bit_scale_ratio_2", resnet8(4, scale_ratio=2)),
])
def test_resnet8_cifar10_bit_exact(name, cfg, cifar10, tmp_path):
    onnx.save(make_convnet(cfg, seed=5), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=CIFAR_II)
    assert b.network.analytic_ii <= CIFAR_II
    x, y = cifar10
    result = check_bit_exact_at_ii(b, x, y)
    assert result["frames"] == IMAGES
