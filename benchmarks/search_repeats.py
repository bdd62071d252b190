"""How often a search proposes a network it already has: TwoStage's stage two on frozen weights.

A synthetic chain (`pareco.search.synthetic.ChainProblem`) with few channels per group, so many
width vectors give the same network, and a fixed loss per network (frozen weights). The stage-two
loop (propose M, score once, never re-score) runs with the search comparing channel vectors
(pareco's default, `channels=`) and comparing width vectors only (what it did before issue #20);
prints distinct channel vectors among the candidates and the most repeated one's count.

    python benchmarks/search_repeats.py [--candidates 153] [--channels 6] [--dim 6]
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from pareco.search import ParecoSearch, SearchConfig
from pareco.search.synthetic import ChainProblem


def stage_two(problem: ChainProblem, guard: bool, budget: int, seed: int) -> Counter:
    config = SearchConfig(dim=problem.dim, warmup=20, seed=seed)
    search = ParecoSearch(problem.cost_ratio, config, channels=problem.channels if guard else None)
    smallest = search.smallest.unsqueeze(0)
    search.update_smallest_loss(float(problem.true_loss(smallest)[0]))
    while len(search.history) < budget:
        records = search.propose(len(search.history))
        alphas = torch.stack([torch.tensor(r.alpha, dtype=torch.float64) for r in records])
        search.update_losses([r.index for r in records], problem.true_loss(alphas), 0)
    return Counter(tuple(c) for c in problem.channels(search.history.alphas()).tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=153)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in range(args.seeds):
        problem = ChainProblem(dim=args.dim, seed=seed, noise=0.0)
        problem.full_channels = torch.full((args.dim,), float(args.channels), dtype=torch.float64)
        problem.full_macs = float(problem.macs(torch.ones(1, args.dim, dtype=torch.float64))[0])
        for guard in (False, True):
            counts = stage_two(problem, guard, args.candidates, seed)
            label = "channel vectors compared" if guard else "width vectors only     "
            print(f"seed {seed}, {label}: {len(counts)} distinct of {sum(counts.values())} "
                  f"candidates, most repeated {max(counts.values())}x")  # fmt: skip


if __name__ == "__main__":
    main()
