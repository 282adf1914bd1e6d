"""Load and clean QONNX models; run them batched with qonnx (golden model)."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx

from .errors import CompileError

QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")  # MultiThreshold: FINN-ONNX dialect
QONNX_DOMAIN = "qonnx.custom_op.general"
ORIGIN = "finn-rtl original name: "  # kept in doc_string so errors can name nodes as the user's file does


def _qonnx():
    # qonnx is imported lazily: it is slow to import and the CLI's --help should not pay for it.
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    return ModelWrapper, execute_onnx


def cleanup_model(wrapper):
    """qonnx's `cleanup_model` (its transformations, in its order) without its last one,
    `GiveReadableTensorNames`: `clean` names the tensors once, at its end. The renaming scans the
    graph for every tensor, and ran once per cleanup: 5 of the 8 s `clean` took on MobileNet-v1."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueNodeNames, GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for node in wrapper.graph.node:  # as qonnx's cleanup does: its own ops in its own domain
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    kept = ["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]  # qonnx's preserve_qnt_ops
    for transformation in (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=kept),
                           FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(),
                           GiveUniqueNodeNames()):
        wrapper = wrapper.transform(transformation)
    return wrapper


def node_attributes(node) -> dict:
    """A node's attributes by name, as Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


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
    names = [value for node in model.graph.node for value in (node.name, node.op_type, *node.input, *node.output)]
    if not all(isinstance(value, str) for value in names):
        raise CompileError(f"{path} is corrupt: a node or tensor name is not valid UTF-8")
    return model


def _normalise_domains(model: onnx.ModelProto) -> None:
    # Brevitas exports put QONNX ops in "onnx.brevitas"; qonnx executes them from its own domain.
    for node in model.graph.node:
        if node.op_type in QUANT_OPS:
            node.domain = QONNX_DOMAIN


def _set_datatype_annotation(model: onnx.ModelProto, tensor: str, datatype: str) -> None:
    for annotation in model.graph.quantization_annotation:
        if annotation.tensor_name == tensor:
            for entry in annotation.quant_parameter_tensor_names:
                if entry.key == "finn_datatype":
                    entry.value = datatype
                    return
            annotation.quant_parameter_tensor_names.add(key="finn_datatype", value=datatype)
            return
    annotation = model.graph.quantization_annotation.add(tensor_name=tensor)
    annotation.quant_parameter_tensor_names.add(key="finn_datatype", value=datatype)


def _xnor_popcount_to_matmul(model: onnx.ModelProto) -> None:
    """FINN's XnorPopcountMatMul(x, W) on BINARY (0/1) operands counts agreements:
    (dot(2x-1, 2W-1) + K) / 2 for K inputs. Rewritten as exactly that (Mul, Add, a MatMul with
    BIPOLAR weights, Add, Mul), which the streamliner folds into one layer like any MatMul with
    an affine input and output; the golden model runs the original node."""
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    rewritten = []
    for node in model.graph.node:
        if node.op_type != "XnorPopcountMatMul":
            rewritten.append(node)
            continue
        label = node.name or node.output[0]
        weights = inits.get(node.input[1]) if len(node.input) == 2 else None
        if weights is None:
            raise CompileError("needs constant BINARY weights as its second input", label, node.op_type)
        values = numpy_helper.to_array(weights).astype(np.float64)
        if values.ndim != 2 or not np.all((values == 0) | (values == 1)):
            raise CompileError("weights must be a 2-D matrix of 0/1 (BINARY) values", label, node.op_type)
        users = [n for n in model.graph.node if node.input[1] in n.input]
        if len(users) != 1:
            raise CompileError("its weights are shared with other nodes", label, node.op_type)
        weights.CopyFrom(numpy_helper.from_array((2 * values - 1).astype(np.float32), weights.name))
        _set_datatype_annotation(model, weights.name, "BIPOLAR")
        tag = f"{label}_xnor"
        constants = {f"{tag}_two": 2.0, f"{tag}_minus_one": -1.0, f"{tag}_k": float(values.shape[0]),
                     f"{tag}_half": 0.5}
        for name, value in constants.items():
            model.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
        x, out = node.input[0], node.output[0]
        rewritten += [
            helper.make_node("Mul", [x, f"{tag}_two"], [f"{tag}_x2"], name=f"{tag}_mul_in"),
            helper.make_node("Add", [f"{tag}_x2", f"{tag}_minus_one"], [f"{tag}_bipolar"], name=f"{tag}_add_in"),
            helper.make_node("MatMul", [f"{tag}_bipolar", weights.name], [f"{tag}_dot"], name=label,
                             doc_string=node.doc_string),
            helper.make_node("Add", [f"{tag}_dot", f"{tag}_k"], [f"{tag}_twice"], name=f"{tag}_add_out"),
            helper.make_node("Mul", [f"{tag}_twice", f"{tag}_half"], [out], name=f"{tag}_mul_out"),
        ]
    del model.graph.node[:]
    model.graph.node.extend(rewritten)


def _check_weight_inputs(model: onnx.ModelProto, init_names: set) -> None:
    """Name a graph input that feeds weights (before cleanup renames the tensors)."""
    dynamic = [i.name for i in model.graph.input if i.name not in init_names]
    for extra in dynamic[1:]:
        for node in model.graph.node:
            feeds_weights = node.op_type in ("MatMul", "Gemm") and extra in node.input[1:] or \
                node.op_type in ("Quant", "BipolarQuant") and extra in node.input
            if feeds_weights:
                raise CompileError(f"weights come from graph input '{extra}': non-constant weights are "
                                   "not supported; store the weights as an initializer", node.name)


def _add_zero_biases(wrapper) -> None:
    """Give every Gemm without a bias (C is optional; Brevitas leaves it out for bias=False) a zero
    bias, which qonnx's GemmToMatMul needs and which changes no value."""
    for node in wrapper.get_nodes_by_op_type("Gemm"):
        if len(node.input) > 2 and node.input[2]:
            continue
        trans_b = node_attributes(node).get("transB", 0)
        shape = wrapper.get_tensor_shape(node.input[1])
        if shape is None:
            raise CompileError("the Gemm's weight shape is unknown", node.name)
        name = wrapper.make_new_valueinfo_name()
        wrapper.set_initializer(name, np.zeros(shape[0] if trans_b else shape[1], dtype=np.float32))
        if len(node.input) > 2:
            node.input[2] = name
        else:
            node.input.append(name)


QUANTIZERS = ("Quant", "BipolarQuant", "Trunc")
WEIGHT_INPUTS = {"MatMul": 1, "Gemm": 1, "Conv": 1}  # the input of each op that holds its weights
SHAPE_ONLY = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


def _feeds_weights(wrapper, tensor: str) -> bool:
    """Whether `tensor` reaches the weight input of a MatMul, Gemm or Conv (through shape-only ops):
    its quantizer tells streamlining the weights' integer type and scale, so it stays a node."""
    for consumer in wrapper.find_consumers(tensor) or []:
        index = WEIGHT_INPUTS.get(consumer.op_type)
        if index is not None and len(consumer.input) > index and consumer.input[index] == tensor:
            return True
        if consumer.op_type in SHAPE_ONLY and _feeds_weights(wrapper, consumer.output[0]):
            return True
    return False


def fold_constant_quantizers(wrapper):
    """Quantizers on constants that are not weights (Brevitas's quantized biases, Int8Bias to
    Int32Bias; quantized scales), folded to the constants they compute, wherever they appear;
    qonnx's cleanup folds every other node whose inputs are all constants, and is run again after
    (a folded bias may make a node constant)."""
    from qonnx.core import onnx_exec

    opset = next((o.version for o in wrapper.model.opset_import if o.domain in ("", "ai.onnx")), 11)
    constants = {init.name for init in wrapper.graph.initializer}
    folded_any = False
    while True:  # sweeps in graph order until one folds nothing
        folded = False
        for node in list(wrapper.graph.node):
            constant = all(not name or name in constants for name in node.input)
            if node.op_type in QUANTIZERS and constant and not _feeds_weights(wrapper, node.output[0]):
                context = {name: wrapper.get_initializer(name) for name in node.input if name}
                onnx_exec.execute_node(node, context, wrapper.graph, opset)
                wrapper.set_initializer(node.output[0], np.asarray(context[node.output[0]], dtype=np.float32))
                wrapper.graph.node.remove(node)
                constants.add(node.output[0])
                folded = folded_any = True
        if not folded:
            break
    # The cleanup that ran before this found nothing more to fold unless a quantizer was folded.
    return cleanup_model(wrapper) if folded_any else wrapper


def _check_finite_constants(model: onnx.ModelProto) -> None:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        try:
            value = numpy_helper.to_array(init)
        except Exception as exc:  # corrupt raw data
            raise CompileError(f"initializer '{init.name}' cannot be read ({type(exc).__name__}: {exc})") from None
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise CompileError(f"initializer '{init.name}' holds NaN or infinite values; weights, scales and "
                               "constants must be finite")


def clean(source, batch_size: int | None = None):
    """Return a cleaned qonnx ModelWrapper (shapes inferred, constants folded, Quant ops kept)."""
    ModelWrapper, _ = _qonnx()
    model = read_model(source)
    init_names = {i.name for i in model.graph.initializer}
    if not [i for i in model.graph.input if i.name not in init_names]:
        raise CompileError("the model has no dynamic input")
    _check_weight_inputs(model, init_names)
    _check_finite_constants(model)
    _normalise_domains(model)
    for index, node in enumerate(model.graph.node):
        node.doc_string = ORIGIN + (node.name or f"{node.op_type} #{index}")
    _xnor_popcount_to_matmul(model)
    with warnings.catch_warnings():
        # FINN-dialect files use the old "finn.custom_op.general" domain, which qonnx converts
        # with a warning; the conversion is exactly what is wanted.
        warnings.filterwarnings("ignore", message="Some old-style domain attributes")
        wrapper = ModelWrapper(model)
    try:
        # Batch 1 first: shape inference then knows every tensor (the output too), which the
        # batch-size change needs; it also rewrites the folded Reshape targets.
        wrapper = fold_constant_quantizers(cleanup_model(wrapper))
        if batch_size is not None:
            from qonnx.transformation.change_batchsize import ChangeBatchSize

            wrapper = cleanup_model(wrapper.transform(ChangeBatchSize(batch_size)))
        from qonnx.transformation.gemm_to_matmul import GemmToMatMul
        from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
        from qonnx.transformation.infer_shapes import InferShapes

        if wrapper.get_nodes_by_op_type("Gemm"):
            _add_zero_biases(wrapper)
            with warnings.catch_warnings():
                # It warns about any Gemm opset but 9; the rewrite is the same for 11 and 13.
                warnings.simplefilter("ignore", UserWarning)
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


# qonnx infers these custom ops' output shapes with batch 1 whatever the input, so a batched
# model fails shape checks downstream of them; models with them run one frame at a time.
BATCH_ONE_OPS = ("Im2Col",)


def origin_node(model, name: str):
    """The node of a cleaned model that was `name` in the user's file (None if there is none)."""
    return next((n for n in model.graph.node if n.doc_string == ORIGIN + name), None)


def golden_chunk(frame_elements: int) -> int:
    """Frames the golden model runs at once: at most 1,024, and at most about 4 M input values
    (16 MB; MobileNet-v1's activations are 2.7 times its input) per chunk. It depends on the frame
    size only, so a frame's float32 sums are taken over the same batch wherever it runs: on this
    machine, or in a cluster shard made of whole chunks (`cluster.golden_shards`)."""
    return max(1, min(1024, (1 << 22) // max(1, frame_elements)))


def execute_batched(source, x: np.ndarray, input_of: str | None = None, chunk: int | None = None):
    """qonnx execution of a whole batch at once (row-independent ops only).

    The model's batch dimension is set to len(x) before cleaning, so every
    node sees the whole batch; tests compare this against per-frame execution.
    With `input_of` (a node name of the user's model) the result is (output, that node's input),
    both from the same execution. With `chunk`, the frames run `chunk` at a time (the model
    cleaned once for that batch size; a last, shorter chunk is padded with zero frames).
    """
    _, execute_onnx = _qonnx()
    x = np.asarray(x, dtype=np.float32)
    source = read_model(source)  # read once: the op check and the cleaning share it
    one_by_one = any(node.op_type in BATCH_ONE_OPS for node in source.graph.node)
    chunk = min(chunk or len(x), len(x))
    model = clean(source, batch_size=None if one_by_one else chunk)
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    expected = tuple(model.get_tensor_shape(iname))
    if x[0].size != int(np.prod(expected[1:])):
        raise CompileError(f"input frames have shape {tuple(x.shape[1:])}, the model expects "
                           f"{tuple(expected[1:])} per frame")
    node = None
    if input_of is not None:
        node = origin_node(model, input_of)
        if node is None:
            raise CompileError(f"node {input_of!r} is not in the model")
    size = 1 if one_by_one else chunk
    outputs, inputs = [], []
    for start in range(0, len(x), size):
        batch = x[start:start + size]
        frames = len(batch)
        if frames < size:
            batch = np.concatenate([batch, np.zeros((size - frames, *batch.shape[1:]), dtype=batch.dtype)])
        context = execute_onnx(model, {iname: batch.reshape(len(batch), *expected[1:])},
                               return_full_exec_context=node is not None)
        outputs.append(context[oname][:frames])
        if node is not None:
            inputs.append(context[node.input[0]][:frames])
    output = np.concatenate(outputs)
    return output if node is None else (output, np.concatenate(inputs))


def execute_frames(source, x: np.ndarray) -> np.ndarray:
    """qonnx execution one frame at a time: the golden model exactly as a user would run it."""
    _, execute_onnx = _qonnx()
    model = clean(source)
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    shape = tuple(model.get_tensor_shape(iname))
    outs = [execute_onnx(model, {iname: np.asarray(f, dtype=np.float32).reshape(shape)})[oname]
            for f in x]
    return np.concatenate(outs)
