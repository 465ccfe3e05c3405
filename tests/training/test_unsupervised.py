"""Unsupervised ML-CSC: learning the dictionaries without labels (task=dictionary_learning)."""

from __future__ import annotations

import pytest
import torch
from composing import compose_config
from data_files import write_cifar10_files

from mlcsc.errors import ConfigError
from mlcsc.pursuit import multilayer_bp_objective
from mlcsc.training import UnsupervisedMLCSCModule, load_checkpoint, train

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
    "task.init_samples=600",
]

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def train_overrides(run_dir, *overrides):
    return compose_config(
        "train",
        [f"paths.run_dir={run_dir}", f"paths.output_root={run_dir}/outputs", "run_name=test",
         *overrides],
    )  # fmt: skip


def mlcsc_model(**options):
    return {"_target_": "mlcsc.MLCSC", **options}


@pytest.mark.slow
def test_mnist_experiment_runs_and_writes_the_lecture_figures(tmp_path):
    # init=data is tested on its own below: patches keep this end-to-end run short
    cfg = train_overrides(tmp_path, "experiment=mnist_mlcsc_dictionary", *TINY, "task.init=patches")
    summary = train(cfg)
    assert 0.0 <= summary["accuracy"] <= 1.0  # the linear probe on the frozen codes
    assert summary["objective"] > 0
    # sparse filters as the lecture's: 7 of the 800 weights of a D₂ filter, 6 of 6,272 of D₃;
    # non-negative D₂ and D₃ (clipped at zero after every step), signed D₁
    d1, d2, d3 = summary["dictionary_sparsity"]
    assert d2 == pytest.approx(99.125) and d3 == pytest.approx(99.904, abs=1e-3)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    module = UnsupervisedMLCSCModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    d1, d2, d3 = module.encoder.dictionaries
    assert (d2.weight >= 0).all() and (d3.weight >= 0).all()
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
    cfg = train_overrides("x", "experiment=mnist_mlcsc_dictionary")
    module = UnsupervisedMLCSCModule(
        cfg.model, 1, (28, 28), dict(cfg.optimizer), lambdas=cfg.task.lambdas
    )
    sizes = [tuple(module.encoder.effective_atoms(i).shape[-2:]) for i in (1, 2, 3)]
    assert sizes == [(7, 7), (15, 15), (27, 27)]  # 27 × 27: the whole 28 × 28 digit


def test_cifar_experiment_composes_with_the_lecture_specification():
    cfg = train_overrides("x", "experiment=cifar10_mlcsc_dictionary")
    module = UnsupervisedMLCSCModule(
        cfg.model,
        3,
        (32, 32),
        dict(cfg.optimizer),
        lambdas=cfg.task.lambdas,
        filter_density=list(cfg.task.filter_density),
    )
    assert module.encoder.layer_sizes((32, 32))[-1] == (1, 1)
    sizes = [tuple(module.encoder.effective_atoms(i).shape[-3:]) for i in (1, 2, 3)]
    assert sizes == [(3, 5, 5), (3, 13, 13), (3, 29, 29)]


def test_cifar_experiment_runs_on_cifar_files(tmp_path):
    write_cifar10_files(tmp_path / "data", per_batch=12, num_test=20, seed=0)
    cfg = train_overrides(
        tmp_path / "run",
        "experiment=cifar10_mlcsc_dictionary",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.val_size=10",
        "data.num_workers=0",
        "data.verify_checksums=false",
        *TINY,
        "task.init=patches",  # 50 images have too few 29×29 windows for 1,024 molecules
    )
    summary = train(cfg)
    assert summary["objective"] > 0 and 0.0 <= summary["accuracy"] <= 1.0
    d1, d2, d3 = summary["dictionary_sparsity"]
    assert d2 == pytest.approx(83.0, abs=0.5) and d3 == pytest.approx(91.0, abs=0.5)
    assert len(list((tmp_path / "run" / "figures").glob("*.png"))) == 5


def test_init_data_builds_every_layer_from_the_training_digits_before_fitting():
    from mlcsc.data import MNIST5kDataModule

    model = mlcsc_model(layers=[[6, 5, 2, 0], [8, 3, 1, 0]], pursuit="projection_omp", n_iter=2)
    module = UnsupervisedMLCSCModule(
        model, 1, (28, 28), ADAM, init="data", init_samples=64, filter_density=[None, 0.1]
    )
    before = [d.weight.detach().clone() for d in module.encoder.dictionaries]
    datamodule = MNIST5kDataModule(normalize=False, batch_size=32)
    module.prepare_fit(datamodule, resuming=True)  # a resumed run keeps its weights
    kept = zip(before, module.encoder.dictionaries, strict=True)
    assert all(torch.equal(a, d.weight) for a, d in kept)
    module.prepare_fit(datamodule, resuming=False)
    d1, d2 = module.encoder.dictionaries
    assert not torch.equal(before[0], d1.weight) and not torch.equal(before[1], d2.weight)
    assert ((d2.weight != 0).flatten(1).sum(1) <= 5).all()  # density 0.1 of 54 weights
    assert torch.allclose(d1.atom_norms(), torch.ones(6))


def test_init_restarts_keep_the_start_with_the_lowest_objective_after_alternating():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 1, 13, 13, generator=generator)
    model = mlcsc_model(layers=[[4, 5, 1, 0], [6, 5, 1, 0]], pursuit="ml_fista", n_iter=20)
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01}
    options = dict(lambdas=0.05, filter_density=[None, 0.05], init="data", init_sparsity=2,
                   dictionary_steps=2, nonnegative=[False, True])  # fmt: skip
    restarted = UnsupervisedMLCSCModule(
        model, 1, (13, 13), sgd, init_restarts=3, init_restart_epochs=2, **options
    )
    restarted.initialize_from_data_(x, torch.Generator().manual_seed(1))
    # the same three starts one at a time: each consumes the same draws of the generator
    single = UnsupervisedMLCSCModule(model, 1, (13, 13), sgd, **options)
    draws, values, states = torch.Generator().manual_seed(1), [], []
    for _ in range(3):
        single.initialize_from_data_(x, draws)
        values.append(single._alternate(x, 2, batch_size=256))
        states.append([d.weight.detach().clone() for d in single.encoder.dictionaries])
    assert len(set(values)) == 3  # three different starts
    assert max(values) < 0.5 * x.pow(2).flatten(1).sum(1).mean()  # below the zero codes' ½‖x‖²
    best = min(range(3), key=values.__getitem__)
    for kept, expected in zip(restarted.encoder.dictionaries, states[best], strict=True):
        torch.testing.assert_close(kept.weight.detach(), expected)
    assert restarted._alternate(x, 0) == pytest.approx(values[best], rel=1e-5)


def test_objective_is_the_multilayer_bp_objective_of_the_pursuit_codes():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 15, 15)
    model = mlcsc_model(
        **{"layers": [[6, 3, 2, 0], [8, 3, 1, 1]], "pursuit": "ml_ista", "n_iter": 5}
    )
    module = UnsupervisedMLCSCModule(model, 2, (15, 15), ADAM, lambdas=[0.2, 0.05])
    objective, data_term, codes, relative = module.objective(x)
    dictionaries = list(module.encoder.dictionaries)
    gamma = module.encoder(x)
    expected = multilayer_bp_objective(dictionaries, x, gamma, [0.2, 0.05]).mean()
    assert torch.allclose(objective, expected, rtol=1e-5)
    reconstruction = module.encoder.reconstruct(gamma, (15, 15))
    error = (x - reconstruction).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert torch.allclose(relative, error.mean(), rtol=1e-5)
    assert torch.allclose(data_term, 0.5 * (x - reconstruction).pow(2).flatten(1).sum(1).mean())
    assert torch.allclose(codes[-1], gamma, atol=1e-4)
    objective.backward()  # differentiable in every dictionary
    assert all(d.weight.grad is not None and d.weight.grad.abs().sum() > 0 for d in dictionaries)


@pytest.mark.parametrize("pursuit", ["ml_fista", "projection"])
def test_training_steps_lower_the_objective_on_a_fixed_batch(pursuit):
    torch.manual_seed(0)
    x = torch.randn(32, 1, 13, 13)
    model = mlcsc_model(
        **{"layers": [[6, 5, 1, 0], [8, 3, 1, 0]], "pursuit": pursuit, "n_iter": 10}
    )
    module = UnsupervisedMLCSCModule(model, 1, (13, 13), ADAM, lambdas=[0.05, 0.05])
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


def test_dictionary_steps_hold_each_batchs_codes_fixed_across_its_steps():
    """Trainer.fit with dictionary_steps=3 is the alternating loop: per batch one pursuit, then
    three projected gradient steps on its codes (and the trainer's gradient clipping applies)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x = torch.randn(8, 1, 11, 11)
    model = mlcsc_model(
        **{"layers": [[4, 3, 1, 0], [6, 3, 1, 0]], "pursuit": "ml_fista", "n_iter": 8}
    )
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5}
    options = {"lambdas": 0.05, "filter_density": [None, 0.3], "probe": False}
    module = UnsupervisedMLCSCModule(model, 1, (11, 11), sgd, dictionary_steps=3, **options)
    reference = UnsupervisedMLCSCModule(model, 1, (11, 11), sgd, **options)
    reference.load_state_dict(module.state_dict())
    pursuits = []
    module.encoder.register_forward_hook(lambda *args: pursuits.append(1))
    trainer = pl.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", gradient_clip_val=0.05, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(x), batch_size=4))
    assert len(pursuits) == 4  # two batches, two epochs: one pursuit each

    optimizer = torch.optim.SGD(reference.encoder.dictionaries.parameters(), lr=0.5)
    for _ in range(2):
        for batch in x.split(4):
            with torch.no_grad():
                codes = reference(batch)
            for _ in range(3):
                loss = reference.objective(batch, codes)[0]
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(reference.encoder.dictionaries.parameters(), 0.05)
                optimizer.step()
                reference._project_()
    pairs = zip(module.encoder.dictionaries, reference.encoder.dictionaries, strict=True)
    for learned, expected in pairs:
        assert torch.allclose(learned.weight, expected.weight, atol=1e-5)
    with pytest.raises(ConfigError, match="dictionary_steps"):
        UnsupervisedMLCSCModule(model, 1, (11, 11), sgd, dictionary_steps=0)


def test_initialisation_from_patches_copies_normalised_signal_patches():
    x = torch.zeros(2, 1, 9, 9)
    x[0, 0, 1:4, 2:5] = torch.arange(1.0, 10.0).view(3, 3)  # one non-zero 3×3 block each
    x[1, 0, 5:8, 4:7] = -torch.arange(1.0, 10.0).view(3, 3)
    model = mlcsc_model(**{"layers": [[4, 3, 1, 0]], "pursuit": "ml_fista", "n_iter": 2})
    module = UnsupervisedMLCSCModule(model, 1, (9, 9), ADAM)
    module.initialize_from_patches_(x, torch.Generator().manual_seed(0))
    atoms = module.encoder.dictionaries[0].weight.detach()
    patches = torch.nn.functional.unfold(x, 3).transpose(1, 2).reshape(-1, 9)
    patches = patches[patches.norm(dim=1) > 0]
    patches = patches / patches.norm(dim=1, keepdim=True)
    for atom in atoms.flatten(1):  # every atom is one of the non-zero patches, normalised
        assert (patches - atom).norm(dim=1).min() < 1e-6
    assert len({tuple(a.tolist()) for a in atoms.flatten(1)}) == 4  # distinct patches
    corner = torch.zeros(1, 1, 9, 9)
    corner[0, 0, 0, 0] = 1.0  # inside one 3×3 patch only
    with pytest.raises(ValueError, match="needs at least 4 non-zero 3×3 patches, got 1"):
        module.initialize_from_patches_(corner)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.lambdas=-0.1", "lambdas must be a finite number >= 0"),
        ("task.filter_density=[null,1.5,0.1]", "filter_density must be a finite number in"),
        ("task.lambdas=[0.1,0.1]", "one value per layer"),
        ("task._target_=mlcsc.training.ClusteringModule", "task .*ClusteringModule"),
        ("task.init=kmeans", "init must be one of random, patches, data; got 'kmeans'"),
        ("task.nonnegative=[true,false]", "nonnegative needs one value per layer \\(3\\), got 2"),
        ("task.nonnegative=yes", "nonnegative must be True or False, got 'yes'"),
        ("task.replace_rare=-1", "replace_rare must be"),
        ("task.init_restarts=0", "init_restarts must be"),
        ("task.replace_coherent=0", "replace_coherent must be"),
        ("task.init_restart_epochs=-1", "init_restart_epochs must be"),
    ],
)
def test_invalid_unsupervised_config_fails_before_training(tmp_path, override, message):
    cfg = train_overrides(tmp_path, "experiment=mnist_mlcsc_dictionary", override)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()
