"""The experiment harness: parameters as dataclasses, the command line derived from them, and
the outputs of a run (through :mod:`mlcsc.reporting`).

Every experiment module defines

* ``NAME`` and a frozen dataclass of its parameters, a subclass of :class:`ExperimentParams`
  whose fields (declared with :func:`param`: default of a full run and a help text) are the
  parameters, whose ``QUICK_CHANGES`` are what a small fast run changes, and whose
  ``checked()`` checks every field: building the dataclass raises :class:`ValueError` naming
  the parameter, what was expected and what was given, before any work starts;
* ``DEFAULTS`` / ``QUICK``: the parameters of a full and of a small fast run;
* ``validate(**options)``: the parameters of a run, ``Params.from_options``
  (:meth:`ExperimentParams.from_options`);
* ``run(params=None, /, **options) -> list[dict]``: the experiment itself, writing
  ``<output>/<NAME>.csv``, ``<output>/<NAME>.png`` and TensorBoard events in
  ``<output>/tensorboard`` (:func:`publish`) when ``output`` is given;
* ``main(argv=None) -> int``: the command line, an option ``--<field-name>`` per field
  (:func:`run_cli`); bad input prints one ``error: …`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from mlcsc.checks import check_flag, check_int
from mlcsc.reporting import Curve, log_curves, save_figure, write_csv

__all__ = [
    "OUTPUT_ROOT",
    "ExperimentParams",
    "ExperimentParser",
    "make_parser",
    "param",
    "publish",
    "relative_support",
    "run_cli",
    "single_thread",
    "style_rate_axis",
]

#: parent folder of the default output folders, ``outputs/experiments/<name>``
OUTPUT_ROOT = Path("outputs") / "experiments"

P = TypeVar("P", bound="ExperimentParams")


# ---------------------------------------------------------------------------------- parameters
def param(default: Any, help: str, *, cli: bool = True, shown: str | None = None) -> Any:
    """A parameter field: its default (that of a full run), its help text (the command
    line's), whether the command line has an option for it, and how its help shows the
    default (``shown``; by default the value itself)."""
    return field(default=default, metadata={"help": help, "cli": cli, "shown": shown})


@dataclass(frozen=True)
class ExperimentParams:
    """The parameters every experiment takes; a subclass adds its own fields.

    Building an instance checks every field (:meth:`checked`) and stores each in its canonical
    type (``output`` a :class:`~pathlib.Path`, sequences tuples, numbers ``int`` / ``float``).
    """

    #: the experiment's name (its module and its output files)
    NAME: ClassVar[str] = "experiment"
    #: the fields a quick run changes, and to what
    QUICK_CHANGES: ClassVar[Mapping[str, Any]] = types.MappingProxyType({})

    output: Path | None = param(None, "output folder")
    seed: int = param(0, "random seed")
    trials: int = param(1, "random signals per point")
    quick: bool = param(False, "a small, fast run (few trials and levels)")
    verbose: bool = param(False, "print the tables and notes", cli=False)

    def __post_init__(self) -> None:
        for name, value in self.checked().items():
            object.__setattr__(self, name, value)

    def checked(self) -> dict[str, Any]:
        """Every field checked, in its canonical type; a subclass extends the dict.

        Raises:
            ValueError: naming the parameter, what was expected and what was given.
        """
        output = self.output
        if output is not None:
            if not isinstance(output, (str, Path)) or str(output) == "":
                raise ValueError(f"output must be a folder path, got {output!r}")
            output = Path(output)
            if output.exists() and not output.is_dir():
                raise ValueError(f"output must be a folder, got the existing file {str(output)!r}")
        return {
            "output": output,
            "seed": check_int("seed", self.seed, 0, 2**31 - 1),
            "trials": check_int("trials", self.trials, 1),
            "quick": check_flag("quick", self.quick),
            "verbose": check_flag("verbose", self.verbose),
        }

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameter names, in the order of the fields."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls: type[P], **given: Any) -> P:
        """The parameters of a run: the defaults, then :attr:`QUICK_CHANGES` when
        ``quick=True``, then the values given (``None`` means "the default").

        Raises:
            ValueError: for an unknown name or a bad value.
        """
        unknown = sorted(set(given) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(cls.names())}"
            )
        given = {name: value for name, value in given.items() if value is not None}
        quick = cls.QUICK_CHANGES if given.get("quick") is True else {}
        return cls(**{**quick, **given})

    @classmethod
    def quick_run(cls: type[P], **given: Any) -> P:
        """The parameters of a small, fast run, with ``given`` changes."""
        return cls.from_options(**{"quick": True, **given})

    @classmethod
    def for_run(cls: type[P], params: P | None, options: Mapping[str, Any]) -> P:
        """The parameters of ``run(params, **options)``: ``params`` (default:
        :meth:`from_options`) with the ``options`` not ``None`` changed.

        Raises:
            TypeError: for an option that is not a parameter, as for a function signature.
            ValueError: for a bad value.
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(f"run() got an unexpected keyword argument {unknown[0]!r}")
        if params is None:
            return cls.from_options(**options)
        if not isinstance(params, cls):
            raise TypeError(f"params must be a {cls.__name__}, got {type(params).__name__}")
        return dataclasses.replace(params, **{k: v for k, v in options.items() if v is not None})


# ---------------------------------------------------------------------------------- running
@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous setting.

    The experiments work on small tensors (a few images, small filters), for which a second
    thread gains nothing; on a machine whose cores are busy, torch's thread pool makes tiny
    convolutions up to 100× slower than one thread does.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def relative_support(estimate: Tensor, fraction: float) -> Tensor:
    """``(B, N)`` mask of the entries above ``fraction`` times the largest, per signal.

    The support of a basis-pursuit estimate, whose small entries are solver noise.
    """
    magnitude = estimate.detach().abs().flatten(1)
    largest = magnitude.amax(dim=1, keepdim=True)
    return (magnitude > fraction * largest) & (largest > 0)


# ---------------------------------------------------------------------------------- outputs
def publish(
    params: ExperimentParams,
    rows: list[dict[str, Any]],
    *,
    table: str,
    notes: str,
    figures: Callable[[], Mapping[str, Any]],
    curves: Callable[[], Sequence[Curve]],
) -> None:
    """The outputs of a run.

    With ``params.output``: the rows as ``<NAME>.csv``, each figure of ``figures()`` (file
    suffix → figure, the first logged to TensorBoard too) as ``<NAME><suffix>.png``, and the
    ``curves()`` with the notes in ``tensorboard/``. With ``params.verbose``: the table and the
    notes printed.
    """
    folder = params.output
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(rows, folder / f"{params.NAME}.csv")
        drawn = dict(figures())
        for suffix, figure in drawn.items():
            save_figure(figure, folder / f"{params.NAME}{suffix}.png")
        first = next(iter(drawn.values()), None)
        log_curves(folder / "tensorboard", curves(), figure=first, text=notes)
    if params.verbose:
        print(table)
        print()
        print(notes)


def style_rate_axis(axis, xlabel: str, ylabel: str = "exact support recovery rate", **legend):
    """Label an axis of success rates in ``[0, 1]``, with a light grid and a legend
    (``legend``: its keyword arguments, default ``fontsize=8, loc="lower left"``)."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_ylim(-0.03, 1.03)
    axis.grid(alpha=0.3)
    axis.legend(**(legend or {"fontsize": 8, "loc": "lower left"}))


# ---------------------------------------------------------------------------------- CLI
class ExperimentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: …``, and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message}\n")


def _show(value: Any) -> str:
    """A default value as the command line writes it."""
    if isinstance(value, (tuple, list)):
        texts = [_show(item) for item in value]
        return " ".join(texts if len(texts) <= 12 else [*texts[:3], "…", texts[-1]])
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option_type(hint: Any) -> tuple[Callable[[str], Any], bool]:
    """The argparse ``type`` of a field's type hint and whether it takes several values."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return typing.get_args(hint)[0], True
    if origin in (typing.Union, types.UnionType):  # ``X | None``
        return next(arg for arg in typing.get_args(hint) if arg is not type(None)), False
    return hint, False


def make_parser(cls: type[ExperimentParams], description: str) -> ExperimentParser:
    """The command line of an experiment: ``--<name>`` (underscores as dashes) for every field
    of ``cls`` with ``cli=True``; a flag for a ``bool``, several values for a tuple.

    Options left out are absent from the parsed namespace (``argparse.SUPPRESS``), so the
    defaults (or quick defaults) apply to them.
    """
    parser = ExperimentParser(
        prog=f"python -m mlcsc.experiments.{cls.NAME}",
        description=description.strip().split("\n")[0],
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if not spec.metadata.get("cli", True):
            continue
        option = "--" + spec.name.replace("_", "-")
        text = spec.metadata["help"]
        if hints[spec.name] is bool:
            parser.add_argument(option, action="store_true", help=text)
            continue
        default = OUTPUT_ROOT / cls.NAME if spec.name == "output" else spec.default
        text += f" (default: {spec.metadata.get('shown') or _show(default)}"
        if spec.name in cls.QUICK_CHANGES:
            text += f"; with --quick: {_show(cls.QUICK_CHANGES[spec.name])}"
        kind, several = _option_type(hints[spec.name])
        parser.add_argument(option, type=kind, nargs="+" if several else None, help=text + ")")
    return parser


def run_cli(
    cls: type[P],
    run: Callable[[P], list[dict[str, Any]]],
    argv: Sequence[str] | None = None,
    description: str = "",
) -> int:
    """Parse the command line, check every parameter, then run the experiment verbosely into
    ``--output`` (default ``outputs/experiments/<NAME>``).

    Bad input (an unparsable option or a parameter out of range) prints one line
    ``error: …`` on stderr and returns 2 before any work starts. Errors raised while the
    experiment runs are not caught: they are bugs, and their traceback is wanted.

    Returns:
        The exit status: 0 on success, 2 for bad input.
    """
    args = vars(make_parser(cls, description).parse_args(argv))
    args.setdefault("output", OUTPUT_ROOT / cls.NAME)
    try:
        params = cls.from_options(**args, verbose=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run(params)
    print(f"\n{cls.NAME}: done in {time.perf_counter() - start:.1f} s; outputs in {params.output}")
    return 0
