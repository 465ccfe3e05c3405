"""Robustness mode: Gaussian noise, FGSM and PGD on trained checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from composing import compose_config

import mlcsc
from mlcsc.errors import CheckpointError, ConfigError
from mlcsc.training import evaluate, train
from mlcsc.training.robustness import PixelSpaceModel, fgsm, gaussian_noise, pgd

TINY = [
    "data.batch_size=16",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.layers=[[8,6,2,0],[16,6,2,0],[32,4,1,0]]",
    "logger=none",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robustness")
    paths = []
    for model in ("cnn", "ml_fista"):
        cfg = compose_config(
            "train",
            [f"model={model}", f"paths.run_dir={folder / model}", "run_name=robustness", *TINY],
        )
        paths.append(train(cfg)["checkpoint"])
    return paths


def _fixed_model():
    encoder = mlcsc.MLCSC(1, [(6, 5, 2, 0), (8, 5, 1, 0)], pursuit="ml_ista", n_iter=3)
    return PixelSpaceModel(mlcsc.MLCSCClassifier(encoder, 10, (13, 13)), (0.5,), (0.25,)).eval()


def test_fgsm_and_pgd_increase_the_loss_within_the_budget():
    model = _fixed_model()
    pixels = torch.rand(16, 1, 13, 13)
    labels = torch.randint(0, 10, (16,))
    clean = F.cross_entropy(model(pixels), labels)
    for epsilon in (0.01, 0.05):
        one_step = fgsm(model, pixels, labels, epsilon)
        many = pgd(
            model, pixels, labels, epsilon, steps=8, generator=torch.Generator().manual_seed(0)
        )
        for adversarial in (one_step, many):
            assert (adversarial - pixels).abs().max() <= epsilon + 1e-6
            assert adversarial.min() >= 0 and adversarial.max() <= 1
        assert F.cross_entropy(model(one_step), labels) > clean
        assert F.cross_entropy(model(many), labels) > clean


def test_gaussian_noise_is_seeded_and_clipped():
    pixels = torch.rand(4, 1, 9, 9)
    first = gaussian_noise(pixels, 0.3, torch.Generator().manual_seed(1))
    again = gaussian_noise(pixels, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and first.min() >= 0 and first.max() <= 1
    assert torch.equal(gaussian_noise(pixels, 0.0), pixels)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        gaussian_noise(pixels, -0.1)


def test_robustness_mode_writes_table_and_plot_for_a_set_of_checkpoints(checkpoints, tmp_path):
    cfg = compose_config(
        "evaluate",
        [
            "mode=robustness",
            f"robustness.ckpts=[{','.join(checkpoints)}]",
            "robustness.noise_sigmas=[0.0,0.3]",
            "robustness.epsilons=[0.0,0.1]",
            "robustness.pgd_steps=3",
            "robustness.max_samples=24",
            f"robustness.output_dir={tmp_path}",
        ],
    )
    result = evaluate(cfg)
    models = {row["model"] for row in result["rows"]}
    assert models == {"layered_thresholding (T=0)", "ml_fista (T=6)"}
    assert len(result["rows"]) == 2 * (2 + 2 + 2)
    assert all(row["samples"] == 24 for row in result["rows"])
    for model in models:
        rows = {
            (r["attack"], r["level"]): r["accuracy"] for r in result["rows"] if r["model"] == model
        }
        # no perturbation: the three rows measure the same clean accuracy
        assert rows[("noise", 0.0)] == rows[("fgsm", 0.0)] == rows[("pgd", 0.0)]
        assert rows[("pgd", 0.1)] <= rows[("pgd", 0.0)]
    assert Path(result["csv"]).read_text().startswith("model,attack,level,accuracy,samples")
    assert Path(result["plot"]).stat().st_size > 1000


def test_robustness_refuses_a_missing_checkpoint_before_any_work(checkpoints, tmp_path):
    missing = tmp_path / "missing.ckpt"
    cfg = compose_config(
        "evaluate",
        [
            "mode=robustness",
            f"robustness.ckpts=[{checkpoints[0]},{missing}]",
            f"robustness.output_dir={tmp_path}",
        ],
    )
    with pytest.raises(CheckpointError, match="missing.ckpt"):
        evaluate(cfg)
    assert not (tmp_path / "robustness.csv").exists()


def test_robustness_rejects_negative_budgets(checkpoints, tmp_path):
    cfg = compose_config(
        "evaluate",
        [
            "mode=robustness",
            f"ckpt={checkpoints[0]}",
            "robustness.epsilons=[-0.1]",
            f"robustness.output_dir={tmp_path}",
        ],
    )
    with pytest.raises(ConfigError, match="epsilon must be >= 0"):
        evaluate(cfg)
