"""Dictionary learning recovers a planted two-layer model: Trainer.fit on the shipped module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlcsc.nn import MLCSC
from mlcsc.theory.sampling import mlcsc_signals
from mlcsc.training import UnsupervisedMLCSCModule

pl = pytest.importorskip("pytorch_lightning")


def planted_two_layer_model(generator: torch.Generator) -> MLCSC:
    """3 signed Gaussian atoms 5×5 and 8 molecules, each the sum of all three atoms at random
    offsets in a 9×9 window with weights in [0.5, 1].

    Every atom is in every molecule: with a molecule's entries drawn at random instead, an atom
    can end up in one molecule only, at a small weight (2 % of the data's energy on some seeds),
    and no learner can then be asked to find it.
    """
    model = MLCSC(1, [(3, 5, 1, 0), (8, 5, 1, 0)])
    d1, d2 = model.dictionaries
    with torch.no_grad():
        d1.weight.copy_(torch.randn(d1.weight.shape, generator=generator))
        d2.weight.zero_()
        for molecule in range(8):
            for atom in range(3):
                row, column = torch.randint(0, 5, (2,), generator=generator).tolist()
                weight = 0.5 + 0.5 * torch.rand((), generator=generator)
                d2.weight[molecule, atom, row, column] = weight
        d1.normalize_()
        d2.normalize_()
    return model


def atom_recovery(planted: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """Per planted atom, the largest |correlation| with a learned atom shifted by ≤ 1 pixel."""
    unit = lambda w: w / w.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # noqa: E731
    correlations = F.conv2d(F.pad(unit(planted), (1, 1, 1, 1)), unit(learned))
    return correlations.abs().flatten(1).max(1).values


EPOCHS = 120


def learner() -> UnsupervisedMLCSCModule:
    """Twice the planted atoms and molecules, started from the data (``init="data"``: D₁ by
    k-means of patches, D₂ as 3-sparse codes of windows over D₁; four starts, each alternated
    for ten epochs, training from the lowest objective); per pursuit (ML-FISTA, 100
    iterations), ten SGD steps on the dictionaries; after every epoch, molecules never used or
    near-duplicates of another (a shifted copy) are rebuilt from the worst-fitted signals."""
    model = {
        "_target_": "mlcsc.MLCSC",
        "layers": [[6, 5, 1, 0], [16, 5, 1, 0]],
        "pursuit": "ml_fista",
        "n_iter": 100,
        "threshold_mode": "soft_nonneg",
    }
    return UnsupervisedMLCSCModule(
        model, 1, (13, 13),
        {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.3, "momentum": 0.9},
        {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True,
         "T_max": EPOCHS},
        lambdas=0.03, filter_density=[None, 0.02], nonnegative=[False, True],
        init="data", init_sparsity=3, init_restarts=4, init_restart_epochs=10,
        dictionary_steps=10, replace_rare=1, replace_coherent=0.95, probe=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_learning_recovers_every_planted_first_layer_atom(seed, single_thread):
    """Trainer.fit on the shipped module from a data-driven start, on ten planted models.

    Without restarts and the clearing of near-duplicate molecules, 3 of these 10 seeds ended
    in local minima (weakest atom 0.83–0.88, objective up to 0.23 against about 0.12 at the
    planted dictionaries): learned atoms split between two partial copies of one planted
    atom, and molecules that were single atoms, several of them shifted copies of each other.
    """
    generator = torch.Generator().manual_seed(seed)
    truth = planted_two_layer_model(generator)
    x, _ = mlcsc_signals(
        truth, 128, 13, 1, coefficient_range=(1.0, 2.0), nonnegative=True, generator=generator
    )
    planted = truth.dictionaries[0].weight.detach()
    torch.manual_seed(seed + 1)  # the learner's random draws differ from the planted ones
    module = learner()
    module.initialize_from_data_(x, torch.Generator().manual_seed(seed + 1))
    trainer = pl.Trainer(
        max_epochs=EPOCHS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    data = torch.utils.data.TensorDataset(x)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=len(x)))
    after = atom_recovery(planted, module.encoder.dictionaries[0].weight.detach())
    assert after.min() > 0.9, after.tolist()
