"""Data-driven initial ML-CSC dictionaries: k-means strokes, sparse codes of windows above."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlcsc import MLCSC
from mlcsc.learning import initialize_from_data_, spherical_kmeans
from mlcsc.theory.sampling import mlcsc_signals

pytestmark = pytest.mark.usefixtures("single_thread")


def test_spherical_kmeans_finds_planted_directions():
    generator = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(3, 10, generator=generator, dtype=torch.float64), dim=1)
    scale = torch.rand(300, 1, generator=generator, dtype=torch.float64) + 0.5
    noise = 0.05 * torch.randn(300, 10, generator=generator, dtype=torch.float64)
    points = directions.repeat(100, 1) * scale + noise
    centroids = spherical_kmeans(points, 3, generator=generator)
    assert torch.allclose(centroids.norm(dim=1), torch.ones(3, dtype=torch.float64))
    best = (centroids @ directions.T).max(dim=0).values
    assert (best > 0.99).all()  # every planted direction has a centroid


def _planted_images(generator):
    truth = MLCSC(1, [(4, 3, 2, 0), (6, 3, 1, 0)]).double()
    with torch.no_grad():
        for dictionary in truth.dictionaries:
            dictionary.weight.copy_(torch.randn(dictionary.weight.shape, generator=generator))
            dictionary.normalize_()
    images, _ = mlcsc_signals(truth, 40, 13, 3, coefficient_range=(1.0, 2.0), generator=generator)
    return images


def test_deeper_layers_are_sparse_codes_of_signal_windows():
    generator = torch.Generator().manual_seed(1)
    images = _planted_images(generator)
    encoder = MLCSC(1, [(5, 3, 2, 0), (8, 3, 1, 0)]).double()
    initialize_from_data_(encoder, images, sparsity=4, generator=generator)
    d1, d2 = encoder.dictionaries
    assert torch.allclose(d1.atom_norms(), torch.ones(5, dtype=torch.float64))
    assert ((d2.weight != 0).flatten(1).sum(1) <= 4).all()  # 4-sparse filters
    # each layer-2 effective atom (7×7) is the 4-term OMP fit of a 7×7 window of the images:
    # it resembles a window far more than random 4-sparse combinations of the same D₁ atoms
    windows = F.normalize(F.unfold(images, 7).transpose(1, 2).reshape(-1, 49), dim=1)

    def resemblance(model):
        atoms = F.normalize(model.effective_atoms(2).flatten(1), dim=1)
        return (atoms @ windows.T).abs().max(dim=1).values.mean()

    initialised = resemblance(encoder)
    with torch.no_grad():
        d2.weight.copy_(torch.randn(d2.weight.shape, generator=generator, dtype=torch.float64))
        d2.sparsify_filters_(4 / 45)
    assert initialised > 0.6 and initialised > resemblance(encoder) + 0.05, initialised


def test_layers_that_do_not_chain_and_too_few_windows_are_refused():
    images = torch.rand(2, 1, 13, 13, dtype=torch.float64)
    odd = MLCSC(1, [(4, 3, 2, 1), (6, 4, 1, 0)]).double()  # padding: windows do not chain
    with pytest.raises(ValueError, match="does not chain"):
        initialize_from_data_(odd, images)
    many = MLCSC(1, [(400, 3, 2, 0)]).double()
    with pytest.raises(ValueError, match="needs at least 400 non-empty 3×3 windows"):
        initialize_from_data_(many, images[:1])


def test_nonnegative_layers_are_nonnegative_codes_of_their_windows():
    generator = torch.Generator().manual_seed(2)
    images = _planted_images(generator)
    encoder = MLCSC(1, [(5, 3, 2, 0), (8, 3, 1, 0)]).double()
    initialize_from_data_(
        encoder, images, sparsity=4, generator=generator, nonnegative=[False, True]
    )
    d1, d2 = encoder.dictionaries
    assert (d1.weight < 0).any()  # k-means centroids of signed planted signals, kept signed
    assert (d2.weight >= 0).all() and ((d2.weight != 0).flatten(1).sum(1) <= 4).all()
    assert torch.allclose(d2.atom_norms(), torch.ones(8, dtype=torch.float64))
