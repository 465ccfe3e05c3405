"""Multi-layer pursuits on the deepest code: ML-ISTA, ML-FISTA and ML-LISTA.

Sulam, Aberdam, Beck & Elad (2019), "On Multi-Layer Basis Pursuit, Efficient Algorithms and
Convolutional Neural Networks", IEEE TPAMI. The multi-layer basis pursuit problem is

    min_{Γ_K}  ½‖Y − D₁D₂⋯D_KΓ_K‖₂² + Σ_i β_i‖Γ_i‖₁,   Γ_i = D_{i+1}⋯D_KΓ_K,

(with ``Γ_i ≥ 0`` for soft-nonnegative thresholding). ML-ISTA iterates on ``Γ_K``; each
iteration first rebuilds the intermediate codes from it, ``Γ̂_{K−1} = D_KΓ_K``, …,
``Γ̂₁ = D₂Γ̂₂``, then takes one proximal-gradient step per layer from the input upward:

    Γ₁ ← T_{s₁β₁}(Γ̂₁ − c₁D₁ᵀ(D₁Γ̂₁ − Y)),
    Γ_j ← T_{s_jβ_j}(Γ̂_j − c_jD_jᵀ(D_jΓ̂_j − Γ_{j−1})),   j = 2…K.

For ``j ≥ 2`` the product ``D_jΓ̂_j`` *is* the rebuilt ``Γ̂_{j−1}``, so an iteration costs 2K
convolution-sized operators (K − 1 syntheses to rebuild, ``D₁Γ̂₁``, and one adjoint per layer)
instead of the 3K − 1 of the equations as written: 6 instead of 8 for three layers, with the
same result and gradients.

**Steps from the operators they act on.** With ``β₁ = … = β_{K−1} = 0`` and
signed codes, expanding the layer updates (each ``D_jΓ̂_j`` is the rebuilt ``Γ̂_{j−1}``) gives

    Γ_K ← T_{s_Kβ_K}(Γ_K − c₁⋯c_K·D_effᵀ(D_effΓ_K − Y)),   D_eff = D₁⋯D_K:

one ISTA step of size ``c₁⋯c_K`` on the effective dictionary, stable for
``c₁⋯c_K < 2/‖D₁⋯D_K‖²`` — not for ``c_j < 2/‖D_j‖²`` per layer, since
``‖D₁⋯D_K‖² ≪ ‖D₁‖²⋯‖D_K‖²`` for convolutional stacks. mlcsc's normalised parametrisation
therefore sets the compound steps from the chain norms, ``c₁⋯c_j = ρ_j/‖D₁⋯D_j‖²`` (step rule
``"chain"``), and thresholds with ``s_j = c₁⋯c_j``: then ML-ISTA / ML-FISTA with ``β_{<K} = 0``
*are* ISTA / FISTA on ``D_eff`` with step ``ρ_K/‖D_eff‖²``.

**Non-negative intermediate codes need per-layer steps.** The layer-``j`` update sees
``Γ̂_{j−1} − Γ_{j−1}``. Its gradient part is a step of size ``c₁⋯c_{j−1}`` and cancels into the
chain above; a threshold adds at most ``c₁⋯c_{j−1}β_{j−1}`` per entry (bounded). But the
projection onto ``Γ_{j−1} ≥ 0`` of a negative rebuilt code ``Γ̂_{j−1} = D_jΓ̂_j`` (signed filters)
passes on the negative part unscaled. In the smoothed view of Sulam et al. (2019) the
constraint enters the objective of ``Γ_K`` as a Moreau envelope of parameter ``c₁⋯c_{j−1}``,
whose gradient has Lipschitz constant ``‖D_j⋯D_K‖²/(c₁⋯c_{j−1})``; with the step ``c₁⋯c_K`` this
needs ``c_j⋯c_K·‖D_j⋯D_K‖² < 2`` for every ``j``. The per-layer rule ``c_i = ρ/‖D_i‖²``
(``"layer"``) meets all of these (``‖D_j⋯D_K‖ ≤ ‖D_j‖⋯‖D_K‖``); the chain rule exceeds them by
the factor ``‖D₁⋯D_{j−1}‖²‖D_j⋯D_K‖²/‖D₁⋯D_K‖²`` (≫ 1 for convolutional stacks), and ReLU
ML-ISTA with chain steps diverges (measured: the codes of the MNIST stack grow without bound).
So the default step rule is ``"chain"`` for signed codes (``soft``, ``hard``) and ``"layer"``
for ``soft_nonneg``; the ML-CSC projection (non-negativity on ``Γ_K`` only, intermediate codes
rebuilt) uses the chain rule in both cases.

With ``β₁ > 0`` the first-layer step
is a forward-backward step rather than an exact proximal map, so the fixed point approximates
the ML-BP minimiser; the paper analyses ML-ISTA as a proximal-gradient method on a smoothed
objective.

It starts from the forward pass (layered thresholding), so ``n_iter = 0`` is the CNN. ML-FISTA
adds Nesterov momentum on ``Γ_K`` (Beck & Teboulle's schedule from the forward pass in the
normalised parametrisation, the public code's one step earlier in the reference one). ML-LISTA
learns its operators: two filter banks per layer, ``B_j`` (the dictionaries: forward pass,
rebuild and input term) and ``W_j`` (the Gram term), no steps:

    Γ_j ← T_{β_j}(Γ̂_j − W_jᵀW_jΓ̂_j + B_jᵀΓ_{j−1}),   Γ̂_{j−1} = B_jΓ̂_j.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mlcsc.checks import check_number
from mlcsc.functional import threshold, weighted_l1
from mlcsc.pursuit.base import (
    LayerParameters,
    Pursuit,
    fista_momentum,
    forward_pass,
    gradient_step,
    signal_sizes,
)
from mlcsc.pursuit.registry import register_pursuit

__all__ = [
    "MLISTA",
    "MLFISTA",
    "MLLISTA",
    "ml_ista",
    "ml_fista",
    "ml_lista",
    "chain_steps",
    "multilayer_bp_objective",
]


@register_pursuit("ml_ista")
class MLISTA(Pursuit):
    """ML-ISTA, registered as ``"ml_ista"``: ``n_iter`` multi-layer proximal-gradient
    iterations on the deepest code, from the forward pass.

    Each iteration rebuilds ``Γ̂_{j−1} = D_jΓ̂_j`` from ``Γ_K`` and takes one step per layer,
    ``Γ_j ← T(Γ̂_j − c_jB_jᵀ(D_jΓ̂_j − Γ_{j−1}), s_jβ_j)`` (``Γ₀ = Y``, ``s_j = c₁⋯c_j`` in the
    normalised parametrisation), for the multi-layer basis pursuit
    ``min ½‖Y − D₁⋯D_KΓ_K‖² + Σ_j β_j‖Γ_j‖₁`` (:func:`multilayer_bp_objective`). From Sulam,
    Aberdam, Beck & Elad (2019, "On multi-layer basis pursuit, efficient algorithms and
    convolutional neural networks", IEEE TPAMI). Step rules: ``"chain"`` (default for signed
    codes) and ``"layer"`` (default for non-negative codes, see the module docstring).

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="ml_ista", n_iter=4,
        ...               threshold_init=0.05)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> codes = model(x, return_all=True)
        >>> model.step_rule, [tuple(code.shape) for code in codes]  # ReLU codes: per-layer steps
        ('layer', [(2, 4, 10, 10), (2, 8, 4, 4)])
        >>> args = list(model.dictionaries), x, list(model.thresholds), model.steps()
        >>> same = ml_ista(*args, n_iter=4)  # the functional form with the model's steps
        >>> all(torch.allclose(a, b) for a, b in zip(codes, same))
        True
        >>> MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="ml_ista", threshold_mode="soft").step_rule
        'chain'
    """

    step_rules = ("chain", "layer")
    momentum = False

    def default_step_rule(self, threshold_mode: str) -> str | None:
        # a non-negativity constraint on the intermediate codes is only stable with per-layer
        # steps (module docstring); thresholds alone leave the chain rule stable
        return "layer" if threshold_mode == "soft_nonneg" else "chain"

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        return self.iterate(layers, x, forward_pass(layers, x), n_iter)

    def iterate(
        self, layers: LayerParameters, x: Tensor, codes: list[Tensor], n_iter: int
    ) -> list[Tensor]:
        """``n_iter`` iterations started from ``codes`` (only the deepest is used): :meth:`run`
        after its forward pass.

        Args:
            layers: the operators and numbers.
            x: images ``(B, C, H, W)``.
            codes: starting codes ``[Γ₁, …, Γ_K]`` (only ``Γ_K`` is read).
            n_iter: number of iterations (0 returns ``codes``).
        """
        if self.momentum:
            weights = fista_momentum(n_iter, published=layers.published_momentum)
        else:
            weights = [0.0] * n_iter
        scales = layers.step_threshold_scales(compound=True)  # s_j = c₁⋯c_j (normalised)

        def iteration(gamma: Tensor, previous: Tensor, weight: float) -> list[Tensor]:
            point = gamma if weight == 0 else gamma + weight * (gamma - previous)
            rebuilt = layers.rebuild(point)  # [Γ̂₁, …, Γ̂_{K−1}, point]
            signal = x
            codes = []
            for j in range(layers.num_layers):  # one step per layer, from the input upward
                # D_jΓ̂_j is the rebuilt Γ̂_{j−1} for j ≥ 2: 2K convolutions per iteration
                synthesized = rebuilt[j - 1] if j > 0 else None
                signal = gradient_step(layers, j, rebuilt[j], signal, scales[j], synthesized)
                codes.append(signal)
            return codes

        gamma = previous = codes[-1]
        for weight in weights:
            if layers.checkpointing and torch.is_grad_enabled():
                codes = checkpoint(iteration, gamma, previous, weight, use_reentrant=False)
            else:
                codes = iteration(gamma, previous, weight)
            previous, gamma = gamma, codes[-1]
        return codes


@register_pursuit("ml_fista")
class MLFISTA(MLISTA):
    """ML-FISTA, registered as ``"ml_fista"``: ML-ISTA with FISTA momentum on the deepest code.

    Iteration ``k`` is ML-ISTA's evaluated at ``Γ_K^{k−1} + w_k(Γ_K^{k−1} − Γ_K^{k−2})`` with
    the weights of :func:`~mlcsc.pursuit.fista_momentum` (Beck & Teboulle's from the forward
    pass, or the public code's one iteration earlier in the reference parametrisation). From
    Sulam, Aberdam, Beck & Elad (2019, IEEE TPAMI), with the momentum of Beck & Teboulle (2009,
    SIAM Journal on Imaging Sciences). The default pursuit of :class:`~mlcsc.MLCSC`.

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> from mlcsc.pursuit import layered_thresholding
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="ml_fista", n_iter=0,
        ...               threshold_init=0.05)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> cnn = layered_thresholding(list(model.dictionaries), x, list(model.thresholds))
        >>> torch.equal(model(x), cnn[-1])  # n_iter = 0 is the forward pass
        True
        >>> model.n_iter = 6
        >>> args = list(model.dictionaries), x, list(model.thresholds)
        >>> gamma = model(x)
        >>> gamma.shape, torch.allclose(gamma, ml_fista(*args, model.steps(), n_iter=6)[-1])
        (torch.Size([2, 8, 4, 4]), True)
    """

    momentum = True


@register_pursuit("ml_lista")
class MLLISTA(Pursuit):
    """ML-LISTA, registered as ``"ml_lista"``: learned operators ``B_j``
    (``layers.dictionaries``) and ``W_j`` (``layers.analysis``).

    The forward pass is ``T_{β_j}(B_jᵀΓ_{j−1})``; each iteration rebuilds
    ``Γ̂_{j−1} = B_jΓ̂_j`` and updates ``Γ_j ← T_{β_j}(Γ̂_j − W_jᵀW_jΓ̂_j + B_jᵀΓ_{j−1})``. No
    steps are taken (the operators absorb them), in either parametrisation, and the model
    needs untied filters (its ``analysis_dictionaries`` are the ``W_j``). The multi-layer
    extension of LISTA (Gregor & LeCun 2010, ICML) of Sulam, Aberdam, Beck & Elad (2019,
    IEEE TPAMI).

    Shape:
        - x: ``(B, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]``, ``Γ_j`` of shape ``(B, m_j, H_j, W_j)``.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3, 2)], pursuit="ml_lista", n_iter=3,
        ...               threshold_init=0.05)
        >>> len(model.analysis_dictionaries), model.step_rule  # the W_j; no steps
        (2, None)
        >>> x = torch.randn(2, 1, 12, 12)
        >>> codes = model(x, return_all=True)
        >>> [tuple(code.shape) for code in codes]
        [(2, 4, 10, 10), (2, 8, 4, 4)]
        >>> B, W = list(model.dictionaries), list(model.analysis_dictionaries)
        >>> same = ml_lista(B, W, x, list(model.thresholds), n_iter=3)
        >>> all(torch.allclose(a, b) for a, b in zip(codes, same))
        True
    """

    untied = "required"

    @torch.no_grad()
    def initialize_(self, encoder) -> None:
        """With unit-norm atoms, start from ``W_j = D_j/‖D_j‖``: ``Γ − W_jᵀW_jΓ`` is then a
        non-expansive gradient step of size ``1/‖D_j‖²`` instead of an expansive one (the
        reference initialisation draws small independent ``W_j`` as the public code does)."""
        if encoder.init != "unit":
            return
        for gram in encoder.analysis_dictionaries:
            gram.weight.div_(gram.lipschitz().sqrt())

    def run(self, layers: LayerParameters, x: Tensor, n_iter: int) -> list[Tensor]:
        plain = dataclasses.replace(layers, forward_scales=None)
        codes = forward_pass(plain, x, analysis=layers.dictionaries)
        for _ in range(n_iter):
            rebuilt = layers.rebuild(codes[-1])  # with B: Γ̂_{j−1} = B_jΓ̂_j
            signal = x
            codes = []
            for j in range(layers.num_layers):
                gram = layers.analysis[j]  # W_j
                point = rebuilt[j]
                z = (
                    point
                    - gram.analyze(gram.synthesize(point, layers.sizes[j]))
                    + layers.dictionaries[j].analyze(signal)
                )
                signal = threshold(z, layers.thresholds[j], layers.mode)
                codes.append(signal)
        return codes


def chain_steps(dictionaries: Sequence, x: Tensor, relative: float = 1.0) -> list[float]:
    """Per-layer steps ``c_j`` whose compound steps are ``c₁⋯c_j = ρ/‖D₁⋯D_j‖²``, for the
    signals ``x`` (only their size matters): the steps that make :func:`ml_ista` /
    :func:`ml_fista` with ``β_{<K} = 0`` exactly ISTA / FISTA on ``D_eff`` with step
    ``ρ/‖D_eff‖²`` (see the module docstring).

    mlcsc's step rule ``"chain"``: ML-ISTA (Sulam, Aberdam, Beck & Elad 2019, IEEE TPAMI)
    expands into steps of size ``c₁⋯c_j`` on ``D₁⋯D_j``, so that ISTA's condition
    ``c < 2/L`` (Daubechies, Defrise & De Mol 2004, CPAM) applies to the chains, not to the
    layers. The norms are estimated by power iteration on
    :class:`~mlcsc.EffectiveDictionary`.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: signals the pursuit will run on, ``(B, C, H, W)`` or ``(B, n)``.
        relative: ``ρ`` in ``(0, 2)``.

    Returns:
        ``[c₁, …, c_K]`` as Python floats.

    Raises:
        ValueError: for ``relative`` outside ``(0, 2)``.

    Examples:
        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> W1 = torch.randn(16, 24, dtype=torch.float64)
        >>> W2 = torch.randn(24, 32, dtype=torch.float64)
        >>> steps = chain_steps([DenseDictionary(W1), DenseDictionary(W2)], torch.zeros(1, 16))
        >>> len(steps)
        2
        >>> def inverse_norm(matrix):  # 1/‖M‖₂²
        ...     return 1 / float(torch.linalg.matrix_norm(matrix, ord=2) ** 2)
        >>> abs(steps[0] / inverse_norm(W1) - 1) < 1e-6  # c₁ = 1/‖D₁‖²
        True
        >>> abs(steps[0] * steps[1] / inverse_norm(W1 @ W2) - 1) < 1e-6  # c₁c₂ = 1/‖D₁D₂‖²
        True
    """
    from mlcsc.effective_dictionary import EffectiveDictionary

    check_number("relative", relative, 0.0, 2.0, low_open=True, high_open=True)
    sizes = signal_sizes(dictionaries, x)
    compound = [
        relative / float(EffectiveDictionary(dictionaries[: j + 1], sizes[: j + 1]).lipschitz())
        for j in range(len(dictionaries))
    ]
    return [compound[0]] + [compound[j] / compound[j - 1] for j in range(1, len(compound))]


def ml_ista(dictionaries, x, thresholds, steps, n_iter, mode="soft_nonneg", analysis=None):
    """ML-ISTA with explicit steps: the functional form of :class:`MLISTA`.

    From the forward pass, ``n_iter`` times: rebuild ``Γ̂_{j−1} = D_jΓ̂_j`` from ``Γ_K``, then
    ``Γ_j ← T_{c₁⋯c_jβ_j}(Γ̂_j − c_jD_jᵀ(D_jΓ̂_j − Γ_{j−1}))`` for ``j = 1…K`` (``Γ₀ = x``),
    for the multi-layer basis pursuit of Sulam, Aberdam, Beck & Elad (2019, IEEE TPAMI).

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]`` (ℓ1 weights; scalars or ``(m_j,)`` tensors).
        steps: ``[c₁, …, c_K]``; layer ``j`` thresholds at ``c₁⋯c_j·β_j``. Stable when every
            compound step ``c₁⋯c_j < 2/‖D₁⋯D_j‖²`` (:func:`chain_steps`).
        n_iter: number of iterations ``T`` (0 gives the forward pass).
        mode: thresholding operator (``"soft_nonneg"``, ``"soft"`` or ``"hard"``).
        analysis: optional analysis dictionaries ``B_j`` used for the adjoints.

    Returns:
        ``[Γ₁, …, Γ_K]`` from the last iteration (each the output of its thresholding).

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        With ``β₁ = 0``, signed codes and :func:`chain_steps`, ML-ISTA on ``[D₁, D₂]`` is
        ISTA on ``D_eff = D₁D₂`` started from the forward pass:

        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> from mlcsc.pursuit import ista, thresholding
        >>> _ = torch.manual_seed(0)
        >>> W1 = torch.randn(16, 24, dtype=torch.float64)
        >>> W2 = torch.randn(24, 32, dtype=torch.float64)
        >>> stack = [DenseDictionary(W1), DenseDictionary(W2)]
        >>> x = torch.randn(5, 16, dtype=torch.float64)
        >>> steps = chain_steps(stack, x)
        >>> codes = ml_ista(stack, x, [0.0, 0.3], steps, n_iter=30, mode="soft")
        >>> [tuple(code.shape) for code in codes]
        [(5, 24), (5, 32)]
        >>> D_eff = DenseDictionary(W1 @ W2)
        >>> start = thresholding(D_eff, x, threshold=0.3, mode="soft")  # the forward pass
        >>> same = ista(D_eff, x, 0.3, max_iter=30, tol=0, x0=start, step=steps[0] * steps[1])
        >>> torch.allclose(codes[-1], same)
        True
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, steps, analysis)
    return MLISTA()(layers, x, n_iter)


def ml_fista(dictionaries, x, thresholds, steps, n_iter, mode="soft_nonneg", analysis=None):
    """ML-FISTA with explicit steps: the functional form of :class:`MLFISTA`.

    The iteration of :func:`ml_ista` evaluated at ``Γ_K^{k−1} + w_k(Γ_K^{k−1} − Γ_K^{k−2})``,
    with Beck & Teboulle's (2009, SIAM Journal on Imaging Sciences) weights ``w_k`` counted from
    the forward pass (:func:`~mlcsc.pursuit.fista_momentum`); Sulam, Aberdam, Beck & Elad
    (2019, IEEE TPAMI).

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        thresholds: ``[β₁, …, β_K]`` (ℓ1 weights; scalars or ``(m_j,)`` tensors).
        steps: ``[c₁, …, c_K]``; layer ``j`` thresholds at ``c₁⋯c_j·β_j``.
        n_iter: number of iterations ``T`` (0 gives the forward pass).
        mode: thresholding operator (``"soft_nonneg"``, ``"soft"`` or ``"hard"``).
        analysis: optional analysis dictionaries ``B_j`` used for the adjoints.

    Returns:
        ``[Γ₁, …, Γ_K]`` from the last iteration.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        With one layer, ML-FISTA is FISTA started from the forward pass:

        >>> import torch
        >>> from mlcsc import ConvDictionary
        >>> from mlcsc.pursuit import fista, thresholding
        >>> _ = torch.manual_seed(0)
        >>> D = ConvDictionary(1, 4, 3, padding=1).double()
        >>> x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
        >>> step = 1 / float(D.lipschitz((8, 8)))
        >>> (gamma,) = ml_fista([D], x, [0.1], [step], n_iter=20)
        >>> start = thresholding(D, x, threshold=0.1, mode="soft_nonneg")
        >>> same = fista(D, x, 0.1, max_iter=20, tol=0, x0=start, nonneg=True, step=step)
        >>> gamma.shape, torch.allclose(gamma, same)
        (torch.Size([2, 4, 8, 8]), True)
    """
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, steps, analysis)
    return MLFISTA()(layers, x, n_iter)


def ml_lista(dictionaries, gram, x, thresholds, n_iter, mode="soft_nonneg"):
    """ML-LISTA with operators ``B_j = dictionaries[j]`` and ``W_j = gram[j]``: the functional
    form of :class:`MLLISTA`.

    ``Γ_j⁰ = T_{β_j}(B_jᵀΓ_{j−1})``; each iteration rebuilds ``Γ̂_{j−1} = B_jΓ̂_j`` and updates
    ``Γ_j = T_{β_j}(Γ̂_j − W_jᵀW_jΓ̂_j + B_jᵀΓ_{j−1})`` (Sulam, Aberdam, Beck & Elad 2019,
    IEEE TPAMI; after LISTA, Gregor & LeCun 2010, ICML).

    Args:
        dictionaries: ``[B₁, …, B_K]`` (forward pass, rebuild and input term).
        gram: ``[W₁, …, W_K]`` (the Gram term), one per layer.
        x: input ``(B, C, H, W)`` (or ``(B, n)`` for dense operators).
        thresholds: ``[β₁, …, β_K]`` (scalars or ``(m_j,)`` tensors), not scaled by any step.
        n_iter: number of iterations (0 gives the forward pass).
        mode: thresholding operator (``"soft_nonneg"``, ``"soft"`` or ``"hard"``).

    Returns:
        ``[Γ₁, …, Γ_K]``.

    Raises:
        ValueError: when ``gram`` is None or does not have one operator per layer.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - output: ``Γ_j`` of shape ``(B, m_j, H_j, W_j)`` or ``(B, m_j)``.

    Examples:
        With ``B = c·D`` and ``W = √c·D`` one layer of ML-LISTA is ISTA of step ``c`` and
        ℓ1 weight ``β/c`` from zero codes (the forward pass is its first step):

        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> from mlcsc.pursuit import ista
        >>> _ = torch.manual_seed(0)
        >>> D = torch.randn(10, 20, dtype=torch.float64)
        >>> c = 1 / float(torch.linalg.matrix_norm(D, ord=2) ** 2)
        >>> B, W = DenseDictionary(c * D), DenseDictionary(c**0.5 * D)
        >>> x = torch.randn(3, 10, dtype=torch.float64)
        >>> (gamma,) = ml_lista([B], [W], x, [0.01], n_iter=5)
        >>> same = ista(DenseDictionary(D), x, 0.01 / c, max_iter=6, tol=0, nonneg=True, step=c)
        >>> gamma.shape, torch.allclose(gamma, same)
        (torch.Size([3, 20]), True)
    """
    if gram is None or len(gram) != len(dictionaries):
        raise ValueError(
            f"ml_lista needs one Gram filter bank W_j per layer ({len(dictionaries)}), "
            f"got {None if gram is None else len(gram)}"
        )
    layers = LayerParameters.explicit(dictionaries, x, thresholds, mode, analysis=gram)
    return MLLISTA()(layers, x, n_iter)


def multilayer_bp_objective(
    dictionaries: Sequence, x: Tensor, gamma: Tensor, thresholds: Sequence, terms: bool = False
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Per-signal ML-BP objective ``½‖x − D₁⋯D_KΓ_K‖² + Σ_i β_i‖Γ_i‖₁``, ``Γ_i = D_{i+1}⋯D_KΓ_K``.

    The multi-layer basis pursuit of Sulam, Aberdam, Beck & Elad (2019, IEEE TPAMI), which
    :func:`ml_ista` and :func:`ml_fista` minimise (exactly for ``β_{<K} = 0`` and signed codes).
    ``thresholds`` are scalars or per-channel ``(m_i,)`` tensors (weighted ℓ1). The
    intermediate sizes are those of the forward pass on ``x``.

    Args:
        dictionaries: ``[D₁, …, D_K]``.
        x: signals ``(B, C, H, W)`` (or ``(B, n)`` for dense dictionaries).
        gamma: the deepest code ``Γ_K``.
        thresholds: ``[β₁, …, β_K]``.
        terms: also return the data term and the reconstruction.

    Returns:
        The objective, shape ``(B,)``; with ``terms=True`` also its data term
        ``½‖x − D₁⋯D_KΓ_K‖²`` (``(B,)``) and the reconstruction ``D₁⋯D_KΓ_K`` (shaped as
        ``x``), from the same synthesis pass.

    Shape:
        - x: ``(B, C, H, W)`` or ``(B, n)``.
        - gamma: ``(B, m_K, H_K, W_K)`` or ``(B, m_K)``.
        - output: ``(B,)``.

    Examples:
        ML-ISTA with ``β₁ = 0`` and chain steps decreases the objective at every iteration:

        >>> import torch
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> stack = [DenseDictionary(torch.randn(16, 24, dtype=torch.float64)),
        ...          DenseDictionary(torch.randn(24, 32, dtype=torch.float64))]
        >>> x = torch.randn(4, 16, dtype=torch.float64)
        >>> steps, betas = chain_steps(stack, x), [0.0, 0.3]
        >>> def objective(n_iter):
        ...     gamma = ml_ista(stack, x, betas, steps, n_iter, mode="soft")[-1]
        ...     return multilayer_bp_objective(stack, x, gamma, betas)
        >>> values = torch.stack([objective(n) for n in range(6)])  # (6, B)
        >>> bool((values[1:] <= values[:-1]).all())
        True
        >>> gamma = ml_ista(stack, x, betas, steps, 5, mode="soft")[-1]
        >>> total, data, reconstruction = multilayer_bp_objective(stack, x, gamma, betas, True)
        >>> total.shape, reconstruction.shape, bool((data <= total).all())
        (torch.Size([4]), torch.Size([4, 16]), True)
    """
    sizes = signal_sizes(dictionaries, x)
    penalty = 0.0
    current = gamma
    for j in range(len(dictionaries) - 1, -1, -1):
        penalty = penalty + weighted_l1(current, thresholds[j])
        current = dictionaries[j].synthesize(current, sizes[j])
    data_term = 0.5 * (x - current).flatten(1).pow(2).sum(1)
    if terms:
        return data_term + penalty, data_term, current
    return data_term + penalty
