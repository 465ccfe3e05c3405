"""The largest eigenvalue of a self-adjoint positive semi-definite operator.

Used to estimate the Lipschitz constant ``L = ‖D‖₂² = λ_max(DᵀD)`` of the gradient of
``½‖y − DΓ‖²``, which fixes the step size ``1/L`` of ISTA/FISTA.

* :func:`power_iteration` — cheapest per step; good for tracking a slowly moving operator from a
  warm start (a couple of iterations per training step), slow from a cold start.
* :func:`largest_eigenvalue` — Lanczos with full re-orthogonalisation and thick restarts: the
  same number of operator applications buys a far better estimate, because it optimises the
  Rayleigh quotient over the whole Krylov space instead of using only its last vector.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mlcsc.checks import check_int

__all__ = ["largest_eigenvalue", "lanczos_step", "power_iteration"]

#: a linear operator ``v ↦ Av`` on tensors
Operator = Callable[[Tensor], Tensor]


@torch.no_grad()
def power_iteration(
    operator: Operator, x0: Tensor, n_iter: int = 50, tol: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Estimate ``λ_max`` of a symmetric positive semi-definite ``operator``.

    Iterates ``v ← A v / ‖A v‖`` and returns the Rayleigh quotient ``vᵀAv`` (a lower bound of
    ``λ_max`` that converges to it) together with the final unit vector, which can warm-start
    the next call.

    Args:
        operator: the map ``v ↦ A v`` (for a dictionary, ``v ↦ Dᵀ(D v)``).
        x0: starting vector of any shape accepted by ``operator``; it must not be zero.
        n_iter: maximum number of iterations.
        tol: stop when the relative change of the estimate falls below ``tol``.

    Returns:
        ``(eigenvalue, vector)``: a 0-d tensor and a unit-norm tensor shaped like ``x0``.

    Shape:
        x0: any shape ``S`` the operator accepts → ``((), S)``.

    The power method of von Mises & Pollaczek-Geiringer (1929, ZAMM); the error of the
    estimate decays like ``(λ₂/λ₁)^{2j}`` after ``j`` steps.

    Examples:
        >>> value, vector = power_iteration(lambda v: torch.tensor([3.0, 1.0]) * v, torch.ones(2))
        >>> round(float(value), 4), vector.abs().argmax().item()
        (3.0, 0)
    """
    check_int("n_iter", n_iter, 1)
    v = x0 / x0.norm().clamp_min(torch.finfo(x0.dtype).tiny)
    estimate = torch.zeros((), dtype=x0.dtype, device=x0.device)
    for _ in range(n_iter):
        av = operator(v)
        new_estimate = (v * av).sum()
        norm = av.norm()
        if norm == 0:
            return torch.zeros((), dtype=x0.dtype, device=x0.device), v
        v = av / norm
        converged = (new_estimate - estimate).abs() <= tol * new_estimate.abs()
        estimate = new_estimate
        if converged:
            break
    return estimate, v


@torch.no_grad()
def largest_eigenvalue(
    operator: Operator, x0: Tensor, n_iter: int = 100, tol: float = 1e-7, krylov_dim: int = 40
) -> tuple[Tensor, Tensor]:
    """``λ_max`` and its eigenvector for a self-adjoint positive semi-definite ``operator``.

    Thick-restart Lanczos (Krylov–Schur) with full re-orthogonalisation. After ``j`` operator
    applications the basis ``Q`` spans the Krylov space ``span{x₀, Ax₀, …, A^{j−1}x₀}`` (thick
    restarts keep the best part of it once ``krylov_dim`` vectors are held) and the returned
    value is the largest Ritz value ``θ = λ_max(QᵀAQ)``, the maximum of the Rayleigh quotient
    ``vᵀAv/vᵀv`` over that space, with ``v`` the Ritz vector. Hence

    * ``θ ≤ λ_max`` always (up to rounding): it is a Rayleigh quotient, so a step ``1/θ`` is
      never *more* cautious than ``1/λ_max`` — converge before using ``1.99/θ``;
    * ``θ`` is never below the power-iteration estimate after the same number of applications
      from the same start (the power iterate lies in the Krylov space) and converges to
      ``λ_max`` much faster: the error decays like ``exp(−4j√(gap/spread))`` rather than
      ``exp(−2j·gap/spread)`` (Kaniel–Paige), which matters for convolutions, whose spectrum is
      nearly continuous near its top;
    * the residual ``r = ‖Av − θv‖`` is known for free; there is an eigenvalue within ``r`` of
      ``θ``, and once ``θ`` is isolated its error is about ``r²/gap``.

    Args:
        operator: the map ``v ↦ A v`` on real tensors shaped like ``x0`` (for a dictionary,
            ``v ↦ Dᵀ(D v)``; for a chain, ``v ↦ (D₁⋯D_j)ᵀ(D₁⋯D_j)v``). It must be linear,
            self-adjoint for the Euclidean inner product of the flattened tensors and positive
            semi-definite.
        x0: starting vector (any shape, not zero). A random vector from a cold start; the
            returned vector of a previous call to refine an estimate as the operator moves.
        n_iter: maximum number of operator applications (``n_iter = 1`` returns the Rayleigh
            quotient of ``x0``).
        tol: stop when the residual ``‖Av − θv‖`` falls below ``tol·θ`` (``0`` runs all
            ``n_iter`` applications). The error of ``θ`` itself is then usually far smaller;
            on a nearly continuous spectrum the residual shrinks slowly and ``n_iter`` is what
            stops the iteration.
        krylov_dim: number of basis vectors held (memory: ``krylov_dim + 1`` copies of ``x0``);
            when full, the basis is shrunk to its best ``krylov_dim // 2`` Ritz vectors.

    Returns:
        ``(eigenvalue, vector)``: a 0-d tensor (the largest Ritz value) and the unit-norm Ritz
        vector shaped like ``x0``, both in ``x0``'s dtype and on its device.

    Raises:
        ValueError: for ``n_iter < 1``, ``krylov_dim < 2`` or a zero or non-finite ``x0``.

    Shape:
        x0: any shape ``S`` the operator accepts → ``((), S)``.

    The Lanczos method (Lanczos 1950, J. Res. Natl. Bur. Stand.) with the thick restarts of
    Wu & Simon (2000, SIAM J. Matrix Anal. Appl.), the symmetric case of Stewart's Krylov–Schur
    method (2001, SIAM J. Matrix Anal. Appl.).

    Examples:
        >>> A = torch.diag(torch.arange(1.0, 101.0, dtype=torch.float64))
        >>> x0 = torch.ones(100, dtype=torch.float64)
        >>> value, vector = largest_eigenvalue(lambda v: A @ v, x0)
        >>> round(float(value), 6), int(vector.abs().argmax())
        (100.0, 99)
    """
    check_int("n_iter", n_iter, 1)
    check_int("krylov_dim", krylov_dim, 2)
    shape, dtype, device = x0.shape, x0.dtype, x0.device
    x = x0.reshape(-1)
    norm = x.norm()
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        raise ValueError("x0 must be a non-zero, finite starting vector")
    size = x.numel()
    capacity = min(krylov_dim, size)  # never more than `size` orthonormal vectors exist
    basis = torch.zeros(capacity + 1, size, dtype=dtype, device=device)
    basis[0] = x / norm
    # projection of the operator on the basis, kept in float64 on the CPU: it is tiny, and the
    # Rayleigh–Ritz step should not lose the accuracy that re-orthogonalisation buys
    projection = torch.zeros(capacity + 1, capacity, dtype=torch.float64)
    eps = torch.finfo(dtype).eps
    held = 0  # basis vectors whose images are known; basis[held] is the next to expand
    theta = torch.zeros((), dtype=torch.float64)
    coefficients = torch.ones(1, dtype=torch.float64)  # Ritz vector in basis coordinates
    for applications in range(1, n_iter + 1):
        q = basis[: held + 1]
        w = operator(basis[held].view(shape)).reshape(-1).to(dtype)
        image_norm = float(w.norm())
        # classical Gram–Schmidt twice ("twice is enough") keeps the basis orthonormal to
        # working precision, so no spurious copies of converged Ritz values appear
        h = q @ w
        w = w - h @ q
        h2 = q @ w
        w = w - h2 @ q
        projection[: held + 1, held] = (h + h2).double().cpu()
        beta = float(w.norm())
        held += 1
        small = projection[:held, :held]
        values, vectors = torch.linalg.eigh((small + small.T) / 2)
        theta, coefficients = values[-1], vectors[:, -1]
        breakdown = beta <= 10 * eps * max(image_norm, abs(float(theta)))
        if breakdown:
            # the basis spans an invariant subspace: its Ritz values are exact eigenvalues
            break
        projection[held, held - 1] = beta
        basis[held] = w / beta
        # residual of the Ritz pair: ‖A Q y − θ Q y‖ = |row `held` of the projection · y|;
        # an eigenvalue lies within it of θ. (The sharper estimate r²/(θ − θ₂) is not used:
        # near a continuous top of the spectrum θ₂ is far from λ₂ and it stops too early.)
        residual = abs(float(projection[held, :held] @ coefficients))
        if residual <= tol * abs(float(theta)):
            break
        if held == capacity and applications < n_iter:
            if capacity < 2:  # a one-dimensional space is invariant: handled above
                break
            held = _thick_restart(basis, projection, values, vectors, held, capacity)
            coefficients = torch.zeros(held, dtype=torch.float64)
            coefficients[-1] = 1.0  # the best Ritz vector was put last
    vector = coefficients.to(device=device, dtype=dtype) @ basis[: coefficients.numel()]
    vector = vector / vector.norm().clamp_min(torch.finfo(dtype).tiny)
    return theta.to(device=device, dtype=dtype), vector.view(shape)


def _thick_restart(
    basis: Tensor, projection: Tensor, values: Tensor, vectors: Tensor, held: int, capacity: int
) -> int:
    """Shrink a full basis to its best Ritz vectors plus the residual direction, in place.

    With ``A Q = Q T + q_next bᵀ`` and ``T Y = Y Θ``, the kept Ritz vectors ``V = Q Y_p``
    satisfy ``A V = V Θ_p + q_next (bᵀY_p)``: the new projection is ``Θ_p`` bordered by the
    coupling row ``bᵀY_p`` (an arrowhead), and the Krylov relation goes on from ``q_next``.
    Returns the number of vectors kept (the largest Ritz value is the last of them).
    """
    keep = max(1, capacity // 2)
    kept_vectors = vectors[:, -keep:]  # ascending: the largest Ritz value last
    ritz = kept_vectors.T.to(device=basis.device, dtype=basis.dtype) @ basis[:held]
    coupling = projection[held, :held] @ kept_vectors
    residual_direction = basis[held].clone()
    basis[:keep] = ritz
    basis[keep] = residual_direction
    projection.zero_()
    projection[:keep, :keep] = torch.diag(values[-keep:])
    projection[keep, :keep] = coupling
    projection[:keep, keep] = 0  # filled by the next expansion (it equals the coupling row)
    return keep


@torch.no_grad()
def lanczos_step(operator: Operator, v: Tensor) -> tuple[Tensor, Tensor]:
    """Refine an estimate of ``λ_max``: Rayleigh–Ritz on ``span{v, Av}`` (two applications).

    With ``v`` of unit norm, ``α = vᵀAv``, ``r = Av − αv``, ``β = ‖r‖``, ``q = r/β`` and
    ``γ = qᵀAq``, the projection of the operator is ``[[α, β], [β, γ]]``, whose largest
    eigenvalue ``θ = α + √(h² + β²) − h`` with ``h = (α − γ)/2`` (computed without
    cancellation) is a Rayleigh quotient (``≤ λ_max``, and
    never below ``α`` or a power-iteration step from ``v``) with Ritz vector ``∝ βv + (θ − α)q``.
    The result is a tensor computation without branches or host synchronisation, so it can run
    inside ``torch.compile``'d code and on an accelerator at every training step: warm-started
    from the last vector, it tracks the norm of a dictionary that moves a little per step.

    Args:
        operator: ``v ↦ Av`` for a self-adjoint positive semi-definite ``A``.
        v: the current vector (any shape the operator accepts; normalised here).

    Returns:
        ``(θ, vector)``: a 0-d tensor and the unit Ritz vector shaped like ``v``.

    Shape:
        v: any shape ``S`` the operator accepts → ``((), S)``.

    One step of the Lanczos method (Lanczos 1950, J. Res. Natl. Bur. Stand.).

    Examples:
        From ``v = (1, 1, 1)`` the Rayleigh quotient is ``8/3``; the step improves on it:

        >>> A = torch.diag(torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64))
        >>> value, vector = lanczos_step(lambda u: A @ u, torch.ones(3, dtype=torch.float64))
        >>> bool(8 / 3 < value <= 5.0), vector.shape
        (True, torch.Size([3]))
    """
    tiny = torch.finfo(v.dtype).tiny
    v = v / v.norm().clamp_min(tiny)
    w = operator(v)
    alpha = (v * w).sum()
    r = w - alpha * v
    r = r - (v * r).sum() * v  # again: near convergence r is rounding noise, not orthogonal
    beta = r.norm()
    q = r / beta.clamp_min(tiny)
    gamma = (q * operator(q)).sum()
    half_gap = (alpha - gamma) / 2
    root = torch.sqrt(half_gap * half_gap + beta * beta)
    # θ − α = root − half_gap, without the cancellation near convergence (β → 0, half_gap > 0),
    # where the rounding error of a subtraction would be as large as β and spoil the vector
    rise = torch.where(
        half_gap > 0, beta * beta / (root + half_gap).clamp_min(tiny), root - half_gap
    )
    theta = alpha + rise
    ritz = beta * v + rise * q
    norm = ritz.norm()
    vector = torch.where(norm > tiny, ritz / norm.clamp_min(tiny), v)
    return theta, vector
