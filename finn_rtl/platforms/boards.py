"""The boards finn-rtl deploys to: one frozen dataclass per board, extensible from Python.

    from finn_rtl.platforms.boards import BOARDS, ZynqBoard, Capacity
    BOARDS["my-zu9"] = ZynqBoard("my-zu9", part="xczu9eg-ffvb1156-2-e", ps="zynq_ultra_ps_e", ...)

amaranth-boards (0.0.21) describes none of these boards: it has the Arty Z7-20, which carries
the same xc7z020clg400-1 as the PYNQ-Z1/Z2, but no PYNQ, Ultra96, ZCU104, KV260 or Alveo card,
and no processing-system or memory description for any board. So this table states the facts
Vivado and Vitis need itself (parts and capacities from the AMD/Xilinx product tables).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Capacity:
    """Device resources, for fit checks: LUTs, flip-flops, 36 kb block RAMs, UltraRAMs, DSPs."""

    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int


ZYNQ7, ZYNQMP = "processing_system7", "zynq_ultra_ps_e"


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    capacity: Capacity
    memory_bits: int  # data width of the shell's memory master (the port it is attached to)
    default_mhz: float
    max_mhz: float

    @property
    def word_bytes(self) -> int:
        return self.memory_bits // 8

    @property
    def timing_family(self) -> str:
        """The device family of `resources.timing` whose delays hold on this board."""
        return "7series" if self.part.startswith("xc7") else "ultrascale_plus"

    def check_clock(self, mhz: float) -> None:
        from ..graph.errors import CompileError

        if not 0 < mhz <= self.max_mhz:
            raise CompileError(f"--clock-mhz {mhz:g} is not possible on {self.name}: "
                               f"use a clock above 0 and at most {self.max_mhz:g} MHz")


@dataclass(frozen=True)
class ZynqBoard(Board):
    """A Zynq-7000 or Zynq UltraScale+ board: the PS reaches the shell's registers through a
    general-purpose master port and the shell reaches DDR through a high-performance slave port."""

    ps: Literal["processing_system7", "zynq_ultra_ps_e"] = ZYNQ7
    kind: str = "zynq"

    @property
    def ps_vlnv(self) -> str:
        return "xilinx.com:ip:processing_system7:5.5" if self.ps == ZYNQ7 else \
            "xilinx.com:ip:zynq_ultra_ps_e:3.5"


@dataclass(frozen=True)
class AlveoBoard(Board):
    """An Alveo card: the shell is a Vitis RTL kernel linked into the card's platform; `memory`
    is the bank its memory master is connected to (`sp=` in the v++ link config)."""

    platform: str = ""
    memory: str = "DDR[0]"
    kind: str = "alveo"


_XC7Z020 = Capacity(lut=53_200, ff=106_400, bram36=140, uram=0, dsp=220)
_XCU280 = Capacity(lut=1_303_680, ff=2_607_360, bram36=2_016, uram=960, dsp=9_024)

BOARDS: dict[str, Board] = {board.name: board for board in (
    ZynqBoard("pynq-z1", "xc7z020clg400-1", _XC7Z020, 64, 100.0, 250.0, ZYNQ7),
    ZynqBoard("pynq-z2", "xc7z020clg400-1", _XC7Z020, 64, 100.0, 250.0, ZYNQ7),
    ZynqBoard("ultra96-v2", "xczu3eg-sbva484-1-e", Capacity(70_560, 141_120, 216, 0, 360),
              128, 100.0, 300.0, ZYNQMP),
    ZynqBoard("zcu104", "xczu7ev-ffvc1156-2-e", Capacity(230_400, 460_800, 312, 96, 1_728),
              128, 100.0, 333.0, ZYNQMP),
    ZynqBoard("kv260", "xck26-sfvc784-2LV-c", Capacity(117_120, 234_240, 144, 64, 1_248),
              128, 100.0, 300.0, ZYNQMP),
    AlveoBoard("u250", "xcu250-figd2104-2L-e", Capacity(1_728_000, 3_456_000, 2_688, 1_280, 12_288),
               512, 300.0, 500.0, platform="xilinx_u250_gen3x16_xdma_4_1_202210_1", memory="DDR[0]"),
    AlveoBoard("u280", "xcu280-fsvh2892-2L-e", _XCU280, 512, 300.0, 500.0,
               platform="xilinx_u280_gen3x16_xdma_1_202211_1", memory="HBM[0]"),
    AlveoBoard("u55c", "xcu55c-fsvh2892-2L-e", _XCU280, 512, 300.0, 500.0,
               platform="xilinx_u55c_gen3x16_xdma_3_202210_1", memory="HBM[0]"),
)}


# The clock a build is held to when no board is named (--clock-mhz overrides): twice the 100 MHz
# FINN runs its Pynq designs at.
DEFAULT_CLOCK_MHZ = 200.0

# The device resources are weighed against when no board is named: a Pynq-Z1's xc7z020.
DEFAULT_DEVICE_BOARD = "pynq-z1"


def get_board(name: str) -> Board:
    from ..graph.errors import CompileError

    try:
        return BOARDS[name]
    except KeyError:
        raise CompileError(f"unknown board {name!r}: use one of {', '.join(BOARDS)}") from None
