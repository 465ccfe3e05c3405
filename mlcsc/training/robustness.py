"""Robustness of trained classifiers: Gaussian noise, FGSM and PGD attacks.

The stability theory of ML-CSC (Papyan, Romano & Elad 2017; Sulam et al. 2019) predicts that
iterative pursuits (layered BP, ML-ISTA, ML-FISTA) are more stable to input perturbations than
the forward pass (layered thresholding, i.e. the CNN). This module measures it.

Perturbations live in pixel space, ``[0, 1]``, where the budget ``ε`` means the same for every
data set; the model sees the perturbed pixels after the data set's normalisation.

* Gaussian noise: ``x̃ = clip(x + σ·n, 0, 1)``, ``n ~ N(0, I)``.
* FGSM (Goodfellow, Shlens & Szegedy 2015): ``x̃ = clip(x + ε·sign(∇ₓℓ(f(x), y)), 0, 1)``.
* PGD (Madry et al. 2018): ``x̃ ← Π_{‖x̃−x‖∞≤ε, [0,1]}(x̃ + α·sign(∇ℓ))`` for ``steps`` steps from
  a random start in the ε-ball.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcsc.errors import ConfigError
from mlcsc.reporting import format_table, group_rows, new_figure, save_figure, write_csv
from mlcsc.training.checkpoint_io import load_checkpoint
from mlcsc.training.evaluation import encoder_label, evaluation_data, load_classifier
from mlcsc.training.instantiate import plain

__all__ = [
    "ATTACKS",
    "PixelSpaceModel",
    "fgsm",
    "gaussian_noise",
    "pgd",
    "robustness_curves",
    "run_robustness",
]


class PixelSpaceModel(nn.Module):
    """Wrap a classifier that expects normalised inputs so that it takes pixels in [0, 1].

    Args:
        model: the classifier (``(B, C, H, W)`` normalised → logits).
        mean, std: per-channel normalisation ``(C,)``; ``None`` when the data is not normalised.
    """

    def __init__(self, model: nn.Module, mean: Tensor | None = None, std: Tensor | None = None):
        super().__init__()
        self.model = model
        self.normalized = mean is not None
        if self.normalized:
            self.register_buffer(
                "mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
            )
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:
        if self.normalized:
            pixels = (pixels - self.mean) / self.std
        return self.model(pixels)


def _check_budget(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def gaussian_noise(
    pixels: Tensor, sigma: float, generator: torch.Generator | None = None
) -> Tensor:
    """Add white Gaussian noise of standard deviation ``sigma`` and clip to [0, 1]."""
    sigma = _check_budget("sigma", sigma)
    noise = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype)
    return (pixels + sigma * noise.to(pixels.device)).clamp(0.0, 1.0)


def _loss_gradient(model: nn.Module, pixels: Tensor, labels: Tensor) -> Tensor:
    pixels = pixels.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(pixels), labels)
        (gradient,) = torch.autograd.grad(loss, pixels)
    return gradient


def fgsm(model: nn.Module, pixels: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """Fast gradient sign method: one signed-gradient step of size ε, clipped to [0, 1]."""
    epsilon = _check_budget("epsilon", epsilon)
    if epsilon == 0:
        return pixels.clone()
    gradient = _loss_gradient(model, pixels, labels)
    return (pixels + epsilon * gradient.sign()).clamp(0.0, 1.0).detach()


def pgd(
    model: nn.Module,
    pixels: Tensor,
    labels: Tensor,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent in the ℓ∞ ball of radius ε (Madry et al. 2018).

    Args:
        step_size: ``α``; default ``2.5·ε/steps``.
        random_start: start from a uniform point of the ε-ball.
    """
    epsilon = _check_budget("epsilon", epsilon)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if epsilon == 0:
        return pixels.clone()
    alpha = 2.5 * epsilon / steps if step_size is None else _check_budget("step_size", step_size)
    adversarial = pixels.clone()
    if random_start:
        start = torch.rand(pixels.shape, generator=generator, dtype=pixels.dtype) * 2 - 1
        adversarial = (pixels + epsilon * start.to(pixels.device)).clamp(0.0, 1.0)
    for _ in range(steps):
        gradient = _loss_gradient(model, adversarial, labels)
        adversarial = adversarial + alpha * gradient.sign()
        adversarial = torch.max(torch.min(adversarial, pixels + epsilon), pixels - epsilon)
        adversarial = adversarial.clamp(0.0, 1.0).detach()
    return adversarial


ATTACKS = {"noise", "fgsm", "pgd"}


@torch.no_grad()
def _accuracy(model: nn.Module, pixels: Tensor, labels: Tensor) -> int:
    return int((model(pixels).argmax(1) == labels).sum())


def robustness_curves(
    models: Mapping[str, nn.Module],
    batches: Sequence[tuple[Tensor, Tensor]],
    noise_sigmas: Sequence[float],
    epsilons: Sequence[float],
    attacks: Sequence[str] = ("noise", "fgsm", "pgd"),
    pgd_steps: int = 10,
    seed: int = 0,
) -> list[dict]:
    """Accuracy of every model under every perturbation level.

    Args:
        models: name → :class:`PixelSpaceModel` (pixels in [0, 1] → logits), in eval mode.
        batches: ``(pixels, labels)`` pairs, pixels in [0, 1].
        noise_sigmas: standard deviations for the ``noise`` rows.
        epsilons: ℓ∞ budgets for the ``fgsm`` and ``pgd`` rows.
        attacks: which of ``noise``, ``fgsm``, ``pgd`` to run.

    Returns:
        rows ``{"model", "attack", "level", "accuracy", "samples"}``.
    """
    unknown = sorted(set(attacks) - ATTACKS)
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; expected some of {sorted(ATTACKS)}")
    for sigma in noise_sigmas:
        _check_budget("noise sigma", sigma)
    for epsilon in epsilons:
        _check_budget("epsilon", epsilon)
    rows = []
    for name, model in models.items():
        plans = []
        if "noise" in attacks:
            plans += [("noise", sigma) for sigma in noise_sigmas]
        plans += [
            (attack, eps) for attack in ("fgsm", "pgd") if attack in attacks for eps in epsilons
        ]
        for attack, level in plans:
            generator = torch.Generator().manual_seed(seed)
            correct = total = 0
            for pixels, labels in batches:
                if attack == "noise":
                    perturbed = gaussian_noise(pixels, level, generator)
                elif attack == "fgsm":
                    perturbed = fgsm(model, pixels, labels, level)
                else:
                    perturbed = pgd(model, pixels, labels, level, pgd_steps, generator=generator)
                correct += _accuracy(model, perturbed, labels)
                total += labels.numel()
            rows.append(
                {
                    "model": name,
                    "attack": attack,
                    "level": float(level),
                    "accuracy": correct / max(total, 1),
                    "samples": total,
                }
            )
    return rows


COLUMNS = ("model", "attack", "level", "accuracy", "samples")
TITLES = {"noise": "Gaussian noise σ", "fgsm": "FGSM ε", "pgd": "PGD ε"}
AXES = {"noise": "noise σ (pixels in [0, 1])", "fgsm": "FGSM ε", "pgd": "PGD ε"}


def write_robustness_csv(rows: Sequence[Mapping], path) -> Path:
    """Write the rows of :func:`robustness_curves` as CSV."""
    return write_csv(rows, path, COLUMNS)


def _by_attack(rows: Sequence[Mapping]) -> dict[str, dict[str, list[Mapping]]]:
    """``{attack: {model: rows}}`` in the order noise, FGSM, PGD and of the models' first rows."""
    grouped = group_rows(rows, ["attack", "model"])
    return {
        attack: {model: found for (a, model), found in grouped.items() if a == attack}
        for attack in TITLES
        if any(a == attack for a, _ in grouped)
    }


def format_robustness_table(rows: Sequence[Mapping]) -> str:
    """One table per attack: a row per model, a column per perturbation level (accuracy %)."""
    tables = []
    for attack, models in _by_attack(rows).items():
        levels = sorted({row["level"] for found in models.values() for row in found})
        pivot = [
            {"model": model, **{row["level"]: row["accuracy"] for row in found}}
            for model, found in models.items()
        ]
        tables.append(
            format_table(
                pivot,
                ["model", *levels],
                formats={level: (lambda value: f"{100 * value:.2f}%") for level in levels},
                headers={"model": TITLES[attack], **{level: f"{level:.3f}" for level in levels}},
            )
        )
    return "\n\n".join(tables) + "\n"


def plot_robustness(rows: Sequence[Mapping], path) -> Path:
    """Accuracy versus perturbation level, one panel per attack, one line per model (PNG)."""
    attacks = _by_attack(rows)
    figure, axes = new_figure(1, len(attacks), width=4.5, height=3.6)
    for axis, (attack, models) in zip(axes[0], attacks.items(), strict=True):
        for model, found in models.items():
            points = sorted((row["level"], row["accuracy"]) for row in found)
            axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=model)
        axis.set_xlabel(AXES[attack])
        axis.set_ylabel("accuracy (%)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return save_figure(figure, path, dpi=120)


def run_robustness(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy of several checkpoints under Gaussian noise and FGSM / PGD attacks.

    Config keys (``evaluate.py mode=robustness``): ``robustness.ckpts`` (list of checkpoints,
    default ``[ckpt]``), ``robustness.noise_sigmas``, ``robustness.epsilons`` (pixel-space
    budgets in [0, 1]), ``robustness.attacks``, ``robustness.pgd_steps``,
    ``robustness.max_samples``, ``robustness.output_dir``; ``split``, ``n_iter`` and ``data`` as
    in :func:`evaluate`. Every checkpoint is loaded before any work starts.

    Returns:
        ``{"rows": [...], "csv": path, "plot": path}``; prints the table.
    """
    start = time.perf_counter()
    config = plain(cfg)
    options = dict(config.get("robustness") or {})
    ckpts = list(options.get("ckpts") or ([config["ckpt"]] if config.get("ckpt") else []))
    if not ckpts:
        raise ConfigError("robustness needs checkpoints: robustness.ckpts=[a.ckpt,b.ckpt] or ckpt=")
    max_samples = int(options.get("max_samples", 1000))
    if max_samples < 1:
        raise ConfigError(f"robustness.max_samples must be >= 1, got {max_samples}")
    for path in ckpts:  # all present and readable before any work starts
        load_checkpoint(path)
    modules = {}
    for path in ckpts:
        module = load_classifier(path, config.get("n_iter"), config.get("lam"))
        label = encoder_label(module.encoder)
        if label in modules:
            label = f"{label} {Path(path).stem}"
        modules[label] = module
    datamodule, loader = evaluation_data(config, next(iter(modules.values())))
    mean = datamodule.mean if datamodule.normalize else None
    std = datamodule.std if datamodule.normalize else None
    models = {name: PixelSpaceModel(m.net, mean, std).eval() for name, m in modules.items()}
    batches, taken = [], 0
    for images, labels in loader:
        images, labels = images[: max_samples - taken], labels[: max_samples - taken]
        batches.append((datamodule.unnormalize(images).clamp(0.0, 1.0), labels))
        taken += labels.numel()
        if taken >= max_samples:
            break
    try:
        rows = robustness_curves(
            models,
            batches,
            noise_sigmas=options.get("noise_sigmas", [0.0, 0.1, 0.2, 0.3]),
            epsilons=options.get("epsilons", [0.0, 0.05, 0.1, 0.2]),
            attacks=options.get("attacks", ["noise", "fgsm", "pgd"]),
            pgd_steps=int(options.get("pgd_steps", 10)),
            seed=int(config.get("seed", 0)),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    output_dir = Path(options.get("output_dir") or _hydra_output_dir() or ".")
    csv_path = write_robustness_csv(rows, output_dir / "robustness.csv")
    plot_path = plot_robustness(rows, output_dir / "robustness.png")
    print(format_robustness_table(rows), flush=True)
    print(
        f"  {taken} samples, {time.perf_counter() - start:.1f} s; table: {csv_path}, "
        f"plot: {plot_path}",
        flush=True,
    )
    return {"rows": rows, "csv": str(csv_path), "plot": str(plot_path)}


def _hydra_output_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
