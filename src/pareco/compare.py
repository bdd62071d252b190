"""``pareco compare``: several runs' fronts over their common cost range, in one table and plot."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pareco.atomic import write_text_atomic
from pareco.front import (
    BUDGETS,
    HV_REFERENCE,
    FrontError,
    check_cost,
    ensure_front,
    front_arrays,
    front_costs,
    front_curve,
    front_points,
    plotted_costs,
    summary_metrics,
)
from pareco.plugins import load_run_plugins
from pareco.report import compare_markdown


def compare_fronts(
    fronts: Sequence[Mapping[str, Any]], labels: Sequence[str], cost: str
) -> dict[str, Any]:
    """Summary metrics of several runs' fronts under ``cost``, over their common cost range.

    The AUC range is [the largest of the runs' cheapest front costs, 1], so that every curve is
    defined over all of it. Runs must share model, data and input size (ratios of different full
    networks do not compare).
    """
    if not fronts:
        raise FrontError("compare needs at least one run")
    keys = ("model", "model_kwargs", "data", "input_shape")
    first = fronts[0]
    for label, f in zip(labels, fronts):
        diff = [k for k in keys if f.get(k) != first.get(k)]
        if diff:
            detail = ", ".join(f"{k} {first.get(k)!r} vs {f.get(k)!r}" for k in diff)
            raise FrontError(
                f"{labels[0]} and {label} differ in {detail}: cost ratios of different networks "
                "do not compare"
            )
    for f in fronts:
        cost = check_cost(cost, f)
    arrays = [front_arrays(front_points(f, cost), cost) for f in fronts]
    lo = max(float(c.min()) for c, _, _ in arrays)
    rows = []
    for label, f, (c, v, t) in zip(labels, fronts, arrays):
        rows.append({
            "run": label,
            "path": f["run"],
            "method": f["method"],
            "objective": f["cost"],
            "front_points": len(c),
            **summary_metrics(c, v, t, lo=lo),
        })  # fmt: skip
    return {
        "cost": cost,
        "cost_range": [lo, 1.0],
        "hypervolume_reference": {"cost_ratio": HV_REFERENCE[0], "error": HV_REFERENCE[1]},
        "budgets": list(BUDGETS),
        "runs": rows,
    }


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Short distinct names for runs: the directory names, or the paths where names repeat."""
    names = [Path(d).name or str(d) for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in run_dirs]


def _refuse_other_data(dirs: Sequence[Path], labels: Sequence[str]) -> None:
    """Runs of one dataset name read from other places (two image folders, two tensor files)
    were tested on other test sets: their accuracies do not compare."""
    places = [json.loads((d / "config.json").read_text()).get("data_dir") for d in dirs]
    norm = [None if p is None else os.path.normpath(os.path.expanduser(p)) for p in places]
    for label, d, place, same in zip(labels, dirs, places, norm):
        if same != norm[0]:
            raise FrontError(
                f"{labels[0]} and {label} were trained on data from other places (data_dir "
                f"{places[0]!r} vs {place!r}): their test sets differ; if it is the same data "
                f"moved, set data_dir in {d / 'config.json'} to match"
            )


def compare_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    cost: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Compare runs (fronts computed where missing): compare.md, compare.json and compare.png in
    ``out``. ``cost`` defaults to the first run's objective."""
    from pareco import plots

    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / "config.json").is_file():
            raise FrontError(f"{d} is not a pareco run directory (no config.json)")
        load_run_plugins(d)  # a metric of the run's plugins may be the one compared
    labels = run_labels(run_dirs)
    _refuse_other_data(dirs, labels)
    fronts = [ensure_front(d, device=device, progress=progress) for d in dirs]
    cost = check_cost(cost or fronts[0]["cost"])
    result = compare_fronts(fronts, labels, cost)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "compare.md", compare_markdown(result))
    write_text_atomic(out / "compare.json", json.dumps(result, indent=1) + "\n")
    common = [m for m in plotted_costs(fronts[0]) if all(m in front_costs(f) for f in fronts)]
    metrics = [cost, *(m for m in common if m != cost)]
    panels = {
        m: [front_curve(f, m, f"{label} ({f['method']})") for f, label in zip(fronts, labels)]
        for m in metrics
    }
    plots.plot_fronts(panels, out / "compare.png", "fronts: select on val, report on test")
    return result
