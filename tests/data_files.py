"""Tiny data files in torchvision's on-disk formats, written by the tests (nothing downloaded)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

#: the class names CIFAR-10's batches.meta holds
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


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
        written[prefix] = (images[:, None], labels)  # (N, 1, 28, 28), (N,)
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
        (folder / f"data_batch_{batch}").write_bytes(pickle.dumps(entry))
        train_rows.append(rows)
        train_labels.extend(labels)
    test_rows = rng.integers(0, 256, size=(num_test, 3072), dtype=np.uint8)  # (M, 3072)
    test_labels = [int(i % 10) for i in range(num_test)]
    entry = {"batch_label": "testing batch", "data": test_rows, "labels": test_labels}
    (folder / "test_batch").write_bytes(pickle.dumps(entry))
    meta = {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {
        "train": (np.concatenate(train_rows).reshape(-1, 3, 32, 32), np.array(train_labels)),
        "test": (test_rows.reshape(-1, 3, 32, 32), np.array(test_labels)),
    }
