"""Front extraction for a hand-written loop: candidates, recalibrated validation scores, front.

``pareco front`` does this for a run directory (with plots, test reports and CSV); these two
functions do it for a slimmable net and a sampler a user's own loop has trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from pareco.evaluate import evaluate
from pareco.samplers import ParecoSampler, Sampler
from pareco.slimming import SlimmableNet


@dataclass(frozen=True)
class FrontPoint:
    """One sub-network of a front: its widths, exact cost ratio and validation accuracy."""

    alpha: Tensor
    cost_ratio: float
    val_accuracy: float


def candidate_widths(
    net: SlimmableNet, sampler: Sampler | None = None, *, cost: str = "flops", sweep: int = 12
) -> Tensor:
    """Widths worth evaluating, ``n x dim``: the smallest and largest network, a sweep of
    ``sweep`` uniform widths spread in cost, and every width a PareCO sampler has proposed."""
    from pareco.front import uniform_sweep  # imports the search (BoTorch): only when used

    rows = [
        net.space.smallest()[None],
        net.space.largest()[None],
        uniform_sweep(net.space, lambda a: net.cost_ratio(a, cost), sweep),
    ]
    if isinstance(sampler, ParecoSampler) and len(sampler.search.history):
        rows.append(sampler.search.history.alphas())
    alphas = torch.cat([r.to(torch.float64) for r in rows])
    channels = net.space.channels(alphas)
    keep = sorted({tuple(c.tolist()): i for i, c in reversed(list(enumerate(channels)))}.values())
    return alphas[keep]


def extract_front(
    net: SlimmableNet,
    candidates: Tensor,
    val: Callable[[], Iterable[tuple[Tensor, Tensor]]],
    recalibration: list[Tensor],
    *,
    cost: str = "flops",
) -> list[FrontPoint]:
    """The candidates not dominated in (cost ratio, validation error), by increasing cost.

    Args:
        net: the trained slimmable net.
        candidates: ``n x dim`` widths (see :func:`candidate_widths`).
        val: returns a fresh pass over validation batches (it is called once per candidate).
        recalibration: training inputs; every candidate's BN statistics are recomputed on them
            before it is scored.
        cost: ``flops``, ``memory`` or ``params``.
    """
    from pareco.front import select_front

    accuracy = torch.tensor(
        [evaluate(net, a, val(), recalibration=recalibration).accuracy for a in candidates],
        dtype=torch.float64,
    )
    ratio = net.cost_ratio(candidates, cost).double()
    return [
        FrontPoint(candidates[i].clone(), float(ratio[i]), float(accuracy[i]))
        for i in select_front(ratio, 1.0 - accuracy)
    ]
