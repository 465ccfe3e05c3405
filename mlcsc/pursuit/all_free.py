"""The "All Free" baseline of Sulam, Aberdam, Beck & Elad (2019).

A feed-forward network as deep as an unrolled layered pursuit with ``T`` unfoldings, but with
untied filters and biases in every unfolding: the control that shows what the tied weights of
the pursuits are worth. Unfolding ``t = 1…T`` updates the layers from the input upward,

    Γ_j ← T_{β_j^{(t+1)}}(Γ_j − W_j^{(t+1)ᵀ}(W_j^{(t)}Γ_j − Γ_{j−1})),

after the forward pass ``Γ_j = T_{β_j^{(1)}}(W_j^{(1)ᵀ}Γ_{j−1})`` (``Γ₀ = Y``; no steps). The
first filter bank ``W^{(1)}`` and thresholds ``β^{(1)}`` are the model's ``dictionaries`` and
``thresholds``; the others are its ``unfolded_dictionaries`` / ``unfolded_thresholds``.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from mlcsc.functional import threshold
from mlcsc.pursuit.base import LayerParameters, Pursuit, forward_pass
from mlcsc.pursuit.registry import register_pursuit

__all__ = ["AllFree"]


@register_pursuit("all_free")
class AllFree(Pursuit):
    """All Free, registered as ``"all_free"``: ``T`` unfoldings with filters and thresholds of
    their own.

    After the forward pass ``Γ_j = T_{β_j^{(1)}}(W_j^{(1)ᵀ}Γ_{j−1})``, unfolding ``t`` updates
    ``Γ_j ← T_{β_j^{(t+1)}}(Γ_j − W_j^{(t+1)ᵀ}(W_j^{(t)}Γ_j − Γ_{j−1}))`` from the input upward
    (see the module docstring): the untied baseline of Sulam, Aberdam, Beck & Elad (2019,
    IEEE TPAMI). Reference parametrisation only; ``n_iter`` may be lowered after building, not
    raised.

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> from mlcsc.pursuit import layered_thresholding
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="all_free", n_iter=2,
        ...               parametrization="reference")
        >>> len(model.unfolded_dictionaries), len(model.unfolded_thresholds)
        (2, 2)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> model(x).shape
        torch.Size([2, 8, 4, 4])
        >>> model.n_iter = 0  # the forward pass of the first filter bank: a CNN
        >>> cnn = layered_thresholding(list(model.dictionaries), x, list(model.thresholds))
        >>> torch.equal(model(x), cnn[-1])
        True
        >>> model.n_iter = 3  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: pursuit 'all_free' has filters of its own in each of the 2 unfoldings ...
    """

    untied = "never"
    unfolded = True
    # the network of the public code: small reference initialisation, additive biases
    parametrizations = ("reference",)

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        banks = [(layers.dictionaries, layers.thresholds), *(layers.unfolded or [])]
        if n_iter > len(banks) - 1:
            raise ValueError(
                f"all_free was built with {len(banks) - 1} unfoldings; cannot run {n_iter}"
            )
        plain = dataclasses.replace(layers, forward_scales=None)
        codes = forward_pass(plain, x)
        for t in range(n_iter):
            (synthesis, _), (analysis, thresholds) = banks[t], banks[t + 1]
            signal = x
            for j in range(layers.num_layers):
                residual = synthesis[j].synthesize(codes[j], layers.sizes[j]) - signal
                z = codes[j] - analysis[j].analyze(residual)
                codes[j] = threshold(z, thresholds[j], layers.mode)
                signal = codes[j]
        return codes
