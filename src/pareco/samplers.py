"""Width samplers: which M sub-networks each sandwich step trains besides the largest and smallest.

* ``slim``: one random multiplier for all groups (US-Nets; the Slim baseline);
* ``layerwise``: an independent random multiplier per group (stage one of TwoStage);
* ``pareco``: widths proposed by the GP-guided, Pareto-aware search, renewed every ``tau`` steps.

A sampler owns its random generator, so its state (in the checkpoint) makes a resumed run draw
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from pareco.search.targets import REFERENCE_HIGH_LOSS, chance_loss
from pareco.space import WidthSpace

if TYPE_CHECKING:
    from pareco.config import TrainConfig
    from pareco.search import SearchConfig

# Scores widths with the current weights: ``n x dim`` → ``n`` losses on the calibration batch.
Scorer = Callable[[Tensor], Tensor]


class Sampler(Protocol):
    name: str

    def widths(self, step: int, scorer: Scorer) -> list[Tensor]:
        """The ``dim`` width vectors to train at ``step`` (besides the largest and smallest)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _RandomSampler:
    def __init__(self, space: WidthSpace, num: int, seed: int) -> None:
        self.space, self.num = space, num
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class SlimSampler(_RandomSampler):
    """US-Nets: every group at one random multiplier."""

    name = "slim"

    def widths(self, step: int, scorer: Scorer) -> list[Tensor]:
        lo = self.space.min_multiplier
        u = torch.rand(self.num, generator=self.generator, dtype=torch.float64)
        return [
            torch.full((self.space.dim,), lo + (1 - lo) * v.item(), dtype=torch.float64) for v in u
        ]


class LayerwiseSampler(_RandomSampler):
    """Independent random multiplier per group (TwoStage's first stage)."""

    name = "layerwise"

    def widths(self, step: int, scorer: Scorer) -> list[Tensor]:
        return list(self.space.sample(self.num, self.generator))


class ParecoSampler:
    """PareCO: every ``tau`` steps, re-score the history with the current weights, refit the GP
    and propose M new widths; they are trained until the next round.

    ``search`` holds the search's settings (:func:`search_config` maps a run's configuration to
    them; :func:`make_sampler` takes them as keywords). Every proposal is appended to
    ``history_path`` (one JSON line each) when it is made; the losses of the whole history are
    rewritten there at the end of training by :meth:`flush`.
    """

    name = "pareco"

    def __init__(
        self,
        space: WidthSpace,
        cost_ratio: Callable[[Tensor], Tensor],
        *,
        tau: int,
        search: SearchConfig,
        history_path: str | Path | None = None,
    ) -> None:
        from pareco.search import ParecoSearch

        if search.dim != space.dim:
            raise ValueError(f"search settings have dim {search.dim}, the space {space.dim}")
        self.search = ParecoSearch(cost_ratio, search, channels=space.channels)
        self.tau = tau
        self.history_path = Path(history_path) if history_path else None
        self.current: list[Tensor] = []
        self.timings = {"rescore": 0.0, "fit": 0.0, "propose": 0.0}
        self.rounds = 0

    def widths(self, step: int, scorer: Scorer) -> list[Tensor]:
        if step % self.tau == 0 or not self.current:
            self._round(step, scorer)
        return self.current

    def _round(self, step: int, scorer: Scorer) -> None:
        history = self.search.history
        if len(history):
            # The smallest network is scored with the history: its loss anchors the front that
            # weights the target costs at cost(alpha_min).
            start = time.perf_counter()
            losses = scorer(torch.cat([history.alphas(), self.search.smallest.unsqueeze(0)]))
            self.timings["rescore"] += time.perf_counter() - start
            self.search.update_losses(range(len(history)), losses[:-1], step)
            self.search.update_smallest_loss(float(losses[-1]))
        records = self.search.propose(step)
        stats = self.search.last_round
        self.timings["fit"] += stats.fit_seconds
        self.timings["propose"] += stats.prepare_seconds + stats.solve_seconds
        self.current = [torch.as_tensor(r.alpha, dtype=torch.float64) for r in records]
        self.rounds += 1
        if self.history_path is not None:
            self.search.history.append_jsonl(self.history_path, records)

    def flush(self) -> None:
        """Rewrite ``history.jsonl`` with every proposal and its losses over time."""
        if self.history_path is not None:
            self.search.history.to_jsonl(self.history_path)

    def state_dict(self) -> dict[str, Any]:
        return {
            "search": self.search.state_dict(),
            "current": [a.tolist() for a in self.current],
            "timings": dict(self.timings),
            "rounds": self.rounds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.search.load_state_dict(state["search"])
        self.current = [torch.tensor(a, dtype=torch.float64) for a in state["current"]]
        self.timings = dict(state["timings"])
        self.rounds = int(state["rounds"])
        self.flush()  # history.jsonl may hold lines from after the checkpoint: rewrite it


def high_loss_value(name: str, num_classes: int | None) -> float:
    """The high loss a config names: ``reference`` (the authors' constant 8) or ``chance``
    (ln(classes), the loss of a network that learned nothing; the reference's value without a
    class count)."""
    if name == "chance" and num_classes:
        return chance_loss(num_classes)
    if name not in ("reference", "chance"):
        raise ValueError(f"high_loss must be reference or chance, got {name!r}")
    return REFERENCE_HIGH_LOSS


def default_num_proposals(total_steps: int) -> int:
    """Proposal budget for a run of ``total_steps``.

    Re-scoring the whole history every round costs ~P²/(2M) calibration forwards over a run,
    while training costs ~T steps, so the overhead grows as P²/T. The paper's budget (1000 over
    78k CIFAR steps) is kept for long runs; short runs take ~1.2·sqrt(T) proposals (at least 24):
    1.5·sqrt(T) measured 12% of training time on the README run, above the 10% target
    (benchmarks/search_overhead.py).
    """
    return int(max(24, min(1000, round(1.2 * math.sqrt(total_steps)))))


def proposal_budget(
    total_steps: int, num_sampled: int, tau: int | None, num_proposals: int | None
) -> tuple[int, int]:
    """A PareCO run's proposal count and τ (steps between rounds of ``num_sampled`` proposals).

    With ``tau`` given, it decides: the run makes ``num_sampled`` proposals per round of ``tau``
    steps, and that count is returned (``num_proposals`` is not used). Otherwise ``tau`` follows
    from the budget (``num_proposals``, or :func:`default_num_proposals`).
    """
    if tau:
        return num_sampled * math.ceil(total_steps / tau), tau
    proposals = num_proposals or default_num_proposals(total_steps)
    return proposals, max(1, round(total_steps * num_sampled / max(1, proposals)))


def default_warmup(num_proposals: int) -> int:
    """Uniform warm-up proposals: the paper's 20 (2% of its 1000), but at most a fifth of a
    small budget, so that the GP still drives most proposals."""
    return int(min(20, max(4, num_proposals // 5)))


def rescoring_images(num_proposals: int, num_sampled: int, calib_size: int) -> int:
    """Images a PareCO run's history re-scoring passes through the network over the whole run.

    Round r (0-based) re-scores the r·M proposals made so far and the smallest network on the
    calibration batch, and a run makes P/M rounds, so the total is M·calib·R(R−1)/2 + calib·(R−1)
    with R = ceil(P/M).
    """
    rounds = math.ceil(num_proposals / num_sampled)
    return num_sampled * calib_size * rounds * (rounds - 1) // 2 + calib_size * max(0, rounds - 1)


def default_search_candidates(
    num_proposals: int, num_sampled: int, calib_size: int, batch_size: int
) -> int:
    """TwoStage's stage-two budget: as many scoring images as PareCO's re-scoring spends.

    Each TwoStage candidate is scored once on 2 training batches. The budget is the number of
    candidates whose scoring costs at least PareCO's re-scoring over its run, capped at the paper's
    1000 (reached at paper scale), and never fewer than PareCO's own proposals.
    """
    images = rescoring_images(num_proposals, num_sampled, calib_size)
    matched = math.ceil(images / (2 * batch_size))
    return int(max(num_proposals, min(1000, matched)))


def search_config(
    config: TrainConfig, space: WidthSpace, *, warmup: int, num_classes: int | None
) -> SearchConfig:
    """The search settings of a run: PareCO's sampler and TwoStage's stage two both take these.

    ``warmup`` is the run's number of uniform warm-up proposals (``config.warmup_proposals`` or
    its default for the run's budget); ``num_classes`` is what ``high_loss: chance`` needs
    (:func:`high_loss_value`).
    """
    from pareco.search import SearchConfig

    return SearchConfig(
        dim=space.dim,
        alpha_min=space.min_multiplier,
        proposals_per_round=config.num_sampled,
        warmup=warmup,
        beta=config.beta,
        loss_bound=config.loss_bound,  # type: ignore[arg-type]
        high_loss=high_loss_value(config.high_loss, num_classes),
        smallest_in_front=config.smallest_in_front,
        target_mode=config.target,  # type: ignore[arg-type]
        seed=config.seed,
    )


def run_sampler(
    config: TrainConfig,
    space: WidthSpace,
    *,
    cost_ratio: Callable[[Tensor], Tensor],
    tau: int,
    warmup: int,
    num_classes: int | None,
    history_path: str | Path | None = None,
) -> Sampler:
    """The sampler of a run configured by ``config`` (what :class:`pareco.trainer.Trainer` uses)."""
    if config.method == "pareco":
        search = search_config(config, space, warmup=warmup, num_classes=num_classes)
        return ParecoSampler(space, cost_ratio, tau=tau, search=search, history_path=history_path)
    return make_sampler(config.method, space, num=config.num_sampled, seed=config.seed)


def make_sampler(
    method: str,
    space: WidthSpace,
    *,
    num: int,
    seed: int,
    cost_ratio: Callable[[Tensor], Tensor] | None = None,
    tau: int = 1,
    warmup: int = 20,
    beta: float = 0.1,
    target: str = "pareto",
    loss_bound: str = "upper",
    high_loss: float | None = REFERENCE_HIGH_LOSS,
    smallest_in_front: bool = True,
    history_path: str | Path | None = None,
) -> Sampler:
    """A width sampler for a loop of your own: ``slim``, ``twostage`` (layer-wise) or ``pareco``.

    ``num`` is M, the widths per step besides the largest and the smallest; the keywords after
    ``tau`` are the search's settings (:class:`pareco.search.SearchConfig`), for ``pareco`` only.
    """
    if method == "slim":
        return SlimSampler(space, num, seed)
    if method == "twostage":
        return LayerwiseSampler(space, num, seed)
    if method == "pareco":
        from pareco.search import SearchConfig

        if cost_ratio is None:
            raise ValueError("the pareco sampler needs the exact cost_ratio function")
        search = SearchConfig(
            dim=space.dim, alpha_min=space.min_multiplier, proposals_per_round=num,
            warmup=warmup, beta=beta, loss_bound=loss_bound,  # type: ignore[arg-type]
            high_loss=high_loss, smallest_in_front=smallest_in_front,
            target_mode=target, seed=seed,  # type: ignore[arg-type]
        )  # fmt: skip
        return ParecoSampler(space, cost_ratio, tau=tau, search=search, history_path=history_path)
    raise ValueError(f"unknown method {method!r}; choose slim, twostage or pareco")
