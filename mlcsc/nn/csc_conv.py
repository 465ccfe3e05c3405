"""Convolutional sparse coding as a drop-in replacement of ``nn.Conv2d``.

:class:`CSCConv2d` takes ``nn.Conv2d``'s constructor and returns a tensor of ``nn.Conv2d``'s
output shape, but its output is the *sparse code* of the input in a learnable convolutional
dictionary ``D`` of ``out_channels`` atoms: ``n_iter`` unrolled FISTA steps on

    min_Γ ½‖x − DΓ‖₂² + λ‖Γ‖₁        (Γ ≥ 0 with ``nonnegative=True``),

started from one thresholding step ``Γ⁰ = T_λ(Dᵀx)`` — with ``n_iter=0`` the layer is exactly a
convolution followed by a soft threshold (a ReLU with bias ``−λ`` when non-negative). Dai, Wu,
Zhang, Wright & Ma ("Revisiting sparse convolutional model for visual recognition", NeurIPS
2022) showed that networks built from such layers match ResNets on image classification and
are more robust when ``λ`` is raised at test time; :func:`replace_conv2d` swaps the
``nn.Conv2d`` modules of any model for them.

The layer is a one-layer :class:`~mlcsc.MLCSC` running ML-FISTA, which for one layer is FISTA
on ``D`` with the step ``1/‖D‖₂²`` from the operator's norm at the input size (tracked during
training without host synchronisation); ``λ`` and the step are fixed, the dictionary is
learned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mlcsc.checks import check_flag, check_int, check_number
from mlcsc.nn.mlcsc import MLCSC

__all__ = ["CSCConv2d", "replace_conv2d"]


def _square(name: str, value: Any) -> int:
    """One int for a square kernel / equal stride or padding in both directions."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(
                f"CSCConv2d supports the same {name} in both directions, got {tuple(value)}"
            )
        value = value[0]
    if isinstance(value, str):
        raise ValueError(f"CSCConv2d needs an integer {name}, got {value!r}")
    return int(value)


class CSCConv2d(nn.Module):
    """The sparse code of the input in a learnable convolutional dictionary, with the
    constructor and output shape of ``nn.Conv2d`` (see the module docstring).

    Args:
        in_channels: channels ``c`` of the input.
        out_channels: atoms ``m`` of the dictionary, the channels of the code.
        kernel_size: atom size ``k`` (an int or an equal pair).
        stride: stride ``s`` of the dictionary (an int or an equal pair).
        padding: zero padding ``p`` (an int or an equal pair).
        dilation: must be 1 (other values raise ``ValueError``).
        groups: must be 1 (other values raise ``ValueError``).
        bias: add a learnable per-channel bias to the code (as ``nn.Conv2d``'s bias; a ResNet's
            convolutions have none).
        padding_mode: must be ``"zeros"``.
        device: where the parameters are created.
        dtype: their dtype.
        lam: the ℓ1 weight ``λ ≥ 0``, also the threshold; settable after training.
        n_iter: FISTA steps after the first thresholding, ``≥ 0``; settable after training.
        nonnegative: non-negative codes (soft non-negative thresholding: a ReLU).

    Raises:
        ValueError: for ``lam < 0``, ``n_iter < 0``, grouped or dilated convolutions, a padding
            mode other than zeros, or a non-square kernel, stride or padding.

    Shape:
        - input: ``(B, c, H, W)``
        - output: ``(B, m, H', W')`` with ``H' = ⌊(H + 2p − k)/s⌋ + 1``, as ``nn.Conv2d``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> layer = CSCConv2d(3, 16, 3, stride=2, padding=1, lam=0.1, n_iter=4)
        >>> x = torch.randn(2, 3, 32, 32)
        >>> layer(x).shape == nn.Conv2d(3, 16, 3, stride=2, padding=1)(x).shape
        True
        >>> layer.n_iter, layer.lam = 0, 0.0  # one analysis step, no threshold: D's correlations
        >>> torch.allclose(layer(x), nn.functional.conv2d(x, layer.weight, stride=2, padding=1),
        ...                atol=1e-5)
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        lam: float = 0.1,
        n_iter: int = 2,
        nonnegative: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1:
            raise ValueError(f"CSCConv2d supports groups=1 only, got groups={groups}")
        if _square("dilation", dilation) != 1:
            raise ValueError(f"CSCConv2d supports dilation=1 only, got dilation={dilation}")
        if padding_mode != "zeros":
            raise ValueError(f"CSCConv2d supports padding_mode='zeros' only, got {padding_mode!r}")
        kernel, step, pad = (_square(n, v) for n, v in [("kernel_size", kernel_size),
                                                         ("stride", stride),
                                                         ("padding", padding)])  # fmt: skip
        check_number("lam", lam, 0.0)
        nonnegative = check_flag("nonnegative", nonnegative)
        self.coder = MLCSC(
            check_int("in_channels", in_channels, 1),
            [(check_int("out_channels", out_channels, 1), kernel, step, pad)],
            pursuit="ml_fista",
            n_iter=n_iter,
            threshold_init=float(lam),
            threshold_mode="soft_nonneg" if nonnegative else "soft",
        )
        # λ and the step are hyper-parameters of the problem, not learned
        for parameter in (*self.coder.thresholds, *self.coder.step_sizes):
            parameter.requires_grad_(False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if check_flag("bias", bias) else None
        self.to(device=device, dtype=dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kernel, kernel), (step, step), (pad, pad)
        self.nonnegative = nonnegative

    @property
    def weight(self) -> nn.Parameter:
        """The dictionary's atoms ``(m, c, k, k)``, laid out as ``nn.Conv2d.weight``."""
        return self.coder.dictionaries[0].weight

    @property
    def lam(self) -> float:
        """The ℓ1 weight ``λ`` (settable, ``≥ 0``)."""
        return float(self.coder.thresholds[0].detach().flatten()[0])

    @lam.setter
    def lam(self, value: float) -> None:
        value = check_number("lam", value, 0.0)
        with torch.no_grad():
            self.coder.thresholds[0].fill_(value)

    @property
    def n_iter(self) -> int:
        """FISTA steps after the first thresholding (settable, ``≥ 0``)."""
        return self.coder.n_iter

    @n_iter.setter
    def n_iter(self, value: int) -> None:
        self.coder.n_iter = value

    def forward(self, x: Tensor) -> Tensor:
        code = self.coder(x)
        return code if self.bias is None else code + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, lam={self.lam:g}, "
            f"n_iter={self.n_iter}, nonnegative={self.nonnegative}, bias={self.bias is not None}"
        )


def _unsupported(conv: nn.Conv2d) -> str | None:
    """Why ``conv`` cannot become a :class:`CSCConv2d` (None: it can)."""
    if conv.groups != 1:
        return f"groups={conv.groups}"
    if any(d != 1 for d in conv.dilation):
        return f"dilation={conv.dilation}"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r}"
    if isinstance(conv.padding, str):
        return f"padding={conv.padding!r}"
    for name in ("kernel_size", "stride", "padding"):
        value = getattr(conv, name)
        if value[0] != value[1]:
            return f"{name}={value}"
    return None


def replace_conv2d(
    model: nn.Module,
    predicate: Callable[[str, nn.Conv2d], bool] | None = None,
    **csc_kwargs: Any,
) -> nn.Module:
    """Replace the ``nn.Conv2d`` modules of ``model`` by :class:`CSCConv2d` layers, in place.

    Each replaced convolution becomes a ``CSCConv2d`` with its channels, kernel size, stride,
    padding and bias flag, on its device and in its dtype, with new dictionary atoms;
    ``csc_kwargs`` (``lam``, ``n_iter``, ``nonnegative``) go to every new layer. A convolution
    the layer cannot represent (groups, dilation, a non-zero padding mode, ``padding="same"``,
    a non-square kernel, stride or padding) is left in place with a warning naming it. Only
    modules of type ``nn.Conv2d`` itself are replaced: a subclass may change what its forward
    computes, so it is left as it is.

    Args:
        model: any ``nn.Module``.
        predicate: ``predicate(name, conv) -> bool`` selects the convolutions to replace by
            their qualified name in ``model.named_modules()``; ``None``: all.
        **csc_kwargs: keyword arguments of :class:`CSCConv2d` (``lam``, ``n_iter``,
            ``nonnegative``).

    Returns:
        ``model`` itself, changed in place (a ``model`` that is itself a replaceable
        ``nn.Conv2d`` cannot change in place: the new layer is returned).

    Raises:
        ValueError: for invalid ``csc_kwargs`` (e.g. ``lam < 0``), before anything is replaced.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        ...                     nn.Conv2d(8, 8, 3, groups=2))
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = replace_conv2d(net, lam=0.05, n_iter=2)
        >>> [type(m).__name__ for m in net]
        ['CSCConv2d', 'ReLU', 'Conv2d']
        >>> print(caught[0].message)
        replace_conv2d: left 2 (Conv2d(8, 8, kernel_size=(3, 3), stride=(1, 1), groups=2)) in place: CSCConv2d does not support groups=2
    """  # noqa: E501
    CSCConv2d(1, 1, 1, **csc_kwargs)  # invalid options fail before the model is touched
    targets = []
    for name, module in model.named_modules():
        if type(module) is not nn.Conv2d or (predicate is not None and not predicate(name, module)):
            continue
        reason = _unsupported(module)
        if reason is not None:
            warnings.warn(
                f"replace_conv2d: left {name} ({module}) in place: CSCConv2d does not support "
                f"{reason}",
                stacklevel=2,
            )
            continue
        targets.append((name, module))
    for name, conv in targets:
        layer = CSCConv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype,
            **csc_kwargs,
        )  # fmt: skip
        if not name:
            return layer
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    return model
