"""Channel groups: a union-find over channel dimensions, where a dimension may be a list of
*segments* (after a concatenation, a split or a grouped conv).

An expression ``((g, per), ...)`` describes one tensor dimension: segment after segment, group
``g`` contributes ``per`` elements for each of its channels (``per > 1`` after flattening a
``C x H x W`` map, or for a grouped conv whose groups are the unit). A group may be *bound* to an
expression: it is then read as those segments everywhere (a weight that reads a concatenation,
a tensor split into pieces).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Seg = tuple[int, int]  # (group, elements per channel)
Expr = tuple[Seg, ...]
Info = dict[int, Expr]  # tensor dimension → channel expression (untracked dims keep their size)


@dataclass
class Groups:
    """Union-find over channel groups with sizes, a fixed flag, and where each first lives."""

    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=list)
    live: list[int | None] = field(default_factory=list)  # first node where an activation has it
    binding: dict[int, Expr] = field(default_factory=dict)

    def new(self, size: int, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.live.append(None)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def resolve(self, expr: Expr) -> Expr:
        out: list[Seg] = []
        for g, per in expr:
            r = self.find(g)
            if r in self.binding:
                out += [(g2, per * p2) for g2, p2 in self.resolve(self.binding[r])]
            else:
                out.append((r, per))
        return tuple(out)

    def numel(self, expr: Expr) -> int:
        return sum(self.size[self.find(g)] * per for g, per in self.resolve(expr))

    def fix(self, expr: Expr) -> None:
        for g, _ in self.resolve(expr):
            self.fixed[g] = True

    def mark_live(self, expr: Expr, index: int) -> None:
        for g, _ in self.resolve(expr):
            if self.live[g] is None or self.live[g] > index:
                self.live[g] = index

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        self.fixed[lo] = self.fixed[lo] or self.fixed[hi]
        lives = [v for v in (self.live[lo], self.live[hi]) if v is not None]
        self.live[lo] = min(lives) if lives else None

    def bind(self, g: int, expr: Expr) -> None:
        """Read group ``g`` (a root, unbound) as ``expr`` from now on; both are the same size."""
        r = self.find(g)
        self.binding[r] = expr
        if self.fixed[r]:
            self.fix(expr)
        if self.live[r] is not None:
            self.mark_live(expr, self.live[r])

    def _bound_live(self, expr: Expr) -> bool:
        return len(expr) != 1 or self.live[expr[0][0]] is not None

    def split(self, expr: Expr, sizes: list[int]) -> list[Expr] | None:
        """Cut ``expr`` into consecutive pieces of ``sizes`` elements, splitting a group that a
        cut falls inside into two (bound to the parts); None where a cut falls inside a channel.
        """
        offset = 0
        for size in sizes[:-1]:
            offset += size
            start = 0
            for g, per in self.resolve(expr):
                n = self.size[g] * per
                if start < offset < start + n:
                    if (offset - start) % per:
                        return None
                    c = (offset - start) // per
                    self.bind(g, ((self.new(c), 1), (self.new(self.size[g] - c), 1)))
                    break
                start += n
        pieces, current, filled = [], [], 0
        for g, per in self.resolve(expr):
            current.append((g, per))
            filled += self.size[g] * per
            if filled == sizes[len(pieces)]:
                pieces.append(tuple(current))
                current, filled = [], 0
        return pieces if len(pieces) == len(sizes) and not current else None

    def unify(self, a: Expr, b: Expr) -> tuple[Expr, bool]:
        """Tie two channel expressions of equal total size; False when their segments do not
        line up (both are then fixed)."""
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a, True
        if len(a) == len(b) and all(
            pa == pb and self.size[ga] == self.size[gb] for (ga, pa), (gb, pb) in zip(a, b)
        ):
            for (ga, _), (gb, _) in zip(a, b):
                self.union(ga, gb)
            return self.resolve(a), True
        # One side a single group: read it as the other's segments (a weight reading a
        # concatenation, a gate over a grouped conv's output); the one not yet met by an
        # activation first, as that keeps the activations' groups whole.
        for one, other in sorted(((a, b), (b, a)), key=lambda p: self._bound_live(p[0])):
            ((g, per),) = one if len(one) == 1 else ((None, 0),)
            if g is not None and all(p % per == 0 and g2 != g for g2, p in other):
                self.bind(g, tuple((g2, p // per) for g2, p in other))
                return self.resolve(other), True
        self.fix(a)
        self.fix(b)
        return a, False
