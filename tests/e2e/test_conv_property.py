"""Property: any random quantized conv net with any legal folding is bit-exact in rtlsim.

Random 1-D and 2-D nets: kernel 1-5, stride 1-2, padding, 1-6 channels,
depthwise layers, max pools after or inside the activation chain, quantized
average pools (Trunc), 1-4 bit
weights and activations (or all bipolar), random PE/SIMD and backpressure.
"""
from hypothesis import given
from hypothesis import strategies as st
from support.convgen import AvgPoolCfg, ConvCfg, ConvNetCfg, PoolCfg, make_convnet
from support.modelgen import LayerCfg
from support.properties import check_random_folding, property_settings


@st.composite
def conv_net_cfgs(draw):
    one_d = draw(st.booleans())
    channels = draw(st.integers(1, 4))
    width = draw(st.integers(4, 12))
    height = 1 if one_d else draw(st.integers(4, 10))
    in_shape = (1, channels, width) if one_d else (1, channels, height, width)
    bipolar = draw(st.booleans())
    features = []
    bipolar_before = False  # a 1-bit signed activation quantizer is bipolar, even in a non-bipolar net
    for index in range(draw(st.integers(1, 3))):
        first = index == 0
        # Bipolar activations have no zero to pad with (finn-rtl refuses it, naming the layer);
        # only the 8-bit input can be padded then.
        pad = draw(st.integers(0, 2)) if (first or not (bipolar or bipolar_before)) else 0
        smallest = width if one_d else min(width, height)
        kernel = draw(st.integers(1, min(5, smallest + 2 * pad)))
        pad = min(pad, kernel - 1)  # padding beyond the kernel would only add border
        stride = draw(st.integers(1, 2))
        features.append(ConvCfg(
            draw(st.integers(1, 6)), kernel=kernel, stride=stride, pad=pad,
            depthwise=not first and not bipolar and draw(st.booleans()),
            w_bits=draw(st.integers(1, 4)), a_bits=draw(st.integers(1, 4)), a_signed=draw(st.booleans()),
            relu=draw(st.booleans()), bias=draw(st.booleans())))
        bipolar_before = features[-1].a_bits == 1 and features[-1].a_signed
        width = (width + 2 * pad - kernel) // stride + 1
        if not one_d:
            height = (height + 2 * pad - kernel) // stride + 1
        pool = draw(st.sampled_from(["none", "max", "avg"] if not bipolar else ["none", "max"]))
        if min(width, height if not one_d else width) >= 2 and pool != "none":
            features.append(PoolCfg(in_chain=draw(st.booleans())) if pool == "max" else AvgPoolCfg(2))
            width, height = width // 2, height if one_d else height // 2
        if min(width, height) < 3:
            break
    fc = [LayerCfg(draw(st.integers(2, 6)), w_bits=1 if bipolar else draw(st.integers(1, 4)), norm="none")]
    return ConvNetCfg(in_shape=in_shape, features=features, fc=fc, bipolar=bipolar)


@property_settings("FINN_RTL_CONV_PROPERTY_EXAMPLES", 25)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_random_conv_net_bit_exact_in_rtlsim(seed, data, tmp_path_factory):
    cfg = data.draw(conv_net_cfgs())
    check_random_folding(data, make_convnet(cfg, seed=seed), tmp_path_factory.mktemp("conv"), seed)
