"""Generative sampling from the Sparseland, CSC and ML-CSC models (mlcsc.theory.sampling)."""

from __future__ import annotations

import pytest
import torch

from mlcsc import MLCSC, ConvDictionary, DenseDictionary
from mlcsc.theory import (
    csc_signals,
    l0_inf_norm,
    l2_inf_norm,
    mlcsc_signals,
    sparseland_signals,
    sparsify_filters_,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _dense(n=10, m=16) -> DenseDictionary:
    weight = torch.randn(n, m, dtype=torch.float64)
    return DenseDictionary(weight / weight.norm(dim=0))


# ------------------------------------------------------------------ Sparseland
def test_sparseland_codes_have_exact_cardinality_and_range():
    dictionary = _dense()
    signals, codes = sparseland_signals(
        dictionary, 200, 4, coefficient_range=(0.5, 1.5), generator=_generator()
    )
    assert signals.shape == (200, 10) and codes.shape == (200, 16)
    assert signals.dtype == codes.dtype == torch.float64
    assert ((codes != 0).sum(dim=1) == 4).all()
    magnitudes = codes[codes != 0].abs()
    assert magnitudes.min() >= 0.5 and magnitudes.max() <= 1.5
    assert (codes > 0).any() and (codes < 0).any()
    torch.testing.assert_close(signals, dictionary.synthesize(codes))
    # supports cover every atom (uniform supports)
    assert ((codes != 0).sum(dim=0) > 0).all()
    _, positive = sparseland_signals(dictionary, 20, 3, generator=_generator(), nonnegative=True)
    assert (positive >= 0).all()


def test_sparseland_noise_and_reproducibility():
    dictionary = _dense(32, 40)
    first = sparseland_signals(dictionary.weight, 300, 3, noise_std=0.1, generator=_generator(5))
    again = sparseland_signals(dictionary.weight, 300, 3, noise_std=0.1, generator=_generator(5))
    other = sparseland_signals(dictionary.weight, 300, 3, noise_std=0.1, generator=_generator(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    noise = first[0] - first[1] @ dictionary.weight.detach().T
    assert float(noise.std()) == pytest.approx(0.1, rel=0.05)
    assert abs(float(noise.mean())) < 0.01


def test_sparseland_bad_input_names_the_argument():
    dictionary = _dense()
    with pytest.raises(ValueError, match=r"cardinality must be an integer in \[0, 16\].*got 17"):
        sparseland_signals(dictionary, 3, 17)
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0, got -0.1"):
        sparseland_signals(dictionary, 3, 2, noise_std=-0.1)
    for bad in [(2.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (1.0, float("inf")), (1.0,)]:
        with pytest.raises(ValueError, match="coefficient_range must be a pair .* 0 < low <= high"):
            sparseland_signals(dictionary, 3, 2, coefficient_range=bad)
    with pytest.raises(ValueError, match="num_signals must be an integer >= 1, got 0"):
        sparseland_signals(dictionary, 0, 2)
    with pytest.raises(ValueError, match=r"DenseDictionary or an \(n, m\) matrix"):
        sparseland_signals(torch.randn(2, 3, 4), 3, 2)


# ------------------------------------------------------------------ CSC
@pytest.mark.parametrize(
    ("in_channels", "num_atoms", "k", "stride", "limit"),
    [(1, 2, 5, 1, 1), (3, 4, 4, 2, 3), (2, 3, 3, 1, 5), (1, 2, 5, 3, 2)],
)
def test_csc_codes_respect_the_stripe_limit(in_channels, num_atoms, k, stride, limit):
    dictionary = ConvDictionary(in_channels, num_atoms, k, stride).double()
    signals, codes = csc_signals(dictionary, 6, 24, limit, generator=_generator(k))
    assert codes.shape == (6, num_atoms, *dictionary.output_size((24, 24)))
    assert signals.shape == (6, in_channels, 24, 24)
    norms = l0_inf_norm(codes, dictionary)
    assert (norms <= limit).all()
    assert (norms == limit).all()  # maximal codes fill every stripe they can
    torch.testing.assert_close(signals, dictionary.synthesize(codes, (24, 24)))
    magnitudes = codes[codes != 0].abs()
    assert magnitudes.min() >= 1.0 and magnitudes.max() <= 2.0


def test_csc_maximal_codes_admit_no_further_entry():
    dictionary = ConvDictionary(1, 2, 3).double()  # 2 × 18 × 18 candidates: several blocks
    _, codes = csc_signals(dictionary, 2, 20, 2, generator=_generator(1))
    free = (codes == 0).nonzero()
    trials = codes[free[:, 0]].clone()  # one trial code per free entry
    trials[torch.arange(len(free)), free[:, 1], free[:, 2], free[:, 3]] = 1.0
    assert (l0_inf_norm(trials, dictionary) > 2).all()


def test_csc_num_nonzeros_noise_and_reproducibility():
    dictionary = ConvDictionary(2, 3, 5, stride=2).double()
    kwargs = dict(num_nonzeros=6, noise_l2_inf=0.3, nonnegative=True)
    signals, codes = csc_signals(dictionary, 4, (20, 18), 3, generator=_generator(2), **kwargs)
    again, codes_again = csc_signals(dictionary, 4, (20, 18), 3, generator=_generator(2), **kwargs)
    assert torch.equal(signals, again) and torch.equal(codes, codes_again)
    assert ((codes != 0).sum(dim=(1, 2, 3)) == 6).all() and (codes >= 0).all()
    assert (l0_inf_norm(codes, dictionary) <= 3).all()
    noise = signals - dictionary.synthesize(codes, (20, 18))
    torch.testing.assert_close(l2_inf_norm(noise, 5), torch.full((4,), 0.3, dtype=torch.float64))
    other, _ = csc_signals(dictionary, 4, (20, 18), 3, generator=_generator(3), **kwargs)
    assert not torch.equal(signals, other)


def test_csc_bad_input_names_the_argument():
    dictionary = ConvDictionary(1, 2, 3)
    with pytest.raises(ValueError, match="l0_inf must be an integer >= 1, got 0"):
        csc_signals(dictionary, 2, 8, 0)
    with pytest.raises(ValueError, match="noise_l2_inf must be a finite number >= 0, got -1"):
        csc_signals(dictionary, 2, 8, 1, noise_l2_inf=-1)
    with pytest.raises(ValueError, match=r"num_nonzeros must be an integer in \[0, 72\]"):
        csc_signals(dictionary, 2, 8, 1, num_nonzeros=73)
    with pytest.raises(ValueError, match="coefficient_range must be a pair"):
        csc_signals(dictionary, 2, 8, 1, coefficient_range=(3, 1))
    with pytest.raises(ValueError, match="image_size .* too small"):
        csc_signals(dictionary, 2, 2, 1)
    with pytest.raises(ValueError, match="dictionary must be a ConvDictionary"):
        csc_signals(_dense(), 2, 8, 1)


# ------------------------------------------------------------------ ML-CSC
def _sparse_stack() -> list[ConvDictionary]:
    dictionaries = [
        ConvDictionary(1, 4, 5).double(),
        ConvDictionary(4, 8, 3).double(),
        ConvDictionary(8, 12, 3).double(),
    ]
    for dictionary in dictionaries[1:]:
        sparsify_filters_(dictionary, 0.1)
    return dictionaries


def test_mlcsc_codes_are_consistent_and_sparse():
    dictionaries = _sparse_stack()
    signals, codes = mlcsc_signals(dictionaries, 5, 20, 3, generator=_generator(4))
    assert [tuple(g.shape) for g in codes] == [(5, 4, 16, 16), (5, 8, 14, 14), (5, 12, 12, 12)]
    assert signals.shape == (5, 1, 20, 20)
    assert ((codes[-1] != 0).sum(dim=(1, 2, 3)) == 3).all() and (codes[-1] >= 0).all()
    for i in range(len(codes) - 1):
        consistent = dictionaries[i + 1].synthesize(codes[i + 1], codes[i].shape[-2:])
        torch.testing.assert_close(codes[i], consistent, rtol=0, atol=1e-12)
        assert float((codes[i] != 0).double().mean()) < 0.5
        assert (codes[i] != 0).any()
    torch.testing.assert_close(signals, dictionaries[0].synthesize(codes[0], (20, 20)))


def test_mlcsc_accepts_a_model_with_strides_and_padding_and_adds_noise():
    model = MLCSC(1, [(4, 5, 2, 1), (6, 3, 1, 1)]).double()
    sparsify_filters_(model.dictionaries[1], 0.2)
    kwargs = dict(noise_l2_inf=0.05, coefficient_range=(1.0, 1.0), generator=_generator(1))
    signals, codes = mlcsc_signals(model, 3, 17, 2, **kwargs)
    sizes = model.layer_sizes((17, 17))
    assert [tuple(g.shape[-2:]) for g in codes] == sizes[1:]
    assert set(codes[-1].unique().tolist()) == {0.0, 1.0}
    noise = signals - model.dictionaries[0].synthesize(codes[0], (17, 17))
    torch.testing.assert_close(l2_inf_norm(noise, 5), torch.full((3,), 0.05, dtype=torch.float64))
    again, codes_again = mlcsc_signals(model, 3, 17, 2, **{**kwargs, "generator": _generator(1)})
    assert torch.equal(signals, again)
    assert all(torch.equal(a, b) for a, b in zip(codes, codes_again, strict=True))


def test_mlcsc_bad_input_names_the_argument():
    dictionaries = _sparse_stack()
    with pytest.raises(ValueError, match=r"deepest_cardinality must be an integer in \[0, 48\]"):
        mlcsc_signals(dictionaries, 2, 10, 49)  # deepest layer 12 × 2 × 2
    with pytest.raises(ValueError, match="noise_l2_inf must be a finite number >= 0"):
        mlcsc_signals(dictionaries, 2, 10, 1, noise_l2_inf=-0.5)
    with pytest.raises(ValueError, match="coefficient_range must be a pair"):
        mlcsc_signals(dictionaries, 2, 10, 1, coefficient_range=(0, 1))
    with pytest.raises(ValueError, match=r"input_size \(6, 6\) is too small: layer 2"):
        mlcsc_signals(dictionaries, 2, 6, 1)
    with pytest.raises(ValueError, match=r"dictionaries\[1\] must have in_channels = 4"):
        mlcsc_signals([dictionaries[0], dictionaries[2]], 2, 10, 1)


def test_sparsify_filters_keeps_the_largest_weights_of_every_atom():
    dictionary = ConvDictionary(3, 5, 4).double()
    original = dictionary.weight.detach().clone()
    assert sparsify_filters_(dictionary, 0.25) is dictionary
    weight = dictionary.weight.detach()
    assert ((weight != 0).flatten(1).sum(dim=1) == 12).all()  # 25 % of 48
    torch.testing.assert_close(dictionary.atom_norms(), torch.ones(5, dtype=torch.float64))
    for atom, before in zip(weight.flatten(1), original.flatten(1), strict=True):
        kept = before.abs()[atom != 0]
        assert kept.min() >= before.abs()[atom == 0].max()
    dense = _dense(8, 6)
    sparsify_filters_(dense, 0.01)  # at least one entry per atom survives
    assert ((dense.weight != 0).sum(dim=0) == 1).all()
    for bad in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"density must be a finite number in \(0, 1\]"):
            sparsify_filters_(dictionary, bad)
