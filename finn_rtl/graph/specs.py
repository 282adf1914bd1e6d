"""Layer specifications: everything a core needs, nothing from ONNX.

Specs are immutable. Arrays inside them are made read-only on construction, so
a spec can be shared between the graph side, the cores and the reports.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from .datatypes import QType


class FoldingError(ValueError):
    """A PE/SIMD choice that does not divide the layer."""


def _frozen_int_array(values) -> np.ndarray:
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


def _channel_sign(sign) -> Optional[np.ndarray]:
    """A frozen per-channel +-1 array, or None when every channel is +1."""
    if sign is None:
        return None
    sign = _frozen_int_array(sign)
    return None if np.all(sign == 1) else sign


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, eq=False)
class MVTUSpec:
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

    def __post_init__(self):
        object.__setattr__(self, "weights", _frozen_int_array(self.weights))
        if self.vectors < 1:
            raise ValueError(f"{self.name}: vectors per frame must be at least 1")
        if self.channel_sign is not None:
            sign = np.asarray(self.channel_sign)
            if sign.shape != (self.mh,) or not np.all(np.abs(sign) == 1):
                raise ValueError(f"{self.name}: channel_sign must be +-1 per output channel")
            if self.thresholds is None:
                raise ValueError(f"{self.name}: channel_sign only applies to thresholded layers")
            object.__setattr__(self, "channel_sign", _channel_sign(sign))
        if self.weights.ndim != 2:
            raise ValueError(f"{self.name}: weights must be 2-D [mh, mw]")
        if not self.weight_type.contains(self.weights):
            raise ValueError(f"{self.name}: weights do not fit {self.weight_type}")
        if self.thresholds is not None:
            thresholds = _frozen_int_array(self.thresholds)
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

    # -- arithmetic ----------------------------------------------------------
    @property
    def binary_xnor(self) -> bool:
        """Both operands bipolar: the dot product becomes an XNOR-popcount."""
        return self.input_type.bipolar and self.weight_type.bipolar

    @property
    def acc_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-channel bounds of the dot product over all legal inputs."""
        w = self.weights
        lo_x, hi_x = self.input_type.min, self.input_type.max
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


def _check_channel_simd(name: str, channels: int, simd: int) -> None:
    if simd < 1 or channels % simd:
        raise FoldingError(f"layer {name}: SIMD={simd} must divide the {channels} channels "
                           f"(legal: {divisors(channels)})")


class _ImageRearrangement:
    """Layers that move the elements of a channels-last image stream without computing on them;
    their SIMD follows the consumer's (see NetworkSpec.with_folding)."""

    input_type = property(lambda self: self.dtype)
    output_type = property(lambda self: self.dtype)
    in_lanes = property(lambda self: self.simd)
    out_lanes = property(lambda self: self.simd)

    @property
    def in_elements(self) -> int:
        return self.in_h * self.in_w * self.channels

    def with_lanes(self, simd: int):
        return dataclasses.replace(self, simd=simd)


@dataclass(frozen=True, eq=False)
class SlidingWindowSpec(_ImageRearrangement):
    """Convolution windows of an image stream (channels last), in (ky, kx, channel) order.

    ``simd`` channels per beat; it follows the consumer (the conv's MVTU or a pool).
    """

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
        _check_channel_simd(self.name, self.channels, self.simd)

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
        _check_channel_simd(self.name, self.channels, self.simd)

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


class _WindowReduction:
    """Layers that reduce each window of a sliding-window stream to one pixel, a beat of channels
    at a time: their one folding key (`lane_key`) counts channels per beat."""

    lane_key = "SIMD"
    in_lanes = property(lambda self: getattr(self, self.lane_key.lower()))
    out_lanes = in_lanes

    @property
    def in_elements(self) -> int:
        return self.out_pixels * self.window * self.channels

    @property
    def out_elements(self) -> int:
        return self.out_pixels * self.channels

    @property
    def cycles_per_frame(self) -> int:
        return self.in_elements // self.in_lanes

    @property
    def fold_dims(self) -> dict[str, int]:
        return {self.lane_key: self.channels}

    def folded(self, pe, simd):
        lanes = pe if self.lane_key == "PE" else simd
        _check_channel_simd(self.name, self.channels, lanes)
        return dataclasses.replace(self, **{self.lane_key.lower(): lanes})


@dataclass(frozen=True, eq=False)
class PoolSpec(_WindowReduction):
    """Reduce each window of ``window`` pixels to one pixel, per channel: max or sum.

    Its input is a sliding-window stream: ``out_pixels`` windows, each
    ``window`` pixels of ``channels`` elements in (pixel, channel) order.
    """

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
        _check_channel_simd(self.name, self.channels, self.simd)

    @property
    def output_type(self) -> QType:
        if self.op == "max":
            return self.input_type
        lo, hi = self.input_type.min * self.window, self.input_type.max * self.window
        return QType.for_range(lo, hi)

    def reference(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        windows = np.asarray(x, dtype=np.int64).reshape(n, self.out_pixels, self.window, self.channels)
        reduced = windows.max(axis=2) if self.op == "max" else windows.sum(axis=2)
        return reduced.reshape(n, -1)


@dataclass(frozen=True, eq=False)
class ThresholdSpec:
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
        thresholds = _frozen_int_array(self.thresholds)
        if thresholds.ndim != 2 or thresholds.shape[0] != self.channels or np.any(np.diff(thresholds, axis=1) < 0):
            raise ValueError(f"{self.name}: thresholds must be [channels={self.channels}, n], ascending")
        object.__setattr__(self, "thresholds", thresholds)
        object.__setattr__(self, "channel_sign", _channel_sign(self.channel_sign))
        _check_channel_simd(self.name, self.channels, self.pe)

    @property
    def simd(self) -> int:
        return self.pe

    in_lanes = property(lambda self: self.pe)
    out_lanes = property(lambda self: self.pe)

    @property
    def in_elements(self) -> int:
        return self.pixels * self.channels

    out_elements = in_elements

    @property
    def cycles_per_frame(self) -> int:
        return self.in_elements // self.pe

    @property
    def fold_dims(self) -> dict[str, int]:
        return {"PE": self.channels}

    @property
    def value_type(self) -> QType:
        """The compared value: the input, or its negation on decreasing channels."""
        return compared_type(self.input_type.min, self.input_type.max, self.channel_sign, self.thresholds)

    def folded(self, pe: int, simd=None) -> "ThresholdSpec":
        _check_channel_simd(self.name, self.channels, pe)
        return dataclasses.replace(self, pe=pe)

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
        object.__setattr__(self, "weights", _frozen_int_array(self.weights))
        if self.weights.ndim != 2 or not self.weight_type.contains(self.weights):
            raise ValueError(f"{self.name}: weights must be [channels, window] of {self.weight_type}")
        object.__setattr__(self, "channel_sign", _channel_sign(self.channel_sign))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", _frozen_int_array(self.thresholds))
        else:
            object.__setattr__(self, "output_type", self.acc_type)
        _check_channel_simd(self.name, self.channels, self.pe)

    channels = property(lambda self: self.weights.shape[0])
    window = property(lambda self: self.weights.shape[1])
    simd = property(lambda self: self.pe)

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


@dataclass(frozen=True, eq=False)
class OutputSpec:
    """How the host turns the last layer's integers into the model's output.

    ``model output = scale * y + offset`` per channel (arrays broadcast over the
    last axis). With ``label_select`` the accelerator returns the top-1 index;
    with ``host_argmax`` the host takes the argmax of that affine.
    """

    scale: np.ndarray
    offset: np.ndarray
    label_select: bool = False
    host_argmax: bool = False  # the model's output is argmax(scale * y + offset), taken on the host
    head: Optional[str] = None  # Softmax/LogSoftmax/Sigmoid applied on the host after the affine
    head_node: Optional[str] = None  # that op's name in the user's model (its input is compared)

    def __post_init__(self):
        for name in ("scale", "offset"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def apply(self, y: np.ndarray) -> np.ndarray:
        """The model's output for the accelerator's integers (label select: the index itself)."""
        if self.label_select:
            return np.asarray(y)
        values = np.asarray(y, dtype=np.float64) * self.scale + self.offset
        if self.host_argmax:
            return values.argmax(axis=-1)[..., None]
        from .heads import apply_head

        return apply_head(self.head, values)


LayerSpec = Union[MVTUSpec, SlidingWindowSpec, PadSpec, PoolSpec, ThresholdSpec, VectorUnitSpec]


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """A chain of stream layers from the integer input stream to the output stream.

    Elements travel in hardware order: images channels last, (row, column,
    channel). ``input_order``/``output_order`` say where the model's own
    (flattened, e.g. NCHW) elements sit in that order: stream element ``i`` is
    model element ``order[i]``; None means the same order.
    """

    name: str
    layers: tuple
    input_type: QType
    output: OutputSpec
    # Beats of the FIFO in front of each layer after the first; None: the default sizing.
    fifo_depths: Optional[tuple] = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    input_order: Optional[np.ndarray] = None
    output_order: Optional[np.ndarray] = None

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for name in ("input_order", "output_order"):
            order = getattr(self, name)
            if order is not None:
                order = _frozen_int_array(order)
                object.__setattr__(self, name, None if np.array_equal(order, np.arange(len(order))) else order)
        if not self.layers:
            raise ValueError(f"{self.name}: a network needs at least one layer")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if prev.out_elements != nxt.in_elements or prev.output_type != nxt.input_type:
                raise ValueError(f"layer {prev.name} ({prev.out_elements} x {prev.output_type}) does not "
                                 f"feed layer {nxt.name} ({nxt.in_elements} x {nxt.input_type})")
        if self.fifo_depths is not None:
            object.__setattr__(self, "fifo_depths", tuple(int(d) for d in self.fifo_depths))
            if len(self.fifo_depths) != len(self.layers) - 1 or min(self.fifo_depths, default=2) < 2:
                raise ValueError(f"{self.name}: need {len(self.layers) - 1} FIFO depths of at least 2")
        if self.layers[0].input_type != self.input_type:
            raise ValueError("network input type does not match the first layer")
        if self.output.label_select and not (isinstance(self.layers[-1], MVTUSpec) and self.layers[-1].vectors == 1):
            raise ValueError("label select needs a fully connected last layer")

    @property
    def in_elements(self) -> int:
        return self.layers[0].in_elements

    @property
    def out_elements(self) -> int:
        return 1 if self.output.label_select else self.layers[-1].out_elements

    @property
    def output_type(self) -> QType:
        if self.output.label_select:
            return QType.for_range(0, max(1, self.layers[-1].out_elements - 1))
        return self.layers[-1].output_type

    @property
    def foldable(self) -> tuple:
        """Layers with their own folding entry (window generators and padding follow their consumer)."""
        return tuple(layer for layer in self.layers if hasattr(layer, "fold_dims"))

    @property
    def folding(self) -> dict[str, dict[str, int]]:
        return {layer.name: {key: getattr(layer, key.lower()) for key in layer.fold_dims}
                for layer in self.foldable}

    def with_folding(self, folding: dict[str, dict[str, int]]) -> "NetworkSpec":
        names = {layer.name for layer in self.foldable}
        unknown = sorted(set(folding) - names)
        if unknown:
            raise FoldingError(f"folding names unknown layers {unknown}; layers are {sorted(names)}")
        layers = []
        for layer in self.layers:
            if hasattr(layer, "fold_dims"):
                entry = folding.get(layer.name, {})
                extra = sorted(set(entry) - set(layer.fold_dims))
                if extra:
                    raise FoldingError(f"layer {layer.name}: unknown folding keys {extra} "
                                       f"(use {', '.join(layer.fold_dims)})")
                layer = layer.folded(int(entry.get("PE", getattr(layer, "pe", 1))),
                                     int(entry.get("SIMD", layer.simd)))
            layers.append(layer)
        # Window generators and padding deliver whole channel groups at their consumer's SIMD.
        for i in range(len(layers) - 2, -1, -1):
            if hasattr(layers[i], "with_lanes"):
                layers[i] = layers[i].with_lanes(layers[i + 1].in_lanes)
        return dataclasses.replace(self, layers=tuple(layers))

    @property
    def analytic_ii(self) -> int:
        return max(layer.cycles_per_frame for layer in self.layers)

    def to_stream(self, x: np.ndarray) -> np.ndarray:
        """Model-order input elements [n, in] -> stream order."""
        x = np.asarray(x).reshape(len(x), -1)
        return x if self.input_order is None else x[:, self.input_order]

    def from_stream(self, y: np.ndarray) -> np.ndarray:
        """Stream-order output elements [n, out] -> model order."""
        y = np.asarray(y).reshape(len(y), -1)
        if self.output_order is None or self.output.label_select:
            return y
        out = np.empty_like(y)
        out[:, self.output_order] = y
        return out

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Bit-exact numpy model of the whole accelerator: stream-order x [n, in] -> [n, out]."""
        y = np.asarray(x, dtype=np.int64)
        for layer in self.layers:
            y = layer.reference(y)
        if self.output.label_select:
            return y.argmax(axis=1)[:, None]
        return y
