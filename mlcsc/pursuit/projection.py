"""The ML-CSC projection (Sulam, Papyan, Romano & Elad 2018): estimate only the deepest code.

"Multi-Layer Convolutional Sparse Modeling: Pursuit and Dictionary Learning", IEEE TSP. The
projection of a signal onto the ML-CSC model solves a single basis pursuit on the effective
dictionary ``D_eff = D₁⋯D_K``,

    Γ_K = argmin_Γ ½‖Y − D₁⋯D_KΓ‖₂² + β_K‖Γ‖₁     (optionally Γ ≥ 0),

by FISTA with step ``ρ_K/‖D_eff‖²`` started from the forward pass, and then sets the
intermediate codes from it, ``Γ_{j−1} = D_jΓ_j``: every layer's code is consistent with the
model by construction, and the intermediate codes are sparse when the deeper filters are. It is
the pursuit of that paper's dictionary learning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mlcsc.dictionary import DenseDictionary
from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.pursuit.base import LayerParameters, Pursuit, fista_momentum, forward_pass
from mlcsc.pursuit.multilayer import MLFISTA
from mlcsc.pursuit.nonnegative_omp import nonnegative_omp
from mlcsc.pursuit.omp import MAX_EXPLICIT_ENTRIES, omp
from mlcsc.pursuit.registry import register_pursuit

__all__ = [
    "Projection",
    "ProjectionOMP",
    "ProjectionRefit",
    "mlcsc_projection",
    "refit_on_support",
]


@register_pursuit("projection")
class Projection(Pursuit):
    """FISTA on ``D_eff`` for ``Γ_K`` (threshold ``s_Kβ_K``, step ``c₁⋯c_K``), warm-started by
    the forward pass; returns ``[D₂⋯D_KΓ_K, …, D_KΓ_K, Γ_K]``. Needs the exact adjoint of
    ``D_eff`` (no untied filters) and steps from ``‖D_eff‖²`` (normalised parametrisation)."""

    step_rules = ("chain",)
    untied = "never"
    parametrizations = ("normalized",)

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return layers.rebuild(self.deepest_code(layers, x, n_iter))

    def deepest_code(self, layers: LayerParameters, x: Tensor, n_iter: int) -> Tensor:
        """``Γ_K`` by FISTA on ``D_eff`` from the forward pass."""
        # ML-FISTA on the one-layer stack [D_eff], started from the forward pass of the stack
        effective = EffectiveDictionary(layers.dictionaries, layers.sizes)
        deepest = LayerParameters(
            [effective],
            [effective],
            [layers.sizes[0]],
            [layers.thresholds[-1]],
            layers.mode,
            steps=[layers.compound_steps()[-1]],
            threshold_scales=[layers.step_threshold_scales(compound=True)[-1]],
        )
        start = forward_pass(layers, x)[-1:]
        (gamma,) = MLFISTA().iterate(deepest, x, start, n_iter)
        return gamma


@register_pursuit("projection_refit")
class ProjectionRefit(Projection):
    """The projection, then the non-zeros of ``Γ_K`` refitted on their support by least
    squares (non-negative ones for ``soft_nonneg``): :func:`refit_on_support` with ``n_iter``
    FISTA iterations and the same step.

    The ℓ1 penalty that makes ``Γ_K`` sparse also shrinks every coefficient it keeps, by
    ``β_K`` in the direction of the gradient; at a few non-zeros per signal that bias dominates
    the reconstruction error whatever the dictionary. The refit keeps the support the ℓ1 pursuit
    chose and removes the bias (the "debiasing" step of compressed sensing), so the codes the
    encoder returns are as sparse and reconstruct as well as that support allows.
    """

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        gamma = self.deepest_code(layers, x, n_iter)
        effective = EffectiveDictionary(layers.dictionaries, layers.sizes)
        step = layers.compound_steps()[-1]
        nonnegative = layers.mode == "soft_nonneg"
        return layers.rebuild(refit_on_support(effective, x, gamma, step, n_iter, nonnegative))


@register_pursuit("projection_omp")
class ProjectionOMP(Pursuit):
    """The ML-CSC projection with an ℓ0 pursuit: ``Γ_K`` by OMP on ``D_eff = D₁⋯D_K`` with
    ``n_iter`` iterations (so at most ``n_iter`` non-zeros per signal: one atom per iteration),
    then ``Γ_{j−1} = D_jΓ_j``; ``n_iter = 0`` is the forward pass.

    OMP selects atoms by normalised correlation and refits every kept coefficient by least
    squares, so the codes carry no ℓ1 shrinkage and atoms of different effective norms compete
    fairly (an ℓ1 penalty favours the larger ones). It runs on the explicit matrix of ``D_eff``
    (:func:`~mlcsc.pursuit.omp`; a ValueError names the size when that matrix would exceed
    :data:`~mlcsc.pursuit.omp.MAX_EXPLICIT_ENTRIES`), so it suits small images whose deepest
    code is small (the lecture's MNIST model: a 784 × 1,024 matrix). The thresholds take no part
    beyond the forward pass. With ``threshold_mode="soft_nonneg"`` the codes are non-negative
    (:func:`~mlcsc.pursuit.nonnegative_omp`: positive correlations, non-negative least squares),
    otherwise signed. OMP's codes are (non-negative) least squares on their support, hence a
    fixed point of :func:`refit_on_support`; ``n_iter`` such iterations (step ``c₁⋯c_K``)
    follow, which leave the codes as they are and carry the gradient to the dictionaries and
    the input.
    """

    step_rules = ("chain",)
    parametrizations = ("normalized",)
    untied = "never"

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        if n_iter == 0:
            return layers.rebuild(forward_pass(layers, x)[-1])
        effective = EffectiveDictionary(layers.dictionaries, layers.sizes)
        code_shape = effective.code_shape(x)
        step = layers.compound_steps()[-1]
        atoms = _deepest_atoms(layers)
        matrix = atoms
        if matrix is None:  # the general case: one-hot codes through the whole stack
            matrix = effective.matrix(tuple(x.shape[-2:]), max_entries=MAX_EXPLICIT_ENTRIES)
        nonnegative = layers.mode == "soft_nonneg"
        with torch.no_grad():
            signals = x.detach().flatten(1).to(matrix.dtype)
            codes = _omp_codes(matrix.detach(), signals, n_iter, nonnegative).to(x.dtype)
        if atoms is not None:  # the refit on the matrix itself: cheap, and differentiable
            operator = _MatrixOperator(matrix)
            codes = refit_on_support(operator, x.flatten(1), codes, step, n_iter, nonnegative)
            return layers.rebuild(codes.view(len(x), *code_shape))
        codes = codes.view(len(x), *code_shape)
        return layers.rebuild(refit_on_support(effective, x, codes, step, n_iter, nonnegative))


@torch.library.custom_op("mlcsc::projection_omp_codes", mutates_args=())
def _omp_codes(matrix: Tensor, signals: Tensor, k: int, nonnegative: bool) -> Tensor:
    """OMP (or non-negative OMP) codes ``(B, N)`` of ``signals`` ``(B, n)`` over the ``(n, N)``
    matrix. A custom operator: ``torch.compile`` keeps the greedy selection, whose loop
    branches on the data, as one opaque call inside its graph instead of breaking it."""
    pursuit = nonnegative_omp if nonnegative else omp
    return pursuit(DenseDictionary(matrix), signals, k=k)


@_omp_codes.register_fake
def _(matrix: Tensor, signals: Tensor, k: int, nonnegative: bool) -> Tensor:
    return signals.new_empty(signals.shape[0], matrix.shape[1])


class _MatrixOperator:
    """An explicit ``(n, N)`` matrix as a dictionary of flattened signals, kept in the graph."""

    def __init__(self, matrix: Tensor):
        self.matrix = matrix

    def synthesize(self, codes: Tensor, size=None) -> Tensor:
        return codes @ self.matrix.T

    def analyze(self, signals: Tensor) -> Tensor:
        return signals @ self.matrix


def _deepest_atoms(layers: LayerParameters) -> Tensor | None:
    """The explicit matrix of ``D_eff`` when the deepest code is a single position whose filters
    span the whole signal of the layer below (the lecture's models): the deepest filters
    synthesised by ``D₁⋯D_{K−1}`` as one batch, differentiable in every filter; otherwise
    ``None``."""
    top, size = layers.dictionaries[-1], layers.sizes[-1]
    weight = getattr(top, "weight", None)
    whole = (
        isinstance(size, tuple)
        and weight is not None
        and weight.ndim == 4
        and getattr(top, "padding", None) == 0
        and tuple(weight.shape[-2:]) == size
    )
    if not whole:
        return None
    weights = [d.weight for d in layers.dictionaries]
    graph = torch.is_grad_enabled() and any(w.requires_grad for w in weights)
    # without a graph the matrix depends only on the filters: kept on the deepest dictionary
    # until any filter changes (in-place updates bump a tensor's version)
    if torch.compiler.is_compiling():
        graph = True  # a compiled graph rebuilds the matrix (tensor versions are not traced)
    key = None if graph else (tuple((w._version, w.dtype, w.device) for w in weights),
                              tuple(layers.sizes))  # fmt: skip
    cached = getattr(top, "_effective_matrix_cache", None)
    if not graph and cached is not None and cached[0] == key:
        return cached[1]
    atoms = weight  # (m_K, m_{K−1}, k, k): each filter is its own rebuilt Γ_{K−1}
    for j in range(len(layers.dictionaries) - 2, -1, -1):
        atoms = layers.dictionaries[j].synthesize(atoms, layers.sizes[j])
    matrix = atoms.flatten(1).T  # (C·H·W, m_K)
    if not graph:
        top._effective_matrix_cache = (key, matrix)
    return matrix


def refit_on_support(
    dictionary,
    x: Tensor,
    gamma: Tensor,
    step: float | Tensor,
    n_iter: int,
    nonnegative: bool = False,
) -> Tensor:
    """Least squares ``min ½‖x − Dγ‖²`` over the codes with the support of ``gamma`` (and
    ``γ ≥ 0`` when ``nonnegative``), by ``n_iter`` FISTA iterations of step ``step ≤ 1/‖D‖²``
    started from ``gamma``; entries outside the support stay zero. Differentiable.

    Args:
        dictionary: ``D`` with ``synthesize``/``analyze`` (e.g. an
            :class:`~mlcsc.EffectiveDictionary`).
        x: the signals; ``gamma``: their codes, whose non-zeros are refitted.
        step: gradient step, at most ``1/‖D‖²`` for a monotone decrease.
        n_iter: iterations (0 returns ``gamma``).
        nonnegative: keep the refitted entries ``≥ 0``.

    Returns:
        The refitted codes, shaped as ``gamma``.
    """
    support = (gamma != 0).to(gamma.dtype)
    size = tuple(x.shape[-2:]) if x.ndim == 4 else None
    current = previous = gamma
    for weight in fista_momentum(n_iter, published=False):
        point = current + weight * (current - previous) if weight else current
        residual = dictionary.synthesize(point, size) - x
        update = (point - step * dictionary.analyze(residual)) * support
        previous, current = current, torch.relu(update) if nonnegative else update
    return current


def mlcsc_projection(
    dictionaries: Sequence,
    x: Tensor,
    thresholds: Sequence,
    n_iter: int,
    mode: str = "soft",
    step: float | Tensor | None = None,
) -> list[Tensor]:
    """The ML-CSC projection with an explicit (or estimated) step.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: signals ``(B, C, H, W)``.
        thresholds: ``[β₁, …, β_K]``: ``β_K`` is the ℓ1 weight of the deepest code; all of them
            act in the forward pass that starts FISTA (zeros start it from ``T(D_effᵀ…)``).
        n_iter: FISTA iterations.
        mode: ``"soft"`` (signed codes) or ``"soft_nonneg"`` (``Γ_K ≥ 0``).
        step: FISTA step; default ``1/‖D₁⋯D_K‖²`` (power iteration on the chain).

    Returns:
        ``[Γ₁, …, Γ_K]`` with ``Γ_{j−1} = D_jΓ_j``.
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode)
    if step is None:
        step = 1.0 / float(EffectiveDictionary(dictionaries, layers.sizes).lipschitz())
    layers.steps = [1.0] * (len(dictionaries) - 1) + [step]
    return Projection()(layers, x, n_iter)
