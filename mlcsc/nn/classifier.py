"""A classifier on the deepest ML-CSC code: ``ℓ(Y) = argmax(W·f(Γ_K) + c)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mlcsc.checks import check_int, check_number
from mlcsc.nn.mlcsc import MLCSC

__all__ = ["MLCSCClassifier", "conv_features"]


def conv_features(in_channels: int, specs: Sequence[Sequence[int]]) -> nn.Sequential:
    """Plain convolutional layers on top of the codes, as in the CIFAR-10 reference.

    Args:
        in_channels: channels of the deepest code.
        specs: one ``(out_channels, kernel_size, pool)`` per layer: a ``k×k`` convolution with
            "same" padding, ReLU, then a 2×2 max-pool when ``pool`` is true.
    """
    modules: list[nn.Module] = []
    channels = in_channels
    for index, spec in enumerate(specs):
        if len(spec) != 3:
            raise ValueError(
                f"features[{index}] must be (out_channels, kernel_size, pool), got {spec!r}"
            )
        out_channels, kernel_size, pool = (int(v) for v in spec)
        if out_channels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"features[{index}]: out_channels >= 1 and an odd kernel_size expected, "
                f"got {spec!r}"
            )
        modules += [
            nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.ReLU(inplace=True),
        ]
        if pool:
            modules.append(nn.MaxPool2d(2))
        channels = out_channels
    return nn.Sequential(*modules)


class MLCSCClassifier(nn.Module):
    """An ML-CSC encoder followed by a linear classifier on its deepest code.

    Args:
        encoder: an :class:`~mlcsc.MLCSC` (or any module returning a feature map).
        num_classes: number of classes.
        input_size: ``(H, W)`` of the images, to size the linear layer; when omitted the
            layer is created lazily on the first batch.
        features: optional module applied to ``Γ_K`` before the linear layer (for example
            :func:`conv_features`).
        dropout: dropout probability before the linear layer.
        in_channels: channels of the images; with ``input_size``, sizes the head of an encoder
            other than :class:`~mlcsc.MLCSC` by one forward pass of a blank image.

    Shape:
        ``(B, C, H, W)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        input_size: Sequence[int] | None = None,
        features: nn.Module | None = None,
        dropout: float = 0.0,
        in_channels: int | None = None,
    ):
        super().__init__()
        check_int("num_classes", num_classes, 2)
        check_number("dropout", dropout, 0.0, 1.0, high_open=True)
        self.encoder = encoder
        self.num_classes = num_classes
        self.features = features if features is not None else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.in_channels = in_channels
        if input_size is not None:
            in_features = self._feature_count(tuple(input_size))
            self.head: nn.Module = nn.Linear(in_features, num_classes)
        else:
            self.head = nn.LazyLinear(num_classes)

    @torch.no_grad()
    def _feature_count(self, input_size: tuple[int, int]) -> int:
        if isinstance(self.encoder, MLCSC):
            probe = torch.zeros(1, *self.encoder.code_shape(input_size))
        elif self.in_channels is not None:
            was_training = self.encoder.training
            probe = self.encoder.eval()(torch.zeros(1, self.in_channels, *input_size))
            self.encoder.train(was_training)
        else:
            raise ValueError(
                "sizing the head of an encoder other than MLCSC from input_size needs in_channels"
            )
        return int(self.features(probe).numel())

    def classify(self, gamma_K: Tensor) -> Tensor:
        """Logits from the deepest code ``(B, m_K, H_K, W_K)``."""
        return self.head(self.dropout(self.features(gamma_K).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.encoder(x))
