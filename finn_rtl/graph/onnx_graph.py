"""Read-only queries on a cleaned qonnx model, and running a few of its nodes with qonnx.

The streamliner asks the graph the same questions everywhere: is this tensor constant, what
is its value, which node comes next on the dynamic path, what do these nodes compute on these
inputs (exactly as the golden model would). They live here, with the one way to name a node
in an error (as the user's file names it: cleanup renames nodes).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .errors import CompileError
from .ingest import ORIGIN, _qonnx


def node_error(message: str, node) -> CompileError:
    """An error naming the node as the user's file has it (cleanup renames nodes)."""
    original = node.doc_string[len(ORIGIN):] if node.doc_string.startswith(ORIGIN) else ""
    renamed = f", cleaned name {node.name}" if original and original != node.name else ""
    return CompileError(message, original or node.name, node.op_type + renamed)


def user_name(node) -> str:
    """The node's name in the user's file."""
    return node.doc_string[len(ORIGIN):] if node.doc_string.startswith(ORIGIN) else node.name


class GraphView:
    """Queries on a model that does not change while the view is used: initializers, producers
    and consumers are indexed once (qonnx's lookups scan the graph on every call, which made
    streamlining the shared MobileNet-v1 quadratic: 12 of its 19 s)."""

    def __init__(self, wrapper):
        self.w = wrapper
        self.consumers: dict[str, list] = {}
        self.producers: dict[str, object] = {}
        for node in wrapper.graph.node:
            for tensor in node.input:
                self.consumers.setdefault(tensor, []).append(node)
            for tensor in node.output:
                self.producers.setdefault(tensor, node)
        self.initializers = {init.name: init for init in wrapper.graph.initializer}
        self._constant: dict[str, bool] = {}

    def init(self, tensor):
        """The initializer's value (a new array on each call, as qonnx's), or None."""
        init = self.initializers.get(tensor)
        return None if init is None else onnx.numpy_helper.to_array(init)

    def shape(self, tensor):
        return self.w.get_tensor_shape(tensor)

    def is_constant(self, tensor) -> bool:
        known = self._constant.get(tensor)
        if known is None:
            producer = self.producers.get(tensor)
            known = tensor in self.initializers or (
                producer is not None and all(self.is_constant(t) for t in producer.input if t))
            self._constant[tensor] = known
        return known

    def dynamic_inputs(self, node):
        return [t for t in node.input if t and not self.is_constant(t)]

    def const_input(self, node, index=1):
        value = self.init(node.input[index]) if len(node.input) > index else None
        if value is None:
            raise node_error(f"{node.op_type} needs a constant input {index}; only one dynamic "
                             "tensor per op is supported", node)
        return np.asarray(value)

    def dynamic_users(self, tensor) -> list:
        """The nodes that read `tensor` and compute something not constant, in graph order."""
        return [n for n in self.consumers.get(tensor, []) if not self.is_constant(n.output[0])]

    def next_node(self, tensor):
        """The one node that reads `tensor` before the input quantizer (None at the end)."""
        users = [n for n in self.consumers.get(tensor, []) if not self.is_constant(n.output[0])]
        if len(users) > 1:
            raise node_error(f"tensor '{tensor}' feeds {len(users)} nodes before the first activation "
                             "quantizer; the host-side input ops must form a chain", users[0])
        return users[0] if users else None

    def opset(self) -> int:
        return next((o.version for o in self.w.model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def constant_value(self, tensor) -> np.ndarray:
        """A constant tensor's value: an initializer, or computed (e.g. a quantized bias) with qonnx."""
        value = self.init(tensor)
        if value is not None:
            return np.asarray(value, dtype=np.float64)
        nodes = []

        def producers(t):
            producer = self.producers.get(t)
            if producer is not None:
                for source in producer.input:
                    if source and self.init(source) is None:
                        producers(source)
                nodes.append(producer)

        producers(tensor)
        return np.asarray(self.run_nodes(nodes, {}, tensor), dtype=np.float64)

    def run_nodes(self, nodes, inputs: dict, output: str):
        """Execute nodes with qonnx (as the golden model does) on the given inputs."""
        _, execute_onnx = _qonnx()
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes

        inits, seen = [], set()
        for node in nodes:
            for tensor in node.input:
                if tensor in self.initializers and tensor not in seen:
                    seen.add(tensor)
                    inits.append(self.initializers[tensor])
        graph_inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(arr.shape))
                        for name, arr in inputs.items()]
        graph = helper.make_graph(list(nodes), "chain", graph_inputs,
                                  [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
                                  initializer=inits)
        model = helper.make_model(graph, opset_imports=list(self.w.model.opset_import))
        model.ir_version = self.w.model.ir_version
        try:
            wrapper = ModelWrapper(model).transform(InferShapes())
            return execute_onnx(wrapper, {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})[output]
        except Exception as exc:  # onnxruntime and qonnx raise many types for invalid nodes
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise node_error(f"qonnx cannot execute this op ({detail}); check its attributes and inputs",
                             nodes[0]) from None
