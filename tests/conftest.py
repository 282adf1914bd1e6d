import shutil
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parent
SHARED = TESTS.parent.parent / "shared"


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def mnist():
    data = np.load(shared_file("data/mnist_test.npz"))
    return (data["x"].astype(np.float32) / 255).reshape(-1, 1, 28, 28), data["y"]


def pytest_collection_modifyitems(config, items):
    if shutil.which("vivado") is None:
        skip = pytest.mark.skip(reason="Vivado is not on PATH")
        for item in items:
            if item.get_closest_marker("vivado"):
                item.add_marker(skip)
