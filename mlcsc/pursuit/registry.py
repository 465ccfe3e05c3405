"""The registry of multi-layer pursuits that :class:`~mlcsc.MLCSC` can run.

A pursuit is a function

    pursuit(dictionaries, x, thresholds, steps, n_iter, mode, analysis) -> [Γ₁, …, Γ_K]

registered under a name with :func:`register_pursuit`. Adding a pursuit to mlcsc is writing one
such function and one ``configs/model/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["PURSUITS", "register_pursuit", "get_pursuit"]

PURSUITS: dict[str, Callable] = {}


def register_pursuit(name: str, untied: bool = False) -> Callable[[Callable], Callable]:
    """Register a multi-layer pursuit under ``name``.

    Args:
        name: the name used by ``MLCSC(pursuit=name)`` and the configs.
        untied: the pursuit needs analysis dictionaries separate from the synthesis ones
            (as ML-LISTA does); :class:`~mlcsc.MLCSC` then creates them.
    """

    def decorator(function: Callable) -> Callable:
        if name in PURSUITS:
            raise ValueError(f"a pursuit named {name!r} is already registered")
        function.untied = untied  # type: ignore[attr-defined]
        PURSUITS[name] = function
        return function

    return decorator


def get_pursuit(name: str) -> Callable:
    """The pursuit registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return PURSUITS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown pursuit {name!r}; expected one of {', '.join(sorted(PURSUITS))}"
        ) from None
