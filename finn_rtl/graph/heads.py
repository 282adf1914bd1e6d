"""Float ops after the last quantized layer that run on the host: Softmax, LogSoftmax, Sigmoid
over the class axis (the "head"), and TopK with k = 1, which is an ArgMax.

All three heads rise with every input, so an ArgMax or TopK after one picks the same class as
without it: label select then ignores the head.
"""
from __future__ import annotations

import numpy as np

from .ingest import node_attributes


HEADS = ("Softmax", "LogSoftmax", "Sigmoid")


def apply_head(head: str | None, values: np.ndarray) -> np.ndarray:
    """The head on float64 class scores [..., classes]. The board-side driver must not import
    finn_rtl, so this is the driver's own function: one implementation for host and board."""
    from ..platforms.driver import apply_head as driver_head

    return driver_head(head, values)


def head_problem(node, shape, opset: int) -> str | None:
    """Why `node` cannot be a host-side head (None if it can): it must act on the class axis of
    a [1, classes] tensor."""
    if shape is None or len(shape) != 2:
        return (f"{node.op_type} on a tensor of shape {shape}: a host-side head needs a flat [1, classes] "
                "output; flatten before it")
    axis = node_attributes(node).get("axis", -1 if opset >= 13 else 1)
    if node.op_type != "Sigmoid" and axis not in (1, -1):
        return f"{node.op_type} over axis {axis}: only the class axis (1 or -1) is supported"
    return None


def topk_problem(node, k, shape) -> str | None:
    """Why `node` is not label select (None if it is): TopK must be an ArgMax, k = 1, largest,
    over the class axis."""
    attrs = node_attributes(node)
    if k is None or np.asarray(k).size != 1 or int(np.asarray(k).reshape(-1)[0]) != 1:
        return "TopK with k other than a constant 1 is not supported: use k = 1 (label select) or take the " \
               "top k on the host"
    if attrs.get("largest", 1) != 1 or attrs.get("axis", -1) not in (1, -1) or shape is None or len(shape) != 2:
        return "TopK must pick the largest value over the class axis of a [1, classes] tensor"
    return None
