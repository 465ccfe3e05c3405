"""Orthogonal matching pursuit and thresholding against scikit-learn, SPAMS and the theory."""

from __future__ import annotations

import importlib
import math
import warnings

import pytest
import torch
from sklearn.linear_model import orthogonal_mp

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import explicit_matrix, fista, omp, thresholding
from mlcsc.theory import mutual_coherence

pytestmark = pytest.mark.usefixtures("single_thread")

# the module (the package attribute ``mlcsc.pursuit.omp`` is the function)
kernel = importlib.import_module("mlcsc.pursuit.batch_omp")  # the Batch-OMP internals


@pytest.fixture(autouse=True, params=["compiled", "tensor"])
def omp_kernel(request, monkeypatch):
    """Every test runs with the compiled CPU kernel (where Numba is installed) and with the
    tensor kernel."""
    if request.param == "compiled":
        pytest.importorskip("numba")
    monkeypatch.setattr(kernel, "USE_COMPILED", request.param == "compiled")
    return request.param


def _unit_dense(n: int, m: int, seed: int, dtype=torch.float64) -> DenseDictionary:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, m, dtype=torch.float64, generator=generator)
    return DenseDictionary((weight / weight.norm(dim=0)).to(dtype))


def _signals(batch: int, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, dtype=torch.float64, generator=generator)


def _sklearn_omp(weight: torch.Tensor, y: torch.Tensor, k=None, tol=None) -> torch.Tensor:
    """scikit-learn's OMP, codes as rows; its ``tol`` is the squared residual norm."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        coef = orthogonal_mp(
            weight.numpy(),
            y.numpy().T,
            n_nonzero_coefs=k,
            tol=None if tol is None else tol**2,
        )
    return torch.from_numpy(coef.T.copy()).reshape(y.shape[0], -1)


def _planted(batch: int, m: int, sparsity: int, seed: int) -> torch.Tensor:
    """Codes with ``sparsity`` non-zeros of magnitude in [1, 2] and random signs per row."""
    generator = torch.Generator().manual_seed(seed)
    support = torch.rand(batch, m, generator=generator).argsort(dim=1)[:, :sparsity]
    magnitude = 1.0 + torch.rand(batch, sparsity, dtype=torch.float64, generator=generator)
    sign = torch.randint(0, 2, (batch, sparsity), generator=generator) * 2 - 1
    return torch.zeros(batch, m, dtype=torch.float64).scatter_(1, support, magnitude * sign)


def _hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


# ---------------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_omp_equals_sklearn_with_k_atoms(k):
    dictionary = _unit_dense(30, 60, seed=k)
    y = _signals(25, 30, seed=100 + k)
    codes = omp(dictionary, y, k=k)
    reference = _sklearn_omp(dictionary.weight.detach(), y, k=k)
    assert torch.equal(codes != 0, reference != 0)
    assert ((codes != 0).sum(1) == k).all()
    torch.testing.assert_close(codes, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("stored_gram", [True, False])
def test_omp_equals_sklearn_with_many_atoms(monkeypatch, stored_gram):
    """Beyond 1,024 atoms the selection runs unpacked (plain max with the runner-up test)."""
    if not stored_gram:
        monkeypatch.setattr(kernel, "_MAX_GRAM_ENTRIES", 0)
    dictionary = _unit_dense(24, 1500, seed=41)
    y = _signals(10, 24, seed=42)
    codes = omp(dictionary, y, k=5)
    reference = _sklearn_omp(dictionary.weight.detach(), y, k=5)
    assert torch.equal(codes != 0, reference != 0)
    torch.testing.assert_close(codes, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("tol", [0.5, 1.5, 3.0])
def test_omp_equals_sklearn_with_a_residual_tolerance(tol):
    dictionary = _unit_dense(30, 60, seed=7)
    y = _signals(25, 30, seed=8)
    codes = omp(dictionary, y, tol=tol)
    reference = _sklearn_omp(dictionary.weight.detach(), y, tol=tol)
    assert torch.equal(codes != 0, reference != 0)
    torch.testing.assert_close(codes, reference, rtol=0, atol=1e-10)
    residual = (y - dictionary.synthesize(codes)).norm(dim=1)
    assert (residual <= tol * (1 + 1e-12)).all()
    # one atom fewer would not have reached the tolerance
    assert ((codes != 0).sum(1) > 0).all()


def test_omp_with_k_and_tol_stops_at_whichever_comes_first():
    dictionary = _unit_dense(30, 60, seed=9)
    y = _signals(30, 30, seed=10)
    k, tol = 6, 3.5
    codes = omp(dictionary, y, k=k, tol=tol)
    by_k = _sklearn_omp(dictionary.weight.detach(), y, k=k)
    by_tol = _sklearn_omp(dictionary.weight.detach(), y, tol=tol)
    use_tol = (by_tol != 0).sum(1) < k
    expected = torch.where(use_tol.unsqueeze(1), by_tol, by_k)
    assert use_tol.any() and (~use_tol).any()  # both rules are exercised
    torch.testing.assert_close(codes, expected, rtol=0, atol=1e-10)


def test_batch_and_one_signal_at_a_time_give_the_same_codes():
    dictionary = _unit_dense(30, 60, seed=11)
    y = _signals(12, 30, seed=12)
    batch = omp(dictionary, y, k=5)
    single = torch.cat([omp(dictionary, row.unsqueeze(0), k=5) for row in y])
    assert torch.equal(batch != 0, single != 0)
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-13)


def test_batch_split_into_chunks_gives_the_same_codes(monkeypatch):
    dictionary = _unit_dense(30, 60, seed=13)
    y = _signals(50, 30, seed=14)
    whole = omp(dictionary, y, k=4, tol=1.0)
    monkeypatch.setattr(kernel, "_CHUNK_ENTRIES", 60 * 7)  # chunks of 7 signals
    chunked = omp(dictionary, y, k=4, tol=1.0)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-13)


def test_gram_rows_computed_on_the_fly_give_the_same_codes(monkeypatch):
    dictionary = _unit_dense(30, 60, seed=15)
    y = _signals(20, 30, seed=16)
    stored = omp(dictionary, y, k=6)
    monkeypatch.setattr(kernel, "_MAX_GRAM_ENTRIES", 0)  # the path for large conv matrices
    computed = omp(dictionary, y, k=6)
    assert torch.equal(stored != 0, computed != 0)
    torch.testing.assert_close(computed, stored, rtol=0, atol=1e-12)


def test_omp_agrees_with_spams_where_omp_and_ormp_must_agree():
    """SPAMS' ``omp`` is order-recursive matching pursuit (forward selection): it picks the atom
    that most reduces the residual, ``argmax |d_jᵀr|²/‖P⊥d_j‖²``, not ``argmax |d_jᵀr|``. The two
    coincide for the first atom and when both recover a planted code; compare there."""
    spams = pytest.importorskip("spams")
    import numpy as np

    def spams_omp(weight, y, k):
        coef = spams.omp(
            np.asfortranarray(y.numpy().T), np.asfortranarray(weight.numpy()), L=k, numThreads=1
        )
        return torch.from_numpy(coef.toarray().T.copy())

    dictionary = _unit_dense(30, 60, seed=17)
    weight = dictionary.weight.detach()
    y = _signals(40, 30, seed=18)
    codes, reference = omp(dictionary, y, k=1), spams_omp(weight, y, 1)
    assert torch.equal(codes != 0, reference != 0)
    torch.testing.assert_close(codes, reference, rtol=0, atol=1e-9)

    n = 64
    dictionary = DenseDictionary(torch.cat([torch.eye(n, dtype=torch.float64), _hadamard(n)], 1))
    gamma = _planted(100, 2 * n, 4, seed=43)  # below the coherence bound 4.5
    y = dictionary.synthesize(gamma).detach()
    codes, reference = omp(dictionary, y, k=4), spams_omp(dictionary.weight.detach(), y, 4)
    assert torch.equal(codes != 0, gamma != 0)
    assert torch.equal(reference != 0, gamma != 0)
    torch.testing.assert_close(codes, reference, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------ the theory


@pytest.mark.parametrize("kind", ["random", "identity_hadamard"])
def test_omp_and_bp_recover_every_code_below_the_coherence_bound(kind):
    n = 64
    if kind == "random":
        dictionary = _unit_dense(n, 80, seed=19)
    else:
        dictionary = DenseDictionary(
            torch.cat([torch.eye(n, dtype=torch.float64), _hadamard(n)], 1)
        )
    m = dictionary.num_atoms
    mu = float(mutual_coherence(dictionary))
    bound = 0.5 * (1.0 + 1.0 / mu)
    sparsity = math.ceil(bound) - 1  # the largest ‖Γ‖₀ strictly below the bound
    assert 1 <= sparsity < bound
    if kind == "identity_hadamard":
        assert mu == pytest.approx(1 / math.sqrt(n)) and sparsity == 4
    gamma = _planted(200, m, sparsity, seed=20)
    y = dictionary.synthesize(gamma).detach()

    codes = omp(dictionary, y, k=sparsity)
    assert torch.equal(codes != 0, gamma != 0)  # 100 % of the 200 trials
    torch.testing.assert_close(codes, gamma, rtol=0, atol=1e-10)

    bp = fista(dictionary, y, 1e-3, max_iter=3000, tol=1e-10)
    assert torch.equal(bp.abs() > 0.1, gamma != 0)
    torch.testing.assert_close(bp, gamma, rtol=0, atol=1e-2)


# ----------------------------------------------------------------------------------- edge cases


def test_zero_signals_get_zero_codes():
    dictionary = _unit_dense(30, 60, seed=21)
    y = _signals(4, 30, seed=22)
    y[[0, 2]] = 0
    codes, sparse = omp(dictionary, y, k=5, return_sparse=True)
    assert torch.equal(codes[[0, 2]], torch.zeros(2, 60, dtype=torch.float64))
    assert sparse.counts.tolist() == [0, 5, 0, 5]
    assert (sparse.indices[[0, 2]] == -1).all()
    assert torch.equal(
        omp(dictionary, torch.zeros(3, 30, dtype=torch.float64), tol=0.0),
        torch.zeros(3, 60, dtype=torch.float64),
    )


def test_signals_already_within_tolerance_get_zero_codes():
    dictionary = _unit_dense(30, 60, seed=23)
    y = _signals(3, 30, seed=24)
    codes = omp(dictionary, y, tol=float(y.norm(dim=1).max()))
    assert torch.equal(codes, torch.zeros_like(codes))


def test_k_at_least_the_signal_dimension_is_capped_and_fits_exactly():
    dictionary = _unit_dense(20, 50, seed=25)
    y = _signals(6, 20, seed=26)
    codes, sparse = omp(dictionary, y, k=50, return_sparse=True)
    assert ((codes != 0).sum(1) <= 20).all()
    assert sparse.indices.shape[1] <= 20
    residual = (y - dictionary.synthesize(codes)).norm(dim=1)
    assert (residual < 1e-8 * y.norm(dim=1)).all()
    assert torch.isfinite(codes).all()


def test_duplicate_and_nearly_dependent_atoms_are_never_chosen_together():
    generator = torch.Generator().manual_seed(27)
    weight = torch.randn(16, 30, dtype=torch.float64, generator=generator)
    weight[:, 7] = weight[:, 3]  # exact duplicate
    weight[:, 12] = weight[:, 5] + 1e-9 * weight[:, 6]  # nearly dependent
    dictionary = DenseDictionary(weight / weight.norm(dim=0))
    gamma = torch.zeros(8, 30, dtype=torch.float64)
    gamma[:, 3], gamma[:, 5], gamma[:, 20] = 2.0, -1.5, 1.0
    y = dictionary.synthesize(gamma).detach() + 1e-3 * torch.randn(8, 16, dtype=torch.float64)
    codes, sparse = omp(dictionary, y, k=16, return_sparse=True)
    assert torch.isfinite(codes).all()
    for row, count in zip(sparse.indices, sparse.counts, strict=True):
        chosen = row[:count].tolist()
        assert len(set(chosen)) == len(chosen)  # never an atom twice
        assert not {3, 7} <= set(chosen)
        assert not {5, 12} <= set(chosen)
    # the duplicates do not stop the fit: the residual is as small as the rank allows
    residual = (y - dictionary.synthesize(codes)).norm(dim=1)
    assert (residual < 1e-6).all()


def test_atoms_need_not_have_unit_norm():
    dictionary = _unit_dense(30, 60, seed=28)
    scale = torch.linspace(0.1, 5.0, 60, dtype=torch.float64)
    scaled = DenseDictionary(dictionary.weight.detach() * scale)
    y = _signals(10, 30, seed=29)
    unit_codes = omp(dictionary, y, k=5)
    codes = omp(scaled, y, k=5)
    torch.testing.assert_close(codes * scale, unit_codes, rtol=0, atol=1e-10)


def test_float32_gives_the_float64_supports():
    dictionary = _unit_dense(30, 60, seed=30)
    y = _signals(40, 30, seed=31)
    reference = omp(dictionary, y, k=5)
    codes = omp(_unit_dense(30, 60, seed=30, dtype=torch.float32), y.float(), k=5)
    assert codes.dtype == torch.float32
    assert torch.equal(codes != 0, reference != 0)
    torch.testing.assert_close(codes.double(), reference, rtol=0, atol=1e-4)


def test_sparse_form_matches_the_dense_codes():
    dictionary = _unit_dense(30, 60, seed=32)
    y = _signals(9, 30, seed=33)
    codes, sparse = omp(dictionary, y, k=4, tol=2.0, return_sparse=True)
    assert sparse.indices.dtype == torch.long
    assert torch.equal(sparse.to_dense(60), codes)
    assert torch.equal(sparse.counts, (codes != 0).sum(1))
    for row, count in zip(sparse.indices, sparse.counts, strict=True):
        assert (row[count:] == -1).all() and (row[:count] >= 0).all()


def test_empty_batch():
    dictionary = _unit_dense(30, 60, seed=34)
    assert omp(dictionary, torch.zeros(0, 30, dtype=torch.float64), k=3).shape == (0, 60)


def test_codes_are_computed_without_autograd():
    dictionary = _unit_dense(30, 60, seed=35)
    y = _signals(3, 30, seed=36).requires_grad_()
    codes = omp(dictionary, y, k=3)
    assert not codes.requires_grad


@pytest.mark.parametrize("n_atoms", [1, 7, 256, 1024, 5000])
def test_selector_finds_the_largest_magnitude_or_flags_the_row(n_atoms):
    generator = torch.Generator().manual_seed(n_atoms)
    alpha = torch.randn(40, n_atoms, generator=generator)
    alpha[0] = 0.0  # all tied
    if n_atoms > 3:
        alpha[1, 1], alpha[1, 3] = -5.0, 5.0  # a negative and a positive entry tie
        alpha[2, 0], alpha[2, 2] = 7.0, -7.0 * (1 + 2e-7)  # within float32's last bits
    select = kernel._Selector(n_atoms, alpha.device)
    expected_best, expected_index = alpha.abs().max(dim=1)
    top2 = alpha.abs().topk(min(2, n_atoms), dim=1).values
    margin = torch.full((40,), 0.01)
    best, index, ambiguous = select(alpha.clone(), margin)  # overwrites its input
    decided = ~ambiguous
    assert torch.equal(index[decided], expected_index[decided])
    assert (best <= expected_best).all() and (best >= expected_best * (1 - 2**-12)).all()
    if n_atoms > 1:  # rows with a runner-up within the margin are left to the caller
        close = top2[:, 0] - top2[:, 1] <= 0.01
        assert ambiguous[close].all()
        assert ambiguous[0] and (n_atoms <= 3 or (ambiguous[1] and ambiguous[2]))
        # without a margin, only values the packing cannot tell apart are flagged
        _, index, ambiguous = select(alpha.clone(), None)
        assert torch.equal(index[~ambiguous], expected_index[~ambiguous])
        assert ambiguous.float().mean() < 0.2


def test_float64_selection_is_exact_when_correlations_nearly_tie():
    """The selection runs on float32 correlations; rows within its error bound are decided in
    float64, so two atoms whose correlations differ by 1e-12 relative are still told apart."""
    generator = torch.Generator().manual_seed(40)
    weight = torch.randn(20, 40, dtype=torch.float64, generator=generator)
    weight /= weight.norm(dim=0)
    dictionary = DenseDictionary(weight)
    # y correlates equally with atoms 5 and 9 up to a 1e-12 relative nudge, either way
    base = weight[:, 5] + weight[:, 9]
    y = torch.stack([base + 1e-12 * weight[:, 5], base + 1e-12 * weight[:, 9]])
    alpha = y @ weight
    assert (alpha[:, 5] - alpha[:, 9]).abs().max() < 1e-10
    codes, sparse = omp(dictionary, y, k=1, return_sparse=True)
    expected = alpha.abs().argmax(dim=1)
    assert torch.equal(sparse.indices[:, 0], expected)
    assert expected[0] != expected[1]


# -------------------------------------------------------------------------------- convolutional


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_omp_on_a_conv_dictionary_equals_omp_on_its_explicit_matrix(stride, padding):
    dictionary = ConvDictionary(2, 3, 3, stride=stride, padding=padding).double()
    y = torch.randn(3, 2, 7, 6, dtype=torch.float64)
    matrix = explicit_matrix(dictionary, (7, 6))
    # the columns are the atoms: D applied to unit codes
    code_shape = dictionary.analyze(y).shape[1:]
    n_codes = math.prod(code_shape)
    units = torch.eye(n_codes, dtype=torch.float64).view(n_codes, *code_shape)
    columns = dictionary.synthesize(units, (7, 6)).detach().flatten(1).T
    torch.testing.assert_close(matrix, columns)

    codes = omp(dictionary, y, k=6)
    assert codes.shape == dictionary.analyze(y).shape
    flat = omp(DenseDictionary(matrix), y.flatten(1), k=6)
    torch.testing.assert_close(codes.flatten(1), flat, rtol=0, atol=1e-12)
    assert ((codes.flatten(1) != 0).sum(1) == 6).all()
    residual = dictionary.residual(codes, y).detach()
    assert (residual.flatten(1).norm(dim=1) < y.flatten(1).norm(dim=1)).all()


# ---------------------------------------------------------------------------------- thresholding


def test_thresholding_with_a_threshold_is_the_closed_form():
    dictionary = _unit_dense(30, 60, seed=37)
    y = _signals(5, 30, seed=38)
    z = y @ dictionary.weight.detach()
    beta = 0.8
    hard = thresholding(dictionary, y, threshold=beta, mode="hard")
    soft = thresholding(dictionary, y, threshold=beta, mode="soft")
    nonneg = thresholding(dictionary, y, threshold=beta, mode="soft_nonneg")
    torch.testing.assert_close(hard, torch.where(z.abs() > beta, z, 0.0))
    torch.testing.assert_close(soft, torch.sign(z) * (z.abs() - beta).clamp_min(0))
    torch.testing.assert_close(nonneg, (z - beta).clamp_min(0))
    # one threshold per atom
    per_atom = torch.linspace(0.0, 2.0, 60, dtype=torch.float64)
    got = thresholding(dictionary, y, threshold=per_atom, mode="soft")
    torch.testing.assert_close(got, torch.sign(z) * (z.abs() - per_atom).clamp_min(0))


def test_thresholding_keeping_k_atoms():
    dictionary = _unit_dense(30, 60, seed=39)
    y = _signals(6, 30, seed=40)
    z = y @ dictionary.weight.detach()
    k = 5
    ranked = z.abs().sort(dim=1, descending=True).values
    hard = thresholding(dictionary, y, k=k, mode="hard")
    assert ((hard != 0).sum(1) == k).all()
    torch.testing.assert_close(hard, torch.where(z.abs() >= ranked[:, k - 1 : k], z, 0.0))
    soft = thresholding(dictionary, y, k=k, mode="soft")
    tau = ranked[:, k : k + 1]
    torch.testing.assert_close(soft, torch.sign(z) * (z.abs() - tau).clamp_min(0))
    assert ((soft != 0).sum(1) == k).all()
    nonneg = thresholding(dictionary, y, k=k, mode="soft_nonneg")
    tau = z.sort(dim=1, descending=True).values[:, k : k + 1].clamp_min(0)
    torch.testing.assert_close(nonneg, (z - tau).clamp_min(0))
    assert ((nonneg != 0).sum(1) <= k).all() and (nonneg >= 0).all()
    # k equal to the code size keeps everything
    torch.testing.assert_close(thresholding(dictionary, y, k=60, mode="soft"), z)


def test_thresholding_k_counts_over_all_channels_and_positions_of_a_conv_code():
    dictionary = ConvDictionary(1, 4, 3, padding=1).double()
    y = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    z = dictionary.analyze(y).detach()
    codes = thresholding(dictionary, y, k=7, mode="hard")
    assert codes.shape == z.shape
    assert ((codes != 0).flatten(1).sum(1) == 7).all()
    kth = z.abs().flatten(1).sort(dim=1, descending=True).values[:, 6]
    kept = codes.flatten(1) != 0
    assert torch.equal(kept, z.abs().flatten(1) >= kth.unsqueeze(1))
    torch.testing.assert_close(codes[codes != 0], z[codes != 0])
    soft = thresholding(dictionary, y, threshold=torch.tensor([0.1, 0.2, 0.3, 0.4]).double())
    assert soft.shape == z.shape


def test_thresholding_is_differentiable():
    dictionary = _unit_dense(30, 60, seed=41)
    y = _signals(2, 30, seed=42).requires_grad_()
    thresholding(dictionary, y, k=4, mode="soft").sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
