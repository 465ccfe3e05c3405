"""Multi-layer pursuits on the deepest code: ML-ISTA, ML-FISTA and ML-LISTA.

Sulam, Aberdam, Beck & Elad (2019), "On Multi-Layer Basis Pursuit, Efficient Algorithms and
Convolutional Neural Networks", IEEE TPAMI. The multi-layer basis pursuit problem is

    min_{Γ_K}  ½‖Y − D₁D₂⋯D_KΓ_K‖₂² + Σ_i β_i‖Γ_i‖₁,   Γ_i = D_{i+1}⋯D_KΓ_K,

(with ``Γ_i ≥ 0`` for soft-nonnegative thresholding). ML-ISTA iterates on ``Γ_K``; each
iteration first rebuilds the intermediate codes from it, ``Γ̂_{K−1} = D_KΓ_K``, …,
``Γ̂₁ = D₂Γ̂₂``, then takes one proximal-gradient step per layer from the input upward:

    Γ₁ ← T_{c₁β₁}(Γ̂₁ − c₁D₁ᵀ(D₁Γ̂₁ − Y)),
    Γ_j ← T_{c₁⋯c_jβ_j}(Γ̂_j − c_jD_jᵀ(D_jΓ̂_j − Γ_{j−1})),   j = 2…K.

The threshold of layer ``j`` carries the compound step ``c₁⋯c_j``: with ``β₁ = 0`` the layer-2
update is exactly an ISTA step of size ``c₁c₂`` on ``½‖Y − D₁D₂Γ₂‖² + β₂‖Γ₂‖₁`` (in the paper's
notation ``μ = c₁`` and ``t = c₁c₂``). With ``β₁ > 0`` the first-layer step is a forward-backward
step rather than an exact proximal map, so the fixed point approximates the ML-BP minimiser;
the paper analyses ML-ISTA as a proximal-gradient method on a smoothed objective.

It starts from the forward pass (layered thresholding), so ``n_iter = 0`` is the CNN. ML-FISTA
adds Nesterov momentum on ``Γ_K``; ML-LISTA unties the analysis operators ``D_jᵀ`` from the
synthesis dictionaries (learned ``B_jᵀ`` in their place).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor

from mlcsc.functional import weighted_l1
from mlcsc.pursuit.layered import layered_thresholding
from mlcsc.pursuit.proximal import proximal_gradient_step
from mlcsc.pursuit.registry import register_pursuit

__all__ = ["ml_ista", "ml_fista", "ml_lista", "multilayer_bp_objective"]


def _multilayer_iterations(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence,
    steps: Sequence,
    n_iter: int,
    mode: str,
    analysis: Sequence | None,
    momentum: bool,
) -> list[Tensor]:
    analysis = analysis or dictionaries
    codes = layered_thresholding(dictionaries, x, thresholds, mode=mode, analysis=analysis)
    sizes = [
        dictionary.signal_size(signal)
        for dictionary, signal in zip(dictionaries, [x, *codes[:-1]], strict=True)
    ]
    deepest = len(dictionaries) - 1
    compound = list(itertools.accumulate(steps, lambda a, b: a * b))  # c₁⋯c_j
    gamma = codes[-1]
    point, t = gamma, 1.0
    for _ in range(n_iter):
        # rebuild Γ̂_{K−1}, …, Γ̂₁ from the deepest code
        rebuilt = [point]
        for j in range(deepest, 0, -1):
            rebuilt.insert(0, dictionaries[j].synthesize(rebuilt[0], sizes[j]))
        # one proximal-gradient step per layer, from the input upward
        signal = x
        codes = []
        for j, dictionary in enumerate(dictionaries):
            # the layer-j gradient step acts on Γ_K with the compound step c₁⋯c_j, so its
            # ℓ1 threshold is c₁⋯c_j·β_j (Sulam et al. 2019: t·λ_j with t = c₁⋯c_j)
            signal = proximal_gradient_step(
                dictionary,
                rebuilt[j],
                signal,
                steps[j],
                thresholds[j],
                mode,
                analysis[j],
                threshold_step=compound[j],
            )
            codes.append(signal)
        new = codes[-1]
        if momentum:
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            point = new + ((t - 1.0) / t_next) * (new - gamma)
            t = t_next
        else:
            point = new
        gamma = new
    return codes


@register_pursuit("ml_ista")
def ml_ista(dictionaries, x, thresholds, steps, n_iter, mode="soft_nonneg", analysis=None):
    """ML-ISTA: ``n_iter`` multi-layer proximal-gradient iterations from the forward pass.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)``.
        thresholds: ``[β₁, …, β_K]`` (ℓ1 weights; scalars or ``(m_j,)`` tensors).
        steps: ``[c₁, …, c_K]`` step sizes (stable for ``c_j < 2/‖D_j‖²``).
        n_iter: number of iterations ``T`` (0 gives the forward pass).
        mode: thresholding operator.
        analysis: optional analysis dictionaries ``B_j`` used for the adjoints.

    Returns:
        ``[Γ₁, …, Γ_K]`` from the last iteration (each the output of its thresholding).
    """
    return _multilayer_iterations(
        dictionaries, x, thresholds, steps, n_iter, mode, analysis, momentum=False
    )


@register_pursuit("ml_fista")
def ml_fista(dictionaries, x, thresholds, steps, n_iter, mode="soft_nonneg", analysis=None):
    """ML-FISTA: ML-ISTA with FISTA momentum on the deepest code; arguments as :func:`ml_ista`."""
    return _multilayer_iterations(
        dictionaries, x, thresholds, steps, n_iter, mode, analysis, momentum=True
    )


@register_pursuit("ml_lista", untied=True)
def ml_lista(dictionaries, x, thresholds, steps, n_iter, mode="soft_nonneg", analysis=None):
    """ML-LISTA: ML-ISTA whose adjoints ``D_jᵀ`` are replaced by learned analysis operators.

    ``analysis`` (the ``B_j``, one per layer, shaped like the ``D_j``) is required; the forward
    pass uses them too, so ``n_iter = 0`` is the CNN with weights ``B_j``.
    """
    if analysis is None:
        raise ValueError("ml_lista needs analysis dictionaries (one per layer), got None")
    return _multilayer_iterations(
        dictionaries, x, thresholds, steps, n_iter, mode, analysis, momentum=False
    )


def multilayer_bp_objective(
    dictionaries: Sequence, x: Tensor, gamma: Tensor, thresholds: Sequence
) -> Tensor:
    """Per-signal ML-BP objective ``½‖x − D₁⋯D_KΓ_K‖² + Σ_i β_i‖Γ_i‖₁``, ``Γ_i = D_{i+1}⋯D_KΓ_K``.

    ``thresholds`` are scalars or per-channel ``(m_i,)`` tensors (weighted ℓ1). The intermediate
    sizes are those of the forward pass on ``x``. Returns a tensor of shape ``(B,)``.
    """
    sizes = []
    signal = x
    for dictionary in dictionaries:
        sizes.append(dictionary.signal_size(signal))
        signal = dictionary.analyze(signal)
    penalty = 0.0
    current = gamma
    for j in range(len(dictionaries) - 1, -1, -1):
        penalty = penalty + weighted_l1(current, thresholds[j])
        current = dictionaries[j].synthesize(current, sizes[j])
    return 0.5 * (x - current).flatten(1).pow(2).sum(1) + penalty
