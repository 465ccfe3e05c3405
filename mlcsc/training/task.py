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

    The base of :class:`~mlcsc.training.ClassificationModule` and
    :class:`~mlcsc.training.UnsupervisedMLCSCModule`, and of a user's own task
    (``task._target_=my_package.MyTask``). Hydra builds a task from the ``task`` config group,
    passing the run-time facts of the data (``in_channels``, ``input_size``, ``num_classes``)
    and the ``model``, ``optimizer``, ``scheduler`` and ``data`` nodes; the base keeps the
    optimizer and schedule configurations, and a subclass builds its encoder (as
    ``self.encoder``, e.g. with :func:`~mlcsc.training.build_encoder`) and records its
    arguments with ``save_hyperparameters()``.

    A subclass defines :meth:`step`, ``(loss, metrics)`` for a batch and a stage; the base runs
    it in ``training_step``, ``validation_step`` and ``test_step`` and logs every metric as
    ``<stage>/<name>``, averaged over the epoch's batches and across processes. It may also
    override :meth:`trainable_parameters`, :meth:`prepare_fit` and :meth:`report`.
    ``configure_optimizers`` builds the optimizer (and the schedule, stepped per batch for
    ``OneCycleLR`` / ``CyclicLR`` and per epoch otherwise) on :meth:`trainable_parameters`;
    an optimizer or schedule node that does not fit raises :class:`~mlcsc.errors.ConfigError`.

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

    Examples:
        A minimal task: learn an :class:`~mlcsc.MLCSC` encoder's dictionaries by the mean
        squared reconstruction error ``‖x − D₁⋯D_KΓ_K‖²`` of its codes:

        >>> import torch
        >>> from mlcsc.training import build_encoder
        >>> class Reconstruction(EncoderTask):
        ...     def __init__(self, model, in_channels, input_size, optimizer, **kwargs):
        ...         super().__init__(model, in_channels, input_size, optimizer, **kwargs)
        ...         self.save_hyperparameters()
        ...         self.encoder = build_encoder(model, in_channels, input_size)
        ...     def step(self, batch, stage):
        ...         images, _ = batch
        ...         gamma = self.encoder(images)
        ...         estimate = self.encoder.reconstruct(gamma, images.shape[-2:])
        ...         loss = (images - estimate).pow(2).mean()
        ...         return loss, {"loss": loss}
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
        >>> step_lr = {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True,
        ...            "step_size": 10}
        >>> task = Reconstruction(model, 1, (16, 16), adam, scheduler=step_lr)
        >>> images = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> loss, metrics = task.step((images, torch.zeros(4)), "train")
        >>> loss.shape, list(metrics)
        (torch.Size([]), ['loss'])
        >>> optimizers = task.configure_optimizers()
        >>> type(optimizers["optimizer"]).__name__, optimizers["lr_scheduler"]["interval"]
        ('Adam', 'epoch')

        The relative error of the zero code is 1 (its reconstruction is zero):

        >>> gamma = torch.zeros(4, *task.encoder.code_shape((16, 16)))
        >>> task.relative_error(images, gamma)
        tensor(1.)
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
        """The loss to minimise and the metrics to log (names without the stage prefix).

        Args:
            batch: a batch of the data module's loaders (``(images, labels)`` for the
                data modules of :mod:`mlcsc.data`).
            stage: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            The scalar loss (back-propagated at the ``train`` stage) and ``name → value``
                metrics, logged as ``<stage>/<name>``.
        """
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
        """Mean ``‖x − D₁⋯D_KΓ_K‖/‖x‖`` over the batch (a scalar tensor, no gradient).

        ``images`` are ``(N, C, H, W)``, ``gamma_K`` the deepest codes of ``self.encoder`` (an
        :class:`~mlcsc.MLCSC`), ``(N, m_K, H_K, W_K)``.
        """
        reconstruction = self.encoder.reconstruct(gamma_K, images.shape[-2:])
        error = (images - reconstruction).flatten(1).norm(dim=1)
        return (error / images.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()
