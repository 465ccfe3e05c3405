"""A data-parallel run on two CPU processes reports the whole data set, not one shard."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from composing import ROOT, TINY, compose_config

from mlcsc.training import evaluate

pytestmark = pytest.mark.slow


def _logged(path, name: str) -> float:
    with open(path, newline="") as handle:
        values = [row[name] for row in csv.DictReader(handle) if row.get(name)]
    assert len(values) == 1, f"{name} logged {len(values)} times"
    return float(values[0])


def test_two_process_test_accuracy_equals_the_single_process_evaluation(tmp_path):
    # 500 test digits, 250 per process: every digit is evaluated exactly once
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "trainer=ddp_cpu",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.limit_test_batches=null",
        "logger=csv",
        f"paths.run_dir={tmp_path / 'run'}",
        "run_name=ddp",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    distributed = _logged(tmp_path / "run" / "csv" / "metrics.csv", "test/acc")
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    overrides = [f"ckpt={best}", "trainer.enable_progress_bar=false"]
    single = evaluate(compose_config("evaluate", overrides))["accuracy"]
    assert distributed == pytest.approx(single, abs=1e-6)
    # the summary rank 0 prints is the reduced one as well
    assert f"test accuracy : {100 * single:.2f} %" in done.stdout
