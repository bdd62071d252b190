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
