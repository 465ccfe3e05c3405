"""The ML-CSC encoder (mlcsc.nn.MLCSC): the CNN at T = 0, gradients, the generator, shapes
and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from mlcsc_models import PAIRS, SIZE, SPECS, cnn_codes, make_model, relative
from torch.func import functional_call

from mlcsc import MLCSC
from mlcsc.pursuit import (
    PURSUITS,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# -------------------------------------------------------------------------------- T = 0 is the CNN


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_zero_iterations_of_every_pursuit_is_the_cnn_forward_pass(pursuit, parametrization):
    model = make_model(pursuit, n_iter=0, parametrization=parametrization)
    weights = [d.weight for d in model.dictionaries]
    if model.analysis_dictionaries is not None:
        with torch.no_grad():  # untie the analysis operators, so that using them is observable
            for analysis in model.analysis_dictionaries:
                analysis.weight.add_(0.3 * torch.randn_like(analysis.weight))
        if pursuit != "ml_lista":  # ML-LISTA's forward pass uses B_j, the dictionaries
            weights = [d.weight for d in model.analysis_dictionaries]
    x = torch.randn(3, 2, *SIZE, dtype=torch.float64)
    codes = model(x, return_all=True)
    expected = cnn_codes(x, model, weights)
    assert len(codes) == 3
    torch.testing.assert_close(codes[-1], expected[-1], rtol=1e-12, atol=1e-12)
    if pursuit.startswith("projection"):  # Γ_K from the forward pass, Γ_{j−1} = D_jΓ_j
        expected = model.model_codes(expected[-1], SIZE)
    for got, want in zip(codes, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for want in cnn_codes(x, model, weights):
        assert (want > 0).any() and (want == 0).any()  # the thresholds really act
    torch.testing.assert_close(model(x), expected[-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_iterations_change_the_codes_of_iterative_pursuits(pursuit, parametrization):
    if pursuit == "layered_thresholding":
        pytest.skip("layered thresholding has no iterations")
    model = make_model(pursuit, n_iter=3, parametrization=parametrization).eval()
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    iterated = model(x)
    model.n_iter = 0
    assert relative(iterated, model(x)) > 1e-3


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
    model = make_model("ml_fista", n_iter=2)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    model(x).sum().backward()
    for parameter in [*model.thresholds, *model.step_sizes]:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    assert any(float(p.grad.abs().sum()) > 0 for p in model.thresholds)


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
    model = make_model("ml_fista", n_iter=1)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    gamma = model(x)
    image = model.reconstruct(gamma, output_size=size)
    assert image.shape == x.shape


def test_model_codes_are_the_synthesis_chain_of_the_deepest_code():
    model = make_model("ml_fista", n_iter=2)
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
    model = make_model(pursuit, n_iter=2)
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
    model = make_model("ml_ista", n_iter=0)
    model.n_iter = 4
    assert model.n_iter == 4
    assert "n_iter=4" in repr(model)
    for bad in (-1, 2.0, True, None):
        with pytest.raises(ValueError, match="n_iter must be an integer >= 0"):
            model.n_iter = bad
    assert model.n_iter == 4


# --------------------------------------------------------------------------------------- bad input


def test_wrong_channel_count_is_rejected_naming_expected_and_got():
    model = make_model("ml_fista")
    with pytest.raises(ValueError, match=r"expected 2 input channel\(s\), got 3"):
        model(torch.randn(1, 3, *SIZE, dtype=torch.float64))


def test_too_small_image_is_rejected_naming_the_minimum():
    model = make_model("ml_fista")
    minimum = model.min_input_size()
    with pytest.raises(ValueError) as info:
        model(torch.randn(1, 2, 4, 4, dtype=torch.float64))
    message = str(info.value)
    assert "(4, 4)" in message and "too small" in message
    assert str(minimum) in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_is_rejected(bad):
    model = make_model("ml_fista")
    x = torch.randn(1, 2, *SIZE, dtype=torch.float64)
    x[0, 1, 3, 4] = bad
    with pytest.raises(ValueError, match=r"input of shape \(1, 2, 13, 11\) contains non-finite"):
        model(x)


def test_three_dimensional_input_is_rejected_naming_expected_and_got():
    model = make_model("ml_fista")
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


# ------------------------------------------------------------------------------------- devices


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_every_pursuit_runs_on_the_device_as_on_the_cpu(device, pursuit, parametrization):
    model = make_model(pursuit, n_iter=3, parametrization=parametrization)
    x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
    expected = model(x, return_all=True)
    moved = model.to(device)
    codes = moved(x.to(device), return_all=True)
    assert all(code.device.type == device.type for code in codes)
    for code, reference in zip(codes, expected, strict=True):
        torch.testing.assert_close(code.cpu(), reference, rtol=1e-9, atol=1e-12)
    codes[-1].sum().backward()  # gradients reach the filters on the device
    assert moved.dictionaries[0].weight.grad.device.type == device.type
