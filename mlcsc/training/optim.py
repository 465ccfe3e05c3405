"""Optimizers and learning-rate schedules from plain configuration dictionaries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from mlcsc.errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "build_optimizer",
    "build_scheduler",
    "lightning_optimizers",
]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = ("none", "step", "cosine", "onecycle")


def _options(config: Mapping[str, Any], kind: str, valid: Iterable[str]) -> tuple[str, dict]:
    options = dict(config)
    name = str(options.pop("name", "")).lower()
    if name not in valid:
        raise ConfigError(f"unknown {kind} {name!r}; expected one of {', '.join(valid)}")
    return name, options


def build_optimizer(parameters, config: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``{"name": "sgd"|"adam"|"adamw", "lr": …, other keyword arguments}`` → an optimizer."""
    name, options = _options(config, "optimizer", OPTIMIZERS)
    lr = options.get("lr")
    if lr is None or not float(lr) > 0:
        raise ConfigError(f"optimizer.lr must be a positive number, got {lr!r}")
    try:
        return OPTIMIZERS[name](parameters, **options)
    except TypeError as error:
        raise ConfigError(f"invalid option for optimizer {name!r}: {error}") from None


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: Mapping[str, Any] | None, max_epochs: int
) -> dict | None:
    """A Lightning ``lr_scheduler`` dictionary (stepped every epoch), or ``None``.

    ``{"name": "step", "step_size": 30, "gamma": 0.2}``, ``{"name": "cosine"}`` (annealed over
    ``max_epochs``), ``{"name": "onecycle", "max_lr": …, "steps_per_epoch": …}`` (stepped every
    batch) or ``{"name": "none"}``.
    """
    if config is None:
        return None
    name, options = _options(config, "scheduler", SCHEDULERS)
    interval = "epoch"
    try:
        if name == "none":
            return None
        if name == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, **options)
        elif name == "cosine":
            options.setdefault("T_max", max(int(max_epochs), 1))
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **options)
        else:
            options.setdefault("epochs", max(int(max_epochs), 1))
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, **options)
            interval = "step"
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid option for scheduler {name!r}: {error}") from None
    return {"scheduler": scheduler, "interval": interval}


def lightning_optimizers(
    parameters, optimizer: Mapping[str, Any], scheduler: Mapping[str, Any] | None, trainer
):
    """What a LightningModule's ``configure_optimizers`` returns for these configurations."""
    built = build_optimizer(parameters, optimizer)
    max_epochs = (trainer.max_epochs if trainer is not None else None) or 1
    schedule = build_scheduler(built, scheduler, max_epochs)
    return built if schedule is None else {"optimizer": built, "lr_scheduler": schedule}
