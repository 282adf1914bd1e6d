"""A design cut in two, a simulator thread per half (`sim.partition`): the same outputs and the
same cycle of every frame as the whole design on one thread, with and without random
backpressure; a cut through combinational logic is caught in the cycle it matters and rtlsim
falls back to one thread."""
import dataclasses

import numpy as np
import pytest
from support.convgen import TINY_RESIDUAL, make_convnet, mobilenet_v1

from finn_rtl.cores.accelerator import to_verilog
from finn_rtl.graph.streamline import streamline
from finn_rtl.sim import partition, rtlsim, verilator
from finn_rtl.sim.rtlsim import shard_stream


def chain_network():
    """Pad, window generators, depthwise and pointwise units, thresholds, a pool and an FC."""
    return streamline(make_convnet(mobilenet_v1(width=0.25, blocks=2, size=8), seed=3)).network


def residual_network():
    """A fork, two convs and an add: the cut crosses both branches."""
    net = streamline(make_convnet(TINY_RESIDUAL, seed=2)).network
    return net.with_folding({"Conv_0": {"PE": 4, "SIMD": 3}, "Conv_1": {"PE": 2, "SIMD": 4}})


def frames(network, count=3, seed=0):
    q = network.input_type
    return np.random.default_rng(seed).integers(q.min, q.max + 1, size=(count, network.in_elements))


def run(network, verilog, x, split, valid=100, ready=100):
    design = verilator.compile_verilog(verilog, network.name, cxx_opt=verilator.FAST_BUILD,
                                       split=(lambda: partition.partition(network, verilog)) if split else None)
    words, args, kwargs = shard_stream(network, x, np.arange(len(x)), 0, None, valid_percent=valid,
                                       ready_percent=ready, seed=5)
    return verilator.run_stream(design, words, *args, **kwargs)


def shallow_cut_network():
    """The chain with a 2-beat FIFO at the cut: its ready falls whenever a beat waits in it, so the
    first half's lookahead is refused most cycles and must hand over to waiting exactly then."""
    network = chain_network()
    first, _ = partition.split_layers(network)
    depths = list(network.default_fifo_depths)
    cut = next(i for i, edge in enumerate(network.edges) if edge.producer == first[-1])
    depths[cut] = 2
    return dataclasses.replace(network, fifo_depths=tuple(depths))


@pytest.mark.parametrize("make", [chain_network, shallow_cut_network, residual_network],
                         ids=["chain", "shallow-cut", "residual"])
def test_two_halves_on_two_threads_simulate_exactly_like_the_whole_design(make):
    network = make()
    verilog = to_verilog(network)
    first, second = partition.split_layers(network)
    assert first and second
    x = frames(network)
    for valid, ready in ((100, 100), (60, 70), (100, 20)):
        whole = run(network, verilog, x, split=False, valid=valid, ready=ready)
        halves = run(network, verilog, x, split=True, valid=valid, ready=ready)
        assert np.array_equal(whole.output_words, halves.output_words)
        assert np.array_equal(whole.frame_in_cycle, halves.frame_in_cycle)
        assert np.array_equal(whole.frame_out_cycle, halves.frame_out_cycle)
        assert whole.total_cycles == halves.total_cycles
        # A chain is cut at one FIFO: the first half runs ahead on its ready (a share of cycles
        # that depends on the threads' timing, so only its presence is certain); the residual
        # network's cut crosses both branches, and its halves meet every cycle.
        if make is residual_network:
            assert halves.predicted_cycles == 0
        else:
            assert halves.predicted_cycles > 0


def test_the_cut_is_at_the_fifos_and_the_crossing_values_are_named_plainly():
    network = chain_network()
    design = partition.partition(network, to_verilog(network))
    first, second = design.layers
    assert list(first) + list(second) == [layer.name for layer in network.layers]
    mine, theirs = partition.part_modules(network.name)
    for verilog, (mine, theirs) in zip(design.halves, [(mine, theirs), (theirs, mine)]):
        assert f"module {mine}(" in verilog and f"module {theirs}(" not in verilog
    for verilog, layers in zip(design.halves, design.layers):  # each half holds its own layers' cores only
        for layer in network.layers:
            assert (f"\\datapath.{layer.name} " in verilog) == (layer.name in layers), layer.name
    assert "published[0]" in design.header and "published[1]" in design.header
    assert "$" not in design.header and "__02" not in design.header  # no names Verilator would encode


def test_a_cut_through_combinational_logic_is_caught_and_rtlsim_falls_back_to_one_thread(monkeypatch, tmp_path):
    """The input register slice moved into the second half, away from the glue that gates the
    top level's tvalid: what the first half publishes then follows an input within the cycle."""
    network = chain_network()
    verilog = to_verilog(network)
    assign = partition._assign_cells

    def misplaced(module, top, net, second):
        assign(module, top, net, second)
        module["cells"]["datapath.in_slice"]["attributes"]["submod"] = "part1"

    monkeypatch.setattr(partition, "_assign_cells", misplaced)
    monkeypatch.setattr(partition, "THREADS_FROM", 0)
    monkeypatch.setattr(verilator, "cache_dir", lambda: tmp_path)  # not the cached good cut
    x = frames(network, 2)
    with pytest.raises(verilator.SimulationError, match=partition.CUT_NOT_EXACT):
        run(network, verilog, x, split=True)
    result = rtlsim.simulate(network, verilog, x, jobs=2)
    assert result.threads == 1
    assert np.array_equal(result.outputs, rtlsim.simulate(network, verilog, x, jobs=1).outputs)


def test_rtlsim_cuts_a_large_design_run_as_one_process(monkeypatch):
    network = chain_network()
    verilog = to_verilog(network)
    x = frames(network, 2)
    alone = rtlsim.simulate(network, verilog, x, jobs=1)
    assert alone.threads == 1
    assert not partition.worth_threads(network)  # too small to pay for the threads' meetings
    monkeypatch.setattr(partition, "THREADS_FROM", 0)
    cut = rtlsim.simulate(network, verilog, x, jobs=2)
    assert cut.threads == 2
    assert np.array_equal(cut.outputs, alone.outputs)
    assert np.array_equal(cut.frame_out_cycle, alone.frame_out_cycle)


def test_a_design_that_cannot_be_cut_is_simulated_whole(monkeypatch, tmp_path):
    network = chain_network()
    verilog = to_verilog(network)

    def refuse(module, top, net, second):
        raise KeyError("datapath")

    monkeypatch.setattr(partition, "_assign_cells", refuse)
    monkeypatch.setattr(partition, "THREADS_FROM", 0)
    monkeypatch.setattr(verilator, "cache_dir", lambda: tmp_path)  # not the cached good cut
    with pytest.raises(partition.CutError, match="could not be cut in two"):
        partition.partition(network, verilog)
    result = rtlsim.simulate(network, verilog, frames(network, 2), jobs=2)
    assert result.threads == 1


def test_runtime_writeable_weights_are_written_into_both_halves(monkeypatch, tmp_path):
    """FINN's runtime_writeable_weights on a design cut in two: the harness writes the weights
    through the top's port before the first beat, each half taking the writes of its layers. Two
    layers keep theirs in UltraRAM, which has no initial contents: unwritten, they would be 0."""
    import onnx
    from support.modelgen import LayerCfg, MLPCfg, make_mlp

    from finn_rtl.flow import build

    cfg = MLPCfg(in_shape=(1, 32), layers=[LayerCfg(16, w_bits=3), LayerCfg(12, w_bits=2), LayerCfg(12, w_bits=2),
                                           LayerCfg(12, w_bits=2), LayerCfg(8, w_bits=4, norm="none")], tail="none")
    onnx.save(make_mlp(cfg, seed=3), str(tmp_path / "mlp.onnx"))
    written = {"runtime_writeable_weights": 1}
    folding = {"MatMul_0": {"PE": 1, "SIMD": 32, "ram_style": "ultra", **written}, "MatMul_1": {"PE": 3, "SIMD": 4},
               "MatMul_2": {"PE": 1, "SIMD": 6, **written},
               "MatMul_3": {"PE": 2, "SIMD": 6, "ram_style": "ultra", **written},
               "MatMul_4": {"PE": 1, "SIMD": 6, **written}}
    b = build(tmp_path / "mlp.onnx", tmp_path / "build", folding=folding)
    assert [b.network.layer(name).memory_style("weights") for name in ("MatMul_0", "MatMul_3")] == ["ultra"] * 2
    first, second = partition.split_layers(b.network)
    assert "MatMul_0" in first and "MatMul_3" in second
    x = frames(b.network, 3)
    alone = rtlsim.simulate(b.network, b.verilog, x, jobs=1)
    monkeypatch.setattr(partition, "THREADS_FROM", 0)
    cut = rtlsim.simulate(b.network, b.verilog, x, jobs=2)
    assert (alone.threads, cut.threads) == (1, 2)
    assert np.array_equal(cut.outputs, alone.outputs)
    assert np.array_equal(cut.outputs, b.network.reference(x))
