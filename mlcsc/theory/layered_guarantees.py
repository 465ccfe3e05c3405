"""Worst-case guarantees of the layered ML-CSC pursuits (MODEL.md §3).

Papyan, Romano & Elad (2017, JMLR): layered hard thresholding (the CNN forward pass) and
layered basis pursuit recover the supports of every layer ``Y = D₁Γ₁ + E``,
``Γ_{i−1} = D_iΓ_i`` when each layer is locally sparse enough; they are checked layer by layer,
the error of one layer being the noise of the next. Each function returns a
:class:`~mlcsc.theory.guarantee_base.LayeredGuarantee` holding one
:class:`~mlcsc.theory.guarantee_base.Guarantee` per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mlcsc.theory.coherence import mutual_coherence
from mlcsc.theory.guarantee_base import (
    LayeredGuarantee,
    check_coherence,
    check_tol,
    check_unit_norm,
    conv_codes,
    csc_stability_bound,
    per_signal_noise,
    summarize,
)
from mlcsc.theory.norms import l0_inf_norm, l2_inf_norm

__all__ = ["layered_thresholding_guarantee", "layered_bp_guarantee"]


def _layered_inputs(dictionaries, codes, noise, coherences, patch_sizes, tol):
    dictionaries = list(getattr(dictionaries, "dictionaries", dictionaries))
    if not dictionaries:
        raise ValueError("dictionaries must be a non-empty list of ConvDictionary")
    if isinstance(codes, Tensor) or len(codes) != len(dictionaries):
        got = "a tensor" if isinstance(codes, Tensor) else f"{len(codes)} codes"
        raise ValueError(f"codes must be a list of {len(dictionaries)} codes [G_1..G_K], got {got}")
    codes = [
        conv_codes(d, g, f"dictionaries[{i}]")
        for i, (d, g) in enumerate(zip(dictionaries, codes, strict=True))
    ]
    batch = codes[0].shape[0]
    if any(g.shape[0] != batch for g in codes):
        sizes = [g.shape[0] for g in codes]
        raise ValueError(f"all codes must have the same batch size, got {sizes}")
    for i, d in enumerate(dictionaries):
        check_unit_norm(d, f"dictionaries[{i}]")
    if coherences is None:
        mus = [check_coherence(mutual_coherence(d)) for d in dictionaries]
    else:
        if len(coherences) != len(dictionaries):
            raise ValueError(
                f"coherences must have {len(dictionaries)} values, got {len(coherences)}"
            )
        mus = [check_coherence(mu) for mu in coherences]
    if patch_sizes is None:
        patch_sizes = [d.kernel_size for d in dictionaries[1:]] + [dictionaries[-1].kernel_size]
    elif not isinstance(patch_sizes, Sequence) or len(patch_sizes) != len(dictionaries):
        raise ValueError(f"patch_sizes must have {len(dictionaries)} values, got {patch_sizes!r}")
    tol = check_tol(tol)
    eps0 = per_signal_noise(noise, batch, lambda e: l2_inf_norm(e, dictionaries[0]))
    layers = []
    for d, g, p in zip(dictionaries, codes, patch_sizes, strict=True):
        magnitude = g.abs().flatten(1).double().cpu()
        support = magnitude > tol
        g_max = magnitude.amax(dim=1)
        g_min = torch.where(support, magnitude, math.inf).amin(dim=1)
        g_min = torch.where(support.any(dim=1), g_min, 0.0)
        layers.append(
            {
                "stripe": l0_inf_norm(g, d, tol=tol).double().cpu(),
                "patch": l0_inf_norm(g, p, mode="patch", tol=tol).double().cpu(),
                "g_min": g_min,
                "g_max": g_max,
                "patch_size": p,
            }
        )
    return mus, eps0, layers


def layered_thresholding_guarantee(
    dictionaries,
    codes: Sequence[Tensor],
    noise: float | Tensor = 0.0,
    *,
    coherences: Sequence[float] | None = None,
    patch_sizes: Sequence[int] | None = None,
    tol: float = 0.0,
) -> LayeredGuarantee:
    """Layered hard thresholding (the CNN forward pass) finds the supports of every layer.

    For ``Y = D₁Γ₁ + E``, ``Γ_{i−1} = D_iΓ_i``, the forward pass ``Γ̂_i = H_{β_i}(D_iᵀΓ̂_{i−1})``
    recovers the support of every ``Γ_i`` (Papyan, Romano & Elad 2017, JMLR, Theorem 4;
    MODEL.md §3) when, for every layer,

        ``‖Γ_i‖₀,∞^S < ½(1 + (1/μ(D_i))·|Γ_i^min|/|Γ_i^max|) − (1/μ(D_i))·ε_L^{i−1}/|Γ_i^max|``,

    ``|Γ_i^min|``, ``|Γ_i^max|`` being the smallest and largest magnitudes of the non-zeros of
    ``Γ_i``, and then ``‖Γ̂_i − Γ_i‖₂,∞^P ≤ ε_L^i`` with ``ε_L^0 = ‖E‖₂,∞^P`` and

        ``ε_L^i = √‖Γ_i‖₀,∞^P · (ε_L^{i−1} + μ(D_i)(‖Γ_i‖₀,∞^S − 1)|Γ_i^max|)``.

    Each threshold must separate the support from the rest: ``details["threshold_range"]`` is
    the interval ``(‖Γ_i‖₀,∞^S μ|Γ_i^max| + ε_L^{i−1},
    |Γ_i^min| − (‖Γ_i‖₀,∞^S − 1)μ|Γ_i^max| − ε_L^{i−1})`` of admissible ``β_i`` (non-empty
    exactly when the condition holds) and ``lam`` its midpoint. A layer with no non-zero
    fails the condition.

    Args:
        dictionaries: ``[D₁, …, D_K]`` (:class:`~mlcsc.ConvDictionary`, unit-norm filters) or
            an :class:`~mlcsc.MLCSC`.
        codes: the true codes ``[Γ₁, …, Γ_K]``.
        noise: ``‖E‖₂,∞^P`` of the signal noise in ``k₁ × k₁`` patches (a float), or the noise
            ``E`` itself ``(B, c, H, W)``.
        coherences: ``[μ(D₁), …, μ(D_K)]`` if already known.
        patch_sizes: patch size of each ``Γ_i`` for ``‖·‖₀,∞^P`` and ``‖·‖₂,∞^P``; default the
            filter size of ``D_{i+1}`` (which sees ``Γ_i`` as its signal), and that of ``D_K``
            for the deepest code.
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`LayeredGuarantee`; layer ``i``'s ``error_bound`` is ``ε_L^i`` (worst over the
        batch) and its ``holds`` is the condition of that layer alone.

    Raises:
        ValueError: for dictionaries that are not :class:`~mlcsc.ConvDictionary` with
            unit-norm filters, codes that do not match them or each other, or a coherence,
            patch size or noise of the wrong kind.

    Shape:
        codes[i]: ``(B, m_i, H_i, W_i)``; noise: float or ``(B, c, H, W)``.

    Examples:
        Two layers, ``|Γ^min| = 1`` and ``|Γ^max| = 2``, noise ``ε_L^0 = 0.01``: layer 1 needs
        ``‖Γ₁‖₀,∞^S < ½ + (1 − 0.02)·3/4 = 1.235``, and the error does not grow
        (``‖Γ_i‖₀,∞^S = ‖Γ_i‖₀,∞^P = 1``):

        >>> from mlcsc import ConvDictionary
        >>> D1 = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=2)
        >>> D2 = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=1, stride=2)
        >>> with torch.no_grad():  # μ(D₁) = 1/3; D₂ spreads a code 2 pixels apart, μ(D₂) = 0
        ...     _ = D1.weight.copy_(torch.tensor([[[[2.0, 1.0], [1.0, 0.0]]]]) / 6**0.5)
        ...     _ = D2.weight.fill_(1.0)
        >>> G2 = torch.zeros(1, 1, 3, 3)
        >>> G2[0, 0, 0, 0], G2[0, 0, 2, 1] = 2.0, 1.0
        >>> G1 = D2.synthesize(G2, (5, 5))  # Γ₁ = D₂Γ₂, one non-zero per stripe of D₁
        >>> result = layered_thresholding_guarantee([D1, D2], [G1, G2], noise=0.01)
        >>> bool(result), round(result[0].bound, 3), result.error_bounds
        (True, 1.235, [0.01, 0.01])
        >>> [round(beta, 4) for beta in result[0].details["threshold_range"]]
        [0.6767, 0.99]
    """
    return _layer_by_layer(
        "layered hard thresholding (Papyan, Romano & Elad 2017)",
        _thresholding_layer,
        dictionaries, codes, noise, coherences, patch_sizes, tol,
    )  # fmt: skip


def _thresholding_layer(i: int, mu: float, layer: dict, eps_prev: Tensor):
    """Theorem 4 of Papyan, Romano & Elad (2017) at layer ``i``: its guarantee and ``ε_L^i``."""
    stripe, g_min, g_max = layer["stripe"], layer["g_min"], layer["g_max"]
    # ½(1 + g_min/(μ g_max)) − ε/(μ g_max) = ½ + (g_min − 2ε)/(2μ g_max)
    excess = (g_min - 2.0 * eps_prev) / (2.0 * g_max)
    if mu > 0:
        bound = 0.5 + excess / mu
    else:
        bound = torch.where(excess > 0, math.inf, torch.where(excess < 0, -math.inf, 0.5))
    bound = torch.where(g_max > 0, bound, -math.inf)
    leak = mu * (stripe - 1).clamp_min(0) * g_max
    eps = layer["patch"].sqrt() * (eps_prev + leak)
    low = float((stripe * mu * g_max + eps_prev).max())
    high = float((g_min - leak - eps_prev).min())
    details = {
        "threshold_range": (low, high),
        "contrast": float((g_min / g_max.clamp_min(1e-300)).min()),
        "gamma_min": float(g_min.min()),
        "gamma_max": float(g_max.max()),
        **_layer_details(layer, eps_prev),
    }
    lam = 0.5 * (low + high) if low < high else None
    name = f"layered hard thresholding, layer {i}"
    return summarize(name, stripe, bound, mu, error=eps, lam=lam, details=details), eps


def layered_bp_guarantee(
    dictionaries,
    codes: Sequence[Tensor],
    noise: float | Tensor = 0.0,
    *,
    coherences: Sequence[float] | None = None,
    patch_sizes: Sequence[int] | None = None,
    tol: float = 0.0,
) -> LayeredGuarantee:
    """Layered Basis Pursuit is stable: ``‖Γ_i‖₀,∞^S < ⅓(1 + 1/μ(D_i))`` at every layer.

    Layer ``i`` of the layered BP solves ``min ½‖Γ̂_{i−1} − D_iΓ_i‖² + ξ_i‖Γ_i‖₁`` with
    ``ξ_i = 4ε_L^{i−1}`` (``lam``). Under the conditions the support of every ``Γ_i^LBP`` is
    inside that of ``Γ_i`` and (Papyan, Romano & Elad 2017, JMLR; MODEL.md §3)

        ``‖Γ_i^LBP − Γ_i‖₂,∞^P ≤ ε_L^i = 7.5^i ‖E‖₂,∞^P ∏_{j≤i} √‖Γ_j‖₀,∞^P``,

    unlike layered thresholding free of the contrast ``|Γ_i^min|/|Γ_i^max|`` and exact
    without noise.

    Args:
        dictionaries: ``[D₁, …, D_K]`` (unit-norm filters) or an :class:`~mlcsc.MLCSC`.
        codes: the true codes ``[Γ₁, …, Γ_K]``.
        noise: ``‖E‖₂,∞^P`` (float) or the noise ``E`` itself ``(B, c, H, W)``.
        coherences: ``[μ(D₁), …, μ(D_K)]`` if already known.
        patch_sizes: patch size of each ``Γ_i`` for ``‖·‖₀,∞^P`` (as in
            :func:`layered_thresholding_guarantee`).
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`LayeredGuarantee`; layer ``i``'s ``error_bound`` is ``ε_L^i`` and ``lam`` is
        ``ξ_i`` (worst over the batch).

    Raises:
        ValueError: for dictionaries that are not :class:`~mlcsc.ConvDictionary` with
            unit-norm filters, codes that do not match them or each other, or a coherence,
            patch size or noise of the wrong kind.

    Shape:
        codes[i]: ``(B, m_i, H_i, W_i)``; noise: float or ``(B, c, H, W)``.

    Examples:
        Two layers with one non-zero per stripe and per patch, noise ``ε_L^0 = 0.01``: the
        error bounds are ``7.5·0.01`` and ``7.5²·0.01``, the weights ``ξ_i = 4ε_L^{i−1}``:

        >>> from mlcsc import ConvDictionary
        >>> D1 = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=2)
        >>> D2 = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=1, stride=2)
        >>> with torch.no_grad():  # μ(D₁) = 1/3; D₂ spreads a code 2 pixels apart, μ(D₂) = 0
        ...     _ = D1.weight.copy_(torch.tensor([[[[2.0, 1.0], [1.0, 0.0]]]]) / 6**0.5)
        ...     _ = D2.weight.fill_(1.0)
        >>> G2 = torch.zeros(1, 1, 3, 3)
        >>> G2[0, 0, 0, 0], G2[0, 0, 2, 1] = 2.0, 1.0
        >>> G1 = D2.synthesize(G2, (5, 5))  # Γ₁ = D₂Γ₂, one non-zero per stripe of D₁
        >>> result = layered_bp_guarantee([D1, D2], [G1, G2], noise=0.01)
        >>> bool(result), [layer.value for layer in result], result.error_bounds
        (True, [1.0, 1.0], [0.075, 0.5625])
        >>> [round(layer.lam, 4) for layer in result]
        [0.04, 0.3]
    """
    return _layer_by_layer(
        "layered basis pursuit (Papyan, Romano & Elad 2017)",
        _bp_layer,
        dictionaries, codes, noise, coherences, patch_sizes, tol,
    )  # fmt: skip


def _bp_layer(i: int, mu: float, layer: dict, eps_prev: Tensor):
    """The stability of layered BP at layer ``i``: its guarantee and ``ε_L^i``."""
    eps = 7.5 * eps_prev * layer["patch"].sqrt()
    bound, lam = csc_stability_bound(mu), 4.0 * float(eps_prev.max())
    details = _layer_details(layer, eps_prev)
    name = f"layered BP, layer {i}"
    return summarize(name, layer["stripe"], bound, mu, error=eps, lam=lam, details=details), eps


def _layer_details(layer: dict, eps_prev: Tensor) -> dict:
    return {
        "l0_inf_patch": float(layer["patch"].max()),
        "patch_size": layer["patch_size"],
        "input_error": float(eps_prev.max()),
    }


def _layer_by_layer(name: str, theorem, dictionaries, codes, noise, coherences, patch_sizes, tol):
    """``theorem(i, μ_i, measurements of Γ_i, ε_L^{i−1}) → (guarantee, ε_L^i)`` applied from
    the input upward, the error bound of each layer being the noise of the next."""
    mus, eps, layers = _layered_inputs(dictionaries, codes, noise, coherences, patch_sizes, tol)
    results = []
    for i, (mu, layer) in enumerate(zip(mus, layers, strict=True), start=1):
        guarantee, eps = theorem(i, mu, layer, eps)
        results.append(guarantee)
    return LayeredGuarantee(name, all(g.holds for g in results), tuple(results))
