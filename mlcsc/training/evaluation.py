"""``evaluate(cfg)``: a trained classifier's accuracy on a split of its (or another) data set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from torch import nn

from mlcsc.errors import CheckpointError, ConfigError
from mlcsc.nn import MLCSC, CSCConv2d
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


def set_unrolling(encoder: nn.Module, n_iter: int | None = None, lam: float | None = None) -> None:
    """Unroll a trained encoder's pursuits ``n_iter`` times and give its CSC layers the ℓ1
    weight ``lam``, in place (``None``: unchanged).

    ``n_iter`` applies to every pursuit in the encoder: an :class:`~mlcsc.MLCSC` encoder, the
    :class:`~mlcsc.MLCSC` stages of a ``model=resnet18_mlcsc`` network and every
    :class:`~mlcsc.nn.CSCConv2d` (a ``model=resnet18_csc`` network); ``lam`` to every
    ``CSCConv2d`` (an ``MLCSC``'s thresholds are learned, not set).

    Args:
        encoder: the classifier's encoder.
        n_iter: pursuit iterations, ``≥ 0``.
        lam: ℓ1 weight of the CSC layers, ``≥ 0``.

    Raises:
        ConfigError: a value the layers refuse, or an encoder with nothing to apply it to.

    Examples:
        >>> from mlcsc.nn import CIFARResNet18
        >>> twin = CIFARResNet18(3, csc=True, lam=0.1, n_iter=1)
        >>> set_unrolling(twin, n_iter=3, lam=0.5)
        >>> {(m.n_iter, m.lam) for m in twin.modules() if isinstance(m, CSCConv2d)}
        {(3, 0.5)}
        >>> set_unrolling(CIFARResNet18(3), n_iter=3)
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: n_iter applies to mlcsc.MLCSC pursuits and CSCConv2d layers; this encoder (CIFARResNet18) has none
    """  # noqa: E501
    layers = [module for module in encoder.modules() if isinstance(module, CSCConv2d)]
    pursuits = [module for module in encoder.modules() if isinstance(module, MLCSC)]
    try:
        if n_iter is not None:
            if pursuits:  # a CSCConv2d's pursuit is a one-layer MLCSC
                for pursuit in pursuits:
                    pursuit.n_iter = n_iter
            else:
                raise ConfigError(
                    f"n_iter applies to mlcsc.MLCSC pursuits and CSCConv2d layers; this "
                    f"encoder ({type(encoder).__name__}) has none"
                )
        if lam is not None:
            if not layers:
                raise ConfigError(
                    f"lam applies to CSCConv2d layers; this encoder ({type(encoder).__name__}) "
                    "has none"
                )
            for layer in layers:
                layer.lam = lam
    except ValueError as error:
        raise ConfigError(str(error)) from None


def encoder_label(encoder: nn.Module) -> str:
    """A short name of an encoder for tables: ``"ml_fista (T=6)"`` for an
    :class:`~mlcsc.MLCSC`, the class with its CSC layers' λ and T for a network of
    :class:`~mlcsc.nn.CSCConv2d` layers and with its ML-CSC pursuits' T for a network holding
    :class:`~mlcsc.MLCSC` modules, else the class name.

    Examples:
        >>> from mlcsc.nn import CIFARResNet18
        >>> encoder_label(CIFARResNet18(3, csc=True, lam=0.2, n_iter=2)), encoder_label(CIFARResNet18(3))
        ('CIFARResNet18 (CSC λ=0.2, T=2)', 'CIFARResNet18')
        >>> encoder_label(CIFARResNet18(3, mlcsc_stages=[3, 4], n_iter=1))
        'CIFARResNet18 (ML-CSC ml_fista, T=1)'
    """  # noqa: E501
    if isinstance(encoder, MLCSC):
        return f"{encoder.pursuit} (T={encoder.n_iter})"
    layers = [module for module in encoder.modules() if isinstance(module, CSCConv2d)]
    name = type(encoder).__name__
    if layers:
        return f"{name} (CSC λ={layers[0].lam:g}, T={layers[0].n_iter})"
    pursuits = [module for module in encoder.modules() if isinstance(module, MLCSC)]
    if pursuits:
        return f"{name} (ML-CSC {pursuits[0].pursuit}, T={pursuits[0].n_iter})"
    return name


def load_classifier(
    ckpt: str, n_iter: int | None = None, lam: float | None = None
) -> ClassificationModule:
    """Rebuild a trained classifier from its checkpoint (safely loaded), optionally re-unrolled
    ``n_iter`` times, in evaluation mode.

    The checkpoint's ``hyper_parameters`` (the arguments of
    :class:`~mlcsc.training.ClassificationModule`, recorded by training) rebuild the network,
    and its ``state_dict`` gives the weights. With ``n_iter`` the pursuit of an
    :class:`~mlcsc.MLCSC` encoder is unrolled that many times instead of the trained number,
    with the same learned dictionaries, thresholds and steps.

    Args:
        ckpt: path of a checkpoint of ``task=classification`` (``checkpoints/*.ckpt`` of a run).
        n_iter: pursuit iterations to use (``None``: as trained; see :func:`set_unrolling`).
        lam: ℓ1 weight of the encoder's CSC layers (``None``: as trained).

    Returns:
        The rebuilt :class:`~mlcsc.training.ClassificationModule`, in evaluation mode, on the CPU;
            ``module(x)`` maps ``(N, C, H, W)`` images to ``(N, num_classes)`` logits.

    Raises:
        CheckpointError: missing, unreadable, not a classification checkpoint, or weights that do
            not fit the model it records.
        ConfigError: an ``n_iter`` or ``lam`` the encoder refuses.

    Examples:
        A small untrained classifier saved as training saves it, then loaded back with more
        pursuit iterations:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from mlcsc.training import AtomicCheckpointIO
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
        >>> trained = ClassificationModule(model, in_channels=1, num_classes=3,
        ...                                input_size=(16, 16), optimizer=adam)
        >>> checkpoint = {"state_dict": trained.state_dict(),
        ...               "hyper_parameters": dict(trained.hparams)}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "best.ckpt"
        ...     AtomicCheckpointIO().save_checkpoint(checkpoint, path)
        ...     module = load_classifier(str(path), n_iter=5)
        >>> module.training, module.encoder.n_iter, module.hparams["num_classes"]
        (False, 5, 3)
        >>> x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> module(x).shape
        torch.Size([2, 3])
        >>> trained.encoder.n_iter = 5  # the same weights: the same logits
        >>> torch.allclose(module(x), trained.eval()(x))
        True
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
    set_unrolling(module.encoder, n_iter, lam)
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

    What ``python evaluate.py ckpt=… [split=…] [n_iter=…] [data=…]`` runs: the classifier is
    rebuilt by :func:`load_classifier`, the data module of ``data`` (default: the one recorded
    in the checkpoint) must match its channels, image size and classes, and a trainer built
    from ``trainer`` (no logger, no checkpoints) tests it on the split. The summary is printed
    (:func:`~mlcsc.training.format_summary`) and returned.

    Args:
        cfg: the configuration, a ``DictConfig`` composed from ``configs/evaluate.yaml`` or a
            plain mapping with its keys: ``ckpt`` (path), ``split`` (``test``, ``val`` or
            ``train``), optional ``n_iter`` (unroll the pursuit a different number of times
            than in training), optional ``data`` (another data set; default the one the
            checkpoint was trained on), ``trainer``, ``mode`` (``accuracy``, or
            ``robustness``: see :func:`mlcsc.training.robustness.run_robustness`).

    Returns:
        For ``mode=accuracy``, the summary: ``split``, ``accuracy`` (a fraction in ``[0, 1]``),
            ``loss``, ``reconstruction_error``, ``sparsity`` (per layer: ``% zeros`` and mean
            non-zeros of the codes), ``pursuit``, ``n_iter``, ``wall_time_s``, ``checkpoint`` and
            ``log_dir`` (``None``). For ``mode=robustness``, what
            :func:`~mlcsc.training.robustness.run_robustness` returns.

    Raises:
        ConfigError: an unknown ``mode`` or ``split``, no ``ckpt``, no data set to evaluate on,
            a data set that does not fit the checkpoint's model, or an ``n_iter`` the encoder
            refuses.
        CheckpointError: as :func:`load_classifier`.

    Examples:
        The configuration of ``evaluate.py``, composed as Hydra composes it; a missing
        checkpoint or an unknown split fails at once, before any data is read:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import hydra
        >>> import mlcsc
        >>> configs = Path(mlcsc.__file__).resolve().parents[1] / "configs"  # the repository's
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     with hydra.initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        ...         cfg = hydra.compose("evaluate", [f"ckpt={folder}/best.ckpt", "n_iter=10"])
        >>> cfg.mode, cfg.split, cfg.n_iter, cfg.trainer.accelerator
        ('accuracy', 'test', 10, 'cpu')
        >>> evaluate(cfg)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.CheckpointError: checkpoint not found: .../best.ckpt
        >>> evaluate({**cfg, "split": "holdout"})
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: unknown split 'holdout'; expected one of train, val, test
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
    module = load_classifier(ckpt, config.get("n_iter"), config.get("lam"))
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
