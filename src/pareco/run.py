"""A run loaded back from its directory: config, data, slimmable net with its trained weights.

What ``pareco front``, ``export`` and ``search`` start from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pareco.checkpoint import CheckpointError, has_checkpoint, load_checkpoint
from pareco.config import TrainConfig
from pareco.data import DataSplits
from pareco.recalibrate import recalibration_batches
from pareco.slim import SlimmableNet
from pareco.trainer import RunError, build_data, build_net


@dataclass
class Run:
    """A finished (or interrupted) run loaded back from its directory."""

    run_dir: Path
    config: TrainConfig
    data: DataSplits
    net: SlimmableNet
    state: dict[str, Any]

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    def recalibration(self, device: torch.device | str = "cpu") -> list[Tensor]:
        cfg = self.config
        return recalibration_batches(self.data, cfg.recal_batches, cfg.batch_size, cfg.seed, device)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> Run:
    """Rebuild a run's data and slimmable net with its trained weights.

    Raises:
        RunError: not a pareco run directory, or a damaged checkpoint.
    """
    from pareco.config import read_config_file

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise RunError(f"{run_dir} is not a pareco run directory (no config.json)")
    values = read_config_file(run_dir / "config.json")
    values["out"] = str(run_dir)  # relocatable: the folder is where the run is now
    config = TrainConfig.from_dict(values)
    if not has_checkpoint(run_dir):
        raise RunError(
            f"{run_dir} holds no checkpoint: its training never saved one; train it first "
            f"(pareco train --restart --out {run_dir} ...)"
        )
    try:
        state = load_checkpoint(run_dir, map_location=device, repair=False)
    except CheckpointError as err:
        raise RunError(str(err)) from None
    data = build_data(config)
    net = build_net(config, data).to(device)
    net.load_state_dict(state["model"])
    return Run(run_dir, config, data, net.eval(), state)
