"""Pursuits: projections of signals onto the (multi-layer) sparse model.

Single dictionary (Sparseland / CSC): :func:`thresholding`, :func:`omp` (batched orthogonal
matching pursuit), :func:`ista`, :func:`fista`.
Multi-layer (ML-CSC), registered by name for :class:`~mlcsc.MLCSC`: :func:`layered_thresholding`,
:func:`layered_bp`, :func:`ml_ista`, :func:`ml_fista`, :func:`ml_lista`.
"""

from mlcsc.pursuit.registry import PURSUITS, get_pursuit, register_pursuit  # noqa: I001
from mlcsc.pursuit.proximal import bp_objective, fista, ista, proximal_gradient_step
from mlcsc.pursuit.omp import MAX_EXPLICIT_ENTRIES, SparseCodes, explicit_matrix, omp
from mlcsc.pursuit.thresholding import thresholding
from mlcsc.pursuit.layered import layered_bp, layered_thresholding
from mlcsc.pursuit.multilayer import ml_fista, ml_ista, ml_lista, multilayer_bp_objective

__all__ = [
    "MAX_EXPLICIT_ENTRIES",
    "PURSUITS",
    "SparseCodes",
    "bp_objective",
    "explicit_matrix",
    "fista",
    "get_pursuit",
    "ista",
    "layered_bp",
    "layered_thresholding",
    "ml_fista",
    "ml_ista",
    "ml_lista",
    "multilayer_bp_objective",
    "omp",
    "proximal_gradient_step",
    "register_pursuit",
    "thresholding",
]
