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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mlcsc.theory.coherence import mutual_coherence
from mlcsc.theory.norms import l0_inf_norm, l2_inf_norm

__all__ = [
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

#: largest relative deviation of an atom norm from 1 that the guarantees accept
UNIT_NORM_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class Guarantee:
    """The outcome of checking one recovery theorem on given codes.

    The condition of every theorem here is ``value < bound``; the promise (``error_bound``,
    ``lam``) is only guaranteed when ``holds`` is true. For a batch, ``holds`` means the
    condition holds for every signal, ``value`` is the largest measured sparsity, ``bound`` the
    smallest bound and ``error_bound`` the largest error bound over the batch.

    Attributes:
        name: the theorem.
        holds: whether the condition holds for every signal.
        value: measured sparsity (``‖Γ‖₀`` or ``‖Γ‖₀,∞^S``), worst over the batch.
        bound: the value must be strictly below this.
        coherence: ``μ(D)`` used.
        error_bound: what the theorem bounds (see each function), or ``None``.
        lam: the recommended ``λ`` (ℓ1 weight or threshold), or ``None``.
        holds_per_signal: ``(B,)`` bool tensor (on the CPU).
        values: ``(B,)`` measured sparsity per signal (float64, on the CPU).
        details: further quantities of the theorem, by name.
    """

    name: str
    holds: bool
    value: float
    bound: float
    coherence: float
    error_bound: float | None = None
    lam: float | None = None
    holds_per_signal: Tensor | None = None
    values: Tensor | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.holds


@dataclass(frozen=True, eq=False)
class LayeredGuarantee:
    """Per-layer guarantees of a multi-layer pursuit.

    Attributes:
        name: the theorem.
        holds: the conditions of all layers hold (for every signal), so the per-layer
            promises are all valid.
        layers: one :class:`Guarantee` per layer ``1 … K``; ``layers[i].error_bound`` is
            ``ε_L^{i+1}``, and ``layers[i].holds`` is that layer's own condition.
    """

    name: str
    holds: bool
    layers: tuple[Guarantee, ...]

    def __bool__(self) -> bool:
        return self.holds

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index: int) -> Guarantee:
        return self.layers[index]

    @property
    def error_bounds(self) -> list[float]:
        """``[ε_L^1, …, ε_L^K]``."""
        return [float(layer.error_bound) for layer in self.layers]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- bounds
def _check_coherence(coherence) -> float:
    value = float(coherence)
    # a coherence of identical atoms computed in float32 can exceed 1 by a rounding error
    if not 0.0 <= value <= 1.0 + 1e-6:
        raise ValueError(f"coherence must be in [0, 1], got {value}")
    return min(value, 1.0)


def _sparsity_bound(coherence, factor: float) -> float:
    mu = _check_coherence(coherence)
    return math.inf if mu == 0 else factor * (1.0 + 1.0 / mu)


def exact_recovery_bound(coherence: float | Tensor) -> float:
    """``½(1 + 1/μ)``: OMP and BP recover every representation sparser than this.

    Donoho & Elad (2003), Tropp (2004); for CSC with ``‖Γ‖₀,∞^S`` in place of ``‖Γ‖₀``
    (Papyan, Sulam & Elad 2017). ``μ = 0`` gives ``inf``.
    """
    return _sparsity_bound(coherence, 0.5)


def stability_bound(coherence: float | Tensor) -> float:
    """``¼(1 + 1/μ)``: the sparsity below which BP is stable to noise (Donoho, Elad &
    Temlyakov 2006)."""
    return _sparsity_bound(coherence, 0.25)


def csc_stability_bound(coherence: float | Tensor) -> float:
    """``⅓(1 + 1/μ)``: the stripe sparsity below which convolutional BP is stable and keeps
    the support (Papyan, Sulam & Elad 2017)."""
    return _sparsity_bound(coherence, 1.0 / 3.0)


# ---------------------------------------------------------------------------------- helpers
def _weight(dictionary) -> Tensor:
    weight = getattr(dictionary, "weight", dictionary)
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight)
    return weight.detach()


def _check_unit_norm(dictionary, name: str = "dictionary") -> None:
    weight = _weight(dictionary)
    norms = weight.norm(dim=0) if weight.ndim == 2 else weight.flatten(1).norm(dim=1)
    deviation = (norms.double() - 1).abs().max()
    if float(deviation) > UNIT_NORM_TOL:
        raise ValueError(
            f"the guarantees assume atoms of unit l2 norm; {name} has atom norms in "
            f"[{float(norms.min()):.6g}, {float(norms.max()):.6g}] (call normalize_() first)"
        )


def _coherence_of(dictionary, coherence) -> float:
    if coherence is not None:
        return _check_coherence(coherence)
    return _check_coherence(mutual_coherence(dictionary))


def _check_tol(tol: float) -> float:
    if not float(tol) >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    return float(tol)


def _dense_codes(dictionary, codes: Tensor) -> Tensor:
    weight = _weight(dictionary)
    if weight.ndim != 2:
        raise ValueError(
            f"expected a dense (n, m) dictionary, got a weight of shape {tuple(weight.shape)}"
        )
    codes = torch.as_tensor(codes).detach()
    if codes.ndim == 1:
        codes = codes.unsqueeze(0)
    if codes.ndim != 2 or codes.shape[1] != weight.shape[1] or codes.shape[0] < 1:
        raise ValueError(
            f"codes must have shape (m,) or (B, m) with m = {weight.shape[1]} atoms, "
            f"got shape {tuple(codes.shape)}"
        )
    return codes


def _per_signal_noise(noise, batch: int, measure, name: str = "noise") -> Tensor:
    """A float noise level, or a noise tensor measured per signal by ``measure``."""
    if isinstance(noise, Tensor) and noise.ndim > 0:
        levels = measure(noise.detach()).double().flatten().cpu()
        if levels.numel() == 1:
            levels = levels.expand(batch)
        if levels.numel() != batch:
            raise ValueError(
                f"{name} must be a level or a batch of {batch} noise signals, "
                f"got shape {tuple(noise.shape)}"
            )
        return levels
    level = float(noise)
    if not level >= 0 or math.isinf(level):
        raise ValueError(f"{name} must be a finite level >= 0, got {level}")
    return torch.full((batch,), level, dtype=torch.float64)


def _summary(
    name: str,
    values: Tensor,
    bounds: Tensor | float,
    coherence: float,
    error: Tensor | float | None = None,
    lam: float | None = None,
    details: dict[str, Any] | None = None,
) -> Guarantee:
    values = values.detach().double().cpu()
    bounds = torch.as_tensor(bounds, dtype=torch.float64).cpu().expand_as(values)
    holds = values < bounds
    error_bound = None
    if error is not None:
        error_bound = float(torch.as_tensor(error, dtype=torch.float64).cpu().max())
    return Guarantee(
        name=name,
        holds=bool(holds.all()),
        value=float(values.max()),
        bound=float(bounds.min()),
        coherence=coherence,
        error_bound=error_bound,
        lam=lam,
        holds_per_signal=holds,
        values=values,
        details=details or {},
    )


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

    Shape:
        codes: ``(m,)`` or ``(B, m)``.
    """
    codes = _dense_codes(dictionary, codes)
    _check_unit_norm(dictionary)
    mu = _coherence_of(dictionary, coherence)
    nnz = (codes.abs() > _check_tol(tol)).sum(dim=1)
    return _summary(
        "OMP/BP exact recovery (||G||_0 < (1 + 1/mu)/2)",
        nnz,
        exact_recovery_bound(mu),
        mu,
        error=0.0,
    )


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

    Shape:
        codes: ``(m,)`` or ``(B, m)``; noise: float, ``(n,)`` or ``(B, n)``.
    """
    codes = _dense_codes(dictionary, codes)
    _check_unit_norm(dictionary)
    mu = _coherence_of(dictionary, coherence)
    batch = codes.shape[0]
    eps = _per_signal_noise(noise, batch, lambda v: v.reshape(-1, v.shape[-1]).norm(dim=1))
    if tolerance is None:
        delta = eps
    else:
        delta = torch.full_like(eps, float(tolerance))
        if not float(tolerance) >= float(eps.max()):
            raise ValueError(
                f"tolerance (delta) must be >= the noise level epsilon = {float(eps.max()):.6g}, "
                f"got {tolerance}"
            )
    nnz = (codes.abs() > _check_tol(tol)).sum(dim=1).double().cpu()
    denominator = 1.0 - mu * (4.0 * nnz - 1.0)
    error = torch.where(
        denominator > 0, (eps + delta) ** 2 / denominator.clamp_min(1e-300), math.inf
    )
    return _summary(
        "BP stability (||G||_0 < (1 + 1/mu)/4)",
        nnz,
        stability_bound(mu),
        mu,
        error=error,
        details={"epsilon": float(eps.max()), "tolerance": float(delta.max())},
    )


# ---------------------------------------------------------------------------------- CSC
def _conv_check(dictionary, codes: Tensor, name: str = "dictionary") -> Tensor:
    if not all(hasattr(dictionary, a) for a in ("kernel_size", "stride", "num_atoms", "weight")):
        raise ValueError(f"{name} must be a ConvDictionary, got {type(dictionary).__name__}")
    if not isinstance(codes, Tensor) or codes.ndim != 4 or codes.shape[0] < 1:
        shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise ValueError(f"codes must have shape (B, m, H', W'), got {shape}")
    if codes.shape[1] != dictionary.num_atoms:
        raise ValueError(
            f"codes must have {dictionary.num_atoms} channels (the atoms of {name}), "
            f"got shape {tuple(codes.shape)}"
        )
    return codes.detach()


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

    Shape:
        codes: ``(B, m, H', W')``.
    """
    codes = _conv_check(dictionary, codes)
    _check_unit_norm(dictionary)
    mu = _coherence_of(dictionary, coherence)
    stripes = l0_inf_norm(codes, dictionary, tol=_check_tol(tol))
    return _summary(
        "CSC OMP/BP exact recovery (||G||_0,inf^S < (1 + 1/mu)/2)",
        stripes,
        exact_recovery_bound(mu),
        mu,
        error=0.0,
    )


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

    Shape:
        codes: ``(B, m, H', W')``; noise: float or ``(B, c, H, W)``.
    """
    codes = _conv_check(dictionary, codes)
    _check_unit_norm(dictionary)
    mu = _coherence_of(dictionary, coherence)
    stripes = l0_inf_norm(codes, dictionary, tol=_check_tol(tol))
    eps = _per_signal_noise(noise, codes.shape[0], lambda e: l2_inf_norm(e, dictionary))
    return _summary(
        "CSC BP stability (||G||_0,inf^S < (1 + 1/mu)/3)",
        stripes,
        csc_stability_bound(mu),
        mu,
        error=7.5 * eps,
        lam=4.0 * float(eps.max()),
        details={"noise_l2_inf": float(eps.max())},
    )


# ---------------------------------------------------------------------------------- ML-CSC
def _layered_inputs(dictionaries, codes, noise, coherences, patch_sizes, tol):
    dictionaries = list(getattr(dictionaries, "dictionaries", dictionaries))
    if not dictionaries:
        raise ValueError("dictionaries must be a non-empty list of ConvDictionary")
    if isinstance(codes, Tensor) or len(codes) != len(dictionaries):
        got = "a tensor" if isinstance(codes, Tensor) else f"{len(codes)} codes"
        raise ValueError(f"codes must be a list of {len(dictionaries)} codes [G_1..G_K], got {got}")
    codes = [
        _conv_check(d, g, f"dictionaries[{i}]")
        for i, (d, g) in enumerate(zip(dictionaries, codes, strict=True))
    ]
    batch = codes[0].shape[0]
    if any(g.shape[0] != batch for g in codes):
        sizes = [g.shape[0] for g in codes]
        raise ValueError(f"all codes must have the same batch size, got {sizes}")
    for i, d in enumerate(dictionaries):
        _check_unit_norm(d, f"dictionaries[{i}]")
    if coherences is None:
        mus = [_check_coherence(mutual_coherence(d)) for d in dictionaries]
    else:
        if len(coherences) != len(dictionaries):
            raise ValueError(
                f"coherences must have {len(dictionaries)} values, got {len(coherences)}"
            )
        mus = [_check_coherence(mu) for mu in coherences]
    if patch_sizes is None:
        patch_sizes = [d.kernel_size for d in dictionaries[1:]] + [dictionaries[-1].kernel_size]
    elif not isinstance(patch_sizes, Sequence) or len(patch_sizes) != len(dictionaries):
        raise ValueError(f"patch_sizes must have {len(dictionaries)} values, got {patch_sizes!r}")
    tol = _check_tol(tol)
    eps0 = _per_signal_noise(noise, batch, lambda e: l2_inf_norm(e, dictionaries[0]))
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

    Shape:
        codes[i]: ``(B, m_i, H_i, W_i)``; noise: float or ``(B, c, H, W)``.
    """
    mus, eps_prev, layers = _layered_inputs(
        dictionaries, codes, noise, coherences, patch_sizes, tol
    )
    results = []
    for i, (mu, layer) in enumerate(zip(mus, layers, strict=True), start=1):
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
        guarantee = _summary(
            f"layered hard thresholding, layer {i}",
            stripe,
            bound,
            mu,
            error=eps,
            lam=0.5 * (low + high) if low < high else None,
            details={
                "threshold_range": (low, high),
                "contrast": float((g_min / g_max.clamp_min(1e-300)).min()),
                "gamma_min": float(g_min.min()),
                "gamma_max": float(g_max.max()),
                "l0_inf_patch": float(layer["patch"].max()),
                "patch_size": layer["patch_size"],
                "input_error": float(eps_prev.max()),
            },
        )
        results.append(guarantee)
        eps_prev = eps
    return LayeredGuarantee(
        "layered hard thresholding (Papyan, Romano & Elad 2017)",
        all(g.holds for g in results),
        tuple(results),
    )


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

    Shape:
        codes[i]: ``(B, m_i, H_i, W_i)``; noise: float or ``(B, c, H, W)``.
    """
    mus, eps_prev, layers = _layered_inputs(
        dictionaries, codes, noise, coherences, patch_sizes, tol
    )
    results = []
    for i, (mu, layer) in enumerate(zip(mus, layers, strict=True), start=1):
        eps = 7.5 * eps_prev * layer["patch"].sqrt()
        results.append(
            _summary(
                f"layered BP, layer {i}",
                layer["stripe"],
                csc_stability_bound(mu),
                mu,
                error=eps,
                lam=4.0 * float(eps_prev.max()),
                details={
                    "l0_inf_patch": float(layer["patch"].max()),
                    "patch_size": layer["patch_size"],
                    "input_error": float(eps_prev.max()),
                },
            )
        )
        eps_prev = eps
    return LayeredGuarantee(
        "layered basis pursuit (Papyan, Romano & Elad 2017)",
        all(g.holds for g in results),
        tuple(results),
    )
