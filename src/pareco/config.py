"""Typed run configuration: defaults, YAML/JSON files, command-line flags, validation.

One dataclass mirrors every option of ``pareco train``; a config file holds the same keys. The
resolved configuration is written to ``RUNDIR/config.json`` and is what ``--resume`` reads back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

METHODS = ("slim", "twostage", "pareco")
COSTS = ("flops", "memory")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "folder", "synthetic", "loaders")


class ConfigError(ValueError):
    """A malformed or inconsistent configuration, with what to change."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults follow the paper where it applies."""

    # model and data
    model: str = "resnet20"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "fashion-mnist"
    data_dir: str | None = None
    image_size: int | None = None  # image folders: resize to this square side
    train_subset: int | None = None  # use only this many training images (quick runs)
    val_size: int = 5000  # carved from the training set: selects the front
    calib_size: int = 500  # carved from the training set: the search scores widths on it
    synthetic: dict[str, Any] = field(
        default_factory=dict
    )  # SyntheticSpec fields for data=synthetic
    stream: bool = False  # data=folder: decode per sample in DataLoader workers (large folders)
    workers: int = 2  # DataLoader worker processes for streamed folders
    # method
    method: str = "pareco"
    cost: str = "flops"
    num_sampled: int = 2  # M: widths trained per step besides the largest and the smallest
    min_multiplier: float = 0.42
    round_to: int = 1
    # optimization (paper: SGD 0.9, lr 0.1 x batch/256, wd 5e-4 on CIFAR, label smoothing 0.1)
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None  # default 0.1 * batch_size / 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    schedule: str = "linear"  # linear | cosine decay after warm-up
    label_smoothing: float = 0.1
    # epochs at the start in which the narrower networks learn from the labels instead of the
    # largest network's output; 0 = the paper (in-place distillation from the first step)
    distill_warmup_epochs: float = 0.0
    # search (PareCO)
    tau: int | None = None  # steps between proposal rounds; default from num_proposals
    num_proposals: int | None = None  # proposal budget; default scales with run length
    warmup_proposals: int | None = None  # uniform warm-up proposals; default scales with budget
    target: str = "pareto"  # pareto | uniform (the "Joslim" variant)
    beta: float = 0.1
    loss_bound: str = "upper"  # upper (mu + sqrt(beta) sigma, the authors' code) | lower
    search_candidates: int = 0  # TwoStage's stage-2 budget; 0 = PareCO's scoring budget
    # evaluation
    recal_batches: int = 20  # BN recalibration: training batches per sub-network
    eval_widths: list[float] = field(default_factory=lambda: [0.42, 0.6, 0.8, 1.0])
    # run
    seed: int = 0
    out: str = "runs/default"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 with a scaler)
    channels_last: bool = True  # on CUDA only
    threads: int | None = None  # CPU threads; default: all cores
    checkpoint_every: int = 200  # steps; a checkpoint is also written every epoch
    log_every: int = 20  # steps between metrics.jsonl lines

    def __post_init__(self) -> None:
        self.validate()

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 0.1 * self.batch_size / 256

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(
            self.method in METHODS,
            f"method must be one of {', '.join(METHODS)}, got {self.method!r}",
        )
        need(self.cost in COSTS, f"cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        need(self.data in DATASETS, f"data must be one of {', '.join(DATASETS)}, got {self.data!r}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.num_sampled >= 0, f"num_sampled must be >= 0, got {self.num_sampled}")
        need(
            0 < self.min_multiplier <= 1,
            f"min_multiplier must be in (0, 1], got {self.min_multiplier}",
        )
        need(self.round_to >= 1, f"round_to must be >= 1, got {self.round_to}")
        need(
            self.schedule in ("linear", "cosine"),
            f"schedule must be linear or cosine, got {self.schedule!r}",
        )
        need(
            self.target in ("pareto", "uniform"),
            f"target must be pareto or uniform, got {self.target!r}",
        )
        need(
            self.loss_bound in ("upper", "lower"),
            f"loss_bound must be upper or lower, got {self.loss_bound!r}",
        )
        need(self.tau is None or self.tau >= 1, f"tau must be >= 1, got {self.tau}")
        need(
            self.num_proposals is None or self.num_proposals >= 1,
            f"num_proposals must be >= 1, got {self.num_proposals}",
        )
        need(
            self.warmup_proposals is None or self.warmup_proposals >= 1,
            f"warmup_proposals must be >= 1, got {self.warmup_proposals}",
        )
        need(self.distill_warmup_epochs >= 0, "distill_warmup_epochs must be >= 0")
        need(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        need(
            not self.stream or self.data == "folder",
            f"stream applies to data=folder only, got data={self.data!r}",
        )
        need(self.recal_batches >= 1, f"recal_batches must be >= 1, got {self.recal_batches}")
        need(self.calib_size >= 1, f"calib_size must be >= 1, got {self.calib_size}")
        need(
            self.checkpoint_every >= 1,
            f"checkpoint_every must be >= 1, got {self.checkpoint_every}",
        )
        need(
            all(self.min_multiplier - 1e-9 <= w <= 1 for w in self.eval_widths),
            f"eval_widths must lie in [{self.min_multiplier}, 1], got {self.eval_widths}",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; "
                f"valid keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**d)
        except TypeError as err:
            raise ConfigError(str(err)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict of ``TrainConfig`` keys (dashes allowed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {first}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def write_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config.to_dict(), indent=1) + "\n")
