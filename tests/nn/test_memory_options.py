"""Memory and layout options of the encoder: gradient checkpointing across the unrolled
iterations (``checkpointing=True``) and the channels-last memory format (``channels_last=True``)."""

from __future__ import annotations

import pytest
import torch

from mlcsc import MLCSC

pytestmark = pytest.mark.usefixtures("single_thread")

LAYERS = [(32, 6, 2, 0), (64, 6, 2, 0), (512, 4, 1, 0)]  # Sulam et al.'s MNIST stack


def _saved_bytes_and_gradients(model: MLCSC, x: torch.Tensor):
    """Bytes of the tensors autograd keeps for the backward pass, and the gradients."""
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(x).square().sum()
    gradients = torch.autograd.grad(loss, [x, *model.parameters()], allow_unused=True)
    return sum(saved), gradients


@pytest.mark.parametrize("pursuit", ["ml_ista", "ml_fista"])
def test_checkpointing_halves_training_memory_with_identical_gradients(pursuit):
    torch.manual_seed(0)
    plain = MLCSC(1, LAYERS, pursuit=pursuit, n_iter=12, threshold_init=0.05)
    checkpointed = MLCSC(
        1, LAYERS, pursuit=pursuit, n_iter=12, threshold_init=0.05, checkpointing=True
    )
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    plain_bytes, plain_grads = _saved_bytes_and_gradients(plain, x)
    checkpointed_bytes, checkpointed_grads = _saved_bytes_and_gradients(checkpointed, x)
    assert checkpointed_bytes <= 0.5 * plain_bytes, (checkpointed_bytes, plain_bytes)
    for got, want in zip(checkpointed_grads, plain_grads, strict=True):
        if want is None:
            assert got is None
            continue
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # inference keeps nothing either way: the same codes
        torch.testing.assert_close(checkpointed(x), plain(x))


def test_checkpointing_must_be_a_flag():
    with pytest.raises(ValueError, match="checkpointing must be True or False, got 'yes'"):
        MLCSC(1, LAYERS, checkpointing="yes")


def test_channels_last_gives_the_same_codes_and_gradients():
    torch.manual_seed(0)
    plain = MLCSC(1, LAYERS, pursuit="ml_fista", n_iter=3, threshold_init=0.05)
    fast = MLCSC(1, LAYERS, pursuit="ml_fista", n_iter=3, threshold_init=0.05, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    assert fast.dictionaries[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    _, want = _saved_bytes_and_gradients(plain, x)
    _, got = _saved_bytes_and_gradients(fast, x)
    for g, w in zip(got, want, strict=True):
        if w is not None:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)
