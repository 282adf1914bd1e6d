"""Integer thresholds for the float ops between a layer and its activation quantizer.

The chain (bias, BatchNorm, Mul/Add, Relu, the quantizer) is evaluated with qonnx, exactly as
the golden model does, on candidate accumulator values; a binary search per channel and output
level finds the thresholds, and a check on both sides of every threshold proves the step
function matches.
"""
from __future__ import annotations

import numpy as np

from .datatypes import QType
from .layout import StreamLayout
from .onnx_graph import GraphView, node_error
from .quantizers import MAX_BITS, output_scale
from .specs import MVTUSpec, apply_thresholds
from .walk_state import Pending


class ThresholdSearch:
    def __init__(self, graph: GraphView, layout: StreamLayout):
        self.g = graph
        self.layout = layout

    def chain_quant(self, pending: Pending, quant, acc: np.ndarray) -> np.ndarray:
        """Integer quantizer output for accumulator values acc [rows, mh] (ints)."""
        values = acc * pending.acc_scale + pending.acc_offset
        rows, channels = values.shape
        values = values.reshape(self.feed_shape(pending, rows, channels))
        return self.quantizer_levels(pending.chain + [quant], {pending.matmul_output: values}, quant, rows, channels)

    def quantizer_levels(self, nodes, feeds, quant, rows: int, channels: int) -> np.ndarray:
        """Run `nodes` on `feeds` with qonnx; the integer levels of `quant`'s output [rows, channels]."""
        real = np.asarray(self.g.run_nodes(nodes, feeds, quant.output[0]), dtype=np.float64).reshape(rows, channels)
        scale = self.layout.channel_vector(quant, output_scale(self.g, quant), channels)
        return np.round(real / scale).astype(np.int64)

    def trunc_params(self, node, pending):
        """Scale, type and integer range of a Trunc output, from the accumulator's bounds."""
        for index in range(1, len(node.input)):
            self.g.const_input(node, index)
        if np.any(self.g.const_input(node, 2) != 0):
            raise node_error("Trunc with a non-zero zero point is not supported", node)
        lo, hi = self.acc_bounds(pending)
        ends = self.chain_quant(pending, node, np.stack([lo, hi]))
        qmin, qmax = int(ends.min()), int(ends.max())
        out_type = QType.for_range(qmin, qmax)
        if out_type.bits > MAX_BITS:
            raise node_error(f"Trunc output needs {out_type.bits} bits; finn-rtl supports up to {MAX_BITS}", node)
        return output_scale(self.g, node), out_type, qmin, qmax

    def find_thresholds(self, pending: Pending, quant, out_type, qmin, qmax) -> np.ndarray:
        """Per-channel integer thresholds by binary search on the exact qonnx evaluation."""
        mh = len(pending.acc_scale)
        lo, hi = self.acc_bounds(pending)
        q_lo = self.chain_quant(pending, quant, lo[None, :])[0]
        q_hi = self.chain_quant(pending, quant, hi[None, :])[0]
        decreasing = q_lo > q_hi
        if np.any(decreasing):
            # Those channels compare the negated accumulator, so that every channel's activation
            # rises with what is compared (negating the weights instead could widen them a bit).
            pending.sign = np.where(decreasing, -1, 1)
            pending.acc_scale = pending.acc_scale * pending.sign
            lo, hi = self.acc_bounds(pending)
        # A bipolar output has one step, from -1 straight to +1.
        levels = np.array([1]) if out_type.bipolar else np.arange(qmin + 1, qmax + 1)
        n = len(levels)
        low = np.broadcast_to(lo - 1, (n, mh)).copy()   # largest acc known below the level
        high = np.broadcast_to(hi + 1, (n, mh)).copy()  # smallest acc known at or above it
        start = self.chain_quant(pending, quant, np.broadcast_to(lo, (1, mh)))[0]
        reached = start[None, :] >= levels[:, None]
        high[reached] = lo[np.nonzero(reached)[1]]
        while np.any(high - low > 1):
            mid = (low + high) // 2
            q = self.chain_quant(pending, quant, mid)
            above = q >= levels[:, None]
            active = high - low > 1
            high = np.where(active & above, mid, high)
            low = np.where(active & ~above, mid, low)
        thresholds = high.T  # [mh, n]
        self.check_steps(pending, quant, thresholds, lo, hi, out_type, qmin)
        if pending.operands:
            self.check_add_pairs(pending, quant, thresholds, out_type, qmin)
        return thresholds

    def acc_bounds(self, pending):
        """Bounds of the compared value: the accumulator, negated on decreasing channels."""
        sign = np.ones(len(pending.acc_scale), dtype=np.int64) if pending.sign is None else pending.sign
        if pending.operands:  # a residual add: the weighted sum of both inputs' ranges
            lo = sum(o.factor * o.qtype.min for o in pending.operands)
            hi = sum(o.factor * o.qtype.max for o in pending.operands)
            return np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)
        if pending.sum_window:
            # The sums of `sum_window` elements (input_type is the sum's type, a power-of-two
            # range that overstates what a window can add up to).
            lo = pending.sum_window * pending.element_type.min
            hi = pending.sum_window * pending.element_type.max
            return np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)
        weights = pending.weights * sign[:, None]
        spec = MVTUSpec("bounds", weights, pending.input_type, QType.for_range(weights.min(), weights.max()))
        return spec.acc_range

    def check_add_pairs(self, pending, quant, thresholds, out_type, qmin):
        """Prove a residual Add exact: the golden model adds two float32 tensors, which may round
        differently from the integer sum the thresholds see. Every pair of input integers, on
        every channel, runs through the model's own ops (from both quantizers' outputs through
        the Add, its chain and the activation) and must give the thresholds' answer."""
        a, b = pending.operands
        grids = np.meshgrid(a.qtype.values(), b.qtype.values(), indexing="ij")
        qa, qb = (g.reshape(-1).astype(np.int64) for g in grids)
        rows, channels = len(qa), len(pending.acc_scale)
        shape = self.feed_shape(pending, rows, channels)
        feeds = {operand.origin: (np.float32(q)[:, None] * operand.scale.astype(np.float32)[None, :]).reshape(shape)
                 for operand, q in ((a, qa), (b, qb))}
        nodes = list(a.path) + list(b.path) + [pending.merge_node] + pending.chain + [quant]
        golden = self.quantizer_levels(nodes, feeds, quant, rows, channels)
        sums = np.broadcast_to((a.factor * qa + b.factor * qb)[:, None], (rows, channels))
        expect = apply_thresholds(sums, thresholds, pending.sign, out_type, qmin)
        bad = np.argwhere(golden != expect)
        if len(bad):
            row, channel = bad[0]
            raise node_error(f"the float Add of inputs {int(qa[row])} x {a.quantizer} and {int(qb[row])} x "
                             f"{b.quantizer} (channel {int(channel)}) rounds to another activation level than "
                             "their exact sum; share one quantizer for both inputs so the sum is exact",
                             pending.merge_node)

    def feed_shape(self, pending: Pending, rows: int, channels: int) -> tuple:
        ones = [1] * (pending.rank - 2)
        if pending.matmul_output in self.layout.channels_last:  # a lowered convolution's [1, H, W, C]
            return (rows, *ones, channels)
        return (rows, channels, *ones)

    def check_steps(self, pending, quant, thresholds, lo, hi, out_type, qmin):
        probes = np.concatenate([thresholds - 1, thresholds, lo[:, None], hi[:, None]], axis=1)
        probes = np.clip(probes, lo[:, None], hi[:, None]).T  # [rows, mh]
        q = self.chain_quant(pending, quant, probes)
        expect = apply_thresholds(probes, thresholds, None, out_type, qmin)  # probes are compared values
        bad = np.nonzero(q != expect)
        if len(bad[0]):
            channel = int(bad[1][0])
            raise node_error(f"the activation of channel {channel} is not a monotonic step function "
                             "of the accumulator, so it cannot be expressed as thresholds", quant)
