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

    Checks the class's declaration (``step_rules`` ⊆ :data:`~mlcsc.pursuit.STEP_RULES`,
    ``untied`` one of ``"never"``/``"optional"``/``"required"``, ``parametrizations`` a
    non-empty subset of :data:`~mlcsc.pursuit.PARAMETRIZATIONS`), sets ``cls.name = name`` and
    stores one instance in :data:`PURSUITS`, after which ``MLCSC(..., pursuit=name)`` runs it.
    The registry is mlcsc's own extension mechanism (no paper); the pursuits it holds come from
    Papyan, Romano & Elad (2017, JMLR), Sulam, Papyan, Romano & Elad (2018, IEEE TSP) and
    Sulam, Aberdam, Beck & Elad (2019, IEEE TPAMI).

    Args:
        name: the registry name, unique among the registered pursuits.

    Returns:
        The decorator, which returns the class unchanged (apart from its ``name``).

    Raises:
        ValueError: for a name already taken, a class that is not a ``Pursuit`` subclass, or a
            declaration outside the valid choices.

    Examples:
        >>> import torch
        >>> from mlcsc import MLCSC
        >>> from mlcsc.pursuit import Pursuit, layered_thresholding
        >>> @register_pursuit("doctest_forward_pass")
        ... class ForwardPass(Pursuit):
        ...     def run(self, layers, x, n_iter):
        ...         return layered_thresholding(layers.dictionaries, x, layers.thresholds)
        >>> ForwardPass.name, "doctest_forward_pass" in PURSUITS
        ('doctest_forward_pass', True)
        >>> _ = torch.manual_seed(0)
        >>> model = MLCSC(1, [(4, 3), (8, 3)], pursuit="doctest_forward_pass")
        >>> model(torch.randn(2, 1, 12, 12)).shape
        torch.Size([2, 8, 8, 8])
        >>> register_pursuit("ml_ista")(ForwardPass)
        Traceback (most recent call last):
        ...
        ValueError: a pursuit named 'ml_ista' is already registered
        >>> del PURSUITS["doctest_forward_pass"]  # leave the registry as it was
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
    """The pursuit registered as ``name`` (the instance :func:`register_pursuit` stored).

    Args:
        name: a key of :data:`PURSUITS`, e.g. ``"ml_fista"`` (the ML-FISTA of Sulam, Aberdam,
            Beck & Elad 2019, IEEE TPAMI).

    Returns:
        The :class:`~mlcsc.pursuit.base.Pursuit` instance; calling it on a
        :class:`~mlcsc.pursuit.LayerParameters` and images ``(B, C, H, W)`` gives the codes
        ``[Γ₁, …, Γ_K]``.

    Raises:
        ValueError: for an unknown name, listing the registered ones.

    Examples:
        >>> get_pursuit("ml_fista")
        MLFISTA(name='ml_fista', step_rules=('chain', 'layer'))
        >>> get_pursuit("ml_fista").default_step_rule("soft_nonneg")
        'layer'
        >>> get_pursuit("fista")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown pursuit 'fista'; expected one of all_free, layered_bp, ...
    """
    try:
        return PURSUITS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown pursuit {name!r}; expected one of {', '.join(sorted(PURSUITS))}"
        ) from None
