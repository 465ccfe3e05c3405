"""ResNet-18 for 32×32 images, and its convolutional-sparse-coding twin.

The CIFAR variant of He, Zhang, Ren & Sun's ResNet-18 ("Deep residual learning for image
recognition", CVPR 2016): a 3×3 stride-1 stem without max pooling, then torchvision's four
stages of two basic blocks (64, 128, 256, 512 channels) and global average pooling. With
``csc=True`` every convolution is a :class:`~mlcsc.nn.CSCConv2d` (:func:`replace_conv2d`): the
twin of Dai et al. (NeurIPS 2022, SDNet-18), whose layers return sparse codes instead of
correlations. ``mlcsc_stages`` goes further: each stage listed becomes one multi-layer pursuit,
an :class:`~mlcsc.MLCSC` whose layers are the stage's four 3×3 convolutions (channels, strides,
padding) pursued jointly by ML-FISTA — the deepest code of the stage's four-layer ML-CSC model
instead of four convolutions with skip connections — followed by batch normalisation and a
ReLU, as the stage's output is.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mlcsc.checks import check_flag, check_int, check_number
from mlcsc.nn.csc_conv import replace_conv2d
from mlcsc.nn.mlcsc import MLCSC

__all__ = ["CIFARResNet18", "mlcsc_stage"]


class CIFARResNet18(nn.Module):
    """ResNet-18 for small images as a feature extractor (see the module docstring); the
    classification task puts its linear head on the pooled features.

    Args:
        in_channels: image channels.
        csc: replace every convolution by a :class:`~mlcsc.nn.CSCConv2d`.
        lam: ``λ`` of the CSC layers (``csc=True`` only).
        n_iter: FISTA steps of the CSC layers (``csc=True`` only).
        nonnegative: non-negative codes in the CSC layers (``csc=True`` only).
        mlcsc_stages: stages (1–4) replaced by one :class:`~mlcsc.MLCSC` each, ML-FISTA with
            ``n_iter`` iterations over the stage's four convolutions (thresholds learned, from
            ``lam``), then batch normalisation and a ReLU; with or without ``csc``.

    Shape:
        - input: ``(B, in_channels, H, W)``, ``H, W ≥ 1`` (32 × 32 for CIFAR-10)
        - output: ``(B, 512, 1, 1)``, the globally pooled features.

    Examples:
        >>> import torch
        >>> net = CIFARResNet18(3)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 512, 1, 1])
        >>> twin = CIFARResNet18(3, csc=True, lam=0.1, n_iter=1)
        >>> type(twin.body[0]).__name__, twin.body[0].kernel_size
        ('CSCConv2d', (3, 3))

        The last stage as one four-layer ML-CSC pursuit:

        >>> staged = CIFARResNet18(3, mlcsc_stages=[4], n_iter=1)
        >>> staged(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 512, 1, 1])
        >>> staged.body[6][0].layer_specs[0], len(staged.body[6][0].dictionaries)
        ((512, 3, 2, 1), 4)
    """

    def __init__(
        self,
        in_channels: int = 3,
        csc: bool = False,
        lam: float = 0.1,
        n_iter: int = 2,
        nonnegative: bool = False,
        mlcsc_stages: Sequence[int] = (),
    ) -> None:
        super().__init__()
        from torchvision.models import resnet18  # the training extra; the layers need only torch

        net = resnet18()
        stem = nn.Conv2d(check_int("in_channels", in_channels, 1), 64, 3, 1, 1, bias=False)
        self.body = nn.Sequential(
            stem, net.bn1, net.relu, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool
        )
        self.csc = check_flag("csc", csc)
        nonnegative = check_flag("nonnegative", nonnegative)
        self.mlcsc_stages = _stages(mlcsc_stages)
        for stage in self.mlcsc_stages:
            index = STAGE_OFFSET + stage - 1
            self.body[index] = mlcsc_stage(self.body[index], lam, n_iter, nonnegative)
        if self.csc:
            replace_conv2d(self.body, lam=lam, n_iter=n_iter, nonnegative=nonnegative)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


STAGE_OFFSET = 3  # body = stem, bn, relu, stage 1, …, stage 4, pooling


def _stages(stages: Sequence[int]) -> list[int]:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise ValueError(f"mlcsc_stages must be a list of stages 1–4, got {stages!r}")
    chosen = [check_int("mlcsc_stages", stage, 1) for stage in stages]
    if any(stage > 4 for stage in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"mlcsc_stages must be distinct stages 1–4, got {list(stages)}")
    return sorted(chosen)


def mlcsc_stage(stage: nn.Module, lam: float, n_iter: int, nonnegative: bool) -> nn.Sequential:
    """One :class:`~mlcsc.MLCSC` in place of a ResNet ``stage``: its layers are the stage's
    3×3 convolutions in order (channels, stride, padding; the 1×1 shortcut projections and the
    skip connections are dropped), ML-FISTA with ``n_iter`` iterations and learned thresholds
    starting at ``lam`` (signed codes unless ``nonnegative``), followed by batch normalisation
    and a ReLU.

    Raises:
        ValueError: a stage without 3×3 convolutions, ``lam < 0`` or ``n_iter < 0``.
    """
    convs = [m for m in stage.modules() if type(m) is nn.Conv2d and m.kernel_size == (3, 3)]
    if not convs:
        raise ValueError(f"an ML-CSC stage needs 3×3 convolutions, found none in {stage}")
    layers = [(c.out_channels, 3, c.stride[0], c.padding[0]) for c in convs]
    coder = MLCSC(
        convs[0].in_channels, layers, pursuit="ml_fista", n_iter=n_iter,
        threshold_init=check_number("lam", lam, 0.0),
        threshold_mode="soft_nonneg" if nonnegative else "soft",
    )  # fmt: skip
    channels = layers[-1][0]
    return nn.Sequential(coder, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
