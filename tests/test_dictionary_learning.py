"""Unsupervised ML-CSC dictionary learning (task=dictionary_learning), end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mlcsc.errors import ConfigError
from mlcsc.training import train
from mlcsc.training.dictionary_learning import DictionaryLearningModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "data.batch_size=16",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.n_iter=3",
    "task.probe_iterations=5",
    "task.probe_max_samples=64",
]


def compose_config(overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_mnist_experiment_runs_and_writes_the_lecture_figures(tmp_path):
    cfg = compose_config(
        [
            "experiment=mnist_mlcsc_dictionary",
            f"run_dir={tmp_path}",
            f"output_root={tmp_path / 'outputs'}",
            *TINY,
        ]
    )
    summary = train(cfg)
    assert 0.0 <= summary["accuracy"] <= 1.0  # the linear probe on the frozen codes
    assert summary["objective"] > 0
    # sparse filters as configured: D₂ keeps 5 %, D₃ keeps 1 % of every filter's weights
    d1, d2, d3 = summary["dictionary_sparsity"]
    assert d1 < 5.0 and d2 == pytest.approx(95.0, abs=0.5) and d3 == pytest.approx(99.0, abs=0.2)
    figures = tmp_path / "figures"
    names = sorted(p.name for p in figures.glob("*.png"))
    assert names == [
        "atoms_layer1.png",
        "effective_atoms_layer1.png",
        "effective_atoms_layer2.png",
        "effective_atoms_layer3.png",
        "pursuit.png",
    ]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_effective_atoms_of_the_mnist_specification_have_the_lecture_sizes(tmp_path):
    cfg = compose_config(["experiment=mnist_mlcsc_dictionary", "run_dir=x"])
    module = DictionaryLearningModule(
        cfg.model, 1, (28, 28), dict(cfg.optimizer), lambdas=list(cfg.task.lambdas)
    )
    sizes = [tuple(module.encoder.effective_atoms(i).shape[-2:]) for i in (1, 2, 3)]
    assert sizes == [(7, 7), (15, 15), (27, 27)]  # 27 × 27: the whole 28 × 28 digit


def test_cifar_experiment_composes_with_the_lecture_specification():
    cfg = compose_config(["experiment=cifar10_mlcsc_dictionary", "run_dir=x"])
    module = DictionaryLearningModule(
        cfg.model,
        3,
        (32, 32),
        dict(cfg.optimizer),
        lambdas=list(cfg.task.lambdas),
        filter_density=list(cfg.task.filter_density),
    )
    assert module.encoder.layer_sizes((32, 32))[-1] == (1, 1)
    sizes = [tuple(module.encoder.effective_atoms(i).shape[-3:]) for i in (1, 2, 3)]
    assert sizes == [(3, 5, 5), (3, 13, 13), (3, 29, 29)]


def test_training_steps_lower_the_objective_on_a_fixed_batch():
    torch.manual_seed(0)
    x = torch.randn(32, 1, 13, 13)
    model = {"layers": [[6, 5, 1, 0], [8, 3, 1, 0]], "pursuit": "ml_fista", "n_iter": 10}
    module = DictionaryLearningModule(
        model, 1, (13, 13), {"name": "adam", "lr": 0.01}, lambdas=[0.05, 0.05]
    )
    optimizer = torch.optim.Adam(module.encoder.dictionaries.parameters(), lr=0.01)
    with torch.no_grad():
        before = module.objective(x)[0]
    for _ in range(20):
        loss = module.objective(x)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        module._project_()
    with torch.no_grad():
        after = module.objective(x)[0]
    assert after < 0.95 * before
    norms = [d.atom_norms() for d in module.encoder.dictionaries]
    assert all(torch.allclose(n, torch.ones_like(n), atol=1e-5) for n in norms)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.lambdas=-0.1", "lambdas must be >= 0"),
        ("task.filter_density=[null,1.5,0.1]", "filter_density must be in"),
        ("task.lambdas=[0.1,0.1]", "one value per layer"),
        ("task.name=clustering", "expected one of classification, dictionary_learning"),
    ],
)
def test_invalid_dictionary_learning_config_fails_before_training(tmp_path, override, message):
    cfg = compose_config(["experiment=mnist_mlcsc_dictionary", f"run_dir={tmp_path}", override])
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()
