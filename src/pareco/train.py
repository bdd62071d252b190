"""The trainer: sandwich-rule steps with in-place distillation, resumable runs.

Every step (DESIGN.md §2): the largest network learns from the labels (cross-entropy with label
smoothing); the sampler's M widths and the smallest network learn from the largest network's
detached output (soft cross-entropy); the gradients of all passes add up; one optimizer step.
"""

from __future__ import annotations

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

from pareco import models
from pareco.checkpoint import CHECKPOINT, CheckpointError, load_checkpoint, save_checkpoint
from pareco.config import TrainConfig, write_config
from pareco.data import DataSplits, SyntheticSpec, load_dataset
from pareco.evaluate import evaluate
from pareco.metrics import MetricsWriter
from pareco.samplers import ParecoSampler, Sampler, default_num_proposals, make_sampler
from pareco.slim import SlimmableNet, slim


class RunError(RuntimeError):
    """A run that cannot start or go on, with what to do: printed as one line."""


class NonFiniteLoss(RunError):
    pass


def resolve_device(name: str) -> torch.device:
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

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(config.out)
        self.progress = progress
        self.rank, self.world = 0, 1
        self.is_main = True
        has_checkpoint = (self.run_dir / CHECKPOINT).exists()
        if resume and not has_checkpoint:
            raise RunError(
                f"--resume: {self.run_dir} holds no {CHECKPOINT}; start the run without --resume"
            )
        if not resume and has_checkpoint:
            raise RunError(
                f"{self.run_dir} already holds a run: pass --resume to continue it, "
                "or choose another --out"
            )
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        _seed_everything(config.seed)

        self.data = build_data(config)
        self.net = build_net(config, self.data).to(self.device)
        self.cuda = self.device.type == "cuda"
        self.channels_last = self.cuda and config.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.amp_dtype = _amp_dtype(self.device) if (self.cuda and config.amp) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.loader = self.data.train_loader(
            config.batch_size, seed=config.seed, device=self.device
        )
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
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
        self.num_proposals = config.num_proposals or default_num_proposals(
            self.total_steps, config.warmup_proposals
        )
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
            warmup=config.warmup_proposals,
            beta=config.beta,
            target=config.target,
            history_path=self.run_dir / "history.jsonl",
        )
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

    def describe(self) -> str:
        cfg, space = self.config, self.net.space
        method = {"slim": "Slim (uniform widths)",
                  "twostage": "TwoStage stage 1 (per-group widths)",
                  "pareco": f"PareCO (tau {self.tau} steps, {self.num_proposals} proposals, "
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
        g = torch.Generator().manual_seed(self.config.seed + 1)
        train = self.data.train
        n = min(len(train), self.config.recal_batches * self.config.batch_size)
        idx = torch.randperm(len(train), generator=g)[:n]
        recal_x = self.data.normalize(train.x[idx].to(self.device))
        recal = list(recal_x.split(self.config.batch_size))
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

    def sandwich_step(self, x: Tensor, y: Tensor, widths: list[Tensor]) -> dict[str, float]:
        """One optimizer step over the largest, the sampled and the smallest networks."""
        net, space, cfg = self.net, self.net.space, self.config
        self.optimizer.zero_grad(set_to_none=True)
        with net.widths(space.largest()):
            logits = self._forward(net, x)
            loss_full = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        self.scaler.scale(loss_full).backward()
        teacher = F.softmax(logits.detach().float(), dim=1)
        losses = {"loss_full": loss_full.detach()}
        for i, alpha in enumerate([*widths, space.smallest()]):
            with net.widths(alpha):
                loss = soft_cross_entropy(self._forward(net, x).float(), teacher)
            self.scaler.scale(loss).backward()
            losses["loss_small" if i == len(widths) else f"loss_{i}"] = loss.detach()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {k: v.item() for k, v in losses.items()}

    @torch.no_grad()
    def score(self, alphas: Tensor) -> Tensor:
        """Loss of each width on the fixed calibration batch with the current weights.

        BN uses the batch's own statistics (train mode), as the running statistics are shared by
        all widths; the running statistics are left exactly as they were.
        """
        x, y = self.batches.calib
        bn = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [
            (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
            for m in bn
        ]
        out = torch.empty(len(alphas), dtype=torch.float64)
        try:
            for i, alpha in enumerate(alphas):
                with self.net.widths(alpha):
                    out[i] = F.cross_entropy(self._forward(self.net, x).float(), y).item()
        finally:
            for m, (mean, var, count) in zip(bn, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        return out

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to the end (or from where the checkpoint left off), then evaluate."""
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
                widths = self.sampler.widths(self.step, self.score)
                losses = self.sandwich_step(x, y, widths)
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
        summary = self.evaluate_uniform()
        self.metrics.close()
        return summary

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate_uniform(self) -> dict[str, Any]:
        """Test accuracy (BN recalibrated) at a few uniform widths: a quick look at the run."""
        cfg, space = self.config, self.net.space
        loader = self.data.eval_loader("test", batch_size=500, device=self.device)
        rows = []
        for w in cfg.eval_widths:
            alpha = space.uniform(w)
            result = evaluate(self.net, alpha, loader, recalibration=self.batches.recal)
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
            self.sampler.load_state_dict(state["sampler"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise RunError(
                f"the checkpoint in {self.run_dir} does not fit this configuration "
                f"({str(err).splitlines()[0]})"
            ) from None
        self.step = int(state["step"])
        self.finished = bool(state["finished"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        _set_rng_state(state["rng"])


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
