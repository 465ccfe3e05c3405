"""The ML-CSC projection and its refit on the support of the deepest code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from mlcsc import MLCSC, DenseDictionary
from mlcsc.pursuit import refit_on_support

pytestmark = pytest.mark.usefixtures("single_thread")


def _planted(nonnegative: bool):
    generator = torch.Generator().manual_seed(3)
    dictionary = DenseDictionary(torch.randn(20, 40, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        dictionary.normalize_()
    x = torch.randn(6, 20, generator=generator, dtype=torch.float64)
    gamma = torch.randn(6, 40, generator=generator, dtype=torch.float64)
    gamma = gamma * (torch.rand(6, 40, generator=generator, dtype=torch.float64) < 0.15)
    return dictionary, x, gamma.abs() if nonnegative else gamma


def test_refit_is_least_squares_on_the_support():
    dictionary, x, gamma = _planted(nonnegative=False)
    step = 1.0 / float(torch.linalg.matrix_norm(dictionary.weight, ord=2) ** 2)
    refit = refit_on_support(dictionary, x, gamma, step, n_iter=1000).detach()
    assert torch.equal(refit != 0, gamma != 0)  # the support is kept
    for signal, code, fitted in zip(x, gamma, refit, strict=True):
        support = code != 0
        expected = torch.linalg.lstsq(dictionary.weight[:, support], signal).solution
        torch.testing.assert_close(fitted[support], expected, rtol=1e-7, atol=1e-8)


def test_nonnegative_refit_is_nnls_on_the_support():
    dictionary, x, gamma = _planted(nonnegative=True)
    step = 1.0 / float(torch.linalg.matrix_norm(dictionary.weight, ord=2) ** 2)
    refit = refit_on_support(dictionary, x, gamma, step, n_iter=1000, nonnegative=True).detach()
    assert (refit >= 0).all() and not (refit[gamma == 0]).any()
    for signal, code, fitted in zip(x, gamma, refit, strict=True):
        support = (code != 0).numpy()
        expected, _ = nnls(dictionary.weight.detach().numpy()[:, support], signal.numpy())
        np.testing.assert_allclose(fitted.numpy()[support], expected, atol=1e-7)


@pytest.mark.parametrize("mode", ["soft", "soft_nonneg"])
def test_projection_refit_keeps_the_support_and_reconstructs_better(mode):
    torch.manual_seed(0)
    layers = [(6, 5, 1, 0), (12, 5, 1, 0)]
    x = torch.rand(4, 1, 13, 13, dtype=torch.float64)
    options = {"n_iter": 400, "threshold_init": 0.3, "threshold_mode": mode}
    plain = MLCSC(1, layers, pursuit="projection", **options).double()
    refit = MLCSC(1, layers, pursuit="projection_refit", **options).double()
    refit.load_state_dict(plain.state_dict())
    gamma, refitted = plain(x), refit(x)
    assert (refitted != 0).any() and not refitted[gamma == 0].any()  # within the support
    if mode == "soft":
        assert torch.equal(gamma != 0, refitted != 0)  # signed: the whole support is kept

    def error(code):
        return (x - plain.reconstruct(code, (13, 13))).norm()

    assert error(refitted) < error(gamma)  # the ℓ1 shrinkage bias is gone
    # least squares over the support: D_effᵀ(x − D_effΓ) vanishes on the non-zeros
    residual = (x - plain.reconstruct(refitted, (13, 13))).detach()
    d1, d2 = plain.dictionaries
    gradient = d2.analyze(d1.analyze(residual))
    inside = gradient[refitted != 0]
    assert inside.abs().max() < 1e-3 * gradient.abs().max()
    refitted.sum().backward()  # differentiable in the filters
    assert refit.dictionaries[0].weight.grad is not None
