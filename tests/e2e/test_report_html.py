"""report.html renders in a real browser: headless Chromium (Debian's `chromium`) takes a
screenshot of a verified, synthesized build's page offline, and the screenshot has content."""
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from support.modelgen import LayerCfg, MLPCfg, make_mlp

from finn_rtl.flow import build, verify
from finn_rtl.flow.verification import random_inputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt install chromium)")]


def test_report_html_renders_in_chromium(tmp_path):
    onnx.save(make_mlp(MLPCfg(in_shape=(1, 32), layers=[LayerCfg(16), LayerCfg(8)]), seed=2), str(tmp_path / "m.onnx"))
    b = build(tmp_path / "m.onnx", tmp_path / "out", target_ii=16, synth=True)
    verify(b, random_inputs(b, 20))
    page = tmp_path / "out" / "report.html"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    from matplotlib import image

    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    ink = np.mean(pixels.min(axis=2) < 0.9)  # share of pixels that are not (near) white
    colour = np.mean(np.ptp(pixels, axis=2) > 0.2)  # chart bars and highlights are coloured
    assert ink > 0.03 and colour > 0.005, (ink, colour)
