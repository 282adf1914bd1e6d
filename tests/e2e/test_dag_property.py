"""Property: any random small branching net with any legal folding is bit-exact in rtlsim.

Random stems, residual blocks (identity or 1x1 downsample shortcuts, 1-2 convs of kernel 1
or 3 on the long branch, scale ratios 1 or 2), channel concatenations, max pools between
blocks, 2-4 bit weights and activations, random PE/SIMD and backpressure.
"""
from hypothesis import given
from hypothesis import strategies as st
from support.convgen import ConvCfg, ConvNetCfg, PoolCfg, ResidualCfg, make_convnet
from support.modelgen import LayerCfg
from support.properties import check_random_folding, property_settings


@st.composite
def dag_cfgs(draw):
    in_channels, size = draw(st.integers(1, 3)), draw(st.integers(5, 9))
    in_size = size
    bits = st.integers(2, 4)
    channels, kernel = draw(st.integers(2, 5)), draw(st.sampled_from([1, 3]))
    features = [ConvCfg(channels, kernel=kernel, pad=kernel // 2, w_bits=draw(bits), a_bits=draw(bits))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["add", "add", "concat", "pool"]))
        if kind == "pool":
            if size >= 4:
                features.append(PoolCfg())
                size //= 2
            continue
        stride = draw(st.sampled_from([1, 2])) if size >= 4 else 1
        out = draw(st.integers(1, 5))
        downsample = stride == 2 or out != channels or draw(st.booleans())
        features.append(ResidualCfg(
            out, stride=stride, downsample=downsample, w_bits=draw(bits), a_bits=draw(bits), merge=kind,
            scale_ratio=draw(st.sampled_from([1, 1, 2])) if kind == "add" else 1,
            long_convs=draw(st.integers(1, 2)), kernel=draw(st.sampled_from([1, 3]))))
        size = (size - 1) // stride + 1
        channels = out * (2 if kind == "concat" else 1)
    fc = [LayerCfg(draw(st.integers(2, 6)), w_bits=draw(bits), norm="none")]
    return ConvNetCfg(in_shape=(1, in_channels, in_size, in_size), features=features, fc=fc)


@property_settings("FINN_RTL_DAG_PROPERTY_EXAMPLES", 10)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_random_branching_net_bit_exact_in_rtlsim(seed, data, tmp_path_factory):
    cfg = data.draw(dag_cfgs())
    check_random_folding(data, make_convnet(cfg, seed=seed), tmp_path_factory.mktemp("dag"), seed)
