"""Checkpoint files that are either complete or absent, and safe to load.

A run killed while a checkpoint is written must not leave a truncated file behind, or
``ckpt_path=last`` would resume from garbage. :class:`AtomicCheckpointIO` writes to a temporary
file in the same folder, flushes it to disk and renames it over the target (an atomic operation
on POSIX file systems). :func:`load_checkpoint` reads with ``weights_only=True`` so that a
checkpoint cannot execute arbitrary code when it is unpickled.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from mlcsc.errors import CheckpointError

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_checkpoint"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint plugin that never leaves a half-written checkpoint.

    :func:`~mlcsc.training.train` passes it to the trainer (``plugins=[AtomicCheckpointIO()]``),
    so that every checkpoint the trainer writes (``best``, ``last.ckpt``) is complete or absent:

    * ``save_checkpoint(checkpoint, path)`` writes the ``dict`` with :func:`torch.save` to a
      temporary file next to ``path``, flushes and ``fsync``-s it, then renames it over ``path``
      (:func:`os.replace`, atomic on POSIX file systems); missing parent folders are created and
      the temporary file is removed if writing fails. ``storage_options`` are not supported
      (``TypeError`` when given).
    * ``load_checkpoint(path, map_location=None)`` reads through :func:`load_checkpoint`
      (``weights_only=True``, onto the CPU unless ``map_location`` says otherwise) and returns
      the ``dict``; the ``weights_only`` argument Lightning passes is ignored, the load is always
      the safe one. The full trainer state (optimizer, loops, callbacks) holds only tensors,
      numbers, strings and containers, so resuming works through the safe loader.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> plugin = AtomicCheckpointIO()
        >>> checkpoint = {"state_dict": {"weight": torch.ones(2, 3)}, "epoch": 4}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "checkpoints" / "last.ckpt"
        ...     plugin.save_checkpoint(checkpoint, path)
        ...     files = sorted(p.name for p in path.parent.iterdir())  # no temporary file left
        ...     loaded = plugin.load_checkpoint(path)
        >>> files, loaded["epoch"], loaded["state_dict"]["weight"].shape
        (['last.ckpt'], 4, torch.Size([2, 3]))
        >>> plugin.save_checkpoint(checkpoint, path, storage_options={})
        Traceback (most recent call last):
        ...
        TypeError: AtomicCheckpointIO does not take storage_options
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        # resuming needs the full trainer state (optimizer, loops, callbacks); it holds only
        # tensors, numbers, strings and containers, so the safe loader reads it
        location = map_location if map_location is not None else "cpu"
        return load_checkpoint(path, map_location=location)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``).

    The safe loader of :func:`torch.load` rebuilds only tensors, numbers, strings and
    containers: a file that would run code when unpickled is refused instead of executed.

    Args:
        path: the checkpoint file (a Lightning ``.ckpt`` or anything saved by
            :func:`torch.save` as a ``dict`` with a ``"state_dict"`` entry).
        map_location: where the tensors are put, as for :func:`torch.load` (default: the CPU).

    Returns:
        The checkpoint ``dict``; its ``"state_dict"`` maps parameter names to tensors, and a
            Lightning checkpoint also holds ``"hyper_parameters"``, ``"epoch"``, ``"global_step"``,
            the optimizer and loop states.

    Raises:
        CheckpointError: one line naming the path when the file is missing, unreadable or not a
            checkpoint.

    Examples:
        A tiny network's checkpoint, written as the trainer writes it and read back:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "best.ckpt"
        ...     AtomicCheckpointIO().save_checkpoint({"state_dict": net.state_dict()}, path)
        ...     checkpoint = load_checkpoint(path)
        >>> sorted(checkpoint["state_dict"])
        ['bias', 'weight']
        >>> torch.equal(checkpoint["state_dict"]["weight"], net.weight)
        True

        A missing file (or a corrupted one, or one that is not a checkpoint) is one line:

        >>> load_checkpoint(Path(folder) / "best.ckpt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.CheckpointError: checkpoint not found: .../best.ckpt
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # corrupted, truncated, or holds unsafe objects
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"not an mlcsc checkpoint (no state_dict): {path}")
    return checkpoint
