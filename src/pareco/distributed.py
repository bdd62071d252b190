"""Training on several processes with torch.distributed (``torchrun``), correctly for this method.

What this method needs beyond plain data parallelism:

* every rank trains the *same* widths in the same step: rank 0 chooses them and broadcasts;
* one gradient all-reduce per sandwich step: the earlier passes run under ``no_sync``;
* re-scoring the history is split among the ranks and gathered on rank 0, which alone runs the GP;
* BN recalibration: each rank averages its share of the batches, then the ranks average, which
  equals one process averaging all of them (the batches are equally many per rank).

Each rank reads its slice of every global batch; BatchNorm uses per-rank batch statistics during
training (plain DDP, as in the paper's multi-GPU runs).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device, timeout_minutes: float | None = None) -> DistContext:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a no-op otherwise.

    ``timeout_minutes`` (default ``PARECO_DIST_TIMEOUT_MIN`` or 10) bounds how long a rank waits
    for a peer that died: it then stops with an error instead of hanging.
    """
    if not launched_by_torchrun():
        return DistContext()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        minutes = timeout_minutes or float(os.environ.get("PARECO_DIST_TIMEOUT_MIN", "10"))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
    return DistContext(rank, world, local_rank)


def shutdown(wait_for_peers: bool = True) -> None:
    """Leave the process group. After a run that ended well every rank first waits for the others
    (a barrier), so that no rank tears down its connections while a peer's last collective is in
    flight: gloo then aborts the peer at exit ("terminate called without an active exception").
    After an error there is no one to wait for."""
    if dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_widths(
    widths: list[Tensor], ctx: DistContext, dim: int, device: torch.device
) -> list[Tensor]:
    """Rank 0's width vectors, on every rank (``M x dim`` in one broadcast)."""
    if not ctx.enabled:
        return widths
    count = torch.tensor([len(widths)], device=device)
    dist.broadcast(count, 0)
    buf = (
        torch.stack(widths).to(device)
        if ctx.is_main and widths
        else torch.zeros(int(count.item()), dim, dtype=torch.float64, device=device)
    )
    if buf.numel():
        dist.broadcast(buf, 0)
    return list(buf.cpu())


def shared_widths(
    sampler: Any, step: int, scorer: Any, dim: int, device: torch.device | str = "cpu"
) -> list[Tensor]:
    """``sampler.widths(step, scorer)`` for a training loop of your own under torchrun: rank 0
    samples (and, for PareCO, scores on its own), and every rank gets its widths, so that all
    ranks train the same sub-networks in the step. Without a process group: the plain call.

    ``dim`` is ``net.space.dim``; ``device`` where the broadcast runs (the GPU under NCCL).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return sampler.widths(step, scorer)
    ctx = DistContext(dist.get_rank(), dist.get_world_size())
    widths = sampler.widths(step, scorer) if ctx.is_main else []
    return broadcast_widths(widths, ctx, dim, torch.device(device))


def broadcast_alphas(
    alphas: Tensor | None, ctx: DistContext, dim: int, device: torch.device
) -> Tensor:
    """Rank 0's ``n x dim`` widths to score, on every rank."""
    n = torch.tensor([0 if alphas is None else len(alphas)], device=device)
    dist.broadcast(n, 0)
    buf = (
        alphas.to(device, torch.float64)
        if ctx.is_main
        else torch.zeros(int(n.item()), dim, dtype=torch.float64, device=device)
    )
    dist.broadcast(buf, 0)
    return buf.cpu()


def gather_scores(local: Tensor, n: int, ctx: DistContext, device: torch.device) -> Tensor:
    """Scores computed for ``alphas[rank::world]`` on each rank → all ``n`` scores in order."""
    full = torch.zeros(n, dtype=torch.float64, device=device)
    full[ctx.rank :: ctx.world] = local.to(device, torch.float64)
    dist.all_reduce(full)  # each position is filled by exactly one rank
    return full.cpu()


def all_reduce_sum(values: Tensor, ctx: DistContext) -> Tensor:
    """Sum over the ranks (NCCL needs the tensor on the GPU; the result comes back where it was)."""
    if not ctx.enabled:
        return values
    if dist.get_backend() == "nccl" and values.device.type != "cuda":
        out = values.cuda()
        dist.all_reduce(out)
        return out.to(values.device)
    dist.all_reduce(values)
    return values


def average_bn_statistics(net: nn.Module, ctx: DistContext) -> None:
    """Average BN running statistics over the ranks (after each recalibrated on its share)."""
    if not ctx.enabled:
        return
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf.div_(ctx.world)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
