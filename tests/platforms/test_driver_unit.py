"""The host driver's numpy parts and its timeout diagnosis, without a simulation."""
import sys
import types

import numpy as np
import pytest

from finn_rtl.platforms import driver
from finn_rtl.platforms.gearbox import MemoryLayout
from finn_rtl.platforms.shell import REGISTERS, STATUS_BITS


def port(bits, signed, bipolar, lanes, beats, word_bytes):
    beat_bytes = max(1, -(-lanes * bits // 8))
    return {"qtype": {"bits": bits, "signed": signed, "bipolar": bipolar}, "lanes": lanes,
            "layout": MemoryLayout(word_bytes, beat_bytes, beats).to_dict()}


@pytest.mark.parametrize("bits, signed, bipolar, lanes, beats, word_bytes", [
    (1, True, True, 16, 49, 8), (4, False, False, 3, 10, 8), (3, True, False, 7, 5, 16), (8, True, False, 196, 4, 8),
    (2, True, False, 1, 9, 64)])
def test_pack_unpack_round_trip(bits, signed, bipolar, lanes, beats, word_bytes):
    p = port(bits, signed, bipolar, lanes, beats, word_bytes)
    rng = np.random.default_rng(bits)
    lo, hi = (-1, 1) if bipolar else (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    ints = rng.choice([-1, 1], (5, lanes * beats)) if bipolar else rng.integers(lo, hi + 1, (5, lanes * beats))
    packed = driver.pack_frames(ints, p)
    assert packed.shape == (5, p["layout"]["frame_bytes"]) and p["layout"]["frame_bytes"] % word_bytes == 0
    assert np.array_equal(driver.unpack_frames(packed, p), ints)
    # element 0 sits in the lowest bits of the frame's first byte
    assert packed[0, 0] & ((1 << min(bits, 8)) - 1) == int(driver.encode(ints[0, :1], p["qtype"])[0]) & 0xFF


class StuckIP:
    """An IP that never finishes: reads show a run that has read everything but written nothing."""

    values = {REGISTERS["CTRL"]: 1, REGISTERS["STATUS"]: 0, REGISTERS["DESIGN_ID"]: 0x1234,
              REGISTERS["WORDS_READ"]: 2, REGISTERS["WORDS_WRITTEN"]: 0}

    def read(self, offset):
        return self.values.get(offset, 0)

    def write(self, offset, value):
        pass


def test_timeout_dumps_and_explains_status(tmp_path, monkeypatch):
    fake = types.ModuleType("pynq")
    fake.allocate = lambda shape, dtype, **kwargs: FakeBuffer(shape, dtype)
    monkeypatch.setitem(sys.modules, "pynq", fake)
    desc = {"registers": REGISTERS, "status_bits": {str(k): v for k, v in STATUS_BITS.items()}, "design_id": 0x1234,
            "ip_name": "accel_0", "platform": "zynq", "expected_ii_cycles": 10, "clock_mhz": 100.0, "word_bytes": 8,
            "input": {"layout": {"frame_bytes": 8}}, "output": {"layout": {"frame_bytes": 8}}}
    accel = driver.Accelerator.__new__(driver.Accelerator)
    accel.pynq, accel.desc, accel.reg, accel.timeout, accel.max_frames = fake, desc, REGISTERS, 0.05, 4
    accel.ip, accel.overlay, accel._buffers = StuckIP(), types.SimpleNamespace(), None
    with pytest.raises(driver.AcceleratorTimeout) as info:
        accel.run_packed(np.zeros((2, 8), dtype=np.uint8))
    text = str(info.value)
    assert "CTRL=0x1" in text and "input words read 2 of 2, output words written 0 of 2" in text
    assert "the accelerator or the write path stalls" in text


class FakeBuffer(np.ndarray):
    def __new__(cls, shape, dtype):
        buffer = np.zeros(shape, dtype).view(cls)
        buffer.physical_address = 0x1000
        return buffer

    def sync_to_device(self):
        pass

    sync_from_device = sync_to_device


def test_host_ops_the_driver_cannot_run_are_refused():

    from onnx import TensorProto, helper

    from finn_rtl.graph.errors import CompileError
    from finn_rtl.platforms.host import input_steps

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"], name="scale"), helper.make_node("Relu", ["y"], ["z"], name="clip")],
        "prefix", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    prefix = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    with pytest.raises(CompileError, match="node 'clip' \\(Relu\\): op Relu before the first quantizer cannot run"):
        input_steps(prefix)



@pytest.mark.parametrize("per_channel", [True, False])
def test_multithreshold_input_quantizer_runs_in_numpy(tmp_path, per_channel):
    """A FINN-dialect model on a float input: its first MultiThreshold runs in the driver's numpy."""
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    from finn_rtl.flow import build
    from finn_rtl.platforms.driver import quantize_input
    from finn_rtl.platforms.host import check_host_input, driver_description

    rng = np.random.default_rng(8)
    channels = 12 if per_channel else 1
    t_in = np.sort(rng.uniform(-1, 1, (channels, 15)), axis=1).astype(np.float32)
    w0 = rng.integers(-2, 2, (12, 6)).astype(np.float32)
    t0 = np.sort(rng.integers(-20, 20, (6, 3)), axis=1).astype(np.float32) + 0.5
    nodes = [helper.make_node("MultiThreshold", ["x", "t_in"], ["q"], domain="qonnx.custom_op.general",
                              out_dtype="UINT4", out_scale=0.25, name="input_mt"),
             helper.make_node("MatMul", ["q", "w0"], ["acc"], name="MatMul_0"),
             helper.make_node("MultiThreshold", ["acc", "t0"], ["y"], domain="qonnx.custom_op.general",
                              out_dtype="UINT2", name="act_0")]
    graph = helper.make_graph(nodes, "mt_input", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                              [numpy_helper.from_array(a, n) for a, n in ((t_in, "t_in"), (w0, "w0"), (t0, "t0"))])
    wrapper = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    wrapper.set_tensor_datatype("w0", DataType["INT2"])
    import onnx

    onnx.save(wrapper.model, str(tmp_path / "m.onnx"))
    b = build(tmp_path / "m.onnx", tmp_path / "out")
    description = driver_description(b, 8, design_id=1, ip_name="finn_rtl_top", platform="pynq-z2", clock_mhz=100)
    assert [step["op"] for step in description["input"]["steps"]][-1] == "multithreshold"
    x = rng.uniform(-1.2, 1.2, (500, 12)).astype(np.float32)
    x[:20] = t_in[0, rng.integers(0, 15, 20)][:, None]  # values on a threshold: >= counts them
    check_host_input(b, description, x)
    expected = b.network.to_stream(b.input_quantizer.quantize(x))
    assert np.array_equal(quantize_input(x, description["input"]), expected)
