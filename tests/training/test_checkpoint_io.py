"""Checkpoints: atomic writes, safe loading, one-line errors."""

from __future__ import annotations

import pytest
import torch

from mlcsc.errors import CheckpointError
from mlcsc.training import AtomicCheckpointIO, load_checkpoint
from mlcsc.training.checkpoint_io import atomic_torch_save


def test_atomic_save_leaves_no_partial_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"state_dict": {"w": torch.ones(2)}}, target)

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, target)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target)["state_dict"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_missing_and_corrupted_checkpoints_get_one_line_errors(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    corrupted = tmp_path / "broken.ckpt"
    corrupted.write_bytes(b"\x80\x04 not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        load_checkpoint(corrupted)
    assert str(corrupted) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_with_arbitrary_pickle_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path)
