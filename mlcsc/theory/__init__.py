"""Theory: coherence, local sparsity norms, recovery guarantees and generative sampling.

* :mod:`~mlcsc.theory.coherence`: ``μ(D)`` of dense and convolutional dictionaries, Welch bound;
* :mod:`~mlcsc.theory.norms`: ``‖Γ‖₀,∞`` (stripe and patch) and ``‖E‖₂,∞^P``;
* :mod:`~mlcsc.theory.guarantees`: the worst-case conditions of OMP, BP and CSC BP, checked on
  given codes (:mod:`~mlcsc.theory.layered_guarantees`: those of the layered pursuits;
  :mod:`~mlcsc.theory.guarantee_base`: what they report and the bounds they check);
* :mod:`~mlcsc.theory.sampling`: signals drawn from the Sparseland, CSC and ML-CSC models.
"""

from mlcsc.theory.coherence import conv_mutual_coherence, mutual_coherence, welch_bound
from mlcsc.theory.guarantees import (
    Guarantee,
    LayeredGuarantee,
    csc_bp_guarantee,
    csc_exact_recovery_guarantee,
    csc_stability_bound,
    exact_recovery_bound,
    exact_recovery_guarantee,
    layered_bp_guarantee,
    layered_thresholding_guarantee,
    noisy_bp_guarantee,
    stability_bound,
)
from mlcsc.theory.norms import L0_INF_MODES, l0_inf_norm, l2_inf_norm, stripe_width
from mlcsc.theory.sampling import (
    csc_signals,
    mlcsc_signals,
    sparseland_signals,
    sparsify_filters_,
)

__all__ = [
    "L0_INF_MODES",
    "Guarantee",
    "LayeredGuarantee",
    "conv_mutual_coherence",
    "csc_bp_guarantee",
    "csc_exact_recovery_guarantee",
    "csc_signals",
    "csc_stability_bound",
    "exact_recovery_bound",
    "exact_recovery_guarantee",
    "l0_inf_norm",
    "l2_inf_norm",
    "layered_bp_guarantee",
    "layered_thresholding_guarantee",
    "mlcsc_signals",
    "mutual_coherence",
    "noisy_bp_guarantee",
    "sparseland_signals",
    "sparsify_filters_",
    "stability_bound",
    "stripe_width",
    "welch_bound",
]
