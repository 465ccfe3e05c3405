"""Training and evaluation end to end on tiny real data: checkpoints, resuming, the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from composing import ROOT, TINY, compose_config

from mlcsc.errors import CheckpointError, ConfigError
from mlcsc.training import evaluate, load_checkpoint, run_cli, train


def test_train_then_evaluate_the_checkpoint(tmp_path, train_config):
    summary = train(train_config([*TINY, "trainer.max_epochs=1"]))
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert len(summary["sparsity"]) == 3
    assert all(0.0 <= layer["zeros_pct"] <= 100.0 for layer in summary["sparsity"])
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.is_file() and checkpoint.parent == tmp_path / "run" / "checkpoints"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert any((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))

    result = evaluate(
        compose_config("evaluate", [f"ckpt={checkpoint}", "split=val", "n_iter=5", *TINY[2:5]])
    )
    assert result["split"] == "val" and result["n_iter"] == 5
    assert 0.0 <= result["accuracy"] <= 1.0


def test_resume_from_last_continues_the_interrupted_run(tmp_path, train_config):
    first = train_config([*TINY, "trainer.max_epochs=1", "logger=none"])
    train(first)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == 2  # one epoch of two batches
    # resume into the same run folder from a new Hydra run directory
    resumed = compose_config(
        "train",
        [
            f"paths.run_dir={tmp_path / 'elsewhere'}",
            f"paths.output_root={tmp_path.parent}",
            f"run_name={tmp_path.name}",
            "ckpt_path=last",
            *TINY,
            "trainer.max_epochs=2",
            "logger=none",
        ],
    )
    train(resumed)
    assert load_checkpoint(last)["global_step"] == 4  # the first epoch was not redone
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_run_killed_mid_epoch_keeps_the_last_complete_checkpoint(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        *TINY,
        "trainer.limit_train_batches=40",
        "trainer.max_epochs=50",
        "logger=none",
        f"paths.output_root={tmp_path}",
        "run_name=killed",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("killed/*/checkpoints/last.ckpt")):
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside a later epoch
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (last,) = tmp_path.glob("killed/*/checkpoints/last.ckpt")
    steps = load_checkpoint(last)["global_step"]  # a complete, loadable checkpoint
    assert steps % 40 == 0 and 1 <= steps // 40 < 50  # saved at an epoch's end
    done = steps // 40

    resumed = compose_config(
        "train",
        [
            f"paths.run_dir={tmp_path / 'unused'}",
            f"paths.output_root={tmp_path}",
            "run_name=killed",
            "ckpt_path=last",
            *TINY,
            "trainer.limit_train_batches=40",
            f"trainer.max_epochs={done + 1}",
            "logger=none",
        ],
    )
    train(resumed)
    assert load_checkpoint(last)["global_step"] == 40 * (done + 1)  # one more epoch, not more


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.pursuit=magic", "expected one of .*ml_fista"),
        ("model.n_iter=-1", "n_iter"),
        ("model.layers=[[8,6,0,0]]", "stride must be an integer >= 1"),
        ("model.threshold_init=-0.5", "threshold_init must be a finite number >= 0"),
        ("data._target_=mlcsc.data.ImageNetDataModule", "data .*ImageNetDataModule"),
        ("+data.colour=true", "unexpected keyword argument 'colour'"),
        ("+model.depth=3", "unexpected keyword argument 'depth'"),
        ("optimizer.lr=-1", "optimizer .*Invalid learning rate"),
        ("scheduler=onecycle", "steps_per_epoch"),
        ("model.layers=[[8,29,1,0]]", "too small"),
    ],
)
def test_invalid_config_fails_before_training_with_the_valid_choices(
    tmp_path, train_config, override, message
):
    with pytest.raises(ConfigError, match=message):
        train(train_config([*TINY, override]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate_rejects_missing_checkpoint_and_unknown_split(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        evaluate(compose_config("evaluate", [f"ckpt={tmp_path / 'missing.ckpt'}"]))
    with pytest.raises(ConfigError, match="train, val, test"):
        evaluate(compose_config("evaluate", [f"ckpt={tmp_path}", "split=holdout"]))


@pytest.mark.slow
def test_cli_trains_and_prints_the_summary(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "debug=fast",
        *TINY,
        f"paths.output_root={tmp_path}",
        "logger=none",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy" in done.stdout and "wall time" in done.stdout


def test_cli_wrapper_reports_data_and_checkpoint_errors_in_one_line(tmp_path, capsys):
    """What train.py and evaluate.py run: ``run_cli`` exits with 2 and one ``error:`` line."""
    bad = compose_config("train", [f"paths.run_dir={tmp_path}", "run_name=x", "model.n_iter=-3"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train, bad)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: model (mlcsc.MLCSC): n_iter must be an integer >= 0, got -3"
    )
    no_data = compose_config(
        "train",
        [f"paths.run_dir={tmp_path}", "run_name=x", *TINY, "data=mnist",
         f"data.root={tmp_path / 'empty'}", "logger=none"],
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train, no_data)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("error: MNIST data not found in") and "data=mnist5k" in message

    with pytest.raises(SystemExit) as exit_info:
        run_cli(evaluate, compose_config("evaluate", [f"ckpt={tmp_path / 'gone.ckpt'}"]))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: checkpoint not found: {tmp_path / 'gone.ckpt'}"
    )
