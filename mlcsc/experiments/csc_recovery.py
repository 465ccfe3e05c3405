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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mlcsc.dictionary import ConvDictionary
from mlcsc.experiments._common import (
    Curve,
    check_choices,
    check_int,
    check_ints,
    check_number,
    format_table,
    log_curves,
    make_parser,
    new_figure,
    prepare_output,
    relative_support,
    resolve_params,
    run_cli,
    save_figure,
    single_thread,
    write_csv,
)
from mlcsc.pursuit import fista
from mlcsc.pursuit.omp import MAX_EXPLICIT_ENTRIES, omp
from mlcsc.theory import csc_signals, exact_recovery_bound, l0_inf_norm, mutual_coherence
from mlcsc.theory.norms import stripe_width

__all__ = ["NAME", "PURSUITS", "DEFAULTS", "QUICK", "validate", "run", "main", "conv_dictionary"]

NAME = "csc_recovery"

#: the pursuits compared, by name
PURSUITS = ("omp", "bp")

#: parameters of the full run (one to two minutes on 2 CPU cores)
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "trials": 50,
    "num_atoms": 2,
    "kernel_size": 5,
    "image_size": 24,
    "l0_inf_values": (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48),
    "pursuits": PURSUITS,
    "contrast": 0.5,
    "bp_lambda": 0.01,
    "bp_iter": 1000,
    "support_fraction": 0.1,
}

#: what ``quick=True`` changes
QUICK: dict[str, Any] = {
    "trials": 6,
    "image_size": 16,
    "l0_inf_values": (1, 4, 16, 48),
    "bp_iter": 300,
}


def validate(**params: Any) -> dict[str, Any]:
    """Check every parameter of :func:`run` and fill in the defaults.

    Raises:
        ValueError: naming the parameter, what was expected and what was given.
    """
    p = resolve_params(NAME, DEFAULTS, QUICK, params)
    p["num_atoms"] = check_int("num_atoms", p["num_atoms"], 1, 64)
    p["kernel_size"] = check_int("kernel_size", p["kernel_size"], 1, 32)
    k = p["kernel_size"]
    p["image_size"] = check_int(
        "image_size", p["image_size"], k, 256, f" (at least the kernel_size {k})"
    )
    width = stripe_width(k)
    capacity = p["num_atoms"] * width * width
    p["l0_inf_values"] = check_ints(
        "l0_inf_values",
        p["l0_inf_values"],
        1,
        capacity,
        f" (a stripe holds m·(2k−1)² = {capacity} code entries)",
    )
    p["pursuits"] = check_choices("pursuits", p["pursuits"], PURSUITS)
    if "omp" in p["pursuits"]:
        size = p["image_size"]
        pixels = size * size
        entries = p["num_atoms"] * (size - k + 1) ** 2
        if pixels * entries > MAX_EXPLICIT_ENTRIES:
            raise ValueError(
                f"image_size must keep OMP's explicit matrix (pixels × code entries = "
                f"{pixels} × {entries}) within {MAX_EXPLICIT_ENTRIES:,} entries, got {size}; "
                "use smaller images or pursuits=['bp']"
            )
    p["contrast"] = check_number(
        "contrast", p["contrast"], 0, 1, low_open=True, what=" (|G_min|/|G_max|)"
    )
    p["bp_lambda"] = check_number("bp_lambda", p["bp_lambda"], 0, low_open=True)
    p["bp_iter"] = check_int("bp_iter", p["bp_iter"], 1)
    p["support_fraction"] = check_number(
        "support_fraction", p["support_fraction"], 0, 1, low_open=True, high_open=True
    )
    return p


def conv_dictionary(num_atoms: int, kernel_size: int, generator: torch.Generator) -> ConvDictionary:
    """``num_atoms`` i.i.d. Gaussian ``kernel_size²`` filters of unit norm, one channel, float64."""
    dictionary = ConvDictionary(1, num_atoms, kernel_size).double().requires_grad_(False)
    weight = torch.randn(dictionary.weight.shape, generator=generator, dtype=torch.float64)
    dictionary.weight.copy_(weight / weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    return dictionary


def _support(pursuit: str, dictionary, y: Tensor, truth: Tensor, p: dict[str, Any]) -> Tensor:
    """The ``(B, N)`` support found by one pursuit (flattened codes)."""
    if pursuit == "omp":
        steps = int(truth.sum(dim=1).max())
        scale = float(y.flatten(1).norm(dim=1).max())
        return omp(dictionary, y, k=steps, tol=1e-9 * max(scale, 1e-300)).flatten(1) != 0
    codes = fista(dictionary, y, p["bp_lambda"], max_iter=p["bp_iter"], tol=1e-7)
    return relative_support(codes, p["support_fraction"])


def run(
    *,
    output: str | Path | None = None,
    seed: int | None = None,
    trials: int | None = None,
    quick: bool = False,
    verbose: bool = False,
    num_atoms: int | None = None,
    kernel_size: int | None = None,
    image_size: int | None = None,
    l0_inf_values: Sequence[int] | None = None,
    pursuits: Sequence[str] | None = None,
    contrast: float | None = None,
    bp_lambda: float | None = None,
    bp_iter: int | None = None,
    support_fraction: float | None = None,
) -> list[dict[str, Any]]:
    """Success rate of exact support recovery of convolutional codes versus ``‖Γ‖₀,∞^S``.

    Args:
        output: folder for ``csc_recovery.csv``, ``.png`` and ``tensorboard/``; ``None``
            writes nothing.
        seed: seed of the filter and signal draws (default 0).
        trials: images per stripe-norm value (default 50; quick 6).
        quick: use the small settings of :data:`QUICK` for parameters not given.
        verbose: print the table and notes.
        num_atoms: filters ``m`` (default 2).
        kernel_size: filter size ``k`` (default 5).
        image_size: side of the square images (default 24; quick 16).
        l0_inf_values: the target ``‖Γ‖₀,∞^S`` values, each in ``[1, m(2k − 1)²]``.
        pursuits: any of ``"omp"``, ``"bp"`` (default both).
        contrast: ``c ∈ (0, 1]``; magnitudes uniform in ``[c, 1]`` (default 0.5).
        bp_lambda: ``λ > 0`` of BP (default 0.01).
        bp_iter: FISTA iterations of BP (default 1000; quick 300).
        support_fraction: BP support threshold relative to the largest entry (default 0.1).

    Returns:
        One row per (stripe norm, pursuit): ``num_atoms``, ``kernel_size``, ``image_size``,
        ``coherence``, ``l0_inf`` (target), ``l0_inf_max`` / ``l0_inf_mean`` (measured),
        ``nnz_mean`` (global ``‖Γ‖₀``), ``pursuit``, ``success_rate``, ``successes``,
        ``trials``, ``local_bound`` (``½(1 + 1/μ)``), ``within_bound``.

    Raises:
        ValueError: for a parameter out of range, before any work.
    """
    p = validate(**{k: v for k, v in locals().items() if v is not None})
    generator = torch.Generator().manual_seed(p["seed"])
    dictionary = conv_dictionary(p["num_atoms"], p["kernel_size"], generator)
    mu = float(mutual_coherence(dictionary))
    bound = exact_recovery_bound(mu)
    rows: list[dict[str, Any]] = []
    with torch.no_grad(), single_thread():
        for target in p["l0_inf_values"]:
            y, codes = csc_signals(
                dictionary,
                p["trials"],
                p["image_size"],
                target,
                coefficient_range=(p["contrast"], 1.0),
                generator=generator,
            )
            stripes = l0_inf_norm(codes, dictionary).double()
            truth = codes.flatten(1) != 0
            for pursuit in p["pursuits"]:
                found = _support(pursuit, dictionary, y, truth, p)
                successes = int((found == truth).all(dim=1).sum())
                rows.append(
                    {
                        "num_atoms": p["num_atoms"],
                        "kernel_size": p["kernel_size"],
                        "image_size": p["image_size"],
                        "coherence": mu,
                        "l0_inf": target,
                        "l0_inf_max": int(stripes.max()),
                        "l0_inf_mean": float(stripes.mean()),
                        "nnz_mean": float(truth.sum(dim=1).double().mean()),
                        "pursuit": pursuit,
                        "success_rate": successes / p["trials"],
                        "successes": successes,
                        "trials": p["trials"],
                        "local_bound": bound,
                        "within_bound": int(stripes.max()) < bound,
                    }
                )
    notes = _notes(rows, p)
    if p["output"] is not None:
        _write_outputs(p["output"], rows, p, notes)
    if p["verbose"]:
        print(_table(rows, p))
        print()
        print(notes)
    return rows


def _table(rows: list[dict[str, Any]], p: dict[str, Any]) -> str:
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
        f"CSC, {p['num_atoms']} filters {p['kernel_size']}x{p['kernel_size']}, "
        f"{p['image_size']}x{p['image_size']} images: success rate of exact support recovery\n"
        + format_table(list(table.values()), ["l0_inf", "measured max", "mean nnz", *p["pursuits"]])
    )


def _notes(rows: list[dict[str, Any]], p: dict[str, Any]) -> str:
    mu, bound = rows[0]["coherence"], rows[0]["local_bound"]
    lines = [
        f"{p['trials']} noiseless images per point, magnitudes uniform in [{p['contrast']:g}, 1] "
        f"with random signs; BP = FISTA with lambda = {p['bp_lambda']:g}, {p['bp_iter']} "
        f"iterations, support = entries > {p['support_fraction']:g} x max.",
        f"convolutional coherence mu(D) = {mu:.3f}: local bound ||G||_0,inf^S < (1 + 1/mu)/2 = "
        f"{bound:.2f}; the global theory needs ||G||_0 below the same number.",
    ]
    for pursuit in p["pursuits"]:
        curve = [row for row in rows if row["pursuit"] == pursuit]
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


def _write_outputs(folder: Path, rows: list[dict[str, Any]], p: dict[str, Any], notes: str):
    prepare_output(folder)
    write_csv(folder / f"{NAME}.csv", rows)
    figure, axes = new_figure(1, 2)
    markers = {"omp": "o", "bp": "s"}
    bound = rows[0]["local_bound"]
    for axis, key, label in (
        (axes[0, 0], "l0_inf", "stripe norm ‖Γ‖₀,∞ (local)"),
        (axes[0, 1], "nnz_mean", "mean ‖Γ‖₀ per image (global)"),
    ):
        for pursuit in p["pursuits"]:
            curve = [row for row in rows if row["pursuit"] == pursuit]
            axis.plot(
                [row[key] for row in curve],
                [row["success_rate"] for row in curve],
                marker=markers[pursuit],
                markersize=4,
                label=pursuit.upper(),
            )
        which = "local" if key == "l0_inf" else "global"
        axis.axvline(
            bound,
            color="black",
            linewidth=1,
            label=f"{which} bound ½(1+1/μ) = {bound:.2f}",
        )
        axis.set_xlabel(label)
        axis.set_ylabel("exact support recovery rate")
        axis.set_ylim(-0.03, 1.03)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    axes[0, 0].set_title("success versus the local sparsity")
    axes[0, 1].set_title("the same runs versus the global sparsity")
    figure.suptitle(
        f"CSC: {p['num_atoms']} random {p['kernel_size']}×{p['kernel_size']} filters, "
        f"μ(D) = {rows[0]['coherence']:.3f}, {p['image_size']}×{p['image_size']} images, "
        f"{p['trials']} trials per point"
    )
    save_figure(figure, folder / f"{NAME}.png")
    curves = [
        Curve(
            f"success/{pursuit}",
            [row["l0_inf"] for row in rows if row["pursuit"] == pursuit],
            [row["success_rate"] for row in rows if row["pursuit"] == pursuit],
        )
        for pursuit in p["pursuits"]
    ]
    first = [row for row in rows if row["pursuit"] == p["pursuits"][0]]
    curves.append(
        Curve("sparsity/mean_nnz", [r["l0_inf"] for r in first], [r["nnz_mean"] for r in first])
    )
    log_curves(folder / "tensorboard", curves, figure=figure, text=notes)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mlcsc.experiments.csc_recovery --help``."""
    parser = make_parser(NAME, __doc__.split("\n")[0], DEFAULTS)
    parser.add_argument("--num-atoms", type=int, help="filters m (default 2)")
    parser.add_argument("--kernel-size", type=int, help="filter size k (default 5)")
    parser.add_argument("--image-size", type=int, help="image side (default 24)")
    parser.add_argument(
        "--l0-inf-values",
        type=int,
        nargs="+",
        help="target stripe norms (default 1 2 4 8 12 16 20 24 32 40 48)",
    )
    parser.add_argument("--pursuits", nargs="+", help="any of omp, bp (default both)")
    parser.add_argument(
        "--contrast", type=float, help="magnitudes uniform in [contrast, 1] (default 0.5)"
    )
    parser.add_argument("--bp-lambda", type=float, help="lambda of BP (default 0.01)")
    parser.add_argument("--bp-iter", type=int, help="FISTA iterations of BP (default 1000)")
    parser.add_argument(
        "--support-fraction",
        type=float,
        help="BP support: entries above this fraction of the largest (default 0.1)",
    )
    return run_cli(NAME, parser, validate, run, argv)


if __name__ == "__main__":
    sys.exit(main())
