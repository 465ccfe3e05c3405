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
    """The ML-CSC projection, registered as ``"projection"``: FISTA on ``D_eff`` for ``Γ_K``.

    ``Γ_K ≈ argmin_Γ ½‖Y − D₁⋯D_KΓ‖² + β_K‖Γ‖₁`` (``Γ ≥ 0`` for ``soft_nonneg``) by ``n_iter``
    FISTA iterations (threshold ``s_Kβ_K``, step ``c₁⋯c_K``), warm-started by the forward pass;
    returns ``[D₂⋯D_KΓ_K, …, D_KΓ_K, Γ_K]``, codes consistent with the model by construction.
    The pursuit of Sulam, Papyan, Romano & Elad (2018, "Multi-layer convolutional sparse
    modeling: pursuit and dictionary learning", IEEE TSP). Needs the exact adjoint of ``D_eff``
    (no untied filters) and steps from ``‖D_eff‖²`` (normalised parametrisation).

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3)], pursuit="projection", n_iter=20,
        ...               threshold_init=0.05)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> gamma_1, gamma_2 = model(x, return_all=True)
        >>> tuple(gamma_1.shape), tuple(gamma_2.shape), bool((gamma_2 >= 0).all())
        ((2, 4, 10, 10), (2, 8, 8, 8), True)
        >>> torch.equal(gamma_1, model.dictionaries[1].synthesize(gamma_2, (10, 10)))  # D₂Γ₂
        True
        >>> MLCSC(1, [(4, 3), (8, 3)], pursuit="projection", untied=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: pursuit 'projection' cannot use untied filters (untied=True): ...
    """

    step_rules = ("chain",)
    untied = "never"
    parametrizations = ("normalized",)

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return layers.rebuild(self.deepest_code(layers, x, n_iter))

    def deepest_code(self, layers: LayerParameters, x: Tensor, n_iter: int) -> Tensor:
        """``Γ_K`` by FISTA on ``D_eff`` from the forward pass.

        Args:
            layers: the operators and numbers.
            x: images ``(B, C, H, W)``.
            n_iter: FISTA iterations.
        """
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
    """The projection then a refit, registered as ``"projection_refit"``: the non-zeros of
    ``Γ_K`` refitted on their support by least squares (non-negative ones for
    ``soft_nonneg``): :func:`refit_on_support` with ``n_iter`` FISTA iterations and the same
    step.

    The ℓ1 penalty that makes ``Γ_K`` sparse also shrinks every coefficient it keeps, by
    ``β_K`` in the direction of the gradient; at a few non-zeros per signal that bias dominates
    the reconstruction error whatever the dictionary. The refit keeps the support the ℓ1 pursuit
    chose and removes the bias (the "debiasing" step of compressed sensing, e.g. Figueiredo,
    Nowak & Wright 2007, IEEE Journal of Selected Topics in Signal Processing), so the codes the
    encoder returns are as sparse and reconstruct as well as that support allows. The
    projection itself is that of Sulam, Papyan, Romano & Elad (2018, IEEE TSP).

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> options = dict(n_iter=50, threshold_init=0.3, threshold_mode="soft")
        >>> plain = MLCSC(1, [(6, 5), (12, 5)], pursuit="projection", **options).double()
        >>> refit = MLCSC(1, [(6, 5), (12, 5)], pursuit="projection_refit", **options).double()
        >>> _ = refit.load_state_dict(plain.state_dict())
        >>> x = torch.rand(2, 1, 13, 13, dtype=torch.float64)
        >>> gamma, refitted = plain(x), refit(x)
        >>> torch.equal(gamma != 0, refitted != 0)  # the support of the ℓ1 pursuit is kept
        True
        >>> def error(code):
        ...     return float((x - plain.reconstruct(code, (13, 13))).norm().detach())
        >>> error(refitted) < error(gamma)  # without the ℓ1 shrinkage
        True
    """

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        gamma = self.deepest_code(layers, x, n_iter)
        effective = EffectiveDictionary(layers.dictionaries, layers.sizes)
        step = layers.compound_steps()[-1]
        nonnegative = layers.mode == "soft_nonneg"
        return layers.rebuild(refit_on_support(effective, x, gamma, step, n_iter, nonnegative))


@register_pursuit("projection_omp")
class ProjectionOMP(Pursuit):
    """The ML-CSC projection with an ℓ0 pursuit, registered as ``"projection_omp"``:
    ``Γ_K`` by OMP on ``D_eff = D₁⋯D_K`` with ``n_iter`` iterations (so at most ``n_iter``
    non-zeros per signal: one atom per iteration), then ``Γ_{j−1} = D_jΓ_j``; ``n_iter = 0`` is
    the forward pass.

    ``Γ_K ≈ argmin ‖Y − D_effΓ‖₂ s.t. ‖Γ‖₀ ≤ n_iter``: the projection of Sulam, Papyan, Romano &
    Elad (2018, IEEE TSP) with the OMP of Pati, Rezaiifar & Krishnaprasad (1993, Asilomar
    Conference) in place of basis pursuit.

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
    the input. The selection runs as a custom operator (``torch.library.custom_op``), whose
    first call in a process also imports torch's compiler stack (about two seconds on a CPU).

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import DenseDictionary, MLCSC
        >>> from mlcsc.pursuit import omp
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3)], pursuit="projection_omp", n_iter=3,
        ...               threshold_mode="soft").double()
        >>> x = torch.randn(2, 1, 7, 7, dtype=torch.float64)
        >>> gamma_1, gamma_2 = model(x, return_all=True)
        >>> (gamma_2 != 0).flatten(1).sum(1).tolist()  # n_iter atoms per signal
        [3, 3]
        >>> torch.equal(gamma_1, model.dictionaries[1].synthesize(gamma_2, (5, 5)))  # D₂Γ₂
        True
        >>> D_eff = model.step_operators((7, 7))[-1]  # D₁D₂ on 7 × 7 images
        >>> codes = omp(DenseDictionary(D_eff.matrix()), x.flatten(1), k=3)
        >>> torch.allclose(gamma_2.flatten(1), codes)  # OMP on the explicit D₁D₂
        True
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

    The debiasing step that follows an ℓ1 pursuit (e.g. Figueiredo, Nowak & Wright 2007,
    IEEE Journal of Selected Topics in Signal Processing), solved by the accelerated gradient
    method of Beck & Teboulle (2009, SIAM Journal on Imaging Sciences) projected onto the
    support.

    Args:
        dictionary: ``D`` with ``synthesize``/``analyze`` (e.g. an
            :class:`~mlcsc.EffectiveDictionary`).
        x: the signals.
        gamma: their codes, whose non-zeros are refitted.
        step: gradient step, at most ``1/‖D‖²`` for a monotone decrease.
        n_iter: iterations (0 returns ``gamma``).
        nonnegative: keep the refitted entries ``≥ 0``.

    Returns:
        The refitted codes, shaped as ``gamma``.

    Shape:
        - x: ``(B, n)`` or ``(B, C, H, W)``.
        - gamma: ``(B, m)`` or ``(B, m, H', W')``.
        - output: shaped as ``gamma``.

    Examples:
        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = DenseDictionary(torch.randn(20, 40, dtype=torch.float64))
        >>> x = torch.randn(1, 20, dtype=torch.float64)
        >>> gamma = torch.zeros(1, 40, dtype=torch.float64)
        >>> gamma[0, [3, 11, 25]] = 1.0  # the support to refit on
        >>> refit = refit_on_support(D, x, gamma, 1 / float(D.lipschitz()), n_iter=500)
        >>> torch.equal(refit != 0, gamma != 0)
        True
        >>> best = torch.linalg.lstsq(D.weight[:, [3, 11, 25]], x[0]).solution
        >>> torch.allclose(refit[0, [3, 11, 25]], best)
        True
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
    """The ML-CSC projection with an explicit (or estimated) step: the functional form of
    :class:`Projection`.

    ``Γ_K ≈ argmin_Γ ½‖x − D₁⋯D_KΓ‖² + β_K‖Γ‖₁`` (``Γ ≥ 0`` for ``"soft_nonneg"``) by
    ``n_iter`` FISTA iterations from the forward pass, then ``Γ_{j−1} = D_jΓ_j``: the pursuit
    of Sulam, Papyan, Romano & Elad (2018, "Multi-layer convolutional sparse modeling: pursuit
    and dictionary learning", IEEE TSP).

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: signals ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]``: ``β_K`` is the ℓ1 weight of the deepest code; all of them
            act in the forward pass that starts FISTA (zeros start it from ``T(D_effᵀ…)``).
        n_iter: FISTA iterations.
        mode: ``"soft"`` (signed codes) or ``"soft_nonneg"`` (``Γ_K ≥ 0``).
        step: FISTA step; default ``1/‖D₁⋯D_K‖²`` (power iteration on the chain).

    Returns:
        ``[Γ₁, …, Γ_K]`` with ``Γ_{j−1} = D_jΓ_j``.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        The deepest code is FISTA's on ``D_eff = D₁D₂``, started from the forward pass:

        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> from mlcsc.pursuit import fista, thresholding
        >>> _ = torch.manual_seed(0)
        >>> W1 = torch.randn(16, 24, dtype=torch.float64)
        >>> W2 = torch.randn(24, 32, dtype=torch.float64)
        >>> x = torch.randn(5, 16, dtype=torch.float64)
        >>> D_eff = DenseDictionary(W1 @ W2)
        >>> step = 1 / float(D_eff.lipschitz())
        >>> stack = [DenseDictionary(W1), DenseDictionary(W2)]
        >>> gamma_1, gamma_2 = mlcsc_projection(stack, x, [0.0, 0.3], n_iter=30, step=step)
        >>> start = thresholding(D_eff, x, threshold=0.3, mode="soft")
        >>> same = fista(D_eff, x, 0.3, max_iter=30, tol=0, x0=start, step=step)
        >>> torch.allclose(gamma_2, same), torch.equal(gamma_1, stack[1].synthesize(gamma_2))
        (True, True)
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode)
    if step is None:
        step = 1.0 / float(EffectiveDictionary(dictionaries, layers.sizes).lipschitz())
    layers.steps = [1.0] * (len(dictionaries) - 1) + [step]
    return Projection()(layers, x, n_iter)
