"""Convolutional sparse coding: OMP and BP support recovery versus ‖Γ‖₀,∞ (MODEL.md §2).

Noiseless images ``Y = DΓ`` are synthesised by a small random convolutional dictionary
(``m`` unit-norm ``k × k`` filters, one channel) from codes whose stripe norm
``‖Γ‖₀,∞^S`` (the most non-zeros among the code entries that can touch one ``k × k`` patch)
is a given value ``s`` (:func:`~mlcsc.theory.csc_signals`: maximal random supports, so the
stripe norm equals ``s`` and the whole image holds many more non-zeros). Magnitudes are
uniform in ``[c, 1]`` with random signs.

* **OMP** works on the explicit matrix of ``D`` for the image size
  (:func:`~mlcsc.pursuit.omp.omp`), run until the residual vanishes (at most the largest
  ``‖Γ‖₀`` of the batch atoms): a signal whose atoms are all found stops after exactly
  ``‖Γ‖₀`` of them.
* **BP** is FISTA on ``½‖Y − DΓ‖² + λ‖Γ‖₁`` with a small ``λ`` directly on the
  :class:`~mlcsc.ConvDictionary` (convolutions); its support is the set of entries larger than
  ``support_fraction`` times the largest.

The local theory of Papyan, Sulam & Elad (2017, "Working locally thinking globally", IEEE TSP)
guarantees both whenever ``‖Γ‖₀,∞^S < ½(1 + 1/μ(D))``, with ``μ(D)`` the coherence over all
filter pairs and shifts (:func:`~mlcsc.theory.conv_mutual_coherence`). The global theory asks
the same of the global ``‖Γ‖₀`` — useless for images, which the second panel shows.

Run ``python -m mlcsc.experiments.csc_recovery [--quick] [--output DIR]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mlcsc.checks import check_choices, check_int, check_ints
from mlcsc.dictionary import ConvDictionary
from mlcsc.experiments._common import param, publish, run_cli, single_thread
from mlcsc.experiments._recovery import Bound, RecoveryParams, bp_support, plot_success
from mlcsc.pursuit.omp import MAX_EXPLICIT_ENTRIES, omp
from mlcsc.reporting import Curve, format_table, group_rows, new_figure
from mlcsc.theory import csc_signals, exact_recovery_bound, l0_inf_norm, mutual_coherence
from mlcsc.theory.norms import stripe_width

__all__ = [
    "NAME",
    "PURSUITS",
    "CSCParams",
    "DEFAULTS",
    "QUICK",
    "validate",
    "run",
    "main",
    "conv_dictionary",
]

NAME = "csc_recovery"

#: the pursuits compared, by name
PURSUITS = ("omp", "bp")


@dataclass(frozen=True)
class CSCParams(RecoveryParams):
    """Parameters of :func:`run`; the defaults are those of the full run (one to two minutes
    on 2 CPU cores)."""

    NAME: ClassVar[str] = NAME
    QUICK_CHANGES: ClassVar[dict[str, Any]] = {
        "trials": 6,
        "image_size": 16,
        "l0_inf_values": (1, 4, 16, 48),
        "bp_iter": 300,
    }

    trials: int = param(50, "random images per stripe-norm value")
    num_atoms: int = param(2, "filters m")
    kernel_size: int = param(5, "filter size k")
    image_size: int = param(24, "side of the square images")
    l0_inf_values: tuple[int, ...] = param(
        (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48),
        "target stripe norms ||G||_0,inf, each in [1, m(2k-1)^2]",
    )
    pursuits: tuple[str, ...] = param(PURSUITS, f"any of {', '.join(PURSUITS)}", shown="all")

    def checked(self) -> dict[str, Any]:
        values = super().checked()
        atoms = values["num_atoms"] = check_int("num_atoms", self.num_atoms, 1, 64)
        k = values["kernel_size"] = check_int("kernel_size", self.kernel_size, 1, 32)
        what = f" (at least the kernel_size {k})"
        size = values["image_size"] = check_int("image_size", self.image_size, k, 256, what)
        capacity = atoms * stripe_width(k) ** 2
        what = f" (a stripe holds m·(2k−1)² = {capacity} code entries)"
        values["l0_inf_values"] = tuple(
            check_ints("l0_inf_values", self.l0_inf_values, 1, capacity, what)
        )
        values["pursuits"] = tuple(check_choices("pursuits", self.pursuits, PURSUITS))
        pixels, entries = size * size, atoms * (size - k + 1) ** 2
        if "omp" in values["pursuits"] and pixels * entries > MAX_EXPLICIT_ENTRIES:
            raise ValueError(
                f"image_size must keep OMP's explicit matrix (pixels × code entries = "
                f"{pixels} × {entries}) within {MAX_EXPLICIT_ENTRIES:,} entries, got {size}; "
                "use smaller images or pursuits=['bp']"
            )
        return values


#: the parameters of the full run and of a small, fast one (``quick=True``)
DEFAULTS, QUICK = CSCParams(), CSCParams.quick_run()

#: ``validate(**options)``: the parameters of a run, checked (ValueError before any work)
validate = CSCParams.from_options


def conv_dictionary(num_atoms: int, kernel_size: int, generator: torch.Generator) -> ConvDictionary:
    """``num_atoms`` i.i.d. Gaussian ``kernel_size²`` filters of unit norm, one channel, float64."""
    dictionary = ConvDictionary(1, num_atoms, kernel_size).double().requires_grad_(False)
    weight = torch.randn(dictionary.weight.shape, generator=generator, dtype=torch.float64)
    dictionary.weight.copy_(weight / weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    return dictionary


def _support(pursuit: str, dictionary, y: Tensor, truth: Tensor, p: CSCParams) -> Tensor:
    """The ``(B, N)`` support found by one pursuit (flattened codes)."""
    if pursuit == "omp":
        steps = int(truth.sum(dim=1).max())
        scale = float(y.flatten(1).norm(dim=1).max())
        return omp(dictionary, y, k=steps, tol=1e-9 * max(scale, 1e-300)).flatten(1) != 0
    return bp_support(dictionary, y, p)


def run(params: CSCParams | None = None, /, **options: Any) -> list[dict[str, Any]]:
    """Success rate of exact support recovery of convolutional codes versus ``‖Γ‖₀,∞^S``.

    Args:
        params: the parameters (default :data:`DEFAULTS`, or :data:`QUICK` for
            ``quick=True``); ``options`` change them.
        **options: any field of :class:`CSCParams`, ``None`` meaning the default: ``output``
            (folder for ``csc_recovery.csv``, ``.png`` and ``tensorboard/``; ``None`` writes
            nothing), ``seed``, ``trials`` (images per stripe-norm value), ``quick`` (the
            quick values for the parameters not given), ``verbose`` (print the table and
            notes), ``num_atoms`` (filters ``m``), ``kernel_size`` (filter size ``k``),
            ``image_size``, ``l0_inf_values`` (the target ``‖Γ‖₀,∞^S`` values, each in
            ``[1, m(2k − 1)²]``), ``pursuits`` (any of :data:`PURSUITS`), ``contrast``
            (``c ∈ (0, 1]``; magnitudes uniform in ``[c, 1]``), ``bp_lambda`` (``λ > 0`` of
            BP), ``bp_iter`` (FISTA iterations of BP), ``support_fraction`` (BP support
            threshold relative to the largest entry).

    Returns:
        One row per (stripe norm, pursuit): ``num_atoms``, ``kernel_size``, ``image_size``,
        ``coherence``, ``l0_inf`` (target), ``l0_inf_max`` / ``l0_inf_mean`` (measured),
        ``nnz_mean`` (global ``‖Γ‖₀``), ``pursuit``, ``success_rate``, ``successes``,
        ``trials``, ``local_bound`` (``½(1 + 1/μ)``), ``within_bound``.

    Raises:
        TypeError: for an option that is not a parameter.
        ValueError: for a parameter out of range, before any work.
    """
    p = CSCParams.for_run(params, options)
    generator = torch.Generator().manual_seed(p.seed)
    dictionary = conv_dictionary(p.num_atoms, p.kernel_size, generator)
    mu = float(mutual_coherence(dictionary))
    bound = exact_recovery_bound(mu)
    rows: list[dict[str, Any]] = []
    with torch.no_grad(), single_thread():
        for target in p.l0_inf_values:
            y, codes = csc_signals(
                dictionary,
                p.trials,
                p.image_size,
                target,
                coefficient_range=(p.contrast, 1.0),
                generator=generator,
            )
            stripes = l0_inf_norm(codes, dictionary).double()
            truth = codes.flatten(1) != 0
            for pursuit in p.pursuits:
                found = _support(pursuit, dictionary, y, truth, p)
                successes = int((found == truth).all(dim=1).sum())
                rows.append(
                    {
                        "num_atoms": p.num_atoms,
                        "kernel_size": p.kernel_size,
                        "image_size": p.image_size,
                        "coherence": mu,
                        "l0_inf": target,
                        "l0_inf_max": int(stripes.max()),
                        "l0_inf_mean": float(stripes.mean()),
                        "nnz_mean": float(truth.sum(dim=1).double().mean()),
                        "pursuit": pursuit,
                        "success_rate": successes / p.trials,
                        "successes": successes,
                        "trials": p.trials,
                        "local_bound": bound,
                        "within_bound": int(stripes.max()) < bound,
                    }
                )
    publish(
        p,
        rows,
        table=_table(rows, p),
        notes=_notes(rows, p),
        figures=lambda: {"": _figure(rows, p)},
        curves=lambda: _curves(rows, p),
    )
    return rows


def _table(rows: list[dict[str, Any]], p: CSCParams) -> str:
    table: dict[int, dict[str, Any]] = {}
    for row in rows:
        line = table.setdefault(
            row["l0_inf"],
            {
                "l0_inf": row["l0_inf"],
                "measured max": row["l0_inf_max"],
                "mean nnz": row["nnz_mean"],
            },
        )
        line[row["pursuit"]] = row["success_rate"]
    return (
        f"CSC, {p.num_atoms} filters {p.kernel_size}x{p.kernel_size}, "
        f"{p.image_size}x{p.image_size} images: success rate of exact support recovery\n"
        + format_table(list(table.values()), ["l0_inf", "measured max", "mean nnz", *p.pursuits])
    )


def _notes(rows: list[dict[str, Any]], p: CSCParams) -> str:
    mu, bound = rows[0]["coherence"], rows[0]["local_bound"]
    lines = [
        f"{p.trials} noiseless images per point, magnitudes uniform in [{p.contrast:g}, 1] "
        f"with random signs; BP = FISTA with lambda = {p.bp_lambda:g}, {p.bp_iter} "
        f"iterations, support = entries > {p.support_fraction:g} x max.",
        f"convolutional coherence mu(D) = {mu:.3f}: local bound ||G||_0,inf^S < (1 + 1/mu)/2 = "
        f"{bound:.2f}; the global theory needs ||G||_0 below the same number.",
    ]
    curves = group_rows(rows, ["pursuit"])
    for pursuit in p.pursuits:
        curve = curves[(pursuit,)]
        inside = [row for row in curve if row["within_bound"]]
        perfect = [row for row in curve if row["success_rate"] == 1.0]
        best = max(perfect, key=lambda row: row["l0_inf"], default=None)
        text = f"{pursuit}: "
        if inside:
            ok = all(row["success_rate"] == 1.0 for row in inside)
            text += f"every image within the local bound recovered: {'yes' if ok else 'NO'}; "
        if best is None:
            text += "no stripe norm tested gave 100% success"
        else:
            text += (
                f"100% success up to ||G||_0,inf = {best['l0_inf']} (about {best['nnz_mean']:.0f} "
                f"non-zeros per image, {best['nnz_mean'] / bound:.0f}x the global bound)"
            )
        lines.append(text)
    return "\n".join(lines)


def _figure(rows: list[dict[str, Any]], p: CSCParams):
    """Success rate versus the local and versus the global sparsity, with the bound."""
    figure, axes = new_figure(1, 2)
    bound = rows[0]["local_bound"]
    for axis, key, which, label in (
        (axes[0, 0], "l0_inf", "local", "stripe norm ‖Γ‖₀,∞ (local)"),
        (axes[0, 1], "nnz_mean", "global", "mean ‖Γ‖₀ per image (global)"),
    ):
        plot_success(axis, rows, key, p.pursuits, [Bound(bound, f"{which} bound ½(1+1/μ)")], label)
    axes[0, 0].set_title("success versus the local sparsity")
    axes[0, 1].set_title("the same runs versus the global sparsity")
    figure.suptitle(
        f"CSC: {p.num_atoms} random {p.kernel_size}×{p.kernel_size} filters, "
        f"μ(D) = {rows[0]['coherence']:.3f}, {p.image_size}×{p.image_size} images, "
        f"{p.trials} trials per point"
    )
    return figure


def _curves(rows: list[dict[str, Any]], p: CSCParams) -> list[Curve]:
    curves = group_rows(rows, ["pursuit"])
    return [
        *(
            Curve.from_rows(f"success/{pursuit}", curves[(pursuit,)], "l0_inf", "success_rate")
            for pursuit in p.pursuits
        ),
        Curve.from_rows("sparsity/mean_nnz", curves[(p.pursuits[0],)], "l0_inf", "nnz_mean"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mlcsc.experiments.csc_recovery --help``."""
    return run_cli(CSCParams, run, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
