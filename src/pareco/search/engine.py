"""`ParecoSearch`: the history, the loss GP and the proposals of PareCO's outer loop.

Every τ training steps the trainer (1) re-scores the history (`history.alphas()` ->
measured losses -> `update_losses`), then (2) calls `propose(step)` for the next M width vectors.
Warm-up: the first `warmup` proposals are uniform networks (one random multiplier shared by all
groups), the next is the full network, and only then does the GP take over. A GP-driven proposal
draws a target cost (Pareto-aware or uniform), then bisects λ of the augmented Chebyshev
scalarization until the minimizer's exact cost is within tolerance of the target.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from pareco.search.gp import LossModel, fit_loss_model
from pareco.search.history import History, ProposalRecord
from pareco.search.optimize import (
    GradientMinimizer,
    RandomSearchMinimizer,
    ScalarizationMinimizer,
    Solution,
    Solver,
)
from pareco.search.propose import BisectionResult, bisect_lambda
from pareco.search.scalarize import Bound, CostFn, CostStandardizer, Scalarization
from pareco.search.seen import ChannelsFn, SeenWidths
from pareco.search.targets import (
    REFERENCE_HIGH_LOSS,
    sample_pareto_aware_target,
    sample_uniform_target,
)

__all__ = ["ParecoSearch", "RoundStats", "SearchConfig"]

TargetMode = Literal["pareto", "uniform"]
OptimizerName = Literal["random", "gradient"]


@dataclass(frozen=True)
class SearchConfig:
    """Settings of the search (defaults are the paper's).

    Attributes:
        dim: number of searchable channel groups.
        alpha_min: smallest multiplier.
        proposals_per_round: M, proposals per call of `propose`.
        warmup: number of uniform-network proposals before the full network and the GP.
        beta: confidence parameter of the loss bound.
        loss_bound: "upper" (μ + sqrt(β)·σ, the authors' code, default) or "lower"
            (μ − sqrt(β)·σ) confidence bound of the loss in the scalarization.
        high_loss: loss of the point prepended at cost(α_min) when the front that weights the
            targets stops short of it: the reference's constant 8 by default (PareCO's
            `train.py`), e.g. `chance_loss(classes)` as an option; None: `default_high_loss`.
        smallest_in_front: put the smallest network's measured loss (`update_smallest_loss`)
            into the front that weights the targets, so that the front reaches cost(α_min) and
            no made-up high loss is prepended once it is measured (the authors' TwoStage search
            does this; their PareCO prepends the constant). Without it, a front that can never
            reach cost(α_min) keeps asking for the cheap end (issue #20).
        baseline: b of the scalarization.
        rho: augmentation weight of the scalarization.
        target_mode: "pareto" (PareCO) or "uniform" (Joslim).
        n_bins: cost bins of Pareto-aware targets.
        tolerance: accepted |cost − target| of the bisection.
        max_bisection_steps: most minimizations per proposal.
        optimizer: scalarization minimizer, "random" (batched random search, default) or
            "gradient" (`optimize_acqf` on a smooth cost surrogate).
        min_scored: fewest scored points to fit the GP; below it a GP-phase proposal is a random
            per-group vector.
        warm_start_gp: start each GP fit from the previous round's hyper-parameters (same
            optimum in our measurements, about half the fitting time; saved in `state_dict`).
        seed: seed of the search's own generator.
    """

    dim: int
    alpha_min: float = 0.42
    proposals_per_round: int = 2
    warmup: int = 20
    beta: float = 0.1
    loss_bound: Bound = "upper"
    high_loss: float | None = REFERENCE_HIGH_LOSS
    smallest_in_front: bool = True
    baseline: float = -3.0
    rho: float = 1e-6
    target_mode: TargetMode = "pareto"
    n_bins: int = 50
    tolerance: float = 0.02
    max_bisection_steps: int = 10
    optimizer: OptimizerName = "random"
    min_scored: int = 2
    warm_start_gp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if not 0.0 < self.alpha_min <= 1.0:
            raise ValueError(f"alpha_min must be in (0, 1], got {self.alpha_min}")
        if self.target_mode not in ("pareto", "uniform"):
            raise ValueError(f"target_mode must be 'pareto' or 'uniform', got {self.target_mode!r}")
        if self.optimizer not in ("random", "gradient"):
            raise ValueError(f"optimizer must be 'random' or 'gradient', got {self.optimizer!r}")
        if self.proposals_per_round < 1:
            raise ValueError("proposals_per_round must be at least 1")
        if self.loss_bound not in ("upper", "lower"):
            raise ValueError(f"loss_bound must be 'upper' or 'lower', got {self.loss_bound!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON- and torch.save-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown search settings: {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class RoundStats:
    """Timings of the last `propose` call (seconds) and the data it used.

    Attributes:
        n_scored: scored history points the GP was fitted on (0 if no GP was used).
        fit_seconds: GP fit.
        prepare_seconds: candidate pool evaluation.
        solve_seconds: targets, bisections and minimizations of all proposals.
    """

    n_scored: int
    fit_seconds: float
    prepare_seconds: float
    solve_seconds: float


def _minimizer_for(name: OptimizerName) -> ScalarizationMinimizer:
    return GradientMinimizer() if name == "gradient" else RandomSearchMinimizer()


class ParecoSearch:
    """PareCO's proposal engine.

    Args:
        cost_ratio: exact vectorized cost, `n x dim` float64 multipliers -> `n` cost ratios.
        config: search settings.
        minimizer: overrides the minimizer named by `config.optimizer` (e.g. smaller settings).
        channels: α -> channel counts (`WidthSpace.channels`): no two proposals share a channel
            vector, and none has the smallest network's; None compares α exactly.

    Attributes:
        history: every proposal, its cost and losses.
        generator: the search's only source of randomness (saved in `state_dict`).
        cost_min: cost ratio of the smallest network.
        loss_model: the GP of the last GP-driven round (None before).
        smallest_loss: the smallest network's latest measured loss (None before it is measured).
        seen: the channel vectors of every proposal so far and of the smallest network.
        last_round: timings of the last `propose` call.
    """

    def __init__(
        self,
        cost_ratio: CostFn,
        config: SearchConfig,
        minimizer: ScalarizationMinimizer | None = None,
        channels: ChannelsFn | None = None,
    ) -> None:
        self.cost_ratio = cost_ratio
        self.config = config
        self.minimizer = minimizer if minimizer is not None else _minimizer_for(config.optimizer)
        self.history = History(config.dim)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.smallest = torch.full((config.dim,), config.alpha_min, dtype=torch.float64)
        self.cost_min = self._cost(self.smallest)
        self.smallest_loss: float | None = None
        self.seen = SeenWidths(config.dim, channels)
        self.seen.add(self.smallest)
        self.loss_model: LossModel | None = None
        self._gp_init: dict[str, torch.Tensor] = {}
        self.last_round: RoundStats | None = None

    def _cost(self, alpha: torch.Tensor) -> float:
        return float(self.cost_ratio(alpha.to(torch.float64).reshape(1, -1)).reshape(-1)[0])

    def _draw_seed(self) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def update_losses(
        self, indices: torch.Tensor | list[int], losses: torch.Tensor | list[float], step: int
    ) -> None:
        """Record re-scored losses (see `History.update_losses`)."""
        self.history.update_losses(indices, losses, step)

    def update_smallest_loss(self, loss: float) -> None:
        """Record the smallest network's loss, measured like the history's (same batch)."""
        self.smallest_loss = float(loss)

    def propose(self, step: int) -> list[ProposalRecord]:
        """The next M proposals; they join the history with a NaN placeholder loss.

        Args:
            step: the training step (recorded with each proposal).

        Returns:
            M records; `torch.tensor(record.alpha)` is the `dim` width vector to train.
        """
        cfg = self.config
        records: list[ProposalRecord] = []
        solver: Solver | None = None
        prepared = False
        n_scored, fit_s, prep_s, solve_s = 0, 0.0, 0.0, 0.0
        for _ in range(cfg.proposals_per_round):
            g = len(self.history)
            if g < cfg.warmup:
                alpha = self._draw_new(uniform=True)
                if bool(self.seen.seen(alpha)):  # a coarse space has few uniform networks
                    records.append(self._add(self._draw_new(uniform=False), step, "random"))
                else:
                    records.append(self._add(alpha, step, "uniform"))
                continue
            if g == cfg.warmup:
                records.append(self._add(torch.ones(cfg.dim, dtype=torch.float64), step, "full"))
                continue
            if not prepared:  # one GP fit and one candidate pool per round
                prepared = True
                solver, n_scored, fit_s, prep_s = self._prepare_solver()
            t0 = time.perf_counter()
            if solver is None:
                records.append(self._add(self._draw_new(uniform=False), step, "random"))
            else:
                target = self._sample_target()
                result = self._bisect(solver, target)
                if bool(self.seen.seen(result.alpha)):
                    # Every candidate the minimizer reached was already proposed (T = +inf
                    # everywhere): a random new vector instead of scoring a network twice.
                    records.append(self._add(self._draw_new(uniform=False), step, "random"))
                    solve_s += time.perf_counter() - t0
                    continue
                records.append(
                    self._add(
                        result.alpha,
                        step,
                        "gp",
                        target_cost=target,
                        lam=result.lam,
                        bisection_steps=result.steps,
                        hit=result.hit,
                        cost=result.cost,
                    )
                )
            solve_s += time.perf_counter() - t0
        self.last_round = RoundStats(n_scored, fit_s, prep_s, solve_s)
        return records

    def _is_trained_anyway(self, alpha: torch.Tensor) -> bool:
        """The smallest or the largest network (same channels, so the same exact cost)."""
        cost = self._cost(alpha)
        return abs(cost - self.cost_min) <= 1e-9 or abs(cost - 1.0) <= 1e-9

    def _draw_new(self, uniform: bool) -> torch.Tensor:
        """A random width vector (one shared level if `uniform`) that is neither the smallest nor
        the largest network, which the sandwich rule trains at every step anyway."""
        cfg = self.config
        for _ in range(100):
            shape = (1,) if uniform else (cfg.dim,)
            unit = torch.rand(shape, generator=self.generator, dtype=torch.float64)
            alpha = (cfg.alpha_min + (1.0 - cfg.alpha_min) * unit).expand(cfg.dim).clone()
            if not self._is_trained_anyway(alpha) and not bool(self.seen.seen(alpha)):
                break
        return alpha

    def _prepare_solver(self) -> tuple[Solver | None, int, float, float]:
        """Fit the loss GP on the scored history and evaluate the candidate pool.

        Returns:
            The λ -> Solution solver (None with fewer than `min_scored` scored points), the number
            of scored points, and the seconds spent fitting and preparing.
        """
        cfg = self.config
        scored = self.history.scored()
        n_scored = int(scored.indices.numel())
        if n_scored < cfg.min_scored:
            return None, n_scored, 0.0, 0.0
        t0 = time.perf_counter()
        self.loss_model = fit_loss_model(
            scored.alphas,
            scored.losses,
            cfg.alpha_min,
            seed=self._draw_seed(),
            init=self._gp_init if cfg.warm_start_gp else None,
        )
        self._gp_init = self.loss_model.hyperparameters()
        t1 = time.perf_counter()
        scalarization = Scalarization(
            self.loss_model,
            self.cost_ratio,
            CostStandardizer.from_costs(scored.costs),
            beta=cfg.beta,
            baseline=cfg.baseline,
            rho=cfg.rho,
            bound=cfg.loss_bound,
            excluded_costs=(self.cost_min, 1.0),
            seen=self.seen,
        )
        solver = self.minimizer.prepare(
            scalarization, cfg.alpha_min, scored.alphas, scored.losses, self.generator
        )
        return solver, n_scored, t1 - t0, time.perf_counter() - t1

    def _add(
        self,
        alpha: torch.Tensor,
        step: int,
        kind: str,
        target_cost: float = float("nan"),
        lam: float = float("nan"),
        bisection_steps: int = 0,
        hit: bool | None = None,
        cost: float | None = None,
    ) -> ProposalRecord:
        if cost is None:
            cost = self._cost(alpha)
        self.seen.add(alpha)
        return self.history.add(alpha, cost, step, kind, target_cost, lam, bisection_steps, hit)

    def _sample_target(self) -> float:
        cfg = self.config
        if cfg.target_mode == "uniform":
            return sample_uniform_target(self.cost_min, self.generator)
        scored = self.history.scored()
        is_full = (scored.alphas == 1.0).all(dim=-1)
        full_loss = float(scored.losses[is_full][-1]) if is_full.any() else None
        costs, losses = scored.costs, scored.losses
        if cfg.smallest_in_front and self.smallest_loss is not None:
            costs = torch.cat([costs, costs.new_tensor([self.cost_min])])
            losses = torch.cat([losses, losses.new_tensor([self.smallest_loss])])
        return sample_pareto_aware_target(
            costs,
            losses,
            self.cost_min,
            self.generator,
            full_loss=full_loss,
            high_loss=cfg.high_loss,
            n_bins=cfg.n_bins,
        )

    def _bisect(self, solver: Solver, target: float) -> BisectionResult:
        def solve(lam: float) -> tuple[torch.Tensor, float]:
            solution: Solution = solver(lam)
            return solution.alpha, solution.cost

        cfg = self.config
        return bisect_lambda(
            solve, target, tolerance=cfg.tolerance, max_steps=cfg.max_bisection_steps
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: settings, history, generator state and the GP's
        warm-start hyper-parameters."""
        return {
            "config": self.config.to_dict(),
            "history": self.history.state_dict(),
            "generator": self.generator.get_state(),
            "gp_hyperparameters": {k: v.clone() for k, v in self._gp_init.items()},
            "smallest_loss": self.smallest_loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; a resumed search then proposes what an uninterrupted one would.

        The settings must match this instance's (they decide the proposals).
        """
        saved = SearchConfig.from_dict(dict(state["config"]))
        if saved != self.config:
            raise ValueError(f"saved settings {saved} differ from this search's {self.config}")
        self.history.load_state_dict(state["history"])
        self.generator.set_state(state["generator"])
        self._gp_init = {k: v.clone() for k, v in state.get("gp_hyperparameters", {}).items()}
        self.smallest_loss = state.get("smallest_loss")
        self.seen = SeenWidths(self.config.dim, self.seen.channels)
        self.seen.add(self.smallest)
        if len(self.history):
            self.seen.add(self.history.alphas())
