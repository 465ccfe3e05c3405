"""The ML-CSC encoder: a stack of convolutional dictionaries plus a pursuit.

``MLCSC`` is a drop-in ``nn.Module``: given an image batch it returns the sparse codes of the
multi-layer convolutional sparse model ``X = D₁Γ₁, Γ₁ = D₂Γ₂, …, Γ_{K−1} = D_KΓ_K`` found by the
chosen pursuit. Dictionaries, per-channel thresholds and per-layer step sizes are parameters,
so the pursuit can be trained end to end (Sulam, Aberdam, Beck & Elad 2019).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcsc.dictionary import ConvDictionary
from mlcsc.functional import THRESHOLD_MODES, conv_output_size
from mlcsc.pursuit import PURSUITS, get_pursuit

__all__ = ["MLCSC", "LayerSpec"]

LayerSpec = tuple[int, int, int, int]  # (num_atoms, kernel_size, stride, padding)

#: largest relative step ``c_j·L_j`` allowed; proximal gradient is stable below 2
MAX_RELATIVE_STEP = 1.99


def _parse_layer(index: int, spec) -> LayerSpec:
    integral = isinstance(spec, Sequence) and not isinstance(spec, (str, bytes))
    integral = integral and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in spec
    )
    if not integral:
        raise ValueError(
            f"layers[{index}] must be (num_atoms, kernel_size[, stride[, padding]]) integers, "
            f"got {spec!r}"
        )
    values = [int(v) for v in spec]
    if not 2 <= len(values) <= 4:
        raise ValueError(
            f"layers[{index}] must be (num_atoms, kernel_size[, stride[, padding]]), got {spec!r}"
        )
    values += [1, 0][len(values) - 2 :]
    num_atoms, kernel_size, stride, padding = values
    for name, value, minimum in (
        ("num_atoms", num_atoms, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if value < minimum:
            raise ValueError(f"layers[{index}]: {name} must be >= {minimum}, got {value}")
    return num_atoms, kernel_size, stride, padding


class MLCSC(nn.Module):
    """Multi-layer convolutional sparse coding encoder.

    Args:
        in_channels: channels of the input images.
        layers: one ``(num_atoms, kernel_size, stride, padding)`` spec per layer (stride and
            padding may be omitted: 1 and 0).
        pursuit: one of :data:`mlcsc.pursuit.PURSUITS`: ``layered_thresholding``,
            ``layered_bp``, ``ml_ista``, ``ml_fista``, ``ml_lista``.
        n_iter: unrolled iterations ``T`` (per layer for ``layered_bp``); 0 is the CNN forward
            pass. Can be changed after training.
        threshold_init: initial value ``β ≥ 0`` of every threshold (CNN bias ``−β``).
        step_init: initial relative step ``c_j·L_j`` in ``(0, 2)``; the step of layer ``j`` is
            ``c_j = clamp(step_sizes[j], 0, 1.99) / L_j`` with ``L_j = ‖D_j‖₂²`` tracked by warm
            power iteration while training, so the unrolled iterations stay stable as the
            dictionaries move.
        threshold_mode: ``soft_nonneg`` (ReLU, the CNN), ``soft`` or ``hard``.
        check_input: validate inputs (shape, size, finite values) in :meth:`forward`.

    Attributes:
        dictionaries: ``nn.ModuleList`` of :class:`~mlcsc.ConvDictionary` ``[D₁, …, D_K]``.
        analysis_dictionaries: the untied analysis operators (``ml_lista`` only) or ``None``.
        thresholds: ``nn.ParameterList`` of per-channel thresholds, shapes ``(m_j,)``.
        step_sizes: ``nn.ParameterList`` of relative step sizes, 0-d each.

    Shape:
        input ``(B, in_channels, H, W)`` → ``Γ_K`` of shape ``(B, m_K, H_K, W_K)``.
    """

    def __init__(
        self,
        in_channels: int,
        layers: Sequence[Sequence[int]],
        pursuit: str = "ml_fista",
        n_iter: int = 6,
        threshold_init: float = 0.0,
        step_init: float = 1.0,
        threshold_mode: str = "soft_nonneg",
        check_input: bool = True,
    ):
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"layers must be a non-empty list of layer specs, got {layers!r}")
        specs = [_parse_layer(i, spec) for i, spec in enumerate(layers)]
        function = get_pursuit(pursuit)
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(
                f"unknown threshold_mode {threshold_mode!r}; expected one of "
                f"{', '.join(THRESHOLD_MODES)}"
            )
        if not float(threshold_init) >= 0:
            raise ValueError(f"threshold_init must be >= 0, got {threshold_init}")
        if not 0 < float(step_init) <= MAX_RELATIVE_STEP:
            raise ValueError(
                f"step_init (relative step c·L) must be in (0, {MAX_RELATIVE_STEP}], "
                f"got {step_init}"
            )
        self.in_channels = in_channels
        self.layer_specs = specs
        self.pursuit = pursuit
        self._pursuit_function = function
        self.n_iter = n_iter
        self.threshold_mode = threshold_mode
        self.check_input = check_input

        channels = [in_channels] + [spec[0] for spec in specs]
        self.dictionaries = nn.ModuleList(
            ConvDictionary(channels[j], *specs[j]) for j in range(len(specs))
        )
        self.analysis_dictionaries: nn.ModuleList | None = None
        if getattr(function, "untied", False):
            self.analysis_dictionaries = nn.ModuleList(
                ConvDictionary(channels[j], *specs[j]) for j in range(len(specs))
            )
            with torch.no_grad():
                pairs = zip(self.analysis_dictionaries, self.dictionaries, strict=True)
                for analysis, dictionary in pairs:
                    analysis.weight.copy_(dictionary.weight)
        self.thresholds = nn.ParameterList(
            nn.Parameter(torch.full((spec[0],), float(threshold_init))) for spec in specs
        )
        self.step_sizes = nn.ParameterList(
            nn.Parameter(torch.tensor(float(step_init))) for _ in specs
        )
        self.register_buffer("lipschitz_constants", torch.zeros(len(specs)))

    # ------------------------------------------------------------------ configuration
    @property
    def n_iter(self) -> int:
        return self._n_iter

    @n_iter.setter
    def n_iter(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {value!r}")
        self._n_iter = value

    @property
    def num_layers(self) -> int:
        return len(self.dictionaries)

    @property
    def out_channels(self) -> int:
        return self.layer_specs[-1][0]

    def layer_sizes(self, input_size: Sequence[int]) -> list[tuple[int, int]]:
        """Spatial sizes ``[(H, W), (H₁, W₁), …, (H_K, W_K)]`` of the input and every code.

        Raises:
            ValueError: when the image is too small for the architecture.
        """
        sizes = [tuple(int(n) for n in input_size)]
        for j, (_, k, s, p) in enumerate(self.layer_specs):
            size = tuple(conv_output_size(n, k, s, p) for n in sizes[-1])
            if min(size) < 1:
                raise ValueError(
                    f"input of spatial size {sizes[0]} is too small for this architecture: "
                    f"layer {j + 1} ({k}×{k} filters, stride {s}, padding {p}) receives "
                    f"{sizes[-1]}; expected images of at least {self.min_input_size()}"
                )
            sizes.append(size)
        return sizes

    def min_input_size(self) -> tuple[int, int]:
        """Smallest square image the architecture accepts."""
        n = 1
        for _, k, s, p in reversed(self.layer_specs):
            n = max((n - 1) * s + k - 2 * p, 1)
        return (n, n)

    def code_shape(self, input_size: Sequence[int]) -> tuple[int, int, int]:
        """Shape ``(m_K, H_K, W_K)`` of the deepest code for images of ``input_size``."""
        return (self.out_channels, *self.layer_sizes(input_size)[-1])

    def validate_input(self, x: Tensor) -> None:
        """Raise ValueError naming what was expected when ``x`` does not fit the encoder."""
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channel(s), got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        self.layer_sizes(x.shape[-2:])
        if not torch.isfinite(x).all():
            raise ValueError(f"input of shape {tuple(x.shape)} contains non-finite values")

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def refresh_lipschitz(self, input_size: Sequence[int], n_iter: int = 100) -> Tensor:
        """Re-estimate ``L_j = ‖D_j‖₂²`` for every layer on inputs of ``input_size``."""
        sizes = self.layer_sizes(input_size)
        for j, dictionary in enumerate(self.dictionaries):
            self.lipschitz_constants[j] = dictionary.lipschitz(sizes[j], n_iter=n_iter)
        return self.lipschitz_constants.clone()

    def steps(self) -> list[Tensor]:
        """The step sizes ``c_j = clamp(step_sizes[j], 0, 1.99) / L_j`` used by the pursuit."""
        return [
            relative.clamp(0.0, MAX_RELATIVE_STEP) / self.lipschitz_constants[j].clamp_min(1e-12)
            for j, relative in enumerate(self.step_sizes)
        ]

    def _update_lipschitz(self, input_size: Sequence[int]) -> None:
        if self.n_iter == 0 or self.pursuit == "layered_thresholding":
            return
        if self.training or not bool((self.lipschitz_constants > 0).all()):
            first = not bool((self.lipschitz_constants > 0).all())
            # a few warm-started power iterations track the dictionaries as they learn
            self.refresh_lipschitz(input_size, n_iter=100 if first else 2)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, return_all: bool = False) -> Tensor | list[Tensor]:
        """Run the pursuit.

        Args:
            x: images ``(B, in_channels, H, W)``.
            return_all: return ``[Γ₁, …, Γ_K]`` instead of ``Γ_K``.
        """
        if self.check_input:
            self.validate_input(x)
        self._update_lipschitz(x.shape[-2:])
        codes = self._pursuit_function(
            list(self.dictionaries),
            x,
            list(self.thresholds),
            self.steps(),
            self.n_iter,
            self.threshold_mode,
            list(self.analysis_dictionaries) if self.analysis_dictionaries is not None else None,
        )
        return codes if return_all else codes[-1]

    # ------------------------------------------------------------------ the model as a generator
    def reconstruct(self, gamma_K: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        """``D₁D₂⋯D_K Γ_K``: the signal the deepest code represents.

        Args:
            gamma_K: deepest code ``(B, m_K, H_K, W_K)``.
            output_size: the ``(H, W)`` of the images the code came from (for strided layers
                several sizes share a code size); default the smallest consistent size.
        """
        return self.synthesis_chain(gamma_K, output_size)[0]

    def model_codes(
        self, gamma_K: Tensor, output_size: Sequence[int] | None = None
    ) -> list[Tensor]:
        """The codes of every layer that the deepest code defines, ``[Γ₁, …, Γ_K]`` with
        ``Γ_{i−1} = D_iΓ_i``: the model's own intermediate representations (the iterative
        pursuits return their last per-layer iterates instead, which are close to these only
        once converged).

        Args:
            gamma_K: deepest code ``(B, m_K, H_K, W_K)``.
            output_size: as for :meth:`reconstruct`.
        """
        return self.synthesis_chain(gamma_K, output_size)[1:]

    def synthesis_chain(
        self, gamma_K: Tensor, output_size: Sequence[int] | None = None
    ) -> list[Tensor]:
        """``[D₁⋯D_KΓ_K, D₂⋯D_KΓ_K, …, Γ_K]``: the reconstruction followed by the model's codes,
        from one pass of synthesis (differentiable in the dictionaries and ``gamma_K``)."""
        sizes = self.layer_sizes(output_size) if output_size is not None else None
        chain = [gamma_K]
        for j in range(self.num_layers - 1, -1, -1):
            chain.insert(0, self.dictionaries[j].synthesize(chain[0], sizes[j] if sizes else None))
        return chain

    @torch.no_grad()
    def effective_atoms(self, i: int) -> Tensor:
        """Atoms of the effective dictionary ``D₁D₂⋯D_i`` as images ("molecules").

        Every atom of layer ``i`` placed alone on a code grid and synthesised down to the
        input, without cropping (padding ignored): its footprint grows with depth as
        ``k_eff(i) = k_eff(i−1) + (k_i − 1)·s₁⋯s_{i−1}``.

        Args:
            i: layer, 1 ≤ i ≤ K.

        Returns:
            ``(m_i, in_channels, k_eff, k_eff)``.
        """
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= self.num_layers:
            raise ValueError(f"layer index must be an integer in [1, {self.num_layers}], got {i!r}")
        num_atoms = self.layer_specs[i - 1][0]
        weight = self.dictionaries[0].weight
        signal = torch.eye(num_atoms, dtype=weight.dtype, device=weight.device)
        signal = signal.view(num_atoms, num_atoms, 1, 1)  # (m_i, m_i, 1, 1): one atom each
        for j in range(i - 1, -1, -1):
            dictionary = self.dictionaries[j]
            signal = F.conv_transpose2d(signal, dictionary.weight, stride=dictionary.stride)
        return signal

    def extra_repr(self) -> str:
        return f"pursuit={self.pursuit!r}, n_iter={self.n_iter}, mode={self.threshold_mode!r}"


def available_pursuits() -> list[str]:
    """Names accepted by ``MLCSC(pursuit=...)``."""
    return sorted(PURSUITS)
