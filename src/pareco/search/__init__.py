"""PareCO's search: history, loss GP, scalarization, target sampling, bisection and proposals.

Decoupled from networks: its only link to one is an exact vectorized `cost_ratio(alpha)`; losses
arrive as numbers measured by the trainer.

Quick start::

    search = ParecoSearch(cost_ratio, SearchConfig(dim=space.dim))
    for step in range(total_steps):
        if step % tau == 0:
            alphas = search.history.alphas()  # re-score all of H with the current weights
            search.update_losses(range(len(alphas)), measure_losses(alphas), step)
            widths = [record.alpha for record in search.propose(step)]
        ...  # sandwich step with the full network, `widths` and the smallest network
"""

from pareco.search.engine import ParecoSearch, RoundStats, SearchConfig
from pareco.search.gp import LossModel, fit_loss_model, scale_alpha, unscale_alpha
from pareco.search.history import History, ProposalRecord, ScoredHistory
from pareco.search.optimize import (
    GradientMinimizer,
    PoolSettings,
    RandomSearchMinimizer,
    ScalarizationMinimizer,
    Solution,
    Solver,
    build_pool,
    fit_quadratic_cost,
)
from pareco.search.pareto import (
    ParetoFront,
    error_cost_auc,
    hypervolume_2d,
    non_dominated,
    pareto_front,
    selected_error_auc,
)
from pareco.search.propose import BisectionResult, bisect_lambda
from pareco.search.scalarize import (
    CostFn,
    CostStandardizer,
    LossPosterior,
    Scalarization,
    ScalarizationParts,
    augmented_chebyshev,
    confidence_bound,
    lower_confidence_bound,
)
from pareco.search.targets import (
    REFERENCE_HIGH_LOSS,
    bin_centres,
    chance_loss,
    default_high_loss,
    eligible_bins,
    pareto_aware_weights,
    sample_pareto_aware_target,
    sample_uniform_target,
)

__all__ = [
    "REFERENCE_HIGH_LOSS",
    "BisectionResult",
    "CostFn",
    "CostStandardizer",
    "GradientMinimizer",
    "History",
    "LossModel",
    "LossPosterior",
    "ParecoSearch",
    "ParetoFront",
    "PoolSettings",
    "ProposalRecord",
    "RandomSearchMinimizer",
    "RoundStats",
    "Scalarization",
    "ScalarizationMinimizer",
    "ScalarizationParts",
    "ScoredHistory",
    "SearchConfig",
    "Solution",
    "Solver",
    "augmented_chebyshev",
    "bin_centres",
    "bisect_lambda",
    "build_pool",
    "chance_loss",
    "confidence_bound",
    "default_high_loss",
    "eligible_bins",
    "error_cost_auc",
    "fit_loss_model",
    "fit_quadratic_cost",
    "hypervolume_2d",
    "lower_confidence_bound",
    "non_dominated",
    "pareto_aware_weights",
    "pareto_front",
    "sample_pareto_aware_target",
    "sample_uniform_target",
    "scale_alpha",
    "selected_error_auc",
    "unscale_alpha",
]
