"""``MLCSC(parametrization="reference")`` is the network of Sulam, Aberdam, Beck & Elad (2019).

Each pursuit is compared with a plain loop written here from the published equations (the
paper's public code: learnable absolute step ``c_j`` that also scales the forward pass, additive
bias ``b_j = −β_j`` not scaled by any step, S = ReLU, the public ML-FISTA momentum schedule,
layered BP layer by layer, ML-LISTA with two filter banks, All Free with filters per unfolding),
on the MNIST reference architecture with random non-zero biases and steps, in float32.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlcsc import MLCSC

pytestmark = pytest.mark.usefixtures("single_thread")

LAYERS = [(32, 6, 2, 0), (64, 6, 2, 0), (512, 4, 1, 0)]  # Sulam et al.'s MNIST architecture
STRIDES = [spec[2] for spec in LAYERS]


def _model(pursuit: str, n_iter: int) -> MLCSC:
    torch.manual_seed(0)
    model = MLCSC(1, LAYERS, pursuit=pursuit, n_iter=n_iter, parametrization="reference").eval()
    with torch.no_grad():  # random non-zero biases (b = −β, some positive) and steps
        for beta in model.thresholds:
            beta.uniform_(-0.02, 0.05)
        for bank in model.unfolded_thresholds or []:
            for beta in bank:
                beta.uniform_(-0.02, 0.05)
        for c in model.step_sizes:
            c.uniform_(0.7, 1.3)
    return model


def _bias(model: MLCSC, j: int, bank=None) -> torch.Tensor:
    beta = (bank if bank is not None else model.thresholds)[j]
    return -beta.view(1, -1, 1, 1)  # b_j


def _conv(h, w, j):
    return F.conv2d(h, w, stride=STRIDES[j])


def _deconv(h, w, j):
    return F.conv_transpose2d(h, w, stride=STRIDES[j])


def _weights(model: MLCSC) -> list[torch.Tensor]:
    return [d.weight for d in model.dictionaries]


def _forward(model, x):
    W, c = _weights(model), list(model.step_sizes)
    gammas, h = [], x
    for j in range(3):  # Γ_j = S(c_jD_jᵀΓ_{j−1} + b_j)
        h = F.relu(c[j] * _conv(h, W[j], j) + _bias(model, j))
        gammas.append(h)
    return gammas


def _ista_layer(model, j, point, previous):
    W, c = _weights(model), model.step_sizes[j]
    return F.relu(point - c * _conv(_deconv(point, W[j], j) - previous, W[j], j) + _bias(model, j))


def _published_ml_ista(model, x, T, momentum=False):
    W = _weights(model)
    g1, g2, g3 = _forward(model, x)
    t, previous = 1.0, g3
    for _ in range(T):
        z = g3
        if momentum:  # t_k, Z = Γ₃ + ((t_{k−1} − 1)/t_k)(Γ₃ − P), P = Γ₃
            t_prev, t = t, (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = g3 + (t_prev - 1) / t * (g3 - previous)
            previous = g3
        h2 = _deconv(z, W[2], 2)  # rebuild from Z
        h1 = _deconv(h2, W[1], 1)
        g1 = _ista_layer(model, 0, h1, x)
        g2 = _ista_layer(model, 1, h2, g1)
        g3 = _ista_layer(model, 2, z, g2)
    return [g1, g2, g3]


def _published_layered_bp(model, x, T):
    W, c = _weights(model), list(model.step_sizes)
    gammas, previous = [], x
    for j in range(3):
        g = F.relu(c[j] * _conv(previous, W[j], j) + _bias(model, j))
        for _ in range(T):
            g = _ista_layer(model, j, g, previous)
        gammas.append(g)
        previous = g
    return gammas


def _published_ml_lista(model, x, T):
    B = _weights(model)
    Wg = [d.weight for d in model.analysis_dictionaries]
    gammas, h = [], x
    for j in range(3):  # Γ_j = S(B_jᵀΓ_{j−1} + b_j): no step
        h = F.relu(_conv(h, B[j], j) + _bias(model, j))
        gammas.append(h)
    g1, g2, g3 = gammas
    for _ in range(T):
        h2 = _deconv(g3, B[2], 2)
        h1 = _deconv(h2, B[1], 1)
        new = []
        for j, point in enumerate((h1, h2, g3)):  # Γ_j = S(Γ̂_j − W_jᵀW_jΓ̂_j + B_jᵀΓ_{j−1} + b_j)
            previous = x if j == 0 else new[-1]
            gram = _conv(_deconv(point, Wg[j], j), Wg[j], j)
            new.append(F.relu(point - gram + _conv(previous, B[j], j) + _bias(model, j)))
        g1, g2, g3 = new
    return [g1, g2, g3]


def _published_all_free(model, x, T):
    banks = [_weights(model)] + [[d.weight for d in bank] for bank in model.unfolded_dictionaries]
    biases = [model.thresholds, *model.unfolded_thresholds]
    gammas, h = [], x
    for j in range(3):  # iteration 0: the first bank, no step
        h = F.relu(_conv(h, banks[0][j], j) + _bias(model, j, biases[0]))
        gammas.append(h)
    for t in range(T):  # unfolding t + 1: synthesis with bank t, analysis with bank t + 1
        previous = x
        for j in range(3):
            residual = _deconv(gammas[j], banks[t][j], j) - previous
            z = gammas[j] - _conv(residual, banks[t + 1][j], j)
            gammas[j] = F.relu(z + _bias(model, j, biases[t + 1]))
            previous = gammas[j]
    return gammas


REFERENCES = {
    "layered_thresholding": lambda model, x, T: _forward(model, x),
    "layered_bp": _published_layered_bp,
    "ml_ista": _published_ml_ista,
    "ml_fista": lambda model, x, T: _published_ml_ista(model, x, T, momentum=True),
    "ml_lista": _published_ml_lista,
    "all_free": _published_all_free,
}


@pytest.mark.parametrize("n_iter", [0, 1, 6])
@pytest.mark.parametrize("pursuit", sorted(REFERENCES))
def test_reference_parametrization_equals_the_published_equations(pursuit, n_iter):
    model = _model(pursuit, n_iter)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        got = model(x, return_all=True)
        want = REFERENCES[pursuit](model, x, n_iter)
    for j, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape
        assert float(b.norm()) > 0 and bool((b == 0).any()), j  # real ReLUs, not all dead
        relative = float((a - b).norm() / b.norm())
        assert relative < 1e-5, (pursuit, n_iter, j, relative)


def test_published_fista_momentum_starts_one_iteration_before_beck_teboulle():
    # the two schedules differ, so an implementation with the other one fails the test above
    model = _model("ml_fista", 2)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        published = _published_ml_ista(model, x, 2, momentum=True)[-1]
        plain = _published_ml_ista(model, x, 2)[-1]
    assert float((published - plain).norm() / plain.norm()) > 1e-3


def test_reference_initialisation_is_the_published_one():
    torch.manual_seed(0)
    model = MLCSC(1, LAYERS, pursuit="ml_lista", parametrization="reference")
    assert model.init == "reference"
    channels = [1, 32, 64]
    for bank in (model.dictionaries, model.analysis_dictionaries):
        for j, dictionary in enumerate(bank):
            fan_in = channels[j] * LAYERS[j][1] ** 2
            std = float(dictionary.weight.detach().std())
            assert std == pytest.approx(0.1 / math.sqrt(fan_in), rel=0.1)
            assert abs(float(dictionary.weight.detach().mean())) < 0.2 * std
    # B and W are drawn independently
    assert not torch.equal(model.dictionaries[0].weight, model.analysis_dictionaries[0].weight)
    for c, beta in zip(model.step_sizes, model.thresholds, strict=True):
        assert float(c.detach()) == 1.0 and float(beta.detach().abs().max()) == 0.0


def test_all_free_has_filters_and_biases_of_its_own_in_every_unfolding():
    model = MLCSC(1, LAYERS, pursuit="all_free", n_iter=6, parametrization="reference")
    assert len(model.unfolded_dictionaries) == 6 and len(model.unfolded_thresholds) == 6
    weights = [model.dictionaries[0].weight] + [b[0].weight for b in model.unfolded_dictionaries]
    assert len({w.data_ptr() for w in weights}) == 7
    tied = MLCSC(1, LAYERS, pursuit="ml_ista", parametrization="reference")
    count = sum(p.numel() for p in model.parameters())
    assert count > 6 * sum(p.numel() for p in tied.parameters())
    model.n_iter = 3  # fewer unfoldings: a truncated network
    with pytest.raises(ValueError, match="at most 6, got 7"):
        model.n_iter = 7


@pytest.mark.parametrize("pursuit", ["ml_ista", "ml_fista", "layered_bp", "ml_lista"])
def test_optimised_pursuit_has_the_gradients_of_the_published_equations(pursuit):
    # mlcsc reuses the rebuilt codes (2K instead of 3K − 1 convolutions per ML-ISTA iteration)
    # and computes a 1×1 deepest layer as a matrix product: same function, same gradients
    model = _model(pursuit, 3).train()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    weights = torch.randn(4, 512, 1, 1)
    parameters = [x, *model.parameters()]

    def gradients(codes):
        loss = (codes[-1] * weights).sum() + codes[0].square().mean()
        return torch.autograd.grad(loss, parameters, allow_unused=True)

    got = gradients(model(x, return_all=True))
    want = gradients(REFERENCES[pursuit](model, x, 3))
    compared = 0
    for a, b in zip(got, want, strict=True):
        if b is None:
            assert a is None or float(a.abs().max()) == 0.0
            continue
        assert float(b.norm()) > 0
        assert float((a - b).norm() / b.norm()) < 1e-5
        compared += 1
    assert compared >= 7  # the input, three filter banks, three biases (and the steps)
