"""Channel sorting for a trained model: the first ``k`` channels of every group become its most
important ones (Once-for-All's channel sorting before width shrinking).

A slimmable sub-network keeps the first ``k`` channels of each searchable group. After normal
training those are arbitrary channels, so every narrower network starts broken; sorting each group
by an importance score fixes that without changing what the full network computes: a group's
permutation is applied to every tensor that holds the group (conv and linear outputs, the inputs
of their consumers, norms and their running statistics, biases, gains, depthwise and residual
ties, each segment of a concatenation), so the full network is the same function with its
channels renumbered.

The permutation is applied through the slimmable net's own slicing plan (the list of sliced
tensors and, per dimension, its segments ``(group, elements per channel, channels)`` laid end to
end, channel outermost within a segment), so sorting covers exactly what slicing covers.

Importance criteria, per channel of a group:

* ``l1`` / ``l2``: the norm of the channel's producing weights (dimension 0 of every conv/linear
  weight of the group, dimension 1 of an embedding), each layer's scores divided by their mean so
  that the layers of a residual tie count alike, then summed;
* ``bn``: ``|gamma|`` of the group's norms, summed (groups without a norm fall back to ``l1``);
* ``taylor``: data-driven, the first-order Taylor estimate of the loss change when the channel's
  output-side parameters are removed, ``(sum over them of grad * param)^2`` averaged over a few
  batches (Molchanov et al., 2019), with the network in eval mode.

A group tied to a grouped convolution (``groups > 1`` and not depthwise) or a GroupNorm with
several channels per group is left unsorted, with a note: moving a channel to another conv group
would change the function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.outputs import logits_of
from pareco.slimming import SlimmableNet

CRITERIA = ("l1", "l2", "bn", "taylor")
#: Settings a config accepts: ``auto`` = ``bn`` (``l1`` where a group has no norm).
SORT_SETTINGS = ("auto", "none", *CRITERIA)

Segment = tuple[int | None, int, int]  # (searchable group or None, elements per channel, channels)


@dataclass
class GroupSort:
    """What sorting did to one searchable group.

    Attributes:
        index: the group's position in ``net.space``.
        name: the group's name.
        criterion: the criterion that ordered it (``l1``, ``l2``, ``bn``, ``taylor``), or
            ``none`` when it was left as it was.
        permutation: ``C`` long tensor: new channel ``i`` is old channel ``permutation[i]``.
        scores: ``C`` importance of the old channels (empty when unsorted).
        note: why the criterion differs from the one asked for, or why it was left unsorted.
    """

    index: int
    name: str
    criterion: str
    permutation: Tensor
    scores: Tensor
    note: str = ""

    @property
    def moved(self) -> int:
        """How many channels changed place."""
        return int((self.permutation != torch.arange(len(self.permutation))).sum())


@dataclass
class SortReport:
    """The outcome of :func:`sort_channels`, one :class:`GroupSort` per searchable group."""

    importance: str
    groups: list[GroupSort] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"channels sorted by {self.importance}:"]
        for g in self.groups:
            extra = f" ({g.note})" if g.note else ""
            lines.append(
                f"  {g.name}: {g.criterion}, {g.moved}/{len(g.permutation)} channels moved{extra}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "importance": self.importance,
            "groups": [
                {
                    "index": g.index,
                    "name": g.name,
                    "criterion": g.criterion,
                    "moved": g.moved,
                    "permutation": g.permutation.tolist(),
                    "note": g.note,
                }
                for g in self.groups
            ],
        }


# --- the plan -----------------------------------------------------------------------------------
@dataclass
class _Site:
    """One dimension of one sliced tensor, with its segments."""

    module: nn.Module
    name: str
    dim: int
    segments: list[Segment]

    @property
    def tensor(self) -> Tensor:
        m = self.module
        return m._parameters[self.name] if self.name in m._parameters else m._buffers[self.name]

    @property
    def is_param(self) -> bool:
        return self.name in self.module._parameters

    def blocks(self, col: int) -> list[tuple[int, int, int]]:
        """``(offset, per, channels)`` of every segment of searchable group ``col``."""
        out, off = [], 0
        for c, per, full in self.segments:
            if c == col:
                out.append((off, per, full))
            off += per * full
        return out


def _sites(net: SlimmableNet) -> list[_Site]:
    out = []
    for cut in net._cuts:
        for dim, segs in cut.dims:
            out.append(_Site(cut.module, cut.tensor, dim, list(segs)))
    return out


def _per_channel(t: Tensor, site: _Site, col: int, reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """``C``: ``reduce`` over each channel's elements of ``t`` (``(C, n)`` rows → ``C``), summed
    over the group's segments in this dimension."""
    total = None
    for off, per, full in site.blocks(col):
        part = t.narrow(site.dim, off, per * full).movedim(site.dim, 0)
        value = reduce(part.reshape(full, -1))
        total = value if total is None else total + value
    return total


def _unsortable(net: SlimmableNet, sites: list[_Site]) -> dict[int, str]:
    """Groups whose channels cannot move freely: tied to a grouped conv or a GroupNorm with
    several channels per group (checked at full width)."""
    out: dict[int, str] = {}
    with net.widths(net.space.largest()):
        for s in sites:
            m = s.module
            cols = {c for c, _, _ in s.segments if c is not None}
            why = None
            if isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1:
                depthwise = m.groups == m.in_channels == m.out_channels
                if not depthwise:
                    why = f"tied to a grouped conv (groups={m.groups}); left unsorted"
            elif isinstance(m, nn.GroupNorm) and 1 < m.num_groups < m.num_channels:
                why = f"tied to a GroupNorm with {m.num_groups} groups; left unsorted"
            if why:
                for c in cols:
                    out.setdefault(c, why)
    return out


def _producers(sites: list[_Site], col: int) -> list[_Site]:
    """Weights that compute the group's channels: dim 0 of conv/linear weights (and dim 1 of an
    embedding's)."""
    out = []
    for s in sites:
        if not s.is_param or not s.blocks(col):
            continue
        t = s.tensor
        if isinstance(s.module, nn.Embedding):
            if s.dim == 1:
                out.append(s)
        elif s.dim == 0 and t.ndim >= 2:
            out.append(s)
    return out


def _norms(sites: list[_Site], col: int) -> list[_Site]:
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    return [
        s
        for s in sites
        if s.name == "weight"
        and s.dim == 0
        and s.blocks(col)
        and (isinstance(s.module, norm_types) or "norm" in type(s.module).__name__.lower())
    ]


def _weight_norm(sites: list[_Site], col: int, p: int) -> Tensor | None:
    total = None
    for s in sites:
        t = s.tensor.detach().float()
        v = _per_channel(t, s, col, lambda rows: rows.norm(p=p, dim=1))
        mean = v.mean()
        if mean > 0:
            v = v / mean
            total = v if total is None else total + v
    return total


def _gamma(sites: list[_Site], col: int) -> Tensor | None:
    total = None
    for s in sites:
        v = _per_channel(s.tensor.detach().float().abs(), s, col, lambda rows: rows.sum(1))
        total = v if total is None else total + v
    return total


def _taylor_scores(
    net: SlimmableNet,
    sites: list[_Site],
    cols: list[int],
    batches: Iterable[Any],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    forward: Callable[[nn.Module, Any], Tensor] | None,
) -> dict[int, Tensor]:
    """Mean over batches of ``(sum of grad * param over each channel's output-side params)^2``."""
    forward = forward or batch_inputs.call
    output_side = {
        col: [s for s in sites if s.is_param and s.blocks(col) and s.dim == 0] for col in cols
    }
    params = list(net.parameters())
    saved_grads = [p.grad for p in params]
    was_training = net.training
    sums: dict[int, Tensor] = {}
    n = 0
    net.eval()
    try:
        with net.widths(net.space.largest()):
            for batch in batches:
                x, y = batch
                for p in params:
                    p.grad = None
                loss = loss_fn(logits_of(forward(net, x)).float(), y)
                loss.backward()
                for col in cols:
                    s_b = None
                    for s in output_side[col]:
                        t = s.tensor
                        if t.grad is None:
                            continue
                        gp = (t.grad * t).detach().float()
                        v = _per_channel(gp, s, col, lambda rows: rows.sum(1))
                        s_b = v if s_b is None else s_b + v
                    if s_b is not None:
                        sums[col] = sums.get(col, 0) + s_b.pow(2)
                n += 1
    finally:
        for p, g in zip(params, saved_grads):
            p.grad = g
        net.train(was_training)
    if n == 0:
        raise ValueError("sort_channels(importance='taylor') got no batches")
    return {col: v / n for col, v in sums.items()}


# --- public API ---------------------------------------------------------------------------------
@torch.no_grad()
def permute_channels(net: SlimmableNet, permutations: dict[int, Tensor]) -> None:
    """Renumber the channels of searchable groups in place, in every tensor that holds them.

    Args:
        net: the slimmable network (its module's parameters and buffers are changed in place,
            so optimizers holding them stay valid; their momentum would not be permuted: sort
            before training).
        permutations: group index (in ``net.space``) → ``C`` long tensor, new channel ``i`` =
            old channel ``permutation[i]``.
    """
    groups = net.space.groups
    for col, perm in permutations.items():
        if not 0 <= col < len(groups):
            raise ValueError(f"no searchable group {col}; the space has {len(groups)}")
        size = groups[col].size
        if sorted(perm.tolist()) != list(range(size)):
            raise ValueError(f"group {col}: not a permutation of its {size} channels")
    seen: set[tuple[int, int]] = set()
    for s in _sites(net):
        t = s.tensor
        key = (id(t), s.dim)
        if key in seen or not any(c in permutations for c, _, _ in s.segments):
            continue
        seen.add(key)
        pieces, off = [], 0
        for c, per, full in s.segments:
            if c in permutations:
                p = permutations[c].to(torch.long)
                idx = (p[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
            else:
                idx = torch.arange(per * full)
            pieces.append(idx + off)
            off += per * full
        index = torch.cat(pieces).to(t.device)
        if off != t.shape[s.dim]:
            raise RuntimeError(
                f"internal: the slicing plan of {type(s.module).__name__}.{s.name} covers {off} "
                f"of {t.shape[s.dim]} elements in dimension {s.dim}; please report this model"
            )
        t.copy_(t.index_select(s.dim, index))


def sort_channels(
    net: SlimmableNet,
    importance: str = "l1",
    *,
    batches: Iterable[Any] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    forward: Callable[[nn.Module, Any], Tensor] | None = None,
) -> SortReport:
    """Sort every searchable group's channels by importance, most important first, in place.

    The full network computes the same function afterwards (up to float rounding); narrower
    sub-networks keep the most important channels.

    Args:
        net: a slimmable network (``pareco.slim`` of a trained model), before its optimizer
            is made.
        importance: ``l1``, ``l2``, ``bn``, ``taylor`` or ``auto`` (``bn``, ``l1`` where a group
            has no norm).
        batches: ``(inputs, targets)`` batches for ``taylor`` (a few are enough).
        loss_fn: ``(logits, targets) -> loss`` for ``taylor``; default cross-entropy.
        forward: ``(module, inputs) -> logits`` for ``taylor``; default ``module(inputs)``.

    Returns:
        A :class:`SortReport`: per group the criterion used and the permutation applied.
    """
    asked = "bn" if importance == "auto" else importance
    if asked not in CRITERIA:
        raise ValueError(
            f"importance must be one of {', '.join(('auto', *CRITERIA))}, got {importance!r}"
        )
    if asked == "taylor" and batches is None:
        raise ValueError("importance='taylor' needs batches=[(inputs, targets), ...]")
    sites = _sites(net)
    blocked = _unsortable(net, sites)
    cols = [c for c in range(net.space.dim) if c not in blocked]
    taylor: dict[int, Tensor] = {}
    if asked == "taylor":
        loss_fn = loss_fn or torch.nn.functional.cross_entropy
        taylor = _taylor_scores(net, sites, cols, batches, loss_fn, forward)
    report = SortReport(importance)
    perms: dict[int, Tensor] = {}
    for col, group in enumerate(net.space.groups):
        identity = torch.arange(group.size)
        if col in blocked:
            report.groups.append(
                GroupSort(col, group.name, "none", identity, torch.empty(0), blocked[col])
            )
            continue
        criterion, note, scores = asked, "", None
        if asked == "taylor":
            scores = taylor.get(col)
        elif asked == "bn":
            scores = _gamma(_norms(sites, col), col)
            if scores is None:
                criterion, note = "l1", "no norm in the group: sorted by l1"
        if criterion in ("l1", "l2"):
            scores = _weight_norm(_producers(sites, col), col, 1 if criterion == "l1" else 2)
        if scores is None:
            why = "no weight produces the group; left unsorted"
            report.groups.append(GroupSort(col, group.name, "none", identity, torch.empty(0), why))
            continue
        perm = torch.sort(scores.cpu(), descending=True, stable=True).indices
        perms[col] = perm
        report.groups.append(GroupSort(col, group.name, criterion, perm, scores.cpu(), note))
    permute_channels(net, perms)
    return report
