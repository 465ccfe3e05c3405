"""Errors mlcsc raises for bad input that a user can fix; the CLI prints them as one line."""

from __future__ import annotations

__all__ = ["MLCSCError", "ConfigError", "DataNotFoundError", "CheckpointError"]


class MLCSCError(Exception):
    """Base class of the errors the command-line tools report without a traceback."""


class ConfigError(MLCSCError, ValueError):
    """An invalid configuration value; the message lists the valid choices."""


class DataNotFoundError(MLCSCError, FileNotFoundError):
    """Data files are missing and cannot be downloaded; the message names folder, files and
    the offline alternatives."""


class CheckpointError(MLCSCError):
    """A checkpoint is missing, unreadable or not an mlcsc checkpoint; the message names it."""
