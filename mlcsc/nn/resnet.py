"""ResNet-18 for 32×32 images, and its convolutional-sparse-coding twin.

The CIFAR variant of He, Zhang, Ren & Sun's ResNet-18 ("Deep residual learning for image
recognition", CVPR 2016): a 3×3 stride-1 stem without max pooling, then torchvision's four
stages of two basic blocks (64, 128, 256, 512 channels) and global average pooling. With
``csc=True`` every convolution is a :class:`~mlcsc.nn.CSCConv2d` (:func:`replace_conv2d`): the
twin of Dai et al. (NeurIPS 2022, SDNet-18), whose layers return sparse codes instead of
correlations.
"""

from __future__ import annotations

from torch import Tensor, nn

from mlcsc.checks import check_flag, check_int
from mlcsc.nn.csc_conv import replace_conv2d

__all__ = ["CIFARResNet18"]


class CIFARResNet18(nn.Module):
    """ResNet-18 for small images as a feature extractor (see the module docstring); the
    classification task puts its linear head on the pooled features.

    Args:
        in_channels: image channels.
        csc: replace every convolution by a :class:`~mlcsc.nn.CSCConv2d`.
        lam: ``λ`` of the CSC layers (``csc=True`` only).
        n_iter: FISTA steps of the CSC layers (``csc=True`` only).
        nonnegative: non-negative codes in the CSC layers (``csc=True`` only).

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
    """

    def __init__(
        self,
        in_channels: int = 3,
        csc: bool = False,
        lam: float = 0.1,
        n_iter: int = 2,
        nonnegative: bool = False,
    ) -> None:
        super().__init__()
        from torchvision.models import resnet18  # the training extra; the layers need only torch

        net = resnet18()
        stem = nn.Conv2d(check_int("in_channels", in_channels, 1), 64, 3, 1, 1, bias=False)
        self.body = nn.Sequential(
            stem, net.bn1, net.relu, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool
        )
        self.csc = check_flag("csc", csc)
        if self.csc:
            replace_conv2d(self.body, lam=lam, n_iter=n_iter, nonnegative=nonnegative)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
