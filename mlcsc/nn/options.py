"""What an :class:`~mlcsc.MLCSC` is built from, checked: layer specs, the pursuit's options
(parametrisation, step rule, untied filters) and the initialisation of the filters."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from mlcsc.checks import check_choice, check_int
from mlcsc.dictionary import ConvDictionary
from mlcsc.pursuit import PARAMETRIZATIONS

__all__ = [
    "INITS",
    "MAX_RELATIVE_STEP",
    "LayerSpec",
    "check_pursuit_options",
    "new_dictionary",
    "parse_layer",
]

LayerSpec = tuple[int, int, int, int]  # (num_atoms, kernel_size, stride, padding)

#: largest relative step ``ρ_j`` allowed; proximal gradient is stable below 2
MAX_RELATIVE_STEP = 1.99
#: initialisations of the filters
INITS = ("unit", "reference")


def parse_layer(index: int, spec) -> LayerSpec:
    integral = isinstance(spec, Sequence) and not isinstance(spec, (str, bytes))
    integral = integral and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in spec
    )
    if not integral:
        raise ValueError(
            f"layers[{index}] must be (num_atoms, kernel_size[, stride[, padding]]) integers, "
            f"got {spec!r}"
        )
    values = [int(v) for v in spec]
    if not 2 <= len(values) <= 4:
        raise ValueError(
            f"layers[{index}] must be (num_atoms, kernel_size[, stride[, padding]]), got {spec!r}"
        )
    values += [1, 0][len(values) - 2 :]
    num_atoms, kernel_size, stride, padding = values
    for name, value, minimum in (
        ("num_atoms", num_atoms, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        check_int(f"layers[{index}]: {name}", value, minimum)
    return num_atoms, kernel_size, stride, padding


def new_dictionary(in_channels: int, spec: LayerSpec, init: str) -> ConvDictionary:
    dictionary = ConvDictionary(in_channels, *spec)
    if init == "reference":  # N(0, 1)·0.1/√(fan-in), as in the public code of Sulam et al.
        fan_in = in_channels * spec[1] * spec[1]
        with torch.no_grad():
            dictionary.weight.normal_().mul_(0.1 / math.sqrt(fan_in))
    return dictionary


def check_pursuit_options(
    method, parametrization, init, untied, step_rule
) -> tuple[str, str, bool]:
    """Validate the options against what the pursuit declares, before any work."""
    name = method.name
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"unknown parametrization {parametrization!r}; expected one of "
            f"{', '.join(PARAMETRIZATIONS)}"
        )
    if parametrization not in method.parametrizations:
        raise ValueError(
            f"pursuit {name!r} does not support parametrization {parametrization!r}; "
            f"expected one of {', '.join(method.parametrizations)}"
        )
    if step_rule is not None:
        if parametrization != "normalized":
            raise ValueError(
                f"step_rule applies to the normalized parametrization; the {parametrization} "
                f"one uses absolute steps: expected step_rule=None, got {step_rule!r}"
            )
        if step_rule not in method.step_rules:
            supported = ", ".join(method.step_rules) or "none (it takes no steps)"
            raise ValueError(
                f"pursuit {name!r} does not support step_rule {step_rule!r}; expected one of "
                f"{supported}"
            )
    if init is None:
        init = "reference" if parametrization == "reference" else "unit"
    check_choice("init", init, INITS)
    if untied is None:
        untied = method.untied == "required"
    if not isinstance(untied, bool):
        raise ValueError(f"untied must be True, False or None, got {untied!r}")
    if untied and method.untied == "never":
        raise ValueError(
            f"pursuit {name!r} cannot use untied filters (untied=True): it needs the exact "
            f"adjoints of its dictionaries; expected untied=False or None"
        )
    if not untied and method.untied == "required":
        raise ValueError(
            f"pursuit {name!r} needs untied filters; expected untied=True or None, got False"
        )
    return parametrization, init, untied
