"""Shared machinery of the data modules: a tensor-backed image dataset, seeded stratified splits,
argument checks and a :class:`~pytorch_lightning.LightningDataModule` base class that writes the
dataloader logic once.

Every data module loads its whole data set into memory as float32 tensors once (normalised once)
and serves samples from them, which is far faster on a few CPU cores than decoding images per
sample.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mlcsc.checks import check_flag, check_int, check_number
from mlcsc.errors import ConfigError

__all__ = [
    "ImageDataModule",
    "ImageTensorDataset",
    "stratified_permutation",
]

Transform = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# Argument checks: the general ones come from mlcsc.checks (ValueError naming the argument, what
# was expected and what came); the data modules' constructors turn them into ConfigError.
# --------------------------------------------------------------------------------------------


@contextmanager
def config_errors() -> Iterator[None]:
    """Re-raise a :class:`ValueError` of the enclosed argument checks as :class:`ConfigError`
    with the same message (a ConfigError passes through unchanged)."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_size(name: str, value: Any) -> int | float:
    """Check a split size: a count (integer >= 0) or a fraction strictly between 0 and 1.

    Raises:
        ValueError: ``"<name> must be a count (an integer >= 0) or a fraction in (0, 1), got …"``.
    """
    try:
        return check_int(name, value, minimum=0)
    except ValueError:
        pass
    if isinstance(value, numbers.Real):  # check_number would also take a 1-element tensor
        try:
            return check_number(name, value, 0.0, 1.0, low_open=True, high_open=True)
        except ValueError:
            pass
    raise ValueError(
        f"{name} must be a count (an integer >= 0) or a fraction in (0, 1), got {value!r}"
    )


def check_root(name: str, value: Any) -> str:
    """Return a folder argument as a str.

    Raises:
        ValueError: unless ``value`` is a str or a path.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a folder path (a string), got {value!r}")
    return os.fspath(value)


def resolve_size(value: int | float, total: int) -> int:
    """Number of samples a split size means out of ``total``: a count as is, a fraction rounded."""
    if isinstance(value, float):
        return int(round(value * total))
    return value


def split_counts(sizes: dict[str, int | float], total: int, what: str) -> list[int]:
    """Numbers of samples the held-out split sizes mean out of ``total`` samples.

    Args:
        sizes: Checked split sizes (see :func:`check_size`) by argument name, e.g.
            ``{"val_size": 500, "test_size": 0.1}``.
        total: Number of samples the splits are taken from.
        what: Those samples in words, for the error message (e.g. ``"MNIST training images"``).

    Returns:
        One count per size, in the order of ``sizes``.

    Raises:
        ConfigError: If the held-out splits leave no training samples.
    """
    counts = [resolve_size(value, total) for value in sizes.values()]
    if sum(counts) >= total:
        given = " and ".join(
            f"{name}={value!r} ({count} images)"
            for (name, value), count in zip(sizes.items(), counts, strict=True)
        )
        raise ConfigError(
            f"{' + '.join(sizes)} must leave training images out of the {total} {what}, got {given}"
        )
    return counts


# --------------------------------------------------------------------------------------------
# Dataset and split
# --------------------------------------------------------------------------------------------


class ImageTensorDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images and labels held in memory as tensors, with an optional per-sample transform.

    Item ``i`` is ``(transform(images[i]), labels[i])``: no decoding or copying per sample, so
    the data modules serve batches far faster on a few CPU cores than from image files.

    Args:
        images: Images, float32 of shape (N, C, H, W).
        labels: Class labels, int64 of shape (N,).
        transform: Applied to each (C, H, W) image when it is fetched (e.g. augmentation), or None.

    Raises:
        ValueError: Unless ``images`` is 4-D and ``labels`` 1-D with the same N.

    Shape:
        - images: ``(N, C, H, W)``.
        - labels: ``(N,)``.
        - item: ``((C, H, W), ())``.

    Examples:
        >>> dataset = ImageTensorDataset(torch.zeros(4, 1, 2, 2), torch.arange(4),
        ...                              transform=lambda image: image + 1)
        >>> image, label = dataset[2]
        >>> len(dataset), image.shape, image.sum().item(), label.item()
        (4, torch.Size([1, 2, 2]), 4.0, 2)
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: Transform | None = None) -> None:
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                "images must be (N, C, H, W) and labels (N,) with the same N, got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        self.images = images  # (N, C, H, W)
        self.labels = labels  # (N,)
        self.transform = transform

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]  # (C, H, W)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def stratified_permutation(labels: Tensor, seed: int) -> Tensor:
    """A seeded permutation of ``range(N)`` whose every prefix is (nearly) class-balanced.

    Each sample gets the key ``(rank + u) / n_c``, where ``rank`` is its position in a random
    ordering of its class, ``n_c`` the size of its class and ``u`` uniform in [0, 1); sorting by the
    key interleaves the classes, so the first ``k`` indices hold about ``k * n_c / N`` samples of
    each class (exactly, when the classes are equally large and ``k`` a multiple of their number).
    Taking consecutive slices therefore gives stratified splits. The permutation depends only on
    ``labels`` and ``seed``, never on the global torch random state.

    Args:
        labels: Class labels, integer tensor of shape (N,).
        seed: Seed of the private random generator.

    Returns:
        Indices, int64 of shape (N,).

    Shape:
        - labels: ``(N,)``.
        - output: ``(N,)``.

    Examples:
        Three equal classes: every prefix of a multiple of 3 holds as many of each.

        >>> labels = torch.tensor([0, 1, 2] * 4)
        >>> order = stratified_permutation(labels, seed=0)
        >>> sorted(order.tolist()) == list(range(12))
        True
        >>> labels[order[:3]].sort().values.tolist(), labels[order[:6]].bincount().tolist()
        ([0, 1, 2], [2, 2, 2])
        >>> torch.equal(order, stratified_permutation(labels, seed=0))  # same seed, same order
        True
    """
    generator = torch.Generator().manual_seed(seed)
    keys = torch.empty(labels.shape[0], dtype=torch.float64)  # (N,)
    for label in torch.unique(labels).tolist():  # sorted, so the draws are reproducible
        members = (labels == label).nonzero().squeeze(1)  # (n_c,)
        count = members.shape[0]
        ranks = torch.randperm(count, generator=generator).to(torch.float64)  # (n_c,)
        jitter = torch.rand(count, generator=generator, dtype=torch.float64)  # (n_c,)
        keys[members] = (ranks + jitter) / count
    return torch.argsort(keys, stable=True)


# --------------------------------------------------------------------------------------------
# Data module base class
# --------------------------------------------------------------------------------------------


class ImageDataModule(pl.LightningDataModule):
    """Base class of the image-classification data modules.

    Subclasses set the class attributes and implement :meth:`_load_splits` (typically with
    :meth:`_split_off`); this class checks the common arguments, loads the splits once in
    :meth:`setup` and builds the dataloaders. Batches are ``(images, labels)`` with images
    float32 of shape (B, C, H, W) and labels int64 of shape (B,).

    Attributes:
        name: Name of the data set, the stem of its config ``configs/data/<name>.yaml``.
        in_channels: Number of image channels C.
        image_size: Image size (H, W).
        num_classes: Number of classes.
        classes: Class names, indexed by label.
        mean: Per-channel mean subtracted when ``normalize`` is true (of pixels scaled to [0, 1]).
        std: Per-channel standard deviation divided by when ``normalize`` is true.
        train_dataset: Training split (None before :meth:`setup`).
        val_dataset: Validation split (None before :meth:`setup`).
        test_dataset: Test split (None before :meth:`setup`).

    Args:
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0 (0 loads in the main process).
        seed: Seed of the split (and nothing else), >= 0.
        normalize: Whether to normalise pixels with ``mean`` and ``std``; otherwise they lie in
            [0, 1].

    Raises:
        ConfigError: For a bad argument value (the message names it).

    Shape:
        - batch images: ``(B, C, H, W)``, float32.
        - batch labels: ``(B,)``, int64.

    Examples:
        A toy subclass: ten ``2 × 2`` images, black (class 0) or white (class 1), two of them
        held out for validation and two for testing.

        >>> class ToyDataModule(ImageDataModule):
        ...     name = "toy"
        ...     in_channels = 1
        ...     image_size = (2, 2)
        ...     num_classes = 2
        ...     classes = ("black", "white")
        ...     mean = (0.5,)
        ...     std = (0.5,)
        ...
        ...     def _load_splits(self):
        ...         labels = torch.tensor([0, 1] * 5)  # (10,)
        ...         pixels = (255 * labels).to(torch.uint8).view(10, 1, 1, 1)
        ...         return self._split_off(pixels.expand(10, 1, 2, 2), labels, (2, 2))
        >>> data = ToyDataModule(batch_size=4, num_workers=0, seed=0, normalize=True)
        >>> data.setup()
        >>> len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)
        (6, 2, 2)
        >>> images, labels = next(iter(data.train_dataloader()))
        >>> images.shape, images.dtype, labels.dtype
        (torch.Size([4, 1, 2, 2]), torch.float32, torch.int64)
        >>> data.to_model_input(torch.tensor([0, 255]).view(1, 1, 1, 2))  # (x/255 − 0.5)/0.5
        tensor([[[[-1.,  1.]]]])
        >>> ToyDataModule(batch_size=0, num_workers=0, seed=0, normalize=True)
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: batch_size must be an integer >= 1, got 0
    """

    name: ClassVar[str] = ""
    in_channels: ClassVar[int]
    image_size: ClassVar[tuple[int, int]]
    num_classes: ClassVar[int] = 10
    classes: ClassVar[tuple[str, ...]]
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]

    def __init__(self, *, batch_size: int, num_workers: int, seed: int, normalize: bool) -> None:
        super().__init__()
        with config_errors():
            self.batch_size = check_int("batch_size", batch_size, minimum=1)
            self.num_workers = check_int("num_workers", num_workers, minimum=0)
            self.seed = check_int("seed", seed, minimum=0)
            self.normalize = check_flag("normalize", normalize)
        self.train_dataset: ImageTensorDataset | None = None
        self.val_dataset: ImageTensorDataset | None = None
        self.test_dataset: ImageTensorDataset | None = None

    # ---- to implement -----------------------------------------------------------------------

    def _load_splits(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        """Load the data and return the (train, val, test) datasets."""
        raise NotImplementedError

    # ---- pixels ------------------------------------------------------------------------------

    def _channel_stats(self) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)  # (C, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)  # (C, 1, 1)
        return mean, std

    def to_model_input(self, images: Tensor) -> Tensor:
        """Turn raw pixels in [0, 255] into float32 model inputs (scaled, maybe normalised).

        Args:
            images: Pixels of shape (N, C, H, W), any real dtype, values in [0, 255].

        Returns:
            float32 (N, C, H, W): in [0, 1], or normalised with ``mean``/``std``.
        """
        out = images.to(torch.float32).div_(255.0)  # (N, C, H, W), a new tensor
        if self.normalize:
            mean, std = self._channel_stats()
            out.sub_(mean).div_(std)
        return out

    def unnormalize(self, images: Tensor) -> Tensor:
        """Undo the normalisation: map model inputs back to pixels in [0, 1].

        Args:
            images: Model inputs of shape (..., C, H, W).

        Returns:
            Tensor of the same shape with pixels in [0, 1] (unchanged if ``normalize`` is false).
        """
        if not self.normalize:
            return images
        mean, std = self._channel_stats()
        return images * std.to(images) + mean.to(images)

    def black_value(self) -> Tensor:
        """Model-input value of a black pixel per channel, float32 (C,): padding for crops."""
        if not self.normalize:
            return torch.zeros(self.in_channels)
        mean, std = self._channel_stats()
        return (-mean / std).view(-1)

    def _subset(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        transform: Transform | None = None,
    ) -> ImageTensorDataset:
        """A split: the raw images (N, C, H, W) in [0, 255] and labels (N,) at ``indices`` (n,),
        converted once to float32 model inputs."""
        return ImageTensorDataset(
            self.to_model_input(images[indices]),  # (n, C, H, W)
            labels[indices].to(torch.int64),  # (n,)
            transform,
        )

    def _split_off(
        self,
        images: Tensor,
        labels: Tensor,
        counts: Sequence[int],
        transform: Transform | None = None,
    ) -> tuple[ImageTensorDataset, ...]:
        """Split the raw images (N, C, H, W) and labels (N,) along the seeded stratified
        permutation (:func:`stratified_permutation` with ``seed``): its first ``counts[0]``
        samples form the first held-out split, the next ``counts[1]`` the second, and so on;
        the rest is the training split, served with ``transform``.

        Returns:
            ``(train, held_out_0, held_out_1, ...)``.
        """
        order = stratified_permutation(labels, self.seed)  # (N,)
        *held_out, rest = order.split([*counts, order.shape[0] - sum(counts)])
        train = self._subset(images, labels, rest, transform)
        return (train, *(self._subset(images, labels, part) for part in held_out))

    # ---- LightningDataModule -----------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Load the data and build the splits (once; later calls do nothing).

        Args:
            stage: Lightning's stage ("fit", "validate", "test", "predict") or None; all splits
                are built whatever the stage.
        """
        if self.train_dataset is None:
            self.train_dataset, self.val_dataset, self.test_dataset = self._load_splits()

    def _split(self, split: str) -> ImageTensorDataset:
        self.setup()
        dataset = {"train": self.train_dataset, "val": self.val_dataset, "test": self.test_dataset}
        assert dataset[split] is not None
        return dataset[split]

    def train_dataloader(self) -> DataLoader:
        """Training batches, reshuffled every epoch (with the global torch random state)."""
        return self._loader(self._split("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        return self._loader(self._split("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in a fixed order."""
        return self._loader(self._split("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test batches, for ``Trainer.predict``."""
        return self.test_dataloader()

    def _loader(self, dataset: ImageTensorDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
