"""The errors pareco raises for bad input or a run that cannot go on, and how they are printed.

Every such error derives from :class:`ParecoError`, so a caller (the command line, a notebook, a
service) catches one type and prints its message, which is one line saying what to do. Each
subclass also keeps the built-in base it had (``ValueError`` for bad values, ``RuntimeError`` for
a run that cannot go on), so ``except ValueError`` around older code still works.
"""

from __future__ import annotations

__all__ = ["ParecoError", "RunError", "first_line"]


class ParecoError(Exception):
    """Base of every error pareco raises on purpose; the message is one line saying what to do."""


class RunError(ParecoError, RuntimeError):
    """A run that cannot start or go on, with what to do: printed as one line."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type name when the message is empty.

    For quoting a library's (often multi-line) error inside pareco's own one-line message.
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
