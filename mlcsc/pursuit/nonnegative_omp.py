"""Non-negative orthogonal matching pursuit: sparse codes that only add atoms.

Non-negative OMP (Bruckstein, Elad & Zibulevsky 2008, "On the uniqueness of nonnegative sparse
solutions to underdetermined systems of equations", IEEE Trans. Inf. Theory) approximates
``min ‖Γ‖₀ s.t. ‖y − DΓ‖₂ ≤ ε, Γ ≥ 0`` greedily: with ``r₀ = y`` and an empty support ``S``,

1. select the atom with the largest **positive** normalised correlation with the residual,
   ``j = argmax_{i∉S} d_iᵀr / ‖d_i‖`` (an atom with ``d_iᵀr ≤ 0`` cannot lower the residual
   with a non-negative coefficient, so a signal stops when no such atom is left);
2. ``S ← S ∪ {j}`` and refit by non-negative least squares,
   ``Γ_S = argmin_{Γ_S ≥ 0} ‖y − D_SΓ_S‖₂``;
3. ``r ← y − D_SΓ_S``.

With non-negative atoms (strokes, parts, digits) the codes describe a signal as a sum of parts,
never as a difference: the additive, parts-based view of non-negative matrix factorisation.

The non-negative least squares on the support are solved by FISTA on the ``|S| × |S|`` Gram
matrix with the exact step ``1/λ_max`` (batched over the signals, warm-started from the previous
coefficients), ``refit_iter`` iterations per selection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlcsc.checks import check_int
from mlcsc.pursuit._validation import check_dictionary, check_sparsity
from mlcsc.pursuit.base import fista_momentum
from mlcsc.pursuit.omp import explicit_problem

__all__ = ["nonnegative_omp", "nonnegative_least_squares"]


def nonnegative_least_squares(
    gram: Tensor, correlations: Tensor, start: Tensor, n_iter: int, active: Tensor | None = None
) -> Tensor:
    """``argmin_{z ≥ 0} ½zᵀGz − bᵀz`` for a batch of small problems, by FISTA with step
    ``1/λ_max(G)`` from ``start``; entries where ``active`` is False stay zero.

    With ``G = D_SᵀD_S`` and ``b = D_Sᵀy`` this is the non-negative least squares
    ``min_{z ≥ 0} ½‖y − D_Sz‖₂²`` that refits the codes of :func:`nonnegative_omp` on their
    support; it is solved by the projected accelerated gradient method of Beck & Teboulle
    (2009, SIAM Journal on Imaging Sciences), projection ``max(·, 0)``.

    Args:
        gram: ``G``, symmetric positive semi-definite.
        correlations: ``b``.
        start: the starting point (non-negative).
        n_iter: number of FISTA iterations.
        active: which entries may be non-zero (default: all).

    Returns:
        The non-negative solutions.

    Shape:
        - gram: ``(B, t, t)``.
        - correlations, start, active: ``(B, t)`` (``active`` bool).
        - output: ``(B, t)``.

    Examples:
        >>> G = torch.tensor([[[1.0, 0.5], [0.5, 1.0]]], dtype=torch.float64)
        >>> nonnegative_least_squares(G, torch.tensor([[1.0, -1.0]], dtype=torch.float64),
        ...                           torch.zeros(1, 2, dtype=torch.float64), 200)
        tensor([[1., 0.]], dtype=torch.float64)
    """
    largest = torch.linalg.eigvalsh(gram)[:, -1:].clamp_min(torch.finfo(gram.dtype).tiny)
    mask = None if active is None else active.to(gram.dtype)
    current = previous = start
    for weight in fista_momentum(n_iter, published=False):
        point = current + weight * (current - previous) if weight else current
        gradient = (gram @ point.unsqueeze(2)).squeeze(2) - correlations
        update = torch.relu(point - gradient / largest)
        previous, current = current, update if mask is None else update * mask
    return current


def nonnegative_omp(dictionary, y: Tensor, k: int, refit_iter: int = 100) -> Tensor:
    """Non-negative OMP for a batch of signals: a greedy approximation of
    ``min ‖Γ‖₀ s.t. ‖y − DΓ‖₂ ≤ ε, Γ ≥ 0`` with at most ``k`` atoms.

    Each step adds the unused atom of largest positive normalised correlation
    ``d_iᵀr/‖d_i‖`` and refits ``Γ_S = argmin_{Γ_S ≥ 0} ‖y − D_SΓ_S‖₂``
    (:func:`nonnegative_least_squares`); see the module docstring. The pursuit studied by
    Bruckstein, Elad & Zibulevsky (2008, IEEE Transactions on Information Theory).

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or a (small) :class:`~mlcsc.ConvDictionary`
            (run on its explicit matrix, as :func:`~mlcsc.pursuit.omp`); atoms need not have
            unit norm (correlations are normalised for the selection only).
        y: signals ``(B, n)`` or ``(B, C, H, W)``.
        k: atoms per signal at most, ``1 ≤ k ≤`` code size; a signal stops early when no
            unused atom correlates positively with its residual.
        refit_iter: FISTA iterations of each non-negative least-squares refit.

    Returns:
        Non-negative codes shaped like ``D.analyze(y)``, at most ``k`` non-zeros per signal
        (computed without autograd).

    Shape:
        - y: ``(B, n)`` (dense) or ``(B, C, H, W)`` (convolutional).
        - output: ``(B, m)`` or ``(B, m, H', W')``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = DenseDictionary(torch.rand(20, 50, dtype=torch.float64)).normalize_()
        >>> codes = torch.zeros(3, 50, dtype=torch.float64)
        >>> codes[:, [4, 17, 33]] = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
        >>> found = nonnegative_omp(D, D.synthesize(codes), k=3, refit_iter=500)
        >>> bool((found >= 0).all()), int((found != 0).sum(1).max())
        (True, 3)
    """
    check_dictionary(dictionary)
    dictionary.check_signal(y)
    k = check_sparsity(k, dictionary, y)
    refit_iter = check_int("refit_iter", refit_iter, 1)
    with torch.no_grad():
        codes = _greedy(*explicit_problem(dictionary, y), k, refit_iter)
        return codes.to(y.dtype).view(y.shape[0], *dictionary.code_shape(y))


def _greedy(matrix: Tensor, signals: Tensor, k: int, refit_iter: int) -> Tensor:
    batch, count = signals.shape[0], matrix.shape[1]
    norms = matrix.norm(dim=0)
    unit = matrix / norms.clamp_min(torch.finfo(matrix.dtype).tiny)
    rows = unit.T  # (N, n)
    support = signals.new_zeros(batch, 0, dtype=torch.long)
    active = signals.new_zeros(batch, 0, dtype=torch.bool)
    coefficients = signals.new_zeros(batch, 0)
    residual = signals
    floor = 10 * torch.finfo(matrix.dtype).eps * signals.norm(dim=1)
    for _ in range(k):
        correlations = residual @ unit
        correlations[:, norms == 0] = -float("inf")
        if support.shape[1]:
            correlations.scatter_(1, support, -float("inf"))
        best, atom = correlations.max(dim=1)
        # a signal whose residual no unused atom lowers takes the atom with a coefficient held at 0
        useful = best > floor
        if active.shape[1]:
            useful &= active[:, -1]
        support = torch.cat([support, atom[:, None]], dim=1)
        active = torch.cat([active, useful[:, None]], dim=1)
        chosen = rows[support]  # (B, t, n)
        gram = chosen @ chosen.transpose(1, 2)
        projections = (chosen @ signals.unsqueeze(2)).squeeze(2)
        start = torch.cat([coefficients, coefficients.new_zeros(batch, 1)], dim=1)
        coefficients = nonnegative_least_squares(gram, projections, start, refit_iter, active)
        residual = signals - (chosen.transpose(1, 2) @ coefficients.unsqueeze(2)).squeeze(2)
    codes = signals.new_zeros(batch, count)
    scale = norms[support].clamp_min(torch.finfo(matrix.dtype).tiny)
    return codes.scatter_(1, support, coefficients / scale)
