"""The encoder of a task, built from the ``model`` config group and checked against the data.

Task-neutral: the classification and the unsupervised tasks build their encoder here. The
``model`` node's ``_target_`` is :class:`~mlcsc.MLCSC` in ``configs/model/``, but any
``nn.Module`` whose constructor takes ``in_channels`` and whose forward maps images to a feature
map serves (``model._target_=my_package.MyEncoder``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mlcsc.errors import ConfigError
from mlcsc.nn import MLCSC
from mlcsc.training.instantiate import instantiate

__all__ = ["build_encoder", "encoder_output_shape"]


@torch.no_grad()
def encoder_output_shape(
    encoder: nn.Module, in_channels: int, input_size: Sequence[int]
) -> tuple[int, ...]:
    """``(C, H, W)`` of the encoder's output on images of ``input_size``.

    Raises:
        ConfigError: the architecture does not fit such images.
    """
    try:
        if isinstance(encoder, MLCSC):
            return tuple(encoder.code_shape(tuple(input_size)))
        probe = torch.zeros(1, in_channels, *input_size)
        was_training = encoder.training
        output = encoder.eval()(probe)
        encoder.train(was_training)
    except (ValueError, RuntimeError) as error:
        raise ConfigError(
            f"the model does not fit {in_channels}-channel {tuple(input_size)} images: {error}"
        ) from None
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"the encoder must return a tensor, got {type(output).__name__}")
    return tuple(output.shape[1:])


def build_encoder(
    model: Mapping[str, Any], in_channels: int, input_size: Sequence[int]
) -> nn.Module:
    """``instantiate(model, in_channels=…)``, checked on images of ``input_size``.

    Raises:
        ConfigError: an unknown option or an invalid value (naming them), or an architecture
            that does not fit the data.
    """
    encoder = instantiate(model, "model", in_channels=in_channels)
    if not isinstance(encoder, nn.Module):
        raise ConfigError(f"model must build an nn.Module, got {type(encoder).__name__}")
    encoder_output_shape(encoder, in_channels, input_size)
    return encoder
