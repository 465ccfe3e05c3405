"""Objects from configuration: :func:`hydra.utils.instantiate` with errors a user can act on.

Every configurable object of a run (data module, encoder, task, optimizer, scheduler, trainer,
loggers, callbacks) is described by a config node with a ``_target_`` (see ``configs/``). A bad
node raises :class:`~mlcsc.errors.ConfigError` naming the config group, the target and what went
wrong, instead of Hydra's nested traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from mlcsc.errors import ConfigError, MLCSCError

__all__ = ["instantiate", "instantiate_all", "plain"]


def plain(config: Any) -> Any:
    """A config as plain Python containers, interpolations resolved (anything else as is)."""
    if isinstance(config, DictConfig) or OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)
    return config


def _root_cause(error: BaseException) -> BaseException:
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def instantiate(config: Mapping[str, Any] | None, group: str, **kwargs: Any) -> Any:
    """Build the object that ``config`` (from config group ``group``) describes.

    A thin layer over :func:`hydra.utils.instantiate`: the node's ``_target_`` (a dotted
    import path) is called with the node's other keys and ``kwargs`` as keyword arguments
    (``_partial_: true`` gives a callable that takes the rest later, as for the
    ``optimizer`` and ``scheduler`` groups). Nested nodes are not instantiated: a target
    receives them as plain dictionaries (so a task can record its model configuration in its
    checkpoint), and every container arrives as a plain ``dict`` / ``list``.

    Args:
        config: the config node, a ``DictConfig`` or a plain mapping with a ``_target_``
            (interpolations are resolved first).
        group: the config group, named in error messages (``"model"``, ``"data"``, …).
        **kwargs: further arguments of the target: values known only at run time, such as the
            data's channels.

    Returns:
        What the target returns (usually an instance of the ``_target_`` class).

    Raises:
        ConfigError: no ``_target_``, a target that cannot be imported, an unknown or missing
            argument, or a value the target refuses; an :class:`~mlcsc.errors.MLCSCError`
            raised by the target is passed on unchanged.

    Examples:
        >>> instantiate({"_target_": "torch.nn.Linear", "in_features": 3}, "model",
        ...             out_features=2)
        Linear(in_features=3, out_features=2, bias=True)
        >>> import torch
        >>> sgd = instantiate({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        ...                   "optimizer")
        >>> type(sgd(params=[torch.zeros(2, requires_grad=True)])).__name__
        'SGD'

        Nested nodes arrive as dictionaries, not as objects:

        >>> instantiate({"_target_": "builtins.dict", "inner": {"_target_": "torch.nn.ReLU"}}, "x")
        {'inner': {'_target_': 'torch.nn.ReLU'}}

        A mistake is one line naming the group and the target:

        >>> linear = {"_target_": "torch.nn.Linear", "in_features": 3, "outputs": 2}
        >>> instantiate(linear, "model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: model (torch.nn.Linear): ... unexpected keyword argument 'outputs'
        >>> instantiate({"lr": 0.1}, "optimizer")
        Traceback (most recent call last):
        ...
        mlcsc.errors.ConfigError: optimizer needs a `_target_` (the class to build), got {'lr': 0.1}
    """
    node = plain(config)
    if not isinstance(node, Mapping) or "_target_" not in node:
        raise ConfigError(f"{group} needs a `_target_` (the class to build), got {node!r}")
    target = node["_target_"]
    try:
        return hydra_instantiate(node, _recursive_=False, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = _root_cause(error)
        if isinstance(cause, MLCSCError):
            raise cause from None
        message = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        raise ConfigError(f"{group} ({target}): {message}") from None
    except MLCSCError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{group} ({target}): {error}") from None


def instantiate_all(configs: Mapping[str, Any] | None, group: str) -> list[Any]:
    """The objects of a group that holds several named nodes (``callbacks``, ``logger``); a
    node set to ``null`` is left out."""
    nodes = plain(configs) or {}
    if not isinstance(nodes, Mapping):
        raise ConfigError(f"{group} must map names to configs with a `_target_`, got {nodes!r}")
    return [
        instantiate(node, f"{group}.{name}") for name, node in nodes.items() if node is not None
    ]
