"""A compiled CPU kernel for Batch-OMP: the greedy loop of every signal in machine code.

:func:`~mlcsc.pursuit.batch_omp.batch_omp` runs the OMP steps of a whole batch as tensor
operations; on a CPU each of its ~60 operations per step costs microseconds of dispatch, which
caps how well it uses several cores. When `Numba <https://numba.pydata.org>`_ is installed,
this module runs the same iterations (Rubinstein, Zibulevsky & Elad 2008, "Efficient
implementation of the K-SVD algorithm using batch orthogonal matching pursuit", Technion
CS-2008-08) as one compiled loop per signal, the signals split over the threads torch uses
(``torch.get_num_threads()``). Only ``α₀ = D̂ᵀY`` is left to torch (one matrix product).

Per signal and step ``s`` with support ``S`` and coefficients ``Γ_S``:

* ``α = α₀ − Ĝ[S, :]ᵀΓ_S`` in the working precision (``s`` rows of the Gram matrix; zero at
  the chosen atoms), and ``j`` the first index of the largest ``|α_i|`` (the lower index wins a
  tie, as ``argmax``);
* ``w = L⁻¹Ĝ_{S,j}``, pivot ``ℓ = √(1 − ‖w‖²)``, ``L⁻¹`` grows by ``[−wᵀL⁻¹/ℓ, 1/ℓ]``,
  ``ζ_s = (α₀[j] − wᵀζ)/ℓ`` and ``‖r‖² ← ‖r‖² − ζ_s²``;
* ``Γ_S = L⁻ᵀζ``.

The stopping rules are those of the tensor kernel: ``k`` atoms, ``‖r‖₂ ≤ tol``, a pivot²
at most ``100·eps`` (the atom lies in the span of the chosen ones) or a largest correlation at
most ``10·eps·‖y‖₂`` (the residual is zero to rounding). The codes equal the tensor kernel's
(tested), computed entirely in the working precision.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

try:  # an optional accelerator: without Numba the tensor kernel runs everywhere
    import numba
except ImportError:  # pragma: no cover - exercised where Numba is not installed
    numba = None

__all__ = ["available", "greedy"]


def available(matrix: Tensor, signals: Tensor) -> bool:
    """Whether the compiled kernel can run these inputs: Numba installed, CPU tensors in
    float32 or float64."""
    return (
        numba is not None
        and matrix.device.type == "cpu"
        and signals.device.type == "cpu"
        and signals.dtype in (torch.float32, torch.float64)
        and matrix.dtype == signals.dtype
    )


def _greedy_loop(alpha0, gram, norms_sq, steps, tol_sq, pivot_floor, correlation_rtol, chunks):
    """The OMP loop for every row of ``alpha0`` ``(B, N)`` (see the module docstring), the
    rows split into ``chunks`` contiguous blocks run in parallel. Returns the chosen atoms
    ``(B, steps)`` (−1 after the last), the coefficients ``(B, steps)`` of the unit atoms and
    the number of steps each signal entered (the tensor kernel's output width)."""
    batch, n_atoms = alpha0.shape
    dtype = alpha0.dtype
    indices = np.full((batch, steps), -1, dtype=np.int64)
    values = np.zeros((batch, steps), dtype=dtype)
    entered = np.zeros(batch, dtype=np.int64)
    size = (batch + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        alpha = np.empty(n_atoms, dtype=dtype)
        inverse = np.zeros((steps, steps), dtype=dtype)  # L⁻¹
        zeta = np.zeros(steps, dtype=dtype)
        gamma = np.zeros(steps, dtype=dtype)
        w = np.zeros(steps, dtype=dtype)
        support = np.zeros(steps, dtype=np.int64)
        for b in range(chunk * size, min(batch, (chunk + 1) * size)):
            residual = norms_sq[b]
            floor = correlation_rtol * np.sqrt(residual)
            if tol_sq >= 0 and residual <= tol_sq:
                continue
            count = 0
            for s in range(steps):
                entered[b] = s + 1
                # α = α₀ − Ĝ[S, :]ᵀΓ_S, the chosen atoms excluded
                for i in range(n_atoms):
                    alpha[i] = alpha0[b, i]
                for t in range(s):
                    row, weight = support[t], gamma[t]
                    for i in range(n_atoms):
                        alpha[i] -= weight * gram[row, i]
                for t in range(s):
                    alpha[support[t]] = 0.0
                j, best = 0, -1.0
                for i in range(n_atoms):
                    magnitude = abs(alpha[i])
                    if magnitude > best:
                        j, best = i, magnitude
                alpha_j = alpha0[b, j]
                pivot_sq = 1.0
                for u in range(s):  # w = L⁻¹Ĝ_{S,j} (L⁻¹ lower triangular)
                    total = 0.0
                    for v in range(u + 1):
                        total += inverse[u, v] * gram[support[v], j]
                    w[u] = total
                    alpha_j -= total * zeta[u]
                    pivot_sq -= total * total
                if not (abs(alpha_j) > floor and pivot_sq > pivot_floor):
                    break
                pivot = np.sqrt(pivot_sq)
                for v in range(s):  # new row of L⁻¹: −wᵀL⁻¹/ℓ
                    total = 0.0
                    for u in range(v, s):
                        total += w[u] * inverse[u, v]
                    inverse[s, v] = -total / pivot
                inverse[s, s] = 1.0 / pivot
                z = alpha_j / pivot
                zeta[s] = z
                support[s] = j
                indices[b, s] = j
                count = s + 1
                residual -= z * z
                for v in range(s + 1):  # Γ_S = L⁻ᵀζ, one term more
                    gamma[v] += inverse[s, v] * z
                if tol_sq >= 0 and residual <= tol_sq:
                    break
            for v in range(count):  # Γ_S = L⁻ᵀζ, recomputed from the final factor
                total = 0.0
                for u in range(v, count):
                    total += zeta[u] * inverse[u, v]
                values[b, v] = total
            for v in range(steps):
                gamma[v] = 0.0
    return indices, values, entered


_compiled = None


def _kernel():
    global _compiled
    if _compiled is None:
        _compiled = numba.njit(parallel=True, nogil=True, cache=True, fastmath=False)(_greedy_loop)
    return _compiled


def greedy(
    gram: Tensor, alpha0: Tensor, signals: Tensor, steps: int, tol: float | None
) -> tuple[Tensor, Tensor, Tensor]:
    """OMP codes of ``signals`` ``(B, n)`` over unit atoms with Gram matrix ``gram`` ``(N, N)``
    and correlations ``alpha0 = D̂ᵀY`` ``(B, N)``: ``(indices, values, counts)`` as
    :class:`~mlcsc.pursuit.batch_omp.SparseCodes` holds them (coefficients of the unit atoms)."""
    dtype = signals.dtype
    eps = torch.finfo(dtype).eps
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    batch = signals.shape[0]
    chunks = max(1, min(batch, 8 * threads))
    norms_sq = signals.detach().pow(2).sum(1)
    indices, values, entered = _kernel()(
        alpha0.detach().contiguous().numpy(),
        gram.detach().contiguous().numpy(),
        norms_sq.detach().numpy(),
        steps,
        -1.0 if tol is None else float(tol) ** 2,
        100.0 * eps,
        10.0 * eps,
        chunks,
    )
    width = int(entered.max()) if batch else 0
    indices = torch.from_numpy(indices[:, :width])
    values = torch.from_numpy(values[:, :width])
    return indices, values, (indices >= 0).sum(1)
