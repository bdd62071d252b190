"""Where ``pareco.slim()`` spends its time: capture, walk, plan, and each of its self-checks.

One ``slim()`` call per model (timm, random weights, ``1 x 3 x S x S``), its phases timed by
wrapping the functions of ``pareco.slimming`` that do them; the total is the whole call.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/slim_time.py [--models resnet50,...] [--size 224]

``--total-only`` times the whole call alone (for a pareco without the ``slimming`` package).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import warnings
from collections import defaultdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import pareco

SPENT: dict[str, float] = defaultdict(float)


def timed(owner, attr: str, label: str) -> None:
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - start

    setattr(owner, attr, wrapper)


def instrument() -> list[str]:
    from pareco.slimming import api, checks, net

    timed(api, "reference_output", "reference forward")
    timed(api, "capture", "torch.export")
    timed(api.Walker, "run", "walk (rules)")
    timed(api, "build", "plan + build")
    timed(checks, "_count", "checks: FlopCounterMode forwards")
    timed(net.SlimmableNet, "export", "checks: export a sub-network")
    timed(api, "check", "checks (all)")
    return [
        "reference forward", "torch.export", "walk (rules)", "plan + build", "checks (all)",
        "checks: FlopCounterMode forwards", "checks: export a sub-network",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,wide_resnet50_2,efficientnet_b0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--total-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from timm_without_torchvision import import_timm

    timm = import_timm()
    labels = [] if args.total_only else instrument()
    print(f"torch {torch.__version__}, 1 thread, input 1 x 3 x {args.size} x {args.size}")
    print("| model | layers | slim() s | " + " | ".join(labels) + " |")
    print("|---|---|---|" + "---|" * len(labels))
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=10).eval()
        layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
        x = torch.randn(1, 3, args.size, args.size)
        SPENT.clear()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pareco.slim(model, x)
        total = time.perf_counter() - start
        cells = " | ".join(f"{SPENT[k]:.2f}" for k in labels)
        print(f"| {name} | {layers} | {total:.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
