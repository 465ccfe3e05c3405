"""Convolutional synthesis ``DΓ`` and analysis ``Dᵀx`` with exact adjointness.

A convolutional dictionary with filters ``W`` of shape ``(m, c, k, k)`` maps ``m`` code channels
to ``c`` signal channels. Analysis is the correlation ``conv2d(x, W)``; synthesis is its adjoint,
``conv_transpose2d(Γ, W)``. With stride ``s > 1`` several signal sizes give the same code size,
so synthesis takes the signal size it should produce and sets ``output_padding`` to match;
then ``⟨DΓ, x⟩ = ⟨Γ, Dᵀx⟩`` holds exactly for every stride, padding and image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.functional.spectral import polyphase_filters

__all__ = ["conv_analysis", "conv_synthesis", "conv_output_size", "conv_transpose_output_size"]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size of ``Dᵀx`` (the code) for a signal of spatial size ``size``.

    ``n' = ⌊(n + 2p − k)/s⌋ + 1``, the output size of ``conv2d`` along one axis (the
    convolution arithmetic of Dumoulin & Visin 2016, arXiv:1603.07285). Every signal size in
    ``[(n' − 1)s − 2p + k, n's − 2p + k − 1]`` gives the same code size ``n'``.

    Args:
        size: spatial size ``n`` of the signal along one axis.
        kernel_size: filter size ``k``.
        stride: stride ``s`` of the code grid.
        padding: zero padding ``p`` of the signal.

    Returns:
        The code size ``n'`` (an int).

    Examples:
        >>> conv_output_size(28, kernel_size=5, stride=2), conv_transpose_output_size(12, 5, 2)
        (12, 27)
    """
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_transpose_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> int:
    """Smallest signal size whose code has spatial size ``size``.

    ``n = (n' − 1)s − 2p + k``, the output size of ``conv_transpose2d`` without
    ``output_padding`` along one axis (Dumoulin & Visin 2016, arXiv:1603.07285): the inverse of
    :func:`conv_output_size` on the smallest signal of each code size. The ``s − 1`` larger
    signals with the same code size are reached with ``output_padding`` (the ``output_size`` of
    :func:`conv_synthesis`).

    Args:
        size: spatial size ``n'`` of the code along one axis.
        kernel_size: filter size ``k``.
        stride: stride ``s`` of the code grid.
        padding: zero padding ``p`` of the signal.

    Returns:
        The signal size ``n`` (an int).

    Examples:
        With ``k = 5`` and ``s = 2``, signals of 27 and 28 pixels both give codes of 12:

        >>> conv_transpose_output_size(12, kernel_size=5, stride=2)
        27
        >>> [conv_output_size(n, kernel_size=5, stride=2) for n in (26, 27, 28, 29)]
        [11, 12, 12, 13]
    """
    return (size - 1) * stride - 2 * padding + kernel_size


def conv_analysis(x: Tensor, weight: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """``Dᵀx``: correlate the signal with every filter.

    ``(Dᵀx)[b, j, q] = Σ_{c, t} W[j, c, t] · x_pad[b, c, s·q + t]`` (``conv2d``; ``x_pad`` is
    ``x`` zero-padded by ``p``): entry ``q`` of code channel ``j`` is the inner product of
    filter ``j`` with the ``k × k`` signal patch at pixel ``s·q − p``. This is the transpose of
    the global convolutional dictionary ``D = [C₁ … C_m]`` of the CSC model (Papyan, Sulam &
    Elad 2017, IEEE TSP), and thresholding it layer after layer is the forward pass of a CNN
    (Papyan, Romano & Elad 2017, JMLR). :func:`conv_synthesis` is its exact adjoint.

    Args:
        x: signals ``(B, c, H, W)``.
        weight: filters ``(m, c, k, k)``.
        stride: stride ``s`` of the code grid.
        padding: zero padding ``p`` of the signal.

    Returns:
        The analysis coefficients ``(B, m, H', W')``.

    Shape:
        x: ``(B, c, H, W)``, weight: ``(m, c, k, k)`` → ``(B, m, H', W')`` with
        ``H' = ⌊(H + 2p − k)/s⌋ + 1``.

    Examples:
        Analysis is the adjoint of synthesis, ``⟨Dᵀx, Γ⟩ = ⟨x, DΓ⟩``, when synthesis is told
        the signal size:

        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
        >>> x = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
        >>> codes = torch.randn(2, 4, 4, 4, generator=g, dtype=torch.float64)
        >>> conv_analysis(x, W, stride=2).shape
        torch.Size([2, 4, 4, 4])
        >>> lhs = (conv_analysis(x, W, stride=2) * codes).sum()
        >>> rhs = (x * conv_synthesis(codes, W, stride=2, output_size=(9, 9))).sum()
        >>> bool(torch.isclose(lhs, rhs))
        True
    """
    if padding == 0 and x.ndim == 4 and x.shape[-2:] == weight.shape[-2:]:
        # one output position: the correlation is a matrix product (much faster on CPU)
        last = _channels_last(weight)
        out = _rows(x, last) @ _rows(weight, last).t()
        return out.view(*out.shape, 1, 1)
    if _polyphase(x, weight, stride):
        # one strided input channel: a stride-1 convolution of its s² polyphase components
        k = weight.shape[-1]
        size = [conv_output_size(int(n), k, stride, padding) for n in x.shape[-2:]]
        covered = [(n - 1) * stride + k for n in size]  # the signal rows the filters reach
        x = F.pad(x, (padding, covered[1] - x.shape[-1] - padding,
                      padding, covered[0] - x.shape[-2] - padding))  # fmt: skip
        # the s² phases as channels-last filters: oneDNN's fastest layout for so few channels
        phases = polyphase_filters(weight, stride).contiguous(memory_format=torch.channels_last)
        return F.conv2d(F.pixel_unshuffle(x, stride), phases)
    return F.conv2d(x, weight, stride=stride, padding=padding)


def _channels_last(weight: Tensor) -> bool:
    """Filters stored channels-last (``(m, k, k, c)`` in memory), and not also plainly."""
    return (
        weight.ndim == 4
        and not weight.is_contiguous()
        and weight.is_contiguous(memory_format=torch.channels_last)
    )


def _rows(t: Tensor, channels_last: bool) -> Tensor:
    """``(N, c, h, w)`` as ``N`` rows of ``c·h·w`` entries, in the ``(h, w, c)`` order of the
    channels-last layout when ``channels_last``: a view of a channels-last tensor, where the
    ``(c, h, w)`` order would copy it on every call. Both operands of a product must use the
    same order; the inner products do not depend on which."""
    return (t.permute(0, 2, 3, 1) if channels_last else t).reshape(t.shape[0], -1)


#: a filter bank with at most this many weights per filter (``c·k²``: one or three input
#: channels) synthesises as a matrix product and ``fold`` (col2im) when no gradient is recorded:
#: ``conv_transpose2d`` is the slower kernel on CPU. Measured without autograd, batch 128,
#: 2 CPU threads: CIFAR's first layer (32@4×4/2, padding 1) 3.3 instead of 5.5 ms, 32@5×5/2 on
#: MNIST 1.2 instead of 3.7 ms. Analysis stays ``conv2d``, which was 3–6× faster than the
#: unfolded product on the same layers; with autograd both stay convolutions. CPU only.
THIN_FILTER_WEIGHTS = 64


def _polyphase(x: Tensor, weight: Tensor, stride: int) -> bool:
    """A strided filter bank on one input channel whose kernel is a multiple of the stride.

    ``conv2d`` with stride ``s`` on one channel equals a stride-1 ``conv2d`` of the ``s²``
    polyphase components of the signal (``pixel_unshuffle``) with the ``k/s × k/s`` polyphase
    components of the filters, and its adjoint a stride-1 ``conv_transpose2d`` followed by
    ``pixel_shuffle``: the same products, summed in another order. Measured on the MNIST stack's
    first layer (32@6×6 stride 2, batch 128, 2 CPU threads), forward and backward: analysis
    3.5 instead of 15.0 ms, synthesis 6.1 instead of 18.3 ms, synthesis without autograd 1.0
    instead of 5.6 ms. The ``s²``-channel analysis runs with channels-last phases (its output
    channels-last): 0.5 instead of 3.0 ms without autograd, 2.9 instead of 5.9 ms forward and
    backward (the same layer, a Zen 4 host). With three or more input channels the strided
    convolutions are faster.
    CPU only: accelerators keep their libraries' strided kernels (not measured there).
    """
    return (
        x.ndim == 4
        and x.device.type == "cpu"
        and stride > 1
        and weight.shape[1] == 1
        and weight.shape[-2] == weight.shape[-1]
        and weight.shape[-1] % stride == 0
    )


def _thin(x: Tensor, weight: Tensor) -> bool:
    return (
        x.ndim == 4
        and x.device.type == "cpu"
        and weight.shape[-2] == weight.shape[-1]
        and weight[0].numel() <= THIN_FILTER_WEIGHTS
        and not torch.is_grad_enabled()
    )


def conv_synthesis(
    codes: Tensor,
    weight: Tensor,
    stride: int = 1,
    padding: int = 0,
    output_size: tuple[int, int] | None = None,
) -> Tensor:
    """``DΓ``: place a copy of each filter at every code position, scaled by the code.

    ``(DΓ)[b, c, u] = Σ_{j, q} Γ[b, j, q] · W[j, c, u + p − s·q]`` (``conv_transpose2d``, the
    first and last ``p`` pixels cropped; ``W`` is zero outside its ``k × k`` support): the
    synthesis ``X = DΓ = Σ_j d_j ∗ Γ_j`` of the CSC model (Papyan,
    Sulam & Elad 2017, IEEE TSP), the exact adjoint of :func:`conv_analysis` on signals of size
    ``output_size``.

    Args:
        codes: ``(B, m, H', W')``.
        weight: ``(m, c, k, k)``.
        stride: stride ``s`` of the code grid.
        padding: zero padding ``p`` of the signal in the analysis (cropped here).
        output_size: the ``(H, W)`` of the signal to produce. ``None`` gives the smallest size
            consistent with the code, ``(H' − 1)s − 2p + k``. For the exact adjoint of
            :func:`conv_analysis` on a signal of size ``(H, W)``, pass that size.

    Returns:
        The signals ``(B, c, H, W)``.

    Raises:
        ValueError: for an ``output_size`` whose analysis would not give codes of size
            ``(H', W')``.

    Shape:
        ``(B, m, H', W')`` → ``(B, c, H, W)``.

    Examples:
        A single unit entry at code position ``(1, 1)`` places a copy of its filter at pixel
        ``(s, s)``:

        >>> W = torch.arange(1.0, 19.0).view(2, 1, 3, 3)
        >>> codes = torch.zeros(1, 2, 3, 3)
        >>> codes[0, 1, 1, 1] = 1.0
        >>> X = conv_synthesis(codes, W, stride=2)
        >>> X.shape, torch.equal(X[0, :, 2:5, 2:5], W[1]), float(X.sum()) == float(W[1].sum())
        (torch.Size([1, 1, 7, 7]), True, True)
        >>> conv_synthesis(codes, W, stride=2, output_size=(8, 8)).shape
        torch.Size([1, 1, 8, 8])
    """
    kernel = tuple(weight.shape[-2:])
    single = codes.ndim == 4 and codes.shape[-2:] == (1, 1) and padding == 0
    if single and (output_size is None or tuple(int(n) for n in output_size) == kernel):
        # one code position: a copy of each filter scaled by its code, a matrix product
        last = _channels_last(weight)
        out = codes.flatten(1) @ _rows(weight, last)
        if last:  # the rows are (k, k, c): a channels-last signal, as the filters
            m, c, kh, kw = weight.shape
            return out.view(codes.shape[0], kh, kw, c).permute(0, 3, 1, 2)
        return out.view(codes.shape[0], *weight.shape[1:])
    output_padding: tuple[int, int] | int = 0
    base = [
        conv_transpose_output_size(codes.shape[-2 + i], kernel[i], stride, padding)
        for i in range(2)
    ]
    if output_size is not None:
        output_padding = tuple(int(output_size[i]) - base[i] for i in range(2))
        if any(p < 0 or p >= max(stride, 1) for p in output_padding):
            expected = [(b, b + stride - 1) for b in base]
            raise ValueError(
                f"output_size {tuple(output_size)} is not reachable from codes of spatial size "
                f"{tuple(codes.shape[-2:])} with kernel {tuple(kernel)}, stride {stride}, "
                f"padding {padding}; expected each side within {expected}"
            )
    if _polyphase(codes, weight, stride):
        # the adjoint of the polyphase analysis: stride-1 transposed convolution, pixel_shuffle
        phases = F.conv_transpose2d(codes, polyphase_filters(weight, stride))
        covered = F.pixel_shuffle(phases, stride)  # the signal rows the filters reach
        size = tuple(output_size) if output_size is not None else tuple(base)
        rows, cols = covered.shape[-2:]
        return F.pad(covered, (-padding, size[1] - cols + padding,
                               -padding, size[0] - rows + padding))  # fmt: skip
    if _thin(codes, weight):
        # the adjoint of the unfolded analysis: a matrix product, then fold (col2im)
        columns = weight.flatten(1).t() @ codes.flatten(2)  # (B, c·k², H'·W')
        size = tuple(output_size) if output_size is not None else tuple(base)
        return F.fold(columns, size, kernel, padding=padding, stride=stride)
    return F.conv_transpose2d(
        codes, weight, stride=stride, padding=padding, output_padding=output_padding
    )
