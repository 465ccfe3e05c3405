"""Composing the Hydra configuration of ``configs/`` in the training tests."""

from __future__ import annotations

from pathlib import Path

import hydra

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
