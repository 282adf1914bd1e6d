"""Where a layer's multiplications go: DSP48 slices or LUTs (FINN's `resType`: "dsp" / "lut").

A layer that multiplies (an integer MVTU, a depthwise vector unit) names its products
(`Layer.products()`); the folding file can set the style (`resType`), and the build chooses it
for the rest (`resources.device.assign_multipliers`). A "dsp" layer multiplies with `*`
marked `use_dsp = "yes"`: one DSP48E1 per product. A "lut" layer adds shifted partial products
where a DSP could be inferred, so neither Yosys nor Vivado puts a multiplication in a DSP.

Products narrower than a DSP is worth never map to one: Yosys's synth_xilinx maps a
multiplication to a DSP48E1 when both operands have at least 2 bits and the product at least 9
(its DSP_A/B_MINWIDTH=2, DSP_Y_MINWIDTH=9); a bipolar element multiplies as a 2-bit +-1.
Measured with Yosys 0.70 on MVTUs of 4 products: INT4 x INT4 and UINT4 x INT4 no DSP; INT5 x
INT4, INT2 x INT8, UINT8 x INT3, INT8 x INT8 one per product. This is where the 48 DSP48s of
the CNV-w1a1 synthesis quoted in issue 11 came from: its first layer (UINT8 pixels x bipolar
weights, PE 16 x SIMD 3 = 48 products) multiplied each lane with `*`, before the weight-plane
datapath (2026-12-02) replaced those multiplications by additions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .datatypes import QType
from .errors import CompileError

STYLES = ("lut", "dsp")
DSP_MIN_OPERAND_BITS = 2
DSP_MIN_PRODUCT_BITS = 9
# A DSP48E1 multiplies 25 x 18 bits (signed): wider operands would take several.
DSP_MAX_OPERAND_BITS = (25, 18)


class MultiplierStyleError(CompileError):
    pass


@dataclass(frozen=True)
class Products:
    """The multiplications a core makes each cycle: `count` products of an `input_type` element
    by a `weight_type` element."""

    count: int
    input_type: QType
    weight_type: QType

    @property
    def operand_bits(self) -> tuple[int, int]:
        # A bipolar element multiplies as the signed value +-1: two bits.
        return tuple(2 if t.bipolar else t.bits for t in (self.input_type, self.weight_type))

    @property
    def bits(self) -> int:
        return sum(self.operand_bits)

    @property
    def dsp_capable(self) -> bool:
        """A DSP48 would be inferred for each product (see the module's note)."""
        narrow, wide = sorted(self.operand_bits)
        return (narrow >= DSP_MIN_OPERAND_BITS and self.bits >= DSP_MIN_PRODUCT_BITS
                and narrow <= DSP_MAX_OPERAND_BITS[1] and wide <= DSP_MAX_OPERAND_BITS[0])

    def describe(self) -> str:
        return f"{self.input_type} x {self.weight_type}"


def check_multiplier_style(style, products: Products | None, where: str):
    """A resType asked for in a folding file; 'auto' is no choice (returns None)."""
    if style == "auto":
        return None
    if style not in STYLES:
        raise MultiplierStyleError(f"{where}: unknown resType {style!r}; use auto, lut or dsp")
    if products is None:
        raise MultiplierStyleError(f"{where}: has no multiplications to give a resType")
    if style == "dsp" and not products.dsp_capable:
        raise MultiplierStyleError(
            f"{where}: {products.describe()} products ({products.bits} bits) are too narrow for a DSP48, "
            f"which needs {DSP_MIN_PRODUCT_BITS}-bit products of operands of at least {DSP_MIN_OPERAND_BITS} "
            "bits; use lut")
    return style
