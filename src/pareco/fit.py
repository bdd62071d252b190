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

from pareco.build import build_net
from pareco.checkpoint import CHECKPOINT, has_checkpoint
from pareco.config import DATASETS, ConfigError, TrainConfig
from pareco.data.loaders import LoaderData, as_pair
from pareco.run import Run, load_run, register_run_sources
from pareco.slimming import SlimmableNet, slim
from pareco.trainer import RunError, Trainer


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
    **options: Any,
) -> Run:
    """Train a slimmable network and return its run.

    Args:
        model: a plain ``nn.Module`` (slimmed here, on a copy: the argument is left as it is), an
            already slimmable net (``pareco.slim``), or a zoo name / ``package.module:factory``
            when ``train`` is pareco data (``pareco.data.load_dataset`` and friends).
        train: a ``DataLoader`` or any iterable of ``(inputs, targets)`` batches, or pareco data
            (which brings its own validation, calibration and test splits).
        val: validation batches, which select the front; None carves them out of ``train``'s
            dataset by index (``val_size`` samples).
        test: test batches the front reports on; None reports on ``val`` (and says so).
        calib: the batch (or loader) the search scores widths on; None carves ``calib_size``
            samples (default: one training batch) out of ``train``'s dataset.
        method: ``pareco``, ``slim`` or ``twostage``.
        cost: the search's cost, ``flops`` or ``memory``.
        epochs: passes over ``train``.
        optimizer: ``params -> Optimizer``; default SGD with momentum, the paper's recipe.
        scheduler: ``optimizer -> scheduler``, stepped after every step; default warm-up then
            linear decay (``warmup_epochs``, ``schedule``).
        loss_fn: ``(logits, targets) -> loss`` of the largest network; default cross-entropy with
            label smoothing 0.1. The narrower networks always learn from the largest one.
        out: the run directory (``config.json``, ``checkpoint.pt``, ``history.jsonl``...).
        resume: continue the run in ``out`` from its checkpoint, exactly.
        progress: show progress bars.
        steps_per_epoch: batches per epoch, for a ``train`` without ``len()``.
        **options: any other ``TrainConfig`` field (``seed``, ``num_sampled``, ``val_size``,
            ``calib_size``, ``recal_batches``, ``lr``, ``device``, ``threads``...).

    Returns:
        The finished run; ``pareco.front.build_front(run)`` and
        ``pareco.front.export_for_budget(run.run_dir, ...)`` accept it.

    Raises:
        RunError, DatasetError, ConfigError, SlimError: one line saying what to change.
    """
    if not isinstance(model, (nn.Module, str)):
        raise RunError(
            f"pareco.fit needs an nn.Module (or a model name), got {type(model).__name__}"
        )
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data", "out"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"pareco.fit got unknown option(s) {', '.join(unknown)}; options are TrainConfig "
            f"fields: {', '.join(sorted(known))}"
        )
    has_run = has_checkpoint(Path(out))
    if has_run != resume:
        raise RunError(
            f"{out} already holds a run: pass resume=True to continue it, or choose another out"
            if has_run
            else f"resume=True: {out} holds no {CHECKPOINT}; start the run without resume"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    seed = int(options.get("seed", 0))
    if hasattr(train, "train_loader") and hasattr(train, "full_batch"):  # pareco's own data
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
        model=name, data=data.name if data.name in DATASETS else "loaders", method=method,
        cost=cost, epochs=epochs, batch_size=batch_size, out=str(out), **options,
    )  # fmt: skip
    net = _slimmable(model, config, data)
    template = copy.deepcopy(net)
    register_run_sources(out, lambda: copy.deepcopy(template), data)
    trainer = Trainer(
        config, resume=resume, progress=progress, data=data, net=net,
        optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
    )  # fmt: skip
    trainer.fit()
    return load_run(out, trainer.device)


def _slimmable(model: nn.Module | str, config: TrainConfig, data: Any) -> SlimmableNet:
    if isinstance(model, str):
        return build_net(config, data)
    if isinstance(model, SlimmableNet):
        return model
    example = torch.zeros(1, *data.input_shape)
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
    out = probe(x[:2].cpu())
    if not isinstance(out, Tensor) or out.dim() != 2:
        raise RunError(
            "the model must return logits of shape batch x classes, got "
            f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
        )
    return int(out.shape[1])
