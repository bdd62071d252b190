"""``pareco.rundir``: which files are a run's own (staging files of atomic writes included), and
the metrics cut back to a checkpoint."""

import json

import pytest
from test_train import TINY

from pareco import cli
from pareco.atomic import temporary_name
from pareco.rundir import RunDirError, prepare, truncate_metrics


def test_a_crash_leftover_of_an_atomic_write_counts_as_the_runs_own(tmp_path):
    """A folder holding only an attempt that never checkpointed (config.json and the staging file
    of an interrupted write) is set aside for a new run, not refused as foreign."""
    (tmp_path / "config.json").write_text("{}")
    temporary_name(tmp_path / "history.jsonl").write_text("half")
    message = prepare(tmp_path, resume=False)
    assert message is not None and "replaced-1" in message
    assert sorted(p.name for p in (tmp_path / "replaced-1").iterdir()) == [
        temporary_name(tmp_path / "history.jsonl").name, "config.json",
    ]  # fmt: skip


def test_restart_sets_aside_every_file_a_run_writes(tmp_path, capsys):
    """A run started from trained weights (sort.json), priced in latency (its table) or with
    an unfinished TwoStage search (its state) is a run's own folder: --restart moves all of it
    aside instead of refusing it as foreign."""
    run, cfg = tmp_path / "r", tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 1}))
    args = ["train", "--config", str(cfg), "--out", str(run), "--no-progress"]
    assert cli.main(args) == 0
    for name in ("sort.json", "latency_table.json", "search_state.pt"):  # what those runs add
        (run / name).write_text("{}")
    assert cli.main([*args, "--restart"]) == 0, capsys.readouterr().err
    aside = {p.name for p in (run / "replaced-1").iterdir()}
    assert {"sort.json", "latency_table.json", "search_state.pt", "checkpoint.pt"} <= aside


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError):
        prepare(tmp_path, resume=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_metrics_after_the_checkpoint_step_are_dropped(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (2, 4, 6)] + ['{"step": 8, "lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert truncate_metrics(tmp_path, 4) == 2  # step 6 and the line cut short by a kill
    kept = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in kept] == [2, 4]
    assert truncate_metrics(tmp_path, 4) == 0


def test_resuming_a_finished_run_evaluates_it_and_leaves_its_files_alone(tmp_path, capsys):
    """--resume after the last checkpoint (a crash in the final evaluation, or a second look)
    evaluates again; the checkpoint and history are not rewritten, so the front stays valid."""
    run, cfg = tmp_path / "r", tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 1, "method": "pareco", "num_proposals": 4,
                               "warmup_proposals": 2}))  # fmt: skip
    assert cli.main(["train", "--config", str(cfg), "--out", str(run), "--no-progress"]) == 0
    assert cli.main(["front", str(run), "--no-progress"]) == 0
    files = {n: (run / n).read_bytes() for n in ("checkpoint.pt", "history.jsonl")}
    capsys.readouterr()
    assert cli.main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "had finished training: evaluating it again" in capsys.readouterr().out
    assert {n: (run / n).read_bytes() for n in files} == files
    assert cli.main(["export", str(run), "--budget", "0.8", "--format", "pt", "--no-progress"]) == 0
