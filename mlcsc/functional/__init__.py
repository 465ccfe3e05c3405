"""Stateless operators: thresholds, power iteration, convolutional synthesis and analysis."""

from mlcsc.functional.conv import (
    conv_analysis,
    conv_output_size,
    conv_synthesis,
    conv_transpose_output_size,
)
from mlcsc.functional.power_iteration import power_iteration
from mlcsc.functional.thresholds import (
    THRESHOLD_MODES,
    hard_threshold,
    soft_nonneg_threshold,
    soft_threshold,
    threshold,
    weighted_l1,
)

__all__ = [
    "THRESHOLD_MODES",
    "conv_analysis",
    "conv_output_size",
    "conv_synthesis",
    "conv_transpose_output_size",
    "hard_threshold",
    "power_iteration",
    "soft_nonneg_threshold",
    "soft_threshold",
    "threshold",
    "weighted_l1",
]
