"""Thresholds, power iteration and convolutional synthesis/analysis (mlcsc.functional)."""

from __future__ import annotations

import pytest
import torch

from mlcsc.functional import (
    THRESHOLD_MODES,
    conv_analysis,
    conv_synthesis,
    hard_threshold,
    lanczos_step,
    power_iteration,
    soft_nonneg_threshold,
    soft_threshold,
    threshold,
)

pytestmark = pytest.mark.usefixtures("single_thread")

# -------------------------------------------------------------------------------------- thresholds


def _closed_forms(z: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """The three operators written out entry by entry, independently of the library."""
    flat = z.flatten().tolist()
    hard = [v if abs(v) > beta else 0.0 for v in flat]
    soft = [(v - beta if v > beta else v + beta if v < -beta else 0.0) for v in flat]
    soft_nonneg = [max(v - beta, 0.0) for v in flat]
    return {
        name: torch.tensor(values, dtype=z.dtype).view_as(z)
        for name, values in (("hard", hard), ("soft", soft), ("soft_nonneg", soft_nonneg))
    }


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.25])
def test_thresholds_match_closed_forms(beta):
    z = torch.randn(3, 5, 7, dtype=torch.float64) * 2
    expected = _closed_forms(z, beta)
    torch.testing.assert_close(hard_threshold(z, beta), expected["hard"], rtol=0, atol=0)
    torch.testing.assert_close(soft_threshold(z, beta), expected["soft"], rtol=0, atol=1e-15)
    torch.testing.assert_close(
        soft_nonneg_threshold(z, beta), expected["soft_nonneg"], rtol=0, atol=1e-15
    )
    for mode in THRESHOLD_MODES:
        torch.testing.assert_close(threshold(z, beta, mode), expected[mode], rtol=0, atol=1e-15)


def test_soft_nonneg_is_relu_of_shifted_input():
    z = torch.randn(4, 3, 6, 5)
    beta = 0.4
    torch.testing.assert_close(soft_nonneg_threshold(z, beta), torch.relu(z - beta))
    # the CNN form: ReLU(z + b) with bias b = −β
    torch.testing.assert_close(threshold(z, torch.tensor(beta)), torch.relu(z + (-beta)))


def test_threshold_of_zero_beta_is_identity_or_relu():
    z = torch.randn(2, 3, 4)
    torch.testing.assert_close(soft_threshold(z, 0.0), z)
    torch.testing.assert_close(hard_threshold(z, 0.0), z)
    torch.testing.assert_close(soft_nonneg_threshold(z, 0.0), torch.relu(z))


@pytest.mark.parametrize("mode", THRESHOLD_MODES)
def test_per_channel_thresholds_broadcast_along_dim_1(mode):
    z = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    beta = torch.tensor([0.1, 0.7, 1.5], dtype=torch.float64)
    out = threshold(z, beta, mode)
    assert out.shape == z.shape
    for c in range(3):
        torch.testing.assert_close(out[:, c], threshold(z[:, c], float(beta[c]), mode))


def test_per_channel_threshold_on_two_dimensional_codes():
    z = torch.randn(6, 4, dtype=torch.float64)
    beta = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    expected = torch.sign(z) * torch.clamp(z.abs() - beta.view(1, 4), min=0)
    torch.testing.assert_close(soft_threshold(z, beta), expected)


def test_soft_threshold_is_prox_of_l1_by_brute_force():
    """S_β(z) = argmin_u ½(u − z)² + β|u|, checked by minimising on a fine 1-D grid."""
    grid = torch.linspace(-4, 4, 80001, dtype=torch.float64)  # spacing 1e-4
    for z, beta in [(2.3, 0.5), (-1.7, 0.4), (0.3, 0.8), (-0.2, 0.1), (3.0, 0.0), (0.0, 1.0)]:
        cost = 0.5 * (grid - z) ** 2 + beta * grid.abs()
        brute = grid[cost.argmin()]
        prox = soft_threshold(torch.tensor([z], dtype=torch.float64), beta)[0]
        assert abs(float(prox - brute)) <= 1e-4, (z, beta, float(prox), float(brute))


def test_soft_nonneg_threshold_is_prox_of_l1_plus_nonnegativity_by_brute_force():
    grid = torch.linspace(0, 4, 40001, dtype=torch.float64)  # the constraint u ≥ 0
    for z, beta in [(2.3, 0.5), (-1.7, 0.4), (0.3, 0.8), (0.35, 0.1)]:
        cost = 0.5 * (grid - z) ** 2 + beta * grid
        brute = grid[cost.argmin()]
        prox = soft_nonneg_threshold(torch.tensor([z], dtype=torch.float64), beta)[0]
        assert abs(float(prox - brute)) <= 1e-4


def _away_from_kinks(shape, beta, margin=0.1):
    """Random float64 values whose |z| and z stay at least ``margin`` away from 0 and ±β."""
    z = torch.randn(*shape, dtype=torch.float64) * 2
    bad = (z.abs() < margin) | ((z.abs() - beta).abs() < margin)
    z[bad] = beta + 0.5  # a safe value
    return z


@pytest.mark.parametrize("operator", [soft_threshold, soft_nonneg_threshold])
def test_threshold_gradcheck_in_input_and_scalar_threshold(operator):
    beta = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    z = _away_from_kinks((2, 3, 4), 0.6).requires_grad_()
    assert torch.autograd.gradcheck(operator, (z, beta))


@pytest.mark.parametrize("operator", [soft_threshold, soft_nonneg_threshold])
def test_threshold_gradcheck_in_input_and_per_channel_threshold(operator):
    beta = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 2
    b = beta.view(1, 3, 1, 1).expand_as(z)
    bad = (z.abs() < 0.1) | ((z.abs() - b).abs() < 0.1)
    z[bad] = (b + 0.5)[bad]
    z.requires_grad_()
    assert torch.autograd.gradcheck(operator, (z, beta.clone().requires_grad_()))


def test_soft_threshold_gradient_in_threshold_is_minus_sign_on_support():
    z = torch.tensor([2.0, -3.0, 0.2, -0.1], dtype=torch.float64)
    beta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    soft_threshold(z, beta).sum().backward()
    assert float(beta.grad) == pytest.approx(-1.0 + 1.0)  # +2 → −1, −3 → +1, others 0
    beta.grad = None
    soft_nonneg_threshold(z, beta).sum().backward()
    assert float(beta.grad) == pytest.approx(-1.0)


def test_threshold_rejects_matrix_threshold():
    z = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"scalar or a per-channel vector.*got shape \(3, 1\)"):
        soft_threshold(z, torch.ones(3, 1))


@pytest.mark.parametrize("mode", THRESHOLD_MODES)
def test_threshold_rejects_wrong_channel_count(mode):
    z = torch.randn(2, 3, 4)
    with pytest.raises(ValueError) as info:
        threshold(z, torch.ones(5), mode)
    message = str(info.value)
    assert "(5,)" in message and "5 channels" in message  # expected
    assert "(2, 3, 4)" in message  # got


def test_per_channel_threshold_rejects_one_dimensional_input():
    with pytest.raises(ValueError, match=r"got input of shape \(4,\)"):
        soft_threshold(torch.randn(4), torch.ones(4))


def test_threshold_rejects_unknown_mode_and_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        threshold(torch.randn(3), 0.1, "softish")
    message = str(info.value)
    assert "'softish'" in message
    for mode in THRESHOLD_MODES:
        assert mode in message


# --------------------------------------------------------------------------------- power iteration


def test_power_iteration_recovers_top_eigenvalue_of_spd_matrix():
    generator = torch.Generator().manual_seed(3)
    B = torch.randn(13, 13, dtype=torch.float64, generator=generator)
    A = B @ B.T + 0.1 * torch.eye(13, dtype=torch.float64)
    expected = torch.linalg.eigvalsh(A)[-1]
    x0 = torch.randn(13, dtype=torch.float64, generator=generator)
    value, vector = power_iteration(lambda v: A @ v, x0, n_iter=2000, tol=1e-14)
    assert value.ndim == 0
    assert float(value) == pytest.approx(float(expected), rel=1e-9)
    assert float(vector.norm()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(A @ vector, value * vector, atol=1e-5 * float(expected), rtol=0)


def test_power_iteration_estimate_is_a_lower_bound():
    """The Rayleigh quotient of a unit vector never exceeds λ_max."""
    generator = torch.Generator().manual_seed(4)
    B = torch.randn(9, 11, dtype=torch.float64, generator=generator)
    A = B @ B.T
    top = float(torch.linalg.eigvalsh(A)[-1])
    for n_iter in (1, 2, 5, 20):
        x0 = torch.randn(9, dtype=torch.float64, generator=generator)
        value, _ = power_iteration(lambda v: A @ v, x0, n_iter=n_iter, tol=0.0)
        assert float(value) <= top * (1 + 1e-12)


def test_power_iteration_accepts_tensor_shaped_vectors_and_zero_operator():
    x0 = torch.randn(2, 3, 4, dtype=torch.float64)
    value, vector = power_iteration(lambda v: 3.0 * v, x0, n_iter=5)
    assert float(value) == pytest.approx(3.0)
    assert vector.shape == x0.shape
    value, _ = power_iteration(torch.zeros_like, x0, n_iter=5)
    assert float(value) == 0.0


def test_power_iteration_rejects_zero_iterations():
    with pytest.raises(ValueError, match="n_iter"):
        power_iteration(lambda v: v, torch.ones(3), n_iter=0)


def test_lanczos_step_is_the_two_dimensional_rayleigh_ritz_value():
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(30, 30, dtype=torch.float64, generator=generator))
    spectrum = torch.linspace(0.0, 4.0, 30, dtype=torch.float64)
    matrix = basis @ torch.diag(spectrum) @ basis.T

    def apply(u):
        return matrix @ u

    v = torch.randn(30, dtype=torch.float64, generator=generator)
    value, vector = lanczos_step(apply, v)
    krylov, _ = torch.linalg.qr(torch.stack([v, matrix @ v], dim=1))  # span{v, Av}
    ritz = torch.linalg.eigvalsh(krylov.T @ matrix @ krylov)[-1]
    assert float(value) == pytest.approx(float(ritz), rel=1e-12)
    assert float(vector.norm()) == pytest.approx(1.0)
    assert float(vector @ matrix @ vector) == pytest.approx(float(value), rel=1e-12)
    # restarted from its own vector it climbs to λ_max and stays there (a converged vector
    # must not be spoiled by the rounding noise of its residual: float32 here)
    gapped = basis @ torch.diag(torch.cat([spectrum[:-1] / 2, spectrum[-1:]])) @ basis.T
    a32, u = gapped.float(), v.float()
    values = []
    for _ in range(100):
        value, u = lanczos_step(lambda w: a32 @ w, u)
        values.append(float(value))
    assert values[-1] == pytest.approx(4.0, rel=1e-5)
    assert min(values[20:]) == pytest.approx(4.0, rel=1e-5)


# ------------------------------------------------------------------------------------ convolutions


def test_conv_synthesis_is_adjoint_of_conv_analysis():
    weight = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    x = torch.randn(2, 2, 13, 11, dtype=torch.float64)
    codes = torch.randn(2, 4, 7, 6, dtype=torch.float64)  # ⌊(13 + 2 − 3)/2⌋ + 1 = 7, 6
    assert conv_analysis(x, weight, 2, 1).shape == codes.shape
    lhs = (conv_synthesis(codes, weight, 2, 1, output_size=(13, 11)) * x).sum()
    rhs = (codes * conv_analysis(x, weight, 2, 1)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 3])
def test_single_position_convolutions_are_matrix_products_with_the_same_gradients(
    stride, channels_last
):
    # a code of spatial size 1×1 (the last layer of the MNIST stack) takes the matrix-product
    # path; it must be the convolution itself, values and gradients, and stay its adjoint —
    # also for filters and signals stored channels-last, whose rows it reads in (h, w, c) order
    layout = torch.channels_last if channels_last else torch.contiguous_format
    weight = torch.randn(6, 3, 4, 4, dtype=torch.float64).to(memory_format=layout)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64).to(memory_format=layout)
    weight.requires_grad_()
    x.requires_grad_()
    codes = torch.randn(5, 6, 1, 1, dtype=torch.float64, requires_grad=True)
    inputs = (x, codes, weight)
    fast = [conv_analysis(x, weight, stride), conv_synthesis(codes, weight, stride)]
    plain = [
        torch.nn.functional.conv2d(x, weight, stride=stride),
        torch.nn.functional.conv_transpose2d(codes, weight, stride=stride),
    ]
    for a, b in zip(fast, plain, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        probe = torch.randn_like(b)
        got = torch.autograd.grad((a * probe).sum(), inputs, allow_unused=True)
        want = torch.autograd.grad((b * probe).sum(), inputs, allow_unused=True)
        for g, w in zip(got, want, strict=True):
            assert (g is None) == (w is None)
            if w is not None:
                torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    signal = conv_synthesis(codes, weight, stride, output_size=(4, 4))
    assert signal.shape == (5, 3, 4, 4)
    assert signal.is_contiguous(memory_format=layout)  # the layout of the filters
    assert torch.autograd.gradcheck(lambda c, w: conv_synthesis(c, w, stride), (codes, weight))
    assert torch.autograd.gradcheck(lambda v, w: conv_analysis(v, w, stride), (x, weight))


@pytest.mark.parametrize(
    ("channels", "kernel", "stride", "padding", "size"),
    [(1, 5, 2, 0, 28), (3, 4, 2, 1, 32), (1, 3, 1, 1, 9), (2, 3, 3, 0, 14)],
)
def test_thin_filter_banks_without_autograd_synthesise_by_fold(
    channels, kernel, stride, padding, size, monkeypatch
):
    # without autograd a bank of ≤ 64 weights per filter synthesises as a matrix product and
    # fold: the same numbers as the transposed convolution, at every output size in the stride
    # window
    weight = torch.randn(8, channels, kernel, kernel, dtype=torch.float64)
    x = torch.randn(3, channels, size, size, dtype=torch.float64)
    with torch.no_grad():
        codes = conv_analysis(x, weight, stride, padding)
        want = torch.nn.functional.conv2d(x, weight, stride=stride, padding=padding)
        torch.testing.assert_close(codes, want, rtol=1e-12, atol=1e-12)
        smallest = (codes.shape[-1] - 1) * stride - 2 * padding + kernel
        for out in range(smallest, smallest + stride):
            got = conv_synthesis(codes, weight, stride, padding, output_size=(out, out))
            plain = torch.nn.functional.conv_transpose2d(
                codes, weight, stride=stride, padding=padding, output_padding=out - smallest
            )
            torch.testing.assert_close(got, plain, rtol=1e-12, atol=1e-12)
    folds = []
    fold = torch.nn.functional.fold
    monkeypatch.setattr(
        torch.nn.functional, "fold", lambda *a, **k: folds.append(1) or fold(*a, **k)
    )
    with torch.no_grad():
        conv_synthesis(codes, weight, stride, padding)
    assert folds  # the unfolded path ran
    conv_synthesis(codes.requires_grad_(), weight, stride, padding)
    assert len(folds) == 1  # with autograd: the convolution


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "size"),
    [(6, 2, 0, (28, 28)), (4, 2, 1, (15, 12)), (6, 3, 2, (17, 20)), (2, 2, 0, (7, 6))],
)
def test_strided_single_channel_banks_are_polyphase_convolutions(
    kernel, stride, padding, size, monkeypatch
):
    # one input channel and a kernel that is a multiple of the stride (the MNIST stack's first
    # layer) run as a stride-1 convolution of the polyphase components: values and gradients
    # of the strided convolutions, at every output size in the stride window
    shuffles = []
    unshuffle = torch.nn.functional.pixel_unshuffle
    monkeypatch.setattr(
        torch.nn.functional,
        "pixel_unshuffle",
        lambda *a, **k: shuffles.append(1) or unshuffle(*a, **k),
    )
    F = torch.nn.functional
    weight = torch.randn(5, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 1, *size, dtype=torch.float64, requires_grad=True)
    codes = conv_analysis(x, weight, stride, padding)
    assert shuffles  # the polyphase path ran
    if kernel > stride:  # phases of more than one tap run in their fastest layout
        assert codes.is_contiguous(memory_format=torch.channels_last)
    want = F.conv2d(x, weight, stride=stride, padding=padding)
    torch.testing.assert_close(codes, want, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(want)
    got = torch.autograd.grad((codes * probe).sum(), (x, weight))
    expected = torch.autograd.grad((want * probe).sum(), (x, weight))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    gamma = torch.randn_like(want).requires_grad_()
    smallest = [(n - 1) * stride - 2 * padding + kernel for n in want.shape[-2:]]
    for extra in range(stride):
        out = (smallest[0] + extra, smallest[1] + stride - 1 - extra)
        signal = conv_synthesis(gamma, weight, stride, padding, output_size=out)
        plain = F.conv_transpose2d(
            gamma, weight, stride=stride, padding=padding,
            output_padding=(extra, stride - 1 - extra),
        )  # fmt: skip
        torch.testing.assert_close(signal, plain, rtol=1e-12, atol=1e-12)
        probe = torch.randn_like(plain)
        got = torch.autograd.grad((signal * probe).sum(), (gamma, weight))
        expected = torch.autograd.grad((plain * probe).sum(), (gamma, weight))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    small = torch.randn(2, 1, 9, 8, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(3, 1, 2 * stride, 2 * stride, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w: conv_analysis(v, w, stride, 1), (small, bank))
    code = conv_analysis(small, bank, stride, 1).detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda c, w: conv_synthesis(c, w, stride, 1, output_size=(9, 8)), (code, bank)
    )


def test_conv_synthesis_default_size_is_smallest_consistent_size():
    weight = torch.randn(3, 1, 5, 5)
    codes = torch.randn(1, 3, 4, 6)
    out = conv_synthesis(codes, weight, stride=2, padding=1)
    assert out.shape[-2:] == ((4 - 1) * 2 - 2 + 5, (6 - 1) * 2 - 2 + 5)


@pytest.mark.parametrize("output_size", [(8, 11), (13, 11), (11, 14), (9, 9)])
def test_conv_synthesis_rejects_unreachable_output_size(output_size):
    weight = torch.randn(3, 1, 3, 3)
    codes = torch.randn(1, 3, 5, 5)  # stride 2, padding 0: reachable sizes 11 and 12
    with pytest.raises(ValueError) as info:
        conv_synthesis(codes, weight, stride=2, padding=0, output_size=output_size)
    message = str(info.value)
    assert str(tuple(output_size)) in message  # got
    assert "(11, 12)" in message  # expected range


@pytest.mark.parametrize("output_size", [(11, 11), (11, 12), (12, 11), (12, 12)])
def test_conv_synthesis_reaches_every_size_in_the_stride_window(output_size):
    weight = torch.randn(3, 1, 3, 3)
    codes = torch.randn(1, 3, 5, 5)
    out = conv_synthesis(codes, weight, stride=2, padding=0, output_size=output_size)
    assert tuple(out.shape[-2:]) == output_size
