"""The linear probe on frozen codes: separable codes, chance on noise, choices on training codes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlcsc.training.linear_probe import linear_probe, select_weight_decay

pytestmark = pytest.mark.usefixtures("single_thread")


def _sparse_codes(count: int, seed: int, informative: bool):
    """Five-sparse non-negative codes over 60 atoms; with ``informative`` the leading atom of a
    code is one of six atoms of its class (as whole-digit molecules are)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (count,), generator=generator)
    codes = torch.zeros(count, 60)
    for row, label in zip(codes, labels, strict=True):
        row[torch.randint(0, 60, (4,), generator=generator)] = torch.rand(4, generator=generator)
        if informative:
            lead = 6 * int(label) + int(torch.randint(0, 6, (1,), generator=generator))
            row[lead] = 2.0
    return codes, labels


@pytest.mark.parametrize(("informative", "low", "high"), [(True, 0.95, 1.0), (False, 0.0, 0.25)])
def test_probe_separates_informative_codes_and_not_noise(informative, low, high):
    train = [_sparse_codes(600, 0, informative)]
    test = [_sparse_codes(300, 1, informative)]
    accuracy = linear_probe(nn.Identity(), train, test, 10, epochs=50)
    assert low <= accuracy <= high


def test_weight_decay_is_chosen_on_the_training_codes_alone():
    codes, labels = _sparse_codes(300, 3, informative=True)
    # a penalty so strong that every class scores the same loses to a mild one
    assert select_weight_decay(codes, labels, 10, (1e-3, 1e3), iterations=30) == 1e-3
