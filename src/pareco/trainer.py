"""The trainer: pareco's own training loop, a composition of the parts a user can take alone.

:class:`Trainer` owns one run (data, slimmable net, sampler, optimizer, schedule, checkpoints,
metrics) and drives it with the same parts a hand-written loop uses: the sandwich step
(:mod:`pareco.sandwich`), a width sampler told the step count (:mod:`pareco.samplers`), the
optimizer and schedule (:mod:`pareco.schedule`) and BN recalibration (:mod:`pareco.recalibrate`).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco import distributed, rundir
from pareco.atomic import write_text_atomic
from pareco.build import build_data, build_net
from pareco.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pareco.config import TrainConfig, write_config
from pareco.cost_metrics import RUN_TABLE, run_pricer
from pareco.data.source import TEST_IS_VAL_NOTE, DataSource
from pareco.errors import RunError, first_line
from pareco.evaluate import evaluate, score_widths
from pareco.metrics import MetricsWriter
from pareco.samplers import (
    ParecoSampler,
    Sampler,
    default_warmup,
    proposal_budget,
    run_sampler,
)
from pareco.sandwich import label_loss, loss_names, sandwich_backward
from pareco.schedule import sgd, warmup_decay
from pareco.slimming import SlimmableNet
from pareco.sort_channels import sort_channels
from pareco.weights import WeightsError, load_init_weights

#: Training batches the ``taylor`` sorting criterion averages over.
TAYLOR_BATCHES = 4


class NonFiniteLoss(RunError):
    """The training loss became NaN or infinite (the message says where to resume from)."""


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


@dataclass
class Batches:
    """Fixed data the trainer reuses: the calibration batch and the BN recalibration batches."""

    calib: tuple[Tensor, Tensor]
    recal: list[Tensor]


class Trainer:
    """Owns one run: data, slimmable net, sampler, optimizer, schedule, checkpoints, metrics.

    Args:
        config: the run's configuration (``config.out`` is the run directory).
        resume: continue the run in ``config.out`` from its checkpoint (a ``config.lr`` that
            differs from the run's continues at that learning rate, recorded in config.json
            and metrics.jsonl).
        restart: start again in ``config.out``, setting its old run aside (``replaced-N/``).
        progress: show tqdm progress bars.
        data: the data to train on instead of the one ``config`` names (``pareco.fit`` passes
            a user's loaders here).
        net: the slimmable net instead of the one ``config`` names.
        optimizer: ``params -> Optimizer`` instead of the paper's SGD.
        scheduler: ``optimizer -> scheduler`` stepped after every step, instead of the warm-up
            and decay of ``config``.
        loss_fn: ``(logits, targets) -> loss`` of the largest network instead of cross-entropy
            with ``config.label_smoothing``.
        teacher: a frozen module the narrower networks learn from instead of the largest network
            (``config.teacher == "module"``); ``config.teacher == "original"`` makes it from
            ``config.init_weights``.

    A new run with ``config.init_weights`` starts from those weights, sorted by importance
    (``config.sort_channels``; ``sort.json`` in the run directory says what was done).

    The run directory is locked (:class:`pareco.rundir.RunLock`) until :meth:`fit` ends or
    :meth:`close` is called.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        restart: bool = False,
        progress: bool = True,
        data: DataSource | None = None,
        net: SlimmableNet | None = None,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        teacher: nn.Module | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(config.out)
        self.progress = progress
        self.lock = rundir.claim(self.run_dir, resume=resume, restart=restart)
        self.stop = rundir.StopSignals()
        try:
            self._setup(resume, data, net, optimizer, scheduler, loss_fn, teacher)
        except BaseException:
            self.close()  # a run that cannot start leaves the folder free
            raise

    def _setup(
        self,
        resume: bool,
        data: DataSource | None,
        net: SlimmableNet | None,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
        teacher: nn.Module | None = None,
    ) -> None:
        config = self.config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.dist = distributed.init(self.device)
        self.rank, self.world, self.is_main = self.dist.rank, self.dist.world, self.dist.is_main
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        _seed_everything(config.seed)

        self.data: DataSource = data if data is not None else build_data(config)
        self.net = (net if net is not None else build_net(config, self.data)).to(self.device)
        self.loss_fn = loss_fn or label_loss(config.label_smoothing)
        self.teacher = self._make_teacher(teacher)
        if not resume:
            self._start_from_weights()
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
        n_train = self.data.split_sizes()["train"]
        if config.batch_size > n_train:
            raise RunError(
                f"--batch-size {config.batch_size} is larger than the {n_train} "
                "training samples: choose a smaller batch"
            )
        shard = (self.rank, self.world) if self.dist.enabled else None
        self.loader = self.data.train_loader(
            config.batch_size, seed=config.seed, device=self.device, shard=shard
        )
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.distill_warmup_steps = round(config.distill_warmup_epochs * self.steps_per_epoch)
        if optimizer is not None:
            self.optimizer = optimizer(self.net.parameters())
        else:
            self.optimizer = sgd(
                self.net, config.learning_rate, config.momentum, config.weight_decay
            )
        if scheduler is not None:
            self.scheduler = scheduler(self.optimizer)
        else:
            self.scheduler = warmup_decay(
                self.optimizer, self.total_steps, self.warmup_steps, config.schedule
            )
        self.num_proposals, self.tau = proposal_budget(
            self.total_steps, config.num_sampled, config.tau, config.num_proposals
        )
        self.warmup_proposals = config.warmup_proposals or default_warmup(self.num_proposals)
        # a resumed run prices with the table it started with (its copy in the run directory)
        self.pricer = run_pricer(self.net, self.run_dir if resume else None, config.latency_table)
        self.sampler: Sampler = run_sampler(
            config,
            self.net.space,
            cost_ratio=self.pricer.ratio_fn(config.cost),
            tau=self.tau,
            warmup=self.warmup_proposals,
            num_classes=self.data.num_classes,
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
        self.last_save = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lr_change = None
        if resume:
            if not self.is_main:  # rank 0 first: it may repair the checkpoint files
                distributed.barrier(self.dist)
            lr_change = self._restore()
            if self.is_main:
                distributed.barrier(self.dist)
            if self.is_main:  # the steps after the checkpoint are trained (and logged) again
                rundir.truncate_metrics(self.run_dir, self.step)
        elif self.is_main:
            write_config(config, self.run_dir / "config.json")
            (self.run_dir / "history.jsonl").unlink(missing_ok=True)
            if self.pricer.latency is not None:
                self.pricer.latency.table.save(self.run_dir / RUN_TABLE)
        self.metrics = MetricsWriter(
            self.run_dir, enabled=self.is_main, purge_step=self.step + 1 if resume else None
        )
        if lr_change is not None and self.is_main:
            write_config(config, self.run_dir / "config.json")
            self.metrics.note(self.step, {"event": "lr_changed", "from": lr_change[0],
                                          "to": lr_change[1]})  # fmt: skip

    def _make_teacher(self, teacher: nn.Module | None) -> nn.Module | None:
        """The frozen teacher of the sandwich step, or None for in-place distillation."""
        cfg = self.config
        if cfg.teacher == "module" and teacher is None:
            raise RunError(
                "teacher 'module' is a teacher module given to pareco.fit(teacher=...): pass it "
                "again to continue this run"
            )
        if cfg.teacher == "original":
            original = copy.deepcopy(self.net)
            try:
                load_init_weights(original.module, cfg.init_weights)
            except WeightsError as err:
                raise RunError(str(err)) from None
            teacher = original
        elif cfg.teacher == "inplace":
            if teacher is not None:
                raise RunError("a teacher module was given but config.teacher is 'inplace'")
            return None
        teacher = teacher.to(self.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def _start_from_weights(self) -> None:
        """A new run from trained weights: load them, then sort the channels by importance."""
        cfg = self.config
        if cfg.init_weights:
            try:
                load_init_weights(self.net.module, cfg.init_weights)
            except WeightsError as err:
                raise RunError(str(err)) from None
        how = cfg.sort_channels
        if how == "auto":
            how = "bn" if cfg.init_weights else "none"
        if how == "none":
            return
        batches = None
        if how == "taylor":
            loader = self.data.train_loader(cfg.batch_size, seed=cfg.seed + 1, device=self.device)
            batches = [b for _, b in zip(range(TAYLOR_BATCHES), loader)]
        report = sort_channels(self.net, how, batches=batches, loss_fn=self.loss_fn)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / rundir.SORT_REPORT).write_text(json.dumps(report.to_dict()) + "\n")
            moved = sum(g.moved > 0 for g in report.groups)
            print(f"channels sorted by {how}: {moved} of {len(report.groups)} groups reordered",
                  flush=True)  # fmt: skip

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
        recal = self.data.recalibration_batches(
            cfg.recal_batches, cfg.batch_size, cfg.seed, self.device
        )
        if self._channels_last_input(x):
            x = x.contiguous(memory_format=torch.channels_last)
            recal = [r.contiguous(memory_format=torch.channels_last) for r in recal]
        return Batches((x, y), recal)

    def _channels_last_input(self, x: Any) -> bool:
        """Images (``B x C x H x W``) on CUDA with channels_last on; never a dict of inputs."""
        return self.channels_last and isinstance(x, Tensor) and x.dim() == 4

    # --- one step -------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, x: Tensor) -> Tensor:
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            return batch_inputs.call(model, x)

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
        self.optimizer.zero_grad(set_to_none=True)
        losses = sandwich_backward(
            self.net,
            x,
            y,
            widths,
            model=self.model,
            loss_fn=self.loss_fn,
            distill=self.step >= self.distill_warmup_steps,
            backward=lambda loss: self.scaler.scale(loss).backward(),
            forward=self._forward,
            no_sync=self.model.no_sync if self.dist.enabled else None,
            teacher=self.teacher,
            teacher_full=self.config.teacher_full,
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values = distributed.all_reduce_sum(torch.stack(losses).double(), self.dist) / self.world
        return dict(zip(loss_names(len(widths)), values.tolist()))

    def score(self, alphas: Tensor | None) -> Tensor:
        """Loss of each width (``n x dim``) on the fixed calibration batch, ``n``.

        Under torchrun every rank calls this together: rank 0 passes the widths, the others None;
        each scores its share and rank 0 gets all the losses. A non-finite network or loss stops
        the run here, before the search's proposal round can take it in.
        """
        if not self.dist.enabled:
            losses = self._score_local(alphas)
        else:
            alphas = distributed.broadcast_alphas(
                alphas, self.dist, self.net.space.dim, self.device
            )
            local = self._score_local(alphas[self.rank :: self.world])
            losses = distributed.gather_scores(local, len(alphas), self.dist, self.device)
        if self.is_main:
            rundir.check_finite(self.net, self.step, self.run_dir, losses=losses,
                                when="before a proposal round")  # fmt: skip
        return losses

    def _score_local(self, alphas: Tensor) -> Tensor:
        return score_widths(self.net, alphas, [self.batches.calib], self._forward)

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to the end (or from where the checkpoint left off), then evaluate.

        SIGINT/SIGTERM end the current step, save a checkpoint and raise
        :class:`pareco.rundir.Interrupted`. The run directory's lock is released on return.
        """
        try:
            with self.stop:
                return self._fit()
        finally:
            self.close()

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        if self.finished:  # resumed after the last checkpoint: evaluate, leave the files alone
            if self.is_main:
                print("the run had finished training: evaluating it again", flush=True)
            summary = self.evaluate_uniform()
            self.metrics.close()
            return summary
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
                if self._channels_last_input(x):
                    x = x.contiguous(memory_format=torch.channels_last)
                start = time.perf_counter()
                losses = self.sandwich_step(x, y, self._widths())
                self.train_seconds += time.perf_counter() - start
                if not all(math.isfinite(v) for v in losses.values()):
                    raise NonFiniteLoss(
                        f"the loss became {losses} at step {self.step} (epoch {epoch}); "
                        f"{rundir.last_good(self.run_dir)}"
                    )
                self.step += 1
                imgs_since_log += batch_inputs.num_samples(x) * self.world
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
                due = time.monotonic() - self.last_save >= 60 * cfg.checkpoint_minutes
                if (self.step % cfg.checkpoint_every == 0 or due) and self.step < self.total_steps:
                    self.save()
                if self.stop.received is not None:
                    self._stop_on_signal()
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
        self.stop.restore()  # Ctrl-C during the final evaluation stops at once
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
        recal = self.batches.recal
        if len(recal) >= self.world:
            share = recal[: len(recal) // self.world * self.world][self.rank :: self.world]
        else:  # fewer batches than ranks: every rank takes them all (the average is the same)
            share = recal
        rows = []
        for w in cfg.eval_widths:
            alpha = space.uniform(w)
            # a new pass per width: a data source's eval_loader may be a one-shot iterator
            loader = self.data.eval_loader("test", batch_size=500, device=self.device, shard=shard)
            result = evaluate(self.net, alpha, loader, recalibration=share, ctx=self.dist)
            rows.append({
                "width": w,
                "flops_ratio": self.net.cost_ratio(alpha, "flops").item(),
                "memory_ratio": self.net.cost_ratio(alpha, "memory").item(),
                "mflops": self.net.cost(alpha, "flops").item() / 1e6,
                "test_accuracy": result.accuracy,
            })  # fmt: skip
        summary = {"uniform": rows, "train_seconds": self.train_seconds, "steps": self.step,
                   "report": "validation" if self.data.test_is_val else "test"}  # fmt: skip
        if isinstance(self.sampler, ParecoSampler):
            summary["search_seconds"] = dict(self.sampler.timings)
        if self.is_main:
            write_text_atomic(self.run_dir / "eval.json", json.dumps(summary, indent=1) + "\n")
            print(format_uniform_table(rows))
            if self.data.test_is_val:
                print(f"note: {TEST_IS_VAL_NOTE}")
        distributed.barrier(self.dist)  # no rank returns (and exits) while rank 0 still writes
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
        """Checkpoint the run (main process), after checking every weight, buffer and momentum
        is finite: a diverged state never replaces a good checkpoint."""
        if self.is_main:
            rundir.check_finite(self.net, self.step, self.run_dir, optimizer=self.optimizer)
            save_checkpoint(self.state_dict(), self.run_dir)
        self.last_save = time.monotonic()

    def _stop_on_signal(self) -> None:
        self.save()
        raise rundir.Interrupted(
            f"stopped by {self.stop.name} at step {self.step}: checkpoint saved in "
            f"{self.run_dir}; continue with "
            f"{rundir.resume_command(self.run_dir, self.config.data)}",
            self.stop.received,
        )

    def _restore(self) -> tuple[float, float] | None:
        """Load the checkpoint; returns (old, new) learning rate when ``config.lr`` changes it."""
        try:
            state = load_checkpoint(
                self.run_dir,
                map_location=self.device,
                repair=self.is_main,
                report=None if self.is_main else lambda line: None,  # rank 0 says it once
            )
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
                f"({first_line(err)})"
            ) from None
        self.step = int(state["step"])
        self.finished = bool(state["finished"])
        self.train_seconds = float(state["train_seconds"])
        if self.is_main:
            _set_rng_state(state["rng"])
        return self._change_lr(self.config.learning_rate)

    def _change_lr(self, lr: float) -> tuple[float, float] | None:
        """Scale the restored schedule to peak learning rate ``lr`` (recovering from a divergence
        by resuming at a lower rate); the schedule's shape and position are kept."""
        if not hasattr(self.scheduler, "base_lrs"):  # a user's own scheduler: theirs to change
            return None
        old = float(self.scheduler.base_lrs[0])
        if math.isclose(old, lr, rel_tol=1e-12):
            return None
        for group in self.optimizer.param_groups:
            group["lr"] *= lr / old
            group["initial_lr"] = lr
        self.scheduler.base_lrs = [lr for _ in self.scheduler.base_lrs]
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        return old, lr


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
