"""The ML-CSC model of :mod:`~mlcsc.experiments.layered_pursuits`: its architecture, the
sizes of its codes, its dictionaries and their steps."""

from __future__ import annotations

import torch

from mlcsc.dictionary import ConvDictionary
from mlcsc.theory import sparsify_filters_

__all__ = [
    "ARCHITECTURE",
    "INPUT_SIZE",
    "deepest_size",
    "layer_sizes",
    "layer_steps",
    "mlcsc_dictionaries",
    "patch_sizes",
]

#: the ML-CSC model: per layer (filters, kernel size, stride, weights kept per filter or
#: 0 for dense filters)
ARCHITECTURE = ((4, 8, 2, 0), (8, 5, 1, 2), (16, 3, 1, 2))

#: side of the square input images
INPUT_SIZE = 32


def layer_sizes(depth: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[input, Γ₁, …, Γ_depth]``."""
    sizes = [(INPUT_SIZE, INPUT_SIZE)]
    for _, k, s, _ in ARCHITECTURE[:depth]:
        side = (sizes[-1][0] - k) // s + 1
        sizes.append((side, side))
    return sizes


def deepest_size(depth: int) -> int:
    """Entries ``m_K·H_K·W_K`` of the deepest code of the depth-``depth`` model."""
    side = layer_sizes(depth)[-1][0]
    return ARCHITECTURE[depth - 1][0] * side * side


def mlcsc_dictionaries(generator: torch.Generator, depth: int | None = None) -> list:
    """The dictionaries ``[D₁, …, D_depth]`` of :data:`ARCHITECTURE` (float32, no gradients).

    Dense layers: i.i.d. Gaussian filters of unit norm. Sparse layers: the largest weights of
    Gaussian filters are kept (:func:`~mlcsc.theory.sparsify_filters_`) and set to
    ``1/√(kept)``: non-negative, unit norm. The same generator state gives the same model,
    and a model of depth ``d`` is the first ``d`` layers of the full one.
    """
    dictionaries = []
    channels = 1
    for num_atoms, kernel, stride, kept in ARCHITECTURE:
        dictionary = ConvDictionary(channels, num_atoms, kernel, stride).requires_grad_(False)
        weight = torch.randn(dictionary.weight.shape, generator=generator)
        dictionary.weight.copy_(weight)
        dictionary.normalize_()
        if kept:
            sparsify_filters_(dictionary, kept / dictionary.weight[0].numel())
            support = (dictionary.weight != 0).to(dictionary.weight.dtype)
            counts = support.flatten(1).sum(dim=1).view(-1, 1, 1, 1)
            dictionary.weight.copy_(support / counts.sqrt())
        dictionaries.append(dictionary)
        channels = num_atoms
    return dictionaries[: len(ARCHITECTURE) if depth is None else depth]


def layer_steps(dictionaries) -> list[float]:
    """``[1/‖D₁‖², …, 1/‖D_K‖²]`` at the sizes of the model's signals."""
    sizes = layer_sizes(len(dictionaries))
    return [
        1.0 / float(d.lipschitz(input_size=size))
        for d, size in zip(dictionaries, sizes[:-1], strict=True)
    ]


def patch_sizes(dictionaries) -> list[int]:
    """Patch size of each code: the next layer's filter size; the deepest uses its own."""
    return [d.kernel_size for d in dictionaries[1:]] + [dictionaries[-1].kernel_size]
