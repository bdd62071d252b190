"""Sandwich-step throughput against dense twins, and the data path's share of a step.

Side by side in one run, interleaved:
  A. one sandwich step of the slimmable net (largest + 2 sampled + smallest, in-place distillation);
  B. four plain SGD steps, one on the exported (physically small) twin of each of those widths.
Ratio = time(A) / time(B): the price of slicing and distillation (target <= 1.15).
Data share = time to produce a batch (index, augment, normalize) / (that + step time) (target <= 5%).

    python benchmarks/train_throughput.py [--model resnet20] [--batch-size 128] [--reps 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from pareco.config import TrainConfig
from pareco.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument(
        "--data", default="fashion-mnist", help="falls back to synthetic if missing"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        common = dict(model=args.model, method="twostage", batch_size=args.batch_size, out=out,
                      device=args.device, threads=args.threads, recal_batches=1, calib_size=64)  # fmt: skip
        try:
            trainer = Trainer(TrainConfig(data=args.data, **common), progress=False)
        except Exception as err:  # dataset missing: same shapes from generated data
            print(f"({args.data} unavailable: {err}; using synthetic 1x28x28 data)")
            trainer = Trainer(TrainConfig(data="synthetic", **common), progress=False)
        device = trainer.device
        net, space = trainer.net, trainer.net.space
        loader_iter = iter(trainer.loader)
        x, y = next(loader_iter)
        widths = trainer.sampler.widths(0, trainer.score)
        alphas = [space.largest(), *widths, space.smallest()]
        twins = [net.export(a).train().to(device) for a in alphas]
        opts = [torch.optim.SGD(t.parameters(), lr=1e-3, momentum=0.9) for t in twins]

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        def sandwich() -> float:
            sync()
            start = time.perf_counter()
            trainer.sandwich_step(x, y, widths)
            sync()
            return time.perf_counter() - start

        def dense() -> float:
            sync()
            start = time.perf_counter()
            for twin, opt in zip(twins, opts):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=trainer.amp_dtype or torch.float32,
                                    enabled=trainer.amp_dtype is not None):  # fmt: skip
                    loss = F.cross_entropy(twin(x).float(), y)
                loss.backward()
                opt.step()
            sync()
            return time.perf_counter() - start

        def data() -> float:
            nonlocal loader_iter
            sync()
            start = time.perf_counter()
            try:
                next(loader_iter)
            except StopIteration:
                loader_iter = iter(trainer.loader)
                next(loader_iter)
            sync()
            return time.perf_counter() - start

        for _ in range(2):
            sandwich(), dense(), data()
        t_s, t_d, t_data = [], [], []
        for _ in range(args.reps):
            t_s.append(sandwich())
            t_d.append(dense())
            t_data.append(data())
        s, d, b = statistics.median(t_s), statistics.median(t_d), statistics.median(t_data)
        n = x.shape[0]
        print(f"{args.model}, {trainer.data.name} {tuple(x.shape[1:])}, batch {n}, device {device}, "
              f"{args.threads} threads, median of {args.reps}")  # fmt: skip
        print(f"channels per width: {[space.channels(a).sum().item() for a in alphas]}")
        print(f"sandwich step (4 sub-networks): {1e3 * s:8.1f} ms  {n / s:8.0f} img/s")
        print(f"4 dense twin steps:             {1e3 * d:8.1f} ms  {n / d:8.0f} img/s")
        print(f"ratio sandwich / dense:         {s / d:8.3f}   (target <= 1.15)")
        print(f"data path per batch:            {1e3 * b:8.2f} ms  share {100 * b / (b + s):.2f}% "
              "(target <= 5%)")  # fmt: skip


if __name__ == "__main__":
    main()
