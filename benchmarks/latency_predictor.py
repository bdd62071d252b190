"""How well a latency table predicts measured end-to-end latency, beside a FLOPs-only line.

    taskset -c 1 python benchmarks/latency_predictor.py [--subnets 50] [--clock cpu]
        [--sampling spread|iid] [--out FILE.json]

For each model (resnet20 and mobilenetv2 with the CIFAR stem at 3x32x32, timm's lcnet_050 at
3x64x64) and runtime (torch eager CPU, onnxruntime CPU; one thread, batch 1): build the table
(``pareco.latency.build_table``, its end-to-end correction fitted on 8 sub-networks), then measure
``--subnets`` other random sub-networks (``--sampling``; exported plain models), half before and
half after the table is built, so that a drifting machine load reaches both. Reported: Spearman rank correlation
and median absolute relative error of the predicted latency, and of a least-squares line of
latency on FLOPs fitted on the same 8 sub-networks as the correction. ``/proc/loadavg`` is read at
the start and the end of each row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

import pareco
from pareco import models
from pareco.latency import bind, build_table, example_inputs, make_runtime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def cases() -> list[tuple[str, callable, tuple[int, int, int], object]]:
    out = [
        ("resnet20", lambda: models.create("resnet20", num_classes=10), (3, 32, 32),
         models.entry("resnet20").ignored),
        ("mobilenetv2-cifar", lambda: models.create("mobilenetv2", num_classes=10, stem="cifar"),
         (3, 32, 32), models.entry("mobilenetv2").ignored),
    ]  # fmt: skip
    from timm_without_torchvision import import_timm

    timm = import_timm()
    if timm is not None:
        out.append(("timm/lcnet_050", lambda: timm.create_model("lcnet_050", num_classes=10),
                    (3, 64, 64), ()))  # fmt: skip
    return out


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def sample(space, n: int, how: str, gen: torch.Generator) -> torch.Tensor:
    """``n x dim`` random widths. ``iid``: every group uniform in [min, 1] (sums of many groups
    then cluster near the middle of the cost range); ``spread``: a level t uniform in [min, 1] per
    sub-network, each group uniform within ±0.2 of it, so the set spans the cost range a front does.
    """
    if how == "iid":
        return space.sample(n, generator=gen)
    lo = space.min_multiplier
    t = lo + (1 - lo) * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    a = t + 0.4 * (torch.rand(n, space.dim, generator=gen, dtype=torch.float64) - 0.5)
    return a.clamp(lo, 1.0)


def mdape(pred: torch.Tensor, meas: torch.Tensor) -> float:
    return float(((pred - meas).abs() / meas).median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=50)
    parser.add_argument("--samples", type=int, default=8, help="sub-networks of the correction")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--clock", default="cpu", help="cpu (thread CPU time) or wall")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--models", nargs="+", help="only these (names as printed)")
    parser.add_argument("--sampling", default="spread", help="spread or iid (see sample())")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    header = (
        "| model | runtime | sub-networks | Spearman (table) | MdAPE (table) | Spearman (FLOPs) "
        "| MdAPE (FLOPs) | measured ms: min–max | table s | load start → end |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, make, size, ignored in cases():
        if args.models and name not in args.models:
            continue
        net = pareco.slim(make(), torch.zeros(1, *size), ignored=ignored)
        example = example_inputs(net)
        gen = torch.Generator().manual_seed(1234)
        test_alphas = sample(net.space, args.subnets, args.sampling, gen)
        for rt_name in args.runtimes:
            load0 = loadavg()
            rt = make_runtime(rt_name, threads=1, repeats=args.repeats, clock=args.clock)
            half = args.subnets // 2
            rt.model_ms(net.export(net.space.largest()).eval(), example)  # first-call costs
            measured = [rt.model_ms(net.export(a).eval(), example) for a in test_alphas[:half]]
            start = time.perf_counter()
            table = build_table(net, rt, model=name, samples=args.samples, probe_steps=True)
            build_s = time.perf_counter() - start
            measured += [rt.model_ms(net.export(a).eval(), example) for a in test_alphas[half:]]
            meas = torch.tensor(measured, dtype=torch.float64)
            pred = bind(table, net).predict_alpha(test_alphas)
            # FLOPs alone: a line fitted on the correction's sub-networks
            cal_alpha = torch.tensor([s["alpha"] for s in table.samples], dtype=torch.float64)
            cal_ms = torch.tensor([s["measured_ms"] for s in table.samples], dtype=torch.float64)
            f_cal = net.cost(cal_alpha, "flops")
            x = torch.stack([f_cal, torch.ones_like(f_cal)], 1)
            a, b = torch.linalg.lstsq(x, cal_ms[:, None]).solution.flatten().tolist()
            flops_pred = a * net.cost(test_alphas, "flops") + b
            load1 = loadavg()
            row = {
                "model": name,
                "runtime": rt_name,
                "clock": args.clock,
                "sampling": args.sampling,
                "subnets": args.subnets,
                "spearman_table": float(spearmanr(pred, meas).statistic),
                "mdape_table": mdape(pred, meas),
                "spearman_flops": float(spearmanr(flops_pred, meas).statistic),
                "mdape_flops": mdape(flops_pred, meas),
                "full_ms": float(table.samples[1]["measured_ms"]),
                "measured_ms": meas.tolist(),
                "predicted_ms": pred.tolist(),
                "flops_predicted_ms": flops_pred.tolist(),
                "table_seconds": build_s,
                "kinds": len(table.kinds),
                "round_to": table.steps.get("suggested"),
                "slope": table.slope,
                "intercept": table.intercept,
                "loadavg": [load0, load1],
            }
            rows.append(row)
            print(
                f"| {name} | {rt_name} | {args.subnets} | {row['spearman_table']:.3f} | "
                f"{100 * row['mdape_table']:.1f}% | {row['spearman_flops']:.3f} | "
                f"{100 * row['mdape_flops']:.1f}% | {float(meas.min()):.3f}–{float(meas.max()):.3f} | "
                f"{build_s:.0f} | "
                f"{load0[0]:.2f} → {load1[0]:.2f} |",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
