"""Theory: coherence, sparsity norms and recovery guarantees."""

from mlcsc.theory.coherence import mutual_coherence, welch_bound

__all__ = ["mutual_coherence", "welch_bound"]
