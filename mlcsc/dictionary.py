"""Dictionaries: the one linear-operator abstraction every pursuit is written against.

A dictionary ``D`` maps codes ``Γ`` to signals, ``x = DΓ``. Pursuits only need

* :meth:`Dictionary.synthesize` — ``DΓ``,
* :meth:`Dictionary.analyze` — ``Dᵀx`` (the exact adjoint),
* :meth:`Dictionary.lipschitz` — ``‖D‖₂²``, the Lipschitz constant of ``∇ ½‖y − DΓ‖²``,

so thresholding, ISTA/FISTA and the layered and multi-layer pursuits are written once and serve
a patch dictionary (:class:`DenseDictionary`, Sparseland), a convolutional dictionary
(:class:`ConvDictionary`, CSC) and every layer of an ML-CSC stack. Other callers use
:meth:`~Dictionary.check_signal`, :meth:`~Dictionary.code_shape`, :meth:`~Dictionary.matrix`
and :meth:`~Dictionary.sparsify_filters_`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mlcsc.checks import check_int, check_number
from mlcsc.functional import (
    conv_analysis,
    conv_lipschitz_bound,
    conv_output_size,
    conv_synthesis,
    lanczos_step,
    largest_eigenvalue,
    operator_matrix,
)

__all__ = ["Dictionary", "DenseDictionary", "ConvDictionary"]


def _krylov_dim(numel: int) -> int:
    """Lanczos basis size: 40 vectors for small codes, down to 12 for large ones, whose
    re-orthogonalisation against every basis vector would otherwise cost as much as the
    convolutions themselves; thick restarts make up for the smaller basis."""
    return max(12, min(40, (1 << 22) // max(numel, 1)))


class Dictionary(nn.Module):
    """Base class: a linear operator ``D`` with its adjoint and a bound on its norm.

    A dictionary maps codes to signals, ``x = DΓ`` (:meth:`synthesize`), and signals back to the
    code domain with the exact adjoint, ``Dᵀx`` (:meth:`analyze`). With the Lipschitz constant
    ``L = ‖D‖₂²`` of the gradient ``Dᵀ(DΓ − y)`` of the data term ``½‖y − DΓ‖₂²``
    (:meth:`lipschitz`, :meth:`gradient`) that is all a pursuit needs, so every pursuit of the
    package runs unchanged on a Sparseland matrix (:class:`DenseDictionary`), a convolutional
    dictionary (:class:`ConvDictionary`) or a product of them
    (:class:`~mlcsc.effective_dictionary.EffectiveDictionary`).

    Subclasses hold the atoms in ``weight`` and implement :meth:`synthesize`, :meth:`analyze`
    and :meth:`atom_norms`, and the hooks ``_code_shape(input_size)`` (shape of one code, batch
    of 1, for signals of spatial size ``input_size``), ``_signal_shape(input_size)`` (shape of
    one signal), ``_check_signal_shape(y, name)`` (ValueError naming ``name`` for a batch not
    shaped like its signals) and, for atoms of their own, ``_atoms()`` / ``_set_atoms_(atoms)``
    (the atoms as the rows of an ``(m, size)`` matrix, detached / written back in place).
    Everything else (:meth:`check_signal`, :meth:`code_shape`, :meth:`matrix`,
    :meth:`lipschitz`, :meth:`normalize_`, :meth:`sparsify_filters_`, …) is written once here.

    Shape:
        - dense: codes ``(B, m)`` ↔ signals ``(B, n)``.
        - convolutional: codes ``(B, m, H', W')`` ↔ signals ``(B, c, H, W)``.

    Examples:
        The shared interface, on a diagonal ``2 × 2`` dictionary:

        >>> D = DenseDictionary(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        >>> isinstance(D, Dictionary), D.lipschitz()
        (True, tensor(4.))
        >>> codes, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
        >>> D.residual(codes, y).detach(), D.gradient(codes, y).detach()  # DΓ − y, Dᵀ(DΓ − y)
        (tensor([[ 2., -3.]]), tensor([[ 4., -3.]]))
        >>> D.normalize_().atom_norms().detach()
        tensor([1., 1.])
    """

    weight: nn.Parameter

    # ------------------------------------------------------------------- implemented by subclasses
    def synthesize(self, codes: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        """``DΓ``."""
        raise NotImplementedError

    def analyze(self, x: Tensor) -> Tensor:
        """``Dᵀx``, the adjoint of :meth:`synthesize`."""
        raise NotImplementedError

    def atom_norms(self) -> Tensor:
        """ℓ2 norm of every atom, shape ``(num_atoms,)``."""
        raise NotImplementedError

    def _code_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        raise NotImplementedError

    def _signal_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        raise NotImplementedError

    def _check_signal_shape(self, y: Tensor, name: str) -> None:
        raise NotImplementedError

    def _atoms(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no atoms of its own")

    def _set_atoms_(self, atoms: Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no atoms of its own")

    def _probe_size(self, input_size: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None

    def signal_size(self, y: Tensor) -> tuple[int, ...] | None:
        """The ``output_size`` that makes :meth:`synthesize` produce signals shaped like ``y``."""
        return None

    # ------------------------------------------------------------------------------ the operator
    def forward(self, codes: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        return self.synthesize(codes, output_size)

    def residual(self, codes: Tensor, y: Tensor) -> Tensor:
        """``DΓ − y``, synthesised at the size of ``y``."""
        return self.synthesize(codes, self.signal_size(y)) - y

    def gradient(self, codes: Tensor, y: Tensor) -> Tensor:
        """``Dᵀ(DΓ − y)``: the gradient of ``½‖y − DΓ‖²`` with respect to ``Γ``."""
        return self.analyze(self.residual(codes, y))

    # ------------------------------------------------------------------------ signals and codes
    @torch.no_grad()
    def check_signal(self, y: object, name: str = "y") -> None:
        """ValueError naming ``name``, its shape and what was expected unless ``y`` is a finite
        floating-point batch of this dictionary's signals (``(B, n)`` dense, ``(B, C, H, W)``
        convolutional and at least as large as the filters), with the weight's dtype and device.

        Args:
            y: the batch to check.
            name: how the error message calls it.

        Raises:
            ValueError: for anything but such a batch.

        Examples:
            >>> D = DenseDictionary(torch.eye(3))
            >>> D.check_signal(torch.zeros(2, 3))  # fine: returns None
            >>> D.check_signal(torch.zeros(2, 4))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: y must have shape (B, 3) for a dictionary with ... got shape (2, 4)
        """
        if not isinstance(y, Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(y).__name__}")
        self._check_signal_shape(y, name)
        weight = self.weight
        if not torch.is_floating_point(y):
            raise ValueError(f"{name} must be floating point, got dtype {y.dtype}")
        if y.dtype != weight.dtype:
            raise ValueError(
                f"{name} has dtype {y.dtype} but the dictionary weight has dtype {weight.dtype}; "
                f"convert one of them"
            )
        if y.device != weight.device:
            raise ValueError(
                f"{name} is on {y.device} but the dictionary weight is on {weight.device}"
            )
        if not torch.isfinite(y).all():
            raise ValueError(
                f"{name} of shape {tuple(y.shape)} contains non-finite values (nan or inf)"
            )

    def code_shape(self, y: Tensor) -> tuple[int, ...]:
        """Shape of the code of one signal of the batch ``y`` (that of ``D.analyze(y)[0]``),
        computed from the shapes alone: ``(m,)`` or ``(m, H', W')``."""
        return self._code_shape(self.signal_size(y))[1:]

    def code_numel(self, y: Tensor) -> int:
        """Number of code entries per signal of ``y``: ``m`` (dense) or ``m·H'·W'``
        (convolutional)."""
        return math.prod(self.code_shape(y))

    @torch.no_grad()
    def matrix(
        self, input_size: tuple[int, ...] | None = None, *, max_entries: int | None = None
    ) -> Tensor:
        """The explicit ``(n, N)`` matrix (detached) of the operator on signals of spatial size
        ``input_size`` (required for a convolutional dictionary, ignored where it is fixed).

        Column ``j`` is the synthesis of the code with a single 1 at flattened position ``j``
        (channel-major: ``c·H'·W' + h·W' + w``), row ``i`` a flattened signal entry: ``n·N``
        entries, for OMP on small problems and for tests. ValueError when ``n·N`` exceeds
        ``max_entries`` (a :class:`DenseDictionary` builds nothing: its matrix is the weight).
        """
        code_shape = self._code_shape(input_size)[1:]
        signal_shape = self._signal_shape(input_size)
        n, n_codes = math.prod(signal_shape), math.prod(code_shape)
        if max_entries is not None and n * n_codes > max_entries:
            raise ValueError(
                f"the explicit n × N matrix of a {type(self).__name__} for signals of shape "
                f"{signal_shape} has {n} × {n_codes} = {n * n_codes:,} entries, above the limit "
                f"of {max_entries:,}: use smaller signals (images or patches)"
            )
        return self._build_matrix(input_size, signal_shape, code_shape)

    def _build_matrix(self, input_size, signal_shape, code_shape) -> Tensor:
        probe = self._probe_size(input_size)  # column j: the synthesis of the unit code j
        return operator_matrix(lambda codes: self.synthesize(codes, probe), code_shape, self.weight)

    # ------------------------------------------------------------------------------- the norm
    @torch.no_grad()
    def lipschitz(
        self,
        input_size: tuple[int, ...] | None = None,
        n_iter: int = 100,
        tol: float = 1e-7,
        warm_start: bool = True,
    ) -> Tensor:
        """Estimate ``L = ‖D‖₂² = λ_max(DᵀD)`` by Lanczos iteration on ``v ↦ Dᵀ(Dv)``.

        The estimate is the largest Ritz value of the Krylov space built from the start vector
        (:func:`~mlcsc.functional.largest_eigenvalue`): a Rayleigh quotient, so never above
        ``L``, and it converges to ``L`` much faster than power iteration (from a cold start,
        the default 100 operator applications reach ``L`` to about working precision on
        typical images). The Ritz vector is kept (not saved in the state dict) so that a later
        call with ``warm_start=True`` refines the estimate in a few applications as the atoms
        move during training; a step ``1.99/L`` needs a converged estimate.

        Args:
            input_size: spatial size of the signals the operator acts on (convolutional
                dictionaries: the norm depends on the image size).
            n_iter: maximum number of applications of ``DᵀD``.
            tol: relative accuracy at which to stop (Lanczos error estimate).
            warm_start: start from the vector of the previous call when its shape matches.

        Returns:
            A 0-d tensor (detached) on the dictionary's device.
        """
        shape = self._code_shape(input_size)
        w = self.weight
        previous = getattr(self, "_power_vector", None)
        if warm_start and previous is not None and tuple(previous.shape) == shape:
            x0 = previous.to(device=w.device, dtype=w.dtype)
        else:
            generator = torch.Generator(device="cpu").manual_seed(0)
            x0 = torch.randn(shape, generator=generator, dtype=w.dtype).to(w.device)
        probe = self._probe_size(input_size)
        value, vector = largest_eigenvalue(
            lambda v: self.analyze(self.synthesize(v, probe)),
            x0,
            n_iter=n_iter,
            tol=tol,
            krylov_dim=_krylov_dim(x0.numel()),
        )
        self._power_vector = vector.detach()
        return value.detach()

    @torch.no_grad()
    def track_lipschitz(self, input_size: tuple[int, ...] | None = None) -> Tensor:
        """Refine the last :meth:`lipschitz` estimate by one sync-free Lanczos step
        (:func:`~mlcsc.functional.lanczos_step`, two applications of ``DᵀD``) from its vector.

        For training steps, where the atoms move a little between calls: no host
        synchronisation and no data-dependent branch, so it runs inside ``torch.compile``'d
        code. Without a previous vector of the right shape it starts from a fixed
        quasi-random one (call :meth:`lipschitz` first for a converged estimate).

        Returns:
            A 0-d tensor (detached): a Rayleigh quotient, never above ``‖D‖₂²``.
        """
        shape = self._code_shape(input_size)
        w = self.weight
        v = getattr(self, "_power_vector", None)
        if v is None or tuple(v.shape) != shape:
            count = math.prod(shape)
            golden = torch.arange(1, count + 1, dtype=w.dtype, device=w.device) * 0.6180339887
            v = (golden - golden.floor() - 0.5).view(shape)
        probe = self._probe_size(input_size)
        value, vector = lanczos_step(lambda u: self.analyze(self.synthesize(u, probe)), v)
        self._power_vector = vector
        return value

    # ------------------------------------------------------------------------------- the atoms
    @torch.no_grad()
    def normalize_(self, eps: float = 1e-12) -> Dictionary:
        """Rescale every atom to unit ℓ2 norm, in place. All-zero atoms are left at zero."""
        norms = self.atom_norms()
        scale = torch.where(norms > eps, 1.0 / norms.clamp_min(eps), torch.zeros_like(norms))
        self._set_atoms_(self._atoms() * scale.unsqueeze(1))
        return self

    @torch.no_grad()
    def sparsify_filters_(self, density: float) -> Dictionary:
        """Keep the largest ``density`` fraction of every atom's weights, zero the rest, in place.

        Each atom keeps ``max(1, round(density·size))`` entries of largest magnitude and is
        then rescaled to unit ℓ2 norm. Sparse filters keep the intermediate codes of an ML-CSC
        model sparse (Sulam, Papyan, Romano & Elad 2018, IEEE TSP).

        Args:
            density: fraction ``0 < density ≤ 1`` of the weights to keep per atom.

        Returns:
            The dictionary itself.

        Examples:
            Two atoms (the columns) of two weights each keep their largest one:

            >>> D = DenseDictionary(torch.tensor([[3.0, 1.0], [4.0, -2.0]]))
            >>> D.sparsify_filters_(0.5).weight.detach()
            tensor([[ 0.,  0.],
                    [ 1., -1.]])
        """
        density = check_number("density", density, 0.0, 1.0, low_open=True)
        atoms = self._atoms()  # (m, size)
        keep = max(1, round(density * atoms.shape[1]))
        kept = atoms.abs().topk(keep, dim=1).indices
        mask = torch.zeros_like(atoms, dtype=torch.bool).scatter_(1, kept, True)
        sparse = torch.where(mask, atoms, torch.zeros((), dtype=atoms.dtype, device=atoms.device))
        norms = sparse.norm(dim=1, keepdim=True)
        self._set_atoms_(torch.where(norms > 0, sparse / norms.clamp_min(1e-30), sparse))
        return self

    def mutual_coherence(self) -> Tensor:
        """``μ(D)``: the largest normalised inner product of two distinct atoms (for a
        convolutional dictionary, over all atom pairs and all shifts on the code grid); see
        :func:`mlcsc.theory.mutual_coherence`."""
        from mlcsc.theory.coherence import mutual_coherence

        return mutual_coherence(self)


class DenseDictionary(Dictionary):
    """A Sparseland dictionary: an ``n × m`` matrix whose columns are the atoms.

    The Sparseland model says a signal ``y ∈ Rⁿ`` is ``y = Dγ`` (plus noise) with a sparse
    ``γ ∈ Rᵐ`` (Bruckstein, Donoho & Elad 2009, "From sparse solutions of systems of equations
    to sparse modeling of signals and images", SIAM Review 51(1); Elad 2010, *Sparse and
    Redundant Representations*, Springer). Signals and codes are the rows of a batch:
    :meth:`synthesize` computes ``ΓDᵀ`` and :meth:`analyze` ``YD``; the norm
    :meth:`lipschitz` is exact (largest singular value squared).

    Args:
        weight: ``(n, m)`` matrix (copied; integer tensors are converted to the default
            dtype); kept as a learnable parameter.

    Raises:
        ValueError: for a weight that is not a finite matrix.

    Shape:
        - synthesize: ``(B, m)`` → ``(B, n)``.
        - analyze: ``(B, n)`` → ``(B, m)``.

    Examples:
        >>> D = DenseDictionary(torch.randn(8, 20, generator=torch.Generator().manual_seed(0)))
        >>> D.synthesize(torch.zeros(5, 20)).shape, D.analyze(torch.zeros(5, 8)).shape
        (torch.Size([5, 8]), torch.Size([5, 20]))
        >>> D.code_shape(torch.zeros(5, 8)), D.matrix().shape
        ((20,), torch.Size([8, 20]))
        >>> DenseDictionary(torch.eye(3)).lipschitz()
        tensor(1.)
    """

    def __init__(self, weight: Tensor):
        super().__init__()
        weight = torch.as_tensor(weight)
        if weight.ndim != 2:
            raise ValueError(f"weight must be an (n, m) matrix, got shape {tuple(weight.shape)}")
        if not torch.is_floating_point(weight):
            weight = weight.to(torch.get_default_dtype())
        if not torch.isfinite(weight).all():
            raise ValueError("weight contains non-finite values (nan or inf)")
        self.weight = nn.Parameter(weight.detach().clone())

    @property
    def signal_dim(self) -> int:
        return self.weight.shape[0]

    @property
    def num_atoms(self) -> int:
        return self.weight.shape[1]

    def synthesize(self, codes: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        return codes @ self.weight.T  # (B, m) → (B, n)

    def analyze(self, x: Tensor) -> Tensor:
        return x @ self.weight  # (B, n) → (B, m)

    def atom_norms(self) -> Tensor:
        return self.weight.norm(dim=0)

    def _atoms(self) -> Tensor:
        return self.weight.detach().T

    def _set_atoms_(self, atoms: Tensor) -> None:
        self.weight.copy_(atoms.T)

    def _code_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        return (1, self.num_atoms)

    def _signal_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        return (self.signal_dim,)

    def _check_signal_shape(self, y: Tensor, name: str) -> None:
        n = self.signal_dim
        if y.ndim != 2 or y.shape[1] != n:
            raise _shape_error(name, f"(B, {n})", f"signal dimension {n}", y)

    @torch.no_grad()
    def matrix(
        self, input_size: tuple[int, ...] | None = None, *, max_entries: int | None = None
    ) -> Tensor:
        """The weight itself (detached, not copied); see :meth:`Dictionary.matrix`."""
        return self.weight.detach()

    @torch.no_grad()
    def lipschitz(self, input_size=None, n_iter: int = 100, tol: float = 1e-7, warm_start=True):
        """``‖D‖₂²`` computed exactly from the largest singular value."""
        return torch.linalg.matrix_norm(self.weight.detach(), ord=2) ** 2

    def extra_repr(self) -> str:
        return f"signal_dim={self.signal_dim}, num_atoms={self.num_atoms}"


class ConvDictionary(Dictionary):
    """A multi-channel convolutional dictionary (one layer of CSC / ML-CSC).

    The convolutional sparse coding model writes a signal as a sum of shifted filters,
    ``x = Σ_i d_i ∗ Γ_i`` with sparse feature maps ``Γ_i`` (the global convolutional model of
    Papyan, Sulam & Elad 2017, "Working locally thinking globally: theoretical guarantees for
    convolutional sparse coding", IEEE TSP 65(21)); stacked, these dictionaries form the
    multi-layer model ML-CSC (Papyan, Romano & Elad 2017, JMLR 18).

    ``D`` holds ``num_atoms`` filters of size ``in_channels × k × k``; ``DΓ`` places a copy of
    filter ``i`` at every position of code channel ``i`` (``conv_transpose2d``) and ``Dᵀx``
    correlates the signal with every filter (``conv2d``). The two are exact adjoints for every
    stride, padding and image size (synthesis is told the signal size it must produce).

    Args:
        in_channels: channels ``c`` of the signal (``m_{i−1}`` in an ML-CSC stack).
        num_atoms: number of filters ``m`` (channels of the code).
        kernel_size: filter size ``k`` (square).
        stride: stride ``s`` ≥ 1 of the code grid.
        padding: zero padding ``p`` ≥ 0 of the signal in the analysis.

    Attributes:
        weight: filters of shape ``(num_atoms, in_channels, k, k)``, initialised with unit-norm
            Gaussian atoms.

    Raises:
        ValueError: for a size or count below its minimum (the message names it).

    Shape:
        - synthesize: ``(B, m, H', W')`` → ``(B, c, H, W)``.
        - analyze: ``(B, c, H, W)`` → ``(B, m, H', W')``, with ``H' = ⌊(H + 2p − k)/s⌋ + 1``
          (the same for ``W'``).

    Examples:
        >>> D = ConvDictionary(in_channels=3, num_atoms=16, kernel_size=5, stride=2)
        >>> x = torch.zeros(4, 3, 28, 28)
        >>> D.analyze(x).shape, D.code_shape(x), D.code_numel(x)
        (torch.Size([4, 16, 12, 12]), (16, 12, 12), 2304)
        >>> D.synthesize(D.analyze(x), (28, 28)).shape
        torch.Size([4, 3, 28, 28])

        Synthesis and analysis are exact adjoints, ``⟨DΓ, x⟩ = ⟨Γ, Dᵀx⟩``:

        >>> generator = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2, 3, 28, 28, generator=generator, dtype=torch.float64)
        >>> codes = torch.randn(2, 16, 12, 12, generator=generator, dtype=torch.float64)
        >>> D = D.double()
        >>> lhs = (D.synthesize(codes, (28, 28)) * x).sum()
        >>> torch.allclose(lhs, (codes * D.analyze(x)).sum())
        True
    """

    def __init__(
        self,
        in_channels: int,
        num_atoms: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.num_atoms = check_int("num_atoms", num_atoms, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = check_int("stride", stride, 1)
        self.padding = check_int("padding", padding, 0)
        weight = torch.randn(num_atoms, in_channels, kernel_size, kernel_size)
        weight /= weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        self.weight = nn.Parameter(weight)

    def synthesize(self, codes: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        """``DΓ``; ``output_size`` is the ``(H, W)`` of the signal (see :func:`conv_synthesis`)."""
        return conv_synthesis(codes, self.weight, self.stride, self.padding, output_size)

    def analyze(self, x: Tensor) -> Tensor:
        """``Dᵀx`` (``conv2d``)."""
        return conv_analysis(x, self.weight, self.stride, self.padding)

    def signal_size(self, y: Tensor) -> tuple[int, int]:
        return (y.shape[-2], y.shape[-1])

    def atom_norms(self) -> Tensor:
        return self.weight.flatten(1).norm(dim=1)

    def _atoms(self) -> Tensor:
        return self.weight.detach().flatten(1)

    def _set_atoms_(self, atoms: Tensor) -> None:
        self.weight.copy_(atoms.view_as(self.weight))

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of the code for a signal of spatial size ``input_size``."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return tuple(conv_output_size(int(n), k, s, p) for n in input_size)  # type: ignore[return-value]

    @torch.no_grad()
    def lipschitz(
        self,
        input_size: tuple[int, int] | None = None,
        n_iter: int = 100,
        tol: float = 1e-7,
        warm_start: bool = True,
    ) -> Tensor:
        """``L = ‖D‖₂²``: estimated on images of ``input_size``, or bounded for all sizes.

        * ``input_size`` given: the norm of the operator on signals of that spatial size, by
          Lanczos iteration (see :meth:`Dictionary.lipschitz`; ``n_iter``, ``tol`` and
          ``warm_start`` apply). A lower estimate that converges from below, accurate to
          about working precision from a cold start with the defaults.
        * ``input_size=None``: a *certified upper bound* valid for every image size and
          padding, ``≥ ‖D‖₂²`` on any image, and within 0.5 % of the large-image limit unless
          the default work budget runs out first (very large banks with a flat frequency
          response; see :func:`~mlcsc.functional.conv_lipschitz_bound`: the supremum over
          frequencies of the polyphase frequency response, made rigorous by a curvature
          bound). On small images it exceeds their norm (the image border lowers the norm).
          It is deterministic, so ``n_iter``, ``tol`` and ``warm_start`` are ignored. Use it
          when the images are not known in advance, or for a step ``1.99/L`` that must never
          diverge.

        Returns:
            A 0-d tensor (detached) on the dictionary's device, in its dtype.
        """
        if input_size is None:
            return conv_lipschitz_bound(self.weight, self.stride)
        return super().lipschitz(input_size, n_iter=n_iter, tol=tol, warm_start=warm_start)

    def _probe_size(self, input_size):
        return tuple(input_size) if input_size is not None else None

    def _code_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        if input_size is None:
            raise ValueError("a convolutional dictionary's operator needs the signal size")
        size = self.output_size(tuple(input_size))
        if min(size) < 1:
            raise ValueError(
                f"input_size {tuple(input_size)} is smaller than the {self.kernel_size}×"
                f"{self.kernel_size} filters with padding {self.padding}"
            )
        return (1, self.num_atoms, *size)

    def _signal_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        if input_size is None:
            raise ValueError("a convolutional dictionary's operator needs the signal size")
        return (self.in_channels, *(int(n) for n in input_size))

    def _check_signal_shape(self, y: Tensor, name: str) -> None:
        c = self.in_channels
        if y.ndim != 4 or y.shape[1] != c:
            raise _shape_error(name, f"(B, {c}, H, W)", f"in_channels={c}", y)
        if min(self.output_size((y.shape[-2], y.shape[-1]))) < 1:
            k, p = self.kernel_size, self.padding
            raise ValueError(
                f"{name} of shape {tuple(y.shape)} is smaller than the {k}×{k} filters with "
                f"padding {p}"
            )

    def _build_matrix(self, input_size, signal_shape, code_shape) -> Tensor:
        # row i: the analysis of the unit signal i (fewer than the unit codes)
        return operator_matrix(self.analyze, signal_shape, self.weight).T

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_atoms={self.num_atoms}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )


def _shape_error(name: str, expected: str, reason: str, y: Tensor) -> ValueError:
    return ValueError(
        f"{name} must have shape {expected} for a dictionary with {reason}, "
        f"got shape {tuple(y.shape)}"
    )
