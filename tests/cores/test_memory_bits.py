"""Each spec's `memories` (the hook memory styles and resource estimates use) against the
memories its core actually instantiates: same names, same depth and width, the style's
Verilog attribute, and for ROMs the bit columns a LUT mapping builds."""
import numpy as np
import onnx
import pytest
from amaranth.lib.memory import Memory
from support.convgen import ConvCfg, ConvNetCfg, PoolCfg, ResidualCfg, make_convnet
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.cores.accelerator import make_core
from finn_rtl.cores.memories import rom_words
from finn_rtl.flow import build
from finn_rtl.graph.memory import MemoryShape, live_columns, varying_columns

MODELS = {
    "residual_depthwise": lambda: make_convnet(ConvNetCfg(in_shape=(1, 3, 8, 8), features=[
        ConvCfg(4, pad=1), PoolCfg(in_chain=True), ResidualCfg(4), ConvCfg(0, depthwise=True, pad=1)],
        fc=[LayerCfg(6, norm="none")]), seed=4),
    "mlp": lambda: make_mlp(MLPCfg(layers=[LayerCfg(12), LayerCfg(8), LayerCfg(4)]), seed=2),
}


def core_memories(core) -> dict:
    module = core.elaborate(None)
    named = {name: entry[0] if isinstance(entry, tuple) else entry   # (elaboratable, source location)
             for name, entry in module._named_submodules.items()}
    # Elaborated only to be looked at: no UnusedElaboratable warning when they are collected
    # (it would land on whichever later test is capturing stderr).
    for elaboratable in [core, module, *named.values(), *module._anon_submodules]:
        elaboratable = elaboratable[0] if isinstance(elaboratable, tuple) else elaboratable
        elaboratable._MustUse__used = True
    return {name: sub for name, sub in named.items() if isinstance(sub, Memory)}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("target_ii", [None, 1024])
def test_memories_match_the_cores(name, target_ii, tmp_path):
    onnx.save(MODELS[name](), str(tmp_path / "model.onnx"))
    network = build(tmp_path / "model.onnx", tmp_path / "out", target_ii=target_ii).network
    checked = roms = 0
    for layer in network.layers:
        expected = layer.memories()
        memories = core_memories(make_core(layer))
        assert set(memories) == set(expected), layer.name
        for key, memory in memories.items():
            shape = expected[key]
            # a shallow LUT ROM is stored filled up to a power of two (`rom_words`), its words repeated
            depth = len(rom_words(shape, layer.memory_style(key), ())) if shape.rom else shape.depth
            assert (memory.depth, memory.shape.width) == (depth, shape.width), (layer.name, key)
            attribute = "rom_style" if shape.rom else "ram_style"
            assert memory.attrs == {attribute: layer.memory_style(key)}, (layer.name, key)
            fields = layer.rom_fields(key)
            if fields is not None:  # the ROM's varying (distinct) bit columns, from the core's contents
                words = np.array([[(int(word) >> bit) & 1 for bit in range(shape.width)] for word in memory.init])
                if len(words) == 2 and not words[1].any():
                    words = words[:1]  # a one-word ROM is stored as two; its address never leaves 0
                assert live_columns(*fields) == live_columns((words, 1)), (layer.name, key)
                assert varying_columns(*fields) == varying_columns((words, 1)), (layer.name, key)
                roms += 1
            checked += 1
    assert checked >= 3 and roms >= 2


def test_shallow_lut_roms_are_filled_to_a_power_of_two_by_repeating_their_words():
    rom = MemoryShape(9, 8, rom=True)
    assert rom_words(rom, "distributed", range(9)) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6]
    assert rom_words(rom, "distributed", [5, 6]) == [5, 6] + [0] * 7 + [5, 6] + [0] * 5  # unset words are 0
    assert rom_words(rom, "block", range(9)) == list(range(9))  # block RAM: padding could cost primitives
    assert rom_words(MemoryShape(16, 8, rom=True), "distributed", range(16)) == list(range(16))
    assert len(rom_words(MemoryShape(65, 8, rom=True), "distributed", range(65))) == 65  # deep: a mux tree
