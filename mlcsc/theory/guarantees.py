"""Worst-case recovery guarantees of Sparseland, CSC and ML-CSC pursuits (MODEL.md §1–3).

Every function here takes a dictionary and the *true* codes (and the noise level), evaluates
the sparsity condition of one theorem and returns a :class:`Guarantee`: whether the condition
holds, the bound the measured sparsity must stay strictly below, the measured value, and what
the theorem then promises (an error bound, a recommended ``λ``). The theorems assume atoms of
unit ℓ2 norm; the functions check it and refuse other dictionaries (``normalize_()`` them).

* Sparseland (Donoho & Elad 2003; Donoho, Elad & Temlyakov 2006, IEEE TIT): OMP and BP recover
  ``Γ`` from ``y = DΓ`` when ``‖Γ‖₀ < ½(1 + 1/μ)``; with noise ``‖v‖₂ ≤ ε`` and
  ``‖Γ‖₀ < ¼(1 + 1/μ)``, BP gives ``‖Γ̂ − Γ‖₂² ≤ (ε + δ)²/(1 − μ(4‖Γ‖₀ − 1))``.
* CSC (Papyan, Sulam & Elad 2017, "Working locally thinking globally", IEEE TSP): the same with
  the stripe norm ``‖Γ‖₀,∞^S`` in place of ``‖Γ‖₀`` (``½`` noiseless, ``⅓`` with noise, where
  BP with ``λ = 4‖E‖₂,∞^P`` keeps the support and ``‖Γ_BP − Γ‖∞ ≤ 7.5‖E‖₂,∞^P``).
* ML-CSC (Papyan, Romano & Elad 2017, JMLR): layered hard thresholding (the CNN forward pass)
  and layered BP, layer by layer, with the error of one layer as the noise of the next.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mlcsc.theory.guarantee_base import (
    UNIT_NORM_TOL,
    Guarantee,
    LayeredGuarantee,
    csc_stability_bound,
    exact_recovery_bound,
    measured_sparsity,
    per_signal_noise,
    stability_bound,
    summarize,
)
from mlcsc.theory.layered_guarantees import layered_bp_guarantee, layered_thresholding_guarantee
from mlcsc.theory.norms import l2_inf_norm

__all__ = [
    "UNIT_NORM_TOL",
    "Guarantee",
    "LayeredGuarantee",
    "exact_recovery_bound",
    "stability_bound",
    "csc_stability_bound",
    "exact_recovery_guarantee",
    "noisy_bp_guarantee",
    "csc_exact_recovery_guarantee",
    "csc_bp_guarantee",
    "layered_thresholding_guarantee",
    "layered_bp_guarantee",
]


# ---------------------------------------------------------------------------------- Sparseland
def exact_recovery_guarantee(
    dictionary, codes: Tensor, *, coherence: float | None = None, tol: float = 0.0
) -> Guarantee:
    """Noiseless recovery by OMP and BP: ``‖Γ‖₀ < ½(1 + 1/μ(D))``.

    If the condition holds, ``Γ`` is the unique sparsest representation of ``y = DΓ``, and
    both OMP (run for ``‖Γ‖₀`` steps, or until the residual vanishes) and Basis Pursuit
    ``min ‖Γ‖₁ s.t. DΓ = y`` return it exactly (Donoho & Elad 2003; Tropp 2004; Donoho, Elad &
    Temlyakov 2006). ``error_bound`` is 0.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or an ``(n, m)`` matrix with unit-norm
            columns.
        codes: the true representations.
        coherence: ``μ(D)`` if already known (otherwise computed).
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`Guarantee` whose ``value`` is the largest ``‖Γ‖₀`` of the batch.

    Raises:
        ValueError: for a dictionary that is not an ``(n, m)`` matrix with unit-norm columns,
            codes of the wrong shape or a coherence outside ``[0, 1]``.

    Shape:
        codes: ``(m,)`` or ``(B, m)``; ``holds_per_signal`` and ``values``: ``(B,)``.

    Examples:
        With ``μ = 0.8`` a representation with a single atom is the sparsest one
        (``1 < 1.125``):

        >>> D = torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]])
        >>> codes = torch.tensor([[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]])
        >>> guarantee = exact_recovery_guarantee(D, codes)
        >>> round(guarantee.bound, 4), guarantee.holds_per_signal.tolist(), bool(guarantee)
        (1.125, [True, False], False)
    """
    name = "OMP/BP exact recovery (||G||_0 < (1 + 1/mu)/2)"
    return _exact_recovery(name, dictionary, codes, coherence, tol, convolutional=False)


def noisy_bp_guarantee(
    dictionary,
    codes: Tensor,
    noise: float | Tensor,
    *,
    tolerance: float | None = None,
    coherence: float | None = None,
    tol: float = 0.0,
) -> Guarantee:
    """Stability of Basis Pursuit to noise: ``‖Γ‖₀ < ¼(1 + 1/μ(D))``.

    For ``y = DΓ + v`` with ``‖v‖₂ ≤ ε``, the solution ``Γ̂`` of the error-constrained BP
    ``min ‖Γ‖₁ s.t. ‖y − DΓ‖₂ ≤ δ`` with ``δ ≥ ε`` satisfies (Donoho, Elad & Temlyakov 2006,
    Theorem 3.1)

        ``‖Γ̂ − Γ‖₂² ≤ (ε + δ)² / (1 − μ(4‖Γ‖₀ − 1))``,

    which for ``δ = ε`` is the ``4ε²/(1 − μ(4‖Γ‖₀ − 1))`` of MODEL.md §1. ``error_bound`` is
    this bound on the *squared* ℓ2 error (the largest over the batch; ``inf`` where the
    denominator is not positive).

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or an ``(n, m)`` matrix with unit-norm
            columns.
        codes: the true representations.
        noise: ``ε`` (a float ≥ 0) or the noise itself, ``(n,)`` or ``(B, n)``, from which
            ``ε = ‖v‖₂`` per signal.
        tolerance: ``δ`` of the pursuit (default ``ε`` of each signal); must be ``≥ ε``.
        coherence: ``μ(D)`` if already known.
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`Guarantee`; ``details`` holds the largest ``epsilon`` and ``tolerance``.

    Raises:
        ValueError: for a dictionary that is not an ``(n, m)`` matrix with unit-norm columns,
            codes or noise of the wrong shape, a negative noise level or ``tolerance < ε``.

    Shape:
        codes: ``(m,)`` or ``(B, m)``; noise: float, ``(n,)`` or ``(B, n)``;
        ``holds_per_signal`` and ``values``: ``(B,)``.

    Examples:
        Spikes and a Hadamard basis, ``[I, H/4]`` in ``R¹⁶``, have ``μ = 1/4``, so one atom is
        stable (``1 < 1.25``) and its squared error is at most ``(2ε)²/(1 − 3/4)``:

        >>> H2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
        >>> H = torch.kron(torch.kron(H2, H2), torch.kron(H2, H2))  # 16 × 16, entries ±1
        >>> D = torch.cat([torch.eye(16), H / 4], dim=1)
        >>> codes = torch.zeros(2, 32)
        >>> codes[0, 3] = codes[1, 3] = codes[1, 20] = 1.0
        >>> result = noisy_bp_guarantee(D, codes, 0.1)
        >>> result.bound, result.holds_per_signal.tolist()
        (1.25, [True, False])
        >>> round(noisy_bp_guarantee(D, codes[:1], 0.1).error_bound, 6)  # 0.2² / 0.25
        0.16
    """
    codes, mu, nnz = measured_sparsity(dictionary, codes, coherence, tol, convolutional=False)
    eps = per_signal_noise(noise, codes.shape[0], lambda v: v.reshape(-1, v.shape[-1]).norm(dim=1))
    if tolerance is None:
        delta = eps
    else:
        delta = torch.full_like(eps, float(tolerance))
        if not float(tolerance) >= float(eps.max()):
            raise ValueError(
                f"tolerance (delta) must be >= the noise level epsilon = {float(eps.max()):.6g}, "
                f"got {tolerance}"
            )
    nnz = nnz.double().cpu()
    denominator = 1.0 - mu * (4.0 * nnz - 1.0)
    error = torch.where(
        denominator > 0, (eps + delta) ** 2 / denominator.clamp_min(1e-300), math.inf
    )
    return summarize(
        "BP stability (||G||_0 < (1 + 1/mu)/4)",
        nnz,
        stability_bound(mu),
        mu,
        error=error,
        details={"epsilon": float(eps.max()), "tolerance": float(delta.max())},
    )


# ---------------------------------------------------------------------------------- CSC
def csc_exact_recovery_guarantee(
    dictionary, codes: Tensor, *, coherence: float | None = None, tol: float = 0.0
) -> Guarantee:
    """Noiseless CSC: ``‖Γ‖₀,∞^S < ½(1 + 1/μ(D))``.

    With ``μ(D)`` the coherence over all filter pairs and shifts
    (:func:`~mlcsc.theory.conv_mutual_coherence`), ``Γ`` is the unique locally sparsest
    representation of ``X = DΓ`` and OMP and BP recover it exactly (Papyan, Sulam & Elad 2017,
    IEEE TSP). ``error_bound`` is 0.

    Args:
        dictionary: a :class:`~mlcsc.ConvDictionary` with unit-norm filters.
        codes: the true codes.
        coherence: ``μ(D)`` if already known.
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`Guarantee` whose ``value`` is the largest ``‖Γ‖₀,∞^S`` of the batch.

    Raises:
        ValueError: for a dictionary that is not a :class:`~mlcsc.ConvDictionary` with
            unit-norm filters, codes of the wrong shape or a coherence outside ``[0, 1]``.

    Shape:
        codes: ``(B, m, H', W')``; ``holds_per_signal`` and ``values``: ``(B,)``.

    Examples:
        With ``μ = 1/3`` a stripe (3 × 3 code positions for 2 × 2 filters) may hold one
        non-zero (``1 < 2``): a code whose non-zeros are 3 positions apart qualifies, however
        many it has; two diagonal neighbours do not:

        >>> from mlcsc import ConvDictionary
        >>> D = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=2)
        >>> with torch.no_grad():  # one unit-norm 2 × 2 filter with μ(D) = 1/3
        ...     _ = D.weight.copy_(torch.tensor([[[[2.0, 1.0], [1.0, 0.0]]]]) / 6**0.5)
        >>> codes = torch.zeros(2, 1, 6, 6)
        >>> codes[0, 0, 0, 0] = codes[0, 0, 0, 3] = codes[0, 0, 3, 3] = 1.0
        >>> codes[1, 0, 0, 0] = codes[1, 0, 1, 1] = 1.0
        >>> result = csc_exact_recovery_guarantee(D, codes)
        >>> round(result.bound, 4), result.values.tolist(), result.holds_per_signal.tolist()
        (2.0, [1.0, 2.0], [True, False])
    """
    name = "CSC OMP/BP exact recovery (||G||_0,inf^S < (1 + 1/mu)/2)"
    return _exact_recovery(name, dictionary, codes, coherence, tol, convolutional=True)


def csc_bp_guarantee(
    dictionary,
    codes: Tensor,
    noise: float | Tensor,
    *,
    coherence: float | None = None,
    tol: float = 0.0,
) -> Guarantee:
    """Stability of convolutional BP: ``‖Γ‖₀,∞^S < ⅓(1 + 1/μ(D))``.

    For ``Y = DΓ + E`` and BP ``min ½‖Y − DΓ‖₂² + λ‖Γ‖₁`` with ``λ = 4‖E‖₂,∞^P``: the support of
    ``Γ_BP`` lies inside that of ``Γ``, ``‖Γ_BP − Γ‖∞ ≤ 7.5‖E‖₂,∞^P``, every entry of ``Γ``
    larger than ``7.5‖E‖₂,∞^P`` is found, and ``Γ_BP`` is unique (Papyan, Sulam & Elad 2017,
    IEEE TSP). ``error_bound`` is the ℓ∞ bound ``7.5‖E‖₂,∞^P`` and ``lam`` the ``λ``, both for
    the noisiest signal of the batch.

    Args:
        dictionary: a :class:`~mlcsc.ConvDictionary` with unit-norm filters.
        codes: the true codes.
        noise: ``‖E‖₂,∞^P`` (a float ≥ 0), or the noise ``E`` itself (shaped like the signals),
            measured per signal in ``k × k`` patches by :func:`~mlcsc.theory.l2_inf_norm`.
        coherence: ``μ(D)`` if already known.
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        A :class:`Guarantee`; ``details["noise_l2_inf"]`` is the largest ``‖E‖₂,∞^P``.

    Raises:
        ValueError: for a dictionary that is not a :class:`~mlcsc.ConvDictionary` with
            unit-norm filters, codes or noise of the wrong shape or a negative noise level.

    Shape:
        codes: ``(B, m, H', W')``; noise: float or ``(B, c, H, W)``; ``holds_per_signal`` and
        ``values``: ``(B,)``.

    Examples:
        Signals drawn with one non-zero per stripe are covered when ``μ = 1/3``
        (``1 < 4/3``); the noise is measured from the signals themselves:

        >>> from mlcsc import ConvDictionary
        >>> D = ConvDictionary(in_channels=1, num_atoms=1, kernel_size=2)
        >>> with torch.no_grad():  # one unit-norm 2 × 2 filter with μ(D) = 1/3
        ...     _ = D.weight.copy_(torch.tensor([[[[2.0, 1.0], [1.0, 0.0]]]]) / 6**0.5)
        >>> from mlcsc.theory import csc_signals
        >>> generator = torch.Generator().manual_seed(0)
        >>> signals, codes = csc_signals(D, 3, 8, l0_inf=1, noise_l2_inf=0.01, generator=generator)
        >>> result = csc_bp_guarantee(D, codes, signals - D.synthesize(codes, (8, 8)))
        >>> bool(result), round(result.bound, 4), round(result.lam, 4), round(result.error_bound, 4)
        (True, 1.3333, 0.04, 0.075)
    """
    codes, mu, stripes = measured_sparsity(dictionary, codes, coherence, tol, convolutional=True)
    eps = per_signal_noise(noise, codes.shape[0], lambda e: l2_inf_norm(e, dictionary))
    return summarize(
        "CSC BP stability (||G||_0,inf^S < (1 + 1/mu)/3)",
        stripes,
        csc_stability_bound(mu),
        mu,
        error=7.5 * eps,
        lam=4.0 * float(eps.max()),
        details={"noise_l2_inf": float(eps.max())},
    )


def _exact_recovery(name, dictionary, codes, coherence, tol, *, convolutional) -> Guarantee:
    """The noiseless theorem for either sparsity measure: ``value < ½(1 + 1/μ)``, no error."""
    _, mu, values = measured_sparsity(
        dictionary, codes, coherence, tol, convolutional=convolutional
    )
    return summarize(name, values, exact_recovery_bound(mu), mu, error=0.0)
