"""The linear probe: how linearly separable the classes are in a frozen encoder's codes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["linear_probe"]


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


def linear_probe(
    encoder: nn.Module,
    train_loader,
    test_loader,
    num_classes: int,
    epochs: int = 100,
    seed: int = 0,
    max_samples: int | None = None,
) -> float:
    """Accuracy of a linear classifier trained on the frozen deepest codes ``Γ_K``.

    The codes are standardised with the training statistics; the classifier is trained by
    full-batch L-BFGS on the cross-entropy with a small weight decay. ``max_samples`` limits the
    training samples used (the test split is always used whole).
    """
    encoder.eval()
    train_x, train_y = _features(encoder, train_loader, max_samples)
    test_x, test_y = _features(encoder, test_loader)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=generator))
        head.bias.zero_()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=epochs, history_size=20)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(train_x), train_y)
        loss = loss + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((head(test_x).argmax(1) == test_y).float().mean())
