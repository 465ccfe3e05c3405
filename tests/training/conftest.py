"""Shared by the training tests: composing the Hydra configuration of ``configs/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hydra
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

#: a tiny classification run: small batches and network, two training batches per epoch
TINY = (
    "data.batch_size=16",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.layers=[[8,6,2,0],[16,6,2,0],[32,4,1,0]]",
    "model.n_iter=2",
)


def compose_config(name: str, overrides: list[str] | tuple[str, ...] = ()):
    """``configs/<name>.yaml`` composed with ``overrides`` (as on the command line)."""
    with hydra.initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra.compose(config_name=name, overrides=list(overrides))


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


@pytest.fixture
def tiny() -> tuple[str, ...]:
    """Overrides that make a classification run tiny (see ``TINY``)."""
    return TINY
