"""Dictionary learning (K-SVD, approximate K-SVD, MOD), patch operators and K-SVD denoising."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import camera

import mlcsc.pursuit
from mlcsc import DenseDictionary
from mlcsc.learning import (
    combine_patches,
    extract_patches,
    fold_patches,
    ksvd,
    ksvd_denoise,
    mod,
    num_patches,
    overcomplete_dct,
    patch_counts,
    psnr,
)
from mlcsc.learning.dictionary_updates import (
    ksvd_update_approximate,
    ksvd_update_exact,
    mod_update,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def planted(n=20, m=50, count=1500, k=3, seed=0, dtype=torch.float64):
    """Aharon et al.'s synthetic test: unit-norm Gaussian D, k random atoms per signal, no noise."""
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(n, m, generator=generator, dtype=dtype)
    D /= D.norm(dim=0)
    support = torch.argsort(torch.rand(count, m, generator=generator), dim=1)[:, :k]
    codes = torch.zeros(count, m, dtype=dtype)
    codes.scatter_(1, support, torch.randn(count, k, generator=generator, dtype=dtype))
    return D, codes @ D.T  # (n, m), (count, n)


def fraction_recovered(true: torch.Tensor, learned: torch.Tensor, level: float = 0.99) -> float:
    """Share of the true atoms with a learned atom of |⟨d, d̂⟩| > level."""
    return float(((true.T @ learned).abs().max(dim=1).values > level).double().mean())


def rmse(Y, codes, weight):
    return float((Y - codes @ weight.T).pow(2).mean().sqrt())


# ----------------------------------------------------------------------------- K-SVD and MOD

EVERY_LEARNER = pytest.mark.parametrize(
    ("learner", "options"),
    [(ksvd, {}), (ksvd, {"approximate": True}), (mod, {})],
    ids=["ksvd", "approximate-ksvd", "mod"],
)


def test_exact_ksvd_recovers_most_planted_atoms():
    # 20 × 50 dictionary, 1,500 signals of 3 atoms each, 80 iterations as in Aharon et al. 2006
    D, Y = planted(seed=0)
    result = ksvd(Y, 50, 3, n_iter=80, generator=torch.Generator().manual_seed(0), progress=False)
    assert fraction_recovered(D, result.dictionary.weight.detach()) >= 0.9
    assert result.errors[-1] < 0.4 * result.errors[0]


@EVERY_LEARNER
def test_error_never_increases_with_monotone_coding_and_no_replacement(learner, options):
    _, Y = planted(seed=1)
    result = learner(
        Y, 50, 3, n_iter=15, replace_atoms=False, monotone=True, progress=False,
        generator=torch.Generator().manual_seed(1), **options,
    )  # fmt: skip
    errors = torch.tensor(result.errors, dtype=torch.float64)
    assert (errors[1:] <= errors[:-1] * (1 + 1e-9)).all(), errors
    assert errors[-1] < 0.7 * errors[0]


@EVERY_LEARNER
def test_plain_learners_reduce_the_error(learner, options):
    _, Y = planted(seed=2)
    result = learner(
        Y, 50, 3, n_iter=15, progress=False, generator=torch.Generator().manual_seed(2), **options
    )
    assert result.errors[-1] < 0.7 * result.errors[0]
    assert result.codes.shape == (1500, 50)
    assert ((result.codes != 0).sum(dim=1) <= 3).all()
    # the codes are those of the returned dictionary (no replacement after the last update)
    weight = result.dictionary.weight.detach()
    assert rmse(Y, result.codes, weight) == pytest.approx(result.errors[-1], rel=1e-10)


def _reference_ksvd_sweep(Y, D, codes, approximate):
    """One K-SVD sweep written plainly: per atom, recompute E_j and take numpy's SVD."""
    Y, D, G = Y.numpy(), D.numpy().copy(), codes.numpy().copy()
    for j in range(D.shape[1]):
        users = np.flatnonzero(G[:, j])
        if users.size == 0:
            continue
        E = Y[users] - G[users] @ D.T + np.outer(G[users, j], D[:, j])
        if approximate:
            atom = E.T @ G[users, j]
            atom /= np.linalg.norm(atom)
            coef = E @ atom
        else:
            U, S, Vt = np.linalg.svd(E, full_matrices=False)
            atom, coef = Vt[0], S[0] * U[:, 0]
        if atom @ D[:, j] < 0:
            atom, coef = -atom, -coef
        D[:, j], G[users, j] = atom, coef
    return torch.from_numpy(D), torch.from_numpy(G)


@pytest.mark.parametrize("approximate", [False, True])
def test_ksvd_sweep_matches_a_plain_reference_and_lowers_the_error(approximate):
    generator = torch.Generator().manual_seed(3)
    n, m, count = 13, 29, 211
    Y = torch.randn(count, n, generator=generator, dtype=torch.float64)
    D = torch.randn(n, m, generator=generator, dtype=torch.float64)
    D /= D.norm(dim=0)
    codes = torch.randn(count, m, generator=generator, dtype=torch.float64)
    codes *= torch.rand(count, m, generator=generator) < 0.1  # random supports
    codes[:, 5] = 0  # an unused atom stays as it is
    update = ksvd_update_approximate if approximate else ksvd_update_exact
    D_new, codes_new = update(Y, D, codes)
    D_ref, codes_ref = _reference_ksvd_sweep(Y, D, codes, approximate)
    torch.testing.assert_close(D_new, D_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(codes_new, codes_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(D_new[:, 5], D[:, 5])
    assert torch.equal(codes_new != 0, codes != 0)  # supports are kept
    assert rmse(Y, codes_new, D_new) < rmse(Y, codes, D)
    torch.testing.assert_close(D_new.norm(dim=0), torch.ones(m, dtype=torch.float64))


def testmod_update_is_the_least_squares_dictionary_with_unit_atoms():
    generator = torch.Generator().manual_seed(4)
    n, m, count = 11, 17, 300
    Y = torch.randn(count, n, generator=generator, dtype=torch.float64)
    D = torch.randn(n, m, generator=generator, dtype=torch.float64)
    codes = torch.randn(count, m, generator=generator, dtype=torch.float64)
    codes *= torch.rand(count, m, generator=generator) < 0.3
    D_new, codes_new = mod_update(Y, D, codes, regularization=0.0)
    least_squares = np.linalg.lstsq(codes.numpy(), Y.numpy(), rcond=None)[0].T  # (n, m)
    expected = least_squares / np.linalg.norm(least_squares, axis=0)
    torch.testing.assert_close(D_new, torch.from_numpy(expected), rtol=1e-6, atol=1e-8)
    # normalising the atoms rescales the codes: the product is the least-squares fit
    torch.testing.assert_close(
        codes_new @ D_new.T, codes @ torch.from_numpy(least_squares).T, rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("approximate", [False, True])
def test_ksvd_keeps_dtype_and_unit_atoms(dtype, approximate):
    _, Y = planted(n=12, m=24, count=200, seed=5, dtype=dtype)
    result = ksvd(Y, 24, 3, n_iter=4, approximate=approximate, progress=False)
    weight = result.dictionary.weight
    assert isinstance(result.dictionary, DenseDictionary)
    assert weight.dtype == dtype and result.codes.dtype == dtype and weight.shape == (12, 24)
    torch.testing.assert_close(weight.detach().norm(dim=0), torch.ones(24, dtype=dtype))
    assert len(result.errors) == len(result.replaced) == 4


def test_unused_and_duplicate_atoms_are_replaced_by_badly_represented_signals():
    generator = torch.Generator().manual_seed(6)
    n, m = 10, 15
    Y = torch.randn(400, n, generator=generator, dtype=torch.float64)
    Y[:, -1] = 0  # every signal lies in the first n − 1 coordinates
    init = torch.randn(n, m, generator=generator, dtype=torch.float64)
    init[-1] = 0  # so do the atoms, except atom 0 = e_n, orthogonal to every signal and atom
    init[:, 0] = 0
    init[-1, 0] = 1
    init[:, 2] = init[:, 1]  # an exact duplicate
    result = ksvd(Y, m, 2, n_iter=2, init=init, progress=False)
    assert result.replaced[0] >= 2 and result.replaced[-1] == 0
    weight = result.dictionary.weight.detach()
    assert weight[-1].abs().max() < 1e-12  # atom 0 is now (a normalised) training signal
    coherence = (weight.T @ weight).abs().fill_diagonal_(0).max()
    assert coherence <= 0.99


def test_default_sparse_coder_is_mlcsc_omp_and_a_custom_one_is_used(monkeypatch):
    _, Y = planted(n=12, m=24, count=100, seed=7)
    calls = []
    real_omp = mlcsc.pursuit.omp

    def counting_omp(dictionary, y, k=None, tol=None):
        calls.append("default")
        return real_omp(dictionary, y, k=k, tol=tol)

    monkeypatch.setattr(mlcsc.pursuit, "omp", counting_omp)
    ksvd(Y, 24, 3, n_iter=3, progress=False)
    assert calls == ["default"] * 3

    def custom(dictionary, y, k=None, tol=None):  # thresholding: keep the k largest |Dᵀy|
        calls.append("custom")
        correlations = dictionary.analyze(y)
        keep = correlations.abs().topk(k, dim=1).indices
        return torch.zeros_like(correlations).scatter_(1, keep, correlations.gather(1, keep))

    result = mod(Y, 24, 3, n_iter=2, sparse_coder=custom, progress=False)
    assert calls[3:] == ["custom"] * 2 and len(result.errors) == 2


def test_error_tolerance_coding_and_zero_iterations():
    D, Y = planted(n=12, m=24, count=100, seed=8)
    result = ksvd(Y, 24, tol=1e-6, n_iter=0, init=D, progress=False)
    assert result.errors == [] and result.replaced == []
    torch.testing.assert_close(result.dictionary.weight.detach(), D)
    # coding in the true dictionary to a tiny tolerance represents every signal
    assert rmse(Y, result.codes, D) < 1e-6


def test_a_generator_makes_learning_reproducible():
    _, Y = planted(n=12, m=24, count=150, seed=9)
    runs = [
        ksvd(Y, 24, 3, n_iter=3, generator=torch.Generator().manual_seed(11), progress=False)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].dictionary.weight, runs[1].dictionary.weight)
    assert runs[0].errors == runs[1].errors


@pytest.mark.parametrize("approximate", [False, True])
def test_ksvd_on_the_device_matches_cpu(device, approximate):
    D, Y = planted(n=12, m=24, count=200, seed=10)
    init = D + 0.1 * torch.randn(D.shape, generator=torch.Generator().manual_seed(0), dtype=D.dtype)
    options = {"n_iter": 3, "init": init, "approximate": approximate, "progress": False}
    cpu = ksvd(Y, 24, 3, **options)
    gpu = ksvd(Y.to(device), 24, 3, **{**options, "init": init.to(device)})
    assert gpu.dictionary.weight.device == gpu.codes.device == Y.to(device).device
    torch.testing.assert_close(gpu.dictionary.weight.detach().cpu(), cpu.dictionary.weight.detach())
    assert gpu.errors == pytest.approx(cpu.errors, rel=1e-9)


# ----------------------------------------------------------------------------- patches


@pytest.mark.parametrize("shape", [(13, 11), (3, 13, 11)])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_patches_round_trip_exactly_and_match_slicing(shape, stride):
    image = torch.randn(shape, dtype=torch.float64)
    p = 4
    patches = extract_patches(image, p, stride)
    # reference: slice every grid position, the last row / column of positions included
    rows = sorted(set(range(0, shape[-2] - p + 1, stride)) | {shape[-2] - p})
    cols = sorted(set(range(0, shape[-1] - p + 1, stride)) | {shape[-1] - p})
    channels = image if image.ndim == 3 else image.unsqueeze(0)
    reference = torch.stack(
        [channels[:, r : r + p, c : c + p].flatten() for r in rows for c in cols]
    )
    assert num_patches(shape[-2:], p, stride) == len(rows) * len(cols)
    torch.testing.assert_close(patches, reference, rtol=0, atol=0)
    torch.testing.assert_close(combine_patches(patches, shape, p, stride), image)
    # fold is the adjoint of extract: ⟨R x, P⟩ = ⟨x, Rᵀ P⟩
    other = torch.randn_like(patches)
    lhs = (patches * other).sum()
    rhs = (image * fold_patches(other, shape, p, stride)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_patch_counts_are_the_number_of_covering_patches():
    counts = patch_counts((9, 10), 3, dtype=torch.float64)
    assert counts[0, 0] == 1 and counts[4, 4] == 9 and counts[0, 4] == 3
    assert counts.sum() == num_patches((9, 10), 3) * 9


# ----------------------------------------------------------------------------- denoising


@pytest.mark.parametrize("num_atoms", [64, 100, 256])
def test_overcomplete_dct_has_unit_zero_mean_atoms(num_atoms):
    D = overcomplete_dct(8, num_atoms, dtype=torch.float64)
    assert D.shape == (64, num_atoms)
    torch.testing.assert_close(D.norm(dim=0), torch.ones(num_atoms, dtype=torch.float64))
    torch.testing.assert_close(D[:, 0], torch.full((64,), 1 / 8, dtype=torch.float64))
    assert D[:, 1:].mean(dim=0).abs().max() < 1e-12
    if num_atoms == 64:  # the orthonormal 2-D DCT-II
        torch.testing.assert_close(D.T @ D, torch.eye(64, dtype=torch.float64))


def _noisy_camera_crop(sigma: float = 25.0):
    clean = torch.from_numpy(camera()[300:364, 150:214].astype(np.float64))  # 64 × 64
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=clean.dtype)
    return clean, clean + sigma * noise


def test_ksvd_denoising_improves_psnr_on_a_camera_crop():
    clean, noisy = _noisy_camera_crop()
    options = {"num_atoms": 64, "progress": False, "generator": torch.Generator().manual_seed(0)}
    dct = ksvd_denoise(noisy, 25.0, n_iter=0, **options)
    learned = ksvd_denoise(noisy, 25.0, n_iter=3, return_details=True, **options)
    before, after = psnr(noisy, clean), psnr(learned.image, clean)
    assert after > before + 7.0  # measured: 20.2 dB → 29.8 dB
    assert after > psnr(dct, clean)  # learning beats the fixed DCT (measured 28.9 dB)
    assert learned.image.shape == noisy.shape and len(learned.errors) == 3
    assert learned.tolerance == pytest.approx(1.15 * 25.0 * 8) and learned.lam == pytest.approx(1.2)


def test_denoising_keeps_shape_dtype_with_stride_and_zero_sigma():
    clean, noisy = _noisy_camera_crop()
    image = noisy[:37, :41].float().unsqueeze(0)  # (1, 37, 41): grid not aligned to stride 3
    out = ksvd_denoise(image, 25.0, num_atoms=64, n_iter=1, stride=3, progress=False)
    assert out.shape == image.shape and out.dtype == torch.float32
    reference = clean[:37, :41].float().unsqueeze(0)
    assert psnr(out, reference) > psnr(image, reference) + 5.0
    torch.testing.assert_close(ksvd_denoise(image, 0.0, progress=False), image)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda Y: ksvd(Y.index_fill(0, torch.tensor([3]), float("nan")), 8, 2), "Y"),
        (lambda Y: ksvd(Y.index_fill(0, torch.tensor([3]), float("inf")), 8, 2), "Y"),
        (lambda Y: ksvd(Y[0], 8, 2), "Y"),
        (lambda Y: ksvd(Y, 8, 0), "sparsity"),
        (lambda Y: ksvd(Y, 8, 7), "sparsity"),  # n = 6
        (lambda Y: mod(Y, 8, 2.5), "sparsity"),
        (lambda Y: ksvd(Y, 0, 2), "num_atoms"),
        (lambda Y: mod(Y, -3, 2), "num_atoms"),
        (lambda Y: ksvd(Y, 8), "sparsity"),
        (lambda Y: ksvd(Y, 8, tol=-1.0), "tol"),
        (lambda Y: ksvd(Y, 8, 2, n_iter=-1), "n_iter"),
        (lambda Y: ksvd(Y, 8, 2, init=torch.randn(6, 9)), "init"),
        (lambda Y: ksvd(Y, 8, 2, duplicate_threshold=1.5), "duplicate_threshold"),
        (lambda Y: mod(Y, 8, 2, regularization=-1.0), "regularization"),
        (lambda Y: ksvd(Y, 8, 2, sparse_coder=lambda D, y, k, tol: y), "sparse_coder"),
    ],
)
def test_bad_learning_arguments_raise_value_errors_naming_them(call, name):
    Y = torch.randn(30, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=name):
        call(Y)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x: extract_patches(x, 14), "patch_size"),
        (lambda x: extract_patches(x, 0), "patch_size"),
        (lambda x: extract_patches(x, 3, stride=0), "stride"),
        (lambda x: extract_patches(x.long(), 3), "image"),
        (lambda x: fold_patches(torch.zeros(5, 9), (13, 11), 3), "patches"),
        (lambda x: ksvd_denoise(x, 25.0, patch_size=12), "patch_size"),
        (lambda x: ksvd_denoise(x, -1.0), "sigma"),
        (lambda x: ksvd_denoise(x, float("nan")), "sigma"),
        (lambda x: ksvd_denoise(x.expand(3, 13, 11), 25.0), "noisy"),
        (lambda x: ksvd_denoise(x.index_fill(0, torch.tensor([2]), float("nan")), 25.0), "noisy"),
        (lambda x: ksvd_denoise(x, 25.0, patch_size=4, num_atoms=0), "num_atoms"),
        (lambda x: ksvd_denoise(x, 25.0, patch_size=4, max_atoms=17), "max_atoms"),
        (lambda x: ksvd_denoise(x, 25.0, patch_size=4, gain=0.0), "gain"),
    ],
)
def test_bad_image_arguments_raise_value_errors_naming_them(call, name):
    image = torch.rand(13, 11, dtype=torch.float64)
    with pytest.raises(ValueError, match=name):
        call(image)
