"""Layer specifications: everything a core needs, nothing from ONNX.

Specs are immutable. Arrays inside them are made read-only on construction, so
a spec can be shared between the graph side, the cores and the reports.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .datatypes import QType


class FoldingError(ValueError):
    """A PE/SIMD choice that does not divide the layer."""


def _frozen_int_array(values) -> np.ndarray:
    array = np.array(values, dtype=np.int64)
    array.flags.writeable = False
    return array


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, eq=False)
class MVTUSpec:
    """A fully connected layer y = W·x, optionally followed by multi-thresholding.

    ``weights`` is [mh, mw] (output channel, input element). With ``thresholds``
    ([mh, n], ascending per row) the output element is
    ``out_base + count(acc >= thresholds[c])``; without, it is the accumulator.
    ``pe`` output channels and ``simd`` input elements are processed per cycle.
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

    def __post_init__(self):
        object.__setattr__(self, "weights", _frozen_int_array(self.weights))
        if self.channel_sign is not None:
            sign = _frozen_int_array(self.channel_sign)
            if sign.shape != (self.mh,) or not np.all(np.abs(sign) == 1):
                raise ValueError(f"{self.name}: channel_sign must be +-1 per output channel")
            if self.thresholds is None:
                raise ValueError(f"{self.name}: channel_sign only applies to thresholded layers")
            object.__setattr__(self, "channel_sign", None if np.all(sign == 1) else sign)
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
        if simd < 1 or self.mw % simd:
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
        return self.neuron_fold * self.synapse_fold

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
    def signs(self) -> np.ndarray:
        return np.ones(self.mh, dtype=np.int64) if self.channel_sign is None else self.channel_sign

    @property
    def acc_type(self) -> QType:
        lo, hi = self.acc_range
        lo_all, hi_all = int(lo.min()), int(hi.max())
        if self.channel_sign is not None:  # the negated accumulator must fit too
            lo_all, hi_all = min(lo_all, -hi_all), max(hi_all, -lo_all)
        if self.thresholds is not None:
            lo_all = min(lo_all, int(self.thresholds.min()))
            hi_all = max(hi_all, int(self.thresholds.max()))
        rng = QType.for_range(lo_all, hi_all)
        return QType(rng.bits + (0 if rng.signed else 1), True)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Bit-exact numpy model of the layer: x [n, mw] ints -> [n, mh] ints."""
        acc = np.asarray(x, dtype=np.int64) @ self.weights.T
        if self.thresholds is None:
            return acc
        compared = acc * self.signs[None, :]
        counts = (compared[:, :, None] >= self.thresholds[None, :, :]).sum(axis=2)
        out = self.out_base + counts
        if self.output_type.bipolar:
            out = np.where(counts > 0, 1, -1)
        return out


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
        return values.argmax(axis=-1)[..., None] if self.host_argmax else values


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """A chain of layers from the integer input stream to the output stream."""

    name: str
    layers: tuple[MVTUSpec, ...]
    input_type: QType
    output: OutputSpec
    fifo_depth: Optional[int] = None  # beats between layers; None: one producer frame
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError(f"{self.name}: a network needs at least one layer")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if prev.mh != nxt.mw or prev.output_type != nxt.input_type:
                raise ValueError(f"layer {prev.name} ({prev.mh} x {prev.output_type}) does not feed "
                                 f"layer {nxt.name} ({nxt.mw} x {nxt.input_type})")
        if self.layers[0].input_type != self.input_type:
            raise ValueError("network input type does not match the first layer")

    @property
    def in_elements(self) -> int:
        return self.layers[0].mw

    @property
    def out_elements(self) -> int:
        return 1 if self.output.label_select else self.layers[-1].mh

    @property
    def output_type(self) -> QType:
        if self.output.label_select:
            return QType.for_range(0, max(1, self.layers[-1].mh - 1))
        return self.layers[-1].output_type

    @property
    def folding(self) -> dict[str, dict[str, int]]:
        return {layer.name: {"PE": layer.pe, "SIMD": layer.simd} for layer in self.layers}

    def with_folding(self, folding: dict[str, dict[str, int]]) -> "NetworkSpec":
        names = {layer.name for layer in self.layers}
        unknown = sorted(set(folding) - names)
        if unknown:
            raise FoldingError(f"folding names unknown layers {unknown}; layers are {sorted(names)}")
        layers = []
        for layer in self.layers:
            entry = folding.get(layer.name, {})
            extra = sorted(set(entry) - {"PE", "SIMD"})
            if extra:
                raise FoldingError(f"layer {layer.name}: unknown folding keys {extra} (use PE, SIMD)")
            layers.append(layer.folded(int(entry.get("PE", layer.pe)), int(entry.get("SIMD", layer.simd))))
        return dataclasses.replace(self, layers=tuple(layers))

    @property
    def analytic_ii(self) -> int:
        return max(layer.cycles_per_frame for layer in self.layers)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Bit-exact numpy model of the whole accelerator: x [n, in] -> [n, out]."""
        y = np.asarray(x, dtype=np.int64)
        for layer in self.layers:
            y = layer.reference(y)
        if self.output.label_select:
            return y.argmax(axis=1)[:, None]
        return y
