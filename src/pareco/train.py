"""The trainer: sandwich-rule steps with in-place distillation, resumable runs.

Every step (DESIGN.md §2): the largest network learns from the labels (cross-entropy with label
smoothing); the sampler's M widths and the smallest network learn from the largest network's
detached output (soft cross-entropy); the gradients of all passes add up; one optimizer step.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pareco import distributed, models, rundir
from pareco.checkpoint import CheckpointError, has_checkpoint, load_checkpoint, save_checkpoint
from pareco.config import TrainConfig, write_config
from pareco.data import DataSplits, SyntheticSpec, load_dataset
from pareco.evaluate import evaluate, score_widths
from pareco.metrics import MetricsWriter
from pareco.samplers import (
    ParecoSampler,
    Sampler,
    default_num_proposals,
    default_warmup,
    make_sampler,
)
from pareco.slim import SlimmableNet, slim


class RunError(RuntimeError):
    """A run that cannot start or go on, with what to do: printed as one line."""


class NonFiniteLoss(RunError):
    pass


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where torch sees a GPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(
            f"--device {name} was asked for, but torch sees no CUDA device; use --device cpu"
        )
    return device


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Cross-entropy against a distribution (in-place distillation), mean over the batch."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(1).mean()


def param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on BN parameters and biases (every parameter with fewer than 2 dims)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up over ``warmup`` steps, then linear or cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1.0 - progress)


def build_data(config: TrainConfig) -> DataSplits:
    synthetic = SyntheticSpec(
        **{k: tuple(v) if k == "shape" else v for k, v in config.synthetic.items()}
    )
    return load_dataset(
        config.data,
        config.data_dir,
        seed=config.seed,
        val_size=config.val_size,
        calib_size=config.calib_size,
        train_subset=config.train_subset,
        image_size=config.image_size,
        synthetic=synthetic if config.data == "synthetic" else None,
    )


def build_net(config: TrainConfig, data: DataSplits) -> SlimmableNet:
    entry = models.entry(config.model)
    c, h, w = data.input_shape
    model = models.create(
        config.model, num_classes=data.num_classes, in_channels=c, **config.model_kwargs
    )
    return slim(
        model,
        torch.zeros(1, c, h, w),
        ignored=entry.ignored,
        round_to=config.round_to,
        min_multiplier=config.min_multiplier,
    )


@dataclass
class Batches:
    """Fixed data the trainer reuses: the calibration batch and the BN recalibration batches."""

    calib: tuple[Tensor, Tensor]
    recal: list[Tensor]


class Trainer:
    """Owns one run: data, slimmable net, sampler, optimizer, schedule, checkpoints, metrics.

    Args:
        config: the run's configuration (``config.out`` is the run directory).
        resume: continue the run in ``config.out`` from its checkpoint.
        progress: show tqdm progress bars.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        restart: bool = False,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = Path(config.out)
        self.progress = progress
        self.lock = rundir.claim(self.run_dir, resume=resume, restart=restart)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.dist = distributed.init(self.device)
        self.rank, self.world, self.is_main = self.dist.rank, self.dist.world, self.dist.is_main
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        _seed_everything(config.seed)

        self.data = build_data(config)
        self.net = build_net(config, self.data).to(self.device)
        torch.manual_seed(config.seed + self.rank)  # same initial weights, per-rank dropout
        self.cuda = self.device.type == "cuda"
        self.channels_last = self.cuda and config.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.amp_dtype = _amp_dtype(self.device) if (self.cuda and config.amp) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        if config.batch_size % self.world:
            raise RunError(
                f"--batch-size {config.batch_size} (the global batch) must divide by the "
                f"{self.world} processes"
            )
        if config.batch_size > len(self.data.train):
            raise RunError(
                f"--batch-size {config.batch_size} is larger than the {len(self.data.train)} "
                "training images: choose a smaller batch"
            )
        shard = (self.rank, self.world) if self.dist.enabled else None
        self.loader = self.data.train_loader(
            config.batch_size, seed=config.seed, device=self.device, shard=shard
        )
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.distill_warmup_steps = round(config.distill_warmup_epochs * self.steps_per_epoch)
        self.optimizer = torch.optim.SGD(
            param_groups(self.net, config.weight_decay),
            lr=config.learning_rate,
            momentum=config.momentum,
            nesterov=False,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, self.total_steps, self.warmup_steps, config.schedule),
        )
        self.num_proposals = config.num_proposals or default_num_proposals(self.total_steps)
        self.warmup_proposals = config.warmup_proposals or default_warmup(self.num_proposals)
        self.tau = config.tau or max(
            1, round(self.total_steps * config.num_sampled / max(1, self.num_proposals))
        )
        self.sampler: Sampler = make_sampler(
            config.method,
            self.net.space,
            num=config.num_sampled,
            seed=config.seed,
            cost_ratio=lambda a: self.net.cost_ratio(a, config.cost),
            tau=self.tau,
            warmup=self.warmup_proposals,
            beta=config.beta,
            target=config.target,
            history_path=self.run_dir / "history.jsonl" if self.is_main else None,
        )
        self.model: nn.Module = self.net
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids, broadcast_buffers=False)
        self.batches = self._fixed_batches()
        self.step = 0
        self.finished = False
        self.train_seconds = 0.0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._restore()
        elif self.is_main:
            write_config(config, self.run_dir / "config.json")
            (self.run_dir / "history.jsonl").unlink(missing_ok=True)
        self.metrics = MetricsWriter(self.run_dir, enabled=self.is_main)

    def close(self) -> None:
        """Let another process write the run directory (the lock also goes when this one ends)."""
        if self.lock is not None:
            self.lock.release()

    def describe(self) -> str:
        cfg, space = self.config, self.net.space
        method = {"slim": "Slim (uniform widths)",
                  "twostage": "TwoStage stage 1 (per-group widths)",
                  "pareco": f"PareCO (tau {self.tau} steps, {self.num_proposals} proposals "
                            f"({self.warmup_proposals} uniform warm-up), "
                            f"{cfg.target} targets)"}[cfg.method]  # fmt: skip
        return (
            f"{self.data.describe()}\n"
            f"{cfg.model}: {space.dim} searchable groups, "
            f"{self.net.cost(space.largest(), 'flops').item() / 1e6:.1f} MFLOPs at full width\n"
            f"{method}, cost {cfg.cost}; {cfg.epochs} epochs x {self.steps_per_epoch} steps, "
            f"batch {cfg.batch_size}, lr {cfg.learning_rate:g}, device {self.device}\n"
            f"run directory: {self.run_dir}"
        )

    # --- fixed batches ------------------------------------------------------------------------
    def _fixed_batches(self) -> Batches:
        x, y = self.data.full_batch("calib", self.device)
        cfg = self.config
        recal = recalibration_batches(
            self.data, cfg.recal_batches, cfg.batch_size, cfg.seed, self.device
        )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            recal = [r.contiguous(memory_format=torch.channels_last) for r in recal]
        return Batches((x, y), recal)

    # --- one step -------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, x: Tensor) -> Tensor:
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            return model(x)

    def _widths(self) -> list[Tensor]:
        """This step's sampled widths: chosen on rank 0, identical on every rank."""
        if self.is_main:
            widths = self.sampler.widths(self.step, self.score)
        else:
            widths = []
            if self.config.method == "pareco" and self.step > 0 and self.step % self.tau == 0:
                self.score(None)  # rank 0 is re-scoring the history: take part
        return distributed.broadcast_widths(widths, self.dist, self.net.space.dim, self.device)

    def sandwich_step(self, x: Tensor, y: Tensor, widths: list[Tensor]) -> dict[str, float]:
        """One optimizer step over the largest, the sampled and the smallest networks.

        The narrower networks learn from the largest network's detached output (in-place
        distillation), or from the labels during the first ``distill_warmup_epochs``.

        Under DDP the gradients of all passes accumulate locally (``no_sync``) and are
        all-reduced once, in the last backward.
        """
        net, space, cfg = self.net, self.net.space, self.config
        alphas = [space.largest(), *widths, space.smallest()]
        self.optimizer.zero_grad(set_to_none=True)
        losses, teacher = [], None
        distill = self.step >= self.distill_warmup_steps
        for i, alpha in enumerate(alphas):
            last = i == len(alphas) - 1
            sync = (
                self.model.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
            )
            with sync, net.widths(alpha):
                logits = self._forward(self.model, x).float()
                if teacher is None or not distill:
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    teacher = F.softmax(logits.detach(), dim=1)
                else:
                    loss = soft_cross_entropy(logits, teacher)
                self.scaler.scale(loss).backward()
            losses.append(loss.detach())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values = distributed.all_reduce_sum(torch.stack(losses).double(), self.dist) / self.world
        names = ["loss_full", *(f"loss_{i}" for i in range(len(widths))), "loss_small"]
        return dict(zip(names, values.tolist()))

    def score(self, alphas: Tensor | None) -> Tensor:
        """Loss of each width (``n x dim``) on the fixed calibration batch, ``n``.

        Under torchrun every rank calls this together: rank 0 passes the widths, the others None;
        each scores its share and rank 0 gets all the losses.
        """
        if not self.dist.enabled:
            return self._score_local(alphas)
        alphas = distributed.broadcast_alphas(alphas, self.dist, self.net.space.dim, self.device)
        local = self._score_local(alphas[self.rank :: self.world])
        return distributed.gather_scores(local, len(alphas), self.dist, self.device)

    def _score_local(self, alphas: Tensor) -> Tensor:
        return score_widths(self.net, alphas, [self.batches.calib], self._forward)

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to the end (or from where the checkpoint left off), then evaluate.

        The run directory's lock is released when this returns or raises.
        """
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        self.net.train()
        last_log = time.perf_counter()
        imgs_since_log = 0
        while self.step < self.total_steps:
            epoch = self.loader.epoch
            bar = _progress(
                self.progress and self.is_main,
                self.steps_per_epoch,
                self.loader.position,
                epoch,
                cfg.epochs,
            )
            epoch_start = time.perf_counter()
            for x, y in self.loader:
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                start = time.perf_counter()
                losses = self.sandwich_step(x, y, self._widths())
                self.train_seconds += time.perf_counter() - start
                if not all(math.isfinite(v) for v in losses.values()):
                    raise NonFiniteLoss(
                        f"the loss became {losses} at step {self.step} (epoch {epoch}); the "
                        f"last good checkpoint in {self.run_dir} is intact: --resume retries "
                        "from it, or start again with a lower --lr"
                    )
                self.step += 1
                imgs_since_log += x.shape[0] * self.world
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses['loss_full']:.3f}", refresh=False)
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    now = time.perf_counter()
                    img_s = imgs_since_log / max(now - last_log, 1e-9)
                    self.metrics.log(
                        self.step,
                        {
                            **losses,
                            "lr": self.scheduler.get_last_lr()[0],
                            "img_per_s": img_s,
                            "epoch": epoch,
                        },
                    )
                    if bar is not None:
                        bar.set_postfix(loss=f"{losses['loss_full']:.3f}", img_s=f"{img_s:.0f}")
                    last_log, imgs_since_log = now, 0
                if self.step % cfg.checkpoint_every == 0 and self.step < self.total_steps:
                    self.save()
                if self.step >= self.total_steps:
                    break
            if bar is not None:
                bar.close()
            if self.is_main:
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: loss {losses['loss_full']:.4f}, "
                    f"{time.perf_counter() - epoch_start:.1f}s",
                    flush=True,
                )
            self.save()
        self.finished = True
        if isinstance(self.sampler, ParecoSampler) and self.is_main:
            self.sampler.flush()
        self.save()
        distributed.barrier(self.dist)
        summary = self.evaluate_uniform()
        self.metrics.close()
        return summary

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate_uniform(self) -> dict[str, Any]:
        """Test accuracy (BN recalibrated) at a few uniform widths: a quick look at the run."""
        cfg, space = self.config, self.net.space
        shard = (self.rank, self.world) if self.dist.enabled else None
        loader = self.data.eval_loader("test", batch_size=500, device=self.device, shard=shard)
        recal = self.batches.recal
        share = recal[: len(recal) // self.world * self.world][self.rank :: self.world]
        rows = []
        for w in cfg.eval_widths:
            alpha = space.uniform(w)
            result = evaluate(self.net, alpha, loader, recalibration=share, ctx=self.dist)
            rows.append({
                "width": w,
                "flops_ratio": self.net.cost_ratio(alpha, "flops").item(),
                "memory_ratio": self.net.cost_ratio(alpha, "memory").item(),
                "mflops": self.net.cost(alpha, "flops").item() / 1e6,
                "test_accuracy": result.accuracy,
            })  # fmt: skip
        summary = {"uniform": rows, "train_seconds": self.train_seconds, "steps": self.step}
        if isinstance(self.sampler, ParecoSampler):
            summary["search_seconds"] = dict(self.sampler.timings)
        if self.is_main:
            (self.run_dir / "eval.json").write_text(json.dumps(summary, indent=1) + "\n")
            print(format_uniform_table(rows))
        return summary

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "loader": self.loader.state_dict(),
            "step": self.step,
            "finished": self.finished,
            "train_seconds": self.train_seconds,
            "space": self.net.space.to_dict(),
            "rng": _rng_state(),
        }

    def save(self) -> None:
        if self.is_main:
            save_checkpoint(self.state_dict(), self.run_dir)

    def _restore(self) -> None:
        try:
            state = load_checkpoint(self.run_dir, map_location=self.device)
        except CheckpointError as err:
            raise RunError(str(err)) from None
        try:
            self.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.loader.load_state_dict(state["loader"])
            if self.is_main:  # only rank 0 samples; the others follow its broadcasts
                self.sampler.load_state_dict(state["sampler"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise RunError(
                f"the checkpoint in {self.run_dir} does not fit this configuration "
                f"({str(err).splitlines()[0]})"
            ) from None
        self.step = int(state["step"])
        self.finished = bool(state["finished"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if self.is_main:
            _set_rng_state(state["rng"])


def recalibration_batches(
    data: DataSplits, n_batches: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
) -> list[Tensor]:
    """A fixed set of ``n_batches`` training batches (no augmentation) for BN recalibration."""
    g = torch.Generator().manual_seed(seed + 1)
    train = data.train
    n = min(len(train), n_batches * batch_size)
    idx = torch.randperm(len(train), generator=g)[:n]
    return list(data.normalize(train.x[idx].to(device)).split(batch_size))


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


def format_uniform_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "width  FLOPs ratio  memory ratio   MFLOPs  test acc",
        "-----  -----------  ------------  -------  --------",
    ]
    for r in rows:
        lines.append(
            f"{r['width']:5.2f}  {r['flops_ratio']:11.3f}  {r['memory_ratio']:12.3f}  "
            f"{r['mflops']:7.2f}  {100 * r['test_accuracy']:7.2f}%"
        )
    return "\n".join(lines)


def _progress(enabled: bool, total: int, initial: int, epoch: int, epochs: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        dynamic_ncols=True,
    )


def _amp_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
