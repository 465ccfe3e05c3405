"""Recovery guarantees (mlcsc.theory.guarantees) against brute force and actual pursuits."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.linear_model import orthogonal_mp

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.functional import threshold
from mlcsc.pursuit import fista
from mlcsc.theory import (
    Guarantee,
    csc_bp_guarantee,
    csc_exact_recovery_guarantee,
    csc_signals,
    exact_recovery_bound,
    exact_recovery_guarantee,
    l0_inf_norm,
    l2_inf_norm,
    layered_bp_guarantee,
    layered_thresholding_guarantee,
    mlcsc_signals,
    mutual_coherence,
    noisy_bp_guarantee,
    sparseland_signals,
    sparsify_filters_,
    stability_bound,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _brute_coherence(matrix: torch.Tensor) -> float:
    best = 0.0
    for i in range(matrix.shape[1]):
        for j in range(matrix.shape[1]):
            if i != j:
                a, b = matrix[:, i], matrix[:, j]
                best = max(best, abs(float(a @ b)) / float(a.norm() * b.norm()))
    return best


def _unit_columns(n: int, m: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, m, generator=generator, dtype=torch.float64)
    return weight / weight.norm(dim=0)


def _identity_hadamard(n: int) -> torch.Tensor:
    """``[I, H/√n]``: two orthobases with μ = 1/√n."""
    hadamard = torch.ones(1, 1, dtype=torch.float64)
    while hadamard.shape[0] < n:
        hadamard = torch.cat(
            [torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)]
        )
    return torch.cat([torch.eye(n, dtype=torch.float64), hadamard / math.sqrt(n)], dim=1)


def _codes_with_cardinalities(m: int, cardinalities, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    codes = torch.zeros(len(cardinalities), m, dtype=torch.float64)
    for row, k in enumerate(cardinalities):
        support = torch.randperm(m, generator=generator)[:k]
        codes[row, support] = 1 + torch.rand(k, generator=generator, dtype=torch.float64)
    return codes


# ------------------------------------------------------------------ Sparseland
def test_bounds_follow_the_formulas():
    assert exact_recovery_bound(0.25) == pytest.approx(2.5)
    assert stability_bound(0.25) == pytest.approx(1.25)
    assert exact_recovery_bound(0.0) == math.inf
    with pytest.raises(ValueError, match=r"coherence must be in \[0, 1\], got 1.5"):
        exact_recovery_bound(1.5)
    # identical atoms in float32: a coherence a rounding error above 1 is 1
    duplicate = torch.tensor(1.0 + 2**-23, dtype=torch.float32)
    assert exact_recovery_bound(duplicate) == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "m", "seed"), [(6, 9, 0), (10, 14, 1), (16, 20, 2)])
def test_exact_recovery_bound_uses_the_brute_force_coherence(n, m, seed):
    weight = _unit_columns(n, m, seed)
    mu = _brute_coherence(weight)
    bound = 0.5 * (1 + 1 / mu)
    below, above = math.ceil(bound) - 1, math.ceil(bound)
    codes = _codes_with_cardinalities(m, [below, above], seed)
    guarantee = exact_recovery_guarantee(DenseDictionary(weight), codes)
    assert isinstance(guarantee, Guarantee)
    assert guarantee.bound == pytest.approx(bound, rel=1e-12)
    assert guarantee.coherence == pytest.approx(mu, rel=1e-12)
    assert guarantee.holds_per_signal.tolist() == [True, False]
    assert not guarantee and guarantee.value == above
    assert exact_recovery_guarantee(weight, codes[0])  # a single code, as a matrix
    assert not exact_recovery_guarantee(weight, codes[1])


def test_exact_recovery_on_two_orthobases():
    weight = _identity_hadamard(16)  # μ = 1/4: bound 2.5
    codes = _codes_with_cardinalities(32, [1, 2, 3], seed=3)
    guarantee = exact_recovery_guarantee(weight, codes)
    assert guarantee.bound == pytest.approx(2.5)
    assert guarantee.holds_per_signal.tolist() == [True, True, False]
    assert guarantee.values.tolist() == [1, 2, 3]
    assert guarantee.error_bound == 0.0
    known = exact_recovery_guarantee(weight, codes[:2], coherence=0.25)
    assert known.holds and known.bound == pytest.approx(2.5)


@pytest.mark.parametrize("case", ["two_orthobases", "random"])
def test_omp_recovers_every_code_the_guarantee_covers(case):
    if case == "two_orthobases":
        weight = _identity_hadamard(64)  # μ = 1/8: ‖Γ‖₀ ≤ 4 guaranteed
    else:
        weight = _unit_columns(24, 32, seed=7)
    generator = torch.Generator().manual_seed(1)
    covered = uncovered = 0
    for cardinality in range(1, 7):
        signals, codes = sparseland_signals(
            weight, 30, cardinality, coefficient_range=(0.2, 2.0), generator=generator
        )
        guarantee = exact_recovery_guarantee(weight, codes)
        if not guarantee.holds:
            uncovered += 1
            continue
        covered += 1
        recovered = orthogonal_mp(
            weight.numpy(), signals.T.numpy(), n_nonzero_coefs=cardinality
        ).T.reshape(codes.shape)
        assert torch.allclose(torch.from_numpy(recovered), codes, atol=1e-9)
    assert covered >= 1 and uncovered >= 1


def test_noisy_bp_bound_and_error_formula():
    weight = _identity_hadamard(64)  # μ = 1/8: bound ¼(1 + 8) = 2.25
    codes = _codes_with_cardinalities(128, [1, 2, 3], seed=4)
    guarantee = noisy_bp_guarantee(DenseDictionary(weight), codes[:2], 0.1)
    assert guarantee.bound == pytest.approx(2.25)
    assert guarantee.holds
    # ‖Γ‖₀ = 2: 4ε²/(1 − μ(4·2 − 1)) = 0.04/(1 − 7/8)
    assert guarantee.error_bound == pytest.approx(0.04 / (1 - 7 / 8))
    looser = noisy_bp_guarantee(weight, codes[:2], 0.1, tolerance=0.3)
    assert looser.error_bound == pytest.approx(0.16 / (1 - 7 / 8))
    assert not noisy_bp_guarantee(weight, codes, 0.1).holds
    assert noisy_bp_guarantee(weight, codes, 0.1).holds_per_signal.tolist() == [True, True, False]
    # the noise itself: ε = ‖v‖₂ per signal
    noise = torch.randn(2, 64, dtype=torch.float64)
    measured = noisy_bp_guarantee(weight, codes[:2], noise)
    eps = noise.norm(dim=1)
    assert measured.details["epsilon"] == pytest.approx(float(eps.max()))
    expected = max(
        4 * float(e) ** 2 / (1 - (4 * k - 1) / 8) for e, k in zip(eps, [1, 2], strict=True)
    )
    assert measured.error_bound == pytest.approx(expected)
    with pytest.raises(ValueError, match="tolerance .* must be >= the noise level"):
        noisy_bp_guarantee(weight, codes[:2], 0.5, tolerance=0.1)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0, got -0.1"):
        noisy_bp_guarantee(weight, codes[:2], -0.1)


def test_guarantees_require_unit_norm_atoms_and_matching_codes():
    weight = 2 * _unit_columns(8, 12, seed=0)
    with pytest.raises(ValueError, match=r"unit l2 norm.*normalize_\(\)"):
        exact_recovery_guarantee(weight, torch.zeros(12, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \(m,\) or \(B, m\) with m = 12 atoms"):
        exact_recovery_guarantee(weight / 2, torch.zeros(3, 11))


# ------------------------------------------------------------------ CSC
def _unit_conv(in_channels, num_atoms, k, stride=1, seed=0) -> ConvDictionary:
    dictionary = ConvDictionary(in_channels, num_atoms, k, stride).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dictionary.weight.copy_(
            torch.randn(dictionary.weight.shape, generator=generator, dtype=torch.float64)
        )
    return dictionary.normalize_()


def _brute_conv_coherence(dictionary: ConvDictionary, grid: int) -> float:
    m = dictionary.num_atoms
    units = torch.eye(m * grid * grid, dtype=torch.float64).view(-1, m, grid, grid)
    with torch.no_grad():
        columns = dictionary.synthesize(units).flatten(1).T
    return _brute_coherence(columns)


@pytest.mark.parametrize("stride", [1, 2])
def test_csc_guarantees_use_the_brute_force_coherence_and_stripe_norm(stride):
    dictionary = _unit_conv(2, 2, 4, stride, seed=stride)
    mu = _brute_conv_coherence(dictionary, grid=2 * (3 // stride) + 3)
    codes = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    codes[0, 0, 3, 3] = 1.5  # one isolated atom: ‖Γ‖₀,∞^S = 1
    codes[1, :, 2:5, 2:5] = 1.0  # a dense block: 18 non-zeros in one stripe
    exact = csc_exact_recovery_guarantee(dictionary, codes)
    assert exact.coherence == pytest.approx(mu, rel=1e-12)
    assert exact.bound == pytest.approx(0.5 * (1 + 1 / mu), rel=1e-12)
    assert exact.values.tolist() == l0_inf_norm(codes, 4, stride).tolist()
    assert exact.holds_per_signal.tolist() == [True, False]
    stable = csc_bp_guarantee(dictionary, codes[:1], 0.01)
    assert stable.bound == pytest.approx((1 + 1 / mu) / 3, rel=1e-12)
    assert stable.holds
    assert stable.lam == pytest.approx(0.04) and stable.error_bound == pytest.approx(0.075)


def test_csc_bp_measures_the_noise_in_patches():
    dictionary = _unit_conv(3, 2, 5, seed=1)
    codes = torch.zeros(2, 2, 6, 6, dtype=torch.float64)
    codes[:, 0, 2, 2] = 1.0
    noise = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    guarantee = csc_bp_guarantee(dictionary, codes, noise)
    eps = float(l2_inf_norm(noise, 5).max())
    assert guarantee.details["noise_l2_inf"] == pytest.approx(eps)
    assert guarantee.lam == pytest.approx(4 * eps)
    assert guarantee.error_bound == pytest.approx(7.5 * eps)
    with pytest.raises(ValueError, match="codes must have 2 channels"):
        csc_bp_guarantee(dictionary, torch.zeros(1, 3, 6, 6), 0.0)
    with pytest.raises(ValueError, match=r"codes must have shape \(B, m, H', W'\)"):
        csc_exact_recovery_guarantee(dictionary, torch.zeros(2, 6, 6))


def _fista(dictionary, y, lam, n_iter):
    """Plain FISTA for ½‖y − DΓ‖² + λ‖Γ‖₁ (written here to test the theory independently)."""
    lipschitz = float(dictionary.lipschitz(input_size=y.shape[-2:], n_iter=300))
    step = 1.0 / (1.01 * lipschitz)
    codes = torch.zeros_like(dictionary.analyze(y))
    point, t = codes, 1.0
    for _ in range(n_iter):
        z = point - step * dictionary.analyze(dictionary.synthesize(point, y.shape[-2:]) - y)
        new = torch.sign(z) * (z.abs() - step * lam).clamp_min(0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        point = new + ((t - 1) / t_next) * (new - codes)
        codes, t = new, t_next
    return codes


def test_csc_bp_keeps_the_support_and_the_error_bound_when_the_guarantee_holds():
    generator = torch.Generator().manual_seed(0)
    dictionary = next(
        d for d in (_unit_conv(1, 2, 5, seed=s) for s in range(50)) if mutual_coherence(d) < 0.45
    )
    with torch.no_grad():
        signals, codes = csc_signals(
            dictionary, 3, 18, l0_inf=1, noise_l2_inf=0.03, generator=generator
        )
        noise = signals - dictionary.synthesize(codes, (18, 18))
        guarantee = csc_bp_guarantee(dictionary, codes, noise)
        assert guarantee.holds
        estimate = _fista(dictionary, signals, guarantee.lam, n_iter=600)
    assert not bool(((estimate != 0) & (codes == 0)).any())  # support contained
    assert float((estimate - codes).abs().max()) <= guarantee.error_bound


# ------------------------------------------------------------------ ML-CSC
def _selector_stack() -> list[ConvDictionary]:
    """D₁: 3 unit 5×5 filters; D₂: 2 filters with a single 1 in distinct channels (μ(D₂) = 0)."""
    first = _unit_conv(1, 3, 5, seed=2)
    second = ConvDictionary(3, 2, 3).double()
    with torch.no_grad():
        second.weight.zero_()
        second.weight[0, 0, 1, 1] = 1.0
        second.weight[1, 2, 0, 2] = 1.0
    return [first, second]


def test_layered_thresholding_formula_and_recursion():
    dictionaries = _selector_stack()
    mu1 = float(mutual_coherence(dictionaries[0]))
    gamma2 = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    gamma2[0, 0, 1, 1], gamma2[0, 1, 6, 5] = 2.0, 1.5
    gamma1 = dictionaries[1].synthesize(gamma2).detach()
    noise = 0.02
    guarantee = layered_thresholding_guarantee(dictionaries, [gamma1, gamma2], noise)
    assert len(guarantee) == 2
    # layer 1 by hand: S, P, |Γ|min/max and ε_L^1
    s1 = float(l0_inf_norm(gamma1, 5))
    p1 = float(l0_inf_norm(gamma1, 3, mode="patch"))
    bound1 = 0.5 * (1 + (1 / mu1) * 1.5 / 2.0) - (1 / mu1) * noise / 2.0
    eps1 = math.sqrt(p1) * (noise + mu1 * (s1 - 1) * 2.0)
    layer1 = guarantee[0]
    assert layer1.value == s1 and layer1.bound == pytest.approx(bound1)
    assert layer1.error_bound == pytest.approx(eps1)
    assert layer1.details["contrast"] == pytest.approx(0.75)
    low, high = layer1.details["threshold_range"]
    assert low == pytest.approx(s1 * mu1 * 2.0 + noise)
    assert high == pytest.approx(1.5 - (s1 - 1) * mu1 * 2.0 - noise)
    assert s1 == 2 and layer1.holds == (s1 < bound1)
    # layer 2 (μ = 0): the condition is 2ε_L^1 < |Γ₂|min, and ε_L^2 = √P₂ ε_L^1
    p2 = float(l0_inf_norm(gamma2, 3, mode="patch"))
    assert guarantee[1].coherence == 0.0
    assert guarantee[1].holds == (2 * eps1 < 1.5)
    assert guarantee[1].bound == (math.inf if 2 * eps1 < 1.5 else -math.inf)
    assert guarantee.holds == (layer1.holds and guarantee[1].holds)
    assert guarantee[1].error_bound == pytest.approx(math.sqrt(p2) * eps1)
    assert guarantee.error_bounds == pytest.approx([eps1, math.sqrt(p2) * eps1])


def test_layered_thresholding_recovers_the_supports_when_the_guarantee_holds():
    dictionaries = _selector_stack()
    gamma2 = torch.zeros(2, 2, 10, 10, dtype=torch.float64)
    gamma2[0, 0, 0, 0], gamma2[0, 1, 9, 8] = 1.0, 1.2  # far apart: ‖Γ₁‖₀,∞^S = 1
    gamma2[1, 1, 4, 4] = 1.1
    with torch.no_grad():
        gamma1 = dictionaries[1].synthesize(gamma2)
        x = dictionaries[0].synthesize(gamma1)
    noise = torch.randn(x.shape, dtype=torch.float64)
    noise *= 0.01 / l2_inf_norm(noise, 5).view(-1, 1, 1, 1)
    guarantee = layered_thresholding_guarantee(dictionaries, [gamma1, gamma2], noise)
    assert guarantee.holds
    estimate = x + noise
    for dictionary, truth, layer in zip(dictionaries, [gamma1, gamma2], guarantee, strict=True):
        with torch.no_grad():
            correlations = dictionary.analyze(estimate)
        estimate = correlations * (correlations.abs() > layer.lam)  # hard thresholding
        assert torch.equal(estimate != 0, truth != 0)
        assert float(l2_inf_norm(estimate - truth, layer.details["patch_size"]).max()) <= (
            layer.error_bound + 1e-12
        )


def _two_tap_stack() -> list[ConvDictionary]:
    """A two-layer model whose planted codes have ``‖Γ_i‖₀,∞^S = 1`` with ``μ(D_i) > 0``.

    D₁: 3 random unit 5×5 filters at stride 3 (μ(D₁) ≈ 0.22); its stripes are ⌈9/3⌉ = 3 code
    positions wide. D₂: 2 filters (3 channels, 4×4) with two taps 0.8 and 0.6 in distinct
    channels, 3 positions apart on both axes, so one deepest atom puts two non-zeros in distinct
    stripes of D₁. The taps of atom 0 (channel 0 at (0, 0)) and atom 1 (channel 0 at (3, 0)) meet
    at lag (3, 0): μ(D₂) = 0.8 · 0.6 = 0.48.
    """
    first = _unit_conv(1, 3, 5, stride=3, seed=4).requires_grad_(False)
    second = ConvDictionary(3, 2, 4).double().requires_grad_(False)
    second.weight.zero_()
    second.weight[0, 0, 0, 0], second.weight[0, 1, 3, 3] = 0.8, 0.6
    second.weight[1, 2, 0, 3], second.weight[1, 0, 3, 0] = 0.8, 0.6
    return [first, second]


def _support_errors(estimate: torch.Tensor, truth: torch.Tensor) -> tuple[int, int]:
    """(entries found outside the true support, true non-zeros missed)."""
    spurious = int(((estimate != 0) & (truth == 0)).sum())
    missed = int(((estimate == 0) & (truth != 0)).sum())
    return spurious, missed


def test_layered_bp_guarantee_and_recovery_are_insensitive_to_contrast_unlike_thresholding():
    dictionaries = _two_tap_stack()
    mus = [float(mutual_coherence(d)) for d in dictionaries]
    assert mus == pytest.approx([0.2214, 0.48], abs=1e-4)
    size = 47  # Γ₁: 3 × 15 × 15, Γ₂: 2 × 12 × 12
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        signals, codes = mlcsc_signals(
            dictionaries,
            16,
            size,
            2,
            coefficient_range=(1.0, 1.0),
            noise_l2_inf=5e-4,
            generator=generator,
        )
        noise = signals - dictionaries[0].synthesize(codes[0], (size, size))
    # Planted codes in the regime of the layered-BP theorem: keep the draws whose two deepest
    # atoms are far apart, so that ‖Γ_i‖₀,∞^S = 1 < ⅓(1 + 1/μ(D_i)) = 1.84, 1.03 at both layers.
    planted = layered_bp_guarantee(dictionaries, codes, noise)
    keep = planted[0].holds_per_signal & planted[1].holds_per_signal
    assert int(keep.sum()) >= 3
    deepest, noise = codes[1][keep], noise[keep]
    # The same supports and noise at contrast 0.05: the first non-zero of every deepest code
    # shrunk to 0.05 (in Γ₁ the weak atom's taps become 0.04 and 0.03 next to 0.8 and 0.6).
    support = (deepest != 0).flatten(1)
    first = (support & (support.cumsum(dim=1) == 1)).view_as(deepest)
    contrasts = {1.0: deepest, 0.05: torch.where(first, 0.05 * deepest, deepest)}

    problems = {}
    for contrast, gamma2 in contrasts.items():
        with torch.no_grad():
            gamma1 = dictionaries[1].synthesize(gamma2, codes[0].shape[-2:])
            y = dictionaries[0].synthesize(gamma1, (size, size)) + noise
        truth = [gamma1, gamma2]
        problems[contrast] = (
            y,
            truth,
            layered_bp_guarantee(dictionaries, truth, noise),
            layered_thresholding_guarantee(dictionaries, truth, noise),
        )
    _, _, bp_high, lt_high = problems[1.0]
    _, _, bp_low, lt_low = problems[0.05]

    # (a) The thresholding theorem depends on |Γ_min|/|Γ_max|: it holds at contrast 1 and fails
    # at 0.05, where its bound ½(1 + contrast/μ) − ε/(μ|Γ_max|) drops below ‖Γ₁‖₀,∞^S = 1 and no
    # admissible threshold is left.
    assert lt_high.holds and [layer.holds for layer in lt_high] == [True, True]
    assert [layer.holds for layer in lt_low] == [False, False] and not lt_low.holds
    assert lt_high[0].bound > 2 and lt_low[0].bound < 0.6
    assert lt_high[0].details["contrast"] == pytest.approx(0.75)
    assert lt_low[0].details["contrast"] == pytest.approx(0.0375)
    assert lt_low[0].lam is None
    # (b) The layered-BP theorem does not: same verdict, bounds, error bounds and λ's.
    assert bp_high.holds and bp_low.holds
    for high, low in zip(bp_high, bp_low, strict=True):
        assert high.holds_per_signal.tolist() == low.holds_per_signal.tolist()
        assert high.values.tolist() == low.values.tolist() == [1.0] * int(keep.sum())
        assert (high.bound, high.error_bound, high.lam) == (low.bound, low.error_bound, low.lam)
    assert [layer.bound for layer in bp_low] == pytest.approx([(1 + 1 / mu) / 3 for mu in mus])
    # ε_L^1 = 7.5 ε √‖Γ₁‖₀,∞^P (two taps in a 4 × 4 patch) ≈ 0.0053, ε_L^2 = 7.5 ε_L^1 ≈ 0.040
    eps1 = 7.5 * 5e-4 * math.sqrt(2)
    assert bp_low.error_bounds == pytest.approx([eps1, 7.5 * eps1])

    # (c) What the pursuits do. Layered BP, each layer solved by FISTA with the theorem's
    # λ_i = 4ε_L^{i−1}: at both contrasts the support of every Γ̂_i lies inside that of Γ_i and
    # ‖Γ̂_i − Γ_i‖₂,∞^P ≤ ε_L^i. BP also finds every entry larger than 7.5 times the error of its
    # input; the weakest entries (0.03 in Γ₁, 0.05 in Γ₂) are, so the supports are exact.
    # (Measured: ‖Γ̂_i − Γ_i‖₂,∞^P = 0.0029 and 0.024 at both contrasts.)
    for contrast, (y, truth, bp, _) in problems.items():
        estimate = y
        for dictionary, gamma, layer in zip(dictionaries, truth, bp, strict=True):
            estimate = fista(dictionary, estimate, layer.lam, max_iter=500, tol=1e-10)
            assert float(gamma.abs()[gamma != 0].min()) > 7.5 * layer.details["input_error"]
            assert _support_errors(estimate, gamma) == (0, 0), contrast
            error = float(l2_inf_norm(estimate - gamma, layer.details["patch_size"]).max())
            assert 0 < error <= layer.error_bound, contrast

    # Layered hard thresholding with the thresholds of the contrast-1 theorem (β ≈ 0.39, 0.74):
    # exact supports within ε_L^i at contrast 1; at contrast 0.05 the weak atoms fall below the
    # thresholds (both taps of each in Γ₁, then the atom itself in Γ₂), nothing else changes. No
    # other threshold helps: on layer 1 the weakest true correlation |D₁ᵀY| (0.030) is below the
    # leak of the strong atoms onto neighbouring atoms and shifts (0.152, at most μ(D₁)·0.8).
    betas = [layer.lam for layer in lt_high]
    weak = {1: int(keep.sum()) * 2, 2: int(keep.sum())}
    for contrast, (y, truth, _, _) in problems.items():
        estimate = y
        for i, (dictionary, gamma, beta) in enumerate(zip(dictionaries, truth, betas, strict=True)):
            with torch.no_grad():
                correlations = dictionary.analyze(estimate)
            estimate = threshold(correlations, beta, "hard")
            if contrast == 1.0:
                assert _support_errors(estimate, gamma) == (0, 0)
                error = l2_inf_norm(estimate - gamma, lt_high[i].details["patch_size"]).max()
                assert float(error) <= lt_high[i].error_bound
            else:
                assert _support_errors(estimate, gamma) == (0, weak[i + 1])
            if i == 0 and contrast == 0.05:
                on_support = float(correlations.abs()[gamma != 0].min())
                off_support = float(correlations.abs()[gamma == 0].max())
                assert on_support < off_support


def test_layered_bp_error_bound_is_the_product_formula():
    torch.manual_seed(3)
    model_dictionaries = [_unit_conv(1, 4, 5, seed=4), _unit_conv(4, 6, 3, seed=5)]
    sparsify_filters_(model_dictionaries[1], 0.1)
    generator = torch.Generator().manual_seed(2)
    _, codes = mlcsc_signals(model_dictionaries, 2, 16, 2, generator=generator)
    guarantee = layered_bp_guarantee(model_dictionaries, codes, 0.05, patch_sizes=[3, 2])
    p1 = l0_inf_norm(codes[0], 3, mode="patch").double()
    p2 = l0_inf_norm(codes[1], 2, mode="patch").double()
    eps1 = 7.5 * 0.05 * p1.sqrt()
    eps2 = 7.5**2 * 0.05 * (p1 * p2).sqrt()
    assert guarantee.error_bounds == pytest.approx([float(eps1.max()), float(eps2.max())])
    assert guarantee[0].lam == pytest.approx(4 * 0.05)
    assert guarantee[1].lam == pytest.approx(4 * float(eps1.max()))
    for layer, dictionary, code in zip(guarantee, model_dictionaries, codes, strict=True):
        mu = float(mutual_coherence(dictionary))
        assert layer.bound == pytest.approx((1 + 1 / mu) / 3)
        assert layer.values.tolist() == l0_inf_norm(code, dictionary).double().tolist()
    assert guarantee.holds == all(layer.holds for layer in guarantee)


def test_layered_guarantee_errors():
    dictionaries = _selector_stack()
    gamma2 = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    gamma1 = dictionaries[1].synthesize(gamma2).detach()
    with pytest.raises(ValueError, match=r"codes must be a list of 2 codes \[G_1..G_K\], got 1"):
        layered_bp_guarantee(dictionaries, [gamma1])
    with pytest.raises(ValueError, match="coherences must have 2 values, got 1"):
        layered_bp_guarantee(dictionaries, [gamma1, gamma2], coherences=[0.1])
    with pytest.raises(ValueError, match=r"codes must have 2 channels \(the atoms of dictionar"):
        layered_thresholding_guarantee(dictionaries, [gamma1, gamma1])
    with pytest.raises(ValueError, match=r"dictionaries\[0\] has atom norms"):
        with torch.no_grad():
            dictionaries[0].weight.mul_(3)
        layered_bp_guarantee(dictionaries, [gamma1, gamma2])
