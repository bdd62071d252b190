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
