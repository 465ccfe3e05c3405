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


@pytest.mark.parametrize("mode", ["soft", "soft_nonneg"])
def test_projection_omp_is_omp_on_the_effective_dictionary(mode):
    """Signed codes are OMP's on the explicit D_eff, non-negative ones non-negative OMP's; the
    intermediate codes are rebuilt from the deepest and the codes carry gradients."""
    from mlcsc.effective_dictionary import EffectiveDictionary
    from mlcsc.pursuit import nonnegative_omp, omp

    torch.manual_seed(0)
    layers = [(6, 5, 2, 0), (10, 3, 1, 0), (12, 3, 1, 0)]  # 13×13 → 5×5 → 3×3 → 1×1
    model = MLCSC(1, layers, pursuit="projection_omp", n_iter=3, threshold_mode=mode).double()
    if mode == "soft_nonneg":
        with torch.no_grad():
            for dictionary in model.dictionaries:
                dictionary.weight.abs_()
    x = torch.rand(5, 1, 13, 13, dtype=torch.float64)
    codes = model(x, return_all=True)
    sizes = model.layer_sizes((13, 13))
    effective = EffectiveDictionary(list(model.dictionaries), sizes[:-1])
    matrix = DenseDictionary(effective.matrix((13, 13)).detach())
    pursuit = nonnegative_omp if mode == "soft_nonneg" else omp
    expected = pursuit(matrix, x.flatten(1), k=3)
    torch.testing.assert_close(codes[-1].flatten(1), expected, atol=1e-6, rtol=0)
    if mode == "soft_nonneg":
        assert (codes[-1] >= 0).all()
    for j in (1, 2):  # Γ_{j} = D_{j+1}Γ_{j+1}
        rebuilt = model.dictionaries[j].synthesize(codes[j], sizes[j])
        torch.testing.assert_close(codes[j - 1], rebuilt)
    codes[-1].sum().backward()
    assert all(d.weight.grad is not None for d in model.dictionaries)
