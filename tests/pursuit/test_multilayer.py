"""The multi-layer pursuits against their equations: ML-ISTA/ML-FISTA, layered BP, ML-LISTA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mlcsc_models import SIZE, make_model, relative
from sklearn.linear_model import Lasso

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import (
    bp_objective,
    fista,
    ista,
    layered_bp,
    ml_fista,
    ml_ista,
    ml_lista,
    multilayer_bp_objective,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------ ML-ISTA / ML-FISTA
#
# What was found by exploring (seeded tiny problems, float64, steps c_j = 1/L_j):
# * with one layer, ML-ISTA/ML-FISTA are ISTA/FISTA started from the forward pass: proximal
#   gradient with step ≤ 1/L is a descent method, so the BP objective decreases monotonically;
# * with two layers, each ML-ISTA iteration is a fixed map G of Γ_K; ML-FISTA evaluates the
#   same G at extrapolated points, so both converge to the same fixed point (observed);
# * for β₁ = 0 and soft thresholding, Γ₁ = Γ̂₁ − c₁D₁ᵀ(D₁Γ̂₁ − Y), so the layer-2 step
#   Γ₂ − c₂D₂ᵀ(D₂Γ₂ − Γ₁) = Γ₂ − c₁c₂(D₁D₂)ᵀ(D₁D₂Γ₂ − Y) is an ISTA step of size c₁c₂ on the
#   composite dictionary; with the compound threshold c₁c₂β₂ it is exactly ISTA on the Lasso
#   with weight β₂, and the fixed point is the ML-BP minimiser;
# * with β₁ > 0 the first-layer step is forward-backward, not an exact proximal map: the fixed
#   point only approximates the ML-BP minimiser and the objective need not be monotone.


def _two_layer_problem():
    first = ConvDictionary(1, 4, 3, stride=2, padding=1).double()
    second = ConvDictionary(4, 6, 3, stride=1).double()
    x = torch.randn(2, 1, *SIZE, dtype=torch.float64)
    sizes = [SIZE, first.output_size(SIZE)]
    steps = [1.0 / float(d.lipschitz(s)) for d, s in zip([first, second], sizes, strict=True)]
    return [first, second], x, sizes, steps


def _composite_matrix(dictionaries, sizes) -> torch.Tensor:
    """D₁D₂ as an explicit (n, m) matrix: synthesise every unit deepest code."""
    first, second = dictionaries
    code_size = second.output_size(sizes[1])
    m = second.num_atoms * code_size[0] * code_size[1]
    units = torch.eye(m, dtype=torch.float64).view(m, second.num_atoms, *code_size)
    with torch.no_grad():
        images = first.synthesize(second.synthesize(units, sizes[1]), sizes[0])
    return images.reshape(m, -1).T, (second.num_atoms, *code_size)


def _lasso(matrix: torch.Tensor, x: torch.Tensor, lam: float) -> torch.Tensor:
    n = matrix.shape[0]
    rows = []
    for row in x.flatten(1):
        model = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-12, max_iter=100000)
        rows.append(torch.from_numpy(model.fit(matrix.numpy(), row.numpy()).coef_.copy()))
    return torch.stack(rows)


def test_single_layer_ml_ista_is_ista_from_the_forward_pass_and_descends():
    dictionary = ConvDictionary(2, 5, 3, stride=2, padding=1).double()
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    beta, step = 0.1, 1.0 / float(dictionary.lipschitz(SIZE))
    start = F.relu(dictionary.analyze(x) - beta).detach()
    objectives = []
    for n_iter in range(0, 25):
        (gamma,) = ml_ista([dictionary], x, [beta], [step], n_iter)
        objectives.append(multilayer_bp_objective([dictionary], x, gamma, [beta]).detach())
        reference = ista(dictionary, x, beta, n_iter, tol=0.0, x0=start, nonneg=True, step=step)
        torch.testing.assert_close(gamma, reference, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(objectives[-1], bp_objective(dictionary, gamma, x, beta))
    objectives = torch.stack(objectives)
    assert (objectives[1:] <= objectives[:-1] + 1e-12).all()
    (accelerated,) = ml_fista([dictionary], x, [beta], [step], 40)
    reference = fista(dictionary, x, beta, 40, tol=0.0, x0=start, nonneg=True, step=step)
    torch.testing.assert_close(accelerated, reference, rtol=1e-12, atol=1e-12)


def test_ml_ista_and_ml_fista_reach_the_same_fixed_point():
    dictionaries, x, sizes, steps = _two_layer_problem()
    thresholds = [0.05, 0.05]
    forward = ml_ista(dictionaries, x, thresholds, steps, 0)[-1]
    slow = ml_ista(dictionaries, x, thresholds, steps, 1500)
    fast = ml_fista(dictionaries, x, thresholds, steps, 1500)
    assert (slow[-1] > 0).any()
    # a fixed point of the ML-ISTA map: one more iteration does not move it
    again = ml_ista(dictionaries, x, thresholds, steps, 1501)
    assert relative(again[-1], slow[-1]) < 1e-9
    # ML-FISTA iterates the same map at extrapolated points: same limit, every layer
    for a, b in zip(slow, fast, strict=True):
        assert relative(b, a) < 1e-5
    assert relative(slow[-1], forward) > 0.1


def test_two_layer_ml_ista_with_free_first_layer_is_ista_on_the_composite_lasso():
    dictionaries, x, sizes, steps = _two_layer_problem()
    beta = 0.2
    thresholds = [0.0, beta]
    matrix, code_shape = _composite_matrix(dictionaries, sizes)
    lam = beta  # with β₁ = 0 the layer-2 update is ISTA of step c₁c₂ and threshold c₁c₂β₂
    rescaled = [0.0, lam]
    # (1) the rescaled ML-BP objective decreases monotonically from the forward pass, because
    # every ML-ISTA iteration is an ISTA step of size c₁c₂ ≤ 1/‖D₁D₂‖² on that Lasso problem
    objectives = []
    for n_iter in range(0, 20):
        gamma = ml_ista(dictionaries, x, thresholds, steps, n_iter, mode="soft")[-1]
        objectives.append(multilayer_bp_objective(dictionaries, x, gamma, rescaled).detach())
    objectives = torch.stack(objectives)
    assert (objectives[1:] <= objectives[:-1] + 1e-12).all()
    # (2) ML-ISTA and ML-FISTA converge to that Lasso's minimiser (sklearn as the reference)
    reference = _lasso(matrix, x, lam).view(-1, *code_shape)
    best = multilayer_bp_objective(dictionaries, x, reference, rescaled).detach()
    for pursuit, n_iter in ((ml_ista, 6000), (ml_fista, 1500)):
        gamma = pursuit(dictionaries, x, thresholds, steps, n_iter, mode="soft")[-1]
        objective = multilayer_bp_objective(dictionaries, x, gamma, rescaled).detach()
        torch.testing.assert_close(objective, best, rtol=1e-8, atol=0)
        assert relative(gamma, reference) < 1e-4  # the minimiser is flatter than its value
    # (3) the same problem through the library's own FISTA on the explicit composite matrix
    composite = DenseDictionary(matrix)
    solution = fista(composite, x.flatten(1), lam, max_iter=3000, tol=0.0)
    assert relative(solution.view(-1, *code_shape), reference) < 1e-5


def test_ml_ista_fixed_point_minimises_the_multilayer_bp_objective():
    dictionaries, x, sizes, steps = _two_layer_problem()
    beta = 0.2
    thresholds = [0.0, beta]
    matrix, code_shape = _composite_matrix(dictionaries, sizes)
    minimiser = _lasso(matrix, x, beta).view(-1, *code_shape)
    best = multilayer_bp_objective(dictionaries, x, minimiser, thresholds).detach()
    gamma = ml_ista(dictionaries, x, thresholds, steps, 1500, mode="soft")[-1]
    objective = multilayer_bp_objective(dictionaries, x, gamma, thresholds).detach()
    assert (objective <= best * (1 + 1e-6)).all(), (objective, best)


# -------------------------------------------------------------------------------------- layered BP


def test_layered_bp_solves_each_layers_bp_problem():
    model = make_model("layered_bp")
    dictionaries = list(model.dictionaries)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    betas = [0.05, 0.05, 0.02]
    sizes = model.layer_sizes(SIZE)[:-1]  # the signal size each dictionary acts on
    steps = [1.0 / float(d.lipschitz(s)) for d, s in zip(dictionaries, sizes, strict=True)]
    n_iter = 2000
    codes = layered_bp(dictionaries, x, betas, steps, n_iter)
    signal, reference = x, x
    for j, dictionary in enumerate(dictionaries):
        # identical computation: ISTA (nonneg) on layer j started from its thresholding estimate
        start = F.relu(dictionary.analyze(signal) - betas[j]).detach()
        same = ista(dictionary, signal, betas[j], n_iter, 0.0, start, True, steps[j])
        torch.testing.assert_close(codes[j], same, rtol=1e-12, atol=1e-12)
        # an independent solve of the same layer problem from zero codes by FISTA
        reference = fista(dictionary, reference, betas[j], 3000, tol=0.0, nonneg=True)
        assert relative(codes[j], reference) < 1e-6, j
        assert (codes[j] > 0).any()
        signal = codes[j]


# ------------------------------------------------------------------------------------ ML-LISTA


def test_one_layer_ml_lista_with_scaled_dictionary_weights_is_ista_from_zero():
    # W = √c·D, B = c·D: Γ − WᵀWΓ + BᵀY = Γ − c·Dᵀ(DΓ − Y), and the forward pass T(cDᵀY) is
    # the first ISTA step from zero: T + 1 ISTA steps of size c with ℓ1 weight β/c
    torch.manual_seed(0)
    dictionary = ConvDictionary(2, 5, 3, stride=2, padding=1).double()
    x = torch.randn(3, 2, *SIZE, dtype=torch.float64)
    step, beta = 0.8 / float(dictionary.lipschitz(SIZE)), 0.02
    synthesis = ConvDictionary(2, 5, 3, stride=2, padding=1).double()
    gram = ConvDictionary(2, 5, 3, stride=2, padding=1).double()
    with torch.no_grad():
        synthesis.weight.copy_(step * dictionary.weight)
        gram.weight.copy_(math.sqrt(step) * dictionary.weight)
    for n_iter in (0, 1, 7):
        (gamma,) = ml_lista([synthesis], [gram], x, [beta], n_iter)
        expected = ista(dictionary, x, beta / step, n_iter + 1, tol=0.0, nonneg=True, step=step)
        torch.testing.assert_close(gamma, expected, rtol=1e-10, atol=1e-12)
        assert (gamma > 0).any() and (gamma == 0).any()


# ------------------------------------------------------------------------ ML-ISTA with β₁ > 0


def test_ml_ista_with_thresholds_on_every_layer_follows_its_equations():
    # a loop written from the normalised equations: compound thresholds c₁⋯c_j·β_j, β₁ > 0
    model = make_model("ml_ista", n_iter=4).eval()
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    codes = model(x, return_all=True)
    assert float(model.thresholds[0].detach().min()) > 0
    sizes = model.layer_sizes(SIZE)
    D = list(model.dictionaries)
    c = [float(v.detach()) for v in model.steps()]
    compound = [c[0], c[0] * c[1], c[0] * c[1] * c[2]]
    beta = [b.detach().view(1, -1, 1, 1) for b in model.thresholds]
    with torch.no_grad():
        h = x
        gammas = []
        for j in range(3):
            h = F.relu(D[j].analyze(h) - beta[j])
            gammas.append(h)
        for _ in range(4):
            rebuilt = [gammas[2]]
            for j in (2, 1):
                rebuilt.insert(0, D[j].synthesize(rebuilt[0], sizes[j]))
            previous = x
            for j in range(3):
                residual = D[j].synthesize(rebuilt[j], sizes[j]) - previous
                z = rebuilt[j] - c[j] * D[j].analyze(residual)
                gammas[j] = F.relu(z - compound[j] * beta[j])
                previous = gammas[j]
    for got, want in zip(codes, gammas, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=1e-12)
    assert (codes[0] == 0).any() and (codes[0] > 0).any()


@pytest.mark.parametrize("parametrization", ["normalized", "reference"])
@pytest.mark.parametrize("pursuit", ["ml_ista", "ml_fista", "layered_bp", "ml_lista"])
def test_pursuits_without_autograd_give_the_codes_of_the_recorded_pass(pursuit, parametrization):
    # without autograd the steps threshold in place and thin banks synthesise by fold: the
    # same codes as the pass autograd records
    model = make_model(pursuit, n_iter=4, parametrization=parametrization).eval()
    x = torch.rand(3, 2, *SIZE, dtype=torch.float64)
    recorded = model(x, return_all=True)
    with torch.no_grad():
        plain = model(x, return_all=True)
    for a, b in zip(recorded, plain, strict=True):
        assert relative(b, a.detach()) < 1e-12
    assert not plain[-1].requires_grad and recorded[-1].requires_grad
