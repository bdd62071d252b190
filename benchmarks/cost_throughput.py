"""Width vectors priced per second, for each cost metric, batched as the search uses them.

python benchmarks/cost_throughput.py [--n 100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import pareco
from pareco import models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{'model':<12} {'dim':>4} {'metric':<7} {'alphas/s':>12} {'ms/call':>12}  (n = {args.n})"
    )
    for name, kw in (("mobilenetv2", {}), ("resnet56", {}), ("resnet20", {})):
        size = (1, 3, *models.entry(name).input_size)
        net = pareco.slim(
            models.create(name, **kw), torch.zeros(size), ignored=models.entry(name).ignored
        )
        alphas = net.space.sample(args.n, torch.Generator().manual_seed(0))
        for metric in ("macs", "params", "memory"):
            net.cost(alphas[:100], metric)  # warm-up
            reps = []
            for _ in range(5):
                start = time.perf_counter()
                net.cost(alphas, metric)
                reps.append(time.perf_counter() - start)
            best = min(reps)
            print(
                f"{name:<12} {net.space.dim:>4} {metric:<7} {args.n / best:>12,.0f}"
                f" {1e3 * best:>12.1f}"
            )


if __name__ == "__main__":
    main()
