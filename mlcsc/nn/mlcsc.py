"""The ML-CSC encoder: a stack of convolutional dictionaries plus a pursuit.

``MLCSC`` is a drop-in ``nn.Module``: given an image batch it returns the sparse codes of the
multi-layer convolutional sparse model ``X = D₁Γ₁, Γ₁ = D₂Γ₂, …, Γ_{K−1} = D_KΓ_K`` found by the
chosen pursuit. Dictionaries, per-channel thresholds and per-layer step sizes are parameters,
so the pursuit can be trained end to end (Sulam, Aberdam, Beck & Elad 2019).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcsc.checks import check_choice, check_flag, check_int, check_number
from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.functional import THRESHOLD_MODES, conv_output_size
from mlcsc.nn.options import (
    MAX_RELATIVE_STEP,
    LayerSpec,
    check_pursuit_options,
    new_dictionary,
    parse_layer,
)
from mlcsc.pursuit import PURSUITS, LayerParameters, get_pursuit

__all__ = ["MLCSC", "LayerSpec"]

#: sync-free Lanczos steps that start the norms inside a compiled graph that meets an input size
#: with no estimate (eager code converges instead; estimating before compiling is better)
COMPILED_START_STEPS = 20


class MLCSC(nn.Module):
    """Multi-layer convolutional sparse coding encoder.

    The ML-CSC model (Papyan, Romano & Elad 2017, "Convolutional neural networks analyzed via
    convolutional sparse coding", JMLR 18) says an image is ``X = D₁Γ₁`` with
    ``Γ_{j−1} = D_jΓ_j`` for ``j = 2 … K``, every ``D_j`` a convolutional dictionary
    (:class:`~mlcsc.ConvDictionary`) and every ``Γ_j`` sparse. The forward pass estimates the
    codes by ``n_iter`` unrolled iterations of a pursuit, with learnable per-channel thresholds
    and step sizes:

    * ``n_iter = 0`` is layered thresholding, ``Γ_j = σ_β(D_jᵀΓ_{j−1})`` with ``Γ₀ = X``: for
      ``threshold_mode="soft_nonneg"`` exactly the forward pass of a CNN with ReLU
      ``σ_β(z) = max(z − β, 0)`` and bias ``−β`` (Papyan, Romano & Elad 2017);
    * ``layered_bp`` solves a basis pursuit per layer (Papyan, Romano & Elad 2017);
    * ``ml_ista`` / ``ml_fista`` are the multi-layer ISTA and FISTA of Sulam, Aberdam, Beck &
      Elad (2019, "On multi-layer basis pursuit, efficient algorithms and convolutional neural
      networks", IEEE TPAMI), which approach the multi-layer basis pursuit
      ``min_Γ_K ½‖X − D₁⋯D_KΓ_K‖² + Σ_j β_j‖D_{j+1}⋯D_KΓ_K‖₁``;
    * ``projection`` is the ML-CSC projection onto the effective dictionary ``D₁⋯D_K`` (Sulam,
      Papyan, Romano & Elad 2018, "Multilayer convolutional sparse modeling: pursuit and
      dictionary learning", IEEE TSP 66(15)); ``ml_lista`` and ``all_free`` learn their own
      analysis filters (see :mod:`mlcsc.pursuit`).

    Args:
        in_channels: channels of the input images.
        layers: one ``(num_atoms, kernel_size, stride, padding)`` spec per layer (stride and
            padding may be omitted: 1 and 0).
        pursuit: a registered pursuit (:data:`mlcsc.pursuit.PURSUITS`): ``layered_thresholding``,
            ``layered_bp``, ``ml_ista``, ``ml_fista``, ``ml_lista``, ``projection``,
            ``projection_refit``, ``projection_omp``, ``all_free``.
        n_iter: unrolled iterations ``T`` (per layer for ``layered_bp``); 0 is the CNN forward
            pass. Can be changed after training (for ``all_free`` only lowered: it has filters
            of its own in each of the ``T`` unfoldings it was built with).
        threshold_init: initial value ``β ≥ 0`` of every threshold (CNN bias ``−β``).
        step_init: initial value of every ``step_sizes[j]``: the relative step ``ρ_j`` in
            ``(0, 1.99]`` (normalised), or the absolute step ``c_j > 0`` (reference).
        threshold_mode: ``soft_nonneg`` (ReLU, the CNN), ``soft`` or ``hard``.
        check_input: validate inputs (shape, size, finite values) in :meth:`forward`.
        parametrization: how the parameters enter the pursuit equations
            (:mod:`mlcsc.pursuit.base`):

            * ``"normalized"`` (default): ``thresholds[j] = β_j`` are ℓ1 weights and the steps
              come from the operators they act on: with the pursuit's step rule ``"chain"``
              (ML-ISTA, ML-FISTA, projection) the compound step of layer ``j`` is
              ``c₁⋯c_j = clamp(ρ_j, 0, 1.99)/‖D₁⋯D_j‖²``; with ``"layer"`` (layered BP)
              ``c_j = clamp(ρ_j, 0, 1.99)/‖D_j‖²``; thresholds after a step are scaled by it.
              The norms are tracked by warm-started Lanczos steps while training and re-estimated
              to convergence whenever they are unknown or stale (new image size, loaded weights,
              changed ``n_iter``, evaluation after the weights moved).
            * ``"reference"``: the equations of Sulam, Aberdam, Beck & Elad (2019)'s public
              networks: ``step_sizes[j] = c_j`` is a learnable absolute step that also scales
              the forward pass, ``thresholds[j] = −b_j`` is an additive bias not scaled by any
              step, and ML-FISTA uses the public momentum schedule.
        init: ``"unit"`` (unit-norm Gaussian atoms) or ``"reference"`` (the public code's
            ``N(0, 1)·0.1/√(m_{j−1}k_j²)``); default: ``"reference"`` for the reference
            parametrisation, ``"unit"`` otherwise.
        untied: separate analysis filters ``B_j`` (learned adjoints) beside the dictionaries;
            ``None`` follows the pursuit (required by ``ml_lista``, whose ``W_j`` they are;
            refused by ``projection``, which needs the exact adjoint of ``D₁⋯D_K``).
        step_rule: in the normalised parametrisation, which norm sizes the steps: ``"chain"``
            (compound step of layer ``j`` from ``‖D₁⋯D_j‖²``) or ``"layer"`` (step of layer
            ``j`` from ``‖D_j‖²``), among those the pursuit supports; ``None`` (default) takes
            the pursuit's default for the threshold mode (for ML-ISTA / ML-FISTA ``"layer"``
            with ``soft_nonneg``, ``"chain"`` otherwise). Must be ``None`` in the reference
            parametrisation.
        checkpointing: gradient checkpointing across the unrolled iterations of ML-ISTA and
            ML-FISTA: each iteration is recomputed in the backward pass instead of keeping its
            intermediate tensors, so training memory stops growing with ``n_iter`` (one more
            forward pass of compute; identical gradients).
        channels_last: keep the filters and run the pursuit in the channels-last memory
            format (the input is converted in :meth:`forward`); the same numbers, and on CPU
            the strided (transposed) convolutions of the unrolled iterations run faster
            (measured in ``benchmarks/pursuit_speed.py --channels-last``).

    Attributes:
        dictionaries: ``nn.ModuleList`` of :class:`~mlcsc.ConvDictionary` ``[D₁, …, D_K]``.
        analysis_dictionaries: the untied analysis operators, or ``None``.
        unfolded_dictionaries: the filters of unfoldings ``2…T+1`` of an unfolded pursuit
            (``all_free``), or ``None``.
        unfolded_thresholds: the thresholds of those unfoldings, or ``None``.
        thresholds: ``nn.ParameterList`` of per-channel thresholds, shapes ``(m_j,)``.
        step_sizes: ``nn.ParameterList`` of step sizes (relative or absolute), 0-d each.
        lipschitz_constants: buffer ``(K,)``: the norms the steps are divided by
            (``‖D₁⋯D_j‖²`` or ``‖D_j‖²``, on the last input size).

    Raises:
        ValueError: for a bad layer spec, an unknown pursuit or option, or an option the
            pursuit does not support (the message names it and the valid choices).

    Shape:
        - input: ``(B, in_channels, H, W)``.
        - output: ``Γ_K`` of shape ``(B, m_K, H_K, W_K)`` (``[Γ₁, …, Γ_K]`` with
          ``return_all=True``), with ``H_j = ⌊(H_{j−1} + 2p_j − k_j)/s_j⌋ + 1``.

    Examples:
        >>> x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> encoder = MLCSC(1, [(8, 5, 2), (16, 3, 2)], pursuit="ml_fista", n_iter=3)
        >>> gamma = encoder(x)
        >>> gamma.shape, encoder.code_shape((28, 28)), encoder.layer_sizes((28, 28))
        (torch.Size([2, 16, 5, 5]), (16, 5, 5), [(28, 28), (12, 12), (5, 5)])
        >>> [code.shape for code in encoder(x, return_all=True)]
        [torch.Size([2, 8, 12, 12]), torch.Size([2, 16, 5, 5])]
        >>> bool((gamma >= 0).all())  # soft_nonneg thresholds: non-negative codes
        True
        >>> encoder.reconstruct(gamma, (28, 28)).shape  # D₁D₂Γ₂
        torch.Size([2, 1, 28, 28])

        With no iterations the encoder is a ReLU CNN with bias ``−β``:

        >>> import torch.nn.functional as F
        >>> cnn = MLCSC(1, [(8, 5, 2), (16, 3, 2)], n_iter=0, threshold_init=0.1)
        >>> D1, D2 = cnn.dictionaries
        >>> hidden = F.relu(F.conv2d(x, D1.weight, stride=2) - 0.1)
        >>> torch.allclose(cnn(x), F.relu(F.conv2d(hidden, D2.weight, stride=2) - 0.1))
        True
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
        parametrization: str = "normalized",
        init: str | None = None,
        untied: bool | None = None,
        step_rule: str | None = None,
        checkpointing: bool = False,
        channels_last: bool = False,
    ):
        super().__init__()
        check_int("in_channels", in_channels, 1)
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"layers must be a non-empty list of layer specs, got {layers!r}")
        specs = [parse_layer(i, spec) for i, spec in enumerate(layers)]
        method = get_pursuit(pursuit)
        check_choice("threshold_mode", threshold_mode, THRESHOLD_MODES)
        parametrization, init, untied = check_pursuit_options(
            method, parametrization, init, untied, step_rule
        )
        check_number("threshold_init", threshold_init, 0.0)
        if parametrization == "normalized":
            what = " (the relative step ρ of the normalized parametrization)"
            check_number("step_init", step_init, 0.0, MAX_RELATIVE_STEP, low_open=True, what=what)
        check_number("step_init", step_init, 0.0, low_open=True, what=" (the absolute step c)")
        self.in_channels = in_channels
        self.layer_specs = specs
        self.pursuit = pursuit
        self.parametrization = parametrization
        self.init = init
        self._step_rule = step_rule
        self._method = method
        self._built_n_iter = n_iter
        self.n_iter = n_iter
        self.threshold_mode = threshold_mode
        self.check_input = check_input
        self.checkpointing = check_flag("checkpointing", checkpointing)
        self.channels_last = check_flag("channels_last", channels_last)

        channels = [in_channels] + [spec[0] for spec in specs]

        def bank() -> nn.ModuleList:
            return nn.ModuleList(
                new_dictionary(channels[j], specs[j], init) for j in range(len(specs))
            )

        def biases() -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(torch.full((spec[0],), float(threshold_init))) for spec in specs
            )

        self.dictionaries = bank()
        self.analysis_dictionaries: nn.ModuleList | None = None
        if untied:
            self.analysis_dictionaries = bank()
            if init == "unit":  # start from the tied pursuit
                with torch.no_grad():
                    pairs = zip(self.analysis_dictionaries, self.dictionaries, strict=True)
                    for analysis, dictionary in pairs:
                        analysis.weight.copy_(dictionary.weight)
        self.unfolded_dictionaries: nn.ModuleList | None = None
        self.unfolded_thresholds: nn.ModuleList | None = None
        if method.unfolded:
            self.unfolded_dictionaries = nn.ModuleList(bank() for _ in range(n_iter))
            self.unfolded_thresholds = nn.ModuleList(biases() for _ in range(n_iter))
        self.thresholds = biases()
        self.step_sizes = nn.ParameterList(
            nn.Parameter(torch.tensor(float(step_init))) for _ in specs
        )
        self.register_buffer("lipschitz_constants", torch.zeros(len(specs)))
        # (input size, weight versions) the Lipschitz constants were estimated for; None: stale
        self._lipschitz_state: tuple | None = None
        self._step_operators: dict[tuple, list[EffectiveDictionary]] = {}
        self.register_load_state_dict_post_hook(_invalidate_lipschitz)
        method.initialize_(self)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ configuration
    @property
    def n_iter(self) -> int:
        return self._n_iter

    @n_iter.setter
    def n_iter(self, value: int) -> None:
        value = check_int("n_iter", value, 0)
        if self._method.unfolded and value > self._built_n_iter:
            raise ValueError(
                f"pursuit {self.pursuit!r} has filters of its own in each of the "
                f"{self._built_n_iter} unfoldings it was built with; n_iter must be at most "
                f"{self._built_n_iter}, got {value}"
            )
        self._n_iter = value
        self._lipschitz_state = None  # estimate again (to convergence) before the next pass

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
        message = f"input of shape {tuple(x.shape)} contains non-finite values"
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            if not torch.isfinite(x).all():
                raise ValueError(message)
        else:  # on an accelerator or in a compiled graph: checked on the device, no host sync
            torch._assert_async(torch.isfinite(x).all(), message)

    # ------------------------------------------------------------------ steps
    @property
    def step_rule(self) -> str | None:
        """How the steps are sized in the normalised parametrisation: ``"chain"`` or
        ``"layer"`` (the one asked for, else the pursuit's default for the threshold mode);
        ``None`` when no Lipschitz constants are needed (reference, or no steps)."""
        if self.parametrization != "normalized":
            return None
        return self._step_rule or self._method.default_step_rule(self.threshold_mode)

    def step_operators(self, input_size: Sequence[int]) -> list[EffectiveDictionary]:
        """The operators whose norms size the steps on inputs of ``input_size``:
        ``D₁⋯D_j`` (step rule ``"chain"``) or ``D_j`` (otherwise), one per layer."""
        size = tuple(int(n) for n in input_size)
        key = (self.step_rule, size)
        if key not in self._step_operators:
            sizes = self.layer_sizes(size)[:-1]
            dictionaries = list(self.dictionaries)
            if self.step_rule == "chain":
                operators = [
                    EffectiveDictionary(dictionaries[: j + 1], sizes[: j + 1])
                    for j in range(self.num_layers)
                ]
            else:
                operators = [
                    EffectiveDictionary([d], [s]) for d, s in zip(dictionaries, sizes, strict=True)
                ]
            self._step_operators[key] = operators
        return self._step_operators[key]

    def invalidate_lipschitz(self) -> None:
        """Forget the step norms' state: the next forward pass estimates them to convergence,
        in training mode too, where it would otherwise track them with one Lanczos step (which
        assumes the dictionaries moved by a small step, not that they were replaced)."""
        self._lipschitz_state = None

    @torch.no_grad()
    def refresh_lipschitz(self, input_size: Sequence[int], n_iter: int = 100) -> Tensor:
        """Estimate the norms of :meth:`step_operators` on inputs of ``input_size`` (warm-started
        from the last estimate, at most ``n_iter`` iterations) into ``lipschitz_constants``."""
        self.layer_sizes(input_size)
        for j, operator in enumerate(self.step_operators(input_size)):
            self.lipschitz_constants[j] = operator.lipschitz(n_iter=n_iter)
        self._lipschitz_state = (tuple(int(n) for n in input_size), self._weight_versions())
        return self.lipschitz_constants.clone()

    @torch.no_grad()
    def track_lipschitz(self, input_size: Sequence[int], n_steps: int = 1) -> Tensor:
        """Refine the norms of :meth:`step_operators` by ``n_steps`` sync-free Lanczos steps each
        (:meth:`~mlcsc.dictionary.Dictionary.track_lipschitz`) into ``lipschitz_constants``:
        what a training step does after the dictionaries moved, without host synchronisation
        (so also inside ``torch.compile``)."""
        check_int("n_steps", n_steps, 1)
        operators = self.step_operators(input_size)
        values = []
        for operator in operators:
            for _ in range(n_steps):
                value = operator.track_lipschitz()
            values.append(value)
        self.lipschitz_constants.copy_(torch.stack(values))
        return self.lipschitz_constants

    def _weight_versions(self) -> tuple:
        # in-place updates (optimizer steps, load_state_dict, normalize_) bump a tensor's version
        return tuple((d.weight.data_ptr(), d.weight._version) for d in self.dictionaries)

    def _update_lipschitz(self, input_size: Sequence[int]) -> None:
        if self.step_rule is None or self.n_iter == 0:
            return
        size = tuple(int(n) for n in input_size)
        state = self._lipschitz_state
        if torch.compiler.is_compiling():
            # no convergence loop in a graph (it needs host synchronisation): a fixed number of
            # sync-free Lanczos steps; the Python state below decides, at trace time, between
            # a start (unknown size: estimate before compiling for converged steps) and tracking
            if state is None or state[0] != size:
                self.track_lipschitz(size, n_steps=COMPILED_START_STEPS)
            elif self.training:
                self.track_lipschitz(size)
            self._lipschitz_state = (size, None)
            return
        if state is not None and state == (size, self._weight_versions()):
            return  # the weights have not moved since the last estimate
        if self.training and state is not None and state[0] == size:
            # the dictionaries moved by one optimizer step: a warm-started Lanczos step tracks
            # the norms at the cost of a few convolutions on one image, without host sync
            self.track_lipschitz(size)
            self._lipschitz_state = (size, self._weight_versions())
        else:  # unknown, another size, or evaluation: converge
            self.refresh_lipschitz(size)

    def compound_steps(self) -> list[Tensor]:
        """``c₁⋯c_j`` for every layer: ``clamp(ρ_j, 0, 1.99)/L_j`` in the normalised
        parametrisation (``L_j = ‖D₁⋯D_j‖²`` for the chain rule), the running product of the
        absolute steps in the reference one."""
        if self.parametrization == "reference":
            return list(itertools.accumulate(self.step_sizes, lambda a, b: a * b))
        if self.step_rule is None:
            raise ValueError(f"pursuit {self.pursuit!r} takes no steps")
        relative = self._over_lipschitz()
        if self.step_rule == "chain":
            return relative
        return list(itertools.accumulate(relative, lambda a, b: a * b))

    def _over_lipschitz(self) -> list[Tensor]:
        """``clamp(ρ_j, 0, 1.99)/L_j`` per layer."""
        return [
            rho.clamp(0.0, MAX_RELATIVE_STEP) / self.lipschitz_constants[j].clamp_min(1e-12)
            for j, rho in enumerate(self.step_sizes)
        ]

    def steps(self) -> list[Tensor] | None:
        """The per-layer steps ``c_j`` the pursuit uses (``None`` for a pursuit without steps):
        ``c_j = (c₁⋯c_j)/(c₁⋯c_{j−1})`` for the chain rule, ``clamp(ρ_j)/‖D_j‖²`` for the
        layer rule, ``step_sizes[j]`` in the reference parametrisation."""
        if self.parametrization == "reference":
            return list(self.step_sizes)
        if self.step_rule is None:
            return None
        if self.step_rule == "layer":
            return self._over_lipschitz()
        compound = self.compound_steps()
        return [compound[0]] + [compound[j] / compound[j - 1] for j in range(1, len(compound))]

    def layer_parameters(self, input_size: Sequence[int]) -> LayerParameters:
        """The operators and numbers the pursuit runs with on inputs of ``input_size``
        (:class:`~mlcsc.pursuit.LayerParameters`), resolved from the parametrisation."""
        sizes = self.layer_sizes(input_size)[:-1]
        dictionaries = list(self.dictionaries)
        analysis = list(self.analysis_dictionaries or dictionaries)
        unfolded = None
        if self.unfolded_dictionaries is not None:
            unfolded = [
                (list(bank), list(thresholds))
                for bank, thresholds in zip(
                    self.unfolded_dictionaries, self.unfolded_thresholds, strict=True
                )
            ]
        layers = LayerParameters(
            dictionaries,
            analysis,
            sizes,
            list(self.thresholds),
            self.threshold_mode,
            unfolded=unfolded,
            checkpointing=self.checkpointing,
        )
        if self.parametrization == "reference":
            steps = list(self.step_sizes)
            layers.forward_scales = steps
            layers.steps = steps
            layers.published_momentum = True
            layers.threshold_scales = [1.0] * self.num_layers  # additive biases
        elif self.step_rule is not None:
            layers.steps = self.steps()
        return layers

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, return_all: bool = False) -> Tensor | list[Tensor]:
        """Run the pursuit.

        Args:
            x: images ``(B, in_channels, H, W)``.
            return_all: return ``[Γ₁, …, Γ_K]`` instead of ``Γ_K``.
        """
        if self.check_input:
            self.validate_input(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        size = x.shape[-2:]
        self._update_lipschitz(size)
        codes = self._method(self.layer_parameters(size), x, self.n_iter)
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
        check_int("layer index", i, 1, self.num_layers)
        num_atoms = self.layer_specs[i - 1][0]
        weight = self.dictionaries[0].weight
        signal = torch.eye(num_atoms, dtype=weight.dtype, device=weight.device)
        signal = signal.view(num_atoms, num_atoms, 1, 1)  # (m_i, m_i, 1, 1): one atom each
        for j in range(i - 1, -1, -1):
            dictionary = self.dictionaries[j]
            signal = F.conv_transpose2d(signal, dictionary.weight, stride=dictionary.stride)
        return signal

    def extra_repr(self) -> str:
        return (
            f"pursuit={self.pursuit!r}, n_iter={self.n_iter}, mode={self.threshold_mode!r}, "
            f"parametrization={self.parametrization!r}"
        )


def available_pursuits() -> list[str]:
    """Names accepted by ``MLCSC(pursuit=...)``."""
    return sorted(PURSUITS)


def _invalidate_lipschitz(module: MLCSC, incompatible_keys) -> None:
    """After ``load_state_dict`` the stored constants may belong to other weights or sizes."""
    module._lipschitz_state = None
