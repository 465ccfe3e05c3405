"""model=resnet18 and model=resnet18_csc train with data=cifar10 and the classification task."""

from __future__ import annotations

import pytest
import torch
from composing import compose_config
from data_files import write_cifar10_files

from mlcsc.errors import ConfigError
from mlcsc.nn import CIFARResNet18, CSCConv2d
from mlcsc.training import load_checkpoint, load_classifier, train

pytest.importorskip("torchvision")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18", "resnet18_csc"])
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
    if model == "resnet18_csc":
        overrides.append("model.n_iter=1")
    summary = train(compose_config("train", overrides))
    assert 0.0 <= summary["accuracy"] <= 1.0
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    weights = checkpoint["state_dict"]
    csc = any(".coder.dictionaries." in name for name in weights)
    assert csc == (model == "resnet18_csc")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if csc:  # λ raised and more steps at test time, as evaluate.py lam=… n_iter=… does
        module = load_classifier(str(last), n_iter=3, lam=0.4)
        layers = [m for m in module.encoder.modules() if isinstance(m, CSCConv2d)]
        assert len(layers) == 20
        assert all(m.n_iter == 3 and m.lam == pytest.approx(0.4) for m in layers)
        with pytest.raises(ConfigError, match="lam"):
            load_classifier(str(last), lam=-1.0)
    else:
        with pytest.raises(ConfigError, match="n_iter applies to an mlcsc.MLCSC encoder"):
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
