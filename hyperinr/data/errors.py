"""The one error type of the data stage."""

from __future__ import annotations


class DataError(ValueError):
    """Input data (files, parameter values, split) cannot be ingested.

    The message is one line that names the offending file (or config key) and the problem.
    """
