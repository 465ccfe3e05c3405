"""What the recovery guarantees report and the measurements they share.

:class:`Guarantee` and :class:`LayeredGuarantee` are the results of the theorems of
:mod:`mlcsc.theory.guarantees` and :mod:`mlcsc.theory.layered_guarantees`; the bounds
``c(1 + 1/μ)`` on the sparsity are the conditions they check. The helpers check the
dictionaries (unit-norm atoms), the codes and the noise, and measure the sparsity.

>>> exact_recovery_bound(0.2), stability_bound(0.2)
(3.0, 1.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mlcsc.checks import check_number
from mlcsc.dictionary import Dictionary
from mlcsc.theory.coherence import mutual_coherence
from mlcsc.theory.norms import l0_inf_norm

__all__ = [
    "UNIT_NORM_TOL",
    "Guarantee",
    "LayeredGuarantee",
    "check_coherence",
    "check_tol",
    "check_unit_norm",
    "coherence_of",
    "conv_codes",
    "csc_stability_bound",
    "dense_codes",
    "exact_recovery_bound",
    "measured_sparsity",
    "per_signal_noise",
    "stability_bound",
    "summarize",
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

    The theorems are those of Donoho & Elad (2003, PNAS), Tropp (2004, IEEE TIT) and Donoho,
    Elad & Temlyakov (2006, IEEE TIT) for Sparseland, and of Papyan, Sulam & Elad (2017,
    IEEE TSP) for CSC; :class:`LayeredGuarantee` holds one per layer for ML-CSC.

    Examples:
        A result is true exactly when the condition holds for every signal of the batch:

        >>> from mlcsc.theory import exact_recovery_guarantee
        >>> D = torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]])  # μ(D) = 0.8
        >>> codes = torch.tensor([[0.0, 0.0, -1.5], [1.0, 1.0, 0.0]])
        >>> result = exact_recovery_guarantee(D, codes)
        >>> bool(result), result.value, round(result.bound, 4), round(result.coherence, 4)
        (False, 2.0, 1.125, 0.8)
        >>> result.values.tolist(), result.holds_per_signal.tolist(), result.error_bound
        ([1.0, 2.0], [True, False], 0.0)
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

    It behaves as the sequence of its layers (``len``, indexing, iteration), and is true when
    every layer's condition holds. The layered theorems are those of Papyan, Romano & Elad
    (2017, JMLR): :func:`~mlcsc.theory.layered_thresholding_guarantee` and
    :func:`~mlcsc.theory.layered_bp_guarantee` return it.

    Examples:
        >>> first = Guarantee("layer 1", True, value=1.0, bound=2.0, coherence=0.25,
        ...                   error_bound=0.1)
        >>> second = Guarantee("layer 2", False, value=3.0, bound=2.0, coherence=0.25,
        ...                    error_bound=0.5)
        >>> result = LayeredGuarantee("two layers", holds=False, layers=(first, second))
        >>> bool(result), len(result), [bool(layer) for layer in result], result.error_bounds
        (False, 2, [True, False], [0.1, 0.5])
        >>> result[1].value
        3.0
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
        """``[ε_L^1, …, ε_L^K]``: the error bound of every layer, shallowest first."""
        return [float(layer.error_bound) for layer in self.layers]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- bounds
def check_coherence(coherence) -> float:
    value = float(coherence)
    # a coherence of identical atoms computed in float32 can exceed 1 by a rounding error
    if not 0.0 <= value <= 1.0 + 1e-6:
        raise ValueError(f"coherence must be in [0, 1], got {value}")
    return min(value, 1.0)


def _sparsity_bound(coherence, factor: float) -> float:
    mu = check_coherence(coherence)
    return math.inf if mu == 0 else factor * (1.0 + 1.0 / mu)


def exact_recovery_bound(coherence: float | Tensor) -> float:
    """``½(1 + 1/μ)``: OMP and BP recover every representation sparser than this.

    A representation with ``‖Γ‖₀ < ½(1 + 1/μ(D))`` is the unique sparsest one (Donoho & Elad
    2003, PNAS; Gribonval & Nielsen 2003, IEEE TIT), and both OMP and BP find it (Tropp 2004,
    IEEE TIT); for CSC the same holds with ``‖Γ‖₀,∞^S`` in place of ``‖Γ‖₀`` (Papyan, Sulam &
    Elad 2017, IEEE TSP).

    Args:
        coherence: ``μ(D)`` in ``[0, 1]`` (a float or a 0-d tensor).

    Returns:
        The bound (a float); ``μ = 0`` gives ``inf``.

    Raises:
        ValueError: for a coherence outside ``[0, 1]``.

    Examples:
        With ``μ = 1/4`` (spikes and a ``16 × 16`` Hadamard basis), two atoms are recovered:

        >>> exact_recovery_bound(0.25), exact_recovery_bound(0.0)
        (2.5, inf)
    """
    return _sparsity_bound(coherence, 0.5)


def stability_bound(coherence: float | Tensor) -> float:
    """``¼(1 + 1/μ)``: the sparsity below which BP is stable to noise.

    For ``‖Γ‖₀ < ¼(1 + 1/μ(D))`` the error of the error-constrained Basis Pursuit is bounded
    by the noise level (Donoho, Elad & Temlyakov 2006, IEEE TIT, Theorem 3.1); see
    :func:`~mlcsc.theory.noisy_bp_guarantee` for the bound itself.

    Args:
        coherence: ``μ(D)`` in ``[0, 1]`` (a float or a 0-d tensor).

    Returns:
        The bound (a float); ``μ = 0`` gives ``inf``.

    Raises:
        ValueError: for a coherence outside ``[0, 1]``.

    Examples:
        Half the exact-recovery bound:

        >>> stability_bound(0.25), stability_bound(torch.tensor(0.5))
        (1.25, 0.75)
    """
    return _sparsity_bound(coherence, 0.25)


def csc_stability_bound(coherence: float | Tensor) -> float:
    """``⅓(1 + 1/μ)``: the stripe sparsity below which convolutional BP is stable.

    For ``‖Γ‖₀,∞^S < ⅓(1 + 1/μ(D))``, BP with ``λ = 4‖E‖₂,∞^P`` keeps the support and has a
    bounded ℓ∞ error (Papyan, Sulam & Elad 2017, IEEE TSP); the same bound applies to every
    layer of the layered BP (Papyan, Romano & Elad 2017, JMLR). See
    :func:`~mlcsc.theory.csc_bp_guarantee`.

    Args:
        coherence: ``μ(D)`` in ``[0, 1]`` (a float or a 0-d tensor).

    Returns:
        The bound (a float); ``μ = 0`` gives ``inf``.

    Raises:
        ValueError: for a coherence outside ``[0, 1]``.

    Examples:
        A stripe may hold one non-zero only when ``μ < ½``:

        >>> csc_stability_bound(0.5), csc_stability_bound(0.2)
        (1.0, 2.0)
    """
    return _sparsity_bound(coherence, 1.0 / 3.0)


# ---------------------------------------------------------------------------------- helpers
def _weight(dictionary) -> Tensor:
    weight = getattr(dictionary, "weight", dictionary)
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight)
    return weight.detach()


def check_unit_norm(dictionary, name: str = "dictionary") -> None:
    if isinstance(dictionary, Dictionary):
        norms = dictionary.atom_norms().detach()
    else:  # an (n, m) matrix, atoms as columns
        norms = _weight(dictionary).norm(dim=0)
    deviation = (norms.double() - 1).abs().max()
    if float(deviation) > UNIT_NORM_TOL:
        raise ValueError(
            f"the guarantees assume atoms of unit l2 norm; {name} has atom norms in "
            f"[{float(norms.min()):.6g}, {float(norms.max()):.6g}] (call normalize_() first)"
        )


def coherence_of(dictionary, coherence) -> float:
    if coherence is not None:
        return check_coherence(coherence)
    return check_coherence(mutual_coherence(dictionary))


def dense_codes(dictionary, codes: Tensor) -> Tensor:
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


def per_signal_noise(noise, batch: int, measure, name: str = "noise") -> Tensor:
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
    level = check_number(name, noise, 0.0)
    return torch.full((batch,), level, dtype=torch.float64)


def summarize(
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


def conv_codes(dictionary, codes: Tensor, name: str = "dictionary") -> Tensor:
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


def check_tol(tol: object) -> float:
    """The threshold ``tol ≥ 0`` above which a code entry counts as non-zero."""
    return check_number("tol", tol, 0.0, allow_inf=True)


def measured_sparsity(
    dictionary, codes: Tensor, coherence, tol, *, convolutional: bool
) -> tuple[Tensor, float, Tensor]:
    """What a single-dictionary theorem measures: the checked ``codes``, ``μ(D)`` (checked, or
    computed) and the sparsity of every code, ``‖Γ‖₀`` (dense) or ``‖Γ‖₀,∞^S``
    (convolutional), counting the entries above ``tol``; the dictionary must have unit atoms.
    """
    codes = conv_codes(dictionary, codes) if convolutional else dense_codes(dictionary, codes)
    check_unit_norm(dictionary)
    mu = coherence_of(dictionary, coherence)
    tol = check_tol(tol)
    if convolutional:
        return codes, mu, l0_inf_norm(codes, dictionary, tol=tol)
    return codes, mu, (codes.abs() > tol).sum(dim=1)
