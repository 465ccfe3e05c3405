"""Mutual coherence of dense and convolutional dictionaries, and the Welch bound.

The worst-case theory of sparse representations (MODEL.md §1–3) is stated in terms of the
mutual coherence of the dictionary, the largest normalised inner product between two distinct
atoms:

* Sparseland (Donoho & Elad 2003; Donoho, Elad & Temlyakov 2006): the columns of an ``n × m``
  matrix, ``μ(D) = max_{i≠j} |d_iᵀd_j| / (‖d_i‖₂‖d_j‖₂)``.
* Convolutional sparse coding (Papyan, Sulam & Elad 2017, "Working locally thinking globally",
  IEEE TSP): the columns of the global banded matrix ``D = [C₁ … C_m]`` are every filter at every
  position of the code grid, so ``μ(D)`` is the largest normalised inner product between a filter
  and a *shifted* copy of a filter (the same filter at a non-zero shift included). It is computed
  here from the cross-correlations of the filter bank with itself, never from the global matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_int

__all__ = ["mutual_coherence", "conv_mutual_coherence", "welch_bound"]

#: upper bound on the number of elements of one block of cross-correlations
_BLOCK_ELEMENTS = 1 << 24


def _as_weight(dictionary) -> Tensor:
    weight = getattr(dictionary, "weight", dictionary)
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight)
    weight = weight.detach()
    if not torch.is_floating_point(weight):
        weight = weight.to(torch.get_default_dtype())
    return weight


def mutual_coherence(dictionary, stride: int | None = None) -> Tensor:
    """Mutual coherence ``μ(D)`` of a dense or a convolutional dictionary.

    Dense (Sparseland, MODEL.md §1): ``μ(D) = max_{i≠j} |d_iᵀd_j| / (‖d_i‖₂‖d_j‖₂)`` over the
    columns of ``D``. Convolutional (CSC, MODEL.md §2): see :func:`conv_mutual_coherence`.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or an ``(n, m)`` matrix with the atoms as
            columns; or a :class:`~mlcsc.ConvDictionary`, a ``(m, c, k, k)`` filter bank or a
            ``(m, c, k)`` bank of 1-D filters.
        stride: stride of the code grid of a convolutional filter bank given as a tensor
            (default 1). A :class:`~mlcsc.ConvDictionary` carries its own stride; passing a
            different one is an error. Not used for dense dictionaries.

    Returns:
        A 0-d tensor (detached) in the dtype of the dictionary.

    Raises:
        ValueError: for a weight of unsupported shape, an all-zero atom, fewer than two atoms
            (dense), or a bad or conflicting stride.

    Shape:
        dictionary: ``(n, m)``, ``(m, c, k, k)`` or ``(m, c, k)`` → ``()``.

    The coherence of Donoho & Huo (2001, IEEE TIT) that the uniqueness and recovery theorems
    of Donoho & Elad (2003, PNAS), Gribonval & Nielsen (2003, IEEE TIT) and Tropp (2004,
    IEEE TIT) are stated in; its convolutional version is that of Papyan, Sulam & Elad (2017,
    IEEE TSP).

    Examples:
        >>> mutual_coherence(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        tensor(0.8000)

        The spikes and a Hadamard basis, ``[I, H/√n]``, have the smallest coherence two
        orthonormal bases can have, ``1/√n`` (here ``n = 16``):

        >>> H2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
        >>> H = torch.kron(torch.kron(H2, H2), torch.kron(H2, H2))  # 16 × 16, entries ±1
        >>> mutual_coherence(torch.cat([torch.eye(16), H / 4], dim=1))
        tensor(0.2500)
    """
    weight = _as_weight(dictionary)
    if weight.ndim == 2:
        if stride not in (None, 1):
            raise ValueError(f"stride is for convolutional dictionaries; got stride={stride!r}")
        return _dense_coherence(weight)
    if weight.ndim in (3, 4):
        # a ConvDictionary carries its stride (a plain tensor's ``stride`` is a method)
        own = None if isinstance(dictionary, Tensor) else getattr(dictionary, "stride", None)
        if own is not None and stride is not None and int(own) != stride:
            raise ValueError(
                f"stride={stride!r} conflicts with the dictionary's own stride {own}; omit it"
            )
        return conv_mutual_coherence(weight, stride if own is None else int(own))
    raise ValueError(
        "expected an (n, m) matrix, an (m, c, k, k) or an (m, c, k) filter bank, "
        f"got shape {tuple(weight.shape)}"
    )


def _dense_coherence(weight: Tensor) -> Tensor:
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


def conv_mutual_coherence(weight, stride: int | None = 1) -> Tensor:
    """Mutual coherence of a (multi-channel, strided) convolutional dictionary.

    The global CSC dictionary ``D`` holds a copy of filter ``j`` at every position of the code
    grid; moving one step on a grid of stride ``s`` moves the filter by ``s`` pixels. With the
    filters normalised to unit norm over all their input channels,

        ``μ(D) = max |⟨d_i, S_τ d_j⟩|  over atoms  i, j  and lags  τ ∈ sℤ²,  except i = j, τ = 0``,

    where ``S_τ`` shifts by ``τ`` pixels and the inner product sums over the input channels
    (Papyan, Sulam & Elad 2017, IEEE TSP; the multi-layer version in Papyan, Romano & Elad
    2017, JMLR). Only lags ``|τ| ≤ k − 1`` (per axis) can overlap. The lags come from the full
    cross-correlation of the filter bank with itself (``conv2d`` padded by ``k − 1``), keeping
    every ``s``-th lag around zero; the banded matrix is never built. Atoms cropped at the image
    border (``padding > 0``) are not considered: ``μ`` is the coherence of the interior of the
    operator, the one the local CSC theory uses.

    Args:
        weight: filter bank ``(m, c, k_h, k_w)`` (a :class:`~mlcsc.ConvDictionary`'s weight) or
            ``(m, c, k)`` for 1-D signals.
        stride: stride ``s ≥ 1`` of the code grid (``None`` means 1).

    Returns:
        A 0-d tensor (detached). A single filter whose shifts do not overlap (``k ≤ s``) gives 0.

    Raises:
        ValueError: for a bad shape or stride, or an all-zero filter.

    Shape:
        weight: ``(m, c, k_h, k_w)`` or ``(m, c, k)`` → ``()``.

    Examples:
        A flat filter of two taps overlaps its neighbour by half; with stride 2 its copies no
        longer overlap:

        >>> pair = torch.ones(1, 1, 2)
        >>> conv_mutual_coherence(pair), conv_mutual_coherence(pair, stride=2)
        (tensor(0.5000), tensor(0.))

        The coherence of the explicit global matrix ``D`` (every filter at every position of a
        grid large enough for all the lags) is the same:

        >>> from mlcsc.functional import conv_synthesis, operator_matrix
        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
        >>> D = operator_matrix(lambda codes: conv_synthesis(codes, W, 2), (3, 5, 5), W)
        >>> D.shape, bool(torch.isclose(mutual_coherence(D), conv_mutual_coherence(W, 2)))
        (torch.Size([242, 75]), True)
    """
    weight = _as_weight(weight)
    stride = check_int("stride", 1 if stride is None else stride, 1)
    if weight.ndim == 3:  # 1-D filters: a single row, stride along the width only
        weight, strides = weight.unsqueeze(2), (1, stride)
    elif weight.ndim == 4:
        strides = (stride, stride)
    else:
        raise ValueError(
            f"expected an (m, c, k, k) or (m, c, k) filter bank, got shape {tuple(weight.shape)}"
        )
    m = weight.shape[0]
    norms = weight.flatten(1).norm(dim=1)
    if (norms == 0).any():
        zero = torch.nonzero(norms == 0).flatten().tolist()
        raise ValueError(f"dictionary has all-zero filters at indices {zero}")
    unit = weight / norms.view(-1, 1, 1, 1)
    kh, kw = unit.shape[-2:]
    # lags on the code grid: every s-th lag of the full correlation, symmetric around lag 0
    start = ((kh - 1) % strides[0], (kw - 1) % strides[1])
    zero_lag = ((kh - 1) // strides[0], (kw - 1) // strides[1])
    block = max(1, _BLOCK_ELEMENTS // max(1, m * (2 * kh - 1) * (2 * kw - 1)))
    best = torch.zeros((), dtype=unit.dtype, device=unit.device)
    for first in range(0, m, block):
        rows = unit[first : first + block]
        # corr[i, j, a, b] = ⟨d_i shifted by −(a − k_h + 1, b − k_w + 1), d_j⟩
        corr = F.conv2d(rows, unit, padding=(kh - 1, kw - 1))
        corr = corr[:, :, start[0] :: strides[0], start[1] :: strides[1]].abs()
        index = torch.arange(rows.shape[0], device=unit.device)
        corr[index, index + first, zero_lag[0], zero_lag[1]] = 0  # an atom with itself
        best = torch.maximum(best, corr.max())
    return best


def welch_bound(n: int, m: int) -> float:
    """Lower bound ``√((m − n)/(n(m − 1)))`` on the coherence of ``m`` unit atoms in ``R^n``.

    Welch (1974, IEEE TIT); for ``m ≤ n`` an orthonormal set reaches 0. Equiangular tight
    frames (e.g. three vectors at 120° in the plane) attain it, and with it the largest
    sparsity bounds ``c(1 + 1/μ)`` the coherence theorems can give.

    Args:
        n: dimension ``n ≥ 1`` of the signals.
        m: number of atoms ``m ≥ 1``.

    Returns:
        The bound (a float).

    Raises:
        ValueError: for ``n < 1`` or ``m < 1``.

    Examples:
        >>> welch_bound(2, 3), welch_bound(3, 3)
        (0.5, 0.0)
    """
    if n < 1 or m < 1:
        raise ValueError(f"n and m must be positive, got n={n}, m={m}")
    if m <= n:
        return 0.0
    return math.sqrt((m - n) / (n * (m - 1)))
