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


def cifar10_images(indices):
    """CIFAR-10 test images as the models take them (NCHW floats in [0, 1]) and their labels.
    The set is sorted by class: `MIXED_CIFAR10` takes every 100th image."""
    data = np.load(shared_file("data/cifar10_test_jpeg.npz"))
    x = data["x"][indices].astype(np.float32) / 255
    return x.transpose(0, 3, 1, 2).copy(), data["y"][indices]


MIXED_CIFAR10 = np.arange(0, 10_000, 100)


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
