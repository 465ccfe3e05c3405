"""Training, evaluation, configuration and checkpoints, end to end on tiny real data."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mlcsc.errors import CheckpointError, ConfigError
from mlcsc.training import AtomicCheckpointIO, evaluate, load_checkpoint, train
from mlcsc.training.checkpoint_io import atomic_torch_save

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml") if not p.stem.startswith("_"))
DATA = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*_sulam2019.yaml"))

# a tiny run: small batches, two batches per epoch, a small network
TINY = [
    "data.batch_size=16",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.layers=[[8,6,2,0],[16,6,2,0],[32,4,1,0]]",
    "model.n_iter=2",
    "image_every_n_epochs=1",
]


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def train_config(tmp_path: Path, overrides: list[str]):
    return compose_config(
        "train",
        [f"run_dir={tmp_path / 'run'}", f"output_root={tmp_path / 'outputs'}", *overrides],
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATA)
def test_every_model_and_data_config_composes_and_builds(model, data):
    from mlcsc.data import make_datamodule
    from mlcsc.training import build_classifier

    cfg = compose_config("train", [f"model={model}", f"data={data}", "run_dir=unused"])
    options = dict(cfg.data)
    datamodule = make_datamodule(options.pop("name"), **options)
    net = build_classifier(
        cfg.model, datamodule.in_channels, datamodule.num_classes, datamodule.image_size
    )
    assert net.encoder.pursuit == cfg.model.pursuit
    images = torch.zeros(2, datamodule.in_channels, *datamodule.image_size)
    assert net(images).shape == (2, 10)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("model", MODELS)
def test_experiments_compose_with_every_model(experiment, model):
    from mlcsc.pursuit import PURSUITS
    from mlcsc.training import build_classifier

    overrides = [f"experiment={experiment}", f"model={model}", "run_dir=x"]
    cfg = compose_config("train", overrides)
    assert cfg.model.n_iter == (0 if model == "cnn" else 6)
    assert cfg.optimizer.name == "sgd"
    assert cfg.model.parametrization == "reference"  # the paper's networks
    size = (32, 32) if "cifar" in experiment else (28, 28)
    channels = 3 if "cifar" in experiment else 1
    if "reference" not in PURSUITS[cfg.model.pursuit].parametrizations:
        # a pursuit the paper does not have: a clear error, and the normalised one runs
        with pytest.raises(ConfigError, match="does not support parametrization 'reference'"):
            build_classifier(cfg.model, channels, 10, size)
        cfg = compose_config("train", [*overrides, "model.parametrization=normalized"])
    net = build_classifier(cfg.model, channels, 10, size)
    assert net(torch.zeros(1, channels, *size)).shape == (1, 10)


def test_reference_experiments_match_the_published_recipes():
    mnist = compose_config("train", ["experiment=mnist_sulam2019", "run_dir=x"])
    assert [list(layer) for layer in mnist.model.layers] == [
        [32, 6, 2, 0],
        [64, 6, 2, 0],
        [512, 4, 1, 0],
    ]
    assert (mnist.optimizer.lr, mnist.optimizer.momentum) == (0.002, 0.9)
    assert (mnist.scheduler.step_size, mnist.scheduler.gamma) == (30, 0.2)
    assert mnist.trainer.max_epochs == 100 and mnist.data.name == "mnist"
    cifar = compose_config("train", ["experiment=cifar10_sulam2019", "run_dir=x"])
    assert [list(layer) for layer in cifar.model.layers] == [
        [32, 4, 2, 1],
        [64, 4, 2, 1],
        [128, 4, 2, 1],
    ]
    assert cifar.optimizer.lr == 0.005 and cifar.scheduler.step_size == 50
    assert cifar.trainer.max_epochs == 150 and cifar.data.augment


def test_train_fast_dev_run_then_evaluate_the_checkpoint(tmp_path):
    summary = train(train_config(tmp_path, [*TINY, "trainer.max_epochs=1"]))
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


def test_resume_from_last_continues_the_interrupted_run(tmp_path):
    first = train_config(tmp_path, [*TINY, "trainer.max_epochs=1", "logger=none"])
    train(first)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == 2  # one epoch of two batches
    # resume into the same run folder from a new Hydra run directory
    resumed = compose_config(
        "train",
        [
            f"run_dir={tmp_path / 'elsewhere'}",
            f"output_root={tmp_path.parent}",
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


def test_run_killed_mid_epoch_keeps_the_last_complete_checkpoint(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        *TINY,
        "trainer.limit_train_batches=40",
        "trainer.max_epochs=50",
        "logger=none",
        f"output_root={tmp_path}",
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
            f"run_dir={tmp_path / 'unused'}",
            f"output_root={tmp_path}",
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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.pursuit=magic", "expected one of .*ml_fista"),
        ("model.n_iter=-1", "n_iter"),
        ("model.layers=[[8,6,0,0]]", "stride must be >= 1"),
        ("model.threshold_init=-0.5", "threshold_init must be >= 0"),
        ("data.name=imagenet", "mnist5k"),
        ("optimizer.name=lbfgs", "expected one of sgd, adam, adamw"),
        ("model.layers=[[8,29,1,0]]", "too small"),
    ],
)
def test_invalid_config_fails_before_training_with_the_valid_choices(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(train_config(tmp_path, [*TINY, override]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate_rejects_missing_checkpoint_and_unknown_split(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        evaluate(compose_config("evaluate", [f"ckpt={tmp_path / 'missing.ckpt'}"]))
    with pytest.raises(ConfigError, match="train, val, test"):
        evaluate(compose_config("evaluate", [f"ckpt={tmp_path}", "split=holdout"]))


def test_cli_trains_prints_the_summary_and_reports_errors_in_one_line(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "debug=fast",
        *TINY,
        f"output_root={tmp_path}",
        "logger=none",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy" in done.stdout and "wall time" in done.stdout

    bad = subprocess.run(
        [*command, "model.n_iter=-3"], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and "n_iter" in bad.stderr
    assert "Traceback" not in bad.stderr

    no_data = subprocess.run(
        [*command, "data=mnist", f"data.root={tmp_path / 'empty'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert no_data.returncode == 2 and "Traceback" not in no_data.stderr
    message = no_data.stderr.strip().splitlines()[-1]
    assert message.startswith("error: MNIST data not found in") and "data=mnist5k" in message

    missing = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), f"ckpt={tmp_path / 'gone.ckpt'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: checkpoint not found: {tmp_path / 'gone.ckpt'}"
