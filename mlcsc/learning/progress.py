"""Progress bars for the learning loops, without making tqdm a dependency of the library."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["progress_bar"]


class _NoBar:
    """Stands in for a tqdm bar when progress is off or tqdm is not installed."""

    def __init__(self, iterable: Iterable) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self.iterable)

    def set_postfix(self, **values: object) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable, description: str, enabled: bool):
    """A tqdm progress bar over ``iterable`` when ``enabled`` and tqdm is installed (tqdm is
    not a dependency of the core library), else a silent stand-in with the same methods.

    Examples:
        >>> bar = progress_bar(range(3), "steps", enabled=False)
        >>> list(bar), bar.set_postfix(rmse=0.1), bar.close()
        ([0, 1, 2], None, None)
    """
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _NoBar(iterable)
        return tqdm(iterable, desc=description, leave=False)
    return _NoBar(iterable)
