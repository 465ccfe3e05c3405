"""The steps of dictionary learning that change the atoms: the K-SVD and MOD updates, atom
replacement and the initial dictionary (see :mod:`mlcsc.learning.dictionary_learning`).

Every function works on the ``(n, m)`` matrix ``D`` of the atoms (columns) and the ``(B, m)``
codes ``Γ`` of the signals ``Y`` (rows), with tensor operations on their device and in their
dtype; the only Python loop is K-SVD's sweep over the atoms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from mlcsc.dictionary import DenseDictionary

__all__ = [
    "generator_device",
    "init_weight",
    "initial_dictionary",
    "ksvd_update_approximate",
    "ksvd_update_exact",
    "mod_update",
    "replace_atoms_",
]


# --------------------------------------------------------------------------- dictionary updates


def ksvd_update_exact(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """K-SVD: best rank-1 approximation (SVD) of every atom's restricted residual."""

    def rank_one(E: Tensor, d: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        U, S, Vh = torch.linalg.svd(E, full_matrices=False)  # E: (|ω|, n)
        return Vh[0], S[0] * U[:, 0]

    return _atom_by_atom(Y, D, codes, rank_one)


def ksvd_update_approximate(Y: Tensor, D: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
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


def mod_update(Y: Tensor, D: Tensor, codes: Tensor, regularization: float) -> tuple[Tensor, Tensor]:
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


def replace_atoms_(
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


def initial_dictionary(
    Y: Tensor, num_atoms: int, init: Tensor | DenseDictionary | None, generator
) -> Tensor:
    """The ``(n, m)`` starting dictionary with unit-norm atoms, on Y's device and dtype."""
    n = Y.shape[1]
    if init is not None:
        D = init_weight(init, (n, num_atoms), "an (n, num_atoms)")
        D = D.to(dtype=Y.dtype, device=Y.device).clone()
        if not torch.isfinite(D).all():
            raise ValueError("init contains non-finite values (nan or inf)")
        norms = D.norm(dim=0)
        if (norms == 0).any():
            zero = torch.nonzero(norms == 0).squeeze(1)[:10].tolist()
            raise ValueError(f"init has all-zero atoms at indices {zero}")
        return D / norms
    # K-SVD's usual start: distinct training signals, normalised
    nonzero = torch.nonzero(Y.norm(dim=1) > 0).squeeze(1)
    pick = torch.randperm(nonzero.numel(), generator=generator, device=generator_device(generator))
    pick = nonzero[pick[:num_atoms].to(Y.device)]
    D = _gaussian_atoms(n, num_atoms, Y, generator)
    atoms = Y[pick]  # (≤m, n)
    D[:, : pick.numel()] = (atoms / atoms.norm(dim=1, keepdim=True)).T
    return D


def _gaussian_atoms(n: int, count: int, like: Tensor, generator) -> Tensor:
    """``(n, count)`` random unit-norm atoms drawn with ``generator`` (on its own device)."""
    device = generator_device(generator)
    atoms = torch.randn(n, count, generator=generator, dtype=like.dtype, device=device)
    atoms = atoms.to(like.device)
    return atoms / atoms.norm(dim=0).clamp_min(torch.finfo(like.dtype).tiny)


# --------------------------------------------------------------------------- helpers


def generator_device(generator: torch.Generator | None) -> torch.device:
    """The device random numbers are drawn on: the generator's (torch's global one: CPU)."""
    return generator.device if generator is not None else torch.device("cpu")


def init_weight(init: object, shape: tuple[int, int], expected: str) -> Tensor:
    """The detached ``(n, m)`` weight of ``init``, a tensor or a
    :class:`~mlcsc.DenseDictionary`; ValueError naming the ``expected`` shape otherwise."""
    weight = init.weight if isinstance(init, DenseDictionary) else init
    if not isinstance(weight, Tensor) or tuple(weight.shape) != shape:
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"init must be {expected} = {shape} tensor or DenseDictionary, got {got}")
    return weight.detach()
