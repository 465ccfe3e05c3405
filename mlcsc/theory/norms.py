"""Local sparsity and energy norms of convolutional codes and signals (MODEL.md §2–3).

The global ℓ0 norm says nothing useful about a convolutional code: an image may hold many
non-zeros and still be locally sparse. The local theory of Papyan, Sulam & Elad (2017,
"Working locally thinking globally", IEEE TSP) measures sparsity and noise patch by patch:

* ``‖Γ‖₀,∞^S = max_i ‖γ_i‖₀``, the **stripe norm**: the stripe ``γ_i`` of signal patch ``i``
  holds every code entry (in every code channel) whose atom overlaps that patch;
* ``‖Γ‖₀,∞^P``, the **patch norm** used by the multi-layer theory (Papyan, Romano & Elad 2017,
  JMLR): the most non-zeros in a ``p × p`` window of the code itself (all channels), ``p``
  being the filter size of the *next* layer, which sees ``Γ`` as its signal;
* ``‖E‖₂,∞^P = max_i ‖P_i E‖₂``: the largest energy of a ``p × p`` patch (all channels) of a
  signal or an error.

All three are maxima of window sums, computed with one convolution by a box of ones over a map
of per-position counts (or energies), never with Python loops over patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_choice, check_int, check_number

__all__ = ["l0_inf_norm", "l2_inf_norm", "stripe_width", "L0_INF_MODES"]

#: what :func:`l0_inf_norm` counts: stripes (CSC theory) or patches of the code
L0_INF_MODES = ("stripe", "patch")


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 2:
        values = tuple(value)
    else:
        values = (value, value)
    return tuple(check_int(name, v, minimum, what=" (or a pair)") for v in values)  # type: ignore[return-value]


def stripe_width(kernel_size: int, stride: int = 1) -> int:
    """Number of code positions (per axis) whose atoms can overlap one signal patch.

    A patch of ``k`` pixels starting at pixel ``t`` is touched by the atom at code position
    ``p`` (covering pixels ``ps … ps + k − 1``) exactly when ``|ps − t| ≤ k − 1``: at most
    ``⌈(2k − 1)/s⌉`` consecutive code positions. For ``s = 1`` this is the ``2k − 1`` of the
    stripe dictionary ``Ω`` (n × (2n − 1)m in 1-D; Papyan, Sulam & Elad 2017).

    Args:
        kernel_size: filter size ``k ≥ 1``.
        stride: stride ``s ≥ 1`` of the code grid.

    Returns:
        ``⌈(2k − 1)/s⌉`` (an int).

    Raises:
        ValueError: for ``k < 1`` or ``s < 1``.

    Examples:
        >>> stripe_width(3), stripe_width(3, stride=2)
        (5, 3)
    """
    (k, _), (s, _) = _pair("kernel_size", kernel_size, 1), _pair("stride", stride, 1)
    return -(-(2 * k - 1) // s)


def _kernel_and_stride(kernel_size, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """Accept a ConvDictionary in place of ``kernel_size`` (its stride is used then)."""
    if hasattr(kernel_size, "kernel_size") and hasattr(kernel_size, "stride"):
        dictionary = kernel_size
        if stride is not None and stride != dictionary.stride:
            raise ValueError(
                f"stride={stride!r} conflicts with the dictionary's own stride "
                f"{dictionary.stride}; omit it"
            )
        kernel_size, stride = dictionary.kernel_size, dictionary.stride
    return _pair("kernel_size", kernel_size, 1), _pair("stride", 1 if stride is None else stride, 1)


def _as_2d(x: Tensor, name: str) -> Tensor:
    """``(B, C, N)`` → ``(B, C, 1, N)``; ``(B, C, H, W)`` unchanged."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim == 3:
        return x.unsqueeze(2)
    if x.ndim == 4:
        return x
    raise ValueError(
        f"{name} must have shape (B, C, N) or (B, C, H, W), got shape {tuple(x.shape)}"
    )


def _max_window_sum(density: Tensor, window: tuple[int, int]) -> Tensor:
    """Largest sum of ``density (B, 1, H, W)`` over a ``window`` box, per batch element.

    Boxes overhanging the border (zero padding) are included; they are subsets of an interior
    box when the map is larger than the box, and cover the whole map when it is smaller.
    """
    wh, ww = window
    ones = torch.ones(1, 1, wh, ww, dtype=density.dtype, device=density.device)
    sums = F.conv2d(density, ones, padding=(wh - 1, ww - 1))
    return sums.flatten(1).amax(dim=1)


def l0_inf_norm(
    codes: Tensor,
    kernel_size,
    stride: int | None = None,
    *,
    mode: str = "stripe",
    tol: float = 0.0,
) -> Tensor:
    """The ℓ0,∞ norm of convolutional codes: the most non-zeros in any stripe (or patch).

    ``mode="stripe"`` (default) gives ``‖Γ‖₀,∞^S = max_i ‖γ_i‖₀`` of the CSC theory (Papyan,
    Sulam & Elad 2017, IEEE TSP; MODEL.md §2): ``γ_i`` holds the code entries of *every*
    channel whose atoms (``k × k`` filters placed every ``s`` pixels) overlap the ``i``-th
    ``k × k`` signal patch, i.e. a window of ``w × w`` code positions with
    ``w = ⌈(2k − 1)/s⌉`` (:func:`stripe_width`; ``2k − 1`` for ``s = 1``). The maximum runs over
    all patch positions of the (unbounded) signal: stripes cut by the border count only the
    code entries that exist.

    ``mode="patch"`` gives ``‖Γ‖₀,∞^P`` of the multi-layer theory (Papyan, Romano & Elad 2017,
    JMLR; MODEL.md §3): the most non-zeros in a ``k × k`` window of *code* positions (all
    channels), with ``k`` the patch size, i.e. the filter size of the next layer, which takes
    ``Γ`` as its signal. ``stride`` is not used in this mode.

    Args:
        codes: ``(B, m, N')`` (1-D) or ``(B, m, H', W')`` (2-D) codes.
        kernel_size: filter size ``k`` (int or ``(k_h, k_w)``; 1-D codes use ``k_w``), or a
            :class:`~mlcsc.ConvDictionary` whose kernel size and stride are used.
        stride: stride ``s`` of the code grid (default 1, or the dictionary's).
        mode: ``"stripe"`` or ``"patch"``.
        tol: an entry counts as non-zero when ``|Γ| > tol``.

    Returns:
        ``(B,)`` int64 tensor, one norm per signal.

    Raises:
        ValueError: for an unknown ``mode``, a negative ``tol``, codes that are not 3-D or
            4-D, a bad kernel size or stride, or a stride that conflicts with the dictionary's.

    Shape:
        codes ``(B, m, N')`` or ``(B, m, H', W')`` → ``(B,)``.

    Examples:
        Two non-zeros close together (one stripe of ``3 × 3`` filters holds both) and one far
        away:

        >>> codes = torch.zeros(1, 2, 10, 10)
        >>> codes[0, 0, 2, 2] = codes[0, 1, 3, 4] = codes[0, 0, 9, 9] = 1.0
        >>> l0_inf_norm(codes, 3), l0_inf_norm(codes, 2, mode="patch")
        (tensor([2]), tensor([1]))
    """
    check_choice("mode", mode, L0_INF_MODES)
    tol = check_number("tol", tol, 0.0, allow_inf=True)
    one_dimensional = isinstance(codes, Tensor) and codes.ndim == 3
    codes = _as_2d(codes, "codes")
    kernel, strides = _kernel_and_stride(kernel_size, stride)
    if one_dimensional:
        kernel, strides = (1, kernel[1]), (1, strides[1])
    if mode == "stripe":
        window = tuple(-(-(2 * k - 1) // s) for k, s in zip(kernel, strides, strict=True))
    else:
        window = kernel
    counts = (codes.detach().abs() > tol).sum(dim=1, keepdim=True)  # (B, 1, H', W')
    # float64 box sums of integer counts are exact far beyond any realistic code size
    sums = _max_window_sum(counts.to(torch.float64), window)  # type: ignore[arg-type]
    return sums.round().to(torch.int64)


def l2_inf_norm(signal: Tensor, patch_size) -> Tensor:
    """``‖E‖₂,∞^P = max_i ‖P_i E‖₂``: the largest ℓ2 norm of a patch of a signal or an error.

    ``P_i`` extracts the ``p × p`` patch at pixel ``i`` over all channels (``c·p²`` values;
    ``p`` values per channel for 1-D signals). This is how the local CSC theory measures noise
    (Papyan, Sulam & Elad 2017, IEEE TSP): BP with ``λ = 4‖E‖₂,∞^P`` is stable when the code is
    stripe-sparse. Differentiable with respect to ``signal``.

    Args:
        signal: ``(B, C, N)`` or ``(B, C, H, W)``.
        patch_size: ``p`` (int or ``(p_h, p_w)``), or a :class:`~mlcsc.ConvDictionary` whose
            filter size is used. Patches larger than the signal cover all of it.

    Returns:
        ``(B,)`` tensor in the dtype of ``signal``.

    Raises:
        ValueError: for a signal that is not a 3-D or 4-D tensor or a bad patch size.

    Shape:
        ``(B, C, N)`` or ``(B, C, H, W)`` → ``(B,)``.

    Examples:
        >>> l2_inf_norm(torch.ones(2, 1, 6, 6), 3)  # a 3 × 3 patch of ones: √9
        tensor([3., 3.])
    """
    one_dimensional = isinstance(signal, Tensor) and signal.ndim == 3
    signal = _as_2d(signal, "signal")
    if not torch.is_floating_point(signal):
        signal = signal.to(torch.get_default_dtype())
    patch = getattr(patch_size, "kernel_size", patch_size)
    patch = _pair("patch_size", patch, 1)
    if one_dimensional:
        patch = (1, patch[1])
    energy = signal.square().sum(dim=1, keepdim=True)
    return _max_window_sum(energy, patch).clamp_min(0).sqrt()
