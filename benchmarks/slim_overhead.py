"""Cost of slicing: one SGD step of the slimmable net at alpha vs its exported (dense) twin.

Both run side by side in the same process, interleaved, so machine noise hits both alike.
Ratio = slimmable step time / exported step time (1.00 would be free; target <= 1.10).

    python benchmarks/slim_overhead.py [--reps 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import pareco
from pareco import models


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    setups = [("resnet20", {}, 128), ("mobilenetv2", {"stem": "cifar"}, 32)]
    print(
        f"torch {torch.__version__}, {args.threads} threads, median of "
        f"{args.reps} interleaved steps"
    )
    print(f"{'model':<12} {'alpha':<10} {'batch':>5} {'slim ms':>9} {'export ms':>10} {'ratio':>6}")
    for name, kw, batch in setups:
        x = torch.randn(batch, 3, 32, 32)
        y = torch.randint(0, 10, (batch,))
        net = pareco.slim(models.create(name, **kw), x[:1], ignored=models.entry(name).ignored)
        net.train()
        g = torch.Generator().manual_seed(1)
        alphas = {
            "smallest": net.space.smallest(),
            "uniform0.7": net.space.uniform(0.7),
            "random": net.space.sample(1, g)[0],
            "largest": net.space.largest(),
        }
        for label, alpha in alphas.items():
            sub = net.export(alpha).train()
            net.set_widths(alpha)
            opt_net = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
            opt_sub = torch.optim.SGD(sub.parameters(), lr=1e-3, momentum=0.9)
            for _ in range(2):  # warm-up
                step_time(net, x, y, opt_net)
                step_time(sub, x, y, opt_sub)
            t_net, t_sub = [], []
            for _ in range(args.reps):
                t_net.append(step_time(net, x, y, opt_net))
                t_sub.append(step_time(sub, x, y, opt_sub))
            a, b = statistics.median(t_net), statistics.median(t_sub)
            print(
                f"{name:<12} {label:<10} {batch:>5} {1e3 * a:>9.1f} {1e3 * b:>10.1f} {a / b:>6.3f}"
            )
        net.set_widths(net.space.largest())


if __name__ == "__main__":
    main()
