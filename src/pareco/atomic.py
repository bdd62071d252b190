"""Atomic file writes: a reader (or a crash) never sees a half-written file where a whole one stood.

Every file pareco writes in a run directory is first written to a temporary file beside it,
``.NAME.PID.tmp``, then renamed over ``NAME`` (a rename within one directory is atomic on POSIX
and Windows). :mod:`pareco.rundir` sweeps the ``.tmp`` files a crash leaves behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]


def temporary_name(path: Path) -> Path:
    """The staging file of ``path``: hidden, beside it, unique to this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write to; it replaces ``path`` when the block ends without an error.

    On an error the temporary file is removed and ``path`` is left as it was. ``durable``: flush
    the file and the directory to disk before and after the rename (checkpoints), so that the
    new file survives a power cut, not only a crash of the process.

    Example::

        with atomic_path(run_dir / "front.png") as tmp:
            fig.savefig(tmp, format="png")
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (``durable``: see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return path


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make the renames in ``path`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
