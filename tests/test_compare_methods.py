"""The comparison's scheduler survives the machine: snapshots of unfinished runs and their restore
(benchmarks/compare_methods.py), on made-up run directories."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from compare_methods import plan, restore, snapshot


def _run(root: Path, name: str, step: int, finished: bool = False) -> Path:
    d = root / name
    (d / "tb").mkdir(parents=True)
    (d / "tb" / "events.out").write_text("tb")
    (d / "checkpoint.pt").write_text(f"step {step}")
    (d / "checkpoint.prev.pt").write_text("older")
    (d / ".lock").write_text("1234")
    (d / "config.json").write_text("{}")
    (d / "front.png").write_text("png")
    if finished:
        (d / "eval.json").write_text("{}")
    return d


def test_snapshot_keeps_what_resumes_and_restore_never_overwrites(tmp_path):
    root, summaries = tmp_path / "runs", tmp_path / "summaries"
    into = summaries / "in_progress"
    _run(root, "slim-s0", 12840, finished=True)
    _run(root, "pareco-flops-s0", 400)
    _run(root, "slim-s1", 10)
    (root / "pareco-memory-s0").mkdir()  # started, no checkpoint yet: nothing to copy
    (root / "logs").mkdir()
    summaries.mkdir()
    (summaries / "s1.json").write_text("{}")  # seed 1 is summarized: its runs are not needed
    (into / "slim-s1").mkdir(parents=True)
    (into / "slim-s1" / "checkpoint.pt").write_text("stale")

    assert snapshot(root, into, summaries) == ["pareco-flops-s0", "slim-s0"]
    assert sorted(p.name for p in into.iterdir()) == ["pareco-flops-s0", "slim-s0"]
    assert sorted(p.name for p in (into / "slim-s0").iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "eval.json",
    ]

    # a new machine: the runs are gone; one of them was started again and got further
    other = tmp_path / "elsewhere"
    _run(other, "pareco-flops-s0", 600)
    assert restore(other, into) == ["slim-s0"]
    assert (other / "slim-s0" / "checkpoint.pt").read_text() == "step 12840"
    assert (other / "pareco-flops-s0" / "checkpoint.pt").read_text() == "step 600"
    # the scheduler resumes the restored run (done: it has its eval.json) and the live one
    jobs = {j.name: j for j in plan(other, "c.yaml", [0], summaries)}
    assert jobs["train slim-s0"].done.exists()
    assert "--resume" in jobs["train pareco-flops-s0"].command
    assert "--resume" not in jobs["train twostage-s0"].command


def test_status_reads_snapshots_and_summaries(tmp_path):
    import json

    from compare_methods import status_rows, status_table

    from pareco.checkpoint import PAYLOAD_KEYS, SCHEMA, save_checkpoint

    summaries = tmp_path / "summaries"
    snaps = summaries / "in_progress"

    def checkpoint(name: str, step: int, finished: bool) -> None:
        state = dict.fromkeys(PAYLOAD_KEYS)
        loader = {"num_samples": 1000, "batch_size": 20}
        state.update(schema=SCHEMA, step=step, finished=finished, config={"epochs": 2},
                     loader=loader, train_seconds=18.0 * step)  # fmt: skip
        (snaps / name).mkdir(parents=True)
        save_checkpoint(state, snaps / name)

    checkpoint("slim-s0", 100, True)
    uniform = [{"width": 0.5, "test_accuracy": 0.9}, {"width": 1.0, "test_accuracy": 0.925}]
    (snaps / "slim-s0" / "eval.json").write_text(json.dumps({"uniform": uniform}))
    checkpoint("twostage-s0", 40, False)
    (snaps / "twostage-flops-s0").mkdir()
    (snaps / "twostage-flops-s0" / "search.json").write_text('{"seconds": 720}')
    (summaries / "s1.json").write_text("{}")
    checkpoint("twostage-memory-s0", 100, True)  # stage one's copy, its search under way
    from pareco.twostage import _save_state

    key = {"cost": "memory", "budget": 1000, "step": 100}
    state = {"history": {"steps": [0] * 14}}
    _save_state(snaps / "twostage-memory-s0" / "search_state.pt", key, state, 1.0)
    rows = {r["run"]: r for r in status_rows(snaps, summaries, [0, 1])}
    assert rows["slim-s0"]["state"] == "trained" and rows["slim-s0"]["steps"] == 100
    assert rows["twostage-s0"]["state"] == "training" and rows["twostage-s0"]["step"] == 40
    assert rows["twostage-flops-s0"]["state"] == "searched"
    assert rows["twostage-memory-s0"]["state"] == "searching (14 of 1000 candidates)"
    assert rows["twostage-flops-s1"]["state"] == "summarized"
    assert rows["pareco-flops-s0"]["state"] == "not started"
    assert rows["pareco-memory-s1"]["state"] == "summarized"
    table = status_table(list(rows.values())).splitlines()
    assert table[0] == "| run | state | step | train (h) | acc @ 0.5 (%) | acc @ 1.0 (%) |"
    assert "| slim-s0 | trained | 100 of 100 | 0.50 | 90.00 | 92.50 |" in table
    assert "| twostage-s0 | training | 40 of 100 | 0.20 | | |" in table
    assert "| twostage-flops-s0 | searched |  | 0.20 | | |" in table
