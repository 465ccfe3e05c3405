"""Supervised training of an ML-CSC classifier with PyTorch Lightning.

The network is :class:`~mlcsc.MLCSCClassifier` on the encoder of the ``model`` configuration
(an :class:`~mlcsc.MLCSC` with any registered pursuit, or a user's encoder); back-propagation
runs through the unrolled pursuit, so dictionaries, thresholds and step sizes are all learned
(Sulam, Aberdam, Beck & Elad 2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from mlcsc.errors import ConfigError
from mlcsc.nn import MLCSC, MLCSCClassifier, conv_features
from mlcsc.training.encoder import build_encoder, encoder_output_shape
from mlcsc.training.task import EncoderTask, code_statistics

__all__ = ["ClassificationModule", "build_classifier"]


def build_classifier(
    model: Mapping[str, Any],
    in_channels: int,
    num_classes: int,
    input_size: Sequence[int],
    features: Sequence[Sequence[int]] = (),
    dropout: float = 0.0,
) -> MLCSCClassifier:
    """The encoder of ``model`` with a head: optional conv ``features``
    (``[out_channels, kernel_size, maxpool 0/1]`` each), dropout and a linear layer.

    Raises:
        ConfigError: as :func:`~mlcsc.training.encoder.build_encoder`, and for invalid
            ``features`` or ``dropout``.
    """
    encoder = build_encoder(model, in_channels, input_size)
    try:
        channels = encoder_output_shape(encoder, in_channels, input_size)[0]
        head_features = conv_features(channels, [list(f) for f in features]) if features else None
        return MLCSCClassifier(
            encoder,
            num_classes,
            input_size=tuple(input_size),
            features=head_features,
            dropout=float(dropout),
            in_channels=in_channels,
        )
    except (ValueError, RuntimeError) as error:
        raise ConfigError(f"invalid classification head: {error}") from None


class ClassificationModule(EncoderTask):
    """An encoder and a classification head trained with cross-entropy.

    Args:
        model: the encoder's configuration (see :class:`~mlcsc.training.task.EncoderTask`).
        in_channels: image channels (from the data module).
        input_size: image size ``(H, W)`` (from the data module).
        optimizer: ``_partial_`` configuration of the ``optimizer`` group.
        scheduler: ``_partial_`` configuration of the ``scheduler`` group (``None``: constant).
        num_classes: number of classes (from the data module).
        features: plain conv layers on ``Γ_K`` before the linear head,
            ``[out_channels, kernel_size, maxpool 0/1]`` each.
        dropout: dropout probability before the linear head.
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        data: the data configuration, recorded in the checkpoint.

    Logged: ``{train,val,test}/loss`` and ``/acc``; for an :class:`~mlcsc.MLCSC` encoder also
    per-layer code sparsity (% zeros and mean nnz), the relative reconstruction error
    ``‖x − D₁⋯D_KΓ_K‖/‖x‖``, the mean threshold and relative step of each layer, images of the
    first-layer atoms and of the effective atoms of every layer.
    """

    progress_metrics = ("loss", "acc")
    step_metrics = ("loss",)

    def __init__(
        self,
        model: Mapping[str, Any],
        in_channels: int,
        num_classes: int,
        input_size: Sequence[int],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        features: Sequence[Sequence[int]] = (),
        dropout: float = 0.0,
        image_every_n_epochs: int = 1,
        data: Mapping[str, Any] | None = None,
    ):
        super().__init__(
            model, in_channels, input_size, optimizer, scheduler, num_classes,
            image_every_n_epochs, data,
        )  # fmt: skip
        self.save_hyperparameters()
        self.net = build_classifier(
            model, in_channels, num_classes, input_size, features=features, dropout=dropout
        )

    @property
    def encoder(self):
        return self.net.encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def step(self, batch, stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        images, labels = batch
        mlcsc = isinstance(self.encoder, MLCSC)
        codes = self.encoder(images, return_all=True) if mlcsc else [self.encoder(images)]
        logits = self.net.classify(codes[-1])
        loss = F.cross_entropy(logits, labels)
        metrics = {"loss": loss, "acc": (logits.argmax(1) == labels).float().mean()}
        if stage != "train" and mlcsc:
            metrics.update(code_statistics(codes))
            metrics["reconstruction/relative_error"] = self.relative_error(images, codes[-1])
        return loss, metrics

    def on_train_epoch_end(self) -> None:
        if not isinstance(self.encoder, MLCSC):
            return
        values = {}
        for j, (beta, step) in enumerate(
            zip(self.encoder.thresholds, self.encoder.step_sizes, strict=True), start=1
        ):
            values[f"threshold/layer{j}_mean"] = beta.detach().mean()
            values[f"step/layer{j}"] = step.detach()
        self.log_epoch_values(values)
