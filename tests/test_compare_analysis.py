"""The comparison's statistics and report (benchmarks/compare_analysis.py) on made-up summaries."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from compare_analysis import (
    BUDGETS,
    COSTS,
    VARIANTS,
    holm,
    metrics,
    paired,
    report,
    seeds_to_show,
)


def test_paired_interval_and_sign_test():
    p = paired([1.0, 2.0, 3.0])
    assert p["mean"] == 2.0 and p["n"] == 3 and p["negative"] == 0
    half = 4.302653 / 3**0.5  # t(0.975, 2) * sd / sqrt(n), sd = 1
    assert p["ci95"] == pytest.approx([2.0 - half, 2.0 + half], rel=1e-6)
    assert p["sign_test_p"] == pytest.approx(0.25)
    # t = mean / (sd / sqrt(n)) = 2 / (1 / sqrt(3)) = 3.4641 on 2 degrees of freedom: p = 0.0742
    assert p["t_test_p"] == pytest.approx(0.07418, abs=1e-4)
    assert paired([-0.1] * 5)["sign_test_p"] == pytest.approx(0.0625)  # the floor at 5 seeds


def _front(auc: float) -> dict:
    accuracy = {str(b): 0.8 for b in BUDGETS}
    return {"metrics": {"auc": auc, "hypervolume": 0.5 - auc, "accuracy_at": accuracy}}


def _summary(seed: int, pareco_gain: dict[str, float]) -> dict:
    noise = 0.001 * (seed % 3)  # the seeds differ a little, the same for every method
    costs = {}
    for cost in COSTS:
        fronts = {k: _front(0.15 + noise) for k in VARIANTS}
        fronts["pareco"] = _front(0.15 + noise - pareco_gain[cost] + 0.0005 * (seed % 2))
        costs[cost] = {"cost_range": [0.15, 1.0], "fronts": fronts}
    return {"seed": seed, "costs": costs, "runs": {}, "evaluate_seconds": 60.0}


def test_report_says_what_is_shown_and_what_is_not(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    for seed in range(5):  # PareCO better under memory on every seed, equal under FLOPs
        summary = _summary(seed, {"flops": 0.0, "memory": 0.01})
        (folder / f"s{seed}.json").write_text(json.dumps(summary))
    page = tmp_path / "results.md"
    report(folder, page)
    text = page.read_text()
    shown = text.split("that survive Holm's correction:")[1].split("Whose own 95%")[0]
    assert "PareCO vs Slim (the paper's comparison), memory" in shown
    assert "5/5 seeds favour a: PareCO (its own widths and weights) is better" in shown
    assert "flops" not in shown  # equal under FLOPs up to the paired noise: not claimed
    assert "Incomplete" not in text and "cannot go below p = 0.0625" in text
    assert "at least one would exclude 0 by chance with probability 0.40" in text
    # the projection column: PareCO vs Slim under memory is shown already, so 5 seeds or fewer
    memory = text.split("## Cost objective: memory")[1].splitlines()
    row = next(r for r in memory if r.startswith("| PareCO vs Slim (the paper's"))
    assert int(row.rstrip(" |").rsplit("| ", 1)[1]) <= 5


def test_report_with_missing_seeds_says_it_is_incomplete(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    for seed in range(2):
        summary = _summary(seed, {"flops": 0.0, "memory": 0.01})
        (folder / f"s{seed}.json").write_text(json.dumps(summary))
    report(folder, tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text()
    assert "**Incomplete: 2 of the 5 planned seeds.**" in text
    assert "2 of 5 planned seeds, so not a conclusion" in text
    assert "(only 2 of 5 planned seeds: not conclusions):" in text


def test_holm_against_hand_computed_values():
    # Sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06,
    # kept non-decreasing); given order is restored.
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([float("nan"), 0.01])
    assert out[1] == pytest.approx(0.01) and out[0] != out[0]  # NaN stays out of the family


def test_an_interval_excluding_0_that_fails_holm_is_not_called_shown(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    gains = [0.004, 0.0005, 0.003, 0.0045, 0.001]  # PareCO better under memory, noisily
    for seed in range(5):
        summary = _summary(seed, {"flops": 0.0, "memory": 0.0})
        fronts = summary["costs"]["memory"]["fronts"]
        fronts["pareco"]["metrics"]["auc"] = fronts["slim"]["metrics"]["auc"] - gains[seed]
        (folder / f"s{seed}.json").write_text(json.dumps(summary))
    report(folder, tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text()
    shown = text.split("that survive Holm's correction:")[1].split("Whose own 95%")[0]
    weak = text.split("but not after the correction (not shown):")[1].split("Not separated")[0]
    assert "- none." in shown
    assert "PareCO vs Slim (the paper's comparison), memory" in weak


def test_metrics_recomputed_from_points_choose_on_validation():
    points = [
        {"cost_ratio": 0.2, "val_accuracy": 0.7, "test_accuracy": 0.75},
        {"cost_ratio": 0.5, "val_accuracy": 0.8, "test_accuracy": 0.6},
        {"cost_ratio": 1.0, "val_accuracy": 0.9, "test_accuracy": 0.9},
    ]
    m = metrics(points, 0.2)
    assert m["auc"] == pytest.approx(0.3 * 0.25 + 0.5 * 0.4)
    assert m["auc_linear"] == pytest.approx(0.3 * (0.25 + 0.4) / 2 + 0.5 * (0.4 + 0.1) / 2)
    assert m["points"] == 3


def test_report_reads_the_validation_size_and_jobs_it_was_given(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    summary = _summary(0, {"flops": 0.0, "memory": 0.0})
    summary["runs"] = {"slim-s0": {"train_seconds": 10.0}}
    (folder / "s0.json").write_text(json.dumps(summary))
    config = tmp_path / "config.yaml"
    config.write_text("model: resnet20\nval_size: 300\n")
    report(folder, tmp_path / "results.md", config, planned=1, jobs=12)
    text = (tmp_path / "results.md").read_text()
    assert "selected on the 300-image validation split" in text
    assert "12 one-thread jobs at a time" in text and "At 12 jobs at a time" in text


def test_scale_note_says_what_longer_training_added_when_the_folder_has_it(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    (folder / "s0.json").write_text(json.dumps(_summary(0, {"flops": 0.0, "memory": 0.0})))
    report(folder, tmp_path / "short.md", planned=1)
    assert "these are short runs, not converged networks" in (tmp_path / "short.md").read_text()
    runs = [
        {"run": "e15", "method": "slim", "epochs": 15, "seed": 0,
         "accuracy": {"0.42": 0.905, "1.0": 0.9226}},
        {"run": "e30", "method": "slim", "epochs": 30, "seed": 0,
         "accuracy": {"0.42": 0.9169, "1.0": 0.9322}},
        {"run": "e60", "method": "slim", "epochs": 60, "seed": 0},  # not finished: ignored
    ]  # fmt: skip
    (folder / "convergence.json").write_text(json.dumps(runs))
    report(folder, tmp_path / "long.md", planned=1)
    text = (tmp_path / "long.md").read_text()
    assert "Training Slim for 30 epochs instead of 15 (seed 0" in text
    assert "added +1.0 to +1.2 points at uniform widths 0.42, 1.0" in text
    assert "short runs" not in text


def test_one_seed_shows_its_differences_without_intervals_or_p(tmp_path):
    import json

    folder = tmp_path / "summaries"
    folder.mkdir()
    summary = _summary(0, {"flops": 0.004, "memory": 0.0})
    for cost in COSTS:
        for front in summary["costs"][cost]["fronts"].values():
            front["metrics"]["auc_linear"] = front["metrics"]["auc"] - 0.001
    (folder / "s0.json").write_text(json.dumps(summary))
    report(folder, tmp_path / "one.md", planned=3)
    text = (tmp_path / "one.md").read_text()
    assert "nan" not in text and "no interval, t test or Holm adjustment" in text
    row = next(r for r in text.splitlines() if r.startswith("| PareCO vs Slim"))
    # step and linear AUC differences of the one seed; interval, t test and Holm p are blank
    assert row.split(" | ")[1:5] == ["-0.0040", "–", "–", "–"] and row.endswith("| -0.0040 | – |")


def test_multiplicity_note_says_what_few_seeds_can_show():
    """With 10 tests, the strongest contrast needs p < 0.005: |t| > t(0.9975, n-1), hand-checked
    against tables (14.09 on 2 degrees of freedom, 5.60 on 4); the sign test's floor is 2 / 2^n."""
    from compare_analysis import _multiplicity_note

    three = _multiplicity_note(3)
    assert "|t| > 14.09 on 2 degrees of freedom" in three and "8.13 times" in three
    assert "p = 0.250 with 3 seeds" in three
    assert "|t| > 5.60 on 4 degrees" in _multiplicity_note(5)
    assert "on 1 degree of freedom" in _multiplicity_note(2)  # 127.32, one degree: singular
    assert "degrees of freedom" not in _multiplicity_note(1)


def test_seeds_to_show_against_t_tables():
    """Strictest Holm step over 10 tests: |mean| / sd must exceed t(0.9975, n - 1) / sqrt(n), from
    t tables 14.09 / sqrt(3) = 8.13 at 3 seeds, 7.45 / 2 = 3.73 at 4, 5.60 / sqrt(5) = 2.50 at 5."""
    assert seeds_to_show(8.2, 1.0, 10) == 3
    assert seeds_to_show(-8.0, 1.0, 10) == 4  # the sign does not matter
    assert seeds_to_show(3.0, 1.0, 10) == 5
    assert seeds_to_show(0.01, 1.0, 10) is None  # more than 50 seeds
    assert seeds_to_show(0.0, 1.0, 10) is None and seeds_to_show(0.1, 0.0, 10) == 2
    assert paired([1.0, 2.0, 3.0])["sd"] == pytest.approx(1.0)
