"""The contract between a multi-layer pursuit and the encoder that runs it.

A multi-layer pursuit maps images ``Y`` to the codes ``[Γ₁, …, Γ_K]`` of the ML-CSC model
``Y ≈ D₁Γ₁, Γ₁ ≈ D₂Γ₂, …``. Every pursuit in mlcsc is written once, against
:class:`LayerParameters`: the per-layer operators and the per-layer numbers of its update
equations. Two parametrisations resolve a model's parameters into those numbers
(:class:`~mlcsc.MLCSC` does it, see ``MLCSC(parametrization=...)``):

* ``"normalized"`` (mlcsc's default): thresholds ``β_j`` are ℓ1 weights and the steps come from
  the norms of the operators they act on, so that the unrolled iterations converge as fast as
  the mathematics allows (:mod:`mlcsc.pursuit.multilayer`);
* ``"reference"``: the equations of Sulam, Aberdam, Beck & Elad (2019)'s public networks, with a
  learnable absolute step ``c_j`` and an additive bias ``b_j = −β_j``.

Both are one set of equations with different numbers. For layer ``j`` (``Γ₀ = Y``):

* forward pass (layered thresholding): ``Γ_j = T(a_j·B_jᵀΓ_{j−1}, β_j)``;
* gradient step on layer ``j`` at a point ``Γ̂_j``:
  ``Γ_j = T(Γ̂_j − c_j·B_jᵀ(D_jΓ̂_j − Γ_{j−1}), s_j·β_j)``,

where ``T`` is the thresholding operator (``soft_nonneg`` = ReLU with bias ``−β``), ``D_j`` the
synthesis dictionary, ``B_j`` the operator whose adjoint is applied (``D_j`` itself unless the
filters are untied), ``a_j`` the forward scale, ``c_j`` the step and ``s_j`` the factor that
scales the threshold after a step (the compound step ``c₁⋯c_j`` for ML-ISTA in the normalised
parametrisation, 1 for the reference equations).

A pursuit is a :class:`Pursuit` subclass registered by name with
:func:`~mlcsc.pursuit.register_pursuit`; it declares what it needs (which step rule, untied
filters, filters per unfolding, which parametrisations) and :class:`~mlcsc.MLCSC` provides
exactly that. Adding a pursuit is one such class and one ``configs/model/<name>.yaml``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from mlcsc.functional import threshold
from mlcsc.pursuit.proximal import proximal_gradient_step

__all__ = [
    "PARAMETRIZATIONS",
    "STEP_RULES",
    "UNTIED",
    "LayerParameters",
    "Pursuit",
    "fista_momentum",
    "forward_pass",
    "gradient_step",
    "signal_sizes",
]

#: how a model's parameters become the numbers of the pursuit equations
PARAMETRIZATIONS = ("normalized", "reference")
#: how the normalised parametrisation sizes the steps: ``"chain"`` (compound step of layer ``j``
#: from ``‖D₁⋯D_j‖²``) or ``"layer"`` (step of layer ``j`` from ``‖D_j‖²``)
STEP_RULES = ("chain", "layer")
#: what a pursuit needs of untied analysis filters
UNTIED = ("never", "optional", "required")


@dataclass
class LayerParameters:
    """The per-layer operators and numbers a multi-layer pursuit runs with (``j = 1…K``).

    One record holds everything the update equations of :mod:`mlcsc.pursuit.base` need: the
    forward pass ``Γ_j = T(a_j·B_jᵀΓ_{j−1}, β_j)`` and the gradient step
    ``Γ_j = T(Γ̂_j − c_j·B_jᵀ(D_jΓ̂_j − Γ_{j−1}), s_j·β_j)``, in the notation of the ML-CSC
    model (Papyan, Romano & Elad 2017, JMLR) and of ML-ISTA (Sulam, Aberdam, Beck & Elad 2019,
    IEEE TPAMI). :meth:`~mlcsc.MLCSC.layer_parameters` builds it from a model;
    :meth:`explicit` builds it from plain lists, as the functional forms do.

    Attributes:
        dictionaries: synthesis dictionaries ``D_j`` (rebuilding ``Γ̂_{j−1} = D_jΓ̂_j``).
        analysis: the operators ``B_j`` whose adjoints the pursuit applies (``D_j`` when tied;
            for ML-LISTA the ``W_j`` of its Gram term).
        sizes: spatial size of the signal of every dictionary, ``[(H, W), (H₁, W₁), …]``
            (synthesis needs it for strided layers; ``None`` entries for dense dictionaries).
        thresholds: ``β_j``, scalars or per-channel ``(m_j,)`` tensors.
        mode: the thresholding operator (:data:`mlcsc.functional.THRESHOLD_MODES`).
        forward_scales: ``a_j`` of the forward pass (1, or the reference step ``c_j``).
        steps: ``c_j``, or ``None`` for a pursuit that takes no gradient steps.
        threshold_scales: ``s_j``: a gradient step of layer ``j`` thresholds at ``s_j·β_j``;
            ``None`` lets the pursuit scale by its steps (ML-ISTA by the compound step
            ``c₁⋯c_j``, layered BP by ``c_j``: :meth:`step_threshold_scales`); the reference
            parametrisation gives ones (additive biases).
        published_momentum: ML-FISTA's momentum schedule of the public code (non-zero from the
            second iteration on) instead of Beck & Teboulle's counted from the forward pass.
        unfolded: for pursuits with filters and thresholds of their own in every unfolding
            (All Free): one ``(dictionaries, thresholds)`` pair per unfolding ``t = 1…T``.
        checkpointing: recompute each iteration in the backward pass instead of keeping its
            intermediate tensors (gradient checkpointing: memory of one iteration instead of
            ``T``, at the cost of one more forward pass; same gradients).

    Shape:
        - signals ``x``: ``(B, C, H, W)`` (convolutional) or ``(B, n)`` (dense).
        - codes: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> stack = [DenseDictionary(torch.randn(6, 8)), DenseDictionary(torch.randn(8, 10))]
        >>> x = torch.zeros(3, 6)
        >>> layers = LayerParameters.explicit(stack, x, [0.1, 0.2], steps=[0.5, 0.25])
        >>> layers.num_layers, layers.sizes, layers.forward_scales
        (2, [None, None], [1.0, 1.0])
        >>> layers.compound_steps(), layers.step_threshold_scales(compound=False)
        ([0.5, 0.125], [0.5, 0.25])
        >>> [tuple(code.shape) for code in layers.rebuild(torch.ones(3, 10))]  # [D₂Γ₂, Γ₂]
        [(3, 8), (3, 10)]
    """

    dictionaries: Sequence
    analysis: Sequence
    sizes: Sequence
    thresholds: Sequence
    mode: str = "soft_nonneg"
    forward_scales: Sequence | None = None
    steps: Sequence | None = None
    threshold_scales: Sequence | None = None
    published_momentum: bool = False
    unfolded: Sequence | None = None
    checkpointing: bool = False

    def __post_init__(self) -> None:
        count = len(self.dictionaries)
        if self.forward_scales is None:
            self.forward_scales = [1.0] * count

    @classmethod
    def explicit(
        cls, dictionaries, x: Tensor, thresholds, mode="soft_nonneg", steps=None, analysis=None
    ) -> LayerParameters:
        """The normalised equations with explicit per-layer steps (the functional forms
        :func:`~mlcsc.pursuit.ml_ista`, …): signal sizes from ``x``, tied filters unless
        ``analysis`` is given.

        Args:
            dictionaries: ``[D₁, …, D_K]``.
            x: signals ``(B, C, H, W)`` or ``(B, n)``; only their spatial size is used.
            thresholds: ``[β₁, …, β_K]``, scalars or ``(m_j,)`` tensors.
            mode: the thresholding operator.
            steps: ``[c₁, …, c_K]``, or ``None`` for a pursuit without steps.
            analysis: ``[B₁, …, B_K]`` in place of the dictionaries' own adjoints.
        """
        return cls(
            dictionaries,
            analysis or dictionaries,
            signal_sizes(dictionaries, x),
            thresholds,
            mode,
            steps=None if steps is None else list(steps),
        )

    @property
    def num_layers(self) -> int:
        return len(self.dictionaries)

    def compound_steps(self) -> list:
        """``[c₁, c₁c₂, …, c₁⋯c_K]``: the step each layer's update takes on the deepest code."""
        if self.steps is None:
            raise ValueError("this pursuit runs without steps")
        return list(itertools.accumulate(self.steps, lambda a, b: a * b))

    def step_threshold_scales(self, compound: bool) -> list:
        """``s_j``: :attr:`threshold_scales` when given, else the compound steps ``c₁⋯c_j``
        (``compound=True``: a step of layer ``j`` acts on the deepest code) or the steps
        ``c_j`` (a layer's own problem); ones without steps."""
        if self.threshold_scales is not None:
            return list(self.threshold_scales)
        if self.steps is None:
            return [1.0] * self.num_layers
        return self.compound_steps() if compound else list(self.steps)

    def rebuild(self, gamma_K: Tensor) -> list[Tensor]:
        """``[Γ̂₁, …, Γ̂_K]`` with ``Γ̂_K = Γ_K`` and ``Γ̂_{j−1} = D_jΓ̂_j``."""
        rebuilt = [gamma_K]
        for j in range(self.num_layers - 1, 0, -1):
            rebuilt.insert(0, self.dictionaries[j].synthesize(rebuilt[0], self.sizes[j]))
        return rebuilt


def signal_sizes(dictionaries: Sequence, x: Tensor) -> list:
    """Spatial size of the signal of every dictionary in a stack applied to ``x``
    (``None`` for dense dictionaries, whose synthesis needs no size)."""
    sizes = []
    size = tuple(x.shape[-2:]) if x.ndim == 4 else None
    for dictionary in dictionaries:
        sizes.append(size)
        has_size = size is not None and hasattr(dictionary, "output_size")
        size = dictionary.output_size(size) if has_size else None
    return sizes


def _times(scale, tensor: Tensor) -> Tensor:
    if isinstance(scale, (int, float)) and scale == 1:
        return tensor
    return scale * tensor


def forward_pass(layers: LayerParameters, x: Tensor, analysis: Sequence | None = None):
    """Layered thresholding ``Γ_j = T(a_j·B_jᵀΓ_{j−1}, β_j)``: the CNN forward pass.

    Args:
        layers: the operators and numbers; ``analysis`` overrides ``layers.analysis``.
        x: images ``(B, C, H, W)``.
    """
    operators = analysis if analysis is not None else layers.analysis
    codes = []
    signal = x
    for j, operator in enumerate(operators):
        z = _times(layers.forward_scales[j], operator.analyze(signal))
        signal = threshold(z, layers.thresholds[j], layers.mode)
        codes.append(signal)
    return codes


def gradient_step(
    layers: LayerParameters,
    j: int,
    point: Tensor,
    signal: Tensor,
    scale=1.0,
    synthesized: Tensor | None = None,
) -> Tensor:
    """One proximal-gradient step of layer ``j`` (0-based) at ``point`` towards ``signal``:
    ``T(Γ̂_j − c_j·B_jᵀ(D_jΓ̂_j − Γ_{j−1}), s·β_j)`` with ``s = scale``
    (:func:`~mlcsc.pursuit.proximal_gradient_step` on that layer); ``synthesized`` is
    ``D_jΓ̂_j`` when the caller already has it."""
    return proximal_gradient_step(
        layers.dictionaries[j],
        point,
        signal,
        layers.steps[j],
        layers.thresholds[j],
        layers.mode,
        layers.analysis[j],
        threshold_step=scale,
        synthesized=synthesized,
    )


def fista_momentum(n_iter: int, published: bool = False) -> list[float]:
    """Extrapolation weights ``w_k`` of the ``n_iter`` iterations of a FISTA loop started from
    ``Γ⁰``: iteration ``k`` is evaluated at ``Γ^{k−1} + w_k(Γ^{k−1} − Γ^{k−2})``.

    With ``t₀ = 1`` and ``t_k = (1 + √(1 + 4t_{k−1}²))/2`` the public ML-FISTA (Sulam, Aberdam,
    Beck & Elad 2019, IEEE TPAMI) uses ``w_k = (t_{k−1} − 1)/t_k`` (``0, 0.28, 0.43, …``:
    momentum from the second iteration on); the FISTA of Beck & Teboulle (2009, SIAM Journal on
    Imaging Sciences) counted from ``Γ⁰`` uses the same weights one iteration later
    (``0, 0, 0.28, …``), as :func:`mlcsc.pursuit.fista` does.

    Args:
        n_iter: number of iterations (``≥ 0``).
        published: the schedule of the public ML-FISTA code instead of Beck & Teboulle's.

    Returns:
        ``n_iter`` weights ``[w₁, …, w_{n_iter}]`` (Python floats in ``[0, 1)``).

    Examples:
        >>> [round(w, 2) for w in fista_momentum(5)]
        [0.0, 0.0, 0.28, 0.43, 0.53]
        >>> [round(w, 2) for w in fista_momentum(5, published=True)]
        [0.0, 0.28, 0.43, 0.53, 0.6]
        >>> fista_momentum(0)
        []
    """
    weights, t = [], 1.0
    for _ in range(n_iter):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        weights.append((t - 1.0) / t_next)
        t = t_next
    return weights if published else ([0.0] + weights)[:n_iter]


class Pursuit:
    """A multi-layer pursuit: subclass it, declare its needs, implement :meth:`run`.

    A pursuit maps images ``Y`` to codes ``[Γ₁, …, Γ_K]`` of the ML-CSC model
    ``Y ≈ D₁Γ₁, Γ_{j−1} ≈ D_jΓ_j`` (Papyan, Romano & Elad 2017, JMLR). It is written once,
    against :class:`LayerParameters`; calling the instance runs :meth:`run`. Register a subclass
    by name with :func:`~mlcsc.pursuit.register_pursuit` so that
    ``MLCSC(..., pursuit="name")`` runs it; the class attributes below are the declaration
    :class:`~mlcsc.MLCSC` reads to provide what the pursuit needs.

    Attributes:
        name: the registry name (set by :func:`~mlcsc.pursuit.register_pursuit`).
        step_rules: the step rules it supports in the normalised parametrisation (the first is
            its default): ``"chain"`` (compound steps ``c₁⋯c_j = ρ_j/‖D₁⋯D_j‖²``) or
            ``"layer"`` (``c_j = ρ_j/‖D_j‖²``). Empty: the pursuit takes no steps (or learns
            them inside its operators) and needs no Lipschitz estimates.
        untied: ``"never"``, ``"optional"`` or ``"required"``: separate analysis filters
            ``B_j`` beside the dictionaries.
        unfolded: the pursuit has filters and thresholds of its own in every unfolding (its
            number of iterations is fixed when the model is built).
        parametrizations: the parametrisations whose equations it implements.

    Shape:
        - x: ``(B, C, H, W)`` (or ``(B, n)`` with dense dictionaries).
        - output: ``[Γ₁, …, Γ_K]`` with ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        A pursuit that keeps the deepest code of the forward pass and rebuilds the others from
        it (not registered here, so it is called directly on :class:`LayerParameters`):

        >>> import torch
        >>> from mlcsc import ConvDictionary
        >>> class Rebuilt(Pursuit):
        ...     def run(self, layers, x, n_iter):
        ...         return layers.rebuild(forward_pass(layers, x)[-1])
        >>> _ = torch.manual_seed(0)
        >>> stack = [ConvDictionary(1, 4, 3), ConvDictionary(4, 8, 3)]
        >>> x = torch.randn(2, 1, 12, 12)
        >>> layers = LayerParameters.explicit(stack, x, thresholds=[0.0, 0.1])
        >>> gamma_1, gamma_2 = Rebuilt()(layers, x, n_iter=0)
        >>> tuple(gamma_1.shape), tuple(gamma_2.shape)
        ((2, 4, 10, 10), (2, 8, 8, 8))
        >>> torch.equal(gamma_1, stack[1].synthesize(gamma_2, (10, 10)))  # Γ₁ = D₂Γ₂
        True
        >>> Rebuilt(), Rebuilt().default_step_rule("soft")  # no steps declared
        (Rebuilt(name='', step_rules=()), None)
    """

    name: ClassVar[str] = ""
    step_rules: ClassVar[tuple[str, ...]] = ()
    untied: ClassVar[str] = "optional"
    unfolded: ClassVar[bool] = False
    parametrizations: ClassVar[tuple[str, ...]] = PARAMETRIZATIONS

    def default_step_rule(self, threshold_mode: str) -> str | None:
        """The step rule used when none is asked for (``None``: no steps)."""
        return self.step_rules[0] if self.step_rules else None

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        """The codes ``[Γ₁, …, Γ_K]`` of the images ``x`` after ``n_iter`` iterations."""
        raise NotImplementedError

    def initialize_(self, encoder) -> None:
        """Pursuit-specific initialisation of a newly built :class:`~mlcsc.MLCSC` (default:
        none)."""

    def __call__(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return self.run(layers, x, n_iter)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, step_rules={self.step_rules!r})"
