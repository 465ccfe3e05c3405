"""What the single-layer support-recovery experiments share
(:mod:`~mlcsc.experiments.sparseland_recovery`, :mod:`~mlcsc.experiments.csc_recovery`): the
parameters of the code magnitudes and of basis pursuit, the support basis pursuit finds, and
a panel of success rates against the worst-case bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from mlcsc.checks import check_int, check_number
from mlcsc.experiments._common import ExperimentParams, param, relative_support, style_rate_axis
from mlcsc.pursuit import fista
from mlcsc.reporting import group_rows

__all__ = ["Bound", "RecoveryParams", "bp_support", "plot_success"]

#: marker of each pursuit in the figures
_MARKERS = {"omp": "o", "bp": "s", "thresholding": "^"}


@dataclass(frozen=True)
class RecoveryParams(ExperimentParams):
    """Parameters of the support-recovery experiments: the code magnitudes and basis pursuit
    (FISTA with a small ``λ``, support = entries above a fraction of the largest)."""

    contrast: float = param(0.5, "magnitudes uniform in [contrast, 1]")
    bp_lambda: float = param(0.01, "lambda of BP")
    bp_iter: int = param(1000, "FISTA iterations of BP")
    support_fraction: float = param(0.1, "BP support: entries above this fraction of the largest")

    def checked(self) -> dict[str, Any]:
        return {
            **super().checked(),
            "contrast": check_number(
                "contrast", self.contrast, 0, 1, low_open=True, what=" (|G_min|/|G_max|)"
            ),
            "bp_lambda": check_number("bp_lambda", self.bp_lambda, 0, low_open=True),
            "bp_iter": check_int("bp_iter", self.bp_iter, 1),
            "support_fraction": check_number(
                "support_fraction", self.support_fraction, 0, 1, low_open=True, high_open=True
            ),
        }


def bp_support(dictionary, y: Tensor, params: RecoveryParams) -> Tensor:
    """The ``(B, N)`` support found by basis pursuit: FISTA on ``½‖y − DΓ‖² + λ‖Γ‖₁`` with
    ``λ = params.bp_lambda``, then :func:`relative_support` at ``params.support_fraction``."""
    codes = fista(dictionary, y, params.bp_lambda, max_iter=params.bp_iter, tol=1e-7)
    return relative_support(codes, params.support_fraction)


@dataclass(frozen=True)
class Bound:
    """A worst-case bound drawn as a vertical line labelled ``<label> = <value>``."""

    value: float
    label: str
    color: str = "black"
    linestyle: str = "-"


def plot_success(
    axis,
    rows: Sequence[dict[str, Any]],
    x: str,
    pursuits: Sequence[str],
    bounds: Sequence[Bound],
    xlabel: str,
) -> None:
    """Success rate (``success_rate``) of each pursuit versus the column ``x`` of ``rows``,
    then the bounds as vertical lines."""
    curves = group_rows(rows, ["pursuit"])
    for pursuit in pursuits:
        curve = curves[(pursuit,)]
        axis.plot(
            [row[x] for row in curve],
            [row["success_rate"] for row in curve],
            marker=_MARKERS[pursuit],
            markersize=4,
            label=pursuit.upper() if pursuit != "thresholding" else "thresholding",
        )
    for bound in bounds:
        axis.axvline(
            bound.value,
            color=bound.color,
            linestyle=bound.linestyle,
            linewidth=1,
            label=f"{bound.label} = {bound.value:.2f}",
        )
    style_rate_axis(axis, xlabel)
