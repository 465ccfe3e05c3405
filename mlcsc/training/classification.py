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
    """The encoder of ``model`` with a classification head: an :class:`~mlcsc.MLCSCClassifier`.

    The network maps images ``x`` to logits ``W·vec(h(Γ_K(x))) + b``, where ``Γ_K(x)`` is the
    encoder's output (for an :class:`~mlcsc.MLCSC`, the deepest code found by the unrolled
    pursuit, as in Sulam, Aberdam, Beck & Elad 2019), ``h`` the optional plain convolutional
    ``features`` (ReLU, optional 2×2 max-pooling) and dropout, and ``W, b`` a linear layer.

    Args:
        model: the encoder's config node (see :func:`~mlcsc.training.build_encoder`).
        in_channels: the channels ``C`` of the images.
        num_classes: the number of classes (at least 2), the width of the logits.
        input_size: the image size ``(H, W)``; it fixes the input width of the linear layer.
        features: conv layers on the encoder's output before the linear layer, one
            ``[out_channels, kernel_size, maxpool 0/1]`` each (odd ``kernel_size``, "same"
            padding); empty for none.
        dropout: the dropout probability before the linear layer, in ``[0, 1)``.

    Returns:
        The classifier; ``net(x)`` gives the logits and ``net.classify(gamma_K)`` the logits of
            a given deepest code.

    Raises:
        ConfigError: as :func:`~mlcsc.training.encoder.build_encoder`, and for invalid
            ``features``, ``dropout`` or ``num_classes``.

    Shape:
        - input: ``(N, C, H, W)`` with ``C = in_channels`` and ``(H, W) = input_size``.
        - output: logits ``(N, num_classes)``.

    Examples:
        >>> import torch
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> net = build_classifier(model, in_channels=1, num_classes=3, input_size=(16, 16))
        >>> net.head  # Γ_2 is 8 × 2 × 2: 32 features
        Linear(in_features=32, out_features=3, bias=True)
        >>> net(torch.zeros(5, 1, 16, 16)).shape
        torch.Size([5, 3])
        >>> net = build_classifier(model, 1, 3, (16, 16), features=[[6, 3, 1]], dropout=0.2)
        >>> net.head  # a 6-channel 3 × 3 convolution and 2 × 2 max-pooling: 6 features
        Linear(in_features=6, out_features=3, bias=True)
        >>> build_classifier(model, 1, 3, (16, 16), dropout=1.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: invalid classification head: dropout must be ... got 1.5
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
    """An encoder and a classification head trained with cross-entropy (``task=classification``).

    The network is :func:`build_classifier`'s: logits ``W·vec(h(Γ_K(x))) + b`` of the encoder's
    output ``Γ_K(x)``. Training minimises the mean cross-entropy of the logits and the labels by
    back-propagating through the unrolled pursuit, so that the dictionaries ``D_i``, the
    thresholds ``β_i`` and the step sizes of an :class:`~mlcsc.MLCSC` encoder are learned
    together with the head (Sulam, Aberdam, Beck & Elad 2019, "On Multi-Layer Basis Pursuit,
    Efficient Algorithms and Convolutional Neural Networks", IEEE TPAMI). Hydra builds it from
    ``configs/task/classification.yaml`` with the data's facts; the network is ``self.net``
    and its encoder ``self.encoder``. The arguments are recorded as hyper-parameters, so a
    checkpoint rebuilds the module (:func:`~mlcsc.training.load_classifier`).

    Args:
        model: the encoder's configuration (see :class:`~mlcsc.training.task.EncoderTask`).
        in_channels: image channels (from the data module).
        num_classes: number of classes (from the data module).
        input_size: image size ``(H, W)`` (from the data module).
        optimizer: ``_partial_`` configuration of the ``optimizer`` group.
        scheduler: ``_partial_`` configuration of the ``scheduler`` group (``None``: constant).
        features: plain conv layers on ``Γ_K`` before the linear head,
            ``[out_channels, kernel_size, maxpool 0/1]`` each.
        dropout: dropout probability before the linear head.
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        data: the data configuration, recorded in the checkpoint.

    Logged: ``{train,val,test}/loss`` and ``/acc``; for an :class:`~mlcsc.MLCSC` encoder also
    per-layer code sparsity (% zeros and mean nnz), the relative reconstruction error
    ``‖x − D₁⋯D_KΓ_K‖/‖x‖``, the mean threshold and relative step of each layer, images of the
    first-layer atoms and of the effective atoms of every layer.

    Raises:
        ConfigError: as :func:`build_classifier`.

    Shape:
        - batch: images ``(N, C, H, W)`` and labels ``(N,)`` (int64 class indices).
        - output of ``module(x)``: logits ``(N, num_classes)``.

    Examples:
        Built as Hydra builds it, then one validation step by hand (a trainer calls it on
        every batch and logs the metrics under ``val/``):

        >>> import torch
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
        >>> module = ClassificationModule(model, in_channels=1, num_classes=3,
        ...                               input_size=(16, 16), optimizer=adam)
        >>> images = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> labels = torch.tensor([0, 1, 2, 0])
        >>> module(images).shape
        torch.Size([4, 3])
        >>> loss, metrics = module.step((images, labels), "val")
        >>> loss.shape, sorted(metrics)  # doctest: +NORMALIZE_WHITESPACE
        (torch.Size([]), ['acc', 'loss', 'reconstruction/relative_error',
         'sparsity/layer1_nnz', 'sparsity/layer1_zeros_pct',
         'sparsity/layer2_nnz', 'sparsity/layer2_zeros_pct'])
        >>> sorted(module.step((images, labels), "train")[1])  # training: the cheap ones only
        ['acc', 'loss']
        >>> type(module.configure_optimizers()).__name__, module.hparams["num_classes"]
        ('Adam', 3)
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
        """The encoder of the network (``self.net.encoder``)."""
        return self.net.encoder

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.net(x)

    def step(self, batch, stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy and accuracy of a batch ``(images, labels)``.

        For the ``val`` and ``test`` stages and an :class:`~mlcsc.MLCSC` encoder, the metrics
        also hold the per-layer code sparsity and the relative reconstruction error.
        """
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
