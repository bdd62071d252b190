"""``pareco export``: the front point that fits a cost budget, exported and checked again.

The point is the most accurate on validation among the front points within the budget. It is
BN-recalibrated, materialized as a plain model, saved, loaded back (and run through onnxruntime),
and must reproduce the front's test accuracy up to float noise, or nothing is written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.cost_metrics import UnknownMetric
from pareco.evaluate import recalibrate_bn
from pareco.front import (
    EVAL_BATCH,
    RATIO_TOL,
    FrontError,
    alphas_of,
    best_within,
    check_cost,
    ensure_front,
    front_arrays,
    front_points,
    open_pricer,
    open_run,
    point_metrics,
    predict,
)
from pareco.plugins import load_run_plugins
from pareco.report import export_report, export_report_markdown
from pareco.run import Run

if TYPE_CHECKING:
    from pareco.latency import LatencyModel


def check_budget(budget: Any, *, at_most_one: bool = True) -> float:
    """A budget as a cost ratio (0.5 = half the full network's cost): in (0, 1] for an export;
    any positive ratio with ``at_most_one=False`` (above 1, everything fits).

    Raises:
        FrontError: anything else, in one line (the CLI, ``pick_for_budget`` and
            ``export_for_budget`` all check here).
    """
    ok = isinstance(budget, (int, float)) and not isinstance(budget, bool)
    if not (ok and math.isfinite(budget) and budget > 0 and (budget <= 1 or not at_most_one)):
        allowed = "in (0, 1]" if at_most_one else "> 0"
        raise FrontError(
            f"--budget is a cost ratio {allowed} (0.5 = half the full network's cost), got "
            f"{budget}; 1 exports the full network"
        )
    return float(budget)


def pick_for_budget(front: Mapping[str, Any], cost: str, budget: float) -> dict[str, Any]:
    """The front point ``pareco export`` ships for ``cost`` ratio ≤ ``budget``: the most accurate
    on validation among those that fit.

    Raises:
        FrontError: an unknown cost, or a budget below every point (naming the smallest cost).
    """
    cost = check_cost(cost, front)
    check_budget(budget, at_most_one=False)
    points = front_points(front, cost)
    ratios, val, _ = front_arrays(points, cost)
    i = best_within(ratios, val, budget)
    if i is None:
        raise FrontError(
            f"no sub-network fits a {cost} ratio of {budget:g}: the smallest available costs "
            f"{float(ratios.min()):.4f}"
        )
    return points[i]


@dataclass(frozen=True)
class AgreementCheck:
    """Does a model classify the test split as the front said the sub-network does?

    Attributes:
        correct: test samples the checked model classifies right.
        expected: the front's figure for the point.
        samples: test samples.
        max_logit_diff: largest |logit − reference logit|.
        noise: the float noise allowed on a logit.
        near_ties: samples whose reference top-2 margin is so small that noise may flip them.
        ok: the logits agree within noise and the count is within ``near_ties`` of ``expected``.
    """

    correct: int
    expected: int
    samples: int
    max_logit_diff: float
    noise: float
    near_ties: int
    ok: bool

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.samples, 1)


def check_agreement(
    reference: Tensor, logits: Tensor, labels: Tensor, expected_correct: int, rtol: float = 1e-4
) -> AgreementCheck:
    """Compare a model's test predictions with the slimmable network's and with the front.

    Args:
        reference: ``n x classes`` logits of the slimmable network at the point (recalibrated).
        logits: ``n x classes`` logits of the model under check (exported, reloaded, ONNX).
        labels: ``n`` true classes.
        expected_correct: correct predictions the front reported for the point.
        rtol: float noise allowed on a logit, relative to the largest reference logit (>= 1).
    """
    reference, logits = reference.double().cpu(), logits.double().cpu()
    labels = labels.cpu()
    noise = rtol * max(1.0, float(reference.abs().max())) if reference.numel() else rtol
    diff = float((logits - reference).abs().max()) if logits.numel() else 0.0
    if reference.shape[1] > 1:
        top2 = reference.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]
    else:
        margin = torch.full((reference.shape[0],), math.inf, dtype=torch.float64)
    near = int((margin <= 2 * max(diff, noise)).sum())
    correct = int((logits.argmax(1) == labels).sum())
    ok = diff <= noise and abs(correct - expected_correct) <= near
    return AgreementCheck(correct, expected_correct, int(labels.numel()), diff, noise, near, ok)


FORMATS = {"pt": ("pt",), "onnx": ("onnx",), "both": ("pt", "onnx")}


@dataclass
class ExportResult:
    """Where the exported model went, which point it is, and the accuracy checks it passed."""

    path: Path
    point: dict[str, Any]
    checks: dict[str, AgreementCheck]
    report: dict[str, Any]


def export_for_budget(
    run_dir: str | Path,
    budget: float,
    cost: str,
    fmt: str = "pt",
    *,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    budget_ms: float | None = None,
) -> ExportResult:
    """Export the front point that fits ``cost`` ratio ≤ ``budget`` as a plain model.

    With ``budget_ms`` (``cost`` and ``budget`` are then ignored), the point is the most accurate
    whose *predicted* latency (the run's latency table) is at most ``budget_ms``; the exported
    model is then measured on the table's runtime, and report.json's ``latency`` holds the
    measured and the predicted milliseconds.

    The point (most accurate on validation among those that fit, from front.json — computed first
    when missing) is BN-recalibrated and materialized (``net.export``); the saved model is loaded
    back and its test accuracy must equal the front's figure up to float noise (samples whose top-2
    logits are closer than the noise), or nothing is written. Files go to ``out`` (default
    ``RUNDIR/export/<cost>-<budget>``): model.json + weights.pt (``pt``), model.onnx (``onnx``),
    report.json and report.md.
    """
    run_dir = Path(run_dir)
    load_run_plugins(run_dir)  # the budget's metric may be one of the run's plugins
    cost = check_cost(cost)
    if fmt not in FORMATS:
        raise FrontError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    formats = FORMATS[fmt]
    if budget_ms is None:
        check_budget(budget)
    if "onnx" in formats:
        missing = [
            m for m in ("onnx", "onnxscript", "onnxruntime") if not importlib.util.find_spec(m)
        ]
        if missing:
            raise FrontError(f"ONNX export needs {', '.join(missing)}: pip install 'pareco[onnx]'")
    device = torch.device(device)
    run = open_run(run_dir, device)
    net, space = run.net, run.net.space
    pricer = open_pricer(run)
    if budget_ms is not None:
        if pricer.latency is None:
            raise FrontError(
                f"--budget-ms needs a latency table: {run_dir} was trained without one "
                "(config key latency_table)"
            )
        cost = "latency"
        full_ms = float(pricer.cost(space.largest(), "latency"))
        budget = budget_ms / full_ms  # may exceed 1: a budget above the full network's latency
    try:
        smallest = float(pricer.ratio(space.smallest(), cost))
    except UnknownMetric as err:
        raise FrontError(str(err)) from None
    # fail before building a front where the smallest network is the cheapest one; a measured
    # latency need not be (where it is flat, noise can price a narrower network above the full)
    if cost != "latency" and budget < smallest - RATIO_TOL:
        raise FrontError(
            f"no sub-network fits a {cost} ratio of {budget:g}: the smallest available costs "
            f"{smallest:.4f}"
        )
    front = ensure_front(run_dir, device=device, progress=progress, run=run)
    try:
        point = pick_for_budget(front, cost, budget)
    except FrontError:
        if budget_ms is None:
            raise
        cheapest = min(float(p["latency"]) for p in front_points(front, cost))
        raise FrontError(
            f"no sub-network fits {budget_ms:g} ms: the cheapest on the front is predicted at "
            f"{cheapest:.3f} ms (the full network at {full_ms:.3f} ms)"
        ) from None
    alpha = alphas_of(point)

    recalibrate_bn(net, alpha, run.recalibration(device))

    def test_loader() -> Iterable[
        tuple[Tensor, Tensor]
    ]:  # a loader is one pass: a fresh one for every model checked
        return run.data.eval_loader("test", EVAL_BATCH, device=device)

    with net.widths(alpha):
        reference, labels = predict(net, test_loader())
    sub = net.export(alpha).eval()
    # CUDA convolutions may run in TF32: allow its rounding; on CPU the noise is far below 1e-4
    cuda = device.type == "cuda" or str(front.get("device", "")).startswith("cuda")
    rtol = 5e-3 if cuda else 1e-4

    target = Path(out) if out is not None else run_dir / "export" / f"{cost}-{budget:g}"
    checks: dict[str, AgreementCheck] = {}
    with _staging(target) as stage:
        meta = export_meta(run, front, point, cost, budget)
        if "pt" in formats:
            from pareco.export import load, save

            save(sub.cpu(), stage, meta)
            logits, _ = predict(load(stage, map_location=device), test_loader())
            checks["pt"] = check_agreement(reference, logits, labels, point["test_correct"], rtol)
        else:
            logits, _ = predict(sub.to(device), test_loader())
            checks["torch"] = check_agreement(
                reference, logits, labels, point["test_correct"], rtol
            )
        if "onnx" in formats:
            example = run.data.example_input()
            logits = _onnx_logits(sub.cpu(), example, test_loader(), stage / "model.onnx")
            checks["onnx"] = check_agreement(reference, logits, labels, point["test_correct"], rtol)
        failed = {k: c for k, c in checks.items() if not c.ok}
        if failed:
            detail = "; ".join(
                f"{k}: {c.correct}/{c.samples} correct, max logit difference "
                f"{c.max_logit_diff:.3g} (noise {c.noise:.3g}, {c.near_ties} near ties)"
                for k, c in failed.items()
            )
            raise FrontError(
                f"the exported model does not reproduce the front's test accuracy for point "
                f"{point['id']} ({point['test_correct']}/{checks[next(iter(failed))].samples} "
                f"correct): {detail}; nothing was written"
            )
        report = export_report(front, point, cost, budget, checks, target, formats)
        if cost == "latency" and pricer.latency is not None:
            example = batch_inputs.to(
                run.data.normalize(batch_inputs.take(run.data.test.x, 1)), "cpu"
            )
            if budget_ms is not None:
                report["budget"]["ms"] = budget_ms
            report["latency"] = measure_latency(pricer.latency, sub.cpu(), example, point,
                                                budget_ms)  # fmt: skip
        (stage / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (stage / "report.md").write_text(export_report_markdown(report))
    return ExportResult(target, point, checks, report)


def measure_latency(
    model: LatencyModel,
    sub: nn.Module,
    example: Tensor,
    point: Mapping[str, Any],
    budget_ms: float | None,
) -> dict[str, Any]:
    """Time the exported ``sub`` on the runtime its latency table was measured with (same
    threads, clock and repeats): measured vs predicted ms (``example``: ``1 x C x H x W``)."""
    from pareco.latency import make_runtime

    rt = model.table.runtime
    runtime = make_runtime(
        rt["name"], device=rt.get("device", "cpu"), threads=rt.get("threads"),
        warmup=rt.get("warmup", 5), repeats=rt.get("repeats", 30), clock=rt.get("clock", "wall"),
    )  # fmt: skip
    measured = runtime.model_ms(sub.eval(), example)
    predicted = float(point["latency"])
    return {
        "runtime": rt,
        "predicted_ms": predicted,
        "measured_ms": measured,
        "relative_error": (predicted - measured) / measured,
        "budget_ms": budget_ms,
        "within_budget": None if budget_ms is None else measured <= budget_ms,
    }


def _onnx_logits(
    sub: nn.Module, example: Tensor, loader: Iterable[tuple[Tensor, Tensor]], path: Path
) -> Tensor:
    """Write ``sub`` as ONNX (``example``: ``1 x C x H x W``) and run it with onnxruntime over
    the loader: ``n x classes`` logits."""
    import onnxruntime as ort

    from pareco.export import to_onnx

    to_onnx(sub, batch_inputs.to(example, "cpu"), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def feed(x: Any) -> dict[str, Any]:  # a tensor is "input"; a dict's tensors go by name
        if isinstance(x, Tensor):
            return {"input": x.cpu().numpy()}
        return {k: v.cpu().numpy() for k, v in x.items() if k in names}

    outs = [torch.from_numpy(session.run(None, feed(x))[0]) for x, _ in loader]
    return torch.cat(outs)


EXPORT_FILES = frozenset({"model.json", "weights.pt", "model.onnx", "report.json", "report.md"})


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A fresh directory beside ``target`` that replaces it only when the block succeeds.

    An existing ``target`` is replaced only if it holds nothing but an earlier export's files.
    """
    if target.exists() and (
        not target.is_dir() or not {p.name for p in target.iterdir()} <= EXPORT_FILES
    ):
        raise FrontError(
            f"{target} exists and holds other files than an exported model; choose a new "
            "or empty directory"
        )
    created_parent = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created_parent:
            with contextlib.suppress(OSError):
                target.parent.rmdir()
        raise
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        target.replace(old)
    stage.replace(target)
    shutil.rmtree(old, ignore_errors=True)


def export_meta(
    run: Run, front: Mapping[str, Any], point: Mapping[str, Any], cost: str, budget: float
) -> dict[str, Any]:
    """What model.json's ``meta`` says about an exported point: widths, costs, accuracy, inputs."""
    data = run.data
    return {
        "run": str(run.run_dir),
        "method": front["method"],
        "model": front["model"],
        "selected": {"cost": cost, "budget": budget, "by": "validation accuracy"},
        "point": point["id"],
        "alpha": point["alpha"],
        "channels": {g["name"]: ch for g, ch in zip(front["groups"], point["channels"])},
        "costs": {m: point[m] for m in point_metrics(front)},
        "cost_ratios": {m: point[f"{m}_ratio"] for m in point_metrics(front)},
        "accuracy": {"val": point["val_accuracy"], "test": point["test_accuracy"]},
        "input": {
            "shape": list(data.input_shape),
            "preprocess": "x / 255, then (x - mean) / std per channel",
            "mean": list(data.mean),
            "std": list(data.std),
        },
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
    }
