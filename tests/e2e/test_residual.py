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
    check_bit_exact_at_ii(b, random_inputs(b, 16))


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
