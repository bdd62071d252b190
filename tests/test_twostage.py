import json

import pytest
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
    counted: list[int] = []

    def counts(*args, **kwargs):
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(twostage, "score_widths", counts)
    resumed = run_search(twostage_run, candidates=16, progress=False, save_every=0)
    assert resumed["candidates"] == 16
    assert len(counted) == 4  # saved after 4 rounds (8 candidates): 4 rounds left, no smallest
    assert (twostage_run / "history.jsonl").read_text() == whole
    assert not state.exists()

    # a state saved for another budget is set aside, not used
    run_search(twostage_run, candidates=6, progress=False, save_every=0)
    twostage._save_state(state, {"cost": "memory", "budget": 6, "step": 0}, {}, 0.0)
    run_search(twostage_run, candidates=6, progress=False)
    assert (twostage_run / (twostage.SEARCH_STATE + ".stale")).exists()
