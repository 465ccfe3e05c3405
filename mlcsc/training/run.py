"""``train(cfg)`` and ``evaluate(cfg)``: what ``train.py`` and ``evaluate.py`` run.

Kept apart from the ``@hydra.main`` shims so that tests (and notebooks) can call them with a
composed configuration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from mlcsc.data import make_datamodule
from mlcsc.errors import CheckpointError, ConfigError, MLCSCError
from mlcsc.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from mlcsc.training.classification import ClassificationModule, build_classifier

__all__ = ["train", "evaluate", "robustness", "run_cli", "format_summary"]

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "tensorboard"


def _container(config: Any) -> Any:
    if isinstance(config, DictConfig) or OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)
    return config


def _datamodule(data: Mapping[str, Any]):
    options = dict(data)
    name = options.pop("name", None)
    return make_datamodule(name, **options)


def _resolve_resume(ckpt_path: str | None, output_root: Path) -> Path | None:
    """``None``, an explicit checkpoint, or ``last``: the newest ``last.ckpt`` of this run name."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        candidates = sorted(
            output_root.glob(f"*/{CHECKPOINT_DIR}/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not candidates:
            raise CheckpointError(
                f"ckpt_path=last: no {CHECKPOINT_DIR}/last.ckpt under {output_root}; "
                "train once without ckpt_path first"
            )
        return candidates[-1]
    path = Path(ckpt_path)
    load_checkpoint(path)  # fail early, with the path, when missing or corrupted
    return path


def _trainer_options(trainer: Mapping[str, Any]) -> dict:
    options = {key: value for key, value in dict(trainer).items() if value is not None}
    for key in ("callbacks", "logger", "plugins", "default_root_dir"):
        options.pop(key, None)
    return options


def train(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Train an ML-CSC classifier, keep best and last checkpoints, test the best one.

    Everything is validated before any training starts: the data set name, the model
    (pursuit, n_iter, layer specs, thresholds) against the data's image size and channels, the
    optimizer and the checkpoint to resume from.

    Returns:
        the summary: test metrics, per-layer sparsity, wall time, checkpoint and log folders.
    """
    start = time.perf_counter()
    config = _container(cfg)
    pl.seed_everything(int(config.get("seed", 0)), workers=True, verbose=False)
    datamodule = _datamodule(config["data"])
    task = dict(config.get("task") or {"name": "classification"})
    module, monitor, mode = _build_task_module(task, config, datamodule)
    _check_optimizer(module)

    output_root = Path(config.get("output_root", "outputs")) / str(config.get("run_name", "run"))
    resume = _resolve_resume(config.get("ckpt_path"), output_root)
    run_dir = resume.parent.parent if resume is not None else Path(config["run_dir"])
    checkpoint_dir = run_dir / CHECKPOINT_DIR

    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
    )
    callbacks: list = [checkpoint]
    loggers: list = []
    if (config.get("logger") or {}).get("tensorboard", False):
        logger = TensorBoardLogger(save_dir=str(run_dir), name=LOG_DIR, version="")
        loggers.append(logger)
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    trainer = pl.Trainer(
        **_trainer_options(config.get("trainer", {})),
        default_root_dir=str(run_dir),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    if resume is None and getattr(module, "init", "random") == "patches":
        datamodule.setup("fit")
        module.initialize_from_patches_(next(iter(datamodule.train_dataloader()))[0])
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if trainer.fast_dev_run:
        best = None  # fast_dev_run saves no checkpoints: test the weights in memory
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics = results[0] if results else {}
    extra = {}
    if task["name"] == "dictionary_learning":
        extra = _dictionary_learning_report(module, datamodule, task, run_dir, metrics)
    summary = _summary(
        metrics,
        module.encoder,
        wall_time=time.perf_counter() - start,
        checkpoint=best or checkpoint.last_model_path or None,
        log_dir=str(run_dir / LOG_DIR) if loggers else None,
        split="test",
    )
    summary.update(extra)
    print(format_summary(summary), flush=True)
    return summary


TASKS = ("classification", "dictionary_learning")


def _build_task_module(task: Mapping[str, Any], config: Mapping[str, Any], datamodule):
    """The LightningModule of the task, and the metric (and direction) that picks the best."""
    name = task.get("name")
    common = {
        "model": config["model"],
        "in_channels": datamodule.in_channels,
        "input_size": tuple(datamodule.image_size),
        "optimizer": config["optimizer"],
        "scheduler": config.get("scheduler"),
        "image_every_n_epochs": int(config.get("image_every_n_epochs", 1)),
        "data": config["data"],
    }
    if name == "classification":
        module = ClassificationModule(num_classes=datamodule.num_classes, **common)
        return module, "val/acc", "max"
    if name == "dictionary_learning":
        from mlcsc.training.dictionary_learning import DictionaryLearningModule

        module = DictionaryLearningModule(
            lambdas=task.get("lambdas", 0.1),
            filter_density=task.get("filter_density"),
            init=task.get("init", "random"),
            **common,
        )
        return module, "val/objective", "min"
    raise ConfigError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")


def _dictionary_learning_report(module, datamodule, task, run_dir: Path, metrics) -> dict:
    """Figures (PNG), dictionary sparsity and a linear probe on the frozen deepest codes."""
    from mlcsc.training.dictionary_learning import dictionary_sparsity, linear_probe
    from mlcsc.training.figures import save_dictionary_figures

    module.eval()
    encoder = module.encoder
    datamodule.setup("test")
    sample = next(iter(datamodule.test_dataloader()))[0][:1]
    with torch.no_grad():
        codes = module(sample)  # the model's codes: Γ_K from the pursuit, Γ_{i−1} = D_iΓ_i
    save_dictionary_figures(encoder, sample, run_dir / "figures", codes)
    probe = None
    if task.get("probe", True):
        probe = linear_probe(
            encoder,
            datamodule.train_dataloader(),
            datamodule.test_dataloader(),
            datamodule.num_classes,
            epochs=int(task.get("probe_iterations", 100)),
            max_samples=task.get("probe_max_samples"),
        )
    return {
        "accuracy": probe,
        "accuracy_label": "linear-probe accuracy on frozen Γ_K",
        "objective": metrics.get("test/objective"),
        "dictionary_sparsity": dictionary_sparsity(encoder),
        "figures": str(run_dir / "figures"),
    }


def _check_optimizer(module) -> None:
    """Build the optimizer and schedule once, so that a bad configuration fails before fitting."""
    module.configure_optimizers()


def _load_module(ckpt: str, n_iter: int | None = None) -> ClassificationModule:
    """Rebuild a trained classifier from its checkpoint (safely loaded), optionally re-unrolled."""
    checkpoint = load_checkpoint(ckpt)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "model" not in hparams or "num_classes" not in hparams:
        raise CheckpointError(f"not an mlcsc classification checkpoint: {ckpt}")
    module = ClassificationModule(**hparams)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {ckpt} does not match its model: {first}") from None
    if n_iter is not None:
        try:
            module.encoder.n_iter = n_iter
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return module.eval()


def _evaluation_data(config: Mapping[str, Any], module: ClassificationModule):
    """The data module to evaluate on (``data=…`` or the checkpoint's own) and the split loader."""
    split = config.get("split", "test")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected one of train, val, test")
    data_config = config.get("data") or module.hparams.get("data")
    if not data_config:
        raise ConfigError("the checkpoint records no data set; choose one with data=<name>")
    datamodule = _datamodule(data_config)
    # the data set must fit the architecture the checkpoint was trained with
    build_classifier(
        module.hparams["model"],
        datamodule.in_channels,
        datamodule.num_classes,
        datamodule.image_size,
    )
    datamodule.setup("fit" if split != "test" else "test")
    loader = {
        "train": datamodule.train_dataloader,
        "val": datamodule.val_dataloader,
        "test": datamodule.test_dataloader,
    }[split]()
    return datamodule, loader


def evaluate(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of its data set (or of another data set).

    Config keys: ``ckpt`` (path), ``split`` (``test``, ``val`` or ``train``), optional
    ``n_iter`` (unroll the pursuit a different number of times than in training), optional
    ``data`` (evaluate on another data set; default the one the checkpoint was trained on),
    ``mode`` (``accuracy``, or ``robustness``: see :func:`robustness`).
    """
    config = _container(cfg)
    mode = config.get("mode", "accuracy")
    if mode == "robustness":
        return robustness(config)
    if mode != "accuracy":
        raise ConfigError(f"unknown mode {mode!r}; expected one of accuracy, robustness")
    start = time.perf_counter()
    ckpt = config.get("ckpt")
    if not ckpt:
        raise ConfigError("evaluate needs a checkpoint: ckpt=path/to/file.ckpt")
    split = config.get("split", "test")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected one of train, val, test")
    module = _load_module(ckpt, config.get("n_iter"))
    _, loader = _evaluation_data(config, module)
    trainer = pl.Trainer(
        **_trainer_options(config.get("trainer", {})), logger=False, enable_checkpointing=False
    )
    results = trainer.test(module, dataloaders=loader, verbose=False)
    summary = _summary(
        results[0] if results else {},
        module.encoder,
        wall_time=time.perf_counter() - start,
        checkpoint=str(ckpt),
        log_dir=None,
        split=split,
    )
    print(format_summary(summary), flush=True)
    return summary


def robustness(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy of several checkpoints under Gaussian noise and FGSM / PGD attacks.

    Config keys (``evaluate.py mode=robustness``): ``robustness.ckpts`` (list of checkpoints,
    default ``[ckpt]``), ``robustness.noise_sigmas``, ``robustness.epsilons`` (pixel-space
    budgets in [0, 1]), ``robustness.attacks``, ``robustness.pgd_steps``,
    ``robustness.max_samples``, ``robustness.output_dir``; ``split``, ``n_iter`` and ``data`` as
    in :func:`evaluate`. Every checkpoint is loaded before any work starts.

    Returns:
        ``{"rows": [...], "csv": path, "plot": path}``; prints the table.
    """
    from mlcsc.training.robustness import (
        PixelSpaceModel,
        format_robustness_table,
        plot_robustness,
        robustness_curves,
        write_robustness_csv,
    )

    start = time.perf_counter()
    config = _container(cfg)
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
        module = _load_module(path, config.get("n_iter"))
        label = f"{module.encoder.pursuit} (T={module.encoder.n_iter})"
        if label in modules:
            label = f"{label} {Path(path).stem}"
        modules[label] = module
    datamodule, loader = _evaluation_data(config, next(iter(modules.values())))
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


def _summary(metrics, encoder, wall_time, checkpoint, log_dir, split) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in metrics.items()}
    layers = []
    for j in range(1, encoder.num_layers + 1):
        layers.append(
            {
                "layer": j,
                "zeros_pct": metrics.get(f"test/sparsity/layer{j}_zeros_pct"),
                "nnz": metrics.get(f"test/sparsity/layer{j}_nnz"),
            }
        )
    return {
        "split": split,
        "accuracy": metrics.get("test/acc"),
        "loss": metrics.get("test/loss"),
        "reconstruction_error": metrics.get("test/reconstruction/relative_error"),
        "sparsity": layers,
        "pursuit": encoder.pursuit,
        "n_iter": encoder.n_iter,
        "wall_time_s": wall_time,
        "checkpoint": checkpoint,
        "log_dir": log_dir,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary printed at the end of ``train.py`` and ``evaluate.py``."""

    def number(value, fmt):
        return format(value, fmt) if value is not None else "n/a"

    accuracy = summary.get("accuracy")
    label = summary.get("accuracy_label", f"{summary['split']} accuracy")
    lines = [
        "",
        "=" * 64,
        f"mlcsc summary ({summary['pursuit']}, n_iter={summary['n_iter']})",
        f"  {label} : " + (f"{100 * accuracy:.2f} %" if accuracy is not None else "n/a"),
    ]
    if summary.get("objective") is not None:
        lines.append(f"  {summary['split']} objective : {summary['objective']:.4f}")
    else:
        lines.append(f"  {summary['split']} loss     : {number(summary.get('loss'), '.4f')}")
    lines.append("  code sparsity (% zeros, mean nnz per sample):")
    for layer in summary["sparsity"]:
        lines.append(
            f"    Γ{layer['layer']}: {number(layer['zeros_pct'], '.2f')} % zeros, "
            f"{number(layer['nnz'], '.1f')} nnz"
        )
    if summary.get("dictionary_sparsity"):
        values = ", ".join(
            f"D{j}: {v:.2f} %" for j, v in enumerate(summary["dictionary_sparsity"], 1)
        )
        lines.append(f"  dictionary sparsity (% zero weights): {values}")
    if summary.get("figures"):
        lines.append(f"  figures    : {summary['figures']}")
    lines += [
        f"  relative reconstruction error ‖x − D₁⋯D_KΓ_K‖/‖x‖ : "
        f"{number(summary.get('reconstruction_error'), '.3f')}",
        f"  wall time  : {summary['wall_time_s']:.1f} s",
        f"  checkpoint : {summary['checkpoint'] or 'none saved'}",
    ]
    if summary.get("log_dir"):
        lines.append(f"  TensorBoard: tensorboard --logdir {summary['log_dir']}")
    lines.append("=" * 64)
    return "\n".join(lines)


def run_cli(function: Callable[[Any], Any], cfg: DictConfig) -> Any:
    """Run ``function(cfg)``; report an :class:`MLCSCError` as one line and exit with status 2."""
    try:
        return function(cfg)
    except MLCSCError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "interrupted: the last complete checkpoint is kept; resume with ckpt_path=last",
            file=sys.stderr,
        )
        sys.exit(130)
