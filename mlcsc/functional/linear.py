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

    Returns:
        ``(n_out, n_in)`` tensor with ``n_in = prod(input_shape)``.

    >>> operator_matrix(lambda v: v.flip(1).cumsum(1), (3,), torch.zeros(()))
    tensor([[0., 0., 1.],
            [0., 1., 1.],
            [1., 1., 1.]])
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
