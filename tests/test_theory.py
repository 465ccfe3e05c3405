"""Mutual coherence and the Welch bound (mlcsc.theory)."""

from __future__ import annotations

import math

import pytest
import torch

from mlcsc import DenseDictionary
from mlcsc.theory import mutual_coherence, welch_bound

pytestmark = pytest.mark.usefixtures("single_thread")


def _brute_force_coherence(weight: torch.Tensor) -> float:
    columns = [weight[:, j] for j in range(weight.shape[1])]
    best = 0.0
    for i, a in enumerate(columns):
        for j, b in enumerate(columns):
            if i != j:
                best = max(best, abs(float(a @ b)) / (float(a.norm()) * float(b.norm())))
    return best


def test_mutual_coherence_equals_brute_force_double_loop():
    weight = torch.randn(7, 11, dtype=torch.float64) * torch.rand(11, dtype=torch.float64)
    expected = _brute_force_coherence(weight)
    assert float(mutual_coherence(weight)) == pytest.approx(expected, rel=1e-12)
    dictionary = DenseDictionary(weight)
    assert float(mutual_coherence(dictionary)) == pytest.approx(expected, rel=1e-12)
    assert float(dictionary.mutual_coherence()) == pytest.approx(expected, rel=1e-12)


def test_mutual_coherence_of_identity_is_zero_and_of_repeated_atom_is_one():
    assert float(mutual_coherence(torch.eye(9, dtype=torch.float64))) == 0.0
    weight = torch.randn(5, 4, dtype=torch.float64)
    weight[:, 3] = -2.5 * weight[:, 1]
    assert float(mutual_coherence(weight)) == pytest.approx(1.0, rel=1e-12)


def test_mutual_coherence_of_two_orthobases_is_one_over_root_n():
    n = 8  # identity and a normalised Hadamard matrix: μ = 1/√n
    hadamard = torch.ones(1, 1, dtype=torch.float64)
    while hadamard.shape[0] < n:
        hadamard = torch.cat(
            [torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)]
        )
    weight = torch.cat([torch.eye(n, dtype=torch.float64), hadamard / math.sqrt(n)], dim=1)
    assert float(mutual_coherence(weight)) == pytest.approx(1 / math.sqrt(n), rel=1e-12)


@pytest.mark.parametrize(("n", "m"), [(5, 9), (7, 13), (13, 41), (16, 64)])
def test_welch_bound_is_below_the_coherence_of_random_unit_norm_dictionaries(n, m):
    generator = torch.Generator().manual_seed(n * m)
    for _ in range(5):
        weight = torch.randn(n, m, dtype=torch.float64, generator=generator)
        weight = weight / weight.norm(dim=0)
        assert welch_bound(n, m) <= float(mutual_coherence(weight))


def test_welch_bound_formula_and_edge_cases():
    assert welch_bound(64, 256) == pytest.approx(math.sqrt(192 / (64 * 255)))
    assert welch_bound(5, 5) == 0.0
    assert welch_bound(5, 3) == 0.0
    for n, m in [(0, 3), (3, 0), (-1, 4)]:
        with pytest.raises(ValueError, match="positive"):
            welch_bound(n, m)


def test_all_zero_atom_raises_naming_its_column():
    weight = torch.randn(6, 5, dtype=torch.float64)
    weight[:, 3] = 0
    with pytest.raises(ValueError, match=r"all-zero atoms at columns \[3\]"):
        mutual_coherence(weight)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(n, m\) matrix, got shape \(2, 3, 4\)"):
        mutual_coherence(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2 atoms, got 1"):
        mutual_coherence(torch.randn(5, 1))
