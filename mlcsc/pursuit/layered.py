"""Layered pursuits for ML-CSC: one layer at a time, from the signal upward.

* Layered thresholding (Papyan, Romano & Elad 2017):
  ``Γ̂₁ = T_{β₁}(D₁ᵀY)``, ``Γ̂_j = T_{β_j}(D_jᵀΓ̂_{j−1})``. With soft-nonnegative thresholding
  this is exactly the CNN forward pass ``ReLU(W_jᵀ · + b_j)`` with ``W_j = D_j``, ``b_j = −β_j``.
* Layered basis pursuit: ``Γ̂_j = argmin ½‖Γ̂_{j−1} − D_jΓ_j‖² + β_j‖Γ_j‖₁``, solved by ``n_iter``
  unrolled ISTA steps per layer, each layer started from its thresholding estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mlcsc.functional import threshold
from mlcsc.pursuit.proximal import proximal_gradient_step
from mlcsc.pursuit.registry import register_pursuit

__all__ = ["layered_thresholding", "layered_bp"]


@register_pursuit("layered_thresholding")
def layered_thresholding(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence[Tensor | float],
    steps: Sequence[Tensor | float] | None = None,
    n_iter: int = 0,
    mode: str = "soft_nonneg",
    analysis: Sequence | None = None,
) -> list[Tensor]:
    """Layered thresholding: the CNN forward pass. ``steps`` and ``n_iter`` are unused.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)``.
        thresholds: ``[β₁, …, β_K]``, each a scalar or a ``(m_j,)`` tensor.
        analysis: optional analysis dictionaries used in place of ``D_j`` for ``D_jᵀ``.

    Returns:
        ``[Γ₁, …, Γ_K]``.
    """
    codes = []
    current = x
    for j, dictionary in enumerate(analysis or dictionaries):
        current = threshold(dictionary.analyze(current), thresholds[j], mode)
        codes.append(current)
    return codes


@register_pursuit("layered_bp")
def layered_bp(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence[Tensor | float],
    steps: Sequence[Tensor | float],
    n_iter: int,
    mode: str = "soft_nonneg",
    analysis: Sequence | None = None,
) -> list[Tensor]:
    """Layered basis pursuit by ``n_iter`` ISTA steps per layer.

    For each layer ``j``: ``Γ_j⁰ = T_{β_j}(D_jᵀΓ̂_{j−1})``, then
    ``Γ_j^{t} = T_{c_jβ_j}(Γ_j^{t−1} − c_j D_jᵀ(D_jΓ_j^{t−1} − Γ̂_{j−1}))`` for t = 1…n_iter,
    with step ``c_j = steps[j]`` (stable for ``c_j < 2/‖D_j‖²``).

    Returns:
        ``[Γ₁, …, Γ_K]``.
    """
    analysis = analysis or dictionaries
    codes = []
    signal = x
    for j, dictionary in enumerate(dictionaries):
        gamma = threshold(analysis[j].analyze(signal), thresholds[j], mode)
        for _ in range(n_iter):
            gamma = proximal_gradient_step(
                dictionary, gamma, signal, steps[j], thresholds[j], mode, analysis[j]
            )
        codes.append(gamma)
        signal = gamma
    return codes
