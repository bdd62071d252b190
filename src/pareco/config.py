"""Typed run configuration: defaults, YAML/JSON files, command-line flags, validation.

One dataclass mirrors every option of ``pareco train``; a config file holds the same keys. The
resolved configuration is written to ``RUNDIR/config.json`` and is what ``--resume`` reads back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pareco.cost_metrics import names as _metric_names
from pareco.errors import ParecoError, first_line

METHODS = ("slim", "twostage", "pareco")


def cost_names() -> tuple[str, ...]:
    """The search objectives ``cost:`` may name, read from the metric registry at call time
    (``pareco.cost_metrics``), so a plugin's metric counts once it is imported."""
    return _metric_names("objective")


# inplace: the largest sub-network; original: the init_weights model, frozen; module: a module
# given to pareco.fit(teacher=...)
TEACHERS = ("inplace", "original", "module")
# auto: bn when init_weights are given, none otherwise (pareco.sort_channels has the criteria)
SORT_SETTINGS = ("auto", "none", "l1", "l2", "bn", "taylor")


def data_names() -> tuple[str, ...]:
    """What ``data`` may name: a registered dataset (``pareco.data.dataset_names``), ``tensors``
    (a file of tensors, ``pareco.data.tensors``), or ``loaders`` (recorded by ``pareco.fit`` for
    a user's own loaders)."""
    from pareco.data.registry import USER_LOADERS, dataset_names
    from pareco.data.tensors import TENSORS

    return (*dataset_names(), TENSORS, USER_LOADERS)


class ConfigError(ParecoError, ValueError):
    """A malformed or inconsistent configuration, with what to change."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults follow the paper where it applies."""

    # plugins: modules imported first (they register cost metrics, datasets, slimming rules)
    plugins: list[str] = field(default_factory=list)
    # model and data
    model: str = "resnet20"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "fashion-mnist"
    data_dir: str | None = None
    image_size: int | None = None  # image folders: resize to this square side
    train_subset: int | None = None  # use only this many training images (quick runs)
    val_size: int = 5000  # carved from the training set: selects the front
    # carved from the training set: the search scores widths on it; None = one training batch,
    # as the reference scores each round on one batch
    calib_size: int | None = None
    synthetic: dict[str, Any] = field(
        default_factory=dict
    )  # SyntheticSpec fields for data=synthetic
    stream: bool = False  # data=folder: decode per sample in DataLoader workers (large folders)
    workers: int = 2  # DataLoader worker processes for streamed folders
    # method
    method: str = "pareco"
    cost: str = "flops"
    # measured per-layer latency table (pareco latency-table); needed by cost: latency
    latency_table: str | None = None
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
    # starting from a trained model
    init_weights: str | None = None  # a state_dict, checkpoint or safetensors file to start from
    sort_channels: str = "auto"  # auto | none | l1 | l2 | bn | taylor
    teacher: str = "inplace"  # inplace (the largest network) | original (the init_weights model)
    teacher_full: bool = False  # with teacher original: the largest network learns from it too
    # search (PareCO)
    tau: int | None = None  # steps between proposal rounds; default from num_proposals
    num_proposals: int | None = None  # proposal budget; default scales with run length
    warmup_proposals: int | None = None  # uniform warm-up proposals; default scales with budget
    target: str = "pareto"  # pareto | uniform (the "Joslim" variant)
    beta: float = 0.1
    loss_bound: str = "upper"  # upper (mu + sqrt(beta) sigma, the authors' code) | lower
    # loss of the point prepended at cost(alpha_min) when the target front stops short of it:
    # reference (the constant 8 of the authors' PareCO code) | chance (ln(classes))
    high_loss: str = "reference"
    smallest_in_front: bool = True  # the smallest network's measured loss joins that front
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
    checkpoint_minutes: float = 5.0  # and at least this often in wall-clock time
    log_every: int = 20  # steps between metrics.jsonl lines

    def __post_init__(self) -> None:
        self.load_plugins()
        self.validate()

    def load_plugins(self) -> None:
        """Import the ``plugins`` modules (and ``PARECO_PLUGINS``, the installed entry points).

        Raises:
            ConfigError: a module that does not import, in one line.
        """
        from pareco import plugins

        try:
            plugins.load_environment()
            plugins.load_plugins(self.plugins)
        except plugins.PluginError as err:
            raise ConfigError(str(err)) from None

    def _import_model_module(self) -> None:
        """A ``--model pkg.mod:fn`` module may register the metric or dataset it is used with:
        import it before calling a name unknown (its own errors come later, from the model)."""
        module, sep, _ = self.model.partition(":")
        if sep and module:
            from pareco.plugins import import_module

            with contextlib.suppress(Exception):
                import_module(module)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 0.1 * self.batch_size / 256

    @property
    def calib_images(self) -> int:
        """Images of the calibration batch: ``calib_size``, or one training batch."""
        return self.calib_size if self.calib_size is not None else self.batch_size

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(
            self.method in METHODS,
            f"method must be one of {', '.join(METHODS)}, got {self.method!r}",
        )
        costs, names = cost_names(), data_names()
        if self.cost not in costs or self.data not in names:
            self._import_model_module()
            costs, names = cost_names(), data_names()
        need(
            self.cost in costs,
            f"cost must be one of {', '.join(costs)}, got {self.cost!r} (a metric of your own: "
            "register it in a module named by plugins: or --plugins)",
        )
        need(
            self.cost != "latency" or bool(self.latency_table),
            "cost latency needs latency_table: PATH, a table measured on the target device "
            "(pareco latency-table --model MODEL --out PATH)",
        )
        need(self.data in names, f"data must be one of {', '.join(names)}, got {self.data!r}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.num_sampled >= 0, f"num_sampled must be >= 0, got {self.num_sampled}")
        uses = (
            "the search proposes" if self.method == "pareco" else "TwoStage trains, then searches"
        )
        need(
            self.num_sampled >= 1 or self.method == "slim",
            f"num_sampled must be >= 1 with method {self.method} (the M per-group widths are what "
            f"{uses}); 0, the largest and the smallest network alone, suits method slim only",
        )
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
        need(
            self.high_loss in ("reference", "chance"),
            f"high_loss must be reference or chance, got {self.high_loss!r}",
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
        need(
            self.sort_channels in SORT_SETTINGS,
            f"sort_channels must be one of {', '.join(SORT_SETTINGS)}, got {self.sort_channels!r}",
        )
        need(
            self.teacher in TEACHERS,
            f"teacher must be one of {', '.join(TEACHERS)}, got {self.teacher!r}",
        )
        need(
            self.teacher != "original" or bool(self.init_weights),
            "teacher: original distills from the model loaded by init_weights: give "
            "--init-weights FILE too",
        )
        need(
            self.data != "tensors" or bool(self.data_dir),
            "data tensors needs data_dir: the .pt or .npz file holding train_x, train_y, "
            "test_x and test_y (--data-dir FILE.pt)",
        )
        need(
            self.data != "tensors" or self.image_size is None,
            "image_size applies to image datasets, not to data=tensors (its rows are fed as saved)",
        )
        need(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        need(
            not self.stream or self.data == "folder",
            f"stream applies to data=folder only, got data={self.data!r}",
        )
        need(self.recal_batches >= 1, f"recal_batches must be >= 1, got {self.recal_batches}")
        need(
            self.calib_size is None or self.calib_size >= 1,
            f"calib_size must be >= 1, got {self.calib_size}",
        )
        need(
            self.checkpoint_every >= 1,
            f"checkpoint_every must be >= 1, got {self.checkpoint_every}",
        )
        need(
            all(self.min_multiplier - 1e-9 <= w <= 1 for w in self.eval_widths),
            f"eval_widths must lie in [{self.min_multiplier}, 1], got {self.eval_widths}",
        )

        need(self.val_size >= 1, f"val_size must be >= 1, got {self.val_size}")
        need(
            self.train_subset is None or self.train_subset >= 1,
            f"train_subset must be >= 1 (or unset for the whole training set), "
            f"got {self.train_subset}",
        )
        need(
            self.image_size is None or self.image_size >= 1,
            f"image_size must be >= 1, got {self.image_size}",
        )
        need(self.momentum >= 0, f"momentum must be >= 0, got {self.momentum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        need(
            0 <= self.label_smoothing < 1,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        need(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        need(
            self.search_candidates >= 0,
            f"search_candidates must be >= 0, got {self.search_candidates}",
        )
        need(
            self.threads is None or self.threads >= 1,
            f"threads must be >= 1 (or unset for all cores), got {self.threads}",
        )
        need(
            self.checkpoint_minutes > 0,
            f"checkpoint_minutes must be > 0, got {self.checkpoint_minutes}",
        )
        need(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        need(bool(self.eval_widths), "eval_widths must hold at least one width")
        need(bool(str(self.out).strip()), "out must name a directory")
        check_device_name(self.device)
        _check_model(self.model, self.model_kwargs)
        _check_synthetic(self.synthetic)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build a config from file or flag values, converting each to its field's type.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type (naming the key).
        """
        refuse_unknown_keys(d, [f.name for f in fields(cls)], "unknown config key(s)")
        hints = typing.get_type_hints(cls)
        values = {k: coerce(k, v, hints[k]) for k, v in d.items()}
        return cls(**values)


#: One line of help per key: ``pareco train --help`` shows it with the default.
HELP: dict[str, str] = {
    "plugins": "modules to import first: they register cost metrics, datasets or slimming rules "
    "(kept in the run, so resume, front and export import them again)",
    "model": "a zoo name (pareco models lists them) or package.module:factory",
    "model_kwargs": "extra arguments of the model factory, as KEY=VALUE (e.g. width=8)",
    "data": "dataset",
    "data_dir": "dataset directory (default: the dataset's standard place); for data=tensors, "
    "the .pt or .npz file",
    "image_size": "image folders: resize images to this square side",
    "train_subset": "train on only this many training images (quick runs)",
    "val_size": "validation images carved from the training set: they select the front",
    "calib_size": "calibration images carved from the training set: the search scores on them "
    "(default: one training batch, as the reference)",
    "synthetic": "generated data (data=synthetic), as KEY=VALUE: num_train, num_test, "
    "num_classes, shape, noise, seed",
    "stream": "data=folder: decode images per sample in DataLoader workers (large folders)",
    "workers": "DataLoader worker processes for streamed folders",
    "method": "pareco (per-group widths searched while training), slim (uniform widths) or "
    "twostage (random per-group widths, searched after training)",
    "cost": "cost objective of the search",
    "latency_table": "latency table (pareco latency-table) for cost latency; copied into the run",
    "num_sampled": "M: widths trained per step besides the largest and the smallest",
    "min_multiplier": "smallest width multiplier of every channel group",
    "round_to": "round channel counts to a multiple of this",
    "epochs": "training epochs (a whole number)",
    "batch_size": "global batch size",
    "lr": "peak learning rate (default: 0.1 x batch_size / 256); with --resume, a new value "
    "continues the run at this rate (recorded in config.json and metrics.jsonl)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (never on BN parameters and biases)",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "schedule": "learning-rate decay after the warm-up",
    "label_smoothing": "label smoothing of the largest network's loss",
    "distill_warmup_epochs": "epochs in which the narrower networks learn from the labels "
    "before in-place distillation (0 = the paper)",
    "init_weights": "start from these trained weights: a state_dict file, a checkpoint with a "
    "state_dict or model entry, or .safetensors (new runs; --resume continues its own)",
    "sort_channels": "sort every group's channels by importance before training: auto (bn when "
    "--init-weights is given, else none), none, l1, l2, bn or taylor",
    "teacher": "what the narrower networks learn from: inplace (the largest network, the paper) "
    "or original (the --init-weights model, frozen)",
    "teacher_full": "with --teacher original, the largest network learns from the teacher too "
    "instead of the labels",
    "tau": "steps between proposal rounds (default: from the proposal budget); "
    "given, it sets the budget",
    "num_proposals": "proposal budget, used when tau is not given (default: scales with the "
    "run's length)",
    "warmup_proposals": "uniform warm-up proposals before the GP (default: scales with the budget)",
    "target": "target costs: pareto (Pareto-aware) or uniform (the Joslim variant)",
    "beta": "weight of the loss GP's standard deviation in its confidence bound",
    "loss_bound": "confidence bound of the loss in the scalarization: upper (mu + sqrt(beta) "
    "sigma, the authors' code) or lower (mu - sqrt(beta) sigma)",
    "high_loss": "loss of the point put at the smallest network's cost while the target front "
    "stops short of it: reference (the authors' constant 8) or chance (ln(classes))",
    "smallest_in_front": "put the smallest network's measured loss into the front that weights "
    "the target costs",
    "search_candidates": "TwoStage's search budget (0 = as many scoring images as PareCO's "
    "re-scoring spends, at most 1000 candidates)",
    "recal_batches": "training batches that recalibrate BN statistics per sub-network",
    "eval_widths": "uniform widths evaluated at the end of training",
    "seed": "random seed",
    "out": "run directory",
    "device": "auto, cpu, cuda or cuda:N",
    "amp": "mixed precision on CUDA",
    "channels_last": "channels-last memory format on CUDA",
    "threads": "CPU threads (default: all cores)",
    "checkpoint_every": "steps between checkpoints (one is also written every epoch)",
    "checkpoint_minutes": "minutes between checkpoints, whatever the step count",
    "log_every": "steps between metrics.jsonl lines",
}

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    """Refuse a device torch would not understand, before anything is loaded."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` of config key ``key``.

    Strings that spell a number are numbers (PyYAML reads ``1e-3`` as a string); a whole number
    is required where the key is an integer (``epochs: 2.5`` is refused, not truncated).

    Raises:
        ConfigError: naming the key, the expected type and the value given.
    """
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong(what: str) -> ConfigError:
        return ConfigError(f"{key} must be {what}, got {value!r}")

    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "yes",
            "1",
            "false",
            "no",
            "0",
        ):
            return value.strip().lower() in ("true", "yes", "1")
        raise wrong("true or false")
    if hint is int:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise wrong("a whole number")
        if number != int(number):
            raise wrong("a whole number")
        return int(number)
    if hint is float:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise wrong("a number")
        return float(number)
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong("a string")
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong("a mapping of name: value (on the command line, KEY=VALUE ...)")
        return {str(k): v for k, v in value.items()}
    if origin is list:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        (item,) = args
        return [coerce(key, v, item) for v in value]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _check_model(name: str, kwargs: dict[str, Any]) -> None:
    """A zoo name, and factory arguments the factory takes (a misspelt one would be a traceback)."""
    from pareco import models

    if ":" in name:  # package.module:factory (pareco.model_path checks it when it is built)
        return
    if name not in models.names():
        raise ConfigError(
            f"unknown model {name!r}: give a zoo name ({', '.join(models.names())}) or an "
            "import path package.module:factory"
        )
    factory = models.entry(name).build
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        if kwargs:  # the factory passes them on: only building tells whether they fit
            try:
                models.create(name, num_classes=2, in_channels=1, **kwargs)
            except TypeError as err:
                raise ConfigError(f"model_kwargs do not fit {name}: {err}") from None
        return
    allowed = sorted(set(params) - {"num_classes", "in_channels"})
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"model_kwargs: {name} takes no argument {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none'}"
        )


def refuse_unknown_keys(
    keys: Iterable[str], known: Iterable[str], what: str = "unknown config key(s)"
) -> None:
    """One ConfigError naming the ``keys`` that are not ``known``, and listing the valid ones.

    ``what`` starts the message (``"pareco.fit got unknown option(s)"``, ``"synthetic: unknown
    key(s)"``).
    """
    valid = set(known)
    unknown = sorted(set(keys) - valid)
    if unknown:
        raise ConfigError(f"{what} {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}")


def _check_synthetic(spec: dict[str, Any]) -> None:
    from pareco.data import SyntheticSpec

    refuse_unknown_keys(spec, [f.name for f in fields(SyntheticSpec)], "synthetic: unknown key(s)")
    for key in ("num_train", "num_test", "num_classes"):
        if key in spec:
            n = coerce(f"synthetic.{key}", spec[key], int)
            if n < (2 if key == "num_classes" else 1):
                raise ConfigError(
                    f"synthetic.{key} must be >= {2 if key == 'num_classes' else 1}, got {n}"
                )
    if "shape" in spec:
        shape = spec["shape"]
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3):
            raise ConfigError(f"synthetic.shape must be [channels, height, width], got {shape!r}")
        for v in shape:
            if coerce("synthetic.shape", v, int) < 1:
                raise ConfigError(f"synthetic.shape must be positive, got {shape!r}")


#: Keys a resumed run may change: where it lives, how it runs, and (to recover from a divergence)
#: its learning rate. Every other key must match the run's config.json.
RESUME_MAY_CHANGE = (
    "out",
    "plugins",
    "lr",
    "device",
    "threads",
    "checkpoint_every",
    "checkpoint_minutes",
    "log_every",
)


def resume_clash(saved: dict[str, Any], asked: dict[str, Any]) -> str:
    """The settings of ``asked`` that contradict a run's ``config.json`` (``saved``) where a
    resumed run may not change them ("epochs: run has 3, asked 10, ..."); "" when none do."""
    defaults = TrainConfig().to_dict()  # a key the run's config.json predates has its default
    return ", ".join(
        f"{k}: run has {saved.get(k, defaults[k])!r}, asked {v!r}"
        for k, v in asked.items()
        if k not in RESUME_MAY_CHANGE and saved.get(k, defaults[k]) != v
    )


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
        raise ConfigError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {first_line(err)}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def write_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as JSON (``RUNDIR/config.json``), atomically."""
    from pareco.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(config.to_dict(), indent=1) + "\n")
