"""Replacing rarely used deepest atoms: which ones, from which signals, and nothing else."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlcsc.errors import ConfigError
from mlcsc.training import UnsupervisedMLCSCModule

pytestmark = pytest.mark.usefixtures("single_thread")

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
MODEL = {
    "_target_": "mlcsc.MLCSC",
    "layers": [[4, 3, 1, 0], [6, 5, 1, 0]],  # 7×7 signals → one position of 6 molecules
    "pursuit": "projection_omp",
    "n_iter": 1,
    "threshold_mode": "soft_nonneg",
}


def _module(replace_rare: int) -> UnsupervisedMLCSCModule:
    torch.manual_seed(0)
    module = UnsupervisedMLCSCModule(
        MODEL, 1, (7, 7), ADAM, lambdas=0.0, nonnegative=True, replace_rare=replace_rare,
        init_sparsity=3,
    )  # fmt: skip
    with torch.no_grad():  # molecule 0 is the only one any signal below uses
        module.encoder.dictionaries[1].weight[1:] = 0
        module.encoder.dictionaries[1].weight[1:, :, 2, 2] = 0.01
    return module.train()


def test_rare_atoms_become_codes_of_the_worst_reconstructed_signals():
    module = _module(replace_rare=2)
    before = module.encoder.dictionaries[1].weight.detach().clone()
    molecule = module.encoder.effective_atoms(2)[0:1].detach()
    good = 2.0 * molecule.expand(6, -1, -1, -1).clone()  # what molecule 0 fits exactly
    bad = torch.rand(5, 1, 7, 7, generator=torch.Generator().manual_seed(1))
    for batch in (good, torch.cat([good[:2], bad])):
        module.objective(batch)
    usage = module._usage
    assert usage[0] >= 8 and (usage[1:] < 2).all()  # 5 rare molecules
    replaced = module._replace_rare_atoms()
    after = module.encoder.dictionaries[1].weight.detach()
    assert replaced == 5  # from the 5 worst signals: the random ones, not the fitted ones
    changed = ~torch.isclose(after, before, atol=1e-6).flatten(1).all(1)
    assert not changed[0] and changed[1:].all()
    assert (after >= 0).all() and ((after[1:] != 0).flatten(1).sum(1) <= 3).all()
    # each new molecule is the 3-term fit of one random signal, so resembles it
    new = F.normalize(module.encoder.effective_atoms(2)[changed].flatten(1), dim=1)
    targets = F.normalize(bad.flatten(1), dim=1)
    assert (new @ targets.T).amax(1).min() > 0.5
    assert module._usage is None  # the next epoch counts afresh


def test_no_replacement_without_the_option_or_outside_training():
    module = _module(replace_rare=0)
    module.objective(torch.rand(3, 1, 7, 7))
    assert module._usage is None
    module = _module(replace_rare=2).eval()
    module.objective(torch.rand(3, 1, 7, 7))
    assert module._usage is None


def test_negative_replace_rare_is_refused():
    with pytest.raises(ConfigError, match="replace_rare"):
        UnsupervisedMLCSCModule(MODEL, 1, (7, 7), ADAM, replace_rare=-1)


def test_shifted_copies_of_a_molecule_are_coherent_and_the_less_used_is_rebuilt():
    torch.manual_seed(0)
    module = UnsupervisedMLCSCModule(
        MODEL, 1, (7, 7), ADAM, lambdas=0.0, nonnegative=True, replace_coherent=0.99,
        init_sparsity=3,
    ).train()  # fmt: skip
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        d2 = module.encoder.dictionaries[1].weight
        d2.copy_(torch.rand(d2.shape, generator=generator))
        d2[0] = 0.0
        d2[0, :, 1:4, 1:3] = torch.rand(4, 3, 2, generator=generator)  # inside the kernel
        d2[3] = torch.roll(d2[0], shifts=(1, 2), dims=(1, 2))  # molecule 0, shifted
        module._project_()
    assert module.coherent_atoms().tolist() == [3]  # in index order, 0 comes first
    usage = torch.tensor([1, 5, 5, 9, 5, 5])
    assert module.coherent_atoms(usage).tolist() == [0]  # the less used of the pair
    before = d2.detach().clone()
    signals = torch.rand(8, 1, 7, 7, generator=generator)
    module.objective(signals)  # counts uses and keeps the worst-reconstructed signals
    module._usage = usage
    assert module._replace_rare_atoms() == 1
    changed = ~torch.isclose(d2.detach(), before, atol=1e-6).flatten(1).all(1)
    assert changed.tolist() == [True, False, False, False, False, False]
    assert module.coherent_atoms(usage).numel() == 0  # no near-duplicates left


def test_replace_coherent_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match="replace_coherent"):
        UnsupervisedMLCSCModule(MODEL, 1, (7, 7), ADAM, replace_coherent=1.5)
