"""Images of dictionaries for TensorBoard and PNG files: atoms and effective atoms."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["atom_grid", "save_png"]


def atom_grid(atoms: Tensor, max_atoms: int = 64, padding: int = 1) -> Tensor:
    """Tile atoms into one image, each atom rescaled to [0, 1] on its own.

    Args:
        atoms: ``(m, C, k, k)`` with C = 1 or 3 (other channel counts show channel 0).
        max_atoms: show at most this many atoms (the first ones).
        padding: pixels of white between atoms.

    Returns:
        ``(3, H, W)`` float image in [0, 1].
    """
    atoms = atoms.detach().float().cpu()[:max_atoms]
    if atoms.shape[1] not in (1, 3):
        atoms = atoms[:, :1]
    low = atoms.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = atoms.flatten(1).max(1).values.view(-1, 1, 1, 1)
    atoms = (atoms - low) / (high - low).clamp_min(1e-12)
    if atoms.shape[1] == 1:
        atoms = atoms.expand(-1, 3, -1, -1)
    count, _, height, width = atoms.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.ones(3, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[:, top : top + height, left : left + width] = atoms[index]
    return grid


def save_png(image: Tensor, path: str | Path, scale: int = 4) -> Path:
    """Write a ``(3, H, W)`` image in [0, 1] as a PNG, enlarged ``scale`` times (nearest)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return path
