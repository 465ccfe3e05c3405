"""Tiny ML-CSC encoders shared by the tests of mlcsc.nn and mlcsc.pursuit."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlcsc import MLCSC
from mlcsc.pursuit import PURSUITS

SPECS = [(4, 3, 2, 1), (5, 3, 1, 0), (6, 2, 1, 0)]  # odd and even kernels, a stride, a padding
SIZE = (13, 11)


def make_model(pursuit: str, n_iter: int = 0, **kwargs) -> MLCSC:
    """A tiny 3-layer float64 encoder with random nonzero per-channel thresholds."""
    if pursuit == "all_free":
        kwargs.setdefault("parametrization", "reference")
    model = MLCSC(2, SPECS, pursuit=pursuit, n_iter=n_iter, **kwargs).double()
    with torch.no_grad():
        if model.init == "unit":
            for beta in model.thresholds:
                beta.uniform_(0.05, 0.3)
        else:  # the reference filters are small: thresholds on the scale of each layer
            h = torch.randn(4, 2, *SIZE, dtype=torch.float64)
            for dictionary, beta in zip(model.dictionaries, model.thresholds, strict=True):
                z = dictionary.analyze(h)
                beta.uniform_(0.1, 0.6).mul_(z.std())
                h = torch.relu(z - beta.view(1, -1, 1, 1))
    return model


def cnn_codes(x: torch.Tensor, model: MLCSC, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """A hand-written CNN: relu(conv2d(h, W_j, stride, padding) + b_j) with b_j = −β_j."""
    outputs = []
    h = x
    for weight, beta, (_, _, stride, padding) in zip(
        weights, model.thresholds, model.layer_specs, strict=True
    ):
        h = F.relu(F.conv2d(h, weight, stride=stride, padding=padding) - beta.view(1, -1, 1, 1))
        outputs.append(h)
    return outputs


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm() / b.norm().clamp_min(1e-300)).detach())


#: every pursuit with every parametrisation it supports
PAIRS = [
    (name, parametrization)
    for name, pursuit in sorted(PURSUITS.items())
    for parametrization in pursuit.parametrizations
]
