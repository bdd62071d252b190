"""``pareco.slim``: capture, walk, plan, build, check."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from pareco.outputs import returns_a_cache
from pareco.slimming import rules as _rules  # noqa: F401  (registers pareco's own rules)
from pareco.slimming.capture import as_call, batch_size, capture, reference_output
from pareco.slimming.checks import NarrowestFails, check, warn_if_little
from pareco.slimming.errors import SlimError
from pareco.slimming.net import SlimmableNet
from pareco.slimming.plan import apply_ignored, build, resolve_blockers
from pareco.slimming.registry import Rule, check_rules
from pareco.slimming.walker import Walker


def slim(
    model: nn.Module,
    example_input: Tensor | tuple | dict | None = None,
    *,
    example_kwargs: dict[str, Any] | None = None,
    ignored: Iterable[str | nn.Module] | str = (),
    round_to: int = 1,
    min_multiplier: float = 0.42,
    rules: Mapping[str, Rule] | None = None,
) -> SlimmableNet:
    """Make a plain model slimmable.

    Args:
        model: any ``nn.Module`` that ``torch.export`` can capture for this input (Python
            control flow is fine as long as it does not branch on tensor values). It is copied,
            never modified.
        example_input: a batch the model accepts: a tensor (``N x C x H x W``; N = 1 is
            enough), a tuple of positional inputs, or a dict of keyword inputs. Its size sets
            the costs, which are given per sample.
        example_kwargs: keyword inputs (``pixel_values=...`` for Hugging Face models).
        ignored: layers (names, or the modules themselves) whose outputs keep their full width;
            a name also covers everything below it (``"layer4"``). ``"auto"`` keeps every part
            pareco cannot follow at full width and slims the rest (see ``net.notes``).
        round_to: channel counts are multiples of this (the largest network is always full).
        min_multiplier: the smallest multiplier of any group.
        rules: channel rules for this call only, by qualified op name
            (``{"mylib::fused": fn}``), looked up before the registry (see
            :func:`pareco.register_rule` and ``docs/slimming.md``).

    Raises:
        SlimError: the model cannot be captured, an operation on a searchable channel dimension
            cannot be followed (all of them are listed, with what to pass in ``ignored``), or
            the costs disagree with ``FlopCounterMode``.
    """
    if not isinstance(model, nn.Module):
        raise SlimError(f"pareco.slim needs an nn.Module, got {type(model).__name__}")
    try:
        per_call = check_rules(rules)
    except ValueError as err:
        raise SlimError(str(err)) from None
    auto = isinstance(ignored, str) and ignored == "auto"
    if isinstance(ignored, str) and not auto:
        ignored = [ignored]
    names_by_id = {id(m): n for n, m in model.named_modules()}
    ignored_names = set()
    for item in () if auto else ignored:
        name = names_by_id.get(id(item)) if isinstance(item, nn.Module) else str(item)
        if name is None or (name not in names_by_id.values()):
            raise SlimError(f"ignored= names {item!r}, which is not a layer of the model")
        ignored_names.add(name)
    args, kwargs = as_call(example_input, example_kwargs)
    batch = batch_size(args, kwargs)
    cache_note = []
    if returns_a_cache(model, kwargs):  # HF decoders: a cache object is no tensor output
        kwargs = {**kwargs, "use_cache": False}
        cache_note = [
            "traced with use_cache=False (the cache of a Hugging Face model is no tensor "
            "output); the same call is used to save exported sub-networks"
        ]

    original = model
    model = copy.deepcopy(original)
    was_training = model.training
    model.eval()
    reference = reference_output(model, args, kwargs, from_dict=isinstance(example_input, dict))
    ep = capture(model, args, kwargs)

    def attempt(model: nn.Module, walk: Walker) -> SlimmableNet:
        walk.run()
        plan_notes = cache_note + apply_ignored(walk, ignored_names)
        resolve_blockers(walk, auto)
        net = build(model, walk, round_to, min_multiplier, (args, kwargs), plan_notes)
        net.train(was_training)
        check(net, model, reference, args, kwargs, batch)
        return net

    first = Walker(ep, batch, per_call)
    try:
        net = attempt(model, first)
    except NarrowestFails:
        if not first.guessed_parts:
            raise
        # A view was split into parts of a size written as a number, read as following the
        # width (a channel shuffle's c // g), and the narrowest network failed: the size was a
        # constant of the module (``view(B, N, self.heads, self.head_dim)``). Slim a fresh copy
        # again with such views kept whole; if that fails too, its error is the one raised.
        again = Walker(ep, batch, per_call, literal_parts_follow=False)
        net = attempt(copy.deepcopy(original).eval(), again)
    warn_if_little(net)
    return net
