"""The board-side driver under numpy 1.x (PYNQ images pin numpy<2): the same packed buffers and
host-side results as under this environment's numpy."""
import json
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.flow import build, random_inputs
from finn_rtl.platforms import driver
from finn_rtl.platforms.host import driver_description

NUMPY1 = "numpy==1.26.4"
SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import driver
assert np.__version__.startswith("1."), np.__version__
desc = json.load(open(sys.argv[2]))
x = np.load(sys.argv[3])
ints = driver.quantize_input(x, desc["input"])
packed = driver.pack_frames(ints, desc["input"])
out_ints = np.load(sys.argv[4])
np.savez(sys.argv[5], ints=ints, packed=packed, unpacked=driver.unpack_frames(driver.pack_frames(out_ints,
         desc["output"]), desc["output"]), output=driver.model_output(out_ints, desc["output"]))
"""


def numpy1_python() -> Path:
    base = Path(os.environ.get("FINN_RTL_CACHE") or Path.home() / ".cache" / "finn-rtl") / "numpy1-venv"
    python = base / "bin" / "python"
    if not python.exists():
        venv.create(base, with_pip=True)
    if subprocess.run([str(python), "-c", "import numpy"], capture_output=True).returncode != 0:
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", NUMPY1], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot install {NUMPY1}: {result.stderr.strip().splitlines()[-1:]}")
    return python


def test_driver_under_numpy1(tmp_path):
    python = numpy1_python()
    cfg = MLPCfg(in_shape=(1, 20), in_bits=5, layers=[LayerCfg(6, a_signed=True), LayerCfg(3)])
    onnx.save(make_mlp(cfg, seed=8), str(tmp_path / "model.onnx"))
    b = build(tmp_path / "model.onnx", tmp_path / "out", folding={"MatMul_0": {"PE": 2, "SIMD": 4}})
    desc = driver_description(b, 8, design_id=1, ip_name="k", platform="zynq", clock_mhz=100.0)
    (tmp_path / "desc.json").write_text(json.dumps(desc))
    x = random_inputs(b, 40, seed=1)
    np.save(tmp_path / "x.npy", x)
    out_ints = b.network.reference(b.network.to_stream(b.input_quantizer.quantize(x)))
    np.save(tmp_path / "out.npy", out_ints)
    (tmp_path / "check.py").write_text(SCRIPT)
    subprocess.run([str(python), str(tmp_path / "check.py"), str(Path(driver.__file__).parent), str(tmp_path / "desc.json"),
                    str(tmp_path / "x.npy"), str(tmp_path / "out.npy"), str(tmp_path / "np1.npz")], check=True)
    old = np.load(tmp_path / "np1.npz")
    ints = driver.quantize_input(x, desc["input"])
    assert np.array_equal(old["ints"], ints)
    assert np.array_equal(old["packed"], driver.pack_frames(ints, desc["input"]))
    assert np.array_equal(old["unpacked"], out_ints)
    assert np.array_equal(old["output"], driver.model_output(out_ints, desc["output"]))
