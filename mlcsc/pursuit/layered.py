"""Layered pursuits for ML-CSC: one layer at a time, from the signal upward.

* Layered thresholding (Papyan, Romano & Elad 2017):
  ``Γ̂₁ = T_{β₁}(D₁ᵀY)``, ``Γ̂_j = T_{β_j}(D_jᵀΓ̂_{j−1})``. With soft-nonnegative thresholding
  this is exactly the CNN forward pass ``ReLU(W_jᵀ · + b_j)`` with ``W_j = D_j``, ``b_j = −β_j``.
* Layered basis pursuit: ``Γ̂_j = argmin ½‖Γ̂_{j−1} − D_jΓ_j‖² + β_j‖Γ_j‖₁``, solved by ``n_iter``
  unrolled ISTA steps per layer, each layer started from its thresholding estimate. Each layer
  is a single-dictionary problem, so its step comes from that layer's norm: ``c_j = ρ_j/‖D_j‖²``
  (step rule ``"layer"``).

In the reference parametrisation (Sulam, Aberdam, Beck & Elad 2019, public code) the forward
pass is ``Γ_j = ReLU(c_jD_jᵀΓ_{j−1} + b_j)`` and layered BP iterates
``Γ_j = ReLU(Γ_j − c_jD_jᵀ(D_jΓ_j − Γ_{j−1}) + b_j)``; see :mod:`mlcsc.pursuit.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mlcsc.pursuit.base import (
    LayerParameters,
    Pursuit,
    forward_pass,
    gradient_step,
)
from mlcsc.pursuit.registry import register_pursuit

__all__ = ["LayeredThresholding", "LayeredBP", "layered_thresholding", "layered_bp"]


@register_pursuit("layered_thresholding")
class LayeredThresholding(Pursuit):
    """Layered thresholding: the CNN forward pass; ``n_iter`` is unused."""

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return forward_pass(layers, x)


@register_pursuit("layered_bp")
class LayeredBP(Pursuit):
    """Layered basis pursuit by ``n_iter`` proximal-gradient steps per layer.

    For each layer ``j``: ``Γ_j⁰ = T(a_jB_jᵀΓ̂_{j−1}, β_j)``, then ``n_iter`` times
    ``Γ_j ← T(Γ_j − c_jB_jᵀ(D_jΓ_j − Γ̂_{j−1}), s_jβ_j)`` (normalised: ``s_j = c_j``, so each
    layer is ISTA on its own BP problem with weight ``β_j``).
    """

    step_rules = ("layer",)

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        codes = []
        signal = x
        scales = layers.step_threshold_scales(compound=False)
        for j in range(layers.num_layers):
            (gamma,) = forward_pass(_single(layers, j), signal)
            for _ in range(n_iter):
                gamma = gradient_step(layers, j, gamma, signal, scales[j])
            codes.append(gamma)
            signal = gamma
        return codes


def _single(layers: LayerParameters, j: int) -> LayerParameters:
    """Layer ``j`` alone, for the per-layer forward pass of layered BP."""
    return LayerParameters(
        [layers.dictionaries[j]],
        [layers.analysis[j]],
        [layers.sizes[j]],
        [layers.thresholds[j]],
        layers.mode,
        forward_scales=[layers.forward_scales[j]],
    )


def layered_thresholding(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence[Tensor | float],
    steps: Sequence[Tensor | float] | None = None,
    n_iter: int = 0,
    mode: str = "soft_nonneg",
    analysis: Sequence | None = None,
) -> list[Tensor]:
    """Layered thresholding ``Γ_j = T_{β_j}(B_jᵀΓ_{j−1})``; ``steps`` and ``n_iter`` are unused.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]``, each a scalar or a ``(m_j,)`` tensor.
        analysis: optional analysis dictionaries ``B_j`` used in place of ``D_j`` for ``D_jᵀ``.

    Returns:
        ``[Γ₁, …, Γ_K]``.
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, analysis=analysis)
    return LayeredThresholding()(layers, x, 0)


def layered_bp(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence[Tensor | float],
    steps: Sequence[Tensor | float],
    n_iter: int,
    mode: str = "soft_nonneg",
    analysis: Sequence | None = None,
) -> list[Tensor]:
    """Layered basis pursuit by ``n_iter`` ISTA steps per layer, with explicit steps.

    For each layer ``j``: ``Γ_j⁰ = T_{β_j}(D_jᵀΓ̂_{j−1})``, then
    ``Γ_j^{t} = T_{c_jβ_j}(Γ_j^{t−1} − c_j D_jᵀ(D_jΓ_j^{t−1} − Γ̂_{j−1}))`` for t = 1…n_iter,
    with step ``c_j = steps[j]`` (stable for ``c_j < 2/‖D_j‖²``).

    Returns:
        ``[Γ₁, …, Γ_K]``.
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, steps, analysis)
    return LayeredBP()(layers, x, n_iter)
