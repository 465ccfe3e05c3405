"""The thresholding pursuit: codes from one application of ``Dᵀ`` and a threshold.

Thresholding is the cheapest approximation of the ℓ0 pursuit ``min ‖Γ‖₀ s.t. ‖y − DΓ‖₂ ≤ ε``
(Elad 2010, *Sparse and Redundant Representations*, §3.1.3): correlate the signal with every
atom and keep the large correlations,

    Γ = T_β(Dᵀy),

with ``T_β`` hard, soft or soft-nonnegative thresholding. With a fixed number of atoms ``k``
instead of a threshold it keeps the ``k`` largest ``|Dᵀy|``. It succeeds when
``‖Γ‖₀ < ½(1 + (1/μ)·|Γ_min|/|Γ_max|)`` (Elad 2010, Theorem 4.5), which is also the first layer
of layered thresholding, the CNN forward pass (Papyan, Romano & Elad 2017).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlcsc.checks import check_choice
from mlcsc.functional import THRESHOLD_MODES
from mlcsc.functional import threshold as apply_threshold
from mlcsc.pursuit._validation import check_dictionary, check_nonnegative, check_sparsity

__all__ = ["thresholding"]


def thresholding(
    dictionary,
    y: Tensor,
    threshold: float | Tensor | None = None,
    k: int | None = None,
    mode: str = "hard",
) -> Tensor:
    """Sparse codes by thresholding the correlations ``z = Dᵀy``: ``Γ = T_β(Dᵀy)``.

    The simplest pursuit of Sparseland (Elad 2010, *Sparse and Redundant Representations*,
    Springer), and the first layer of the CNN forward pass read as layered thresholding
    (Papyan, Romano & Elad 2017, JMLR). Give exactly one of ``threshold`` and ``k``.

    * ``threshold=β`` (a scalar, or one value per atom of shape ``(m,)``): ``Γ = T_β(z)`` with
      ``H_β(z) = z·1{|z| > β}`` (``"hard"``), ``S_β(z) = sign(z)·max(|z| − β, 0)``
      (``"soft"``) or ``S⁺_β(z) = max(z − β, 0)`` (``"soft_nonneg"``).
    * ``k``: at most ``k`` non-zeros per signal, counted over all channels and positions of a
      convolutional code.

      - ``"hard"`` keeps the ``k`` entries of largest ``|z|`` unchanged (ties broken
        arbitrarily, so exactly ``k`` are kept when ``z`` has ``k`` non-zeros);
      - ``"soft"`` shrinks by the ``(k+1)``-th largest magnitude ``τ = |z|_(k+1)``:
        ``Γ = S_τ(z)``. Only entries with ``|z| > τ`` survive, so at most ``k`` (fewer when
        magnitudes tie with ``τ``); ``τ = 0`` when ``k`` equals the code size;
      - ``"soft_nonneg"`` ranks by the signed value: ``τ = max(z_(k+1), 0)`` with ``z_(k+1)``
        the ``(k+1)``-th largest entry, ``Γ = max(z − τ, 0)``; at most ``k`` survive, all
        positive.

    The soft variants are the proximal maps of ``τ‖·‖₁`` (plus ``Γ ≥ 0``) with the threshold
    chosen per signal; they are differentiable almost everywhere in ``y`` and ``D``.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or :class:`~mlcsc.ConvDictionary`.
        y: signals, ``(B, n)`` or ``(B, C, H, W)``.
        threshold: ``β ≥ 0``, scalar or per atom ``(m,)``.
        k: number of entries to keep per signal, ``1 ≤ k ≤`` code size (``m`` or ``m·H'·W'``).
        mode: ``"hard"``, ``"soft"`` or ``"soft_nonneg"``.

    Returns:
        Codes shaped like ``D.analyze(y)``.

    Raises:
        ValueError: both or neither of ``threshold`` and ``k``; an unknown ``mode``; bad
            dictionary, signal, threshold or ``k`` (the message names the argument).

    Shape:
        - y: ``(B, n)`` (dense) or ``(B, C, H, W)`` (convolutional).
        - output: ``(B, m)`` or ``(B, m, H', W')``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> D = DenseDictionary(torch.eye(4))
        >>> y = torch.tensor([[3.0, 1.0, 0.5, -2.0]])
        >>> thresholding(D, y, k=2).tolist()
        [[3.0, 0.0, 0.0, -2.0]]
        >>> thresholding(D, y, threshold=1.0, mode="soft").tolist()
        [[2.0, 0.0, 0.0, -1.0]]
    """
    if (threshold is None) == (k is None):
        raise ValueError(
            f"give exactly one of threshold and k, got threshold={threshold!r} and k={k!r}"
        )
    check_choice("mode", mode, THRESHOLD_MODES)
    check_dictionary(dictionary)
    dictionary.check_signal(y)
    if threshold is not None:
        check_nonnegative("threshold", threshold, dictionary.num_atoms)
        z = dictionary.analyze(y)
        if isinstance(threshold, Tensor):
            threshold = threshold.to(dtype=z.dtype, device=z.device)
        return apply_threshold(z, threshold, mode)
    k = check_sparsity(k, dictionary, y)
    z = dictionary.analyze(y)
    return _keep_largest(z, k, mode)


def _keep_largest(z: Tensor, k: int, mode: str) -> Tensor:
    """Keep at most ``k`` entries of every ``z[b]`` (see :func:`thresholding`)."""
    flat = z.flatten(1)  # (B, N)
    size = flat.shape[1]
    if mode == "hard":
        index = flat.abs().topk(k, dim=1).indices  # (B, k)
        mask = torch.zeros_like(flat).scatter_(1, index, 1.0)
        return (flat * mask).view_as(z)
    ranked = flat if mode == "soft_nonneg" else flat.abs()
    if k < size:
        tau = ranked.topk(k + 1, dim=1).values[:, k:]  # (B, 1)
    else:
        tau = torch.zeros_like(ranked[:, :1])
    if mode == "soft_nonneg":
        return torch.relu(flat - tau.clamp_min(0)).view_as(z)
    return (torch.sign(flat) * torch.relu(flat.abs() - tau)).view_as(z)
