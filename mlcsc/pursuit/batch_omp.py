"""Batch-OMP: the iterations of :func:`~mlcsc.pursuit.omp` on an explicit ``(n, N)`` matrix.

The implementation is the "Batch-OMP" of Rubinstein, Zibulevsky & Elad (2008, "Efficient
implementation of the K-SVD algorithm using batch orthogonal matching pursuit", Technion
CS-2008-08): it never forms residuals, only the Gram matrix ``Ĝ = D̂ᵀD̂`` of the unit atoms
``d̂_i = d_i/‖d_i‖`` and the correlations ``α = D̂ᵀr``, and it grows the Cholesky factor
``Ĝ_SS = LLᵀ`` by one row per step. Every step is a handful of tensor operations on the whole
batch; the only Python loop is over the ``≤ k`` steps. Step ``s`` with chosen atom ``j``:

* ``w = L⁻¹Ĝ_{S,j}`` (``L⁻¹`` is kept as well, so this is a batched matrix-vector product);
* pivot ``ℓ = √(1 − ‖w‖²)``, the distance of ``d̂_j`` from ``span(D̂_S)``; ``L`` gains the row
  ``[wᵀ ℓ]`` and ``L⁻¹`` the row ``[−wᵀL⁻¹/ℓ  1/ℓ]``;
* ``ζ_s = α_j/ℓ`` (the coefficient of ``y`` on the new orthonormal direction), so that
  ``ζ = L⁻¹D̂_Sᵀy`` and ``‖r‖² ← ‖r‖² − ζ_s²``;
* ``Γ_S = L⁻ᵀζ`` (``Γ_S ← Γ_S + ζ_s·L⁻¹[s, :]``) and ``α = α₀ − Ĝ_{:,S}Γ_S``, a weighted sum of
  ``s`` gathered Gram rows (one ``embedding_bag`` for the batch).

Per step and signal this costs ``O(s·m)`` operations, with ``O(k² + m)`` memory; the batch is
processed in chunks of a few thousand signals so that the passes stay in cache.

Only the selection needs the whole vector ``α``; it is computed in float32 whatever the working
precision, which halves the memory traffic of the passes over it, and the argmax is read from
one integer ``amax`` over the bit patterns of ``|α|`` with the index packed into their low bits.
In float64 the float32 error of ``α`` is bounded (``c·eps₃₂·(‖y‖₂ + ‖Γ_S‖₁)``); a signal whose
runner-up comes within twice that bound of the winner (a rare near-tie) is decided again from
``α`` in float64. Everything else (``α_j``, the Cholesky factor, ``ζ``, ``Γ_S``) is computed in
the working precision, so the codes are those of OMP in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.pursuit import omp_kernel

__all__ = ["SparseCodes", "batch_omp"]

# The N × N Gram matrix is precomputed up to this many entries (128 MB in float64); beyond, its
# entries and row combinations are computed from the atoms as needed (slower per step).
_MAX_GRAM_ENTRIES = 1 << 24

# A signal stops when the Cholesky pivot² of the next atom (its squared distance from the span
# of the chosen unit atoms) is at most _PIVOT_RTOL·eps, or when the largest correlation with
# the residual is at most _CORRELATION_RTOL·eps·‖y‖₂ (the residual is zero to rounding).
_PIVOT_RTOL = 100.0
_CORRELATION_RTOL = 10.0
# Signals per chunk: about _CHUNK_ENTRIES entries of the (chunk, N) correlations (4 MB in
# float32: the passes over them stay in cache while the per-step overhead of the ~60 tensor
# operations is amortised), and of the (chunk, k, k) factor.
_CHUNK_ENTRIES = 1 << 20
# Precision of the correlations used to select the atoms (see _greedy).
_FAST = torch.float32
# Whether batch_omp(compiled=None) runs the compiled CPU kernel where it can (omp_kernel); set
# to False to run the tensor kernel everywhere.
USE_COMPILED = True


class SparseCodes(NamedTuple):
    """OMP codes in sparse form: the chosen atoms of every signal, in the order chosen.

    What :func:`~mlcsc.pursuit.omp` returns with ``return_sparse=True``: the supports ``S`` and
    the least-squares coefficients ``Γ_S`` found by Batch-OMP (Rubinstein, Zibulevsky & Elad
    2008, Technion technical report CS-2008-08), so that the dense code of signal ``b`` is
    ``Γ[b, indices[b, i]] = values[b, i]`` for ``i < counts[b]`` and zero elsewhere.

    Attributes:
        indices: ``(B, K)`` int64 indices into the flattened code of one signal (the atom for
            a dense dictionary; ``c·H'·W' + h·W' + w`` for a convolutional one), padded with
            ``-1`` after the ``counts[b]`` chosen atoms. ``K ≤ k`` is the number of steps run.
        values: ``(B, K)`` coefficients, ``0`` in the padding.
        counts: ``(B,)`` int64 number of chosen atoms per signal.

    Shape:
        - indices, values: ``(B, K)``; counts: ``(B,)``.
        - :meth:`to_dense`: ``(B, size)``.

    Examples:
        >>> sparse = SparseCodes(
        ...     indices=torch.tensor([[2, 0], [1, -1]]),
        ...     values=torch.tensor([[0.5, -1.0], [2.0, 0.0]]),
        ...     counts=torch.tensor([2, 1]),
        ... )
        >>> sparse.to_dense(3).tolist()  # the second signal chose one atom
        [[-1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]
    """

    indices: Tensor
    values: Tensor
    counts: Tensor

    def to_dense(self, size: int) -> Tensor:
        """The dense ``(B, size)`` codes (``size`` = entries of one flattened code)."""
        batch = self.indices.shape[0]
        out = self.values.new_zeros(batch, size + 1)  # the last column absorbs the padding
        index = torch.where(self.indices < 0, size, self.indices)
        return out.scatter_(1, index, self.values)[:, :size]


def batch_omp(
    matrix: Tensor,
    signals: Tensor,
    k: int | None,
    tol: float | None,
    compiled: bool | None = None,
) -> SparseCodes:
    """OMP of ``(B, n)`` signals against an explicit ``(n, N)`` matrix (see the module
    docstring), stopping after ``k`` atoms (at most ``min(n, N)``) or at ``‖r‖₂ ≤ tol``; the
    inputs are not checked (:func:`~mlcsc.pursuit.omp` does).

    ``compiled``: run the greedy loop in the compiled CPU kernel
    (:mod:`mlcsc.pursuit.omp_kernel`, same codes) — ``None``: wherever it can run (Numba
    installed, CPU, float32/float64, a Gram matrix small enough to store) unless the module's
    ``USE_COMPILED`` is false; ``False``: the tensor kernel; ``True``: the compiled one, a
    ``RuntimeError`` where it cannot run."""
    n, n_atoms = matrix.shape
    batch = signals.shape[0]
    steps = min(n, n_atoms) if k is None else min(k, n, n_atoms)
    norms = matrix.norm(dim=0)
    scale = torch.where(norms > 0, norms, torch.ones_like(norms))  # zero columns: never chosen
    unit = matrix / scale
    explicit = n_atoms * n_atoms <= _MAX_GRAM_ENTRIES
    can_compile = explicit and omp_kernel.available(matrix, signals)
    if compiled and not can_compile:
        raise RuntimeError(
            "the compiled OMP kernel needs Numba, CPU tensors in float32/float64 and at most "
            f"{int(_MAX_GRAM_ENTRIES**0.5)} atoms; got {signals.dtype} on {signals.device} "
            f"with {n_atoms} atoms"
        )
    if can_compile and (compiled or (compiled is None and USE_COMPILED)):
        gram_matrix = unit.T @ unit
        indices, values, counts = omp_kernel.greedy(
            gram_matrix, signals @ unit, signals, steps, tol
        )
        return SparseCodes(indices, values / scale[indices.clamp_min(0)], counts)
    if explicit:
        gram: _Gram = _ExplicitGram(unit)
    else:
        gram = _ImplicitGram(unit)
    chunk = max(1, _CHUNK_ENTRIES // max(n_atoms, steps * steps))
    select = _Selector(n_atoms, signals.device)
    parts = [
        _greedy(gram, select, signals[start : start + chunk], steps, tol)
        for start in range(0, batch, chunk)
    ]
    if not parts:  # empty batch
        empty = torch.zeros(0, 0, dtype=signals.dtype, device=signals.device)
        counts = torch.zeros(0, dtype=torch.long, device=signals.device)
        return SparseCodes(empty.long(), empty, counts)
    width = max(part.indices.shape[1] for part in parts)
    indices = torch.cat([_pad(p.indices, width, -1) for p in parts])
    values = torch.cat([_pad(p.values, width, 0) for p in parts])
    counts = torch.cat([p.counts for p in parts])
    # coefficients of the unit atoms → coefficients of the atoms as given
    values = values / scale[indices.clamp_min(0)]
    return SparseCodes(indices, values, counts)


def _pad(tensor: Tensor, width: int, value: float) -> Tensor:
    extra = width - tensor.shape[1]
    if extra == 0:
        return tensor
    return torch.nn.functional.pad(tensor, (0, extra), value=value)


class _Gram:
    """Access to the unit atoms ``D̂`` and their Gram matrix ``Ĝ = D̂ᵀD̂``.

    The correlations ``α = D̂ᵀr = α₀ − Ĝ[:, S]γ`` with the residual are needed twice: in float32
    for the selection of every signal (:meth:`fast_correlations`), and in the working precision
    for the few signals whose selection float32 cannot decide (:meth:`exact_correlations`).
    """

    def __init__(self, unit: Tensor):
        self.unit = unit  # (n, N)
        self.atoms = unit.T.contiguous()  # (N, n)

    def project(self, signals: Tensor) -> Tensor:
        """``α₀ = D̂ᵀy`` in the working precision: ``(B, n)`` → ``(B, N)``."""
        return signals @ self.unit

    def entries(self, support: Tensor, atom: Tensor) -> Tensor:
        """``Ĝ[support[b, t], atom[b]]``: ``(B, s)`` and ``(B,)`` → ``(B, s)``."""
        raise NotImplementedError

    def fast_correlations(
        self, alpha0: Tensor, signals: Tensor
    ) -> Callable[[Tensor, Tensor], Tensor]:
        """A function ``(S, γ) ↦ α₀ − Ĝ[:, S]γ`` in float32, for signals with ``D̂ᵀy = alpha0``.

        ``S`` and ``γ`` are ``(B, s)``; the result ``(B, N)`` is ``D̂ᵀ(y − D̂_Sγ)``.
        """
        raise NotImplementedError

    def exact_correlations(self, alpha0: Tensor, support: Tensor, gamma: Tensor) -> Tensor:
        """``α₀ − Ĝ[:, S]γ`` in the working precision (a few rows)."""
        raise NotImplementedError

    def fast_error(self, n: int, steps: int) -> float:
        """``c`` such that ``|α_fast − α| ≤ c·eps₃₂·(‖y‖₂ + ‖γ‖₁)`` entrywise (``s`` atoms;
        ``‖y‖₂`` bounds ``max|α₀|`` for unit atoms)."""
        raise NotImplementedError


class _ExplicitGram(_Gram):
    """The ``N × N`` Gram matrix, precomputed (in the working precision and in float32).

    ``α₀ − Ĝ[:, S]γ`` is one ``embedding_bag`` (a weighted sum of gathered rows) over the
    table ``[Ĝ; α₀ᵀ]`` with weights ``(−γ, 1)``: the rows of ``Ĝ`` stay in cache and the result
    is written once.
    """

    def __init__(self, unit: Tensor):
        super().__init__(unit)
        self.gram = unit.T @ unit
        self.fast_gram = self.gram.to(_FAST)

    def entries(self, support: Tensor, atom: Tensor) -> Tensor:
        # Ĝ is symmetric: read row j (contiguous) through one flat index_select
        flat = (atom * self.gram.shape[0]).unsqueeze(1) + support
        return self.gram.view(-1).index_select(0, flat.view(-1)).view_as(support)

    def fast_correlations(
        self, alpha0: Tensor, signals: Tensor
    ) -> Callable[[Tensor, Tensor], Tensor]:
        n_atoms, batch = self.gram.shape[0], alpha0.shape[0]
        table = self.fast_gram.new_empty(n_atoms + batch, n_atoms)
        table[:n_atoms] = self.fast_gram
        table[n_atoms:] = alpha0  # rounded to float32
        own = torch.arange(n_atoms, n_atoms + batch, device=alpha0.device).unsqueeze(1)
        ones = torch.ones(batch, 1, dtype=_FAST, device=alpha0.device)

        def correlations(support: Tensor, gamma: Tensor) -> Tensor:
            index = torch.cat([support, own], dim=1)
            weights = torch.cat([-gamma.to(_FAST), ones], dim=1)
            return F.embedding_bag(index, table, per_sample_weights=weights, mode="sum")

        return correlations

    def exact_correlations(self, alpha0: Tensor, support: Tensor, gamma: Tensor) -> Tensor:
        if support.shape[1] == 0:
            return alpha0.clone()
        fit = F.embedding_bag(support, self.gram, per_sample_weights=gamma, mode="sum")
        return alpha0 - fit

    def fast_error(self, n: int, steps: int) -> float:
        # α₀ and Ĝ rounded to float32 (½eps each), γ rounded (½eps), a sum of s + 1 terms
        return steps + 3.0


class _ImplicitGram(_Gram):
    """Gram entries computed from the ``(n, N)`` unit atoms when ``N²`` is too large to store;
    the correlations as ``D̂ᵀ(y − D̂_Sγ)``."""

    def __init__(self, unit: Tensor):
        super().__init__(unit)
        self.fast_unit = unit.to(_FAST)
        self.fast_atoms = self.atoms.to(_FAST)

    def entries(self, support: Tensor, atom: Tensor) -> Tensor:
        return (self.atoms[support] * self.atoms[atom].unsqueeze(1)).sum(2)

    def fast_correlations(
        self, alpha0: Tensor, signals: Tensor
    ) -> Callable[[Tensor, Tensor], Tensor]:
        fast_signals = signals.to(_FAST)

        def correlations(support: Tensor, gamma: Tensor) -> Tensor:
            if support.shape[1] == 0:
                return fast_signals @ self.fast_unit
            weights = gamma.to(_FAST)
            fit = F.embedding_bag(support, self.fast_atoms, per_sample_weights=weights, mode="sum")
            return (fast_signals - fit) @ self.fast_unit

        return correlations

    def exact_correlations(self, alpha0: Tensor, support: Tensor, gamma: Tensor) -> Tensor:
        if support.shape[1] == 0:
            return alpha0.clone()
        fit = F.embedding_bag(support, self.atoms, per_sample_weights=gamma, mode="sum")
        return torch.addmm(alpha0, fit, self.unit, alpha=-1.0)

    def fast_error(self, n: int, steps: int) -> float:
        # y and the atoms rounded, the fit a sum of s terms, inner products of length n
        return 2.0 * (n + steps + 3.0)


class _Selector:
    """The index of the largest ``|α_i|`` per row of float32 correlations, and whether another
    entry comes so close that the caller must decide the row itself.

    ``max`` with indices is several times slower on CPU than ``amax``. The index is therefore
    packed into the low ``b = ⌈log₂ N⌉`` mantissa bits of the IEEE bit pattern of ``|α_i|``
    (non-negative floats order like their bit patterns read as integers) and recovered from one
    integer ``amax``, **in place** (``alpha`` is overwritten). Packing merges values within
    ``2^(b−23)`` relative; a second ``amax`` with the winner removed flags every row where
    another entry is merged with the winner, or lies within the given margin of it (so exact
    ties are always flagged, and the caller applies the lower-index rule). Beyond ``N = 1024``
    atoms the plain ``max`` is used, with the same runner-up test.
    """

    def __init__(self, n_atoms: int, device: torch.device):
        self.bits = max(1, (n_atoms - 1).bit_length())
        self.packed = self.bits <= 10
        self.low = (1 << self.bits) - 1 if self.packed else 0
        self.ramp = torch.arange(n_atoms, device=device, dtype=torch.int32)
        clear = ((1 << 31) - 1) ^ self.low  # the sign (and the low bits)
        self.clear = torch.tensor(clear, dtype=torch.int32, device=device)

    def __call__(self, alpha: Tensor, margin: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(best, index, ambiguous)`` for float32 ``alpha`` ``(B, N)`` and ``margin`` ``(B,)``
        (``None``: only the merged values are ambiguous). ``best`` is a lower bound within
        ``2^(b−23)`` relative of the largest ``|α_i|``."""
        key = alpha.view(torch.int32).bitwise_and_(self.clear)  # |α| with the low bits cleared
        if self.packed:
            top = key.bitwise_or_(self.ramp).amax(dim=1)
            index = (top & self.low).long()
        else:
            top, index = key.max(dim=1)
        floor = top & ~self.low
        best = floor.view(torch.float32)
        key.scatter_(1, index.unsqueeze(1), 0)
        second = key.amax(dim=1) & ~self.low
        if margin is not None:  # the bucket of best − margin (all entries when it is negative)
            threshold = (best - margin).view(torch.int32) & ~self.low
            floor = torch.minimum(floor, threshold)
        return best, index, second >= floor


def _greedy(
    gram: _Gram, select: _Selector, signals: Tensor, steps: int, tol: float | None
) -> SparseCodes:
    """The OMP iterations for one chunk of signals against unit-norm (or zero) atoms.

    The correlations ``α = D̂ᵀr`` used for the selection are recomputed every step in float32 as
    ``α₀ − Ĝ[:, S]Γ_S``, with exact zeros at the chosen atoms so that none is chosen twice.
    Their error is bounded by ``E = c·eps₃₂·(‖y‖₂ + ‖Γ_S‖₁)`` (:meth:`_Gram.fast_error`), so
    every row whose runner-up lies within ``2E`` of the winner is decided again with ``α`` in the
    working precision: the chosen atoms are those of OMP in the working precision.
    ``inverse`` is ``L⁻¹`` for the Cholesky factor ``L`` of ``Ĝ_SS``, grown by one row per step;
    ``ζ = L⁻¹D̂_Sᵀy`` grows by one entry, and ``Γ_S = L⁻ᵀζ = Σ_t ζ_t L⁻¹[t, :]``.
    """
    batch, n = signals.shape
    dtype, device = signals.dtype, signals.device
    eps = torch.finfo(dtype).eps
    alpha0 = gram.project(signals)
    residual = signals.pow(2).sum(1)  # ‖r‖², updated as ‖r‖² − ζ_s²
    floor = (_CORRELATION_RTOL * eps) * residual.sqrt()
    inverse = torch.zeros(batch, steps, steps, dtype=dtype, device=device)  # L⁻¹
    zeta = torch.zeros(batch, steps, dtype=dtype, device=device)
    gamma = torch.zeros(batch, steps, dtype=dtype, device=device)  # Γ_S = L⁻ᵀζ
    support = torch.zeros(batch, steps, dtype=torch.long, device=device)
    indices = torch.full((batch, steps), -1, dtype=torch.long, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    if tol is not None:
        active &= residual > tol * tol
    correlations = gram.fast_correlations(alpha0, signals)
    exact = dtype != _FAST
    if exact:  # the float32 error bound is c·eps₃₂·(‖y‖₂ + ‖Γ_S‖₁), as max|α₀| ≤ ‖y‖₂
        norm = residual.sqrt()
    alpha = alpha0.to(_FAST, copy=True)
    one = torch.ones((), dtype=dtype, device=device)
    used = 0
    for s in range(steps):
        if not bool(active.any()):
            break
        used = s + 1
        margin = None
        if exact:
            bound = gamma[:, :s].abs().sum(1).add_(norm)
            margin = bound.mul_(2.0 * gram.fast_error(n, s) * torch.finfo(_FAST).eps).to(_FAST)
        _, j, ambiguous = select(alpha, margin)
        rows = (ambiguous & active).nonzero().squeeze(1)
        if len(rows):  # decide these in the working precision
            again = gram.exact_correlations(alpha0[rows], support[rows, :s], gamma[rows, :s])
            again.scatter_(1, support[rows, :s], 0.0)
            j[rows] = again.abs().argmax(dim=1)
        alpha_j = alpha0.gather(1, j.unsqueeze(1)).squeeze(1)  # d̂_jᵀr, recomputed exactly
        if s == 0:
            w = None
            pivot_sq = one.expand(batch)
        else:
            previous = inverse[:, :s, :s]
            g = gram.entries(support[:, :s], j)  # Ĝ_{S,j}
            w = torch.bmm(previous, g.unsqueeze(2)).squeeze(2)  # L⁻¹Ĝ_{S,j}
            alpha_j = alpha_j - (w * zeta[:, :s]).sum(1)  # Ĝ_{S,j}ᵀL⁻ᵀζ = wᵀζ
            pivot_sq = 1.0 - (w * w).sum(1)  # squared distance of d̂_j from span(D̂_S)
        add = active & (alpha_j.abs() > floor) & (pivot_sq > _PIVOT_RTOL * eps)
        pivot = torch.where(add, pivot_sq.clamp_min(eps).sqrt(), one)
        if w is not None:  # new row of L⁻¹: [−wᵀL⁻¹/ℓ, 1/ℓ]
            row = torch.bmm(w.unsqueeze(1), previous).squeeze(1)
            inverse[:, s, :s] = torch.where(add.unsqueeze(1), row / -pivot.unsqueeze(1), 0.0)
        inverse[:, s, s] = 1.0 / pivot
        # ζ_s = q_sᵀy = d̂_jᵀr/ℓ, since r ⊥ span(D̂_S)
        z = torch.where(add, alpha_j / pivot, 0.0)
        zeta[:, s] = z
        support[:, s] = j
        indices[:, s] = torch.where(add, j, -1)
        residual = residual - z * z
        active = add if tol is None else add & (residual > tol * tol)
        if s + 1 < steps:
            gamma[:, : s + 1].addcmul_(inverse[:, s, : s + 1], z.unsqueeze(1))
            alpha = correlations(support[:, : s + 1], gamma[:, : s + 1])
            if not exact:  # else a chosen atom wins only when every |α| is within the margin
                alpha.scatter_(1, support[:, : s + 1], 0.0)
    indices = indices[:, :used]
    counts = (indices >= 0).sum(1)
    # Γ_S = L⁻ᵀζ; rows of signals that stopped early are (0 … 0 1) with ζ = 0, giving 0
    values = _solve(inverse[:, :used, :used], zeta[:, :used])
    return SparseCodes(indices, values, counts)


def _solve(inverse: Tensor, zeta: Tensor) -> Tensor:
    """``L⁻ᵀζ`` for a batch: ``(B, s, s)``, ``(B, s)`` → ``(B, s)``."""
    return torch.bmm(zeta.unsqueeze(1), inverse).squeeze(1)
