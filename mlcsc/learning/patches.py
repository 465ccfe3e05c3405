"""Image ↔ patches: the operators ``R_i`` of patch-based Sparseland models.

``R_i`` extracts the ``p × p`` patch at position ``i`` of an image (all channels) as a vector of
length ``n = C·p·p``; its adjoint ``R_iᵀ`` puts a vector back at that position (zeros elsewhere).
The patch-based models of Elad & Aharon (2006, "Image denoising via sparse and redundant
representations over learned dictionaries", IEEE TIP 15(12)) need

* :func:`extract_patches` — ``[R_1 x, …, R_N x]`` as the rows of an ``(N, n)`` matrix;
* :func:`fold_patches` — ``Σ_i R_iᵀ p_i`` (overlaps summed);
* :func:`patch_counts` — the diagonal of ``Σ_i R_iᵀR_i``: how many patches cover each pixel;
* :func:`combine_patches` — ``(Σ_i R_iᵀR_i)⁻¹ Σ_i R_iᵀ p_i``, overlaps averaged, so that
  ``combine_patches(extract_patches(x)) == x`` exactly.

Positions form a grid with step ``stride`` in both directions, starting at 0; when the last
grid position does not reach the border (``(H − p) mod stride ≠ 0``), the last position
``H − p`` is added, so every pixel is covered by at least one patch for every stride. Patches
are ordered row-major over positions (top-left first), and each patch vector is ordered
channel, row, column (the order of ``torch.nn.functional.unfold``).
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_int

__all__ = ["extract_patches", "fold_patches", "patch_counts", "combine_patches", "num_patches"]


def extract_patches(image: Tensor, patch_size: int, stride: int = 1) -> Tensor:
    """All ``p × p`` patches of an image on a grid of step ``stride``, as rows.

    Row ``i`` is ``R_i x``, the patch at the ``i``-th grid position (row-major), flattened
    channel, row, column: the patch extraction operators of the patch-based Sparseland models
    of Elad & Aharon (2006, IEEE TIP 15(12)).

    Args:
        image: ``(H, W)`` or ``(C, H, W)`` floating-point image.
        patch_size: side ``p`` of the square patches, ``1 ≤ p ≤ min(H, W)``.
        stride: step of the grid of positions, ``≥ 1`` (border positions are added, see the
            module docstring).

    Returns:
        ``(N, C·p·p)`` patches; ``N = N_h·N_w`` with ``N_h = ⌈(H − p)/stride⌉ + 1``.

    Raises:
        ValueError: for a non-floating or badly shaped ``image``, a ``patch_size`` larger than
            the image, or a bad ``stride``.

    Shape:
        - image: ``(H, W)`` or ``(C, H, W)``.
        - output: ``(N, C·p·p)``.

    Examples:
        >>> image = torch.arange(20.0).view(4, 5)
        >>> extract_patches(image, 3, stride=2)  # positions (0, 0), (0, 2), (1, 0), (1, 2)
        tensor([[ 0.,  1.,  2.,  5.,  6.,  7., 10., 11., 12.],
                [ 2.,  3.,  4.,  7.,  8.,  9., 12., 13., 14.],
                [ 5.,  6.,  7., 10., 11., 12., 15., 16., 17.],
                [ 7.,  8.,  9., 12., 13., 14., 17., 18., 19.]])
        >>> extract_patches(torch.zeros(3, 32, 32), 8, stride=4).shape  # 7 × 7 positions
        torch.Size([49, 192])
    """
    x = _as_batch(image, "image")  # (1, C, H, W)
    size = tuple(x.shape[-2:])
    p, stride = _check_geometry(size, patch_size, stride)
    rows, cols = _positions(size[0], p, stride), _positions(size[1], p, stride)
    if _regular(size, p, stride):
        columns = F.unfold(x, p, stride=stride)  # (1, C·p·p, N)
    else:
        full = F.unfold(x, p)  # (1, C·p·p, L) for every position, then the grid is selected
        columns = full.index_select(2, _flat_index(rows, cols, size[1] - p + 1).to(x.device))
    return columns[0].T.contiguous()  # (N, C·p·p)


def fold_patches(
    patches: Tensor, image_shape: tuple[int, ...], patch_size: int, stride: int = 1
) -> Tensor:
    """``Σ_i R_iᵀ p_i``: put every patch back at its position, summing the overlaps.

    The adjoint of :func:`extract_patches`:
    ``⟨extract_patches(x), P⟩ = ⟨x, fold_patches(P)⟩``.

    Args:
        patches: ``(N, C·p·p)`` patches in the order of :func:`extract_patches`.
        image_shape: ``(H, W)`` or ``(C, H, W)`` of the image they came from.
        patch_size: side ``p``.
        stride: step of the grid (as in :func:`extract_patches`).

    Returns:
        An image of shape ``image_shape``.

    Raises:
        ValueError: for a bad ``image_shape``, ``patch_size`` or ``stride``, or ``patches`` not
            of shape ``(N, C·p·p)`` for them or not floating point.

    Shape:
        - patches: ``(N, C·p·p)``.
        - output: ``image_shape``.

    Examples:
        Folding the patches of an all-ones image counts the patches over each pixel:

        >>> image = torch.ones(3, 4)
        >>> fold_patches(extract_patches(image, 2), image.shape, 2)
        tensor([[1., 2., 2., 1.],
                [2., 4., 4., 2.],
                [1., 2., 2., 1.]])

        and the adjoint identity holds for any image and patches:

        >>> generator = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2, 6, 7, generator=generator, dtype=torch.float64)
        >>> P = torch.randn(9, 18, generator=generator, dtype=torch.float64)  # 3 × 3 positions
        >>> lhs = (extract_patches(x, 3, stride=2) * P).sum()
        >>> torch.allclose(lhs, (x * fold_patches(P, x.shape, 3, stride=2)).sum())
        True
    """
    channels, size = _check_shape(image_shape)
    p, stride = _check_geometry(size, patch_size, stride)
    rows, cols = _positions(size[0], p, stride), _positions(size[1], p, stride)
    expected = (rows.numel() * cols.numel(), channels * p * p)
    if not isinstance(patches, Tensor) or tuple(patches.shape) != expected:
        shape = tuple(patches.shape) if isinstance(patches, Tensor) else type(patches).__name__
        raise ValueError(
            f"patches must have shape (N, C·p·p) = {expected} for image_shape "
            f"{tuple(image_shape)}, patch_size {p} and stride {stride}, got {shape}"
        )
    if not torch.is_floating_point(patches):
        raise ValueError(f"patches must be floating point, got dtype {patches.dtype}")
    columns = patches.T.unsqueeze(0)  # (1, C·p·p, N)
    if _regular(size, p, stride):
        image = F.fold(columns, size, p, stride=stride)
    else:
        positions = (size[0] - p + 1) * (size[1] - p + 1)
        full = columns.new_zeros(1, channels * p * p, positions)  # every position, zero if unused
        full.index_copy_(2, _flat_index(rows, cols, size[1] - p + 1).to(patches.device), columns)
        image = F.fold(full, size, p)
    return image.reshape(image_shape)


def patch_counts(
    image_shape: tuple[int, ...],
    patch_size: int,
    stride: int = 1,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The diagonal of ``Σ_i R_iᵀR_i``: the number of patches covering each pixel (≥ 1).

    ``Σ_i R_iᵀR_i`` is diagonal, so this image is the whole operator: the weights that turn
    the sum :func:`fold_patches` into the average :func:`combine_patches`, and the denominator
    of the averaging step of the K-SVD denoiser (Elad & Aharon 2006).

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)`` of the image.
        patch_size: side ``p`` of the patches.
        stride: step of the grid (as in :func:`extract_patches`).
        dtype: dtype of the result (default: torch's default dtype).
        device: device of the result.

    Returns:
        The counts, shaped like the image (equal across channels).

    Raises:
        ValueError: for a bad ``image_shape``, ``patch_size`` or ``stride``.

    Shape:
        - output: ``image_shape``.

    Examples:
        With stride 2 on 5 pixels the positions are 0, 2 and the border position 3, so
        column (and row) 3 is covered twice:

        >>> patch_counts((5, 5), 2, stride=2)
        tensor([[1., 1., 1., 2., 1.],
                [1., 1., 1., 2., 1.],
                [1., 1., 1., 2., 1.],
                [2., 2., 2., 4., 2.],
                [1., 1., 1., 2., 1.]])
    """
    channels, size = _check_shape(image_shape)
    p, stride = _check_geometry(size, patch_size, stride)
    count = num_patches(size, p, stride)
    ones = torch.ones(count, channels * p * p, dtype=dtype, device=device)
    return fold_patches(ones, image_shape, p, stride)


def combine_patches(
    patches: Tensor, image_shape: tuple[int, ...], patch_size: int, stride: int = 1
) -> Tensor:
    """``(Σ_i R_iᵀR_i)⁻¹ Σ_i R_iᵀ p_i``: the image whose pixels average the patches covering them.

    The least-squares image for the given patches, ``argmin_x Σ_i ‖R_i x − p_i‖₂²``; inverts
    :func:`extract_patches` exactly for unmodified patches (each pixel is a mean of identical
    values).

    Args:
        patches: ``(N, C·p·p)`` patches in the order of :func:`extract_patches`.
        image_shape: ``(H, W)`` or ``(C, H, W)`` of the image.
        patch_size: side ``p``.
        stride: step of the grid (as in :func:`extract_patches`).

    Returns:
        An image of shape ``image_shape``.

    Raises:
        ValueError: as :func:`fold_patches`.

    Shape:
        - patches: ``(N, C·p·p)``.
        - output: ``image_shape``.

    Examples:
        >>> image = torch.rand(3, 13, 11, generator=torch.Generator().manual_seed(0))
        >>> patches = extract_patches(image, 4, stride=3)
        >>> torch.allclose(combine_patches(patches, image.shape, 4, stride=3), image)
        True
    """
    total = fold_patches(patches, image_shape, patch_size, stride)
    counts = patch_counts(
        image_shape, patch_size, stride, dtype=patches.dtype, device=patches.device
    )
    return total / counts


def num_patches(size: tuple[int, int], patch_size: int, stride: int = 1) -> int:
    """Number of patches :func:`extract_patches` takes from an image of spatial ``size``.

    ``N = N_h·N_w`` with ``N_h = ⌈(H − p)/stride⌉ + 1`` positions per column (the border
    position included) and likewise ``N_w``.

    Args:
        size: spatial size ``(H, W)``.
        patch_size: side ``p`` of the patches, ``1 ≤ p ≤ min(H, W)``.
        stride: step of the grid, ``≥ 1``.

    Returns:
        The number of patches ``N``.

    Raises:
        ValueError: for a ``patch_size`` larger than the image or a bad ``stride``.

    Examples:
        >>> num_patches((4, 5), 3, stride=2)  # the rows of the extract_patches example
        4
        >>> num_patches((512, 512), 8), 505 * 505  # every overlapping 8 × 8 patch
        (255025, 255025)
    """
    p, stride = _check_geometry(tuple(size), patch_size, stride)
    return _positions(size[0], p, stride).numel() * _positions(size[1], p, stride).numel()


# --------------------------------------------------------------------------- helpers


def _positions(length: int, p: int, stride: int) -> Tensor:
    """Top (or left) coordinates of the patches along one axis, the border included."""
    last = length - p
    positions = list(range(0, last + 1, stride))
    if positions[-1] != last:
        positions.append(last)
    return torch.tensor(positions, dtype=torch.long)


def _regular(size: tuple[int, int], p: int, stride: int) -> bool:
    """Whether the plain strided grid already ends at the border in both directions."""
    return (size[0] - p) % stride == 0 and (size[1] - p) % stride == 0


def _flat_index(rows: Tensor, cols: Tensor, width: int) -> Tensor:
    """Indices of the grid positions among all stride-1 positions (row-major)."""
    return (rows.unsqueeze(1) * width + cols.unsqueeze(0)).flatten()


def _as_batch(image: object, name: str) -> Tensor:
    if not isinstance(image, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (C, H, W), got {tuple(image.shape)}")
    if not torch.is_floating_point(image):
        raise ValueError(f"{name} must be floating point, got dtype {image.dtype}")
    x = image.unsqueeze(0) if image.ndim == 2 else image
    return x.unsqueeze(0)  # (1, C, H, W)


def _check_shape(image_shape: object) -> tuple[int, tuple[int, int]]:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or not all(isinstance(s, numbers.Integral) and s >= 1 for s in shape)
    ):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    channels = int(shape[0]) if len(shape) == 3 else 1
    return channels, (int(shape[-2]), int(shape[-1]))


def _check_geometry(size: tuple[int, ...], patch_size: object, stride: object) -> tuple[int, int]:
    what = f" (min(H, W) of an image of size {tuple(size)})"
    return check_int("patch_size", patch_size, 1, min(size), what), check_int("stride", stride, 1)
