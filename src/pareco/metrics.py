"""Training metrics: one JSON line per log step in ``metrics.jsonl``, and TensorBoard events."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Appends ``{"step": s, ...}`` lines to ``RUNDIR/metrics.jsonl`` and mirrors every number
    to TensorBoard (``RUNDIR/tb``) when tensorboard is installed. Only the main process writes."""

    def __init__(
        self, run_dir: str | Path, enabled: bool = True, purge_step: int | None = None
    ) -> None:
        """``purge_step``: a resumed run's first step; TensorBoard drops what an earlier attempt
        logged from there on (``metrics.jsonl`` is truncated by the trainer)."""
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)
            except ImportError:  # tensorboard is optional at run time
                self._tb = None

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def note(self, step: int, values: dict[str, Any]) -> None:
        """A line in ``metrics.jsonl`` only (an event such as a learning-rate change)."""
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
