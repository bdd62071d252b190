"""The Pareto front of a trained run: its candidates, their evaluation, and the front files.

``pareco front RUNDIR`` (DESIGN.md §2, "After training"):

1. *Candidates*, by method (pure functions): PareCO and TwoStage take the widths of their search
   history that are non-dominated in (cost ratio, latest loss) — proposals never scored are left
   out — plus the smallest and the largest network; Slim takes uniform widths evenly spaced in the
   cost ratio of the run's objective. Candidates with the same channels are one sub-network and are
   evaluated once. ``--proposals all`` takes every scored proposal of the history instead of the
   non-dominated ones (a deviation from the paper, for histories whose search loss stops falling
   with cost).
2. Every candidate's BatchNorm statistics are recalibrated on the run's fixed training batches,
   then it is scored on the *validation* split.
3. For each cost (FLOPs, peak memory, parameters), the front is the candidates non-dominated in
   (cost ratio, validation error). Only front points are scored on the *test* split, after the same
   recalibration: the test split never takes part in a choice (select on validation, report on
   test).
4. ``front.json`` (every candidate, the fronts, the summary metrics), ``front.csv`` (the front of
   the run's objective), ``front.png`` and ``widths.png``.

Summary metrics of a front under one cost (front points only, errors on the test split):

* ``auc``: area under the test-error–cost-ratio step curve over ``cost_range`` = [cost ratio of
  the smallest network, 1]; at cost c the curve is the test error of the point chosen at budget c
  *on validation* (the most accurate on validation among the front points costing at most c,
  ``pareco.search.selected_error_auc``). ``mean_test_error`` = auc / range width.
* ``auc_linear``: the same curve drawn linearly between consecutive front points.
* ``hypervolume``: area dominated by the (cost ratio, test error) points and bounded by the
  reference point ``HV_REFERENCE`` = (cost ratio 1.0, error 1.0) — the full network's cost and
  certain error. The full network itself, at cost exactly 1, adds no area.
* ``accuracy_at``: for budgets of 25/50/75/100% of the full cost, the test accuracy of the point
  ``pareco export`` would ship: the most accurate *on validation* among the front points whose
  cost ratio is within the budget (null when none fits).

``pareco compare`` recomputes these over the cost range common to all the runs
(:mod:`pareco.compare`); ``pareco export`` ships the point that fits a budget
(:mod:`pareco.budget`); the text and markdown renderings live in :mod:`pareco.report`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.atomic import write_text_atomic
from pareco.cost_metrics import Pricer, UnknownMetric, all_metrics, get_metric, run_pricer
from pareco.cost_metrics import names as metric_names
from pareco.data.source import TEST_IS_VAL_NOTE
from pareco.errors import RunError
from pareco.evaluate import EvalResult, evaluate
from pareco.outputs import logits_of
from pareco.run import Run, load_run
from pareco.rundir import resume_command
from pareco.search.pareto import hypervolume_2d, pareto_front, selected_error_auc
from pareco.space import WidthSpace

if TYPE_CHECKING:
    from pareco.plots import Curve

FRONT_FORMAT = "pareco-front"

FRONT_VERSION = 1

HISTORY = "history.jsonl"

#: Which proposals of a PareCO or TwoStage history become front candidates: the non-dominated
#: ones in (cost, search loss), as the paper does, or every scored proposal.
PROPOSALS = ("non-dominated", "all")

#: A front is selected under each of these costs; ``pareco export --cost`` picks one. A run with
#: a latency table also has a front under ``latency`` (see :func:`front_costs`).
COSTS = metric_names("front", tables=False)

#: The costs pareco trains for: one panel each in the figures.
PLOTTED_COSTS = metric_names("plotted", tables=False)

#: Every absolute cost reported per point (MACs and FLOPs have the same ratio); plus ``latency``
#: (predicted ms) in the fronts of runs with a latency table (see :func:`point_metrics`).
ALL_METRICS = metric_names(tables=False)

#: Units of the absolute costs (memory: peak activation elements at batch 1, DESIGN.md §3).
COST_UNITS = {m.name: m.unit for m in all_metrics()}

#: Cost budgets (ratios of the full network) at which the summary reports accuracy.
BUDGETS = (0.25, 0.5, 0.75, 1.0)

#: Hypervolume reference point: (cost ratio, test error).
HV_REFERENCE = (1.0, 1.0)

#: Uniform widths in a Slim run's front.
DEFAULT_SWEEP = 16

#: Sub-networks drawn in widths.png.
WIDTH_LINES = 5

EVAL_BATCH = 500

#: A budget equal to a point's cost ratio admits it despite float rounding.
RATIO_TOL = 1e-9

CostRatio = Callable[[Tensor], Tensor]


class FrontError(RunError):
    """A run whose front cannot be built or used, or a request it cannot meet (one line)."""


@dataclass(frozen=True)
class Candidate:
    """A sub-network to evaluate.

    Attributes:
        alpha: ``dim`` width multipliers (float64).
        source: ``smallest``, ``largest``, ``history`` (a search proposal) or ``uniform``.
        history_index: the proposal's index in the history (history candidates only).
        search_loss: its latest loss in the history (calibration loss for PareCO).
    """

    alpha: Tensor
    source: str
    history_index: int | None = None
    search_loss: float | None = None


def check_cost(name: str, front: Mapping[str, Any] | None = None) -> str:
    """The cost a front is selected under: a registered front metric (``flops``, ``memory``,
    ``params``, ``latency``); with ``front``, one that this front has.

    Raises:
        FrontError: any other name, with the valid ones.
    """
    try:
        key = get_metric(name, "front").name
    except UnknownMetric as err:
        raise FrontError(str(err)) from None
    have = front_costs(front) if front is not None else COSTS
    if front is not None and key not in have:
        raise FrontError(
            f"this front has no {key} cost (its run has no latency table); choose one of "
            f"{', '.join(have)}"
        )
    return key


def point_metrics(front: Mapping[str, Any]) -> tuple[str, ...]:
    """The absolute costs of a front's points: ``ALL_METRICS``, plus ``latency`` where measured."""
    full = front.get("full_network", {})
    return tuple(m for m in metric_names() if m in full) or ALL_METRICS


def front_costs(front: Mapping[str, Any]) -> tuple[str, ...]:
    """The costs a front is selected under: ``COSTS``, plus ``latency`` where measured."""
    return tuple(m for m in metric_names("front") if m in front.get("fronts", {})) or COSTS


def plotted_costs(front: Mapping[str, Any]) -> tuple[str, ...]:
    """The costs drawn for a front, one panel each."""
    return tuple(m for m in metric_names("plotted") if m in front_costs(front))


def open_pricer(run: Run) -> Pricer:
    """The run's pricer: exact costs, and latency when the run has a table."""
    try:
        return run_pricer(run.net, run.run_dir, run.config.latency_table)
    except ValueError as err:  # LatencyError: one line
        raise FrontError(str(err)) from None


def history_candidates(
    records: Sequence[Mapping[str, Any]], dim: int, proposals: str = "non-dominated"
) -> list[Candidate]:
    """The proposals of a search history that become front candidates.

    ``non-dominated`` (the paper's rule): those non-dominated in (cost ratio, latest loss).
    ``all``: every scored proposal, for a history whose loss stops falling with cost (networks
    that fit their scoring batches at every width), where the non-dominated set ends early and
    would leave the front without the wider proposals (docs/method.md, "Front candidates").
    Proposals whose loss is null (made after the last re-scoring, never measured) are left out.

    Args:
        records: ``history.jsonl`` records, each with ``alpha`` (``dim`` floats), ``cost`` (cost
            ratio of the run's objective) and ``loss`` (float or None).
        dim: number of searchable groups of the run.
        proposals: ``non-dominated`` or ``all`` (``PROPOSALS``).

    Returns:
        The chosen proposals in increasing cost order.
    """
    if proposals not in PROPOSALS:
        raise FrontError(f"proposals must be one of {', '.join(PROPOSALS)}, got {proposals!r}")
    if not records:
        return []
    for i, r in enumerate(records):
        if len(r["alpha"]) != dim:
            raise FrontError(
                f"history record {r.get('index', i)} has {len(r['alpha'])} widths, but the run's "
                f"network has {dim} searchable groups: the history belongs to another run"
            )
    cost = torch.tensor([float(r["cost"]) for r in records], dtype=torch.float64)
    loss = torch.tensor(
        [math.nan if r.get("loss") is None else float(r["loss"]) for r in records],
        dtype=torch.float64,
    )
    if proposals == "all":
        chosen = [i for i in sorted(range(len(records)), key=lambda i: (float(cost[i]), i))
                  if not math.isnan(float(loss[i]))]  # fmt: skip
    else:
        chosen = pareto_front(cost, loss).indices.tolist()
    return [
        Candidate(
            alpha=torch.tensor(records[i]["alpha"], dtype=torch.float64),
            source="history",
            history_index=int(records[i].get("index", i)),
            search_loss=float(loss[i]),
        )
        for i in chosen
    ]


def uniform_sweep(space: WidthSpace, cost_ratio: CostRatio, n: int, steps: int = 60) -> Tensor:
    """Uniform widths whose cost ratios are spread evenly from the smallest network to the full one.

    For each of ``n`` targets evenly spaced in [cost(smallest), 1], bisection finds the widest
    uniform multiplier costing at most the target (cost grows with the multiplier), which is then
    lowered to the smallest multiplier giving the same channels (0.5 rather than 0.5999). Targets
    that land on the same channels give repeated rows; :func:`unique_by_channels` drops them.

    Args:
        space: the run's width space.
        cost_ratio: exact cost ratio, ``n x dim`` → ``n``.
        n: number of targets (at least 2: the smallest and the full network).
        steps: bisection steps (each halves the multiplier interval).

    Returns:
        ``n x dim`` float64, rows in increasing cost; the first is the smallest network, the last
        the full one.
    """
    if n < 2:
        raise ValueError(f"a cost sweep needs at least 2 widths, got {n}")
    dim, a_min = space.dim, space.min_multiplier

    def cost_of(a: Tensor) -> Tensor:
        return cost_ratio(a[:, None].expand(-1, dim))

    c_min = float(cost_of(torch.tensor([a_min], dtype=torch.float64))[0])
    targets = torch.linspace(c_min, 1.0, n, dtype=torch.float64)
    lo = torch.full((n,), a_min, dtype=torch.float64)  # invariant: cost(lo) <= target
    hi = torch.ones(n, dtype=torch.float64)
    for _ in range(steps):
        mid = (lo + hi) / 2
        fits = cost_of(mid) <= targets + RATIO_TOL
        lo, hi = torch.where(fits, mid, lo), torch.where(fits, hi, mid)
    a = torch.where(cost_of(hi) <= targets + RATIO_TOL, hi, lo)
    channels = space.channels(a[:, None].expand(-1, dim))
    lowest = (channels / space.sizes).amax(-1).clamp(min=a_min, max=1.0)
    same = (space.channels(lowest[:, None].expand(-1, dim)) == channels).all(-1)
    a = torch.where(same, lowest, a)
    return a[:, None].expand(-1, dim).clone()


def unique_by_channels(candidates: Sequence[Candidate], space: WidthSpace) -> list[Candidate]:
    """Candidates with distinct channel vectors, the first of each kept (they are one network)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for c in candidates:
        try:
            key = tuple(space.channels(c.alpha).tolist())
        except ValueError as err:
            raise FrontError(f"a candidate width vector does not fit the run: {err}") from None
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def method_candidates(
    method: str,
    space: WidthSpace,
    cost_ratio: CostRatio,
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    sweep: int = DEFAULT_SWEEP,
    proposals: str = "non-dominated",
) -> list[Candidate]:
    """The candidates of a run's front, by method (see the module docstring).

    Args:
        method: ``slim``, ``twostage`` or ``pareco``.
        space: the run's width space.
        cost_ratio: exact cost ratio of the run's objective, ``n x dim`` → ``n``.
        history: the search history (``pareco`` and ``twostage``).
        sweep: uniform widths of a Slim front.
        proposals: which history proposals (``history_candidates``); Slim has none.
    """
    if method == "slim":
        candidates = [Candidate(a, "uniform") for a in uniform_sweep(space, cost_ratio, sweep)]
    elif method in ("pareco", "twostage"):
        if history is None:
            raise ValueError(f"a {method} front needs the search history")
        candidates = [
            Candidate(space.smallest(), "smallest"),
            *history_candidates(history, space.dim, proposals),
            Candidate(space.largest(), "largest"),
        ]
    else:
        raise FrontError(f"unknown method {method!r}; a run's method is slim, twostage or pareco")
    return unique_by_channels(candidates, space)


def select_front(cost: Tensor, val_error: Tensor) -> list[int]:
    """Positions of the points non-dominated in (cost, validation error), by increasing cost.

    Args:
        cost: ``n`` cost ratios.
        val_error: ``n`` validation errors.
    """
    return pareto_front(cost.double(), val_error.double()).indices.tolist()


def best_within(cost: Tensor, val_accuracy: Tensor, budget: float) -> int | None:
    """Position of the most accurate point on validation whose cost is within ``budget``.

    Ties go to the cheaper point. Args: ``cost`` and ``val_accuracy`` are ``n`` each.
    Returns None when no point fits.
    """
    fits = (cost <= budget + RATIO_TOL).nonzero().flatten().tolist()
    if not fits:
        return None
    return max(fits, key=lambda i: (float(val_accuracy[i]), -float(cost[i])))


def summary_metrics(
    cost: Tensor,
    val_accuracy: Tensor,
    test_accuracy: Tensor,
    lo: float,
    hi: float = 1.0,
    budgets: Sequence[float] = BUDGETS,
) -> dict[str, Any]:
    """AUC, hypervolume and accuracy at budgets of a front (see the module docstring).

    Args:
        cost: ``k`` cost ratios of the front points.
        val_accuracy: ``k`` validation accuracies (they pick the point at each budget).
        test_accuracy: ``k`` test accuracies (they are reported).
        lo, hi: the cost range of the AUC; ``lo`` must be at least the cheapest point's cost
            (below it the curve is undefined).

    Returns:
        ``cost_range``, ``auc``, ``auc_linear``, ``mean_test_error``, ``hypervolume``,
        ``hypervolume_reference``,
        ``accuracy_at`` (one entry per budget: budget, point position, cost ratio, test accuracy;
        null fields when nothing fits).
    """
    cost, error = cost.double(), 1.0 - test_accuracy.double()
    val_error = 1.0 - val_accuracy.double()
    if hi > lo:
        auc = selected_error_auc(cost, val_error, error, lo, hi)
        auc_linear = selected_error_auc(cost, val_error, error, lo, hi, interpolate=True)
        mean_error = auc / (hi - lo)
    else:  # a space with one network: the curve is a point
        auc = auc_linear = 0.0
        fits = cost <= hi + RATIO_TOL
        best = int(torch.nonzero(fits).flatten()[int(torch.argmin(val_error[fits]))])
        mean_error = float(error[best])
    at = []
    for b in budgets:
        i = best_within(cost, val_accuracy, b)
        at.append({
            "budget": b,
            "point": i,
            "cost_ratio": None if i is None else float(cost[i]),
            "test_accuracy": None if i is None else float(test_accuracy[i]),
        })  # fmt: skip
    return {
        "cost_range": [lo, hi],
        "auc": auc,
        "auc_linear": auc_linear,
        "mean_test_error": mean_error,
        "hypervolume": hypervolume_2d(cost, error, *HV_REFERENCE),
        "hypervolume_reference": {"cost_ratio": HV_REFERENCE[0], "error": HV_REFERENCE[1]},
        "accuracy_at": at,
    }


def alphas_of(point: Mapping[str, Any]) -> Tensor:
    """A point's width vector, ``dim`` float64 (float32 could change its channels)."""
    return torch.tensor(point["alpha"], dtype=torch.float64)


def front_points(front: Mapping[str, Any], cost: str) -> list[dict[str, Any]]:
    """The points of ``front`` (a front.json dict) on its front under ``cost``, by cost."""
    return [front["points"][i] for i in front["fronts"][cost]]


def front_arrays(points: Sequence[Mapping[str, Any]], cost: str) -> tuple[Tensor, Tensor, Tensor]:
    """``k`` cost ratios, ``k`` validation and ``k`` test accuracies of front points."""
    return (
        torch.tensor([p[f"{cost}_ratio"] for p in points], dtype=torch.float64),
        torch.tensor([p["val_accuracy"] for p in points], dtype=torch.float64),
        torch.tensor([p["test_accuracy"] for p in points], dtype=torch.float64),
    )


def spread(cost: Sequence[float], k: int) -> list[int]:
    """Up to ``k`` positions of a cost-sorted list spread evenly in cost (first and last kept)."""
    n = len(cost)
    if n <= k:
        return list(range(n))
    lo, hi = cost[0], cost[-1]
    chosen: list[int] = []
    for j in range(k):
        target = lo + (hi - lo) * j / (k - 1)
        free = [i for i in range(n) if i not in chosen]
        chosen.append(min(free, key=lambda i: abs(cost[i] - target)))
    return sorted(chosen)


def open_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a *finished* run.

    Raises:
        RunError, FrontError: not a pareco run directory, a damaged checkpoint, or a run whose
            training has not finished.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FrontError(f"{run_dir} is not a directory; give a pareco run directory")
    run = load_run(run_dir, device)
    if not run.finished:
        raise FrontError(
            f"{run_dir}: training has not finished (checkpoint at step {run.state.get('step')}); "
            f"finish it first with `{resume_command(run_dir, run.config.data)}`"
        )
    if run.config.threads:
        torch.set_num_threads(run.config.threads)
    return run


def read_history(path: Path) -> list[dict[str, Any]]:
    """The records of ``history.jsonl`` (read by :meth:`pareco.search.History.read_records`), or a
    FrontError naming the damaged line."""
    from pareco.search.history import History, HistoryFileError

    try:
        return History.read_records(path)
    except HistoryFileError as err:
        raise FrontError(str(err)) from None


def run_candidates(
    run: Run, sweep: int = DEFAULT_SWEEP, proposals: str = "non-dominated"
) -> list[Candidate]:
    """The candidates of a run's front (reads its history for PareCO and TwoStage; ``proposals``
    as in :func:`history_candidates`)."""
    method, space = run.config.method, run.net.space

    cost_ratio = open_pricer(run).ratio_fn(run.config.cost)

    if method == "slim":
        return method_candidates(method, space, cost_ratio, sweep=sweep)
    path = run.run_dir / HISTORY
    if not path.is_file():
        if method == "twostage":
            raise FrontError(
                f"{run.run_dir} is a TwoStage run whose search has not run yet (no {HISTORY}): "
                f"run `pareco search {run.run_dir}` first"
            )
        raise FrontError(
            f"{run.run_dir} is a PareCO run without {HISTORY} (training writes it); "
            "the run directory is incomplete"
        )
    return method_candidates(
        method, space, cost_ratio, history=read_history(path), proposals=proposals
    )


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Logits ``n x classes`` (float32, CPU) and labels ``n`` over a loader, in eval mode.

    ``model`` is evaluated as it is: recalibrate BN (and set widths) first.
    """
    was_training = model.training
    model.eval()
    outs, labels = [], []
    try:
        for x, y in loader:
            outs.append(logits_of(batch_inputs.call(model, x)).float().cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs), torch.cat(labels)


def _score_all(
    run: Run,
    alphas: Sequence[Tensor],
    split: str,
    recalibration: list[Tensor],
    device: torch.device,
    progress: bool,
) -> list[EvalResult]:
    results = []
    for alpha in _bar(alphas, progress, f"{split} ({len(alphas)} sub-networks)"):
        loader = run.data.eval_loader(split, EVAL_BATCH, device=device)
        results.append(evaluate(run.net, alpha, loader, recalibration=recalibration))
    return results


def _bar(items: Sequence[Tensor], enabled: bool, desc: str) -> Iterable[Tensor]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False, dynamic_ncols=True)


def fingerprint(run_dir: str | Path) -> dict[str, str | None]:
    """SHA-256 of the checkpoint and the history a front was computed from."""
    run_dir = Path(run_dir)
    return {
        "checkpoint_sha256": _sha256(run_dir / "checkpoint.pt"),
        "history_sha256": _sha256(run_dir / HISTORY),
    }


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_front(
    run: Run,
    *,
    sweep: int = DEFAULT_SWEEP,
    device: str | torch.device = "cpu",
    progress: bool = True,
    candidates: Sequence[Candidate] | None = None,
    proposals: str = "non-dominated",
) -> dict[str, Any]:
    """Evaluate a finished run's candidates and select its fronts: the front.json dictionary.

    Every candidate is recalibrated and scored on validation; the front points under each of
    ``COSTS`` are then recalibrated again and scored on test. Nothing is written.

    Args:
        candidates: widths to evaluate instead of the run's own (``run_candidates``): e.g. another
            run's front widths on these weights, to tell better weights from better widths.
        proposals: which proposals of a PareCO or TwoStage history are candidates:
            ``non-dominated`` in (cost, search loss), the paper's rule, or ``all`` (every scored
            proposal: slower, and the front keeps wide networks a flat search loss would drop).
    """
    device = torch.device(device)
    cfg, space, data = run.config, run.net.space, run.data
    if data.split_sizes()["val"] == 0:
        raise FrontError(
            f"{run.run_dir} has no validation split (val_size 0): the front is selected on "
            "validation, so train with --val-size > 0"
        )
    if proposals != "non-dominated" and cfg.method == "slim":
        raise FrontError(
            f"{run.run_dir} is a Slim run: it has no search history, so only PareCO and "
            "TwoStage fronts take `proposals`"
        )
    given = candidates is not None  # another run's widths, say: not the history's
    if candidates is None:
        candidates = run_candidates(run, sweep, proposals)
    else:
        candidates = unique_by_channels(candidates, space)
    alphas = torch.stack([c.alpha for c in candidates])
    channels = space.channels(alphas)
    pricer = open_pricer(run)
    metrics_here, costs_here = pricer.available(), pricer.available("front")
    absolute = {m: pricer.cost(alphas, m) for m in metrics_here}
    ratio = {m: pricer.ratio(alphas, m) for m in metrics_here}
    order = sorted(range(len(candidates)), key=lambda i: (float(ratio[cfg.cost][i]), i))

    recal = run.recalibration(device)
    val = _score_all(run, [alphas[i] for i in order], "val", recal, device, progress)
    points: list[dict[str, Any]] = []
    for pid, (i, v) in enumerate(zip(order, val)):
        c = candidates[i]
        points.append({
            "id": pid,
            "source": c.source,
            "history_index": c.history_index,
            "search_loss": c.search_loss,
            "alpha": alphas[i].tolist(),
            "channels": channels[i].tolist(),
            **{m: float(absolute[m][i]) for m in metrics_here},
            **{f"{m}_ratio": float(ratio[m][i]) for m in metrics_here},
            "val_accuracy": v.accuracy,
            "val_loss": v.loss,
            "val_correct": round(v.accuracy * v.samples),
            "test_accuracy": None,
            "test_loss": None,
            "test_correct": None,
        })  # fmt: skip
    val_error = torch.tensor([1.0 - p["val_accuracy"] for p in points], dtype=torch.float64)
    fronts = {
        m: select_front(
            torch.tensor([p[f"{m}_ratio"] for p in points], dtype=torch.float64), val_error
        )
        for m in costs_here
    }
    on_front = sorted({i for ids in fronts.values() for i in ids})
    test = _score_all(
        run, [alphas_of(points[i]) for i in on_front], "test", recal, device, progress
    )
    for i, t in zip(on_front, test):
        points[i].update(
            test_accuracy=t.accuracy, test_loss=t.loss, test_correct=round(t.accuracy * t.samples)
        )
    metrics = {}
    for m in costs_here:
        c, v, t = front_arrays(front_points({"points": points, "fronts": fronts}, m), m)
        metrics[m] = summary_metrics(c, v, t, lo=float(ratio[m].min()))
        for entry in metrics[m]["accuracy_at"]:  # positions in the front → point ids
            if entry["point"] is not None:
                entry["point"] = fronts[m][entry["point"]]
    return {
        "format": FRONT_FORMAT,
        "version": FRONT_VERSION,
        "run": str(run.run_dir),
        "method": cfg.method,
        "cost": cfg.cost,
        "model": cfg.model,
        "model_kwargs": cfg.model_kwargs,
        "data": cfg.data,
        "input_shape": list(data.input_shape),
        "min_multiplier": space.min_multiplier,
        "selection": "validation",
        # a user's loaders without a test loader: the "test_*" fields are on validation
        "report": "validation" if data.test_is_val else "test",
        "report_note": TEST_IS_VAL_NOTE if data.test_is_val else None,
        "samples": {"val": val[0].samples, "test": test[0].samples},
        "recalibration_batches": len(recal),
        "device": str(device),
        "sweep": sweep if cfg.method == "slim" else None,
        "proposals": None if cfg.method == "slim" or given else proposals,
        "groups": [{"name": g.name, "size": g.size} for g in space.groups],
        "full_network": {m: float(pricer.cost(space.largest(), m)) for m in metrics_here},
        "points": points,
        "fronts": fronts,
        "metrics": metrics,
        "source": fingerprint(run.run_dir),
    }


def write_front(run_dir: str | Path, front: Mapping[str, Any]) -> list[Path]:
    """Write front.json, front.csv, front.png and widths.png into ``run_dir`` (each atomically)."""
    from pareco import plots

    run_dir = Path(run_dir)
    written = [
        write_text_atomic(run_dir / "front.json", json.dumps(front, indent=1) + "\n"),
        write_text_atomic(run_dir / "front.csv", front_csv(front)),
    ]
    title = f"{run_dir.name}: {front['method']}, {front['model']} (select on val, report on test)"
    panels = {m: [front_curve(front, m, front["method"])] for m in _plotted(front)}
    written.append(plots.plot_fronts(panels, run_dir / "front.png", title))
    points = front_points(front, front["cost"])
    chosen = [points[i] for i in spread([p[f"{front['cost']}_ratio"] for p in points], WIDTH_LINES)]
    cost = front["cost"]
    lines = [
        plots.WidthLine(
            f"{cost} {p[f'{cost}_ratio']:.2f}, acc {100 * p['test_accuracy']:.1f}%", p["channels"]
        )
        for p in chosen
    ]
    groups = front["groups"]
    written.append(plots.plot_widths(
        [g["name"] for g in groups], [g["size"] for g in groups], lines,
        run_dir / "widths.png",
        f"{run_dir.name}: channels per group, {len(chosen)} of {len(points)} front points "
        "spread in cost",
    ))  # fmt: skip
    return written


def _plotted(front: Mapping[str, Any]) -> list[str]:
    """The run's own cost objective first, then the other."""
    return [front["cost"], *(m for m in plotted_costs(front) if m != front["cost"])]


def front_curve(front: Mapping[str, Any], cost: str, label: str) -> Curve:
    """The ``plots.Curve`` of a front under ``cost``."""
    from pareco import plots

    points = front_points(front, cost)
    return plots.Curve(
        label,
        [p[f"{cost}_ratio"] for p in points],
        [1.0 - p["test_accuracy"] for p in points],
    )


def front_csv(front: Mapping[str, Any]) -> str:
    """The front of the run's objective as CSV, one row per point, by increasing cost."""
    names = [g["name"] for g in front["groups"]]
    scalar = ["id", "source", "history_index",
              *point_metrics(front), *(f"{m}_ratio" for m in point_metrics(front)),
              "val_accuracy", "val_loss", "test_accuracy", "test_loss"]  # fmt: skip
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*scalar, *(f"alpha[{n}]" for n in names), *(f"channels[{n}]" for n in names)])
    for p in front_points(front, front["cost"]):
        writer.writerow([
            *("" if p[k] is None else p[k] for k in scalar),
            *(f"{a:.6g}" for a in p["alpha"]),
            *p["channels"],
        ])  # fmt: skip
    return buf.getvalue()


def load_front(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUNDIR/front.json``, refusing one computed from another checkpoint or history.

    Raises:
        FrontError: missing, damaged or out of date.
    """
    run_dir = Path(run_dir)
    path = run_dir / "front.json"
    if not path.is_file():
        raise FrontError(f"{run_dir} has no front.json: run `pareco front {run_dir}` first")
    try:
        front = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FrontError(f"{path} is damaged ({err}); run `pareco front {run_dir}` again") from None
    if front.get("format") != FRONT_FORMAT or front.get("version") != FRONT_VERSION:
        raise FrontError(f"{path} is not a {FRONT_FORMAT} v{FRONT_VERSION} file")
    if front.get("source") != fingerprint(run_dir):
        raise FrontError(
            f"{path} was computed from another checkpoint or search history; "
            f"run `pareco front {run_dir}` again"
        )
    return front


def ensure_front(
    run_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    run: Run | None = None,
) -> dict[str, Any]:
    """The run's front.json, computed and written first when there is none."""
    run_dir = Path(run_dir)
    if (run_dir / "front.json").is_file():
        return load_front(run_dir)
    run = run or open_run(run_dir, device)
    front = build_front(run, device=device, progress=progress)
    write_front(run_dir, front)
    return front
