"""Seeded QONNX MLP generator covering every op finn-rtl ingests.

Parameters (BatchNorm statistics, activation scales) are calibrated on a
random batch so that activations use their quantization levels instead of
saturating, and some BatchNorm gains are negative so that decreasing
channels are exercised.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QDOMAIN = "qonnx.custom_op.general"


@dataclass
class LayerCfg:
    width: int
    w_bits: int = 2
    w_signed: bool = True
    w_narrow: bool = False
    per_channel_w_scale: bool = False
    gemm: bool = False  # Gemm (transB=1, bias) instead of MatMul
    gemm_bias: bool = True  # False: a Gemm without its optional C input (Brevitas bias=False)
    bias: bool = False  # Add after MatMul
    norm: str = "bn"  # bn | affine (Mul+Add) | div (Div+Sub) | none
    relu: bool = False
    a_bits: int = 2
    a_signed: bool = True
    a_narrow: bool = False
    bipolar_op: bool = False  # 1-bit activation as BipolarQuant (else Quant 1-bit signed)


@dataclass
class MLPCfg:
    in_shape: tuple = (1, 16)
    input: str = "float"  # float (Quant on input) | bipolar (2x-1, BipolarQuant) | int (typed input)
    in_bits: int = 8
    in_signed: bool = False
    layers: list = field(default_factory=lambda: [LayerCfg(8), LayerCfg(4)])
    tail: str = "affine"  # affine | none | quant | argmax
    head: str = ""  # after the tail: Softmax | LogSoftmax | Sigmoid | TopK | Softmax+ArgMax | Identity+Softmax
    opset: int = 13
    dyadic: bool = True  # power-of-two scales (float32-exact arithmetic)


def _quant_int(values, scale, bits, signed, narrow):
    lo = -(2 ** (bits - 1)) + (1 if narrow else 0) if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - (1 if narrow else 0)
    if bits == 1 and signed:
        return np.where(values >= 0, 1.0, -1.0)
    return np.round(np.clip(values / scale, lo, hi))


class _Builder:
    def __init__(self, cfg: MLPCfg, seed: int):
        self.cfg, self.rng = cfg, np.random.default_rng(seed)
        self.nodes, self.inits, self.counter = [], [], 0

    def name(self, stem):
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, value, stem="c"):
        tensor = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), tensor))
        return tensor

    def node(self, op, inputs, domain="", **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), domain=domain, **attrs))
        return out

    def axes_node(self, op, tensor, axes=(2,)):
        """Squeeze/Unsqueeze with `axes` as an attribute (opset < 13) or an input (opset 13+)."""
        if self.cfg.opset < 13:
            return self.node(op, [tensor], axes=list(axes))
        name = self.name("axes")
        self.inits.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), name))
        return self.node(op, [tensor, name])

    def scale(self, target):
        target = float(target)
        if self.cfg.dyadic:
            return float(2.0 ** np.round(np.log2(target)))
        return float(np.float32(target * self.rng.uniform(0.8, 1.25)))

    def quant(self, tensor, scale, bits, signed, narrow, bipolar_op=False):
        if bits == 1 and signed and bipolar_op:
            return self.node("BipolarQuant", [tensor, self.const(scale)], domain=QDOMAIN)
        return self.node("Quant", [tensor, self.const(scale), self.const(0.0), self.const(float(bits))],
                         domain=QDOMAIN, signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def build(self):
        cfg, rng = self.cfg, self.rng
        batch = 256
        features = int(np.prod(cfg.in_shape[1:]))
        x_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(cfg.in_shape))
        tensor = "input"
        if len(cfg.in_shape) > 2:
            tensor = self.node("Flatten", [tensor], axis=1)
        if cfg.input == "int":
            lo = -(2 ** (cfg.in_bits - 1)) if cfg.in_signed else 0
            hi = 2 ** (cfg.in_bits - 1) - 1 if cfg.in_signed else 2 ** cfg.in_bits - 1
            sample = rng.integers(lo, hi + 1, (batch, features)).astype(np.float64)
        elif cfg.input == "bipolar-typed":  # (x + 1) / 2 on a BIPOLAR-annotated input (QONNX zoo UNSW-NB15)
            raw = rng.choice([-1.0, 1.0], (batch, features))
            tensor = self.node("Div", [self.node("Add", [tensor, self.const(1.0)]), self.const(2.0)])
            sample = (raw + 1) / 2
        elif cfg.input == "bipolar":
            raw = rng.uniform(0, 1, (batch, features))
            tensor = self.node("Sub", [self.node("Mul", [tensor, self.const(2.0)]), self.const(1.0)])
            tensor = self.node("BipolarQuant", [tensor, self.const(1.0)], domain=QDOMAIN)
            sample = np.where(2 * raw - 1 >= 0, 1.0, -1.0)
        else:
            raw = rng.uniform(0, 1, (batch, features))
            in_scale = self.scale(1.0 / (2 ** cfg.in_bits - 1) if not cfg.in_signed else 2.0 / 2 ** cfg.in_bits)
            if cfg.in_signed:
                tensor = self.node("Sub", [tensor, self.const(0.5)])
                raw = raw - 0.5
            tensor = self.quant(tensor, in_scale, cfg.in_bits, cfg.in_signed, False)
            sample = _quant_int(raw, in_scale, cfg.in_bits, cfg.in_signed, False) * in_scale
        width_in = features
        for index, layer in enumerate(cfg.layers):
            last = index == len(cfg.layers) - 1
            tensor, sample = self.fc(tensor, sample, width_in, layer, last)
            width_in = layer.width
        out_type = TensorProto.FLOAT
        for op in filter(None, cfg.head.split("+")):
            if op == "TopK":
                k = self.name("k")
                self.inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), k))
                self.nodes.append(helper.make_node("TopK", [tensor, k], [self.name("topk_values"), "output"],
                                                   name="TopK_head"))
                tensor, out_type = "output", TensorProto.INT64
            elif op == "ArgMax":
                tensor, out_type = self.node("ArgMax", [tensor], axis=1, keepdims=1), TensorProto.INT64
            elif op in ("Softmax", "LogSoftmax"):
                tensor = self.node(op, [tensor], axis=-1 if cfg.opset >= 13 else 1)
            else:
                tensor = self.node(op, [tensor])
        if cfg.tail == "argmax":
            tensor = self.node("ArgMax", [tensor], axis=1, keepdims=1)
            out_type = TensorProto.INT64
        elif not cfg.head:
            out_type = TensorProto.FLOAT
        if tensor != "output":  # TopK already names its indices the graph output
            self.nodes[-1].output[0] = "output"
        graph = helper.make_graph(self.nodes, "mlp", [x_in],
                                  [helper.make_tensor_value_info("output", out_type, None)],
                                  initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", cfg.opset)])
        model.ir_version = 8
        if cfg.input == "int":
            from qonnx.core.datatype import DataType
            from qonnx.core.modelwrapper import ModelWrapper

            wrapper = ModelWrapper(model)
            wrapper.set_tensor_datatype("input", DataType[f"{'INT' if cfg.in_signed else 'UINT'}{cfg.in_bits}"])
            model = wrapper.model
        elif cfg.input == "bipolar-typed":
            from qonnx.core.datatype import DataType
            from qonnx.core.modelwrapper import ModelWrapper

            wrapper = ModelWrapper(model)
            wrapper.set_tensor_datatype("input", DataType["BIPOLAR"])
            model = wrapper.model
        return model

    def fc(self, tensor, sample, width_in, layer: LayerCfg, last: bool):
        cfg, rng = self.cfg, self.rng
        w_levels = 2 ** (layer.w_bits - 1) if layer.w_signed else 2 ** layer.w_bits
        w_scale = np.array([self.scale(0.5 / w_levels) for _ in range(layer.width)]) \
            if layer.per_channel_w_scale else np.full(layer.width, self.scale(0.5 / w_levels))
        w_float = rng.normal(0, 0.6, (layer.width, width_in)) * w_scale[:, None] * w_levels
        w_int = _quant_int(w_float, w_scale[:, None], layer.w_bits, layer.w_signed, layer.w_narrow)
        w_real = w_int * w_scale[:, None]
        scale_shape = (layer.width, 1) if layer.per_channel_w_scale else ()
        scale_value = w_scale.reshape(scale_shape) if layer.per_channel_w_scale else w_scale[0]
        if layer.w_bits == 1 and layer.w_signed:
            w_q = self.node("BipolarQuant", [self.const(w_float, "W"), self.const(scale_value)], domain=QDOMAIN)
        else:
            w_q = self.node("Quant", [self.const(w_float, "W"), self.const(scale_value), self.const(0.0),
                                      self.const(float(layer.w_bits))], domain=QDOMAIN,
                            signed=int(layer.w_signed), narrow=int(layer.w_narrow), rounding_mode="ROUND")
        pre = sample @ w_real.T
        bias = rng.normal(0, 0.3 * (pre.std() + 1e-3), layer.width)
        if cfg.dyadic:
            bias = np.round(bias * 16) / 16
        if layer.gemm and not layer.gemm_bias:
            tensor = self.node("Gemm", [tensor, w_q], transB=1)
        elif layer.gemm:
            tensor = self.node("Gemm", [tensor, w_q, self.const(bias, "bias")], transB=1)
            pre = pre + bias
        else:
            tensor = self.node("MatMul", [tensor, self.node("Transpose", [w_q], perm=[1, 0])])
            if layer.bias:
                tensor = self.node("Add", [tensor, self.const(bias, "bias")])
                pre = pre + bias
        mean, std = pre.mean(axis=0), pre.std(axis=0) + 1e-3
        if last:
            return self.tail(tensor, pre, layer)
        if layer.norm in ("bn", "bn-unsqueezed"):
            gamma = rng.uniform(0.5, 2.0, layer.width) * rng.choice([-1, 1], layer.width, p=[0.25, 0.75])
            beta = rng.normal(0, 0.3, layer.width)
            var = std ** 2
            if layer.norm == "bn-unsqueezed":  # BatchNorm1d as older Brevitas/FINN exports wrap it
                tensor = self.axes_node("Unsqueeze", tensor)
            tensor = self.node("BatchNormalization", [tensor, self.const(gamma), self.const(beta),
                                                      self.const(mean), self.const(var)], epsilon=1e-5)
            if layer.norm == "bn-unsqueezed":
                tensor = self.axes_node("Squeeze", tensor)
            post = (pre - mean) / np.sqrt(var + 1e-5) * gamma + beta
        elif layer.norm == "affine":
            mul = (1 / std) * rng.choice([-1, 1], layer.width, p=[0.25, 0.75])
            add = -mean * mul + rng.normal(0, 0.2, layer.width)
            if cfg.dyadic:
                mul = 2.0 ** np.round(np.log2(np.abs(mul))) * np.sign(mul)
                add = np.round(add * 8) / 8
            tensor = self.node("Add", [self.node("Mul", [tensor, self.const(mul)]), self.const(add)])
            post = pre * mul + add
        elif layer.norm == "div":
            div = float(2.0 ** np.round(np.log2(std.mean()))) if cfg.dyadic else float(std.mean())
            sub = np.round(mean / div * 4) / 4
            tensor = self.node("Sub", [self.node("Div", [tensor, self.const(div)]), self.const(sub)])
            post = pre / div - sub
        else:
            post = pre
        if layer.relu:
            tensor = self.node("Relu", [tensor])
            post = np.maximum(post, 0)
        spread = float(np.percentile(np.abs(post), 90)) + 1e-3
        if layer.a_bits == 1 and layer.a_signed:
            a_scale = 1.0
        else:
            levels = 2 ** (layer.a_bits - 1) if layer.a_signed else 2 ** layer.a_bits - 1
            a_scale = self.scale(spread / max(levels, 1))
        tensor = self.quant(tensor, a_scale, layer.a_bits, layer.a_signed, layer.a_narrow, layer.bipolar_op)
        sample = _quant_int(post, a_scale, layer.a_bits, layer.a_signed, layer.a_narrow) * a_scale
        return tensor, sample

    def tail(self, tensor, pre, layer):
        cfg, rng = self.cfg, self.rng
        if cfg.tail == "affine":
            tensor = self.node("Mul", [tensor, self.const(self.scale(0.37))])
            tensor = self.node("Add", [tensor, self.const(rng.normal(0, 0.5, layer.width))])
        elif cfg.tail == "quant":
            spread = float(np.percentile(np.abs(pre), 90)) + 1e-3
            levels = 2 ** (layer.a_bits - 1) if layer.a_signed else 2 ** layer.a_bits - 1
            tensor = self.quant(tensor, self.scale(spread / levels), layer.a_bits, layer.a_signed, layer.a_narrow)
        elif cfg.tail == "argmax":
            tensor = self.node("Mul", [tensor, self.const(self.scale(0.25))])
        return tensor, None


def make_mlp(cfg: MLPCfg, seed: int = 0) -> onnx.ModelProto:
    return _Builder(cfg, seed).build()


def random_inputs(cfg: MLPCfg, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if cfg.input == "int":
        lo = -(2 ** (cfg.in_bits - 1)) if cfg.in_signed else 0
        hi = 2 ** (cfg.in_bits - 1) - 1 if cfg.in_signed else 2 ** cfg.in_bits - 1
        return rng.integers(lo, hi + 1, (count, *cfg.in_shape[1:])).astype(np.float32)
    if cfg.input == "bipolar-typed":
        return rng.choice([-1.0, 1.0], (count, *cfg.in_shape[1:])).astype(np.float32)
    return rng.uniform(0, 1, (count, *cfg.in_shape[1:])).astype(np.float32)


# Topologies in the style of the QONNX model zoo MLPs, with seeded weights.
ZOO_STYLE = {
    # jet substructure tagging (hls4ml / LogicNets style): 16 features, Relu, BatchNorm, 5 classes,
    # ending in Softmax like the QONNX zoo model
    "jet-tagging": MLPCfg(in_shape=(1, 16), in_bits=8, in_signed=True, head="Softmax", layers=[
        LayerCfg(64, w_bits=3, gemm=True, norm="bn", relu=True, a_bits=3, a_signed=False),
        LayerCfg(32, w_bits=3, gemm=True, norm="bn", relu=True, a_bits=3, a_signed=False),
        LayerCfg(32, w_bits=3, gemm=True, norm="bn", relu=True, a_bits=3, a_signed=False),
        LayerCfg(5, w_bits=3, gemm=True)], tail="none"),
    # network intrusion detection (UNSW-NB15 style): 593 binarized features on a BIPOLAR input mapped
    # to {0, 1} by (x + 1) / 2 as in the QONNX zoo model, 2-bit weights/acts
    "network-intrusion": MLPCfg(in_shape=(1, 593), input="bipolar-typed", layers=[
        LayerCfg(64, w_bits=2, bias=True, norm="bn", a_bits=2),
        LayerCfg(64, w_bits=2, bias=True, norm="bn", a_bits=2),
        LayerCfg(64, w_bits=2, bias=True, norm="bn", a_bits=2),
        LayerCfg(1, w_bits=2, bias=True)], tail="affine"),
    # keyword spotting MLP (MFCC 10x49 input), 3-bit weights, Relu activations
    "kws-mlp": MLPCfg(in_shape=(1, 1, 10, 49), in_bits=8, layers=[
        LayerCfg(64, w_bits=3, gemm=True, norm="bn", relu=True, a_bits=3, a_signed=False),
        LayerCfg(64, w_bits=3, gemm=True, norm="bn", relu=True, a_bits=3, a_signed=False),
        LayerCfg(12, w_bits=3, gemm=True)], tail="argmax"),
}


# Every ingested op and option appears in at least one of these.
OP_COVERAGE = {
    "tfc-like-bipolar": MLPCfg(in_shape=(1, 1, 4, 4), input="bipolar", layers=[
        LayerCfg(8, w_bits=1, a_bits=1, bipolar_op=True), LayerCfg(6, w_bits=1, a_bits=1),
        LayerCfg(4, w_bits=1)]),
    "gemm-relu-unsigned": MLPCfg(in_shape=(1, 12), layers=[
        LayerCfg(8, w_bits=3, gemm=True, norm="none", relu=True, a_bits=3, a_signed=False),
        LayerCfg(6, w_bits=2, bias=True, norm="affine", relu=True, a_bits=4, a_signed=False),
        LayerCfg(5, w_bits=3, gemm=True)]),
    # host-side heads after the last layer (issue 9): Softmax over the classes (an old opset's
    # axis=1), LogSoftmax, Sigmoid, Identity + Softmax; TopK k=1 and Softmax + ArgMax are label select
    "head-softmax-opset11": MLPCfg(in_shape=(1, 10), opset=11, head="Softmax", layers=[
        LayerCfg(8, w_bits=2, a_bits=2), LayerCfg(5, w_bits=3, gemm=True)]),
    "head-logsoftmax": MLPCfg(in_shape=(1, 10), head="LogSoftmax", layers=[
        LayerCfg(8, w_bits=2, a_bits=2), LayerCfg(5, w_bits=3)]),
    "head-identity-sigmoid": MLPCfg(in_shape=(1, 10), head="Identity+Sigmoid", layers=[
        LayerCfg(8, w_bits=2, a_bits=2), LayerCfg(3, w_bits=3)]),
    "head-topk": MLPCfg(in_shape=(1, 10), head="TopK", tail="none", layers=[
        LayerCfg(8, w_bits=2, a_bits=2), LayerCfg(6, w_bits=3)]),
    "head-softmax-argmax": MLPCfg(in_shape=(1, 10), head="Softmax+ArgMax", tail="none", layers=[
        LayerCfg(8, w_bits=2, a_bits=2), LayerCfg(6, w_bits=3)]),
    # older exports: BatchNorm1d as Unsqueeze -> BatchNormalization -> Squeeze, axes as attributes
    # (opset 11) and as inputs (opset 13)
    "bn-unsqueezed-opset11": MLPCfg(in_shape=(1, 12), opset=11, layers=[
        LayerCfg(8, w_bits=2, norm="bn-unsqueezed", a_bits=2), LayerCfg(4, w_bits=2)]),
    "bn-unsqueezed-opset13": MLPCfg(in_shape=(1, 12), layers=[
        LayerCfg(8, w_bits=2, norm="bn-unsqueezed", relu=True, a_bits=3, a_signed=False), LayerCfg(4, w_bits=2)]),
    # Gemms without the optional bias input, as today's Brevitas exports bias=False layers
    "gemm-without-bias": MLPCfg(in_shape=(1, 10), layers=[
        LayerCfg(6, w_bits=2, gemm=True, gemm_bias=False, a_bits=2),
        LayerCfg(4, w_bits=2, gemm=True, gemm_bias=False)]),
    "int-input-div-narrow": MLPCfg(in_shape=(1, 10), input="int", in_bits=4, in_signed=True, layers=[
        LayerCfg(6, w_bits=4, per_channel_w_scale=True, norm="div", a_bits=3, a_narrow=True),
        LayerCfg(3, w_bits=5, w_narrow=True)], tail="quant"),
    "8bit-argmax": MLPCfg(in_shape=(1, 8), layers=[
        LayerCfg(6, w_bits=8, a_bits=8, a_signed=False, relu=True), LayerCfg(4, w_bits=2)], tail="argmax"),
    "non-dyadic-scales": MLPCfg(in_shape=(1, 16), dyadic=False, layers=[
        LayerCfg(8, w_bits=3, per_channel_w_scale=True, bias=True, a_bits=2),
        LayerCfg(8, w_bits=2, norm="affine", relu=True, a_bits=3, a_signed=False),
        LayerCfg(4, w_bits=2)], tail="none"),
    "signed-input-unsigned-weights": MLPCfg(in_shape=(1, 9), in_bits=5, in_signed=True, layers=[
        LayerCfg(7, w_bits=3, w_signed=False, a_bits=5, a_signed=True, a_narrow=True),
        LayerCfg(5, w_bits=6, a_bits=1, norm="bn"), LayerCfg(3, w_bits=7)]),
    "bipolar-int-mix": MLPCfg(in_shape=(1, 12), in_bits=3, layers=[
        LayerCfg(8, w_bits=1, a_bits=2), LayerCfg(6, w_bits=4, a_bits=1, bipolar_op=True),
        LayerCfg(4, w_bits=3)]),
}
