"""User-facing error types.

Every error that reaches a user is a :class:`NrchbenchError`: its message is one line that
says which file or variable was wrong, what was expected and how to fix it. The CLI prints
the message (no traceback) and exits with a non-zero code.
"""

from __future__ import annotations


class NrchbenchError(Exception):
    """Base class for errors meant for the user (one-line message, exit code 2)."""

    exit_code = 2


class RegistryError(NrchbenchError, KeyError):
    """Unknown, duplicate or broken registry entry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(NrchbenchError):
    """A dataset file is missing, malformed or inconsistent."""


class ConfigError(NrchbenchError, ValueError):
    """A run specification, parameter or option is invalid."""


class RunFailed(NrchbenchError):
    """A run raised, diverged (NaN) or produced invalid codes."""
