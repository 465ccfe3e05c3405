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
float64) of ``Y``; the only Python loops are over iterations and (K-SVD) over atoms.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from mlcsc.dictionary import DenseDictionary

__all__ = ["DictionaryLearningResult", "SparseCoder", "ksvd", "mod"]


class SparseCoder(Protocol):
    """A pursuit used in the sparse-coding step: ``coder(D, Y, k=k, tol=tol) -> Γ``.

    It receives a :class:`~mlcsc.DenseDictionary` ``D`` (``n × m``), signals ``Y`` of shape
    ``(B, n)`` and the stopping rules ``k`` (maximum atoms per signal, or None) and ``tol``
    (residual ℓ2 norm, or None), and returns dense codes of shape ``(B, m)``.
    :func:`mlcsc.pursuit.omp` has this signature.
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
    tol: float | None = None,
    n_iter: int = 20,
    init: Tensor | DenseDictionary | None = None,
    approximate: bool = False,
    replace_atoms: bool = True,
    duplicate_threshold: float = 0.99,
    monotone: bool = False,
    sparse_coder: SparseCoder | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
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
        tol: error target of the pursuit, the residual norm ``‖y − Dγ‖₂ ≤ tol`` (``tol ≥ 0``).
        n_iter: number of (coding, update) iterations, ``≥ 0``; with 0 the signals are only
            coded in the initial dictionary.
        init: initial dictionary, an ``(n, m)`` tensor or :class:`~mlcsc.DenseDictionary`
            (copied, atoms normalised). Default: ``m`` distinct random non-zero signals,
            normalised (Gaussian atoms if there are too few).
        approximate: use the approximate K-SVD update instead of the SVD.
        replace_atoms: replace unused and near-duplicate atoms between iterations.
        duplicate_threshold: ``|⟨d_i, d_j⟩|`` above which atom ``j > i`` counts as a duplicate.
        monotone: when coding to a fixed ``sparsity`` (``tol`` None), keep a signal's previous
            code if the pursuit's new one represents it worse (see the module docstring).
        sparse_coder: the pursuit of the coding step (see :class:`SparseCoder`); default
            :func:`mlcsc.pursuit.omp`.
        generator: random generator for the initial atoms and replacement fallbacks
            (default: torch's global generator).
        progress: show a progress bar (tqdm) with the current RMSE.

    Returns:
        :class:`DictionaryLearningResult` with the dictionary, the codes and the RMSE after
        every iteration.

    Raises:
        ValueError: for non-finite or badly shaped ``Y``, or a bad ``num_atoms``, ``sparsity``,
            ``tol``, ``n_iter``, ``init`` or ``duplicate_threshold`` (the message names it).

    Shape:
        - Y: ``(B, n)``.
        - dictionary weight: ``(n, m)``; codes: ``(B, m)``.

    Example:
        >>> result = ksvd(Y, num_atoms=256, sparsity=5, n_iter=10, progress=False)
        >>> Y_hat = result.dictionary.synthesize(result.codes)
    """
    update = _ksvd_update_approximate if approximate else _ksvd_update_exact
    name = "approximate K-SVD" if approximate else "K-SVD"
    return _learn(
        Y, num_atoms, sparsity, tol, n_iter, init, update, name, replace_atoms,
        duplicate_threshold, monotone, sparse_coder, generator, progress,
    )  # fmt: skip


def mod(
    Y: Tensor,
    num_atoms: int,
    sparsity: int | None = None,
    *,
    tol: float | None = None,
    n_iter: int = 20,
    init: Tensor | DenseDictionary | None = None,
    regularization: float = 1e-6,
    replace_atoms: bool = True,
    duplicate_threshold: float = 0.99,
    monotone: bool = False,
    sparse_coder: SparseCoder | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
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
        sparsity: maximum number of atoms per signal (``1 ≤ k ≤ min(n, m)``).
        tol: error target of the pursuit (residual norm). At least one of the two is needed.
        n_iter: number of (coding, update) iterations, ``≥ 0``.
        init: initial ``(n, m)`` dictionary (default: random normalised signals).
        regularization: relative ridge ``δ`` of the least-squares solve, ``≥ 0``.
        replace_atoms: replace unused and near-duplicate atoms between iterations.
        duplicate_threshold: ``|⟨d_i, d_j⟩|`` above which atom ``j > i`` counts as a duplicate.
        monotone: when coding to a fixed ``sparsity`` (``tol`` None), keep a signal's previous
            code if the pursuit's new one represents it worse (see the module docstring).
        sparse_coder: the pursuit of the coding step; default :func:`mlcsc.pursuit.omp`.
        generator: random generator for the initial atoms and replacement fallbacks.
        progress: show a progress bar (tqdm) with the current RMSE.

    Returns:
        :class:`DictionaryLearningResult`.

    Raises:
        ValueError: for bad inputs, naming the argument (as :func:`ksvd`).

    Shape:
        - Y: ``(B, n)``.
        - dictionary weight: ``(n, m)``; codes: ``(B, m)``.
    """
    regularization = _check_real("regularization", regularization, minimum=0.0)

    def update(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        return _mod_update(Y, D, codes, regularization)

    return _learn(
        Y, num_atoms, sparsity, tol, n_iter, init, update, "MOD", replace_atoms,
        duplicate_threshold, monotone, sparse_coder, generator, progress,
    )  # fmt: skip


# --------------------------------------------------------------------------- the alternating loop


@torch.no_grad()
def _learn(
    Y: Tensor,
    num_atoms: int,
    sparsity: int | None,
    tol: float | None,
    n_iter: int,
    init: Tensor | DenseDictionary | None,
    update: _Update,
    name: str,
    replace_atoms: bool,
    duplicate_threshold: float,
    monotone: bool,
    sparse_coder: SparseCoder | None,
    generator: torch.Generator | None,
    progress: bool,
) -> DictionaryLearningResult:
    """Sparse coding and ``update`` alternated ``n_iter`` times, with atom replacement."""
    Y = _check_signals(Y)
    n = Y.shape[1]
    num_atoms = _check_int("num_atoms", num_atoms, 1)
    if sparsity is None and tol is None:
        raise ValueError("give sparsity (atoms per signal), tol (residual norm), or both")
    if sparsity is not None:
        limit = min(n, num_atoms)
        if (
            isinstance(sparsity, bool)
            or not isinstance(sparsity, numbers.Integral)
            or not 1 <= sparsity <= limit
        ):
            raise ValueError(
                f"sparsity must be an integer with 1 <= sparsity <= min(n, num_atoms) = "
                f"min({n}, {num_atoms}) = {limit}, got {sparsity!r}"
            )
        sparsity = int(sparsity)
    if tol is not None:
        tol = _check_real("tol", tol, minimum=0.0)
    n_iter = _check_int("n_iter", n_iter, 0)
    duplicate_threshold = _check_real("duplicate_threshold", duplicate_threshold, 0.0, 1.0)
    if sparse_coder is None:
        from mlcsc.pursuit import omp as sparse_coder
    D = _initial_dictionary(Y, num_atoms, init, generator)

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
            count = _replace_atoms(Y, D, codes, residual, duplicate_threshold, generator)
        replaced.append(count)
        bar.set_postfix(rmse=f"{errors[-1]:.4g}", replaced=count)
    bar.close()
    if codes is None:  # n_iter == 0
        codes = code(D)
    return DictionaryLearningResult(DenseDictionary(D), codes, errors, replaced)


class _NoBar:
    """Stands in for a tqdm bar when progress is off or tqdm is not installed."""

    def __init__(self, iterable: Iterable) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self.iterable)

    def set_postfix(self, **values: object) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable, description: str, enabled: bool):
    """A tqdm progress bar over ``iterable`` when ``enabled`` and tqdm is installed (tqdm is
    not a dependency of the core library), else a silent stand-in with the same methods."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _NoBar(iterable)
        return tqdm(iterable, desc=description, leave=False)
    return _NoBar(iterable)


# --------------------------------------------------------------------------- dictionary updates


def _ksvd_update_exact(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """K-SVD: best rank-1 approximation (SVD) of every atom's restricted residual."""

    def rank_one(E: Tensor, d: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        U, S, Vh = torch.linalg.svd(E, full_matrices=False)  # E: (|ω|, n)
        return Vh[0], S[0] * U[:, 0]

    return _atom_by_atom(Y, D, codes, rank_one)


def _ksvd_update_approximate(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """Approximate K-SVD: one alternating step ``d = Eᵀg/‖Eᵀg‖``, ``g = Ed`` per atom."""

    def one_step(E: Tensor, d: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        direction = E.T @ g  # (n,)
        norm = direction.norm()
        # Eᵀg = 0 only if the users' residual is orthogonal to their coefficients: keep d
        atom = torch.where(norm > 0, direction / norm.clamp_min(torch.finfo(E.dtype).tiny), d)
        return atom, E @ atom

    return _atom_by_atom(Y, D, codes, one_step)


def _atom_by_atom(
    Y: Tensor,
    D: Tensor,
    codes: Tensor,
    rank_one: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Tensor]:
    """The K-SVD sweep over the atoms, with ``rank_one(E, d_old, g_old) -> (d, g)``.

    The residual ``R = Y − ΓDᵀ`` is kept up to date, so that each restricted residual is
    ``E_j = R_ω + γ^j_ω d_jᵀ`` (no product with the whole dictionary per atom).
    """
    D = D.clone()
    codes_t = codes.T.contiguous()  # (m, B): one row per atom, contiguous for the support scans
    residual = Y - codes @ D.T  # (B, n)
    for j in range(D.shape[1]):
        users = torch.nonzero(codes_t[j]).squeeze(1)  # ω_j
        if users.numel() == 0:
            continue  # unused atom: left for the replacement step
        old_atom, old_coef = D[:, j], codes_t[j, users]
        E = residual[users] + old_coef.unsqueeze(1) * old_atom.unsqueeze(0)  # (|ω|, n)
        atom, coef = rank_one(E, old_atom, old_coef)
        sign = torch.where(atom @ old_atom < 0, -1.0, 1.0).to(atom.dtype)  # keep the orientation
        atom, coef = atom * sign, coef * sign
        D[:, j] = atom
        codes_t[j, users] = coef
        residual[users] = E - coef.unsqueeze(1) * atom.unsqueeze(0)
    return D, codes_t.T.contiguous()


def _mod_update(
    Y: Tensor, D: Tensor, codes: Tensor, regularization: float
) -> tuple[Tensor, Tensor]:
    """MOD: ``Dᵀ = (ΓᵀΓ + δI)⁻¹ΓᵀY``, then unit atoms with rescaled coefficients."""
    m = D.shape[1]
    gram = codes.T @ codes  # (m, m)
    eps = torch.finfo(Y.dtype).eps
    scale = gram.diagonal().mean().clamp_min(torch.finfo(Y.dtype).tiny)
    ridge = max(regularization, 100.0 * eps) * scale
    system = gram + ridge * torch.eye(m, dtype=Y.dtype, device=Y.device)
    new = torch.linalg.solve(system, codes.T @ Y).T  # (n, m)
    norms = new.norm(dim=0)  # (m,)
    usable = norms > math.sqrt(eps) * norms.max().clamp_min(torch.finfo(Y.dtype).tiny)
    D = torch.where(usable.unsqueeze(0), new / norms.clamp_min(torch.finfo(Y.dtype).tiny), D)
    codes = codes * torch.where(usable, norms, torch.ones_like(norms)).unsqueeze(0)
    return D, codes


# --------------------------------------------------------------------------- atom replacement


def _replace_atoms(
    Y: Tensor,
    D: Tensor,
    codes: Tensor,
    residual: Tensor,
    threshold: float,
    generator: torch.Generator | None,
) -> int:
    """Replace unused and near-duplicate atoms of ``D`` in place; return how many.

    Unused: no signal has a non-zero coefficient on the atom. Duplicate: ``|⟨d_i, d_j⟩| >
    threshold`` for some ``i < j`` (atom ``j`` is replaced). The replacements are the signals
    with the largest residual norms (distinct, normalised); signals that are zero or already
    perfectly represented are not used — Gaussian random unit atoms stand in for them.
    """
    unused = (codes == 0).all(dim=0)  # (m,)
    overlap = (D.T @ D).abs().triu(diagonal=1)  # (m, m), pairs i < j
    duplicate = (overlap > threshold).any(dim=0)  # column j duplicates an earlier atom
    targets = torch.nonzero(unused | duplicate).squeeze(1)
    count = int(targets.numel())
    if count == 0:
        return 0
    worst = residual.pow(2).sum(1)  # (B,) squared residual norms
    order = torch.topk(worst, min(count, worst.shape[0])).indices
    candidates = Y[order]  # (≤count, n)
    norms = candidates.norm(dim=1, keepdim=True)
    good = (worst[order] > 0) & (norms.squeeze(1) > 0)
    fallback = _gaussian_atoms(Y.shape[1], count, Y, generator)  # (n, count)
    new = fallback.T.clone()  # (count, n)
    new[: order.numel()] = torch.where(
        good.unsqueeze(1),
        candidates / norms.clamp_min(torch.finfo(Y.dtype).tiny),
        new[: order.numel()],
    )
    D[:, targets] = new.T
    return count


# --------------------------------------------------------------------------- initialisation


def _initial_dictionary(
    Y: Tensor, num_atoms: int, init: Tensor | DenseDictionary | None, generator
) -> Tensor:
    """The ``(n, m)`` starting dictionary with unit-norm atoms, on Y's device and dtype."""
    n = Y.shape[1]
    if init is not None:
        weight = init.weight if isinstance(init, DenseDictionary) else init
        if not isinstance(weight, Tensor) or tuple(weight.shape) != (n, num_atoms):
            shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
            raise ValueError(
                f"init must be an (n, num_atoms) = {(n, num_atoms)} tensor or DenseDictionary, "
                f"got {shape}"
            )
        D = weight.detach().to(dtype=Y.dtype, device=Y.device).clone()
        if not torch.isfinite(D).all():
            raise ValueError("init contains non-finite values (nan or inf)")
        norms = D.norm(dim=0)
        if (norms == 0).any():
            zero = torch.nonzero(norms == 0).squeeze(1)[:10].tolist()
            raise ValueError(f"init has all-zero atoms at indices {zero}")
        return D / norms
    # K-SVD's usual start: distinct training signals, normalised
    nonzero = torch.nonzero(Y.norm(dim=1) > 0).squeeze(1)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    pick = torch.randperm(nonzero.numel(), generator=generator, device=gen_device)
    pick = nonzero[pick[:num_atoms].to(Y.device)]
    D = _gaussian_atoms(n, num_atoms, Y, generator)
    atoms = Y[pick]  # (≤m, n)
    D[:, : pick.numel()] = (atoms / atoms.norm(dim=1, keepdim=True)).T
    return D


def _gaussian_atoms(n: int, count: int, like: Tensor, generator) -> Tensor:
    """``(n, count)`` random unit-norm atoms drawn with ``generator`` (on its own device)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    atoms = torch.randn(n, count, generator=generator, dtype=like.dtype, device=gen_device)
    atoms = atoms.to(like.device)
    return atoms / atoms.norm(dim=0).clamp_min(torch.finfo(like.dtype).tiny)


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


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value: object, minimum: float, maximum: float = math.inf) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = float(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not minimum <= value <= maximum
        or math.isnan(value)
        or (math.isinf(value) and maximum != math.inf)
    ):
        bounds = f"{minimum} <= {name}" + (f" <= {maximum}" if maximum != math.inf else "")
        raise ValueError(f"{name} must be a number with {bounds}, got {value!r}")
    return float(value)
