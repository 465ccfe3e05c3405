"""The base of every training task: an encoder, the train/val/test steps, optimizers, logging.

A task is a :class:`pytorch_lightning.LightningModule` built by Hydra from the ``task`` config
group with the run-time facts of the data (channels, image size, classes) and the ``model``,
``optimizer``, ``scheduler`` and ``data`` configurations, which it records in its checkpoints.
Subclasses implement :meth:`EncoderTask.step`; the base logs what it returns, reduced over the
batches of an epoch and across processes (``sync_dist``), so a multi-process run reports the
whole data set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from mlcsc.nn import MLCSC
from mlcsc.training.figures import log_atom_images
from mlcsc.training.optim import lightning_optimizers

__all__ = ["EncoderTask", "code_statistics"]


def code_statistics(codes: Sequence[Tensor]) -> dict[str, Tensor]:
    """Per-layer sparsity of a batch of codes: % of zeros and mean non-zeros per sample."""
    stats = {}
    for j, code in enumerate(codes, start=1):
        nonzero = code.detach() != 0
        stats[f"sparsity/layer{j}_zeros_pct"] = 100.0 * (1.0 - nonzero.float().mean())
        stats[f"sparsity/layer{j}_nnz"] = nonzero.flatten(1).sum(1).float().mean()
    return stats


class EncoderTask(pl.LightningModule):
    """A LightningModule around an encoder built from a ``model`` configuration.

    Args:
        model: the ``model`` configuration (``_target_`` and its arguments).
        in_channels: image channels (from the data module).
        input_size: image size ``(H, W)`` (from the data module).
        optimizer: ``_partial_`` configuration of the ``optimizer`` group.
        scheduler: ``_partial_`` configuration of the ``scheduler`` group (``None``: a
            constant learning rate).
        num_classes: classes of the data (from the data module).
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        data: the data configuration, recorded in the checkpoint so that ``evaluate.py`` can
            rebuild the data set the model was trained on.
    """

    #: metrics shown in the progress bar
    progress_metrics: tuple[str, ...] = ()
    #: metrics of the training stage also logged at every step
    step_metrics: tuple[str, ...] = ()

    def __init__(
        self,
        model: Mapping[str, Any],
        in_channels: int,
        input_size: Sequence[int],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
        image_every_n_epochs: int = 1,
        data: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.optimizer_config = dict(optimizer)
        self.scheduler_config = dict(scheduler) if scheduler else None
        self.image_every_n_epochs = image_every_n_epochs

    # ------------------------------------------------------------------ what subclasses define
    def step(self, batch: Any, stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss to minimise and the metrics to log (names without the stage prefix)."""
        raise NotImplementedError

    def trainable_parameters(self):
        """The parameters the optimizer updates (default: every parameter)."""
        return self.parameters()

    def prepare_fit(self, datamodule: pl.LightningDataModule, resuming: bool) -> None:
        """Called by :func:`mlcsc.training.train` before fitting (a data-driven start)."""

    def report(self, datamodule: pl.LightningDataModule, run_dir: Path, metrics: dict) -> dict:
        """Called by :func:`mlcsc.training.train` after testing: what the run summary adds."""
        return {}

    # ------------------------------------------------------------------------ shared machinery
    def _common_step(self, batch: Any, stage: str) -> Tensor:
        loss, metrics = self.step(batch, stage)
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        for name, value in metrics.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=stage == "train" and name in self.step_metrics,
                on_epoch=True,
                prog_bar=name in self.progress_metrics,
                sync_dist=True,
                batch_size=len(images),
            )
        return loss

    def training_step(self, batch, batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "test")

    def log_epoch_values(self, values: Mapping[str, Tensor | float]) -> None:
        """Log values that are the same on every process (parameters) once per epoch."""
        for name, value in values.items():
            self.log(name, value, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if isinstance(getattr(self, "encoder", None), MLCSC):
            log_atom_images(self, self.image_every_n_epochs)

    def configure_optimizers(self):
        return lightning_optimizers(
            list(self.trainable_parameters()), self.optimizer_config, self.scheduler_config
        )

    @torch.no_grad()
    def relative_error(self, images: Tensor, gamma_K: Tensor) -> Tensor:
        """Mean ``‖x − D₁⋯D_KΓ_K‖/‖x‖`` over the batch."""
        reconstruction = self.encoder.reconstruct(gamma_K, images.shape[-2:])
        error = (images - reconstruction).flatten(1).norm(dim=1)
        return (error / images.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()
