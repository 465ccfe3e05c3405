"""Pursuits: projections of signals onto the (multi-layer) sparse model.

Single dictionary (Sparseland / CSC): :func:`thresholding`, :func:`omp` (batched orthogonal
matching pursuit), :func:`nonnegative_omp`, :func:`ista`, :func:`fista`.
Multi-layer (ML-CSC), registered by name for :class:`~mlcsc.MLCSC` (:data:`PURSUITS`):
``layered_thresholding``, ``layered_bp``, ``ml_ista``, ``ml_fista``, ``ml_lista``,
``projection``, ``projection_refit`` (its codes refitted on their support, see
:func:`refit_on_support`), ``projection_omp`` (OMP on ``D_eff``), ``all_free``; each is a
:class:`Pursuit` written against
:class:`LayerParameters` (see :mod:`mlcsc.pursuit.base`), with functional forms
:func:`layered_thresholding`, :func:`layered_bp`, :func:`ml_ista`, :func:`ml_fista`,
:func:`ml_lista`, :func:`mlcsc_projection` that take explicit steps (:func:`chain_steps`
gives the steps from the chain norms ``‖D₁⋯D_j‖²``).
"""

from mlcsc.pursuit.base import (  # noqa: I001
    PARAMETRIZATIONS,
    STEP_RULES,
    LayerParameters,
    Pursuit,
    fista_momentum,
)
from mlcsc.pursuit.registry import PURSUITS, get_pursuit, register_pursuit
from mlcsc.pursuit.proximal import bp_objective, fista, ista, proximal_gradient_step
from mlcsc.pursuit.omp import MAX_EXPLICIT_ENTRIES, SparseCodes, explicit_matrix, omp
from mlcsc.pursuit.nonnegative_omp import nonnegative_least_squares, nonnegative_omp
from mlcsc.pursuit.thresholding import thresholding
from mlcsc.pursuit.layered import LayeredBP, LayeredThresholding, layered_bp, layered_thresholding
from mlcsc.pursuit.multilayer import (
    MLFISTA,
    MLISTA,
    MLLISTA,
    chain_steps,
    ml_fista,
    ml_ista,
    ml_lista,
    multilayer_bp_objective,
)
from mlcsc.pursuit.projection import (
    Projection,
    ProjectionOMP,
    ProjectionRefit,
    mlcsc_projection,
    refit_on_support,
)
from mlcsc.pursuit.all_free import AllFree

__all__ = [
    "MAX_EXPLICIT_ENTRIES",
    "MLFISTA",
    "MLISTA",
    "MLLISTA",
    "PARAMETRIZATIONS",
    "PURSUITS",
    "STEP_RULES",
    "AllFree",
    "LayerParameters",
    "LayeredBP",
    "LayeredThresholding",
    "Projection",
    "Pursuit",
    "SparseCodes",
    "bp_objective",
    "chain_steps",
    "explicit_matrix",
    "fista",
    "fista_momentum",
    "get_pursuit",
    "ista",
    "layered_bp",
    "layered_thresholding",
    "ml_fista",
    "ml_ista",
    "ml_lista",
    "mlcsc_projection",
    "ProjectionOMP",
    "ProjectionRefit",
    "refit_on_support",
    "multilayer_bp_objective",
    "nonnegative_least_squares",
    "nonnegative_omp",
    "omp",
    "proximal_gradient_step",
    "register_pursuit",
    "thresholding",
]
