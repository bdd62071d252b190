"""benchmarks/front_candidates.py: the faithful front against one selected from every proposal."""

import json
import math
import sys
from pathlib import Path

import pytest
from test_train import TINY

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from front_candidates import CACHE, describe, spearman, table

from pareco.config import TrainConfig
from pareco.front import front_points
from pareco.trainer import Trainer


def test_spearman_by_hand():
    assert spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]) == pytest.approx(-0.5)  # ranks 0,1,2 / 2,0,1
    assert math.isnan(spearman([1.0, 2.0], [2.0, 1.0]))


@pytest.mark.slow
def test_describe_caches_the_whole_history_front_and_tabulates_both(tmp_path):
    cfg = TrainConfig(**{**TINY, "method": "pareco", "out": str(tmp_path / "run"), "epochs": 1})
    Trainer(cfg, progress=False).fit()
    run = tmp_path / "run"
    result = describe(run, threads=1)
    assert (run / CACHE).is_file() and result["seconds"] is not None
    assert (run / "front.json").is_file()  # the faithful front, written where missing
    whole = json.loads((run / CACHE).read_text())
    assert whole["proposals"] == "all"
    assert describe(run, threads=1)["seconds"] is None  # read from the cache
    assert result["proposals"] == sum(1 for p in whole["points"] if p["source"] == "history")
    assert 0 <= result["proposals_above_gap"] <= result["proposals"]
    faithful, every = result["fronts"]["faithful"], result["fronts"]["whole history"]
    assert every["points"] == len(front_points(whole, whole["cost"]))
    assert faithful["points"] >= 2 and every["points"] >= 2
    rows = table([result]).splitlines()
    assert rows[2].startswith("| run | faithful |")
    assert rows[3].startswith("| run | whole history |")
