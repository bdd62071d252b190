"""Cost of one search round, and the two scalarization minimizers side by side.

1. One round of `ParecoSearch.propose` (GP fit + M = 2 proposals with bisection) at history sizes
   100, 300 and 1000, dimension 24: a cold round (first fit) and the next, warm-started, round.
2. On the same fitted GPs: the batched random-search minimizer against the `optimize_acqf`
   (L-BFGS-B on a smooth cost surrogate) minimizer, for a grid of λ: exact T_λ reached and time.

Run: `python benchmarks/search_fit_propose.py [--sizes 100 300 1000] [--dim 24]`.
Timings are wall-clock seconds on this machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import time

import torch

from pareco.search import (
    CostStandardizer,
    GradientMinimizer,
    ParecoSearch,
    RandomSearchMinimizer,
    Scalarization,
    SearchConfig,
)
from pareco.search.synthetic import ChainProblem

ALPHA_MIN = 0.42


def synthetic_search(problem: ChainProblem, n: int, seed: int) -> ParecoSearch:
    """A search past warm-up whose history holds `n` scored proposals.

    The history mixes uniform networks, random per-group vectors and vectors scattered around
    uniform levels, like a history that has covered the whole cost range.
    """
    dim = problem.dim
    gen = torch.Generator().manual_seed(seed)
    config = SearchConfig(dim=dim, proposals_per_round=2, seed=seed)
    search = ParecoSearch(problem.cost_ratio, config)
    levels = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    spread = 0.3 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    noise = 2 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1
    unit = (levels + spread * noise).clamp(0, 1)
    unit[: config.warmup] = levels[: config.warmup]  # the warm-up's uniform networks
    unit[config.warmup] = 1.0  # then the full network
    alphas = ALPHA_MIN + (1 - ALPHA_MIN) * unit
    costs = problem.cost_ratio(alphas)
    for i in range(n):
        kind = "uniform" if i < config.warmup else "full" if i == config.warmup else "gp"
        search.history.add(alphas[i], float(costs[i]), step=i, kind=kind)
    search.update_losses(range(n), problem.loss(alphas, gen), step=n)
    return search


def time_rounds(problem: ChainProblem, n: int) -> dict[str, float]:
    search = synthetic_search(problem, n, seed=0)
    out: dict[str, float] = {}
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        records = search.propose(step=n)
        total = time.perf_counter() - t0
        stats = search.last_round
        assert stats is not None
        out[f"{label}_fit"] = stats.fit_seconds
        out[f"{label}_prepare"] = stats.prepare_seconds
        out[f"{label}_solve"] = stats.solve_seconds
        out[f"{label}_total"] = total
        out[f"{label}_steps"] = sum(r.bisection_steps for r in records) / len(records)
        out[f"{label}_hits"] = sum(bool(r.hit) for r in records)
        # Score the new proposals so that the next round fits on n + 2 points.
        idx = [r.index for r in records]
        search.update_losses(idx, problem.loss(search.history.alphas()[idx]), step=n + 1)
    return out


MINIMIZERS = {
    # Pure batched random search: pool + Gaussian refinement only.
    "random": RandomSearchMinimizer(line_search_steps=0),
    # The default: random refinement plus the gradient-guided line search.
    "default": RandomSearchMinimizer(),
    # BoTorch optimize_acqf (L-BFGS-B) on the smooth cost surrogate, started from the pool.
    "acqf": GradientMinimizer(),
}


def compare_minimizers(
    problem: ChainProblem, n: int, lams: list[float]
) -> dict[str, dict[str, list[float] | float]]:
    search = synthetic_search(problem, n, seed=1)
    search.propose(step=n)  # fits the GP
    model = search.loss_model
    assert model is not None
    scored = search.history.scored()
    scalarization = Scalarization(
        model, problem.cost_ratio, CostStandardizer.from_costs(scored.costs)
    )
    result: dict[str, dict[str, list[float] | float]] = {}
    for name, minimizer in MINIMIZERS.items():
        gen = torch.Generator().manual_seed(5)  # the same pool for every minimizer
        t0 = time.perf_counter()
        solve = minimizer.prepare(scalarization, ALPHA_MIN, scored.alphas, scored.losses, gen)
        prepare = time.perf_counter() - t0
        values, costs, seconds = [], [], []
        for lam in lams:
            t0 = time.perf_counter()
            solution = solve(lam)
            seconds.append(time.perf_counter() - t0)
            values.append(solution.value)
            costs.append(solution.cost)
        result[name] = {"prepare": prepare, "values": values, "costs": costs, "seconds": seconds}
    return result


def warm_up() -> None:
    """One small fit and round first, so that one-time costs do not land in the first row."""
    problem = ChainProblem(dim=4, seed=0)
    synthetic_search(problem, 30, seed=0).propose(step=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--dim", type=int, default=24)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    problem = ChainProblem(dim=args.dim, seed=0)
    print(f"dim {args.dim}, torch threads {args.threads}, M = 2, tolerance 0.02, <= 10 steps")
    print()
    print("One round = GP fit + pool + 2 proposals with bisection (seconds); the warm round")
    print("refits on n + 2 points starting from the cold round's hyper-parameters")
    header = (
        f"{'n':>6} {'round':>5} {'fit':>7} {'pool':>6} {'bisect':>7} {'total':>7} "
        f"{'steps/prop':>10} {'hits':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        r = time_rounds(problem, n)
        for label in ("cold", "warm"):
            print(
                f"{n:>6} {label:>5} {r[f'{label}_fit']:>7.2f} {r[f'{label}_prepare']:>6.2f} "
                f"{r[f'{label}_solve']:>7.2f} {r[f'{label}_total']:>7.2f} "
                f"{r[f'{label}_steps']:>10.1f} {int(r[f'{label}_hits']):>3}/2"
            )
    print()
    lams = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    names = list(MINIMIZERS)
    print("Minimizers on the same fitted GP and pool: exact T_λ (lower is better), seconds per λ")
    print("  random = batched random search; default = random + gradient-guided line search;")
    print("  acqf = optimize_acqf (L-BFGS-B) on a quadratic cost surrogate")
    header = f"{'n':>6} {'λ':>4} " + " ".join(f"{'T ' + k:>10}" for k in names)
    header += " " + " ".join(f"{'s ' + k:>9}" for k in names)
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        c = compare_minimizers(problem, n, lams)
        for i, lam in enumerate(lams):
            row = f"{n:>6} {lam:>4.1f} " + " ".join(f"{c[k]['values'][i]:>10.5f}" for k in names)
            row += " " + " ".join(f"{c[k]['seconds'][i]:>9.3f}" for k in names)
            print(row)
        for k in names:
            mean_t = sum(c[k]["values"]) / len(lams)
            mean_s = sum(c[k]["seconds"]) / len(lams)
            print(
                f"{n:>6} {k:>8}: mean T {mean_t:.5f}, {mean_s:.3f} s per λ, pool {c[k]['prepare']:.2f} s"
            )
        for k in ("random", "default"):
            diffs = [a - b for a, b in zip(c[k]["values"], c["acqf"]["values"])]
            lower = sum(d < -1e-6 for d in diffs)
            higher = sum(d > 1e-6 for d in diffs)
            ratio = sum(c["acqf"]["seconds"]) / sum(c[k]["seconds"])
            print(
                f"{n:>6} {k} vs acqf: lower T at {lower}, higher at {higher}, equal at "
                f"{len(lams) - lower - higher} of {len(lams)} λ; acqf takes {ratio:.1f}x the time"
            )
    print()


if __name__ == "__main__":
    main()
