"""Data-driven initial dictionaries of an ML-CSC model: strokes, then parts, then digits.

A multi-layer model learned from random filters starts far from anything the data looks like,
and alternating minimisation stays near where it starts. This builds the layers bottom-up from
the signals instead (as in Sulam, Papyan, Romano & Elad 2018, where the deeper dictionaries are
sparse combinations of the shallower atoms):

* ``D₁``: spherical k-means of the signals' patches of the first kernel's size (each atom the
  normalised mean of the patches closest in angle);
* ``D_j`` (j ≥ 2): windows of the signals of the size of layer j's effective atoms, each coded
  with ``sparsity`` non-zeros by OMP over the effective dictionary ``D₁⋯D_{j−1}`` on that
  window: the code *is* a filter of ``D_j`` (its shape is ``(m_{j−1}, k_j, k_j)`` exactly when
  the layers chain without remainder), so every effective atom of layer j starts as the best
  ``sparsity``-term approximation of a piece of a signal by the atoms below.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_int
from mlcsc.dictionary import DenseDictionary
from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.pursuit.nonnegative_omp import nonnegative_omp
from mlcsc.pursuit.omp import omp

__all__ = ["initialize_filters_", "initialize_from_data_", "spherical_kmeans", "window_size"]


def spherical_kmeans(
    points: Tensor, count: int, n_iter: int = 20, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` unit-norm centroids of the rows of ``points`` by spherical k-means (cosine
    similarity), started from distinct random rows; an empty cluster takes the worst-fitted
    point.

    Spherical k-means (Dhillon & Modha 2001, "Concept decompositions for large sparse text data
    using clustering", Machine Learning 42) clusters directions: with the rows normalised,
    ``u_i = p_i/‖p_i‖``, every iteration assigns each ``u_i`` to the centroid ``c_j`` of
    largest ``⟨u_i, c_j⟩`` and replaces each centroid by the normalised sum of its members,
    ``c_j = Σ_{i∈S_j} u_i / ‖Σ_{i∈S_j} u_i‖``. Only the directions of the points matter, not
    their norms; a point and its negative are different directions.

    Args:
        points: ``(N, n)`` points, one per row.
        count: number of centroids, ``1 ≤ count ≤ N``.
        n_iter: assignment/update iterations (0 returns the random starting rows, normalised).
        generator: random generator of the starting rows.

    Returns:
        ``(count, n)`` centroids of unit norm, on the device and in the dtype of ``points``.

    Raises:
        ValueError: for ``count`` outside ``[1, N]``.

    Shape:
        - points: ``(N, n)``.
        - output: ``(count, n)``.

    Examples:
        Two directions, at different norms:

        >>> points = torch.tensor([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]])
        >>> centroids = spherical_kmeans(points, 2, generator=torch.Generator().manual_seed(0))
        >>> centroids[centroids[:, 0].argsort()].round(decimals=1)
        tensor([[0., 1.],
                [1., 0.]])
        >>> torch.allclose(centroids.norm(dim=1), torch.ones(2))
        True
    """
    check_int("count", count, 1, len(points))
    unit = points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pick = torch.randperm(len(unit), generator=generator)[:count].to(unit.device)
    centroids = unit[pick].clone()
    for _ in range(n_iter):
        similarity = unit @ centroids.T  # (N, count)
        best, assignment = similarity.max(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, unit)
        empty = (torch.bincount(assignment, minlength=count) == 0).nonzero().flatten()
        for index, worst in zip(
            empty.tolist(), best.argsort()[: len(empty)].tolist(), strict=False
        ):
            sums[index] = unit[worst]
        centroids = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return centroids


def _windows(images: Tensor, size: int, count: int, generator, required: int) -> Tensor:
    """Up to ``count`` distinct random ``size × size`` windows (all channels) among the upper
    half of the windows by energy, flattened ``(·, C·size²)``; at least ``required``."""
    windows = F.unfold(images, size).transpose(1, 2).reshape(-1, images.shape[1] * size * size)
    energy = windows.norm(dim=1)
    windows = windows[energy >= energy.median().clamp_min(1e-12)]
    if len(windows) < required:
        raise ValueError(
            f"initialising {required} atoms needs at least {required} non-empty {size}×{size} "
            f"windows, got {len(windows)}"
        )
    return windows[torch.randperm(len(windows), generator=generator)[:count].to(windows.device)]


@torch.no_grad()
def initialize_from_data_(
    encoder,
    images: Tensor,
    sparsity: int = 7,
    generator: torch.Generator | None = None,
    kmeans_iter: int = 20,
    nonnegative: bool | Sequence[bool] = False,
) -> None:
    """Set every dictionary of an :class:`~mlcsc.MLCSC` ``encoder`` from ``images``, in place
    (see the module docstring); the atoms are normalised.

    ``D₁`` is the :func:`spherical_kmeans` of the first layer's ``k₁ × k₁`` windows (of the
    upper half by energy). Each deeper ``D_j`` takes windows ``w`` of the images of the size of
    layer ``j``'s effective atoms and sets its filters to the ``sparsity``-sparse OMP codes of
    ``w`` over ``D₁⋯D_{j−1}`` on that window, normalised, so that every effective atom
    ``D₁⋯D_{j−1}d_j`` approximates a piece of an image and every filter is sparse, as the
    ML-CSC model of Sulam, Papyan, Romano & Elad (2018, "Multilayer convolutional sparse
    modeling: pursuit and dictionary learning", IEEE TSP 66(15)) asks of its deeper
    dictionaries.

    Args:
        encoder: the ML-CSC encoder (its layers must chain: layer j's effective atom, coded
            by the layers below, has exactly layer j's kernel size).
        images: ``(N, C, H, W)`` signals with the encoder's channels.
        sparsity: non-zeros of each deeper filter (its OMP code), ``≥ 1``.
        generator: random draws of the k-means start and of the windows.
        kmeans_iter: spherical k-means iterations for ``D₁``.
        nonnegative: non-negative filters, per layer (or one for all): ``D₁``'s centroids
            clipped at zero, a deeper layer's filters as non-negative OMP codes
            (:func:`~mlcsc.pursuit.nonnegative_omp`), so that its effective atoms are sums of
            the atoms below.

    Raises:
        ValueError: images that do not fit the encoder, too few non-empty windows, or layers
            that do not chain.

    Shape:
        - images: ``(N, C, H, W)``.

    Examples:
        A two-layer encoder whose layers chain (stride 1, no padding: a ``3 × 3`` filter of
        layer 2 spans a ``5 × 5`` window of the image):

        >>> from mlcsc import MLCSC
        >>> encoder = MLCSC(1, [(4, 3), (8, 3)])
        >>> generator = torch.Generator().manual_seed(0)
        >>> images = torch.rand(8, 1, 12, 12, generator=generator)
        >>> initialize_from_data_(encoder, images, sparsity=3, generator=generator)
        >>> D1, D2 = encoder.dictionaries
        >>> torch.allclose(D2.atom_norms(), torch.ones(8)), encoder.effective_atoms(2).shape
        (True, torch.Size([8, 1, 5, 5]))
        >>> int((D2.weight != 0).flatten(1).sum(dim=1).max())  # at most 3 of 4·3·3 weights
        3
    """
    encoder.validate_input(images)
    sparsity = check_int("sparsity", sparsity, 1)
    dictionaries = list(encoder.dictionaries)
    if isinstance(nonnegative, bool):
        nonnegative = [nonnegative] * len(dictionaries)
    first = dictionaries[0]
    atoms, channels, kernel, _ = first.weight.shape
    patches = _windows(images, kernel, 200_000, generator, required=atoms)
    centroids = spherical_kmeans(patches, atoms, kmeans_iter, generator)
    first.weight.copy_(
        (centroids.clamp_min(0) if nonnegative[0] else centroids).view_as(first.weight)
    )
    first.normalize_()
    for j in range(1, len(dictionaries)):
        count = dictionaries[j].weight.shape[0]
        windows = _windows(images, window_size(encoder, j), count, generator, required=count)
        initialize_filters_(encoder, j, windows, sparsity=sparsity, nonnegative=nonnegative[j])


def window_size(encoder, j: int) -> int:
    """The side of the signal window that a filter of layer ``j + 1`` (0-based ``j``) spans:
    its effective atom's."""
    return encoder.effective_atoms(j + 1).shape[-1]


@torch.no_grad()
def initialize_filters_(
    encoder,
    j: int,
    windows: Tensor,
    indices: Tensor | None = None,
    sparsity: int = 7,
    nonnegative: bool = False,
) -> None:
    """Set filters of layer ``j + 1`` (0-based ``j ≥ 1``) of an :class:`~mlcsc.MLCSC` encoder,
    in place, to the ``sparsity``-sparse (non-negative) OMP codes of signal ``windows`` over the
    effective dictionary of the layers below, normalised: each new effective atom is the best
    ``sparsity``-term approximation of its window.

    Args:
        encoder: the ML-CSC encoder (layer ``j + 1`` must chain with the layers below).
        j: 0-based index of the layer, ``1 ≤ j < num_layers``.
        windows: ``(n, C·s·s)`` flattened windows of side :func:`window_size`, one per filter.
        indices: the filters to set (``n`` of them; default: the first ``n``).
        sparsity: non-zeros of each filter, ``≥ 1``.
        nonnegative: non-negative OMP (:func:`~mlcsc.pursuit.nonnegative_omp`).

    Raises:
        ValueError: layers that do not chain, or a window count that does not match.
    """
    sparsity = check_int("sparsity", sparsity, 1)
    dictionaries = list(encoder.dictionaries)
    layer = dictionaries[j]
    size = window_size(encoder, j)
    sizes = [(size, size)]
    for below in dictionaries[: j - 1]:
        sizes.append(below.code_shape(torch.zeros(1, below.in_channels, *sizes[-1]))[1:])
    chain = EffectiveDictionary(dictionaries[:j], sizes)
    matrix = chain.matrix((size, size))  # (C·size², m_{j−1}·k_j²)
    if matrix.shape[1] != layer.weight[0].numel():
        raise ValueError(
            f"layer {j + 1} does not chain: its {tuple(layer.weight.shape[1:])} filters do "
            f"not match the {matrix.shape[1]} codes of the layers below on a {size}×{size} "
            "window"
        )
    if indices is None:
        indices = torch.arange(len(windows), device=layer.weight.device)
    if len(indices) != len(windows):
        raise ValueError(f"{len(indices)} filters to set need as many windows, got {len(windows)}")
    pursuit = nonnegative_omp if nonnegative else omp
    codes = pursuit(DenseDictionary(matrix), windows, k=min(sparsity, matrix.shape[1]))
    weight = layer.weight
    weight[indices] = codes.to(weight.dtype).view(len(indices), *weight.shape[1:])
    norms = weight[indices].flatten(1).norm(dim=1).clamp_min(1e-12)
    weight[indices] = weight[indices] / norms.view(-1, *[1] * (weight.ndim - 1))
