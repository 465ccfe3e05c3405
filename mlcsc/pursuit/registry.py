"""The registry of multi-layer pursuits that :class:`~mlcsc.MLCSC` can run.

A pursuit is a :class:`~mlcsc.pursuit.base.Pursuit` subclass registered under a name:

    @register_pursuit("my_pursuit")
    class MyPursuit(Pursuit):
        step_rules = ("chain",)      # what it needs (see Pursuit)

        def run(self, layers, x, n_iter):
            ...                      # -> [Γ₁, …, Γ_K]

Adding a pursuit to mlcsc is writing one such class and one ``configs/model/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

from mlcsc.pursuit.base import PARAMETRIZATIONS, STEP_RULES, UNTIED, Pursuit

__all__ = ["PURSUITS", "register_pursuit", "get_pursuit"]

#: name → the registered pursuit (an instance of its class)
PURSUITS: dict[str, Pursuit] = {}


def register_pursuit(name: str) -> Callable[[type[Pursuit]], type[Pursuit]]:
    """Class decorator: register a :class:`~mlcsc.pursuit.base.Pursuit` subclass as ``name``.

    Raises:
        ValueError: for a name already taken, or a declaration outside the valid choices.
    """

    def decorator(cls: type[Pursuit]) -> type[Pursuit]:
        if not (isinstance(cls, type) and issubclass(cls, Pursuit)):
            raise ValueError(f"register_pursuit expects a Pursuit subclass, got {cls!r}")
        if name in PURSUITS:
            raise ValueError(f"a pursuit named {name!r} is already registered")
        if not set(cls.step_rules) <= set(STEP_RULES):
            raise ValueError(
                f"{name}: step_rules must be a subset of {STEP_RULES}, got {cls.step_rules!r}"
            )
        if cls.untied not in UNTIED:
            raise ValueError(f"{name}: untied must be one of {UNTIED}, got {cls.untied!r}")
        unknown = set(cls.parametrizations) - set(PARAMETRIZATIONS)
        if not cls.parametrizations or unknown:
            raise ValueError(
                f"{name}: parametrizations must be a non-empty subset of {PARAMETRIZATIONS}, "
                f"got {cls.parametrizations!r}"
            )
        cls.name = name
        PURSUITS[name] = cls()
        return cls

    return decorator


def get_pursuit(name: str) -> Pursuit:
    """The pursuit registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return PURSUITS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown pursuit {name!r}; expected one of {', '.join(sorted(PURSUITS))}"
        ) from None
