"""Orthogonal matching pursuit (OMP) for a whole batch of signals at once.

OMP (Pati, Rezaiifar & Krishnaprasad 1993) approximates the ℓ0 pursuit
``min ‖Γ‖₀ s.t. ‖y − DΓ‖₂ ≤ ε`` greedily: with ``r₀ = y`` and an empty support ``S``, repeat

1. select the atom most correlated with the residual, ``j = argmax_{i∉S} |d_iᵀ r| / ‖d_i‖``;
2. add it, ``S ← S ∪ {j}``, and refit by least squares, ``Γ_S = argmin ‖y − D_S Γ_S‖₂``;
3. ``r ← y − D_S Γ_S``,

until ``k`` atoms are chosen or ``‖r‖₂ ≤ tol``. It recovers every ``Γ`` with
``‖Γ‖₀ < ½(1 + 1/μ(D))`` from ``y = DΓ`` (Tropp 2004; Donoho & Elad 2003).

The iterations run on the explicit matrix of the dictionary (its weight for a
:class:`~mlcsc.DenseDictionary`; built for the image size for a :class:`~mlcsc.ConvDictionary`,
:func:`explicit_matrix`, which limits OMP there to small images) by the Batch-OMP of
Rubinstein, Zibulevsky & Elad (2008) in :mod:`mlcsc.pursuit.batch_omp`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlcsc.checks import check_number
from mlcsc.pursuit._validation import check_dictionary, check_sparsity
from mlcsc.pursuit.batch_omp import SparseCodes, batch_omp

__all__ = ["omp", "explicit_matrix", "SparseCodes", "MAX_EXPLICIT_ENTRIES"]

#: Largest number of entries of the explicit ``n × N`` matrix built for OMP on a
#: :class:`~mlcsc.ConvDictionary` (400 MB in float64).
MAX_EXPLICIT_ENTRIES = 50_000_000


def omp(
    dictionary,
    y: Tensor,
    k: int | None = None,
    tol: float | None = None,
    return_sparse: bool = False,
) -> Tensor | tuple[Tensor, SparseCodes]:
    """Orthogonal matching pursuit, batched over the signals: a greedy approximation of
    ``min ‖Γ‖₀ s.t. ‖y − DΓ‖₂ ≤ tol`` (or ``‖Γ‖₀ ≤ k``).

    OMP is due to Pati, Rezaiifar & Krishnaprasad (1993, Asilomar Conference on Signals,
    Systems and Computers); it runs as the Batch-OMP of Rubinstein, Zibulevsky & Elad (2008,
    Technion technical report CS-2008-08), with a progressive Cholesky factorisation (see the
    module docstring).

    Greedily selects atoms by ``argmax_i |d_iᵀr| / ‖d_i‖₂`` (atoms need not have unit norm:
    correlations are normalised for the selection and the least-squares fit uses the atoms
    as they are; ties go to the lower index) and refits ``Γ_S = argmin ‖y − D_SΓ_S‖₂`` after every
    selection. Each signal stops on its own, and its codes stop changing, when

    * it has ``k`` atoms (``k`` is capped at ``n``, the signal dimension: ``n`` independent
      atoms already fit any signal exactly);
    * ``‖y − DΓ‖₂ ≤ tol`` — ``tol`` is the residual **norm**, not its square (scikit-learn's
      ``orthogonal_mp`` and SPAMS take the square); checked before the first atom too, so a
      signal with ``‖y‖₂ ≤ tol`` gets all-zero codes;
    * the residual is orthogonal to every remaining atom (``max |α| ≤ 10·eps·‖y‖₂``; in
      particular an all-zero signal gets all-zero codes), or
    * the best atom is linearly dependent on the chosen ones to working precision (Cholesky
      pivot² ``≤ 100·eps`` relative to its norm): the atom is not added, so duplicate or
      nearly dependent atoms never produce NaNs, and no atom is ever chosen twice.

    OMP is not differentiable in its support; the codes are computed without autograd.
    Computation happens in the dtype and on the device of ``y`` (float16 and bfloat16 are
    computed in float32 and cast back).

    A :class:`~mlcsc.ConvDictionary` is handled by building its explicit ``n × N`` matrix for
    the image size (``n = C·H·W``, ``N = m·H'·W'``, see :func:`explicit_matrix`), which must have
    at most :data:`MAX_EXPLICIT_ENTRIES` (5·10⁷) entries (:func:`~mlcsc.pursuit.fista` needs no
    matrix); the codes are shaped like ``D.analyze(y)`` and ``k`` counts non-zeros over all
    channels and positions.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or a (small) :class:`~mlcsc.ConvDictionary`.
        y: signals, ``(B, n)`` or ``(B, C, H, W)``.
        k: maximum number of atoms per signal, ``1 ≤ k ≤`` code size (``m`` or ``m·H'·W'``).
        tol: stop once the residual norm ``‖y − DΓ‖₂ ≤ tol`` (``tol ≥ 0``).
        return_sparse: also return the chosen atoms and their coefficients as
            :class:`SparseCodes`.

    Returns:
        Codes shaped like ``D.analyze(y)``, and with ``return_sparse=True`` the pair
        ``(codes, SparseCodes)``.

    Raises:
        ValueError: when both ``k`` and ``tol`` are None; for a bad dictionary, signal, ``k`` or
            ``tol`` (the message names the argument); when the explicit matrix of a
            convolutional dictionary would be too large.

    Shape:
        - y: ``(B, n)`` (dense) or ``(B, C, H, W)`` (convolutional).
        - output: ``(B, m)`` or ``(B, m, H', W')``; sparse form ``(B, K)``, ``(B, K)``, ``(B,)``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = DenseDictionary(torch.randn(64, 256, dtype=torch.float64)).normalize_()
        >>> y = torch.randn(200, 64, dtype=torch.float64)
        >>> codes = omp(D, y, k=8)
        >>> codes.shape, int((codes != 0).sum(1).max())
        (torch.Size([200, 256]), 8)
        >>> codes, sparse = omp(D, y, tol=0.5, return_sparse=True)  # until ‖y − DΓ‖₂ ≤ 0.5
        >>> bool(((y - D.synthesize(codes)).norm(dim=1) <= 0.5 + 1e-9).all())
        True
        >>> torch.equal(sparse.to_dense(256), codes)
        True
    """
    if k is None and tol is None:
        raise ValueError("omp needs a stopping rule: give k (number of atoms), tol, or both")
    check_dictionary(dictionary)
    dictionary.check_signal(y)
    if k is not None:
        k = check_sparsity(k, dictionary, y)
    if tol is not None:
        tol = check_number("tol", tol, 0.0, allow_inf=True)
    with torch.no_grad():
        dtype = y.dtype
        matrix, signals = explicit_problem(dictionary, y)
        sparse = batch_omp(matrix, signals, k, tol)
        code_shape = dictionary.code_shape(y)
        codes = sparse.to_dense(matrix.shape[1]).to(dtype).view(y.shape[0], *code_shape)
    if return_sparse:
        return codes, SparseCodes(sparse.indices, sparse.values.to(dtype), sparse.counts)
    return codes


def explicit_problem(dictionary, y: Tensor) -> tuple[Tensor, Tensor]:
    """The explicit matrix ``(n, N)`` of ``dictionary`` for the signals ``y`` and the signals
    flattened ``(B, n)``, detached, both in ``y``'s dtype when it is float32/float64 and in
    float32 otherwise (the working precision of the explicit-matrix pursuits)."""
    work = y.dtype if y.dtype in (torch.float32, torch.float64) else torch.float32
    matrix = explicit_matrix(dictionary, dictionary.signal_size(y)).to(work)
    return matrix, y.detach().reshape(y.shape[0], matrix.shape[0]).to(work)


def explicit_matrix(dictionary, input_size: tuple[int, int] | None = None) -> Tensor:
    """The explicit matrix that :func:`omp` runs on: ``dictionary.matrix(input_size)``
    (:meth:`~mlcsc.dictionary.Dictionary.matrix`), built only up to
    :data:`MAX_EXPLICIT_ENTRIES` entries.

    For a convolutional dictionary this is the global banded (block-Toeplitz) matrix
    ``D = [C₁ … C_m]`` of convolutional sparse coding, whose columns are every filter at every
    position (Papyan, Sulam & Elad 2017, "Working locally thinking globally", IEEE TSP), so
    that ``DΓ`` as a matrix-vector product equals the convolutional synthesis.

    Column ``j`` is the atom ``DΓ`` for the code with a single 1 at flattened position ``j``
    (channel ``c``, position ``(h, w)``: ``j = c·H'·W' + h·W' + w``); row ``i`` is a flattened
    signal entry.

    Args:
        dictionary: the dictionary (a convolutional one needs ``input_size``).
        input_size: ``(H, W)`` of the signals.

    Returns:
        ``(n, N)`` tensor with ``n = C·H·W`` and ``N = m·H'·W'`` (convolutional), detached, in
        the weight's dtype.

    Raises:
        ValueError: when a matrix of ``n·N`` entries above :data:`MAX_EXPLICIT_ENTRIES` would
            have to be built.

    Shape:
        - output: ``(n, N)``; ``(n, m)`` for a dense dictionary.

    Examples:
        >>> from mlcsc import ConvDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = ConvDictionary(1, 2, 3).double()
        >>> A = explicit_matrix(D, (5, 5))
        >>> A.shape  # (1·5·5, 2·3·3)
        torch.Size([25, 18])
        >>> codes = torch.randn(1, 2, 3, 3, dtype=torch.float64)
        >>> torch.allclose(A @ codes.flatten(), D.synthesize(codes, (5, 5)).flatten())
        True
    """
    return dictionary.matrix(input_size, max_entries=MAX_EXPLICIT_ENTRIES)
