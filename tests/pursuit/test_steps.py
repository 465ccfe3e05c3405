"""Steps from the operators they act on, and the ML-CSC projection.

With ``β₁ = … = β_{K−1} = 0`` and signed codes one ML-ISTA iteration is one ISTA step of size
``c₁⋯c_K`` on ``D_eff = D₁⋯D_K``; mlcsc's normalised parametrisation sets the compound steps
from the chain norms ``‖D₁⋯D_j‖²``, so ML-ISTA / ML-FISTA *are* ISTA / FISTA on ``D_eff``.
"""

from __future__ import annotations

import math

import pytest
import torch

from mlcsc import MLCSC, DenseDictionary
from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.pursuit import bp_objective, fista, ista

pytestmark = pytest.mark.usefixtures("single_thread")

SPECS = [(4, 3, 2, 1), (5, 3, 1, 0), (6, 2, 1, 0)]  # odd and even kernels, a stride, a padding
SIZE = (13, 11)
LECTURE_MNIST = [(32, 7, 2, 0), (128, 5, 1, 0), (1024, 7, 1, 0)]  # 28 → 11 → 7 → 1


def _exact(dictionaries, sizes) -> float:
    """‖D₁⋯D_j‖₂² from the explicit matrix."""
    matrix = EffectiveDictionary(dictionaries, sizes).matrix()
    return float(torch.linalg.matrix_norm(matrix, ord=2) ** 2)


def _chain_norms(model: MLCSC, size) -> list[float]:
    sizes = model.layer_sizes(size)[:-1]
    dictionaries = list(model.dictionaries)
    return [_exact(dictionaries[: j + 1], sizes[: j + 1]) for j in range(model.num_layers)]


def _free_intermediate_layers(model: MLCSC, beta: float) -> MLCSC:
    with torch.no_grad():
        for threshold in model.thresholds[:-1]:
            threshold.zero_()
        model.thresholds[-1].fill_(beta)
    return model


# ----------------------------------------------------------------------------- the step rules


def test_chain_rule_divides_relative_steps_by_the_chain_norms():
    torch.manual_seed(0)
    model = MLCSC(2, SPECS, pursuit="ml_ista", n_iter=1, step_init=0.7, threshold_mode="soft")
    model = model.double().eval()
    assert model.step_rule == "chain"  # the default for signed codes
    model(torch.randn(1, 2, *SIZE, dtype=torch.float64))
    exact = _chain_norms(model, SIZE)
    estimates = model.lipschitz_constants.tolist()
    for estimate, truth in zip(estimates, exact, strict=True):
        assert abs(estimate - truth) <= 0.01 * truth
    compound = [float(c.detach()) for c in model.compound_steps()]
    rho = [float(r.detach()) for r in model.step_sizes]  # 0.7 as stored (float32 → float64)
    assert compound == pytest.approx([r / v for r, v in zip(rho, estimates, strict=True)], 1e-12)
    assert math.prod(float(c.detach()) for c in model.steps()) == pytest.approx(compound[-1])
    layers = model.layer_parameters(SIZE)  # thresholds after a step scale with the compound step
    scales = layers.step_threshold_scales(compound=True)
    assert [float(s.detach()) for s in scales] == pytest.approx(compound)
    with torch.no_grad():
        model.step_sizes[1].fill_(5.0)  # clamped to the stable range
    assert float(model.compound_steps()[1].detach()) == pytest.approx(1.99 / estimates[1])


def test_layer_rule_of_layered_bp_uses_each_layers_own_norm():
    torch.manual_seed(0)
    model = MLCSC(2, SPECS, pursuit="layered_bp", n_iter=1, step_init=0.5).double().eval()
    model(torch.randn(1, 2, *SIZE, dtype=torch.float64))
    sizes = model.layer_sizes(SIZE)
    for j, dictionary in enumerate(model.dictionaries):
        truth = _exact([dictionary], [sizes[j]])
        assert abs(float(model.lipschitz_constants[j]) - truth) <= 0.01 * truth
        step = float(model.steps()[j].detach())
        assert step == pytest.approx(0.5 / float(model.lipschitz_constants[j]))


def test_chain_norm_is_far_below_the_product_of_layer_norms_on_the_lecture_stack():
    # why per-layer steps crawl: the compound step 1/∏‖D_j‖² is much smaller than 1/‖D_eff‖²
    torch.manual_seed(0)
    model = MLCSC(1, LECTURE_MNIST, pursuit="ml_fista").eval()
    chain = model.refresh_lipschitz((28, 28))[-1]
    sizes = model.layer_sizes((28, 28))
    product = math.prod(float(d.lipschitz(sizes[j])) for j, d in enumerate(model.dictionaries))
    assert product / float(chain) > 10


@pytest.mark.parametrize(("pursuit", "reference"), [("ml_ista", ista), ("ml_fista", fista)])
def test_default_steps_make_ml_ista_and_ml_fista_ista_and_fista_on_d_eff(pursuit, reference):
    torch.manual_seed(0)
    model = MLCSC(1, SPECS, pursuit=pursuit, threshold_mode="soft", step_init=0.9)
    model = _free_intermediate_layers(model.double().eval(), 0.05)
    x = torch.randn(3, 1, *SIZE, dtype=torch.float64)
    sizes = model.layer_sizes(SIZE)[:-1]
    matrix = EffectiveDictionary(list(model.dictionaries), sizes).matrix()
    model.n_iter = 0
    start = model(x).detach()
    code_shape = start.shape[1:]
    for n_iter in (1, 2, 5, 30):
        model.n_iter = n_iter
        gamma = model(x).detach()
        step = float(model.step_sizes[-1].detach()) / float(model.lipschitz_constants[-1])
        expected = reference(
            DenseDictionary(matrix),
            x.flatten(1),
            0.05,
            max_iter=n_iter,
            tol=0.0,
            x0=start.flatten(1),
            step=step,
        )
        torch.testing.assert_close(gamma, expected.view(-1, *code_shape), rtol=1e-10, atol=1e-12)
    assert float((gamma - start).norm()) > 0.1 * float(start.norm())  # the iterations moved


@pytest.mark.slow
def test_ml_fista_converges_as_fast_as_fista_on_d_eff_on_the_lecture_mnist_stack():
    from mlcsc.data.mnist5k import _load_mnist5k

    torch.manual_seed(0)
    images, _ = _load_mnist5k()
    x = images[:4].double() / 255.0  # (4, 1, 28, 28) real digits
    lam = 0.2
    model = MLCSC(1, LECTURE_MNIST, pursuit="ml_fista", threshold_mode="soft").double().eval()
    model = _free_intermediate_layers(model, lam)
    sizes = model.layer_sizes((28, 28))[:-1]
    matrix = EffectiveDictionary(list(model.dictionaries), sizes).matrix()  # (784, 1024)
    effective = DenseDictionary(matrix)
    y = x.flatten(1)

    @torch.no_grad()
    def objective(codes):
        return float(bp_objective(effective, codes.flatten(1), y, lam).sum())

    model.n_iter = 0
    start = model(x).detach().flatten(1)
    exact_step = 1.0 / float(torch.linalg.matrix_norm(matrix, ord=2) ** 2)
    optimum = objective(fista(effective, y, lam, 2000, tol=0.0, x0=start, step=exact_step))
    # FISTA on the explicit D_eff with the exact step, counted from the same start
    needed = None
    previous, point, t = start, start, 1.0
    for n_iter in range(1, 2000):
        new = ista(effective, y, lam, 1, tol=0.0, x0=point, step=exact_step)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        point = new + ((t - 1) / t_next) * (new - previous)
        previous, t = new, t_next
        if objective(new) - optimum <= 1e-4 * optimum:
            needed = n_iter
            break
    assert needed is not None and needed > 10
    model.n_iter = math.floor(1.2 * needed)
    gap = (objective(model(x).detach()) - optimum) / optimum
    assert gap <= 1e-4, (needed, gap)


# ------------------------------------------------------------------ safe Lipschitz estimates


def _train_a_little(model: MLCSC, x: torch.Tensor, steps: int = 5) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        gamma = model(x)
        loss = (x - model.reconstruct(gamma, x.shape[-2:])).pow(2).mean() + gamma.abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _layer_norms(model: MLCSC, size) -> list[float]:
    sizes = model.layer_sizes(size)
    return [_exact([d], [sizes[j]]) for j, d in enumerate(model.dictionaries)]


def _check_used_steps_are_stable(model: MLCSC, size) -> None:
    """Every estimate within 1 % of the exact norm of its operator, every step below 2/L."""
    chain = model.step_rule == "chain"
    exact = _chain_norms(model, size) if chain else _layer_norms(model, size)
    used = model.compound_steps() if chain else model.steps()
    for j, truth in enumerate(exact):
        estimate = float(model.lipschitz_constants[j])
        assert abs(estimate - truth) <= 0.01 * truth, (j, estimate, truth)
        assert float(used[j].detach()) * truth < 2.0


@pytest.mark.parametrize("step_rule", ["chain", "layer"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_resumed_model_on_a_new_image_size_uses_converged_stable_steps(tmp_path, mode, step_rule):
    options = {"pursuit": "ml_fista", "n_iter": 3, "step_init": 1.99, "step_rule": step_rule}
    torch.manual_seed(0)
    model = MLCSC(1, SPECS, **options).double()
    _train_a_little(model, torch.rand(8, 1, 17, 15, dtype=torch.float64))
    torch.save(model.state_dict(), tmp_path / "model.pt")

    torch.manual_seed(1)  # another random start, whose estimates must not leak into the resume
    resumed = MLCSC(1, SPECS, **options).double()
    resumed(torch.rand(2, 1, 17, 15, dtype=torch.float64))
    resumed.load_state_dict(torch.load(tmp_path / "model.pt"))
    resumed.train(mode == "train")
    new_size = (23, 19)
    resumed(torch.rand(2, 1, *new_size, dtype=torch.float64))
    _check_used_steps_are_stable(resumed, new_size)

    resumed.n_iter = 4  # a change of n_iter re-estimates as well
    with torch.no_grad():
        resumed.dictionaries[1].weight.mul_(1.5)  # moved weights, seen at the next pass
        resumed.lipschitz_constants.fill_(1e-3)  # stale values that must not be used
    resumed(torch.rand(2, 1, *new_size, dtype=torch.float64))
    _check_used_steps_are_stable(resumed, new_size)


def test_weights_moved_in_evaluation_are_re_estimated_before_the_next_pass():
    torch.manual_seed(0)
    model = MLCSC(1, SPECS, pursuit="ml_ista", n_iter=2, threshold_mode="soft").double().eval()
    x = torch.rand(2, 1, *SIZE, dtype=torch.float64)
    model(x)
    with torch.no_grad():
        model.dictionaries[0].weight.mul_(2.0)  # ‖D₁⋯D_j‖² grows fourfold
    model(x)
    _check_used_steps_are_stable(model, SIZE)


def test_replaced_weights_in_training_are_re_estimated_after_invalidate_lipschitz():
    torch.manual_seed(0)
    model = MLCSC(1, SPECS, pursuit="ml_ista", n_iter=2, threshold_mode="soft").double().train()
    x = torch.rand(2, 1, *SIZE, dtype=torch.float64)
    model(x)
    with torch.no_grad():  # new dictionaries, as a re-initialisation writes them
        for dictionary in model.dictionaries:
            dictionary.weight.copy_(3.0 * torch.randn_like(dictionary.weight))
    model.invalidate_lipschitz()
    model(x)  # training mode: estimated to convergence, not tracked by one Lanczos step
    _check_used_steps_are_stable(model, SIZE)


# ----------------------------------------------------------------------------- the projection


@pytest.mark.parametrize("mode", ["soft", "soft_nonneg"])
def test_projection_is_fista_on_d_eff_then_the_model_codes(mode):
    torch.manual_seed(0)
    model = MLCSC(1, SPECS, pursuit="projection", n_iter=25, threshold_mode=mode)
    model = model.double().eval()
    with torch.no_grad():
        for beta in model.thresholds:
            beta.uniform_(0.02, 0.1)
    x = torch.randn(3, 1, *SIZE, dtype=torch.float64)
    codes = model(x, return_all=True)
    sizes = model.layer_sizes(SIZE)[:-1]
    matrix = EffectiveDictionary(list(model.dictionaries), sizes).matrix()
    model.n_iter = 0
    start = model(x).detach()  # Γ_K of the forward pass (layered thresholding)
    beta = model.thresholds[-1].detach().repeat_interleave(start[0, 0].numel())  # per atom
    expected = fista(
        DenseDictionary(matrix),
        x.flatten(1),
        beta,
        max_iter=25,
        tol=0.0,
        x0=start.flatten(1),
        nonneg=mode == "soft_nonneg",
        step=1.0 / float(model.lipschitz_constants[-1]),
    )
    torch.testing.assert_close(codes[-1].detach().flatten(1), expected, rtol=1e-10, atol=1e-12)
    for j in range(1, model.num_layers):  # Γ_{j−1} = D_jΓ_j
        rebuilt = model.dictionaries[j].synthesize(codes[j], sizes[j])
        torch.testing.assert_close(codes[j - 1], rebuilt)
    assert float((codes[-1].detach() - start).norm()) > 0.1 * float(start.norm())
