"""Dictionary learning for Sparseland: K-SVD and MOD.

Given signals ``y_1 … y_B ∈ Rⁿ`` (the rows of ``Y``), both methods look for a dictionary
``D ∈ R^{n×m}`` with unit-norm atoms (columns) and codes ``Γ`` (rows ``γ_i ∈ Rᵐ``) solving

    ``min_{D, Γ} ‖Y − ΓDᵀ‖_F²  s.t.  ‖γ_i‖₀ ≤ k  (or ‖y_i − Dγ_i‖₂ ≤ ε)  for every i``

by alternating two steps (block-coordinate descent):

1. **sparse coding** — with ``D`` fixed, every row is coded on its own by a pursuit
   (:func:`mlcsc.pursuit.omp` by default, batched over all signals);
2. **dictionary update** — with the supports fixed, ``D`` (and, for K-SVD, the non-zero
   coefficients) are updated:

   * **MOD** (Engan, Aase & Husøy 1999, "Method of optimal directions for frame design"):
     the least-squares dictionary for the current codes, ``D = YᵀΓ(ΓᵀΓ)⁻¹`` (``D = YΓᵀ(ΓΓᵀ)⁻¹``
     with signals as columns), then every atom is normalised and its coefficients rescaled.
   * **K-SVD** (Aharon, Elad & Bruckstein 2006, "K-SVD: an algorithm for designing overcomplete
     dictionaries for sparse representation", IEEE TSP 54(11)): one atom at a time (Gauss–Seidel),
     with ``ω_j`` the signals whose code uses atom ``j`` and ``E_j = Y_ω − Γ_ω Dᵀ + γ^j d_jᵀ`` the
     residual of those signals without atom ``j``, the pair (atom, coefficients) is replaced by
     the best rank-1 approximation of ``E_j``: ``d_j = v₁``, ``γ^j_ω = σ₁u₁`` (leading singular
     triple). Only the non-zero coefficients change, so the supports (and the sparsity) are kept.
   * **Approximate K-SVD** (Rubinstein, Zibulevsky & Elad 2008, "Efficient implementation of
     the K-SVD algorithm using batch orthogonal matching pursuit", Technion CS-2008-08): the
     SVD is replaced by one alternating (power) step started from the current coefficients,
     ``d_j = E_jᵀγ^j / ‖E_jᵀγ^j‖₂``, ``γ^j_ω = E_j d_j``. Each half-step is an exact
     minimisation of ``‖E_j − γ dᵀ‖_F`` over one factor, so the error cannot increase either.

The dictionary-update step never increases ``‖Y − ΓDᵀ‖_F``. The coding step would not either
with an exact pursuit, but OMP is greedy: in the new dictionary it can return a code worse than
the previous one, which still has at most ``k`` atoms (K-SVD keeps supports) and so is feasible.
With ``monotone=True`` and a fixed sparsity (``tol`` None), each signal keeps its previous code
when OMP's is worse, which makes the recorded error non-increasing (without replacement). It is
off by default: measured on the synthetic 20 × 50 problem of Aharon et al., plain OMP coding lets
the error rise by up to ~1 % in some iterations, but the safeguard also makes the method greedier
and it recovered fewer of the planted atoms (≈ 80–100 % instead of ≈ 94–96 % after 80
iterations). With an error target ``tol`` the codes are always OMP's (the objective there is the
number of atoms, not the error).

**Atom replacement** (as suggested by Aharon et al. 2006): between iterations, atoms that no signal
uses (K-SVD cannot update them) and atoms that nearly duplicate an earlier atom
(``|⟨d_i, d_j⟩| > duplicate_threshold``, 0.99 by default; the later index is replaced) are
replaced by the worst-represented signals — those with the largest residual ``‖y_i − Dγ_i‖₂``,
one distinct signal per replaced atom, normalised to unit norm. A replacement changes the
dictionary without re-coding, so it can raise the error of the next iteration: pass
``replace_atoms=False`` when a monotone error curve matters. No replacement happens after the
last iteration, so the returned codes are exactly the codes of the returned dictionary.

Everything is computed with tensor operations on the device and in the dtype (float32 or
float64) of ``Y``; the only Python loops are over iterations and (K-SVD) over atoms. This module
holds the alternating loop; the steps that change the atoms (updates, replacement, the initial
dictionary) are in :mod:`mlcsc.learning.dictionary_updates`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from mlcsc.checks import check_int, check_number
from mlcsc.dictionary import DenseDictionary
from mlcsc.learning.dictionary_updates import (
    initial_dictionary,
    ksvd_update_approximate,
    ksvd_update_exact,
    mod_update,
    replace_atoms_,
)
from mlcsc.learning.progress import progress_bar

__all__ = ["DictionaryLearningResult", "SparseCoder", "ksvd", "mod"]


class SparseCoder(Protocol):
    """A pursuit used in the sparse-coding step: ``coder(D, Y, k=k, tol=tol) -> Γ``.

    It receives a :class:`~mlcsc.DenseDictionary` ``D`` (``n × m``), signals ``Y`` of shape
    ``(B, n)`` and the stopping rules ``k`` (maximum atoms per signal, or None) and ``tol``
    (residual ℓ2 norm, or None), and returns dense codes of shape ``(B, m)``.
    :func:`mlcsc.pursuit.omp` has this signature: it approximates, for every row ``y_i``,
    ``min ‖γ_i‖₀ s.t. ‖y_i − Dγ_i‖₂ ≤ tol`` or ``min ‖y_i − Dγ_i‖₂ s.t. ‖γ_i‖₀ ≤ k`` (the
    sparse-coding step of Aharon, Elad & Bruckstein 2006 and Engan, Aase & Husøy 1999).

    Shape:
        - y: ``(B, n)``.
        - output: ``(B, m)``.

    Examples:
        Any callable with this signature can replace OMP in :func:`ksvd`, :func:`mod` and
        :func:`~mlcsc.learning.ksvd_denoise`; here, coding every signal with its one most
        correlated atom:

        >>> def best_atom(dictionary, y, k=None, tol=None):
        ...     correlations = dictionary.analyze(y)  # (B, m)
        ...     best = correlations.abs().argmax(dim=1, keepdim=True)
        ...     return torch.zeros_like(correlations).scatter_(
        ...         1, best, correlations.gather(1, best))
        >>> Y = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
        >>> result = mod(Y, 12, sparsity=1, n_iter=3, sparse_coder=best_atom, progress=False)
        >>> result.codes.shape, int((result.codes != 0).sum(dim=1).max())
        (torch.Size([100, 12]), 1)
    """

    def __call__(
        self, dictionary: DenseDictionary, y: Tensor, k: int | None, tol: float | None
    ) -> Tensor: ...


@dataclass
class DictionaryLearningResult:
    """What :func:`ksvd` and :func:`mod` return.

    Attributes:
        dictionary: the learned ``n × m`` dictionary, unit-norm atoms, on the device and in the
            dtype of the signals.
        codes: ``(B, m)`` codes of the signals in ``dictionary`` after the last update
            (``Y ≈ codes @ dictionary.weight.T``).
        errors: ``RMSE = ‖Y − ΓDᵀ‖_F / √(B·n)`` after the dictionary update of every iteration.
        replaced: number of atoms replaced after every iteration (unused or near-duplicate).

    Shape:
        - dictionary weight: ``(n, m)``.
        - codes: ``(B, m)``.

    Examples:
        What :func:`mod` returns for two signals coded in the identity dictionary, without an
        iteration:

        >>> Y = torch.tensor([[3.0, 0.0], [0.0, -2.0]])
        >>> result = mod(Y, num_atoms=2, sparsity=1, n_iter=0, init=torch.eye(2), progress=False)
        >>> result.codes @ result.dictionary.weight.detach().T  # ΓDᵀ, the approximation of Y
        tensor([[ 3.,  0.],
                [ 0., -2.]])
        >>> result.errors, result.replaced  # one entry per iteration
        ([], [])
    """

    dictionary: DenseDictionary
    codes: Tensor
    errors: list[float] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)


# An atom update maps (Y, D, Γ) to the updated (D, Γ); it may work in place.
_Update = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def ksvd(
    Y: Tensor,
    num_atoms: int,
    sparsity: int | None = None,
    *,
    approximate: bool = False,
    **options,
) -> DictionaryLearningResult:
    """Learn a dictionary by K-SVD (Aharon, Elad & Bruckstein 2006) or approximate K-SVD.

    Alternates sparse coding of every signal with the atom-by-atom update: for atom ``j``
    with users ``ω_j = {i : γ_i[j] ≠ 0}`` and restricted residual
    ``E_j = Y_ω − Γ_ω Dᵀ + γ^j_ω d_jᵀ`` (``|ω_j| × n``),

    * exact: ``E_j ≈ σ₁u₁v₁ᵀ`` (leading singular triple), ``d_j ← v₁``, ``γ^j_ω ← σ₁u₁``;
    * ``approximate=True`` (Rubinstein, Zibulevsky & Elad 2008): ``d_j ← E_jᵀγ^j / ‖E_jᵀγ^j‖``,
      ``γ^j_ω ← E_j d_j`` (one alternating step instead of the SVD; cheaper, converges a little
      slower per iteration).

    The sign of each new atom is chosen so that ``⟨d_j^new, d_j^old⟩ ≥ 0``. Atoms stay unit-norm.
    See the module docstring for atom replacement and the error record.

    Args:
        Y: training signals as rows, float32 or float64, finite.
        num_atoms: number of atoms ``m ≥ 1``.
        sparsity: maximum number of atoms per signal ``k`` (``1 ≤ k ≤ min(n, m)``), passed to the
            pursuit as ``k``. At least one of ``sparsity`` and ``tol`` must be given.
        approximate: use the approximate K-SVD update instead of the SVD.

    Keyword Args:
        tol: error target of the pursuit, the residual norm ``‖y − Dγ‖₂ ≤ tol`` (``tol ≥ 0``;
            default None).
        n_iter: number of (coding, update) iterations, ``≥ 0`` (default 20); with 0 the signals
            are only coded in the initial dictionary.
        init: initial dictionary, an ``(n, m)`` tensor or :class:`~mlcsc.DenseDictionary`
            (copied, atoms normalised). Default: ``m`` distinct random non-zero signals,
            normalised (Gaussian atoms if there are too few).
        replace_atoms: replace unused and near-duplicate atoms between iterations (default).
        duplicate_threshold: ``|⟨d_i, d_j⟩|`` above which atom ``j > i`` counts as a duplicate
            (default 0.99).
        monotone: when coding to a fixed ``sparsity`` (``tol`` None), keep a signal's previous
            code if the pursuit's new one represents it worse (see the module docstring;
            default False).
        sparse_coder: the pursuit of the coding step (see :class:`SparseCoder`); default
            :func:`mlcsc.pursuit.omp`.
        generator: random generator for the initial atoms and replacement fallbacks
            (default: torch's global generator).
        progress: show a progress bar (tqdm) with the current RMSE (default True).

    Returns:
        The learned dictionary, the codes and the RMSE after every iteration, as a
            :class:`DictionaryLearningResult`.

    Raises:
        ValueError: for non-finite or badly shaped ``Y``, or a bad ``num_atoms``, ``sparsity``,
            ``tol``, ``n_iter``, ``init`` or ``duplicate_threshold`` (the message names it).

    Shape:
        - Y: ``(B, n)``.
        - dictionary weight: ``(n, m)``; codes: ``(B, m)``.

    Examples:
        >>> generator = torch.Generator().manual_seed(0)
        >>> Y = torch.randn(200, 16, dtype=torch.float64, generator=generator)
        >>> result = ksvd(Y, num_atoms=32, sparsity=3, n_iter=5, progress=False,
        ...               generator=generator)
        >>> result.dictionary.weight.shape, result.codes.shape, len(result.errors)
        (torch.Size([16, 32]), torch.Size([200, 32]), 5)
        >>> bool(result.errors[-1] < result.errors[0])
        True
    """
    update = ksvd_update_approximate if approximate else ksvd_update_exact
    name = "approximate K-SVD" if approximate else "K-SVD"
    _check_options("ksvd", options)
    return _learn(Y, num_atoms, sparsity, update, name, **options)


def mod(
    Y: Tensor,
    num_atoms: int,
    sparsity: int | None = None,
    *,
    regularization: float = 1e-6,
    **options,
) -> DictionaryLearningResult:
    """Learn a dictionary by MOD, the method of optimal directions (Engan, Aase & Husøy 1999).

    Alternates sparse coding with the least-squares dictionary for the current codes,

        ``Dᵀ = (ΓᵀΓ + δI)⁻¹ ΓᵀY``,  ``δ = regularization · tr(ΓᵀΓ)/m``

    (signals as rows; with signals as columns this is ``D = YΓᵀ(ΓΓᵀ + δI)⁻¹``). The small ridge
    ``δ`` keeps the ``m × m`` solve well posed when atoms are unused or codes collinear; it is at
    least ``100·eps`` of the dtype relative to the mean diagonal. Then every atom is normalised,
    ``d_j ← d_j/‖d_j‖``, and its coefficients multiplied by ``‖d_j‖`` so that ``ΓDᵀ`` does not
    change. An unused atom (zero column of ``Γ``) keeps its old value until it is replaced.

    Args:
        Y: training signals as rows, float32 or float64, finite.
        num_atoms: number of atoms ``m ≥ 1``.
        sparsity: maximum number of atoms per signal (``1 ≤ k ≤ min(n, m)``); this or ``tol``
            is needed.
        regularization: relative ridge ``δ`` of the least-squares solve, ``≥ 0``.
        options: ``tol``, ``n_iter``, ``init``, ``replace_atoms``, ``duplicate_threshold``,
            ``monotone``, ``sparse_coder``, ``generator``, ``progress``, as for :func:`ksvd`.

    Returns:
        The learned dictionary, the codes and the RMSE after every iteration, as a
            :class:`DictionaryLearningResult`.

    Raises:
        ValueError: for bad inputs, naming the argument (as :func:`ksvd`).

    Shape:
        - Y: ``(B, n)``.
        - dictionary weight: ``(n, m)``; codes: ``(B, m)``.

    Examples:
        >>> generator = torch.Generator().manual_seed(0)
        >>> Y = torch.randn(200, 16, dtype=torch.float64, generator=generator)
        >>> result = mod(Y, num_atoms=32, sparsity=3, n_iter=5, progress=False,
        ...              generator=generator)
        >>> result.dictionary.weight.shape, result.codes.shape, len(result.errors)
        (torch.Size([16, 32]), torch.Size([200, 32]), 5)
        >>> int((result.codes != 0).sum(dim=1).max()), bool(result.errors[-1] < result.errors[0])
        (3, True)
        >>> torch.allclose(result.dictionary.atom_norms(), torch.ones(32, dtype=torch.float64))
        True
    """
    regularization = check_number("regularization", regularization, 0.0, allow_inf=True)

    def update(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        return mod_update(Y, D, codes, regularization)

    _check_options("mod", options)
    return _learn(Y, num_atoms, sparsity, update, "MOD", **options)


def _check_options(function: str, options: dict) -> None:
    """The keyword options of :func:`ksvd` and :func:`mod` are those of the shared loop."""
    known = [
        p.name for p in inspect.signature(_learn).parameters.values() if p.kind == p.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"{function}() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(known)}"
        )


# --------------------------------------------------------------------------- the alternating loop


@torch.no_grad()
def _learn(
    Y: Tensor,
    num_atoms: int,
    sparsity: int | None,
    update: _Update,
    name: str,
    *,
    tol: float | None = None,
    n_iter: int = 20,
    init: Tensor | DenseDictionary | None = None,
    replace_atoms: bool = True,
    duplicate_threshold: float = 0.99,
    monotone: bool = False,
    sparse_coder: SparseCoder | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> DictionaryLearningResult:
    """Sparse coding and ``update`` alternated ``n_iter`` times, with atom replacement; the
    keyword arguments of :func:`ksvd` and :func:`mod`."""
    Y = _check_signals(Y)
    n = Y.shape[1]
    num_atoms = check_int("num_atoms", num_atoms, 1)
    if sparsity is None and tol is None:
        raise ValueError("give sparsity (atoms per signal), tol (residual norm), or both")
    if sparsity is not None:
        limit = min(n, num_atoms)
        what = f" (min(n, num_atoms) = min({n}, {num_atoms}))"
        sparsity = check_int("sparsity", sparsity, 1, limit, what)
    if tol is not None:
        tol = check_number("tol", tol, 0.0, allow_inf=True)
    n_iter = check_int("n_iter", n_iter, 0)
    duplicate_threshold = check_number("duplicate_threshold", duplicate_threshold, 0.0, 1.0)
    if sparse_coder is None:
        from mlcsc.pursuit import omp as sparse_coder
    D = initial_dictionary(Y, num_atoms, init, generator)

    def code(D: Tensor) -> Tensor:
        codes = sparse_coder(DenseDictionary(D), Y, k=sparsity, tol=tol)
        if not isinstance(codes, Tensor) or tuple(codes.shape) != (Y.shape[0], num_atoms):
            shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
            raise ValueError(
                f"sparse_coder must return codes of shape {(Y.shape[0], num_atoms)}, got {shape}"
            )
        return codes.detach().to(dtype=Y.dtype, device=Y.device)

    errors: list[float] = []
    replaced: list[int] = []
    codes = None
    bar = progress_bar(range(n_iter), name, progress)
    for iteration in bar:
        new_codes = code(D)
        if monotone and codes is not None and tol is None:
            # the previous codes (≤ k atoms each) are feasible too: keep them where OMP, being
            # greedy, found a worse representation in the current dictionary
            worse = (Y - new_codes @ D.T).pow(2).sum(1) > (Y - codes @ D.T).pow(2).sum(1)
            new_codes = torch.where(worse.unsqueeze(1), codes, new_codes)
        D, codes = update(Y, D, new_codes)
        residual = Y - codes @ D.T  # (B, n)
        errors.append(math.sqrt(float(residual.pow(2).mean())))
        count = 0
        if replace_atoms and iteration < n_iter - 1:
            count = replace_atoms_(Y, D, codes, residual, duplicate_threshold, generator)
        replaced.append(count)
        bar.set_postfix(rmse=f"{errors[-1]:.4g}", replaced=count)
    bar.close()
    if codes is None:  # n_iter == 0
        codes = code(D)
    return DictionaryLearningResult(DenseDictionary(D), codes, errors, replaced)


# --------------------------------------------------------------------------- argument checks


def _check_signals(Y: object) -> Tensor:
    if not isinstance(Y, Tensor):
        raise ValueError(f"Y must be a (B, n) tensor of signals, got {type(Y).__name__}")
    if Y.ndim != 2 or Y.shape[0] < 1 or Y.shape[1] < 1:
        raise ValueError(f"Y must be a non-empty (B, n) tensor of signals, got {tuple(Y.shape)}")
    if Y.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"Y must be float32 or float64, got dtype {Y.dtype}")
    if not torch.isfinite(Y).all():
        raise ValueError(f"Y of shape {tuple(Y.shape)} contains non-finite values (nan or inf)")
    return Y.detach()
