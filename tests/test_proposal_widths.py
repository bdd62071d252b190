"""benchmarks/proposal_widths.py: which widths a PareCO run's proposals gave each group."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from proposal_widths import proposal_widths


def test_means_and_near_uniform_shares_by_hand():
    rows = [
        {"kind": "full", "alpha": [1.0, 1.0]},  # left out: the full network is trained every step
        {"kind": "uniform", "alpha": [0.5, 0.5]},
        {"kind": "random", "alpha": [0.4, 0.9]},
        {"kind": "gp", "alpha": [0.6, 0.65]},  # spread 0.05: near uniform
        {"kind": "gp", "alpha": [0.5, 1.0]},
    ]
    out = proposal_widths(rows, spread=0.1)
    assert out["mean"] == pytest.approx([(0.5 + 0.4 + 0.6 + 0.5) / 4, (0.5 + 0.9 + 0.65 + 1.0) / 4])
    assert out["count"] == 4 and out["gp"] == 2
    assert out["near"] == pytest.approx(2 / 4) and out["near_gp"] == pytest.approx(1 / 2)
    assert math.isnan(proposal_widths(rows[:3], spread=0.1)["near_gp"])  # warm-up only


def test_a_history_of_the_full_network_alone_is_refused():
    with pytest.raises(SystemExit, match="no proposal besides the full network"):
        proposal_widths([{"kind": "full", "alpha": [1.0]}], spread=0.1)
