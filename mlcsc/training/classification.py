"""Supervised training of an ML-CSC classifier with PyTorch Lightning.

The network is :class:`~mlcsc.MLCSCClassifier` on an :class:`~mlcsc.MLCSC` encoder with any
registered pursuit; back-propagation runs through the unrolled pursuit, so dictionaries,
thresholds and step sizes are all learned (Sulam, Aberdam, Beck & Elad 2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.errors import ConfigError
from mlcsc.nn import MLCSC, MLCSCClassifier, conv_features
from mlcsc.training.figures import log_atom_images
from mlcsc.training.optim import lightning_optimizers

__all__ = ["ClassificationModule", "build_classifier", "build_encoder", "MODEL_KEYS"]

#: keys of the ``model`` configuration that build the network
MODEL_KEYS = (
    "pursuit",
    "n_iter",
    "layers",
    "threshold_init",
    "step_init",
    "threshold_mode",
    "parametrization",
    "init",
    "step_rule",
    "features",
    "dropout",
)


def build_encoder(model: Mapping[str, Any], in_channels: int, input_size: Sequence[int]) -> MLCSC:
    """The :class:`~mlcsc.MLCSC` encoder of a ``model`` configuration, checked against the data.

    Raises:
        ConfigError: for an unknown option or an invalid value, with the valid choices, or an
            architecture that does not fit images of ``input_size``.
    """
    unknown = sorted(set(model) - set(MODEL_KEYS) - {"name"})
    if unknown:
        raise ConfigError(f"unknown model option(s) {unknown}; expected {list(MODEL_KEYS)}")
    try:
        encoder = MLCSC(
            in_channels,
            [list(layer) for layer in model["layers"]],
            pursuit=model.get("pursuit", "ml_fista"),
            n_iter=model.get("n_iter", 6),
            threshold_init=model.get("threshold_init", 0.0),
            step_init=model.get("step_init", 1.0),
            threshold_mode=model.get("threshold_mode", "soft_nonneg"),
            parametrization=model.get("parametrization", "normalized"),
            init=model.get("init"),
            step_rule=model.get("step_rule"),
        )
        encoder.layer_sizes(input_size)
    except KeyError as error:
        raise ConfigError(f"model configuration needs {error}") from None
    except ValueError as error:
        raise ConfigError(f"invalid model configuration: {error}") from None
    return encoder


def build_classifier(
    model: Mapping[str, Any], in_channels: int, num_classes: int, input_size: Sequence[int]
) -> MLCSCClassifier:
    """Build the classifier from a ``model`` configuration (see ``configs/model/``).

    Raises:
        ConfigError: as :func:`build_encoder`, and for invalid ``features`` or ``dropout``.
    """
    encoder = build_encoder(model, in_channels, input_size)
    try:
        features = model.get("features") or []
        head_features = conv_features(encoder.out_channels, features) if features else None
        return MLCSCClassifier(
            encoder,
            num_classes,
            input_size=tuple(input_size),
            features=head_features,
            dropout=float(model.get("dropout", 0.0)),
        )
    except ValueError as error:
        raise ConfigError(f"invalid model configuration: {error}") from None


def code_statistics(codes: Sequence[Tensor]) -> dict[str, Tensor]:
    """Per-layer sparsity of a batch of codes: % of zeros and mean non-zeros per sample."""
    stats = {}
    for j, code in enumerate(codes, start=1):
        nonzero = code.detach() != 0
        stats[f"sparsity/layer{j}_zeros_pct"] = 100.0 * (1.0 - nonzero.float().mean())
        stats[f"sparsity/layer{j}_nnz"] = nonzero.flatten(1).sum(1).float().mean()
    return stats


class ClassificationModule(pl.LightningModule):
    """LightningModule: an ML-CSC classifier trained with cross-entropy.

    Args:
        model: the ``model`` configuration (pursuit, n_iter, layers, thresholds, steps, …).
        in_channels, num_classes, input_size: from the data module.
        optimizer: ``{"name": …, "lr": …, …}`` (see :func:`build_optimizer`).
        scheduler: ``{"name": …, …}`` or ``None`` (see :func:`build_scheduler`).
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        data: the data configuration, recorded in the checkpoint so that ``evaluate.py`` can
            rebuild the data set the model was trained on.

    Logged: ``{train,val,test}/loss`` and ``/acc``; per-layer code sparsity (% zeros and mean
    nnz); the relative reconstruction error ``‖x − D₁⋯D_KΓ_K‖/‖x‖``; the mean threshold and
    relative step of each layer; images of the first-layer atoms and of the effective atoms of
    every layer.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        in_channels: int,
        num_classes: int,
        input_size: Sequence[int],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        image_every_n_epochs: int = 1,
        data: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_classifier(model, in_channels, num_classes, input_size)
        self.optimizer_config = dict(optimizer)
        self.scheduler_config = dict(scheduler) if scheduler else None
        self.image_every_n_epochs = image_every_n_epochs

    @property
    def encoder(self) -> MLCSC:
        return self.net.encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _common_step(self, batch, stage: str) -> Tensor:
        images, labels = batch
        codes = self.encoder(images, return_all=True)  # [Γ₁ … Γ_K]
        logits = self.net.classify(codes[-1])
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            stats = code_statistics(codes)
            stats["reconstruction/relative_error"] = self._relative_error(images, codes[-1])
            self.log_dict({f"{stage}/{k}": v for k, v in stats.items()}, on_epoch=True)
        return loss

    @torch.no_grad()
    def _relative_error(self, images: Tensor, gamma_K: Tensor) -> Tensor:
        reconstruction = self.encoder.reconstruct(gamma_K, images.shape[-2:])
        error = (images - reconstruction).flatten(1).norm(dim=1)
        return (error / images.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()

    def training_step(self, batch, batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        for j, (beta, step) in enumerate(
            zip(self.encoder.thresholds, self.encoder.step_sizes, strict=True), start=1
        ):
            self.log(f"threshold/layer{j}_mean", beta.detach().mean())
            self.log(f"step/layer{j}", step.detach())

    def on_validation_epoch_end(self) -> None:
        log_atom_images(self, self.image_every_n_epochs)

    def configure_optimizers(self):
        return lightning_optimizers(
            self.parameters(),
            self.optimizer_config,
            self.scheduler_config,
            self._trainer,
        )
