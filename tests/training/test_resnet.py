"""model=resnet18, its CSC twin and its ML-CSC-stage variant train with data=cifar10 and the
classification task."""

from __future__ import annotations

import pytest
import torch
from composing import compose_config
from data_files import write_cifar10_files

from mlcsc import MLCSC
from mlcsc.errors import ConfigError
from mlcsc.nn import CIFARResNet18, CSCConv2d
from mlcsc.training import load_checkpoint, load_classifier, train
from mlcsc.training.evaluation import encoder_label, set_unrolling

pytest.importorskip("torchvision")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18", "resnet18_csc", "resnet18_mlcsc"])
def test_resnet_configs_train_on_cifar_files(tmp_path, model, single_thread):
    write_cifar10_files(tmp_path / "data", per_batch=8, num_test=8, seed=0)
    overrides = [
        f"paths.run_dir={tmp_path / 'run'}", f"paths.output_root={tmp_path / 'outputs'}",
        "run_name=test", "data=cifar10", f"paths.data_dir={tmp_path / 'data'}",
        "data.val_size=8", "data.num_workers=0", "data.verify_checksums=false",
        "data.batch_size=8", f"model={model}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]  # fmt: skip
    if model != "resnet18":
        overrides.append("model.n_iter=1")
    summary = train(compose_config("train", overrides))
    assert 0.0 <= summary["accuracy"] <= 1.0
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    weights = checkpoint["state_dict"]
    csc = any(".coder.dictionaries." in name for name in weights)
    assert csc == (model == "resnet18_csc")
    staged = any("body.6.0.dictionaries.3." in name for name in weights)
    assert staged == (model == "resnet18_mlcsc")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if staged:  # the stage's pursuit re-unrolled; it has no λ to set (its thresholds learn)
        module = load_classifier(str(last), n_iter=3)
        assert module.encoder.body[6][0].n_iter == 3
        with pytest.raises(ConfigError, match="lam applies to CSCConv2d layers"):
            load_classifier(str(last), lam=0.4)
    elif csc:  # λ raised and more steps at test time, as evaluate.py lam=… n_iter=… does
        module = load_classifier(str(last), n_iter=3, lam=0.4)
        layers = [m for m in module.encoder.modules() if isinstance(m, CSCConv2d)]
        assert len(layers) == 20
        assert all(m.n_iter == 3 and m.lam == pytest.approx(0.4) for m in layers)
        with pytest.raises(ConfigError, match="lam"):
            load_classifier(str(last), lam=-1.0)
    else:
        with pytest.raises(ConfigError, match="n_iter applies to mlcsc.MLCSC pursuits"):
            load_classifier(str(last), n_iter=3)


def test_the_csc_twin_has_the_convolutional_models_shapes():
    torch.manual_seed(0)
    plain, twin = CIFARResNet18(3), CIFARResNet18(3, csc=True, lam=0.05, n_iter=1)
    x = torch.randn(2, 3, 32, 32)
    assert plain(x).shape == twin(x).shape == (2, 512, 1, 1)
    convs = [m for m in plain.modules() if type(m) is torch.nn.Conv2d]
    layers = [m for m in twin.modules() if isinstance(m, CSCConv2d)]
    assert len(convs) == len(layers) == 20
    for conv, layer in zip(convs, layers, strict=True):
        assert layer.weight.shape == conv.weight.shape and layer.stride == conv.stride
    assert all(layer.lam == pytest.approx(0.05) and layer.n_iter == 1 for layer in layers)


def test_an_mlcsc_stage_is_one_pursuit_over_the_stages_convolutions():
    torch.manual_seed(0)
    plain, staged = CIFARResNet18(3), CIFARResNet18(3, mlcsc_stages=[2, 4], lam=0.05, n_iter=1)
    for stage in (2, 4):
        convs = [m for m in plain.body[2 + stage].modules() if type(m) is torch.nn.Conv2d]
        coder, norm, _ = staged.body[2 + stage]
        assert isinstance(coder, MLCSC) and coder.pursuit == "ml_fista" and coder.n_iter == 1
        three = [c for c in convs if c.kernel_size == (3, 3)]  # the 1×1 shortcut is dropped
        assert [d.weight.shape for d in coder.dictionaries] == [c.weight.shape for c in three]
        assert [spec[2] for spec in coder.layer_specs] == [c.stride[0] for c in three]
        assert norm.num_features == three[-1].out_channels
        assert all(float(beta.min()) == pytest.approx(0.05) for beta in coder.thresholds)
    x = torch.randn(2, 3, 32, 32)
    features = staged(x)
    assert features.shape == plain(x).shape == (2, 512, 1, 1)
    features.sum().backward()
    for stage in (2, 4):
        coder = staged.body[2 + stage][0]
        assert all(d.weight.grad.abs().sum() > 0 for d in coder.dictionaries)
        assert all(beta.grad is not None for beta in coder.thresholds)
    set_unrolling(staged, n_iter=4)
    assert staged.body[4][0].n_iter == staged.body[6][0].n_iter == 4
    assert encoder_label(staged) == "CIFARResNet18 (ML-CSC ml_fista, T=4)"
    # with csc=True the other convolutions become CSC layers; the stages stay ML-CSC pursuits
    both = CIFARResNet18(3, csc=True, mlcsc_stages=[4], n_iter=1)
    assert isinstance(both.body[6][0], MLCSC)
    assert sum(isinstance(m, CSCConv2d) for m in both.modules()) == 15  # 20 − 4 − 1 shortcut


@pytest.mark.parametrize("stages", [[0], [5], [4, 4], "4", 4])
def test_bad_mlcsc_stages_are_refused(stages):
    with pytest.raises(ValueError, match="mlcsc_stages"):
        CIFARResNet18(3, mlcsc_stages=stages)
