"""Starting from a trained model: channel sorting, zero-shot widths, and short slimmable fine-tuning.

On real Fashion-MNIST (a training subset, a validation split carved from it, the full test set):

1. a base model is trained normally (dense, full width) for a few epochs;
2. *zero-shot*: the base model is made slimmable and evaluated at uniform widths 0.42/0.6/0.8/1.0
   (test accuracy, BN recalibrated on training batches), unsorted and sorted by each criterion;
3. *fine-tune* (ResNet-20 only, on the first 4,000 of the base model's training images): Slim
   and PareCO runs of 1 and 2 epochs from the base model (sorted by ``taylor``, with in-place
   distillation or distillation from the frozen original), against the same epochs from scratch
   and from scratch at 3x the epochs (3 and 6); each run's
   front (pareco.front.build_front: selected on validation, reported on test) gives the test
   accuracy of the best front point within 25/50/75/100% of the full network's FLOPs (on the
   first 2,000 test images, to keep the fronts' evaluation within the time).

Every finished piece is a JSON file in docs/results/pretrained/ (the base weights and run
directories live in runs/pretrained/), so an interrupted run resumes where it stopped:

    python benchmarks/pretrained_start.py run      # trains and measures what is missing
    python benchmarks/pretrained_start.py report   # the tables of docs/pretrained.md

Sized for about 45 minutes of one quiet CPU core (threads=1): ResNet-20 at half width (8-16-32
channels) and a small MobileNetV2-style depthwise net, 10,000 training images.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import pareco
from pareco import models
from pareco.data import load_dataset
from pareco.evaluate import evaluate
from pareco.front import build_front
from pareco.run import load_run
from pareco.sort_channels import sort_channels

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "pretrained"
RUNS = ROOT / "runs" / "pretrained"
SEED = 0
TRAIN_SUBSET = 10_000  # the base models' training images
FINETUNE_SUBSET = 4_000  # the slimmable runs train on the first 4,000 of them
FINETUNE_TEST = 2_000  # and their fronts report on the first 2,000 test images
# the best criterion zero-shot on each model (docs/pretrained.md)
FINETUNE_SORT = {"resnet20": "taylor", "dwnet": "bn"}
VAL_SIZE = 2_000
BATCH = 128
WIDTHS = (0.42, 0.6, 0.8, 1.0)
CRITERIA = ("unsorted", "l1", "l2", "bn", "taylor")
RECAL_BATCHES = 10
FRONT_RECAL_BATCHES = 4  # per front candidate (the fronts' share of the time)
FRONT_SWEEP = 8  # Slim's uniform widths per front
BASE_EPOCHS = {"resnet20": 4, "dwnet": 2}
FINETUNE_LR = 0.02  # configs/fmnist_finetune.yaml
SCRATCH_LR = 0.05  # 0.1 x batch / 256, the paper's rule


class DWNet(nn.Module):
    """A small MobileNetV2-style net: inverted residual blocks with depthwise 3x3 convs (the
    zoo's ``InvertedResidual``), sized for a CPU."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        block = models.InvertedResidual
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.blocks = nn.Sequential(
            block(16, 16, 1, 1), block(16, 24, 2, 4), block(24, 24, 1, 4),
            block(24, 32, 2, 4), block(32, 32, 1, 4),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Conv2d(32, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6()
        )
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def make_model(name: str) -> nn.Module:
    torch.manual_seed(SEED)
    if name == "resnet20":
        return models.create("resnet20", num_classes=10, in_channels=1, width=8)
    return DWNet()


def data(train_subset: int = TRAIN_SUBSET):
    """Fashion-MNIST: ``train_subset`` training images, a 2,000-image validation split carved
    from the rest of the training set (the same for every subset), the 10,000 test images."""
    return load_dataset(
        "fashion-mnist", seed=SEED, val_size=VAL_SIZE, calib_size=BATCH, train_subset=train_subset
    )


def save_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    tmp.replace(path)


@torch.no_grad()
def test_accuracy(model: nn.Module, splits) -> float:
    model.eval()
    correct = total = 0
    for x, y in splits.eval_loader("test", batch_size=500):
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


# --- 1. the base model -----------------------------------------------------------------------
def base_model(name: str, splits) -> Path:
    """Train ``name`` normally (dense, full width) and cache its state_dict."""
    path = RUNS / f"base-{name}.pt"
    info = RESULTS / f"base-{name}.json"
    if path.is_file() and info.is_file():
        return path
    model = make_model(name)
    epochs = BASE_EPOCHS[name]
    loader = splits.train_loader(BATCH, seed=SEED)
    steps = epochs * len(loader)
    opt = torch.optim.SGD(model.parameters(), lr=SCRATCH_LR, momentum=0.9, weight_decay=5e-4)
    warm = max(1, round(0.2 * len(loader)))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm))
    )
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"base {name}: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}", flush=True)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    acc = test_accuracy(model, splits)
    save_json(info, {"model": name, "epochs": epochs, "train_images": len(splits.train),
                     "test_accuracy": acc, "train_seconds": seconds})  # fmt: skip
    print(f"base {name}: test accuracy {100 * acc:.2f}% ({seconds:.0f}s)", flush=True)
    return path


# --- 2. zero-shot ------------------------------------------------------------------------------
def zero_shot(name: str, splits, weights: Path) -> None:
    model = make_model(name)
    model.load_state_dict(torch.load(weights, weights_only=True))
    net = pareco.slim(model, torch.zeros(1, *splits.input_shape))
    recal = splits.recalibration_batches(RECAL_BATCHES, BATCH, SEED, "cpu")
    taylor_batches = [b for _, b in zip(range(4), splits.train_loader(BATCH, seed=SEED + 1))]
    test = list(splits.eval_loader("test", batch_size=500))
    for criterion in CRITERIA:
        out = RESULTS / f"zeroshot-{name}-{criterion}.json"
        if out.is_file():
            continue
        sorted_net = copy.deepcopy(net)
        start = time.perf_counter()
        if criterion != "unsorted":
            sort_channels(sorted_net, criterion, batches=taylor_batches)
        sort_seconds = time.perf_counter() - start
        rows = []
        for w in WIDTHS:
            alpha = net.space.uniform(w)
            result = evaluate(sorted_net, alpha, test, recalibration=recal)
            rows.append({"width": w, "flops_ratio": net.cost_ratio(alpha, "flops").item(),
                         "test_accuracy": result.accuracy})  # fmt: skip
        save_json(out, {"model": name, "criterion": criterion, "sort_seconds": sort_seconds,
                        "rows": rows})  # fmt: skip
        print(f"zero-shot {name} {criterion}: "
              + ", ".join(f"{r['width']}: {100 * r['test_accuracy']:.1f}%" for r in rows),
              flush=True)  # fmt: skip


# --- 3. fine-tuning ------------------------------------------------------------------------------
def finetune_rows() -> list[dict]:
    """In the order they are run: what matters most first (1 epoch, its 3x from scratch, then
    2 epochs and its 3x from scratch)."""
    rows = []
    for epochs in (1, 3, 2, 6):
        for method in ("slim", "pareco"):
            starts = ("scratch",) if epochs in (3, 6) else ("sorted", "scratch", "sorted+teacher")
            rows += [{"method": method, "epochs": epochs, "start": s} for s in starts]
    # the depthwise model: the same starts at 1 and 2 epochs (no 3x rows)
    for epochs in (1, 2):
        for method in ("slim", "pareco"):
            rows += [{"model": "dwnet", "method": method, "epochs": epochs, "start": s}
                     for s in ("sorted", "scratch", "sorted+teacher")]  # fmt: skip
    return rows


def row_name(row: dict) -> str:
    start = row["start"].replace("+", "-")
    return f"finetune-{row.get('model', 'resnet20')}-{row['method']}-{start}-e{row['epochs']}"


def finetune(splits, weights: Path, row: dict) -> None:
    out = RESULTS / f"{row_name(row)}.json"
    if out.is_file():
        return
    run_dir = RUNS / row_name(row)
    model_name = row.get("model", "resnet20")
    pretrained = row["start"] != "scratch"
    options = dict(
        model_kwargs={"width": 8} if model_name == "resnet20" else {}, method=row["method"], epochs=row["epochs"], batch_size=BATCH,
        lr=FINETUNE_LR if pretrained else SCRATCH_LR,
        warmup_epochs=0.1 if pretrained else 0.2,
        # from scratch, the repository's recipe for short runs (configs/fmnist_quick.yaml): the
        # narrower networks learn from the labels in the first epoch
        distill_warmup_epochs=0.0 if pretrained else 1.0,
        recal_batches=FRONT_RECAL_BATCHES, eval_widths=[1.0], seed=SEED, threads=1,
        device="cpu",
    )  # fmt: skip
    if pretrained:
        options.update(init_weights=str(weights), sort_channels=FINETUNE_SORT[model_name])
        if row["start"] == "sorted+teacher":
            options["teacher"] = "original"
    resume = (run_dir / "checkpoint.pt").exists()
    if resume and (run_dir / "eval.json").exists():
        run = None
    else:
        start = time.perf_counter()
        model = "resnet20" if model_name == "resnet20" else make_model(model_name)
        run = pareco.fit(model, splits, out=run_dir, resume=resume, **options)
        print(f"{row_name(row)}: trained in {time.perf_counter() - start:.0f}s", flush=True)
    run = run or load_run(run_dir)
    front = build_front(run, sweep=FRONT_SWEEP, progress=False)
    at = front["metrics"]["flops"]["accuracy_at"]
    eval_info = json.loads((run_dir / "eval.json").read_text())
    save_json(out, {**row, "accuracy_at": at, "train_seconds": eval_info["train_seconds"],
                    "train_images": len(splits.train), "candidates": len(front["points"]),
                    "front_points": len(front["fronts"]["flops"])})  # fmt: skip
    print(f"{row_name(row)}: " + ", ".join(f"{e['budget']}: {_pct(e['test_accuracy'])}%"
                                          for e in at), flush=True)  # fmt: skip


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    splits = data()
    start = time.perf_counter()
    weights = base_model("resnet20", splits)
    zero_shot("resnet20", splits, weights)
    dw = base_model("dwnet", splits)
    zero_shot("dwnet", splits, dw)
    if not args.zero_shot_only:
        small = data(FINETUNE_SUBSET)
        test = small.test
        small = dataclasses.replace(
            small,
            test=dataclasses.replace(test, x=test.x[:FINETUNE_TEST], y=test.y[:FINETUNE_TEST]),
        )
        for row in finetune_rows():
            finetune(small, dw if row.get("model") == "dwnet" else weights, row)
    print(f"done in {time.perf_counter() - start:.0f}s", flush=True)


# --- the report ----------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def report(args: argparse.Namespace) -> None:
    lines = []
    for name in ("resnet20", "dwnet"):
        base = RESULTS / f"base-{name}.json"
        if not base.is_file():
            continue
        b = json.loads(base.read_text())
        lines += [f"**{name}** base model: {b['epochs']} epochs on {b['train_images']} images, "
                  f"test accuracy {_pct(b['test_accuracy'])}% ({b['train_seconds']:.0f} s).", ""]  # fmt: skip
        rows = [RESULTS / f"zeroshot-{name}-{c}.json" for c in CRITERIA]
        rows = [json.loads(p.read_text()) for p in rows if p.is_file()]
        if rows:
            ratios = " | ".join(f"{r['width']} ({100 * r['flops_ratio']:.0f}% FLOPs)"
                                for r in rows[0]["rows"])  # fmt: skip
            lines += [f"| {name} zero-shot, test acc. % at width | {ratios} |",
                      "|---|" + "---|" * len(rows[0]["rows"])]  # fmt: skip
            for r in rows:
                accs = " | ".join(_pct(x["test_accuracy"]) for x in r["rows"])
                lines.append(f"| {r['criterion']} | {accs} |")
            lines.append("")
    ft = [RESULTS / f"{row_name(r)}.json" for r in finetune_rows()]
    ft = [json.loads(p.read_text()) for p in ft if p.is_file()]
    order = {"sorted": 0, "sorted+teacher": 1, "scratch": 2}
    for name in ("resnet20", "dwnet"):
        rows = [r for r in ft if r.get("model", "resnet20") == name]
        if not rows:
            continue
        lines += [f"**{name}** fine-tuning:", "",
                  "| method | start | epochs | 25% FLOPs | 50% | 75% | 100% |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        rows.sort(key=lambda r: (r["method"] != "slim", r["epochs"], order[r["start"]]))
        for r in rows:
            accs = " | ".join(_pct(e["test_accuracy"]) for e in r["accuracy_at"])
            lines.append(f"| {r['method']} | {r['start']} | {r['epochs']} | {accs} |")
        lines.append("")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and measure what is missing")
    r.add_argument("--zero-shot-only", action="store_true", help="skip the fine-tuning runs")
    r.set_defaults(func=run)
    sub.add_parser("report", help="print the markdown tables").set_defaults(func=report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
