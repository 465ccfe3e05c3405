"""Basis pursuit by ISTA / FISTA on dense (Sparseland) and convolutional dictionaries."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import Lasso

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import bp_objective, fista, ista, proximal_gradient_step

pytestmark = pytest.mark.usefixtures("single_thread")


def _unit_dense(n: int, m: int, seed: int) -> DenseDictionary:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, m, dtype=torch.float64, generator=generator)
    return DenseDictionary(weight / weight.norm(dim=0))


def _sklearn_lasso(weight: torch.Tensor, y: torch.Tensor, lam: float, positive: bool):
    """Minimiser of ½‖y − Dγ‖² + lam‖γ‖₁ per row of y.

    sklearn minimises (1/(2n))‖y − Dγ‖² + alpha‖γ‖₁, which is our objective divided by n when
    alpha = lam / n; the minimisers coincide.
    """
    n = weight.shape[0]
    solutions = []
    for row in y:
        model = Lasso(
            alpha=lam / n, fit_intercept=False, tol=1e-12, max_iter=100000, positive=positive
        )
        model.fit(weight.numpy(), row.numpy())
        solutions.append(torch.from_numpy(model.coef_.copy()))
    return torch.stack(solutions)


# ------------------------------------------------------------------------------------------- Lasso


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_ista_and_fista_reach_the_lasso_minimiser(lam, nonneg):
    dictionary = _unit_dense(13, 29, seed=1)
    y = torch.randn(3, 13, dtype=torch.float64)
    reference = _sklearn_lasso(dictionary.weight.detach(), y, lam, positive=nonneg)
    best = bp_objective(dictionary, reference, y, lam).detach()
    for solver, iterations in ((ista, 10000), (fista, 3000)):
        codes = solver(dictionary, y, lam, max_iter=iterations, tol=0.0, nonneg=nonneg)
        objective = bp_objective(dictionary, codes, y, lam).detach()
        relative = (objective - best) / best
        # neither can beat the minimiser by more than rounding, and both must reach it
        assert (relative >= -1e-9).all(), (solver.__name__, relative)
        assert (relative <= 1e-6).all(), (solver.__name__, relative)
        if nonneg:
            assert (codes >= 0).all()


def test_nonneg_option_gives_nonnegative_codes_that_differ_from_unconstrained():
    dictionary = _unit_dense(13, 29, seed=2)
    y = torch.randn(4, 13, dtype=torch.float64)
    free = fista(dictionary, y, 0.1, max_iter=500)
    constrained = fista(dictionary, y, 0.1, max_iter=500, nonneg=True)
    assert (free < 0).any()
    assert (constrained >= 0).all()
    assert not torch.allclose(free, constrained)


def test_fista_objective_is_below_ista_after_the_same_number_of_iterations():
    # the typical case on a fixed problem (FISTA's O(1/k²) vs ISTA's O(1/k) rate)
    dictionary = _unit_dense(13, 29, seed=3)
    y = torch.randn(5, 13, dtype=torch.float64)
    step = 1.0 / float(dictionary.lipschitz())
    for k in (20, 50, 100):
        slow = bp_objective(dictionary, ista(dictionary, y, 0.1, k, tol=0.0, step=step), y, 0.1)
        fast = bp_objective(dictionary, fista(dictionary, y, 0.1, k, tol=0.0, step=step), y, 0.1)
        assert (fast <= slow).all(), k


def test_planted_sparse_code_is_recovered_with_small_lambda():
    n, m = 41, 57
    dictionary = _unit_dense(n, m, seed=4)
    gamma = torch.zeros(2, m, dtype=torch.float64)
    gamma[0, [3, 17, 40]] = torch.tensor([1.5, -2.0, 1.0], dtype=torch.float64)
    gamma[1, [0, 29, 56]] = torch.tensor([-1.0, 1.2, 2.5], dtype=torch.float64)
    y = dictionary.synthesize(gamma).detach()
    codes = fista(dictionary, y, 1e-3, max_iter=3000, tol=0.0)
    assert torch.equal(codes.abs() > 1e-2, gamma != 0)
    torch.testing.assert_close(codes, gamma, atol=2e-2, rtol=0)


def test_proximal_gradient_step_is_one_ista_step():
    dictionary = _unit_dense(7, 11, seed=5)
    y = torch.randn(2, 7, dtype=torch.float64)
    codes = torch.randn(2, 11, dtype=torch.float64)
    step, lam = 0.2, 0.3
    z = codes - step * (codes @ dictionary.weight.T - y) @ dictionary.weight
    expected = torch.sign(z) * torch.clamp(z.abs() - step * lam, min=0)
    got = proximal_gradient_step(dictionary, codes, y, step, lam, mode="soft")
    torch.testing.assert_close(got, expected.detach())
    assert torch.equal(ista(dictionary, y, lam, max_iter=1, x0=codes, step=step), got)


def test_ista_stops_early_at_tolerance_and_zero_iterations_returns_start():
    dictionary = _unit_dense(7, 11, seed=6)
    y = torch.randn(2, 7, dtype=torch.float64)
    x0 = torch.randn(2, 11, dtype=torch.float64)
    assert torch.equal(ista(dictionary, y, 0.1, max_iter=0, x0=x0), x0)
    # a huge λ: everything is zero after one step, and the run stops there
    assert torch.equal(ista(dictionary, y, 1e6), torch.zeros(2, 11, dtype=torch.float64))


# -------------------------------------------------------------------------------- convolutional BP


def _conv_problem():
    dictionary = ConvDictionary(2, 3, 3, stride=2, padding=1).double()
    y = torch.randn(2, 2, 13, 11, dtype=torch.float64)
    return dictionary, y


def test_convolutional_ista_decreases_the_bp_objective_monotonically():
    dictionary, y = _conv_problem()
    lam = 0.1
    step = 1.0 / float(dictionary.lipschitz(tuple(y.shape[-2:])))
    objectives = [bp_objective(dictionary, torch.zeros_like(dictionary.analyze(y)), y, lam)]
    for k in range(1, 31):
        codes = ista(dictionary, y, lam, max_iter=k, tol=0.0, step=step)
        objectives.append(bp_objective(dictionary, codes, y, lam))
    objectives = torch.stack(objectives).detach()  # (31, B)
    assert (objectives[1:] <= objectives[:-1] + 1e-12).all()
    assert (objectives[-1] < 0.9 * objectives[0]).all()


def test_convolutional_ista_and_fista_reach_the_same_minimum():
    dictionary, y = _conv_problem()
    lam = 0.1
    slow = ista(dictionary, y, lam, max_iter=3000, tol=0.0)
    fast = fista(dictionary, y, lam, max_iter=1000, tol=0.0)
    assert slow.shape == dictionary.analyze(y).shape
    a = bp_objective(dictionary, slow, y, lam).detach()
    b = bp_objective(dictionary, fast, y, lam).detach()
    torch.testing.assert_close(a, b, rtol=1e-8, atol=0)


def test_convolutional_fista_with_nonneg_gives_nonnegative_codes():
    dictionary, y = _conv_problem()
    codes = fista(dictionary, y, 0.05, max_iter=100, nonneg=True)
    assert (codes >= 0).all()
    assert (codes > 0).any()


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("solver", [ista, fista])
def test_negative_or_non_finite_lambda_is_rejected(solver):
    dictionary = _unit_dense(7, 11, seed=7)
    y = torch.randn(2, 7, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0, got -0.1"):
        solver(dictionary, y, -0.1)
    with pytest.raises(ValueError, match="lam"):
        solver(dictionary, y, float("inf"))
    with pytest.raises(ValueError, match="lam"):
        solver(dictionary, y, torch.tensor([0.1] * 10 + [-0.1], dtype=torch.float64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("solver", [ista, fista])
def test_non_finite_signal_is_rejected(solver, bad):
    dictionary, y = _conv_problem()
    y[1, 0, 4, 5] = bad
    with pytest.raises(ValueError, match=r"y of shape \(2, 2, 13, 11\) contains non-finite"):
        solver(dictionary, y, 0.1)


@pytest.mark.parametrize("solver", [ista, fista])
def test_wrong_warm_start_shape_is_rejected_naming_expected_and_got(solver):
    dictionary, y = _conv_problem()
    good = tuple(dictionary.analyze(y).shape)
    with pytest.raises(ValueError) as info:
        solver(dictionary, y, 0.1, x0=torch.zeros(2, 3, 5, 5, dtype=torch.float64))
    message = str(info.value)
    assert str(good) in message
    assert "(2, 3, 5, 5)" in message


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"max_iter": -1}, "max_iter"), ({"tol": -1.0}, "tol")]
)
def test_bad_iteration_controls_are_rejected(kwargs, name):
    dictionary = _unit_dense(7, 11, seed=8)
    with pytest.raises(ValueError, match=name):
        ista(dictionary, torch.randn(1, 7, dtype=torch.float64), 0.1, **kwargs)


def test_bp_objective_accepts_the_per_atom_lambda_that_ista_accepts():
    dictionary = _unit_dense(7, 5, seed=9)
    y = torch.randn(5, 7, dtype=torch.float64)  # batch size equal to the number of atoms
    lam = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    codes = ista(dictionary, y, lam, max_iter=50)
    expected = 0.5 * (y - codes @ dictionary.weight.T).pow(2).sum(1) + (lam * codes.abs()).sum(1)
    torch.testing.assert_close(bp_objective(dictionary, codes, y, lam), expected)


def test_fista_keeps_no_autograd_graph_unless_asked():
    dictionary = DenseDictionary(torch.randn(12, 20, dtype=torch.float64))
    y = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    assert not fista(dictionary, y, 0.1, max_iter=20).requires_grad
    codes = fista(dictionary, y, 0.1, max_iter=20, tol=0.0, differentiable=True)
    codes.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
