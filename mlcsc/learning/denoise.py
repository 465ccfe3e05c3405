"""Patch-based image denoising with a K-SVD dictionary learned on the noisy image itself.

Elad & Aharon (2006, "Image denoising via sparse and redundant representations over learned
dictionaries", IEEE TIP 15(12)) denoise ``Y = X + V`` (white Gaussian noise of standard
deviation σ) by the MAP-like problem

    ``min_{X, D, {α_i}} λ‖X − Y‖₂² + Σ_i μ_i‖α_i‖₀ + Σ_i ‖Dα_i − R_iX‖₂²``

over the image ``X``, a dictionary ``D`` for ``√n × √n`` patches and the codes ``α_i`` of every
patch ``R_iX``. Their algorithm, implemented by :func:`ksvd_denoise`:

1. start from an overcomplete DCT dictionary (:func:`overcomplete_dct`);
2. learn ``D`` by K-SVD on the noisy patches, coding each patch by OMP to the error target
   ``‖R_iY − Dα_i‖₂ ≤ ε = C·σ·√n`` (``C = 1.15``): a patch is explained only up to the noise;
3. code every patch with that target and average the overlapping estimates with the noisy image,

    ``X̂ = (λI + Σ_i R_iᵀR_i)⁻¹ (λY + Σ_i R_iᵀDα_i)``,  ``λ = 30/σ`` (for pixels in [0, 255]);

   ``Σ_i R_iᵀR_i`` is diagonal (how many patches cover each pixel), so this is a per-pixel
   weighted mean.

Choices made here (documented in :func:`ksvd_denoise`): the mean (DC) of every patch is removed
before learning and coding and added back after, so the dictionary only models the zero-mean
part and no atom is spent on the patch brightness; the constant DCT atom is then unused and is
replaced by a training patch after the first iteration; the dictionary is trained on a random
subset of the patches (40,000 by default) to bound the cost of each iteration; OMP stops at
``n/2`` atoms at most, a cap that only binds for patches whose error target is hard to reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mlcsc.checks import check_int, check_number
from mlcsc.dictionary import DenseDictionary
from mlcsc.learning.dictionary_learning import SparseCoder, ksvd
from mlcsc.learning.dictionary_updates import generator_device, init_weight
from mlcsc.learning.patches import extract_patches, fold_patches, patch_counts
from mlcsc.learning.progress import progress_bar

__all__ = ["DenoisingResult", "ksvd_denoise", "overcomplete_dct", "psnr"]


@dataclass
class DenoisingResult:
    """Details of a :func:`ksvd_denoise` run (``return_details=True``).

    Attributes:
        image: the denoised image, shaped like the input.
        dictionary: the dictionary used for the final coding (learned, or the initial one
            when ``n_iter = 0``).
        errors: training RMSE after every K-SVD iteration (empty when ``n_iter = 0``).
        mean_atoms: average number of atoms per patch in the final coding.
        lam: the ``λ`` used in the averaging.
        tolerance: the OMP error target ``ε = C·σ·√n``.

    Shape:
        - image: that of the noisy input, ``(H, W)`` or ``(1, H, W)``.
        - dictionary weight: ``(p², m)``.

    Examples:
        >>> generator = torch.Generator().manual_seed(0)
        >>> noisy = 128 + 20 * torch.randn(32, 32, generator=generator, dtype=torch.float64)
        >>> details = ksvd_denoise(noisy, sigma=20, patch_size=4, num_atoms=32, n_iter=2,
        ...                        progress=False, generator=generator, return_details=True)
        >>> details.image.shape, details.dictionary.weight.shape, len(details.errors)
        (torch.Size([32, 32]), torch.Size([16, 32]), 2)
        >>> details.tolerance, details.lam  # ε = 1.15·20·√16, λ = 30/20
        (92.0, 1.5)
    """

    image: Tensor
    dictionary: DenseDictionary
    errors: list[float] = field(default_factory=list)
    mean_atoms: float = 0.0
    lam: float = 0.0
    tolerance: float = 0.0


def overcomplete_dct(
    patch_size: int,
    num_atoms: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Separable overcomplete 2-D DCT dictionary for ``p × p`` patches.

    With ``K = ⌈√m⌉`` frequencies per axis, the 1-D atoms are
    ``a_k[t] = cos(π k (t + ½) / K)``, ``t = 0 … p−1``, ``k = 0 … K−1`` (for ``K = p`` the
    orthonormal DCT-II basis); every ``a_k`` with ``k ≥ 1`` has its mean removed, and all are
    normalised. The 2-D atoms are the outer products ``a_k a_lᵀ`` flattened row-major (unit
    norm; all zero-mean except the constant atom ``k = l = 0``), ordered by total frequency
    ``k + l`` (ties by ``k``), and the first ``m`` are kept.

    Args:
        patch_size: side ``p ≥ 1`` of the patches (``n = p²``).
        num_atoms: number of atoms ``m ≥ 1``; ``m = p²`` gives the orthonormal 2-D DCT.
        dtype: dtype of the result (default: torch's default dtype).
        device: device of the result.

    Returns:
        ``(p², m)`` matrix whose columns are the atoms; column 0 is the constant atom.

    Shape:
        - output: ``(p·p, m)``.

    Examples:
        The initial dictionary of Elad & Aharon (2006): 256 atoms for ``8 × 8`` patches.

        >>> D = overcomplete_dct(8, 256, dtype=torch.float64)
        >>> D.shape, torch.allclose(D.norm(dim=0), torch.ones(256, dtype=torch.float64))
        (torch.Size([64, 256]), True)

        With ``m = p²`` it is the orthonormal 2-D DCT:

        >>> B = overcomplete_dct(4, 16, dtype=torch.float64)
        >>> torch.allclose(B.T @ B, torch.eye(16, dtype=torch.float64))
        True
    """
    check_int("patch_size", patch_size, 1)
    check_int("num_atoms", num_atoms, 1)
    dtype = dtype or torch.get_default_dtype()
    K = math.isqrt(num_atoms - 1) + 1  # ⌈√m⌉
    t = torch.arange(patch_size, dtype=torch.float64).unsqueeze(1) + 0.5  # (p, 1)
    k = torch.arange(K, dtype=torch.float64).unsqueeze(0)  # (1, K)
    basis = torch.cos(math.pi * t * k / K)  # (p, K)
    basis[:, 1:] -= basis[:, 1:].mean(dim=0, keepdim=True)
    basis /= basis.norm(dim=0).clamp_min(1e-300)
    atoms = torch.einsum("ik,jl->ijkl", basis, basis).reshape(patch_size**2, K * K)  # (p², K²)
    kk, ll = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    key = ((kk + ll) * K + kk).flatten()  # sort by k + l, then by k
    order = torch.argsort(key)[:num_atoms]
    atoms = atoms[:, order]
    atoms /= atoms.norm(dim=0).clamp_min(1e-300)
    return atoms.to(dtype=dtype, device=device)


def psnr(estimate: Tensor, reference: Tensor, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio ``10·log₁₀(data_range² / MSE)`` in dB.

    The measure by which Elad & Aharon (2006) compare denoisers; the mean squared error is
    computed in float64.

    Args:
        estimate: the image to measure.
        reference: the clean image, shaped like ``estimate``.
        data_range: peak pixel value (255 for 8-bit images, 1 for images in [0, 1]).

    Returns:
        The PSNR in dB (``inf`` when the two are equal).

    Raises:
        ValueError: unless both are tensors of the same shape.

    Shape:
        - estimate: any.
        - reference: that of ``estimate``.

    Examples:
        >>> round(psnr(torch.full((4,), 0.1), torch.full((4,), 0.2), data_range=1.0), 6)
        20.0
        >>> psnr(torch.zeros(2, 2), torch.zeros(2, 2))
        inf
    """
    if not isinstance(estimate, Tensor) or not isinstance(reference, Tensor):
        raise ValueError("estimate and reference must be tensors")
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate and reference must have the same shape, got {tuple(estimate.shape)} "
            f"and {tuple(reference.shape)}"
        )
    mse = float((estimate.double() - reference.double()).pow(2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


@torch.no_grad()
def ksvd_denoise(
    noisy: Tensor,
    sigma: float,
    patch_size: int = 8,
    num_atoms: int = 256,
    n_iter: int = 10,
    *,
    gain: float = 1.15,
    lam: float | None = None,
    data_range: float = 255.0,
    max_atoms: int | None = None,
    stride: int = 1,
    max_train_patches: int | None = 40_000,
    approximate: bool = False,
    replace_atoms: bool = True,
    init: Tensor | DenseDictionary | None = None,
    sparse_coder: SparseCoder | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 16_384,
    progress: bool = True,
    return_details: bool = False,
) -> Tensor | DenoisingResult:
    """Denoise a grayscale image with a K-SVD dictionary trained on its own noisy patches.

    The algorithm of Elad & Aharon (2006), see the module docstring. With ``n = p²``:

    1. patches ``y_i = R_iY`` on a grid of step ``stride`` (1: every overlapping patch);
       their means ``c_i`` are removed, ``y_i⁰ = y_i − c_i·1``;
    2. ``D`` is learned by :func:`~mlcsc.learning.ksvd` (``n_iter`` iterations, started from
       ``overcomplete_dct(p, num_atoms)``) on at most ``max_train_patches`` randomly chosen
       ``y_i⁰``, coding to ``‖y_i⁰ − Dα_i‖₂ ≤ ε = gain·σ·√n`` with at most ``max_atoms`` atoms;
    3. every ``y_i⁰`` is coded the same way and ``x̂_i = Dα_i + c_i·1``;
    4. ``X̂ = (λY + Σ_i R_iᵀx̂_i) / (λ + Σ_i R_iᵀR_i)`` (pixel-wise), ``λ = 30/σ`` for images in
       [0, 255], in general ``λ = (30/255)·data_range/σ`` so that the result does not depend
       on the scale of the pixel values.

    The result is not clipped to ``[0, data_range]``.

    Args:
        noisy: ``(H, W)`` or ``(1, H, W)`` image, float32 or float64, finite.
        sigma: noise standard deviation ``σ ≥ 0`` in pixel units; ``σ = 0`` returns a copy.
        patch_size: patch side ``p`` (8 in the paper).
        num_atoms: dictionary size ``m`` (256 in the paper).
        n_iter: K-SVD iterations (10 in the paper); 0 denoises with the initial dictionary.
        gain: ``C`` in ``ε = C·σ·√n`` (1.15 in the paper).
        lam: weight ``λ`` of the noisy image in the averaging (default as above).
        data_range: peak pixel value (255 for 8-bit images, 1 for images in [0, 1]).
        max_atoms: most atoms per patch, ``≤ min(n, m)`` (default ``n/2``).
        stride: step of the patch grid (1 in the paper; 2 is about 4× faster, a little worse).
        max_train_patches: size of the random training subset (None: all patches).
        approximate: use approximate K-SVD (Rubinstein et al. 2008) for the learning.
        replace_atoms: replace unused / near-duplicate atoms during learning.
        init: initial dictionary ``(p², m)`` instead of the overcomplete DCT.
        sparse_coder: the pursuit (default :func:`mlcsc.pursuit.omp`).
        generator: random generator (training subset, replacements).
        chunk_size: patches coded at once in step 3 (bounds memory).
        progress: show progress bars.
        return_details: return a :class:`DenoisingResult` instead of the image alone.

    Returns:
        The denoised image shaped like ``noisy`` (or a :class:`DenoisingResult`).

    Raises:
        ValueError: naming the argument, for a bad ``noisy`` (also colour images), negative or
            non-finite ``sigma``, a ``patch_size`` larger than the image, and other bad settings.

    Shape:
        - noisy: ``(H, W)`` or ``(1, H, W)``.
        - output: same as ``noisy``.

    Examples:
        A two-level image (``σ = 20``, pixels in [0, 255]) denoised with a small dictionary:

        >>> generator = torch.Generator().manual_seed(0)
        >>> columns = torch.linspace(-1, 1, 32, dtype=torch.float64).sign()
        >>> clean = (128 + 100 * columns).expand(32, 32)  # 28 | 228
        >>> noisy = clean + 20 * torch.randn(32, 32, generator=generator, dtype=torch.float64)
        >>> denoised = ksvd_denoise(noisy, sigma=20, patch_size=4, num_atoms=32, n_iter=2,
        ...                         progress=False, generator=generator)
        >>> denoised.shape
        torch.Size([32, 32])
        >>> bool(psnr(denoised, clean) > psnr(noisy, clean) + 3)  # more than 3 dB better
        True
    """
    _check_image(noisy)
    sigma = check_number("sigma", sigma, 0.0)
    gain = check_number("gain", gain, 0.0, low_open=True)
    data_range = check_number("data_range", data_range, 0.0, low_open=True)
    patch_size = check_int("patch_size", patch_size, 1)
    n = patch_size * patch_size
    num_atoms = check_int("num_atoms", num_atoms, 1)
    if max_atoms is None:
        max_atoms = max(1, min(n // 2, num_atoms))
    else:
        what = f" (min(patch_size², num_atoms) = {min(n, num_atoms)})"
        max_atoms = check_int("max_atoms", max_atoms, 1, min(n, num_atoms), what)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    if max_train_patches is not None:
        max_train_patches = check_int("max_train_patches", max_train_patches, 1)
    if lam is not None:
        lam = check_number("lam", lam, 0.0)
    patches = extract_patches(noisy, patch_size, stride)  # (N, n); checks patch_size, stride
    D0 = _initial(init, patch_size, num_atoms, noisy)
    if sigma == 0:  # nothing to remove: λ = ∞ keeps the noisy image
        image = noisy.detach().clone()
        return DenoisingResult(image, DenseDictionary(D0)) if return_details else image
    if lam is None:
        lam = 30.0 / 255.0 * data_range / sigma
    tolerance = gain * sigma * math.sqrt(n)
    if sparse_coder is None:
        from mlcsc.pursuit import omp as sparse_coder

    means = patches.mean(dim=1, keepdim=True)  # (N, 1) the DC of every patch
    centred = patches - means  # (N, n)
    errors: list[float] = []
    if n_iter > 0:
        train = centred
        if max_train_patches is not None and centred.shape[0] > max_train_patches:
            device = generator_device(generator)
            pick = torch.randperm(centred.shape[0], generator=generator, device=device)
            train = centred[pick[:max_train_patches].to(centred.device)]
        learned = ksvd(
            train, num_atoms, max_atoms, tol=tolerance, n_iter=n_iter, init=D0,
            approximate=approximate, replace_atoms=replace_atoms, sparse_coder=sparse_coder,
            generator=generator, progress=progress,
        )  # fmt: skip
        dictionary, errors = learned.dictionary, learned.errors
    else:
        dictionary = DenseDictionary(D0)

    weight = dictionary.weight.detach()
    estimates = torch.empty_like(patches)  # (N, n)
    atoms = 0
    starts = range(0, patches.shape[0], chunk_size)
    for start in progress_bar(starts, "coding patches", progress):
        block = centred[start : start + chunk_size]
        codes = sparse_coder(dictionary, block, k=max_atoms, tol=tolerance)  # (b, m)
        estimates[start : start + chunk_size] = codes @ weight.T + means[start : start + chunk_size]
        atoms += int((codes != 0).sum())
    total = fold_patches(estimates, tuple(noisy.shape), patch_size, stride)  # Σ R_iᵀx̂_i
    counts = patch_counts(
        tuple(noisy.shape), patch_size, stride, dtype=noisy.dtype, device=noisy.device
    )  # diag Σ R_iᵀR_i
    image = (lam * noisy.detach() + total) / (lam + counts)
    if return_details:
        return DenoisingResult(image, dictionary, errors, atoms / patches.shape[0], lam, tolerance)
    return image


def _initial(
    init: Tensor | DenseDictionary | None, patch_size: int, num_atoms: int, like: Tensor
) -> Tensor:
    """The starting dictionary: ``init`` (checked by K-SVD) or the overcomplete DCT."""
    if init is None:
        return overcomplete_dct(patch_size, num_atoms, dtype=like.dtype, device=like.device)
    weight = init_weight(init, (patch_size * patch_size, num_atoms), "a (patch_size², num_atoms)")
    return weight.to(dtype=like.dtype, device=like.device)


def _check_image(noisy: object) -> None:
    if not isinstance(noisy, Tensor):
        raise ValueError(f"noisy must be a tensor, got {type(noisy).__name__}")
    if noisy.ndim not in (2, 3) or (noisy.ndim == 3 and noisy.shape[0] != 1):
        raise ValueError(
            f"noisy must be a grayscale image of shape (H, W) or (1, H, W), "
            f"got {tuple(noisy.shape)}"
        )
    if noisy.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"noisy must be float32 or float64, got dtype {noisy.dtype}")
    if not torch.isfinite(noisy).all():
        raise ValueError("noisy contains non-finite values (nan or inf)")
