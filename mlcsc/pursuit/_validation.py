"""Input checks shared by the single-dictionary pursuits (thresholding, OMP, ISTA, FISTA).

Every check raises :class:`ValueError` with a message that names the offending argument and
shows its shape or value, so that a caller can fix the call without reading the pursuit.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from mlcsc.dictionary import ConvDictionary, DenseDictionary

__all__ = [
    "check_dictionary",
    "check_signal",
    "check_nonnegative",
    "check_sparsity",
    "check_tolerance",
    "check_iterations",
    "code_size",
]


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
def check_signal(dictionary, y: object, name: str = "y") -> None:
    """Signals a pursuit on ``dictionary`` can take: a finite floating-point tensor of shape
    ``(B, n)`` (dense) or ``(B, C, H, W)`` (convolutional) with the dictionary's dtype and device.

    Raises:
        ValueError: naming ``name``, its shape and the expected shape, dtype or device.
    """
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(y).__name__}")
    shape = tuple(y.shape)
    weight = dictionary.weight
    if isinstance(dictionary, DenseDictionary):
        n = dictionary.signal_dim
        if y.ndim != 2 or y.shape[1] != n:
            raise ValueError(
                f"{name} must have shape (B, {n}) for a dictionary with signal dimension {n}, "
                f"got shape {shape}"
            )
    elif isinstance(dictionary, ConvDictionary):
        c = dictionary.in_channels
        if y.ndim != 4 or y.shape[1] != c:
            raise ValueError(
                f"{name} must have shape (B, {c}, H, W) for a dictionary with in_channels={c}, "
                f"got shape {shape}"
            )
        if min(dictionary.output_size((y.shape[-2], y.shape[-1]))) < 1:
            k, p = dictionary.kernel_size, dictionary.padding
            raise ValueError(
                f"{name} of shape {shape} is smaller than the {k}×{k} filters with padding {p}"
            )
    if not torch.is_floating_point(y):
        raise ValueError(f"{name} must be floating point, got dtype {y.dtype}")
    if y.dtype != weight.dtype:
        raise ValueError(
            f"{name} has dtype {y.dtype} but the dictionary weight has dtype {weight.dtype}; "
            f"convert one of them"
        )
    if y.device != weight.device:
        raise ValueError(f"{name} is on {y.device} but the dictionary weight is on {weight.device}")
    if not torch.isfinite(y).all():
        raise ValueError(f"{name} of shape {shape} contains non-finite values (nan or inf)")


def code_size(dictionary, y: Tensor) -> int:
    """Number of code entries per signal: ``m`` (dense) or ``m·H'·W'`` (convolutional)."""
    if isinstance(dictionary, ConvDictionary):
        h, w = dictionary.output_size((y.shape[-2], y.shape[-1]))
        return dictionary.num_atoms * h * w
    return int(dictionary.num_atoms)


@torch.no_grad()
def check_nonnegative(name: str, value: object, num_atoms: int) -> None:
    """A finite non-negative scalar, or a tensor of shape ``(num_atoms,)`` (one per atom).

    Used for the ℓ1 weight λ and for thresholds.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if isinstance(value, numbers.Real):
        tensor = torch.tensor(float(value))
    elif isinstance(value, Tensor):
        tensor = value.detach()
        if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] != num_atoms):
            raise ValueError(
                f"{name} must be a scalar or have shape ({num_atoms},) (one value per atom), "
                f"got shape {tuple(tensor.shape)}"
            )
        if not torch.is_floating_point(tensor) and tensor.dtype not in (
            torch.int8,
            torch.int16,
            torch.int32,
            torch.int64,
            torch.uint8,
        ):
            raise ValueError(f"{name} must be real, got dtype {tensor.dtype}")
    else:
        raise ValueError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {_describe(value)}")


def check_sparsity(k: object, limit: int, name: str = "k") -> int:
    """An integer ``1 ≤ k ≤ limit`` (``limit`` = number of code entries per signal)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= limit:
        raise ValueError(
            f"{name} must be an integer with 1 <= {name} <= {limit} (the number of code entries "
            f"per signal), got {k!r}"
        )
    return int(k)


def check_tolerance(name: str, value: object) -> float:
    """A non-negative real number (``inf`` allowed, ``nan`` not)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = float(value.detach())
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_iterations(name: str, value: object) -> int:
    """A non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)
