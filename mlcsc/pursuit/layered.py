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
    """Layered thresholding, registered as ``"layered_thresholding"``: the CNN forward pass.

    ``Γ_j = T(a_j·B_jᵀΓ_{j−1}, β_j)`` for ``j = 1…K`` (``Γ₀ = Y``; ``a_j = 1`` in the
    normalised parametrisation), the pursuit of Papyan, Romano & Elad (2017, "Convolutional
    neural networks analyzed via convolutional sparse coding", JMLR); ``n_iter`` is unused and
    no steps are taken.

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="layered_thresholding",
        ...               threshold_init=0.1)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> gamma_1, gamma_2 = model(x, return_all=True)
        >>> tuple(gamma_1.shape), tuple(gamma_2.shape)
        ((2, 4, 10, 10), (2, 8, 4, 4))
        >>> codes = layered_thresholding(list(model.dictionaries), x, list(model.thresholds))
        >>> torch.equal(codes[-1], gamma_2), model.step_rule  # no steps, no Lipschitz constants
        (True, None)
    """

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return forward_pass(layers, x)


@register_pursuit("layered_bp")
class LayeredBP(Pursuit):
    """Layered basis pursuit, registered as ``"layered_bp"``: ``n_iter`` proximal-gradient
    steps per layer.

    For each layer ``j``: ``Γ_j⁰ = T(a_jB_jᵀΓ̂_{j−1}, β_j)``, then ``n_iter`` times
    ``Γ_j ← T(Γ_j − c_jB_jᵀ(D_jΓ_j − Γ̂_{j−1}), s_jβ_j)`` (normalised: ``s_j = c_j``, so each
    layer is ISTA on its own BP problem ``min ½‖Γ̂_{j−1} − D_jΓ_j‖² + β_j‖Γ_j‖₁`` with weight
    ``β_j``). Layered BP is proposed by Papyan, Romano & Elad (2017, JMLR); its unrolled form is
    a baseline of Sulam, Aberdam, Beck & Elad (2019, IEEE TPAMI). Step rule ``"layer"``:
    ``c_j = ρ_j/‖D_j‖²``.

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="layered_bp", n_iter=5,
        ...               threshold_init=0.05)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> codes = model(x, return_all=True)
        >>> model.step_rule, [tuple(code.shape) for code in codes]
        ('layer', [(2, 4, 10, 10), (2, 8, 4, 4)])
        >>> args = list(model.dictionaries), x, list(model.thresholds), model.steps()
        >>> same = layered_bp(*args, n_iter=5)  # the functional form with the model's steps
        >>> all(torch.allclose(a, b) for a, b in zip(codes, same))
        True
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
    """Layered thresholding ``Γ_j = T_{β_j}(B_jᵀΓ_{j−1})`` (``Γ₀ = x``, ``B_j = D_j`` unless
    ``analysis`` is given): the CNN forward pass ``ReLU(D_jᵀ· − β_j)`` for ``"soft_nonneg"``.

    The pursuit of Papyan, Romano & Elad (2017, "Convolutional neural networks analyzed via
    convolutional sparse coding", JMLR); the functional form of :class:`LayeredThresholding`.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]``, each a scalar or a ``(m_j,)`` tensor.
        steps: unused (the signature of the other functional pursuits).
        n_iter: unused.
        mode: thresholding operator (``"soft_nonneg"``, ``"soft"`` or ``"hard"``).
        analysis: optional analysis dictionaries ``B_j`` used in place of ``D_j`` for ``D_jᵀ``.

    Returns:
        ``[Γ₁, …, Γ_K]``.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mlcsc import ConvDictionary
        >>> _ = torch.manual_seed(0)
        >>> stack = [ConvDictionary(1, 4, 3), ConvDictionary(4, 8, 3, stride=2)]
        >>> x = torch.randn(2, 1, 12, 12)
        >>> codes = layered_thresholding(stack, x, [0.1, 0.2])
        >>> [tuple(code.shape) for code in codes]
        [(2, 4, 10, 10), (2, 8, 4, 4)]
        >>> hidden = F.relu(F.conv2d(x, stack[0].weight) - 0.1)  # the same two-layer CNN
        >>> cnn = F.relu(F.conv2d(hidden, stack[1].weight, stride=2) - 0.2)
        >>> torch.allclose(codes[-1], cnn)
        True
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
    with step ``c_j = steps[j]`` (stable for ``c_j < 2/‖D_j‖²``): ISTA on the layer's own
    problem ``min ½‖Γ̂_{j−1} − D_jΓ_j‖² + β_j‖Γ_j‖₁``. Layered BP is proposed by Papyan, Romano
    & Elad (2017, JMLR); the functional form of :class:`LayeredBP`.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]`` (ℓ1 weights; scalars or ``(m_j,)`` tensors).
        steps: ``[c₁, …, c_K]``, one step per layer.
        n_iter: ISTA iterations per layer (0 gives layered thresholding).
        mode: thresholding operator (``"soft_nonneg"``, ``"soft"`` or ``"hard"``).
        analysis: optional analysis dictionaries ``B_j`` used for the adjoints.

    Returns:
        ``[Γ₁, …, Γ_K]``.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> from mlcsc.pursuit import bp_objective
        >>> _ = torch.manual_seed(0)
        >>> stack = [DenseDictionary(torch.randn(16, 32)), DenseDictionary(torch.randn(32, 64))]
        >>> steps = [1 / float(D.lipschitz()) for D in stack]  # c_j = 1/‖D_j‖²
        >>> x = torch.randn(4, 16)
        >>> start = layered_bp(stack, x, [0.5, 0.5], steps, n_iter=0)
        >>> torch.equal(start[-1], layered_thresholding(stack, x, [0.5, 0.5])[-1])
        True
        >>> codes = layered_bp(stack, x, [0.5, 0.5], steps, n_iter=20)
        >>> [tuple(code.shape) for code in codes]
        [(4, 32), (4, 64)]
        >>> before = bp_objective(stack[0], start[0], x, 0.5)  # the first layer's BP problem
        >>> bool((bp_objective(stack[0], codes[0], x, 0.5) <= before).all())
        True
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, steps, analysis)
    return LayeredBP()(layers, x, n_iter)
