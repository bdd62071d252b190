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
    checkpoint("twostage-s2", 100, True)  # stage one trained, its searches not begun
    rows = {r["run"]: r for r in status_rows(snaps, summaries, [0, 1, 2, 3])}
    assert rows["twostage-memory-s2"]["state"] == "not started"
    assert rows["twostage-memory-s3"]["state"] == "waits for stage one"
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


def test_a_root_holding_another_experiments_runs_is_refused(tmp_path):
    """A run directory trained under other settings (the 3-epoch comparison's slim-s1 in the
    paper regime's root) would be taken as done: `run` refuses the root with one line."""
    import argparse
    import json

    import pytest
    from compare_methods import check_root, check_stamp, run, stamp_root

    config = tmp_path / "paper.yaml"
    config.write_text("model: resnet20\nepochs: 30\nseed: 0\nthreads: 1\n")
    root, summaries = tmp_path / "runs", tmp_path / "summaries"
    (root / "slim-s1").mkdir(parents=True)
    same = {"model": "resnet20", "epochs": 30, "seed": 1, "threads": 2, "method": "slim"}
    (root / "slim-s1" / "config.json").write_text(json.dumps(same))
    check_root(root, config, summaries)  # per-job settings (seed, threads, method) may differ
    (root / "slim-s1" / "config.json").write_text(json.dumps({**same, "epochs": 3}))
    with pytest.raises(SystemExit, match=r"slim-s1 was trained with epochs=3, not 30"):
        check_root(root, config, summaries)
    args = argparse.Namespace(root=root, config=str(config), summaries=summaries, seeds=[1],
                              jobs=1, device=None, snapshot_every=30.0)  # fmt: skip
    with pytest.raises(SystemExit, match="belongs to another experiment"):
        run(args)  # refused before anything starts, is restored or written
    assert sorted(p.name for p in root.iterdir()) == ["slim-s1"]

    stamp_root(root, summaries)
    check_stamp(root, summaries)
    with pytest.raises(SystemExit, match="holds the runs of the experiment summarized in"):
        check_stamp(root, tmp_path / "other")


def test_a_stamp_names_the_summaries_folder_alike_from_any_checkout(tmp_path, monkeypatch):
    """The scheduler runs in a worktree and names the main checkout's summaries by absolute path;
    a snapshot taken by hand inside the main checkout names them relatively: both are one
    experiment, and the same folder in another clone is too; another folder is not."""
    import json

    import pytest
    from compare_methods import STAMP, check_stamp, stamp_root

    main, clone, root = tmp_path / "main", tmp_path / "clone", tmp_path / "runs"
    for top in (main, clone):
        (top / ".git").mkdir(parents=True)
        (top / "docs" / "paper").mkdir(parents=True)
        (top / "docs" / "short").mkdir(parents=True)
    stamp_root(root, main / "docs" / "paper")
    assert json.loads((root / STAMP).read_text()) == {"summaries": "docs/paper"}
    monkeypatch.chdir(main)
    check_stamp(root, main / "docs" / "paper")
    check_stamp(root, clone / "docs" / "paper")
    from pathlib import Path

    check_stamp(root, Path("docs/paper"))
    with pytest.raises(SystemExit, match="holds the runs of the experiment summarized in"):
        check_stamp(root, Path("docs/short"))
    # A stamp written before stamps were named relative to their checkout
    (root / STAMP).write_text(json.dumps({"summaries": str(main / "docs" / "paper")}) + "\n")
    check_stamp(root, Path("docs/paper"))
    with pytest.raises(SystemExit, match="holds the runs of the experiment summarized in"):
        check_stamp(root, clone / "docs" / "short")


def test_commit_summaries_commits_that_folder_alone(tmp_path, monkeypatch):
    """`run --commit` commits the summaries folder after each snapshot: its additions, changes and
    deletions, a new seed summary named in the message, and nothing else that is staged."""
    import subprocess

    from compare_methods import commit_summaries

    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "test")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.com")

    def git(*argv):
        done = subprocess.run(["git", "-C", str(repo), *argv], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    repo = tmp_path / "repo"
    summaries = repo / "docs" / "paper"
    (summaries / "in_progress" / "slim-s1").mkdir(parents=True)
    (summaries / "in_progress" / "slim-s1" / "checkpoint.pt").write_text("step 10")
    (repo / "README.md").write_text("readme\n")
    git("init", "-q")
    git("add", "README.md")
    git("commit", "-q", "-m", "start")
    assert commit_summaries(summaries, "snapshot one").startswith("committed docs/paper")
    assert git("log", "-1", "--format=%s") == "snapshot one\n"
    assert git("show", "--name-only", "--format=", "HEAD").split() == [
        "docs/paper/in_progress/slim-s1/checkpoint.pt"
    ]
    # Seed 1 summarized: its snapshot is gone, its summary is new; other work stays staged.
    (repo / "README.md").write_text("edited\n")
    git("add", "README.md")
    (summaries / "in_progress" / "slim-s1" / "checkpoint.pt").unlink()
    (summaries / "s1.json").write_text("{}")
    commit_summaries(summaries, "snapshot two")
    assert git("log", "-1", "--format=%s") == "snapshot two; new summaries: s1.json\n"
    assert sorted(git("show", "--name-status", "--format=", "HEAD").splitlines()) == [
        "A\tdocs/paper/s1.json",
        "D\tdocs/paper/in_progress/slim-s1/checkpoint.pt",
    ]
    assert git("diff", "--cached", "--name-only").split() == ["README.md"]
    assert commit_summaries(summaries, "snapshot three") == "nothing new to commit"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert "not in a git checkout" in commit_summaries(outside, "x")


def test_a_snapshot_commit_message_says_where_each_run_stands():
    from compare_methods import _where

    training = {"run": "slim-s1", "state": "training", "step": 9416, "steps": 12840}
    assert _where(training) == "slim-s1 at step 9,416 of 12,840"
    searching = {"run": "twostage-memory-s1", "state": "searching (748 of 1000 candidates)"}
    assert _where(searching) == "twostage-memory-s1 searching (748 of 1000 candidates)"
    assert _where({**training, "state": "trained"}) == "slim-s1 trained"
