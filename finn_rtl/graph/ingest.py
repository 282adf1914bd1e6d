"""Load and clean QONNX models; run them batched with qonnx (golden model)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx

from .errors import CompileError

QUANT_OPS = ("Quant", "BipolarQuant", "Trunc")
QONNX_DOMAIN = "qonnx.custom_op.general"


def _qonnx():
    # qonnx is imported lazily: it is slow to import and the CLI's --help should not pay for it.
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    return ModelWrapper, execute_onnx, cleanup_model


def read_model(source) -> onnx.ModelProto:
    """Read an ONNX file (or pass a ModelProto through), with clear errors for bad files."""
    if isinstance(source, onnx.ModelProto):
        return copy.deepcopy(source)
    path = Path(source)
    if not path.is_file():
        raise CompileError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several unrelated types for garbage input
        raise CompileError(f"{path} is not a readable ONNX file ({type(exc).__name__}: {exc})") from exc
    if not model.graph.node:
        raise CompileError(f"{path} holds no graph nodes; is it an ONNX model?")
    return model


def _normalise_domains(model: onnx.ModelProto) -> None:
    # Brevitas exports put QONNX ops in "onnx.brevitas"; qonnx executes them from its own domain.
    for node in model.graph.node:
        if node.op_type in QUANT_OPS:
            node.domain = QONNX_DOMAIN


def clean(source, batch_size: int | None = None):
    """Return a cleaned qonnx ModelWrapper (shapes inferred, constants folded, Quant ops kept)."""
    ModelWrapper, _, cleanup_model = _qonnx()
    model = read_model(source)
    init_names = {i.name for i in model.graph.initializer}
    if not [i for i in model.graph.input if i.name not in init_names]:
        raise CompileError("the model has no dynamic input")
    _normalise_domains(model)
    wrapper = ModelWrapper(model)
    try:
        # Batch 1 first: shape inference then knows every tensor (the output too), which the
        # batch-size change needs; it also rewrites the folded Reshape targets.
        wrapper = cleanup_model(wrapper)
        if batch_size is not None:
            from qonnx.transformation.change_batchsize import ChangeBatchSize

            wrapper = cleanup_model(wrapper.transform(ChangeBatchSize(batch_size)))
        from qonnx.transformation.gemm_to_matmul import GemmToMatMul
        from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
        from qonnx.transformation.infer_shapes import InferShapes

        if wrapper.get_nodes_by_op_type("Gemm"):
            wrapper = wrapper.transform(GemmToMatMul())
            wrapper = cleanup_model(wrapper)
        wrapper = wrapper.transform(InferShapes())
        wrapper = wrapper.transform(GiveUniqueNodeNames())
        wrapper = wrapper.transform(GiveReadableTensorNames())
    except CompileError:
        raise
    except Exception as exc:
        raise CompileError(f"qonnx could not clean the model: {type(exc).__name__}: {exc}") from exc
    dynamic_inputs = [i for i in wrapper.graph.input if wrapper.get_initializer(i.name) is None]
    if len(dynamic_inputs) != 1 or len(wrapper.graph.output) != 1:
        raise CompileError(f"expected one input and one output, found {len(dynamic_inputs)} "
                           f"inputs and {len(wrapper.graph.output)} outputs")
    return wrapper


def execute_batched(source, x: np.ndarray) -> np.ndarray:
    """qonnx execution of a whole batch at once (row-independent ops only).

    The model's batch dimension is set to len(x) before cleaning, so every
    node sees the whole batch; tests compare this against per-frame execution.
    """
    _, execute_onnx, _ = _qonnx()
    x = np.asarray(x, dtype=np.float32)
    model = clean(source, batch_size=len(x))
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    expected = tuple(model.get_tensor_shape(iname))
    if x.shape != expected:
        x = x.reshape(expected)
    return execute_onnx(model, {iname: x})[oname]


def execute_frames(source, x: np.ndarray) -> np.ndarray:
    """qonnx execution one frame at a time: the golden model exactly as a user would run it."""
    _, execute_onnx, _ = _qonnx()
    model = clean(source)
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    shape = tuple(model.get_tensor_shape(iname))
    outs = [execute_onnx(model, {iname: np.asarray(f, dtype=np.float32).reshape(shape)})[oname]
            for f in x]
    return np.concatenate(outs)
