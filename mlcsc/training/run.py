"""``train(cfg)``: what ``train.py`` runs, and ``run_cli``, the command-line wrapper.

Kept apart from the ``@hydra.main`` shims so that tests (and notebooks) can call them with a
composed configuration. Every object of the run is built by
:func:`~mlcsc.training.instantiate.instantiate` from its config group.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.callbacks import ModelCheckpoint

from mlcsc.errors import CheckpointError, ConfigError, MLCSCError
from mlcsc.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from mlcsc.training.instantiate import instantiate, instantiate_all

__all__ = ["train", "run_cli"]


def _resolve_resume(ckpt_path: str | None, output_root: Path) -> Path | None:
    """``None``, an explicit checkpoint, or ``last``: the newest ``last.ckpt`` of this run name."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        candidates = sorted(
            output_root.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not candidates:
            raise CheckpointError(
                f"ckpt_path=last: no checkpoints/last.ckpt under {output_root}; "
                "train once without ckpt_path first"
            )
        return candidates[-1]
    path = Path(ckpt_path)
    load_checkpoint(path)  # fail early, with the path, when missing or corrupted
    return path


def _resolved(cfg: Any) -> dict[str, Any]:
    """The configuration as plain containers; a resumed run writes into its checkpoint's run
    folder (``paths.run_dir``), so the interpolations that use it follow."""
    unresolved = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    config = OmegaConf.create(dict(unresolved))
    output_root = Path(str(config.paths.output_root)) / str(config.run_name)
    resume = _resolve_resume(config.get("ckpt_path"), output_root)
    if resume is not None:
        config.paths.run_dir = str(resume.parent.parent)
    try:
        resolved = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        message = str(error).strip().splitlines()[0]
        raise ConfigError(f"invalid configuration: {message}") from None
    resolved["ckpt_path"] = str(resume) if resume is not None else None
    return resolved


def _checkpoint_callback(callbacks: list) -> ModelCheckpoint:
    found = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    if not found:
        raise ConfigError(
            "train needs a checkpoint callback (callbacks.model_checkpoint) to keep the best model"
        )
    return found[0]


def train(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Train the task's model, keep best and last checkpoints, test the best one.

    What ``python train.py [group=option …] [key=value …]`` runs. Everything is built and
    validated before any training starts: the data module, the task (its encoder against the
    data's image size and channels), the optimizer and schedule, the trainer, loggers and
    callbacks, and the checkpoint to resume from. Then the run is seeded (``seed``), the task
    prepares its start (:meth:`~mlcsc.training.EncoderTask.prepare_fit`), the trainer fits it
    (checkpoints written through :class:`~mlcsc.training.AtomicCheckpointIO`), tests the best
    checkpoint on the test split, and the summary is printed
    (:func:`~mlcsc.training.format_summary`).

    Args:
        cfg: the configuration composed from ``configs/train.yaml`` (by ``@hydra.main`` or
            :func:`hydra.compose`), or a plain mapping with the same keys: the groups ``data``,
            ``model``, ``task``, ``optimizer``, ``scheduler``, ``trainer``, ``callbacks``
            (with a ``ModelCheckpoint``) and ``logger``, and ``paths``, ``run_name``, ``seed``
            and ``ckpt_path`` (``null``, ``last``: the newest ``last.ckpt`` of runs named
            ``run_name``, or a path). A resumed run writes into its checkpoint's run folder.

    Returns:
        the summary: test metrics, per-layer sparsity, wall time, checkpoint and log folders
            (and what the task reports, e.g. the linear probe of the unsupervised task).

    Raises:
        ConfigError: a configuration that cannot be resolved or an object that cannot be built
            from its node (the message names the group, the target and the valid choices).
        CheckpointError: a ``ckpt_path`` that is missing or unreadable, or ``last`` with no
            ``last.ckpt`` to resume from.

    Examples:
        A full run takes minutes; composing its configuration and a mistake in it take a
        fraction of a second. A bad override fails before any data is read or any file
        written:

        >>> import os
        >>> import tempfile
        >>> from pathlib import Path
        >>> import hydra
        >>> import mlcsc
        >>> configs = Path(mlcsc.__file__).resolve().parents[1] / "configs"  # the repository's
        >>> with tempfile.TemporaryDirectory() as folder:  # doctest: +ELLIPSIS
        ...     overrides = [f"paths.output_root={folder}", f"paths.run_dir={folder}/run",
        ...                  "run_name=doc", "model=ml_ista", "model.n_iter=3"]
        ...     with hydra.initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        ...         cfg = hydra.compose("train", overrides)
        ...         bad = hydra.compose("train", [*overrides, "model.pursuit=magic"])
        ...     cfg.task._target_, cfg.model.pursuit, cfg.model.n_iter, cfg.data._target_
        ...     try:
        ...         train(bad)
        ...     except mlcsc.errors.ConfigError as error:
        ...         print(error)
        ...     os.listdir(folder)
        ('mlcsc.training.ClassificationModule', 'ml_ista', 3, 'mlcsc.data.MNIST5kDataModule')
        model (mlcsc.MLCSC): unknown pursuit 'magic'; expected one of all_free, ...
        []
    """
    from mlcsc.training.summary import format_summary, run_summary

    start = time.perf_counter()
    config = _resolved(cfg)
    pl.seed_everything(int(config.get("seed", 0)), workers=True, verbose=False)
    datamodule = instantiate(config["data"], "data")
    module = instantiate(
        config["task"],
        "task",
        model=config["model"],
        in_channels=datamodule.in_channels,
        input_size=list(datamodule.image_size),
        num_classes=datamodule.num_classes,
        optimizer=config["optimizer"],
        scheduler=config.get("scheduler"),
        data=config["data"],
    )
    module.configure_optimizers()  # a bad optimizer or schedule fails before fitting
    callbacks = instantiate_all(config.get("callbacks"), "callbacks")
    checkpoint = _checkpoint_callback(callbacks)
    loggers = instantiate_all(config.get("logger"), "logger")
    run_dir = Path(config["paths"]["run_dir"])
    trainer: pl.Trainer = instantiate(
        config["trainer"],
        "trainer",
        default_root_dir=str(run_dir),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    resume = config["ckpt_path"]
    module.prepare_fit(datamodule, resuming=resume is not None)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if trainer.fast_dev_run:
        best = None  # fast_dev_run saves no checkpoints: test the weights in memory
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics = results[0] if results else {}
    summary = run_summary(
        metrics,
        module.encoder,
        wall_time=time.perf_counter() - start,
        checkpoint=best or checkpoint.last_model_path or None,
        log_dir=str(Path(loggers[0].log_dir)) if loggers else None,
        split="test",
    )
    if trainer.is_global_zero:
        summary.update(module.report(datamodule, run_dir, metrics))
        summary["wall_time_s"] = time.perf_counter() - start
        print(format_summary(summary), flush=True)
    return summary


def run_cli(function: Callable[[Any], Any], cfg: Any) -> Any:
    """Run ``function(cfg)``; report an :class:`MLCSCError` as one line and exit with status 2.

    The wrapper of the command-line scripts (``train.py``, ``evaluate.py``): a mistake a user
    can fix (:class:`~mlcsc.errors.ConfigError`, :class:`~mlcsc.errors.CheckpointError`,
    :class:`~mlcsc.errors.DataNotFoundError`) is printed to standard error as
    ``error: <message>`` instead of a traceback; any other exception propagates. Ctrl-C prints
    a note on resuming (``ckpt_path=last``) and exits with status 130.

    Args:
        function: what to run, e.g. :func:`train` or :func:`~mlcsc.training.evaluate`.
        cfg: its one argument, the configuration.

    Returns:
        What ``function(cfg)`` returns.

    Raises:
        SystemExit: status 2 after an :class:`~mlcsc.errors.MLCSCError`, 130 after a
            ``KeyboardInterrupt``.

    Examples:
        >>> run_cli(lambda cfg: cfg["n"] * 2, {"n": 21})
        42
        >>> import contextlib
        >>> import io
        >>> from mlcsc.errors import ConfigError
        >>> def fails(cfg):
        ...     raise ConfigError(f"unknown split {cfg['split']!r}")
        >>> stderr = io.StringIO()
        >>> with contextlib.redirect_stderr(stderr):
        ...     try:
        ...         run_cli(fails, {"split": "holdout"})
        ...     except SystemExit as stop:
        ...         print("exit status", stop.code)
        exit status 2
        >>> print(stderr.getvalue(), end="")
        error: unknown split 'holdout'
    """
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
