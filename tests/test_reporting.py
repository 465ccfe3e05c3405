"""mlcsc.reporting: CSV, PNG, TensorBoard and printed tables of measured rows."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from mlcsc.reporting import (
    Curve,
    format_table,
    group_rows,
    log_curves,
    new_figure,
    save_figure,
    write_csv,
)

REPO = Path(__file__).resolve().parents[1]

ROWS = [
    {"model": "cnn", "attack": "fgsm", "level": 0.05, "accuracy": 0.91, "samples": 500},
    {"model": "ml_fista", "attack": "fgsm", "level": 0.05, "accuracy": 0.914, "samples": 500},
    {"model": "cnn", "attack": "fgsm", "level": 0.1, "accuracy": 0.72, "samples": 500},
]


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


# ---------------------------------------------------------------------------------- CSV
def test_write_csv_round_trip(tmp_path):
    rows = [{"a": 1, "b": 0.1 + 0.2, "c": True}, {"a": 2, "d": math.nan}]
    path = write_csv(rows, tmp_path / "nested" / "rows.csv")
    assert path == tmp_path / "nested" / "rows.csv"
    header, written = _read(path)
    assert header == ["a", "b", "c", "d"]  # every key, in order of first appearance
    assert written[0] == {"a": "1", "b": repr(0.1 + 0.2), "c": "True", "d": ""}
    assert float(written[0]["b"]) == 0.1 + 0.2  # full precision
    assert written[1] == {"a": "2", "b": "", "c": "", "d": "nan"}


def test_write_csv_chosen_columns_and_overwrite(tmp_path):
    path = tmp_path / "rows.csv"
    write_csv([{"x": 1}], path)
    write_csv(ROWS, path, columns=["accuracy", "model"])
    header, written = _read(path)
    assert header == ["accuracy", "model"]
    assert [row["model"] for row in written] == ["cnn", "ml_fista", "cnn"]
    assert write_csv([], tmp_path / "empty.csv", columns=["a"]).read_bytes() == b"a\r\n"


# ---------------------------------------------------------------------------------- figures
def test_save_figure_writes_a_readable_png(tmp_path):
    from matplotlib.image import imread

    figure, axes = new_figure(1, 2, width=2.0, height=1.5)
    assert axes.shape == (1, 2)
    axes[0, 0].plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "sub" / "figure.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.shape[:2] == (75, 200)  # 1.5 × 4 inches at 50 dpi


def test_save_figure_of_a_pyplot_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([1, 2, 3])
    try:
        assert save_figure(figure, tmp_path / "plt.png").stat().st_size > 1000
    finally:
        plt.close(figure)


# ---------------------------------------------------------------------------------- tables
def test_format_table_defaults():
    rows = [
        {"k": 1, "rate": 1 / 3, "ok": True, "bound": math.inf},
        {"k": 10, "rate": math.nan, "ok": False},
    ]
    assert format_table(rows, ["k", "rate", "ok", "bound"]).splitlines() == [
        " k   rate   ok  bound",
        "--  -----  ---  -----",
        " 1  0.333  yes    inf",
        "10      -   no      -",
    ]


def test_format_table_formats_headers_and_text_columns():
    """A pivot as the robustness table shows it: text left, numbers right, float keys."""
    table = {}
    for row in ROWS:
        table.setdefault(row["model"], {"model": row["model"]})[row["level"]] = row["accuracy"]
    levels = [0.05, 0.1]
    text = format_table(
        list(table.values()),
        ["model", *levels],
        formats={level: (lambda value: f"{100 * value:.2f}%") for level in levels},
        headers={"model": "FGSM ε", **{level: f"{level:.3f}" for level in levels}},
    )
    assert text.splitlines() == [
        "FGSM ε     0.050   0.100",
        "--------  ------  ------",
        "cnn       91.00%  72.00%",
        "ml_fista  91.40%       -",
    ]
    assert format_table([{"x": 0.5}], ["x"], formats={"x": ".1%"}).splitlines()[-1] == "50.0%"


def test_group_rows_keeps_order():
    groups = group_rows(ROWS, ["model", "attack"])
    assert list(groups) == [("cnn", "fgsm"), ("ml_fista", "fgsm")]
    assert [row["level"] for row in groups[("cnn", "fgsm")]] == [0.05, 0.1]


# ---------------------------------------------------------------------------------- TensorBoard
def test_log_curves_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    figure, axes = new_figure()
    axes[0, 0].plot([0, 1])
    curves = [
        Curve("success/omp", [1, 2, 4], [1.0, 0.5, math.nan]),
        Curve.from_rows("accuracy/cnn", ROWS[::2], "level", "accuracy"),
    ]
    folder = tmp_path / "tb"
    for _ in range(2):  # a rerun replaces the events
        log_curves(folder, curves, scalars={"clean/cnn": 0.974}, figure=figure, text="a\nb")
    events = list(folder.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    accumulator = EventAccumulator(str(events[0]), size_guidance={"scalars": 0})
    accumulator.Reload()
    scalars = {
        tag: [(e.step, pytest.approx(e.value)) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }
    assert scalars["success/omp"] == [(1, 1.0), (2, 0.5)]  # integer x: steps; NaN left out
    assert scalars["accuracy/cnn"] == [(0, 0.91), (1, 0.72)]  # float x: steps 0, 1, …
    assert scalars["accuracy/cnn/x"] == [(0, 0.05), (1, 0.1)]
    assert scalars["clean/cnn"] == [(0, 0.974)]
    assert accumulator.Tags()["images"] == ["figure"]
