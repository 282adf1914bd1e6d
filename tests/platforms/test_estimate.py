"""Resource estimates: in every report.json, per unit like synthesis; block RAM and LUT RAM
counted as Yosys maps them, LUTs and flip-flops near Yosys's counts."""
import json

import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.flow import build
from finn_rtl.graph.memory import (MemoryShape, auto_style, bram_primitives, fifo_memory, lutram_geometry,
                                   lutram_luts, mux_luts)
from finn_rtl.resources.estimate import COLUMNS, GLUE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Yosys 0.70 synth_xilinx on a plain synchronous ROM of depth x width with rom_style "block".
YOSYS_BRAM = {(128, 512): (15, 0), (64, 1024): (29, 0), (16, 128): (0, 2), (512, 36): (1, 0), (1024, 36): (0, 1),
              (2048, 8): (1, 0), (576, 32): (0, 1), (4096, 1): (1, 0), (16384, 2): (0, 1), (1024, 72): (0, 2),
              (72, 512): (15, 0), (9, 288): (0, 4), (128, 64): (0, 1), (256, 16): (1, 0),
              # deep ROMs: blocks of words packed side by side into the parity bits
              (18432, 32): (0, 16), (32768, 8): (15, 0), (2304, 128): (0, 9), (4608, 128): (0, 16),
              (1152, 256): (0, 11), (8192, 16): (0, 4), (3000, 40): (7, 0)}
# ... and a RAM with one write and one read port (ram_style "block"), words padded to 9-bit bytes.
YOSYS_BRAM_RAM = {(1024, 32): (0, 1), (2048, 20): (3, 0), (3000, 16): (3, 0), (600, 100): (0, 3), (4096, 9): (0, 1),
                  (512, 64): (0, 1)}


# Yosys 0.70 on a RAM (ram_style "distributed") of depth x width, single-port (one address) or
# not, read synchronously or not: LUTs in LUT RAM primitives.
YOSYS_LUTRAM = {(32, 2, True, True): 4, (64, 1, True, True): 1, (16, 2, True, False): 4, (31, 2, False, True): 4,
                (63, 1, False, True): 4, (63, 2, False, True): 4, (128, 8, False, True): 24,
                (2, 100, False, False): 68, (48, 5, True, True): 5, (100, 3, True, True): 6,
                (200, 2, False, True): 16, (24, 13, False, True): 12,
                # five blocks of RAM32M (CNV-w1a1's Conv_5 line buffer), not three of RAM64M
                (144, 32, False, True): 120}


@pytest.mark.parametrize("shape", sorted(YOSYS_LUTRAM))
def test_lut_ram_count_is_the_mapping_yosys_picks(shape):
    depth, width, single_port, sync_read = shape
    assert lutram_luts(MemoryShape(depth, width, sync_read=sync_read, single_port=single_port)) == YOSYS_LUTRAM[shape]


def test_lut_ram_blocks_and_their_read_multiplexer():
    assert lutram_geometry(MemoryShape(144, 32)) == (120, 5)
    assert lutram_geometry(MemoryShape(64, 32)) == (44, 1)
    assert [mux_luts(n) for n in (1, 2, 4, 5, 7, 8, 16)] == [0, 1, 1, 2, 2, 3, 5]


def test_lut_ram_read_multiplexer_is_what_yosys_builds():
    """Twelve more bits of a LUT-RAM FIFO cost 12 x `mux_luts(blocks)` LUTs: the multiplexer
    (the FIFO's counters do not grow with its width)."""
    from finn_rtl.cores.fifo import StreamFIFO
    from finn_rtl.resources.synthesis import design_sources, synthesize, yosys_version

    def luts(width, depth):
        fifo = StreamFIFO(width, depth, style="distributed")
        return synthesize(design_sources(fifo, "fifo"), "fifo", yosys_version())["resources"]["LUT"]

    for depth in (255, 511, 1023):
        _, blocks = lutram_geometry(fifo_memory(16, depth))
        assert abs((luts(16, depth) - luts(4, depth)) / 12 - mux_luts(blocks)) <= 0.5, depth


@pytest.mark.parametrize("shape", sorted(YOSYS_BRAM))
def test_block_ram_count_is_the_mapping_yosys_picks(shape):
    assert tuple(bram_primitives(MemoryShape(*shape, rom=True)).values()) == YOSYS_BRAM[shape]


@pytest.mark.parametrize("shape", sorted(YOSYS_BRAM_RAM))
def test_block_ram_count_of_a_ram_is_the_mapping_yosys_picks(shape):
    assert tuple(bram_primitives(MemoryShape(*shape)).values()) == YOSYS_BRAM_RAM[shape]


def test_automatic_style_by_size():
    assert auto_style(MemoryShape(2, 64)) == "registers"  # a RAM of two words
    assert auto_style(MemoryShape(16, 64, rom=True)) == "distributed"  # a LUT per bit
    assert auto_style(MemoryShape(4608, 128, rom=True)) == "block"  # CNV's big weight ROMs
    assert auto_style(MemoryShape(4096, 8, sync_read=False)) == "distributed"  # no BRAM reads asynchronously


@pytest.fixture(scope="module")
def block_build(tmp_path_factory):
    """An MLP whose first weight ROM is forced into block RAM, with synthesis."""
    work = tmp_path_factory.mktemp("estimate")
    onnx.save(make_mlp(MLPCfg(in_shape=(1, 64), layers=[LayerCfg(32), LayerCfg(16), LayerCfg(8)]), seed=3),
              str(work / "m.onnx"))
    folding = {"MatMul_0": {"PE": 4, "SIMD": 8, "ram_style": "block"}, "MatMul_1": {"PE": 2, "SIMD": 8},
               "MatMul_2": {"PE": 2, "SIMD": 4}}
    return build(work / "m.onnx", work / "out", folding=folding, synth=True)


def test_every_report_has_estimates_per_unit_with_memory_styles(block_build):
    report = json.loads((block_build.out_dir / "report.json").read_text())
    estimate = report["resources"]["estimate"]
    layers = [row["name"] for row in report["layers"]]
    assert set(estimate["layers"]) == {*layers, GLUE}
    for row in estimate["layers"].values():
        assert set(row) == set(COLUMNS)
    assert estimate["total"] == {c: sum(row[c] for row in estimate["layers"].values()) for c in COLUMNS}
    assert estimate["memory_styles"]["MatMul_0"]["weights"] == "block"
    assert report["layers"][0]["memories"]["weights"]["style"] == "block"
    # the same decisions beside the measured numbers
    assert report["resources"]["synthesis"]["memory_styles"] == estimate["memory_styles"]


def test_block_ram_and_lut_ram_estimates_are_exact(block_build):
    resources = block_build.report["resources"]
    for name, measured in resources["synthesis"]["layers"].items():
        predicted = resources["estimate"]["layers"][name]
        for column in ("BRAM18", "BRAM36", "LUTRAM", "DSP"):
            assert predicted[column] == measured[column], (name, column)
    assert resources["synthesis"]["total"]["BRAM18"] + resources["synthesis"]["total"]["BRAM36"] > 0


def test_lut_and_ff_estimates_are_near_yosys(block_build):
    """Loose bounds here (a small network, each unit a few hundred LUTs); benchmarks/
    bench_estimates.py prints the error on whole networks."""
    resources = block_build.report["resources"]
    for column in ("LUT", "FF"):
        predicted, measured = resources["estimate"]["total"][column], resources["synthesis"]["total"][column]
        assert abs(predicted - measured) <= 0.25 * measured, (column, predicted, measured)


def test_block_rom_takes_its_varying_columns_only():
    """Yosys drops a ROM's constant columns before mapping it (measured: 4096 x 16 with 8 constant
    columns, one RAMB36; with 8 columns repeating the other 8, two); a ROM whose every column is
    constant takes no block RAM."""
    import numpy as np

    from finn_rtl.graph.memory import live_columns, varying_columns
    from finn_rtl.resources.estimate import memory_terms

    rng = np.random.default_rng(1)
    low = rng.integers(0, 256, 4096)
    constant, repeated = low | (0xA5 << 8), low | (low << 8)
    assert varying_columns((constant[:, None], 16)) == 8 and varying_columns((repeated[:, None], 16)) == 16
    assert live_columns((repeated[:, None], 16)) == 8
    shape = MemoryShape(4096, 16, rom=True)
    assert memory_terms(shape, "block", live=8)[0]["BRAM36"] == 1
    assert memory_terms(shape, "block", live=16)[0]["BRAM36"] == 2
    assert memory_terms(shape, "block", live=0)[0]["BRAM36"] == 0


def test_every_core_term_is_calibrated():
    """Every term a core's resource_features can name has a coefficient; a thresholding layer of
    one or two channel groups takes the MVTU's threshold-stage terms (the same hardware)."""
    from finn_rtl.resources.estimate import calibration, coefficient, estimate_unit

    table = calibration()["LUT"]
    for kind in ("Threshold", "VectorUnit", "MVTU"):
        for term in ("threshold_bits", "threshold_const_bits", "threshold_pair_bits"):
            assert coefficient(table, f"{kind}.{term}") is not None, (kind, term)
    unit = estimate_unit([("Threshold", {"const": 1, "threshold_const_bits": 120, "out_bits": 4}, [])])
    assert unit["uncalibrated"] == [] and unit["resources"]["LUT"] > 0
