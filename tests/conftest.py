"""Shared fixtures: every test starts from the same random state."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def seed() -> int:
    """Seed torch's global generator so that every test is reproducible on its own."""
    torch.manual_seed(0)
    return 0


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
