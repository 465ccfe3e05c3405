"""Shared by the training tests: composing the Hydra configuration of ``configs/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from composing import compose_config


@pytest.fixture
def compose() -> Callable:
    """``compose(name, overrides)``: a configuration of ``configs/`` (no run folders)."""

    def _compose(name: str, overrides=()):
        run_paths = ["paths.run_dir=unused", "run_name=unused"] if name == "train" else []
        return compose_config(name, [*run_paths, *overrides])

    return _compose


@pytest.fixture
def train_config(tmp_path) -> Callable:
    """``train_config(overrides)``: the training configuration of a run in ``tmp_path``: run
    folder ``tmp_path/run``, runs of the same name under ``tmp_path/outputs/test``."""

    def _train_config(overrides=(), run_dir: Path | None = None):
        return compose_config(
            "train",
            [
                f"paths.run_dir={run_dir or tmp_path / 'run'}",
                f"paths.output_root={tmp_path / 'outputs'}",
                "run_name=test",
                *overrides,
            ],
        )

    return _train_config
