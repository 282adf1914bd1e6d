"""Choices that depend on the device: DSP48 or LUT products (FINN's resType: which products a DSP
takes, the folding file's choice, the build's choice for the rest, the DSP count Yosys measures
against the estimate), FIFO styles by edge, and memory styles at the device's exchange rate."""
import numpy as np
import pytest

from finn_rtl.cores.mvtu import MVTU
from finn_rtl.cores.popcount import convert
from finn_rtl.cores.vector_unit import VectorUnit
from finn_rtl.graph.datatypes import QType
from finn_rtl.graph.multipliers import MultiplierStyleError, Products
from finn_rtl.graph.network import FoldingError, NetworkSpec, OutputSpec
from finn_rtl.graph.specs import MVTUSpec, VectorUnitSpec
from finn_rtl.resources.estimate import estimate_network
from finn_rtl.resources.device import assign_multipliers, fit_to_device
from finn_rtl.platforms.boards import Capacity
from finn_rtl.resources.planner import Budget
from finn_rtl.resources.synthesis import synthesize_verilog, yosys_version

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UINT8, INT4 = QType(8, False), QType(4, True)


@pytest.mark.parametrize("x,w,capable", [
    (UINT8, INT4, True), (INT4, INT4, False), (QType(4, False), INT4, False), (QType(5, True), INT4, True),
    (QType(2, True), QType(8, True), True), (UINT8, QType(1, False), False),
    # a bipolar element multiplies as a 2-bit +-1: CNV-w1a1's first layer would take 48 DSPs with `*`
    (UINT8, QType.bipolar_type(), True), (QType(4, True), QType.bipolar_type(), False)])
def test_dsp_takes_products_of_nine_bits_or_more(x, w, capable):
    assert Products(4, x, w).dsp_capable is capable


def mvtu(x=UINT8, w=INT4, name="m", mh=8, mw=6, pe=2, simd=3, seed=0):
    rng = np.random.default_rng(seed)
    return MVTUSpec(name, rng.integers(w.min, w.max + 1, (mh, mw)), x, w, pe=pe, simd=simd)


def test_styles_and_refusals_name_the_layer():
    spec = mvtu()
    assert spec.multipliers == "lut" and spec.dsps == 0
    assert spec.with_multiplier_style("dsp").dsps == 6 and spec.with_multiplier_style("auto").multiplier_style is None
    with pytest.raises(MultiplierStyleError, match=r"^layer m: INT4 x INT4 products \(8 bits\) are too narrow"):
        mvtu(x=INT4).with_multiplier_style("dsp")
    with pytest.raises(MultiplierStyleError, match="unknown resType 'bram'; use auto, lut or dsp"):
        spec.with_multiplier_style("bram")
    xnor = MVTUSpec("x", np.ones((4, 4)), QType.bipolar_type(), QType.bipolar_type())
    assert xnor.products() is None and xnor.multipliers is None
    with pytest.raises(MultiplierStyleError, match="layer x: has no multiplications"):
        xnor.with_multiplier_style("lut")


def chain(*layers):
    return NetworkSpec("n", layers, layers[0].input_type, OutputSpec(1.0, 0.0))


def test_folding_file_sets_res_type_and_folding_json_round_trips():
    network = chain(mvtu(name="a", mh=6, mw=6))
    folded = network.with_folding({"a": {"PE": 3, "SIMD": 2, "resType": "dsp"}})
    assert folded.layer("a").dsps == 6 and folded.dsps == 6
    assert folded.multiplier_styles == {"a": "dsp"}
    assert estimate_network(folded)["total"]["DSP"] == 6
    with pytest.raises(FoldingError, match=r"unknown folding keys \[.restype.\] \(use PE, SIMD, .*resType.*\)"):
        network.with_folding({"a": {"PE": 3, "SIMD": 2, "restype": "dsp"}})


# Devices (as a board's budget names them) of 20k LUTs with many DSPs and with few.
ROOMY = Budget("roomy", device=Capacity(lut=20_000, ff=40_000, bram36=100, uram=0, dsp=2_000))


def test_build_spends_dsps_where_they_lower_the_largest_device_share():
    network = chain(mvtu(name="a", mh=16, mw=16, pe=16, simd=16))  # 256 products
    lut_only = estimate_network(network)["total"]
    assert (lut_only["LUT"] + lut_only["LUTRAM"]) / 20_000 > 0.5
    # An xc7z020 (the default device): 256 DSPs would exceed its 220.
    assert assign_multipliers(network).dsps == 0
    # Plenty of DSPs (256/2000 of them against over half the LUTs): the products move, LUTs fall.
    roomy = assign_multipliers(network, ROOMY)
    assert roomy.dsps == 256
    assert estimate_network(roomy)["total"]["LUT"] < lut_only["LUT"] * 0.7
    # Few DSPs: 256 of them would be a larger share of the device than the LUTs they save.
    lut_share = (lut_only["LUT"] + lut_only["LUTRAM"]) / 20_000
    scarce = Budget("scarce", device=Capacity(lut=20_000, ff=40_000, bram36=100, uram=0, dsp=int(256 / lut_share) - 4))
    assert scarce.device.dsp > 256
    assert assign_multipliers(network, scarce).dsps == 0
    # A DSP limit caps them.
    assert assign_multipliers(network, Budget("capped", dsp=100, device=ROOMY.device)).dsps == 0
    # A style the folding file set is kept.
    assert assign_multipliers(network.with_layers({"a": network.layer("a").with_multiplier_style("lut")}),
                              ROOMY).dsps == 0


@pytest.mark.parametrize("style", ["lut", "dsp"])
@pytest.mark.parametrize("kind", ["MVTU", "VectorUnit"])
def test_estimated_dsps_are_what_yosys_infers(kind, style):
    if kind == "MVTU":
        spec = mvtu().with_multiplier_style(style)
        core = MVTU(spec)
    else:
        rng = np.random.default_rng(1)
        spec = VectorUnitSpec("v", rng.integers(-8, 8, (4, 9)), 3, UINT8, INT4, pe=2).with_multiplier_style(style)
        core = VectorUnit(spec)
    measured = synthesize_verilog(convert(core, "top"), "top", yosys_version())["resources"]
    assert measured["DSP"] == spec.dsps == (spec.products().count if style == "dsp" else 0)


def test_folding_file_sets_fifo_styles_by_edge():
    network = chain(mvtu(name="a", mh=6, mw=6), mvtu(x=mvtu().acc_type, name="b", mh=4, mw=6, simd=2))
    automatic = network.edge_streams()[0].fifo_memory_style
    forced = "block" if automatic != "block" else "distributed"
    styled = network.with_folding({"fifo_styles": {"a -> b": forced}})
    assert styled.edge_streams()[0].fifo_memory_style == forced
    assert styled.fifo_style_entries == {"a -> b": forced}
    assert styled.with_fifo_styles({"a -> b": "auto"}).fifo_styles is None
    assert estimate_network(styled)["memory_styles"]["b"]["fifo from a"] == forced
    with pytest.raises(FoldingError, match=r"fifo_styles names unknown edges \['a -> c'\]; edges are \['a -> b'\]"):
        network.with_folding({"fifo_styles": {"a -> c": "block"}})
    with pytest.raises(FoldingError, match="FIFO a -> b: unknown ram_style 'huge'"):
        network.with_folding({"fifo_styles": {"a -> b": "huge"}})


def test_memory_styles_follow_the_device_exchange_rate():
    """A weight ROM of 4 RAMB18 or some hundred LUTs: block RAM on a device rich in block RAM, LUTs
    on one with few; a style the folding file set is kept."""
    network = chain(mvtu(name="a", mh=64, mw=256, pe=1, simd=8, x=QType(2, False), w=QType(2, True)))
    shape = network.layer("a").memories()["weights"]
    assert (shape.depth, shape.width) == (2048, 16)
    bram_rich = Budget("bram-rich", device=Capacity(lut=20_000, ff=40_000, bram36=1_000, uram=0, dsp=100))
    lut_rich = Budget("lut-rich", device=Capacity(lut=2_000_000, ff=40_000, bram36=10, uram=0, dsp=100))
    assert fit_to_device(network, bram_rich).layer("a").memory_style("weights") == "block"
    assert fit_to_device(network, lut_rich).layer("a").memory_style("weights") == "distributed"
    assert fit_to_device(network, lut_rich).luts_per_bram18 == 100_000
    kept = network.with_folding({"a": {"PE": 1, "SIMD": 8, "ram_style": "block"}})
    assert fit_to_device(kept, lut_rich).layer("a").memory_style("weights") == "block"


def test_a_design_bound_by_block_ram_keeps_its_products_in_luts():
    """DSPs only lower the largest device share: with block RAM scarcer than LUTs they stay idle."""
    layer = mvtu(name="a", mh=64, mw=256, pe=4, simd=16)  # 64 products, 256 words of weights
    network = chain(layer)
    few_brams = Budget("few-brams", device=Capacity(lut=20_000, ff=40_000, bram36=1, uram=0, dsp=2_000))
    forced = network.with_layers({"a": layer.with_memory_styles({"weights": "block"})})
    assert estimate_network(forced)["total"]["BRAM36"] + estimate_network(forced)["total"]["BRAM18"] > 0
    assert assign_multipliers(forced, few_brams).dsps == 0
    as_luts = network.with_layers({"a": layer.with_memory_styles({"weights": "distributed"})})
    assert assign_multipliers(as_luts, few_brams).dsps == 64  # no block RAM: LUTs are the scarce resource


def test_block_ram_moves_to_ultraram_or_luts_where_it_runs_out():
    """Weights written at run time may be UltraRAM: where block RAM runs out they move there, or
    into LUTs where those are the emptier resource; a device without UltraRAM refuses a folding
    that asks for it, naming the board."""
    from finn_rtl.graph.errors import CompileError
    from finn_rtl.graph.memory import MemoryStyleError, uram_primitives
    from finn_rtl.platforms.boards import get_board

    layer = mvtu(name="a", mh=64, mw=256, pe=1, simd=8, x=QType(2, False), w=QType(2, True)).with_runtime_writeable(True)
    network = chain(layer)
    shape = network.layer("a").memories()["weights"]
    assert shape.writable and uram_primitives(shape) == 1 and "ultra" in shape.allowed_styles()
    few_brams = dict(ff=40_000, bram36=2, dsp=100)
    with_uram = Budget("with-uram", device=Capacity(lut=5_000, uram=10, **few_brams))
    without_uram = Budget("without-uram", device=Capacity(lut=5_000, uram=0, **few_brams))
    assert fit_to_device(network, with_uram).layer("a").memory_style("weights") == "ultra"
    assert estimate_network(fit_to_device(network, with_uram))["total"]["URAM"] == 1
    assert fit_to_device(network, without_uram).layer("a").memory_style("weights") == "distributed"
    roomy = Budget("roomy", device=Capacity(lut=5_000, ff=40_000, bram36=100, uram=10, dsp=100))
    assert fit_to_device(network, roomy).layer("a").memory_style("weights") == "block"  # nothing runs out
    ultra = network.with_folding({"a": {"PE": 1, "SIMD": 8, "ram_style": "ultra", "runtime_writeable_weights": 1}})
    with pytest.raises(MemoryStyleError, match=r"layer a: memory '\w+': ram_style 'ultra' needs UltraRAM, "
                                                r"which pynq-z1 does not have"):
        fit_to_device(ultra, Budget.of_board(get_board("pynq-z1")))
    with pytest.raises(CompileError, match=r"layer a: memory 'weights': ram_style 'ultra' needs its words loaded"):
        network.with_folding({"a": {"PE": 1, "SIMD": 8, "ram_style": "ultra", "runtime_writeable_weights": 0}})
