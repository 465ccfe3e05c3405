"""Stateless operators: thresholds, largest eigenvalues (power iteration, Lanczos), certified
norm bounds, convolutional synthesis and analysis, and the explicit matrix of a linear map."""

from mlcsc.functional.conv import (
    conv_analysis,
    conv_output_size,
    conv_synthesis,
    conv_transpose_output_size,
)
from mlcsc.functional.linear import operator_matrix
from mlcsc.functional.power_iteration import lanczos_step, largest_eigenvalue, power_iteration
from mlcsc.functional.spectral import conv_lipschitz_bound, polyphase_filters
from mlcsc.functional.thresholds import (
    THRESHOLD_MODES,
    hard_threshold,
    soft_nonneg_threshold,
    soft_nonneg_threshold_,
    soft_threshold,
    threshold,
    weighted_l1,
)

__all__ = [
    "THRESHOLD_MODES",
    "conv_analysis",
    "conv_lipschitz_bound",
    "conv_output_size",
    "conv_synthesis",
    "conv_transpose_output_size",
    "hard_threshold",
    "largest_eigenvalue",
    "lanczos_step",
    "operator_matrix",
    "polyphase_filters",
    "power_iteration",
    "soft_nonneg_threshold",
    "soft_nonneg_threshold_",
    "soft_threshold",
    "threshold",
    "weighted_l1",
]
