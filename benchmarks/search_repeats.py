"""How often a search proposes a network it already has: TwoStage's stage two on frozen weights.

A synthetic chain (`pareco.search.synthetic.ChainProblem`) with few channels per group, so many
width vectors give the same network, and a fixed loss per network (frozen weights). The stage-two
loop (propose M, score once, never re-score) runs with the search comparing channel vectors
(pareco's default, `channels=`) and comparing width vectors only (what it did before issue #20);
prints distinct channel vectors among the candidates and the most repeated one's count.

With ``--runs``, reads finished run directories instead (a PareCO training's or a stage two's
``history.jsonl`` and the width space in its checkpoint) and prints the same counts for the real
histories, with the largest number of candidates that share one cost.

    python benchmarks/search_repeats.py [--candidates 153] [--channels 6] [--dim 6]
    python benchmarks/search_repeats.py --runs runs/paper/pareco-memory-s0 runs/paper/twostage-memory-s0
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from pareco.checkpoint import read_checkpoint_file
from pareco.search import History, ParecoSearch, SearchConfig
from pareco.search.synthetic import ChainProblem
from pareco.space import WidthSpace


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


def run_counts(run: Path) -> tuple[Counter, Counter]:
    """Channel vectors and costs (rounded to 4 digits) of one run directory's history."""
    space = WidthSpace.from_dict(read_checkpoint_file(run / "checkpoint.pt")["space"])
    rows = History.read_records(run / "history.jsonl")
    alphas = torch.tensor([r["alpha"] for r in rows], dtype=torch.float64)
    channels = Counter(tuple(space.channels(a).tolist()) for a in alphas)
    return channels, Counter(round(r["cost"], 4) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=153)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--runs", type=Path, nargs="+", help="run directories to count instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.runs:
        for run in args.runs:
            channels, costs = run_counts(run)
            cost, shared = costs.most_common(1)[0]
            print(f"{run.name}: {len(channels)} distinct channel vectors of {sum(channels.values())} "
                  f"candidates, most repeated {max(channels.values())}x; {len(costs)} distinct "
                  f"costs, {shared} candidates at cost {cost}")  # fmt: skip
        return
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
