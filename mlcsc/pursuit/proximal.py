"""Basis pursuit by proximal gradient: ISTA and FISTA, written once for every dictionary.

Basis pursuit (Lasso) solves

    min_Γ  ½‖y − DΓ‖₂² + λ‖Γ‖₁      (optionally subject to Γ ≥ 0)

by the iterative shrinkage-thresholding algorithm (Daubechies, Defrise & De Mol 2004)

    Γ ← S_{cλ}(Γ − c·Dᵀ(DΓ − y)),   0 < c ≤ 1/L,  L = ‖D‖₂²,

and its accelerated version FISTA (Beck & Teboulle 2009), which takes the same step at the
extrapolated point ``Z = Γ_k + ((t_{k−1} − 1)/t_k)(Γ_k − Γ_{k−1})`` with
``t_k = (1 + √(1 + 4t_{k−1}²))/2``. ``D`` is any :class:`~mlcsc.dictionary.Dictionary`, so the
same code runs on patches (:class:`~mlcsc.DenseDictionary`, y of shape ``(B, n)``) and on whole
images (:class:`~mlcsc.ConvDictionary`, convolutional BP, y of shape ``(B, C, H, W)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mlcsc.checks import check_int, check_number
from mlcsc.functional import soft_nonneg_threshold_, threshold, weighted_l1
from mlcsc.pursuit._validation import check_dictionary, check_nonnegative

__all__ = ["proximal_gradient_step", "ista", "fista", "bp_objective"]


def proximal_gradient_step(
    dictionary,
    codes: Tensor,
    y: Tensor,
    step: Tensor | float,
    lam: Tensor | float,
    mode: str = "soft",
    analysis=None,
    threshold_step: Tensor | float | None = None,
    synthesized: Tensor | None = None,
) -> Tensor:
    """One ISTA step ``T_{c·λ}(Γ − c·Bᵀ(DΓ − y))`` with ``B = D`` unless ``analysis`` is given.

    The proximal-gradient (forward-backward) step on ``½‖y − DΓ‖₂² + λ‖Γ‖₁`` of Daubechies,
    Defrise & De Mol (2004, Communications on Pure and Applied Mathematics); with an untied
    ``B`` it is the update of LISTA (Gregor & LeCun 2010, ICML). Every iteration of
    :func:`ista`, :func:`fista` and the multi-layer pursuits is made of such steps.

    Args:
        dictionary: synthesis dictionary ``D``.
        codes: current codes ``Γ``.
        y: the signal the codes should synthesise.
        step: step size ``c`` (scalar or 0-d tensor).
        lam: ℓ1 weight ``λ`` (scalar, or one value per code channel).
        mode: thresholding operator (``"soft"``, ``"soft_nonneg"`` or ``"hard"``).
        analysis: optional analysis dictionary ``B`` (untied weights, as in LISTA).
        threshold_step: the step that scales the threshold when it differs from ``step``
            (the compound step of a deeper layer in ML-ISTA).
        synthesized: ``DΓ`` when the caller already has it (ML-ISTA's rebuilt codes), which
            saves one synthesis.

    Returns:
        The new codes, shaped like ``codes``.

    Shape:
        - codes: ``(B, m)`` or ``(B, m, H', W')``.
        - y: ``(B, n)`` or ``(B, C, H, W)``.
        - output: shaped like ``codes``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = DenseDictionary(torch.randn(5, 8))
        >>> y = torch.randn(4, 5)
        >>> step = 1 / float(D.lipschitz())
        >>> codes = proximal_gradient_step(D, torch.zeros(4, 8), y, step, lam=0.1)
        >>> codes.shape
        torch.Size([4, 8])
        >>> torch.equal(codes, ista(D, y, lam=0.1, max_iter=1, step=step))  # one ISTA iteration
        True
    """
    if synthesized is None:
        residual = dictionary.residual(codes, y)  # DΓ − y, shaped like y
    else:
        residual = synthesized - y
    gradient = (analysis or dictionary).analyze(residual)  # shaped like codes
    scale = step if threshold_step is None else threshold_step
    beta = _scale(scale, lam)
    if isinstance(step, Tensor):
        z = torch.addcmul(codes, gradient, step, value=-1)  # Γ − c·g in one pass
    else:
        z = torch.sub(codes, gradient, alpha=step)
    if mode == "soft_nonneg" and not torch.is_grad_enabled():
        # without autograd threshold in place: no temporaries on the largest tensors
        return soft_nonneg_threshold_(z, beta)
    return threshold(z, beta, mode)


def _scale(step: Tensor | float, lam: Tensor | float) -> Tensor | float:
    if isinstance(lam, Tensor) and lam.ndim == 1 and isinstance(step, Tensor):
        return step.reshape(()) * lam
    return step * lam


def bp_objective(dictionary, codes: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """Per-signal basis pursuit objective ``½‖y − DΓ‖₂² + λ‖Γ‖₁``.

    The objective of basis pursuit denoising (Chen, Donoho & Saunders 1998, SIAM Journal on
    Scientific Computing), i.e. the Lasso (Tibshirani 1996, Journal of the Royal Statistical
    Society B), that :func:`ista` and :func:`fista` minimise.

    Args:
        dictionary: ``D``, a :class:`~mlcsc.DenseDictionary` or :class:`~mlcsc.ConvDictionary`.
        codes: ``Γ``, shaped like ``D.analyze(y)``.
        y: signals.
        lam: ``λ ≥ 0``, a scalar or one value per atom ``(m,)`` (weighted ℓ1).

    Returns:
        One value per signal.

    Shape:
        - codes: ``(B, m)`` or ``(B, m, H', W')``.
        - y: ``(B, n)`` or ``(B, C, H, W)``.
        - output: ``(B,)``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> D = DenseDictionary(torch.eye(2))
        >>> y = torch.tensor([[3.0, 4.0]])
        >>> bp_objective(D, torch.zeros(1, 2), y, lam=0.5).tolist()  # ½·‖y‖²
        [12.5]
        >>> codes = ista(D, y, lam=0.5)  # S_0.5(y) = (2.5, 3.5): ½·(0.5² + 0.5²) + 0.5·6
        >>> codes.tolist(), bp_objective(D, codes, y, lam=0.5).tolist()
        ([[2.5, 3.5]], [3.25])
    """
    residual = dictionary.residual(codes, y)
    return 0.5 * residual.flatten(1).pow(2).sum(1) + weighted_l1(codes, lam)


def _validate(dictionary, y: Tensor, lam, max_iter: int, tol: float, step) -> None:
    """The checks shared with :func:`~mlcsc.pursuit.omp` and :func:`~mlcsc.pursuit.thresholding`
    (see :mod:`mlcsc.pursuit._validation`): ValueError naming the bad argument."""
    check_dictionary(dictionary)
    dictionary.check_signal(y)
    check_nonnegative("lam", lam, dictionary.num_atoms)
    check_int("max_iter", max_iter, 0)
    check_number("tol", tol, 0.0, allow_inf=True)
    if step is not None:
        check_number("step", step, 0.0, low_open=True)


def _initial_codes(dictionary, y: Tensor, x0: Tensor | None) -> Tensor:
    shape = dictionary.analyze(y[:1]).shape[1:]
    if x0 is None:
        return torch.zeros((y.shape[0], *shape), dtype=y.dtype, device=y.device)
    if tuple(x0.shape) != (y.shape[0], *shape):
        raise ValueError(
            f"x0 must have shape {(y.shape[0], *shape)} for y of shape {tuple(y.shape)}, "
            f"got {tuple(x0.shape)}"
        )
    return x0


def _relative_change(new: Tensor, old: Tensor) -> Tensor:
    change = (new - old).flatten(1).norm(dim=1)
    scale = old.flatten(1).norm(dim=1).clamp_min(torch.finfo(new.dtype).tiny)
    return (change / scale).max()


_BP_SIGNATURE_DOC = """
    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or :class:`~mlcsc.ConvDictionary`.
        y: signals, ``(B, n)`` or ``(B, C, H, W)``.
        lam: ℓ1 weight λ ≥ 0 (scalar or one value per atom).
        max_iter: maximum number of iterations.
        tol: stop once ``max_b ‖Γ_{k+1} − Γ_k‖ / ‖Γ_k‖ ≤ tol`` over the batch (0 disables).
        x0: warm start (default zeros).
        nonneg: constrain ``Γ ≥ 0`` (soft-nonnegative thresholding).
        step: step size; default ``1/L`` with ``L`` from :meth:`Dictionary.lipschitz`.
        differentiable: record the iterations for autograd (gradients with respect to ``y``,
            the dictionary, ``lam``). Off by default: a solver run of hundreds of iterations
            would otherwise keep every iterate in memory.

    Returns:
        codes of shape ``(B, m)`` or ``(B, m, H', W')``.

    Raises:
        ValueError: naming the argument, for a non-finite dictionary or one with an all-zero
            atom; signals that are not finite or do not match the dictionary (feature size,
            channels, dtype, device); a negative or non-finite ``lam``, or one of the wrong
            shape; a negative ``max_iter`` or ``tol``; a step that is not finite and positive.
            The checks are shared with :func:`~mlcsc.pursuit.omp` and
            :func:`~mlcsc.pursuit.thresholding`.

    Shape:
        - y: ``(B, n)`` (dense) or ``(B, C, H, W)`` (convolutional).
        - output: ``(B, m)`` or ``(B, m, H', W')``.
"""


def _basis_pursuit(name: str, accelerate: bool, summary: str):
    """The public solver ``name``: ISTA, or FISTA with ``accelerate`` (one signature, one
    docstring, one loop: :func:`_solve`)."""

    def solver(
        dictionary,
        y: Tensor,
        lam: float | Tensor,
        max_iter: int = 500,
        tol: float = 1e-6,
        x0: Tensor | None = None,
        nonneg: bool = False,
        step: float | Tensor | None = None,
        *,
        differentiable: bool = False,
    ) -> Tensor:
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            return _solve(dictionary, y, lam, max_iter, tol, x0, nonneg, step, accelerate)

    solver.__name__ = solver.__qualname__ = name
    solver.__doc__ = summary + "\n" + _BP_SIGNATURE_DOC
    return solver


ista = _basis_pursuit(
    "ista",
    accelerate=False,
    summary="""Basis pursuit by ISTA: ``Γ ← S_{cλ}(Γ − c·Dᵀ(DΓ − y))`` from ``x0``.

    Minimises ``½‖y − DΓ‖₂² + λ‖Γ‖₁`` (:func:`bp_objective`; with ``Γ ≥ 0`` when ``nonneg``) by
    the iterative shrinkage-thresholding algorithm of Daubechies, Defrise & De Mol (2004,
    Communications on Pure and Applied Mathematics), which decreases the objective at every
    iteration for ``c ≤ 1/‖D‖₂²``.

    Examples:
        >>> from mlcsc import DenseDictionary
        >>> D = DenseDictionary(torch.eye(3))
        >>> ista(D, torch.tensor([[2.0, -0.5, 0.05]]), lam=0.1)  # soft thresholding for D = I
        tensor([[ 1.9000, -0.4000,  0.0000]])
""",
)
fista = _basis_pursuit(
    "fista",
    accelerate=True,
    summary="""Basis pursuit by FISTA: ISTA's step at the extrapolated point, with the same
    arguments as :func:`ista`.

    Minimises ``½‖y − DΓ‖₂² + λ‖Γ‖₁`` (optionally ``Γ ≥ 0``) by the fast iterative
    shrinkage-thresholding algorithm of Beck & Teboulle (2009, SIAM Journal on Imaging
    Sciences): ``Γ_k = S_{cλ}(Z_k − c·Dᵀ(DZ_k − y))`` at
    ``Z_k = Γ_{k−1} + ((t_{k−1} − 1)/t_k)(Γ_{k−1} − Γ_{k−2})``, ``t_k = (1 + √(1 + 4t_{k−1}²))/2``,
    whose objective gap falls as ``O(1/k²)`` instead of ISTA's ``O(1/k)``.

    Examples:
        >>> from mlcsc import ConvDictionary
        >>> _ = torch.manual_seed(0)
        >>> D = ConvDictionary(1, 4, 3, padding=1).double()
        >>> y = torch.randn(2, 1, 8, 8, dtype=torch.float64)
        >>> codes = fista(D, y, lam=0.1)
        >>> codes.shape
        torch.Size([2, 4, 8, 8])
        >>> fewer = fista(D, y, lam=0.1, max_iter=5, tol=0)
        >>> bool((bp_objective(D, codes, y, 0.1) <= bp_objective(D, fewer, y, 0.1)).all())
        True
""",
)


def _solve(dictionary, y, lam, max_iter, tol, x0, nonneg, step, accelerate):
    _validate(dictionary, y, lam, max_iter, tol, step)
    if step is None:
        size = dictionary.signal_size(y)
        step = 1.0 / float(dictionary.lipschitz(input_size=size))
    mode = "soft_nonneg" if nonneg else "soft"
    codes = _initial_codes(dictionary, y, x0)
    if y.shape[0] == 0:
        return codes
    point, t = codes, 1.0
    for _ in range(max_iter):
        new = proximal_gradient_step(dictionary, point, y, step, lam, mode)
        if accelerate:
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            point = new + ((t - 1.0) / t_next) * (new - codes)
            t = t_next
        else:
            point = new
        done = tol > 0 and bool(_relative_change(new, codes) <= tol)
        codes = new
        if done:
            break
    return codes
