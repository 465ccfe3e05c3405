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
    """The encoder a ``model`` configuration describes, checked on images of ``input_size``.

    Builds ``instantiate(model, "model", in_channels=in_channels)`` and then checks that the
    result is an :class:`~torch.nn.Module` that maps ``(N, in_channels, H, W)`` images with
    ``(H, W) = input_size`` to a feature map: for an :class:`~mlcsc.MLCSC` from its layer sizes,
    for any other module by a forward pass on one zero image (in evaluation mode, the module's
    mode restored afterwards). A mistake therefore surfaces here, before any data is read or
    any training step is run.

    Args:
        model: the ``model`` config node: ``_target_`` (``mlcsc.MLCSC`` in ``configs/model/``,
            or any module class whose constructor takes ``in_channels``) and its arguments.
        in_channels: the channels ``C`` of the images (from the data module).
        input_size: the image size ``(H, W)`` (from the data module).

    Returns:
        The encoder, an :class:`~torch.nn.Module` whose forward maps ``(N, C, H, W)`` images to
            a tensor (for an :class:`~mlcsc.MLCSC`, the deepest code ``Γ_K``).

    Raises:
        ConfigError: an unknown option or an invalid value (naming them), or an architecture
            that does not fit the data.

    Examples:
        >>> model = {"_target_": "mlcsc.MLCSC", "pursuit": "ml_fista", "n_iter": 2,
        ...          "layers": [[4, 5, 2, 0], [8, 3, 2, 0]]}
        >>> encoder = build_encoder(model, in_channels=1, input_size=(16, 16))
        >>> type(encoder).__name__, encoder.num_layers, encoder.code_shape((16, 16))
        ('MLCSC', 2, (8, 2, 2))

        Any module whose constructor takes ``in_channels`` serves:

        >>> build_encoder({"_target_": "torch.nn.Conv2d", "out_channels": 4, "kernel_size": 3},
        ...               in_channels=1, input_size=(16, 16))
        Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1))

        Images too small for the architecture are refused with the smallest size that fits:

        >>> build_encoder(model, in_channels=1, input_size=(4, 4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: the model does not fit 1-channel (4, 4) images: ... least (9, 9)
    """
    encoder = instantiate(model, "model", in_channels=in_channels)
    if not isinstance(encoder, nn.Module):
        raise ConfigError(f"model must build an nn.Module, got {type(encoder).__name__}")
    encoder_output_shape(encoder, in_channels, input_size)
    return encoder
