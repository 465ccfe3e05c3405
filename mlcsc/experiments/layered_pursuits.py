"""ML-CSC: the forward pass against layered BP, ML-ISTA, ML-FISTA and the ML-CSC projection.

The lecture's "three weaknesses of the forward pass" (MODEL.md §3; Papyan, Romano & Elad
2017, JMLR): layered thresholding is sensitive to the *contrast* ``|Γ_min|/|Γ_max|`` of the
codes, its error *grows with depth*, and it errs *even without noise*. Layered BP removes the
contrast term and is exact without noise; ML-ISTA / ML-FISTA (Sulam, Aberdam, Beck & Elad
2019) solve the multi-layer BP problem on the deepest code; the ML-CSC projection (Sulam,
Papyan, Romano & Elad 2018) solves one BP on the effective dictionary ``D₁⋯D_K``.

**Model.** Signals ``X = D₁Γ₁ + E``, ``Γ₁ = D₂Γ₂``, ``Γ₂ = D₃Γ₃`` drawn by
:func:`~mlcsc.theory.mlcsc_signals` from a deepest code with ``deepest_cardinality``
non-negative non-zeros, magnitudes uniform in ``[c, 1]`` (``c`` = contrast), and Gaussian
noise of a given ``‖E‖₂,∞^P`` (``8 × 8`` patches). The dictionaries (:data:`ARCHITECTURE`) are
``D₁``: 4 dense random ``8 × 8`` filters with stride 2 (as the lecture's MNIST ``D₁``);
``D₂``: 8 filters ``4 × 5 × 5``; ``D₃``: 16 filters ``8 × 3 × 3``. ``D₂`` and ``D₃`` are sparse
(:func:`~mlcsc.theory.sparsify_filters_` keeps 2 weights per filter) with non-negative weights
of equal magnitude ``1/√2``, so every intermediate code is non-negative (no cancellations
create spurious tiny entries) and has the contrast of the deepest one. A model of depth
``d < 3`` uses ``D₁ … D_d``.

**Pursuits** (all on the same signals):

* ``layered_thresholding``: ``Γ̂_i = H_{β_i}(D_iᵀΓ̂_{i−1})`` (hard thresholding, the theorem's
  operator; ``nonneg=True`` uses ``ReLU(· − β_i)``, the CNN). The guarantee's threshold (the
  midpoint of its admissible range) exists only when its condition holds, which it never does
  at these sizes; so each ``β_i`` is **tuned**: chosen, layer after layer, from
  ``{0.02, …, 1}·max|Γ_i|`` to maximise exact support recovery (ties: smallest squared error)
  on an independent tuning batch drawn from the same setting. This favours the forward pass.
* ``layered_bp``: ``Γ̂_i = argmin ½‖Γ̂_{i−1} − D_iΓ_i‖² + λ‖Γ_i‖₁`` layer after layer, each
  solved by FISTA with step ``1/‖D_i‖₂²`` (at most ``n_iter`` iterations;
  :func:`mlcsc.pursuit.layered_bp` is the same problem unrolled with a fixed number of ISTA
  steps).
* ``ml_ista`` / ``ml_fista``: ``n_iter`` iterations of :func:`~mlcsc.pursuit.ml_ista` /
  :func:`~mlcsc.pursuit.ml_fista` on ``min ½‖X − D₁⋯D_KΓ_K‖² + λΣ_i‖Γ_i‖₁`` from the forward
  pass (thresholds ``λ``), with the **chain steps** of :func:`~mlcsc.pursuit.chain_steps`:
  ``c₁⋯c_j = 1/‖D₁⋯D_j‖₂²`` (MODEL.md §3b). Layer ``j`` thresholds at ``c₁⋯c_j·λ``, and the
  deepest code moves by the compound step ``c₁⋯c_K = 1/‖D_eff‖₂²``, the ISTA step of the
  effective dictionary ``D_eff = D₁⋯D_K``; the per-layer steps ``c_j = 1/‖D_j‖₂²`` give the
  smaller ``∏_j 1/‖D_j‖₂²`` (for the seed-0 model 2.2× smaller at depth 2 and 5.0× at depth
  3; the printed notes give the ratio). Measured with these steps (seed 0, 300 iterations):
  ML-ISTA is within 1 % of ML-FISTA's ML-BP objective in every noisy setting and at depths 1
  and 2, but at depth 3 without noise it is still 2–6 % above it (deepest support rate
  0.35–0.77; about 1000 iterations reach the optimum there), whereas ML-FISTA and the
  projection reach their 3000-iteration objectives within 300 iterations. (With the per-layer
  steps ML-ISTA was up to 47 % above ML-FISTA and found no deepest support at depth 3.)
* ``projection``: :func:`~mlcsc.pursuit.mlcsc_projection`, ``n_iter`` FISTA iterations with
  step ``1/‖D_eff‖₂²`` on ``Γ̂_K = argmin ½‖X − D_effΓ_K‖² + λ‖Γ_K‖₁`` (ℓ1 on the deepest code
  only: thresholds ``[0, …, 0, λ]``), then ``Γ̂_{j−1} = D_jΓ̂_j``. Its start is the forward
  pass with those thresholds, ``S_λ(D_effᵀX)`` for signed codes (``ReLU`` layers and
  ``ReLU(· − λ)`` for ``nonneg``): it uses nothing tuned, and the problem is convex, so the
  start only changes how far ``n_iter`` iterations get. (Measured at depth 3: starting from
  the tuned forward pass ``[β₁, β₂, λ]`` instead gives the same objective to 6 digits after
  100 iterations and a slightly worse one after 30.) Its penalty ``λ‖Γ_K‖₁`` is lighter than
  ML-BP's ``λΣ_i‖Γ_i‖₁``, which on non-negative codes is ``(1 + √2 + … + √2^{K−1})λ‖Γ_K‖₁``
  (every column of ``D₂``, ``D₃`` sums to ``√2``): less shrinkage bias, and with noise more
  small extra entries in the deepest code.

The ℓ1 pursuits use ``λ = bp_lambda + ‖E‖₂,∞^P/8`` (about the standard deviation per pixel of
noise of that patch energy): a fixed rule, not tuned, the same for all four.

**Measures**, per layer ``i``: the exact support recovery rate (the support of an estimate is
the set of entries above ``support_fraction`` times its largest entry, the true support the
non-zeros of ``Γ_i``) and ``‖Γ̂_i − Γ_i‖₂,∞^P`` (patches of the next layer's filter size, the
deepest code in its own filter size, as in :mod:`mlcsc.theory.guarantees`). The CSV also
holds how often the estimated support *contains* the true one and its mean size (a support
that fails by extra small entries, not by a miss). Every pursuit is judged by this one rule on
the codes it returns. For the projection those intermediate codes are ``D_jΓ̂_j``, not
thresholded: the true ones are exactly the supports that ``Γ_K`` generates through the
non-negative ``D_j`` (no cancellations), and entries of ``Γ̂_K`` below the cut reach
``D_jΓ̂_j`` scaled by ``1/√2`` per layer, as is (without overlaps) the peak they are measured
against, so they are discarded as the small entries of the other ℓ1 pursuits are; where
several such entries overlap they can add up above the cut, so with noise an intermediate
rate can fall below the deepest one (as it does for ML-FISTA). Propagating the deepest
estimated support instead would copy the deepest rate to every layer by construction rather
than measure the returned codes.

**Theory** drawn on the error axes: ``ε_L^i`` of
:func:`~mlcsc.theory.layered_thresholding_guarantee`
and :func:`~mlcsc.theory.layered_bp_guarantee`, computed on the true codes and noise. They
bound the error only when the conditions hold at layers ``1 … i`` for every trial; otherwise
they are drawn dotted ("no guarantee") and the printed notes say so.

Run ``python -m mlcsc.experiments.layered_pursuits [--quick] [--output DIR]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from mlcsc.checks import (
    check_choices,
    check_flag,
    check_int,
    check_ints,
    check_number,
    check_numbers,
)
from mlcsc.experiments import _layered_report as report
from mlcsc.experiments._common import ExperimentParams, param, publish, run_cli, single_thread
from mlcsc.experiments._layered_runs import PURSUITS, SWEEPS, run_sweeps
from mlcsc.experiments._mlcsc_model import (
    ARCHITECTURE,
    INPUT_SIZE,
    deepest_size,
    mlcsc_dictionaries,
)

__all__ = [
    "NAME",
    "PURSUITS",
    "ARCHITECTURE",
    "INPUT_SIZE",
    "LayeredParams",
    "DEFAULTS",
    "QUICK",
    "SWEEPS",
    "validate",
    "run",
    "main",
    "mlcsc_dictionaries",
]

NAME = "layered_pursuits"


@dataclass(frozen=True)
class LayeredParams(ExperimentParams):
    """Parameters of :func:`run`; the defaults are those of the full run (one to three
    minutes on 2 CPU cores).

    The quick run takes 100 iterations: after 30, ML-FISTA and the projection have not
    converged at depth 3 and find 0–17 % of the noiseless deepest supports, a budget artefact.
    """

    NAME: ClassVar[str] = NAME
    QUICK_CHANGES: ClassVar[dict[str, Any]] = {
        "trials": 6,
        "noise_levels": (0.0, 0.8),
        "contrasts": (1.0, 0.25),
        "depths": (1, 3),
        "n_iter": 100,
    }

    trials: int = param(60, "random signals per setting (and as many to tune thresholds)")
    noise_levels: tuple[float, ...] = param(
        (0.0, 0.1, 0.2, 0.4, 0.8), "sweep (a): noise ||E||_2,inf values"
    )
    contrasts: tuple[float, ...] = param((1.0, 0.5, 0.25, 0.1), "sweep (b): contrasts in (0, 1]")
    depths: tuple[int, ...] = param((1, 2, 3), f"sweep (c): depths in 1..{len(ARCHITECTURE)}")
    noise: float = param(0.0, "noise of sweeps (b), (c)")
    contrast: float = param(0.5, "contrast of sweeps (a), (c)")
    depth: int = param(3, "depth of sweeps (a), (b)")
    pursuits: tuple[str, ...] = param(PURSUITS, f"any of {', '.join(PURSUITS)}", shown="all")
    deepest_cardinality: int = param(2, "non-zeros of the deepest code")
    n_iter: int = param(300, "iterations of the l1 pursuits")
    bp_lambda: float = param(0.01, "noiseless lambda of the l1 pursuits")
    support_fraction: float = param(0.05, "support: entries above this fraction of the largest")
    nonneg: bool = param(False, "ReLU (soft-nonnegative) thresholding everywhere")

    def checked(self) -> dict[str, Any]:
        layers = len(ARCHITECTURE)
        depth_what = f" (the model has {layers} layers)"
        noise_what = " (noise ||E||_2,inf)"
        contrast_what = " (contrast |G_min|/|G_max|)"
        values = {
            **super().checked(),
            "noise_levels": tuple(
                check_numbers("noise_levels", self.noise_levels, 0, what=noise_what)
            ),
            "noise": check_number("noise", self.noise, 0, what=noise_what),
            "contrasts": tuple(
                check_numbers("contrasts", self.contrasts, 0, 1, low_open=True, what=contrast_what)
            ),
            "contrast": check_number(
                "contrast", self.contrast, 0, 1, low_open=True, what=contrast_what
            ),
            "depths": tuple(check_ints("depths", self.depths, 1, layers, depth_what)),
            "depth": check_int("depth", self.depth, 1, layers, depth_what),
            "pursuits": tuple(check_choices("pursuits", self.pursuits, PURSUITS)),
        }
        smallest = min({*values["depths"], values["depth"]}, key=deepest_size)
        return {
            **values,
            "deepest_cardinality": check_int(
                "deepest_cardinality",
                self.deepest_cardinality,
                1,
                deepest_size(smallest),
                f" (the size m_K·H_K·W_K of the deepest layer of the depth-{smallest} model)",
            ),
            "n_iter": check_int("n_iter", self.n_iter, 1, 100_000),
            "bp_lambda": check_number("bp_lambda", self.bp_lambda, 0, low_open=True),
            "support_fraction": check_number(
                "support_fraction", self.support_fraction, 0, 1, low_open=True, high_open=True
            ),
            "nonneg": check_flag("nonneg", self.nonneg),
        }


#: the parameters of the full run and of a small, fast one (``quick=True``)
DEFAULTS, QUICK = LayeredParams(), LayeredParams.quick_run()

#: ``validate(**options)``: the parameters of a run, checked (ValueError before any work)
validate = LayeredParams.from_options


def run(params: LayeredParams | None = None, /, **options: Any) -> list[dict[str, Any]]:
    """Support recovery and ℓ2,∞ error of five ML-CSC pursuits in three sweeps.

    (a) ``noise_levels`` at ``contrast`` and ``depth``; (b) ``contrasts`` at ``noise`` and
    ``depth``; (c) ``depths`` at ``noise`` and ``contrast``. A setting shared by two sweeps is
    run once.

    Args:
        params: the parameters (default :data:`DEFAULTS`, or :data:`QUICK` for
            ``quick=True``); ``options`` change them.
        **options: any field of :class:`LayeredParams`, ``None`` meaning the default:

            * ``output``: folder for ``layered_pursuits.csv``, ``layered_pursuits.png``
              (deepest code), ``layered_pursuits_layers.png`` (every layer, noise sweep) and
              ``tensorboard/``; ``None`` writes nothing.
            * ``seed``: seed of the model and signal draws.
            * ``trials``: signals per setting; the tuning batch of layered thresholding has
              as many.
            * ``quick``: the quick values for the parameters not given.
            * ``verbose``: print the tables and notes.
            * ``noise_levels``: ``‖E‖₂,∞^P ≥ 0`` values of sweep (a).
            * ``contrasts``: ``c ∈ (0, 1]`` values of sweep (b); magnitudes of the deepest
              code uniform in ``[c, 1]``.
            * ``depths``: model depths of sweep (c), each in ``[1, 3]``.
            * ``noise``, ``contrast``, ``depth``: the fixed values of the other sweeps.
            * ``pursuits``: any of :data:`PURSUITS`.
            * ``deepest_cardinality``: non-zeros of the deepest code, at least 1 and at most
              its size.
            * ``n_iter``: iterations of ML-ISTA / ML-FISTA and of the projection's FISTA, and
              the most FISTA iterations per layer of layered BP.
            * ``bp_lambda``: the noiseless ``λ > 0`` of the ℓ1 pursuits.
            * ``support_fraction``: support = entries above this fraction of the largest, in
              ``(0, 1)``.
            * ``nonneg``: soft-nonnegative thresholding everywhere (the CNN's ReLU) instead of
              hard (layered thresholding) and soft (the others).

    Returns:
        One row per (sweep, setting, pursuit, layer): ``sweep``, ``depth``, ``noise``,
        ``contrast``, ``pursuit``, ``layer``, ``deepest``, ``support_rate`` (estimated support
        equal to the true one), ``support_contained_rate`` (it contains the true one),
        ``support_size_mean`` (entries in the estimated support), ``error_mean``,
        ``error_max``, ``relative_error_mean``, ``true_nnz_mean``, ``threshold`` (``β_i``, ``λ``,
        or for the projection 0 on ``Γ₁ … Γ_{K−1}`` and ``λ`` on ``Γ_K``), ``bound`` (``ε_L^i``
        of the pursuit's theorem, NaN for ML-ISTA / ML-FISTA / the projection),
        ``condition_rate`` (fraction of trials satisfying its conditions at layers ``1 … i``),
        ``bound_applies``, ``objective`` (mean objective the pursuit minimises,
        ``½‖X − D₁⋯D_KΓ̂_K‖² + Σ_i β_i‖Γ̂_i‖₁`` with its ``threshold`` values: the ML-BP
        objective for ML-ISTA / ML-FISTA, the BP objective on ``D_eff`` for the projection;
        NaN for the layered pursuits), ``signal_l2_inf_mean`` (``‖D₁Γ₁‖₂,∞^P``), ``trials``,
        ``n_iter``.

    Raises:
        TypeError: for an option that is not a parameter.
        ValueError: for a parameter out of range, before any work.
    """
    p = LayeredParams.for_run(params, options)
    model = mlcsc_dictionaries(torch.Generator().manual_seed(p.seed))
    with torch.no_grad(), single_thread():
        rows = run_sweeps(p, model)
        notes = report.notes(rows, p, model)
    publish(
        p,
        rows,
        table=report.tables(rows, p),
        notes=notes,
        figures=lambda: report.figures(rows, p),
        curves=lambda: report.curves(rows, p),
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mlcsc.experiments.layered_pursuits --help``."""
    return run_cli(LayeredParams, run, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
