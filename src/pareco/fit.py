"""The whole run from Python: any ``nn.Module``, any ``DataLoader``, the run ``pareco train`` makes.

``pareco.fit(model, train_loader, ...)`` slims the model, trains it with the method's sampler
(the sandwich rule with in-place distillation), checkpoints and resumes exactly, and returns the
:class:`pareco.run.Run` that ``pareco.front.build_front`` and ``export_for_budget`` take. It is the
same :class:`pareco.trainer.Trainer` the command line runs, given the user's objects instead of
names.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.build import build_net
from pareco.checkpoint import CHECKPOINT, has_checkpoint
from pareco.config import (
    TrainConfig,
    data_names,
    read_config_file,
    refuse_unknown_keys,
    resume_clash,
)
from pareco.data.loaders import LoaderData, as_pair, model_ready
from pareco.data.registry import USER_LOADERS
from pareco.data.source import DataSource
from pareco.data.tensors import TensorData
from pareco.errors import RunError
from pareco.outputs import logits_of
from pareco.run import Run, load_run, register_run_sources
from pareco.slimming import SlimmableNet, slim


def fit(
    model: nn.Module | str,
    train: Any,
    *,
    val: Iterable | None = None,
    test: Iterable | None = None,
    calib: Iterable | tuple[Tensor, Tensor] | None = None,
    method: str = "pareco",
    cost: str = "flops",
    epochs: int = 10,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    out: str | Path = "runs/fit",
    resume: bool = False,
    progress: bool = False,
    steps_per_epoch: int | None = None,
    teacher: nn.Module | str | None = None,
    **options: Any,
) -> Run:
    """Train a slimmable network and return its run.

    Args:
        model: a plain ``nn.Module`` (slimmed here, on a copy: the argument is left as it is), an
            already slimmable net (``pareco.slim``), or a zoo name / ``package.module:factory``
            when ``train`` is pareco data (``pareco.data.load_dataset`` and friends).
        train: a ``DataLoader`` or any iterable of ``(inputs, targets)`` batches, or pareco data
            (which brings its own validation, calibration and test splits). ``inputs`` is a
            tensor, or a dict of tensors passed as keyword arguments (a tokenizer's
            ``input_ids`` and ``attention_mask``); the model may return a tensor of logits or a
            Hugging Face ``ModelOutput``.
        val: validation batches, which select the front; None carves them out of ``train``'s
            dataset by index (``val_size`` samples).
        test: test batches the front reports on; None reports on ``val``, and says so:
            front.json and eval.json record ``"report": "validation"`` with a note, since
            those figures come from the split that selected the front.
        calib: the batch (or loader) the search scores widths on; None carves ``calib_size``
            samples (default: one training batch) out of ``train``'s dataset.
        method: ``pareco``, ``slim`` or ``twostage``.
        cost: the search's cost, ``flops``, ``memory`` or ``latency`` (with ``latency_table=PATH``,
            a table built for this net: ``pareco.latency.build_table``).
        epochs: passes over ``train``.
        optimizer: ``params -> Optimizer``; default SGD with momentum, the paper's recipe.
        scheduler: ``optimizer -> scheduler``, stepped after every step; default warm-up then
            linear decay (``warmup_epochs``, ``schedule``).
        loss_fn: ``(logits, targets) -> loss`` of the largest network; default cross-entropy with
            label smoothing 0.1. The narrower networks always learn from the largest one.
        out: the run directory (``config.json``, ``checkpoint.pt``, ``history.jsonl``...).
        resume: continue the run in ``out`` from its checkpoint, exactly, with the settings it
            was started with (only ``pareco.config.RESUME_MAY_CHANGE`` may differ: device,
            threads, lr, ...). Under torchrun every rank makes the same call.
        progress: show progress bars.
        steps_per_epoch: batches per epoch, for a ``train`` without ``len()``.
        teacher: what the narrower networks learn from: None or ``"inplace"`` (the largest
            network, the paper), ``"original"`` (the model loaded from ``init_weights=FILE``,
            frozen), or any module (a trained model, deep-copied and frozen; it is called on
            the same batches and must return logits of the same classes).
        **options: any other ``TrainConfig`` field (``seed``, ``num_sampled``, ``val_size``,
            ``calib_size``, ``recal_batches``, ``lr``, ``device``, ``threads``...). To start
            from trained weights: ``init_weights=FILE`` (loaded into ``model``) and
            ``sort_channels`` (``auto`` sorts by BN ``|gamma|`` when ``init_weights`` is given;
            ``l1``, ``l2``, ``bn``, ``taylor`` sort the model as given, e.g. one you trained).

    Returns:
        The finished run; ``pareco.front.build_front(run)`` and
        ``pareco.budget.export_for_budget(run.run_dir, ...)`` accept it.

    Raises:
        RunError, DatasetError, ConfigError, SlimError: one line saying what to change.
    """
    if not isinstance(model, (nn.Module, str)):
        raise RunError(
            f"pareco.fit needs an nn.Module (or a model name), got {type(model).__name__}"
        )
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data", "out"}
    refuse_unknown_keys(options, known, "pareco.fit got unknown option(s)")
    has_run = has_checkpoint(Path(out))
    if has_run != resume:
        raise RunError(
            f"{out} already holds a run: pass resume=True to continue it, or choose another out"
            if has_run
            else f"resume=True: {out} holds no {CHECKPOINT}; start the run without resume"
        )
    teacher_module = None
    if isinstance(teacher, nn.Module):
        teacher_module = copy.deepcopy(teacher)
        options["teacher"] = "module"
    elif teacher is not None:
        options["teacher"] = teacher
    world = int(os.environ.get("WORLD_SIZE", "1"))
    seed = int(options.get("seed", 0))
    data: DataSource
    if isinstance(train, TensorData):  # a file of tensors: the config records how it was carved
        data = train
        for key, value in (*data.settings.items(), ("seed", data.seed)):
            if options.setdefault(key, value) != value:
                raise RunError(
                    f"{key}={options[key]!r} but the TensorData was built with {key}={value!r}: "
                    "give the same value to both (or leave it out of pareco.fit)"
                )
        batch_size = options.pop("batch_size")
    elif isinstance(train, DataSource):  # pareco's own data
        data = train
        batch_size = int(options.pop("batch_size", 128))
    else:
        if isinstance(model, str):
            raise RunError(
                "pareco.fit with your own loaders needs the model itself (an nn.Module), not a name"
            )
        batch = next(iter(train), None)
        if batch is None:
            raise RunError("the training loader yields no batches: give it some data")
        first = as_pair(batch, "the training loader")
        calib_size = options.get("calib_size") or len(first[1])  # default: one training batch
        data = LoaderData(
            train, val=val, test=test, calib=calib, num_classes=_num_classes(model, first[0]),
            val_size=int(options.get("val_size", 5000)),
            calib_size=int(calib_size),
            seed=seed, steps_per_epoch=steps_per_epoch,
        )  # fmt: skip
        batch_size = data.batch_size * world  # the loader's batch, over all ranks
        options.pop("batch_size", None)
    name = model if isinstance(model, str) else f"python:{type(model).__qualname__}"
    config = TrainConfig(
        model=name, data=data.name if data.name in data_names() else USER_LOADERS, method=method,
        cost=cost, epochs=epochs, batch_size=batch_size, out=str(out), **options,
    )  # fmt: skip
    if resume:
        _same_settings(Path(out), config)
    from pareco.trainer import Trainer  # the trainer loads only when a run is trained

    net = _slimmable(model, config, data)
    template = copy.deepcopy(net)
    register_run_sources(out, lambda: copy.deepcopy(template), data)
    trainer = Trainer(
        config, resume=resume, progress=progress, data=data, net=net,
        optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, teacher=teacher_module,
    )  # fmt: skip
    trainer.fit()
    return load_run(out, trainer.device)


def _same_settings(out: Path, config: TrainConfig) -> None:
    """A resumed run keeps its settings (the schedule, the search's budget, ... were laid out
    for them); only ``RESUME_MAY_CHANGE`` (device, threads, lr, ...) may differ."""
    saved_path = out / "config.json"
    if not saved_path.is_file():
        return
    saved, asked = read_config_file(saved_path), config.to_dict()
    if str(saved.get("model", "")).startswith("python:") and config.model.startswith("python:"):
        del asked["model"]  # a module's class name (the checkpoint's weights must fit it anyway)
    clash = resume_clash(saved, asked)
    if clash:
        raise RunError(
            f"resume=True continues the run in {out} as it was configured ({clash}): call "
            "pareco.fit with the settings of the run you are resuming"
        )


def _slimmable(model: nn.Module | str, config: TrainConfig, data: DataSource) -> SlimmableNet:
    if isinstance(model, str):
        return build_net(config, data)
    if isinstance(model, SlimmableNet):
        return model
    example = data.example_input("cpu")  # a real sample: its dtype too (token ids are integers)
    return slim(
        copy.deepcopy(model).cpu(),
        example,
        round_to=config.round_to,
        min_multiplier=config.min_multiplier,
    )


@torch.no_grad()
def _num_classes(model: nn.Module, x: Tensor) -> int:
    """Outputs of ``model`` on a batch: what the front and export record as classes."""
    probe = copy.deepcopy(model).cpu().eval()
    try:
        x = model_ready(batch_inputs.to(batch_inputs.take(x, 2), "cpu"))
        out = logits_of(batch_inputs.call(probe, x))
    except TypeError as err:
        raise RunError(str(err)) from None
    if out.dim() != 2:
        raise RunError(
            "the model must return logits of shape batch x classes, got "
            f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
        )
    return int(out.shape[1])
