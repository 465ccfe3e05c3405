"""The linear probe: how linearly separable the classes are in a frozen encoder's codes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["WEIGHT_DECAYS", "fit_linear_classifier", "linear_probe", "select_weight_decay"]

#: The ℓ2 weights the probe chooses from by cross-validation on the training codes.
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()
def _features(encoder: nn.Module, loader, max_samples: int | None = None) -> tuple[Tensor, Tensor]:
    features, labels, taken = [], [], 0
    for images, targets in loader:
        features.append(encoder(images).flatten(1))
        labels.append(targets)
        taken += len(targets)
        if max_samples is not None and taken >= max_samples:
            break
    features, labels = torch.cat(features), torch.cat(labels)
    return features[:max_samples], labels[:max_samples]


def fit_linear_classifier(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    weight_decay: float,
    iterations: int = 100,
    seed: int = 0,
) -> nn.Linear:
    """A linear classifier ``(N, F) → num_classes`` minimising the mean cross-entropy plus
    ``weight_decay·‖W‖²`` by full-batch L-BFGS (``iterations`` at most), from a seeded start.

    >>> x = torch.tensor([[0.0], [1.0], [4.0], [5.0]]); y = torch.tensor([0, 0, 1, 1])
    >>> head = fit_linear_classifier(x, y, 2, weight_decay=1e-3)
    >>> head(x).argmax(1).tolist()
    [0, 0, 1, 1]
    """
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes).to(features.dtype)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=generator))
        head.bias.zero_()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=iterations, history_size=20)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(features), labels)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return head


def _accuracy(head: nn.Linear, features: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((head(features).argmax(1) == labels).float().mean())


def select_weight_decay(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    folds: int = 3,
    iterations: int = 100,
    seed: int = 0,
) -> float:
    """The weight decay of ``weight_decays`` with the best mean held-out accuracy over
    ``folds`` interleaved folds of the training features (ties: the smallest)."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    scores = []
    for decay in weight_decays:
        accuracy = 0.0
        for fold in range(folds):
            held = order[fold::folds]
            kept = torch.cat([order[other::folds] for other in range(folds) if other != fold])
            head = fit_linear_classifier(
                features[kept], labels[kept], num_classes, decay, iterations, seed
            )
            accuracy += _accuracy(head, features[held], labels[held])
        scores.append(accuracy / folds)
    return weight_decays[max(range(len(scores)), key=lambda i: (scores[i], -i))]


def linear_probe(
    encoder: nn.Module,
    train_loader,
    test_loader,
    num_classes: int,
    epochs: int = 100,
    seed: int = 0,
    max_samples: int | None = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
) -> float:
    """Accuracy of a linear classifier trained on the frozen deepest codes ``Γ_K``.

    The codes are scaled by one number, the root mean square of the training codes (a
    per-feature standardisation would blow up the atoms a few training codes use), and the
    classifier is trained by full-batch L-BFGS (``epochs`` iterations) on the cross-entropy with
    an ℓ2 weight chosen from ``weight_decays`` by 3-fold cross-validation on the training codes
    (:func:`select_weight_decay`; the test codes take no part in any choice). ``max_samples``
    limits the training samples used (the test split is always used whole).
    """
    encoder.eval()
    train_x, train_y = _features(encoder, train_loader, max_samples)
    test_x, test_y = _features(encoder, test_loader)
    scale = train_x.pow(2).mean().sqrt().clamp_min(1e-12)
    train_x, test_x = train_x / scale, test_x / scale
    decays = tuple(weight_decays)
    decay = decays[0]
    if len(decays) > 1:
        decay = select_weight_decay(train_x, train_y, num_classes, decays, 3, epochs, seed)
    head = fit_linear_classifier(train_x, train_y, num_classes, decay, epochs, seed)
    return _accuracy(head, test_x, test_y)
