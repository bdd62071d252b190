import json

import pytest
import torch
from test_train import tiny

from pareco import cli
from pareco.errors import RunError
from pareco.trainer import Trainer
from pareco.twostage import run_search


@pytest.fixture(scope="module")
def twostage_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts")
    Trainer(tiny(root, method="twostage", epochs=1, warmup_proposals=4), progress=False).fit()
    return root / "run"


def test_search_writes_a_scored_history(twostage_run):
    summary = run_search(twostage_run, candidates=14, progress=False)
    assert summary["candidates"] == 14
    records = [json.loads(x) for x in (twostage_run / "history.jsonl").read_text().splitlines()]
    assert len(records) == 14
    assert all(r["loss"] is not None for r in records)  # frozen weights: every candidate scored
    kinds = [r["kind"] for r in records]
    assert kinds[:4] == ["uniform"] * 4 and kinds[4] == "full"
    assert set(kinds[5:]) <= {"gp", "random"}


def test_search_refuses_other_runs(tmp_path, capsys):
    cfg = tiny(tmp_path, method="slim", epochs=1)
    Trainer(cfg, progress=False).fit()
    with pytest.raises(RunError, match="is a slim run"):
        run_search(tmp_path / "run", progress=False)
    assert cli.main(["search", str(tmp_path / "nope")]) == 2
    assert "not a pareco run directory" in capsys.readouterr().err


def test_a_run_being_written_is_not_searched_and_search_is_one_process(
    twostage_run, capsys, monkeypatch
):
    """A search holds the run's lock: a second search (or a training) of the same run gets one
    line instead of both writing history.jsonl; under torchrun every rank would search whole
    and write the same files, so only pareco train is let run there."""
    from pareco.rundir import RunDirError, RunLock

    history = twostage_run / "history.jsonl"
    before = history.read_bytes() if history.exists() else None  # a stage one writes none
    held = RunLock(twostage_run)  # the other writer
    try:
        with pytest.raises(RunDirError, match=r"is being written by pareco pid \d+") as err:
            run_search(twostage_run, candidates=6, progress=False)
        assert str(err.value).endswith("wait for it to finish")
    finally:
        held.release()
    assert (history.read_bytes() if history.exists() else None) == before
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["search", str(twostage_run), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "pareco search: error: pareco search runs in one process: run it without torchrun "
        "(only pareco train uses several)"
    )
    assert (history.read_bytes() if history.exists() else None) == before


def test_an_interrupted_search_continues_where_it_stopped(twostage_run, monkeypatch):
    """Killed after its 5th scoring (a state saved at every round), the search run again on the
    same run continues from the saved state and writes the history an uninterrupted one does;
    the state file is gone once the history is written."""
    from pareco import twostage

    state = twostage_run / twostage.SEARCH_STATE
    run_search(twostage_run, candidates=16, progress=False)
    whole = (twostage_run / "history.jsonl").read_text()
    assert not state.exists()
    (twostage_run / "history.jsonl").unlink()

    real, calls = twostage.score_widths, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # the smallest network, then 5 rounds of proposals
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(twostage, "score_widths", dies)
    with pytest.raises(KeyboardInterrupt):
        run_search(twostage_run, candidates=16, progress=False, save_every=0)
    assert state.exists() and not (twostage_run / "history.jsonl").exists()
    before = torch.load(state, weights_only=False)
    assert before["seconds"] > 0  # the first process's time is kept for the next
    counted: list[int] = []

    def counts(*args, **kwargs):
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(twostage, "score_widths", counts)
    resumed = run_search(twostage_run, candidates=16, progress=False, save_every=0)
    assert resumed["candidates"] == 16
    assert resumed["seconds"] > before["seconds"] and resumed["score_seconds"] < resumed["seconds"]
    assert len(counted) == 4  # saved after 4 rounds (8 candidates): 4 rounds left, no smallest
    assert (twostage_run / "history.jsonl").read_text() == whole
    assert not state.exists()

    # a state saved for another budget is set aside, not used
    run_search(twostage_run, candidates=6, progress=False, save_every=0)
    twostage._save_state(state, {"cost": "memory", "budget": 6, "step": 0}, {}, 0.0)
    run_search(twostage_run, candidates=6, progress=False)
    assert (twostage_run / (twostage.SEARCH_STATE + ".stale")).exists()


def test_a_search_continued_from_a_state_without_its_time_reports_none(twostage_run, monkeypatch):
    """A state saved before pareco recorded the search's time (no ``seconds``): the search
    continues, and reports its time as unknown instead of the last process's part."""
    from pareco import twostage

    state = twostage_run / twostage.SEARCH_STATE
    real, calls = twostage.score_widths, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(twostage, "score_widths", dies)
    with pytest.raises(KeyboardInterrupt):
        run_search(twostage_run, candidates=8, progress=False, save_every=0)
    old = torch.load(state, weights_only=False)
    del old["seconds"]
    torch.save(old, state)
    monkeypatch.setattr(twostage, "score_widths", real)
    resumed = run_search(twostage_run, candidates=8, progress=False)
    assert resumed["candidates"] == 8 and resumed["seconds"] is None
    assert resumed["score_seconds"] > 0


def test_the_comparisons_stage_two_records_the_searchs_whole_time(twostage_run, tmp_path):
    """benchmarks/compare_methods.py's stage two copies stage one for a cost objective, searches
    it, and writes search.json with the search's time as `pareco.twostage.run_search` summed it."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from compare_methods import stage_two

    out = tmp_path / "twostage-memory-s0"
    config = json.loads((twostage_run / "config.json").read_text())
    config["search_candidates"] = 6
    source = tmp_path / "stage-one"
    source.mkdir()
    for name in ("checkpoint.pt", "eval.json"):
        (source / name).write_bytes((twostage_run / name).read_bytes())
    (source / "config.json").write_text(json.dumps(config))
    stage_two(argparse.Namespace(source=source, out=out, cost="memory", device=None))
    record = json.loads((out / "search.json").read_text())
    assert record["candidates"] == 6 and record["partial"] is False
    assert record["seconds"] >= record["score_seconds"] > 0
    assert json.loads((out / "config.json").read_text())["cost"] == "memory"
