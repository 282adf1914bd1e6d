"""Streamline a cleaned QONNX chain into integer layer specs.

The walk follows the single dynamic path from the graph input to the output.
Every tensor on it is described as ``real = scale * y + offset`` where ``y``
is an integer the hardware carries:

* the *input quantizer* (everything up to the first activation ``Quant``/
  ``BipolarQuant``) runs on the host; the accelerator receives its integers;
* a ``MatMul`` with quantized weights turns the integers into an exact
  integer accumulator;
* the float ops between a ``MatMul`` and the next activation quantizer (bias,
  BatchNorm, Mul/Div/Add/Sub by constants, Relu) and the quantizer itself are
  evaluated *with qonnx, exactly as the golden model does*, on candidate
  accumulator values; a binary search per channel and output level yields the
  integer thresholds, and a check on both sides of every threshold proves the
  step function matches;
* the ops after the last layer form a per-channel affine that the host
  applies (``OutputSpec``), or an ``ArgMax`` that becomes label select.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from .datatypes import QType
from .errors import CompileError
from .ingest import ORIGIN, _qonnx, clean
from .specs import MVTUSpec, NetworkSpec, OutputSpec

MAX_BITS = 8
ELEMENTWISE = ("Mul", "Div", "Add", "Sub")
SHAPE_ONLY = ("Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Transpose")
CHAIN_OPS = ELEMENTWISE + ("BatchNormalization", "Relu")
SUPPORTED = ("MatMul", "Gemm", "BipolarQuant", "Quant", "BatchNormalization", "Relu",
             "ArgMax") + ELEMENTWISE + SHAPE_ONLY


@dataclass
class _Affine:
    """real = scale * y + offset, arrays broadcasting over channels (last axis)."""

    scale: np.ndarray
    offset: np.ndarray


@dataclass
class _Pending:
    """An accumulator whose activation has not been reached yet."""

    name: str
    weights: np.ndarray  # [mh, mw] ints
    weight_type: QType
    input_type: QType
    acc_scale: np.ndarray  # [mh]: float value fed to the chain = acc * acc_scale + acc_offset
    acc_offset: np.ndarray  # [mh]
    matmul_output: str
    chain: list  # onnx NodeProtos after the MatMul, in order
    affine: _Affine  # analytic (float64) view of the chain, valid while it stays affine
    sign: np.ndarray = None  # per channel: -1 where the activation falls as the accumulator rises


@dataclass(frozen=True)
class InputQuantizer:
    """Host-side preprocessing: the model's ops up to the first activation quantizer.

    ``prefix`` is an ONNX model (qonnx ops allowed) from the graph input to the
    quantizer output; the accelerator input is ``prefix(x) / scale`` as integers.
    With ``prefix`` None the model input already is integer.
    """

    prefix: bytes | None
    scale: float
    qtype: QType
    elements: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.prefix is None:
            if x[0].size != self.elements:
                raise CompileError(f"input frames have shape {tuple(x.shape[1:])}, the accelerator "
                                   f"takes {self.elements} integers per frame")
            y = x.reshape(len(x), -1).astype(np.float64)
        else:
            from .ingest import execute_batched
            y = execute_batched(onnx.load_from_string(self.prefix), x).reshape(len(x), -1)
            y = y.astype(np.float64) / self.scale
        ints = np.round(y).astype(np.int64)
        if ints.shape[1] != self.elements:
            raise CompileError(f"input gives {ints.shape[1]} elements per frame, the accelerator "
                               f"takes {self.elements}")
        # The quantizer's float output is q * scale rounded to float32: q is recovered by rounding.
        if np.any(np.abs(ints - y) > 1e-3) or not self.qtype.contains(ints):
            raise CompileError(f"input does not quantize to {self.qtype} integers")
        return ints


@dataclass(frozen=True)
class Streamlined:
    network: NetworkSpec
    input_quantizer: InputQuantizer
    model: onnx.ModelProto  # the cleaned model the specs were derived from


class _Walker:
    def __init__(self, wrapper, name: str, label_select: bool):
        self.w = wrapper
        self.name = name
        self.label_select = label_select
        self.label_select_requested = label_select
        self.layers: list[MVTUSpec] = []
        self.notes: list[str] = []
        self.consumers: dict[str, list] = {}
        for node in wrapper.graph.node:
            for tensor in node.input:
                self.consumers.setdefault(tensor, []).append(node)

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def error(message: str, node) -> CompileError:
        """An error naming the node as the user's file has it (cleanup renames nodes)."""
        original = node.doc_string[len(ORIGIN):] if node.doc_string.startswith(ORIGIN) else ""
        renamed = f", cleaned name {node.name}" if original and original != node.name else ""
        return CompileError(message, original or node.name, node.op_type + renamed)

    def init(self, tensor):
        return self.w.get_initializer(tensor)

    def is_constant(self, tensor) -> bool:
        if self.init(tensor) is not None:
            return True
        producer = self.w.find_producer(tensor)
        return producer is not None and all(self.is_constant(t) for t in producer.input if t)

    def dynamic_inputs(self, node):
        return [t for t in node.input if t and not self.is_constant(t)]

    def const_input(self, node, index=1):
        value = self.init(node.input[index]) if len(node.input) > index else None
        if value is None:
            raise self.error(f"{node.op_type} needs a constant input {index}; only one dynamic "
                             "tensor per op is supported", node)
        return np.asarray(value)

    def next_node(self, tensor):
        users = [n for n in self.consumers.get(tensor, []) if not self.is_constant(n.output[0])]
        if len(users) > 1:
            raise self.error(f"tensor '{tensor}' feeds {len(users)} nodes; only chains (MLPs) are "
                             "supported", users[0])
        return users[0] if users else None

    def channel_vector(self, node, value, channels):
        """A constant that varies at most along the last (channel) axis -> [channels] or scalar."""
        value = np.asarray(value, dtype=np.float64)
        if value.size == 1:
            return value.reshape(())
        flat = value.reshape(-1)
        if value.shape[-1] != channels or flat.size != channels:
            raise self.error(f"constant of shape {list(value.shape)} is neither scalar nor "
                             f"per-channel over {channels} channels", node)
        return flat

    def quant_params(self, node):
        """(scale, qtype, qmin, qmax) of a Quant/BipolarQuant node with constant parameters."""
        if node.op_type == "BipolarQuant":
            return self.const_input(node, 1), QType.bipolar_type(), -1, 1
        if node.op_type != "Quant":
            raise self.error(f"{node.op_type} is not supported here (use Quant or BipolarQuant)",
                             node)
        scale, zeropt, bits = (self.const_input(node, i) for i in (1, 2, 3))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if np.any(zeropt != 0):
            raise self.error("Quant with a non-zero zero point is not supported (use zero point 0)",
                             node)
        if bits.size != 1 or float(bits) != int(bits):
            raise self.error(f"bit width {bits} must be a scalar integer", node)
        bits = int(bits)
        if not 1 <= bits <= MAX_BITS:
            raise self.error(f"bit width {bits} is out of range: finn-rtl supports 1 to {MAX_BITS} "
                             "bits", node)
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        rounding = attrs.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if rounding.upper() not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
            raise self.error(f"rounding mode {rounding} is not supported (ROUND, FLOOR, CEIL)",
                             node)
        if bits == 1 and signed:
            return scale, QType.bipolar_type(), -1, 1
        from qonnx.custom_op.general.quant import max_int, min_int
        return scale, QType(bits, signed), int(min_int(signed, narrow, bits)), int(max_int(signed, narrow, bits))

    def constant_weights(self, node):
        """Integer weights [mw, mh] and per-output-channel scale [mh] of a MatMul's weight input."""
        tensor = node.input[1]
        if self.init(tensor) is not None:
            raise self.error("MatMul weights are float (no Quant/BipolarQuant on them); quantize "
                             "the weights to 1-8 bits in Brevitas/QKeras", node)
        producer = self.w.find_producer(tensor)
        if producer is None or producer.op_type not in ("Quant", "BipolarQuant") or \
                self.init(producer.input[0]) is None:
            raise self.error("MatMul weights must be a constant tensor through Quant/BipolarQuant; "
                             "non-constant (dynamic) weights are not supported", node)
        scale, qtype, qmin, qmax = self.quant_params(producer)
        real = np.asarray(self._run_nodes([producer], {}, producer.output[0]), dtype=np.float64)
        scale_full = np.broadcast_to(np.asarray(scale, dtype=np.float64), real.shape)
        if np.any(scale_full <= 0):
            raise self.error("weight quantizer scale must be positive", producer)
        if real.ndim != 2:
            raise self.error(f"weights of rank {real.ndim}; expected a 2-D matrix", node)
        if not np.all(scale_full == scale_full[:1, :]):
            raise self.error("weight scale varies along the input dimension; only per-tensor or "
                             "per-output-channel weight scales are supported", producer)
        ints = np.round(real / scale_full)
        if not np.allclose(ints * scale_full, real, rtol=1e-6, atol=0):
            raise self.error("weights are not integer multiples of their scale", producer)
        ints = ints.astype(np.int64)
        if qtype.bipolar and not qtype.contains(ints):
            raise self.error("bipolar weights must be +-1 times the scale", producer)
        if not qtype.bipolar:
            qtype = QType.for_range(min(ints.min(), qmin), max(ints.max(), qmax))
        return ints, qtype, scale_full[0, :]

    def _run_nodes(self, nodes, inputs: dict, output: str):
        """Execute nodes with qonnx (as the golden model does) on the given inputs."""
        _, execute_onnx, _ = _qonnx()
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes

        inits, seen = [], set()
        for node in nodes:
            for tensor in node.input:
                value = self.init(tensor) if tensor else None
                if value is not None and tensor not in seen:
                    seen.add(tensor)
                    inits.append(onnx.numpy_helper.from_array(np.asarray(value), tensor))
        graph_inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(arr.shape))
                        for name, arr in inputs.items()]
        graph = helper.make_graph(list(nodes), "chain", graph_inputs,
                                  [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
                                  initializer=inits)
        model = helper.make_model(graph, opset_imports=list(self.w.model.opset_import))
        model.ir_version = self.w.model.ir_version
        wrapper = ModelWrapper(model).transform(InferShapes())
        return execute_onnx(wrapper, {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})[output]

    # -- the walk ---------------------------------------------------------------
    def run(self) -> Streamlined:
        w = self.w
        for node in w.graph.node:
            if node.op_type not in SUPPORTED:
                raise self.error(f"op {node.op_type} is not supported; supported ops: "
                                 f"{', '.join(sorted(set(SUPPORTED)))}", node)
        if not any(n.op_type in ("Quant", "BipolarQuant") for n in w.graph.node):
            raise CompileError("float-only model: there is no Quant/BipolarQuant node; export a "
                               "quantized model (Brevitas/QKeras) with 1-8 bit weights and activations")
        tensor = w.graph.input[0].name
        input_quantizer, tensor, current = self.input_quantizer(tensor)
        node = self.next_node(tensor)
        while node is not None:
            if node.op_type in SHAPE_ONLY:
                self.check_vector_shape(node)
            elif node.op_type == "MatMul":
                current = self.matmul(node, current)
            elif node.op_type in ("Quant", "BipolarQuant"):
                current = self.activation(node, current)
            elif node.op_type == "ArgMax":
                self.argmax(node)
            elif isinstance(current, _Pending):
                if node.op_type not in CHAIN_OPS:
                    raise self.error(f"{node.op_type} cannot follow a MatMul", node)
                current.chain.append(node)
                current.affine = self.affine_step(node, current.affine, len(current.acc_scale))
            else:
                current = self.affine_step_on_ints(node, current)
            tensor = node.output[0]
            node = self.next_node(tensor)
        if tensor != w.graph.output[0].name:
            raise CompileError(f"the chain ends at '{tensor}', not at the graph output")
        if isinstance(current, _Pending):
            self.layers.append(self.make_layer(current, None))
            affine = current.affine
        else:
            qtype, affine = current
            if not self.layers:
                raise CompileError("the model has no MatMul layer to map to hardware")
        output = self.output_spec(affine)
        network = NetworkSpec(self.name, tuple(self.layers), input_quantizer.qtype, output,
                              notes=tuple(self.notes))
        return Streamlined(network, input_quantizer, w.model)

    def check_vector_shape(self, node):
        """Reshapes inside an MLP may only keep the tensor a [1, features] vector."""
        shape = self.w.get_tensor_shape(node.output[0])
        in_shape = self.w.get_tensor_shape(node.input[0])
        is_vector = shape is not None and len(shape) >= 2 and shape[0] == 1 and \
            int(np.prod(shape[1:])) == shape[-1] == int(np.prod(in_shape[1:]))
        if not is_vector:
            raise self.error(f"{node.op_type} to shape {shape} inside the network; only flattening "
                             "to [batch, features] is supported in MLPs", node)

    def input_quantizer(self, tensor):
        """Collect the host-side prefix up to the first activation quantizer."""
        w = self.w
        prefix = []
        input_dt = w.get_tensor_datatype(tensor)
        node = self.next_node(tensor)
        while node is not None and node.op_type not in ("Quant", "BipolarQuant", "MatMul"):
            prefix.append(node)
            node = self.next_node(node.output[0])
        if node is None:
            raise CompileError("no layer found after the input")
        if node.op_type == "MatMul":
            if not input_dt.is_integer():
                raise self.error("the float input reaches a MatMul without an input quantizer; "
                                 "add a Quant node on the input or annotate the input with an "
                                 "integer/bipolar qonnx datatype", node)
            if any(n.op_type not in SHAPE_ONLY for n in prefix):
                raise self.error("an integer input may only be reshaped before the first MatMul",
                                 prefix[0])
            qtype = QType.bipolar_type() if input_dt.name == "BIPOLAR" else \
                QType.for_range(int(input_dt.min()), int(input_dt.max()))
            if qtype.bits > MAX_BITS:
                raise self.error(f"input datatype {input_dt.name} is wider than {MAX_BITS} bits",
                                 node)
            elements = int(np.prod(w.get_tensor_shape(node.input[0])[1:]))
            out_tensor = prefix[-1].output[0] if prefix else tensor
            return (InputQuantizer(None, 1.0, qtype, elements), out_tensor,
                    (qtype, _Affine(np.array(1.0), np.array(0.0))))
        scale, qtype, qmin, qmax = self.quant_params(node)
        if np.asarray(scale).size != 1:
            raise self.error("the input quantizer must have one (per-tensor) scale", node)
        prefix.append(node)
        shape = w.get_tensor_shape(node.output[0])
        elements = int(np.prod(shape[1:]))
        graph = helper.make_graph(
            prefix, "input_quantizer", [w.graph.input[0]],
            [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape)],
            initializer=[onnx.numpy_helper.from_array(np.asarray(self.init(t)), t)
                         for t in sorted({t for n in prefix for t in n.input if t and self.init(t) is not None})])
        model = helper.make_model(graph, opset_imports=list(w.model.opset_import))
        model.ir_version = w.model.ir_version
        self.notes.append(f"input quantizer {node.name}: {qtype}, scale {float(scale)}, runs on the host")
        return (InputQuantizer(model.SerializeToString(), float(scale), qtype, elements), node.output[0],
                (qtype, _Affine(np.asarray(scale, dtype=np.float64).reshape(()), np.array(0.0))))

    def matmul(self, node, current):
        if isinstance(current, _Pending):
            raise self.error("two MatMuls without an activation quantizer between them; insert a "
                             "Quant/BipolarQuant activation", node)
        if len(self.dynamic_inputs(node)) != 1 or node.input[0] not in self.dynamic_inputs(node):
            raise self.error("MatMul needs the activation as first input and constant weights as "
                             "second; non-constant weights are not supported", node)
        qtype, affine = current
        weights_t, weight_type, w_scale = self.constant_weights(node)
        weights = weights_t.T  # [mh, mw]
        mh, mw = weights.shape
        in_shape = self.w.get_tensor_shape(node.input[0])
        if in_shape[-1] != mw:
            raise self.error(f"input has {in_shape[-1]} features, weights expect {mw}", node)
        x_scale = np.asarray(affine.scale, dtype=np.float64)
        if x_scale.size != 1:
            if not np.all(x_scale == x_scale.reshape(-1)[0]):
                raise self.error("the MatMul input has per-channel scales; only a per-tensor "
                                 "activation scale can be folded into integer weights", node)
            x_scale = x_scale.reshape(-1)[0]
        x_offset = np.broadcast_to(np.asarray(affine.offset, dtype=np.float64), (mw,))
        acc_scale = float(x_scale) * w_scale
        acc_offset = (weights @ x_offset) * w_scale
        return _Pending(node.name, weights, weight_type, qtype, acc_scale, acc_offset, node.output[0], [],
                        _Affine(acc_scale, acc_offset))

    def affine_step(self, node, affine: _Affine, channels: int) -> _Affine:
        """Analytic float64 composition of one op on an affine view; non-affine ops give None."""
        if affine is None or node.op_type == "Relu":
            return None
        if node.op_type == "BatchNormalization":
            gamma, beta, mean, var = (self.channel_vector(node, self.const_input(node, i), channels)
                                      for i in (1, 2, 3, 4))
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            k = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            return _Affine(affine.scale * k, (affine.offset - mean) * k + beta)
        const_first = self.init(node.input[0]) is not None
        c = self.channel_vector(node, self.const_input(node, 0 if const_first else 1), channels)
        if node.op_type == "Mul":
            return _Affine(affine.scale * c, affine.offset * c)
        if node.op_type == "Add":
            return _Affine(affine.scale, affine.offset + c)
        if node.op_type == "Sub":
            if const_first:
                return _Affine(-affine.scale, c - affine.offset)
            return _Affine(affine.scale, affine.offset - c)
        if node.op_type == "Div" and not const_first:
            return _Affine(affine.scale / c, affine.offset / c)
        raise self.error(f"{node.op_type} with a constant first operand is not affine", node)

    def affine_step_on_ints(self, node, current):
        qtype, affine = current
        channels = self.w.get_tensor_shape(node.input[0])[-1]
        if node.op_type == "Relu":
            if qtype.min >= 0 and np.all(np.asarray(affine.scale) > 0) and np.all(affine.offset == 0):
                return current
            raise self.error("Relu on a signed quantized activation cannot be folded; put the Relu "
                             "before the activation quantizer", node)
        if node.op_type not in ELEMENTWISE + ("BatchNormalization",):
            raise self.error(f"{node.op_type} cannot follow a quantized activation here", node)
        return qtype, self.affine_step(node, affine, channels)

    def chain_quant(self, pending: _Pending, quant, acc: np.ndarray) -> np.ndarray:
        """Integer quantizer output for accumulator values acc [rows, mh] (ints)."""
        values = acc * pending.acc_scale + pending.acc_offset
        real = self._run_nodes(pending.chain + [quant], {pending.matmul_output: values},
                               quant.output[0])
        scale = self.channel_vector(quant, self.const_input(quant, 1), len(pending.acc_scale))
        return np.round(np.asarray(real, dtype=np.float64) / scale).astype(np.int64)

    def activation(self, quant, current):
        if not isinstance(current, _Pending):
            raise self.error("an activation quantizer must follow a MatMul (a requantization "
                             "between two quantizers is not supported)", quant)
        scale, out_type, qmin, qmax = self.quant_params(quant)
        if np.any(np.asarray(scale) <= 0):
            raise self.error("activation quantizer scale must be positive", quant)
        thresholds = self.find_thresholds(current, quant, out_type, qmin, qmax)
        self.layers.append(self.make_layer(current, (thresholds, out_type, qmin)))
        return out_type, _Affine(self.channel_vector(quant, scale, len(current.acc_scale)), np.zeros(()))

    def find_thresholds(self, pending: _Pending, quant, out_type, qmin, qmax) -> np.ndarray:
        """Per-channel integer thresholds by binary search on the exact qonnx evaluation."""
        mh = pending.weights.shape[0]
        lo, hi = self._acc_bounds(pending)
        q_lo = self.chain_quant(pending, quant, lo[None, :])[0]
        q_hi = self.chain_quant(pending, quant, hi[None, :])[0]
        decreasing = q_lo > q_hi
        if np.any(decreasing):
            # Those channels compare the negated accumulator, so that every channel's activation
            # rises with what is compared (negating the weights instead could widen them a bit).
            pending.sign = np.where(decreasing, -1, 1)
            pending.acc_scale = pending.acc_scale * pending.sign
            lo, hi = self._acc_bounds(pending)
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
        self._check_steps(pending, quant, thresholds, lo, hi, out_type, qmin)
        return thresholds

    def _acc_bounds(self, pending):
        """Bounds of the compared value: the accumulator, negated on decreasing channels."""
        sign = np.ones(len(pending.weights), dtype=np.int64) if pending.sign is None else pending.sign
        weights = pending.weights * sign[:, None]
        spec = MVTUSpec("bounds", weights, pending.input_type, QType.for_range(weights.min(), weights.max()))
        return spec.acc_range

    def _check_steps(self, pending, quant, thresholds, lo, hi, out_type, qmin):
        probes = np.concatenate([thresholds - 1, thresholds, lo[:, None], hi[:, None]], axis=1)
        probes = np.clip(probes, lo[:, None], hi[:, None]).T  # [rows, mh]
        q = self.chain_quant(pending, quant, probes)
        counts = (probes.T[:, :, None] >= thresholds[:, None, :]).sum(axis=2).T
        expect = np.where(counts > 0, 1, -1) if out_type.bipolar else qmin + counts
        bad = np.nonzero(q != expect)
        if len(bad[0]):
            channel = int(bad[1][0])
            raise self.error(f"the activation of channel {channel} is not a monotonic step function "
                             "of the accumulator, so it cannot be expressed as thresholds", quant)

    def make_layer(self, pending: _Pending, activation):
        weight_type = pending.weight_type
        if not weight_type.bipolar:
            weight_type = QType.for_range(min(weight_type.min, pending.weights.min()),
                                          max(weight_type.max, pending.weights.max()))
        if activation is None:
            return MVTUSpec(pending.name, pending.weights, pending.input_type, weight_type)
        thresholds, out_type, qmin = activation
        return MVTUSpec(pending.name, pending.weights, pending.input_type, weight_type,
                        thresholds=thresholds, output_type=out_type, out_base=qmin,
                        channel_sign=pending.sign)

    def argmax(self, node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("keepdims", 1) not in (0, 1) or attrs.get("axis", 0) not in (1, -1):
            raise self.error("ArgMax must reduce the feature axis", node)
        self.label_select = True

    def output_spec(self, affine: _Affine) -> OutputSpec:
        last = self.layers[-1]
        if affine is None:
            raise CompileError("the ops after the last MatMul are not affine (e.g. a Relu without a "
                               "quantizer); end the model with an affine tail or a quantizer",
                               last.name)
        scale = np.broadcast_to(affine.scale, (last.mh,)).astype(np.float64)
        offset = np.broadcast_to(affine.offset, (last.mh,)).astype(np.float64)
        uniform = np.allclose(scale, scale[0], rtol=1e-6) and np.allclose(offset, offset[0], rtol=1e-6)
        if self.label_select and not uniform and not self.label_select_requested:
            # The model's own ArgMax follows per-class scaling: the integers alone cannot rank the
            # classes, so the accelerator returns scores and the host applies affine and argmax.
            self.notes.append("ArgMax after per-class output scaling: label select runs on the host")
            return OutputSpec(scale, offset, label_select=False, host_argmax=True)
        if self.label_select:
            if not uniform:
                raise CompileError("label select needs one output scale and offset for all classes; "
                                   "this model has per-class output scaling", last.name)
            if scale[0] < 0:
                if last.thresholds is not None:
                    raise CompileError("label select on a negatively scaled quantized output is not "
                                       "supported", last.name)
                self.layers[-1] = MVTUSpec(last.name, -last.weights, last.input_type,
                                           QType.bipolar_type() if last.weight_type.bipolar else
                                           QType.for_range(-last.weights.max(), -last.weights.min()))
                scale, offset = -scale, offset
        return OutputSpec(scale, offset, self.label_select)


def streamline(source, name: str = "finn_rtl_top", label_select: bool = False) -> Streamlined:
    """QONNX model (path or ModelProto) -> integer NetworkSpec plus the host input quantizer."""
    wrapper = clean(source)
    return _Walker(wrapper, name, label_select).run()
