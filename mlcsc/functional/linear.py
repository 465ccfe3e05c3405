"""The explicit matrix of a linear operator given as a function on tensors."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["operator_matrix"]


@torch.no_grad()
def operator_matrix(
    operator: Callable[[Tensor], Tensor],
    input_shape: tuple[int, ...],
    like: Tensor,
    block_entries: int = 1 << 22,
) -> Tensor:
    """The matrix ``A`` of a linear ``operator`` on tensors of ``input_shape``.

    Column ``j`` is ``operator(e_j)`` flattened, ``e_j`` the ``j``-th unit tensor (flattened
    index ``j``, row-major). The operator is applied to batches ``(b, *input_shape)`` of unit
    tensors of about ``block_entries`` entries, in the dtype and on the device of ``like``.

    Args:
        operator: a linear map on batches: ``(b, *input_shape)`` → ``(b, *output_shape)``.
        input_shape: shape of one input (without the batch dimension).
        like: a tensor whose dtype and device the unit tensors take.
        block_entries: about how many entries each batch of unit tensors holds.

    Returns:
        ``(n_out, n_in)`` tensor with ``n_in = prod(input_shape)``.

    Shape:
        ``input_shape`` → ``(prod(output_shape), prod(input_shape))``.

    A plain linear-algebra utility with no paper behind it: :meth:`Dictionary.matrix
    <mlcsc.dictionary.Dictionary.matrix>` builds the explicit ``D`` of a dictionary with it.

    Examples:
        >>> operator_matrix(lambda v: v.flip(1).cumsum(1), (3,), torch.zeros(()))
        tensor([[0., 0., 1.],
                [0., 1., 1.],
                [1., 1., 1.]])

        The matrix of the analysis is the transpose of that of the synthesis:

        >>> from mlcsc.functional import conv_analysis, conv_synthesis
        >>> W = torch.arange(8.0).view(2, 1, 2, 2)
        >>> Dt = operator_matrix(lambda x: conv_analysis(x, W), (1, 3, 3), W)
        >>> D = operator_matrix(lambda codes: conv_synthesis(codes, W), (2, 2, 2), W)
        >>> D.shape, torch.equal(Dt, D.T)
        (torch.Size([9, 8]), True)
    """
    count = math.prod(input_shape)
    block = max(1, min(count, block_entries // max(count, 1)))
    images = []
    for start in range(0, count, block):
        stop = min(count, start + block)
        units = torch.zeros(stop - start, count, dtype=like.dtype, device=like.device)
        units[:, start:stop].fill_diagonal_(1.0)
        images.append(operator(units.view(-1, *input_shape)).flatten(1))
    return torch.cat(images).T
