"""Width vectors priced per second by a latency table, beside the exact FLOPs polynomial.

    taskset -c 1 python benchmarks/latency_throughput.py [--n 100000]

The table's values do not change the work of a prediction, so it is built here on a runtime that
returns 1 ms for every layer (no timing); what is timed is ``LatencyModel.predict_alpha`` on ``n``
random widths, best of 3, in the calling thread's CPU time (one thread).
"""

from __future__ import annotations

import argparse
import time

import torch

import pareco
from pareco import models
from pareco.latency import bind, build_table


class Constant:
    name = "constant"

    def describe(self):
        return {"name": self.name, "device": "cpu", "threads": 1, "clock": "none"}

    def layer_ms(self, spec, sizes):
        return 1.0

    def model_ms(self, model, example):
        return 1.0


def best_of(fn, arg, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        start = time.thread_time()
        fn(arg)
        times.append(time.thread_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"| model | groups | layer calls | latency s / {args.n} | MACs (FLOPs) s / {args.n} |")
    print("|---|---|---|---|---|")
    for name, kw in (("resnet20", {}), ("mobilenetv2", {"stem": "cifar"}), ("resnet56", {})):
        net = pareco.slim(models.create(name, **kw), torch.zeros(1, 3, 32, 32),
                          ignored=models.entry(name).ignored)  # fmt: skip
        table = build_table(net, Constant(), samples=0, probe_steps=False)
        model = bind(table, net)
        alphas = net.space.sample(args.n, torch.Generator().manual_seed(0))
        lat = best_of(model.predict_alpha, alphas)
        flops = best_of(net.cost, alphas)  # the default metric, MACs: FLOPs are 2 x MACs
        print(f"| {name} | {net.space.dim} | {len(table.layers)} | {lat:.3f} | {flops:.3f} |")


if __name__ == "__main__":
    main()
