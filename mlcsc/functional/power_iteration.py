"""Power iteration for the largest eigenvalue of a self-adjoint positive operator.

Used to estimate the Lipschitz constant ``L = ‖D‖₂² = λ_max(DᵀD)`` of the gradient of
``½‖y − DΓ‖²``, which fixes the step size ``1/L`` of ISTA/FISTA.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["power_iteration"]


@torch.no_grad()
def power_iteration(
    operator: Callable[[Tensor], Tensor],
    x0: Tensor,
    n_iter: int = 50,
    tol: float = 1e-6,
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
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1, got {n_iter}")
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
