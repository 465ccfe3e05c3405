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

    Layer ``i`` computes ``z ↦ pool(ReLU(W_i ∗ z + b_i))``: a ``k × k`` convolution with
    "same" padding ``k // 2`` (so an odd ``k`` keeps the spatial size), a ReLU and, when asked,
    a ``2 × 2`` max-pool that halves the size (rounding down). The CIFAR-10 network of Sulam,
    Aberdam, Beck & Elad (2019, IEEE TPAMI; ``experiment=cifar10_sulam2019``) puts such layers
    between the deepest code and the linear classifier; pass the result as ``features`` to
    :class:`MLCSCClassifier`.

    Args:
        in_channels: channels of the deepest code.
        specs: one ``(out_channels, kernel_size, pool)`` per layer: a ``k×k`` convolution with
            "same" padding, ReLU, then a 2×2 max-pool when ``pool`` is true.

    Returns:
        An ``nn.Sequential`` of ``Conv2d``, ``ReLU`` and ``MaxPool2d`` modules (empty for no
            specs).

    Raises:
        ValueError: for a spec that is not three values, ``out_channels < 1`` or an even or
            non-positive ``kernel_size`` (the message names the spec).

    Shape:
        - input: ``(B, in_channels, H, W)``.
        - output: ``(B, c, H', W')`` with ``c`` the last ``out_channels`` and ``H'`` = ``H``
          halved (rounding down) once per pooling layer.

    Examples:
        >>> features = conv_features(16, [(32, 3, True), (64, 3, False)])
        >>> features(torch.zeros(2, 16, 5, 5)).shape
        torch.Size([2, 64, 2, 2])
        >>> conv_features(16, [(32, 2, False)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: features[0]: out_channels >= 1 and an odd kernel_size expected, got ...
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

    Computes the logits ``W·vec(f(Γ_K)) + c`` of the deepest code ``Γ_K = encoder(Y)``, after
    the optional ``features`` ``f`` and dropout; the predicted class is their argmax. Trained end
    to end, the encoder's dictionaries, thresholds and steps are learned with the classifier,
    as in the supervised ML-CSC networks of Sulam, Aberdam, Beck & Elad (2019, "On multi-layer
    basis pursuit, efficient algorithms and convolutional neural networks", IEEE TPAMI); with
    ``n_iter = 0`` the encoder is the CNN whose forward pass Papyan, Romano & Elad (2017, JMLR)
    read as layered thresholding.

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

    Raises:
        ValueError: for ``num_classes < 2``, a dropout outside ``[0, 1)``, or an
            ``input_size`` with neither an :class:`~mlcsc.MLCSC` encoder nor ``in_channels``.

    Shape:
        - input: ``(B, C, H, W)``.
        - output: logits ``(B, num_classes)``.

    Examples:
        >>> from mlcsc import MLCSC
        >>> encoder = MLCSC(1, [(8, 5, 2), (16, 3, 2)], n_iter=2)
        >>> model = MLCSCClassifier(encoder, num_classes=10, input_size=(28, 28))
        >>> model.head  # the 16 × 5 × 5 deepest code, flattened
        Linear(in_features=400, out_features=10, bias=True)
        >>> x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> logits = model(x)
        >>> logits.shape, logits.argmax(dim=1).shape
        (torch.Size([4, 10]), torch.Size([4]))

        With convolutional layers on the codes (:func:`conv_features`):

        >>> features = conv_features(16, [(32, 3, True)])
        >>> MLCSCClassifier(encoder, 10, input_size=(28, 28), features=features).head
        Linear(in_features=128, out_features=10, bias=True)
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
