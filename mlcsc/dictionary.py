"""Dictionaries: the one linear-operator abstraction every pursuit is written against.

A dictionary ``D`` maps codes ``Γ`` to signals, ``x = DΓ``. Pursuits only need

* :meth:`Dictionary.synthesize` — ``DΓ``,
* :meth:`Dictionary.analyze` — ``Dᵀx`` (the exact adjoint),
* :meth:`Dictionary.lipschitz` — ``‖D‖₂²``, the Lipschitz constant of ``∇ ½‖y − DΓ‖²``,

so thresholding, ISTA/FISTA and the layered and multi-layer pursuits are written once and serve
a patch dictionary (:class:`DenseDictionary`, Sparseland), a convolutional dictionary
(:class:`ConvDictionary`, CSC) and every layer of an ML-CSC stack.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mlcsc.functional import (
    conv_analysis,
    conv_lipschitz_bound,
    conv_output_size,
    conv_synthesis,
    largest_eigenvalue,
)

__all__ = ["Dictionary", "DenseDictionary", "ConvDictionary"]


def _krylov_dim(numel: int) -> int:
    """Lanczos basis size: 40 vectors for small codes, down to 12 for large ones, whose
    re-orthogonalisation against every basis vector would otherwise cost as much as the
    convolutions themselves; thick restarts make up for the smaller basis."""
    return max(12, min(40, (1 << 22) // max(numel, 1)))


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class Dictionary(nn.Module):
    """Base class: a linear operator ``D`` with its adjoint and a bound on its norm.

    Subclasses hold the atoms in ``weight`` and implement :meth:`synthesize`, :meth:`analyze`,
    :meth:`atom_norms` and :meth:`_code_shape`.
    """

    weight: nn.Parameter

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
        """Shape of one code (batch of 1) for signals of spatial size ``input_size``."""
        raise NotImplementedError

    def signal_size(self, y: Tensor) -> tuple[int, ...] | None:
        """The ``output_size`` that makes :meth:`synthesize` produce signals shaped like ``y``."""
        return None

    def forward(self, codes: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        return self.synthesize(codes, output_size)

    def residual(self, codes: Tensor, y: Tensor) -> Tensor:
        """``DΓ − y``, synthesised at the size of ``y``."""
        return self.synthesize(codes, self.signal_size(y)) - y

    def gradient(self, codes: Tensor, y: Tensor) -> Tensor:
        """``Dᵀ(DΓ − y)``: the gradient of ``½‖y − DΓ‖²`` with respect to ``Γ``."""
        return self.analyze(self.residual(codes, y))

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

    def _probe_size(self, input_size: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None

    @torch.no_grad()
    def normalize_(self, eps: float = 1e-12) -> Dictionary:
        """Rescale every atom to unit ℓ2 norm, in place. All-zero atoms are left at zero."""
        norms = self.atom_norms()
        scale = torch.where(norms > eps, 1.0 / norms.clamp_min(eps), torch.zeros_like(norms))
        self._scale_atoms_(scale)
        return self

    def _scale_atoms_(self, scale: Tensor) -> None:
        raise NotImplementedError

    def mutual_coherence(self) -> Tensor:
        """``μ(D)``: the largest normalised inner product of two distinct atoms (for a
        convolutional dictionary, over all atom pairs and all shifts on the code grid); see
        :func:`mlcsc.theory.mutual_coherence`."""
        from mlcsc.theory.coherence import mutual_coherence

        return mutual_coherence(self)


class DenseDictionary(Dictionary):
    """A Sparseland dictionary: an ``n × m`` matrix whose columns are the atoms.

    Args:
        weight: ``(n, m)`` matrix; kept as a learnable parameter.

    Shape:
        synthesize: ``(B, m)`` → ``(B, n)``; analyze: ``(B, n)`` → ``(B, m)``.
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

    def _scale_atoms_(self, scale: Tensor) -> None:
        self.weight.mul_(scale.view(1, -1))

    def _code_shape(self, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
        return (1, self.num_atoms)

    @torch.no_grad()
    def lipschitz(self, input_size=None, n_iter: int = 100, tol: float = 1e-7, warm_start=True):
        """``‖D‖₂²`` computed exactly from the largest singular value."""
        return torch.linalg.matrix_norm(self.weight.detach(), ord=2) ** 2

    def extra_repr(self) -> str:
        return f"signal_dim={self.signal_dim}, num_atoms={self.num_atoms}"


class ConvDictionary(Dictionary):
    """A multi-channel convolutional dictionary (one layer of CSC / ML-CSC).

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

    Shape:
        synthesize: ``(B, m, H', W')`` → ``(B, c, H, W)``; analyze: ``(B, c, H, W)`` →
        ``(B, m, H', W')`` with ``H' = ⌊(H + 2p − k)/s⌋ + 1``.
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
        self.in_channels = _check_int("in_channels", in_channels, 1)
        self.num_atoms = _check_int("num_atoms", num_atoms, 1)
        self.kernel_size = _check_int("kernel_size", kernel_size, 1)
        self.stride = _check_int("stride", stride, 1)
        self.padding = _check_int("padding", padding, 0)
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

    def _scale_atoms_(self, scale: Tensor) -> None:
        self.weight.mul_(scale.view(-1, 1, 1, 1))

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

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_atoms={self.num_atoms}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )
