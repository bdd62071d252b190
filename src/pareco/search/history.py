"""The search history H: every proposed width vector, its exact cost, and its losses over time.

A proposal enters H with a NaN placeholder loss; the trainer re-scores H every τ steps
(`History.update_losses`) and only scored proposals feed the GP and the front.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pareco.atomic import write_text_atomic
from pareco.errors import ParecoError

__all__ = ["History", "HistoryFileError", "ProposalRecord", "ScoredHistory"]


class HistoryFileError(ParecoError, ValueError):
    """A `history.jsonl` with a line that is not a proposal record (the message names it)."""


#: How a proposal was made: a warm-up uniform network, the full network, a GP-driven proposal,
#: or a random per-group vector (fallback when the GP has too little data).
PROPOSAL_KINDS = ("uniform", "full", "gp", "random")


def _json_float(x: float) -> float | None:
    """JSON has no NaN: missing values are written as null."""
    return None if math.isnan(x) else x


def _float_or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass
class ProposalRecord:
    """One proposal of the search, as stored in H and written to `history.jsonl`.

    Attributes:
        index: position in H.
        alpha: `dim` width multipliers.
        cost: exact cost ratio of `alpha` (relative to the full network).
        step: training step at which it was proposed.
        kind: one of "uniform", "full", "gp", "random".
        target_cost: target cost ratio the bisection aimed at (NaN for warm-up proposals).
        lam: λ of the scalarization that produced `alpha` (NaN for warm-up proposals).
        bisection_steps: number of scalarization minimizations the bisection ran (0 for warm-up).
        hit: whether the bisection reached the target within tolerance (None for warm-up).
        loss: latest measured loss, NaN until first scored.
        loss_history: every (step, loss) measurement, oldest first.
    """

    index: int
    alpha: list[float]
    cost: float
    step: int
    kind: str
    target_cost: float = float("nan")
    lam: float = float("nan")
    bisection_steps: int = 0
    hit: bool | None = None
    loss: float = float("nan")
    loss_history: list[tuple[int, float]] = field(default_factory=list)

    def to_json(self) -> str:
        """One line of JSON (no trailing newline); NaN is written as null."""
        return json.dumps(
            {
                "index": self.index,
                "alpha": [float(a) for a in self.alpha],
                "cost": self.cost,
                "step": self.step,
                "kind": self.kind,
                "target_cost": _json_float(self.target_cost),
                "lam": _json_float(self.lam),
                "bisection_steps": self.bisection_steps,
                "hit": self.hit,
                "loss": _json_float(self.loss),
                "loss_history": [[int(s), float(v)] for s, v in self.loss_history],
            }
        )

    @classmethod
    def from_json(cls, line: str) -> ProposalRecord:
        """Inverse of `to_json`."""
        d = json.loads(line)
        return cls(
            index=int(d["index"]),
            alpha=[float(a) for a in d["alpha"]],
            cost=float(d["cost"]),
            step=int(d["step"]),
            kind=str(d["kind"]),
            target_cost=_float_or_nan(d.get("target_cost")),
            lam=_float_or_nan(d.get("lam")),
            bisection_steps=int(d.get("bisection_steps", 0)),
            hit=d.get("hit"),
            loss=_float_or_nan(d.get("loss")),
            loss_history=[(int(s), float(v)) for s, v in d.get("loss_history", [])],
        )


class ScoredHistory(NamedTuple):
    """The scored part of H (proposals with a finite latest loss).

    Attributes:
        indices: `n` positions in H.
        alphas: `n x dim` width multipliers.
        costs: `n` exact cost ratios.
        losses: `n` latest losses.
    """

    indices: Tensor
    alphas: Tensor
    costs: Tensor
    losses: Tensor


class History:
    """Append-only store of proposals with their exact costs and re-scored losses.

    Tensors are float64 on the CPU. `alphas()`, `costs()` and `losses()` return copies.
    """

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self._alphas = torch.empty(0, dim, dtype=torch.float64)
        self._costs = torch.empty(0, dtype=torch.float64)
        self._losses = torch.empty(0, dtype=torch.float64)
        self._steps: list[int] = []
        self._kinds: list[str] = []
        self._target_costs: list[float] = []
        self._lams: list[float] = []
        self._bisection_steps: list[int] = []
        self._hits: list[bool | None] = []
        self._loss_history: list[list[tuple[int, float]]] = []

    def __len__(self) -> int:
        return self._costs.shape[0]

    def add(
        self,
        alpha: Tensor,
        cost: float,
        step: int,
        kind: str,
        target_cost: float = float("nan"),
        lam: float = float("nan"),
        bisection_steps: int = 0,
        hit: bool | None = None,
    ) -> ProposalRecord:
        """Append a proposal with a NaN placeholder loss.

        Args:
            alpha: `dim` width multipliers.
            cost: its exact cost ratio.
            step: training step of the proposal.
            kind: one of "uniform", "full", "gp", "random".
            target_cost, lam, bisection_steps, hit: how the bisection produced it.

        Returns:
            The stored record (with its index).
        """
        alpha = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1)
        if alpha.shape[0] != self.dim:
            raise ValueError(f"alpha has {alpha.shape[0]} entries, the history has dim {self.dim}")
        if kind not in PROPOSAL_KINDS:
            raise ValueError(f"kind must be one of {PROPOSAL_KINDS}, got {kind!r}")
        self._alphas = torch.cat([self._alphas, alpha.unsqueeze(0)])
        self._costs = torch.cat([self._costs, self._costs.new_tensor([float(cost)])])
        self._losses = torch.cat([self._losses, self._losses.new_tensor([float("nan")])])
        self._steps.append(int(step))
        self._kinds.append(kind)
        self._target_costs.append(float(target_cost))
        self._lams.append(float(lam))
        self._bisection_steps.append(int(bisection_steps))
        self._hits.append(None if hit is None else bool(hit))
        self._loss_history.append([])
        return self.record(len(self) - 1)

    def update_losses(
        self, indices: Sequence[int] | Tensor, losses: Sequence[float] | Tensor, step: int
    ) -> None:
        """Record new loss measurements (one re-scoring pass).

        Args:
            indices: `k` positions in H.
            losses: `k` measured losses (must be finite).
            step: training step of the measurement.
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        values = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
        if idx.shape != values.shape:
            raise ValueError(f"{idx.numel()} indices but {values.numel()} losses")
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a history of {len(self)} proposals")
        if not torch.isfinite(values).all():
            raise ValueError("losses must be finite")
        self._losses[idx] = values
        for i, v in zip(idx.tolist(), values.tolist()):
            self._loss_history[i].append((int(step), float(v)))

    def alphas(self) -> Tensor:
        """`n x dim` width multipliers of every proposal, in proposal order."""
        return self._alphas.clone()

    def costs(self) -> Tensor:
        """`n` exact cost ratios."""
        return self._costs.clone()

    def losses(self) -> Tensor:
        """`n` latest losses, NaN for proposals never scored."""
        return self._losses.clone()

    def scored(self) -> ScoredHistory:
        """The proposals that have been scored at least once, with their latest loss."""
        mask = torch.isfinite(self._losses)
        indices = torch.nonzero(mask, as_tuple=False).squeeze(-1)
        return ScoredHistory(
            indices=indices,
            alphas=self._alphas[indices],
            costs=self._costs[indices],
            losses=self._losses[indices],
        )

    def record(self, index: int) -> ProposalRecord:
        """A snapshot of one proposal."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} proposals")
        index = index % len(self)
        return ProposalRecord(
            index=index,
            alpha=self._alphas[index].tolist(),
            cost=float(self._costs[index]),
            step=self._steps[index],
            kind=self._kinds[index],
            target_cost=self._target_costs[index],
            lam=self._lams[index],
            bisection_steps=self._bisection_steps[index],
            hit=self._hits[index],
            loss=float(self._losses[index]),
            loss_history=list(self._loss_history[index]),
        )

    def records(self) -> Iterator[ProposalRecord]:
        """Snapshots of every proposal, in proposal order."""
        for i in range(len(self)):
            yield self.record(i)

    def kinds(self) -> list[str]:
        """How each proposal was made, in proposal order."""
        return list(self._kinds)

    def state_dict(self) -> dict[str, Any]:
        """Plain python values and tensors only, so `torch.save(..., weights_only=True)` works."""
        return {
            "dim": self.dim,
            "alphas": self._alphas.clone(),
            "costs": self._costs.clone(),
            "losses": self._losses.clone(),
            "steps": list(self._steps),
            "kinds": list(self._kinds),
            "target_costs": list(self._target_costs),
            "lams": list(self._lams),
            "bisection_steps": list(self._bisection_steps),
            "hits": list(self._hits),
            "loss_history": [[(int(s), float(v)) for s, v in h] for h in self._loss_history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the contents with those of `state_dict()`."""
        if int(state["dim"]) != self.dim:
            raise ValueError(f"state has dim {state['dim']}, this history has dim {self.dim}")
        self._alphas = torch.as_tensor(state["alphas"], dtype=torch.float64).clone()
        self._costs = torch.as_tensor(state["costs"], dtype=torch.float64).clone()
        self._losses = torch.as_tensor(state["losses"], dtype=torch.float64).clone()
        self._steps = [int(s) for s in state["steps"]]
        self._kinds = [str(k) for k in state["kinds"]]
        self._target_costs = [float(t) for t in state["target_costs"]]
        self._lams = [float(x) for x in state["lams"]]
        self._bisection_steps = [int(b) for b in state["bisection_steps"]]
        self._hits = [None if h is None else bool(h) for h in state["hits"]]
        self._loss_history = [[(int(s), float(v)) for s, v in h] for h in state["loss_history"]]

    def to_jsonl(self, path: str | Path) -> None:
        """Write every record as one JSON line (the run directory's `history.jsonl`), atomically:
        a reader sees the old file or the new one, never a part."""
        write_text_atomic(path, "".join(rec.to_json() + "\n" for rec in self.records()))

    @staticmethod
    def append_jsonl(path: str | Path, records: Sequence[ProposalRecord]) -> None:
        """Append `records` to a `history.jsonl` as they are proposed (`to_jsonl` rewrites it)."""
        with open(path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(rec.to_json() + "\n")

    @staticmethod
    def read_records(path: str | Path) -> list[dict[str, Any]]:
        """The records of a `history.jsonl` as dicts, in file order.

        Raises:
            HistoryFileError: a line that is not JSON or not a record (names the line).
        """
        records = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise HistoryFileError(f"{path} line {n} is damaged ({err})") from None
                if not isinstance(record, dict) or not {"alpha", "cost"} <= record.keys():
                    raise HistoryFileError(
                        f"{path} line {n} is not a history record (alpha, cost, loss)"
                    )
                records.append(record)
        return records

    @classmethod
    def from_records(cls, records: Sequence[ProposalRecord], dim: int | None = None) -> History:
        """Rebuild a history from records in index order (e.g. read back from `history.jsonl`)."""
        if dim is None:
            if not records:
                raise ValueError("need dim for an empty list of records")
            dim = len(records[0].alpha)
        history = cls(dim)
        for i, rec in enumerate(records):
            if rec.index != i:
                raise ValueError(f"record {i} has index {rec.index}; records must be in order")
            history.add(
                torch.tensor(rec.alpha, dtype=torch.float64),
                rec.cost,
                rec.step,
                rec.kind,
                rec.target_cost,
                rec.lam,
                rec.bisection_steps,
                rec.hit,
            )
            history._losses[i] = rec.loss
            history._loss_history[i] = list(rec.loss_history)
        return history

    @classmethod
    def from_jsonl(cls, path: str | Path, dim: int | None = None) -> History:
        """Read a history written by `to_jsonl` (or appended to by `append_jsonl`)."""
        records = [ProposalRecord.from_json(json.dumps(d)) for d in cls.read_records(path)]
        return cls.from_records(records, dim)
