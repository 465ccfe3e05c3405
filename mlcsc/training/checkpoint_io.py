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
    """Lightning checkpoint plugin that never leaves a half-written checkpoint."""

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

    Raises:
        CheckpointError: one line naming the path when the file is missing, unreadable or not a
            checkpoint.
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
