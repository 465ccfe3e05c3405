"""Shared fixtures: every test starts from the same random state, and runs on every device.

The test tree mirrors the package (``tests/pursuit/`` tests ``mlcsc/pursuit/``, …). This folder
is on ``sys.path`` for every test, so the helper modules here (``data_files``) import by name.
"""

from __future__ import annotations

import pytest
import torch

#: the devices a ``device`` test runs on: the CPU always, CUDA when there is one
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


@pytest.fixture(autouse=True)
def seed() -> int:
    """Seed torch's global generator so that every test is reproducible on its own."""
    torch.manual_seed(0)
    return 0


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """The device to run on: each test that takes it runs once per device (CUDA auto-skipped)."""
    return torch.device(request.param)


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread, then restore the previous setting.

    The tests use tiny tensors, for which a second thread gains nothing; when another process
    keeps the cores busy, torch's thread pool on tiny convolutions can be 100× slower than one
    thread. Opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
