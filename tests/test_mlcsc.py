"""The ML-CSC encoder (mlcsc.nn.MLCSC), its pursuits, and the classifier on its codes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso
from torch.func import functional_call

from mlcsc import MLCSC, ConvDictionary, DenseDictionary, MLCSCClassifier
from mlcsc.pursuit import (
    PURSUITS,
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

SPECS = [(4, 3, 2, 1), (5, 3, 1, 0), (6, 2, 1, 0)]  # odd and even kernels, a stride, a padding
SIZE = (13, 11)


def _model(pursuit: str, n_iter: int = 0, **kwargs) -> MLCSC:
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


def _cnn(x: torch.Tensor, model: MLCSC, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """A hand-written CNN: relu(conv2d(h, W_j, stride, padding) + b_j) with b_j = −β_j."""
    outputs = []
    h = x
    for weight, beta, (_, _, stride, padding) in zip(
        weights, model.thresholds, model.layer_specs, strict=True
    ):
        h = F.relu(F.conv2d(h, weight, stride=stride, padding=padding) - beta.view(1, -1, 1, 1))
        outputs.append(h)
    return outputs


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm() / b.norm().clamp_min(1e-300)).detach())


# -------------------------------------------------------------------------------- T = 0 is the CNN


PAIRS = [
    (name, parametrization)
    for name, pursuit in sorted(PURSUITS.items())
    for parametrization in pursuit.parametrizations
]


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_zero_iterations_of_every_pursuit_is_the_cnn_forward_pass(pursuit, parametrization):
    model = _model(pursuit, n_iter=0, parametrization=parametrization)
    weights = [d.weight for d in model.dictionaries]
    if model.analysis_dictionaries is not None:
        with torch.no_grad():  # untie the analysis operators, so that using them is observable
            for analysis in model.analysis_dictionaries:
                analysis.weight.add_(0.3 * torch.randn_like(analysis.weight))
        if pursuit != "ml_lista":  # ML-LISTA's forward pass uses B_j, the dictionaries
            weights = [d.weight for d in model.analysis_dictionaries]
    x = torch.randn(3, 2, *SIZE, dtype=torch.float64)
    codes = model(x, return_all=True)
    expected = _cnn(x, model, weights)
    assert len(codes) == 3
    torch.testing.assert_close(codes[-1], expected[-1], rtol=1e-12, atol=1e-12)
    if pursuit == "projection":  # Γ_K from the forward pass, then Γ_{j−1} = D_jΓ_j
        expected = model.model_codes(expected[-1], SIZE)
    for got, want in zip(codes, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for want in _cnn(x, model, weights):
        assert (want > 0).any() and (want == 0).any()  # the thresholds really act
    torch.testing.assert_close(model(x), expected[-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_iterations_change_the_codes_of_iterative_pursuits(pursuit, parametrization):
    if pursuit == "layered_thresholding":
        pytest.skip("layered thresholding has no iterations")
    model = _model(pursuit, n_iter=3, parametrization=parametrization).eval()
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    iterated = model(x)
    model.n_iter = 0
    assert _relative(iterated, model(x)) > 1e-3


# --------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("parametrization", "n_iter", "scale"), [("normalized", 4, 0.5), ("reference", 3, 0.2)]
)
def test_ml_fista_with_momentum_passes_gradcheck_in_input_and_dictionary(
    parametrization, n_iter, scale
):
    # n_iter ≥ 3: the momentum is non-zero from the 3rd (normalized) / 2nd (reference) iteration
    torch.manual_seed(0)
    model = MLCSC(
        1,
        [(3, 3, 2, 1), (4, 3, 1, 0)],
        pursuit="ml_fista",
        n_iter=n_iter,
        parametrization=parametrization,
        init="unit",
    ).double()
    with torch.no_grad():
        model.thresholds[0].copy_(scale * torch.tensor([0.05, 0.1, 0.02]))
        model.thresholds[1].copy_(scale * torch.tensor([0.05, 0.1, 0.02, 0.08]))
        if parametrization == "reference":
            for c in model.step_sizes:
                c.fill_(0.5)
    model.eval()
    x = torch.randn(2, 1, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_()
    codes = model(x, return_all=True)
    for code in codes:  # neither all zero nor all active: the gradient crosses real ReLUs
        assert 0.2 < float((code > 0).double().mean()) < 0.8
    assert torch.autograd.gradcheck(lambda v: model(v), (x,))
    # in the dictionaries: the unrolled iterations with the steps the model uses (the
    # Lipschitz estimates behind normalised steps are constants of the backward pass)
    layers = model.layer_parameters((9, 8))
    layers.steps = [c.detach() for c in layers.steps]
    layers.forward_scales = [torch.as_tensor(a).detach() for a in layers.forward_scales]
    scales = layers.step_threshold_scales(compound=True)
    layers.threshold_scales = [torch.as_tensor(s).detach() for s in scales]
    unrolled = _Unrolled(model, layers)
    torch.testing.assert_close(unrolled(x.detach()), model(x.detach()))
    for j in (0, 1):
        name = f"dictionaries.{j}.weight"
        weight = model.dictionaries[j].weight.detach().clone().requires_grad_()

        def encode(w, name=name):
            return functional_call(unrolled, {name: w}, (x.detach(),))

        assert torch.autograd.gradcheck(encode, (weight,))


class _Unrolled(torch.nn.Module):
    """A model's pursuit with its steps frozen, as a function of its dictionaries."""

    def __init__(self, model: MLCSC, layers):
        super().__init__()
        self.dictionaries = model.dictionaries
        self.method, self.n_iter, self.layers = model._method, model.n_iter, layers

    def forward(self, x):
        self.layers.dictionaries = self.layers.analysis = list(self.dictionaries)
        return self.method(self.layers, x, self.n_iter)[-1]


def test_gradients_reach_thresholds_and_step_sizes():
    model = _model("ml_fista", n_iter=2)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    model(x).sum().backward()
    for parameter in [*model.thresholds, *model.step_sizes]:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    assert any(float(p.grad.abs().sum()) > 0 for p in model.thresholds)


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
    assert _relative(again[-1], slow[-1]) < 1e-9
    # ML-FISTA iterates the same map at extrapolated points: same limit, every layer
    for a, b in zip(slow, fast, strict=True):
        assert _relative(b, a) < 1e-5
    assert _relative(slow[-1], forward) > 0.1


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
        assert _relative(gamma, reference) < 1e-4  # the minimiser is flatter than its value
    # (3) the same problem through the library's own FISTA on the explicit composite matrix
    composite = DenseDictionary(matrix)
    solution = fista(composite, x.flatten(1), lam, max_iter=3000, tol=0.0)
    assert _relative(solution.view(-1, *code_shape), reference) < 1e-5


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
    model = _model("layered_bp")
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
        assert _relative(codes[j], reference) < 1e-6, j
        assert (codes[j] > 0).any()
        signal = codes[j]


# ----------------------------------------------------------------------------------- the generator


def test_effective_atom_sizes_of_the_mnist_specification():
    model = MLCSC(1, [(32, 7, 2, 0), (128, 5, 1, 0), (1024, 7, 1, 0)])
    assert tuple(model.effective_atoms(1).shape) == (32, 1, 7, 7)
    assert tuple(model.effective_atoms(2).shape) == (128, 1, 15, 15)
    deepest = model.effective_atoms(3)
    assert tuple(deepest.shape) == (1024, 1, 27, 27)  # 15 + (7 − 1)·2 = 27 ≤ 28
    assert model.layer_sizes((28, 28))[-1] == (1, 1)  # one deepest position covers the digit
    torch.testing.assert_close(model.effective_atoms(1), model.dictionaries[0].weight.detach())


def test_effective_atoms_equal_the_synthesis_of_one_hot_codes():
    model = MLCSC(2, [(3, 3, 2, 0), (4, 3, 2, 0), (5, 2, 1, 0)]).double()
    k = model.num_layers
    deepest = model.effective_atoms(k)
    # reconstruct() of a one-hot deepest code at the origin, one atom at a time
    for atom in range(5):
        code = torch.zeros(1, 5, 1, 1, dtype=torch.float64)
        code[0, atom] = 1
        with torch.no_grad():
            image = model.reconstruct(code)
        torch.testing.assert_close(image[0], deepest[atom])
    # on a larger code grid the molecule sits in the top-left corner, the rest is zero
    code = torch.zeros(1, 5, 3, 4, dtype=torch.float64)
    code[0, 2, 0, 0] = 1
    with torch.no_grad():
        image = model.reconstruct(code)[0]
    size = deepest.shape[-1]
    torch.testing.assert_close(image[:, :size, :size], deepest[2])
    assert float(image[:, size:].abs().sum() + image[:, :, size:].abs().sum()) == 0
    # intermediate layers: chain the synthesis of D_i, …, D₁ by hand
    for i in range(1, k):
        signal = torch.eye(model.layer_specs[i - 1][0], dtype=torch.float64)[:, :, None, None]
        with torch.no_grad():
            for j in range(i - 1, -1, -1):
                signal = model.dictionaries[j].synthesize(signal)
        torch.testing.assert_close(signal, model.effective_atoms(i))


def test_effective_atoms_rejects_bad_layer_index():
    model = MLCSC(1, [(2, 3), (3, 3)])
    for bad in (0, 3, 1.0, True):
        with pytest.raises(ValueError, match=r"layer index must be an integer in \[1, 2\]"):
            model.effective_atoms(bad)


@pytest.mark.parametrize("size", [SIZE, (12, 12), (9, 15)])
def test_reconstruct_returns_the_input_size(size):
    model = _model("ml_fista", n_iter=1)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    gamma = model(x)
    image = model.reconstruct(gamma, output_size=size)
    assert image.shape == x.shape


def test_model_codes_are_the_synthesis_chain_of_the_deepest_code():
    model = _model("ml_fista", n_iter=2)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    gamma = model(x)
    codes = model.model_codes(gamma, SIZE)
    assert len(codes) == model.num_layers and codes[-1] is gamma
    sizes = model.layer_sizes(SIZE)
    for j in range(1, model.num_layers):  # Γ_{j−1} = D_jΓ_j, shaped like the pursuit's codes
        expected = model.dictionaries[j].synthesize(codes[j], sizes[j])
        torch.testing.assert_close(codes[j - 1], expected)
    assert [c.shape for c in codes] == [c.shape for c in model(x, return_all=True)]
    torch.testing.assert_close(
        model.dictionaries[0].synthesize(codes[0], SIZE), model.reconstruct(gamma, SIZE)
    )


# --------------------------------------------------------------------------------- shapes, options


@pytest.mark.parametrize("pursuit", sorted(PURSUITS))
def test_return_all_gives_codes_of_the_predicted_sizes(pursuit):
    model = _model(pursuit, n_iter=2)
    x = torch.randn(3, 2, *SIZE, dtype=torch.float64)
    codes = model(x, return_all=True)
    sizes = model.layer_sizes(SIZE)
    assert sizes[0] == SIZE
    assert [tuple(c.shape) for c in codes] == [
        (3, spec[0], *size) for spec, size in zip(model.layer_specs, sizes[1:], strict=True)
    ]
    assert tuple(model(x).shape) == (3, *model.code_shape(SIZE))
    assert model.code_shape(SIZE) == (6, 4, 3)


def test_layer_sizes_follow_the_convolution_arithmetic():
    model = MLCSC(2, SPECS)
    expected = [SIZE]
    for _, k, s, p in SPECS:
        expected.append(tuple(math.floor((n + 2 * p - k) / s) + 1 for n in expected[-1]))
    assert model.layer_sizes(SIZE) == expected
    minimum = model.min_input_size()
    model.layer_sizes(minimum)  # accepted
    with pytest.raises(ValueError):
        model.layer_sizes((minimum[0] - 1, minimum[1]))


def test_n_iter_can_be_changed_after_construction():
    model = _model("ml_ista", n_iter=0)
    model.n_iter = 4
    assert model.n_iter == 4
    assert "n_iter=4" in repr(model)
    for bad in (-1, 2.0, True, None):
        with pytest.raises(ValueError, match="n_iter must be an integer >= 0"):
            model.n_iter = bad
    assert model.n_iter == 4


# --------------------------------------------------------------------------------------- bad input


def test_wrong_channel_count_is_rejected_naming_expected_and_got():
    model = _model("ml_fista")
    with pytest.raises(ValueError, match=r"expected 2 input channel\(s\), got 3"):
        model(torch.randn(1, 3, *SIZE, dtype=torch.float64))


def test_too_small_image_is_rejected_naming_the_minimum():
    model = _model("ml_fista")
    minimum = model.min_input_size()
    with pytest.raises(ValueError) as info:
        model(torch.randn(1, 2, 4, 4, dtype=torch.float64))
    message = str(info.value)
    assert "(4, 4)" in message and "too small" in message
    assert str(minimum) in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_is_rejected(bad):
    model = _model("ml_fista")
    x = torch.randn(1, 2, *SIZE, dtype=torch.float64)
    x[0, 1, 3, 4] = bad
    with pytest.raises(ValueError, match=r"input of shape \(1, 2, 13, 11\) contains non-finite"):
        model(x)


def test_three_dimensional_input_is_rejected_naming_expected_and_got():
    model = _model("ml_fista")
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 2, H, W\), got shape"):
        model(torch.randn(2, *SIZE, dtype=torch.float64))


def test_unknown_pursuit_lists_the_valid_names():
    with pytest.raises(ValueError) as info:
        MLCSC(1, [(2, 3)], pursuit="ml_magic")
    message = str(info.value)
    assert "'ml_magic'" in message
    for name in PURSUITS:
        assert name in message


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_iter": -1}, "n_iter"),
        ({"layers": [(2, 3, 0, 0)]}, r"layers\[0\]: stride must be an integer >= 1, got 0"),
        ({"layers": [(2, 3), (3, 3, 1, -1)]}, r"layers\[1\]: padding"),
        ({"layers": [(2, 0)]}, r"layers\[0\]: kernel_size"),
        ({"layers": [(2, 3.5)]}, r"layers\[0\]"),
        ({"layers": [(2,)]}, r"layers\[0\]"),
        ({"layers": []}, "layers"),
        ({"threshold_init": -0.1}, "threshold_init must be a finite number >= 0, got -0.1"),
        ({"threshold_init": float("nan")}, "threshold_init"),
        ({"step_init": 0.0}, "step_init"),
        ({"step_init": 2.5}, "step_init"),
        ({"threshold_mode": "relu"}, "soft_nonneg"),
        ({"in_channels": 0}, "in_channels"),
        ({"parametrization": "paper"}, r"unknown parametrization 'paper'; .*normalized, reference"),
        (
            {"pursuit": "projection", "parametrization": "reference"},
            r"'projection' does not support parametrization 'reference'; expected one of normal",
        ),
        (
            {"pursuit": "all_free"},
            r"'all_free' does not support parametrization 'normalized'; expected one of reference",
        ),
        ({"pursuit": "projection", "untied": True}, r"'projection' cannot use untied filters"),
        ({"pursuit": "ml_lista", "untied": False}, r"'ml_lista' needs untied filters"),
        ({"untied": "yes"}, "untied must be True, False or None"),
        ({"init": "xavier"}, r"init must be one of unit, reference; got 'xavier'"),
        ({"parametrization": "reference", "step_init": -1.0}, "step_init"),
        (
            {"pursuit": "layered_bp", "step_rule": "chain"},
            r"'layered_bp' does not support step_rule 'chain'; expected one of layer",
        ),
        ({"pursuit": "ml_lista", "step_rule": "layer"}, r"none \(it takes no steps\)"),
        ({"parametrization": "reference", "step_rule": "chain"}, "expected step_rule=None"),
    ],
)
def test_bad_constructor_arguments_are_rejected(kwargs, pattern):
    arguments = {"in_channels": 1, "layers": [(2, 3)], **kwargs}
    with pytest.raises(ValueError, match=pattern):
        MLCSC(**arguments)


def test_reference_steps_may_exceed_the_relative_range():
    model = MLCSC(1, [(2, 3)], parametrization="reference", step_init=2.5)
    assert float(model.step_sizes[0].detach()) == 2.5


# --------------------------------------------------------------------------- the pursuit contract


def test_a_registered_pursuit_runs_in_mlcsc_with_what_it_declares():
    from mlcsc.pursuit import LayerParameters, Pursuit, register_pursuit
    from mlcsc.pursuit.base import forward_pass, gradient_step

    @register_pursuit("test_last_layer_ista")
    class LastLayerISTA(Pursuit):
        """Forward pass, then ISTA steps on the deepest layer alone."""

        step_rules = ("layer",)
        untied = "never"
        parametrizations = ("normalized",)

        def run(self, layers: LayerParameters, x, n_iter):
            codes = forward_pass(layers, x)
            last = layers.num_layers - 1
            scale = layers.step_threshold_scales(compound=False)[last]  # c_K·β_K
            for _ in range(n_iter):
                codes[-1] = gradient_step(layers, last, codes[-1], codes[-2], scale)
            return codes

    try:
        model = MLCSC(2, SPECS, pursuit="test_last_layer_ista", n_iter=40).double().eval()
        assert model.step_rule == "layer" and model.analysis_dictionaries is None
        x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
        codes = model(x, return_all=True)
        assert (model.lipschitz_constants > 0).all()  # the layer rule's estimates were made
        # the deepest code solves its layer's BP problem, as layered BP's last layer does
        expected = ista(
            model.dictionaries[2],
            codes[1].detach(),
            model.thresholds[2].detach(),
            40,
            tol=0.0,
            x0=F.relu(
                model.dictionaries[2].analyze(codes[1]) - model.thresholds[2].view(1, -1, 1, 1)
            ).detach(),
            nonneg=True,
            step=float(model.steps()[2].detach()),
        )
        torch.testing.assert_close(codes[-1].detach(), expected)
        with pytest.raises(ValueError, match="cannot use untied filters"):
            MLCSC(2, SPECS, pursuit="test_last_layer_ista", untied=True)
        with pytest.raises(ValueError, match="does not support step_rule 'chain'"):
            MLCSC(2, SPECS, pursuit="test_last_layer_ista", step_rule="chain")
        with pytest.raises(ValueError, match="already registered"):
            register_pursuit("test_last_layer_ista")(LastLayerISTA)
    finally:
        PURSUITS.pop("test_last_layer_ista")


def test_register_pursuit_rejects_invalid_declarations():
    from mlcsc.pursuit import Pursuit, register_pursuit

    class BadRule(Pursuit):
        step_rules = ("global",)

    with pytest.raises(ValueError, match="step_rules must be a subset of"):
        register_pursuit("test_bad_rule")(BadRule)
    with pytest.raises(ValueError, match="expects a Pursuit subclass"):
        register_pursuit("test_function")(lambda *args: None)
    assert "test_bad_rule" not in PURSUITS and "test_function" not in PURSUITS


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
    model = _model("ml_ista", n_iter=4).eval()
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


# -------------------------------------------------------------------------------------- classifier


def test_classifier_gives_logits_with_a_head_sized_from_input_size():
    encoder = MLCSC(2, SPECS, pursuit="ml_fista", n_iter=1)
    classifier = MLCSCClassifier(encoder, num_classes=7, input_size=SIZE)
    assert isinstance(classifier.head, torch.nn.Linear)
    assert classifier.head.in_features == math.prod(encoder.code_shape(SIZE))  # 6·4·3
    logits = classifier(torch.randn(5, 2, *SIZE))
    assert logits.shape == (5, 7)
    assert torch.isfinite(logits).all()


def test_classifier_without_input_size_builds_its_head_lazily():
    classifier = MLCSCClassifier(MLCSC(2, SPECS, n_iter=0), num_classes=3)
    assert classifier(torch.randn(2, 2, *SIZE)).shape == (2, 3)
    assert classifier.head.in_features == 6 * 4 * 3


def test_classifier_rejects_bad_arguments():
    encoder = MLCSC(2, SPECS)
    with pytest.raises(ValueError, match="num_classes"):
        MLCSCClassifier(encoder, num_classes=1)
    with pytest.raises(ValueError, match="dropout"):
        MLCSCClassifier(encoder, num_classes=3, dropout=1.0)
    with pytest.raises(ValueError, match="too small"):
        MLCSCClassifier(encoder, num_classes=3, input_size=(4, 4))


# ------------------------------------------------------------ supervised training, every pursuit


@pytest.fixture(scope="module")
def digits():
    from mlcsc.data.mnist5k import _load_mnist5k

    images, labels = _load_mnist5k()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    return images.float() / 255.0, labels, order[:768], order[768:968]


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_supervised_training_lowers_the_loss_and_beats_chance(pursuit, parametrization, digits):
    images, labels, train, test = digits
    torch.manual_seed(0)
    encoder = MLCSC(
        1,
        [(8, 6, 2, 0), (16, 6, 2, 0), (32, 4, 1, 0)],
        pursuit=pursuit,
        n_iter=2,
        parametrization=parametrization,
    )
    net = MLCSCClassifier(encoder, num_classes=10, input_size=(28, 28))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for start in range(0, len(train), 32):  # one epoch of 768 real digits
        batch = train[start : start + 32]
        loss = F.cross_entropy(net(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.2, (first, last)
    with torch.no_grad():
        accuracy = float((net.eval()(images[test]).argmax(1) == labels[test]).float().mean())
    assert accuracy > 0.25, accuracy  # chance is 0.1 (measured: 0.33 to 0.69)
