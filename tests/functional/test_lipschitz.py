"""Lipschitz constants: Lanczos (largest_eigenvalue), the size-specific estimate of a
ConvDictionary, and the certified all-sizes bound (conv_lipschitz_bound, polyphase_filters)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mlcsc import ConvDictionary
from mlcsc.functional import (
    conv_lipschitz_bound,
    largest_eigenvalue,
    polyphase_filters,
    power_iteration,
)

pytestmark = pytest.mark.usefixtures("single_thread")

STRIDES, PADDINGS = [1, 2, 3], [0, 1, 2]
SIZES = [(13, 11), (12, 12), (9, 15)]  # odd, even, non-square


def _exact_norm_squared(dictionary: ConvDictionary, input_size: tuple[int, int]) -> float:
    """``‖D‖₂²`` from the explicit matrix: one column per synthesised unit code."""
    code_size = dictionary.output_size(input_size)
    n = dictionary.num_atoms * code_size[0] * code_size[1]
    units = torch.eye(n, dtype=torch.float64).view(n, dictionary.num_atoms, *code_size)
    with torch.no_grad():
        columns = dictionary.synthesize(units, input_size).reshape(n, -1)
    return float(torch.linalg.matrix_norm(columns, ord=2) ** 2)


def _converged_norm_squared(dictionary: ConvDictionary, input_size: tuple[int, int]) -> float:
    """``‖D‖₂²`` on images too large for the explicit matrix: Lanczos run to convergence (a
    Rayleigh quotient, so it can only be below the truth)."""
    return float(dictionary.lipschitz(input_size, n_iter=400, tol=0.0, warm_start=False))


def _spd_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    n = eigenvalues.numel()
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))
    return q @ torch.diag(eigenvalues) @ q.T


# ------------------------------------------------------------------------- largest_eigenvalue


@pytest.mark.parametrize("krylov_dim", [6, 40])
def test_largest_eigenvalue_resolves_clustered_top_eigenvalues(krylov_dim):
    # three top eigenvalues 1e-4 apart over a dense bulk: slow for power iteration; a small
    # basis (6) exercises the thick restarts
    generator = torch.Generator().manual_seed(1)
    bulk = torch.rand(57, dtype=torch.float64, generator=generator) * 9.9
    spectrum = torch.cat(
        [torch.tensor([10.0, 10.0 - 1e-4, 10.0 - 2e-4], dtype=torch.float64), bulk]
    )
    A = _spd_with_spectrum(spectrum, seed=2)
    expected = float(torch.linalg.eigvalsh(A)[-1])
    x0 = torch.randn(60, dtype=torch.float64, generator=generator)
    value, vector = largest_eigenvalue(
        lambda v: A @ v, x0, n_iter=400, tol=1e-12, krylov_dim=krylov_dim
    )
    assert value.ndim == 0 and vector.shape == x0.shape
    assert float(value) == pytest.approx(expected, rel=1e-9)
    assert float(value) <= expected * (1 + 1e-12)
    assert float(vector.norm()) == pytest.approx(1.0, abs=1e-12)
    # a Ritz vector of the cluster: its Rayleigh quotient is the returned value
    assert float(vector @ A @ vector) == pytest.approx(float(value), rel=1e-12)


def test_largest_eigenvalue_beats_power_iteration_and_stays_below_lambda_max():
    """Same start, same number of applications: Lanczos maximises the Rayleigh quotient over
    the whole Krylov space, which contains the power iterate."""
    A = _spd_with_spectrum(torch.linspace(0.0, 1.0, 80, dtype=torch.float64) ** 0.5, seed=3)
    top = float(torch.linalg.eigvalsh(A)[-1])
    x0 = torch.randn(80, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for n_iter in (1, 2, 3, 5, 10, 30):
        lanczos, _ = largest_eigenvalue(lambda v: A @ v, x0, n_iter=n_iter, tol=0.0)
        power, _ = power_iteration(lambda v: A @ v, x0, n_iter=n_iter, tol=0.0)
        assert float(power) <= float(lanczos) * (1 + 1e-12), n_iter
        assert float(lanczos) <= top * (1 + 1e-12), n_iter
    assert float(lanczos) == pytest.approx(top, rel=1e-4)  # 30 applications
    assert float(power) < top * (1 - 1e-2)  # while power iteration is still 1 % off


def test_largest_eigenvalue_stops_at_tol_and_counts_applications():
    A = _spd_with_spectrum(torch.linspace(1.0, 2.0, 50, dtype=torch.float64), seed=5)
    calls = []

    def operator(v):
        calls.append(1)
        return A @ v

    x0 = torch.ones(50, dtype=torch.float64)
    largest_eigenvalue(operator, x0, n_iter=7, tol=0.0)
    assert len(calls) == 7
    calls.clear()
    value, _ = largest_eigenvalue(operator, x0, n_iter=200, tol=1e-3)
    loose = len(calls)
    calls.clear()
    largest_eigenvalue(operator, x0, n_iter=200, tol=1e-12)
    assert loose < len(calls) <= 200
    assert float(value) == pytest.approx(2.0, rel=1e-3)


def test_largest_eigenvalue_accepts_tensor_shaped_vectors_and_degenerate_operators():
    x0 = torch.randn(2, 3, 4, dtype=torch.float64)
    value, vector = largest_eigenvalue(lambda v: 3.0 * v, x0)
    assert float(value) == pytest.approx(3.0, rel=1e-12)  # invariant after one application
    assert vector.shape == x0.shape
    value, _ = largest_eigenvalue(torch.zeros_like, x0)
    assert float(value) == 0.0
    value, _ = largest_eigenvalue(lambda v: 2.0 * v, torch.tensor([5.0], dtype=torch.float64))
    assert float(value) == pytest.approx(2.0)


def test_largest_eigenvalue_warm_start_from_its_vector_is_immediate():
    A = _spd_with_spectrum(torch.linspace(0.0, 1.0, 40, dtype=torch.float64), seed=6)
    x0 = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    value, vector = largest_eigenvalue(lambda v: A @ v, x0, n_iter=100, tol=0.0)
    again, _ = largest_eigenvalue(lambda v: A @ v, vector, n_iter=1)
    assert float(again) == pytest.approx(float(value), rel=1e-10)


def test_largest_eigenvalue_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_iter"):
        largest_eigenvalue(lambda v: v, torch.ones(3), n_iter=0)
    with pytest.raises(ValueError, match="krylov_dim"):
        largest_eigenvalue(lambda v: v, torch.ones(3), krylov_dim=1)
    with pytest.raises(ValueError, match="non-zero"):
        largest_eigenvalue(lambda v: v, torch.zeros(3))
    with pytest.raises(ValueError, match="non-zero"):
        largest_eigenvalue(lambda v: v, torch.tensor([1.0, math.nan]))


# ------------------------------------------------------------- lipschitz(size): the exact norm


@pytest.mark.parametrize(
    ("stride", "padding", "size"), list(itertools.product(STRIDES, PADDINGS, SIZES))
)
def test_lipschitz_at_a_size_matches_the_explicit_matrix_from_a_cold_start(stride, padding, size):
    dictionary = ConvDictionary(2, 3, 4, stride=stride, padding=padding).double()
    exact = _exact_norm_squared(dictionary, size)
    estimate = float(dictionary.lipschitz(size, warm_start=False))  # default arguments
    assert estimate == pytest.approx(exact, rel=1e-6)  # the requirement is 1 %
    assert estimate <= exact * (1 + 1e-10)  # a Rayleigh quotient: never above


def test_lipschitz_of_the_mnist_first_layer_converges_where_power_iteration_did_not():
    # 32 atoms 6×6, stride 2, on 28×28 digits: 20 applications from a cold start
    dictionary = ConvDictionary(1, 32, 6, stride=2).double()
    exact = _converged_norm_squared(dictionary, (28, 28))
    estimate = float(dictionary.lipschitz((28, 28), n_iter=20, warm_start=False))
    assert exact * (1 - 1e-2) <= estimate <= exact * (1 + 1e-10)
    shape = (1, 32, *dictionary.output_size((28, 28)))
    x0 = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    power, _ = power_iteration(
        lambda v: dictionary.analyze(dictionary.synthesize(v, (28, 28))), x0, n_iter=20, tol=0.0
    )
    assert float(power) < exact * (1 - 2e-2)


def test_lipschitz_warm_start_tracks_a_moving_dictionary():
    dictionary = ConvDictionary(2, 3, 3, stride=2).double()
    size = (13, 11)
    cold = float(dictionary.lipschitz(size, warm_start=False))
    assert float(dictionary.lipschitz(size, n_iter=2)) == pytest.approx(cold, rel=1e-8)
    fresh = ConvDictionary(2, 3, 3, stride=2).double()
    with torch.no_grad():
        dictionary.weight.add_(0.01 * torch.randn_like(dictionary.weight))
        fresh.weight.copy_(dictionary.weight)
    truth = _exact_norm_squared(dictionary, size)
    warm = float(dictionary.lipschitz(size, n_iter=3))  # from the stored Ritz vector
    cold = float(fresh.lipschitz(size, n_iter=3, warm_start=False))
    assert warm == pytest.approx(truth, rel=1e-3)
    assert abs(warm - truth) < abs(cold - truth)


def test_lipschitz_needs_a_size_for_the_operator_and_returns_detached_scalars():
    dictionary = ConvDictionary(1, 2, 3)
    with pytest.raises(ValueError, match="signal size"):
        dictionary._code_shape(None)
    for value in (dictionary.lipschitz((7, 7)), dictionary.lipschitz()):
        assert value.ndim == 0 and not value.requires_grad
        assert value.dtype == dictionary.weight.dtype


# ------------------------------------------------------------ polyphase form of the strides


@pytest.mark.parametrize(("kernel", "stride"), [(6, 2), (5, 3), (4, 1), (2, 3), (3, 2)])
def test_polyphase_filters_turn_the_strided_synthesis_into_a_stride_one_synthesis(kernel, stride):
    weight = torch.randn(4, 3, kernel, kernel, dtype=torch.float64)
    codes = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    strided = F.conv_transpose2d(codes, weight, stride=stride)  # (B, c, H, W)
    phases = F.conv_transpose2d(codes, polyphase_filters(weight, stride))  # (B, c s², H', W')
    # interleave the s² phases back into pixels, drop the all-zero tail, compare
    batch, channels, height, width = phases.shape
    pixels = phases.view(batch, 3, stride, stride, height, width).permute(0, 1, 4, 2, 5, 3)
    pixels = pixels.reshape(batch, 3, height * stride, width * stride)
    h, w = strided.shape[-2:]
    torch.testing.assert_close(pixels[..., :h, :w], strided, rtol=0, atol=1e-12)
    assert not pixels[..., h:, :].any() and not pixels[..., :, w:].any()
    assert polyphase_filters(weight, stride).shape[-1] == -(-kernel // stride)


# ----------------------------------------------------------- lipschitz(): the certified bound


@pytest.mark.parametrize(
    ("stride", "padding", "size"),
    list(itertools.product(STRIDES, PADDINGS, [*SIZES, "smallest", (7, 19)])),
)
def test_certified_bound_is_never_below_the_exact_norm(stride, padding, size):
    dictionary = ConvDictionary(2, 3, 4, stride=stride, padding=padding).double()
    if size == "smallest":  # a single code position
        size = (max(1, 4 - 2 * padding),) * 2
    bound = float(dictionary.lipschitz())
    assert bound >= _exact_norm_squared(dictionary, size)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 2), (2, 1), (3, 0), (3, 2)])
def test_certified_bound_is_within_five_percent_of_the_norm_on_a_large_image(stride, padding):
    dictionary = ConvDictionary(2, 3, 3, stride=stride, padding=padding).double()
    large = _converged_norm_squared(dictionary, (64, 72))
    bound = float(dictionary.lipschitz())
    assert large <= bound <= 1.05 * large


def test_certified_bound_is_never_below_a_fine_frequency_grid():
    """The supremum of the frequency response, sampled independently on a 96×96 grid of the
    (stride-1) synthesis: the bound must exceed every sample, by at most rtol plus the grid's
    own shortfall."""
    weight = torch.randn(5, 3, 5, 5, dtype=torch.float64)
    response = torch.fft.fft2(weight, s=(96, 96)).permute(2, 3, 1, 0)  # (ω, c, m)
    grid = float(torch.linalg.matrix_norm(response, ord=2).max() ** 2)
    bound = float(conv_lipschitz_bound(weight, 1, rtol=1e-3))
    assert grid <= bound <= grid * 1.01


def test_certified_bound_finds_a_sharp_peak_between_frequency_samples():
    """One 8×8 filter whose response peaks sharply off any grid: with a tiny ``rtol`` the bound
    must still cover the supremum, which the curvature argument alone guarantees."""
    t = torch.arange(8, dtype=torch.float64)
    weight = (torch.cos(1.2345 * t)[:, None] * torch.cos(2.3456 * t)[None, :]).view(1, 1, 8, 8)

    def response(omega1: torch.Tensor, omega2: torch.Tensor) -> torch.Tensor:
        phase = torch.exp(
            -1j * (omega1[..., None, None] * t[:, None] + omega2[..., None, None] * t)
        )
        return (phase * weight[0, 0]).sum((-2, -1)).abs() ** 2

    # the supremum, independently: a fine grid, then zooming in on its best point
    values = torch.fft.fft2(weight[0, 0], s=(512, 512)).abs() ** 2
    index = int(values.argmax())
    centre = torch.tensor([index // 512, index % 512], dtype=torch.float64) * 2 * math.pi / 512
    step = 2 * math.pi / 512
    for _ in range(30):
        offsets = torch.linspace(-step, step, 21, dtype=torch.float64)
        grid1, grid2 = torch.meshgrid(centre[0] + offsets, centre[1] + offsets, indexing="ij")
        local = response(grid1, grid2)
        best = int(local.argmax())
        centre = torch.stack([grid1.flatten()[best], grid2.flatten()[best]])
        step /= 4
    supremum = float(response(centre[0], centre[1]))
    bound = float(conv_lipschitz_bound(weight, 1, rtol=1e-7))
    assert supremum <= bound <= supremum * (1 + 1e-5)


def test_certified_bound_of_a_rectangular_filter_bank():
    weight = torch.randn(3, 2, 3, 5, dtype=torch.float64)
    bound = float(conv_lipschitz_bound(weight, 2))
    for size in [(4, 3), (9, 12), (15, 8)]:
        units = torch.eye(3 * size[0] * size[1], dtype=torch.float64).view(-1, 3, *size)
        columns = F.conv_transpose2d(units, weight, stride=2).flatten(1)
        assert bound >= float(torch.linalg.matrix_norm(columns, ord=2) ** 2)


def test_certified_bound_is_exact_when_the_atoms_do_not_overlap():
    # k ≤ s: every code position owns its own pixels, DᵀD is block diagonal
    dictionary = ConvDictionary(2, 5, 2, stride=3).double()
    exact = _exact_norm_squared(dictionary, (9, 9))
    assert float(dictionary.lipschitz()) == pytest.approx(exact, rel=1e-8)
    assert float(dictionary.lipschitz()) >= exact


def test_certified_bound_on_a_small_budget_is_looser_but_still_certified():
    dictionary = ConvDictionary(3, 24, 5).double()
    weight = dictionary.weight.detach()
    full = float(conv_lipschitz_bound(weight))
    large = _converged_norm_squared(dictionary, (32, 32))
    # one coarse pass; one pass at the budget's resolution; a pass after some refinement
    for budget in (1, 300, 900):
        cheap = float(conv_lipschitz_bound(weight, max_evaluations=budget))
        assert cheap >= large
        assert cheap >= full / (1 + 5e-3) * (1 - 1e-12)


def test_certified_bound_of_the_mnist_stack_is_above_the_norm_at_28_by_28():
    # the layers of the MNIST architecture, at the signal size each one meets
    sizes = [(28, 28), (12, 12), (4, 4)]
    layers = [ConvDictionary(1, 32, 6, 2), ConvDictionary(32, 64, 6, 2), ConvDictionary(64, 512, 4)]
    for j, (dictionary, size) in enumerate(zip(layers, sizes, strict=True)):
        bound = float(dictionary.lipschitz())
        assert bound >= float(dictionary.lipschitz(size, warm_start=False))
        if j < 2:  # and on a larger image than the stack gives them
            assert bound >= float(dictionary.lipschitz((28, 28), warm_start=False))


def test_certified_bound_keeps_dtype_device_and_rounds_upwards():
    weight = torch.randn(4, 2, 3, 3)
    bound32 = conv_lipschitz_bound(weight, 2)
    bound64 = conv_lipschitz_bound(weight.double(), 2)
    assert bound32.dtype == torch.float32 and bound32.ndim == 0
    assert bound32.device == weight.device and not bound32.requires_grad
    assert float(bound32) >= float(bound64)  # rounded towards +∞, never below
    assert float(conv_lipschitz_bound(torch.zeros(3, 2, 4, 4))) == 0.0


def test_certified_bound_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        conv_lipschitz_bound(torch.randn(3, 3, 3))
    with pytest.raises(ValueError, match="stride"):
        conv_lipschitz_bound(torch.randn(2, 1, 3, 3), 0)
    with pytest.raises(ValueError, match="non-finite"):
        conv_lipschitz_bound(torch.full((2, 1, 3, 3), math.nan))
    with pytest.raises(ValueError, match="rtol"):
        conv_lipschitz_bound(torch.randn(2, 1, 3, 3), rtol=0.0)
