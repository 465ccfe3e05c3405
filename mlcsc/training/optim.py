"""Optimizer and learning-rate schedule of a task, from the ``optimizer`` and ``scheduler``
config groups (``_partial_: true`` nodes: the parameters and the optimizer come at run time)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from mlcsc.errors import ConfigError
from mlcsc.training.instantiate import instantiate

__all__ = ["PER_BATCH_SCHEDULERS", "lightning_optimizers"]

#: schedules defined per batch; every other schedule is stepped once per epoch
PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def _call(factory: Any, group: str, config: Mapping[str, Any], **kwargs: Any) -> Any:
    if not callable(factory):
        raise ConfigError(f"{group} must be a `_partial_: true` config, got {config!r}")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise ConfigError(f"{group} ({config.get('_target_')}): {error}") from None


def lightning_optimizers(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: Mapping[str, Any],
    scheduler: Mapping[str, Any] | None = None,
):
    """What a LightningModule's ``configure_optimizers`` returns for these configurations.

    Raises:
        ConfigError: a node that is not a partial, or an argument the class refuses (a negative
            learning rate, an unknown option, ``steps_per_epoch`` left unset, …).
    """
    built = _call(instantiate(optimizer, "optimizer"), "optimizer", optimizer, params=parameters)
    if not scheduler:
        return built
    schedule = _call(instantiate(scheduler, "scheduler"), "scheduler", scheduler, optimizer=built)
    interval = "step" if isinstance(schedule, PER_BATCH_SCHEDULERS) else "epoch"
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": interval}}
