"""The classifier on the codes of an ML-CSC encoder, trained through every pursuit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mlcsc_models import PAIRS, SIZE, SPECS

from mlcsc import MLCSC, MLCSCClassifier

pytestmark = pytest.mark.usefixtures("single_thread")


# -------------------------------------------------------------------------------------- classifier


def test_classifier_gives_logits_with_a_head_sized_from_input_size():
    encoder = MLCSC(2, SPECS, pursuit="ml_fista", n_iter=1)
    classifier = MLCSCClassifier(encoder, num_classes=7, input_size=SIZE)
    assert isinstance(classifier.head, torch.nn.Linear)
    assert classifier.head.in_features == math.prod(encoder.code_shape(SIZE))  # 6·4·3
    logits = classifier(torch.randn(5, 2, *SIZE))
    assert logits.shape == (5, 7)
    assert torch.isfinite(logits).all()


def test_classifier_without_input_size_builds_its_head_lazily():
    classifier = MLCSCClassifier(MLCSC(2, SPECS, n_iter=0), num_classes=3)
    assert classifier(torch.randn(2, 2, *SIZE)).shape == (2, 3)
    assert classifier.head.in_features == 6 * 4 * 3


def test_classifier_rejects_bad_arguments():
    encoder = MLCSC(2, SPECS)
    with pytest.raises(ValueError, match="num_classes"):
        MLCSCClassifier(encoder, num_classes=1)
    with pytest.raises(ValueError, match="dropout"):
        MLCSCClassifier(encoder, num_classes=3, dropout=1.0)
    with pytest.raises(ValueError, match="too small"):
        MLCSCClassifier(encoder, num_classes=3, input_size=(4, 4))


# ------------------------------------------------------------ supervised training, every pursuit


@pytest.fixture(scope="module")
def digits():
    from mlcsc.data.mnist5k import _load_mnist5k

    images, labels = _load_mnist5k()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    return images.float() / 255.0, labels, order[:768], order[768:968]


@pytest.mark.parametrize(("pursuit", "parametrization"), PAIRS)
def test_supervised_training_lowers_the_loss_and_beats_chance(pursuit, parametrization, digits):
    images, labels, train, test = digits
    torch.manual_seed(0)
    encoder = MLCSC(
        1,
        [(8, 6, 2, 0), (16, 6, 2, 0), (32, 4, 1, 0)],
        pursuit=pursuit,
        n_iter=2,
        parametrization=parametrization,
    )
    net = MLCSCClassifier(encoder, num_classes=10, input_size=(28, 28))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for start in range(0, len(train), 32):  # one epoch of 768 real digits
        batch = train[start : start + 32]
        loss = F.cross_entropy(net(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.2, (first, last)
    with torch.no_grad():
        accuracy = float((net.eval()(images[test]).argmax(1) == labels[test]).float().mean())
    assert accuracy > 0.25, accuracy  # chance is 0.1 (measured: 0.33 to 0.69)
