"""The lecture's experiments, runnable as ``python -m mlcsc.experiments.<name>``.

* :mod:`~mlcsc.experiments.sparseland_recovery`: OMP, BP and thresholding success versus
  ``‖Γ‖₀`` on a random and a two-ortho dictionary, against ``½(1 + 1/μ)`` (MODEL.md §1);
* :mod:`~mlcsc.experiments.csc_recovery`: convolutional OMP and BP success versus ``‖Γ‖₀,∞``
  against the local bound ``½(1 + 1/μ(D))`` (MODEL.md §2);
* :mod:`~mlcsc.experiments.layered_pursuits`: layered thresholding (the CNN forward pass),
  layered BP, ML-ISTA and ML-FISTA on synthetic ML-CSC signals versus noise, contrast and
  depth, with the layered guarantees' ``ε_L`` (MODEL.md §3).

Each writes a CSV, a PNG and TensorBoard curves into ``--output`` (default
``outputs/experiments/<name>``), prints a table, and exposes its parameters as a frozen
dataclass (``DEFAULTS`` for a full run, ``QUICK`` for a small fast one) and
``run(params=None, /, **options) -> list[dict]``. Bad parameters raise :class:`ValueError`
before any work; on the command line (one option per parameter) they print one ``error: …``
line and exit with status 2.

Shared code: :mod:`~mlcsc.experiments._common` (the harness: parameters, command line,
outputs), :mod:`~mlcsc.experiments._recovery` (the two single-layer recovery experiments),
:mod:`~mlcsc.experiments._mlcsc_model`, :mod:`~mlcsc.experiments._layered_runs` and
:mod:`~mlcsc.experiments._layered_report` (the ML-CSC model, pursuit runs and reports of
``layered_pursuits``); reports are written by :mod:`mlcsc.reporting`.
"""

EXPERIMENTS = ("sparseland_recovery", "csc_recovery", "layered_pursuits")

__all__ = ["EXPERIMENTS"]
