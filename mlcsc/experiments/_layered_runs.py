"""The pursuit runs of :mod:`~mlcsc.experiments.layered_pursuits`: the settings of the three
sweeps, the signals of a setting, the five pursuits on them, and the per-layer measures."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mlcsc.experiments._common import relative_support
from mlcsc.experiments._mlcsc_model import ARCHITECTURE, INPUT_SIZE, layer_steps, patch_sizes
from mlcsc.functional import threshold
from mlcsc.pursuit import (
    chain_steps,
    fista,
    ml_fista,
    ml_ista,
    mlcsc_projection,
    multilayer_bp_objective,
)
from mlcsc.theory import (
    l2_inf_norm,
    layered_bp_guarantee,
    layered_thresholding_guarantee,
    mlcsc_signals,
)

if TYPE_CHECKING:
    from mlcsc.experiments.layered_pursuits import LayeredParams

__all__ = ["PURSUITS", "SWEEPS", "run_sweeps", "thresholding_modes"]

#: the pursuits compared, by name
PURSUITS = ("layered_thresholding", "layered_bp", "ml_ista", "ml_fista", "projection")

#: the three sweeps: what varies in each
SWEEPS = ("noise", "contrast", "depth")

#: relative thresholds tried when tuning layered thresholding
_TUNING_GRID = tuple(0.02 * i for i in range(1, 51))

Setting = tuple[int, float, float]  # (depth, noise, contrast)


def run_sweeps(p: LayeredParams, model: list) -> list[dict[str, Any]]:
    """The rows of the three sweeps, in the order of :data:`SWEEPS`, each row with its
    ``sweep``; a setting shared by two sweeps is run once."""
    settings: dict[str, list[Setting]] = {
        "noise": [(p.depth, level, p.contrast) for level in p.noise_levels],
        "contrast": [(p.depth, p.noise, c) for c in p.contrasts],
        "depth": [(d, p.noise, p.contrast) for d in p.depths],
    }
    cache: dict[Setting, list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for sweep in SWEEPS:
        for key in settings[sweep]:
            if key not in cache:
                cache[key] = _setting(*key, p, model)
            rows.extend({"sweep": sweep, **row} for row in cache[key])
    return rows


def thresholding_modes(nonneg: bool) -> tuple[str, str]:
    """Thresholding operators of (layered thresholding, the ℓ1 pursuits)."""
    return ("soft_nonneg", "soft_nonneg") if nonneg else ("hard", "soft")


# ---------------------------------------------------------------------------------- measures
def _support_match(estimate: Tensor, truth: Tensor, fraction: float) -> Tensor:
    """``(B,)`` bool: the estimated support equals the true one."""
    return (relative_support(estimate, fraction) == (truth.flatten(1) != 0)).all(dim=1)


def _support_contains(estimate: Tensor, truth: Tensor, fraction: float) -> Tensor:
    """``(B,)`` bool: the estimated support contains the true one (misses nothing; it may
    hold extra entries)."""
    return (relative_support(estimate, fraction) | (truth.flatten(1) == 0)).all(dim=1)


def _guarantee_rows(guarantee) -> list[tuple[float, float]]:
    """Per layer: (fraction of trials whose conditions hold at layers 1…i, ε_L^i)."""
    holds = None
    out = []
    for layer in guarantee.layers:
        per_signal = layer.holds_per_signal
        holds = per_signal if holds is None else holds & per_signal
        out.append((float(holds.double().mean()), float(layer.error_bound)))
    return out


# ---------------------------------------------------------------------------------- pursuits
def _tune_thresholds(dictionaries, x: Tensor, codes: list[Tensor], p: LayeredParams):
    """Layer by layer, the threshold of :data:`_TUNING_GRID` ``·max|Γ_i|`` that recovers the
    most supports of the tuning batch (ties: the smallest squared error)."""
    mode, _ = thresholding_modes(p.nonneg)
    betas = []
    signal = x
    for dictionary, truth in zip(dictionaries, codes, strict=True):
        z = dictionary.analyze(signal)
        top = float(truth.abs().max())
        best: tuple[float, float, float] | None = None
        for fraction in _TUNING_GRID:
            beta = fraction * top
            estimate = threshold(z, beta, mode)
            rate = float(_support_match(estimate, truth, p.support_fraction).double().mean())
            error = float((estimate - truth).pow(2).sum())
            if best is None or (rate, -error) > (best[0], -best[1]):
                best = (rate, error, beta)
        assert best is not None
        betas.append(best[2])
        signal = threshold(z, best[2], mode)
    return betas


def _lambda(noise: float, p: LayeredParams) -> float:
    first = ARCHITECTURE[0][1]
    return p.bp_lambda + noise / first


def _pursue(name: str, dictionaries, x: Tensor, p: LayeredParams, extra: dict[str, Any]):
    """Run one pursuit; returns ``([Γ̂₁, …, Γ̂_K], per-layer thresholds, objective)``.

    The objective (mean over the signals) is the one the pursuit minimises:
    ``½‖x − D₁⋯D_KΓ̂_K‖² + Σ_i β_i‖Γ̂_i‖₁`` with its thresholds ``β_i`` (``λ`` at every layer
    for ML-ISTA / ML-FISTA, ``[0, …, 0, λ]`` for the projection); NaN for the layered pursuits.
    """
    lt_mode, l1_mode = thresholding_modes(p.nonneg)
    depth = len(dictionaries)
    if name == "layered_thresholding":
        betas = extra["betas"]
        codes, signal = [], x
        for dictionary, beta in zip(dictionaries, betas, strict=True):
            signal = threshold(dictionary.analyze(signal), beta, lt_mode)
            codes.append(signal)
        return codes, list(betas), math.nan
    lam = extra["lambda"]
    if name == "layered_bp":
        codes, signal = [], x
        for dictionary, step in zip(dictionaries, extra["layer_steps"], strict=True):
            signal = fista(
                dictionary, signal, lam, max_iter=p.n_iter, tol=1e-6, nonneg=p.nonneg, step=step
            )
            codes.append(signal)
        return codes, [lam] * depth, math.nan
    steps = extra["chain_steps"]
    if name == "projection":
        # ℓ1 on the deepest code only; the zero thresholds also make the start S_λ(D_effᵀx)
        thresholds = [0.0] * (depth - 1) + [lam]
        step = math.prod(steps)  # c₁⋯c_K = 1/‖D₁⋯D_K‖², the compound step of ML-ISTA
        codes = mlcsc_projection(dictionaries, x, thresholds, p.n_iter, mode=l1_mode, step=step)
    else:
        thresholds = [lam] * depth
        pursuit = ml_ista if name == "ml_ista" else ml_fista
        codes = pursuit(dictionaries, x, thresholds, steps, p.n_iter, mode=l1_mode)
    objective = multilayer_bp_objective(dictionaries, x, codes[-1], thresholds)
    return codes, thresholds, float(objective.mean())


# ---------------------------------------------------------------------------------- a setting
def _setting(depth: int, noise: float, contrast: float, p: LayeredParams, model) -> list[dict]:
    """Draw the signals of one setting, run every pursuit, measure every layer."""
    dictionaries = model[:depth]
    # one seed per setting, so that a setting shared by two sweeps is the same draw
    key = p.seed * 1_000_003 + depth * 7919 + round(noise * 1e6) * 31 + round(contrast * 1e6)
    generator = torch.Generator().manual_seed(key % (2**63 - 1))

    def draw():
        return mlcsc_signals(
            dictionaries,
            p.trials,
            INPUT_SIZE,
            p.deepest_cardinality,
            coefficient_range=(contrast, 1.0),
            noise_l2_inf=noise,
            generator=generator,
        )

    x, codes = draw()
    extra: dict[str, Any] = {}
    if "layered_thresholding" in p.pursuits:
        x_tune, codes_tune = draw()
        extra["betas"] = _tune_thresholds(dictionaries, x_tune, codes_tune, p)
    extra["lambda"] = _lambda(noise, p)
    # layered BP: one problem per layer, step 1/‖D_i‖²; the multi-layer pursuits act on the
    # deepest code through D₁⋯D_j: chain steps c₁⋯c_j = 1/‖D₁⋯D_j‖² (MODEL.md §3b)
    extra["layer_steps"] = layer_steps(dictionaries)
    extra["chain_steps"] = chain_steps(dictionaries, x)
    clean = dictionaries[0].synthesize(codes[0], (INPUT_SIZE, INPUT_SIZE))
    noise_tensor = x - clean
    theory = {
        "layered_thresholding": _guarantee_rows(
            layered_thresholding_guarantee(dictionaries, codes, noise_tensor)
        ),
        "layered_bp": _guarantee_rows(layered_bp_guarantee(dictionaries, codes, noise_tensor)),
    }
    patches = patch_sizes(dictionaries)
    signal_energy = float(l2_inf_norm(clean, dictionaries[0]).mean())
    rows = []
    for name in p.pursuits:
        estimates, thresholds, objective = _pursue(name, dictionaries, x, p, extra)
        for i, (estimate, truth) in enumerate(zip(estimates, codes, strict=True)):
            error = l2_inf_norm(estimate - truth, patches[i]).double()
            found = relative_support(estimate, p.support_fraction).sum(dim=1).double()
            scale = l2_inf_norm(truth, patches[i]).double().clamp_min(1e-30)
            condition_rate, bound = theory.get(name, [(math.nan, math.nan)] * depth)[i]
            rows.append(
                {
                    "depth": depth,
                    "noise": noise,
                    "contrast": contrast,
                    "pursuit": name,
                    "layer": i + 1,
                    "deepest": i + 1 == depth,
                    "support_rate": float(
                        _support_match(estimate, truth, p.support_fraction).double().mean()
                    ),
                    "support_contained_rate": float(
                        _support_contains(estimate, truth, p.support_fraction).double().mean()
                    ),
                    "support_size_mean": float(found.mean()),
                    "error_mean": float(error.mean()),
                    "error_max": float(error.max()),
                    "relative_error_mean": float((error / scale).mean()),
                    "true_nnz_mean": float((truth != 0).flatten(1).sum(1).double().mean()),
                    "threshold": float(thresholds[i]),
                    "bound": bound,
                    "condition_rate": condition_rate,
                    "bound_applies": condition_rate == 1.0,
                    "objective": objective,
                    "signal_l2_inf_mean": signal_energy,
                    "trials": p.trials,
                    "n_iter": p.n_iter if name != "layered_thresholding" else 0,
                }
            )
    return rows
