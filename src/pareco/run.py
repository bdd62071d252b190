"""A run loaded back from its directory: config, data, slimmable net with its trained weights.

What ``pareco front``, ``export`` and ``search`` start from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pareco.build import build_data, build_net
from pareco.checkpoint import CheckpointError, has_checkpoint, load_checkpoint
from pareco.config import TrainConfig
from pareco.data.registry import USER_LOADERS
from pareco.data.source import DataSource
from pareco.errors import RunError
from pareco.slimming import SlimmableNet


@dataclass
class Run:
    """A finished (or interrupted) run loaded back from its directory."""

    run_dir: Path
    config: TrainConfig
    data: DataSource
    net: SlimmableNet
    state: dict[str, Any]

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    def recalibration(self, device: torch.device | str = "cpu") -> list[Tensor]:
        """The run's fixed BN recalibration batches (the ones its front was evaluated with)."""
        cfg = self.config
        return self.data.recalibration_batches(cfg.recal_batches, cfg.batch_size, cfg.seed, device)


_SOURCES: dict[Path, tuple[Callable[[], SlimmableNet], DataSource]] = {}


def register_run_sources(
    run_dir: str | Path, net: Callable[[], SlimmableNet], data: DataSource
) -> None:
    """Tell :func:`load_run` how to rebuild a run trained from Python objects in this process.

    A run trained by :func:`pareco.fit` on a user's model and loaders cannot be rebuilt from its
    ``config.json`` alone; ``fit`` registers its sources, so ``load_run``, ``pareco.front`` and
    ``export_for_budget`` accept its directory. In a new process, call this again with a factory
    of the same slimmable net (untrained is fine: the weights come from the checkpoint) and the
    same data (e.g. ``pareco.data.LoaderData(...)``).
    """
    _SOURCES[Path(run_dir).resolve()] = (net, data)


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
    sources = _SOURCES.get(run_dir.resolve())
    if sources is not None:
        data, net = sources[1], sources[0]().to(device)
    elif config.data == USER_LOADERS:
        raise RunError(
            f"{run_dir} was trained by pareco.fit from Python objects: call "
            "pareco.run.register_run_sources(run_dir, net_factory, data) in this process first"
        )
    else:
        if config.data_dir and not Path(config.data_dir).expanduser().exists():
            raise RunError(
                f"{run_dir} was trained on the {config.data} data at {config.data_dir}, which is "
                f"not there now: put it back, or set data_dir in {run_dir / 'config.json'} to "
                "where it is"
            )
        data = build_data(config)
        net = build_net(config, data).to(device)
    net.load_state_dict(state["model"])
    return Run(run_dir, config, data, net.eval(), state)
