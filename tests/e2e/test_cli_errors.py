"""Never a traceback: bad arguments and data are refused before any work in one line, internal
errors say they are bugs and leave error_report.txt, and mutated models never crash the CLI."""
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.cli import main

CFG = MLPCfg(in_shape=(1, 12), layers=[LayerCfg(6, w_bits=2, a_bits=2), LayerCfg(4, w_bits=2)])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(make_mlp(CFG, seed=1), str(path))
    return path


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finn-rtl: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("extra, fragment", [
    (["--verify", "0"], "--verify 0"), (["--target-ii", "-3"], "--target-ii -3"),
    (["--target-fps", "0"], "--target-fps 0"), (["--target-fps", "5", "--target-ii", "4"], "give one"),
    (["--max-luts", "-1"], "--max-luts -1"),
    (["--verify", "5", "--ready-percent", "0"], "--ready-percent 0"),
    (["--verify", "5", "--valid-percent", "101"], "--valid-percent 101"),
])
def test_bad_arguments_are_refused_before_work(model_file, tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    assert main(["build", str(model_file), "-o", str(out), *extra]) == 2
    one_error_line(capsys, fragment)
    assert not out.exists()


def test_output_naming_a_file(model_file, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["build", str(model_file), "-o", str(tmp_path / "f")]) == 2
    one_error_line(capsys, "is a file")


@pytest.mark.parametrize("content, fragment", [
    ({"inputs": np.zeros((3, 12))}, "has no array 'x' (it has inputs)"),
    ({"x": np.full((3, 12), np.nan)}, "NaN or infinite"),
    ({"x": np.zeros((3, 13))}, "the model takes (12,)"),
    ({"x": np.zeros((3, 12)), "y": np.zeros(2)}, "2 labels for 3 frames"),
])
def test_bad_data_is_refused_before_the_build(model_file, tmp_path, capsys, content, fragment):
    data = tmp_path / "data.npz"
    np.savez(data, **content)
    out = tmp_path / "out"
    assert main(["build", str(model_file), "-o", str(out), "--verify", "3", "--data", str(data)]) == 2
    one_error_line(capsys, fragment)
    assert not out.exists()


def test_internal_errors_write_a_report(model_file, tmp_path, capsys, monkeypatch):
    import finn_rtl.flow

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(finn_rtl.flow, "build", broken)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["build", str(model_file), "-o", str(out)]) == 2
    one_error_line(capsys, "internal error (a bug in finn-rtl", "ZeroDivisionError: a bug", "error_report.txt")
    report = (out / "error_report.txt").read_text()
    assert "Traceback" in report and "qonnx " in report and "mlp.onnx" in report



@pytest.mark.parametrize("error", [BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"),
                                   RuntimeError("a Ray call failed")])
def test_an_error_after_the_cluster_head_went_away_says_the_cluster_was_lost(model_file, tmp_path, capsys,
                                                                          monkeypatch, error):
    """Killing a Ray head mid-run sometimes ends the driver silently (the supervisor says so) and
    sometimes surfaces first as whatever error Ray's socket raised in the driver: that error is
    the lost cluster, not a bug and not a bare "Broken pipe"."""
    import finn_rtl.flow
    from finn_rtl import cluster

    def head_gone(*args, **kwargs):
        raise error

    monkeypatch.setattr(cluster, "connect", lambda address: None)
    monkeypatch.setattr(finn_rtl.flow, "build", head_gone)
    out = tmp_path / "out"
    assert main(["build", str(model_file), "-o", str(out), "--cluster", "127.0.0.1:1"]) == 2
    one_error_line(capsys, "lost the Ray cluster at 127.0.0.1:1 during the run (its head does not answer: "
                   f"Connection refused; the run stopped on {type(error).__name__}: {error}); run it again when "
                   "the cluster is back")
    assert not (out / "error_report.txt").exists()


def test_an_error_while_the_cluster_head_answers_is_reported_as_itself(model_file, tmp_path, capsys, monkeypatch):
    import socket

    import finn_rtl.flow
    from finn_rtl import cluster

    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()

        def broken_pipe(*args, **kwargs):
            raise BrokenPipeError(32, "Broken pipe")

        monkeypatch.setattr(cluster, "connect", lambda address: None)
        monkeypatch.setattr(finn_rtl.flow, "build", broken_pipe)
        address = "127.0.0.1:%d" % head.getsockname()[1]
        assert main(["build", str(model_file), "-o", str(tmp_path / "out"), "--cluster", address]) == 2
    one_error_line(capsys, "finn-rtl: error: Broken pipe")


def mutate(model: onnx.ModelProto, kind: str, index: int, value: float) -> bytes:
    graph = model.graph
    if kind == "truncate":
        data = model.SerializeToString()
        return data[: index % max(1, len(data))]
    if kind == "flip-byte":
        data = bytearray(model.SerializeToString())
        data[index % len(data)] ^= 0xFF
        return bytes(data)
    if kind == "drop-initializer":
        del graph.initializer[index % len(graph.initializer)]
    elif kind == "rename-initializer":
        graph.initializer[index % len(graph.initializer)].name += "_renamed"
    elif kind == "scale-initializer":
        init = graph.initializer[index % len(graph.initializer)]
        array = onnx.numpy_helper.to_array(init).astype(np.float32) * np.float32(value)
        init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    elif kind == "reshape-input":
        graph.input[0].type.tensor_type.shape.dim[-1].dim_value = 1 + index % 20
    elif kind == "attribute":
        node = graph.node[index % len(graph.node)]
        if node.attribute:
            attribute = node.attribute[index % len(node.attribute)]
            number = int(value) if np.isfinite(value) and abs(value) < 2 ** 31 else 7
            attribute.CopyFrom(onnx.helper.make_attribute(attribute.name, number))
    elif kind == "datatype":
        graph.initializer[index % len(graph.initializer)].data_type = onnx.TensorProto.INT32
    elif kind == "unsupported-op":
        node = graph.node[index % len(graph.node)]
        node.op_type = ["Tanh", "LSTM", "Gather", "Where", "Conv"][index % 5]
    elif kind == "drop-node":
        del graph.node[index % len(graph.node)]
    return model.SerializeToString()


KINDS = ["truncate", "flip-byte", "drop-initializer", "rename-initializer", "scale-initializer", "reshape-input",
         "attribute", "datatype", "unsupported-op", "drop-node"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), index=st.integers(0, 10_000),
       value=st.sampled_from([0.0, -1.0, 0.5, 3.0, 1e30, float("nan"), 17.0]))
def test_mutated_models_never_crash_the_cli(tmp_path_factory, capsys, kind, index, value):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "m.onnx"
    path.write_bytes(mutate(make_mlp(CFG, seed=1), kind, index, value))
    status = main(["build", str(path), "-o", str(tmp / "out")])
    err = capsys.readouterr().err
    assert status in (0, 1, 2) and "Traceback" not in err
    if status:
        assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err, err
