"""Thresholding operators: the proximal maps behind every pursuit.

All three are differentiable almost everywhere in both the input and the threshold, so
thresholds can be learned by back-propagation.

* hard:  ``H_β(z) = z · 1{|z| > β}``            (proximal map of ``β²/2 · ‖z‖₀``)
* soft:  ``S_β(z) = sign(z) · max(|z| − β, 0)``  (proximal map of ``β‖z‖₁``)
* soft-nonnegative: ``S⁺_β(z) = max(z − β, 0)``  (proximal map of ``β‖z‖₁ + 1{z ≥ 0}``);
  with ``b = −β`` this is ``ReLU(z + b)``, the CNN activation.

A threshold is a scalar (float or 0-d tensor) or a tensor of shape ``(C,)`` holding one value
per channel; per-channel thresholds apply along dimension 1 (``(B, C, ...)``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "THRESHOLD_MODES",
    "hard_threshold",
    "soft_threshold",
    "soft_nonneg_threshold",
    "soft_nonneg_threshold_",
    "threshold",
    "weighted_l1",
]

THRESHOLD_MODES = ("hard", "soft", "soft_nonneg")


def _per_channel(beta: Tensor | float, z: Tensor) -> Tensor | float:
    """Reshape a ``(C,)`` threshold so that it broadcasts over ``z`` of shape ``(B, C, ...)``."""
    if not isinstance(beta, Tensor) or beta.ndim == 0:
        return beta
    if beta.ndim != 1:
        raise ValueError(
            f"threshold must be a scalar or a per-channel vector of shape (C,), got shape "
            f"{tuple(beta.shape)}"
        )
    if z.ndim < 2 or z.shape[1] != beta.shape[0]:
        raise ValueError(
            f"per-channel threshold of shape {tuple(beta.shape)} needs input with "
            f"{beta.shape[0]} channels in dimension 1, got input of shape {tuple(z.shape)}"
        )
    return beta.view(1, -1, *([1] * (z.ndim - 2)))  # (1, C, 1, ..., 1)


def hard_threshold(z: Tensor, beta: Tensor | float) -> Tensor:
    """Hard thresholding ``H_β(z) = z · 1{|z| > β}``, the proximal map of ``β²/2 · ‖·‖₀``.

    Keeps the entries above the threshold and zeroes the others (Donoho & Johnstone 1994,
    Biometrika); layered hard thresholding of ``Dᵀx`` is the pursuit whose guarantees
    :func:`~mlcsc.theory.layered_thresholding_guarantee` checks (Papyan, Romano & Elad 2017,
    JMLR).

    Args:
        z: input tensor.
        beta: threshold ``β ≥ 0``: a scalar, or one value per channel ``(C,)``.

    Returns:
        ``H_β(z)``, shaped like ``z``.

    Shape:
        z: ``(B, C, ...)`` or any shape for a scalar β; output has the shape of ``z``.

    Examples:
        >>> hard_threshold(torch.tensor([-2.0, 0.5, 2.0]), 1.0)
        tensor([-2.,  0.,  2.])
    """
    beta = _per_channel(beta, z)
    return z * (z.abs() > beta).to(z.dtype)


def soft_threshold(z: Tensor, beta: Tensor | float) -> Tensor:
    """Soft thresholding ``S_β(z) = sign(z) · max(|z| − β, 0)``, the proximal map of ``β‖·‖₁``.

    Shrinks every entry towards zero by ``β`` (Donoho 1995, IEEE TIT); it is the step of ISTA
    for Basis Pursuit (Daubechies, Defrise & De Mol 2004, CPAM), ``S_β(z) =
    argmin_u ½‖u − z‖₂² + β‖u‖₁``.

    Args:
        z: input tensor.
        beta: threshold ``β ≥ 0``: a scalar, or one value per channel ``(C,)``.

    Returns:
        ``S_β(z)``, shaped like ``z``.

    Shape:
        z: ``(B, C, ...)`` or any shape for a scalar β; output has the shape of ``z``.

    Examples:
        >>> soft_threshold(torch.tensor([-2.0, 0.5, 2.0]), 1.0)
        tensor([-1.,  0.,  1.])
    """
    beta = _per_channel(beta, z)
    return torch.sign(z) * torch.relu(z.abs() - beta)


def soft_nonneg_threshold(z: Tensor, beta: Tensor | float) -> Tensor:
    """Soft-nonnegative thresholding ``S⁺_β(z) = max(z − β, 0) = ReLU(z − β)``.

    The proximal map of ``β‖·‖₁`` restricted to non-negative codes. This is the CNN activation
    with bias ``−β``: layered soft-nonnegative thresholding of ``Dᵀx`` is exactly a
    convolutional forward pass (Papyan, Romano & Elad 2017, JMLR).

    Args:
        z: input tensor.
        beta: threshold ``β``: a scalar, or one value per channel ``(C,)``.

    Returns:
        ``S⁺_β(z)``, shaped like ``z``.

    Shape:
        z: ``(B, C, ...)`` or any shape for a scalar β; output has the shape of ``z``.

    Examples:
        >>> soft_nonneg_threshold(torch.tensor([-2.0, 0.5, 2.0]), 1.0)
        tensor([0., 0., 1.])
    """
    beta = _per_channel(beta, z)
    return torch.relu(z - beta)


def soft_nonneg_threshold_(z: Tensor, beta: Tensor | float) -> Tensor:
    """In-place :func:`soft_nonneg_threshold`: overwrites ``z`` with ``max(z − β, 0)`` and
    returns it. Two passes over ``z`` and no temporary, for tensors autograd does not track
    (the unrolled pursuits without gradients).

    Examples:
        >>> z = torch.tensor([[-2.0, 0.5], [2.0, 3.0]])
        >>> out = soft_nonneg_threshold_(z, torch.tensor([1.0, 2.0]))
        >>> out is z, z
        (True, tensor([[0., 0.],
                [1., 1.]]))
    """
    return z.sub_(_per_channel(beta, z)).clamp_min_(0)


_OPERATORS = {
    "hard": hard_threshold,
    "soft": soft_threshold,
    "soft_nonneg": soft_nonneg_threshold,
}


def threshold(z: Tensor, beta: Tensor | float, mode: str = "soft_nonneg") -> Tensor:
    """Apply the thresholding operator named by ``mode`` (one of :data:`THRESHOLD_MODES`).

    ``"hard"``: :func:`hard_threshold` ``H_β``; ``"soft"``: :func:`soft_threshold` ``S_β``;
    ``"soft_nonneg"``: :func:`soft_nonneg_threshold` ``S⁺_β`` (the ReLU of a CNN; Papyan,
    Romano & Elad 2017, JMLR).

    Args:
        z: input tensor.
        beta: threshold ``β``: a scalar, or one value per channel ``(C,)``.
        mode: ``"hard"``, ``"soft"`` or ``"soft_nonneg"``.

    Returns:
        The thresholded tensor, shaped like ``z``.

    Raises:
        ValueError: for an unknown ``mode`` or a threshold of the wrong shape.

    Shape:
        z: ``(B, C, ...)`` or any shape for a scalar β; output has the shape of ``z``.

    Examples:
        A ``(C,)`` threshold holds one value per channel (dimension 1):

        >>> threshold(torch.full((1, 2, 1), 3.0), torch.tensor([1.0, 2.0]), mode="soft")
        tensor([[[2.],
                 [1.]]])
    """
    try:
        operator = _OPERATORS[mode]
    except KeyError:
        raise ValueError(
            f"unknown threshold mode {mode!r}; expected one of {', '.join(THRESHOLD_MODES)}"
        ) from None
    return operator(z, beta)


def weighted_l1(codes: Tensor, weight: Tensor | float) -> Tensor:
    """Per-signal weighted ℓ1 norm ``Σ_c β_c ‖codes[:, c]‖₁`` (or ``β‖codes‖₁`` for a scalar).

    The penalty of Basis Pursuit denoising (Chen, Donoho & Saunders 1998, SIAM J. Sci.
    Comput.), whose proximal map is :func:`soft_threshold`.

    Args:
        codes: codes ``(B, C, ...)``.
        weight: ``β``: a scalar, or one value per channel ``(C,)``.

    Returns:
        ``(B,)`` tensor, one penalty per signal.

    Shape:
        codes ``(B, C, ...)``, weight scalar or ``(C,)`` → ``(B,)``.

    Examples:
        >>> weighted_l1(torch.tensor([[1.0, -2.0]]), torch.tensor([1.0, 0.5]))
        tensor([2.])
    """
    return (codes.abs() * _per_channel(weight, codes)).flatten(1).sum(1)
