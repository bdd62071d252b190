"""The width space of a slimmable network: its channel groups and the multipliers that size them.

A *channel group* is a set of layer outputs that must keep the same channels (a conv and its
BatchNorm, or every tensor summed by a residual stream). A width vector ``alpha`` holds one
multiplier per *searchable* group; fixed groups (the network input, the classifier output, groups
touched by ``ignored`` layers) always run at full size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

# Guards floor(alpha * C) against representation error: 0.7 * 10 must give 7, not 6.
_FLOOR_EPS = 1e-9


@dataclass(frozen=True)
class ChannelGroup:
    """Coupled channels that are sliced together.

    Attributes:
        name: the first layer that produces the group (or ``"input"``).
        size: full number of channels, counted in units (see ``unit``): what a multiplier
            scales and what :meth:`WidthSpace.channels` returns.
        members: every layer whose output channels belong to the group, in graph order.
        consumers: every layer that reads the group as its input channels.
        searchable: False for groups held at full width.
        unit: channels per unit in the group's first member: 1 for most groups; ``k`` when
            the group is sliced ``k`` channels at a time (the input of a grouped conv whose
            groups hold ``k`` channels each, sliced in whole groups). The first member has
            ``size * unit`` channels.
    """

    name: str
    size: int
    members: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    searchable: bool = True
    unit: int = 1


@dataclass(frozen=True)
class WidthSpace:
    """The searchable groups of a network and how a multiplier becomes a channel count.

    Channels of group g at multiplier a: ``max(round_to, floor(a * size_g / round_to) * round_to)``,
    capped at ``size_g`` — the first channels are kept, so sub-networks are nested. For a group
    counted in units of ``k`` channels (``ChannelGroup.unit``) the step is ``ceil(round_to / k)``
    units, so that every step is at least ``round_to`` channels.
    """

    groups: tuple[ChannelGroup, ...]
    fixed: tuple[ChannelGroup, ...] = ()
    min_multiplier: float = 0.42
    round_to: int = 1
    _sizes: Tensor = field(init=False, repr=False, compare=False)
    _steps: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_multiplier <= 1.0:
            raise ValueError(f"min_multiplier must be in (0, 1], got {self.min_multiplier}")
        if self.round_to < 1:
            raise ValueError(f"round_to must be a positive integer, got {self.round_to}")
        sizes = torch.tensor([g.size for g in self.groups], dtype=torch.float64)
        object.__setattr__(self, "_sizes", sizes)
        steps = [-(-self.round_to // g.unit) for g in self.groups]
        object.__setattr__(self, "_steps", torch.tensor(steps, dtype=torch.float64))

    @property
    def dim(self) -> int:
        """Number of searchable groups (the length of alpha)."""
        return len(self.groups)

    @property
    def sizes(self) -> Tensor:
        """Full channel count of each searchable group, ``dim`` (float64)."""
        return self._sizes

    def check(self, alpha: Tensor | Sequence[float]) -> Tensor:
        """Validate a width vector or a batch of them and return it as float64.

        Args:
            alpha: ``dim`` or ``n x dim`` multipliers in ``[min_multiplier, 1]``.

        Raises:
            ValueError: wrong shape, NaN, or a value out of range.
        """
        if isinstance(alpha, (str, bytes)):
            raise ValueError(f"alpha must be numbers (one multiplier per group), got {alpha!r}")
        try:
            a = torch.as_tensor(alpha, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"alpha must be numbers (one multiplier per group), got {alpha!r}"
            ) from None
        if a.ndim not in (1, 2) or a.shape[-1] != self.dim:
            raise ValueError(
                f"alpha must have shape ({self.dim},) or (n, {self.dim}) — one multiplier per "
                f"searchable group — got {tuple(a.shape)}"
            )
        if torch.isnan(a).any():
            raise ValueError("alpha contains NaN; every multiplier must be a number")
        lo = self.min_multiplier - 1e-6
        if (a < lo).any() or (a > 1.0 + 1e-6).any():
            raise ValueError(
                f"alpha must lie in [{self.min_multiplier}, 1]; got values from "
                f"{a.min().item():.4g} to {a.max().item():.4g}"
            )
        return a

    def channels(self, alpha: Tensor | Sequence[float]) -> Tensor:
        """Channels of every searchable group.

        Args:
            alpha: ``dim`` or ``n x dim`` multipliers.

        Returns:
            int64 tensor of the same shape as ``alpha``.
        """
        a = self.check(alpha)
        r = self._steps
        c = torch.floor(a * self._sizes / r + _FLOOR_EPS) * r
        c = torch.minimum(torch.maximum(c, r), self._sizes)
        # alpha = 1 is the full group even when its size is not a multiple of round_to.
        c = torch.where(a >= 1.0, self._sizes, c)
        return torch.clamp(c, min=1.0).to(torch.int64)

    def smallest(self) -> Tensor:
        """The narrowest network, ``dim``."""
        return torch.full((self.dim,), self.min_multiplier, dtype=torch.float64)

    def largest(self) -> Tensor:
        """The full network, ``dim``."""
        return torch.ones(self.dim, dtype=torch.float64)

    def uniform(self, a: float) -> Tensor:
        """One multiplier for every group (a Slimmable-Nets / US-Nets width), ``dim``."""
        return self.check(torch.full((self.dim,), float(a), dtype=torch.float64))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Random per-group multipliers, uniform in the box, ``n x dim``."""
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        return self.min_multiplier + (1.0 - self.min_multiplier) * u

    def describe(self) -> str:
        """A readable table: each group, its size, and its member layers."""
        lines = [
            f"WidthSpace: {self.dim} searchable groups, multipliers in "
            f"[{self.min_multiplier}, 1], round_to={self.round_to}"
        ]
        width = max([len(g.name) for g in (*self.groups, *self.fixed)] + [4])

        def size(g: ChannelGroup) -> str:
            return f"{g.size:>5} ch" if g.unit == 1 else f"{g.size:>5} x {g.unit} ch"

        for i, g in enumerate(self.groups):
            lines.append(f"  [{i:>2}] {g.name:<{width}} {size(g)}  {', '.join(g.members)}")
        for g in self.fixed:
            members = ", ".join(g.members) if g.members else "-"
            lines.append(f"  [fx] {g.name:<{width}} {size(g)}  {members}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self) -> dict:
        return {
            "groups": [asdict(g) for g in self.groups],
            "fixed": [asdict(g) for g in self.fixed],
            "min_multiplier": self.min_multiplier,
            "round_to": self.round_to,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> WidthSpace:
        def group(g: dict) -> ChannelGroup:
            return ChannelGroup(
                name=g["name"],
                size=int(g["size"]),
                members=tuple(g.get("members", ())),
                consumers=tuple(g.get("consumers", ())),
                searchable=bool(g.get("searchable", True)),
                unit=int(g.get("unit", 1)),
            )

        return cls(
            groups=tuple(group(g) for g in d["groups"]),
            fixed=tuple(group(g) for g in d.get("fixed", ())),
            min_multiplier=float(d["min_multiplier"]),
            round_to=int(d.get("round_to", 1)),
        )

    @classmethod
    def from_json(cls, text: str) -> WidthSpace:
        return cls.from_dict(json.loads(text))
