"""Unsupervised ML-CSC dictionary learning with PyTorch Lightning.

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
from a start of random data patches (``init="patches"``) the learned first-layer atoms match
all planted ones on only some draws; the others come out as one-pixel-shifted, cropped copies or
mixtures (see ``tests/test_dictionary_learning.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcsc.errors import ConfigError
from mlcsc.functional import weighted_l1
from mlcsc.nn import MLCSC
from mlcsc.theory.sampling import sparsify_filters_
from mlcsc.training.classification import build_encoder, code_statistics
from mlcsc.training.figures import log_atom_images
from mlcsc.training.optim import lightning_optimizers

__all__ = ["DictionaryLearningModule", "dictionary_sparsity", "linear_probe"]

INITS = ("random", "patches")


def dictionary_sparsity(encoder: MLCSC) -> list[float]:
    """Percentage of zero filter weights of every layer."""
    return [100.0 * float((d.weight.detach() == 0).float().mean()) for d in encoder.dictionaries]


def _per_layer(name: str, values, count: int, check) -> list:
    """One value per layer from a scalar (or ``None``) or a list, each checked."""
    if values is None or isinstance(values, (int, float)):
        values = [values] * count
    values = list(values)
    if len(values) != count:
        raise ConfigError(f"{name} needs one value per layer ({count}), got {len(values)}")
    for value in values:
        check(value)
    return values


class DictionaryLearningModule(pl.LightningModule):
    """LightningModule: learn the dictionaries of an ML-CSC model without labels.

    Args:
        model: the ``model`` configuration (layers, pursuit, n_iter, …) of the encoder.
        in_channels, input_size: from the data module.
        optimizer, scheduler: as for classification (see :mod:`mlcsc.training.optim`).
        lambdas: ``λ_i ≥ 0`` per layer (or one for all): the ℓ1 weights of the objective and the
            thresholds of the pursuit.
        filter_density: per layer, the fraction of non-zero weights each filter keeps after every
            step (``null``: dense).
        image_every_n_epochs: log atom images every this many validation epochs (0: never).
        init: ``"random"`` (the encoder's random atoms) or ``"patches"``: the first-layer atoms
            are set from random patches of the first training batch before fitting
            (:meth:`initialize_from_patches_`; not when resuming from a checkpoint).
        data: the data configuration, recorded in the checkpoint.

    Logged: the objective, its reconstruction term, the relative reconstruction error, per-layer
    code sparsity and dictionary sparsity; images of the atoms and effective atoms.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        in_channels: int,
        input_size: Sequence[int],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        lambdas: float | Sequence[float] = 0.1,
        filter_density: float | Sequence[float | None] | None = None,
        image_every_n_epochs: int = 1,
        init: str = "random",
        data: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build_encoder(model, in_channels, input_size)
        count = self.encoder.num_layers

        def check_lambda(value):
            if not isinstance(value, (int, float)) or not float(value) >= 0:
                raise ConfigError(f"lambdas must be >= 0, got {value}")

        def check_density(value):
            valid = value is None or (isinstance(value, (int, float)) and 0 < float(value) <= 1)
            if not valid:
                raise ConfigError(f"filter_density must be in (0, 1] or null, got {value}")

        lambdas = _per_layer("lambdas", lambdas, count, check_lambda)
        self.lambdas = [float(value) for value in lambdas]
        self.filter_density = _per_layer("filter_density", filter_density, count, check_density)
        # the pursuit's thresholds are the λ_i of the objective: fixed, not learned
        with torch.no_grad():
            for beta, value in zip(self.encoder.thresholds, self.lambdas, strict=True):
                beta.fill_(value)
        for parameter in (*self.encoder.thresholds, *self.encoder.step_sizes):
            parameter.requires_grad_(False)
        if init not in INITS:
            raise ConfigError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
        self.init = init
        self._project_()
        self.optimizer_config = dict(optimizer)
        self.scheduler_config = dict(scheduler) if scheduler else None
        self.image_every_n_epochs = image_every_n_epochs

    @torch.no_grad()
    def _project_(self) -> None:
        """Sparse filters where asked, then unit-norm atoms."""
        for dictionary, density in zip(self.encoder.dictionaries, self.filter_density, strict=True):
            if density is not None and density < 1:
                sparsify_filters_(dictionary, density)
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
        atoms, channels, height, width = dictionary.weight.shape
        patches = (
            F.unfold(x.detach(), (height, width))
            .transpose(1, 2)
            .reshape(-1, channels * height * width)
        )
        norms = patches.norm(dim=1)
        patches = patches[norms > 1e-6 * norms.max().clamp_min(1e-30)]
        if len(patches) < atoms:
            raise ValueError(
                f"initialising {atoms} atoms from patches needs at least {atoms} non-zero "
                f"{height}×{width} patches, got {len(patches)}"
            )
        pick = torch.randperm(len(patches), generator=generator)[:atoms].to(patches.device)
        dictionary.weight.copy_(patches[pick].view_as(dictionary.weight))
        self._project_()

    def forward(self, x: Tensor) -> list[Tensor]:
        """The model's codes ``[Γ₁, …, Γ_K]``: ``Γ_K`` from the pursuit and ``Γ_{i−1} = D_iΓ_i``."""
        gamma = self.encoder(x)
        return self.encoder.model_codes(gamma, x.shape[-2:])

    def objective(
        self, x: Tensor, codes: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
        """Mean ML-BP objective over the batch with the codes held fixed, its reconstruction
        term, the model's codes ``[Γ₁, …, Γ_K]`` (detached) and the mean relative
        reconstruction error ``‖x − D₁⋯D_KΓ_K‖/‖x‖``.

        ``codes``: the model's codes of ``x`` from an earlier call (:meth:`forward`), so that
        several dictionary steps can share one pursuit; by default the pursuit is run with the
        current dictionaries.
        """
        if codes is None:
            with torch.no_grad():
                codes = self(x)
        # one synthesis pass, differentiable in D: x̂ = D₁Γ₁ and Γ_{i−1} = D_iΓ_i
        reconstruction, *chain = self.encoder.synthesis_chain(codes[-1].detach(), x.shape[-2:])
        residual = (x - reconstruction).flatten(1)
        data_term = 0.5 * residual.pow(2).sum(1)
        penalty = sum(weighted_l1(code, lam) for code, lam in zip(chain, self.lambdas, strict=True))
        objective = (data_term + penalty).mean()
        with torch.no_grad():
            relative = residual.norm(dim=1) / x.flatten(1).norm(dim=1).clamp_min(1e-12)
        codes = [code.detach() for code in chain]
        return objective, data_term.mean(), codes, relative.mean()

    def _common_step(self, batch, stage: str) -> Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        objective, data_term, codes, relative = self.objective(x)
        on_step = stage == "train"
        self.log(f"{stage}/objective", objective, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/data_term", data_term, on_epoch=True)
        self.log(f"{stage}/reconstruction/relative_error", relative, on_epoch=True, prog_bar=True)
        if stage != "train":
            stats = code_statistics(codes)
            self.log_dict({f"{stage}/{k}": v for k, v in stats.items()}, on_epoch=True)
        return objective

    def training_step(self, batch, batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._common_step(batch, "test")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._project_()

    def on_train_epoch_end(self) -> None:
        for j, value in enumerate(dictionary_sparsity(self.encoder), start=1):
            self.log(f"dictionary/layer{j}_zeros_pct", value)

    def on_validation_epoch_end(self) -> None:
        log_atom_images(self, self.image_every_n_epochs)

    def configure_optimizers(self):
        return lightning_optimizers(
            [p for p in self.encoder.dictionaries.parameters() if p.requires_grad],
            self.optimizer_config,
            self.scheduler_config,
            self._trainer,
        )


@torch.no_grad()
def _features(encoder: MLCSC, loader, max_samples: int | None = None) -> tuple[Tensor, Tensor]:
    features, labels, taken = [], [], 0
    for images, targets in loader:
        features.append(encoder(images).flatten(1))
        labels.append(targets)
        taken += len(targets)
        if max_samples is not None and taken >= max_samples:
            break
    features, labels = torch.cat(features), torch.cat(labels)
    return features[:max_samples], labels[:max_samples]


def linear_probe(
    encoder: MLCSC,
    train_loader,
    test_loader,
    num_classes: int,
    epochs: int = 100,
    seed: int = 0,
    max_samples: int | None = None,
) -> float:
    """Accuracy of a linear classifier trained on the frozen deepest codes ``Γ_K``.

    The codes are standardised with the training statistics; the classifier is trained by
    full-batch L-BFGS on the cross-entropy with a small weight decay. ``max_samples`` limits the
    training samples used (the test split is always used whole).
    """
    encoder.eval()
    train_x, train_y = _features(encoder, train_loader, max_samples)
    test_x, test_y = _features(encoder, test_loader)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=generator))
        head.bias.zero_()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=epochs, history_size=20)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(train_x), train_y)
        loss = loss + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((head(test_x).argmax(1) == test_y).float().mean())
