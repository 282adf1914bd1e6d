"""Quantizer parameters and integer weights, read from a cleaned qonnx graph.

Activation quantizers (Quant, BipolarQuant, FINN's MultiThreshold) give a scale, an integer
type and the integer range of their output; weights are integers (through a Quant, or
annotated with a qonnx datatype in the FINN-ONNX dialect) with per-output-channel scales.
"""
from __future__ import annotations

import numpy as np

from .datatypes import QType
from .ingest import node_attributes
from .onnx_graph import GraphView, node_error

MAX_BITS = 8


def annotated_weights(g: GraphView, node, tensor, out_axis: int):
    """FINN-ONNX dialect: float weights with an integer qonnx datatype annotation (no Quant)."""
    dtype = g.w.get_tensor_datatype(tensor)
    if not dtype.is_integer():
        raise node_error("MatMul weights are float (no Quant/BipolarQuant on them and no integer "
                         "datatype annotation); quantize the weights to 1-8 bits in Brevitas/QKeras", node)
    values = np.asarray(g.init(tensor), dtype=np.float64)
    qtype = QType.bipolar_type() if dtype.name == "BIPOLAR" else \
        QType.for_range(int(dtype.min()), int(dtype.max()))
    if not np.all(values == np.round(values)) or not qtype.contains(values.astype(np.int64)):
        raise node_error(f"its weights are annotated {dtype.name} but hold values outside it "
                         f"(from {values.min():g} to {values.max():g})", node)
    if qtype.bits > MAX_BITS:
        raise node_error(f"its weights are annotated {dtype.name}, wider than {MAX_BITS} bits", node)
    ints = values.astype(np.int64)
    if not qtype.bipolar:
        qtype = QType.for_range(min(ints.min(), qtype.min), max(ints.max(), qtype.max))
    return ints, qtype, np.ones(ints.shape[out_axis])


def multithreshold_params(g: GraphView, node):
    """(scale, qtype, qmin, qmax) of a FINN MultiThreshold: output out_scale * k + out_bias for
    k = 0..T steps; as integers q * scale with scale = out_scale (bipolar: out_scale / 2)."""
    thresholds = g.const_input(node, 1)
    attrs = node_attributes(node)
    out_dtype = attrs.get("out_dtype", b"")
    out_dtype = out_dtype.decode(errors="replace") if isinstance(out_dtype, bytes) else str(out_dtype)
    out_scale, out_bias = float(attrs.get("out_scale", 1.0)), float(attrs.get("out_bias", 0.0))
    steps = thresholds.shape[-1] if thresholds.ndim else 1
    if not np.isfinite(out_scale) or out_scale <= 0:
        raise node_error(f"MultiThreshold out_scale {out_scale:g} must be positive", node)
    if out_dtype == "BIPOLAR":
        if steps != 1 or not np.isclose(out_bias, -out_scale / 2):
            raise node_error("a BIPOLAR MultiThreshold needs one threshold and out_bias = -out_scale/2",
                             node)
        return np.float64(out_scale / 2), QType.bipolar_type(), -1, 1
    base = out_bias / out_scale
    if base != round(base):
        raise node_error(f"MultiThreshold out_bias {out_bias:g} is not a whole number of out_scale steps",
                         node)
    qmin, qmax = int(round(base)), int(round(base)) + steps
    qtype = QType.for_range(qmin, qmax)
    if qtype.bits > MAX_BITS:
        raise node_error(f"MultiThreshold with {steps} thresholds gives {qtype}, wider than {MAX_BITS} bits",
                         node)
    return np.float64(out_scale), qtype, qmin, qmax


def quant_params(g: GraphView, node):
    """(scale, qtype, qmin, qmax) of a Quant/BipolarQuant node with constant parameters."""
    if node.op_type == "MultiThreshold":
        return multithreshold_params(g, node)
    if node.op_type == "BipolarQuant":
        return g.const_input(node, 1), QType.bipolar_type(), -1, 1
    if node.op_type != "Quant":
        raise node_error(f"{node.op_type} is not supported here (use Quant or BipolarQuant)",
                         node)
    scale, zeropt, bits = (g.const_input(node, i) for i in (1, 2, 3))
    attrs = node_attributes(node)
    if np.any(zeropt != 0):
        raise node_error("Quant with a non-zero zero point is not supported (use zero point 0)",
                         node)
    if bits.size != 1 or not np.isfinite(bits).all() or float(bits) != int(bits):
        raise node_error(f"bit width {bits} must be a scalar integer", node)
    bits = int(bits)
    if not 1 <= bits <= MAX_BITS:
        raise node_error(f"bit width {bits} is out of range: finn-rtl supports 1 to {MAX_BITS} "
                         "bits", node)
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    rounding = attrs.get("rounding_mode", b"ROUND")
    rounding = rounding.decode(errors="replace") if isinstance(rounding, bytes) else rounding
    if not isinstance(rounding, str) or rounding.upper() not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
        raise node_error(f"rounding mode {rounding} is not supported (ROUND, FLOOR, CEIL)",
                         node)
    if bits == 1 and signed:
        return scale, QType.bipolar_type(), -1, 1
    from qonnx.custom_op.general.quant import max_int, min_int
    return scale, QType(bits, signed), int(min_int(signed, narrow, bits)), int(max_int(signed, narrow, bits))


def constant_weights(g: GraphView, node, out_axis: int = 1):
    """Integer weights and per-output-channel scale of a MatMul's ([mw, mh], out_axis 1) or
    a Conv's ([out, in, *kernel], out_axis 0) weight input."""
    tensor = node.input[1]
    if g.init(tensor) is not None:
        return annotated_weights(g, node, tensor, out_axis)
    producer = g.producers.get(tensor)
    if producer is None or producer.op_type not in ("Quant", "BipolarQuant") or \
            g.init(producer.input[0]) is None:
        raise node_error("MatMul weights must be a constant tensor through Quant/BipolarQuant; "
                         "non-constant (dynamic) weights are not supported", node)
    scale, qtype, qmin, qmax = quant_params(g, producer)
    real = np.asarray(g.run_nodes([producer], {}, producer.output[0]), dtype=np.float64)
    scale_full = np.broadcast_to(np.asarray(scale, dtype=np.float64), real.shape)
    if np.any(scale_full <= 0):
        raise node_error("weight quantizer scale must be positive", producer)
    if (real.ndim != 2) if out_axis == 1 else (real.ndim not in (3, 4)):
        raise node_error(f"weights of rank {real.ndim} do not fit {node.op_type}", node)
    per_channel = np.moveaxis(scale_full, out_axis, 0).reshape(real.shape[out_axis], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise node_error("weight scale varies along the input dimension; only per-tensor or "
                         "per-output-channel weight scales are supported", producer)
    ints = np.round(real / scale_full)
    if not np.allclose(ints * scale_full, real, rtol=1e-6, atol=0):
        raise node_error("weights are not integer multiples of their scale", producer)
    ints = ints.astype(np.int64)
    if qtype.bipolar and not qtype.contains(ints):
        raise node_error("bipolar weights must be +-1 times the scale", producer)
    if not qtype.bipolar:
        qtype = QType.for_range(min(ints.min(), qmin), max(ints.max(), qmax))
    return ints, qtype, per_channel[:, 0]


def output_scale(g: GraphView, node):
    """The real value of one integer step at an activation's output."""
    if node.op_type == "Trunc" and len(node.input) == 6:  # Trunc v2 has an output scale input
        return g.const_input(node, 4)
    if node.op_type == "MultiThreshold":
        return multithreshold_params(g, node)[0]
    return g.const_input(node, 1)
