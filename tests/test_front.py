import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import TINY

from pareco import budget, cli, compare, export, front, report
from pareco.config import TrainConfig
from pareco.front import Candidate, FrontError
from pareco.run import load_run
from pareco.space import ChannelGroup, WidthSpace
from pareco.trainer import Trainer


# --- pure functions ------------------------------------------------------------------------------
def _record(index, alpha, cost, loss):
    return {"index": index, "alpha": alpha, "cost": cost, "loss": loss, "kind": "gp"}


HISTORY = [
    _record(0, [0.6, 0.6], 0.3, 2.0),
    _record(1, [0.7, 0.8], 0.5, 1.5),
    _record(2, [0.9, 0.5], 0.4, 2.5),  # dominated by 0
    _record(3, [0.9, 0.9], 0.8, 1.0),
    _record(4, [0.5, 0.5], 0.2, None),  # never scored: would be on the front
    _record(5, [1.0, 0.9], 0.9, 1.2),  # dominated by 3
    _record(6, [0.8, 0.7], 0.5, 1.5),  # same point as 1
]


def test_history_candidates_are_the_scored_non_dominated_proposals():
    got = front.history_candidates(HISTORY, dim=2)
    assert [c.history_index for c in got] == [0, 1, 3]
    assert [c.search_loss for c in got] == [2.0, 1.5, 1.0]
    assert torch.equal(got[1].alpha, torch.tensor([0.7, 0.8], dtype=torch.float64))
    assert all(c.source == "history" for c in got)
    assert front.history_candidates([], dim=2) == []


def test_all_proposals_are_every_scored_one_by_cost():
    got = front.history_candidates(HISTORY, dim=2, proposals="all")
    assert [c.history_index for c in got] == [0, 2, 1, 6, 3, 5]  # 4 was never scored
    assert [c.search_loss for c in got] == [2.0, 2.5, 1.5, 1.5, 1.0, 1.2]
    with pytest.raises(FrontError, match="non-dominated, all"):
        front.history_candidates(HISTORY, dim=2, proposals="best")


def test_history_of_another_network_is_refused():
    with pytest.raises(FrontError, match="3 searchable groups"):
        front.history_candidates(HISTORY, dim=3)


def _space(*sizes, min_multiplier=0.42):
    groups = tuple(ChannelGroup(f"g{i}", s) for i, s in enumerate(sizes))
    return WidthSpace(groups, min_multiplier=min_multiplier)


def _quadratic_cost(space):
    """A cost ratio like MACs of a chain of layers: products of consecutive groups' channels."""

    def cost_ratio(alpha):
        c = space.channels(alpha).double()
        full = space.sizes
        num = (c[..., 1:] * c[..., :-1]).sum(-1) + c[..., 0]
        return num / ((full[1:] * full[:-1]).sum() + full[0])

    return cost_ratio


def test_pareco_candidates_add_the_smallest_and_largest_once():
    space = _space(4, 8)
    records = [*HISTORY, _record(7, [1.0, 1.0], 1.0, 0.5)]  # the full network, as in warm-up
    got = front.method_candidates("pareco", space, _quadratic_cost(space), history=records)
    assert [c.source for c in got] == ["smallest", "history", "history", "history", "history"]
    assert torch.equal(got[0].alpha, space.smallest())
    assert got[-1].history_index == 7  # the full network came from the history: kept once
    channels = [tuple(space.channels(c.alpha).tolist()) for c in got]
    assert len(set(channels)) == len(channels)


def test_twostage_candidates_without_a_history_is_a_programming_error():
    space = _space(4, 8)
    got = front.method_candidates("twostage", space, _quadratic_cost(space), history=[])
    assert [c.source for c in got] == ["smallest", "largest"]
    with pytest.raises(ValueError, match="needs the search history"):
        front.method_candidates("twostage", space, _quadratic_cost(space))
    with pytest.raises(FrontError, match="unknown method"):
        front.method_candidates("random", space, _quadratic_cost(space))


def test_unique_by_channels_keeps_the_first_of_equal_networks():
    space = _space(10)
    cands = [Candidate(torch.tensor([0.5]), "a"), Candidate(torch.tensor([0.55]), "b"),
             Candidate(torch.tensor([0.6]), "c")]  # fmt: skip
    assert [c.source for c in front.unique_by_channels(cands, space)] == ["a", "c"]


def test_uniform_sweep_hits_evenly_spaced_costs_on_a_fine_space():
    space = _space(1000, 2000, 1000)
    cost_ratio = _quadratic_cost(space)
    alphas = front.uniform_sweep(space, cost_ratio, 12)
    assert alphas.shape == (12, 3)
    assert torch.equal(alphas[0], space.smallest()) and torch.equal(alphas[-1], space.largest())
    assert torch.all(alphas == alphas[:, :1])  # uniform
    costs = cost_ratio(alphas)
    targets = torch.linspace(float(costs[0]), 1.0, 12, dtype=torch.float64)
    assert torch.all(costs <= targets + 1e-12)
    assert torch.allclose(costs, targets, atol=2e-3)  # channels are steps of 1/1000


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 24), min_size=1, max_size=5),
    n=st.integers(2, 20),
    a_min=st.floats(0.2, 0.9),
)
def test_uniform_sweep_takes_the_widest_uniform_width_within_each_target(sizes, n, a_min):
    space = _space(*sizes, min_multiplier=a_min)
    cost_ratio = _quadratic_cost(space)
    alphas = front.uniform_sweep(space, cost_ratio, n)
    costs = cost_ratio(alphas)
    targets = torch.linspace(float(cost_ratio(space.smallest())), 1.0, n, dtype=torch.float64)
    assert torch.all(costs <= targets + 1e-9)
    assert torch.all(costs[1:] >= costs[:-1])
    assert torch.all(alphas >= a_min - 1e-12) and torch.all(alphas <= 1.0)
    # the widest: any uniform width a bit wider and with more channels costs more than the target
    fine = torch.linspace(a_min, 1.0, 400, dtype=torch.float64)
    fine_costs = cost_ratio(fine[:, None].expand(-1, len(sizes)))
    for t, c in zip(targets, costs):
        fitting = fine_costs[fine_costs <= t + 1e-9]
        assert c >= fitting.max() - 1e-12


def test_select_front_on_validation():
    cost = torch.tensor([0.2, 0.4, 0.3, 0.9, 1.0, 0.3])
    val_error = torch.tensor([0.5, 0.3, 0.4, 0.3, 0.2, 0.45])
    assert front.select_front(cost, val_error) == [0, 2, 1, 4]


def test_best_within_picks_by_validation_and_prefers_the_cheaper_tie():
    cost = torch.tensor([0.2, 0.5, 0.6, 1.0], dtype=torch.float64)
    val = torch.tensor([0.5, 0.7, 0.7, 0.9], dtype=torch.float64)
    assert front.best_within(cost, val, 0.1) is None
    assert front.best_within(cost, val, 0.2) == 0  # a budget equal to a cost admits it
    assert front.best_within(cost, val, 0.65) == 1
    assert front.best_within(cost, val, 1.0) == 3


def test_summary_metrics_against_hand_computed_values():
    cost = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    val = torch.tensor([0.55, 0.82, 0.85], dtype=torch.float64)
    test = torch.tensor([0.6, 0.8, 0.9], dtype=torch.float64)
    m = front.summary_metrics(cost, val, test, lo=0.2, budgets=(0.1, 0.25, 0.5, 0.75, 1.0))
    # errors 0.4, 0.2, 0.1: area 0.4 * (0.5 - 0.2) + 0.2 * (1.0 - 0.5) = 0.22 over a width of 0.8
    assert m["auc"] == pytest.approx(0.22)
    assert m["mean_test_error"] == pytest.approx(0.275)
    # reference (1, 1): (0.5 - 0.2) * (1 - 0.4) + (1 - 0.5) * (1 - 0.2); the full network adds 0
    assert m["hypervolume"] == pytest.approx(0.58)
    assert m["hypervolume_reference"] == {"cost_ratio": 1.0, "error": 1.0}
    at = {a["budget"]: (a["point"], a["test_accuracy"]) for a in m["accuracy_at"]}
    assert at == {0.1: (None, None), 0.25: (0, 0.6), 0.5: (1, 0.8), 0.75: (1, 0.8), 1.0: (2, 0.9)}


def test_accuracy_at_budget_is_chosen_on_validation_not_test():
    cost = torch.tensor([0.2, 0.5], dtype=torch.float64)
    m = front.summary_metrics(
        cost, torch.tensor([0.5, 0.7]), torch.tensor([0.8, 0.6]), lo=0.2, budgets=(0.5,)
    )
    assert m["accuracy_at"][0]["test_accuracy"] == pytest.approx(0.6)


def _fake_front(costs, val, test, model="smallnet", method="pareco", run="r"):
    points = [
        {"id": i, "flops_ratio": c, "memory_ratio": c, "params_ratio": c, "val_accuracy": v,
         "test_accuracy": t, "alpha": [c], "channels": [round(10 * c)], "source": "history"}
        for i, (c, v, t) in enumerate(zip(costs, val, test))
    ]  # fmt: skip
    ids = list(range(len(points)))
    return {"run": run, "method": method, "cost": "flops", "model": model, "model_kwargs": {},
            "data": "synthetic", "input_shape": [1, 12, 12], "points": points,
            "fronts": {"flops": ids, "memory": ids, "params": ids},
            "groups": [{"name": "g0", "size": 10}]}  # fmt: skip


def test_pick_for_budget_and_its_errors():
    f = _fake_front([0.142, 0.4, 0.7, 1.0], [0.5, 0.6, 0.8, 0.85], [0.5, 0.6, 0.8, 0.85])
    assert budget.pick_for_budget(f, "flops", 0.75)["id"] == 2
    assert budget.pick_for_budget(f, "memory", 0.4)["id"] == 1
    assert budget.pick_for_budget(f, "flops", 5)["id"] == 3
    with pytest.raises(FrontError, match=r"smallest available costs 0\.1420"):
        budget.pick_for_budget(f, "flops", 0.1)
    with pytest.raises(FrontError, match=r"this front has no latency cost .*; choose one of flops"):
        budget.pick_for_budget(f, "latency", 0.5)
    with pytest.raises(FrontError, match=r"cost ratio > 0"):
        budget.pick_for_budget(f, "flops", -1.0)
    for bad in (0, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(FrontError, match=r"cost ratio in \(0, 1\]"):
            budget.check_budget(bad)


def test_compare_fronts_uses_the_common_cost_range():
    a = _fake_front([0.1, 0.5, 1.0], [0.5, 0.7, 0.9], [0.5, 0.7, 0.9], run="a")
    b = _fake_front([0.3, 1.0], [0.6, 0.8], [0.6, 0.8], method="slim", run="b")
    result = compare.compare_fronts([a, b], ["a", "b"], "flops")
    assert result["cost_range"] == [0.3, 1.0]
    ra, rb = result["runs"]
    # a over [0.3, 1]: error 0.5 up to 0.5, then 0.3: (0.2 * 0.5 + 0.5 * 0.3) / 0.7
    assert ra["mean_test_error"] == pytest.approx(0.25 / 0.7)
    assert rb["mean_test_error"] == pytest.approx(0.4)
    assert [x["test_accuracy"] for x in rb["accuracy_at"]] == [None, 0.6, 0.6, 0.8]
    table = report.compare_markdown(result)
    assert "| b | slim | flops | 2 | 40.00% |" in table
    with pytest.raises(FrontError, match="differ in model"):
        compare.compare_fronts([a, _fake_front([1.0], [1], [1], model="resnet20")], ["a", "c"],
                             "flops")  # fmt: skip


def test_check_agreement_tolerates_float_noise_only():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(50, 10, generator=g)
    labels = torch.randint(0, 10, (50,), generator=g)
    correct = int((ref.argmax(1) == labels).sum())
    ok = budget.check_agreement(ref, ref + 1e-7, labels, correct)
    assert ok.ok and ok.correct == correct and ok.accuracy == correct / 50
    wrong = ref.clone()
    wrong[0] = 0
    wrong[0, (labels[0] + 1) % 10] = 5.0  # a real change of prediction
    assert not budget.check_agreement(ref, wrong, labels, correct).ok
    # a near tie may flip within noise: allowed
    tie = ref.clone()
    tie[1] = 0
    tie[1, labels[1]] = 1.0
    tie[1, (labels[1] + 1) % 10] = 1.0 - 1e-5
    flipped = tie.clone()
    flipped[1, (labels[1] + 1) % 10] = 1.0 + 1e-5
    expected = int((tie.argmax(1) == labels).sum())
    check = budget.check_agreement(tie, flipped, labels, expected)
    assert check.ok and check.near_ties >= 1 and check.correct == expected - 1
    assert not budget.check_agreement(ref, ref, labels, correct - 1).ok  # the front said otherwise


def test_spread_keeps_ends_and_spaces_in_cost():
    assert front.spread([0.1, 0.2, 0.3], 5) == [0, 1, 2]
    assert front.spread([0.0, 0.1, 0.2, 0.5, 0.52, 0.9, 1.0], 3) == [0, 3, 6]


# --- on a tiny trained run -----------------------------------------------------------------------
def _train(root: Path, method: str, **kw) -> Path:
    cfg = TrainConfig(**{**TINY, "method": method, "out": str(root / method), "epochs": 1, **kw})
    Trainer(cfg, progress=False).fit()
    return root / method


@pytest.fixture(scope="module")
def slim_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("front"), "slim")


@pytest.fixture
def run(slim_run, tmp_path):
    """A private copy of the finished slim run."""
    return Path(shutil.copytree(slim_run, tmp_path / "run"))


def _listing(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _refused(capsys, argv, root: Path, match: str) -> None:
    before = _listing(root)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    assert _listing(root) == before


@pytest.mark.slow
def test_front_files_and_the_exported_model_gives_the_fronts_accuracy(run, capsys):
    assert cli.main(["front", str(run), "--cost-sweep", "8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mean test error" in out
    for name in ("front.json", "front.csv", "front.png", "widths.png"):
        assert (run / name).stat().st_size > 0, name
    f = json.loads((run / "front.json").read_text())
    assert f["method"] == "slim" and f["sweep"] == 8 and f["selection"] == "validation"
    points = f["points"]
    assert len(points) <= 8 and points[0]["source"] == "uniform"
    assert points[0]["flops_ratio"] == min(p["flops_ratio"] for p in points)
    ids = f["fronts"]["flops"]
    assert ids[0] == 0  # the smallest network is always on the front
    cost = [points[i]["flops_ratio"] for i in ids]
    err = [1 - points[i]["val_accuracy"] for i in ids]
    assert cost == sorted(cost) and all(a > b for a, b in itertools.pairwise(err))
    assert all(points[i]["test_accuracy"] is not None for i in ids)
    assert len((run / "front.csv").read_text().splitlines()) == len(ids) + 1
    net = load_run(run).net
    assert points[0]["memory"] == net.cost(net.space.smallest(), "memory").item()

    assert cli.main(["export", str(run), "--budget", "0.6", "--no-progress"]) == 0
    target = run / "export" / "flops-0.6"
    assert sorted(p.name for p in target.iterdir()) == [
        "model.json", "report.json", "report.md", "weights.pt"]  # fmt: skip
    report = json.loads((target / "report.json").read_text())
    point = points[report["point"]]
    assert point == budget.pick_for_budget(f, "flops", 0.6)
    data = load_run(run).data
    model = export.load(target)
    with torch.no_grad():
        pred = model(data.normalize(data.test.x)).argmax(1)
    assert (pred == data.test.y).float().mean().item() == pytest.approx(point["test_accuracy"])
    meta = export.load_meta(target)
    assert meta["alpha"] == point["alpha"] and meta["accuracy"]["test"] == point["test_accuracy"]
    # exporting again replaces the earlier export; a directory of other files is never replaced
    assert cli.main(["export", str(run), "--budget", "0.6", "--no-progress"]) == 0
    assert export.load_meta(target)["point"] == point["id"]
    (run / "mine").mkdir()
    (run / "mine" / "notes.txt").write_text("keep")
    capsys.readouterr()
    _refused(capsys, ["export", str(run), "--budget", "0.6", "--out", str(run / "mine")], run,
             "holds other files than an exported model")  # fmt: skip


def test_refusals_are_one_line_and_leave_the_run_untouched(run, tmp_path, capsys):
    net = load_run(run).net
    smallest = net.cost_ratio(net.space.smallest(), "flops").item()
    # checked before the front is computed: no front.json appears
    _refused(capsys, ["export", str(run), "--budget", "0.01"], run,
             f"the smallest available costs {smallest:.4f}")  # fmt: skip
    assert cli.main(["front", str(run), "--cost-sweep", "4", "--no-progress"]) == 0
    capsys.readouterr()
    smallest = net.cost_ratio(net.space.smallest(), "memory").item()
    _refused(capsys, ["export", str(run), "--budget", "0.05", "--cost", "memory"], run,
             f"the smallest available costs {smallest:.4f}")  # fmt: skip
    _refused(capsys, ["export", str(run), "--budget", "0.5", "--cost", "latency"], run,
             "cost 'latency' needs a latency table")  # fmt: skip
    _refused(capsys, ["export", str(run), "--budget", "half"], run, "--budget must be a number")
    _refused(capsys, ["export", str(run), "--budget", "0.5", "--format", "tflite"], run,
             "unknown format 'tflite'")  # fmt: skip
    # a history appearing after the front: front.json is out of date
    (run / "history.jsonl").write_text("")
    _refused(capsys, ["export", str(run), "--budget", "0.5"], run, "pareco front")
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    _refused(capsys, ["front", str(other)], other, "is not a pareco run directory")
    _refused(capsys, ["export", str(other), "--budget", "0.5"], other, "not a pareco run")
    _refused(capsys, ["compare", str(other), "--out", str(other / "cmp")], other, "not a pareco")


def test_unfinished_run_is_refused(tmp_path, capsys):
    cfg = TrainConfig(**{**TINY, "method": "slim", "out": str(tmp_path / "run")})
    Trainer(cfg, progress=False).save()  # a checkpoint at step 0
    _refused(capsys, ["front", str(tmp_path / "run")], tmp_path / "run",
             "training has not finished")  # fmt: skip
    _refused(capsys, ["export", str(tmp_path / "run"), "--budget", "0.5"], tmp_path / "run",
             "training has not finished")  # fmt: skip


@pytest.mark.slow
def test_front_of_every_proposal(tmp_path, capsys):
    """--proposals all evaluates every scored proposal: a superset of the paper's candidates, so
    its front is at least as good on validation at every cost; Slim runs and a wrong value are
    refused in one line, with nothing written."""
    run = _train(tmp_path, "pareco")
    assert cli.main(["front", str(run), "--no-progress"]) == 0
    paper = json.loads((run / "front.json").read_text())
    assert cli.main(["front", str(run), "--proposals", "all", "--no-progress"]) == 0
    capsys.readouterr()
    every = json.loads((run / "front.json").read_text())
    assert paper["proposals"] == "non-dominated" and every["proposals"] == "all"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    scored = {r["index"] for r in history if r["loss"] is not None}
    from_history = {p["history_index"] for p in every["points"] if p["source"] == "history"}
    assert from_history <= scored and len(from_history) >= len(scored) - 2  # smallest/largest
    assert {p["history_index"] for p in paper["points"] if p["source"] == "history"} <= scored
    assert len(every["points"]) >= len(paper["points"])
    ours = front.front_points(every, "flops")
    for p in front.front_points(paper, "flops"):
        assert any(q["flops_ratio"] <= p["flops_ratio"] + 1e-12
                   and q["val_accuracy"] >= p["val_accuracy"] for q in ours)  # fmt: skip
    _refused(capsys, ["front", str(run), "--proposals", "best"], run,
             "--proposals must be non-dominated or all, got 'best'")  # fmt: skip


def test_slim_front_of_every_proposal_is_refused(run, capsys):
    _refused(capsys, ["front", str(run), "--proposals", "all"], run, "it has no search history")


def test_twostage_run_before_its_search_is_refused(tmp_path, capsys):
    run = _train(tmp_path, "twostage")
    _refused(capsys, ["front", str(run)], run, f"run `pareco search {run}` first")


def test_compare_writes_a_table_and_a_plot(run, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(run), str(run), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    md = (out / "compare.md").read_text()
    assert md in printed and md.count("| slim | flops |") == 2
    assert (out / "compare.png").stat().st_size > 0
    result = json.loads((out / "compare.json").read_text())
    f = json.loads((run / "front.json").read_text())  # written by compare where missing
    assert result["runs"][0]["hypervolume"] == pytest.approx(f["metrics"]["flops"]["hypervolume"])
    assert not math.isnan(result["runs"][0]["mean_test_error"])


def test_cross_evaluation_scores_foreign_widths_on_a_runs_weights(slim_run):
    """build_front(candidates=...) evaluates other widths (e.g. another run's front) on these
    weights like its own: recalibrated, selected on validation, reported on test."""
    from pareco.front import build_front, open_run

    run = open_run(slim_run)
    space = run.net.space
    gen = torch.Generator().manual_seed(0)
    alphas = space.min_multiplier + (1 - space.min_multiplier) * torch.rand(
        5, space.dim, generator=gen, dtype=torch.float64
    )
    foreign = [Candidate(a, "cross") for a in alphas] + [Candidate(alphas[0], "cross")]
    cross = build_front(run, candidates=foreign, progress=False)
    assert len(cross["points"]) == 5  # the duplicate is one network, evaluated once
    assert {p["source"] for p in cross["points"]} == {"cross"}
    own = build_front(run, progress=False, sweep=4)
    assert {p["source"] for p in own["points"]} == {"uniform"}
    # The same network gets the same accuracy whichever list it came in.
    largest = Candidate(space.largest(), "cross")
    again = build_front(run, candidates=[largest], progress=False)
    full = next(p for p in own["points"] if p["flops_ratio"] == pytest.approx(1.0))
    assert again["points"][0]["val_accuracy"] == full["val_accuracy"]
    if full["test_accuracy"] is not None:  # scored on test only when it is on a front
        assert again["points"][0]["test_accuracy"] == full["test_accuracy"]


@pytest.mark.slow
def test_front_imports_without_the_trainer():
    """``pareco.front`` reads finished runs: importing it loads neither the trainer nor the modules
    built on the front (``budget``, ``compare``), so there is no import cycle between them."""
    code = (
        "import sys, pareco.front; "
        "print(sorted(m for m in ('pareco.trainer', 'pareco.budget', 'pareco.compare') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert not hasattr(front, "export_for_budget")  # no re-exports of moved names
