"""The ML-CSC projection (Sulam, Papyan, Romano & Elad 2018): estimate only the deepest code.

"Multi-Layer Convolutional Sparse Modeling: Pursuit and Dictionary Learning", IEEE TSP. The
projection of a signal onto the ML-CSC model solves a single basis pursuit on the effective
dictionary ``D_eff = D₁⋯D_K``,

    Γ_K = argmin_Γ ½‖Y − D₁⋯D_KΓ‖₂² + β_K‖Γ‖₁     (optionally Γ ≥ 0),

by FISTA with step ``ρ_K/‖D_eff‖²`` started from the forward pass, and then sets the
intermediate codes from it, ``Γ_{j−1} = D_jΓ_j``: every layer's code is consistent with the
model by construction, and the intermediate codes are sparse when the deeper filters are. It is
the pursuit of that paper's dictionary learning.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.pursuit.base import LayerParameters, Pursuit, forward_pass
from mlcsc.pursuit.multilayer import MLFISTA
from mlcsc.pursuit.registry import register_pursuit

__all__ = ["Projection", "mlcsc_projection"]


@register_pursuit("projection")
class Projection(Pursuit):
    """FISTA on ``D_eff`` for ``Γ_K`` (threshold ``s_Kβ_K``, step ``c₁⋯c_K``), warm-started by
    the forward pass; returns ``[D₂⋯D_KΓ_K, …, D_KΓ_K, Γ_K]``. Needs the exact adjoint of
    ``D_eff`` (no untied filters) and steps from ``‖D_eff‖²`` (normalised parametrisation)."""

    step_rules = ("chain",)
    untied = "never"
    parametrizations = ("normalized",)

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        # ML-FISTA on the one-layer stack [D_eff], started from the forward pass of the stack
        effective = EffectiveDictionary(layers.dictionaries, layers.sizes)
        deepest = LayerParameters(
            [effective],
            [effective],
            [layers.sizes[0]],
            [layers.thresholds[-1]],
            layers.mode,
            steps=[layers.compound_steps()[-1]],
            threshold_scales=[layers.step_threshold_scales(compound=True)[-1]],
        )
        start = forward_pass(layers, x)[-1:]
        (gamma,) = MLFISTA().iterate(deepest, x, start, n_iter)
        return layers.rebuild(gamma)


def mlcsc_projection(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence,
    n_iter: int,
    mode: str = "soft",
    step: float | Tensor | None = None,
) -> list[Tensor]:
    """The ML-CSC projection with an explicit (or estimated) step.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: signals ``(B, C, H, W)``.
        thresholds: ``[β₁, …, β_K]``: ``β_K`` is the ℓ1 weight of the deepest code; all of them
            act in the forward pass that starts FISTA (zeros start it from ``T(D_effᵀ…)``).
        n_iter: FISTA iterations.
        mode: ``"soft"`` (signed codes) or ``"soft_nonneg"`` (``Γ_K ≥ 0``).
        step: FISTA step; default ``1/‖D₁⋯D_K‖²`` (power iteration on the chain).

    Returns:
        ``[Γ₁, …, Γ_K]`` with ``Γ_{j−1} = D_jΓ_j``.
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode)
    if step is None:
        step = 1.0 / float(EffectiveDictionary(dictionaries, layers.sizes).lipschitz())
    layers.steps = [1.0] * (len(dictionaries) - 1) + [step]
    return Projection()(layers, x, n_iter)
