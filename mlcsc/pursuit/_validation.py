"""Input checks shared by the single-dictionary pursuits (thresholding, OMP, ISTA, FISTA).

Every check raises :class:`ValueError` with a message that names the offending argument and
shows its shape or value, so that a caller can fix the call without reading the pursuit. The
signals themselves are checked by the dictionary (:meth:`~mlcsc.dictionary.Dictionary.check_signal`)
and plain numbers by :mod:`mlcsc.checks`; what is left here belongs to the pursuits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlcsc.checks import check_int, check_number

__all__ = ["check_dictionary", "check_nonnegative", "check_sparsity"]

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _describe(value: object) -> str:
    """A short description of a scalar or tensor argument for error messages."""
    if isinstance(value, Tensor):
        if value.numel() <= 8:
            return f"{value.detach().cpu().tolist()!r} (shape {tuple(value.shape)})"
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


@torch.no_grad()
def check_dictionary(dictionary: object, name: str = "dictionary") -> None:
    """A dense or convolutional dictionary with finite weights and no all-zero atom.

    Raises:
        ValueError: naming ``name`` and the shape of its weight, or the indices of the
            all-zero atoms.
    """
    weight = getattr(dictionary, "weight", None)
    if not isinstance(weight, Tensor) or not hasattr(dictionary, "atom_norms"):
        raise ValueError(
            f"{name} must be a DenseDictionary or ConvDictionary, got {type(dictionary).__name__}"
        )
    if not torch.isfinite(weight).all():
        raise ValueError(
            f"{name} weight of shape {tuple(weight.shape)} contains non-finite values (nan or inf)"
        )
    zero = torch.nonzero(dictionary.atom_norms() == 0).flatten()
    if zero.numel() > 0:
        shown = zero[:10].tolist()
        more = "" if zero.numel() <= 10 else f" and {zero.numel() - 10} more"
        raise ValueError(
            f"{name} weight of shape {tuple(weight.shape)} has all-zero atoms at indices "
            f"{shown}{more}; remove them or give them non-zero values"
        )


@torch.no_grad()
def check_nonnegative(name: str, value: object, num_atoms: int) -> None:
    """A finite non-negative scalar, or a tensor of shape ``(num_atoms,)`` (one per atom).

    Used for the ℓ1 weight λ and for thresholds.
    """
    if not isinstance(value, Tensor):
        check_number(name, value, 0.0)
        return
    tensor = value.detach()
    if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] != num_atoms):
        raise ValueError(
            f"{name} must be a scalar or have shape ({num_atoms},) (one value per atom), "
            f"got shape {tuple(tensor.shape)}"
        )
    if not torch.is_floating_point(tensor) and tensor.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name} must be real, got dtype {tensor.dtype}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {_describe(value)}")


def check_sparsity(k: object, dictionary, y: Tensor, name: str = "k") -> int:
    """An integer ``1 ≤ k ≤`` the number of code entries of one signal of ``y``."""
    limit = dictionary.code_numel(y)
    return check_int(name, k, 1, limit, " (the number of code entries per signal)")
