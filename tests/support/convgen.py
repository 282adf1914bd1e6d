"""Seeded QONNX conv-net generator (Conv 1-D/2-D, depthwise, padding, MaxPool, FC).

Like modelgen's MLPs, BatchNorm statistics and activation scales are
calibrated on a random batch (numpy convolution) so activations use their
levels; some BatchNorm gains are negative so decreasing channels occur.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper

from .modelgen import QDOMAIN, _Builder, _quant_int, LayerCfg, MLPCfg


@dataclass
class ConvCfg:
    channels: int
    kernel: int = 3
    stride: int = 1
    pad: int = 0
    depthwise: bool = False
    w_bits: int = 2
    a_bits: int = 2
    a_signed: bool = False
    relu: bool = True
    bias: bool = False  # Conv's third input
    bias_bits: int = 0  # > 0: the bias goes through a Quant of that width (as Brevitas exports it)


@dataclass
class PoolCfg:
    kernel: int = 2
    stride: int = 2
    in_chain: bool = False  # between the conv and its activation quantizer (else after it)
    mul_after: float = 0.0  # a scalar Mul after the pool (FINN's streamliner cannot move it)
    pad: int = 0  # pads on every side (ONNX: padding never wins the max)


@dataclass
class AvgPoolCfg:
    """Brevitas-style quantized average pool: (Global)AveragePool -> Mul(window) -> Trunc."""
    kernel: int = 0  # 0: GlobalAveragePool


@dataclass
class ResidualCfg:
    """A ResNet basic block as Brevitas exports it: conv3x3-BN-ReLU-quant-conv3x3-BN-quant on the
    long branch; an identity shortcut, or (`downsample`) conv1x1-BN-quant with the block's
    stride; then Add-ReLU-quant. `merge="concat"`: the branches are concatenated instead.
    `scale_ratio`: the long branch's last quantizer has that multiple of the shortcut's scale
    (1: shared, as Brevitas does with one QuantIdentity)."""
    channels: int
    stride: int = 1
    downsample: bool = False
    w_bits: int = 2
    a_bits: int = 2
    merge: str = "add"  # add | concat
    scale_ratio: int = 1
    long_convs: int = 2  # convs on the long branch
    kernel: int = 3  # their kernel ("same" padding)
    bottleneck: int = 0  # > 0: a bottleneck block, 1x1 (this many channels), 3x3 (stride), 1x1 (`channels`)


@dataclass
class ConvNetCfg:
    in_shape: tuple = (1, 3, 8, 8)
    in_bits: int = 8
    features: list = field(default_factory=lambda: [ConvCfg(4), PoolCfg()])
    fc: list = field(default_factory=lambda: [LayerCfg(10, norm="none")])
    tail: str = "affine"  # affine | argmax
    pad_op: int = 0  # a separate Pad node before the first conv
    bipolar: bool = False  # 1-bit weights and activations after the first layer (CNV-w1a1 style)
    dyadic: bool = True  # power-of-two scales; False: arbitrary float32 scales


def _conv(x, w, stride, pad, groups):
    """NCHW float convolution (numpy) for calibration; x [n, c, h, w], w [o, c/g, kh, kw]."""
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    if groups == 1:
        return np.einsum("nchwij,ocij->nohw", windows, w)
    return np.einsum("nchwij,cij->nchw", windows, w[:, 0])


class _ConvBuilder(_Builder):
    def build(self):
        cfg, rng = self.cfg, self.rng
        one_d = len(cfg.in_shape) == 3
        shape = cfg.in_shape if not one_d else (cfg.in_shape[0], cfg.in_shape[1], 1, cfg.in_shape[2])
        batch = 16  # calibration images: enough for BatchNorm statistics, quick for CNV sizes
        x_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(cfg.in_shape))
        in_scale = self.scale(1.0 / (2 ** cfg.in_bits - 1))
        tensor = self.quant("input", in_scale, cfg.in_bits, False, False)
        self.act = (in_scale, cfg.in_bits, False)  # the latest activation's scale, bits, signedness
        raw = rng.uniform(0, 1, (batch, *shape[1:]))
        sample = _quant_int(raw, in_scale, cfg.in_bits, False, False) * in_scale
        if cfg.pad_op:
            p = cfg.pad_op
            pads = [0, 0, p, p, 0, 0, p, p] if not one_d else [0, 0, p, 0, 0, p]
            tensor = self.node("Pad", [tensor, self._int_const(pads)], mode="constant")
            sample = np.pad(sample, ((0, 0), (0, 0), (0 if one_d else p, 0 if one_d else p), (p, p)))
        first = True
        features = list(cfg.features)
        for index, layer in enumerate(features):
            if isinstance(layer, AvgPoolCfg):
                tensor, sample = self.avgpool(tensor, sample, layer, one_d)
                continue
            if isinstance(layer, ResidualCfg):
                tensor, sample = self.residual(tensor, sample, layer)
                first = False
                continue
            if isinstance(layer, PoolCfg):
                if layer.in_chain and index > 0 and isinstance(features[index - 1], ConvCfg):
                    continue  # emitted by the conv before it, between the conv and its activation
                tensor, sample = self.maxpool(tensor, sample, layer, one_d)
                if layer.mul_after:
                    tensor = self.node("Mul", [tensor, self.const(layer.mul_after)])
                    sample = sample * layer.mul_after
                continue
            following = features[index + 1] if index + 1 < len(features) else None
            chain_pool = following if isinstance(following, PoolCfg) and following.in_chain else None
            tensor, sample = self.conv(tensor, sample, layer, one_d, first, chain_pool)
            first = False
        tensor = self.node("Flatten", [tensor], axis=1)
        sample = sample.reshape(batch, -1)
        width_in = sample.shape[1]
        for index, layer in enumerate(cfg.fc):
            tensor, sample = self.fc(tensor, sample, width_in, layer, index == len(cfg.fc) - 1)
            width_in = layer.width
        out_type = TensorProto.FLOAT
        if cfg.tail == "argmax":
            tensor = self.node("ArgMax", [tensor], axis=1, keepdims=1)
            out_type = TensorProto.INT64
        self.nodes[-1].output[0] = "output"
        graph = helper.make_graph(self.nodes, "convnet", [x_in],
                                  [helper.make_tensor_value_info("output", out_type, None)],
                                  initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model

    def _int_const(self, values):
        from onnx import numpy_helper
        name = self.name("pads")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def maxpool(self, tensor, sample, layer: PoolCfg, one_d):
        k = (1, layer.kernel) if one_d else (layer.kernel, layer.kernel)
        s = (1, layer.stride) if one_d else (layer.stride, layer.stride)
        p = layer.pad
        attrs = {"pads": [p] * (2 if one_d else 4)} if p else {}
        tensor = self.node("MaxPool", [tensor], kernel_shape=list(k[1:] if one_d else k),
                           strides=list(s[1:] if one_d else s), **attrs)
        if p:
            sample = np.pad(sample, ((0, 0), (0, 0), (0 if one_d else p, 0 if one_d else p), (p, p)),
                            constant_values=-np.inf)
        return tensor, sliding_window_view(sample, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))

    def avgpool(self, tensor, sample, layer: AvgPoolCfg, one_d):
        scale, bits, signed = self.act
        if self.cfg.bipolar:
            raise ValueError("average pooling of bipolar activations is not generated")
        if layer.kernel:
            k = (1, layer.kernel) if one_d else (layer.kernel, layer.kernel)
            tensor = self.node("AveragePool", [tensor], kernel_shape=list(k[1:] if one_d else k),
                               strides=list(k[1:] if one_d else k))
            windows = sliding_window_view(sample, k, axis=(2, 3))[:, :, ::k[0], ::k[1]]
            sums, window = windows.sum(axis=(4, 5)), k[0] * k[1]
        else:
            tensor = self.node("GlobalAveragePool", [tensor])
            sums, window = sample.sum(axis=(2, 3), keepdims=True), sample.shape[2] * sample.shape[3]
        tensor = self.node("Mul", [tensor, self.const(float(window))])  # back to the window sum
        extra = int(np.ceil(np.log2(window)))
        tensor = self.node("Trunc", [tensor, self.const(scale), self.const(0.0), self.const(float(bits + extra)),
                                     self.const(float(bits))], domain=QDOMAIN, rounding_mode="FLOOR")
        q = np.floor(np.round(sums / scale) / 2 ** extra)
        return tensor, q * scale

    def residual(self, tensor, sample, block: ResidualCfg):
        in_scale, _, _ = self.act
        if block.downsample:
            short_cfg = ConvCfg(block.channels, kernel=1, stride=block.stride, w_bits=block.w_bits,
                                a_bits=block.a_bits, a_signed=True, relu=False)
            short, short_sample = self.conv(tensor, sample, short_cfg, False, False, None)
            short_scale = self.act[0]
        else:
            if block.stride != 1 or block.channels != sample.shape[1]:
                raise ValueError("an identity shortcut needs stride 1 and equal channels")
            short, short_sample, short_scale = tensor, sample, in_scale
        long, long_sample = tensor, sample
        # (channels, kernel, stride) of each conv on the long branch
        if block.bottleneck:
            plan = [(block.bottleneck, 1, 1), (block.bottleneck, 3, block.stride), (block.channels, 1, 1)]
        else:
            plan = [(block.channels, block.kernel, block.stride if index == 0 else 1)
                    for index in range(block.long_convs)]
        for index, (channels, kernel, stride) in enumerate(plan):
            pad = kernel // 2
            if index < len(plan) - 1:
                mid = ConvCfg(channels, kernel=kernel, stride=stride, pad=pad, w_bits=block.w_bits,
                              a_bits=block.a_bits)
                long, long_sample = self.conv(long, long_sample, mid, False, False, None)
                continue
            last = ConvCfg(channels, kernel=kernel, stride=stride, pad=pad, w_bits=block.w_bits,
                           a_bits=block.a_bits, a_signed=True, relu=False)
            long, long_sample = self.conv(long, long_sample, last, False, False, None,
                                          a_scale=short_scale * block.scale_ratio)
        if block.merge == "concat":
            self.act = (short_scale, block.a_bits, True)
            return self.node("Concat", [long, short], axis=1), np.concatenate([long_sample, short_sample], axis=1)
        total = self.node("Relu", [self.node("Add", [long, short])])
        post = np.maximum(long_sample + short_sample, 0)
        spread = float(np.percentile(post, 90)) + 1e-3
        scale = self.scale(spread / (2 ** block.a_bits - 1))
        self.act = (scale, block.a_bits, False)
        return self.quant(total, scale, block.a_bits, False, False), \
            _quant_int(post, scale, block.a_bits, False, False) * scale

    def conv(self, tensor, sample, layer: ConvCfg, one_d, first, chain_pool, a_scale=None):
        cfg, rng = self.cfg, self.rng
        c_in = sample.shape[1]
        c_out = c_in if layer.depthwise else layer.channels
        k = (1, layer.kernel) if one_d else (layer.kernel, layer.kernel)
        s = (1, layer.stride) if one_d else (layer.stride, layer.stride)
        p = (0, layer.pad) if one_d else (layer.pad, layer.pad)
        groups = c_in if layer.depthwise else 1
        bipolar_w = cfg.bipolar and not first or layer.w_bits == 1
        w_bits = 1 if bipolar_w else layer.w_bits
        levels = 1 if bipolar_w else 2 ** (w_bits - 1)
        w_scale = self.scale(0.5 / levels)
        w_shape = (c_out, c_in // groups, *k)
        w_float = rng.normal(0, 0.6, w_shape) * w_scale * levels
        w_int = _quant_int(w_float, w_scale, w_bits, True, False)
        onnx_w = w_float if not one_d else w_float[:, :, 0]
        if bipolar_w:
            w_q = self.node("BipolarQuant", [self.const(onnx_w, "W"), self.const(w_scale)], domain=QDOMAIN)
        else:
            w_q = self.node("Quant", [self.const(onnx_w, "W"), self.const(w_scale), self.const(0.0),
                                      self.const(float(w_bits))], domain=QDOMAIN, signed=1, narrow=0,
                            rounding_mode="ROUND")
        pre = _conv(sample, w_int * w_scale, s, p, groups)
        inputs = [tensor, w_q]
        if layer.bias:
            bias = np.round(rng.normal(0, 0.3 * (pre.std() + 1e-3), c_out) * 16) / 16
            bias_tensor = self.const(bias, "bias")
            if layer.bias_bits:
                bias_tensor = self.quant(bias_tensor, 1 / 64, layer.bias_bits, True, False)
                bias = _quant_int(bias, 1 / 64, layer.bias_bits, True, False) / 64
            inputs.append(bias_tensor)
            pre = pre + bias[None, :, None, None]
        attrs = dict(kernel_shape=list(k[1:] if one_d else k), strides=list(s[1:] if one_d else s),
                     pads=[p[1], p[1]] if one_d else [p[0], p[1], p[0], p[1]], group=groups)
        tensor = self.node("Conv", inputs, **attrs)
        if chain_pool is not None:  # pooled before the activation: statistics after the pool
            tensor, pre = self.maxpool(tensor, pre, chain_pool, one_d)
        mean, std = pre.mean(axis=(0, 2, 3)), pre.std(axis=(0, 2, 3)) + 1e-3
        # Negative gains only without a pool in the chain (a falling activation cannot pass a max pool).
        flip = [1.0] if chain_pool else [-1, 1]
        gamma = rng.uniform(0.5, 2.0, c_out) * rng.choice(flip, c_out)
        beta = rng.normal(0, 0.3, c_out)
        tensor = self.node("BatchNormalization", [tensor, self.const(gamma), self.const(beta),
                                                  self.const(mean), self.const(std ** 2)], epsilon=1e-5)
        post = (pre - mean[None, :, None, None]) / np.sqrt(std[None, :, None, None] ** 2 + 1e-5) \
            * gamma[None, :, None, None] + beta[None, :, None, None]
        if cfg.bipolar:
            tensor = self.node("BipolarQuant", [tensor, self.const(1.0)], domain=QDOMAIN)
            return tensor, np.where(post >= 0, 1.0, -1.0)
        if layer.relu:
            tensor = self.node("Relu", [tensor])
            post = np.maximum(post, 0)
        spread = float(np.percentile(np.abs(post), 90)) + 1e-3
        a_levels = 2 ** (layer.a_bits - 1) if layer.a_signed else 2 ** layer.a_bits - 1
        a_scale = a_scale or self.scale(spread / max(a_levels, 1))
        tensor = self.quant(tensor, a_scale, layer.a_bits, layer.a_signed, False)
        self.act = (a_scale, layer.a_bits, layer.a_signed)
        return tensor, _quant_int(post, a_scale, layer.a_bits, layer.a_signed, False) * a_scale


def make_convnet(cfg: ConvNetCfg, seed: int = 0):
    mlp_view = MLPCfg(in_shape=cfg.in_shape)  # the shared helpers read dyadic/input from it
    builder = _ConvBuilder(mlp_view, seed)
    builder.cfg = cfg
    mlp_view.dyadic = cfg.dyadic
    return builder.build()


def cnv(weight_bits: int, act_bits: int) -> ConvNetCfg:
    """The FINN/Brevitas CNV topology: 3x32x32 8-bit input, six 3x3 convs 64-64-128-128-256-256
    with two 2x2 max pools, FC 512-512-10. 1-bit: bipolar (XNOR) layers after the first."""
    bipolar = weight_bits == 1 and act_bits == 1
    conv = [ConvCfg(c, w_bits=weight_bits, a_bits=act_bits, a_signed=True, relu=False)
            for c in (64, 64, 128, 128, 256, 256)]
    features = conv[:2] + [PoolCfg()] + conv[2:4] + [PoolCfg()] + conv[4:]
    fc = [LayerCfg(512, w_bits=weight_bits, a_bits=act_bits, a_signed=True, bipolar_op=bipolar)
          for _ in range(2)] + [LayerCfg(10, w_bits=weight_bits, norm="none")]
    return ConvNetCfg(in_shape=(1, 3, 32, 32), in_bits=8, features=features, fc=fc, bipolar=bipolar)


CNV_W1A1 = cnv(1, 1)
CNV_W2A2 = cnv(2, 2)

# The smallest residual network: a padded conv, one identity block (a fork, two convs, an add), an FC.
TINY_RESIDUAL = ConvNetCfg(in_shape=(1, 3, 8, 8), features=[ConvCfg(4, pad=1), ResidualCfg(4)],
                           fc=[LayerCfg(10, norm="none")])


def resnet8(bits: int = 2, merge: str = "add", scale_ratio: int = 1, dyadic: bool = True) -> ConvNetCfg:
    """A ResNet-8-like CIFAR-10 net: a 16-channel stem, three basic blocks (16 identity, 32 and
    64 with stride-2 1x1 downsample shortcuts), a quantized global average pool, FC 10.
    `merge="concat"`: the first block concatenates its branches (32 channels out)."""
    block = dict(w_bits=bits, a_bits=bits)
    features = [ConvCfg(16, pad=1, **block),
                ResidualCfg(16, merge=merge, scale_ratio=scale_ratio, **block),
                ResidualCfg(32, stride=2, downsample=True, **block),
                ResidualCfg(64, stride=2, downsample=True, **block),
                AvgPoolCfg()]
    return ConvNetCfg(in_shape=(1, 3, 32, 32), in_bits=8, features=features,
                      fc=[LayerCfg(10, w_bits=bits, norm="none")], dyadic=dyadic)


def imagenet_resnet(depth: int, w_bits: int = 4, a_bits: int = 4, size: int = 224, classes: int = 1000,
                    width: float = 1.0) -> ConvNetCfg:
    """A torchvision-style ResNet-18 or -50 for ImageNet: a 7x7/2 stem, the 3x3/2 pad-1 max pool,
    four stages of basic (18) or bottleneck (50: 1x1-3x3-1x1, 4x expansion) blocks, each stage
    after the first opening with stride 2 and a 1x1 downsample shortcut, a quantized global
    average pool and an FC. The stem and FC keep 8-bit weights (as finn-examples' ResNet-50)."""
    stages = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    block = dict(w_bits=w_bits, a_bits=a_bits)
    channels = [max(1, int(c * width)) for c in (64, 128, 256, 512)]
    features = [ConvCfg(channels[0], kernel=7, stride=2, pad=3, w_bits=8, a_bits=a_bits),
                PoolCfg(kernel=3, stride=2, pad=1)]
    current = channels[0]
    for stage, (count, mid) in enumerate(zip(stages, channels)):
        out = mid * 4 if depth == 50 else mid
        for index in range(count):
            stride = 2 if stage and not index else 1
            features.append(ResidualCfg(out, stride=stride, downsample=stride != 1 or current != out,
                                        bottleneck=mid if depth == 50 else 0, **block))
            current = out
    features.append(AvgPoolCfg())
    return ConvNetCfg(in_shape=(1, 3, size, size), in_bits=8, features=features,
                      fc=[LayerCfg(classes, w_bits=8, norm="none")])


def mobilenet_v1(width: float = 0.25, bits: int = 4, blocks: int = 13, size: int = 32) -> ConvNetCfg:
    """MobileNet-v1 (Howard et al.) on CIFAR-sized inputs: a 3x3 stem, `blocks` depthwise
    separable blocks (depthwise 3x3 + BN + ReLU + quant, pointwise 1x1 + BN + ReLU + quant) with
    the paper's channel plan times `width` and its stride-2 blocks, a quantized global average
    pool and FC 10. The stem keeps stride 1 (32x32 inputs are 7x smaller than ImageNet's)."""
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    block = dict(w_bits=bits, a_bits=bits)
    features = [ConvCfg(max(1, int(32 * width)), pad=1, **block)]
    for channels, stride in plan[:blocks]:
        features.append(ConvCfg(0, kernel=3, stride=stride, pad=1, depthwise=True, **block))
        features.append(ConvCfg(max(1, int(channels * width)), kernel=1, **block))
    features.append(AvgPoolCfg())
    return ConvNetCfg(in_shape=(1, 3, size, size), in_bits=8, features=features,
                      fc=[LayerCfg(10, w_bits=bits, norm="none")])
