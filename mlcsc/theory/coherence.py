"""Mutual coherence and the Welch bound (Sparseland, MODEL.md §1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["mutual_coherence", "welch_bound"]


def mutual_coherence(dictionary) -> Tensor:
    """``μ(D) = max_{i≠j} |d_iᵀ d_j| / (‖d_i‖₂ ‖d_j‖₂)`` of a dense dictionary.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or an ``(n, m)`` matrix with atoms as
            columns.

    Raises:
        ValueError: for fewer than two atoms or an all-zero atom.
    """
    weight = getattr(dictionary, "weight", dictionary)
    weight = torch.as_tensor(weight).detach()
    if weight.ndim != 2:
        raise ValueError(f"expected an (n, m) matrix, got shape {tuple(weight.shape)}")
    if weight.shape[1] < 2:
        raise ValueError(f"coherence needs at least 2 atoms, got {weight.shape[1]}")
    norms = weight.norm(dim=0)
    if (norms == 0).any():
        zero = torch.nonzero(norms == 0).flatten().tolist()
        raise ValueError(f"dictionary has all-zero atoms at columns {zero}")
    unit = weight / norms
    gram = (unit.T @ unit).abs()  # (m, m)
    gram.fill_diagonal_(0)
    return gram.max()


def welch_bound(n: int, m: int) -> float:
    """Lower bound ``√((m − n)/(n(m − 1)))`` on the coherence of ``m`` unit atoms in ``R^n``."""
    if n < 1 or m < 1:
        raise ValueError(f"n and m must be positive, got n={n}, m={m}")
    if m <= n:
        return 0.0
    return math.sqrt((m - n) / (n * (m - 1)))
