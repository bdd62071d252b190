"""Atomic, checksummed checkpoints that never destroy the last good one.

A checkpoint is written to ``checkpoint.pt.tmp``, flushed to disk, and renamed over
``checkpoint.pt``; the checkpoint it replaces is first renamed to ``checkpoint.prev.pt``. A crash
at any moment leaves at least one complete checkpoint.

Every file starts with a header line that holds the SHA-256 of the rest, so a flipped bit is found
on load instead of being trained on. When ``checkpoint.pt`` is damaged, or missing (a crash
between the two renames), :func:`load_checkpoint` recovers by itself from ``checkpoint.pt.tmp`` or
``checkpoint.prev.pt`` — whichever is newest and intact — says so, and sets the damaged file aside
as ``checkpoint.pt.damaged`` so that the next save cannot rotate it over the good previous one.

The payload is versioned: ``schema`` (:data:`SCHEMA`) says which keys it holds
(:data:`PAYLOAD_KEYS`); a checkpoint written before the field existed is schema 1 and is brought
up to date on load (:func:`upgrade_payload`), so older runs still resume and export. A checkpoint
from a newer pareco is refused with one line, not misread.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pareco.atomic import atomic_path, fsync_dir
from pareco.errors import ParecoError, first_line

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
TEMPORARY = CHECKPOINT + ".tmp"
DAMAGED = CHECKPOINT + ".damaged"
FORMAT = "pareco-checkpoint-v1"
#: Version of the payload's layout. 1: before the field existed (``train_seconds`` optional);
#: 2: every key of ``PAYLOAD_KEYS``.
SCHEMA = 2
#: What a training checkpoint holds (``pareco.trainer.Trainer.state_dict``).
PAYLOAD_KEYS = ("config", "model", "optimizer", "scheduler", "scaler", "sampler", "loader",
                "step", "finished", "train_seconds", "space", "rng")  # fmt: skip
#: First bytes of a checksummed file; the line goes on with the hex SHA-256 of the payload.
MAGIC = b"PARECO-CHECKPOINT sha256="
_HEADER_LEN = len(MAGIC) + 64 + 1  # magic, 64 hex digits, newline


class CheckpointError(ParecoError, RuntimeError):
    """A missing, damaged or foreign checkpoint, with what to do."""


def save_checkpoint(state: dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``state`` as ``RUNDIR/checkpoint.pt`` atomically, keeping the one it replaces.

    Returns:
        The path of the new checkpoint.
    """
    run_dir = Path(run_dir)
    path, prev, tmp = run_dir / CHECKPOINT, run_dir / PREVIOUS, run_dir / TEMPORARY
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "schema": SCHEMA, **state}, buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(payload).hexdigest().encode()
    with open(tmp, "wb") as f:
        f.write(MAGIC + digest + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, prev)
    os.replace(tmp, path)
    fsync_dir(run_dir)
    return path


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and verify one checkpoint file.

    Raises:
        CheckpointError: the file is missing, its checksum does not match, or it is not a
            pareco checkpoint; the message says which (without advice: the caller knows what
            else the run directory holds).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read {path} ({err.strerror or err})") from None
    if data.startswith(MAGIC):
        header, payload = data[:_HEADER_LEN], memoryview(data)[_HEADER_LEN:]
        expected = header[len(MAGIC) : len(MAGIC) + 64]
        if header[-1:] != b"\n" or hashlib.sha256(payload).hexdigest().encode() != expected:
            raise CheckpointError(f"{path} is damaged (checksum mismatch)")
        source: Any = io.BytesIO(payload)
    else:  # written before checksums existed: nothing to verify it against
        source = io.BytesIO(data)
    try:
        # weights_only=False: the state holds RNG states and plain python objects written by
        # pareco itself; never point this at a file from an untrusted source.
        state = torch.load(source, map_location=map_location, weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} is damaged ({first_line(err)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pareco checkpoint")
    return upgrade_payload(state, str(path))


def upgrade_payload(state: dict[str, Any], where: str = "the checkpoint") -> dict[str, Any]:
    """``state`` in the layout of schema ``SCHEMA``, whatever schema it was written in.

    Raises:
        CheckpointError: a schema newer than this pareco reads.
    """
    schema = state.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise CheckpointError(
            f"{where} has checkpoint schema {schema!r}; this pareco reads schemas 1 to {SCHEMA}: "
            "upgrade pareco to use it"
        )
    if schema == 1:  # written before the schema field: train_seconds came later
        state = {"train_seconds": 0.0, **state, "schema": SCHEMA}
    return state


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds any checkpoint file a resume could start from."""
    run_dir = Path(run_dir)
    return any((run_dir / name).is_file() for name in (CHECKPOINT, TEMPORARY, PREVIOUS))


def load_checkpoint(
    run_dir: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    repair: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read the newest intact checkpoint of ``run_dir``.

    ``checkpoint.pt`` is tried first. If it is damaged or missing, the complete
    ``checkpoint.pt.tmp`` (left by a crash between the two renames of a save, and newer than
    ``checkpoint.prev.pt``) and then ``checkpoint.prev.pt`` are tried; the one that loads is
    reported as one line through ``report`` (default: standard error).

    Args:
        repair: put the recovered file back in place as ``checkpoint.pt`` (the damaged one is
            kept as ``checkpoint.pt.damaged``), so the next save rotates a good file into
            ``checkpoint.prev.pt``. Readers that must not change the directory pass False.

    Raises:
        CheckpointError: no intact checkpoint at all (the message names each file and its fault).
    """
    run_dir = Path(run_dir)
    report = report or _to_stderr
    path, prev, tmp = run_dir / CHECKPOINT, run_dir / PREVIOUS, run_dir / TEMPORARY
    faults: list[str] = []
    for candidate in (path, tmp, prev):
        if not candidate.is_file():
            continue
        try:
            state = read_checkpoint_file(candidate, map_location)
        except CheckpointError as err:
            faults.append(str(err))
            continue
        if candidate != path:
            why = "; ".join(faults) if faults else f"{path} is missing"
            if repair:
                if path.is_file():
                    os.replace(path, run_dir / DAMAGED)
                if candidate == tmp:
                    os.replace(tmp, path)
                else:
                    # the previous checkpoint stays where it is as well: copy it into place
                    with atomic_path(path, durable=True) as staged:
                        shutil.copyfile(prev, staged)
                kept = f" (the damaged file is kept as {DAMAGED})" if faults else ""
                report(
                    f"pareco: {why}; recovered the checkpoint of step {state.get('step')} "
                    f"from {candidate.name}{kept}"
                )
            else:
                report(f"pareco: {why}; using {candidate.name} (step {state.get('step')})")
        return state
    if not faults:
        raise CheckpointError(f"{run_dir} holds no {CHECKPOINT}: the run never saved one")
    raise CheckpointError(
        f"no intact checkpoint in {run_dir}: {'; '.join(faults)}; start the run again "
        "(pareco train --restart keeps these files aside)"
    )


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
