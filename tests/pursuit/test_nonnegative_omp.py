"""Non-negative OMP against a per-signal reference built on SciPy's exact NNLS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import nonnegative_least_squares, nonnegative_omp

pytestmark = pytest.mark.usefixtures("single_thread")


def _reference(matrix: np.ndarray, signal: np.ndarray, k: int) -> np.ndarray:
    """Non-negative OMP of one signal, written plainly: positive correlations, SciPy's NNLS."""
    unit = matrix / np.linalg.norm(matrix, axis=0)
    support: list[int] = []
    coefficients = np.zeros(0)
    residual = signal.copy()
    for _ in range(k):
        correlations = unit.T @ residual
        correlations[support] = -np.inf
        atom = int(np.argmax(correlations))
        if correlations[atom] <= 1e-12 * np.linalg.norm(signal):
            break
        support.append(atom)
        coefficients, _ = nnls(matrix[:, support], signal)
        residual = signal - matrix[:, support] @ coefficients
    codes = np.zeros(matrix.shape[1])
    codes[support] = coefficients
    return codes


def test_nonnegative_omp_matches_a_reference_with_exact_nnls():
    generator = torch.Generator().manual_seed(0)
    weight = torch.rand(30, 60, dtype=torch.float64, generator=generator)
    signals = torch.rand(25, 30, dtype=torch.float64, generator=generator)
    codes = nonnegative_omp(DenseDictionary(weight), signals, k=4, refit_iter=3000)
    expected = np.stack([_reference(weight.numpy(), s, 4) for s in signals.numpy()])
    assert (codes >= 0).all()
    np.testing.assert_allclose(codes.numpy(), expected, atol=1e-6)


def test_nonnegative_omp_recovers_planted_nonnegative_codes():
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(64, 128, dtype=torch.float64, generator=generator)
    dictionary = DenseDictionary(weight).normalize_()
    planted = torch.zeros(40, 128, dtype=torch.float64)
    for row in planted:
        support = torch.randperm(128, generator=generator)[:3]
        row[support] = 1 + torch.rand(3, dtype=torch.float64, generator=generator)
    codes = nonnegative_omp(dictionary, dictionary.synthesize(planted), k=3, refit_iter=2000)
    torch.testing.assert_close(codes, planted, atol=1e-6, rtol=0)


def test_a_signal_stops_when_no_atom_correlates_positively():
    weight = torch.eye(4, dtype=torch.float64)
    signal = torch.tensor([[2.0, -1.0, -3.0, 0.0]], dtype=torch.float64)
    codes = nonnegative_omp(DenseDictionary(weight), signal, k=4)
    torch.testing.assert_close(codes, torch.tensor([[2.0, 0.0, 0.0, 0.0]], dtype=torch.float64))


def test_convolutional_dictionary_codes_have_its_code_shape():
    dictionary = ConvDictionary(1, 3, 4)
    with torch.no_grad():
        dictionary.weight.abs_()
    y = torch.rand(2, 1, 8, 8)
    codes = nonnegative_omp(dictionary, y, k=5)
    assert codes.shape == (2, 3, 5, 5) and (codes >= 0).all()
    assert int((codes.flatten(1) != 0).sum(1).max()) <= 5
    # the non-negative fit never does worse than no atoms
    assert (
        (y - dictionary.synthesize(codes, (8, 8))).flatten(1).norm(dim=1) < y.flatten(1).norm(dim=1)
    ).all()


def test_nnls_keeps_inactive_entries_at_zero():
    gram = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    correlations = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 2.0, 1.0]], dtype=torch.float64)
    active = torch.tensor([[True, False, True], [True, True, True]])
    z = nonnegative_least_squares(
        gram, correlations, torch.zeros(2, 3, dtype=torch.float64), 50, active
    )
    torch.testing.assert_close(
        z, torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 1.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize(("k", "refit_iter"), [(0, 10), (61, 10), (2, 0)])
def test_bad_arguments_name_themselves(k, refit_iter):
    dictionary = DenseDictionary(torch.rand(30, 60))
    with pytest.raises(ValueError, match="k" if refit_iter else "refit_iter"):
        nonnegative_omp(dictionary, torch.rand(2, 30), k=k, refit_iter=refit_iter)
