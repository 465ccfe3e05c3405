"""Images of dictionaries for TensorBoard and PNG files: atoms and effective atoms."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["atom_grid", "log_atom_images", "save_png", "save_dictionary_figures"]


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


def save_dictionary_figures(
    encoder, sample: Tensor, folder: str | Path, codes: list[Tensor] | None = None
) -> dict[str, Path]:
    """Write the lecture's figures of a learned ML-CSC model as PNG files.

    * ``atoms_layer1.png``: the atoms of ``D₁``;
    * ``effective_atoms_layer{i}.png``: the atoms of ``D₁⋯D_i`` ("atoms → molecules");
    * ``pursuit.png``: one input and the codes of every layer found by the pursuit (the
      largest activation over channels at each position), titled with % zeros and nnz.

    Args:
        encoder: an :class:`~mlcsc.MLCSC`.
        sample: one input ``(C, H, W)`` or ``(1, C, H, W)``.
        folder: where to write the files.
        codes: the codes ``[Γ₁, …, Γ_K]`` of ``sample`` to draw; default those the encoder's
            pursuit returns.

    Returns:
        name → path of every file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    paths = {
        "atoms_layer1": save_png(
            atom_grid(encoder.dictionaries[0].weight), folder / "atoms_layer1.png"
        )
    }
    for i in range(1, encoder.num_layers + 1):
        name = f"effective_atoms_layer{i}"
        paths[name] = save_png(atom_grid(encoder.effective_atoms(i)), folder / f"{name}.png", 2)
    sample = sample if sample.ndim == 4 else sample.unsqueeze(0)
    if codes is None:
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            codes = encoder(sample, return_all=True)
        encoder.train(was_training)
    figure, axes = plt.subplots(1, len(codes) + 1, figsize=(3.2 * (len(codes) + 1), 3.4))
    axes[0].imshow(sample[0].detach().float().mean(0).cpu(), cmap="gray")
    axes[0].set_title("input")
    for j, code in enumerate(codes, start=1):
        nonzero = int((code != 0).sum())
        zeros = 100.0 * (1.0 - nonzero / code.numel())
        if code.shape[-1] * code.shape[-2] == 1:  # one position: show the channel activations
            axes[j].stem(code[0].detach().flatten().float().cpu().numpy(), markerfmt=" ")
        else:  # the largest activation over channels at every position
            axes[j].imshow(code[0].detach().abs().amax(0).float().cpu(), cmap="viridis")
        axes[j].set_title(f"Γ{j}: {zeros:.2f} % zeros, {nonzero} nnz", fontsize=9)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    paths["pursuit"] = folder / "pursuit.png"
    figure.savefig(paths["pursuit"], dpi=110)
    plt.close(figure)
    return paths


def log_atom_images(module, every_n_epochs: int) -> None:
    """Log the first-layer atoms and the effective atoms of every layer of ``module.encoder`` to
    TensorBoard, every ``every_n_epochs`` epochs (0: never; nothing without a TensorBoard logger).
    """
    if not every_n_epochs or module.trainer.sanity_checking:
        return
    if module.current_epoch % every_n_epochs:
        return
    experiment = getattr(module.logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_image"):
        return
    encoder, epoch = module.encoder, module.current_epoch
    experiment.add_image("atoms/layer1", atom_grid(encoder.dictionaries[0].weight), epoch)
    for i in range(1, encoder.num_layers + 1):
        experiment.add_image(
            f"effective_atoms/layer{i}", atom_grid(encoder.effective_atoms(i)), epoch
        )
