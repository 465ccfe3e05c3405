"""Reporting of measured rows: CSV files, PNG figures, TensorBoard curves and printed tables.

A *row* is a mapping from column names to values (a ``dict`` per measurement); a table of
results is a sequence of rows. The functions here turn such rows into

* a CSV file (:func:`write_csv`),
* a PNG figure, drawn with matplotlib without pyplot or a GUI backend (:func:`new_figure`,
  :func:`save_figure`),
* TensorBoard event files holding curves, scalars, a figure and a note (:func:`log_curves`,
  :class:`Curve`),
* a plain-text table for the terminal (:func:`format_table`).

Importing this module imports neither matplotlib nor TensorBoard (nor pytorch-lightning): each
is imported by the function that needs it.

>>> print(format_table([{"k": 1, "rate": 0.5}, {"k": 2, "rate": 1 / 3}], ["k", "rate"]))
k   rate
-  -----
1    0.5
2  0.333
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Curve",
    "format_table",
    "group_rows",
    "log_curves",
    "new_figure",
    "save_figure",
    "write_csv",
]

Row = Mapping[str, Any]


# ---------------------------------------------------------------------------------- rows
def group_rows(rows: Iterable[Row], keys: Sequence[str]) -> dict[tuple, list[Row]]:
    """The rows grouped by their values of ``keys``, groups and rows in order of appearance.

    Args:
        rows: the rows; each must have every key of ``keys``.
        keys: the columns whose values define a group.

    Returns:
        ``{(value of keys[0], value of keys[1], …): [rows of that group]}``, the keys tuples
            even for a single column.

    Raises:
        KeyError: a row lacks one of ``keys``.

    Examples:
        >>> rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "x"}]
        >>> {key: [row["a"] for row in group] for key, group in group_rows(rows, ["b"]).items()}
        {('x',): [1, 3], ('y',): [2]}
    """
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    return groups


def write_csv(rows: Iterable[Row], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as a CSV file with a header line; the parent folders are created.

    Args:
        rows: the rows, one line each.
        path: the file, overwritten if it exists.
        columns: the columns, in order; keys of a row not among them are left out. By default
            every key of every row, in order of first appearance.

    Values are written as ``str`` writes them (floats to full precision, ``True`` / ``False``,
    ``nan``); a value a row lacks is an empty cell. The file is UTF-8, in the :mod:`csv`
    module's default dialect (``,`` separators, quotes where needed, ``\\r\\n`` line ends).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> rows = [{"sigma": 0.1, "method": "omp", "error": 0.0213},
        ...         {"sigma": 0.2, "method": "bp", "error": 0.05, "converged": True}]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_csv(rows, Path(folder) / "results" / "errors.csv")
        ...     print(path.name)
        ...     print(path.read_text(), end="")
        ...     path = write_csv(rows, Path(folder) / "short.csv", columns=["method", "error"])
        ...     print(path.read_text(), end="")
        errors.csv
        sigma,method,error,converged
        0.1,omp,0.0213,
        0.2,bp,0.05,True
        method,error
        omp,0.0213
        bp,0.05
    """
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------- figures
def new_figure(rows: int = 1, columns: int = 1, width: float = 5.0, height: float = 3.8):
    """A matplotlib figure with a ``rows × columns`` grid of axes, each ``width × height``
    inches, laid out by matplotlib's constrained layout.

    The figure is made without pyplot: no global state, no GUI backend, nothing to close. It
    is rendered by matplotlib's Agg canvas when saved.

    Args:
        rows: the rows of axes.
        columns: the columns of axes.
        width: the width of one axes' cell, in inches.
        height: the height of one axes' cell, in inches.

    Returns:
        ``(figure, axes)``: a :class:`matplotlib.figure.Figure` of
            ``(width·columns) × (height·rows)`` inches and a 2-D numpy array of Axes of shape
            ``(rows, columns)`` (``axes[row, column]``, even for a single axes).

    Examples:
        >>> figure, axes = new_figure(1, 2, width=4, height=3)
        >>> axes.shape, figure.get_size_inches().tolist()
        ((1, 2), [8.0, 3.0])
        >>> lines = axes[0, 0].plot([1, 2, 3], [1, 4, 9])
        >>> type(figure).__name__, figure.get_layout_engine() is not None
        ('Figure', True)
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def save_figure(figure, path: str | Path, dpi: float = 100) -> Path:
    """Write a matplotlib figure as a PNG file, rendered by the Agg canvas (headless: no
    display needed, whatever backend made the figure); the parent folders are created.

    The figure stays open: a figure made by pyplot is the caller's to close.

    Args:
        figure: a :class:`matplotlib.figure.Figure` (from :func:`new_figure` or pyplot).
        path: the PNG file, overwritten if it exists.
        dpi: the resolution, in pixels per inch: a ``w × h``-inch figure is about
            ``(w·dpi) × (h·dpi)`` pixels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> figure, axes = new_figure(width=2, height=1.5)
        >>> lines = axes[0, 0].plot([0, 1], [0, 1])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_figure(figure, Path(folder) / "plots" / "line.png", dpi=40)
        ...     data = path.read_bytes()
        >>> path.name, data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        ('line.png', True)
        >>> int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # 2 × 1.5 in
        (80, 60)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


# ---------------------------------------------------------------------------------- TensorBoard
@dataclass(frozen=True)
class Curve:
    """One curve for TensorBoard: ``tag`` (``"group/name"``), x values and y values.

    TensorBoard steps are integers: integer x values are used as steps; other x values are
    logged at steps ``0, 1, …`` and the x values themselves under ``<tag>/x`` (so the mapping
    from step to x is in the event file too). Points whose y is ``None`` or not finite are
    left out. A frozen dataclass: written by :func:`log_curves`.

    Attributes:
        tag: the TensorBoard tag, ``"group/name"`` (TensorBoard groups the charts by
            ``group``).
        x: the x values, one per point.
        y: the y values, as many as ``x``; ``None`` for a missing point.

    Examples:
        >>> Curve("loss/train", x=[1, 2, 3], y=[0.5, None, 0.2])
        Curve(tag='loss/train', x=[1, 2, 3], y=[0.5, None, 0.2])
        >>> rows = [{"sigma": 0.1, "error": 0.02}, {"sigma": 0.2, "error": 0.05}]
        >>> Curve.from_rows("error/omp", rows, x="sigma", y="error")
        Curve(tag='error/omp', x=[0.1, 0.2], y=[0.02, 0.05])
    """

    tag: str
    x: Sequence[float]
    y: Sequence[float | None]

    @classmethod
    def from_rows(cls, tag: str, rows: Iterable[Row], x: str, y: str) -> Curve:
        """The curve of column ``y`` against column ``x`` of ``rows``.

        Args:
            tag: the curve's TensorBoard tag.
            rows: the rows, one point each, in order; each must have both columns.
            x: the column of the x values.
            y: the column of the y values.

        Returns:
            The new curve, a :class:`Curve`.
        """
        rows = list(rows)
        return cls(tag, [row[x] for row in rows], [row[y] for row in rows])


def log_curves(
    folder: str | Path,
    curves: Iterable[Curve] = (),
    *,
    scalars: Mapping[str, float] | None = None,
    figure=None,
    text: str = "",
) -> Path:
    """Log curves, scalars, a figure and a text note to TensorBoard event files in ``folder``.

    Event files already in ``folder`` (from an earlier run into the same output) are removed
    first, so that a rerun replaces the curves as it overwrites a CSV or PNG.

    Args:
        folder: the log folder, created if needed.
        curves: :class:`Curve` objects.
        scalars: ``tag → value``, logged at step 0.
        figure: a matplotlib figure, logged under ``figure`` (and left open).
        text: a note, logged under ``notes`` (line breaks kept).

    Uses :class:`torch.utils.tensorboard.SummaryWriter`, imported here; when ``tensorboard``
    is not installed a warning is issued and nothing is written.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        >>> error = Curve("error/omp", x=[0.1, 0.2], y=[0.02, 0.05])
        >>> loss = Curve("loss/train", x=[1, 2, 3], y=[0.5, None, 0.2])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     logs = log_curves(Path(folder) / "tb", [error, loss], scalars={"best": 0.02},
        ...                       text="two curves\\nseed 0")
        ...     events = EventAccumulator(str(logs))
        ...     events = events.Reload()
        ...     scalars = events.Tags()["scalars"]
        ...     points = [(e.step, round(e.value, 3)) for e in events.Scalars("loss/train")]
        ...     count = len(list(logs.glob("events.out.tfevents.*")))
        >>> sorted(scalars), count
        (['best', 'error/omp', 'error/omp/x', 'loss/train'], 1)
        >>> points  # integer x values are the steps; the point without y is left out
        [(1, 0.5), (3, 0.2)]
    """
    folder = Path(folder)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is an optional dependency
        warnings.warn("tensorboard is not installed: curves not logged", stacklevel=2)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for curve in curves:
            _log_curve(writer, curve)
        for tag, value in (scalars or {}).items():
            writer.add_scalar(tag, float(value), global_step=0)
        if figure is not None:
            writer.add_figure("figure", figure, close=False)
        if text:
            writer.add_text("notes", text.replace("\n", "  \n"))
    finally:
        writer.close()
    return folder


def _log_curve(writer, curve: Curve) -> None:
    integral = all(float(x).is_integer() for x in curve.x)
    for index, (x, y) in enumerate(zip(curve.x, curve.y, strict=True)):
        step = int(x) if integral else index
        if y is not None and math.isfinite(float(y)):
            writer.add_scalar(curve.tag, float(y), global_step=step)
        if not integral:
            writer.add_scalar(f"{curve.tag}/x", float(x), global_step=step)


# ---------------------------------------------------------------------------------- tables
Format = str | Callable[[Any], str]


def _cell(value: Any, spec: Format | None) -> str:
    """One table cell: ``-`` for ``None`` and NaN, ``yes`` / ``no`` for booleans, ``spec``
    (a format spec or a function) for anything else given one, floats to 3 digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if callable(spec):
        return spec(value)
    if spec is not None:
        return format(value, spec)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.3g}"
    return str(value)


def format_table(
    rows: Iterable[Row],
    columns: Sequence[Hashable],
    formats: Mapping[Hashable, Format] | None = None,
    headers: Mapping[Hashable, str] | None = None,
) -> str:
    """A plain-text table: a header line, a rule, then one line per row.

    Args:
        rows: the rows; a key a row lacks is shown as ``-``.
        columns: the keys shown, in order (any hashable: a float level works too).
        formats: per column, a format spec (``".2%"``) or a function of the value returning
            its text. Without one, floats are shown to 3 significant digits. ``None`` and NaN
            are ``-`` and booleans ``yes`` / ``no`` in every column.
        headers: per column, its title (default: ``str(column)``).

    Columns whose values are all strings are aligned left, the others right; columns are
    separated by two spaces.

    Returns:
        The table, lines joined by ``\\n`` (no final line break).

    Examples:
        >>> rows = [{"method": "omp", "sigma": 0.1, "error": 0.0213},
        ...         {"method": "bp", "sigma": 0.2, "error": 0.05, "converged": True}]
        >>> print(format_table(rows, ["method", "sigma", "error", "converged"],
        ...                    formats={"error": ".1%"}, headers={"sigma": "σ"}))
        method    σ  error  converged
        ------  ---  -----  ---------
        omp     0.1   2.1%          -
        bp      0.2   5.0%        yes
        >>> times = [{"n": 3, "time": float("nan")}, {"n": 10, "time": 1234.5678}]
        >>> print(format_table(times, ["n", "time"], formats={"time": lambda t: f"{t:.1f} s"}))
         n      time
        --  --------
         3         -
        10  1234.6 s
    """
    rows = list(rows)
    formats = formats or {}
    headers = headers or {}
    body = [[_cell(row.get(column), formats.get(column)) for column in columns] for row in rows]
    table = [[headers.get(column, str(column)) for column in columns], *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    left = [
        all(isinstance(row.get(column), str) for row in rows) and bool(rows) for column in columns
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            text.ljust(width) if is_left else text.rjust(width)
            for text, width, is_left in zip(cells, widths, left, strict=True)
        ).rstrip()

    lines = [line(cells) for cells in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
