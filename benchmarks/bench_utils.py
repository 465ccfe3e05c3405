"""What the benchmark scripts share: timing medians, printed tables, the machine, peers that
may be missing, and planted sparse-coding problems."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch


def optional(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except Exception as error:  # noqa: BLE001 - any failure means "skip this peer"
        return error


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class Seconds(float):
    """A median wall time that also carries the median CPU time of the same runs."""

    cpu: float | None

    def __new__(cls, wall: float, cpu: float | None = None):
        value = super().__new__(cls, wall)
        value.cpu = cpu
        return value


def timed(
    function: Callable[[], object], repeats: int, warmup: bool = True
) -> tuple[Seconds, object]:
    """Median wall and CPU time of ``repeats`` calls (after one warm-up call), and the last
    result. On a shared machine the CPU time of a single-threaded run is the steadier number."""
    result = function() if warmup else None
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return Seconds(statistics.median(walls), statistics.median(cpus)), result


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def ms(seconds: float) -> str:
    def show(value: float) -> str:
        return f"{value * 1e3:.1f} ms" if value < 10 else f"{value:.1f} s"

    cpu = getattr(seconds, "cpu", None)
    return show(seconds) + ("" if cpu is None else f" (CPU {show(cpu)})")


def ratio(seconds: float, reference: float) -> str:
    return f"{seconds / reference:.2f}×"


def random_dictionary(n: int, m: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, m, dtype=torch.float64, generator=generator)
    return weight / weight.norm(dim=0)


def sparse_signals(weight: torch.Tensor, batch: int, k: int, noise: float, seed: int):
    """``y = DΓ + v``: ``Γ`` with ``k`` standard-normal entries per row, ``v`` Gaussian."""
    n, m = weight.shape
    generator = torch.Generator().manual_seed(seed)
    support = torch.rand(batch, m, generator=generator).argsort(dim=1)[:, :k]
    values = torch.randn(batch, k, dtype=torch.float64, generator=generator)
    gamma = torch.zeros(batch, m, dtype=torch.float64).scatter_(1, support, values)
    y = gamma @ weight.T + noise * torch.randn(batch, n, dtype=torch.float64, generator=generator)
    return y, gamma


def supports(codes: np.ndarray) -> np.ndarray:
    return codes != 0


def same_support(a: np.ndarray, b: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.all(supports(a) == supports(b), axis=1)))


def print_notes(notes: list[str], start: float) -> None:
    """The closing notes of a benchmark: one line each, then its total time and the load."""
    print("\nNotes:")
    for note in notes:
        print(f"- {note}")
    print(f"- Total benchmark time {time.perf_counter() - start:.0f} s.", end="")
    try:
        print(" Load average at the end: {:.2f} {:.2f} {:.2f}.".format(*os.getloadavg()))
    except OSError:
        print()
