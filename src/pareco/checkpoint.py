"""Atomic checkpoints that never destroy the last good one.

A checkpoint is written to a temporary file, flushed to disk, and renamed over ``checkpoint.pt``;
the checkpoint it replaces is kept as ``checkpoint.prev.pt``. A crash at any moment leaves at
least one complete checkpoint, and a damaged file is reported, never overwritten by the reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
FORMAT = "pareco-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A missing, damaged or foreign checkpoint, with what to do."""


def save_checkpoint(state: dict[str, Any], run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    path, prev, tmp = run_dir / CHECKPOINT, run_dir / PREVIOUS, run_dir / (CHECKPOINT + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, prev)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    run_dir: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read ``RUNDIR/checkpoint.pt``.

    Raises:
        CheckpointError: no checkpoint, or a damaged one (the message says whether the previous
            checkpoint is there to fall back on).
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no {CHECKPOINT}: nothing to resume")
    try:
        # weights_only=False: the state holds RNG states and plain python objects written by
        # pareco itself; never point this at a file from an untrusted source.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fallback = run_dir / PREVIOUS
        hint = (
            f"the previous checkpoint {fallback} is intact: move it to {path} to resume from it"
            if fallback.is_file()
            else "no previous checkpoint exists: start the run again with another --out"
        )
        raise CheckpointError(f"{path} is damaged ({detail}); {hint}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pareco checkpoint")
    return state
