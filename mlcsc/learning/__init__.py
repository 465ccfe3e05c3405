"""Dictionary learning for Sparseland and its classic application, patch-based denoising.

* :func:`ksvd` — K-SVD (Aharon, Elad & Bruckstein 2006), exact or approximate
  (Rubinstein, Zibulevsky & Elad 2008); :func:`mod` — the method of optimal directions
  (Engan, Aase & Husøy 1999). Both return a :class:`DictionaryLearningResult`.
* :func:`extract_patches`, :func:`fold_patches`, :func:`patch_counts`, :func:`combine_patches`
  — the patch operators ``R_i``, ``Σ R_iᵀ``, ``Σ R_iᵀR_i`` on ``(H, W)`` / ``(C, H, W)`` images.
* :func:`ksvd_denoise` — the K-SVD image denoiser of Elad & Aharon (2006), with
  :func:`overcomplete_dct` (its initial dictionary) and :func:`psnr`.
"""

from mlcsc.learning.denoise import DenoisingResult, ksvd_denoise, overcomplete_dct, psnr
from mlcsc.learning.dictionary_learning import DictionaryLearningResult, SparseCoder, ksvd, mod
from mlcsc.learning.mlcsc_initialization import initialize_from_data_, spherical_kmeans
from mlcsc.learning.patches import (
    combine_patches,
    extract_patches,
    fold_patches,
    num_patches,
    patch_counts,
)

__all__ = [
    "DenoisingResult",
    "DictionaryLearningResult",
    "SparseCoder",
    "combine_patches",
    "initialize_from_data_",
    "spherical_kmeans",
    "extract_patches",
    "fold_patches",
    "ksvd",
    "ksvd_denoise",
    "mod",
    "num_patches",
    "overcomplete_dct",
    "patch_counts",
    "psnr",
]
