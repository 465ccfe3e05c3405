"""Unsupervised ML-CSC: learning the dictionaries of a multi-layer model without labels.

Sulam, Papyan, Romano & Elad (2018), "Multi-Layer Convolutional Sparse Modeling: Pursuit and
Dictionary Learning", IEEE TSP. Without labels, the dictionaries are learned by minimising

    ½‖Y − D₁D₂⋯D_KΓ_K‖₂² + Σ_i λ_i‖Γ_i‖₁,   Γ_i = D_{i+1}⋯D_KΓ_K,

alternately over the codes (a pursuit: ML-FISTA, layered BP, …, run with the current
dictionaries and ``λ_i`` as thresholds) and over the dictionaries (a gradient step on the
objective with the codes fixed), followed by atom normalisation and, optionally, a projection
of the filters of each layer onto a given density (sparse filters keep the intermediate codes
``Γ_i = D_{i+1}Γ_{i+1}`` sparse, as in the lecture's learned MNIST dictionaries, whose D₂ and D₃
are 99 % sparse).

Identifiability: the data term fixes only the products ``D₁⋯D_K``; with dense deeper filters the
ℓ1 terms favour large-norm combinations of first-layer atoms, so ``D₁`` is determined only once
the deeper layers are constrained (``filter_density``). Even then alternating minimisation has
local minima: the planted dictionaries of a known two-layer model are a stable fixed point, but
from a data-driven start (``init="data"``) 3 of 10 draws ended elsewhere — a planted atom split
between two partial learned atoms, molecules that were single atoms and shifted copies of one
another. Several starts (``init_restarts``) and the clearing of near-duplicate molecules
(``replace_coherent``) recover every planted atom on all ten
(``tests/test_dictionary_learning.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_choice, check_flag, check_int, check_number
from mlcsc.errors import ConfigError
from mlcsc.learning.mlcsc_initialization import (
    initialize_filters_,
    initialize_from_data_,
    window_size,
)
from mlcsc.learning.patches import extract_patches
from mlcsc.nn import MLCSC
from mlcsc.pursuit.multilayer import multilayer_bp_objective
from mlcsc.training.encoder import build_encoder
from mlcsc.training.linear_probe import linear_probe
from mlcsc.training.optim import lightning_optimizers
from mlcsc.training.task import EncoderTask, code_statistics

__all__ = ["UnsupervisedMLCSCModule", "dictionary_sparsity"]

INITS = ("random", "patches", "data")


def dictionary_sparsity(encoder: MLCSC) -> list[float]:
    """Percentage of zero filter weights of every layer."""
    return [100.0 * float((d.weight.detach() == 0).float().mean()) for d in encoder.dictionaries]


def _per_layer(name: str, values, count: int, check) -> list:
    """One value per layer from a scalar (or ``None``) or a list, each passed through
    ``check(name, value)``; a wrong count or a refused value is a :class:`ConfigError`."""
    if not hasattr(values, "__len__") or isinstance(values, str):
        values = [values] * count
    values = list(values)
    if len(values) != count:
        raise ConfigError(f"{name} needs one value per layer ({count}), got {len(values)}")
    try:
        return [check(name, value) for value in values]
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _ell1_weight(name: str, value) -> float:
    return check_number(name, value, 0.0)


def _density(name: str, value) -> float | None:
    return None if value is None else check_number(name, value, 0.0, 1.0, low_open=True)


class UnsupervisedMLCSCModule(EncoderTask):
    """Learn the dictionaries of an :class:`~mlcsc.MLCSC` encoder without labels.

    The task of ``task=dictionary_learning`` (``configs/task/dictionary_learning.yaml``): the
    dictionary learning of Sulam, Papyan, Romano & Elad (2018), "Multi-Layer Convolutional
    Sparse Modeling: Pursuit and Dictionary Learning", IEEE TSP. For a batch of signals ``Y`` it
    minimises the multi-layer basis pursuit objective

    ``½‖Y − D₁D₂⋯D_KΓ_K‖₂² + Σ_i λ_i‖Γ_i‖₁``,  with ``Γ_i = D_{i+1}⋯D_KΓ_K``,

    (averaged over the batch) alternately: the codes ``Γ_K`` by the encoder's pursuit with the
    current dictionaries and thresholds ``β_i = λ_i`` (fixed, not learned, as are the step
    sizes), then the dictionaries by ``dictionary_steps`` optimizer steps with the codes held
    fixed. After every step the filters are projected: clipped at 0 where ``nonnegative``,
    reduced to the largest-magnitude ``filter_density`` fraction of their weights where set,
    and normalised to unit-norm atoms. ``module(x)`` returns the model's codes ``[Γ₁, …, Γ_K]``;
    :meth:`objective` evaluates the objective.

    Args:
        model: the encoder's configuration (see :class:`~mlcsc.training.task.EncoderTask`).
        in_channels: image channels (from the data module).
        input_size: image size ``(H, W)`` (from the data module).
        optimizer: ``_partial_`` configuration of the ``optimizer`` group.
        scheduler: ``_partial_`` configuration of the ``scheduler`` group (``None``: constant).
        num_classes: classes of the data (only the linear probe after training uses them).
        lambdas: ``λ_i ≥ 0`` per layer (or one for all): the ℓ1 weights of the objective and the
            thresholds of the pursuit.
        filter_density: per layer, the fraction of non-zero weights each filter keeps after every
            step (``None``: dense).
        nonnegative: per layer (or one for all), keep the filters ``≥ 0`` (projected after
            every step; ``init="data"`` builds such a deeper layer by non-negative OMP). With
            non-negative D₂…D_K and ``threshold_mode: soft_nonneg`` every code is non-negative
            and the model is additive: every part a sum of strokes, every molecule a sum of
            parts, every signal a sum of molecules.
        init: ``"random"`` (the encoder's random atoms), ``"patches"``: the first-layer atoms
            are set from random patches of the first training batch before fitting
            (:meth:`initialize_from_patches_`), or ``"data"``: every layer from up to
            ``init_samples`` training signals, D₁ by k-means of patches and each deeper layer as
            ``init_sparsity``-sparse codes of signal windows over the layers below
            (:func:`~mlcsc.learning.mlcsc_initialization.initialize_from_data_`); neither when
            resuming from a checkpoint.
        init_sparsity: non-zeros of each deeper filter's code at ``init="data"``.
        init_samples: training signals ``init="data"`` reads.
        init_restarts: ``init="data"`` starts to try (``1``: one). Alternating minimisation
            ends in local minima that depend on the start; with several, each start is
            followed by ``init_restart_epochs`` passes of the alternation over the
            ``init_samples`` signals, made as training makes them (a pursuit per batch of up
            to 256, ``dictionary_steps`` steps of the configured optimizer at its initial
            learning rate, the atom replacements after every pass), and training continues
            from the one with the lowest objective on them — the restarts of k-means
            (``n_init``), applied to dictionary learning.
        init_restart_epochs: passes of the alternation per start when ``init_restarts > 1``.
        dictionary_steps: optimizer steps on the dictionaries per pursuit: each training batch's
            codes are found once with the current dictionaries and held fixed for this many
            gradient steps (each followed by the projection), as in Sulam et al.'s alternating
            minimisation; the pursuit, not the step, is the expensive half. 1: one step per
            pursuit. The logged training values are the means over a batch's steps.
        replace_rare: at the end of every training epoch but the last, each deepest atom that
            the pursuit used fewer than this many times in the epoch is rebuilt, as at
            ``init="data"``, from one of the epoch's worst-reconstructed training signals (the
            ``init_sparsity``-sparse code of its window over the layers below), as K-SVD
            replaces unused atoms (0: never).
        replace_coherent: at the same moments, each deepest atom whose effective atom
            (``D₁⋯D_Kd``, normalised) correlates at least this much with another's at some
            shift, ``|⟨a_i, shift(a_j)⟩| ≥ replace_coherent``, is rebuilt the same way — the
            less used one of each such pair: K-SVD's clearing of near-duplicate atoms
            (Aharon, Elad & Bruckstein 2006), with shifts, since in a convolutional model a
            shifted copy codes nothing new (``None``: never).
        probe: after training, fit a linear classifier on the frozen deepest codes
            (:func:`~mlcsc.training.linear_probe.linear_probe`).
        probe_iterations: L-BFGS iterations of the probe.
        probe_max_samples: at most this many training signals for the probe (``None``: all).
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        data: the data configuration, recorded in the checkpoint.

    Logged: the objective, its reconstruction term, the relative reconstruction error, per-layer
    code sparsity and dictionary sparsity; images of the atoms and effective atoms.

    Raises:
        ConfigError: as :func:`~mlcsc.training.build_encoder`; for an encoder that is not an
            :class:`~mlcsc.MLCSC`; for a per-layer option with the wrong number of values or a
            refused value (``λ_i < 0``, a density outside ``(0, 1]``); and for an unknown
            ``init`` or a bad ``replace_rare`` or ``dictionary_steps``.

    Shape:
        - input of ``module(x)``: ``(N, C, H, W)``.
        - output: ``[Γ₁, …, Γ_K]`` with ``Γ_i`` of shape ``(N, m_i, H_i, W_i)``.

    Examples:
        >>> import torch
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
        >>> module = UnsupervisedMLCSCModule(model, in_channels=1, input_size=(16, 16),
        ...                                  optimizer=adam, lambdas=[0.1, 0.05],
        ...                                  filter_density=[None, 0.5], probe=False)
        >>> module.lambdas, [round(float(beta.mean()), 3) for beta in module.encoder.thresholds]
        ([0.1, 0.05], [0.1, 0.05])
        >>> [tuple(p.shape) for p in module.trainable_parameters()]  # D₁ and D₂ only
        [(4, 1, 5, 5), (8, 4, 3, 3)]
        >>> float((module.encoder.dictionaries[1].weight == 0).float().mean())  # D₂ half zeros
        0.5
        >>> images = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> [tuple(code.shape) for code in module(images)]  # [Γ₁, Γ₂]
        [(2, 4, 6, 6), (2, 8, 2, 2)]

        With zero codes the objective is the data term ``½‖Y‖²``:

        >>> zeros = [torch.zeros(2, 4, 6, 6), torch.zeros(2, 8, 2, 2)]
        >>> objective, data_term, codes, relative = module.objective(images, zeros)
        >>> expected = 0.5 * images.pow(2).flatten(1).sum(1).mean()
        >>> torch.allclose(objective, expected), torch.allclose(data_term, expected), relative
        (True, True, tensor(1.))

        Per-layer options take one value per layer:

        >>> UnsupervisedMLCSCModule(model, 1, (16, 16), adam, lambdas=[0.1, 0.1, 0.1])
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: lambdas needs one value per layer (2), got 3
    """

    progress_metrics = ("objective", "reconstruction/relative_error")
    step_metrics = ("objective",)

    def __init__(
        self,
        model: Mapping[str, Any],
        in_channels: int,
        input_size: Sequence[int],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
        lambdas: float | Sequence[float] = 0.1,
        filter_density: float | Sequence[float | None] | None = None,
        nonnegative: bool | Sequence[bool] = False,
        init: str = "random",
        init_sparsity: int = 7,
        init_samples: int = 4000,
        init_restarts: int = 1,
        init_restart_epochs: int = 10,
        replace_rare: int = 0,
        replace_coherent: float | None = None,
        dictionary_steps: int = 1,
        probe: bool = True,
        probe_iterations: int = 100,
        probe_max_samples: int | None = None,
        image_every_n_epochs: int = 1,
        data: Mapping[str, Any] | None = None,
    ):
        super().__init__(
            model, in_channels, input_size, optimizer, scheduler, num_classes,
            image_every_n_epochs, data,
        )  # fmt: skip
        self.save_hyperparameters()
        self.encoder = build_encoder(model, in_channels, input_size)
        if not isinstance(self.encoder, MLCSC):
            raise ConfigError(
                f"the unsupervised task learns the dictionaries of an mlcsc.MLCSC encoder, "
                f"got {type(self.encoder).__name__}"
            )
        count = self.encoder.num_layers
        self.lambdas = _per_layer("lambdas", lambdas, count, _ell1_weight)
        self.filter_density = _per_layer("filter_density", filter_density, count, _density)
        self.nonnegative = _per_layer("nonnegative", nonnegative, count, check_flag)
        # the pursuit's thresholds are the λ_i of the objective: fixed, not learned
        with torch.no_grad():
            for beta, value in zip(self.encoder.thresholds, self.lambdas, strict=True):
                beta.fill_(value)
        for parameter in (*self.encoder.thresholds, *self.encoder.step_sizes):
            parameter.requires_grad_(False)
        try:
            self.init = check_choice("init", init, INITS)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.init_sparsity = init_sparsity
        self.init_samples = init_samples
        try:
            self.replace_rare = check_int("replace_rare", replace_rare, 0)
            self.replace_coherent = (
                None
                if replace_coherent is None
                else check_number("replace_coherent", replace_coherent, 0.0, 1.0, low_open=True)
            )
            self.init_restarts = check_int("init_restarts", init_restarts, 1)
            self.init_restart_epochs = check_int("init_restart_epochs", init_restart_epochs, 0)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        try:
            self.dictionary_steps = check_int("dictionary_steps", dictionary_steps, 1)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self._held: tuple[Tensor, list[Tensor]] | None = None  # a batch and its fixed codes
        self._reset_usage()
        self.num_classes = num_classes
        self.probe = probe
        self.probe_iterations = int(probe_iterations)
        self.probe_max_samples = probe_max_samples
        self._project_()

    @torch.no_grad()
    def _project_(self) -> None:
        """Non-negative and sparse filters where asked, then unit-norm atoms."""
        layers = zip(self.encoder.dictionaries, self.filter_density, self.nonnegative, strict=True)
        for dictionary, density, nonnegative in layers:
            if nonnegative:
                dictionary.weight.clamp_(min=0)
            if density is not None and density < 1:
                dictionary.sparsify_filters_(density)
            dictionary.normalize_()

    @torch.no_grad()
    def initialize_from_patches_(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """First-layer atoms ← distinct random non-zero patches of the signals ``x``, normalised.

        A data-driven start (as K-SVD's): atoms begin inside the signals' span instead of as
        noise. ``x`` is ``(N, C, H, W)`` with the encoder's channels; the patches are drawn with
        ``generator`` (torch's global one when ``None``).
        """
        self.encoder.validate_input(x)
        dictionary = self.encoder.dictionaries[0]
        atoms, _, height, _ = dictionary.weight.shape
        patches = torch.cat([extract_patches(image, height) for image in x.detach()])
        norms = patches.norm(dim=1)
        patches = patches[norms > 1e-6 * norms.max().clamp_min(1e-30)]
        if len(patches) < atoms:
            raise ValueError(
                f"initialising {atoms} atoms from patches needs at least {atoms} non-zero "
                f"{height}×{height} patches, got {len(patches)}"
            )
        pick = torch.randperm(len(patches), generator=generator)[:atoms].to(patches.device)
        dictionary.weight.copy_(patches[pick].view_as(dictionary.weight))
        self._project_()

    def prepare_fit(self, datamodule, resuming: bool) -> None:
        """The data-driven start of ``init="patches"`` or ``init="data"`` from the training
        loader of ``datamodule`` (nothing for ``init="random"`` or when ``resuming``)."""
        if self.init == "random" or resuming:
            return
        datamodule.setup("fit")
        if self.init == "patches":
            self.initialize_from_patches_(next(iter(datamodule.train_dataloader()))[0])
            return
        batches, taken = [], 0
        for images, _ in datamodule.train_dataloader():
            batches.append(images)
            taken += len(images)
            if taken >= self.init_samples:
                break
        self.initialize_from_data_(torch.cat(batches))

    @torch.no_grad()
    def initialize_from_data_(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Every layer from the first ``init_samples`` signals of ``x`` (``(N, C, H, W)``), as
        ``init="data"`` does before fitting: D₁ by k-means of patches, each deeper layer as
        ``init_sparsity``-sparse codes of signal windows over the layers below
        (:func:`~mlcsc.learning.mlcsc_initialization.initialize_from_data_`; random draws from
        ``generator``, torch's global one when ``None``), then projected as after every step.
        With ``init_restarts > 1``, that many starts (successive draws from ``generator``),
        each followed by ``init_restart_epochs`` passes of the alternation; the encoder keeps
        the one with the lowest objective on these signals.
        """
        self.encoder.validate_input(x)
        x = x[: self.init_samples]
        best, best_state = None, None
        for _ in range(self.init_restarts):
            initialize_from_data_(
                self.encoder, x, self.init_sparsity, generator, nonnegative=self.nonnegative
            )
            self._project_()
            self.encoder.invalidate_lipschitz()  # new dictionaries, not a small step
            if self.init_restarts == 1:
                return
            value = self._alternate(x, self.init_restart_epochs)
            if best is None or value < best:
                best = value
                best_state = {k: v.clone() for k, v in self.encoder.state_dict().items()}
        self.encoder.load_state_dict(best_state)

    def _alternate(self, x: Tensor, epochs: int, batch_size: int = 256) -> float:
        """``epochs`` passes of the alternation over ``x`` as training makes them (per batch:
        the pursuit, then ``dictionary_steps`` projected steps of a fresh instance of the
        configured optimizer, codes held fixed; after every pass but the last, the atom
        replacements of ``replace_rare`` / ``replace_coherent``); returns the objective on
        ``x`` afterwards."""
        was_training = self.training
        self.train()
        self._reset_usage()
        optimizer = lightning_optimizers(self.trainable_parameters(), self.optimizer_config)
        for epoch in range(epochs):
            for batch in x.split(batch_size):
                codes = None  # the first step pursues (and counts the atoms' uses)
                for _ in range(self.dictionary_steps):
                    optimizer.zero_grad()
                    with torch.enable_grad():
                        objective, _, codes, _ = self.objective(batch, codes)
                        objective.backward()
                    optimizer.step()
                    self._project_()
            if self._replaces and epoch < epochs - 1:
                self._replace_rare_atoms()
        self._reset_usage()
        optimizer.zero_grad(set_to_none=True)
        self.eval()  # the objective with converged step norms
        with torch.no_grad():
            total = sum(float(self.objective(b)[0]) * len(b) for b in x.split(batch_size))
        self.train(was_training)
        return total / len(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        """The model's codes ``[Γ₁, …, Γ_K]``: ``Γ_K`` from the pursuit and ``Γ_{i−1} = D_iΓ_i``."""
        gamma = self.encoder(x)
        return self.encoder.model_codes(gamma, x.shape[-2:])

    def objective(
        self, x: Tensor, codes: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
        """Mean ML-BP objective over the batch with the codes held fixed (differentiable in the
        dictionaries), its reconstruction term, the model's codes ``[Γ₁, …, Γ_K]`` (detached)
        and the mean relative reconstruction error ``‖x − D₁⋯D_KΓ_K‖/‖x‖``.

        ``codes``: the model's codes of ``x`` from an earlier call (:meth:`forward`), so that
        several dictionary steps can share one pursuit; by default the pursuit is run with the
        current dictionaries.
        """
        pursued = codes is None
        if pursued:
            with torch.no_grad():
                codes = self(x)
        codes = [code.detach() for code in codes]
        objective, data_term, reconstruction = multilayer_bp_objective(
            list(self.encoder.dictionaries), x, codes[-1], self.lambdas, terms=True
        )
        with torch.no_grad():
            error = (x - reconstruction).flatten(1).norm(dim=1)
            relative = error / x.flatten(1).norm(dim=1).clamp_min(1e-12)
        if self.training and self._replaces and pursued:
            self._track_usage(x, codes[-1], relative)
        return objective.mean(), data_term.mean().detach(), codes, relative.mean()

    def step(self, batch, stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective of a batch (images, or ``(images, labels)`` with the labels unused)
        and the metrics ``objective``, ``data_term``, ``reconstruction/relative_error`` (and,
        outside training, the per-layer code sparsity)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        held = None
        if stage == "train" and self._held is not None and self._held[0] is x:
            held = self._held[1]  # a further dictionary step on this batch (optimizer_step)
        objective, data_term, codes, relative = self.objective(x, held)
        if stage == "train":
            self._held = (x, codes)
        metrics = {
            "objective": objective,
            "data_term": data_term,
            "reconstruction/relative_error": relative,
        }
        if stage != "train":
            metrics.update(code_statistics(codes))
        return objective, metrics

    def trainable_parameters(self):
        """The dictionaries' filters: thresholds and step sizes stay fixed."""
        return [p for p in self.encoder.dictionaries.parameters() if p.requires_grad]

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """``dictionary_steps`` steps, each projected; the closure (the training step and its
        backward, with the trainer's gradient clipping) reuses the batch's codes after the
        first."""
        for index in range(self.dictionary_steps):
            optimizer.step(closure=optimizer_closure)
            if index < self.dictionary_steps - 1:
                self._project_()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._held = None
        self._project_()

    # ----------------------------------------------------------- replacing rarely used atoms
    def _reset_usage(self) -> None:
        self._usage: Tensor | None = None  # (m_K,) uses of each deepest atom this epoch
        self._worst: tuple[Tensor, Tensor] | None = None  # (errors (n,), signals (n, C, H, W))

    @torch.no_grad()
    def _track_usage(self, x: Tensor, gamma: Tensor, relative: Tensor) -> None:
        """Count the deepest atoms' uses and keep the worst-reconstructed signals of the epoch
        (as many as there are deepest atoms)."""
        usage = (gamma != 0).transpose(0, 1).flatten(1).sum(1)
        self._usage = usage if self._usage is None else self._usage + usage
        errors, signals = relative.detach(), x.detach()
        if self._worst is not None:
            errors = torch.cat([self._worst[0], errors])
            signals = torch.cat([self._worst[1], signals])
        keep = errors.topk(min(len(errors), len(usage))).indices
        self._worst = (errors[keep], signals[keep])

    @property
    def _replaces(self) -> bool:
        return bool(self.replace_rare) or self.replace_coherent is not None

    @torch.no_grad()
    def coherent_atoms(self, usage: Tensor | None = None) -> Tensor:
        """Indices of the deepest atoms that ``replace_coherent`` rebuilds: going through the
        atoms from the most used (``usage``; by default in index order), each one whose
        effective atom correlates at least ``replace_coherent`` at some shift with an atom
        kept before it."""
        if self.replace_coherent is None:
            return torch.zeros(0, dtype=torch.long)
        atoms = self.encoder.effective_atoms(self.encoder.num_layers).detach()
        norms = atoms.flatten(1).norm(dim=1).clamp_min(1e-12)
        unit = atoms / norms.view(-1, 1, 1, 1)
        size = unit.shape[-1] - 1
        # |⟨a_i, shift(a_j)⟩| for every shift: one correlation of every atom with every atom
        correlation = F.conv2d(F.pad(unit, (size, size, size, size)), unit)
        coherence = correlation.abs().flatten(2).amax(2)  # (m, m)
        order = torch.arange(len(unit)) if usage is None else usage.argsort(descending=True)
        kept, coherent = [], []
        for atom in order.tolist():
            if kept and bool((coherence[atom, kept] >= self.replace_coherent).any()):
                coherent.append(atom)
            else:
                kept.append(atom)
        return torch.tensor(sorted(coherent), dtype=torch.long)

    @torch.no_grad()
    def _replace_rare_atoms(self) -> int:
        """Rebuild the deepest atoms used fewer than ``replace_rare`` times and those
        :meth:`coherent_atoms` names (see ``__init__``); the same on every process (counts
        summed, the windows of process 0). Returns how many."""
        usage, worst = self._usage, self._worst
        self._reset_usage()
        if usage is None or worst is None:
            return 0
        strategy = self.trainer.strategy if self._trainer is not None else None
        if strategy is not None and self.trainer.world_size > 1:
            usage = strategy.reduce(usage.float(), reduce_op="sum")
        rare = (usage < self.replace_rare).nonzero().flatten()
        coherent = self.coherent_atoms(usage.cpu()).to(rare.device)
        rare = torch.cat([rare, coherent[~torch.isin(coherent, rare)]])
        depth = self.encoder.num_layers - 1
        size = window_size(self.encoder, depth)
        # one window per signal, the worst-reconstructed first: its highest-energy window
        signals = worst[1][worst[0].argsort(descending=True)]
        windows = F.unfold(signals, size).transpose(1, 2)  # (n, positions, C·size²)
        best = windows.norm(dim=2).argmax(dim=1)
        windows = windows[torch.arange(len(windows), device=windows.device), best]
        rare = rare[: len(windows)]
        if strategy is not None and self.trainer.world_size > 1:
            windows = strategy.broadcast(windows[: len(rare)], src=0)
        if len(rare):
            initialize_filters_(
                self.encoder, depth, windows[: len(rare)], rare, self.init_sparsity,
                self.nonnegative[depth],
            )  # fmt: skip
            self._project_()
            self.encoder.invalidate_lipschitz()  # new atoms, not a small step
        return len(rare)

    def on_train_epoch_end(self) -> None:
        last = self.trainer.max_epochs or 0
        if self._replaces and (last <= 0 or self.current_epoch < last - 1):
            replaced = self._replace_rare_atoms()
            self.log_epoch_values({f"dictionary/layer{self.encoder.num_layers}_replaced": replaced})
        self._reset_usage()
        sparsity = dictionary_sparsity(self.encoder)
        self.log_epoch_values(
            {f"dictionary/layer{j}_zeros_pct": value for j, value in enumerate(sparsity, 1)}
        )

    def report(self, datamodule, run_dir: Path, metrics: dict) -> dict:
        """Figures (PNG), dictionary sparsity and the linear probe on the frozen deepest codes."""
        from mlcsc.training.figures import save_dictionary_figures

        self.eval()
        datamodule.setup("test")
        sample = next(iter(datamodule.test_dataloader()))[0][:1].to(self.device)
        with torch.no_grad():
            codes = self(sample)
        save_dictionary_figures(self.encoder, sample, run_dir / "figures", codes)
        accuracy = None
        if self.probe and self.num_classes:
            accuracy = linear_probe(
                self.encoder,
                datamodule.train_dataloader(),
                datamodule.test_dataloader(),
                self.num_classes,
                epochs=self.probe_iterations,
                max_samples=self.probe_max_samples,
            )
        return {
            "accuracy": accuracy,
            "accuracy_label": "linear-probe accuracy on frozen Γ_K",
            "objective": metrics.get("test/objective"),
            "dictionary_sparsity": dictionary_sparsity(self.encoder),
            "figures": str(run_dir / "figures"),
        }
