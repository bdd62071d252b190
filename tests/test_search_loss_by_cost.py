"""benchmarks/search_loss_by_cost.py: search loss per cost band, and the bisections' misses."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from search_loss_by_cost import loss_by_cost, misses


def _r(cost, loss, kind="gp", target=None, hit=None):
    return {"cost": cost, "loss": loss, "kind": kind, "target_cost": target, "hit": hit}


RECORDS = [
    _r(0.2, 0.30, "uniform"),
    _r(0.25, 0.28, target=0.25, hit=True),
    _r(0.5, 0.26, target=0.8, hit=False),  # aimed wide, landed 0.3 cheaper
    _r(0.6, 0.27, target=0.7, hit=False),  # 0.1 cheaper
    _r(1.0, 0.27, "full"),  # the closed last band takes cost 1
    _r(0.9, None, target=0.9, hit=True),  # never scored: no loss, but a hit
]


def test_bands_by_hand():
    rows = loss_by_cost(RECORDS, bands=(0.0, 0.5, 1.0))
    assert rows[0] == {"band": [0.0, 0.5], "n": 2, "min": 0.28, "median": pytest.approx(0.29)}
    assert rows[1]["n"] == 3 and rows[1]["min"] == 0.26 and rows[1]["median"] == 0.27
    assert loss_by_cost(RECORDS, bands=(0.0, 0.1, 1.0))[0] == {
        "band": [0.0, 0.1],
        "n": 0,
        "min": None,
        "median": None,
    }


def test_misses_by_hand():
    m = misses(RECORDS)
    assert (m["gp"], m["hits"], m["missed"]) == (4, 2, 2)
    assert m["median_cost_minus_target"] == pytest.approx(-0.2)  # median of -0.3 and -0.1
    assert len(m["target_quartiles"]) == 3
    assert "target_quartiles" not in misses(RECORDS[:3])  # one miss: no quartiles
