"""What the host driver needs to know: the model's host-side ops as numpy parameters, the
buffer layouts, the register map, all in one JSON description.

The ops before the first activation quantizer (today kept as `input_quantizer.onnx` and run with
qonnx) become a list of plain steps that the driver runs in numpy; `check_host_input` runs both
on the same inputs and refuses the description unless they give the same integers.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..cores.accelerator import PortGeometry
from ..graph.errors import CompileError
from ..graph.ingest import node_attributes
from .gearbox import MemoryLayout
from ..graph.weight_map import WeightMap
from .shell import REGISTERS, STATUS_BITS, weight_window

_ELEMENTWISE = {"Mul": "mul", "Div": "div", "Add": "add", "Sub": "sub"}
_RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def input_steps(prefix: bytes) -> tuple[list, list]:
    """(per-frame input shape, steps) for the host-side prefix model."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(onnx.load_from_string(prefix))
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(InferShapes())
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    current = model.graph.input[0].name
    in_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    steps = []
    for node in model.graph.node:
        data = [name for name in node.input if name and name not in constants]
        if data != [current]:
            raise CompileError("host preprocessing must be a chain of ops on the model input", node.name, node.op_type)
        out = node.output[0]
        if node.op_type in _RESHAPES:
            shape = model.get_tensor_shape(out)
            steps.append({"op": "reshape", "shape": [int(d) for d in shape[1:]]})
        elif node.op_type == "Transpose":
            perm = node_attributes(node).get("perm")
            if perm is None or perm[0] != 0:
                raise CompileError("a host-side Transpose must keep the batch axis first", node.name, node.op_type)
            steps.append({"op": "transpose", "perm": [int(p) for p in perm]})
        elif node.op_type in _ELEMENTWISE:
            constant_first = node.input[0] in constants
            value = np.asarray(constants[node.input[0 if constant_first else 1]], dtype=np.float32)
            steps.append({"op": _ELEMENTWISE[node.op_type], "value": value.ravel().tolist(),
                          "shape": list(value.shape), "constant_first": constant_first})
        elif node.op_type == "Quant":
            attrs = node_attributes(node)
            scale, zeropt, bits = (constants.get(name) for name in node.input[1:4])
            if any(v is None or np.size(v) != 1 for v in (scale, zeropt, bits)):
                raise CompileError("the numpy driver supports per-tensor input quantizers only (scale, zero "
                                   "point and bit width as scalar constants)", node.name, node.op_type)
            from qonnx.custom_op.general.intquant import max_int, min_int

            signed, narrow, bits = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0)), int(bits)
            mode = attrs.get("rounding_mode", b"ROUND")
            steps.append({"op": "quant", "scale": float(scale), "zeropt": float(zeropt), "bits": bits,
                          "signed": signed, "min": min_int(signed, narrow, bits), "max": max_int(signed, narrow, bits),
                          "rounding_mode": (mode.decode() if isinstance(mode, bytes) else mode).upper()})
        elif node.op_type == "MultiThreshold":
            thresholds = constants.get(node.input[1]) if len(node.input) > 1 else None
            if thresholds is None or thresholds.ndim != 2:
                raise CompileError("a host-side MultiThreshold needs constant [channels, steps] thresholds",
                                   node.name, node.op_type)
            attrs = node_attributes(node)
            layout = attrs.get("data_layout", b"")
            layout = layout.decode() if isinstance(layout, bytes) else str(layout)
            rank = len(model.get_tensor_shape(current))
            if not layout:  # qonnx guesses the layout from the rank the same way
                layout = {2: "NC", 3: "NWC", 4: "NCHW"}.get(rank, "")
            steps.append({"op": "multithreshold", "thresholds": np.asarray(thresholds, np.float32).ravel().tolist(),
                          "thresholds_shape": list(thresholds.shape),
                          "channel_axis": layout.index("C") if "C" in layout else 1,
                          "out_scale": float(attrs.get("out_scale", 1.0)), "out_bias": float(attrs.get("out_bias", 0.0))})
        elif node.op_type == "BipolarQuant":
            scale = constants.get(node.input[1])
            if scale is None or np.size(scale) != 1:
                raise CompileError("the numpy driver supports a per-tensor BipolarQuant scale only",
                                   node.name, node.op_type)
            steps.append({"op": "bipolar_quant", "scale": float(scale)})
        else:
            raise CompileError(f"op {node.op_type} before the first quantizer cannot run in the numpy driver; "
                               "supported there: Mul/Div/Add/Sub by constants, Reshape/Flatten/Squeeze/Unsqueeze, "
                               "Transpose, Quant, BipolarQuant, MultiThreshold", node.name, node.op_type)
        current = out
    return in_shape, steps


def _qtype(qtype) -> dict:
    return {"bits": qtype.bits, "signed": qtype.signed, "bipolar": qtype.bipolar,
            "min": qtype.min, "max": qtype.max}


def _order(order) -> list | None:
    return None if order is None else [int(i) for i in order]


def driver_description(b, word_bytes: int, *, design_id: int, ip_name: str, platform: str,
                       clock_mhz: float, memory_bank: str | None = None) -> dict:
    """The driver's JSON for build `b` behind a shell with `word_bytes` memory words."""
    network, quantizer = b.network, b.input_quantizer
    geometry = PortGeometry.of(network)
    if quantizer.prefix is None:
        in_shape, steps = list(b.input_shape[1:]), []
    else:
        in_shape, steps = input_steps(quantizer.prefix)
    out = network.output
    weights = None
    if WeightMap.of(network):
        from ..flow.weights import DIRECTORY, manifest

        weights = {**manifest(network, quantizer), "window": weight_window(network), "directory": DIRECTORY}
    return {
        "format": "finn-rtl driver description 1",
        "kernel": network.name, "ip_name": ip_name, "platform": platform, "design_id": design_id,
        "clock_mhz": clock_mhz, "word_bytes": word_bytes, "memory_bank": memory_bank,
        "expected_ii_cycles": network.analytic_ii,
        "registers": REGISTERS, "status_bits": {str(bit): text for bit, text in STATUS_BITS.items()},
        "input": {"shape": in_shape, "steps": steps, "int_scale": quantizer.scale,
                  "qtype": _qtype(network.input_type), "order": _order(network.input_order),
                  "elements": network.in_elements, "lanes": geometry.in_elements_per_beat,
                  "layout": MemoryLayout(word_bytes, geometry.in_width // 8, geometry.in_beats_per_frame).to_dict()},
        "output": {"qtype": _qtype(network.output_type), "order": _order(network.output_order),
                   "elements": network.out_elements,
                   "lanes": geometry.out_elements_per_beat,
                   "scale": out.scale.tolist(), "offset": out.offset.tolist(),
                   "label_select": out.label_select, "host_argmax": out.host_argmax, "head": out.head,
                   "layout": MemoryLayout(word_bytes, geometry.out_width // 8, geometry.out_beats_per_frame).to_dict()},
        "weights": weights,
    }


def check_host_input(b, description: dict, x: np.ndarray) -> None:
    """The driver's numpy preprocessing must give the compiler's integers on `x`."""
    from .driver import quantize_input

    expected = b.network.to_stream(b.input_quantizer.quantize(x))
    try:
        got = quantize_input(x, description["input"])
    except ValueError as exc:
        raise CompileError(f"the driver's numpy preprocessing fails where qonnx does not: {exc}") from None
    if not np.array_equal(got, expected):
        frames = np.nonzero(np.any(got != expected, axis=1))[0]
        raise CompileError(f"the driver's numpy preprocessing differs from qonnx on {len(frames)} of {len(x)} "
                           f"test frames (first: {frames[:5].tolist()}); the host ops cannot be deployed as numpy")
