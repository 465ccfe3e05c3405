"""The reports of :mod:`~mlcsc.experiments.layered_pursuits`: printed tables, notes (what the
measurements and the theory say), figures and TensorBoard curves."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from mlcsc.experiments._common import style_rate_axis
from mlcsc.experiments._layered_runs import SWEEPS, thresholding_modes
from mlcsc.experiments._mlcsc_model import ARCHITECTURE, INPUT_SIZE, layer_steps
from mlcsc.pursuit import chain_steps
from mlcsc.reporting import Curve, format_table, new_figure
from mlcsc.theory import mutual_coherence

if TYPE_CHECKING:
    from mlcsc.experiments.layered_pursuits import LayeredParams

__all__ = ["SHORT", "curves", "figures", "notes", "tables"]

Rows = list[dict[str, Any]]

#: short names for tables and legends
SHORT = {
    "layered_thresholding": "LT",
    "layered_bp": "LBP",
    "ml_ista": "ML-ISTA",
    "ml_fista": "ML-FISTA",
    "projection": "Proj.",
}

#: line colour and marker of each pursuit in the figures
_STYLE = {
    "layered_thresholding": ("tab:red", "o"),
    "layered_bp": ("tab:blue", "s"),
    "ml_ista": ("tab:green", "^"),
    "ml_fista": ("tab:purple", "v"),
    "projection": ("tab:orange", "D"),
}

#: x-axis label of each sweep (the x value of a row is its column named as the sweep)
_X_LABEL = {
    "noise": "noise ‖E‖₂,∞ (8×8 patches)",
    "contrast": "contrast |Γmin|/|Γmax| (lower bound)",
    "depth": "depth K (layers)",
}

#: errors are drawn on a log axis, at least this large
_FLOOR = 1e-4


def _select(rows: Rows, **where) -> Rows:
    return [row for row in rows if all(row[key] == value for key, value in where.items())]


# ---------------------------------------------------------------------------------- tables
def _rate_error_table(rows: Rows, index: str, p: LayeredParams) -> str:
    """One line per value of ``index``: the support rate and mean error of every pursuit."""
    table: dict[Any, dict[str, Any]] = {}
    for row in rows:
        line = table.setdefault(row[index], {index: row[index]})
        line[f"{SHORT[row['pursuit']]} rate"] = row["support_rate"]
        line[f"{SHORT[row['pursuit']]} err"] = row["error_mean"]
    columns = [index]
    for name in p.pursuits:
        columns += [f"{SHORT[name]} rate", f"{SHORT[name]} err"]
    return format_table(list(table.values()), columns)


def tables(rows: Rows, p: LayeredParams) -> str:
    """The deepest code in each sweep, then every layer of the first noise level."""
    fixed = {
        "noise": f"depth {p.depth}, contrast {p.contrast:g}",
        "contrast": f"depth {p.depth}, noise {p.noise:g}",
        "depth": f"noise {p.noise:g}, contrast {p.contrast:g}",
    }
    blocks = [
        f"({'abc'[SWEEPS.index(sweep)]}) {sweep} sweep ({fixed[sweep]}): deepest code, "
        "support recovery rate and mean l2,inf error\n"
        + _rate_error_table(_select(rows, sweep=sweep, deepest=True), sweep, p)
        for sweep in SWEEPS
    ]
    first = p.noise_levels[0]
    base = _select(rows, sweep="noise", noise=first, contrast=p.contrast, depth=p.depth)
    blocks.append(
        f"every layer at noise {first:g}, contrast {p.contrast:g}, depth {p.depth}\n"
        + _rate_error_table(base, "layer", p)
    )
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------- notes
def notes(rows: Rows, p: LayeredParams, model) -> str:
    """The setup, each pursuit's trend along each sweep, how supports fail, where the theory
    applies, and the multi-layer pursuits' steps and convergence."""
    mus = [float(mutual_coherence(d)) for d in model]
    energy = sorted({round(row["signal_l2_inf_mean"], 3) for row in rows})
    lt_mode, l1_mode = thresholding_modes(p.nonneg)
    lines = [
        f"model: {len(model)} layers {ARCHITECTURE} (filters, size, stride, kept weights), "
        f"input {INPUT_SIZE}x{INPUT_SIZE}, mu(D_i) = {', '.join(f'{m:.3f}' for m in mus)}; "
        f"deepest code {p.deepest_cardinality} non-zeros; {p.trials} trials per setting; "
        f"mean ||D_1 G_1||_2,inf of the clean signals {min(energy):.3g}-{max(energy):.3g}.",
        f"layered thresholding: {lt_mode} thresholding, thresholds tuned on an independent "
        f"batch per setting (the guarantee's midpoint does not exist here: its range is empty). "
        f"l1 pursuits: {l1_mode} thresholding, lambda = {p.bp_lambda:g} + noise/8, "
        f"{p.n_iter} iterations (layered BP: FISTA per layer, at most {p.n_iter}, step "
        "1/||D_i||^2; ML-ISTA / ML-FISTA: lambda at every layer, chain steps c_1...c_j = "
        "1/||D_1...D_j||^2; projection: FISTA on D_1...D_K with step 1/||D_1...D_K||^2, lambda "
        "on the deepest code only, started from S_lambda(D_eff^T x), intermediate codes "
        "D_j G_j).",
    ]
    for name in p.pursuits:
        for sweep in SWEEPS:
            curve = _select(rows, sweep=sweep, pursuit=name, deepest=True)
            if len(curve) >= 2:
                first, last = curve[0], curve[-1]
                lines.append(
                    f"{SHORT[name]}, {sweep} {first[sweep]:g} -> {last[sweep]:g}: "
                    f"deepest support rate {first['support_rate']:.2f} -> "
                    f"{last['support_rate']:.2f}, mean error {first['error_mean']:.3g} -> "
                    f"{last['error_mean']:.3g}"
                )
    lines.extend(_support_notes(rows, p))
    lines.extend(_theory_notes(rows))
    lines.extend(_convergence_notes(rows, p, model))
    return "\n".join(lines)


def _support_notes(rows: Rows, p: LayeredParams) -> list[str]:
    """At the largest noise of sweep (a): how each pursuit's deepest support fails (misses a
    true entry, or keeps extra ones)."""
    noisiest = max(p.noise_levels)
    parts = []
    for name in p.pursuits:
        for row in _select(rows, sweep="noise", pursuit=name, deepest=True, noise=noisiest):
            parts.append(
                f"{SHORT[name]} exact {row['support_rate']:.2f}, contains the true support "
                f"{row['support_contained_rate']:.2f}, mean size {row['support_size_mean']:.1f}"
            )
    if not parts or noisiest == 0:
        return []
    line = (
        f"deepest support at noise {noisiest:g} (true size {p.deepest_cardinality}): "
        + "; ".join(parts)
        + "."
    )
    if "projection" in p.pursuits:
        line += (
            " The projection penalises only lambda ||G_K||_1, while ML-BP's lambda sum_i "
            "||G_i||_1 is (1 + sqrt2 + ... + sqrt2^(K-1)) lambda ||G_K||_1 on non-negative "
            "codes (every column of D_2, D_3 sums to sqrt2): less shrinkage bias, and with "
            "noise more small extra entries above the support cut."
        )
    return [line]


def _theory_notes(rows: Rows) -> list[str]:
    """Where the worst-case conditions hold, and how ε_L compares with the measured error."""
    lines = []
    for name, theorem in (
        ("layered_thresholding", "layered thresholding"),
        ("layered_bp", "layered BP"),
    ):
        subset = [row for row in rows if row["pursuit"] == name]
        if not subset:
            continue
        applies = [row for row in subset if row["bound_applies"]]
        best = max(row["condition_rate"] for row in subset)
        deepest = [row for row in subset if row["deepest"]]
        bounds = [row["bound"] for row in deepest if row["bound"] > 0]
        errors = [row["error_max"] for row in deepest]
        scale = (
            f"eps_L of the deepest code {min(bounds):.3g}-{max(bounds):.3g} against a measured "
            f"largest error of {min(errors):.3g}-{max(errors):.3g}"
            if bounds
            else "eps_L of the deepest code is 0 (noiseless)"
        )
        if not applies:
            lines.append(
                f"{theorem}: its worst-case conditions fail for every setting and layer (at "
                f"most {best:.0%} of the trials satisfy them at some layer): the bounds are "
                f"VACUOUS at these sizes and drawn dotted, as formulas only; {scale}."
            )
        else:
            broken = [row for row in applies if row["error_max"] > row["bound"] * (1 + 1e-6)]
            where = sorted({(row["depth"], row["layer"]) for row in applies})
            lines.append(
                f"{theorem}: conditions hold for every trial at {len(applies)} of {len(subset)} "
                f"(setting, layer) points ((depth, layer) in {where}); measured error above "
                f"eps_L there: {len(broken)} times; {scale}."
            )
    if any(row["pursuit"] == "layered_bp" for row in rows):
        lines.append(
            "layered BP's eps_L is 0 without noise (exact recovery with lambda -> 0) and cannot "
            "be drawn on the log axis; the measured noiseless error of the l1 pursuits is the "
            "shrinkage bias of lambda > 0."
        )
    return lines


def _convergence_notes(rows: Rows, p: LayeredParams, model) -> list[str]:
    """The step the multi-layer pursuits take on the deepest code, and ML-ISTA against ML-FISTA
    on the ML-BP objective they both minimise."""
    lines = []
    multilayer = [name for name in ("ml_ista", "ml_fista", "projection") if name in p.pursuits]
    if not multilayer:
        return lines
    depths = sorted({row["depth"] for row in rows})
    probe = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    steps = []
    for depth in depths:
        chain = math.prod(chain_steps(model[:depth], probe))  # 1/‖D₁⋯D_K‖²
        layer = math.prod(layer_steps(model[:depth]))  # ∏ 1/‖D_j‖²
        steps.append(f"depth {depth}: {chain:.3g} ({chain / layer:.2f}x prod_j 1/||D_j||^2)")
    lines.append(
        f"{', '.join(SHORT[name] for name in multilayer)}: step on the deepest code "
        f"1/||D_1...D_K||^2 = {'; '.join(steps)}."
    )
    if not {"ml_ista", "ml_fista"} <= set(p.pursuits):
        return lines
    objective: dict[tuple, dict[str, float]] = {}
    rate: dict[tuple, float] = {}
    for row in rows:
        if row["pursuit"] in ("ml_ista", "ml_fista") and row["deepest"]:
            key = (row["depth"], row["noise"], row["contrast"])
            objective.setdefault(key, {})[row["pursuit"]] = row["objective"]
            if row["pursuit"] == "ml_ista":
                rate[key] = row["support_rate"]
    gaps = {
        key: (value["ml_ista"] - value["ml_fista"]) / abs(value["ml_fista"])
        for key, value in objective.items()
        if value["ml_fista"] != 0
    }
    if not gaps:
        return lines
    ordered = sorted(gaps.values())
    behind = sorted((key for key, gap in gaps.items() if gap > 0.01), key=lambda k: -gaps[k])
    where = "; ".join(
        f"depth {d}, noise {n:g}, contrast {c:g}: {gaps[(d, n, c)]:+.1%}, "
        f"support rate {rate[(d, n, c)]:.2f}"
        for d, n, c in behind
    )
    lines.append(
        f"ML-BP objective after {p.n_iter} iterations, ML-ISTA relative to ML-FISTA (same "
        f"steps): median {ordered[len(ordered) // 2]:+.1%}, largest {ordered[-1]:+.1%} over "
        f"{len(ordered)} settings; ML-ISTA is within 1% of ML-FISTA in "
        f"{len(ordered) - len(behind)} of them"
        + (
            f", and has not converged (its support rates reflect the iteration budget) in "
            f"{len(behind)}: {where}."
            if behind
            else "."
        )
    )
    return lines


# ---------------------------------------------------------------------------------- figures
def figures(rows: Rows, p: LayeredParams) -> dict[str, Any]:
    """``{"": deepest code in each sweep, "_layers": every layer versus noise}``."""
    return {"": _sweeps_figure(rows, p), "_layers": _layers_figure(rows, p)}


def _sweeps_figure(rows: Rows, p: LayeredParams):
    figure, axes = new_figure(2, 3)
    for column, sweep in enumerate(SWEEPS):
        rate_axis, error_axis = axes[0, column], axes[1, column]
        for name in p.pursuits:
            curve = _select(rows, sweep=sweep, pursuit=name, deepest=True)
            xs = [row[sweep] for row in curve]
            color, marker = _STYLE[name]
            style = {"color": color, "marker": marker, "markersize": 4}
            rate_axis.plot(xs, [row["support_rate"] for row in curve], label=SHORT[name], **style)
            error_axis.plot(
                xs,
                [max(row["error_mean"], _FLOOR) for row in curve],
                label=f"{SHORT[name]} (mean)",
                **style,
            )
            if name in ("layered_thresholding", "layered_bp"):
                _draw_eps(error_axis, xs, curve, color, SHORT[name])
        error_axis.set_yscale("log")
        error_axis.set_ylabel(r"$\|\hat\Gamma_K - \Gamma_K\|_{2,\infty}$ (deepest code)")
        error_axis.set_xlabel(_X_LABEL[sweep])
        error_axis.grid(alpha=0.3)
        for axis in (rate_axis, error_axis):
            if sweep == "contrast":
                axis.invert_xaxis()
            if sweep == "depth":
                axis.set_xticks(sorted(p.depths))
        rate_axis.set_title(f"({'abc'[column]}) {sweep}")
        style_rate_axis(
            rate_axis, _X_LABEL[sweep], "support recovery rate (deepest code)", fontsize=8
        )
        error_axis.legend(fontsize=7)
    figure.suptitle(
        f"ML-CSC pursuits, {p.trials} trials per point: dashed = ε_L bound where its "
        "conditions hold, dotted = ε_L formula where they fail (no guarantee)"
    )
    return figure


def _layers_figure(rows: Rows, p: LayeredParams):
    figure, axes = new_figure(2, len(p.pursuits), width=4.2)
    for column, name in enumerate(p.pursuits):
        rate_axis, error_axis = axes[0, column], axes[1, column]
        for layer in range(1, p.depth + 1):
            curve = _select(rows, sweep="noise", pursuit=name, layer=layer)
            xs = [row["noise"] for row in curve]
            rate_axis.plot(xs, [r["support_rate"] for r in curve], marker="o", label=f"Γ{layer}")
            error_axis.plot(
                xs, [max(r["error_mean"], _FLOOR) for r in curve], marker="o", label=f"Γ{layer}"
            )
        rate_axis.set_title(SHORT[name])
        style_rate_axis(rate_axis, _X_LABEL["noise"], "support recovery rate", fontsize=8)
        error_axis.set_yscale("log")
        error_axis.set_ylabel(r"mean $\|\hat\Gamma_i - \Gamma_i\|_{2,\infty}$")
        error_axis.set_xlabel(_X_LABEL["noise"])
        error_axis.grid(alpha=0.3)
        error_axis.legend(fontsize=8)
    figure.suptitle(f"every layer versus noise (depth {p.depth}, contrast {p.contrast:g})")
    return figure


def _draw_eps(axis, xs, curve: Rows, color: str, label: str) -> None:
    """``ε_L`` of the deepest code: dashed where it applies, dotted where it does not."""
    bounds = [row["bound"] for row in curve]
    applies = [row["bound_applies"] for row in curve]
    for flag, style, text in (
        (True, "--", f"ε_L {label} (guaranteed)"),
        (False, ":", f"ε_L {label} formula (conditions fail)"),
    ):
        ys = [
            b if a == flag and b > 0 and math.isfinite(b) else math.nan
            for b, a in zip(bounds, applies, strict=True)
        ]
        if any(not math.isnan(y) for y in ys):
            axis.plot(xs, [max(y, _FLOOR) for y in ys], linestyle=style, color=color, label=text)


def curves(rows: Rows, p: LayeredParams) -> list[Curve]:
    """Support rate and mean error of every layer of every pursuit along every sweep."""
    out = []
    for sweep in SWEEPS:
        for name in p.pursuits:
            for layer in range(1, len(ARCHITECTURE) + 1):
                curve = _select(rows, sweep=sweep, pursuit=name, layer=layer)
                if not curve:
                    continue
                tag = f"{sweep}/{SHORT[name]}/layer{layer}"
                out.append(Curve.from_rows(f"{tag}/support_rate", curve, sweep, "support_rate"))
                out.append(Curve.from_rows(f"{tag}/error_mean", curve, sweep, "error_mean"))
    return out
