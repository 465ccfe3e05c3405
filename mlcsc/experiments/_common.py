"""Machinery shared by the experiments: parameters, command line, output folder, CSV,
TensorBoard curves, matplotlib figures and printed tables.

Every experiment module defines

* ``NAME`` and ``DEFAULTS`` / ``QUICK`` (the parameters of a full and of a small fast run),
* ``validate(**params) -> dict``: every parameter checked, :class:`ValueError` naming the
  parameter, what was expected and what was given, before any work starts,
* ``run(**params) -> list[dict]``: the experiment itself (it calls ``validate`` first), writing
  ``<output>/<NAME>.csv``, ``<output>/<NAME>.png`` and TensorBoard events in
  ``<output>/tensorboard`` when ``output`` is given,
* ``main(argv=None) -> int``: the command line, built with :func:`make_parser` and
  :func:`run_cli`; bad input prints one ``error: …`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mlcsc.checks import (
    check_choices,
    check_flag,
    check_int,
    check_ints,
    check_number,
    check_numbers,
)

__all__ = [
    "OUTPUT_ROOT",
    "relative_support",
    "Curve",
    "ExperimentParser",
    "check_choices",
    "check_flag",
    "check_int",
    "check_ints",
    "check_number",
    "check_numbers",
    "format_table",
    "log_curves",
    "make_parser",
    "new_figure",
    "prepare_output",
    "resolve_params",
    "run_cli",
    "save_figure",
    "single_thread",
    "write_csv",
]

#: parent folder of the default output folders, ``outputs/experiments/<name>``
OUTPUT_ROOT = Path("outputs") / "experiments"

#: parameters every experiment takes besides its own
COMMON = ("output", "seed", "trials", "quick", "verbose")


def resolve_params(
    name: str,
    defaults: Mapping[str, Any],
    quick_overrides: Mapping[str, Any],
    given: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge the parameters of a run: defaults, then the quick overrides (``quick=True``),
    then the explicitly given values (``None`` means "the default").

    Checks the common parameters (``seed``, ``trials``, ``quick``, ``verbose``, ``output``);
    the experiment checks its own.

    Returns:
        All parameters, with ``output`` a :class:`~pathlib.Path` or ``None``.

    Raises:
        ValueError: for an unknown parameter name or a bad common parameter.
    """
    unknown = sorted(set(given) - set(defaults) - set(COMMON))
    if unknown:
        known = ", ".join([*COMMON, *defaults])
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; expected some of {known}")
    quick = check_flag("quick", given.get("quick") if given.get("quick") is not None else False)
    params = dict(defaults)
    if quick:
        params.update(quick_overrides)
    params.update({key: value for key, value in given.items() if value is not None})
    params["quick"] = quick
    params["verbose"] = check_flag("verbose", params.get("verbose", False))
    params["seed"] = check_int("seed", params.get("seed", 0), 0, 2**31 - 1)
    params["trials"] = check_int("trials", params["trials"], 1)
    output = params.get("output")
    if output is not None:
        if not isinstance(output, (str, Path)) or str(output) == "":
            raise ValueError(f"output must be a folder path, got {output!r}")
        output = Path(output)
        if output.exists() and not output.is_dir():
            raise ValueError(f"output must be a folder, got the existing file {str(output)!r}")
    params["output"] = output
    return params


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


# ---------------------------------------------------------------------------------- outputs
def prepare_output(folder: Path) -> Path:
    """Create the output folder (and its parents); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as CSV; the columns are every key, in order of first appearance.

    Floats are written with ``repr`` precision; missing values are empty.
    """
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass(frozen=True)
class Curve:
    """One curve for TensorBoard: ``tag`` (``"group/name"``), x values and y values.

    TensorBoard steps are integers: integer x values are used as steps; other x values are
    logged at steps ``0, 1, …`` and the x values themselves under ``<tag>/x`` (so the mapping
    from step to x is in the event file too).
    """

    tag: str
    x: Sequence[float]
    y: Sequence[float]


def log_curves(folder: Path, curves: Sequence[Curve], figure=None, text: str = "") -> Path:
    """Log curves (and optionally the figure and a text note) to TensorBoard in ``folder``.

    Event files already in ``folder`` (from an earlier run into the same output) are removed
    first, as the CSV and PNG are overwritten.

    Uses :class:`torch.utils.tensorboard.SummaryWriter`; when ``tensorboard`` is not installed
    a warning is issued and nothing is written.

    Returns:
        ``folder``.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is an optional dependency
        warnings.warn("tensorboard is not installed: curves not logged", stacklevel=2)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.out.tfevents.*"):  # a rerun replaces the curves
        old.unlink()
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for curve in curves:
            integral = all(float(x).is_integer() for x in curve.x)
            for index, (x, y) in enumerate(zip(curve.x, curve.y, strict=True)):
                step = int(x) if integral else index
                if y is not None and math.isfinite(float(y)):
                    writer.add_scalar(curve.tag, float(y), global_step=step)
                if not integral:
                    writer.add_scalar(f"{curve.tag}/x", float(x), global_step=step)
        if figure is not None:
            writer.add_figure("figure", figure, close=False)
        if text:
            writer.add_text("notes", text.replace("\n", "  \n"))
    finally:
        writer.close()
    return folder


def new_figure(rows: int, columns: int, width: float = 5.0, height: float = 3.8):
    """A matplotlib figure with a ``rows × columns`` grid of axes.

    The figure is created without pyplot (no global state, no GUI backend, nothing to close)
    and is rendered by matplotlib's Agg canvas when saved, whatever backend the caller uses.

    Returns:
        ``(figure, axes)`` with ``axes`` a 2-D numpy array of Axes.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def save_figure(figure, path: Path) -> Path:
    """Write the figure as a PNG (100 dpi)."""
    figure.savefig(path, dpi=100)
    return path


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``columns`` of ``rows`` (floats with 3 significant digits)."""

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            if math.isnan(value):
                return "-"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return f"{value:.3g}"
        return "-" if value is None else str(value)

    table = [list(columns)] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True))
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI
class ExperimentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: …``, and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message}\n")


def make_parser(name: str, description: str, defaults: Mapping[str, Any]) -> ExperimentParser:
    """The parser with the common options ``--output``, ``--seed``, ``--trials``, ``--quick``.

    Options left out are absent from the parsed namespace (``argparse.SUPPRESS``), so the
    experiment's defaults (or quick defaults) apply to them.
    """
    parser = ExperimentParser(
        prog=f"python -m mlcsc.experiments.{name}",
        description=description,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"output folder (default: {OUTPUT_ROOT / name})",
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default: {defaults['seed']})")
    parser.add_argument(
        "--trials", type=int, help=f"random signals per point (default: {defaults['trials']})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small, fast run (few trials and levels)"
    )
    return parser


def run_cli(
    name: str,
    parser: argparse.ArgumentParser,
    validate: Callable[..., dict[str, Any]],
    run: Callable[..., list[dict[str, Any]]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse the command line, check every parameter, then run the experiment verbosely.

    Bad input (an unparsable option or a parameter out of range) prints one line
    ``error: …`` on stderr and returns 2 before any work starts. Errors raised while the
    experiment runs are not caught: they are bugs, and their traceback is wanted.

    Returns:
        The exit status: 0 on success, 2 for bad input.
    """
    args = vars(parser.parse_args(argv))
    args = {key.replace("-", "_"): value for key, value in args.items()}
    args.setdefault("output", OUTPUT_ROOT / name)
    args["verbose"] = True
    try:
        params = validate(**args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run(**params)
    print(f"\n{name}: done in {time.perf_counter() - start:.1f} s; outputs in {params['output']}")
    return 0


def relative_support(estimate: torch.Tensor, fraction: float) -> torch.Tensor:
    """``(B, N)`` mask of the entries above ``fraction`` times the largest, per signal.

    The support of a basis-pursuit estimate, whose small entries are solver noise.
    """
    magnitude = estimate.detach().abs().flatten(1)
    largest = magnitude.amax(dim=1, keepdim=True)
    return (magnitude > fraction * largest) & (largest > 0)
