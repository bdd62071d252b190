"""Tests of pareco.search.history."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch

from pareco.search import History, ProposalRecord


def make_history() -> History:
    h = History(dim=3)
    h.add(torch.full((3,), 0.5), cost=0.3, step=0, kind="uniform")
    h.add(torch.ones(3), cost=1.0, step=0, kind="full")
    h.add(
        torch.tensor([0.6, 0.9, 0.42]),
        cost=0.55,
        step=10,
        kind="gp",
        target_cost=0.56,
        lam=0.375,
        bisection_steps=3,
        hit=True,
    )
    return h


def test_add_and_placeholder() -> None:
    h = make_history()
    assert len(h) == 3
    assert h.alphas().shape == (3, 3) and h.alphas().dtype == torch.float64
    assert torch.isnan(h.losses()).all()
    assert h.scored().indices.numel() == 0
    rec = h.record(2)
    assert rec.kind == "gp" and rec.lam == 0.375 and rec.bisection_steps == 3 and rec.hit
    assert math.isnan(rec.loss) and rec.loss_history == []
    assert h.kinds() == ["uniform", "full", "gp"]


def test_update_losses_and_scored() -> None:
    h = make_history()
    h.update_losses([0, 2], torch.tensor([2.0, 1.5]), step=20)
    h.update_losses([2], [1.2], step=30)
    scored = h.scored()
    assert scored.indices.tolist() == [0, 2]
    assert scored.losses.tolist() == [2.0, 1.2]
    assert scored.costs.tolist() == [0.3, 0.55]
    assert torch.equal(scored.alphas, h.alphas()[[0, 2]])
    assert h.record(2).loss_history == [(20, 1.5), (30, 1.2)]
    assert math.isnan(h.record(1).loss)


def test_update_losses_validation() -> None:
    h = make_history()
    with pytest.raises(IndexError):
        h.update_losses([3], [1.0], step=0)
    with pytest.raises(ValueError):
        h.update_losses([0, 1], [1.0], step=0)
    with pytest.raises(ValueError):
        h.update_losses([0], [float("nan")], step=0)
    with pytest.raises(ValueError):
        h.add(torch.ones(4), cost=1.0, step=0, kind="full")
    with pytest.raises(ValueError):
        h.add(torch.ones(3), cost=1.0, step=0, kind="bogus")


def test_returned_tensors_are_copies() -> None:
    h = make_history()
    h.alphas()[0, 0] = 7.0
    h.losses()[0] = 7.0
    assert float(h.alphas()[0, 0]) == 0.5 and math.isnan(float(h.losses()[0]))


def test_state_dict_round_trip_through_torch_save() -> None:
    h = make_history()
    h.update_losses([0, 1], [2.0, 1.0], step=5)
    buffer = io.BytesIO()
    torch.save(h.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    h2 = History(dim=3)
    h2.load_state_dict(state)
    assert [r.to_json() for r in h2.records()] == [r.to_json() for r in h.records()]
    with pytest.raises(ValueError):
        History(dim=2).load_state_dict(state)


def test_json_lines_round_trip(tmp_path) -> None:
    h = make_history()
    h.update_losses([1], [0.9], step=7)
    line = h.record(0).to_json()
    # Strict JSON: a never-scored loss and a warm-up λ are null, not NaN.
    parsed = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert parsed["loss"] is None and parsed["lam"] is None and parsed["hit"] is None
    assert ProposalRecord.from_json(line).to_json() == line
    path = tmp_path / "history.jsonl"
    h.to_jsonl(path)
    h2 = History.from_jsonl(path)
    assert h2.dim == 3
    assert [r.to_json() for r in h2.records()] == [r.to_json() for r in h.records()]
    assert torch.equal(h2.alphas(), h.alphas())
