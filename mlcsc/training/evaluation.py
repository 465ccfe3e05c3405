"""``evaluate(cfg)``: a trained classifier's accuracy on a split of its (or another) data set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlcsc.errors import CheckpointError, ConfigError
from mlcsc.training.checkpoint_io import load_checkpoint
from mlcsc.training.classification import ClassificationModule
from mlcsc.training.instantiate import instantiate, plain
from mlcsc.training.summary import format_summary, run_summary

__all__ = ["SPLITS", "evaluate", "evaluation_data", "load_classifier"]

SPLITS = ("train", "val", "test")


def config_split(config: Mapping[str, Any]) -> str:
    """``config["split"]`` (default ``test``), checked before any work."""
    split = config.get("split", "test")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def load_classifier(ckpt: str, n_iter: int | None = None) -> ClassificationModule:
    """Rebuild a trained classifier from its checkpoint (safely loaded), optionally re-unrolled
    ``n_iter`` times, in evaluation mode.

    Raises:
        CheckpointError: missing, unreadable, not a classification checkpoint, or weights that do
            not fit the model it records.
        ConfigError: an ``n_iter`` the encoder refuses.
    """
    checkpoint = load_checkpoint(ckpt)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "model" not in hparams or "num_classes" not in hparams:
        raise CheckpointError(f"not an mlcsc classification checkpoint: {ckpt}")
    try:
        module = ClassificationModule(**hparams)
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"checkpoint {ckpt} records a model this version cannot build: "
                              f"{error}") from None  # fmt: skip
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {ckpt} does not match its model: {first}") from None
    if n_iter is not None:
        try:
            module.encoder.n_iter = n_iter
        except (ValueError, AttributeError) as error:
            raise ConfigError(str(error)) from None
    return module.eval()


def evaluation_data(config: Mapping[str, Any], module: ClassificationModule):
    """The data module to evaluate on (``data=…`` or the checkpoint's own) and the loader of
    ``config["split"]``; the data must fit the architecture of the checkpoint."""
    split = config_split(config)
    data_config = config.get("data") or module.hparams.get("data")
    if not data_config:
        raise ConfigError("the checkpoint records no data set; choose one with data=<name>")
    datamodule = instantiate(data_config, "data")
    hparams = module.hparams
    if (datamodule.in_channels, datamodule.num_classes) != (
        hparams["in_channels"],
        hparams["num_classes"],
    ) or tuple(datamodule.image_size) != tuple(hparams["input_size"]):
        raise ConfigError(
            f"the data ({datamodule.in_channels} channels, {tuple(datamodule.image_size)} images, "
            f"{datamodule.num_classes} classes) does not fit the checkpoint's model "
            f"({hparams['in_channels']} channels, {tuple(hparams['input_size'])} images, "
            f"{hparams['num_classes']} classes)"
        )
    datamodule.setup("fit" if split != "test" else "test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    return datamodule, loader


def evaluate(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of its data set (or of another data set).

    Config keys (``configs/evaluate.yaml``): ``ckpt`` (path), ``split`` (``test``, ``val`` or
    ``train``), optional ``n_iter`` (unroll the pursuit a different number of times than in
    training), optional ``data`` (another data set; default the one the checkpoint was trained
    on), ``trainer``, ``mode`` (``accuracy``, or ``robustness``: see
    :func:`mlcsc.training.robustness.run_robustness`).
    """
    config = plain(cfg)
    mode = config.get("mode", "accuracy")
    if mode == "robustness":
        from mlcsc.training.robustness import run_robustness

        return run_robustness(config)
    if mode != "accuracy":
        raise ConfigError(f"unknown mode {mode!r}; expected one of accuracy, robustness")
    start = time.perf_counter()
    ckpt = config.get("ckpt")
    if not ckpt:
        raise ConfigError("evaluate needs a checkpoint: ckpt=path/to/file.ckpt")
    split = config_split(config)
    module = load_classifier(ckpt, config.get("n_iter"))
    _, loader = evaluation_data(config, module)
    trainer = instantiate(config["trainer"], "trainer", logger=False, enable_checkpointing=False)
    results = trainer.test(module, dataloaders=loader, verbose=False)
    summary = run_summary(
        results[0] if results else {},
        module.encoder,
        wall_time=time.perf_counter() - start,
        checkpoint=str(ckpt),
        log_dir=None,
        split=split,
    )
    print(format_summary(summary), flush=True)
    return summary
