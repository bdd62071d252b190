"""The sandwich step with in-place distillation, as one function a training loop can call.

Every step (DESIGN.md §2): the largest network learns from the labels (cross-entropy with label
smoothing); the sampler's M widths and the smallest network learn from the largest network's
detached output (soft cross-entropy), or, given a ``teacher`` (the trained model a fine-tuning
run starts from, frozen), that teacher's output; the gradients of all passes add up before one
optimizer step. :func:`sandwich_backward` does the passes and their backward calls and nothing
else, so the caller keeps its optimizer, its AMP ``GradScaler`` (pass ``backward=lambda l:
scaler.scale(l).backward()``) and its gradient accumulation (``backward=lambda l: (l /
accum).backward()``). Backward runs after every pass, so only one sub-network's graph is alive at
a time: the memory of one forward, not of 2 + M.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.outputs import logits_of
from pareco.slimming import SlimmableNet

LossFn = Callable[[Tensor, Tensor], Tensor]


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Cross-entropy against a distribution (in-place distillation), mean over the batch."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(1).mean()


def label_loss(label_smoothing: float = 0.1) -> LossFn:
    """The paper's loss on the labels: cross-entropy with label smoothing (0.1)."""

    def loss(logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)

    return loss


def loss_names(num_sampled: int) -> list[str]:
    """Names of the losses :func:`sandwich_backward` returns, in its order."""
    return ["loss_full", *(f"loss_{i}" for i in range(num_sampled)), "loss_small"]


def sandwich_backward(
    net: SlimmableNet,
    x: Tensor,
    y: Tensor,
    widths: Sequence[Tensor],
    *,
    model: nn.Module | None = None,
    loss_fn: LossFn | None = None,
    distill: bool = True,
    backward: Callable[[Tensor], None] | None = None,
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
    no_sync: Callable[[], AbstractContextManager] | None = None,
    teacher: nn.Module | None = None,
    teacher_full: bool = False,
) -> list[Tensor]:
    """Forward and backward the largest, each of ``widths`` and the smallest sub-network.

    Args:
        net: the slimmable network; its widths are set for each pass and restored after.
        x, y: one batch, ``B x ...`` inputs and ``B`` labels (whatever ``loss_fn`` takes).
        widths: the sampled ``dim`` width vectors (from a sampler) between largest and smallest.
        model: the module to call, when it wraps ``net`` (DDP); default ``net``.
        loss_fn: loss of the largest network on the labels, ``(logits, y) -> scalar``; default
            cross-entropy with label smoothing 0.1.
        distill: the narrower networks learn from the largest one's detached softmax (in-place
            distillation); False trains them on ``loss_fn`` too (a warm-up on labels).
        backward: called on every pass's loss; default ``loss.backward()``. Scale here for AMP
            or gradient accumulation.
        forward: ``(module, x) -> logits``, e.g. under ``torch.autocast``; default ``module(x)``.
        no_sync: a context manager factory (DDP's ``model.no_sync``) entered for every pass but
            the last, so that gradients are all-reduced once per step.
        teacher: a frozen module (the trained original, in eval mode) whose detached softmax
            the narrower networks learn from instead of the largest network's (distillation from
            the original); None is in-place distillation. It is called as ``forward(teacher, x)``
            under ``torch.no_grad``, never trained.
        teacher_full: with a ``teacher``, the largest network learns from it too instead of
            from the labels.

    Returns:
        The detached loss of every pass, ``[largest, *widths, smallest]`` (see :func:`loss_names`).
        No optimizer step is taken and no gradient is zeroed: that stays with the caller.
    """
    model = net if model is None else model
    loss_fn = loss_fn or label_loss()
    backward = backward or (lambda loss: loss.backward())
    forward = forward or batch_inputs.call
    space = net.space
    alphas = [space.largest(), *widths, space.smallest()]
    losses: list[Tensor] = []
    target = None
    if teacher is not None:
        with torch.no_grad():
            target = F.softmax(logits_of(forward(teacher, x)).float(), dim=1)
    for i, alpha in enumerate(alphas):
        last = i == len(alphas) - 1
        sync = no_sync() if no_sync is not None and not last else contextlib.nullcontext()
        with sync, net.widths(alpha):
            logits = logits_of(forward(model, x)).float()
            if i == 0:
                if teacher is not None and teacher_full:
                    loss = soft_cross_entropy(logits, target)
                else:
                    loss = loss_fn(logits, y)
                if target is None:
                    target = F.softmax(logits.detach(), dim=1)
            elif distill:
                loss = soft_cross_entropy(logits, target)
            else:
                loss = loss_fn(logits, y)
            backward(loss)
        losses.append(loss.detach())
    return losses
