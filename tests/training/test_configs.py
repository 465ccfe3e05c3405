"""The configuration: every group composes, builds its objects by ``_target_``, and a user's
own class can take the place of ours."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from composing import CONFIGS, TINY, compose_config
from torch import nn

import mlcsc
from mlcsc.errors import ConfigError
from mlcsc.pursuit import PURSUITS
from mlcsc.training import build_classifier, instantiate, train
from mlcsc.training.optim import lightning_optimizers

MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml") if not p.stem.startswith("_"))
# the models that are ML-CSC pursuits (configs/model/_base.yaml); the others are plain networks
PURSUIT_MODELS = [m for m in MODELS if "_base" in (CONFIGS / "model" / f"{m}.yaml").read_text()]
DATA = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*_sulam2019.yaml"))
GROUPS = ("optimizer", "scheduler", "logger", "callbacks", "trainer", "task")


@functools.cache
def group_config(group: str, option: str):
    """One option of a config group, composed once for the whole module."""
    overrides = ["paths.run_dir=unused", "run_name=unused", f"{group}={option}"]
    return compose_config("train", overrides)[group]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATA)
def test_every_model_and_data_config_composes_and_builds(model, data):
    datamodule = instantiate(group_config("data", data), "data")
    assert type(datamodule).name == data
    model_config = group_config("model", model)
    net = build_classifier(
        model_config, datamodule.in_channels, datamodule.num_classes, datamodule.image_size
    )
    if model in PURSUIT_MODELS:
        assert net.encoder.pursuit == model_config.pursuit
    else:
        assert type(net.encoder).__name__ == model_config._target_.rsplit(".", 1)[-1]
    images = torch.zeros(2, datamodule.in_channels, *datamodule.image_size)
    assert net(images).shape == (2, 10)


@pytest.mark.parametrize(
    "group", [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))]
)
def test_every_group_option_composes_and_its_targets_import(compose, group):
    overrides = [group]
    if group.startswith("callbacks="):  # callbacks are added to the default ones
        overrides = [f"callbacks=[default,{group.split('=')[1]}]"]
    if group == "scheduler=onecycle":
        overrides.append("scheduler.steps_per_epoch=10")
    cfg = compose("train", overrides)
    name = group.split("=")[0]
    node = cfg[name] if name in cfg else None
    nodes = [node] if node is not None and "_target_" in node else list((node or {}).values())
    for each in nodes:
        if each is not None:
            module, _, attribute = each._target_.rpartition(".")
            assert hasattr(__import__(module, fromlist=[attribute]), attribute), each._target_


def test_the_model_config_defaults_are_the_encoders(compose):
    """One place holds each default: what the model config leaves at its base value is what
    ``mlcsc.MLCSC`` takes when the argument is left out."""
    base = compose("train").model
    signature = inspect.signature(mlcsc.MLCSC).parameters
    for key in ("threshold_init", "step_init", "threshold_mode", "parametrization", "init"):
        assert base[key] == signature[key].default, key
    assert base.step_rule == signature["step_rule"].default


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("model", PURSUIT_MODELS)
def test_experiments_compose_with_every_model(compose, experiment, model):
    overrides = [f"experiment={experiment}", f"model={model}"]
    cfg = compose("train", overrides)
    assert cfg.model.n_iter == (0 if model == "cnn" else 6)
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.parametrization == "reference"  # the paper's networks
    size = (32, 32) if "cifar" in experiment else (28, 28)
    channels = 3 if "cifar" in experiment else 1
    features = cfg.task.features
    if "reference" not in PURSUITS[cfg.model.pursuit].parametrizations:
        # a pursuit the paper does not have: a clear error, and the normalised one runs
        with pytest.raises(ConfigError, match="does not support parametrization 'reference'"):
            build_classifier(cfg.model, channels, 10, size, features)
        cfg = compose("train", [*overrides, "model.parametrization=normalized"])
    net = build_classifier(cfg.model, channels, 10, size, features)
    assert net(torch.zeros(1, channels, *size)).shape == (1, 10)


def test_reference_experiments_match_the_published_recipes(compose):
    mnist = compose("train", ["experiment=mnist_sulam2019"])
    assert [list(layer) for layer in mnist.model.layers] == [
        [32, 6, 2, 0],
        [64, 6, 2, 0],
        [512, 4, 1, 0],
    ]
    assert (mnist.optimizer.lr, mnist.optimizer.momentum) == (0.002, 0.9)
    assert mnist.scheduler._target_.endswith("StepLR")
    assert (mnist.scheduler.step_size, mnist.scheduler.gamma) == (30, 0.2)
    assert mnist.trainer.max_epochs == 100
    assert mnist.data._target_ == "mlcsc.data.MNISTDataModule"
    cifar = compose("train", ["experiment=cifar10_sulam2019"])
    assert [list(layer) for layer in cifar.model.layers] == [
        [32, 4, 2, 1],
        [64, 4, 2, 1],
        [128, 4, 2, 1],
    ]
    assert cifar.optimizer.lr == 0.005 and cifar.scheduler.step_size == 50
    assert cifar.trainer.max_epochs == 150 and cifar.data.augment
    assert [list(f) for f in cifar.task.features] == [[256, 3, 0], [512, 3, 1], [512, 3, 1]]


def test_the_task_picks_the_checkpoint_metric(compose):
    assert compose("train").callbacks.model_checkpoint.monitor == "val/acc"
    unsupervised = compose("train", ["task=dictionary_learning"]).callbacks.model_checkpoint
    assert (unsupervised.monitor, unsupervised.mode) == ("val/objective", "min")
    assert compose("train", ["logger=none"]).callbacks.lr_monitor is None


@pytest.mark.parametrize(
    ("scheduler", "interval"), [("cosine", "epoch"), ("step", "epoch"), ("onecycle", "step")]
)
def test_optimizer_and_schedule_come_from_their_groups(compose, scheduler, interval):
    overrides = ["optimizer=sgd", f"scheduler={scheduler}", "scheduler.steps_per_epoch=3"]
    cfg = compose("train", overrides[: 2 + (scheduler == "onecycle")])
    weight = nn.Parameter(torch.zeros(3))
    config = instantiate({"_target_": "builtins.dict", **cfg}, "config")  # plain containers
    built = lightning_optimizers([weight], config["optimizer"], config["scheduler"])
    assert isinstance(built["optimizer"], torch.optim.SGD)
    assert built["optimizer"].defaults["momentum"] == 0.9
    assert built["lr_scheduler"]["interval"] == interval
    assert lightning_optimizers([weight], config["optimizer"]).__class__ is torch.optim.SGD


class TinyEncoder(nn.Module):
    """A user's encoder: any module that takes ``in_channels`` and returns a feature map."""

    def __init__(self, in_channels: int, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 5, stride=3)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_a_users_encoder_class_trains_through_its_target(train_config, tmp_path):
    # what a user's configs/model/tiny.yaml holds: the class and its arguments
    cfg = train_config([*TINY[:6], "logger=csv", "trainer.max_epochs=1"])
    cfg.model = {"_target_": f"{__name__}.TinyEncoder", "width": 6}
    summary = train(cfg)
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["pursuit"] == "TinyEncoder"
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()  # logger=csv
    cfg.model = {"_target_": f"{__name__}.TinyEncoder", "depth": 6}
    with pytest.raises(ConfigError, match="TinyEncoder.*unexpected keyword argument 'depth'"):
        train(cfg)
