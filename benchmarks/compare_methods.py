"""The method comparison: Slim, TwoStage and PareCO on Fashion-MNIST, FLOPs and memory, several seeds.

Every run uses the same model, data, epochs and trainer (configs/fmnist_quick.yaml by default: the
README's run, ResNet-20 at half width, 2 epochs on 30k images). Per seed:

* Slim: one run (uniform widths do not depend on the cost objective); its front is a sweep of
  uniform widths evenly spaced in each cost;
* TwoStage: one stage-one run, then `pareco search` once per cost objective on the frozen weights;
* PareCO: one run per cost objective.

Each front is selected on validation and reported on test; the metrics of all runs of one cost
objective are computed over their common cost range (`pareco.front.compare_fronts`). Writes
docs/results.md and docs/results/<cost>/compare.png. Every step is skipped when its output exists,
and an interrupted training is resumed, so the comparison can be completed across sessions.

    python benchmarks/compare_methods.py [--seeds 0 1] [--root runs/compare]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pareco.checkpoint import load_checkpoint
from pareco.front import compare_fronts, compare_runs, ensure_front

METHODS = ("slim", "twostage", "pareco")
COSTS = ("flops", "memory")


def sh(*args: str) -> None:
    print("$ pareco " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "pareco", *args], check=True)


def train(root: Path, config: str, method: str, cost: str, seed: int) -> Path:
    out = root / f"{method}-{cost}-s{seed}"
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and load_checkpoint(out)["finished"]:
        return out
    if ckpt.exists():
        sh("train", "--resume", "--out", str(out), "--no-progress")
    else:
        sh("train", "--config", config, "--method", method, "--cost", cost, "--seed", str(seed),
           "--out", str(out), "--no-progress")  # fmt: skip
    return out


def twostage_search(stage_one: Path, root: Path, cost: str, seed: int) -> Path:
    """Stage two for one cost objective, in its own directory (a copy of stage one's)."""
    out = root / f"twostage-{cost}-s{seed}"
    if out != stage_one and not (out / "checkpoint.pt").exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stage_one / "checkpoint.pt", out / "checkpoint.pt")
        shutil.copy2(stage_one / "eval.json", out / "eval.json")
        config = json.loads((stage_one / "config.json").read_text())
        config.update(cost=cost, out=str(out))
        (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    if not (out / "search.json").exists():
        start = time.perf_counter()
        sh("search", str(out), "--no-progress")
        (out / "search.json").write_text(
            json.dumps({"seconds": time.perf_counter() - start}) + "\n"
        )
    return out


def wall_seconds(run: Path) -> float:
    """Training (search included for PareCO) plus TwoStage's second stage."""
    seconds = json.loads((run / "eval.json").read_text())["train_seconds"]
    if (run / "search.json").exists():
        seconds += json.loads((run / "search.json").read_text())["seconds"]
    return seconds


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def pct(values: list[float | None]) -> str:
    vals = [100 * v for v in values if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def table(runs: dict[str, list[Path]], cost: str) -> tuple[str, dict]:
    labels, fronts, methods = [], [], []
    for method, dirs in runs.items():
        for d in dirs:
            labels.append(d.name)
            fronts.append(ensure_front(d, progress=False))
            methods.append(method)
    result = compare_fronts(fronts, labels, cost)
    by_method: dict[str, list[dict]] = {m: [] for m in runs}
    for method, row in zip(methods, result["runs"]):
        by_method[method].append(row)
    budgets = result["budgets"]
    head = ["method", "seeds", "AUC (test error)", "hypervolume"]
    head += [f"acc @ {int(100 * b)}% (%)" for b in budgets] + ["wall time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, rows in by_method.items():
        cells = [method, str(len(rows)), mean_std([r["auc"] for r in rows]),
                 mean_std([r["hypervolume"] for r in rows])]  # fmt: skip
        for k in range(len(budgets)):
            cells.append(pct([r["accuracy_at"][k]["test_accuracy"] for r in rows]))
        walls = [wall_seconds(d) for d in runs[method]]
        cells.append(f"{statistics.mean(walls):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fmnist_quick.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--root", type=Path, default=Path("runs/compare"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    args = parser.parse_args()
    start = time.perf_counter()
    runs: dict[str, dict[str, list[Path]]] = {c: {m: [] for m in METHODS} for c in COSTS}
    for seed in args.seeds:
        slim = train(args.root, args.config, "slim", "flops", seed)
        stage_one = train(args.root, args.config, "twostage", "flops", seed)
        for cost in COSTS:
            runs[cost]["slim"].append(slim)
            runs[cost]["twostage"].append(twostage_search(stage_one, args.root, cost, seed))
            runs[cost]["pareco"].append(train(args.root, args.config, "pareco", cost, seed))
    sections = []
    for cost in COSTS:
        for dirs in runs[cost].values():
            for d in dirs:
                if not (d / "front.json").exists():
                    sh("front", str(d), "--no-progress")
        text, result = table(runs[cost], cost)
        lo = result["cost_range"][0]
        first = [dirs[0] for dirs in runs[cost].values()]
        compare_runs(first, args.docs / "results" / cost, cost=cost, progress=False)
        sections.append(
            f"### Cost objective: {cost}\n\nCommon cost range [{lo:.3f}, 1]; hypervolume reference "
            f"(cost ratio 1, error 1); accuracy at a budget = test accuracy of the point with the "
            f"best validation accuracy within it.\n\n{text}\n\n"
            f"![{cost} fronts, seed {args.seeds[0]}](results/{cost}/compare.png)\n"
        )
    config = Path(args.config).read_text()
    minutes = (time.perf_counter() - start) / 60
    page = (
        "# Method comparison on Fashion-MNIST\n\n"
        "Produced by `python benchmarks/compare_methods.py "
        f"--seeds {' '.join(map(str, args.seeds))}` (this invocation: {minutes:.0f} min; steps "
        "already done are skipped). Slim, TwoStage and PareCO share the model, data, epochs, trainer "
        "and seeds; each front is selected on validation and reported on the Fashion-MNIST test set "
        "(mean ± standard deviation over seeds). Lower AUC is better, higher hypervolume is better. "
        "Wall time: training on 2 CPU cores, search included (TwoStage: plus its second stage).\n\n"
        f"Configuration (`{args.config}`):\n\n```yaml\n{config}```\n\n" + "\n".join(sections)
    )
    (args.docs / "results.md").write_text(page)
    print(page)


if __name__ == "__main__":
    main()
