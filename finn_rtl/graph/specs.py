"""Layer specifications: everything a core needs, nothing from ONNX.

Specs are immutable. Arrays inside them are made read-only on construction, so
a spec can be shared between the graph side, the cores and the reports.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from dataclasses import dataclass, field
from typing import Optional, Protocol

import numpy as np

from .datatypes import QType
from .memory import MemoryShape, MemoryStyleError, auto_style, check_style
from .multipliers import Products, check_multiplier_style


class FoldingError(ValueError):
    """A PE/SIMD choice that does not divide the layer."""


def frozen_int_array(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.int64 and not values.flags.writeable:
        return values  # already frozen (a refolded spec shares its weights)
    array = np.array(values, dtype=np.int64)
    array.flags.writeable = False
    return array


def apply_thresholds(values: np.ndarray, thresholds: np.ndarray, sign, output_type: QType,
                     out_base: int) -> np.ndarray:
    """Multi-threshold values [..., channels]: out_base + count(sign * value >= threshold),
    or for a bipolar output +1 where any threshold is passed, else -1."""
    compared = values if sign is None else values * sign
    counts = (compared[..., None] >= thresholds).sum(axis=-1)
    return np.where(counts > 0, 1, -1) if output_type.bipolar else out_base + counts


def compared_type(lo: int, hi: int, channel_sign, thresholds) -> QType:
    """Signed type of a value compared against thresholds: it fits the value's range [lo, hi],
    its negation where some channel compares the negated value, and every threshold."""
    lo, hi = int(lo), int(hi)
    if channel_sign is not None:
        lo, hi = min(lo, -hi), max(hi, -lo)
    if thresholds is not None:
        lo, hi = min(lo, int(thresholds.min())), max(hi, int(thresholds.max()))
    rng = QType.for_range(lo, hi)
    return QType(rng.bits + (0 if rng.signed else 1), True)


def frozen_channel_sign(sign) -> Optional[np.ndarray]:
    """A frozen per-channel +-1 array, or None when every channel is +1."""
    if sign is None:
        return None
    sign = frozen_int_array(sign)
    return None if np.all(sign == 1) else sign


def compared_bits(value_bits: int, signed: bool) -> int:
    """Width at which a threshold stage compares a value and stores its thresholds: in offset
    binary a signed value keeps its width; an unsigned one gains a bit (thresholds may lie just
    outside its range)."""
    return value_bits + (0 if signed else 1)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class LayerSpec(Protocol):
    """The contract every layer spec meets; `Layer` gives the defaults of a one-in, one-out layer.

    Adding a layer kind: a spec class here (or in merge_specs.py) with these members, its core in
    cores/ registered in `cores.accelerator.CORES`, and its export in `graph.export`.
    """

    name: str
    inputs: int  # input ports (an Add has two)
    outputs: int  # output ports (a Duplicate has one per consumer)
    lanes_follow: Optional[str]  # "consumer"/"producer": lanes set by a neighbour, not folded
    output_type: QType
    in_lanes: int  # elements per beat on every input port
    out_lanes: int  # elements per beat on every output port
    out_elements: int  # per frame, on each output port
    cycles_per_frame: int  # analytic: cycles to take one frame at full rate

    @property
    def fold_dims(self) -> dict[str, int]:
        """Its folding keys and the dimension each must divide; empty: no folding entry."""

    def folded(self, pe, simd) -> "LayerSpec":
        """The same layer with other lanes (FoldingError if illegal)."""

    def port_type(self, port: int) -> QType: ...

    def port_elements(self, port: int) -> int: ...

    def reference(self, *inputs: np.ndarray) -> np.ndarray:
        """Bit-exact numpy model: int frames [n, port_elements(p)] per port -> [n, out_elements]."""

    @property
    def fifo_unit(self) -> int:
        """Input elements the core reads as one unit: the default depth of the FIFO in front."""

    @property
    def held_inputs(self) -> int:
        """Most input elements the core holds while it waits for more input before its next
        output (window rows, an input vector, pipeline beats): the FIFO on a parallel branch
        must cover what a branch holds, or its fork stalls while the merge waits."""

    def report_fields(self) -> dict: ...

    def memories(self) -> dict[str, MemoryShape]:
        """Each memory the core instantiates (weight and threshold ROMs, line buffers, input and
        partial-sum buffers), by the core's name for it: its shape, from which `memory_style`
        and the resource estimates follow."""


@dataclass(frozen=True, eq=False)
class Layer:
    """Defaults of the layer contract (`LayerSpec`) for a one-input, one-output layer.

    `memory_styles` holds the styles a folding file set, as (memory name, style) pairs; every
    other memory takes `graph.memory.auto_style`. `multiplier_style` ("lut", "dsp", or None
    for the build's choice, which leaves "lut") says where a layer that multiplies
    (`products`) puts its products (`graph.multipliers`)."""

    memory_styles: tuple = field(default=(), kw_only=True)
    multiplier_style: Optional[str] = field(default=None, kw_only=True)
    # The clock the core's pipeline registers are placed for (`cores.pipelining`); None: the
    # default build clock.
    clock_mhz: Optional[float] = field(default=None, kw_only=True)
    # FINN's runtime_writeable_weights: the memories in `WRITABLE_MEMORIES` are also written at run
    # time, through the accelerator's weight port (`cores.weight_port`).
    runtime_writeable: bool = field(default=False, kw_only=True)

    # Class attributes, not annotated: a dataclass would make them fields, and a subclass that
    # makes one a field (a Duplicate's `outputs`) would inherit its place before `name`.
    inputs = 1
    outputs = 1
    lanes_follow = None  # Optional[str]
    fold_dims = {}
    REPORTED = ()  # attributes copied into the report as they are
    WRITABLE_MEMORIES = ()  # memories that `runtime_writeable` opens to run-time writes

    def port_type(self, port: int) -> QType:
        return self.input_type

    def port_elements(self, port: int) -> int:
        return self.in_elements

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Spec")

    @property
    def held_inputs(self) -> int:
        return 4 * self.in_lanes  # pipeline registers

    def report_fields(self) -> dict:
        return {key: getattr(self, key) for key in self.REPORTED}

    def memories(self) -> dict[str, MemoryShape]:
        return {}

    @property
    def thresholds_per_channel(self) -> int:
        thresholds = getattr(self, "thresholds", None)
        return 0 if thresholds is None else int(thresholds.shape[1])

    def memory_style(self, name: str) -> str:
        return dict(self.memory_styles).get(name) or auto_style(self.memories()[name])

    def products(self) -> Optional[Products]:
        """The multiplications the core makes per cycle; None for a core that does not multiply."""
        return None

    @property
    def threshold_values(self) -> Optional[np.ndarray]:
        """The thresholds as the threshold ROM holds them (the compared value's domain)."""
        return getattr(self, "thresholds", None)

    threshold_signed = True  # the compared value is signed (its thresholds are stored offset binary)
    negation_constant = 0  # a decreasing channel compares c - value (`channel_sign`)

    def rom_fields(self, name: str) -> Optional[list]:
        """The contents of ROM `name` as the core stores them, as (codes [word, field], bits)
        pairs (`graph.memory.live_columns`, `varying_columns`: what the ROM costs in LUTs or
        block RAM); None if unknown."""
        if name != "thresholds" or self.threshold_values is None:
            return None
        values, lanes = self.threshold_values, self.out_lanes
        sign_bits = self.channel_sign is not None
        levels = values.shape[1]
        width = (self.memories()["thresholds"].width // lanes - sign_bits) // levels
        groups = len(values) // lanes
        offset = 1 << (width - 1) if self.threshold_signed else 0  # offset binary (cores.threshold)
        if sign_bits:
            # A channel that compares its negated value c - v against t stores t' = c - t + 1 and
            # counts the comparisons v >= t' that fail: c - v >= t <=> not v >= c - t + 1. The
            # stored width has a bit to spare beyond the value's (`threshold_memory`), so clamping
            # t' to it keeps every comparison over the value's range.
            lowest = -offset if self.threshold_signed else 0
            flipped = np.clip(self.negation_constant - values + 1, lowest, lowest + (1 << width) - 1)
            values = np.where(np.asarray(self.channel_sign)[:, None] < 0, flipped, values)
        fields = [(((values + offset) & ((1 << width) - 1)).reshape(groups, lanes * levels), width)]
        if sign_bits:
            fields.append(((np.asarray(self.channel_sign) < 0).reshape(groups, lanes), 1))
        return fields

    @property
    def multipliers(self) -> Optional[str]:
        """Where the products go, "lut" or "dsp"; None without products."""
        return None if self.products() is None else self.multiplier_style or "lut"

    @property
    def dsps(self) -> int:
        """DSP48 slices: one per product in the "dsp" style."""
        return self.products().count if self.multipliers == "dsp" else 0

    def with_multiplier_style(self, style: Optional[str]) -> "Layer":
        """The layer with its products in `style` ('auto' or None: the build's choice);
        MultiplierStyleError names the layer when the style does not fit its products."""
        if style is not None:
            style = check_multiplier_style(style, self.products(), f"layer {self.name}")
        return dataclasses.replace(self, multiplier_style=style)

    def with_memory_styles(self, styles: dict[str, str]) -> "Layer":
        """The layer with styles set for some of its memories ('auto': the automatic choice);
        MemoryStyleError names the memory when a style does not fit it."""
        memories = self.memories()
        chosen = dict(self.memory_styles)
        for name, style in styles.items():
            if name not in memories:
                raise KeyError(name)
            chosen[name] = check_style(style, memories[name], f"layer {self.name}: memory {name!r}")
        return dataclasses.replace(self, memory_styles=tuple(sorted(
            (name, style) for name, style in chosen.items() if style)))

    def threshold_memory(self, value_bits: int, lanes: int, signed: bool = True) -> dict[str, MemoryShape]:
        """A threshold ROM, one word per channel group: each lane's thresholds at the compared
        value's width (`compared_bits`), plus a sign bit per lane where some channel compares its
        negated value."""
        if not self.thresholds_per_channel:
            return {}
        negated = self.channel_sign is not None  # a bit to spare for the flipped thresholds, and the sign bit
        per_lane = self.thresholds_per_channel * (compared_bits(value_bits, signed) + negated) + negated
        return {"thresholds": MemoryShape(depth=max(2, len(self.thresholds) // lanes),
                                          width=lanes * per_lane, rom=True)}

    @property
    def stage_budget(self):
        """The logic delay each pipeline stage of the core may hold (`cores.pipelining`)."""
        from ..cores.pipelining import DEFAULT_MHZ, StageBudget

        return StageBudget.at(self.clock_mhz or DEFAULT_MHZ)

    def with_runtime_writeable(self, writeable: bool) -> "Layer":
        """The layer with its weights written at run time (or not); MemoryStyleError names a layer
        that has no memories to write."""
        if writeable and not self.WRITABLE_MEMORIES:
            raise MemoryStyleError(f"layer {self.name}: runtime_writeable_weights needs weights in memory, which "
                                   f"a {self.kind} layer does not have; it applies to MVTU layers")
        return dataclasses.replace(self, runtime_writeable=bool(writeable))

    def writable_memories(self) -> dict[str, MemoryShape]:
        """The memories written at run time, by name (none unless `runtime_writeable`)."""
        if not self.runtime_writeable:
            return {}
        return {name: shape for name, shape in self.memories().items() if name in self.WRITABLE_MEMORIES}

    def with_clock(self, mhz: Optional[float]) -> "Layer":
        return dataclasses.replace(self, clock_mhz=mhz)

    def with_lanes(self, lanes: int):
        """A lane-following layer with the lanes its neighbour chose."""
        raise NotImplementedError(f"{self.kind} sets its own lanes")


@dataclass(frozen=True, eq=False)
class MVTUSpec(Layer):
    """A fully connected layer y = W·x, optionally followed by multi-thresholding.

    ``weights`` is [mh, mw] (output channel, input element). With ``thresholds``
    ([mh, n], ascending per row) the output element is
    ``out_base + count(acc >= thresholds[c])``; without, it is the accumulator.
    ``pe`` output channels and ``simd`` input elements are processed per cycle.
    A convolution runs the same unit on ``vectors`` input vectors (one im2col
    row per output pixel) per frame.
    """

    name: str
    weights: np.ndarray
    input_type: QType
    weight_type: QType
    thresholds: Optional[np.ndarray] = None
    output_type: Optional[QType] = None
    out_base: int = 0
    pe: int = 1
    simd: int = 1
    channel_sign: Optional[np.ndarray] = None  # +-1 per channel: thresholds apply to sign * acc
    vectors: int = 1
    # A convolution's input channels: its window generator delivers SIMD channels of one pixel
    # per beat, so SIMD must divide them (not just MW = K*K*channels).
    conv_channels: Optional[int] = None

    WRITABLE_MEMORIES = ("weights",)

    def __post_init__(self):
        object.__setattr__(self, "weights", frozen_int_array(self.weights))
        if self.vectors < 1:
            raise ValueError(f"{self.name}: vectors per frame must be at least 1")
        if self.channel_sign is not None:
            sign = np.asarray(self.channel_sign)
            if sign.shape != (self.mh,) or not np.all(np.abs(sign) == 1):
                raise ValueError(f"{self.name}: channel_sign must be +-1 per output channel")
            if self.thresholds is None:
                raise ValueError(f"{self.name}: channel_sign only applies to thresholded layers")
            object.__setattr__(self, "channel_sign", frozen_channel_sign(sign))
        if self.weights.ndim != 2:
            raise ValueError(f"{self.name}: weights must be 2-D [mh, mw]")
        if not self.weight_type.contains(self.weights):
            raise ValueError(f"{self.name}: weights do not fit {self.weight_type}")
        if self.thresholds is not None:
            thresholds = frozen_int_array(self.thresholds)
            if thresholds.ndim != 2 or thresholds.shape[0] != self.mh:
                raise ValueError(f"{self.name}: thresholds must be [mh={self.mh}, n]")
            if np.any(np.diff(thresholds, axis=1) < 0):
                raise ValueError(f"{self.name}: thresholds must ascend along each row")
            object.__setattr__(self, "thresholds", thresholds)
            if self.output_type is None:
                raise ValueError(f"{self.name}: a thresholded layer needs an output type")
            levels = thresholds.shape[1]
            if self.output_type.bipolar:
                fits = self.out_base == -1 and levels == 1  # one step, from -1 to +1
            else:
                fits = self.output_type.contains([self.out_base, self.out_base + levels])
            if not fits:
                raise ValueError(f"{self.name}: {levels} thresholds from base {self.out_base}"
                                 f" do not fit {self.output_type}")
        else:
            object.__setattr__(self, "output_type", self.acc_type)
        self.check_folding(self.pe, self.simd)

    # -- shape and folding -------------------------------------------------
    @property
    def mh(self) -> int:
        return self.weights.shape[0]

    @property
    def mw(self) -> int:
        return self.weights.shape[1]

    def check_folding(self, pe: int, simd: int) -> None:
        problems = []
        if pe < 1 or self.mh % pe:
            problems.append(f"PE={pe} must divide MH={self.mh} (legal: {divisors(self.mh)})")
        if self.conv_channels is not None:
            if simd < 1 or self.conv_channels % simd:
                problems.append(f"SIMD={simd} must divide the {self.conv_channels} input channels "
                                f"(legal: {divisors(self.conv_channels)})")
        elif simd < 1 or self.mw % simd:
            problems.append(f"SIMD={simd} must divide MW={self.mw} (legal: {divisors(self.mw)})")
        if problems:
            raise FoldingError(f"layer {self.name}: " + "; ".join(problems))

    def folded(self, pe: int, simd: int) -> "MVTUSpec":
        self.check_folding(pe, simd)
        return dataclasses.replace(self, pe=pe, simd=simd)

    @property
    def neuron_fold(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_fold(self) -> int:
        return self.mw // self.simd

    @property
    def cycles_per_frame(self) -> int:
        return self.vectors * self.neuron_fold * self.synapse_fold

    # -- stream interface (shared by every layer spec) ----------------------
    @property
    def in_elements(self) -> int:
        return self.vectors * self.mw

    @property
    def out_elements(self) -> int:
        return self.vectors * self.mh

    @property
    def in_lanes(self) -> int:
        return self.simd

    @property
    def out_lanes(self) -> int:
        return self.pe

    @property
    def fold_dims(self) -> dict[str, int]:
        return {"PE": self.mh, "SIMD": self.conv_channels or self.mw}

    @property
    def fifo_unit(self) -> int:
        return self.mw  # one input vector

    @property
    def held_inputs(self) -> int:
        # the input vector it reuses per neuron fold, and its pipeline (the dot product's stages
        # past the first are `cores.mvtu.dot_stages`)
        from ..cores.mvtu import dot_stages

        return self.mw + (7 + dot_stages(self)) * self.simd

    def memories(self) -> dict[str, MemoryShape]:
        weights = {"weights": MemoryShape(self.neuron_fold * self.synapse_fold,
                                          self.pe * self.simd * self.weight_type.bits, rom=True,
                                          writable=self.runtime_writeable)}
        buffer = {"input_buffer": MemoryShape(self.synapse_fold, self.simd * self.input_type.bits,
                                              single_port=True)} if self.synapse_fold > 1 else {}
        return {**weights, **self.threshold_memory(self.accumulator[0], self.pe, self.threshold_signed), **buffer}

    @property
    def threshold_values(self) -> Optional[np.ndarray]:
        """Thresholds in the hardware accumulator's domain: an XNOR layer counts agreements
        ``pc``, and ``dot >= T`` <=> ``2*pc - MW >= T`` <=> ``pc >= ceil((T + MW) / 2)``."""
        if self.thresholds is None or not self.binary_xnor:
            return self.thresholds
        return np.clip(-((-(self.thresholds + self.mw)) // 2), 0, self.mw + 1)

    @property
    def threshold_signed(self) -> bool:
        return self.accumulator[1]

    @property
    def negation_constant(self) -> int:
        return self.mw if self.binary_xnor else 0  # an XNOR layer's mismatches are MW - agreements

    def rom_fields(self, name: str) -> Optional[list]:
        if name != "weights":
            return super().rom_fields(name)
        codes = self.weight_type.encode(self.weights).reshape(self.neuron_fold, self.pe, self.synapse_fold, self.simd)
        words = codes.transpose(0, 2, 1, 3).reshape(self.neuron_fold * self.synapse_fold, self.pe * self.simd)
        return [(words, self.weight_type.bits)]

    def products(self) -> Optional[Products]:
        # Bipolar x bipolar is an XNOR-popcount, never a multiplication.
        return None if self.binary_xnor else Products(self.pe * self.simd, self.input_type, self.weight_type)

    def report_fields(self) -> dict:
        return {"MW": self.mw, "MH": self.mh, "PE": self.pe, "SIMD": self.simd, "multipliers": self.multipliers,
                "vectors_per_frame": self.vectors, "weight_type": str(self.weight_type),
                "accumulator_type": str(self.acc_type),
                "mode": "xnor-popcount" if self.binary_xnor else "integer",
                "thresholds_per_channel": self.thresholds_per_channel,
                "weight_bits": int(self.weights.size * self.weight_type.bits)}

    # -- arithmetic ----------------------------------------------------------
    @property
    def accumulator(self) -> tuple[int, bool]:
        """(bits, signed) of the hardware accumulator: an XNOR layer counts agreements
        (unsigned), others accumulate the signed dot product."""
        if self.binary_xnor:
            return (self.mw + 1).bit_length(), False
        return self.acc_type.bits, True

    @property
    def binary_xnor(self) -> bool:
        """Both operands bipolar: the dot product becomes an XNOR-popcount."""
        return self.input_type.bipolar and self.weight_type.bipolar

    @cached_property
    def acc_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-channel bounds of the dot product over all legal inputs; with weights written
        at run time, over all weights of the weight type too (the accumulator must hold any).
        Cached: elaborating and estimating MobileNet-v1 asked 3,621 times (17 s)."""
        w = self.weights
        lo_x, hi_x = self.input_type.min, self.input_type.max
        if self.runtime_writeable:
            t = self.weight_type
            products = [a * b for a in (t.min, t.max) for b in (lo_x, hi_x)]
            return np.full(self.mh, self.mw * min(products)), np.full(self.mh, self.mw * max(products))
        hi = np.where(w > 0, w * hi_x, w * lo_x).sum(axis=1)
        lo = np.where(w > 0, w * lo_x, w * hi_x).sum(axis=1)
        return lo, hi

    @property
    def acc_type(self) -> QType:
        lo, hi = self.acc_range
        return compared_type(lo.min(), hi.max(), self.channel_sign, self.thresholds)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Bit-exact numpy model of the layer: x [n, mw] ints -> [n, mh] ints."""
        n = len(x)
        acc = np.asarray(x, dtype=np.int64).reshape(n * self.vectors, self.mw) @ self.weights.T
        return self._activate(acc).reshape(n, self.vectors * self.mh)

    def _activate(self, acc: np.ndarray) -> np.ndarray:
        if self.thresholds is None:
            return acc
        return apply_thresholds(acc, self.thresholds, self.channel_sign, self.output_type, self.out_base)


def frozen_thresholds(name: str, thresholds, rows: int) -> np.ndarray:
    """Thresholds [rows, n], ascending along each row, as a frozen int array."""
    thresholds = frozen_int_array(thresholds)
    if thresholds.ndim != 2 or thresholds.shape[0] != rows or np.any(np.diff(thresholds, axis=1) < 0):
        raise ValueError(f"{name}: thresholds must be [{rows}, n], ascending along each row")
    return thresholds


def check_channel_simd(name: str, channels: int, simd: int, key: str = "SIMD") -> None:
    if simd < 1 or channels % simd:
        raise FoldingError(f"layer {name}: {key}={simd} must divide the {channels} channels "
                           f"(legal: {divisors(channels)})")


class _ImageRearrangement(Layer):
    """Layers that move the elements of a channels-last image stream without computing on them;
    their SIMD follows the consumer's (see NetworkSpec.with_folding)."""

    lanes_follow = "consumer"
    REPORTED = ("channels", "in_h", "in_w", "simd")

    input_type = property(lambda self: self.dtype)
    output_type = property(lambda self: self.dtype)
    in_lanes = property(lambda self: self.simd)
    out_lanes = property(lambda self: self.simd)

    @property
    def in_elements(self) -> int:
        return self.in_h * self.in_w * self.channels

    @property
    def fifo_unit(self) -> int:
        return self.in_w * self.channels  # one image row

    def with_lanes(self, simd: int):
        return dataclasses.replace(self, simd=simd)


@dataclass(frozen=True, eq=False)
class SlidingWindowSpec(_ImageRearrangement):
    """Convolution windows of an image stream (channels last), in (ky, kx, channel) order.

    ``simd`` channels per beat; it follows the consumer (the conv's MVTU or a pool).
    """

    REPORTED = _ImageRearrangement.REPORTED + ("kernel", "stride")

    name: str
    channels: int
    in_h: int
    in_w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dtype: QType
    simd: int = 1

    def __post_init__(self):
        object.__setattr__(self, "kernel", tuple(int(k) for k in self.kernel))
        object.__setattr__(self, "stride", tuple(int(k) for k in self.stride))
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise ValueError(f"{self.name}: kernel and stride must be positive")
        if self.kernel[0] > self.in_h or self.kernel[1] > self.in_w:
            raise ValueError(f"{self.name}: kernel {self.kernel} is larger than the "
                             f"{self.in_h}x{self.in_w} image")
        check_channel_simd(self.name, self.channels, self.simd)

    @property
    def out_h(self) -> int:
        return (self.in_h - self.kernel[0]) // self.stride[0] + 1

    @property
    def out_w(self) -> int:
        return (self.in_w - self.kernel[1]) // self.stride[1] + 1

    @property
    def window(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def identity(self) -> bool:
        """A 1x1 window at stride 1: every window is one pixel, in the order the pixels arrive."""
        return self.kernel == (1, 1) and self.stride == (1, 1)

    @property
    def line_buffer_rows(self) -> int:
        """Image rows the generator stores: while the windows of one output row are read, the
        rows of the next one (and, in a frame's last row, the next frame's first) are written."""
        return 2 * self.kernel[0] + self.stride[0] - 1

    def memories(self) -> dict[str, MemoryShape]:
        beats = self.line_buffer_rows * self.in_w * self.channels // self.simd
        return {"line_buffer": MemoryShape(beats, self.simd * self.dtype.bits)}

    @property
    def held_inputs(self) -> int:
        # Waiting for the next window, it holds at most the rows of the next output row.
        return (self.kernel[0] + self.stride[0] - 1) * self.in_w * self.channels + 4 * self.simd

    @property
    def out_elements(self) -> int:
        return self.out_h * self.out_w * self.window * self.channels

    @property
    def cycles_per_frame(self) -> int:
        return max(self.out_elements, self.in_elements) // self.simd

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        img = np.asarray(x, dtype=np.int64).reshape(n, self.in_h, self.in_w, self.channels)
        (kh, kw), (sh, sw) = self.kernel, self.stride
        rows = []
        for oy in range(self.out_h):
            for ox in range(self.out_w):
                rows.append(img[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :].reshape(n, -1))
        return np.stack(rows, axis=1).reshape(n, -1)


@dataclass(frozen=True, eq=False)
class PadSpec(_ImageRearrangement):
    """Constant padding of an image stream (channels last); ``value`` is the element value."""

    REPORTED = _ImageRearrangement.REPORTED + ("pads",)

    name: str
    channels: int
    in_h: int
    in_w: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dtype: QType
    value: int = 0
    simd: int = 1

    def __post_init__(self):
        object.__setattr__(self, "pads", tuple(int(p) for p in self.pads))
        if min(self.pads) < 0:
            raise ValueError(f"{self.name}: negative padding {self.pads}")
        if not self.dtype.contains([self.value]):
            raise ValueError(f"{self.name}: pad value {self.value} is not a {self.dtype} value")
        check_channel_simd(self.name, self.channels, self.simd)

    @property
    def out_h(self) -> int:
        return self.in_h + self.pads[0] + self.pads[2]

    @property
    def out_w(self) -> int:
        return self.in_w + self.pads[1] + self.pads[3]

    @property
    def out_elements(self) -> int:
        return self.out_h * self.out_w * self.channels

    @property
    def cycles_per_frame(self) -> int:
        return self.out_elements // self.simd

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        img = np.asarray(x, dtype=np.int64).reshape(n, self.in_h, self.in_w, self.channels)
        t, l, b, r = self.pads
        return np.pad(img, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=self.value).reshape(n, -1)


class ChannelLanes(Layer):
    """Layers that take a beat of channels per cycle: their one folding key (`lane_key`, PE or
    SIMD) counts channels per beat and must divide `channels`."""

    lane_key = "SIMD"
    in_lanes = property(lambda self: getattr(self, self.lane_key.lower()))
    out_lanes = in_lanes

    @property
    def cycles_per_frame(self) -> int:
        return self.in_elements // self.in_lanes

    @property
    def fold_dims(self) -> dict[str, int]:
        return {self.lane_key: self.channels}

    def folded(self, pe, simd=None):
        lanes = pe if self.lane_key == "PE" else simd
        check_channel_simd(self.name, self.channels, lanes, self.lane_key)
        return dataclasses.replace(self, **{self.lane_key.lower(): lanes})


class _WindowReduction(ChannelLanes):
    """Layers that reduce each window of a sliding-window stream to one pixel, a beat of channels
    at a time."""

    REPORTED = ("channels", "window", "out_pixels")

    @property
    def fifo_unit(self) -> int:
        return self.window * self.channels  # one window

    @property
    def held_inputs(self) -> int:
        return self.window * self.channels + 8 * self.in_lanes

    @property
    def in_elements(self) -> int:
        return self.out_pixels * self.window * self.channels

    @property
    def out_elements(self) -> int:
        return self.out_pixels * self.channels


@dataclass(frozen=True, eq=False)
class PoolSpec(_WindowReduction):
    """Reduce each window of ``window`` pixels to one pixel, per channel: max or sum.

    Its input is a sliding-window stream: ``out_pixels`` windows, each
    ``window`` pixels of ``channels`` elements in (pixel, channel) order.
    """

    REPORTED = _WindowReduction.REPORTED + ("op", "simd")

    name: str
    channels: int
    window: int
    out_pixels: int
    op: str
    input_type: QType
    simd: int = 1

    def __post_init__(self):
        if self.op not in ("max", "sum"):
            raise ValueError(f"{self.name}: pool op must be max or sum, not {self.op}")
        check_channel_simd(self.name, self.channels, self.simd)

    @property
    def output_type(self) -> QType:
        if self.op == "max":
            return self.input_type
        lo, hi = self.input_type.min * self.window, self.input_type.max * self.window
        return QType.for_range(lo, hi)

    def memories(self) -> dict[str, MemoryShape]:
        # Read and written in the same cycle (read-modify-write), so read asynchronously.
        return {"partial_results": MemoryShape(max(2, self.channels // self.simd), self.simd * self.output_type.bits,
                                               sync_read=False, single_port=True)}

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        windows = np.asarray(x, dtype=np.int64).reshape(n, self.out_pixels, self.window, self.channels)
        reduced = windows.max(axis=2) if self.op == "max" else windows.sum(axis=2)
        return reduced.reshape(n, -1)


class PixelStream(ChannelLanes):
    """Layers on a stream of `pixels` pixels of `channels` elements each, element-wise
    (thresholding, add, duplicate)."""

    lane_key = "PE"

    @property
    def in_elements(self) -> int:
        return self.pixels * self.channels

    out_elements = in_elements

    @property
    def fifo_unit(self) -> int:
        return self.channels  # one pixel


@dataclass(frozen=True, eq=False)
class ThresholdSpec(PixelStream):
    """Standalone multi-thresholding of a channels-last stream (e.g. after a quantized average
    pool): element of channel c -> ``out_base + count(sign[c] * x >= thresholds[c])``."""

    name: str
    channels: int
    pixels: int
    input_type: QType
    thresholds: np.ndarray
    output_type: QType
    out_base: int = 0
    channel_sign: Optional[np.ndarray] = None
    pe: int = 1

    def __post_init__(self):
        object.__setattr__(self, "thresholds", frozen_thresholds(self.name, self.thresholds, self.channels))
        object.__setattr__(self, "channel_sign", frozen_channel_sign(self.channel_sign))
        check_channel_simd(self.name, self.channels, self.pe, "PE")

    REPORTED = ("channels", "pixels", "pe")

    simd = property(lambda self: self.pe)
    factors = (1,)  # the core computes sum(factor * input) before thresholding (see AddSpec)

    @property
    def input_types(self) -> tuple:
        return (self.input_type,)

    @property
    def value_type(self) -> QType:
        """The compared value: the input, or its negation on decreasing channels."""
        return compared_type(self.input_type.min, self.input_type.max, self.channel_sign, self.thresholds)

    def memories(self) -> dict[str, MemoryShape]:
        return self.threshold_memory(self.value_type.bits, self.pe)

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        values = np.asarray(x, dtype=np.int64).reshape(n, self.pixels, self.channels)
        return apply_thresholds(values, self.thresholds, self.channel_sign, self.output_type,
                                self.out_base).reshape(n, -1)


@dataclass(frozen=True, eq=False)
class VectorUnitSpec(_WindowReduction):
    """Depthwise convolution on a sliding-window stream: channel c of each output pixel is
    ``sum_k weights[c, k] * window[k, c]``, optionally thresholded like an MVTU.

    ``pe`` channels per beat, one kernel position per beat (the window generator's order).
    """

    lane_key = "PE"
    REPORTED = _WindowReduction.REPORTED + ("pe",)

    name: str
    weights: np.ndarray  # [channels, window]
    out_pixels: int
    input_type: QType
    weight_type: QType
    thresholds: Optional[np.ndarray] = None
    output_type: Optional[QType] = None
    out_base: int = 0
    channel_sign: Optional[np.ndarray] = None
    pe: int = 1

    def __post_init__(self):
        object.__setattr__(self, "weights", frozen_int_array(self.weights))
        if self.weights.ndim != 2 or not self.weight_type.contains(self.weights):
            raise ValueError(f"{self.name}: weights must be [channels, window] of {self.weight_type}")
        object.__setattr__(self, "channel_sign", frozen_channel_sign(self.channel_sign))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", frozen_thresholds(self.name, self.thresholds, self.channels))
        else:
            object.__setattr__(self, "output_type", self.acc_type)
        check_channel_simd(self.name, self.channels, self.pe, "PE")

    channels = property(lambda self: self.weights.shape[0])
    window = property(lambda self: self.weights.shape[1])
    simd = property(lambda self: self.pe)

    def products(self) -> Optional[Products]:
        return Products(self.pe, self.input_type, self.weight_type)

    def rom_fields(self, name: str) -> Optional[list]:
        if name != "weights":
            return super().rom_fields(name)
        groups = self.channels // self.pe
        codes = self.weight_type.encode(self.weights)  # [channels, window]; word k*groups + g
        words = codes.reshape(groups, self.pe, self.window).transpose(2, 0, 1).reshape(self.window * groups, self.pe)
        return [(words, self.weight_type.bits)]

    def report_fields(self) -> dict:
        return {**super().report_fields(), "multipliers": self.multipliers}

    def memories(self) -> dict[str, MemoryShape]:
        groups = self.channels // self.pe
        # The weights and partial sums are read in the cycle they are addressed (asynchronously).
        return {"weights": MemoryShape(max(2, self.window * groups), self.pe * self.weight_type.bits,
                                       rom=True, sync_read=False),
                "partial_sums": MemoryShape(max(2, groups), self.pe * self.acc_type.bits, sync_read=False,
                                            single_port=True),
                **self.threshold_memory(self.acc_type.bits, self.pe)}

    @property
    def acc_type(self) -> QType:
        """Fits every channel's sum, its negation on decreasing channels, and the thresholds."""
        lo, hi = MVTUSpec("acc", self.weights, self.input_type, self.weight_type).acc_range
        return compared_type(lo.min(), hi.max(), self.channel_sign, self.thresholds)

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        windows = np.asarray(x, dtype=np.int64).reshape(n, self.out_pixels, self.window, self.channels)
        acc = np.einsum("npkc,ck->npc", windows, self.weights)
        if self.thresholds is not None:
            acc = apply_thresholds(acc, self.thresholds, self.channel_sign, self.output_type, self.out_base)
        return acc.reshape(n, -1)
